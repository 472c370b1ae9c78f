"""What produced a run, recorded with its ``RunRequest``: code, configuration and input files.

A run's provenance is recorded before it starts, on the ``RunRequest`` execution that says who
asked for it and why (``components.metadata.run_requests``):

- properties ``git_commit`` and ``git_dirty`` ("true", "false" or "unknown") of the project's
  code, ``config_sha256`` and ``config`` (the resolved configuration as JSON, without secrets:
  the caller redacts it), ``span`` and ``data_root``, ``orchestrator`` (``local``, ``airflow``,
  ...) and ``orchestrator_run_id`` (the orchestrator's own id of the run, "" when the run id is
  ours);
- the span's input files as ``DataFile`` artifacts (uri: the absolute path; properties
  ``name``, relative to the data root, ``size``, ``sha256``, ``span``), each linked to the
  request by an INPUT event (key ``data_files``). A file read again with the same content
  reuses its artifact, so every run that read it is one event away.

The Examples a run's ImportExampleGen made are thereby one run away from the files they were
read from, and ``lineage`` walks that step both ways. ``ml_metadata`` is imported lazily.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import Artifact, Execution

__all__ = [
    "DATA_FILE_TYPE",
    "DATA_FILES_KEY",
    "DataFile",
    "RunProvenance",
    "find_data_files",
    "record_data_files",
]

DATA_FILE_TYPE = "DataFile"
# The key of the RunRequest's INPUT events on its DataFile artifacts.
DATA_FILES_KEY = "data_files"
# RunRequest properties holding the provenance: STRING ones, then INT ones.
STRING_PROPERTIES = ("git_commit", "git_dirty", "config_sha256", "config", "data_root",
                     "orchestrator", "orchestrator_run_id")
INT_PROPERTIES = ("span",)
# `span` when the run's span is not known (a partial run reusing another run's data).
NO_SPAN = -1


@dataclass(frozen=True)
class DataFile:
    """One input file of a run.

    Attributes:
      name: the path relative to the data root (``span-2/Split-train/data.tfrecord.gz``).
      path: the absolute path.
      size: bytes.
      sha256: hex digest of the whole content.
      artifact_id: the ``DataFile`` artifact, once recorded (0 before).
    """

    name: str
    path: str
    size: int
    sha256: str
    artifact_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size, "sha256": self.sha256,
                "artifact_id": self.artifact_id}


@dataclass(frozen=True)
class RunProvenance:
    """What a run was made of, besides who asked (see the module docstring).

    Attributes:
      git_commit: the project's commit, "unknown" outside a repository.
      git_dirty: uncommitted changes in the tree; None when unknown.
      config_sha256: sha256 of ``config`` as canonical JSON.
      config: the resolved configuration, secrets removed.
      span: the span read; None when not known.
      data_root: the absolute data root ("" when not local).
      data_files: the span's input files (none when the data root is not a local directory).
      orchestrator: what ran it: ``local``, ``airflow``, ``kubeflow``.
      orchestrator_run_id: the orchestrator's id of the run ("" when it is the run id itself).
    """

    git_commit: str = "unknown"
    git_dirty: bool | None = None
    config_sha256: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    span: int | None = None
    data_root: str = ""
    data_files: tuple[DataFile, ...] = ()
    orchestrator: str = "local"
    orchestrator_run_id: str = ""

    def properties(self) -> dict[str, str | int]:
        """The RunRequest properties (``STRING_PROPERTIES`` and ``INT_PROPERTIES``)."""
        dirty = "unknown" if self.git_dirty is None else str(self.git_dirty).lower()
        return {
            "git_commit": self.git_commit, "git_dirty": dirty,
            "config_sha256": self.config_sha256,
            "config": json.dumps(self.config, sort_keys=True) if self.config else "",
            "data_root": self.data_root, "orchestrator": self.orchestrator,
            "orchestrator_run_id": self.orchestrator_run_id,
            "span": NO_SPAN if self.span is None else int(self.span),
        }

    @classmethod
    def from_execution(cls, execution: Execution, data_files: tuple[DataFile, ...] = ()
                       ) -> RunProvenance | None:
        """The provenance recorded on a RunRequest execution; None when it has none (recorded
        before provenance was)."""
        props = execution.properties
        if "git_commit" not in props or not props["git_commit"].string_value:
            return None
        value = {k: props[k].string_value if k in props else "" for k in STRING_PROPERTIES}
        span = props["span"].int_value if "span" in props else NO_SPAN
        return cls(
            git_commit=value["git_commit"],
            git_dirty={"true": True, "false": False}.get(value["git_dirty"]),
            config_sha256=value["config_sha256"],
            config=json.loads(value["config"]) if value["config"] else {},
            span=None if span == NO_SPAN else span, data_root=value["data_root"],
            data_files=data_files, orchestrator=value["orchestrator"],
            orchestrator_run_id=value["orchestrator_run_id"],
        )

    def to_json(self, with_config: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "git_commit": self.git_commit, "git_dirty": self.git_dirty,
            "config_sha256": self.config_sha256, "span": self.span,
            "data_root": self.data_root, "data_files": [f.to_json() for f in self.data_files],
            "orchestrator": self.orchestrator, "orchestrator_run_id": self.orchestrator_run_id,
        }
        if with_config:
            out["config"] = self.config
        return out


def _data_file_type_id(store: MetadataStore) -> int:
    from ml_metadata.proto import metadata_store_pb2 as pb

    artifact_type = pb.ArtifactType(name=DATA_FILE_TYPE)
    for name in ("name", "sha256"):
        artifact_type.properties[name] = pb.STRING
    for name in ("size", "span"):
        artifact_type.properties[name] = pb.INT
    return store.put_artifact_type(artifact_type, can_add_fields=True, can_omit_fields=True)


def data_file_of(artifact: Artifact) -> DataFile:
    p = artifact.properties
    return DataFile(name=p["name"].string_value, path=artifact.uri, size=p["size"].int_value,
                    sha256=p["sha256"].string_value, artifact_id=artifact.id)


def record_data_files(store: MetadataStore, execution_id: int, files: tuple[DataFile, ...],
                      span: int | None) -> list[DataFile]:
    """``files`` as ``DataFile`` artifacts linked to execution ``execution_id`` by INPUT events
    (key ``data_files``, in order): an artifact already recorded for the same path, size, span
    and content is reused. Returns the files with their artifact ids."""
    from ml_metadata import errors
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not files:
        return []
    type_id = _data_file_type_id(store)
    existing: dict[tuple, int] = {}
    for a in _artifacts(store, f"type = '{DATA_FILE_TYPE}' AND "
                               f"properties.sha256.string_value IN ({_strings(files, 'sha256')})"):
        f = data_file_of(a)
        existing[(f.path, f.size, f.sha256, a.properties["span"].int_value)] = a.id
    recorded = []
    for f in files:
        key = (f.path, f.size, f.sha256, NO_SPAN if span is None else span)
        artifact_id = existing.get(key)
        if artifact_id is None:
            # Named after its key: MLMD keeps names unique per type, so a run recording the
            # same file at the same moment (another process) gets that one, not a second.
            unique = hashlib.sha256(json.dumps(key).encode()).hexdigest()
            artifact = pb.Artifact(type_id=type_id, uri=f.path, state=pb.Artifact.LIVE,
                                   name=f"data-file-{unique}")
            artifact.properties["name"].string_value = f.name
            artifact.properties["sha256"].string_value = f.sha256
            artifact.properties["size"].int_value = f.size
            artifact.properties["span"].int_value = key[3]
            try:
                [artifact_id] = store.put_artifacts([artifact])
            except errors.AlreadyExistsError:
                artifact_id = store.get_artifact_by_type_and_name(
                    DATA_FILE_TYPE, artifact.name).id
            existing[key] = artifact_id
        recorded.append(DataFile(f.name, f.path, f.size, f.sha256, artifact_id))
    events = []
    for index, f in enumerate(recorded):
        event = pb.Event(artifact_id=f.artifact_id, execution_id=execution_id,
                         type=pb.Event.INPUT)
        event.path.steps.add().key = DATA_FILES_KEY
        event.path.steps.add().index = index
        events.append(event)
    store.put_events(events)
    return recorded


def find_data_files(store: MetadataStore, *, sha256: str | None = None,
                    path: str | None = None, name: str | None = None) -> list[Artifact]:
    """``DataFile`` artifacts with this content digest, absolute path or name (relative to the
    data root), by id; [] when none (or none was ever recorded)."""
    clauses = [f"type = '{DATA_FILE_TYPE}'"]
    if sha256:
        clauses.append(f"properties.sha256.string_value = '{quoted(sha256)}'")
    if path:
        clauses.append(f"uri = '{quoted(path)}'")
    if name:
        clauses.append(f"properties.name.string_value = '{quoted(name)}'")
    return sorted(_artifacts(store, " AND ".join(clauses)), key=lambda a: a.id)


def _artifacts(store: MetadataStore, filter_query: str) -> list[Artifact]:
    import ml_metadata as mlmd

    try:
        return store.get_artifacts(list_options=mlmd.ListOptions(filter_query=filter_query))
    except mlmd.errors.NotFoundError:  # the type was never registered in this store
        return []


def quoted(value: str) -> str:
    """``value`` inside a single-quoted MLMD filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _strings(items: Any, attribute: str) -> str:
    return ", ".join(f"'{quoted(getattr(i, attribute))}'" for i in items)
