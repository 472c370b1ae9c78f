"""What a run did, read back from ML Metadata: component states, the push, the metrics."""

from __future__ import annotations

import logging

from components.evaluator.metrics import overall_metrics
from components.metadata import (
    custom_property,
    execution_state,
    get_output_artifacts,
    get_run_executions,
    open_store,
    store_exists,
)
from pipeline.app.run_result import ComponentRun, RunResult
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

    target = cfg.metadata_target
    executions = {}
    store = None
    if store_exists(target):
        store = open_store(target)
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
    if "StableBaseline" in executions:
        result.baseline = baseline_of(store, executions["StableBaseline"].id)
        logging.getLogger(__name__).info(baseline_line(result.baseline))
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


def baseline_of(store, execution_id: int) -> dict | None:
    """What the baseline node chose (`components/baseline`), for `RunResult.baseline`."""
    for a in get_output_artifacts(store, execution_id):
        if custom_property(a, "baseline_kind") is None:
            continue
        model_id = custom_property(a, "released_model_id")
        return {
            "kind": custom_property(a, "baseline_kind"),  # stable | previous_stable | none
            "version": custom_property(a, "baseline_version") or None,
            "tag": custom_property(a, "baseline_tag") or None,
            "model_id": model_id if model_id is not None and model_id >= 0 else None,
            "artifact_id": a.id,
            "line": baseline_line_of(a),
        }
    return None


def baseline_line_of(artifact) -> str:
    line = f"baseline: {custom_property(artifact, 'baseline_reason')}"
    if custom_property(artifact, "baseline_kind") == "none":
        line += "; the candidate is its own baseline: the value thresholds decide"
    return line


def baseline_line(baseline: dict | None) -> str:
    """The run summary's line about the baseline."""
    return baseline["line"] if baseline else "baseline: not chosen (the run stopped before)"


def run_result_from_metadata(cfg: PipelineConfig, run_id: str) -> RunResult:
    """The RunResult of run `run_id` as ML Metadata holds it, whoever ran it: an Airflow DAG
    run is read by its Airflow run id. Status: "succeeded" when every node succeeded or was
    cached, "running" while a node runs, "failed" otherwise (`error` names the first node that
    failed or did not run); `span` is the span the examples were read from."""
    result = RunResult(run_id=run_id, status="failed",
                       metadata_uri=cfg.metadata_uri,
                       pipeline_root=cfg.resolved_pipeline_root)
    collect_report(cfg, result, _execution_seconds(cfg, run_id))
    states = {c.name: c.status for c in result.components}
    if all(s in ("succeeded", "cached") for s in states.values()):
        result.status = "succeeded"
    elif "running" in states.values():
        result.status = "running"
    else:
        name, state = next((n, s) for n, s in states.items() if s not in ("succeeded", "cached"))
        result.error = f"{name}: {state}"
        result.error_kind = "run"
    result.span = _examples_span(cfg, run_id)
    return result


def _execution_seconds(cfg: PipelineConfig, run_id: str) -> dict[str, float]:
    """Node -> seconds from its execution's creation to its last update (MLMD's clock)."""
    target = cfg.metadata_target
    if not store_exists(target):
        return {}
    store = open_store(target)
    return {name: max(0, e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
            for name, e in get_run_executions(store, cfg.pipeline_name, run_id).items()}


def _examples_span(cfg: PipelineConfig, run_id: str) -> int | None:
    target = cfg.metadata_target
    if not store_exists(target):
        return None
    store = open_store(target)
    gen = get_run_executions(store, cfg.pipeline_name, run_id).get("ImportExampleGen")
    for a in get_output_artifacts(store, gen.id, "examples") if gen is not None else []:
        span = custom_property(a, "span")  # TFX keeps it there, not in the type's properties
        if span is not None:
            return int(span)
    return None
