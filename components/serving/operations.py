"""Operations on released versions: promote, rollback, traffic split, prune.

Each runs under the base path's lock (``locked_operation``, waiting at most ``lock_timeout``
seconds for another operation), is refused (``ReleaseRefused``) before anything is written when
the request is not valid in the current state, commits a label change in the safe order of
``components.serving.commit``, appends to the history in ``labels.json`` (who, when, why, labels
after: the ``Audit``) and, when the audit names a metadata store, records a ``ReleaseOperation``
execution in ML Metadata.

A promote or rollback that moves the ``stable`` label onto a version TF Serving has not loaded
waits for it between the two steps (``between_steps``, e.g. ``ServerWait``). If it is not
loaded in time (``ServerNotReady``) the labels stay where they were, ``models.config`` serves the
version beside the others, and the failure is recorded (history, and ML Metadata with
``details.outcome: failed``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import shutil
from dataclasses import dataclass

from components.metadata import RecordedOperation
from components.serving.commit import (
    Audit,
    OperationContext,
    locked_operation,
    record_in_metadata,
    record_not_ready,
)
from components.serving.errors import ReleaseError, ReleaseRefused, ServerNotReady
from components.serving.files import TMP_PREFIX
from components.serving.labels import LABELS, LabelState, write_state
from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS
from components.serving.models_config import BetweenSteps, ServingState, read_models_config
from components.serving.names import parse_tag
from components.serving.records import Release, find_release, read_releases

__all__ = ["OperationResult", "promote", "prune", "rollback", "set_traffic"]

# The default audit: the current user and time, no reason, not recorded in ML Metadata. One
# instance serves every call, as an ``Audit`` is frozen.
_DEFAULT_AUDIT = Audit()


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


def _commit_or_record_failure(
    ctx: OperationContext,
    after: LabelState,
    between_steps: BetweenSteps | None,
    *,
    version: int,
    tag: str,
    linked: list[int],
) -> tuple[ServingState, ...]:
    """``ctx.commit``; when TF Serving did not load ``version`` in time, record the failure
    (labels unchanged) in the history and in ML Metadata, then raise."""
    try:
        return ctx.commit(after, between_steps)
    except ServerNotReady as e:
        error = ServerNotReady(
            f"{ctx.operation} of version {version} ({tag or 'no tag'}) stopped before the stable "
            f"label moved: {e}; labels unchanged, models.config serves version {version} "
            "beside the others"
        )
        before = ctx.before
        record_not_ready(ctx.base, before, ctx.history_entry(
            before, version=version, tag=tag, outcome="failed", error=str(error),
        ))
        # The error above is what the caller must see; the history has the failure either way.
        with contextlib.suppress(ReleaseError):
            record_in_metadata(
                ctx, before, version=version, tag=tag, linked=linked,
                details={"outcome": "failed", "error": str(error), "labels": before.labels},
            )
        raise error from e


def promote(
    base_path: str,
    target: str | int,
    *,
    audit: Audit = _DEFAULT_AUDIT,
    between_steps: BetweenSteps | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> OperationResult:
    """Label a released, blessed version ``stable`` (usually the canary: ``promote canary``).

    The previous stable stays in the stable history, so ``rollback`` can return to it. If the
    promoted version was the canary, the canary label goes and its traffic share with it.

    Args:
        base_path: the model base path.
        target: a version number, a tag (``canary-v3-20240520``) or a label (``canary``).
        audit: who, why and when, kept in the history and, when it names a store, in ML
            Metadata (default: the current user and time, no reason, not recorded in MLMD).
        between_steps: called before the label moves onto a version (see
            ``apply_serving_state``): wait there for TF Serving to load it (``ServerWait``).
        lock_timeout: how long to wait for another operation's lock on the base path.

    Raises:
        InvalidNameError: ``target`` is neither a version, a label nor a well-formed tag.
        ReleaseRefused: unknown tag or version, not blessed, pruned, or already stable.
        ReleaseError: writing failed, or recording in ML Metadata failed after the change.
        LockTimeout: another operation held the lock longer than ``lock_timeout``.
        ServerNotReady: TF Serving did not load the version in time; labels unchanged.
    """
    with locked_operation(
        base_path, "promote", audit=audit, lock_timeout=lock_timeout
    ) as ctx:
        base, before = ctx.base, ctx.before
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
        after.history.append(ctx.history_entry(
            after, version=release.version, tag=release.tag, previous_stable=previous,
        ))
        steps = _commit_or_record_failure(
            ctx, after, between_steps, version=release.version, tag=release.tag,
            linked=[release.version],
        )
        recorded = record_in_metadata(
            ctx, after, version=release.version, tag=release.tag,
            linked=[release.version],
            details={"labels": after.labels, "previous_stable": previous},
        )
    return OperationResult(
        "promote", release.version, release.tag, dict(after.labels), after.routing_weights(),
        config_steps=steps, recorded=recorded,
    )


def rollback(
    base_path: str,
    *,
    audit: Audit = _DEFAULT_AUDIT,
    between_steps: BetweenSteps | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> OperationResult:
    """Label the previous stable version ``stable`` again (one step back in the stable history).

    The canary, if any, stays. Arguments as for ``promote``.

    Raises:
        ReleaseRefused: no previous stable version, or it is no longer in the base path.
        ReleaseError: writing failed, or recording in ML Metadata failed after the change.
        LockTimeout, ServerNotReady: as for ``promote``.
    """
    with locked_operation(
        base_path, "rollback", audit=audit, lock_timeout=lock_timeout
    ) as ctx:
        base, before = ctx.base, ctx.before
        previous = before.previous_stable()
        current = before.labels.get("stable")
        if previous is None:
            raise ReleaseRefused(
                f"no previous stable version to roll back to in {base} "
                f"(stable: {current if current is not None else 'none'})"
            )
        if not os.path.isdir(ctx.serving.version_path(previous)):
            raise ReleaseRefused(f"previous stable version {previous} is no longer in {base}")
        release = find_release(base, previous)
        tag = release.tag if release else ""
        after = copy.deepcopy(before)
        after.stable_history.pop()
        after.labels["stable"] = previous
        if after.labels.get("canary") == previous:
            del after.labels["canary"]
            after.canary_percent = 0
        after.history.append(ctx.history_entry(
            after, version=previous, tag=tag, rolled_back_from=current,
        ))
        linked = [previous] + ([current] if current is not None else [])
        steps = _commit_or_record_failure(
            ctx, after, between_steps, version=previous, tag=tag, linked=linked
        )
        recorded = record_in_metadata(
            ctx, after, version=previous, tag=tag, linked=linked,
            details={"labels": after.labels, "rolled_back_from": current},
        )
    return OperationResult(
        "rollback", previous, tag, dict(after.labels), after.routing_weights(),
        config_steps=steps, recorded=recorded,
    )


def set_traffic(
    base_path: str,
    canary_percent: int,
    *,
    audit: Audit = _DEFAULT_AUDIT,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> OperationResult:
    """Send ``canary_percent`` % of requests to the canary and the rest to stable.

    Writes ``routing.json`` (``{"weights": {"stable": 95, "canary": 5}, ...}``), read by the
    router in front of TF Serving; labels and ``models.config`` do not change. Other arguments
    as for ``promote``.

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
    with locked_operation(
        base_path, "traffic", audit=audit, lock_timeout=lock_timeout
    ) as ctx:
        base, before = ctx.base, ctx.before
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
        after.history.append(ctx.history_entry(after, version=canary, tag=tag))
        ctx.commit(after, None)
        recorded = record_in_metadata(
            ctx, after, version=canary, tag=tag, linked=[canary],
            details={"weights": after.routing_weights()},
        )
    return OperationResult(
        "traffic", canary, tag, dict(after.labels), after.routing_weights(), recorded=recorded
    )


