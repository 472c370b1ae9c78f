"""The application layer around a run (pipeline/app/run.py) and `pipeline run`'s output, with a
runner that does what LocalDagRunner does without TFX: the "Component X is running/finished."
log lines and, for each node, the contexts, execution and output artifact TFX writes to a real
SQLite ML Metadata store; real span folders; a real run log and run record."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from absl import logging as absl_logging
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from components.data_check import DataCheckError
from pipeline.app.progress import ProgressHandler
from pipeline.app.run import run_pipeline
from pipeline.build import NODE_ORDER
from pipeline.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
NCCL_ERROR = ("trainer.distribution.communication: nccl needs a GPU, none is visible "
              "(use ring or auto)")


class FakeTfx:
    """A runner: for each node, TFX's log lines and MLMD records (state COMPLETE or CACHED);
    `fail_in` raises `error` once that node is running."""

    def __init__(self, nodes: dict[str, str], *, fail_in: str = "",
                 error: BaseException | None = None):
        self.nodes, self.fail_in, self.error = nodes, fail_in, error
        self.calls: list[str] = []

    def __call__(self, cfg, run_id: str) -> None:
        self.calls.append(run_id)
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = cfg.resolved_metadata_path
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        store = metadata_store.MetadataStore(config)
        run_type = store.put_context_type(pb.ContextType(name="pipeline_run"))
        node_type = store.put_context_type(pb.ContextType(name="node"))
        [run_ctx] = store.put_contexts([pb.Context(type_id=run_type, name=run_id)])
        for node, state in self.nodes.items():
            absl_logging.info("Component %s is running.", node)
            if node == self.fail_in:
                raise self.error
            name = f"{cfg.pipeline_name}.{node}"
            ctx = store.get_context_by_type_and_name("node", name)
            node_ctx = ctx.id if ctx else store.put_contexts(
                [pb.Context(type_id=node_type, name=name)])[0]
            [execution] = store.put_executions([pb.Execution(
                type_id=store.put_execution_type(pb.ExecutionType(name=node)),
                last_known_state=getattr(pb.Execution, state))])
            uri = Path(cfg.resolved_pipeline_root) / node / "output" / str(execution)
            uri.mkdir(parents=True)
            [artifact] = store.put_artifacts([pb.Artifact(
                type_id=store.put_artifact_type(pb.ArtifactType(name="Output")), uri=str(uri))])
            store.put_events([pb.Event(artifact_id=artifact, execution_id=execution,
                                       type=pb.Event.OUTPUT)])
            store.put_attributions_and_associations([], [
                pb.Association(context_id=c, execution_id=execution)
                for c in (run_ctx, node_ctx)])
            absl_logging.info("Component %s is finished.", node)


@pytest.fixture(autouse=True)
def restore_logging():
    """A run sends the process's logging to its log file; put the test process's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    verbosity = absl_logging.get_verbosity()
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    absl_logging.set_verbosity(verbosity)


@pytest.fixture
def overlay(tmp_path) -> Path:
    shutil.copytree(REPO / "data" / "penguins", tmp_path / "data")
    path = tmp_path / "overlay.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "work_dir": str(tmp_path / "var"),
        "data": {"root": str(tmp_path / "data"),
                 "schema": str(REPO / "data" / "schema" / "schema.pbtxt")},
        "pusher": {"base_path": str(tmp_path / "serving")},
    }))
    return path


def config(overlay: Path, **overrides):
    return load_config("local", str(overlay), overrides)


