"""Fault test of a release and its serving contract: SIGKILL at random points of releases that
carry contracts (first release, compatible releases, allowed breaking changes) while a poller
reads the base path as TF Serving and a client would.

The poller must never see a labelled version (in ``models.config`` or ``labels.json``) whose
contract was not kept: ``contract.json`` is written in the release's locked operation before any
label moves, so it already holds that version's contract (or a newer one); and once the version's
release is recorded, ``read_contract`` (the contract in force) must give it (or a newer one).
After each kill, the contract in force is the last finished release's, and releasing the same
model again completes the release: record written, its contract in force.

Kills are aimed at the phases of a release (tests/unit/release_phases.py: before the copy, during
the copy, after the rename and before the record, between the two ``models.config`` steps,
after the label move); the phase each kill landed in is read from the child's markers, each
phase must be hit at least ``PER_PHASE`` times, and the poller's invariant is also asserted on
what each kill left.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.serving import (
    Contract,
    ReleaseRequest,
    ServingDir,
    SignatureSpec,
    TensorSpec,
    model_content_hash,
    promote,
    read_contract,
    read_releases,
    read_state,
    release_version,
)
from tests.unit import release_phases

# spawn, not fork: other tests in the session may have loaded TensorFlow's threads.
CTX = multiprocessing.get_context("spawn")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PER_PHASE = 4  # kills that must land in each phase
MAX_TRIALS = 30
STEP_WAIT = 0.03  # seconds between the two steps of a label move, as a real release would wait
REASON = "generation {gen}: one more class, clients were told"


def contract(gen: int) -> Contract:
    """Generation ``gen`` of the model's contract: 3 + gen classes (each step breaks clients)."""
    return Contract({"serving_default": SignatureSpec(
        {"examples": TensorSpec("string", (None,))},
        {"probabilities": TensorSpec("float32", (None, 3 + gen))},
    )})


def generation(kept) -> int | None:
    """The generation of a kept contract (None: no contract)."""
    if kept is None:
        return None
    return kept.contract.signatures["serving_default"].outputs["probabilities"].shape[1] - 3


def plan(trials: int) -> list[tuple[int, str]]:
    """(generation, breaking change reason) of each model: model 0 is the first release, then
    every odd model is an allowed breaking change and every even one a compatible release."""
    out, gen = [(0, "")], 0
    for i in range(1, trials + 1):
        if i % 2:
            gen += 1
            out.append((gen, REASON.format(gen=gen)))
        else:
            out.append((gen, ""))
    return out


