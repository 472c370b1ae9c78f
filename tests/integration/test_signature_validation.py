"""Signature validation on real SavedModels trained on the penguin data: the probe in a fresh
process, a breaking change blocked and reported, and let through with a recorded reason."""

from __future__ import annotations

import json
import os
import re

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.serving import (  # noqa: E402
    ReleaseRequest,
    read_contract,
    read_releases,
    read_state,
    release_version,
)
from components.serving.settings import ServerConfig
from components.signature.component import SignatureValidator  # noqa: E402
from components.signature.validate import probe_model, read_verdict  # noqa: E402
from components.trainer.run_fn import train_and_export  # noqa: E402
from components.trainer.settings import TrainJob  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from tests.e2e.conftest import REPO  # noqa: E402

pytestmark = pytest.mark.e2e

SPAN = REPO / "data" / "penguins" / "span-2"
EVAL_GLOB = str(SPAN / "Split-eval" / "*.gz")
NO_ISLAND = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
             "year"]
REASON = "island is no longer collected; clients were told on 2024-05-01"
ISLAND_REMOVED = "predict_raw: input 'island' string[None] removed"


def train(export_dir: str, features: list[str] | None) -> str:
    cfg = load_config(overrides={"model": {"features": features}})
    train_and_export(TrainJob(
        train_files=tf.io.gfile.glob(str(SPAN / "Split-train" / "*.gz")),
        eval_files=tf.io.gfile.glob(EVAL_GLOB),
        schema_path=str(REPO / "data" / "schema" / "schema.pbtxt"),
        serving_model_dir=export_dir,
        model=cfg.model, trainer=cfg.trainer, train_steps=20, eval_steps=2,
    ))
    return export_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two Model artifact directories: every feature, and every feature but island."""
    root = tmp_path_factory.mktemp("models")
    for name, features in (("full", None), ("no_island", NO_ISLAND)):
        train(str(root / name / "Format-Serving"), features)
    return {"full": str(root / "full"), "no_island": str(root / "no_island")}


@pytest.fixture(scope="module")
def examples_uri(tmp_path_factory):
    """An Examples artifact directory with the eval split, laid out as ImportExampleGen does."""
    root = tmp_path_factory.mktemp("examples")
    (root / "Split-eval").mkdir()
    for src in SPAN.glob("Split-eval/*.gz"):
        (root / "Split-eval" / f"data_tfrecord-{src.name}.gz").write_bytes(src.read_bytes())
    return str(root)


@pytest.fixture(scope="module")
def stable_base(tmp_path_factory, models):
    """A base path where the full model is released and labelled stable, with its contract."""
    base = str(tmp_path_factory.mktemp("serving") / "penguin")
    verdict_dir = str(tmp_path_factory.mktemp("verdict"))
    validate(models["full"], base, out_dir=verdict_dir)
    release_version(base, ReleaseRequest(
        model_dir=os.path.join(models["full"], "Format-Serving"), model_name="penguin",
        channel="stable", spans=[2],
        git_commit="unknown", contract=read_verdict(verdict_dir).contract,
    ))
    assert read_state(base).labels == {"stable": 1}
    assert read_contract(base).version == 1
    return base


def run_validator(model_uri: str, base: str, out_dir: str, examples: str | None = None,
                  reason: str = ""):
    """Runs the TFX adapter's function; returns the verdict artifact."""
    model = standard_artifacts.Model()
    model.uri = model_uri
    examples_artifact = standard_artifacts.Examples()
    examples_artifact.uri = examples or str(SPAN)
    verdict = standard_artifacts.ModelBlessing()
    verdict.uri = out_dir
    SignatureValidator.test_call(
        model=model, examples=examples_artifact, verdict=verdict, base_path=base,
        contract_json="", allow_breaking_reason=reason, sample_size=32,
    )
    return verdict


def validate(model_uri: str, base: str, out_dir: str, examples: str | None = None,
             reason: str = "") -> dict:
    """Runs the TFX adapter's function; returns the report, with the artifact's properties."""
    verdict = run_validator(model_uri, base, out_dir, examples, reason)
    with open(os.path.join(verdict.uri, "report.json")) as f:
        report = json.load(f)
    report["_properties"] = {
        "blessed": verdict.get_int_custom_property("blessed"),
        "signature_blessed": verdict.get_int_custom_property("signature_blessed"),
        "reasons": json.loads(verdict.get_string_custom_property("reasons")),
    }
    return report


def test_probe_loads_the_model_in_a_fresh_process_and_times_it(models):
    report = probe_model(os.path.join(models["full"], "Format-Serving"), EVAL_GLOB, 32)
    assert report["pid"] != os.getpid()
    assert report["problems"] == []
    sigs = report["contract"]["signatures"]
    assert sorted(sigs) == ["predict_raw", "serving_default"]
    assert sigs["serving_default"]["inputs"] == {"examples": {"dtype": "string",
                                                              "shape": [None]}}
    assert sigs["serving_default"]["outputs"] == {
        "class_id": {"dtype": "int64", "shape": [None]},
        "probabilities": {"dtype": "float32", "shape": [None, 3]},
    }
    assert "island" in sigs["predict_raw"]["inputs"]
    assert report["outputs"]["probabilities"] == {"dtype": "float32", "finite": True,
                                                  "shape": [32, 3]}
    assert report["outputs"]["class_id"]["shape"] == [32]
    assert report["sample_size"] == 32
    assert report["load_seconds"] > 0
    latency = report["latency"]
    assert latency["batch_size"] == 32 and latency["repeats"] >= 30
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]