def test_a_run_reports_progress_with_states_from_metadata_and_keeps_a_log(overlay):
    cfg = config(overlay)
    runner = FakeTfx({"ImportExampleGen": "COMPLETE", "StatisticsGen": "CACHED"})
    events = []
    result = run_pipeline(cfg, runner, on_progress=lambda *e: events.append(e))
    assert result.status == "succeeded" and result.error is None
    assert runner.calls == [result.run_id] and result.span == 2
    assert [(name, event, state) for name, event, _, state in events] == [
        ("ImportExampleGen", "running", "running"), ("ImportExampleGen", "finished", "succeeded"),
        ("StatisticsGen", "running", "running"), ("StatisticsGen", "finished", "cached")]
    by_name = {c.name: c for c in result.components}
    assert list(by_name) == NODE_ORDER
    assert (by_name["ImportExampleGen"].status, by_name["StatisticsGen"].status,
            by_name["Trainer"].status) == ("succeeded", "cached", "not run")
    assert result.log_file == str(overlay.parent / "var" / "logs" / f"{result.run_id}.log")
    assert "Component StatisticsGen is finished." in Path(result.log_file).read_text()
    record = json.loads((Path(cfg.resolved_pipeline_root) / "last_run.json").read_text())
    assert record["run_id"] == result.run_id
    assert not any(isinstance(h, ProgressHandler) for h in logging.getLogger().handlers)


def test_an_unchanged_rerun_reuses_the_last_run_and_full_goes_to_the_runner(overlay):
    cfg = config(overlay)
    runner = FakeTfx({"ImportExampleGen": "COMPLETE", "Trainer": "COMPLETE"})
    first = run_pipeline(cfg, runner)
    second = run_pipeline(cfg, runner)
    assert second.status == "succeeded" and second.up_to_date_with == first.run_id
    assert runner.calls == [first.run_id]
    assert [(c.name, c.status) for c in second.components] == [
        (c.name, "cached") for c in first.components]
    assert len(second.components) == len(NODE_ORDER)
    assert f"up to date with run {first.run_id}" in Path(second.log_file).read_text()
    # Each run's lines in its own log only.
    assert second.run_id not in Path(first.log_file).read_text()
    third = run_pipeline(cfg, runner, full=True)
    assert runner.calls == [first.run_id, third.run_id] and third.up_to_date_with is None


def test_a_failed_component_is_named_in_one_error_line(overlay):
    cfg = config(overlay)
    runner = FakeTfx({"ImportExampleGen": "COMPLETE", "Trainer": "COMPLETE"}, fail_in="Trainer",
                     error=ValueError("loss is nan\nsecond line"))
    result = run_pipeline(cfg, runner)
    assert result.status == "failed"
    assert result.error == "Trainer: ValueError: loss is nan"
    statuses = {c.name: c.status for c in result.components}
    assert (statuses["ImportExampleGen"], statuses["Trainer"]) == ("succeeded", "failed")
    log = Path(result.log_file).read_text()
    assert f"run {result.run_id} failed:" in log and "Traceback" in log
    assert not (Path(cfg.resolved_pipeline_root) / "last_run.json").exists()


def test_nccl_without_a_gpu_stops_before_the_runner_naming_the_file(overlay, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    overlay.write_text(json.dumps({**json.loads(overlay.read_text()),
                                   "trainer": {"distribution": {"communication": "nccl"}}}))
    cfg = config(overlay)
    runner = FakeTfx({})
    result = run_pipeline(cfg, runner)
    assert runner.calls == []
    assert result.status == "failed"
    assert result.error == f"{overlay}: {NCCL_ERROR}"


def test_a_bad_input_file_stops_before_the_runner_naming_the_file(overlay):
    cfg = config(overlay)
    bad = sorted((overlay.parent / "data" / "span-2" / "Split-eval").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:-7])  # truncated: a copy cut short
    runner = FakeTfx({})
    result = run_pipeline(cfg, runner)
    assert runner.calls == [] and result.status == "failed"
    assert result.error.startswith(str(bad)) and "\n" not in result.error


def test_ctrl_c_is_logged_then_raised(overlay):
    cfg = config(overlay)
    runner = FakeTfx({"ImportExampleGen": "COMPLETE"}, fail_in="ImportExampleGen",
                     error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, runner, run_id="20260101T000000-cccccc")
    log = (overlay.parent / "var" / "logs" / "20260101T000000-cccccc.log").read_text()
    assert "run 20260101T000000-cccccc failed:" in log and "KeyboardInterrupt" in log
    assert not any(isinstance(h, ProgressHandler) for h in logging.getLogger().handlers)


