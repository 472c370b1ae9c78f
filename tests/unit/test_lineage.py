"""Lineage, runs and provenance against a hand-built ML Metadata store (tests/unit/lineage_store.py:
this pipeline's ten nodes as LocalDagRunner records them, cached executions included), and the
`pipeline lineage` / `pipeline runs` commands on it in fresh processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from components.metadata import (
    LineageNotFound,
    derived_from_file,
    derived_from_span,
    get_node_executions,
    get_run_detail,
    get_run_executions,
    get_run_requests,
    lineage_of_artifact,
    lineage_of_run,
    lineage_of_tag,
    lineage_of_version,
    list_runs,
    open_store,
)
from components.metadata.provenance import find_data_files
from tests.unit.lineage_store import NODES, LineageStore, span_files

REPO = Path(__file__).resolve().parents[2]
TAG1, TAG2 = "canary-v1-20261201", "canary-v2-20261201"


@pytest.fixture(scope="module")
def store_dir():
    """A directory for stores, in memory when the machine has /dev/shm: MLMD commits every
    write to SQLite with an fsync, 10x slower on disk here (3 s for five runs)."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix="test-lineage-", dir=parent)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def history(store_dir):
    """r1: span 1, pushed v1. r2: span 2, not blessed. r3: span 2 again (data cached), pushed
    v2. r4: everything cached. Then promote v1, promote v2, traffic, rollback to v1. r5: span 3,
    the Trainer fails. Read-only for the tests that share it."""
    ls = LineageStore(str(store_dir / "var" / "metadata.sqlite"), str(store_dir / "serving"))
    runs = {
        "r1": ls.run("r1", span=1, reason="first"),
        "r2": ls.run("r2", span=2, blessed=False),
        "r3": ls.run("r3", span=2, reason="new features"),
        "r4": ls.run("r4", span=2, train=False),
    }
    ls.release("promote", 1)
    ls.release("promote", 2)
    ls.release("traffic", 2)
    ls.release("rollback", 1, reason="latency")
    runs["r5"] = ls.run("r5", span=3, fail_at="Trainer")
    ls.runs = runs
    return ls


def _pushed_id(run) -> int:
    return run.outputs["ServingPusher"]["pushed_model"].id


# --- forward ---------------------------------------------------------------------------------


def test_a_tag_gives_the_chain_of_the_run_that_pushed_it(history):
    r2, r3 = history.runs["r2"], history.runs["r3"]
    lineage = lineage_of_tag(history.store, "penguin", TAG2)
    doc = lineage.to_json()
    assert lineage.run_id == "r3"
    assert [s.node for s in lineage.steps] == list(NODES)
    assert [s.execution for s in lineage.steps] == [r3.executions[n] for n in NODES]
    # r3 found the data nodes cached: their outputs name the execution of r2 that made them.
    examples = r3.outputs["ImportExampleGen"]["examples"].id
    assert lineage.artifacts[examples].produced_by == r2.executions["ImportExampleGen"]
    assert lineage.executions[r2.executions["ImportExampleGen"]].run_id == "r2"
    assert lineage.executions[r2.executions["ImportExampleGen"]].node == "ImportExampleGen"
    # ... and the model was trained in r3 itself.
    model = r3.outputs["Trainer"]["model"].id
    assert lineage.artifacts[model].produced_by == r3.executions["Trainer"]
    assert {a["type"] for a in doc["artifacts"]} == {
        "Examples", "Schema", "ExampleStatistics", "ExampleAnomalies", "Model", "ModelRun",
        "ModelBlessing", "ModelEvaluation", "PushedModel"}
    # The files are those the run that made the Examples (r2) recorded.
    assert [f.name for f in lineage.data_files] == [f.name for f in span_files("/d", 2)]
    assert lineage.data_recorded_by == "r2"
    assert doc["data"]["spans"] == [2]
    assert lineage.pushed == lineage.focus == [_pushed_id(r3)]
    assert [(r["operation"], r["version"]) for r in lineage.releases] == [
        ("promote", 2), ("traffic", 2)]
    assert lineage.request.reason == "new features"
    assert lineage.request.provenance.git_commit == "a" * 40
    assert lineage.other_pushes == []  # r4's pusher was cached: the same PushedModel
    step = {s.node: s for s in lineage.steps}
    assert ("model", model) in step["ServingPusher"].inputs
    assert step["DataValidationGate"].outputs == []


