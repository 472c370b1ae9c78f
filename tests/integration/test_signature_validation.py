"""Signature validation on real SavedModels trained on the penguin data: the probe in a fresh
process, a breaking change blocked and reported, and let through with a recorded reason."""

from __future__ import annotations

import json
import os

# Keras 2 (tf_keras), as everywhere in the project: before TensorFlow is first imported.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.pusher.component import keep_contract  # noqa: E402
from components.serving import read_state, release_version  # noqa: E402
from components.serving.contract import read_contract_file  # noqa: E402
from components.signature.component import SignatureValidator  # noqa: E402
from components.signature.validate import probe_model  # noqa: E402
from components.trainer.run_fn import train_and_export  # noqa: E402
from pipeline.config import config_to_dict, load_config  # noqa: E402
from tests.e2e.conftest import REPO  # noqa: E402

pytestmark = pytest.mark.e2e

SPAN = REPO / "data" / "penguins" / "span-2"
EVAL_GLOB = str(SPAN / "Split-eval" / "*.gz")
NO_ISLAND = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
             "year"]
REASON = "island is no longer collected; clients were told on 2024-05-01"
ISLAND_REMOVED = "predict_raw: input 'island' string[None] removed"


def train(export_dir: str, features: list[str] | None) -> str:
    cfg = config_to_dict(load_config())
    cfg["model"]["features"] = features
    train_and_export(
        tf.io.gfile.glob(str(SPAN / "Split-train" / "*.gz")), tf.io.gfile.glob(EVAL_GLOB),
        str(REPO / "data" / "schema" / "schema.pbtxt"), export_dir,
        {"model": cfg["model"], "trainer": cfg["trainer"]}, train_steps=20, eval_steps=2,
    )
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
    release = release_version(base, os.path.join(models["full"], "Format-Serving"), "penguin",
                              channel="stable", spans=[2], git_commit="unknown")
    report = validate(models["full"], base, out_dir=str(tmp_path_factory.mktemp("verdict")))
    keep_contract(base, report, release)
    assert read_state(base).labels == {"stable": 1}
    return base


def validate(model_uri: str, base: str, out_dir: str, examples: str | None = None,
             reason: str = "") -> dict:
    """Runs the TFX adapter's function; returns the report, with the artifact's properties."""
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
    report = validate(models["no_island"], stable_base, reason=REASON,
                      out_dir=str(tmp_path / "verdict"))
    assert report["_properties"]["blessed"] == 1 and report["_properties"]["reasons"] == []
    assert report["allowed_breaking_change"]["reason"] == REASON
    assert report["allowed_breaking_change"]["changes"] == [
        f"breaking change against the contract: {ISLAND_REMOVED}",
        f"breaking change against stable version 1: {ISLAND_REMOVED}",
    ]
    # Released (as the pusher does): the new contract replaces the old, with the reason.
    base = stable_base
    release = release_version(base, os.path.join(models["no_island"], "Format-Serving"),
                              "penguin", channel="canary", git_commit="unknown")
    keep_contract(base, report, release)
    contract, meta = read_contract_file(base)
    assert "island" not in contract.signatures["predict_raw"].inputs
    assert meta["version"] == release.version == 2 and meta["reason"] == REASON
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
