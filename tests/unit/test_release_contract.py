"""The serving contract kept with its release: written in the release's locked operation, after
the push and before the labels; in force once the release is recorded (fake models, no TF)."""

from __future__ import annotations

import json
import os

import pytest

import components.serving.release as release_module
from components.serving import (
    CONTRACT_FILE,
    Contract,
    ContractError,
    ReleaseRequest,
    SignatureSpec,
    TensorSpec,
    read_contract,
    read_releases,
    read_state,
    release_version,
)


def contract(classes: int) -> Contract:
    return Contract({"serving_default": SignatureSpec(
        {"examples": TensorSpec("string", (None,))},
        {"probabilities": TensorSpec("float32", (None, classes))},
    )})


@pytest.fixture
def base(tmp_path):
    return str(tmp_path / "serving" / "penguin")


@pytest.fixture
def model(tmp_path):
    def make(name: str) -> str:
        path = tmp_path / "models" / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "saved_model.pb").write_bytes(name.encode() * 64)
        return str(path)

    return make


def release(base, model_dir: str, classes: int, reason: str = ""):
    return release_version(
        base, ReleaseRequest(model_dir=model_dir, model_name="penguin", contract=contract(classes),
                             breaking_change_reason=reason),
    )


def in_force(base) -> tuple[int, int] | None:
    """(the version that set the contract in force, its class count) or None."""
    kept = read_contract(base)
    if kept is None:
        return None
    return kept.version, kept.contract.signatures["serving_default"].outputs[
        "probabilities"].shape[1]


@pytest.fixture
def crash_before_labels(monkeypatch):
    """Make the next release die after contract.json, before any label moves (as a SIGKILL
    there would: nothing after it is written)."""

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    def arm():
        monkeypatch.setattr(release_module, "commit_labels", die)

    return arm


def test_first_release_keeps_its_contract_a_compatible_one_does_not_replace_it(base, model):
    assert read_contract(base) is None
    release(base, model("a"), 3)
    assert in_force(base) == (1, 3)
    release(base, model("b"), 4)  # no reason given: the kept contract stays
    assert in_force(base) == (1, 3)
    data = json.loads(open(os.path.join(base, CONTRACT_FILE)).read())
    assert (data["version"], data["reason"], data["previous"]) == (1, "", None)


def test_allowed_breaking_change_replaces_the_contract_and_keeps_the_old_as_previous(base, model):
    release(base, model("a"), 3)
    replaced = release(base, model("b"), 4, reason="a fourth species")
    assert in_force(base) == (2, 4)
    kept = read_contract(base)
    assert (kept.reason, kept.set_at) == ("a fourth species", replaced.pushed_at)
    data = json.loads(open(os.path.join(base, CONTRACT_FILE)).read())
    assert (data["version"], data["previous"]["version"]) == (2, 1)
    assert Contract.from_json(data["previous"]["contract"]) == contract(3)
    assert replaced.notes == {"breaking_change_reason": "a fourth species"}


def test_release_killed_after_the_contract_leaves_the_old_one_in_force_until_re_released(
        base, model, crash_before_labels, monkeypatch):
    release(base, model("a"), 3)
    crash_before_labels()
    with pytest.raises(KeyboardInterrupt):
        release(base, model("b"), 4, reason="a fourth species")
    # contract.json holds version 2's contract, but version 2 has no record: not in force.
    assert json.loads(open(os.path.join(base, CONTRACT_FILE)).read())["version"] == 2
    assert in_force(base) == (1, 3)
    assert read_state(base).labels == {"canary": 1}
    monkeypatch.undo()
    again = release(base, model("b"), 4, reason="a fourth species")
    assert (again.version, again.reused) == (2, True)
    assert [r.version for r in read_releases(base)] == [1, 2]
    assert in_force(base) == (2, 4) and read_state(base).labels == {"canary": 2}


def test_first_release_killed_after_the_contract_has_none_in_force(base, model,
                                                                  crash_before_labels):
    crash_before_labels()
    with pytest.raises(KeyboardInterrupt):
        release(base, model("a"), 3)
    assert os.path.exists(os.path.join(base, CONTRACT_FILE)) and read_contract(base) is None


def test_a_leftover_contract_is_dropped_so_a_later_record_cannot_put_it_in_force(
        base, model, crash_before_labels, monkeypatch):
    release(base, model("a"), 3)
    crash_before_labels()
    with pytest.raises(KeyboardInterrupt):
        release(base, model("b"), 4, reason="a fourth species")
    monkeypatch.undo()
    # The same model released again without an allowed breaking change: it is recorded, but
    # its contract never replaced the one in force.
    again = release(base, model("b"), 4)
    assert again.version == 2 and again.notes == {}
    assert in_force(base) == (1, 3)
    data = json.loads(open(os.path.join(base, CONTRACT_FILE)).read())
    assert data["version"] == 1


def test_a_finished_release_keeps_a_contract_only_when_none_is_in_force(base, model):
    first = model("a")
    # Released without a contract (as before contracts were kept with their release).
    release_version(base, ReleaseRequest(model_dir=first, model_name="penguin"))
    assert read_contract(base) is None
    again = release(base, first, 3)
    assert again.reused and in_force(base) == (1, 3)
    labels = open(os.path.join(base, "labels.json")).read()
    release(base, first, 5, reason="ignored: the release is finished")
    assert in_force(base) == (1, 3)
    assert open(os.path.join(base, "labels.json")).read() == labels


def test_malformed_contract_file_stops_the_release_before_the_push(base, model):
    release(base, model("a"), 3)
    with open(os.path.join(base, CONTRACT_FILE), "w") as f:
        f.write('{"version": 1, "contract": {"signatures": {}}}')
    with pytest.raises(ContractError, match=rf"{CONTRACT_FILE}: contract\.signatures"):
        release(base, model("b"), 3)
    assert sorted(n for n in os.listdir(base) if n.isdigit()) == ["1"]


def test_unreadable_contract_file_names_it(tmp_path):
    (tmp_path / CONTRACT_FILE).write_text("{not json")
    with pytest.raises(ContractError, match=CONTRACT_FILE):
        read_contract(str(tmp_path))