# --- `pipeline run`: what the terminal shows --------------------------------------------------


def cli(monkeypatch, capsys, runner, *argv: str) -> tuple[int, str, str]:
    import runners.local
    from pipeline.cli import main

    monkeypatch.setattr(runners.local, "run", runner)
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    # Seconds vary: keep their field (6 wide), not their value.
    return code, re.sub(r"[ \d]{3}\d\.\d s", "   #.# s", out), err


def test_cli_prints_each_component_then_the_summary(overlay, monkeypatch, capsys):
    runner = FakeTfx({"ImportExampleGen": "COMPLETE", "StatisticsGen": "CACHED"})
    code, out, err = cli(monkeypatch, capsys, runner, "--config", str(overlay))
    assert code == 0, err
    [run_id] = runner.calls
    var = overlay.parent / "var"
    assert out.split("\n") == [
        f"pipeline penguin: data {overlay.parent / 'data'}, profile local",
        "  ImportExampleGen     running ...\r  ImportExampleGen     succeeded     #.# s",
        "  StatisticsGen        running ...\r  StatisticsGen        cached        #.# s",
        *[f"  {name:<20} not run       #.# s" for name in NODE_ORDER[2:]],
        "",
        "1 of 10 components cached",
        f"metadata: {var / 'metadata.sqlite'}",
        f"run: {run_id}  log: {var / 'logs' / run_id}.log",
        "",
    ]
    code, out, err = cli(monkeypatch, capsys, runner, "--config", str(overlay))
    assert code == 0 and runner.calls == [run_id]
    assert out.split("\n")[1:4] == [
        f"  up to date: nothing changed since run {run_id} (data, config, code, metadata, "
        "serving)",
        "  all 10 components reused without starting TFX (--full goes through TFX's cache)",
        "",
    ]


def test_cli_json_and_exit_code_of_a_failed_run(overlay, monkeypatch, capsys):
    runner = FakeTfx({"ImportExampleGen": "COMPLETE"}, fail_in="ImportExampleGen",
                     error=RuntimeError("disk full"))
    code, out, _ = cli(monkeypatch, capsys, runner, "--config", str(overlay), "--json")
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert result["error"] == "ImportExampleGen: RuntimeError: disk full"
    assert set(result) == {"run_id", "status", "components", "pushed", "blessed", "metrics",
                           "validation_failures", "metadata", "pipeline_root", "log_file",
                           "span", "error", "error_kind", "exit_code", "up_to_date_with",
                           "partial", "request", "baseline"}
    assert (result["error_kind"], result["exit_code"]) == ("run", 1)
    code, out, err = cli(monkeypatch, capsys, runner, "--config", str(overlay))
    assert code == 1
    assert out.split("\n")[1:3] == [
        "  ImportExampleGen     running ...",
        "  ImportExampleGen     failed        #.# s"]
    assert err.splitlines()[0] == "error: ImportExampleGen: RuntimeError: disk full"
    assert err.splitlines()[1].startswith("full log: ")