def test_a_version_and_its_release_operations(history):
    lineage = lineage_of_version(history.store, "penguin", history.base, 1)
    assert lineage.run_id == "r1"
    assert [(r["operation"], r["version"], r["actor"], r["reason"]) for r in lineage.releases] == [
        ("promote", 1, "grace", "canary looks good"), ("rollback", 1, "grace", "latency")]
    assert lineage.data_recorded_by == "r1"
    assert json.loads(json.dumps(lineage.to_json()))["run_id"] == "r1"  # JSON all the way


def test_a_run_of_cached_nodes_names_where_each_output_was_made(history):
    r2, r3, r4 = (history.runs[r] for r in ("r2", "r3", "r4"))
    lineage = lineage_of_run(history.store, "penguin", "r4")
    assert [lineage.executions[s.execution].state for s in lineage.steps] == ["cached"] * 10
    made_in = {lineage.artifacts[a].type + ":" + k: lineage.executions[
        lineage.artifacts[a].produced_by].run_id
        for s in lineage.steps for k, a in s.outputs}
    assert made_in == {
        "Examples:examples": "r2", "Schema:schema": "r1", "ExampleStatistics:statistics": "r2",
        "ExampleAnomalies:anomalies": "r2", "Model:model": "r3", "ModelRun:model_run": "r3",
        "Model:baseline": "r3", "ModelBlessing:blessing": "r3",
        "ModelEvaluation:evaluation": "r3", "ModelBlessing:verdict": "r3",
        "PushedModel:pushed_model": "r3"}
    assert lineage.pushed == [_pushed_id(r3)]
    assert r4.executions["Trainer"] not in {a.produced_by for a in lineage.artifacts.values()}


def test_an_artifact_gives_the_chain_of_the_run_that_made_it(history):
    r2 = history.runs["r2"]
    unpushed_model = r2.outputs["Trainer"]["model"].id
    lineage = lineage_of_artifact(history.store, "penguin", unpushed_model)
    assert lineage.run_id == "r2" and lineage.focus == [unpushed_model]
    assert lineage.pushed == [] and lineage.releases == []
    pushed = lineage_of_artifact(history.store, "penguin", _pushed_id(history.runs["r1"]))
    assert pushed.run_id == "r1"


@pytest.mark.parametrize("ask, message", [
    (lambda s, b: lineage_of_tag(s, "penguin", "canary-v9-20261201"),
     "no version was released with tag 'canary-v9-20261201'"),
    (lambda s, b: lineage_of_version(s, "penguin", b, 9), "version 9 of"),
    (lambda s, b: lineage_of_run(s, "penguin", "nope"), "no run 'nope'"),
    (lambda s, b: lineage_of_artifact(s, "penguin", 99999), "no artifact 99999"),
])
def test_what_is_not_recorded_is_one_clear_error(history, ask, message):
    with pytest.raises(LineageNotFound, match=message.replace("(", r"\(")):
        ask(history.store, history.base)


# --- reverse ---------------------------------------------------------------------------------


