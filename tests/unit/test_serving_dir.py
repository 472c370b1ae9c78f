"""Tests of pushing into a TF Serving base path, with fake SavedModel directories."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from components.serving import PushError, PushResult, ServingDir, model_content_hash
from components.serving.files import TMP_PREFIX

# spawn, not fork: other tests in the session may have loaded TensorFlow's threads.
CTX = multiprocessing.get_context("spawn")


def make_model(parent, name: str, seed: int) -> str:
    """A fake SavedModel: random bytes where TF would write a graph and variables."""
    rng = random.Random(seed)
    model = parent / name
    (model / "variables").mkdir(parents=True)
    (model / "assets").mkdir()
    (model / "saved_model.pb").write_bytes(rng.randbytes(2048))
    (model / "variables" / "variables.index").write_bytes(rng.randbytes(64))
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(rng.randbytes(4096))
    return str(model)


def numeric_dirs(base) -> list[str]:
    return sorted(n for n in os.listdir(base) if n.isdigit())


def temp_entries(base) -> list[str]:
    return [n for n in os.listdir(base) if n.startswith(TMP_PREFIX)]


def tree(path) -> dict[str, bytes]:
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


@pytest.fixture
def base(tmp_path):
    return tmp_path / "serving" / "penguin"  # missing on purpose: push creates it


def test_first_push_is_version_1_with_identical_content(tmp_path, base):
    model = make_model(tmp_path, "model_a", seed=1)
    result = ServingDir(str(base)).push(model)

    expected_hash = model_content_hash(model)
    assert result == PushResult(
        version=1, path=str(base / "1"), content_hash=expected_hash, reused=False
    )
    assert tree(base / "1") == tree(model)
    assert os.path.isdir(base / "1" / "assets")  # empty directories are copied too
    assert model_content_hash(str(base / "1")) == expected_hash
    metadata = json.loads((base / ".versions" / "1.json").read_text())
    assert metadata["version"] == 1 and metadata["content_hash"] == expected_hash
    assert metadata["pushed_at"].endswith("+00:00")
    assert (base / ".version_counter").read_text() == "1\n"
    assert temp_entries(base) == []


def test_pushing_identical_content_reuses_the_version(tmp_path, base):
    serving = ServingDir(str(base))
    first = serving.push(make_model(tmp_path, "model_a", seed=1))
    again = serving.push(make_model(tmp_path, "model_a_copy", seed=1))

    assert again == PushResult(
        version=1, path=first.path, content_hash=first.content_hash, reused=True
    )
    assert numeric_dirs(base) == ["1"]
    assert serving.next_version() == 2


def test_different_models_get_increasing_versions_and_numbers_are_never_reused(tmp_path, base):
    serving = ServingDir(str(base))
    assert serving.push(make_model(tmp_path, "a", seed=1)).version == 1
    model_b = make_model(tmp_path, "b", seed=2)
    assert serving.push(model_b).version == 2

    shutil.rmtree(base / "2")
    assert serving.versions() == [1]
    assert serving.push(make_model(tmp_path, "c", seed=3)).version == 3
    # b's metadata outlives its deleted directory; it must not be "reused" as version 2.
    result_b = serving.push(model_b)
    assert (result_b.version, result_b.reused) == (4, False)
    assert serving.find_by_hash(model_content_hash(model_b)) == 4
    assert numeric_dirs(base) == ["1", "3", "4"]


def test_next_version_survives_a_lost_counter(tmp_path, base):
    serving = ServingDir(str(base))
    serving.push(make_model(tmp_path, "a", seed=1))
    serving.push(make_model(tmp_path, "b", seed=2))
    shutil.rmtree(base / "2")
    os.unlink(base / ".version_counter")
    assert serving.next_version() == 3  # from .versions/2.json


def test_corrupt_counter_is_an_error_not_a_guess(tmp_path, base):
    base.mkdir(parents=True)
    (base / ".version_counter").write_text("seven\n")
    with pytest.raises(PushError, match=".version_counter"):
        ServingDir(str(base)).push(make_model(tmp_path, "a", seed=1))


def test_versions_ignores_hidden_temporary_and_non_numeric_entries(base):
    for name in ("3", "10", ".tmp-9-abc", "latest", ".versions", "7b"):
        (base / name).mkdir(parents=True)
    (base / "5").write_text("a file, not a version")
    assert ServingDir(str(base)).versions() == [3, 10]
    assert ServingDir(str(base / "missing")).versions() == []


def test_model_without_saved_model_pb_is_refused(tmp_path, base):
    model = make_model(tmp_path, "a", seed=1)
    os.unlink(os.path.join(model, "saved_model.pb"))
    with pytest.raises(PushError, match="no saved_model.pb") as exc_info:
        ServingDir(str(base)).push(model)
    assert model in str(exc_info.value)
    assert not base.exists() or (numeric_dirs(base) == [] and temp_entries(base) == [])


def test_stale_temporary_dir_is_ignored_then_cleaned_by_the_next_push(tmp_path, base):
    stale = base / ".tmp-9-abc"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half")
    serving = ServingDir(str(base))
    assert serving.versions() == []

    result = serving.push(make_model(tmp_path, "a", seed=1))
    assert result.version == 1
    assert not stale.exists()
    assert temp_entries(base) == []


def test_push_failing_mid_copy_leaves_nothing_visible(tmp_path, base, monkeypatch):
    real_copy2 = shutil.copy2
    copied = []

    def copy2_then_fail(src, dst, **kwargs):
        if copied:
            raise OSError(28, "No space left on device")
        copied.append(src)
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2_then_fail)
    serving = ServingDir(str(base))
    with pytest.raises(PushError, match="No space left on device"):
        serving.push(make_model(tmp_path, "a", seed=1))
    assert copied  # the failure really was mid-copy
    assert numeric_dirs(base) == []
    assert temp_entries(base) == []
    assert not (base / ".versions").exists() or os.listdir(base / ".versions") == []

    monkeypatch.setattr(shutil, "copy2", real_copy2)
    assert serving.push(make_model(tmp_path, "a2", seed=1)).version == 1


def test_source_changing_during_the_copy_is_refused(tmp_path, base, monkeypatch):
    model = make_model(tmp_path, "a", seed=1)
    real_copy2 = shutil.copy2

    def copy2_with_concurrent_writer(src, dst, **kwargs):
        with open(os.path.join(model, "saved_model.pb"), "ab") as f:
            f.write(b"retrained")
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2_with_concurrent_writer)
    with pytest.raises(PushError, match="changed while it was being pushed"):
        ServingDir(str(base)).push(model)
    assert numeric_dirs(base) == [] and temp_entries(base) == []


def _push_after_barrier(base: str, model: str, barrier, results) -> None:
    barrier.wait()
    try:
        result = ServingDir(base).push(model)
    except Exception as e:  # reported to the test instead of leaving it waiting
        results.put((model, repr(e), None))
        raise
    results.put((model, result.version, result.content_hash))


def test_concurrent_pushes_get_distinct_versions(tmp_path, base):
    models = [make_model(tmp_path, f"m{i}", seed=10 + i) for i in range(2)]
    barrier, results = CTX.Barrier(2), CTX.Queue()
    procs = [
        CTX.Process(target=_push_after_barrier, args=(str(base), m, barrier, results))
        for m in models
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)

    assert sorted(version for _, version, _ in outcomes) == [1, 2], outcomes
    assert [p.exitcode for p in procs] == [0, 0]
    assert numeric_dirs(base) == ["1", "2"]
    for model, version, content_hash in outcomes:
        metadata = json.loads((base / ".versions" / f"{version}.json").read_text())
        assert metadata["content_hash"] == content_hash == model_content_hash(model)
        assert tree(base / str(version)) == tree(model)
    assert (base / ".version_counter").read_text() == "2\n"


def _push_and_hang_mid_copy(base: str, model: str, started) -> None:
    real_copy2 = shutil.copy2

    def copy2_then_hang(src, dst, **kwargs):
        real_copy2(src, dst, **kwargs)
        started.set()
        time.sleep(600)

    shutil.copy2 = copy2_then_hang
    ServingDir(base).push(model)


def test_push_killed_mid_copy_leaves_no_version_and_does_not_block_the_next(tmp_path, base):
    model = make_model(tmp_path, "a", seed=1)
    started = CTX.Event()
    proc = CTX.Process(target=_push_and_hang_mid_copy, args=(str(base), model, started))
    proc.start()
    try:
        assert started.wait(timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=60)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == -signal.SIGKILL

    assert numeric_dirs(base) == []
    assert len(temp_entries(base)) == 1  # the half-copied model, invisible to TF Serving
    # The kernel released the dead process's lock; the next push cleans up after it.
    result = ServingDir(str(base)).push(model)
    assert (result.version, result.reused) == (1, False)
    assert temp_entries(base) == []


# --- the lock: a bounded wait that names its holder -------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from components.serving import ServingDir
with ServingDir({base!r}).lock():
    print("held", flush=True)
    time.sleep(120)
"""


