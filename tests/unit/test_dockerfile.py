"""The Dockerfile, without a Docker engine: what it copies exists, the lock is used frozen with
the project's own dependencies only, the user is not root, `python` is the project's
environment, and its `uv sync` lines run here as written (a dry run; the slow test installs for
real and runs the TFJob's and Kubeflow's entry points in that environment)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli

from components.tf_process import LEGACY_KERAS_ON, LEGACY_KERAS_VAR

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
KFP_EXECUTOR = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


# --- a small Dockerfile reader ---------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, its text)

    def all(self, instruction: str) -> list[str]:
        return [text for ins, text in self.steps if ins == instruction]

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments, also between continuation lines
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            ins, _, rest = line.strip().partition(" ")
            out.append((ins.upper(), " ".join(rest.split())))
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def read_dockerfile(build_args: dict[str, str] | None = None) -> tuple[dict, list[Stage]]:
    """The global ARGs and the stages, ARG and ENV values expanded as Docker expands them."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins, text in instructions(DOCKERFILE.read_text()):
        if ins == "ARG":
            name, _, default = text.partition("=")
            value = (build_args or {}).get(name, default.strip('"'))
            (stages[-1].args if stages else global_args)[name] = value
        elif ins == "FROM":
            parts = text.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            base = substitute(parts[0], global_args)
            parent = next((s for s in stages if s.name == base), None)
            stage = Stage(base=base, name=name)
            if parent is not None:  # FROM an earlier stage: its environment carries over
                stage.env = dict(parent.env)
            stages.append(stage)
        else:
            stage = stages[-1]
            values = {**global_args, **stage.args, **stage.env}
            if ins == "ENV":
                for item in shlex.split(text):
                    key, _, value = item.partition("=")
                    stage.env[key] = substitute(value, values)
            else:
                text = substitute(text, values)
            stage.steps.append((ins, text))
    return global_args, stages


def stage_named(stages: list[Stage], name: str) -> Stage:
    return next(s for s in stages if s.name == name)


def uv_sync_lines(stage: Stage) -> list[list[str]]:
    """Each `uv sync ...` command of the stage's RUN instructions, as argv."""
    found = []
    for run in stage.all("RUN"):
        for command in run.split("&&"):
            argv = shlex.split(command)
            if argv[:2] == ["uv", "sync"]:
                found.append(argv)
    return found


def uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    assert found, "uv not found (make setup installs it)"
    return found


# The interpreter standing in for the image's /usr/local/bin/python3.10 (the venv's base).
LOCAL_PYTHON = os.path.realpath(sys.executable)


def build_env(stage: Stage, app: Path) -> dict[str, str]:
    """The build stage's environment, with the image's /app at `app` and this machine's Python."""
    env = {k: v.replace("/app", str(app)) for k, v in stage.env.items()}
    env["UV_PYTHON"] = LOCAL_PYTHON
    # Links into uv's cache instead of 2.9 GB of copies: the same files, in a fraction of the
    # time (the image copies: its layers cannot link to a cache outside them).
    env["UV_LINK_MODE"] = "hardlink"
    return {**os.environ, **env}


def copy_build_context(stage: Stage, app: Path) -> None:
    """Does the stage's COPY instructions (repository -> `app`, the image's WORKDIR)."""
    for text in stage.all("COPY"):
        *sources, dest = text.split()
        assert not any(s.startswith("--") for s in sources), text
        for src in sources:
            target = app / src if dest in ("./", ".") else app / dest
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / src, target)


@pytest.fixture(scope="module")
def dockerfile():
    return read_dockerfile()


# --- the image's shape -------------------------------------------------------------------------


def test_stages_and_the_default_target(dockerfile):
    global_args, stages = dockerfile
    assert [s.name for s in stages] == ["build", "pipeline", "beam-sdk", "beam-worker", None]
    # The last stage is what `docker build .` makes: the pipeline's image.
    assert stages[-1].base == "pipeline" and not stages[-1].steps
    # Python 3.10, as pyproject requires (TFX 1.16 declares <3.11), in both stages that hold the
    # environment: the venv's python links to the base image's interpreter.
    assert stage_named(stages, "build").base == stage_named(stages, "pipeline").base
    assert re.fullmatch(r"python:3\.10(\.\d+)?-slim-bookworm", global_args["PYTHON_IMAGE"])
    pyproject = tomli.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.10,<3.11"
    # Beam's SDK image of the Beam version in the lock, for the beam-worker target.
    lock = (REPO / "uv.lock").read_text()
    beam = re.search(r'name = "apache-beam"\nversion = "([^"]+)"', lock).group(1)
    assert global_args["BEAM_SDK_IMAGE"] == f"apache/beam_python3.10_sdk:{beam}"


