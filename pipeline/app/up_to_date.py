"""Is a run only a repeat of the last one? Answered without TFX, TensorFlow or Beam.

On unchanged data, code and config every TFX node comes back cached and nothing is pushed, but
reaching that verdict through TFX costs ~12 s of imports (TensorFlow, Beam, TFMA) before its
first cache lookup. This module answers the same question in a fraction of a second by
comparing what can change a run's outcome with what it was when the last run that went
through TFX succeeded:

- inputs: the resolved configuration (with absolute paths), the project's source code, the
  schema file's content, the selected span's files as TFX lists them, dot-files included
  (name, size, mtime: ImportExampleGen's own fingerprint, and a digest of each file's whole
  content, so that a rewrite keeping size and mtime is a change too; digests of unchanged files
  come from a stat-keyed cache: components/data_check/fingerprint.py), the Python and library
  versions;
- state a run reads: ML Metadata (any execution, artifact or context created or updated since:
  a release operation, another run, even a failed one, moves it) and the serving base path
  (versions, labels, models.config, release records, the serving contract), as they are after
  the run; a run during which someone else changed them is not recorded (`during_run`);
- the last run's output artifacts, still on disk.

Any difference, an unreadable record or an error while checking sends the run through TFX.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from components import serving
from components.metadata import get_output_artifacts, get_run_executions, metadata_watermark
from pipeline.config import PipelineConfig, config_to_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORD_FILE = "last_run.json"
RECORD_FORMAT = 1
# Source whose change may change what a run does: all of the project's Python.
SOURCE_PACKAGES = ("pipeline", "components", "runners")
# Distributions whose version may change a run's outputs.
STACK = (
    "tfx", "tensorflow", "tf-keras", "tensorflow-model-analysis", "tensorflow-data-validation",
    "tfx-bsl", "apache-beam", "ml-metadata", "protobuf",
)
# The parts of a record, in the order a changed one is reported.
PARTS = ("config", "code", "schema", "data", "stack", "metadata", "serving")


def _sha(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def record_path(cfg: PipelineConfig) -> Path:
    return Path(cfg.resolved_pipeline_root) / RECORD_FILE


def digest_cache_path(cfg: PipelineConfig) -> str:
    """The cache of the input files' content digests, beside the run record (the up-to-date
    check writes it; `build_pipeline` reads it, so the files are hashed once per run)."""
    from components.data_check.fingerprint import CACHE_FILE

    return os.path.join(cfg.resolved_pipeline_root, CACHE_FILE)


def source_fingerprint(root: Path = REPO_ROOT) -> str:
    h = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def _stat_entry(path: str) -> list:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def input_fingerprint(cfg: PipelineConfig, span: int) -> dict[str, str]:
    """What a run reads from disk and config, before it starts.

    Raises:
      DataCheckError: no input file matches (the caller then runs the normal path, which
        reports it).
    """
    from components.data_check import find_input_files
    from components.data_check.fingerprint import content_fingerprint
    from pipeline.build import span_input_patterns

    root = os.path.abspath(cfg.data.root)
    config = config_to_dict(cfg)
    config["_absolute"] = {
        "data_root": root, "schema": os.path.abspath(cfg.data.schema),
        "pipeline_root": cfg.resolved_pipeline_root, "metadata": cfg.metadata_uri,
        "base_path": os.path.abspath(cfg.pusher.base_path), "span": span,
    }
    files = find_input_files(root, span_input_patterns(cfg, span))
    content = content_fingerprint(files, root, digest_cache_path(cfg))
    schema = Path(cfg.data.schema)
    versions = {}
    for name in STACK:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "config": _sha(config),
        "code": source_fingerprint(),
        "schema": _sha(schema.read_bytes()) if schema.is_file() else "missing",
        "data": _sha([[[os.path.relpath(f, root), *_stat_entry(f)] for f in files], content]),
        "stack": _sha([sys.version, platform.machine(), versions]),
    }


def state_fingerprint(cfg: PipelineConfig, store) -> dict[str, str]:
    return {
        "metadata": metadata_watermark(store),
        "serving": serving.fingerprint(os.path.abspath(cfg.pusher.base_path)),
    }


def run_outputs(cfg: PipelineConfig, store, run_id: str) -> list[str]:
    """URIs of the output artifacts of run `run_id`'s executions."""
    uris = []
    for execution in get_run_executions(store, cfg.pipeline_name, run_id).values():
        uris.extend(a.uri for a in get_output_artifacts(store, execution.id) if a.uri)
    return sorted(set(uris))


def save_record(
    cfg: PipelineConfig, inputs: dict[str, str], result: dict[str, Any], store
) -> Path:
    """Writes the record of a successful run (atomically: a reader sees the old or the new)."""
    record = {
        "format": RECORD_FORMAT,
        "run_id": result["run_id"],
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": {**inputs, **state_fingerprint(cfg, store)},
        "outputs": run_outputs(cfg, store, result["run_id"]),
        "result": result,
    }
    path = record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return path


@dataclass
class Freshness:
    """Whether a run would only repeat the last successful one (`record`, when it would)."""

    up_to_date: bool
    # Why not, in a few words (empty when up to date).
    reason: str
    record: dict[str, Any] | None = None


def check(cfg: PipelineConfig, inputs: dict[str, str], store) -> Freshness:
    """Compares the current inputs and state with the last successful run's record."""
    path = record_path(cfg)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return Freshness(False, "no earlier successful run")
    except (OSError, ValueError) as e:
        return Freshness(False, f"unreadable run record {path}: {e}")
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return Freshness(False, f"run record {path} has another format")
    last = record.get("run_id")
    then = record.get("fingerprint", {})
    now = {**inputs, **state_fingerprint(cfg, store)}
    changed = [part for part in PARTS if then.get(part) != now.get(part)]
    if changed:
        return Freshness(False, f"{', '.join(changed)} changed since run {last}")
    missing = [uri for uri in record.get("outputs", []) if not os.path.exists(uri)]
    if missing:
        return Freshness(False, f"an output of run {last} is gone: {missing[0]}")
    return Freshness(True, "", record)
