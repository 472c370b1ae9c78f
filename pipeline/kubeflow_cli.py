"""`pipeline schedule kubeflow` and `pipeline runs submit --on kubeflow`: parse the flags, load
the profile, and hand over to `runners/kubeflow_client.py` (which talks to kfp.Client).

Importing this module is cheap (argparse only): the CLI registers the commands from it.
Exit codes: 0 asked for, 1 the server did not answer or refused, 2 refused here (a bad cron,
flag or configuration, no host) before anything was sent.
"""

from __future__ import annotations

import argparse
from typing import Any

# Where `pipeline runs submit` can start a run (`runs list` and `runs show`: lineage_cli.py).
RUNS_ON = ("kubeflow",)
SCHEDULE_ON = ("kubeflow",)
DEFAULT_PROFILE = "kubeflow"


def _add_target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"profile in pipeline/profiles ({DEFAULT_PROFILE})")
    p.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    p.add_argument("--host", metavar="URL",
                   help="KFP API endpoint (default: kubeflow.host, else $KFP_HOST)")
    p.add_argument("--namespace", metavar="NS",
                   help="user namespace (default: kubeflow.namespace, else $KFP_NAMESPACE)")
    p.add_argument("--experiment", metavar="NAME",
                   help="KFP experiment (default: kubeflow.experiment, else the pipeline name)")
    p.add_argument("--package", metavar="FILE",
                   help="a package compiled before (`pipeline compile kubeflow`) instead of "
                   "compiling the profile now")
    p.add_argument("--name", metavar="NAME", help="the run's display name")
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")


def add_schedule_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `schedule kubeflow` to `subparsers` (from `add_subparsers`); argparse only."""
    schedule = subparsers.add_parser(
        "schedule", help="run the pipeline on a schedule (kubeflow: a KFP recurring run)")
    on = schedule.add_subparsers(dest="schedule_on", required=True, metavar="ON")
    kf = on.add_parser(
        "kubeflow", help="a recurring run on Kubeflow Pipelines (credentials: environment)")
    kf.add_argument("--cron", metavar="'S M H DOM MON DOW'",
                    help="KFP's cron: six fields, seconds first, e.g. '0 0 3 * * *' "
                    "(default: kubeflow.schedule.cron)")
    kf.add_argument("--max-concurrency", type=int, metavar="N",
                    help="runs at the same time (default: kubeflow.schedule.max_concurrency)")
    kf.add_argument("--catchup", action=argparse.BooleanOptionalAction, default=None,
                    help="run the intervals a paused or late schedule missed (default: "
                    "not kubeflow.schedule.no_catchup)")
    kf.add_argument("--data-root", metavar="URI", help="data root of every run (cluster path)")
    kf.add_argument("--train-steps", type=int, metavar="N", help="training steps of every run")
    kf.add_argument("--channel", metavar="C", help="release channel of the pushed versions")
    kf.add_argument("--reason", metavar="TEXT", help="why: a parameter of every run")
    _add_target_flags(kf)
    return schedule


def add_runs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `runs submit` to `subparsers`; argparse only."""
    runs = subparsers.add_parser(
        "runs", help="runs: submit one to an orchestrator; list and show those recorded")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    submit = sub.add_parser("submit", help="one run of the pipeline now, on --on")
    submit.add_argument("--on", choices=RUNS_ON, required=True, help="where the run happens")
    submit.add_argument("--span", type=int, metavar="N", help="span to read (default: latest)")
    submit.add_argument("--data-root", metavar="URI",
                        help="folder of span-N/ folders, as the cluster reads it")
    submit.add_argument("--train-steps", type=int, metavar="N", help="training steps")
    submit.add_argument("--channel", metavar="C", help="release channel of the pushed version")
    submit.add_argument("--reason", metavar="TEXT", help="why: a parameter of the run")
    _add_target_flags(submit)
    from pipeline.lineage_cli import add_runs_actions  # list, show: from ML Metadata

    add_runs_actions(sub)
    return runs


def _load_and_target(args: argparse.Namespace):
    """The configuration and the target of `args`.

    Raises:
      ConfigError, SubmitError.
    """
    from pipeline.config import load_config
    from runners.kubeflow_client import resolve_target

    # The schema is read where the package is compiled (runners/kubeflow.py), not here.
    cfg = load_config(args.profile, args.config, check_schema=False)
    return cfg, resolve_target(cfg, host=args.host, namespace=args.namespace,
                               experiment=args.experiment)


def _answer(args: argparse.Namespace, send) -> int:
    """Runs `send(cfg, target)` (a request to the KFP API) and prints what it returned, or the
    one line of why it failed; the exit code."""
    from pipeline.config import ConfigError
    from runners.kubeflow_client import SubmitError, print_failed, print_submitted

    try:
        cfg, target = _load_and_target(args)
        result = send(cfg, target)
    except SubmitError as e:
        print_failed(str(e), args.json)
        return e.exit_code
    except ConfigError as e:
        print_failed(str(e), args.json)
        return 2
    print_submitted(result, args.json)
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    return _answer(args, lambda cfg, target: _schedule(args, cfg, target))


def _schedule(args: argparse.Namespace, cfg, target):
    from components.metadata.run_requests import RunRequest
    from runners.kubeflow_client import SubmitError, schedule_run

    sched = cfg.kubeflow.schedule
    cron = args.cron or sched.cron
    if not cron:
        raise SubmitError("no schedule: give --cron '0 0 3 * * *' (six fields, seconds "
                          "first) or kubeflow.schedule.cron in the profile", 2)
    max_concurrency = (sched.max_concurrency if args.max_concurrency is None
                       else args.max_concurrency)
    if not 1 <= max_concurrency <= 10:  # what the KFP API accepts
        raise SubmitError(f"--max-concurrency: expected an integer from 1 to 10, got "
                          f"{max_concurrency}", 2)
    no_catchup = sched.no_catchup if args.catchup is None else not args.catchup
    request = RunRequest.from_here(
        "schedule", args.reason, data_root=args.data_root, channel=args.channel)
    return schedule_run(cfg, request, target, cron=cron, max_concurrency=max_concurrency,
                        no_catchup=no_catchup, package=args.package, name=args.name,
                        train_steps=args.train_steps, quiet=args.json)


def run_runs(args: argparse.Namespace) -> int:
    """`pipeline runs SUBCOMMAND`."""
    from pipeline.lineage_cli import run_runs_query

    return {"submit": _runs_submit, "list": run_runs_query,
            "show": run_runs_query}[args.runs_command](args)


def _runs_submit(args: argparse.Namespace) -> int:
    from components.metadata.run_requests import RunRequest
    from runners.kubeflow_client import submit_run

    def send(cfg, target):
        request = RunRequest.from_here("runs submit", args.reason, span=args.span,
                                       data_root=args.data_root, channel=args.channel)
        return submit_run(cfg, request, target, package=args.package, name=args.name,
                          train_steps=args.train_steps, quiet=args.json)

    return _answer(args, send)