def test_uv_syncs_the_frozen_lock_without_dev_or_airflow(dockerfile):
    _, stages = dockerfile
    build = stage_named(stages, "build")
    syncs = uv_sync_lines(build)
    assert len(syncs) == 2  # the dependencies, then the project
    for argv in syncs:
        assert "--frozen" in argv  # exactly the lock: no resolution at build time
        assert "--no-default-groups" in argv  # pyproject's default groups are dev and airflow
        assert not {"--group", "--all-groups", "--dev"} & set(argv)
    assert "--no-install-project" in syncs[0] and "--no-install-project" not in syncs[1]
    pyproject = tomli.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["default-groups"] == ["dev", "airflow"]
    assert build.env["UV_PYTHON_DOWNLOADS"] == "never"
    assert build.env["UV_PYTHON"] == "/usr/local/bin/python3.10"
    # uv as the project's own set-up knows it (the lock's uv version).
    assert build.args["UV_VERSION"] == subprocess.run(
        [uv(), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]


def test_the_user_is_not_root_and_numeric(dockerfile):
    _, stages = dockerfile
    pipeline = stage_named(stages, "pipeline")
    user = pipeline.last("USER")
    assert re.fullmatch(r"\d+:\d+", user), user  # runAsNonRoot checks a number, not a name
    uid = user.split(":")[0]
    assert uid != "0"
    assert any(f"--uid {uid}" in run.replace('"', "") for run in pipeline.all("RUN"))
    # beam-worker and the default target inherit the user (no USER root after it).
    assert all(s.last("USER") in (None, user) for s in stages if s.base == "pipeline")


def test_python_on_path_is_the_projects_environment(dockerfile):
    _, stages = dockerfile
    build, pipeline = stage_named(stages, "build"), stage_named(stages, "pipeline")
    venv = build.env["UV_PROJECT_ENVIRONMENT"]
    assert pipeline.env["PATH"].split(":")[0] == f"{venv}/bin"
    assert pipeline.env["VIRTUAL_ENV"] == venv
    assert "--from=build /app /app" in pipeline.all("COPY")
    assert venv.startswith("/app/")
    # Kubeflow and the TFJob give their own command: no ENTRYPOINT may wrap it.
    assert pipeline.last("ENTRYPOINT") is None
    assert stages[-1].last("ENTRYPOINT") is None


def test_the_tfjob_command_runs_the_images_python(dockerfile):
    from pipeline.compile_tfjob import render_tfjob
    from pipeline.config import load_config

    manifest = render_tfjob(load_config(), workers=2, job_spec_uri="/etc/job/job.json")
    command = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"][0]["command"]
    assert command[:3] == ["python", "-m", "components.trainer.worker"]
    _, stages = dockerfile
    assert (REPO / "components" / "trainer" / "worker.py").is_file()
    assert stage_named(stages, "pipeline").env["PATH"].startswith("/app/.venv/bin:")


def test_keras_2_in_every_process(dockerfile):
    _, stages = dockerfile
    # TensorFlow reads it at its first import, in processes the project does not start
    # (Kubeflow's executor entry point, Beam's workers): only the image can set it for them.
    assert stage_named(stages, "pipeline").env[LEGACY_KERAS_VAR] == LEGACY_KERAS_ON
    assert stage_named(stages, "beam-worker").env[LEGACY_KERAS_VAR] == LEGACY_KERAS_ON


def test_the_working_directory_is_the_kubeflow_profiles_project_dir(dockerfile):
    from pipeline.config import load_config

    _, stages = dockerfile
    cfg = load_config("kubeflow")
    assert stage_named(stages, "pipeline").last("WORKDIR") == cfg.kubeflow.project_dir
    assert stage_named(stages, "build").last("WORKDIR") == cfg.kubeflow.project_dir
    # The schema the compiled steps open, relative to that directory, is copied there.
    copied = [text.split()[0] for text in stage_named(stages, "build").all("COPY")]
    assert any(Path(cfg.data.schema).parts[0] == src for src in copied)


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")
               for p in dockerignore())


def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile):
    _, stages = dockerfile
    sources = []
    for stage in stages:
        for text in stage.all("COPY"):
            parts = text.split()
            if parts[0].startswith("--from="):
                assert parts[0][len("--from="):] in {s.name for s in stages}, text
                continue
            sources += parts[:-1]
    assert {"pyproject.toml", "uv.lock", "README.md", "pipeline", "components", "runners",
            "data"} <= set(sources)
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out():
    patterns = dockerignore()
    for local in (".venv", "var", ".git"):
        assert local in patterns
        assert ignored(local) and ignored(f"{local}/anything")
    assert ignored("components/trainer/__pycache__")


# --- the lock satisfies what the Dockerfile asks for ----------------------------------------


def dry_run(tmp_path, build_args: dict[str, str] | None = None) -> dict[str, str]:
    """The packages the build stage's first `uv sync` would install, run as written (with
    --dry-run) on a copy of the files it has at that point: {name: version or source}."""
    _, stages = read_dockerfile(build_args)
    build = stage_named(stages, "build")
    app = tmp_path / "app"
    app.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, app / name)
    argv = uv_sync_lines(build)[0]
    proc = subprocess.run([uv(), *argv[1:], "--dry-run"], cwd=app, env=build_env(build, app),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    packages = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"^ \+ ([A-Za-z0-9_.-]+)(?:==| @ )(\S+)", line)
        if m:
            packages[m.group(1)] = m.group(2)
    assert f"Would install {len(packages)} packages" in proc.stderr, proc.stderr
    return packages


