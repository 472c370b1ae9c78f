"""Fault tests of releases: SIGKILL in every phase of a release while a TF-Serving-like poller
watches.

The poller does what TF Serving does with a base path: it lists the numeric children every
couple of milliseconds and "loads" each new one, which here means checking that it is exactly
one of the source models (every file present, with the right size and SHA-256, and nothing
else); and it parses ``models.config`` as ModelServerConfig text at every pass, checking that
every label points at a served version and that every served version is complete.

Kills are aimed at the phases of a release (tests/unit/release_phases.py: before the copy,
during the copy, after the rename and before the record, between the two ``models.config``
steps, after the label move); the phase each kill landed in is read from the child's markers,
and each phase must be hit at least ``PER_PHASE`` times. After every kill, the same invariant
the poller checks is asserted on what the kill left.
"""

from __future__ import annotations

import hashlib
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
    ReleaseRequest,
    list_releases,
    model_content_hash,
    promote,
    read_releases,
    read_state,
    release_version,
)
from tests.unit import release_phases

# spawn, not fork: other tests in the session may have loaded TensorFlow's threads.
CTX = multiprocessing.get_context("spawn")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PER_PHASE = 5  # kills that must land in each phase
MAX_TRIALS = 36
STEP_WAIT = 0.05  # seconds between the two steps of a label move, as a real release would wait


def make_big_model(parent, name: str, seed: int, megabytes: float = 4.0) -> str:
    """A fake SavedModel of about ``megabytes`` MB, split over several files."""
    rng = random.Random(seed)
    size = int(megabytes * 1024 * 1024)
    model = os.path.join(parent, name)
    os.makedirs(os.path.join(model, "variables"))
    os.makedirs(os.path.join(model, "assets"))
    files = {
        "saved_model.pb": size // 8,
        "fingerprint.pb": 64,
        "variables/variables.index": 4096,
        "variables/variables.data-00000-of-00001": size * 5 // 8,
        "assets/vocabulary.txt": size // 4,
    }
    for rel, n in files.items():
        with open(os.path.join(model, rel), "wb") as f:
            f.write(rng.randbytes(n))
    return model


