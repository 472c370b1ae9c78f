"""Reading a TFMA evaluation output: the candidate's metrics on the overall slice."""

from __future__ import annotations

import math


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate's finite metrics on the overall slice (no sub-keys, no diffs)."""
    import tensorflow_model_analysis as tfma

    metrics: dict[str, float] = {}
    for m in tfma.load_metrics(evaluation_uri):
        if m.slice_key.single_slice_keys:
            continue
        for kv in m.metric_keys_and_values:
            if kv.key.HasField("sub_key") or kv.key.is_diff:
                continue
            if kv.key.model_name not in ("", "candidate"):
                continue
            if kv.value.HasField("double_value") and math.isfinite(kv.value.double_value.value):
                metrics[kv.key.name] = round(kv.value.double_value.value, 6)
    return metrics