def test_the_lock_gives_the_image_what_the_steps_run_and_nothing_else(tmp_path):
    packages = dry_run(tmp_path)
    assert packages["tfx"] == "1.16.0"
    assert packages["apache-beam"] == "2.61.0"
    assert packages["tf-keras"] == "2.16.0"
    assert packages["tensorflow"] == "2.16.2"
    assert packages["kfp"].startswith("2.")  # the Kubeflow executor entry point's package
    # TFX packages itself with setuptools before staging it to a remote Beam runner.
    assert "setuptools" in packages
    for left_out in ("pytest", "ruff", "import-linter", "palmerpenguins", "apache-airflow"):
        assert left_out not in packages
    assert not any(name.startswith("nvidia-") for name in packages)


def test_the_gpu_build_adds_cuda_and_moves_no_pin(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "gpu").mkdir()
    cpu = dry_run(tmp_path / "cpu")
    gpu = dry_run(tmp_path / "gpu", {"UV_GROUPS": "--group gpu"})
    added = set(gpu) - set(cpu)
    assert {"nvidia-cudnn-cu12", "nvidia-nccl-cu12", "nvidia-cublas-cu12"} <= added
    assert all(name.startswith("nvidia-") for name in added)
    assert {name: gpu[name] for name in cpu} == cpu


# --- for real: the environment the image holds runs what Kubeflow and the TFJob run ---------


@pytest.mark.slow
def test_the_images_environment_runs_the_tfjob_worker_and_the_kfp_entry_point(tmp_path):
    from components.trainer.cluster import free_loopback_ports, local_tf_configs
    from components.trainer.settings import TrainJob
    from pipeline.compile_tfjob import render_tfjob
    from pipeline.config import load_config

    _, stages = read_dockerfile()
    build, pipeline = stage_named(stages, "build"), stage_named(stages, "pipeline")
    app = tmp_path / "app"
    app.mkdir()
    copy_build_context(build, app)
    # The build stage's RUN lines as written (but its pip install of uv: uv is here).
    for run in build.all("RUN"):
        if run.startswith("pip install"):
            continue
        proc = subprocess.run(["bash", "-c", run.replace("uv ", f"{uv()} ", 1)], cwd=app,
                              env=build_env(build, app), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, (run, proc.stderr[-3000:])

    # The pipeline stage's environment: nothing of this test's own (no PYTHONPATH, no venv).
    home = tmp_path / "home"
    home.mkdir()
    image_env = {k: v.replace("/app", str(app)) for k, v in pipeline.env.items()}
    image_env["PATH"] = image_env["PATH"].replace("$PATH", "/usr/bin:/bin")
    image_env["HOME"] = str(home)
    python = shutil.which("python", path=image_env["PATH"])
    assert python == str(app / ".venv" / "bin" / "python")

    def run_in_image(argv, extra=None, timeout=300):
        return subprocess.run(argv, cwd=app, env={**image_env, **(extra or {})},
                              capture_output=True, text=True, timeout=timeout)

    proc = run_in_image(["python", "-c", (
        "import importlib.util as u, json, sys\n"
        "print(json.dumps({'prefix': sys.prefix, 'absent': [m for m in ('pytest', 'airflow', "
        "'ruff') if u.find_spec(m) is None], 'project': u.find_spec('components').origin}))")])
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["prefix"] == str(app / ".venv")
    assert facts["absent"] == ["pytest", "airflow", "ruff"]
    assert facts["project"] == str(app / "components" / "__init__.py")

    # A TFJob worker: the manifest's command and environment, TF_CONFIG as the operator sets it.
    cfg = load_config(overrides={"trainer": {"epochs": 1, "train_steps": 20, "eval_steps": 2}})
    penguins = REPO / "data" / "penguins" / "span-2"
    job = TrainJob(
        train_files=[str(penguins / "Split-train" / "*.gz")],
        eval_files=[str(penguins / "Split-eval" / "*.gz")],
        schema_path=str(REPO / "data" / "schema" / "schema.pbtxt"),
        serving_model_dir=str(tmp_path / "serving"), model=cfg.model, trainer=cfg.trainer,
        train_steps=20, eval_steps=2, backup_dir=str(tmp_path / "backup"),
    )
    job.write(str(tmp_path / "job.json"))
    manifest = render_tfjob(cfg, workers=1, job_spec_uri=str(tmp_path / "job.json"))
    container = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"][0]
    pod_env = {e["name"]: e["value"] for e in container["env"]}
    pod_env["TF_CONFIG"] = local_tf_configs(free_loopback_ports(1))[0]
    proc = run_in_image(container["command"], pod_env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker 0 finished" in proc.stdout
    assert (tmp_path / "serving" / "saved_model.pb").is_file()

    # Kubeflow's executor entry point, as the compiled steps call it.
    proc = run_in_image(["python", "-m", KFP_EXECUTOR, "--helpshort"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--executor_class_path" in proc.stdout
