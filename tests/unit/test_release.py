"""Tests of releases into a TF Serving base path, with fake SavedModel directories (no TF)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from components.metadata import EXECUTION_TYPE, open_store
from components.serving import (
    Audit,
    BatchingParametersError,
    InvalidNameError,
    ReleaseError,
    ReleaseRefused,
    ReleaseRequest,
    ServingState,
    batching_parameters_text,
    check_label_rule,
    label_move_steps,
    list_releases,
    make_tag,
    parse_batching_parameters,
    parse_tag,
    promote,
    prune,
    read_releases,
    read_state,
    release_version,
    rollback,
    set_traffic,
    validate_channel,
    validate_model_name,
    write_batching_parameters,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAY = dt.datetime(2024, 5, 20, 12, 0, tzinfo=dt.timezone.utc)


def make_model(parent, name: str, seed: int) -> str:
    """A fake SavedModel: random bytes where TF would write a graph and variables."""
    rng = random.Random(seed)
    model = parent / name
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(rng.randbytes(2048))
    (model / "variables" / "variables.index").write_bytes(rng.randbytes(64))
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(rng.randbytes(4096))
    return str(model)


def parse_config_file(path) -> tuple[list[int], dict[str, int]]:
    """Parse models.config as TF Serving would and check its label rule: (versions, labels)."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(open(path).read(), config)
    [model] = config.model_config_list.config
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    versions = list(model.model_version_policy.specific.versions)
    labels = dict(model.version_labels)
    assert versions, "a specific policy with no versions serves nothing"
    for label, version in labels.items():
        assert version in versions, f"label {label} -> {version} not served: {versions}"
    return versions, labels


class ConfigWatcher:
    """Checks models.config after every operation and at every step of every label move."""

    def __init__(self, base):
        self.base = base
        self.states: list[tuple[list[int], dict[str, int]]] = []

    def step(self, _state=None) -> None:
        """``between_steps`` callback: the intermediate file on disk must be valid too."""
        self._check()

    def after(self) -> tuple[list[int], dict[str, int]]:
        """Call after an operation returned."""
        return self._check()

    def _check(self) -> tuple[list[int], dict[str, int]]:
        versions, labels = parse_config_file(self.base / "models.config")
        for version in versions:  # TF Serving must find every version it is told to serve
            assert (self.base / str(version) / "saved_model.pb").is_file()
        if self.states:
            # A label that moved must point at a version the previous file already served.
            before_versions, before_labels = self.states[-1]
            for label, version in labels.items():
                if before_labels.get(label) != version:
                    assert version in before_versions, (label, version, self.states[-1])
        self.states.append((versions, labels))
        return versions, labels


@pytest.fixture
def base(tmp_path):
    return tmp_path / "serving" / "penguin"


@pytest.fixture
def watch(base):
    return ConfigWatcher(base)


def release(tmp_path, base, seed: int, watch: ConfigWatcher | None = None, *, now=DAY,
            **fields):
    """Release a new fake model of ``seed``; ``fields`` are ``ReleaseRequest``'s."""
    model = make_model(tmp_path, f"model{seed}-{random.random()}", seed)
    result = release_version(
        str(base),
        ReleaseRequest(model_dir=model, model_name="penguin", **fields),
        between_steps=watch.step if watch else None,
        now=now,
    )
    if watch and (base / "models.config").exists():
        watch.after()
    return result


# --- names and tags --------------------------------------------------------------------------


def test_tag_is_channel_release_number_and_date():
    assert make_tag("canary", 2, dt.date(2024, 5, 20)) == "canary-v2-20240520"
    tag = parse_tag("canary-v2-20240520")
    assert (tag.channel, tag.number, tag.date) == ("canary", 2, dt.date(2024, 5, 20))
    assert parse_tag("nightly.eu_1-v13-20241231").channel == "nightly.eu_1"