def make_model(parent: str, index: int, megabytes: float = 1.5) -> str:
    """A fake SavedModel whose ``saved_model.pb`` starts with ``model <index>``."""
    rng = random.Random(index)
    model = os.path.join(parent, f"m{index}")
    os.makedirs(os.path.join(model, "variables"))
    size = int(megabytes * 1024 * 1024)
    with open(os.path.join(model, "saved_model.pb"), "wb") as f:
        f.write(f"model {index}\n".encode() + rng.randbytes(size // 4))
    with open(os.path.join(model, "variables", "variables.data-00000-of-00001"), "wb") as f:
        f.write(rng.randbytes(size * 3 // 4))
    return model


def request(model: str, gen: int, reason: str, trial: int) -> ReleaseRequest:
    return ReleaseRequest(model_dir=model, model_name="penguin", spans=[trial],
                          contract=contract(gen), breaking_change_reason=reason)


# --- the poller (runs in its own process) ------------------------------------------------------


def _labelled(base: str) -> set[int]:
    """Versions labelled in models.config, then in labels.json, read as their readers do."""
    versions: set[int] = set()
    try:
        with open(os.path.join(base, "models.config")) as f:
            config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        for model in config.model_config_list.config:
            versions |= set(model.version_labels.values())
    except FileNotFoundError:
        pass
    try:
        with open(os.path.join(base, "labels.json")) as f:
            versions |= set(json.load(f)["labels"].values())
    except FileNotFoundError:
        pass
    return versions


def _written_generation(base: str) -> int | None:
    """The generation of the newest contract written to contract.json, in force or not."""
    try:
        with open(os.path.join(base, "contract.json")) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    return data["contract"]["signatures"]["serving_default"]["outputs"]["probabilities"][
        "shape"][1] - 3


def check_labels_and_contract(
    base: str, generations: list[int], model_of: dict[int, int]
) -> tuple[set[int], int | None, list[str]]:
    """One reading of the base path, as TF Serving and a client would: every labelled version's
    contract must be kept, and in force once its release is recorded.

    Returns:
        (the labelled versions, the generation of the contract in force, the violations).
    """
    try:
        # Order matters: everything about the labels is read before the contract.
        labelled = _labelled(base)
        recorded = {
            v for v in labelled if os.path.exists(os.path.join(base, ".releases", f"{v}.json"))
        }
        written = _written_generation(base)
        in_force = generation(read_contract(base))
    except Exception as e:  # noqa: BLE001  (a torn file is a violation, not a crash)
        return set(), None, [f"unreadable: {type(e).__name__}: {e}"]
    violations = []
    for version in sorted(labelled):
        if version not in model_of:  # version -> model index, read from its saved_model.pb
            with open(os.path.join(base, str(version), "saved_model.pb"), "rb") as f:
                model_of[version] = int(f.readline().split()[1])
        needed = generations[model_of[version]]
        if written is None or written < needed:
            violations.append(
                f"version {version} is labelled, but contract.json holds generation "
                f"{written} < {needed}"
            )
        if version in recorded and (in_force is None or in_force < needed):
            violations.append(
                f"version {version} is labelled and recorded, but the contract in force "
                f"is generation {in_force} < {needed}"
            )
    return labelled, in_force, violations


def poll_labels_and_contract(base: str, generations: list[int], stop, report_file: str) -> None:
    model_of: dict[int, int] = {}
    violations: list[str] = []
    passes = labelled_seen = 0
    highest_in_force = -1
    while not stop.is_set():
        labelled, in_force, problems = check_labels_and_contract(base, generations, model_of)
        violations += problems
        if problems and not labelled and in_force is None:
            continue  # unreadable
        passes += 1
        labelled_seen += bool(labelled)
        if in_force is not None:
            if in_force < highest_in_force:
                violations.append(f"contract in force went back to {in_force}")
            highest_in_force = max(highest_in_force, in_force)
        time.sleep(0.001)
    with open(report_file, "w") as f:
        json.dump({"passes": passes, "labelled_seen": labelled_seen,
                   "violations": violations[:20]}, f)


# --- the releases (children killed in each phase) ----------------------------------------------

RELEASE = """
import json
from components.serving import Contract, ReleaseRequest, release_version
request = ReleaseRequest(
    model_dir={model!r}, model_name="penguin", spans=[{trial}],
    contract=Contract.from_json(json.loads({contract!r})), breaking_change_reason={reason!r},
)
release_version({base!r}, request, between_steps=between_steps)
"""


def _start_release(base: str, model: str, gen: int, reason: str, trial: int):
    release = RELEASE.format(
        base=base, model=model, trial=trial, reason=reason,
        contract=json.dumps(contract(gen).to_json()),
    )
    return release_phases.start(release_phases.child_code(REPO, base, STEP_WAIT, release))


def _outcome(base: str, model: str, released: set[str]) -> str:
    content_hash = model_content_hash(model)
    if content_hash in released:
        return "killed after the record"
    version = ServingDir(base).find_by_hash(content_hash)
    with open(os.path.join(base, "contract.json")) as f:
        written = json.load(f)["version"]
    if version is not None and written == version:
        return "killed between contract and record"
    return "killed before the record"


# Kills are aimed by time at phases of tens of milliseconds: run alone (make test).
@pytest.mark.slow
@pytest.mark.serial
def test_sigkill_in_every_phase_never_exposes_a_labelled_version_without_its_contract(tmp_path):
    base = str(tmp_path / "serving" / "penguin")
    steps = plan(MAX_TRIALS)
    generations = [gen for gen, _ in steps]
    models = [make_model(str(tmp_path), i) for i in range(len(steps))]
    stop, report_file = CTX.Event(), str(tmp_path / "poller.json")
    poller = CTX.Process(
        target=poll_labels_and_contract, args=(base, generations, stop, report_file)
    )
    poller.start()
    outcomes: dict[str, int] = {}
    landed: dict[str, int] = {}
    model_of: dict[int, int] = {}
    trials = 0
    try:
        # Model 0 runs to the end: it measures each phase, and its promotion gives a stable
        # beside each later canary.
        durations = release_phases.run_to_the_end(
            _start_release(base, models[0], *steps[0], 0)
        )
        promote(base, "canary")
        setter, setter_reason = 1, ""  # the release that set the contract in force
        rng = random.Random(20240520)
        while trials < MAX_TRIALS and (
            short := [p for p in release_phases.PHASES if landed.get(p, 0) < PER_PHASE]
        ):
            trials += 1
            gen, reason = steps[trials]
            proc = _start_release(base, models[trials], gen, reason, trials)
            phase = release_phases.aim_kill(proc, short[trials % len(short)], durations, rng)
            landed[phase] = landed.get(phase, 0) + 1
            released = {r.content_hash for r in read_releases(base)}
            state = (
                _outcome(base, models[trials], released)
                if proc.returncode == -signal.SIGKILL else "finished"
            )
            outcomes[state] = outcomes.get(state, 0) + 1
            # The poller's invariant, on what the kill left.
            _, _, problems = check_labels_and_contract(base, generations, model_of)
            assert problems == [], (phase, problems)
            # In force: this release's contract if it was recorded, else the previous one's.
            finished = model_content_hash(models[trials]) in released
            assert generation(read_contract(base)) == steps[trials if finished else trials - 1][0]

            # Releasing the same model again completes the release.
            again = release_version(base, request(models[trials], gen, reason, trials))
            assert again.version in {r.version for r in read_releases(base)}
            if reason:
                setter, setter_reason = again.version, reason
            kept = read_contract(base)
            assert (generation(kept), kept.version, kept.reason) == (gen, setter, setter_reason)
            assert read_state(base).labels == {"stable": 1, "canary": again.version}
    finally:
        stop.set()
        poller.join(timeout=60)
        if poller.is_alive():
            poller.kill()
    with open(report_file) as f:
        report = json.load(f)
    counts = {release_phases.PHASES.get(p, p): n for p, n in landed.items()}
    print(f"\nphases (s) { {p: round(d, 4) for p, d in durations.items()} }; {trials} kills "
          f"landed {counts}; outcomes {outcomes}; poller {report['passes']} passes")

    assert report["violations"] == []
    assert report["passes"] > 100 and report["labelled_seen"] > 50
    for phase in release_phases.PHASES:
        assert landed.get(phase, 0) >= PER_PHASE, (phase, landed)
    assert outcomes.get("killed between contract and record", 0) >= 1, outcomes
    assert not [n for n in os.listdir(base) if n.startswith(".tmp-")]
