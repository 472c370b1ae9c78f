"""A change someone else makes while a run goes through TFX is not absorbed into the run record:
runs of `run_pipeline` with a runner that writes what TFX writes to a real SQLite ML Metadata
store (test_app_run.FakeTfx) and, in the middle, a real release operation on a real base path
(fake SavedModel bytes, as in test_release)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from components import serving
from components.metadata import OperationRecord, record_operation
from pipeline.app.run import run_pipeline
from tests.unit.test_app_run import FakeTfx, config, overlay, restore_logging  # noqa: F401
from tests.unit.test_release import make_model

NODES = {"ImportExampleGen": "COMPLETE", "Trainer": "COMPLETE", "ServingPusher": "CACHED"}


class MeanwhileRunner:
    """FakeTfx over NODES, with `meanwhile()` called once the Trainer is running."""

    def __init__(self, meanwhile=None):
        self.tfx = FakeTfx(NODES)
        self.meanwhile = meanwhile

    @property
    def calls(self) -> int:
        return len(self.tfx.calls)

    def __call__(self, cfg, run_id: str) -> None:
        hook = _OnMessage("Component Trainer is running", self.meanwhile)
        logging.getLogger().addHandler(hook)
        try:
            self.tfx(cfg, run_id)
        finally:
            logging.getLogger().removeHandler(hook)


class _OnMessage(logging.Handler):
    def __init__(self, text: str, action):
        super().__init__()
        self.text, self.action = text, action

    def emit(self, record: logging.LogRecord) -> None:
        if self.action is not None and self.text in record.getMessage():
            self.action()


@pytest.fixture
def released(overlay):  # noqa: F811
    """The config, with version 1 released as canary in its base path."""
    cfg = config(overlay)
    model = make_model(overlay.parent, "model", seed=1)
    serving.release_version(cfg.pusher.base_path, serving.ReleaseRequest(
        model_dir=model, model_name="penguin", channel="canary"))
    assert serving.read_state(cfg.pusher.base_path).labels == {"canary": 1}
    return cfg


def _record(cfg) -> Path:
    return Path(cfg.resolved_pipeline_root) / "last_run.json"


def test_without_changes_by_others_the_run_is_recorded_and_the_next_is_up_to_date(released):
    runner = MeanwhileRunner()
    first = run_pipeline(released, runner)
    assert first.status == "succeeded" and _record(released).exists()
    again = run_pipeline(released, runner)
    assert again.up_to_date_with == first.run_id and runner.calls == 1


def test_a_promote_during_the_run_is_not_absorbed(released):
    # A direct call, recorded only in labels.json's history (no ML Metadata).
    runner = MeanwhileRunner(lambda: serving.promote(released.pusher.base_path, "canary"))
    first = run_pipeline(released, runner)
    assert first.status == "succeeded"
    assert not _record(released).exists()
    log = Path(first.log_file).read_text()
    assert f"run {first.run_id} not recorded as up to date" in log
    assert "promote of version 1" in log
    runner.meanwhile = None
    second = run_pipeline(released, runner)
    assert second.up_to_date_with is None and runner.calls == 2
    # That run saw the promote from its start: the next one is up to date with it.
    assert run_pipeline(released, runner).up_to_date_with == second.run_id


def test_a_release_operation_recorded_in_metadata_during_the_run_is_not_absorbed(released):
    def operation():
        record_operation(released.resolved_metadata_path, OperationRecord(
            operation="traffic", model_name="penguin", base_path=released.pusher.base_path,
            tag="", version=1, actor="someone", reason="",
            timestamp=dt.datetime.now(dt.timezone.utc).isoformat()))

    runner = MeanwhileRunner(operation)
    first = run_pipeline(released, runner)
    assert first.status == "succeeded" and not _record(released).exists()
    assert "ML Metadata: execution" in Path(first.log_file).read_text()


def test_a_base_path_edited_by_hand_while_the_pusher_is_cached_is_not_absorbed(released):
    labels = Path(released.pusher.base_path) / "labels.json"
    runner = MeanwhileRunner(lambda: labels.write_text(labels.read_text() + "\n"))
    first = run_pipeline(released, runner)
    assert first.status == "succeeded" and not _record(released).exists()
    assert "changed, though this run's pusher did not run" in Path(first.log_file).read_text()


def test_an_earlier_record_is_removed_too(released):
    runner = MeanwhileRunner()
    run_pipeline(released, runner)
    assert _record(released).exists()
    runner.meanwhile = lambda: serving.promote(released.pusher.base_path, "canary")
    run_pipeline(released, runner, full=True)
    assert not _record(released).exists()