UNSAFE = ["", "a/b", "/abs", "..", "a..b", "../etc", "a b", "tab\t", "line\nbreak", "-rf",
          ".hidden", "back\\slash", "semi;colon", "quote'", "star*", "naïve", "x" * 200]


@pytest.mark.parametrize("value", UNSAFE)
def test_unsafe_model_names_channels_and_tags_are_refused_naming_the_value(value):
    for check in (validate_model_name, validate_channel, parse_tag):
        with pytest.raises(InvalidNameError) as info:
            check(value)
        message = str(info.value)
        assert repr(value) in message and "\n" not in message.replace(repr(value), "")


def test_channel_is_lower_case_but_model_names_may_have_capitals():
    assert validate_model_name("Churn_v2.eu-1") == "Churn_v2.eu-1"
    with pytest.raises(InvalidNameError, match="'Canary'.*starts with 'C'"):
        validate_channel("Canary")
    for bad_tag in ("canary-v0-20240520", "canary-v2-2024052", "canary-v2-20241340", "canary"):
        with pytest.raises(InvalidNameError, match=repr(bad_tag)):
            parse_tag(bad_tag)


def test_release_with_unsafe_names_writes_nothing(tmp_path, base):
    model = make_model(tmp_path, "m", 1)
    with pytest.raises(InvalidNameError, match="'../x'"):
        release_version(str(base), ReleaseRequest(model_dir=model, model_name="../x"))
    with pytest.raises(InvalidNameError, match="'can ary'"):
        release_version(
            str(base), ReleaseRequest(model_dir=model, model_name="penguin", channel="can ary")
        )
    assert not base.exists()


# --- release ---------------------------------------------------------------------------------


def test_release_records_everything_and_numbers_the_tags(tmp_path, base, watch):
    first = release(
        tmp_path, base, 1, watch, metrics={"accuracy": 0.98, "loss": 0.04}, spans=[1, 2],
        git_commit="0123abcd", mlmd_ids={"model": 7, "pushed_model": 9},
    )
    assert (first.tag, first.version, first.reused) == ("canary-v1-20240520", 1, False)
    assert first.path == str(base / "1")
    record = json.loads((base / ".releases" / "1.json").read_text())
    assert record == {
        "tag": "canary-v1-20240520", "version": 1, "model_name": "penguin",
        "content_hash": first.content_hash, "channel": "canary", "release_number": 1,
        "metrics": {"accuracy": 0.98, "loss": 0.04}, "spans": [1, 2], "git_commit": "0123abcd",
        "mlmd_ids": {"model": 7, "pushed_model": 9}, "blessed": True,
        "pushed_at": "2024-05-20T12:00:00+00:00",
        "notes": {},
    }
    second = release(tmp_path, base, 2, watch, now=DAY + dt.timedelta(days=1))
    assert second.tag == "canary-v2-20240521"
    nightly = release(tmp_path, base, 3, watch, channel="nightly")
    assert nightly.tag == "nightly-v3-20240520"
    assert [r.tag for r in read_releases(str(base))] == [first.tag, second.tag, nightly.tag]
    # Only the canary channel labels canary; another channel's version is not served.
    assert read_state(str(base)).labels == {"canary": 2}
    assert watch.after() == ([2], {"canary": 2})


def test_first_release_serves_the_version_before_labelling_it(tmp_path, base, watch):
    release(tmp_path, base, 1, watch)
    # Step 1: version 1 served, no label; step 2: labelled canary.
    assert watch.states == [([1], {}), ([1], {"canary": 1})]


def test_label_move_onto_a_new_version_takes_two_valid_steps(tmp_path, base, watch):
    release(tmp_path, base, 1, watch)
    promote(str(base), "canary", between_steps=watch.step)
    watch.after()
    release(tmp_path, base, 2, watch)
    watch.states.clear()
    release(tmp_path, base, 3, watch)
    # The intermediate file serves the old canary, stable and the new version, labels unchanged;
    # then the canary label moves and the old canary (2) is no longer served.
    assert watch.states == [
        ([1, 2, 3], {"canary": 2, "stable": 1}),
        ([1, 3], {"canary": 3, "stable": 1}),
    ]


