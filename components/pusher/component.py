"""TFX adapter of the pusher: no blessing, no push; no signature verdict, no push.

A model blessed by the Evaluator *and* by the signature validator is released into the serving
base path with ``components.serving.release_version`` (push, tag, release record, labels,
``models.config``); its contract is then kept in ``<base_path>/contract.json`` if the base path
had none (the first release), or replaces it when a breaking change was allowed with a reason.
"""

import json
import os
import subprocess
from pathlib import Path

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import (
    Examples,
    Model,
    ModelBlessing,
    ModelEvaluation,
    PushedModel,
)

from components.evaluator.metrics import overall_metrics
from components.serving import Release, release_version
from components.serving.contract import Contract, write_contract_file

REPO_ROOT = Path(__file__).resolve().parents[2]
VERDICT_REPORT = "report.json"


def is_blessed(blessing) -> bool:
    return blessing.get_int_custom_property("blessed") == 1


def git_commit(repo: Path = REPO_ROOT) -> str:
    """``git rev-parse HEAD`` of the code's repository, or "unknown" (no git, no repository)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else "unknown"


def spans_of(examples) -> list:
    return [examples.get_int_custom_property("span")] if examples.has_custom_property(
        "span") else []


def read_verdict_report(verdict) -> dict:
    try:
        with open(os.path.join(verdict.uri, VERDICT_REPORT)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def keep_contract(base_path: str, report: dict, release: Release) -> None:
    """Keep the released model's contract as the base path's, as the module docstring says."""
    contract = (report.get("candidate") or {}).get("contract")
    if not contract:
        return
    allowed = report.get("allowed_breaking_change") or {}
    write_contract_file(base_path, Contract.from_json(contract, "verdict"), release.version,
                        allowed.get("reason", ""), replace=bool(allowed))


def record_release(pushed_model, release: Release, breaking_reason: str) -> None:
    """The release's fields as custom properties of the PushedModel artifact."""
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_int_custom_property("pushed_version", release.version)
    pushed_model.set_string_custom_property("pushed_destination", release.path)
    pushed_model.set_int_custom_property("reused_existing_version", int(release.reused))
    for key in ("content_hash", "tag", "channel", "model_name", "pushed_at"):
        pushed_model.set_string_custom_property(key, getattr(release, key))
    pushed_model.set_string_custom_property("git_commit", release.git_commit or "unknown")
    for key in ("metrics", "spans", "mlmd_ids"):
        pushed_model.set_string_custom_property(key, json.dumps(getattr(release, key),
                                                                sort_keys=True))
    pushed_model.set_int_custom_property("release_number", release.release_number)
    pushed_model.set_int_custom_property("blessed", int(release.blessed))
    pushed_model.set_string_custom_property("breaking_change_reason", breaking_reason)


def not_pushed(pushed_model, why: str) -> None:
    pushed_model.set_int_custom_property("pushed", 0)
    pushed_model.set_string_custom_property("not_pushed_reason", why)


@component
def ServingPusher(  # noqa: N802
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    signature_verdict: InputArtifact[ModelBlessing],
    evaluation: InputArtifact[ModelEvaluation],
    examples: InputArtifact[Examples],
    pushed_model: OutputArtifact[PushedModel],
    base_path: Parameter[str],
    model_name: Parameter[str],
    channel: Parameter[str],
    batching_json: Parameter[str],
) -> None:
    """Releases the model when both the Evaluator and the signature validator blessed it."""
    if not is_blessed(model_blessing):
        return not_pushed(pushed_model, "the Evaluator did not bless the model")
    if not is_blessed(signature_verdict):
        reasons = signature_verdict.get_string_custom_property("reasons") or "[]"
        return not_pushed(pushed_model, "signature validation: " + "; ".join(json.loads(reasons)))
    report = read_verdict_report(signature_verdict)
    reason = (report.get("allowed_breaking_change") or {}).get("reason", "")
    release = release_version(
        base_path, os.path.join(model.uri, "Format-Serving"), model_name, channel,
        metrics=overall_metrics(evaluation.uri), spans=spans_of(examples),
        git_commit=git_commit(), blessed=True,
        mlmd_ids={"model": model.id, "model_blessing": model_blessing.id,
                  "signature_verdict": signature_verdict.id, "evaluation": evaluation.id,
                  "examples": examples.id},
        batching=json.loads(batching_json) if batching_json else None,
        notes={"breaking_change_reason": reason} if reason else None,
    )
    keep_contract(base_path, report, release)
    record_release(pushed_model, release, reason)
