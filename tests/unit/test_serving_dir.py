"""Tests of pushing into a TF Serving base path, with fake SavedModel directories."""

from __future__ import annotations

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
