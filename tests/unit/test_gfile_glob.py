"""Input files are listed as TFX lists them: `gfile_glob` against `tf.io.gfile.glob` itself on
a real tree with dot-files, nested folders and every kind of pattern; then what the pre-flight
check and the up-to-date fingerprint make of a dot-file TFX would read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.data_check import DataCheckError, find_input_files
from components.data_check.gfile_glob import fnmatch_pathname, gfile_glob

REPO = Path(__file__).resolve().parents[2]

FILES = [
    "span-2/Split-train/a.tfrecord.gz", "span-2/Split-train/.part.tfrecord.gz",
    "span-2/Split-train/b.txt", "span-2/Split-train/nested/c.tfrecord.gz",
    "span-2/Split-train/.hidden/d.tfrecord.gz", "span-2/Split-eval/e.tfrecord.gz",
    "span-10/Split-train/f.tfrecord.gz", ".span-3/Split-train/g.tfrecord.gz",
    "span-2/Split-train/x1.gz", "span-2/Split-train/x[1].gz", "span-2/Split-train/]x",
    "span-2/Split-train/7up", "span-2/Split-train/q?.gz", "span-2/Split-train/st*r",
    "span-2/Split-train/a-b", "span-2/Split-train/^c", "span-2/Split-train/!d",
    "span-2/Split-train/back\\slash",
]
PATTERNS = [
    # what the pipeline uses, and dot-files
    "span-2/Split-train/*.tfrecord.gz", "span-2/*/*", "*/Split-*/.*", "*/*/*/*", "*", ".*",
    # ? and [...]: ranges, negation with ! and ^, a leading ], classes, unclosed, reversed
    "span-?/Split-train/*", "span-[0-9]/*/*.gz", "span-[!2]*/*/*", "span-[^2]*/*/*",
    "span-2/Split-train/?part*", "span-2/Split-train/[.]part*", "span-2/Split-train/x[1].gz",
    "span-2/Split-train/[]x]*", "span-2/Split-train/[!]x]*", "span-2/Split-train/[]-a]*",
    "span-2/Split-train/[[:digit:]]*", "span-2/Split-train/[[:alpha:]]?*",
    "span-2/Split-train/[[:foo:]]*", "span-2/Split-train/[a-", "span-2/Split-train/x[",
    "span-2/Split-train/[z-a]*", "span-2/Split-train/[a-c-e]*", "span-2/Split-train/[/]*",
    "span-2/Split-train/[\\^]*", "span-2/Split-train/[^^]*", "span-2/Split-train/[a\\-b]*",
    # backslash escapes
    "span-2/Split-train/x\\[1].gz", "span-2/Split-train/q\\?.gz", "span-2/Split-train/st\\*r",
    "span-2/Split-train/back\\\\slash", "span-2/Split-train/back?slash",
    "span-2/Split-train/*\\",
    # no glob, folders, trailing slash, ** (one level for TensorFlow), odd paths
    "span-2/Split-train/a.tfrecord.gz", "span-2", "missing/*", "span-*/Split-train",
    "span-2/Split-train/", "span-2/Split-train/*/", "span-2/Split-train/**",
    "span-2//Split-train/*", "span-2/./Split-train/*", "span-2/Split-train/../Split-eval/*",
    "span-*/../span-2/Split-eval/*",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("glob")
    for name in FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_paths_as_tensorflow(tree, pattern):
    import tensorflow as tf

    full = f"{tree}/{pattern}"
    assert gfile_glob(full) == sorted(tf.io.gfile.glob(full))


@pytest.mark.parametrize("pattern", ["*/Split-train/*", "span-2/Split-train/*", "*", ".*/*/*"])
def test_same_relative_paths_as_tensorflow(tree, pattern, monkeypatch):
    import tensorflow as tf

    monkeypatch.chdir(tree)
    assert gfile_glob(pattern) == sorted(tf.io.gfile.glob(pattern))


def test_dot_files_match_a_star_unlike_python_glob(tree):
    import glob

    pattern = f"{tree}/span-2/Split-train/*.tfrecord.gz"
    assert f"{tree}/span-2/Split-train/.part.tfrecord.gz" in gfile_glob(pattern)
    assert f"{tree}/span-2/Split-train/.part.tfrecord.gz" not in glob.glob(pattern)


def test_fnmatch_pathname_never_crosses_a_slash():
    assert fnmatch_pathname("a/*", "a/.b")
    assert not fnmatch_pathname("a/*", "a/b/c")
    assert not fnmatch_pathname("a?b", "a/b")
    assert not fnmatch_pathname("a[!x]b", "a/b")


def _copy_span(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "penguins", data)
    return data


def test_preflight_refuses_a_corrupt_dot_file_naming_it(tmp_path):
    from pipeline.app.preflight import preflight
    from pipeline.config import load_config

    data = _copy_span(tmp_path)
    cfg = load_config("local", None, {"work_dir": str(tmp_path / "var"),
                                      "data": {"root": str(data)}})
    assert preflight(cfg) == 2
    bad = data / "span-2" / "Split-train" / ".part.tfrecord.gz"
    bad.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(DataCheckError) as e:
        preflight(cfg)
    message = str(e.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message


def test_the_data_fingerprint_follows_a_new_dot_file(tmp_path):
    from pipeline.app.up_to_date import input_fingerprint
    from pipeline.config import load_config

    data = _copy_span(tmp_path)
    cfg = load_config("local", None, {"work_dir": str(tmp_path / "var"),
                                      "data": {"root": str(data)}})
    before = input_fingerprint(cfg, 2)
    good = next((data / "span-2" / "Split-train").glob("*.tfrecord.gz"))
    shutil.copy(good, data / "span-2" / "Split-train" / ".more.tfrecord.gz")
    after = input_fingerprint(cfg, 2)
    assert after["data"] != before["data"]
    assert {k for k in before if before[k] != after[k]} == {"data"}


def test_glob_characters_in_the_data_root_are_interpreted_as_tfx_does(tmp_path):
    root = tmp_path / "in[put]"
    (root / "span-1").mkdir(parents=True)
    (root / "span-1" / "a.tfrecord.gz").write_bytes(b"")
    with pytest.raises(DataCheckError, match="glob characters"):
        find_input_files(str(root), ["span-1/*.tfrecord.gz"])
    assert os.path.isdir(root)
