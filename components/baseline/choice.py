"""Which served version the candidate is compared with, read from the serving base path alone.

The rule: the version labelled ``stable``; when the candidate *is* that version (same content,
the release record's ``content_hash``: it was promoted, and the pipeline runs again), the
previous stable, then the one before (``stable_history``, newest first); none before the first
promote. Only the base path is read (``labels.json``, ``.releases/<N>.json``, the version
directories): no ML Metadata, which a Kubeflow container does not have.

Pure standard library plus ``components.serving``: the pipeline's build reads the chain to key
the baseline node's cache on it, and the CLI must not import TensorFlow for that.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from components.serving import (
    ReleaseError,
    ServingDir,
    model_content_hash,
    read_releases,
    read_state,
)

__all__ = [
    "Choice",
    "StableEntry",
    "chain_from_json",
    "chain_to_json",
    "choose_baseline",
    "stable_chain",
]


@dataclass(frozen=True)
class StableEntry:
    """A version that is or was labelled ``stable``, as the base path records it.

    Attributes:
      version: the TF Serving version number.
      content_hash: ``model_content_hash`` of its directory (from its release record).
      tag: its release tag, "" when it has no record.
      model_id: the ML Metadata id of the Model released as it, -1 when unknown.
    """

    version: int
    content_hash: str
    tag: str = ""
    model_id: int = -1


@dataclass(frozen=True)
class Choice:
    """The baseline chosen for one candidate.

    Attributes:
      kind: ``stable``, ``previous_stable`` (the candidate is the stable version) or ``none``.
      entry: the chosen version, None when ``kind`` is ``none``.
      reason: one sentence for the run's output.
    """

    kind: str
    entry: StableEntry | None
    reason: str


def check_mounted(base_path: str) -> None:
    """Raises ReleaseError unless `base_path`'s parent folder exists: where the base path is on
    a volume mounted into the step, a missing mount must not read as "nothing released"."""
    parent = os.path.dirname(os.path.normpath(base_path))
    if not os.path.isdir(parent):
        raise ReleaseError(
            f"{base_path}: its folder {parent} does not exist in this step: is the serving "
            "volume mounted? (without it every run would look like a first release)")


def stable_chain(base_path: str) -> list[StableEntry]:
    """The stable version, then the previous stables, newest first, each once; only versions
    whose directory is present (a pruned one cannot be a baseline). Empty when nothing was ever
    promoted or the base path does not exist.

    Raises:
      ReleaseError: ``labels.json`` or a release record is malformed (naming the file).
      PushError: a version without a record cannot be hashed (naming the path).
    """
    if not os.path.isdir(base_path):
        return []
    state = read_state(base_path)
    ordered = [state.labels["stable"]] if "stable" in state.labels else []
    ordered += reversed(state.stable_history)
    serving = ServingDir(base_path)
    present = set(serving.versions())
    records = {r.version: r for r in read_releases(base_path)}
    chain = []
    for version in dict.fromkeys(ordered):
        if version not in present:
            continue
        record = records.get(version)
        if record is not None:
            chain.append(StableEntry(version, record.content_hash, record.tag,
                                     record.mlmd_ids.get("model", -1)))
        else:  # pushed outside a release (no record): hash what is served
            metadata = serving.read_metadata(version) or {}
            digest = metadata.get("content_hash") or model_content_hash(
                serving.version_path(version))
            chain.append(StableEntry(version, digest))
    return chain


def chain_to_json(chain: list[StableEntry]) -> str:
    """The chain as the baseline node's exec property: what its cache key hashes."""
    return json.dumps([asdict(e) for e in chain], sort_keys=True)


def chain_from_json(text: str) -> list[StableEntry]:
    """The inverse of ``chain_to_json``."""
    return [StableEntry(**e) for e in json.loads(text)]


def choose_baseline(chain: list[StableEntry], candidate_hash: str) -> Choice:
    """The first version of ``chain`` whose content is not the candidate's, or none."""
    for i, entry in enumerate(chain):
        if entry.content_hash == candidate_hash:
            continue
        named = f"stable version {entry.version}" + (f" ({entry.tag})" if entry.tag else "")
        if i == 0:
            return Choice("stable", entry, named)
        return Choice("previous_stable", entry,
                      f"previous {named}, the candidate being stable version {chain[0].version}")
    if chain:
        return Choice("none", None, f"none (the candidate is stable version {chain[0].version} "
                                    "and no earlier stable is served)")
    return Choice("none", None, "none (first release: no version is labelled stable)")
