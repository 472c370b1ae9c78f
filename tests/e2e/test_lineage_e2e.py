"""`pipeline lineage` and `pipeline runs` on the real ML Metadata store an end-to-end run leaves:
one run on span 2 (a reason given), its version promoted with `pipeline release promote`; then
the exact chain behind the tag, the reverse answer for span 2 and for one of its files, the
runs, the formats, and an unknown tag. The store's shape is also the one bench/lineage.py
fills (bench/lineage_shape.json)."""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO, run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e

SPAN_2 = REPO / "data" / "penguins" / "span-2"
# Execution order of LocalDagRunner (the compiler's topological order), and what each outputs.
CHAIN = [
    ("ImportExampleGen", [("examples", "Examples")]),
    ("ImportSchemaGen", [("schema", "Schema")]),
    ("StatisticsGen", [("statistics", "ExampleStatistics")]),
    ("ExampleValidator", [("anomalies", "ExampleAnomalies")]),
    ("DataValidationGate", []),
    ("Trainer", [("model", "Model"), ("model_run", "ModelRun")]),
    ("StableBaseline", [("baseline", "Model")]),
    ("Evaluator", [("blessing", "ModelBlessing"), ("evaluation", "ModelEvaluation")]),
    ("SignatureValidator", [("verdict", "ModelBlessing")]),
    ("ServingPusher", [("pushed_model", "PushedModel")]),
]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A run on span 2 that pushed version 1, then promoted to stable."""
    tmp = tmp_path_factory.mktemp("lineage")
    overlay = write_overlay(tmp)
    proc, run = run_json("--config", str(overlay), "--span", "2", "--reason", "lineage e2e")
    assert proc.returncode == 0, run.get("error")
    assert run["pushed"]["version"] == 1 and run["pushed"]["new"]
    promote = run_cli("release", "promote", "canary", "--reason", "canary looked fine",
                      "--config", str(overlay))
    assert promote.returncode == 0, promote.stderr
    return tmp, str(overlay), run


def _json(*argv: str) -> dict:
    proc = run_cli(*argv)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_exact_chain_behind_the_tag(released):
    _, overlay, run = released
    tag = run["pushed"]["tag"]
    doc = _json("lineage", tag, "--format", "json", "--config", overlay)
    executions = {e["id"]: e for e in doc["executions"]}
    artifacts = {a["id"]: a for a in doc["artifacts"]}
    assert doc["run_id"] == run["run_id"]
    assert [(s["node"], [(o["key"], artifacts[o["artifact"]]["type"]) for o in s["outputs"]])
            for s in doc["steps"]] == CHAIN
    assert {executions[s["execution"]]["state"] for s in doc["steps"]} == {"succeeded"}
    assert {executions[s["execution"]]["run_id"] for s in doc["steps"]} == {run["run_id"]}
    # Every artifact was made by this run's own step.
    made_by = {o["artifact"]: s["execution"] for s in doc["steps"] for o in s["outputs"]}
    assert all(artifacts[a]["produced_by"] == e for a, e in made_by.items())
    # The data: span 2's files, with their sizes and content digests.
    files = sorted(p for p in SPAN_2.rglob("*") if p.is_file())
    assert [(f["name"], f["size"], f["sha256"]) for f in doc["data"]["files"]] == [
        (str(p.relative_to(SPAN_2.parent)), p.stat().st_size,
         hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]
    assert doc["data"]["spans"] == [2] and doc["data"]["recorded_by_run"] == run["run_id"]
    # Who asked, with what code and configuration.
    request = doc["request"]
    assert (request["reason"], request["trigger"], request["user"]) == (
        "lineage e2e", "run", getpass.getuser())
    provenance = request["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True) if shutil.which("git") else None
    expected = head.stdout.strip() if head is not None and head.returncode == 0 else None
    assert provenance["git_commit"] == (expected or os.environ.get("PIPELINE_GIT_COMMIT")
                                        or "unknown")
    assert provenance["config"]["data"]["span"] == 2
    assert provenance["config_sha256"] == hashlib.sha256(json.dumps(
        provenance["config"], sort_keys=True).encode()).hexdigest()
    # Evaluation, verdict, push and the promote.
    by_type = {}
    for s in doc["steps"]:
        for o in s["outputs"]:
            by_type[(s["node"], o["key"])] = artifacts[o["artifact"]]["properties"]
    assert json.loads(by_type[("Evaluator", "evaluation")]["metrics"]) == run["metrics"]
    assert by_type[("Evaluator", "blessing")]["blessed"] == 1
    assert by_type[("SignatureValidator", "verdict")]["signature_blessed"] == 1
    pushed = by_type[("ServingPusher", "pushed_model")]
    assert (pushed["pushed_version"], pushed["tag"]) == (1, tag)
    assert doc["focus"] == doc["pushed"]
    assert [(r["operation"], r["version"], r["actor"], r["reason"]) for r in doc["releases"]] == [
        ("promote", 1, getpass.getuser(), "canary looked fine")]
    trainer = next(executions[s["execution"]] for s in doc["steps"] if s["node"] == "Trainer")
    assert json.loads(trainer["properties"]["train_args"])["num_steps"] == 300


def test_what_serves_now_and_who_promoted_it_in_one_command(released):
    _, overlay, run = released
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.cli", "lineage",
                           "stable", "--config", overlay], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "tfx", "apache_beam")}
    out = proc.stdout
    assert out.startswith(f"lineage of stable: version 1 of {released[0] / 'serving' / 'penguin'}")
    assert f"run {run['run_id']}: asked by {getpass.getuser()}@" in out
    assert 'reason: "lineage e2e"' in out
    assert "span-2/Split-train/" in out and "settings: 300 steps, batch 32" in out
    assert f'promote   version 1 ({run["pushed"]["tag"]}) by {getpass.getuser()}: ' \
           '"canary looked fine"' in out


def test_the_reverse_question_for_the_span_and_a_file(released):
    _, overlay, run = released
    for data in ("2", str(next((SPAN_2 / "Split-train").iterdir()))):
        doc = _json("lineage", "--data", data, "--format", "json", "--config", overlay)
        assert [(m["run_id"], m["spans"]) for m in doc["models"]] == [(run["run_id"], [2])]
        assert doc["served_versions"] == [{
            "version": 1, "tag": run["pushed"]["tag"],
            "base_path": os.path.dirname(run["pushed"]["path"]), "labels": ["stable"]}]
    assert doc["runs"] == [run["run_id"]]


def test_runs_list_and_show(released):
    _, overlay, run = released
    runs = _json("runs", "list", "--json", "--config", overlay)["runs"]
    assert [(r["run_id"], r["status"], r["span"], r["pushed"]["version"], r["pushed"]["new"])
            for r in runs] == [(run["run_id"], "succeeded", 2, 1, True)]
    show = _json("runs", "show", run["run_id"], "--json", "--config", overlay)
    assert [(c["name"], c["status"], c["cached"]) for c in show["components"]] == [
        (c["name"], c["status"], c["cached"]) for c in sorted(
            run["components"], key=lambda c: [n for n, _ in CHAIN].index(c["name"]))]
    assert show["metrics"] == run["metrics"] and show["blessed"] is True
    assert show["pushed"]["tag"] == run["pushed"]["tag"]
    text = run_cli("runs", "show", run["run_id"], "--config", overlay)
    assert text.returncode == 0 and f"run {run['run_id']} of pipeline penguin: succeeded" \
        in text.stdout


def test_unknown_tag_is_one_line_and_exit_2(released):
    _, overlay, _ = released
    proc = run_cli("lineage", "canary-v9-20200101", "--config", overlay)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: 'canary-v9-20200101' is no label, tag, version or run")
    assert proc.stderr.count("\n") == 1


def test_dot_and_svg(released):
    tmp, overlay, run = released
    dot = run_cli("lineage", run["pushed"]["tag"], "--format", "dot", "--config", overlay)
    assert dot.returncode == 0 and dot.stdout.startswith("digraph lineage {")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz not installed (make setup installs it)")
    check = subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True)
    assert check.returncode == 0 and "<svg" in check.stdout, check.stderr
    svg = tmp / "stable.svg"
    proc = run_cli("lineage", "stable", "--output", str(svg), "--config", overlay)
    assert proc.returncode == 0, proc.stderr
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "ServingPusher" in text


def test_the_bench_fills_stores_of_this_shape(released):
    """bench/lineage.py writes runs shaped like bench/lineage_shape.json: a real run has that
    shape still (nodes, execution types, event keys, artifact types, run request)."""
    _, _, run = released
    from components.metadata import open_store

    spec = importlib.util.spec_from_file_location("bench_lineage", REPO / "bench" / "lineage.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    real = bench.shape_of(open_store(run["metadata"]["uri"]), "penguin", run["run_id"])
    committed = json.loads(bench.SHAPE_FILE.read_text())

    def outline(shape: dict) -> list:
        return [(n["node"], n["type"], n["inputs"],
                 [(o["key"], o["type"], sorted(o["custom_properties"])) for o in n["outputs"]])
                for n in shape["nodes"]]

    assert outline(real) == outline(committed)
    assert sorted(real["run_request"]) == sorted(committed["run_request"])
    assert [f["name"] for f in real["data_files"]] == [f["name"] for f in
                                                       committed["data_files"]]
