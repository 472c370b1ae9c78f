"""Writes the chosen baseline as a Model artifact's files: ``<uri>/Format-Serving/...``, the
layout TFX's Evaluator reads (``path_utils.serving_model_path``), hard-linked from the served
version directory (or from the candidate, on a first release), copied where a link cannot be.
"""

from __future__ import annotations

import os
import shutil

from components.baseline.choice import Choice, StableEntry, choose_baseline
from components.serving import ServingDir, model_content_hash

__all__ = ["SERVING_MODEL_DIR", "BaselineError", "write_baseline"]

# TFX's path_constants.SERVING_MODEL_DIR, without importing TFX here.
SERVING_MODEL_DIR = "Format-Serving"


class BaselineError(RuntimeError):
    """The baseline cannot be written; the message names the path at fault."""


def write_baseline(candidate_dir: str, base_path: str, chain: list[StableEntry],
                   artifact_uri: str) -> Choice:
    """Chooses the baseline of the model in `candidate_dir` and writes it under `artifact_uri`.

    On a first release (no stable version to compare with) the candidate itself is written:
    TFMA then compares it with itself, every change is 0 and the value thresholds decide.

    Raises:
      BaselineError: the chosen version is gone, or its content is no longer what its release
        recorded (the comparison would not be with the version the cache key names).
    """
    choice = choose_baseline(chain, model_content_hash(candidate_dir))
    source = candidate_dir
    if choice.entry is not None:
        source = ServingDir(base_path).version_path(choice.entry.version)
        if not os.path.isdir(source):
            raise BaselineError(f"{source}: stable version {choice.entry.version} is no longer "
                                "served (pruned since the pipeline was built?)")
        found = model_content_hash(source)
        if found != choice.entry.content_hash:
            raise BaselineError(f"{source}: content sha256 {found[:12]} is not the released "
                                f"{choice.entry.content_hash[:12]} (changed by hand?)")
    link_or_copy_tree(source, os.path.join(artifact_uri, SERVING_MODEL_DIR))
    return choice


def link_or_copy_tree(src: str, dst: str) -> None:
    """`dst` as a tree of hard links to `src`'s files (served versions are never rewritten in
    place), each file copied when the link fails (another file system, a remote URI)."""
    if "://" in dst:
        return _copy_with_fileio(src, dst)
    for root, _dirs, files in os.walk(src, followlinks=True):
        target = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(target, exist_ok=True)
        for name in files:
            try:
                os.link(os.path.join(root, name), os.path.join(target, name))
            except OSError:
                shutil.copy2(os.path.join(root, name), os.path.join(target, name))


def _copy_with_fileio(src: str, dst: str) -> None:
    from tfx.dsl.io import fileio

    for root, _dirs, files in os.walk(src, followlinks=True):
        target = os.path.join(dst, os.path.relpath(root, src))
        fileio.makedirs(target)
        for name in files:
            fileio.copy(os.path.join(root, name), os.path.join(target, name), overwrite=True)