def test_models_and_versions_derived_from_a_span(history):
    r1, r2, r3 = (history.runs[r] for r in ("r1", "r2", "r3"))
    examples, models = derived_from_span(history.store, "penguin", 2)
    assert examples == [r2.outputs["ImportExampleGen"]["examples"].id]
    assert [(m.model, m.run_id, m.spans) for m in models] == [
        (r2.outputs["Trainer"]["model"].id, "r2", [2]),
        (r3.outputs["Trainer"]["model"].id, "r3", [2])]
    assert models[0].pushed == []
    assert [(p["version"], p["tag"], p["base_path"]) for p in models[1].pushed] == [
        (2, TAG2, history.base)]
    _, first = derived_from_span(history.store, "penguin", 1)
    assert [(m.run_id, [p["version"] for p in m.pushed]) for m in first] == [("r1", [1])]
    examples, none = derived_from_span(history.store, "penguin", 3)  # the Trainer failed
    assert len(examples) == 1 and none == []
    with pytest.raises(LineageNotFound, match="no Examples of span 9"):
        derived_from_span(history.store, "penguin", 9)


def test_models_derived_from_a_file_by_name_content_or_path(history):
    train = span_files(history.data_root, 2)[1]
    by_name = derived_from_file(history.store, "penguin", name=train.name)
    by_content = derived_from_file(history.store, "penguin", sha256=train.sha256)
    by_path = derived_from_file(history.store, "penguin", path=train.path)
    files, runs, examples, models = by_name
    assert [f.name for f in files] == [train.name]
    assert runs == ["r2", "r3", "r4"]
    assert [m.run_id for m in models] == ["r2", "r3"]
    for other in (by_content, by_path):
        assert other[1:3] == (runs, examples)
        assert [m.to_json() for m in other[3]] == [m.to_json() for m in models]
    with pytest.raises(LineageNotFound, match="no run recorded reading"):
        derived_from_file(history.store, "penguin", name="span-7/x.gz")


def test_a_file_read_again_is_one_artifact(history):
    name = span_files(history.data_root, 2)[0].name
    assert len(find_data_files(history.store, name=name)) == 1  # read by r2, r3 and r4


# --- runs ------------------------------------------------------------------------------------


def test_runs_newest_first_with_status_span_and_push(history):
    runs = list_runs(history.store, "penguin")
    rows = [(r.run_id, r.status, r.span, r.cached, r.executions,
             r.pushed and (r.pushed["version"], r.pushed["new"])) for r in runs]
    assert rows == [
        ("r5", "failed", 3, 1, 6, None),  # ImportSchemaGen cached, the rest ran
        ("r4", "succeeded", 2, 10, 10, (2, False)),
        ("r3", "succeeded", 2, 5, 10, (2, True)),
        ("r2", "succeeded", 2, 1, 10, None),
        ("r1", "succeeded", 1, 0, 10, (1, True)),
    ]
    assert runs[2].request.reason == "new features"
    assert [r.run_id for r in list_runs(history.store, "penguin", limit=2)] == ["r5", "r4"]
    assert list_runs(history.store, "other-pipeline") == []


def test_one_run_in_detail(history):
    detail = get_run_detail(history.store, "penguin", "r3")
    doc = detail.to_json()
    assert [(c["name"], c["status"]) for c in doc["components"]] == [
        (n, "cached" if n in ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen",
                              "ExampleValidator", "DataValidationGate") else "succeeded")
        for n in NODES]
    assert doc["metrics"] == {"accuracy": 0.95}
    assert doc["blessed"] is True and doc["signature_blessed"] is True
    assert doc["pushed"]["version"] == 2 and doc["pushed"]["tag"] == TAG2
    assert doc["provenance"]["data_files"][1]["name"] == "span-2/Split-train/data.tfrecord.gz"
    not_blessed = get_run_detail(history.store, "penguin", "r2").to_json()
    assert not_blessed["blessed"] is False and not_blessed["pushed"] is None
    assert get_run_detail(history.store, "penguin", "nope") is None


