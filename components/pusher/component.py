"""TFX adapter of the pusher: no blessing, no push; no signature verdict, no push.

A model blessed by the Evaluator *and* by the signature validator is released into the serving
base path with ``components.serving.release_version``: push, serving contract (from the
verdict's report: kept by a first release, replaced by an allowed breaking change), labels,
``models.config`` and release record, in one locked operation. The release's fields become
custom properties of the PushedModel (``annotate_pushed_model``). ``pusher.serving`` arrives as
JSON (``serving_json``) and is rebuilt as ``ServerConfig``: the label moves onto the new version
only once TF Serving has loaded it (``ServerWait``), and the base path's lock is waited for at
most ``lock_timeout_seconds``.
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
from components.serving import Release, ReleaseRequest, ServerWait, release_version
from components.serving.settings import ServerConfig
from components.signature.validate import read_verdict

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def annotate_pushed_model(pushed_model, release: Release, breaking_reason: str) -> None:
    """Set the release's fields as custom properties of the PushedModel artifact."""
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
    serving_json: Parameter[str],
    code_fingerprint: Parameter[str] = "",
    reason: Parameter[str] = "",
    requested_by: Parameter[str] = "",
) -> None:
    """Releases the model when both the Evaluator and the signature validator blessed it.

    `code_fingerprint` is not read: it re-runs the pusher when its code changes. `reason` and
    `requested_by` (why and by whom the run was asked for) go into the release record's notes;
    set where no ML Metadata store records the run's request (a Kubeflow run's parameters).
    """
    if not is_blessed(model_blessing):
        return not_pushed(pushed_model, "the Evaluator did not bless the model")
    if not is_blessed(signature_verdict):
        reasons = signature_verdict.get_string_custom_property("reasons") or "[]"
        return not_pushed(pushed_model, "signature validation: " + "; ".join(json.loads(reasons)))
    verdict = read_verdict(signature_verdict.uri)
    request = ReleaseRequest(
        model_dir=os.path.join(model.uri, "Format-Serving"),
        model_name=model_name,
        channel=channel,
        metrics=overall_metrics(evaluation.uri),
        spans=spans_of(examples),
        git_commit=git_commit(),
        mlmd_ids={"model": model.id, "model_blessing": model_blessing.id,
                  "signature_verdict": signature_verdict.id, "evaluation": evaluation.id,
                  "examples": examples.id},
        blessed=True,
        batching=json.loads(batching_json) if batching_json else None,
        contract=verdict.contract,
        breaking_change_reason=verdict.allowed_breaking_reason,
        notes={k: v for k, v in (("reason", reason), ("requested_by", requested_by)) if v},
    )
    server = ServerConfig.from_json(serving_json)
    release = release_version(
        base_path, request, between_steps=ServerWait(server),
        lock_timeout=server.lock_timeout_seconds,
    )
    annotate_pushed_model(pushed_model, release, request.breaking_change_reason)