def test_label_move_steps_leave_out_steps_that_change_nothing():
    base = "/srv/m"
    current = ServingState("m", base, (1, 2), {"stable": 1, "canary": 2})
    assert label_move_steps(current, current) == []
    onto_served = ServingState("m", base, (2,), {"stable": 2})
    assert label_move_steps(current, onto_served) == [onto_served]
    new = ServingState("m", base, (1, 3), {"stable": 1, "canary": 3})
    assert label_move_steps(current, new) == [
        ServingState("m", base, (1, 2, 3), {"stable": 1, "canary": 2}), new
    ]
    assert label_move_steps(None, new) == [ServingState("m", base, (1, 3), {}), new]


def test_label_rule_checker_rejects_a_label_on_an_unserved_version():
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name="m", base_path="/b")
    model.model_version_policy.specific.versions.append(1)
    model.version_labels["canary"] = 2
    with pytest.raises(ReleaseError, match="label 'canary' points at version 2"):
        check_label_rule(config)


def test_identical_model_is_not_released_twice(tmp_path, base, watch):
    first = release(tmp_path, base, 1, watch)
    labels_file = (base / "labels.json").read_text()
    again = release(tmp_path, base, 1, watch, now=DAY + dt.timedelta(days=3))
    assert again.reused and (again.version, again.tag) == (first.version, first.tag)
    assert sorted(os.listdir(base / ".releases")) == ["1.json"]
    assert (base / "labels.json").read_text() == labels_file  # no history entry either
    assert sorted(n for n in os.listdir(base) if n.isdigit()) == ["1"]


def test_an_interrupted_release_is_completed_by_releasing_the_same_model(tmp_path, base):
    from components.serving import ServingDir

    model = make_model(tmp_path, "m", 1)
    ServingDir(str(base)).push(model)  # pushed, but no record, no labels (as if killed)
    result = release_version(
        str(base), ReleaseRequest(model_dir=model, model_name="penguin"), now=DAY
    )
    assert (result.version, result.tag, result.reused) == (1, "canary-v1-20240520", True)
    assert read_state(str(base)).labels == {"canary": 1}


def test_unblessed_release_is_recorded_but_gets_no_label(tmp_path, base, watch):
    release(tmp_path, base, 1, watch)
    unblessed = release(tmp_path, base, 2, watch, blessed=False)
    assert json.loads((base / ".releases" / "2.json").read_text())["blessed"] is False
    assert read_state(str(base)).labels == {"canary": 1}
    assert unblessed.tag == "canary-v2-20240520"


def test_release_refuses_bad_fields_and_another_model(tmp_path, base):
    release(tmp_path, base, 1)
    model = make_model(tmp_path, "other", 2)
    with pytest.raises(ReleaseRefused, match="metric 'auc'"):
        release_version(
            str(base),
            ReleaseRequest(model_dir=model, model_name="penguin", metrics={"auc": float("nan")}),
        )
    with pytest.raises(ReleaseRefused, match="span -1"):
        release_version(
            str(base), ReleaseRequest(model_dir=model, model_name="penguin", spans=[-1])
        )
    with pytest.raises(ReleaseRefused, match="serves model 'penguin'.*'churn'"):
        release_version(str(base), ReleaseRequest(model_dir=model, model_name="churn"))
    assert sorted(n for n in os.listdir(base) if n.isdigit()) == ["1"]


# --- promote, rollback, traffic, prune ---------------------------------------------------------