def test_the_metrics_are_recorded_without_touching_tfx_artifacts(store_dir):
    """TFX's cache key of a node hashes its input artifacts whole: the run's metrics go on its
    request, and the ModelEvaluation (an input of the pusher) stays as the Evaluator left it."""
    from types import SimpleNamespace

    from pipeline.app.run import _record_metrics

    ls = LineageStore(str(store_dir / "metrics.sqlite"), str(store_dir / "serving"))
    ls.record_metrics = False
    run = ls.run("m1", span=1)
    evaluation = run.outputs["Evaluator"]["evaluation"].id
    [before] = ls.store.get_artifacts_by_id([evaluation])
    cfg = SimpleNamespace(metadata_target=ls.path, pipeline_name="penguin")
    _record_metrics(cfg, SimpleNamespace(run_id="m1", metrics={"loss": 0.25}))
    [after] = ls.store.get_artifacts_by_id([evaluation])
    assert after == before
    assert get_run_requests(ls.store, ["m1"])["m1"].evaluation == {
        "artifact": evaluation, "metrics": {"loss": 0.25}}
    lineage = lineage_of_run(ls.store, "penguin", "m1")
    assert json.loads(lineage.artifacts[evaluation].properties["metrics"]) == {"loss": 0.25}
    assert get_run_detail(ls.store, "penguin", "m1").metrics == {"loss": 0.25}


def test_node_executions_of_several_runs_match_each_run(history):
    ids = {r: history.store.get_context_by_type_and_name("pipeline_run", r).id
           for r in ("r1", "r3", "r5")}
    together = get_node_executions(history.store, "penguin", list(ids.values()))
    for run_id, context_id in ids.items():
        alone = get_run_executions(history.store, "penguin", run_id)
        assert {n: e.id for n, e in together[context_id].items()} == {
            n: e.id for n, e in alone.items()}
        assert {n: e.id for n, e in alone.items()} == history.runs[run_id].executions


def test_requests_with_provenance_in_one_batch(history):
    requests = get_run_requests(history.store, ["r1", "r3", "missing"])
    assert sorted(requests) == ["r1", "r3"]
    p = requests["r3"].provenance
    assert (p.git_commit, p.git_dirty, p.span, p.data_root) == ("a" * 40, False, 2,
                                                               history.data_root)
    assert [f.to_json() | {"artifact_id": 0} for f in p.data_files] == [
        f.to_json() for f in span_files(history.data_root, 2)]


class Counting:
    """A MetadataStore that counts the calls made to it."""

    def __init__(self, store):
        self.store, self.calls = store, 0

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls += 1
            return attr(*args, **kwargs)

        return call


def test_the_number_of_queries_does_not_grow_with_the_runs(store_dir):
    """Each question is a fixed number of batched queries: asked of a store with 3 runs and of
    one with 9 (6 more, on other spans, with releases), it makes the same calls."""
    counts = []
    for extra in (0, 6):
        ls = LineageStore(str(store_dir / f"s{extra}.sqlite"), str(store_dir / "serving"))
        ls.run("a1", span=1)
        ls.run("a2", span=1, train=False)
        ls.run("a3", span=2)
        for i in range(extra):
            ls.run(f"b{i}", span=10 + i)
            ls.release("promote", ls.versions)
        ls.release("promote", 1)
        store = Counting(open_store(ls.path))
        made = []
        for ask in (lambda s: lineage_of_tag(s, "penguin", TAG1),
                    lambda s: lineage_of_run(s, "penguin", "a2"),
                    lambda s: derived_from_span(s, "penguin", 1),
                    lambda s: derived_from_file(s, "penguin",
                                                name=span_files("/d", 1)[0].name),
                    lambda s: list_runs(s, "penguin", limit=3),
                    lambda s: get_run_detail(s, "penguin", "a2")):
            store.calls = 0
            ask(store)
            made.append(store.calls)
        counts.append(made)
    assert counts[0] == counts[1], counts


# --- provenance ------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_git_state_commit_and_dirty(tmp_path):
    from pipeline.provenance import git_state

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_state(repo, env={}) == (head, False)
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo, env={}) == (head, True)
    (repo / "a.py").write_text("x = 1\n")
    (repo / "new.py").write_text("")
    assert git_state(repo, env={}) == (head, True)  # an untracked file is a change too