def prune(
    base_path: str,
    keep: int,
    *,
    audit: Audit = _DEFAULT_AUDIT,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> OperationResult:
    """Remove old version directories, keeping the ``keep`` newest and every version in use.

    Never removed: a labelled version, a version listed in ``models.config``, the newest
    version, and the previous stable (the target of ``rollback``). Each removed directory is
    first renamed to a hidden temporary name, so TF Serving sees it vanish in one step. Release
    records stay as history, and version numbers are never handed out again. Other arguments
    as for ``promote``.

    Raises:
        ReleaseRefused: ``keep`` is not an integer >= 0.
        ReleaseError: removing failed, or recording in ML Metadata failed after the change.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ReleaseRefused(f"--keep must be an integer >= 0, got {keep!r}")
    with locked_operation(base_path, "prune", audit=audit, lock_timeout=lock_timeout) as ctx:
        base, before, serving = ctx.base, ctx.before, ctx.serving
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
        after.history.append(ctx.history_entry(after, removed=removed, keep=keep))
        write_state(base, after)
        recorded = record_in_metadata(
            ctx, after, version=None, tag="", linked=removed,
            details={"removed": removed, "kept": sorted(set(present) - set(removed))},
        )
    return OperationResult(
        "prune", None, "", dict(after.labels), after.routing_weights(),
        removed=tuple(removed), recorded=recorded,
    )