def test_promote_makes_the_canary_stable(tmp_path, base, watch):
    first = release(tmp_path, base, 1, watch)
    result = promote(
        str(base), first.tag, audit=Audit(reason="first model"), between_steps=watch.step
    )
    assert watch.after() == ([1], {"stable": 1})
    assert (result.version, result.labels, result.weights) == (1, {"stable": 1}, {"stable": 100})
    release(tmp_path, base, 2, watch)
    set_traffic(str(base), 10)
    result = promote(str(base), "2", between_steps=watch.step)
    assert watch.after() == ([2], {"stable": 2})
    state = read_state(str(base))
    assert state.stable_history == [1, 2] and state.canary_percent == 0
    assert json.loads((base / "routing.json").read_text())["weights"] == {"stable": 100}
    assert [h["operation"] for h in state.history] == [
        "release", "promote", "release", "traffic", "promote"
    ]
    assert state.history[1]["reason"] == "first model" and state.history[1]["actor"]


def test_promote_refusals(tmp_path, base, watch):
    with pytest.raises(ReleaseRefused, match="nothing has been released"):
        promote(str(base), "canary")
    first = release(tmp_path, base, 1, watch)
    release(tmp_path, base, 2, watch, blessed=False)
    config_before = (base / "models.config").read_text()
    with pytest.raises(ReleaseRefused, match="unknown tag 'canary-v9-20240520'"):
        promote(str(base), "canary-v9-20240520")
    with pytest.raises(InvalidNameError, match="'../1'"):
        promote(str(base), "../1")
    with pytest.raises(ReleaseRefused, match="unknown version 7"):
        promote(str(base), 7)
    with pytest.raises(ReleaseRefused, match=r"version 2 \(canary-v2-20240520\) was not blessed"):
        promote(str(base), "canary-v2-20240520")
    with pytest.raises(ReleaseRefused, match="no version is labelled 'stable'"):
        promote(str(base), "stable")
    promote(str(base), first.tag)
    with pytest.raises(ReleaseRefused, match="already stable"):
        promote(str(base), first.version)
    assert (base / "models.config").read_text() != config_before  # only the promote changed it
    watch.after()


def test_rollback_returns_to_the_previous_stable_and_keeps_the_canary(tmp_path, base, watch):
    for seed in (1, 2, 3):
        release(tmp_path, base, seed, watch)
        promote(str(base), "canary", between_steps=watch.step)
        watch.after()
    release(tmp_path, base, 4, watch)
    result = rollback(str(base), audit=Audit(reason="latency"), between_steps=watch.step)
    assert watch.after() == ([2, 4], {"stable": 2, "canary": 4})
    assert (result.version, result.labels) == (2, {"stable": 2, "canary": 4})
    rollback(str(base), between_steps=watch.step)
    assert watch.after() == ([1, 4], {"stable": 1, "canary": 4})
    with pytest.raises(ReleaseRefused, match=r"no previous stable version .*\(stable: 1\)"):
        rollback(str(base))
    assert read_state(str(base)).stable_history == [1]


def test_rollback_with_no_previous_stable_is_refused(tmp_path, base):
    release(tmp_path, base, 1)
    with pytest.raises(ReleaseRefused, match=r"no previous stable .*\(stable: none\)"):
        rollback(str(base))
    promote(str(base), "canary")
    with pytest.raises(ReleaseRefused, match=r"no previous stable .*\(stable: 1\)"):
        rollback(str(base))