def test_git_state_outside_a_repository(tmp_path):
    from pipeline.provenance import git_state

    assert git_state(tmp_path, env={}) == ("unknown", None)
    env = {"PIPELINE_GIT_COMMIT": "b" * 40, "PIPELINE_GIT_DIRTY": "false"}
    assert git_state(tmp_path, env=env) == ("b" * 40, False)
    git = tmp_path / ".git"  # no git binary answers for it: HEAD is read from the files
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"{'c' * 40} refs/heads/main\n")
    assert git_state(tmp_path, env={}) == ("c" * 40, None)


def test_no_secret_in_the_recorded_config():
    from pipeline.provenance import REDACTED, redact

    config = {"metadata": {"kind": "mysql", "user": "mlmd", "password_env": "MLMD_PW",
                           "password_file": "/run/secrets/pw", "tls": {"key": "/k.pem"}},
              "kubeflow": {"token": "abc", "host": None}, "list": [{"secret": "s"}]}
    out = redact(config)
    assert out["metadata"] == {"kind": "mysql", "user": "mlmd", "password_env": REDACTED,
                               "password_file": REDACTED, "tls": {"key": "/k.pem"}}
    assert out["kubeflow"] == {"token": REDACTED, "host": None}
    assert out["list"] == [{"secret": REDACTED}]


def test_run_provenance_of_the_sample_data(tmp_path):
    from pipeline.config import load_config
    from pipeline.provenance import config_digest, run_provenance

    overlay = tmp_path / "o.yaml"
    overlay.write_text(f"work_dir: {tmp_path / 'var'}\ndata: {{span: 2}}\n")
    cfg = load_config("local", str(overlay), check_schema=False)
    p = run_provenance(cfg)
    root = REPO / "data" / "penguins"
    expected = sorted(str(f.relative_to(root)) for f in (root / "span-2").rglob("*.gz"))
    assert [f.name for f in p.data_files] == expected
    for f in p.data_files:
        assert f.size == os.path.getsize(f.path)
        assert f.sha256 == hashlib.sha256(Path(f.path).read_bytes()).hexdigest()
    assert p.span == 2 and p.data_root == str(root)
    assert p.config["data"]["span"] == 2 and p.config_sha256 == config_digest(p.config)
    assert len(p.git_commit) == 40 or p.git_commit == "unknown"
    assert run_provenance(cfg, with_data=False).data_files == ()


# --- the commands, in fresh processes --------------------------------------------------------


def run_cli(*argv: str, cwd=REPO) -> tuple[int, str, str, list[str]]:
    """`pipeline.cli.main(argv)` in a fresh interpreter: code, stdout, stderr, and the heavy
    modules it imported."""
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from pipeline.cli import main
        rc = main({list(argv)!r})
        heavy = sorted({{"tensorflow", "tfx", "apache_beam", "tensorflow_model_analysis"}}
                       & set(sys.modules))
        print("@@" + json.dumps([rc, heavy]), file=sys.stderr)
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    err, _, tail = proc.stderr.rpartition("@@")
    rc, heavy = json.loads(tail)
    return rc, proc.stdout, err, heavy


@pytest.fixture(scope="module")
def overlay(history, store_dir):
    from components.serving.labels import LabelState, write_state

    os.makedirs(history.base, exist_ok=True)
    write_state(history.base, LabelState(model_name="penguin", labels={"stable": 1,
                                                                       "canary": 2}))
    path = store_dir / "overlay.yaml"
    path.write_text(f"metadata_path: {history.path}\npusher: {{base_path: {history.base}}}\n"
                    f"work_dir: {store_dir / 'var'}\n")
    return str(path)


def test_lineage_of_the_stable_version_as_text(overlay):
    rc, out, err, heavy = run_cli("lineage", "stable", "--config", overlay)
    assert (rc, err, heavy) == (0, "", [])
    lines = out.splitlines()
    assert lines[0].startswith("lineage of stable: version 1 of ")
    assert "labelled stable now" in lines[0]
    assert 'run r1: asked by ada@lab (run) at ' in out and 'reason: "first"' in out
    assert "span-1/Split-train/data.tfrecord.gz" in out
    assert "settings: 300 steps, batch 32, 2 workers, communication ring" in out
    assert "-> ModelEvaluation" in out and "accuracy 0.95" in out
    assert "rollback  version 1 (canary-v1-20261201) by grace: \"latency\"" in out


