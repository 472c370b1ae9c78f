"""``pipeline release``: list, promote, rollback, traffic and prune a served model's versions.

Argument parsing imports nothing heavy; ``run_release`` imports the release package (standard
library and protobuf) and, for operations that change something, ``ml_metadata`` to record
them. TensorFlow is never imported, so each command answers in well under two seconds, unless
it waits: for another operation's lock on the base path, or, when ``promote`` or ``rollback``
moves ``stable`` onto a version TF Serving has not loaded, for the server (both as the config's
``pusher.serving`` says, the same settings the pipeline's pusher uses).
Exit codes: 0 done, 2 refused (bad request, unknown tag, nothing to roll back to, bad config),
1 failed (I/O, ML Metadata, the lock or the server not ready in time).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_ACTIONS = "list, promote, rollback, traffic, prune"


def add_release_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``release`` command and its actions to ``subparsers`` (from ``add_subparsers``).

    Returns:
        The ``release`` parser.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default="local", help="profile in pipeline/profiles (local)")
    common.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    common.add_argument(
        "--base-path", metavar="DIR", help="model base path (default: pusher.base_path)"
    )
    common.add_argument(
        "--metadata",
        metavar="FILE",
        help="ML Metadata SQLite file to record operations in (default: the config's)",
    )
    common.add_argument(
        "--no-metadata", action="store_true", help="do not record the operation in ML Metadata"
    )
    why = argparse.ArgumentParser(add_help=False)
    why.add_argument("--reason", metavar="TEXT", help="why: kept in the history and in MLMD")
    wait = argparse.ArgumentParser(add_help=False)
    # Replaced by the config's pusher.serving; kept so that an old script gets one clear line.
    wait.add_argument("--step-wait", metavar="SECONDS", help=argparse.SUPPRESS)

    release = subparsers.add_parser(
        "release",
        help="served versions: " + _ACTIONS,
        description="Manage the versions in a TensorFlow Serving model base path.",
    )
    actions = release.add_subparsers(dest="release_action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "list", parents=[common], help="versions, tags, labels, metrics, pushed-at"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    promote = actions.add_parser(
        "promote", parents=[common, why, wait], help="label a blessed version stable",
        description="Label a blessed version stable. When the version is new to TF Serving, "
        "the label moves once the server has loaded it (pusher.serving in the config).",
    )
    promote.add_argument(
        "target", metavar="TAG_OR_VERSION", help="a tag, a version number, or 'canary'"
    )
    actions.add_parser(
        "rollback", parents=[common, why, wait], help="label the previous stable version stable"
    )
    traffic = actions.add_parser(
        "traffic", parents=[common, why], help="split requests between stable and canary"
    )
    traffic.add_argument(
        "--canary", type=int, required=True, metavar="P", help="percent to the canary, 0..100"
    )
    prune = actions.add_parser(
        "prune", parents=[common, why], help="remove old, unlabelled version directories"
    )
    prune.add_argument(
        "--keep", type=int, required=True, metavar="K", help="newest versions to keep"
    )
    return release


def _error(message: str, code: int) -> int:
    # One line, whatever the message holds: scripts read the first line of stderr.
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def _labels_text(labels: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(labels.items())) or "none"


def _print_listing(listing: Any) -> None:
    print(f"model {listing.model_name or '-'} at {listing.base_path}")
    weights = ", ".join(f"{k} {v}%" for k, v in listing.weights.items()) or "none"
    print(f"labels: {_labels_text(listing.labels)}   traffic: {weights}")
    if not listing.versions:
        print("no versions")
        return
    print()
    print(f"{'VERSION':>7}  {'TAG':<26} {'LABELS':<14} {'BLESSED':<7}  {'PUSHED AT':<25}  METRICS")
    for v in listing.versions:
        blessed = {True: "yes", False: "no", None: "-"}[v.blessed]
        metrics = ", ".join(f"{k} {val:.4g}" for k, val in sorted(v.metrics.items()))
        labels = ",".join(v.labels) or "-"
        note = "" if v.present else "  (removed)"
        print(
            f"{v.version:>7}  {v.tag or '(no record)':<26} {labels:<14} {blessed:<7}  "
            f"{v.pushed_at or '-':<25}  {metrics or '-'}{note}"
        )


def _summary(result: Any) -> str:
    if result.operation == "promote":
        head = f"promoted version {result.version} ({result.tag}) to stable"
    elif result.operation == "rollback":
        head = f"rolled back: stable is version {result.version} ({result.tag or 'no tag'})"
    elif result.operation == "traffic":
        head = "traffic: " + ", ".join(f"{k} {v}%" for k, v in result.weights.items())
    else:
        removed = ", ".join(map(str, result.removed)) or "nothing"
        head = f"pruned: removed {removed}"
    return f"{head}; labels: {_labels_text(result.labels)}"


def run_release(args: argparse.Namespace) -> int:
    """Run ``pipeline release ACTION`` for parsed ``args``; return the exit code."""
    import components.serving as release
    from components.serving import ReleaseError, ReleaseRefused
    from pipeline.config import ConfigError, load_config

    try:
        cfg = load_config(args.profile, args.config, check_schema=False)
    except ConfigError as e:
        return _error(str(e), 2)
    if getattr(args, "step_wait", None) is not None:
        return _error(
            "--step-wait is replaced by the config's pusher.serving (poll_seconds, status_url, "
            "load_timeout_seconds), which the pipeline's pusher uses too", 2,
        )
    base_path = args.base_path or cfg.pusher.base_path
    metadata = None
    if not args.no_metadata and args.release_action != "list":  # `list` records nothing
        try:
            metadata = args.metadata or cfg.metadata_target
        except ConfigError as e:  # the MySQL password's variable or file
            return _error(str(e), 2)
    if metadata is not None and not isinstance(metadata, str):
        from components.metadata import MetadataError, check_mysql_server

        try:  # before anything changes: else the operation would be applied, but not recorded
            check_mysql_server(metadata, create=True)
        except MetadataError as e:
            return _error(f"{e}; nothing was changed", 1)
    audit = release.Audit(  # `list` has no --reason
        reason=getattr(args, "reason", None), metadata_path=metadata,
        pipeline_name=cfg.pipeline_name,
    )
    server = cfg.pusher.serving
    between_steps = release.ServerWait(server)
    lock_timeout = server.lock_timeout_seconds

    try:
        if args.release_action == "list":
            listing = release.list_releases(base_path)
            if args.json:
                print(json.dumps(listing.to_json(), indent=2))
            else:
                _print_listing(listing)
            return 0
        if args.release_action == "promote":
            result = release.promote(
                base_path, args.target, audit=audit, between_steps=between_steps,
                lock_timeout=lock_timeout,
            )
        elif args.release_action == "rollback":
            result = release.rollback(
                base_path, audit=audit, between_steps=between_steps, lock_timeout=lock_timeout
            )
        elif args.release_action == "traffic":
            result = release.set_traffic(
                base_path, args.canary, audit=audit, lock_timeout=lock_timeout
            )
        else:
            result = release.prune(base_path, args.keep, audit=audit, lock_timeout=lock_timeout)
    except ReleaseRefused as e:
        return _error(str(e), 2)
    except (ReleaseError, OSError) as e:
        return _error(str(e), 1)
    print(_summary(result))
    if result.recorded is not None:
        linked = ", ".join(map(str, result.recorded.linked_artifact_ids)) or "none"
        from components.metadata import describe_target

        print(
            f"recorded in {describe_target(metadata)}: execution "
            f"{result.recorded.execution_id}, PushedModel artifacts {linked}"
        )
    return 0