def manifest(model_dir: str) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file under ``model_dir``."""
    out = {}
    for root, _, files in os.walk(model_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, model_dir)] = [os.path.getsize(path), digest]
    return out


# --- the poller (runs in its own process) ------------------------------------------------------


def _load(version_dir: str, manifests: dict[str, dict[str, list]]) -> str | None:
    """"Load" a version as TF Serving would: None if complete, else what is wrong."""
    try:
        found = manifest(version_dir)
    except OSError as e:
        return f"unreadable: {e}"
    expected = manifests.get(found.get("saved_model.pb", [0, ""])[1])
    if expected is None:
        return f"saved_model.pb missing or unknown; files: {sorted(found)}"
    if found != expected:
        missing = sorted(set(expected) - set(found))
        wrong = sorted(k for k in expected if k in found and found[k] != expected[k])
        return f"incomplete: missing {missing}, wrong size or content {wrong}"
    return None


def _check_config(text: str) -> tuple[list[int], str | None]:
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        return [], f"models.config does not parse: {e}"
    models = list(config.model_config_list.config)
    if len(models) != 1:
        return [], f"models.config: {len(models)} models"
    versions = list(models[0].model_version_policy.specific.versions)
    if not versions:
        return [], "models.config: no versions"
    for label, version in models[0].version_labels.items():
        if version not in versions:
            return versions, f"models.config: label {label} -> {version} not in {versions}"
    return versions, None


def read_manifests(manifests_file: str) -> dict[str, dict[str, list]]:
    with open(manifests_file) as f:
        return {m["saved_model.pb"][1]: m for m in json.load(f)}


def check_pass(base: str, manifests, loaded: dict[int, str | None]) -> tuple[bool, list[str]]:
    """One pass of a server over the base path: load new versions, read models.config.

    Returns:
        (whether models.config was there, the violations seen).
    """
    violations = []
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        names = []
    for name in names:
        if name.isascii() and name.isdigit() and int(name) not in loaded:
            problem = _load(os.path.join(base, name), manifests)
            loaded[int(name)] = problem
            if problem:
                violations.append(f"version {name}: {problem}")
    try:
        with open(os.path.join(base, "models.config")) as f:
            text = f.read()
    except FileNotFoundError:
        return False, violations
    versions, problem = _check_config(text)
    if problem:
        violations.append(problem)
    for version in versions:
        if version not in loaded:  # listed before the poller saw the directory
            loaded[version] = _load(os.path.join(base, str(version)), manifests)
        if loaded[version]:
            violations.append(f"models.config serves bad version {version}")
    return True, violations


def poll_like_tf_serving(base: str, manifests_file: str, stop, report_file: str) -> None:
    manifests = read_manifests(manifests_file)
    loaded: dict[int, str | None] = {}
    violations: list[str] = []
    passes = configs = 0
    while not stop.is_set():
        passes += 1
        seen_config, problems = check_pass(base, manifests, loaded)
        configs += seen_config
        violations += problems
        time.sleep(0.002)
    with open(report_file, "w") as f:
        json.dump(
            {"passes": passes, "configs": configs, "loaded": sorted(loaded),
             "violations": violations[:20]},
            f,
        )


# --- the releases (children killed in each phase) ----------------------------------------------

RELEASE = """
from components.serving import ReleaseRequest, release_version
release_version(
    {base!r},
    ReleaseRequest(model_dir={model!r}, model_name="penguin", metrics={{"loss": 0.1}},
                   spans=[{trial}]),
    between_steps=between_steps,
)
"""


def _start_release(base: str, model: str, trial: int):
    release = RELEASE.format(base=base, model=model, trial=trial)
    return release_phases.start(release_phases.child_code(REPO, base, STEP_WAIT, release))


# Kills are aimed by time at phases of tens of milliseconds: run alone (make test).
@pytest.mark.slow
@pytest.mark.serial
def test_sigkill_in_every_phase_of_a_release_never_exposes_an_incomplete_version_or_config(
    tmp_path,
):
    base = str(tmp_path / "serving" / "penguin")
    models = [make_big_model(str(tmp_path), f"m{i}", seed=i) for i in range(MAX_TRIALS + 2)]
    manifests_file = str(tmp_path / "manifests.json")
    with open(manifests_file, "w") as f:
        json.dump([manifest(m) for m in models], f)
    manifests = read_manifests(manifests_file)
    stop, report_file = CTX.Event(), str(tmp_path / "poller.json")
    poller = CTX.Process(
        target=poll_like_tf_serving, args=(base, manifests_file, stop, report_file)
    )
    poller.start()
    landed: dict[str, int] = {}
    checked: dict[str, int] = {}
    trials = 0
    try:
        # Model 0 runs to the end: it measures each phase, and its promotion gives a stable
        # beside each later canary, so label moves involve both labels.
        durations = release_phases.run_to_the_end(_start_release(base, models[0], 0))
        promote(base, "canary")
        rng = random.Random(20240520)
        while trials < MAX_TRIALS and (
            short := [p for p in release_phases.PHASES if landed.get(p, 0) < PER_PHASE]
        ):
            trials += 1
            target = short[trials % len(short)]
            proc = _start_release(base, models[trials], trials)
            phase = release_phases.aim_kill(proc, target, durations, rng)
            if phase != "done":
                assert proc.returncode == -signal.SIGKILL
            landed[phase] = landed.get(phase, 0) + 1
            # The invariant, on what the kill left: a fresh server loading everything there.
            seen_config, problems = check_pass(base, manifests, {})
            assert seen_config and problems == [], (phase, problems)
            checked[phase] = checked.get(phase, 0) + 1
        # A last release runs to the end: it cleans up what the killed ones left.
        last = release_version(
            base, ReleaseRequest(model_dir=models[trials + 1], model_name="penguin")
        )
    finally:
        stop.set()
        poller.join(timeout=60)
        if poller.is_alive():
            poller.kill()
    with open(report_file) as f:
        report = json.load(f)
    counts = {release_phases.PHASES.get(p, p): n for p, n in landed.items()}
    print(f"\nphases (s) { {p: round(d, 4) for p, d in durations.items()} }; {trials} kills "
          f"landed {counts}; poller {report['passes']} passes, {report['configs']} configs "
          f"parsed, versions loaded {report['loaded']}")

    assert report["violations"] == []
    assert report["passes"] > 100 and report["configs"] > 50
    for phase in release_phases.PHASES:
        assert landed.get(phase, 0) >= PER_PHASE, (phase, landed)
        assert checked[phase] == landed[phase]
    # After the last release: no temporaries, every record matches its version's content.
    assert not [n for n in os.listdir(base) if n.startswith(".tmp-")]
    assert not [n for n in os.listdir(os.path.join(base, ".releases")) if n.startswith(".tmp-")]
    records = read_releases(base)
    for record in records:
        assert model_content_hash(record.path) == record.content_hash
    assert len({r.tag for r in records}) == len(records)
    assert [r.release_number for r in records] == list(range(1, len(records) + 1))
    state = read_state(base)
    assert state.labels == {"stable": 1, "canary": last.version}
    listing = list_releases(base)
    assert set(report["loaded"]) <= {v.version for v in listing.versions}


def _release_after_barrier(base: str, model: str, barrier, results) -> None:
    barrier.wait()
    try:
        result = release_version(
            base, ReleaseRequest(model_dir=model, model_name="penguin", metrics={"loss": 0.2})
        )
    except Exception as e:  # reported to the test instead of leaving it waiting
        results.put((model, repr(e), None))
        raise
    results.put((model, result.version, result.tag))


def test_concurrent_releases_get_distinct_versions_and_lose_no_record(tmp_path):
    base = str(tmp_path / "serving" / "penguin")
    outcomes = []
    for round_ in range(3):
        models = [
            make_big_model(str(tmp_path), f"r{round_}-{i}", seed=100 * round_ + i, megabytes=2)
            for i in range(2)
        ]
        barrier, results = CTX.Barrier(2), CTX.Queue()
        procs = [
            CTX.Process(target=_release_after_barrier, args=(base, m, barrier, results))
            for m in models
        ]
        for p in procs:
            p.start()
        outcomes += [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0], outcomes

    assert sorted(version for _, version, _ in outcomes) == [1, 2, 3, 4, 5, 6], outcomes
    records = {r.version: r for r in read_releases(base)}
    assert sorted(records) == [1, 2, 3, 4, 5, 6]
    for model, version, tag in outcomes:
        assert records[version].tag == tag
        assert records[version].content_hash == model_content_hash(model)
    assert sorted(r.release_number for r in records.values()) == [1, 2, 3, 4, 5, 6]
    state = read_state(base)
    assert state.labels == {"canary": 6}
    assert [h["version"] for h in state.history] == [1, 2, 3, 4, 5, 6]
    with open(os.path.join(base, "models.config")) as f:
        versions, problem = _check_config(f.read())
    assert (versions, problem) == ([6], None)