def test_the_app_layer_and_the_runner_import_nothing_heavy():
    code = (
        "import sys\n"
        "import pipeline.app.run, pipeline.app.preflight, pipeline.app.run_record\n"
        "import pipeline.app.run_log, runners.local, components.tf_process, pipeline.cli\n"
        "heavy = sorted({'tensorflow', 'tfx', 'apache_beam', 'ml_metadata'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr


# --- exit codes (README, "Exit codes") ---------------------------------------------------------


@pytest.mark.parametrize(("error", "kind", "code"), [
    (RuntimeError("disk full"), "run", 1),
    # Raised inside the runner (build_pipeline checks the config against the schema).
    (ConfigError(
        "overlay.yaml: model.label: 'x' is not a feature of the schema"), "config", 2),
    (DataCheckError(
        "/data/span-2/Split-eval/a.gz: truncated record"), "input", 1),
])
def test_a_failed_run_exits_by_the_kind_of_its_error(overlay, monkeypatch, capsys, error, kind,
                                                      code):
    runner = FakeTfx({"ImportExampleGen": "COMPLETE"}, fail_in="ImportExampleGen", error=error)
    got, out, _ = cli(monkeypatch, capsys, runner, "--config", str(overlay), "--json")
    result = json.loads(out)
    assert (got, result["exit_code"], result["error_kind"]) == (code, code, kind)
    got, _, err = cli(monkeypatch, capsys, runner, "--config", str(overlay))
    assert got == code and err.startswith("error: ")


def test_a_config_error_in_preflight_exits_2(overlay, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    overlay.write_text(json.dumps({**json.loads(overlay.read_text()),
                                   "trainer": {"distribution": {"communication": "nccl"}}}))
    code, _, err = cli(monkeypatch, capsys, FakeTfx({}), "--config", str(overlay))
    assert code == 2 and err.splitlines()[0] == f"error: {overlay}: {NCCL_ERROR}"


def test_a_work_dir_that_is_a_file_is_refused_before_the_log_is_opened(overlay, monkeypatch,
                                                                       capsys):
    (overlay.parent / "var").write_text("")
    runner = FakeTfx({})
    code, out, err = cli(monkeypatch, capsys, runner, "--config", str(overlay))
    assert code == 2 and runner.calls == []
    assert err.splitlines() == [
        f"error: work_dir: {overlay.parent / 'var'} is a file, not a directory"]


def test_a_model_refused_by_a_gate_exits_3_and_a_pushed_one_0():
    from pipeline.app.run_result import RunResult

    refused = RunResult(run_id="r", status="succeeded", blessed=False,
                        validation_failures=["sparse_categorical_accuracy on overall: 0.5"])
    assert refused.exit_code == 3
    assert RunResult(run_id="r", status="succeeded", blessed=True,
                     pushed={"version": 1}).exit_code == 0
    # Nothing changed since the last run: nothing to release, nothing refused.
    assert RunResult(run_id="r", status="succeeded", up_to_date_with="x").exit_code == 0


def test_an_unexpected_error_is_one_line_naming_a_saved_traceback(overlay, monkeypatch,
                                                                  capsys):
    import pipeline.app.run

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", "/var/logs/x.log")

    monkeypatch.setattr(pipeline.app.run, "run_pipeline", broken)
    code, out, err = cli(monkeypatch, capsys, FakeTfx({}), "--config", str(overlay))
    [line] = err.splitlines()
    assert code == 1 and "Traceback" not in err
    assert line.startswith("error: OSError: [Errno 28] No space left on device: '/var/logs/x.log'")
    saved = Path(line.rsplit("traceback in ", 1)[1])
    assert "Traceback" in saved.read_text() and "broken" in saved.read_text()
    saved.unlink()


def test_a_native_crash_of_the_run_still_ends_with_one_error_line(monkeypatch, capsys):
    import pipeline.cli as cli_mod

    # The run's process dies without a Python exception, as on a native abort in TensorFlow.
    monkeypatch.setattr(cli_mod, "_main", lambda argv: os.abort())
    monkeypatch.setattr(sys, "argv", ["pipeline", "run", "--json"])
    code = cli_mod.main()
    out, err = capsys.readouterr()
    assert code == 128 + 6
    result = json.loads(out)
    assert result["status"] == "failed" and "SIGABRT" in result["error"]
    monkeypatch.setattr(sys, "argv", ["pipeline", "run"])
    code = cli_mod.main()
    [line] = capsys.readouterr().err.splitlines()
    assert code == 134 and line.startswith("error: the run's process ended on signal SIGABRT")


def test_the_watched_run_passes_its_exit_code_on(monkeypatch):
    import pipeline.cli as cli_mod

    monkeypatch.setattr(cli_mod, "_main", lambda argv: 3)
    monkeypatch.setattr(sys, "argv", ["pipeline", "run"])
    assert cli_mod.main() == 3
