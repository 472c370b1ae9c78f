"""Release a model into a TF Serving base path: push, contract, labels, record, in one lock.

``release_version`` does it all under the base path's lock (the one pushes take), in this order:

1. push the SavedModel as a new version (``ServingDir.push``; an identical model already there
   is reused, not copied);
2. ``contract.json``: the release's serving contract, when it is the first one or replaces the
   one in force after an allowed breaking change (``keep_contract``), so that no label ever
   points at a version whose contract is not kept;
3. the labels: ``routing.json``, ``models.config`` (two-step label move, waiting between the
   steps until TF Serving has loaded the new version: ``between_steps``), ``labels.json``
   (``commit_labels``), and ``batching_parameters.txt`` when batching settings are given;
4. last, the release record ``.releases/<version>.json``.

If TF Serving does not load the new version in time (``ServerNotReady``), the release stops at
the first step of the label move: the version is served beside the others, the labels and
routing stay as they were, ``labels.json``'s history notes the failed release, and no record is
written, so that releasing the same model again (the next run) finishes it.

A version with a record is a finished release; a contract is in force once its release is
recorded. A release killed anywhere before its record is completed by releasing the same model
again: the push finds the version, and steps 2-4 are done again (each is idempotent). Until then
``read_contract`` returns the contract the interrupted release would have replaced.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from components.serving.batching import (
    BATCHING_FILE,
    BatchingParametersError,
    batching_parameters_text,
)
from components.serving.commit import (
    commit_labels,
    current_actor,
    history_entry,
    record_not_ready,
    utc,
)
from components.serving.contract import Contract, keep_contract, read_contract
from components.serving.errors import ReleaseError, ReleaseRefused, ServerNotReady
from components.serving.files import write_atomically
from components.serving.labels import LABELS, read_state
from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS
from components.serving.models_config import BetweenSteps
from components.serving.names import make_tag, validate_channel, validate_model_name
from components.serving.records import (
    Release,
    check_model_name,
    find_release,
    next_release_number,
    read_releases,
    write_release_record,
)
from components.serving.versions import PushError, PushResult, ServingDir

__all__ = ["ReleaseRequest", "release_version"]

_GIT_COMMIT = re.compile(r"[0-9A-Za-z._+-]{1,100}")


@dataclass(frozen=True, kw_only=True)
class ReleaseRequest:
    """What to release, and the facts recorded with it.

    Attributes:
        model_dir: the SavedModel directory to push.
        model_name: the model's name in ``models.config``.
        channel: part of the tag; ``canary`` and ``stable`` also label the version.
        metrics, spans, git_commit, mlmd_ids, blessed: recorded in the release record (see
            ``Release``); an unblessed version is never labelled.
        batching: TF Serving batching settings (see ``batching_parameters_text``), or None.
        notes: free-form facts stored in the record.
        contract: the model's serving contract, kept in ``contract.json`` by the first release
            and by a release whose breaking change was allowed (None: nothing to keep).
        breaking_change_reason: non-empty when a breaking change of the contract was allowed:
            the contract replaces the one in force, and the reason goes into ``contract.json``
            and into the record's notes (``breaking_change_reason``).
    """

    model_dir: str
    model_name: str
    channel: str = "canary"
    metrics: Mapping[str, float] = field(default_factory=dict)
    spans: Sequence[int] = ()
    git_commit: str | None = None
    mlmd_ids: Mapping[str, int] = field(default_factory=dict)
    blessed: bool = True
    batching: Mapping[str, Any] | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    contract: Contract | None = None
    breaking_change_reason: str = ""


def _checked(request: ReleaseRequest) -> ReleaseRequest:
    """``request`` with its recorded fields checked and normalised, before anything is written.

    Raises:
        InvalidNameError: unsafe model name or channel.
        ReleaseRefused: naming the field and value at fault (a NaN metric, a negative span...).
    """
    validate_model_name(request.model_name)
    validate_channel(request.channel)
    metrics: dict[str, float] = {}
    for name, value in (request.metrics or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReleaseRefused(f"metric {name!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ReleaseRefused(f"metric {name!r}: expected a finite number, got {value!r}")
        metrics[str(name)] = float(value)
    spans: list[int] = []
    for span in request.spans or ():
        if isinstance(span, bool) or not isinstance(span, int) or span < 0:
            raise ReleaseRefused(f"span {span!r}: expected an integer >= 0")
        spans.append(span)
    commit = request.git_commit
    if commit is not None and (not isinstance(commit, str) or not _GIT_COMMIT.fullmatch(commit)):
        raise ReleaseRefused(f"git commit {commit!r}: expected a commit id (no spaces)")
    ids: dict[str, int] = {}
    for name, value in (request.mlmd_ids or {}).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ReleaseRefused(f"MLMD id {name!r}: expected an integer >= 0, got {value!r}")
        ids[str(name)] = value
    reason = request.breaking_change_reason
    if not isinstance(reason, str):
        raise ReleaseRefused(f"breaking change reason {reason!r}: expected a string")
    notes = {str(k): str(v) for k, v in (request.notes or {}).items()}
    if reason:
        notes["breaking_change_reason"] = reason
    return replace(request, metrics=metrics, spans=spans, mlmd_ids=ids, notes=notes)


def _new_release(base: str, request: ReleaseRequest, pushed: PushResult,
                 moment: dt.datetime) -> Release:
    """The record of a new release, numbered after the model's releases so far (under the lock).
    """
    number = next_release_number(read_releases(base), request.model_name)
    return Release(
        tag=make_tag(request.channel, number, moment.date()),
        version=pushed.version,
        model_name=request.model_name,
        content_hash=pushed.content_hash,
        channel=request.channel,
        release_number=number,
        metrics=dict(request.metrics),
        spans=list(request.spans),
        git_commit=request.git_commit,
        mlmd_ids=dict(request.mlmd_ids),
        blessed=bool(request.blessed),
        pushed_at=moment.isoformat(timespec="seconds"),
        path=pushed.path,
        reused=pushed.reused,
        notes=dict(request.notes),
    )


def release_version(
    base_path: str,
    request: ReleaseRequest,
    *,
    between_steps: BetweenSteps | None = None,
    now: dt.datetime | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> Release:
    """Push ``request.model_dir`` as a new version, keep its contract, label it, record it.

    In one locked operation, in the order of the module docstring. The label: ``canary`` for
    the ``canary`` channel (a new canary starts with a 0% share), ``stable`` for the ``stable``
    channel, none for other channels or an unblessed version (it gets no traffic). If the pushed
    version already has a release record, that record is returned with ``reused=True`` and
    nothing is written, except the request's contract when the base path has none in force.

    Args:
        base_path: the model base path (created if missing).
        request: what to release.
        between_steps: called before the step of a label move that moves the label onto the
            new version (see ``apply_serving_state``): wait there for TF Serving to load it
            (``ServerWait``). None: no wait.
        now: the release time (UTC); defaults to the current time.
        lock_timeout: how long to wait for another operation's lock on the base path.

    Returns:
        The release: ``tag``, ``version``, ``path``, and ``reused``: True when the model was
        already in the base path and nothing was copied (its existing record is returned if it
        has one; a version pushed without a record, e.g. by an interrupted release, gets one).

    Raises:
        InvalidNameError: unsafe model name or channel.
        ReleaseRefused: an invalid field or batching setting, or a base path of another model;
            nothing is written.
        ContractError: the base path's ``contract.json`` is malformed; nothing is written.
        ReleaseError: the push failed (nothing visible is left behind).
        LockTimeout: another operation held the lock longer than ``lock_timeout``.
        ServerNotReady: TF Serving did not load the version in time; the label did not move
            and no record was written (see the module docstring).
    """
    request = _checked(request)
    batching_text = None
    if request.batching is not None:
        try:
            batching_text = batching_parameters_text(request.batching)
        except BatchingParametersError as e:
            raise ReleaseRefused(str(e)) from e
    moment = utc(now)
    when = moment.isoformat(timespec="seconds")
    serving = ServingDir(base_path, lock_timeout)
    base = serving.base_path
    with serving.lock():  # which removes a killed writer's temporaries, before any refusal
        check_model_name(base, request.model_name)
        read_contract(base)  # a malformed contract.json stops the release before the push
        try:
            pushed = serving.push(request.model_dir)
        except PushError as e:
            raise ReleaseError(str(e)) from e
        existing = find_release(base, pushed.version)
        if existing is not None:
            # Finished already. A contract is kept only if there is none in force (a base path
            # released into before contracts were kept with their release).
            keep_contract(base, pushed.version, request.contract, when=when)
            return replace(existing, reused=True)

        release = _new_release(base, request, pushed, moment)
        keep_contract(
            base, release.version, request.contract,
            breaking_change_reason=request.breaking_change_reason, when=when,
        )
        before = read_state(base)
        after = copy.deepcopy(before)
        after.model_name = request.model_name
        label = request.channel if request.channel in LABELS and request.blessed else None
        if label == "canary":
            after.labels["canary"] = release.version
            after.canary_percent = 0  # a new canary earns its share by an explicit `traffic`
        elif label == "stable":
            after.labels["stable"] = release.version
            after.stable_history.append(release.version)
            if after.labels.get("canary") == release.version:
                del after.labels["canary"]
        actor = current_actor()
        after.history.append(
            history_entry(
                "release", after, when=when, actor=actor, reason=None,
                version=release.version, tag=release.tag, label=label,
            )
        )
        try:
            commit_labels(base, before, after, between_steps=between_steps, when=when)
        except ServerNotReady as e:
            error = ServerNotReady(
                f"release {release.tag} (version {release.version}) stopped before the "
                f"{label} label moved: {e}; labels unchanged, models.config serves version "
                f"{release.version} beside the others; releasing the same model again finishes "
                "the release"
            )
            record_not_ready(base, before, history_entry(
                "release", before, when=when, actor=actor, reason=None,
                version=release.version, tag=release.tag, label=label, outcome="failed",
                error=str(error),
            ))
            raise error from e
        if batching_text is not None:
            write_atomically(os.path.join(base, BATCHING_FILE), batching_text.encode())
        write_release_record(base, release)
    return release
