"""Pushing a trained SavedModel to a TensorFlow Serving base path (pure Python, no TensorFlow)."""

from components.pusher.serving_dir import (
    PushError,
    PushResult,
    ServingDir,
    model_content_hash,
)

__all__ = ["PushError", "PushResult", "ServingDir", "model_content_hash"]
