"""The up-to-date check that lets an unchanged re-run skip TFX: real TFRecord files, a real
SQLite ML Metadata store laid out as TFX lays it out, a real serving base path. Each thing that
can change a run's outcome must send the next run through TFX."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from components.data_check import check_tfrecord_file, fingerprint
from components.metadata import open_store
from pipeline.app.up_to_date import (
    check,
    digest_cache_path,
    input_fingerprint,
    save_record,
    source_fingerprint,
)
from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]
RUN = "20260101T000000-aaaaaa"


class History:
    """A real MLMD store with the contexts TFX writes: one run, one node, one output."""

    def __init__(self, path: str):
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = path
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(config)
        self.exec_type = self.store.put_execution_type(pb.ExecutionType(name="Trainer"))
        self.model_type = self.store.put_artifact_type(pb.ArtifactType(name="Model"))
        self.run_type = self.store.put_context_type(pb.ContextType(name="pipeline_run"))
        self.node_type = self.store.put_context_type(pb.ContextType(name="node"))

    def run(self, run_id: str, output_uri: str) -> None:
        [artifact_id] = self.store.put_artifacts([pb.Artifact(type_id=self.model_type,
                                                              uri=output_uri)])
        [execution_id] = self.store.put_executions(
            [pb.Execution(type_id=self.exec_type, last_known_state=pb.Execution.COMPLETE)])
        self.store.put_events([pb.Event(artifact_id=artifact_id, execution_id=execution_id,
                                        type=pb.Event.OUTPUT)])
        contexts = self.store.put_contexts([
            pb.Context(type_id=self.run_type, name=run_id),
            pb.Context(type_id=self.node_type, name=f"penguin.Trainer.{run_id}"),
        ])
        self.store.put_attributions_and_associations(
            [], [pb.Association(context_id=c, execution_id=execution_id) for c in contexts])

    def release_operation(self) -> None:
        self.store.put_executions([pb.Execution(type_id=self.exec_type)])


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "penguins", data)
    schema = tmp_path / "schema.pbtxt"
    shutil.copy(REPO / "data" / "schema" / "schema.pbtxt", schema)
    base = tmp_path / "serving"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"model")
    (base / "labels.json").write_text('{"labels": {"canary": 1}}')
    overrides = {"work_dir": str(tmp_path / "var"), "pipeline_name": "penguin",
                 "data": {"root": str(data), "schema": str(schema)},
                 "pusher": {"base_path": str(base)}}
    cfg = load_config("local", None, overrides)
    os.makedirs(tmp_path / "var")
    history = History(cfg.resolved_metadata_path)
    output = tmp_path / "var" / "pipeline_root" / "Trainer" / "model" / "7"
    output.mkdir(parents=True)
    history.run(RUN, str(output))
    result = {"run_id": RUN, "status": "succeeded", "components": []}
    save_record(cfg, input_fingerprint(cfg, 2), result, history.store)
    return tmp_path, cfg, overrides, history


def verdict(cfg, span: int = 2):
    return check(cfg, input_fingerprint(cfg, span), open_store(cfg.resolved_metadata_path))


def test_nothing_changed_is_up_to_date_and_returns_the_run(setup):
    _, cfg, _, _ = setup
    v = verdict(cfg)
    assert v.up_to_date, v.reason
    assert v.record["run_id"] == RUN
    assert v.record["outputs"] == [str(Path(cfg.resolved_pipeline_root) / "Trainer/model/7")]


def test_no_record_means_through_tfx(setup):
    _, cfg, _, _ = setup
    (Path(cfg.resolved_pipeline_root) / "last_run.json").unlink()
    v = verdict(cfg)
    assert not v.up_to_date and v.reason == "no earlier successful run"


def test_unreadable_record_means_through_tfx(setup):
    _, cfg, _, _ = setup
    (Path(cfg.resolved_pipeline_root) / "last_run.json").write_text("{truncated")
    v = verdict(cfg)
    assert not v.up_to_date and "unreadable run record" in v.reason


def test_a_touched_data_file_is_a_change(setup):
    tmp, cfg, _, _ = setup
    f = next((tmp / "data" / "span-2" / "Split-train").iterdir())
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    v = verdict(cfg)
    assert not v.up_to_date and v.reason == f"data changed since run {RUN}"


def _tfrecord_frames(raw: bytes) -> list[bytes]:
    """Each record of an uncompressed TFRecord stream with its framing (length, CRCs)."""
    frames, i = [], 0
    while i < len(raw):
        (n,) = struct.unpack_from("<Q", raw, i)
        frames.append(raw[i:i + 16 + n])
        i += 16 + n
    return frames


def rewrite_keeping_size_and_mtime(path: Path) -> None:
    """Other examples in the same GZIP TFRecord file, of the same byte size and mtime, as
    `cp -p`, `rsync -t` or an unpacked archive leave them: the first record becomes a copy of
    the second, the stream is deflated again and padded to the old size in the gzip header's
    extra field (FEXTRA, which every reader skips), and the mtime is restored."""
    st = path.stat()
    frames = _tfrecord_frames(gzip.decompress(path.read_bytes()))
    assert len(frames) >= 2 and frames[0] != frames[1]
    data = b"".join([frames[1], *frames[1:]])
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    extra = st.st_size - 10 - 2 - len(body) - 8  # header, XLEN, deflate stream, trailer
    assert extra >= 4, "the new content does not fit in the old size"
    header = (b"\x1f\x8b\x08\x04\0\0\0\0\x02\xff" + struct.pack("<H", extra)
              + b"PD" + struct.pack("<H", extra - 4) + bytes(extra - 4))
    path.write_bytes(header + body + struct.pack("<II", zlib.crc32(data), len(data)))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_a_rewrite_keeping_size_and_mtime_is_a_change(setup):
    # ImportExampleGen's own fingerprint (name, size, mtime) does not see it.
    tmp, cfg, _, _ = setup
    f = next((tmp / "data" / "span-2" / "Split-train").iterdir())
    records = check_tfrecord_file(str(f), full_data_crc=True)
    rewrite_keeping_size_and_mtime(f)
    assert check_tfrecord_file(str(f), full_data_crc=True) == records  # still valid data
    v = verdict(cfg)
    assert not v.up_to_date and v.reason == f"data changed since run {RUN}"


def test_the_check_keeps_the_content_digests_beside_the_record(setup):
    _, cfg, _, _ = setup
    cache = Path(digest_cache_path(cfg))
    assert cache.parent == Path(cfg.resolved_pipeline_root)
    # Files copied a moment ago are not cached yet (a write in the same timestamp tick could
    # go unseen): hashed again until they are older than RACY_SECONDS.
    assert not cache.exists()


def test_an_unchanged_file_is_hashed_once_and_a_rewrite_again(tmp_path, monkeypatch):
    # Every file counts as settled (older than the racy window), as data usually is.
    monkeypatch.setattr(fingerprint, "RACY_SECONDS", -3600.0)
    shutil.copytree(REPO / "data" / "penguins" / "span-2", tmp_path / "span-2")
    files = sorted(str(p) for p in (tmp_path / "span-2").rglob("*.gz"))
    cache = str(tmp_path / "digests.json")
    first = fingerprint.content_fingerprint(files, str(tmp_path), cache)
    assert first == fingerprint.content_fingerprint(files, str(tmp_path))  # the same, uncached
    hashed = []
    real = fingerprint.file_digest
    monkeypatch.setattr(fingerprint, "file_digest", lambda p: hashed.append(p) or real(p))
    assert fingerprint.content_fingerprint(files, str(tmp_path), cache) == first
    assert hashed == []  # one stat per file
    time.sleep(0.05)  # past the timestamp tick of the copy (a jiffy: at most 10 ms)
    rewrite_keeping_size_and_mtime(Path(files[1]))
    assert fingerprint.content_fingerprint(files, str(tmp_path), cache) != first
    assert hashed == [files[1]]


def test_a_file_changing_while_it_is_hashed_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "RACY_SECONDS", -3600.0)
    f = tmp_path / "part-0"
    f.write_bytes(b"a" * 100)
    real = fingerprint.file_digest

    def digest_then_append(path):
        digest = real(path)
        with open(path, "ab") as out:
            out.write(b"b")
        return digest

    monkeypatch.setattr(fingerprint, "file_digest", digest_then_append)
    cache = tmp_path / "digests.json"
    fingerprint.file_digests([str(f)], str(cache))
    assert not cache.exists()


def test_the_example_import_is_keyed_on_the_data_content(setup):
    # With --full the run meets TFX's cache, keyed on exec properties: ImportExampleGen's
    # custom_config carries the digest of the span's content, where the data is local.
    from components.tf_process import defer_tfx_components_init, prepare_tf_process

    prepare_tf_process()
    defer_tfx_components_init()
    from pipeline.build import build_pipeline

    tmp, cfg, overrides, _ = setup

    def custom_config(cfg) -> str | None:
        nodes = {c.id: c for c in build_pipeline(cfg).components}
        return nodes["ImportExampleGen"].exec_properties.get("custom_config")

    before = custom_config(cfg)
    packed = json.loads(before)["custom_config"]
    assert packed["@type"].endswith("google.protobuf.StringValue")
    assert packed["value"] == "data-sha256:" + fingerprint.span_fingerprint(
        str(tmp / "data"), ["span-2/Split-train/*", "span-2/Split-eval/*"])
    rewrite_keeping_size_and_mtime(next((tmp / "data" / "span-2" / "Split-eval").iterdir()))
    assert custom_config(cfg) != before
    elsewhere = {**overrides, "data": {**overrides["data"], "root": "gs://bucket/penguins"}}
    assert custom_config(load_config("local", None, elsewhere)) is None


def test_a_new_span_is_a_change(setup):
    tmp, cfg, _, _ = setup
    shutil.copytree(tmp / "data" / "span-2", tmp / "data" / "span-3")
    v = verdict(cfg, span=3)
    assert not v.up_to_date and v.reason.startswith("config, data changed")


def test_another_config_value_is_a_change(setup):
    _, _, overrides, _ = setup
    cfg = load_config("local", None, {**overrides, "trainer": {"train_steps": 7}})
    v = verdict(cfg)
    assert not v.up_to_date and v.reason == f"config changed since run {RUN}"


def test_an_edited_schema_is_a_change(setup):
    tmp, cfg, _, _ = setup
    with open(tmp / "schema.pbtxt", "a") as f:
        f.write("\n# edited\n")
    assert verdict(cfg).reason == f"schema changed since run {RUN}"


def test_anything_new_in_metadata_is_a_change(setup):
    # A release operation (promote, rollback) or any other run writes an execution.
    _, cfg, _, history = setup
    history.release_operation()
    assert verdict(cfg).reason == f"metadata changed since run {RUN}"


@pytest.mark.parametrize("edit", ["label moved", "version removed", "stray entry"])
def test_a_changed_serving_base_path_is_a_change(setup, edit):
    tmp, cfg, _, _ = setup
    base = tmp / "serving"
    if edit == "label moved":
        (base / "labels.json").write_text('{"labels": {"stable": 1}}')
    elif edit == "version removed":
        shutil.rmtree(base / "1")
    else:
        (base / ".tmp-push-2").mkdir()
    assert verdict(cfg).reason == f"serving changed since run {RUN}"


def test_a_deleted_output_is_a_change(setup):
    _, cfg, _, _ = setup
    gone = Path(cfg.resolved_pipeline_root) / "Trainer" / "model" / "7"
    shutil.rmtree(gone)
    assert verdict(cfg).reason == f"an output of run {RUN} is gone: {gone}"


def test_source_fingerprint_follows_every_python_file(tmp_path):
    for package in ("pipeline", "components", "runners"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "a.py").write_text("x = 1\n")
    before = source_fingerprint(tmp_path)
    (tmp_path / "components" / "a.py").write_text("x = 2\n")
    assert source_fingerprint(tmp_path) != before
    (tmp_path / "components" / "a.py").write_text("x = 1\n")
    assert source_fingerprint(tmp_path) == before
    (tmp_path / "runners" / "b.py").write_text("")
    assert source_fingerprint(tmp_path) != before


def test_source_fingerprint_reads_this_repository_by_default(tmp_path):
    # A wrong default root (e.g. after the module moved) hashes no file at all.
    (tmp_path / "empty").mkdir()
    assert source_fingerprint() == source_fingerprint(REPO)
    assert source_fingerprint() != source_fingerprint(tmp_path / "empty")


def test_record_is_plain_json_in_the_pipeline_root(setup):
    _, cfg, _, _ = setup
    record = json.loads((Path(cfg.resolved_pipeline_root) / "last_run.json").read_text())
    assert set(record["fingerprint"]) == {"config", "code", "schema", "data", "stack",
                                          "metadata", "serving"}
    assert record["result"]["run_id"] == RUN


def test_run_pipeline_reuses_the_run_and_leaves_no_progress_handler(setup):
    import logging

    from pipeline.app.progress import ProgressHandler
    from pipeline.app.run import run_pipeline

    _, cfg, _, _ = setup
    started = []
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = run_pipeline(cfg, lambda cfg, run_id: started.append(run_id),
                              on_progress=lambda *a: None)
        left = list(root.handlers)
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
    assert result.status == "succeeded" and result.up_to_date_with == RUN
    assert started == []  # the runner was never asked
    assert not any(isinstance(h, ProgressHandler) for h in left)