def test_traffic_split_and_its_refusals(tmp_path, base, watch):
    release(tmp_path, base, 1, watch)
    with pytest.raises(ReleaseRefused, match="no stable version"):
        set_traffic(str(base), 5)
    promote(str(base), "canary")
    with pytest.raises(ReleaseRefused, match="no canary version"):
        set_traffic(str(base), 5)
    release(tmp_path, base, 2, watch)
    for bad in (-1, 101, 5.5, True):
        with pytest.raises(ReleaseRefused, match="from 0 to 100"):
            set_traffic(str(base), bad)
    later = DAY + dt.timedelta(days=2)
    result = set_traffic(str(base), 5, audit=Audit(reason="canary at 5%", actor="ci", now=later))
    routing = json.loads((base / "routing.json").read_text())
    assert routing["weights"] == result.weights == {"stable": 95, "canary": 5}
    assert routing["versions"] == {"stable": 1, "canary": 2}
    assert routing["updated_at"] == "2024-05-22T12:00:00+00:00"
    entry = read_state(str(base)).history[-1]
    assert (entry["operation"], entry["actor"], entry["reason"], entry["at"]) == (
        "traffic", "ci", "canary at 5%", "2024-05-22T12:00:00+00:00"
    )
    assert watch.after() == ([1, 2], {"stable": 1, "canary": 2})  # traffic leaves the config
    # A new canary starts with no traffic: its predecessor's share is not inherited.
    release(tmp_path, base, 3, watch)
    assert json.loads((base / "routing.json").read_text())["weights"] == {
        "stable": 100, "canary": 0
    }


def test_prune_keeps_labelled_newest_and_rollback_target(tmp_path, base, watch):
    for seed in range(1, 8):
        release(tmp_path, base, seed, watch)
        if seed in (2, 4):
            promote(str(base), "canary")
    # stable 4 (previous stable 2), canary 7, newest 7.
    release(tmp_path, base, 8, watch, blessed=False)  # newest, unlabelled
    with pytest.raises(ReleaseRefused, match="--keep"):
        prune(str(base), -1)
    result = prune(str(base), 0, audit=Audit(reason="disk"))
    assert result.removed == (1, 3, 5, 6)
    assert sorted(int(n) for n in os.listdir(base) if n.isdigit()) == [2, 4, 7, 8]
    assert not [n for n in os.listdir(base) if n.startswith(".tmp-")]
    assert watch.after() == ([4, 7], {"stable": 4, "canary": 7})
    assert len(read_releases(str(base))) == 8  # records stay as history
    listing = list_releases(str(base))
    assert [(v.version, v.present) for v in listing.versions][:3] == [
        (8, True), (7, True), (6, False)
    ]
    # Numbers are never reused.
    assert release(tmp_path, base, 9, watch).version == 9
    # 7 was the canary until 9 took over; 2 is still the rollback target, 8 among the 2 newest.
    assert prune(str(base), 2).removed == (7,)
    assert sorted(int(n) for n in os.listdir(base) if n.isdigit()) == [2, 4, 8, 9]


def test_prune_keep_k_keeps_the_k_newest(tmp_path, base):
    for seed in range(1, 6):
        release(tmp_path, base, seed)
    promote(str(base), 1)
    assert prune(str(base), 2).removed == (2, 3)
    with pytest.raises(ReleaseRefused, match=r"version 2 .* no longer in"):
        promote(str(base), 2)


def test_list_shows_versions_tags_labels_and_metrics(tmp_path, base):
    assert list_releases(str(base)).versions == []
    release(tmp_path, base, 1, metrics={"accuracy": 0.9})
    promote(str(base), "canary")
    release(tmp_path, base, 2, metrics={"accuracy": 0.95})
    data = list_releases(str(base)).to_json()
    assert data["model_name"] == "penguin" and data["labels"] == {"canary": 2, "stable": 1}
    assert [(v["version"], v["tag"], v["labels"], v["metrics"]) for v in data["versions"]] == [
        (2, "canary-v2-20240520", ["canary"], {"accuracy": 0.95}),
        (1, "canary-v1-20240520", ["stable"], {"accuracy": 0.9}),
    ]


# --- batching parameters ---------------------------------------------------------------------


