"""Release operations on a TF Serving base path: release, list, promote, rollback, traffic, prune.

Every operation that changes something runs under the base path's lock (the one pushes take),
writes each file atomically, appends to the label history in ``labels.json`` and, when given a
metadata store, records a ``ReleaseOperation`` execution in ML Metadata. A refused request
(``ReleaseRefused``) is detected before anything is written.

Files written in the base path (TF Serving reads only the numeric directories and, through
``--model_config_file``, ``models.config``):

    models.config               ModelServerConfig: versions served, labels stable and canary
    labels.json                 the source of truth: labels, stable history, canary share, history
    routing.json                weights per label for the router in front of TF Serving
    batching_parameters.txt     BatchingParameters, when batching settings are given
    .releases/<version>.json    one release record per released version

Order of writes in a label change, so that readers never see a dangling reference:
``routing.json`` first when it only stops or keeps sending to labels that exist (the canary's
share drops to 0 before the canary label moves or goes), last when it starts sending to a label
that the config is about to create (the first ``stable``); ``models.config`` through the two-step
label move; ``labels.json``; and for a release, its record last: a version with a record is a
finished release, so an interrupted release is completed by releasing the same model again.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import getpass
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from components.metadata.release_operations import (
    MetadataError,
    OperationRecord,
    RecordedOperation,
    record_operation,
)
from components.serving.batching import (
    BATCHING_FILE,
    BatchingParametersError,
    batching_parameters_text,
)
from components.serving.errors import ReleaseError, ReleaseRefused
from components.serving.files import write_json
from components.serving.labels import LABELS, LabelState, read_state, write_state
from components.serving.models_config import (
    ServingState,
    apply_serving_state,
    read_models_config,
)
from components.serving.names import parse_tag, validate_channel, validate_model_name
from components.serving.records import (
    Release,
    check_model_name,
    find_release,
    new_release,
    read_releases,
    record_path,
    validate_release_fields,
)
from components.serving.versions import TMP_PREFIX, PushError, ServingDir, write_atomically

__all__ = [
    "ROUTING_FILE",
    "Listing",
    "OperationResult",
    "VersionInfo",
    "list_releases",
    "promote",
    "prune",
    "release_version",
    "rollback",
    "set_traffic",
]

ROUTING_FILE = "routing.json"
BetweenSteps = Callable[[ServingState], None]


@dataclass(frozen=True)
class OperationResult:
    """What an operation did.

    Attributes:
        operation: ``promote``, ``rollback``, ``traffic`` or ``prune``.
        version: the version acted on (None for a prune).
        tag: its tag ("" if none).
        labels: the labels after the operation.
        weights: the routing weights after the operation.
        removed: versions removed (prune).
        config_steps: the ``models.config`` states written, in order.
        recorded: the ML Metadata ids, when a store was given.
    """

    operation: str
    version: int | None
    tag: str
    labels: dict[str, int]
    weights: dict[str, int]
    removed: tuple[int, ...] = ()
    config_steps: tuple[ServingState, ...] = ()
    recorded: RecordedOperation | None = None


@dataclass(frozen=True)
class VersionInfo:
    """One version of a base path, as ``list`` shows it."""

    version: int
    tag: str | None
    labels: tuple[str, ...]
    blessed: bool | None
    pushed_at: str | None
    metrics: dict[str, float]
    present: bool  # the directory exists (False: pruned or deleted)
    content_hash: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tag": self.tag,
            "labels": list(self.labels),
            "blessed": self.blessed,
            "pushed_at": self.pushed_at,
            "metrics": self.metrics,
            "present": self.present,
            "content_hash": self.content_hash,
        }


@dataclass(frozen=True)
class Listing:
    """The releases of a base path, newest version first."""

    model_name: str | None
    base_path: str
    labels: dict[str, int]
    weights: dict[str, int]
    stable_history: list[int]
    versions: list[VersionInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_path": self.base_path,
            "labels": self.labels,
            "weights": self.weights,
            "stable_history": self.stable_history,
            "versions": [v.to_json() for v in self.versions],
        }


# --- helpers ---------------------------------------------------------------------------------


def _utc(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid {os.getuid()}"


def _target(base_path: str, state: LabelState) -> ServingState | None:
    if not state.labels or state.model_name is None:
        return None
    return ServingState(state.model_name, base_path, tuple(state.labels.values()), state.labels)


def _write_routing(base_path: str, state: LabelState, when: str) -> None:
    write_json(
        os.path.join(base_path, ROUTING_FILE),
        {
            "model_name": state.model_name,
            "weights": state.routing_weights(),
            "versions": dict(sorted(state.labels.items())),
            "updated_at": when,
        },
    )


def _commit(
    base_path: str,
    before: LabelState,
    after: LabelState,
    between_steps: BetweenSteps | None,
    when: str,
) -> tuple[ServingState, ...]:
    """Write routing.json, models.config (two-step label move) and labels.json in a safe order.

    See the module docstring for the order. Call under the lock.
    """
    routing_first = all(
        label in before.labels for label, weight in after.routing_weights().items() if weight > 0
    )
    if routing_first:
        _write_routing(base_path, after, when)
    target = _target(base_path, after)
    steps = apply_serving_state(base_path, target, between_steps) if target else []
    write_state(base_path, after)
    if not routing_first:
        _write_routing(base_path, after, when)
    return tuple(steps)


def _history_entry(
    operation: str, when: str, actor: str, reason: str | None, state: LabelState, **extra: Any
) -> dict[str, Any]:
    return {
        "operation": operation,
        "at": when,
        "actor": actor,
        "reason": reason or "",
        "labels": dict(sorted(state.labels.items())),
        "canary_percent": state.canary_percent,
        **extra,
    }


def _require_releases(base_path: str, state: LabelState) -> str:
    if state.model_name is None:
        raise ReleaseRefused(f"nothing has been released in {base_path}")
    return state.model_name


def _record(
    metadata_path: str | None,
    pipeline_name: str | None,
    operation: str,
    state: LabelState,
    base_path: str,
    version: int | None,
    tag: str,
    actor: str,
    reason: str | None,
    when: str,
    linked: Iterable[int],
    details: dict[str, Any],
) -> RecordedOperation | None:
    if metadata_path is None:
        return None
    record = OperationRecord(
        operation=operation,
        model_name=state.model_name or "",
        base_path=base_path,
        tag=tag,
        version=version or 0,
        actor=actor,
        reason=reason or "",
        timestamp=when,
        linked_versions=tuple(linked),
        details=details,
    )
    try:
        return record_operation(metadata_path, record, pipeline_name)
    except MetadataError as e:
        raise ReleaseError(f"{operation} was applied, but not recorded in ML Metadata: {e}") from e


def _resolve(base_path: str, state: LabelState, target: str | int) -> Release:
    """The release a ``promote`` argument names: a version, a label or a tag.

    Raises:
        InvalidNameError: the argument is not a version, a label or a well-formed tag.
        ReleaseRefused: unknown version or tag, or a label that is not set.
    """
    if isinstance(target, int) or (isinstance(target, str) and target.isascii()
                                   and target.isdigit()):
        version = int(target)
        release = find_release(base_path, version)
        if release is None:
            if os.path.isdir(os.path.join(base_path, str(version))):
                raise ReleaseRefused(
                    f"version {version} has no release record; only released versions can be "
                    "promoted"
                )
            raise ReleaseRefused(f"unknown version {version} in {base_path}")
        return release
    if target in LABELS:
        if target not in state.labels:
            raise ReleaseRefused(f"no version is labelled {target!r} in {base_path}")
        release = find_release(base_path, state.labels[target])
        if release is None:
            raise ReleaseRefused(f"version {state.labels[target]} has no release record")
        return release
    parse_tag(target)  # refuses unsafe or malformed values with a message naming them
    releases = read_releases(base_path)
    for release in releases:
        if release.tag == target:
            return release
    known = ", ".join(r.tag for r in releases[-5:]) or "none"
    raise ReleaseRefused(f"unknown tag {target!r} in {base_path} (latest tags: {known})")


# --- release ---------------------------------------------------------------------------------


def release_version(
    base_path: str,
    model_dir: str,
    model_name: str,
    channel: str = "canary",
    metrics: Mapping[str, float] | None = None,
    spans: Iterable[int] | None = None,
    git_commit: str | None = None,
    mlmd_ids: Mapping[str, int] | None = None,
    blessed: bool = True,
    *,
    batching: Mapping[str, Any] | None = None,
    between_steps: BetweenSteps | None = None,
    now: dt.datetime | None = None,
    notes: Mapping[str, str] | None = None,
) -> Release:
    """Push ``model_dir`` as a new version, record the release, and label it.

    Under the base path's lock: push through ``ServingDir`` (a model identical to an existing
    version is not copied again); if that version already has a release record, return it
    with ``reused=True`` and write nothing. Otherwise give the release its tag, label it
    (``canary`` for the ``canary`` channel, ``stable`` for the ``stable`` channel, none for
    other channels; an unblessed version is never labelled, so it gets no traffic), rewrite
    ``routing.json`` (a new canary starts with a 0% share), ``models.config`` (two-step label
    move), ``labels.json``, ``batching_parameters.txt`` (if ``batching`` is given) and last the
    release record.

    Args:
        base_path: the model base path (created if missing).
        model_dir: the SavedModel directory to push.
        model_name: the model's name in ``models.config``.
        channel: the channel (part of the tag; ``canary`` by default).
        metrics, spans, git_commit, mlmd_ids, blessed: recorded in the release record.
        batching: TF Serving batching settings (see ``batching_parameters_text``).
        between_steps: called between the two steps of a label move (see
            ``apply_serving_state``); give TF Serving time to load the new version there.
        now: the release time (UTC); defaults to the current time.
        notes: free-form facts stored in the record (e.g. an allowed breaking change's reason).

    Returns:
        The release: ``tag``, ``version``, ``path``, and ``reused``: True when the model was
        already in the base path and nothing was copied (its existing record is returned if it
        has one; a version pushed without a record, e.g. by an interrupted release, gets one).

    Raises:
        InvalidNameError: unsafe model name or channel.
        ReleaseRefused: an invalid field or batching setting, or a base path of another model;
            nothing is written.
        ReleaseError: the push failed (nothing visible is left behind).
    """
    validate_model_name(model_name)
    validate_channel(channel)
    metrics_, spans_, git_commit, mlmd_ids_ = validate_release_fields(
        metrics, spans, git_commit, mlmd_ids
    )
    batching_text = None
    if batching is not None:
        try:
            batching_text = batching_parameters_text(batching)
        except BatchingParametersError as e:
            raise ReleaseRefused(str(e)) from e
    moment = _utc(now)
    when = moment.isoformat(timespec="seconds")
    serving = ServingDir(base_path)
    base = serving.base_path
    with serving.lock():
        check_model_name(base, model_name)
        try:
            pushed = serving.push(model_dir)
        except PushError as e:
            raise ReleaseError(str(e)) from e
        existing = find_release(base, pushed.version)
        if existing is not None:
            return replace(existing, reused=True)

        release = replace(
            new_release(
                base, model_name, pushed.version, pushed.content_hash, channel,
                metrics_, spans_, git_commit, mlmd_ids_, blessed, moment, notes,
            ),
            reused=pushed.reused,
        )
        before = read_state(base)
        after = copy.deepcopy(before)
        after.model_name = model_name
        label = channel if channel in LABELS and blessed else None
        if label == "canary":
            after.labels["canary"] = release.version
            after.canary_percent = 0  # a new canary earns its share by an explicit `traffic`
        elif label == "stable":
            after.labels["stable"] = release.version
            after.stable_history.append(release.version)
            if after.labels.get("canary") == release.version:
                del after.labels["canary"]
        after.history.append(
            _history_entry(
                "release", when, _actor(), None, after,
                version=release.version, tag=release.tag, label=label,
            )
        )
        _commit(base, before, after, between_steps, when)
        if batching_text is not None:
            write_atomically(os.path.join(base, BATCHING_FILE), batching_text.encode())
        write_json(record_path(base, release.version), release.to_json())
    return release


# --- read ------------------------------------------------------------------------------------


def list_releases(base_path: str) -> Listing:
    """Versions, tags, labels, blessing, metrics and push times of a base path; no lock taken.

    Raises:
        ReleaseError: a state or record file is unreadable (naming it).
    """
    serving = ServingDir(base_path)
    base = serving.base_path
    state = read_state(base)
    releases = {r.version: r for r in read_releases(base)}
    present = set(serving.versions())
    labels_of: dict[int, list[str]] = {}
    for label, version in sorted(state.labels.items()):
        labels_of.setdefault(version, []).append(label)
    infos = []
    for version in sorted(present | set(releases), reverse=True):
        release = releases.get(version)
        if release is None:
            metadata = serving.read_metadata(version) or {}
            infos.append(
                VersionInfo(
                    version, None, tuple(labels_of.get(version, ())), None,
                    metadata.get("pushed_at"), {}, version in present,
                    metadata.get("content_hash"),
                )
            )
            continue
        infos.append(
            VersionInfo(
                version, release.tag, tuple(labels_of.get(version, ())), release.blessed,
                release.pushed_at, release.metrics, version in present, release.content_hash,
            )
        )
    return Listing(
        model_name=state.model_name or next((r.model_name for r in releases.values()), None),
        base_path=base,
        labels=dict(sorted(state.labels.items())),
        weights=state.routing_weights(),
        stable_history=list(state.stable_history),
        versions=infos,
    )


# --- label operations ------------------------------------------------------------------------


@contextlib.contextmanager
def _locked_operation(
    base_path: str, now: dt.datetime | None
) -> Iterator[tuple[ServingDir, str, str, str, LabelState]]:
    """The start every release operation shares, under the base path's lock.

    Yields (serving dir, absolute base path, ISO time, actor, label state before the change);
    raises ReleaseRefused when the base path holds no release yet.
    """
    serving = ServingDir(base_path)
    base = serving.base_path
    when = _utc(now).isoformat(timespec="seconds")
    actor = _actor()
    with serving.lock():
        serving.remove_stale_temporaries()
        before = read_state(base)
        _require_releases(base, before)
        yield serving, base, when, actor, before


def promote(
    base_path: str,
    target: str | int,
    *,
    reason: str | None = None,
    metadata_path: str | None = None,
    pipeline_name: str | None = None,
    between_steps: BetweenSteps | None = None,
    now: dt.datetime | None = None,
) -> OperationResult:
    """Label a released, blessed version ``stable`` (usually the canary: ``promote canary``).

    The previous stable stays in the stable history, so ``rollback`` can return to it. If the
    promoted version was the canary, the canary label goes and its traffic share with it.

    Args:
        base_path: the model base path.
        target: a version number, a tag (``canary-v3-20240520``) or a label (``canary``).
        reason: why, recorded in the history and in ML Metadata.
        metadata_path: the ML Metadata SQLite file to record the operation in (None: not
            recorded).
        pipeline_name: the pipeline whose MLMD context the execution joins, if present.
        between_steps: see ``apply_serving_state``.
        now: the operation time; defaults to the current time.

    Raises:
        InvalidNameError: ``target`` is neither a version, a label nor a well-formed tag.
        ReleaseRefused: unknown tag or version, not blessed, pruned, or already stable.
        ReleaseError: writing failed, or recording in ML Metadata failed after the change.
    """
    with _locked_operation(base_path, now) as (serving, base, when, actor, before):
        release = _resolve(base, before, target)
        if not release.blessed:
            raise ReleaseRefused(
                f"version {release.version} ({release.tag}) was not blessed; refusing to promote it"
            )
        if not os.path.isdir(release.path):
            raise ReleaseRefused(
                f"version {release.version} ({release.tag}) is no longer in {base} (pruned?)"
            )
        if before.labels.get("stable") == release.version:
            raise ReleaseRefused(f"version {release.version} ({release.tag}) is already stable")
        after = copy.deepcopy(before)
        previous = after.labels.get("stable")
        after.labels["stable"] = release.version
        after.stable_history.append(release.version)
        if after.labels.get("canary") == release.version:
            del after.labels["canary"]
            after.canary_percent = 0
        after.history.append(
            _history_entry(
                "promote", when, actor, reason, after,
                version=release.version, tag=release.tag, previous_stable=previous,
            )
        )
        steps = _commit(base, before, after, between_steps, when)
        recorded = _record(
            metadata_path, pipeline_name, "promote", after, base, release.version, release.tag,
            actor, reason, when, [release.version],
            {"labels": after.labels, "previous_stable": previous},
        )
    return OperationResult(
        "promote", release.version, release.tag, dict(after.labels), after.routing_weights(),
        config_steps=steps, recorded=recorded,
    )


def rollback(
    base_path: str,
    *,
    reason: str | None = None,
    metadata_path: str | None = None,
    pipeline_name: str | None = None,
    between_steps: BetweenSteps | None = None,
    now: dt.datetime | None = None,
) -> OperationResult:
    """Label the previous stable version ``stable`` again (one step back in the stable history).

    The canary, if any, stays. Arguments as for ``promote``.

    Raises:
        ReleaseRefused: no previous stable version, or it is no longer in the base path.
        ReleaseError: writing failed, or recording in ML Metadata failed after the change.
    """
    with _locked_operation(base_path, now) as (serving, base, when, actor, before):
        previous = before.previous_stable()
        current = before.labels.get("stable")
        if previous is None:
            raise ReleaseRefused(
                f"no previous stable version to roll back to in {base} "
                f"(stable: {current if current is not None else 'none'})"
            )
        if not os.path.isdir(serving.version_path(previous)):
            raise ReleaseRefused(f"previous stable version {previous} is no longer in {base}")
        release = find_release(base, previous)
        tag = release.tag if release else ""
        after = copy.deepcopy(before)
        after.stable_history.pop()
        after.labels["stable"] = previous
        if after.labels.get("canary") == previous:
            del after.labels["canary"]
            after.canary_percent = 0
        after.history.append(
            _history_entry(
                "rollback", when, actor, reason, after,
                version=previous, tag=tag, rolled_back_from=current,
            )
        )
        steps = _commit(base, before, after, between_steps, when)
        recorded = _record(
            metadata_path, pipeline_name, "rollback", after, base, previous, tag, actor, reason,
            when, [previous] + ([current] if current is not None else []),
            {"labels": after.labels, "rolled_back_from": current},
        )
    return OperationResult(
        "rollback", previous, tag, dict(after.labels), after.routing_weights(),
        config_steps=steps, recorded=recorded,
    )


def set_traffic(
    base_path: str,
    canary_percent: int,
    *,
    reason: str | None = None,
    metadata_path: str | None = None,
    pipeline_name: str | None = None,
    now: dt.datetime | None = None,
) -> OperationResult:
    """Send ``canary_percent`` % of requests to the canary and the rest to stable.

    Writes ``routing.json`` (``{"weights": {"stable": 95, "canary": 5}, ...}``), read by the
    router in front of TF Serving; labels and ``models.config`` do not change.

    Raises:
        ReleaseRefused: the percent is not an integer from 0 to 100, or there is no canary or
            no stable version.
        ReleaseError: writing failed, or recording in ML Metadata failed after the change.
    """
    if (
        isinstance(canary_percent, bool)
        or not isinstance(canary_percent, int)
        or not 0 <= canary_percent <= 100
    ):
        raise ReleaseRefused(
            f"canary percent must be an integer from 0 to 100, got {canary_percent!r}"
        )
    with _locked_operation(base_path, now) as (serving, base, when, actor, before):
        if "canary" not in before.labels:
            raise ReleaseRefused(f"no canary version in {base}: nothing to send traffic to")
        if "stable" not in before.labels:
            raise ReleaseRefused(
                f"no stable version in {base}: promote one before splitting traffic"
            )
        canary = before.labels["canary"]
        release = find_release(base, canary)
        tag = release.tag if release else ""
        after = copy.deepcopy(before)
        after.canary_percent = canary_percent
        after.history.append(
            _history_entry("traffic", when, actor, reason, after, version=canary, tag=tag)
        )
        _commit(base, before, after, None, when)
        recorded = _record(
            metadata_path, pipeline_name, "traffic", after, base, canary, tag, actor, reason,
            when, [canary], {"weights": after.routing_weights()},
        )
    return OperationResult(
        "traffic", canary, tag, dict(after.labels), after.routing_weights(), recorded=recorded
    )


def prune(
    base_path: str,
    keep: int,
    *,
    reason: str | None = None,
    metadata_path: str | None = None,
    pipeline_name: str | None = None,
    now: dt.datetime | None = None,
) -> OperationResult:
    """Remove old version directories, keeping the ``keep`` newest and every version in use.

    Never removed: a labelled version, a version listed in ``models.config``, the newest
    version, and the previous stable (the target of ``rollback``). Each removed directory is
    first renamed to a hidden temporary name, so TF Serving sees it vanish in one step. Release
    records stay as history, and version numbers are never handed out again.

    Raises:
        ReleaseRefused: ``keep`` is not an integer >= 0.
        ReleaseError: removing failed, or recording in ML Metadata failed after the change.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ReleaseRefused(f"--keep must be an integer >= 0, got {keep!r}")
    with _locked_operation(base_path, now) as (serving, base, when, actor, before):
        present = serving.versions()
        config = read_models_config(base)
        protected = set(before.labels.values()) | set(present[-max(keep, 1):])
        if config is not None:
            protected |= set(config.versions)
        if before.previous_stable() is not None:
            protected.add(before.previous_stable())
        removed = [v for v in present if v not in protected]
        for version in removed:
            doomed = os.path.join(base, f"{TMP_PREFIX}pruned-{version}-{secrets.token_hex(4)}")
            try:
                os.rename(serving.version_path(version), doomed)
            except OSError as e:
                raise ReleaseError(f"cannot remove version {version} from {base}: {e}") from e
            # Gone for TF Serving now; a removal interrupted here is finished by the next
            # operation's clean-up of temporaries.
            shutil.rmtree(doomed, ignore_errors=True)
        after = copy.deepcopy(before)
        after.history.append(
            _history_entry("prune", when, actor, reason, after, removed=removed, keep=keep)
        )
        write_state(base, after)
        recorded = _record(
            metadata_path, pipeline_name, "prune", after, base, None, "", actor, reason, when,
            removed, {"removed": removed, "kept": sorted(set(present) - set(removed))},
        )
    return OperationResult(
        "prune", None, "", dict(after.labels), after.routing_weights(),
        removed=tuple(removed), recorded=recorded,
    )