def test_lineage_formats_json_and_dot(overlay, tmp_path):
    rc, out, _, heavy = run_cli("lineage", TAG2, "--format", "json", "--config", overlay)
    assert rc == 0 and heavy == []
    doc = json.loads(out)
    assert doc["run_id"] == "r3" and [s["node"] for s in doc["steps"]] == list(NODES)
    assert doc["query"] == {"target": TAG2, "kind": "tag or run"}
    rc, dot, _, _ = run_cli("lineage", TAG2, "--format", "dot", "--config", overlay)
    assert rc == 0 and dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    for step in doc["steps"]:
        assert f"  e{step['execution']} [shape=box" in dot
    if shutil.which("dot"):
        check = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert check.returncode == 0 and "<svg" in check.stdout, check.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (make setup)")
def test_lineage_as_an_image(overlay, tmp_path):
    svg, png = tmp_path / "chain.svg", tmp_path / "chain.png"
    assert run_cli("lineage", "version:2", "--output", str(svg), "--config", overlay)[0] == 0
    assert run_cli("lineage", "canary", "--output", str(png), "--config", overlay)[0] == 0
    assert "<svg" in svg.read_text() and "ServingPusher" in svg.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_reverse_question_and_the_runs(overlay):
    rc, out, _, heavy = run_cli("lineage", "--data", "2", "--format", "json", "--config",
                                overlay)
    assert rc == 0 and heavy == []
    doc = json.loads(out)
    assert [m["run_id"] for m in doc["models"]] == ["r2", "r3"]
    assert doc["served_versions"] == [{"version": 2, "tag": TAG2, "base_path": doc["models"][
        1]["pushed"][0]["base_path"], "labels": ["canary"]}]
    rc, out, _, _ = run_cli("lineage", "--data", "span-1/Split-eval/data.tfrecord.gz",
                            "--config", overlay)
    assert rc == 0 and "read by run r1" in out and "served versions derived from it: 1 (" \
        f"{TAG1}, stable)" in out
    rc, out, _, heavy = run_cli("runs", "list", "--limit", "3", "--json", "--config", overlay)
    assert rc == 0 and heavy == []
    assert [r["run_id"] for r in json.loads(out)["runs"]] == ["r5", "r4", "r3"]
    rc, out, _, _ = run_cli("runs", "show", "r5", "--config", overlay)
    assert rc == 0 and "run r5 of pipeline penguin: failed" in out
    assert "Trainer" in out and "failed" in out and "Evaluator           not run" in out


@pytest.mark.parametrize("argv, message", [
    (["lineage", "canary-v7-20261201"], "'canary-v7-20261201' is no label, tag, version or "
     "run id of pipeline penguin"),
    (["lineage", "7"], "version 7 of"),
    (["lineage", "artifact:99999"], "no artifact 99999"),
    (["lineage", "--data", "9"], "no Examples of span 9"),
    (["runs", "show", "nope"], "no run 'nope' of pipeline penguin"),
    (["lineage"], "give a TARGET"),
    (["lineage", "stable", "--output", "x.pdf"], "--output x.pdf: the name must end in"),
    (["lineage", "--data", "2", "--format", "dot"], "--data answers as text or json"),
])
def test_unknown_or_bad_requests_are_one_line_and_exit_2(overlay, argv, message):
    rc, out, err, _ = run_cli(*argv, "--config", overlay)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_no_store_yet_is_refused(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text(f"work_dir: {tmp_path / 'var'}\n")
    rc, _, err, _ = run_cli("runs", "list", "--config", str(path))
    assert rc == 2 and "no ML Metadata store at" in err
