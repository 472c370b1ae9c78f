"""The `pipeline` command. Imports nothing heavy until a command needs it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pipeline",
        description="A TFX pipeline from TFRecords to a TensorFlow Serving model base path.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
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

    show = sub.add_parser("config", help="print the resolved configuration")
    show.add_argument("--profile", default="local")
    show.add_argument("--config", metavar="FILE")

    from pipeline.release_cli import add_release_parser  # argparse only: cheap

    add_release_parser(sub)
    from pipeline.compile_tfjob import add_compile_parser  # argparse only: cheap

    add_compile_parser(sub)
    return p


def _load(args: argparse.Namespace):
    from pipeline.config import load_config

    overrides: dict[str, Any] = {}
    if getattr(args, "data_root", None):
        overrides.setdefault("data", {})["root"] = args.data_root
    if getattr(args, "span", None) is not None:
        overrides.setdefault("data", {})["span"] = args.span
    return load_config(args.profile, args.config, overrides)


def _fail(message: str, as_json: bool, code: int = 2) -> int:
    if as_json:
        print(json.dumps({"status": "failed", "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError

    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(str(e), args.json)

    from pipeline.app.run import run_pipeline
    from runners import local  # the only runner today; Airflow and Kubeflow stand beside it

    shown: set[str] = set()

    def show(name: str, event: str, seconds: float, state: str) -> None:
        if event == "running":
            print(f"  {name:<20} running ...", end="", flush=True)
        else:
            shown.add(name)
            print(f"\r  {name:<20} {state:<10} {seconds:6.1f} s", flush=True)

    if not args.json:
        print(f"pipeline {cfg.pipeline_name}: data {cfg.data.root}, profile {args.profile}")
    result = run_pipeline(cfg, local.run, on_progress=None if args.json else show,
                          full=args.full)
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
    else:
        print(f"\n{cached} of {len(result.components)} components cached")
    if result.metrics:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
        print(f"metrics (eval split, span {result.span}): {metrics}")
    if result.pushed:
        state = "pushed" if result.pushed.get("new") else "already serving"
        tag = f" ({result.pushed['tag']})" if result.pushed.get("tag") else ""
        print(f"{state}: version {result.pushed['version']}{tag} at {result.pushed['path']}")
    elif result.blessed is False:
        # Evaluation threshold lines first, then the serving-contract ones ("signature: ...").
        print("not pushed, because:")
        for line in result.validation_failures:
            print(f"  - {line}")
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
    is watched from a parent process, see `_watched_run`)."""
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] == ["run"] and hasattr(os, "fork"):
            return _watched_run(argv)
    return _main(argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from pipeline.compile_tfjob import run_compile
    from pipeline.release_cli import run_release

    handlers = {"run": _cmd_run, "config": _cmd_config, "release": run_release,
                "compile": run_compile}
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
    """`pipeline run` in a child process, watched by this one. A native crash (SIGABRT or
    SIGSEGV in TensorFlow, Beam or protobuf, or the OOM killer's SIGKILL) ends a process
    without a Python exception; the parent, which imports nothing heavy, then writes the
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