def test_batching_parameters_file_parses_as_batching_parameters(tmp_path, base):
    settings = {
        "max_batch_size": 64, "batch_timeout_micros": 0, "num_batch_threads": 4,
        "max_enqueued_batches": 100, "pad_variable_length_inputs": True,
        "allowed_batch_sizes": [8, 16, 64],
    }
    path = write_batching_parameters(str(base), settings)
    message = parse_batching_parameters(open(path).read())
    assert message.max_batch_size.value == 64 and message.HasField("batch_timeout_micros")
    assert message.num_batch_threads.value == 4 and message.max_enqueued_batches.value == 100
    assert list(message.allowed_batch_sizes) == [8, 16, 64]
    assert message.pad_variable_length_inputs is True
    release(tmp_path, base, 1, batching={"max_batch_size": 32})
    assert (base / "batching_parameters.txt").read_text() == "max_batch_size { value: 32 }\n"


@pytest.mark.parametrize(
    "settings, field, why",
    [
        ({"max_batch_size": 64, "allowed_batch_sizes": [8, 8, 64]}, "allowed_batch_sizes",
         "strictly increasing"),
        ({"max_batch_size": 64, "allowed_batch_sizes": [16, 8, 64]}, "allowed_batch_sizes",
         "strictly increasing"),
        ({"max_batch_size": 64, "allowed_batch_sizes": [8, 32]}, "allowed_batch_sizes",
         r"last size \(32\) must equal max_batch_size \(64\)"),
        ({"max_batch_size": 64, "allowed_batch_sizes": [0, 64]}, r"allowed_batch_sizes\[0\]",
         "positive"),
        ({"allowed_batch_sizes": [8]}, "allowed_batch_sizes", "set max_batch_size"),
        ({"max_batch_size": 0}, "max_batch_size", ">= 1"),
        ({"num_batch_threads": True}, "num_batch_threads", ">= 1"),
        ({"batch_timeout_micros": -1}, "batch_timeout_micros", ">= 0"),
        ({"pad_variable_length_inputs": "yes"}, "pad_variable_length_inputs", "true or false"),
        ({"max_batch": 8}, "'max_batch'", "unknown setting"),
    ],
)
def test_batching_parameters_rules_name_the_field(tmp_path, settings, field, why):
    with pytest.raises(BatchingParametersError, match=f"{field}.*{why}|{why}.*{field}"):
        batching_parameters_text(settings)
    with pytest.raises(ReleaseRefused):
        release_version(
            str(tmp_path / "b"),
            ReleaseRequest(
                model_dir=make_model(tmp_path, "m", 1), model_name="penguin", batching=settings
            ),
        )
    assert not (tmp_path / "b").exists()  # refused before the push


# --- ML Metadata -----------------------------------------------------------------------------


def _put_pushed_model(store_path: str, base, version: int, pipeline: str = "penguin") -> int:
    store = open_store(store_path, create=True)
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="PushedModel"))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=f"/pipeline_root/Pusher/{version}")
    artifact.custom_properties["pushed"].int_value = 1
    artifact.custom_properties["pushed_version"].int_value = version
    artifact.custom_properties["pushed_destination"].string_value = str(base / str(version))
    [artifact_id] = store.put_artifacts([artifact])
    context_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    if store.get_context_by_type_and_name("pipeline", pipeline) is None:
        store.put_contexts([metadata_store_pb2.Context(type_id=context_type, name=pipeline)])
    return artifact_id