def test_first_release_is_blessed_and_the_report_has_timings(models, examples_uri, tmp_path):
    report = validate(models["full"], str(tmp_path / "empty-base"), examples=examples_uri,
                      out_dir=str(tmp_path / "verdict"))
    assert report["_properties"] == {"blessed": 1, "signature_blessed": 1, "reasons": []}
    assert report["blessed"] is True
    assert report["contract_source"].startswith("none")
    assert report["candidate"]["sample_size"] == 32  # read from <examples>/Split-eval/*.gz
    assert report["load_seconds"] > 0 and report["p50_ms"] > 0 and report["p99_ms"] > 0


def test_breaking_change_is_blocked_and_reported(models, stable_base, tmp_path):
    report = validate(models["no_island"], stable_base, out_dir=str(tmp_path / "verdict"))
    props = report["_properties"]
    assert props["blessed"] == 0 and props["signature_blessed"] == 0
    assert props["reasons"] == [
        f"breaking change against the contract: {ISLAND_REMOVED}",
        f"breaking change against stable version 1: {ISLAND_REMOVED}",
    ]
    assert report["contract_diff"]["breaking"] == [ISLAND_REMOVED]
    assert report["stable"]["version"] == 1
    assert report["allowed_breaking_change"] is None
    # The model itself is fine: it ran on the examples.
    assert report["candidate"]["problems"] == []


def test_allowed_breaking_change_passes_and_the_reason_is_recorded(models, stable_base,
                                                                   tmp_path):
    verdict_dir = str(tmp_path / "verdict")
    report = validate(models["no_island"], stable_base, reason=REASON, out_dir=verdict_dir)
    assert report["_properties"]["blessed"] == 1 and report["_properties"]["reasons"] == []
    assert report["allowed_breaking_change"]["reason"] == REASON
    assert report["allowed_breaking_change"]["changes"] == [
        f"breaking change against the contract: {ISLAND_REMOVED}",
        f"breaking change against stable version 1: {ISLAND_REMOVED}",
    ]
    # Released (as the pusher does): the new contract replaces the old, with the reason.
    base = stable_base
    verdict = read_verdict(verdict_dir)
    release = release_version(base, ReleaseRequest(
        model_dir=os.path.join(models["no_island"], "Format-Serving"), model_name="penguin",
        channel="canary",
        git_commit="unknown", contract=verdict.contract,
        breaking_change_reason=verdict.allowed_breaking_reason,
    ))
    kept = read_contract(base)
    assert "island" not in kept.contract.signatures["predict_raw"].inputs
    assert kept.version == release.version == 2 and kept.reason == REASON
    assert release.notes == {"breaking_change_reason": REASON}
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(open(os.path.join(base, "models.config")).read(), config)
    [model] = config.model_config_list.config
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}


def test_model_with_non_finite_outputs_is_not_blessed_even_with_a_reason(tmp_path):
    class Broken(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            n = tf.shape(examples)[0]
            return {"probabilities": tf.fill([n, 3], float("nan"))}

    module = Broken()
    tf.saved_model.save(module, str(tmp_path / "broken" / "Format-Serving"),
                        signatures={"serving_default": module.serve})
    report = validate(str(tmp_path / "broken"), str(tmp_path / "base"), reason="anything",
                      out_dir=str(tmp_path / "verdict"))
    assert report["_properties"]["blessed"] == 0
    assert report["_properties"]["reasons"] == [
        "serving_default: output 'probabilities' has NaN or infinite values on 32 evaluation "
        "examples"
    ]


def test_pusher_releases_with_the_verdicts_contract_and_annotates_the_pushed_model(
        models, tmp_path, monkeypatch):
    from components.pusher import component as pusher

    monkeypatch.setattr(pusher, "overall_metrics", lambda uri: {"accuracy": 0.9})
    base = str(tmp_path / "serving" / "penguin")
    model = standard_artifacts.Model()
    model.uri = models["full"]
    blessing, evaluation = standard_artifacts.ModelBlessing(), standard_artifacts.ModelEvaluation()
    examples = standard_artifacts.Examples()
    examples.set_int_custom_property("span", 2)
    verdict = run_validator(models["full"], base, str(tmp_path / "verdict"))

    def push(evaluator_blessed: int):
        blessing.set_int_custom_property("blessed", evaluator_blessed)
        pushed = standard_artifacts.PushedModel()
        pusher.ServingPusher.test_call(
            model=model, model_blessing=blessing, signature_verdict=verdict,
            evaluation=evaluation, examples=examples, pushed_model=pushed, base_path=base,
            model_name="penguin", channel="canary", batching_json="",
            # No TF Serving reads this base path: nothing to wait for between label steps.
            serving_json=ServerConfig(poll_seconds=0).to_json(),
        )
        return {k: getattr(v, v.WhichOneof("value"))
                for k, v in pushed.mlmd_artifact.custom_properties.items()}

    assert push(0) == {"pushed": 0,
                       "not_pushed_reason": "the Evaluator did not bless the model"}
    assert not os.path.exists(base)
    props = push(1)
    tag = props.pop("tag")
    assert re.fullmatch(r"canary-v1-\d{8}", tag)
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", props.pop("git_commit"))
    assert props.pop("content_hash") == read_releases(base)[0].content_hash
    assert props.pop("pushed_at") == read_releases(base)[0].pushed_at
    assert props == {
        "pushed": 1, "pushed_version": 1, "pushed_destination": os.path.join(base, "1"),
        "reused_existing_version": 0, "channel": "canary", "model_name": "penguin",
        "metrics": '{"accuracy": 0.9}', "spans": "[2]", "release_number": 1, "blessed": 1,
        "mlmd_ids": json.dumps({"evaluation": 0, "examples": 0, "model": 0,
                                "model_blessing": 0, "signature_verdict": 0}),
        "breaking_change_reason": "",
    }
    kept = read_contract(base)
    assert kept.version == 1 and kept.contract == read_verdict(verdict.uri).contract
