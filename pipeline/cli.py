"""The `pipeline` command. Imports nothing heavy until a command needs it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# Where `pipeline retrain` can run: `local` in this process; any other name is a runner module
# `runners/<name>.py` providing `trigger(cfg, request, *, as_json) -> int`, which starts the
# run on its orchestrator with `cfg`'s data (the command line's span, data root and channel are
# also in `request.details`) and the request's reason, user and host, prints how to follow it
# (one JSON object with `as_json`) and returns the exit code.
RETRAIN_ON = ("local", "airflow", "kubeflow")
# The runner module of a name whose module is not `runners/<name>.py` (runners/kubeflow.py
# compiles; runners/kubeflow_client.py talks to the KFP API).
TRIGGER_MODULES = {"kubeflow": "kubeflow_client"}
# The profile `retrain --on NAME` loads when --profile is not given (default: local).
RETRAIN_PROFILES = {"kubeflow": "kubeflow"}
# The commands that run the pipeline in this process, watched from a parent (`_watched_run`).
RUN_COMMANDS = ("run", "retrain")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pipeline",
        description="A TFX pipeline from TFRecords to a TensorFlow Serving model base path.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the pipeline locally (LocalDagRunner), whole or from/to a node")
    run.add_argument("--profile", default="local", help="profile in pipeline/profiles (local)")
    run.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    run.add_argument("--data-root", metavar="DIR", help="folder of span-N/ TFRecord folders")
    run.add_argument("--span", type=int, metavar="N", help="span to read (default: latest)")
    run.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    run.add_argument(
        "--full", action="store_true",
        help="go through TFX even when nothing changed since the last successful run "
        "(each component then meets TFX's own cache)",
    )
    run.add_argument("--from-node", metavar="X",
                     help="re-run X and what follows on top of the latest run's outputs")
    run.add_argument("--to-node", metavar="Y", help="stop after Y (and what it needs)")
    run.add_argument("--only", metavar="X", help="re-run X alone (--from-node X --to-node X)")
    run.add_argument("--reason", metavar="TEXT",
                     help="why: recorded with the run in ML Metadata (the run goes through TFX)")

    retrain = sub.add_parser(
        "retrain", help="train again on a span or a data folder, through TFX; the model is "
        "pushed only if it passes the thresholds against the stable version")
    retrain.add_argument("--span", type=int, metavar="N", help="span to train on")
    retrain.add_argument("--data-root", metavar="DIR", help="folder of span-N/ TFRecord folders")
    retrain.add_argument("--channel", metavar="C", help="release channel of the pushed version")
    retrain.add_argument("--reason", metavar="TEXT",
                         help="why: recorded with the run in ML Metadata")
    retrain.add_argument("--on", choices=RETRAIN_ON, default="local",
                         help="where the run happens (local: here, LocalDagRunner)")
    retrain.add_argument("--json", action="store_true", help="print one JSON object")
    retrain.add_argument("--profile", help="profile in pipeline/profiles (local; "
                         "kubeflow with --on kubeflow)")
    retrain.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")

    show = sub.add_parser("config", help="print the resolved configuration")
    show.add_argument("--profile", default="local")
    show.add_argument("--config", metavar="FILE")

    from pipeline.release_cli import add_release_parser  # argparse only: cheap

    add_release_parser(sub)
    from pipeline.compile_tfjob import add_compile_parser  # argparse only: cheap

    add_compile_parser(sub)
    from pipeline.kubeflow_cli import add_runs_parser, add_schedule_parser  # argparse only

    add_schedule_parser(sub)
    add_runs_parser(sub)
    from pipeline.lineage_cli import add_lineage_parser  # argparse only

    add_lineage_parser(sub)
    return p


def _load(args: argparse.Namespace, *, check_schema: bool = True):
    from pipeline.config import load_config

    overrides: dict[str, Any] = {}
    if getattr(args, "data_root", None):
        overrides.setdefault("data", {})["root"] = args.data_root
    if getattr(args, "span", None) is not None:
        overrides.setdefault("data", {})["span"] = args.span
    if getattr(args, "channel", None):
        overrides.setdefault("pusher", {})["channel"] = args.channel
    return load_config(args.profile, args.config, overrides, check_schema=check_schema)


def _fail(message: str, as_json: bool, code: int = 2) -> int:
    if as_json:
        print(json.dumps({"status": "failed", "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def _partial_run(args: argparse.Namespace):
    """The partial run `args` ask for, or None.

    Raises:
      ConfigError: an unknown node, or options that contradict each other.
    """
    from pipeline.build import NODE_ORDER
    from pipeline.config import ConfigError
    from runners.partial import select_nodes

    partial = select_nodes(NODE_ORDER, from_node=args.from_node, to_node=args.to_node,
                           only=args.only)
    first = NODE_ORDER[0]  # the node that reads the data
    if (partial is not None and partial.from_nodes and partial.from_nodes != [first]
            and (args.span is not None or args.data_root)):
        raise ConfigError(
            f"--span and --data-root choose the data {first} reads, but a run from "
            f"{partial.from_nodes[0]} reuses the latest run's; use --from-node {first}, or "
            "pipeline retrain")
    return partial


def _cmd_run(args: argparse.Namespace) -> int:
    from components.metadata.run_requests import RunRequest
    from pipeline.config import ConfigError

    try:
        partial = _partial_run(args)
        cfg = _load(args)
    except ConfigError as e:
        return _fail(str(e), args.json)
    request = RunRequest.from_here("run", args.reason, span=args.span, data_root=args.data_root)
    return _run_and_report(args, cfg, request, partial=partial, full=args.full)


def _cmd_retrain(args: argparse.Namespace) -> int:
    from components.metadata.run_requests import RunRequest
    from pipeline.config import ConfigError

    if args.span is None and not args.data_root:
        return _fail("retrain needs the data to train on: --span N and/or --data-root DIR",
                     args.json)
    if args.profile is None:
        args.profile = RETRAIN_PROFILES.get(args.on, "local")
    try:
        # A Kubeflow profile's schema is read where its package is compiled (runners/kubeflow.py).
        cfg = _load(args, check_schema=args.on != "kubeflow")
    except ConfigError as e:
        return _fail(str(e), args.json)
    request = RunRequest.from_here("retrain", args.reason, span=args.span,
                                   data_root=args.data_root, channel=args.channel)
    if args.on != "local":
        return _trigger_on(args.on, cfg, request, args.json)
    # Always through TFX (never the up-to-date shortcut): each node meets TFX's own cache, so
    # a retrain on data, code and config already trained on reuses that model.
    return _run_and_report(args, cfg, request, partial=None, full=True)


def _trigger_on(name: str, cfg, request, as_json: bool) -> int:
    """`pipeline retrain --on NAME`: `runners/<name>.py`'s `trigger` (see RETRAIN_ON)."""
    import importlib

    module_name = TRIGGER_MODULES.get(name, name)
    try:
        module = importlib.import_module(f"runners.{module_name}")
    except ModuleNotFoundError as e:
        why = (f"no runners/{module_name}.py" if e.name == f"runners.{module_name}"
               else f"runners/{module_name}.py needs {e.name}, which is not installed")
        return _fail(f"--on {name}: not available: {why}", as_json)
    trigger = getattr(module, "trigger", None)
    if trigger is None:
        return _fail(f"--on {name}: not available: runners/{module_name}.py has no "
                     "trigger(cfg, request, *, as_json)", as_json)
    return trigger(cfg, request, as_json=as_json)