def test_operations_are_recorded_in_mlmd_linked_to_the_pushed_model(tmp_path, base):
    store_path = str(tmp_path / "metadata.sqlite")
    release(tmp_path, base, 1)
    release(tmp_path, base, 2)
    artifact_id = _put_pushed_model(store_path, base, 2)
    _put_pushed_model(store_path, tmp_path / "elsewhere", 2)  # same version, other base path

    result = promote(
        str(base), "canary",
        audit=Audit(reason="good canary", metadata_path=store_path, pipeline_name="penguin"),
    )
    assert result.recorded.linked_artifact_ids == (artifact_id,)
    # Version 1 has no PushedModel in the store: recorded without a link.
    unlinked = promote(str(base), 1, audit=Audit(metadata_path=store_path))
    assert unlinked.recorded.linked_artifact_ids == ()

    store = open_store(store_path)
    executions = store.get_executions_by_type(EXECUTION_TYPE)
    assert [e.properties["operation"].string_value for e in executions] == ["promote", "promote"]
    first = executions[0].properties
    assert first["version"].int_value == 2 and first["tag"].string_value == "canary-v2-20240520"
    assert first["reason"].string_value == "good canary" and first["actor"].string_value
    assert dt.datetime.fromisoformat(first["timestamp"].string_value).tzinfo is not None
    events = store.get_events_by_execution_ids([executions[0].id])
    assert [(e.artifact_id, e.type) for e in events] == [
        (artifact_id, metadata_store_pb2.Event.INPUT)
    ]
    [context] = store.get_contexts_by_execution(executions[0].id)
    assert context.name == "penguin"

    release(tmp_path, base, 3)
    recorded = Audit(metadata_path=store_path)
    set_traffic_result = set_traffic(str(base), 20, audit=recorded)
    rollback_result = rollback(str(base), audit=recorded)
    prune_result = prune(str(base), 0, audit=recorded)
    assert all(
        r.recorded is not None for r in (set_traffic_result, rollback_result, prune_result)
    )
    assert [
        e.properties["operation"].string_value for e in store.get_executions_by_type(EXECUTION_TYPE)
    ] == ["promote", "promote", "traffic", "rollback", "prune"]