def hold_lock_in_another_process(base) -> subprocess.Popen:
    """A real process that takes the base path's lock and keeps it; its command line carries a
    marker the error message must show."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(repo=REPO, base=str(base)), "holder-marker-7"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_waiting_for_the_lock_times_out_naming_the_holder(tmp_path, base):
    from components.serving import LockTimeout, ReleaseRequest, release_version

    model = make_model(tmp_path, "a", seed=1)
    holder = hold_lock_in_another_process(base)
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            ServingDir(str(base), lock_timeout=0.5).push(model)
        waited = time.monotonic() - start
        message = str(caught.value)
        assert 0.5 <= waited < 2.0
        assert f"gave up after 0.5 s waiting for the lock of {base}" in message
        assert f"held by pid {holder.pid} (" in message and "holder-marker-7" in message
        assert " since 20" in message and " s ago" in message and "\n" not in message
        with pytest.raises(LockTimeout, match=f"pid {holder.pid}"):
            release_version(str(base), ReleaseRequest(model_dir=model, model_name="penguin"),
                            lock_timeout=0.2)
        assert numeric_dirs(base) == []
    finally:
        holder.kill()
        holder.wait(timeout=60)
    # The kernel dropped the dead holder's lock: the next push gets it at once.
    start = time.monotonic()
    assert ServingDir(str(base), lock_timeout=0.5).push(model).version == 1
    assert time.monotonic() - start < 0.5
    assert (base / ".lock").read_text() == ""  # emptied when let go


def test_cli_waiting_for_the_lock_fails_in_one_line_naming_the_holder(tmp_path, base):
    from components.serving import ReleaseRequest, release_version

    release_version(str(base), ReleaseRequest(model_dir=make_model(tmp_path, "a", seed=1),
                                              model_name="penguin"))
    config = tmp_path / "release.yaml"
    config.write_text(
        f"pusher: {{base_path: {base}, serving: {{lock_timeout_seconds: 0.5}}}}\n"
    )
    holder = hold_lock_in_another_process(base)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "release", "promote", "canary",
             "--config", str(config), "--no-metadata"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: gave up after 0.5 s waiting for the lock of ")
    assert f"held by pid {holder.pid} (" in proc.stderr and "holder-marker-7" in proc.stderr


# --- leftovers of a killed push, removed by the next writer, whichever it is -------------------


def _leftovers(base) -> dict[str, list[str]]:
    """The temporaries under the base path and its hidden directories."""
    out = {"": temp_entries(base)}
    for name in os.listdir(base):
        if name.startswith(".") and not name.startswith(TMP_PREFIX) and (base / name).is_dir():
            out[name] = [n for n in os.listdir(base / name) if n.startswith(TMP_PREFIX)]
    return {k: v for k, v in out.items() if v}


@pytest.mark.slow
def test_every_entry_point_removes_what_a_killed_push_left(tmp_path, base):
    from components.serving import (
        ReleaseRefused,
        ReleaseRequest,
        promote,
        prune,
        release_version,
        set_traffic,
    )

    # A real push, killed mid-copy, leaves a half-copied version under a temporary name.
    killed = make_model(tmp_path, "killed", seed=9)
    started = CTX.Event()
    proc = CTX.Process(target=_push_and_hang_mid_copy, args=(str(base), killed, started))
    proc.start()
    try:
        assert started.wait(timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=60)
    finally:
        if proc.is_alive():
            proc.kill()
    # ... plus what a writer killed mid-write leaves in the bookkeeping directories.
    (base / ".releases").mkdir(exist_ok=True)
    (base / ".releases" / ".tmp-3.json-dead").write_text("{")
    (base / ".tmp-labels.json-dead").write_text("{")
    left = _leftovers(base)
    assert len(left[""]) == 2 and left[".releases"] == [".tmp-3.json-dead"]
    kept = tmp_path / "leftovers"
    for directory, names in left.items():
        (kept / directory).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.move(str(base / directory / name), str(kept / directory / name))

    def inject_leftovers() -> None:
        shutil.copytree(kept, base, symlinks=True, dirs_exist_ok=True)

    def release(name: str, seed: int, model_name: str = "penguin"):
        model = make_model(tmp_path, name, seed)
        return release_version(str(base), ReleaseRequest(model_dir=model, model_name=model_name))

    # entry point: (what is there before the push was killed, the call after it)
    entry_points = {
        "ServingDir.push": (
            None, lambda: ServingDir(str(base)).push(make_model(tmp_path, "p", 1))
        ),
        "release_version": (None, lambda: release("r", 2)),
        "a refused release_version": (lambda: release("o1", 3),
                                      lambda: release("o2", 4, "other")),
        "a refused promote": (None, lambda: promote(str(base), "canary")),
        "set_traffic": (lambda: release("t", 5), lambda: set_traffic(str(base), 0)),
        "prune": (lambda: release("pr", 6), lambda: prune(str(base), 5)),
    }
    for name, (before, call) in entry_points.items():
        shutil.rmtree(base)
        if before:
            before()
        inject_leftovers()
        assert _leftovers(base) == left
        with contextlib.suppress(ReleaseRefused):
            call()
        assert _leftovers(base) == {}, name


def test_model_content_hash_depends_on_paths_and_contents(tmp_path):
    a = make_model(tmp_path, "a", seed=1)
    assert model_content_hash(a) == model_content_hash(make_model(tmp_path, "a2", seed=1))
    renamed = make_model(tmp_path, "b", seed=1)
    os.rename(os.path.join(renamed, "assets"), os.path.join(renamed, "extra"))
    assert model_content_hash(renamed) == model_content_hash(a)  # empty dirs do not count
    os.rename(
        os.path.join(renamed, "variables", "variables.index"),
        os.path.join(renamed, "variables", "variables.idx"),
    )
    assert model_content_hash(renamed) != model_content_hash(a)
    with pytest.raises(PushError, match="does not exist"):
        model_content_hash(str(tmp_path / "missing"))


def test_module_does_not_import_tensorflow():
    code = (
        "import sys, components.pusher; "
        "assert 'tensorflow' not in sys.modules and 'tfx' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