def _run_and_report(args: argparse.Namespace, cfg, request, *, partial, full: bool) -> int:
    """Runs the pipeline in this process (LocalDagRunner), showing progress, and prints the
    summary (or the JSON object); the exit code."""
    from pipeline.app.run import run_pipeline
    from pipeline.build import NODE_ORDER
    from runners import local  # Airflow and Kubeflow runners stand beside it

    shown: set[str] = set()

    def show_reused_before(name: str | None) -> None:
        """The nodes a partial run reuses, in pipeline order, up to `name` (None: all)."""
        if partial is None:
            return
        for node in NODE_ORDER:
            if node == name:
                break
            if node in partial.reused and node not in shown:
                shown.add(node)
                print(f"  {node:<20} {'reused':<10} from run {partial.base_run}")

    def show(name: str, event: str, seconds: float, state: str) -> None:
        if event == "running":
            show_reused_before(name)
            print(f"  {name:<20} running ...", end="", flush=True)
        else:
            shown.add(name)
            print(f"\r  {name:<20} {state:<10} {seconds:6.1f} s", flush=True)

    if not args.json:
        what = "retrain " if request.trigger == "retrain" else ""
        print(f"{what}pipeline {cfg.pipeline_name}: data {cfg.data.root}"
              f"{'' if cfg.data.span is None else f' span {cfg.data.span}'}, "
              f"profile {args.profile}")
        if request.reason:
            print(f"reason: {request.reason} (asked by {request.user}@{request.host})")
    result = run_pipeline(cfg, local.run, on_progress=None if args.json else show,
                          full=full, partial=partial, request=request)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return result.exit_code
    if result.status != "succeeded":
        print()
    # The components not already shown as they finished: the failed one and those not run.
    for c in result.components:
        if c.name not in shown and not result.up_to_date_with:
            print(f"  {c.name:<20} {c.status:<10} {c.seconds:6.1f} s")
    if result.status != "succeeded":
        print(f"error: {result.error}", file=sys.stderr)
        if result.log_file:
            print(f"full log: {result.log_file}", file=sys.stderr)
        return result.exit_code
    cached = sum(c.cached for c in result.components)
    if result.up_to_date_with:
        print(f"  up to date: nothing changed since run {result.up_to_date_with} (data, "
              "config, code, metadata, serving)\n"
              f"  all {len(result.components)} components reused without starting TFX "
              "(--full goes through TFX's cache)\n")
    elif result.partial:
        p = result.partial
        on_top = f" on top of run {p['base_run']}" if p.get("base_run") else ""
        print(f"\npartial run{on_top}: ran {', '.join(p['ran'])}"
              f"{'; reused ' + str(len(p['reused'])) if p['reused'] else ''}"
              f"{'; not run ' + ', '.join(p['skipped']) if p['skipped'] else ''}")
    else:
        print(f"\n{cached} of {len(result.components)} components cached")
    trainer = next((c for c in result.components if c.name == "Trainer"), None)
    if request.trigger == "retrain" and trainer is not None and trainer.status == "cached":
        print("Trainer cached: this data was already trained on with the same code and "
              "config (TFX's cache); no new model was trained")
    if result.metrics:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
        print(f"metrics (eval split, span {result.span}): {metrics}")
    if result.baseline:  # what the candidate was compared with (pipeline.app.report)
        print(result.baseline["line"])
    if result.pushed:
        state = "pushed" if result.pushed.get("new") else "already serving"
        tag = f" ({result.pushed['tag']})" if result.pushed.get("tag") else ""
        print(f"{state}: version {result.pushed['version']}{tag} at {result.pushed['path']}")
    elif result.blessed is False:
        # Evaluation threshold lines first, then the serving-contract ones ("signature: ...").
        print("not pushed, because:")
        for line in result.validation_failures:
            print(f"  - {line}")
    if request.reason:
        print(f"reason: {request.reason} (asked by {request.user}@{request.host}, recorded "
              "in ML Metadata with the run)")
    print(f"metadata: {result.metadata_uri}\nrun: {result.run_id}  log: {result.log_file}")
    return result.exit_code


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from pipeline.config import ConfigError, config_to_dict

    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(str(e), False)
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `pipeline` command on `argv` (None: the process's arguments, and then `pipeline run`
    and `pipeline retrain` are watched from a parent process, see `_watched_run`)."""
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] and argv[0] in RUN_COMMANDS and hasattr(os, "fork"):
            return _watched_run(argv)
    return _main(argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from pipeline.compile_tfjob import run_compile
    from pipeline.kubeflow_cli import run_runs, run_schedule
    from pipeline.lineage_cli import run_lineage
    from pipeline.release_cli import run_release

    handlers = {"run": _cmd_run, "retrain": _cmd_retrain, "config": _cmd_config,
                "release": run_release, "compile": run_compile, "schedule": run_schedule,
                "runs": run_runs, "lineage": run_lineage}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (the last resort: one line, the traceback in a file)
        return _internal_error(e, getattr(args, "json", False))


def _internal_error(exc: Exception, as_json: bool) -> int:
    """An error no command turned into a message (a bug, or a failure while logging was set
    up): one `error:` line naming it, and the traceback saved to a file the line names."""
    import tempfile
    import traceback

    from pipeline.app.run_log import error_line

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        fd, path = tempfile.mkstemp(prefix="pipeline-error-", suffix=".txt")
        with open(fd, "w") as f:
            f.write(text)
        where = f"; traceback in {path}"
    except OSError:
        where = ""
    return _fail(f"{error_line(exc)}{where}", as_json, 1)


def _watched_run(argv: list[str]) -> int:
    """`pipeline run` (or `retrain`) in a child process, watched by this one. A native crash
    (SIGABRT or SIGSEGV in TensorFlow, Beam or protobuf, or the OOM killer's SIGKILL) ends a
    process without a Python exception; the parent, which imports nothing heavy, writes the
    `error:` line (with `--json`, the JSON object) the run could not."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the run
        code = 1
        try:
            code = _main(argv)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return _wait_for_run(pid, "--json" in argv)


def _wait_for_run(pid: int, as_json: bool) -> int:
    import signal

    # Ctrl-C reaches both processes (one process group): the run reports it, this one waits.
    # A signal sent to this process alone is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, _: os.kill(pid, signum))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    name = signal.Signals(signum).name
    why = {"SIGKILL": " (killed from outside, or by the kernel's out-of-memory killer)",
           "SIGABRT": " (a native abort in TensorFlow, Beam or a library)",
           "SIGSEGV": " (a native crash in TensorFlow, Beam or a library)"}.get(name, "")
    _fail(f"the run's process ended on signal {name}{why}; its log is in <work_dir>/logs/",
          as_json, 1)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
