"""What a run did, read back from ML Metadata: component states, the push, the metrics."""

from __future__ import annotations

import logging
import os

from components.evaluator.metrics import overall_metrics
from components.metadata import (
    custom_property,
    execution_state,
    get_output_artifacts,
    get_run_executions,
    open_store,
)
from pipeline.app.run_result import ComponentRun
from pipeline.config import PipelineConfig


def _slice_value(key) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind) if kind else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def validation_failures(evaluation_uri: str) -> list[str]:
    """Why TFMA did not bless the candidate: one sentence per failed threshold and slice, and
    per slice TFMA found no metrics for; never empty when validation failed."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        keys = per_slice.slice_key.single_slice_keys
        where = ", ".join(f"{k.column}={_slice_value(k)}" for k in keys) or "overall"
        for f in per_slice.failures:
            value = f.metric_value.double_value.value
            if f.metric_key.is_diff:
                bound = f.metric_threshold.change_threshold.absolute.value
                lines.append(
                    f"{f.metric_key.name} on {where}: {value:+.4f} vs baseline "
                    f"(allowed {bound:+.4f})"
                )
            else:
                vt = f.metric_threshold.value_threshold
                below = vt.HasField("lower_bound") and value < vt.lower_bound.value
                bound = (f">= {vt.lower_bound.value:g}" if below or not vt.HasField("upper_bound")
                         else f"<= {vt.upper_bound.value:g}")
                lines.append(f"{f.metric_key.name} on {where}: {value:.4f}, needs {bound}")
    if result.validation_ok:
        return lines
    for spec in result.missing_slices:
        named = [*spec.feature_keys, *(f"{k}={v}" for k, v in spec.feature_values.items())]
        lines.append(f"no metrics for the {', '.join(named) or 'overall'} slice, which a "
                     "threshold needs (no example evaluated there; an empty eval split?)")
    if result.missing_thresholds:
        lines.append("TFMA had no threshold to check, and blesses nothing without one")
    if not lines:
        lines.append(f"TFMA validation failed without a failed threshold (see {evaluation_uri})")
    return lines


def collect_report(cfg: PipelineConfig, result, seconds: dict[str, float]) -> None:
    """Fills `result.components`, `.pushed`, `.blessed`, `.metrics` and `.validation_failures`
    (the Evaluator's, then the signature validator's, prefixed ``signature:``) from MLMD."""
    from pipeline.build import NODE_ORDER

    path = cfg.resolved_metadata_path
    executions = {}
    store = None
    if os.path.exists(path):
        store = open_store(path)
        executions = get_run_executions(store, cfg.pipeline_name, result.run_id)
    names = [n for n in NODE_ORDER if n in executions or n in seconds] or list(executions)
    for name in NODE_ORDER:
        if name not in names:
            names.append(name)
    components = []
    for name in names:
        e = executions.get(name)
        state = execution_state(e) if e is not None else "not run"
        if e is None and name in seconds:
            state = "failed" if result.status == "failed" else "succeeded"
        components.append(
            {"name": name, "status": state, "seconds": round(seconds.get(name, 0.0), 2),
             "cached": state == "cached"}
        )
    result.components = [ComponentRun(**c) for c in components]
    if store is None:
        return
    if "ServingPusher" in executions:
        pusher = executions["ServingPusher"]
        for a in get_output_artifacts(store, pusher.id):
            if custom_property(a, "pushed") == 1:
                result.pushed = {
                    "version": custom_property(a, "pushed_version"),
                    "path": custom_property(a, "pushed_destination"),
                    "tag": custom_property(a, "tag"),
                    "channel": custom_property(a, "channel"),
                    # A cached pusher re-reports an earlier run's push.
                    "new": not custom_property(a, "reused_existing_version")
                    and execution_state(pusher) != "cached",
                }
    if "Evaluator" in executions:
        for a in get_output_artifacts(store, executions["Evaluator"].id):
            if a.type == "ModelBlessing" or custom_property(a, "blessed") is not None:
                result.blessed = custom_property(a, "blessed") == 1
            else:
                try:
                    result.metrics = overall_metrics(a.uri)
                    result.validation_failures = validation_failures(a.uri)
                except Exception:  # noqa: BLE001  (metrics are informative, not the verdict)
                    logging.getLogger(__name__).exception("cannot read %s", a.uri)
    if "SignatureValidator" in executions:
        failures = signature_failures(store, executions["SignatureValidator"].id)
        if failures:
            # Not blessed for serving: the CLI lists these lines with the Evaluator's.
            result.blessed = False
            result.validation_failures = [*result.validation_failures, *failures]


def signature_failures(store, execution_id: int) -> list[str]:
    """Why the signature validator did not bless the model, one line per reason."""
    import json

    lines = []
    for a in get_output_artifacts(store, execution_id):
        if custom_property(a, "signature_blessed") == 0:
            reasons = json.loads(custom_property(a, "reasons") or "[]") or ["no reason recorded"]
            lines += [f"signature: {r}" for r in reasons]
    return lines