def test_mlmd_import_does_not_pull_tensorflow():
    code = (
        "import sys, ml_metadata, components.metadata.release_operations as l; "
        "from ml_metadata.metadata_store import metadata_store; "
        "assert not {'tensorflow', 'tfx', 'apache_beam'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- CLI -------------------------------------------------------------------------------------


def run_cli(*argv: str, cwd) -> tuple[int, str, str, float, list[str]]:
    """Run ``pipeline.cli.main(argv)`` in a fresh interpreter; return code, out, err, seconds,
    and the heavy modules it imported."""
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {REPO!r})
        from pipeline.cli import main
        rc = main({list(argv)!r})
        heavy = sorted({{"tensorflow", "tfx", "apache_beam"}} & set(sys.modules))
        print("@@" + json.dumps([rc, heavy]), file=sys.stderr)
        """
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    seconds = time.perf_counter() - start
    err, _, tail = proc.stderr.rpartition("@@")
    rc, heavy = json.loads(tail)
    return rc, proc.stdout, err, seconds, heavy


def test_cli_release_commands(tmp_path, base):
    release(tmp_path, base, 1, metrics={"accuracy": 0.9})
    release(tmp_path, base, 2, metrics={"accuracy": 0.95})
    store = str(tmp_path / "var" / "metadata.sqlite")
    _put_pushed_model(store, base, 2)
    config = tmp_path / "release.yaml"
    # No TF Serving reads this base path: nothing to wait for (tests/unit/test_release_server.py
    # has the waits).
    config.write_text(
        f"pusher: {{base_path: {base}, serving: {{poll_seconds: 0}}}}\nmetadata_path: {store}\n"
    )
    cfg = ("--config", str(config))

    # Speed is bench/'s business; what makes these commands fast (no TensorFlow, TFX or Beam
    # import) is asserted through `heavy`.
    rc, out, err, seconds, heavy = run_cli("release", "list", "--json", *cfg, cwd=tmp_path)
    assert (rc, heavy, err) == (0, [], "")
    listing = json.loads(out)
    assert [v["tag"] for v in listing["versions"]] == ["canary-v2-20240520", "canary-v1-20240520"]

    rc, out, err, seconds, heavy = run_cli(
        "release", "promote", "canary-v2-20240520", "--reason", "good", *cfg, cwd=tmp_path
    )
    assert (rc, heavy, err) == (0, [], "")
    assert "promoted version 2 (canary-v2-20240520) to stable" in out
    parse_config_file(base / "models.config")

    for argv, message in [
        (("promote", "canary-v7-20240520"), "unknown tag 'canary-v7-20240520'"),
        (("promote", "../../etc"), "invalid tag '../../etc'"),
        (("rollback",), "no previous stable version"),
        (("traffic", "--canary", "5"), "no canary version"),
        (("traffic", "--canary", "500"), "from 0 to 100"),
        (("prune", "--keep", "-2"), "--keep must be"),
    ]:
        rc, out, err, seconds, heavy = run_cli("release", *argv, *cfg, cwd=tmp_path)
        assert (rc, heavy, out) == (2, [], ""), (argv, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err

    release(tmp_path, base, 3)
    rc, out, err, seconds, heavy = run_cli(
        "release", "traffic", "--canary", "5", *cfg, cwd=tmp_path
    )
    assert (rc, heavy) == (0, []), err
    assert json.loads((base / "routing.json").read_text())["weights"] == {
        "stable": 95, "canary": 5
    }
    rc, out, err, seconds, heavy = run_cli(
        "release", "prune", "--keep", "0", "--base-path", str(base), "--no-metadata",
        cwd=tmp_path,
    )
    assert (rc, heavy) == (0, []) and "removed 1" in out, err
    rc, out, err, seconds, heavy = run_cli("release", "list", *cfg, cwd=tmp_path)
    assert rc == 0 and "canary-v3-20240520" in out and "(removed)" in out
    parse_config_file(base / "models.config")

    recorded = open_store(store).get_executions_by_type(EXECUTION_TYPE)
    assert [e.properties["operation"].string_value for e in recorded] == ["promote", "traffic"]
    assert [e.artifact_id for e in open_store(store).get_events_by_execution_ids(
        [recorded[0].id])] == [1]


def test_cli_bad_config_is_a_one_line_error(tmp_path):
    rc, out, err, _, heavy = run_cli("release", "list", "--profile", "nope", cwd=tmp_path)
    assert (rc, heavy, out) == (2, [], "")
    assert err.startswith("error: unknown profile 'nope'") and err.count("\n") == 1


def test_release_package_does_not_import_tensorflow():
    code = (
        "import sys, components.serving, pipeline.release_cli; "
        "assert not {'tensorflow', 'tfx', 'apache_beam', 'ml_metadata'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_version_directories_are_never_touched_by_operations(tmp_path, base):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    release(tmp_path, base, 2)
    before = {n: sorted(os.listdir(base / n)) for n in ("1", "2")}
    set_traffic(str(base), 50)
    with pytest.raises(ReleaseRefused):
        rollback(str(base))
    promote(str(base), "canary")
    rollback(str(base))
    assert {n: sorted(os.listdir(base / n)) for n in ("1", "2")} == before
    shutil.rmtree(base / "1")  # deleted by hand: a rollback to it must be refused, not dangle
    promote(str(base), 2)
    with pytest.raises(ReleaseRefused, match="previous stable version 1 is no longer"):
        rollback(str(base))


def test_release_notes_and_breaking_change_reason_are_kept_in_the_record(tmp_path, base):
    rel = release(tmp_path, base, 1, notes={"ticket": "ML-12"},
                  breaking_change_reason="drop island, agreed with clients")
    assert rel.notes == {"ticket": "ML-12",
                         "breaking_change_reason": "drop island, agreed with clients"}
    (stored,) = read_releases(str(base))
    assert stored.notes == rel.notes


def test_fingerprint_changes_with_every_change_of_the_base_path(tmp_path, base):
    from components.serving import fingerprint

    assert fingerprint(str(base)) == "absent"
    release(tmp_path, base, 1)
    first = fingerprint(str(base))
    assert fingerprint(str(base)) == first  # reading changes nothing
    with pytest.raises(ReleaseRefused):
        rollback(str(base))
    assert fingerprint(str(base)) == first  # neither does a refused operation
    promote(str(base), "canary")
    promoted = fingerprint(str(base))
    release(tmp_path, base, 2)
    assert len({first, promoted, fingerprint(str(base))}) == 3
