"""No TFX sdist for a Beam pipeline that runs in this process.

Whenever a Beam component gets Beam arguments, TFX repackages its own installation into an sdist
(`tfx/utils/dependency_utils.py:make_beam_dependency_flags`) for remote Beam workers to install:
measured here, 3.4 s before each of ImportExampleGen, StatisticsGen and Evaluator, and a 42 MB
copy left in /tmp by each of them on every run (26 GB after a day of tests). The DirectRunner
runs its workers from this installation (in this process, or in subprocesses of it), so it needs
none; a remote runner still gets it unless its arguments already ship the code (an SDK
container image, `--extra_packages`, ...), as TFX decides.
"""

from __future__ import annotations

# Beam's names for the runners that run here (`apache_beam/runners/runner.py` lowercases them and
# accepts them with or without the "runner" suffix).
_LOCAL_RUNNERS = {"direct", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner"}


def runner_name(beam_args: list[str]) -> str:
    """The `--runner` of `beam_args` as Beam reads it (the last one wins); "" for none."""
    name = ""
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(beam_args):
            name = beam_args[i + 1]
    return name


def runs_here(beam_args: list[str]) -> bool:
    """Whether Beam runs `beam_args`' pipeline on this machine (the DirectRunner, Beam's
    default when no runner is named)."""
    name = runner_name(beam_args).lower()
    return not name or name in _LOCAL_RUNNERS or name + "runner" in _LOCAL_RUNNERS


def skip_tfx_package_for_local_beam() -> None:
    """Makes TFX's Beam executors in this process skip the sdist when the runner is local.
    Idempotent; call it before the pipeline runs (it imports TFX)."""
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if getattr(original, "skips_local_beam", False):
        return

    def make_beam_dependency_flags(beam_pipeline_args: list[str]) -> list[str]:
        if runs_here(beam_pipeline_args):
            return list(beam_pipeline_args)
        return original(beam_pipeline_args)

    make_beam_dependency_flags.skips_local_beam = True  # type: ignore[attr-defined]
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
