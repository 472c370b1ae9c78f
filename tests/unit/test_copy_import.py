"""ImportExampleGen without re-encoding (components/example_gen/copy_import.py): which inputs
qualify, how files are placed, and that a corrupt file is refused before anything is kept.
The TFX executor around it: tests/unit/test_file_import_executor.py."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
from pathlib import Path

import pytest

from components.data_check import DataCheckError
from components.example_gen import copy_import
from components.example_gen.copy_import import import_splits, place_file, why_not_copyable

REPO = Path(__file__).resolve().parents[2]
SPAN = REPO / "data" / "penguins" / "span-2"
PATTERNS = {"train": "span-2/Split-train/*", "eval": "span-2/Split-eval/*"}


@pytest.fixture
def root(tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(SPAN, data / "span-2")
    return data


def _uris(tmp_path: Path) -> dict[str, str]:
    return {s: str(tmp_path / "examples" / f"Split-{s}") for s in PATTERNS}


def test_split_folders_of_gzip_files_qualify(root):
    assert why_not_copyable(str(root), PATTERNS, hash_splits=False,
                            payload_is_example=True) is None


@pytest.mark.parametrize("change, reason", [
    ({"hash_splits": True}, "split by hash buckets"),
    ({"payload_is_example": False}, "not tf.Example"),
])
def test_what_needs_the_records_read_goes_through_beam(root, change, reason):
    kwargs = {"hash_splits": False, "payload_is_example": True, **change}
    assert reason in why_not_copyable(str(root), PATTERNS, **kwargs)


def test_remote_and_uncompressed_inputs_go_through_beam(root):
    assert "not a local path" in why_not_copyable("gs://bucket/data", PATTERNS, False, True)
    plain = root / "span-2" / "Split-eval" / "extra.tfrecord"
    with gzip.open(next((root / "span-2" / "Split-eval").glob("*.gz"))) as f:
        plain.write_bytes(f.read())
    reason = why_not_copyable(str(root), PATTERNS, False, True)
    assert str(plain) in reason and "split eval" in reason and "not GZIP" in reason


def test_copies_are_exact_keep_their_names_and_are_counted(root, tmp_path):
    [split_train, split_eval] = import_splits(str(root), PATTERNS, _uris(tmp_path), "copy")
    for done in (split_train, split_eval):
        src_dir = root / "span-2" / f"Split-{done.name}"
        assert sorted(done.files) == sorted(p.name for p in src_dir.iterdir())
        for name, (src, how) in done.files.items():
            placed = Path(_uris(tmp_path)[done.name]) / name
            assert src == str(src_dir / name)
            assert how in ("copy", "reflink")
            assert placed.read_bytes() == Path(src).read_bytes()
            assert os.stat(placed).st_ino != os.stat(src).st_ino
        assert done.records > 0
    assert split_train.records > split_eval.records


def test_link_mode_shares_the_inode_and_falls_back_to_a_copy(root, tmp_path, monkeypatch):
    [train, _] = import_splits(str(root), PATTERNS, _uris(tmp_path), "link")
    name, (src, how) = next(iter(train.files.items()))
    assert how == "link"
    assert os.stat(Path(_uris(tmp_path)["train"]) / name).st_ino == os.stat(src).st_ino

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(copy_import.os, "link", cross_device)
    dst = tmp_path / "elsewhere.gz"
    assert place_file(src, str(dst), "link") in ("copy", "reflink")
    assert dst.read_bytes() == Path(src).read_bytes()


def test_a_file_that_cannot_be_cloned_is_copied(root, tmp_path, monkeypatch):
    def no_clone(fd, request, arg):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(copy_import.fcntl, "ioctl", no_clone)
    src = next((root / "span-2" / "Split-eval").glob("*.gz"))
    assert place_file(str(src), str(tmp_path / "c.gz"), "copy") == "copy"
    assert (tmp_path / "c.gz").read_bytes() == src.read_bytes()


def test_same_names_in_two_folders_are_numbered(root, tmp_path):
    deep = root / "span-2" / "Split-train"
    (deep / "a").mkdir()
    (deep / "b").mkdir()
    original = next(deep.glob("*.gz"))
    shutil.copy(original, deep / "a" / "part.tfrecord.gz")
    shutil.copy(original, deep / "b" / "part.tfrecord.gz")
    patterns = {"train": "span-2/Split-train/*/*.gz"}
    [done] = import_splits(str(root), patterns, _uris(tmp_path), "copy")
    assert sorted(done.files) == ["00000-part.tfrecord.gz", "00001-part.tfrecord.gz"]


def test_a_corrupt_file_is_refused_naming_it_and_nothing_is_kept(root, tmp_path):
    bad = next((root / "span-2" / "Split-eval").glob("*.gz"))
    with gzip.open(bad) as f:
        raw = f.read()
    with gzip.open(bad, "wb") as f:
        f.write(raw[: len(raw) - 7])  # the last record loses its tail
    with pytest.raises(DataCheckError) as e:
        import_splits(str(root), PATTERNS, _uris(tmp_path), "copy")
    message = str(e.value)
    assert message.startswith(f"{bad}: truncated record #") and "\n" not in message
    assert str(tmp_path / "examples") not in message
    leftover = [p for p in (tmp_path / "examples").rglob("*") if p.is_file()]
    assert leftover == []


def test_a_retried_execution_replaces_what_it_left(root, tmp_path):
    uris = _uris(tmp_path)
    os.makedirs(uris["eval"])
    name = next((root / "span-2" / "Split-eval").glob("*.gz")).name
    Path(uris["eval"], name).write_bytes(b"half written")
    import_splits(str(root), PATTERNS, uris, "copy")
    assert Path(uris["eval"], name).read_bytes() == (
        root / "span-2" / "Split-eval" / name).read_bytes()


def test_the_mode_is_copy_or_link(root, tmp_path):
    with pytest.raises(ValueError, match="copy or link"):
        import_splits(str(root), PATTERNS, _uris(tmp_path), "beam")
