"""Runs and schedules on Kubeflow Pipelines (runners/kubeflow_client.py, pipeline/kubeflow_cli.py,
`retrain --on kubeflow`): no server is reachable here, so

* the requests are bound to kfp.Client's real method signatures (`RecordingClient`: an unknown,
  missing or repeated argument fails, as with the real client) and their values checked, the
  package at call time read by kfp's own code (`kfp.Client._create_job_config`);
* the real kfp.Client talks HTTP to a stand-in for the KFP API server (tests/unit/fake_kfp_api.py)
  from the real CLI in a subprocess: the bodies the server receives, the token in the
  Authorization header and nowhere in the output;
* a closed port, an unresolvable name, a server that accepts and never answers, and a server
  that refuses (echoing the token) each give one `error:` line naming the host, exit 1, no
  traceback, within the subprocess's timeout.

The packages are real KFP packages: compiled by kfp's own DSL compiler with the runtime parameters
runners/kubeflow.py declares (fast), and once by the real `compile_package` (slow).
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import pytest
import yaml
from kfp.client.client import RunPipelineResult

from components.metadata.run_requests import RunRequest
from pipeline import cli
from pipeline.config import ConfigError, load_config
from runners import kubeflow, kubeflow_client
from runners.kubeflow_client import (
    SubmitError,
    Target,
    check_cron,
    check_declared,
    declared_parameters,
    normalize_host,
    request_parameters,
    resolve_target,
)
from tests.unit.fake_kfp_api import FakeKfpApi

REPO = Path(__file__).resolve().parents[2]
TOKEN = "kfp-test-token-5f0c2e9a71"
COOKIE_VALUE = "session-cookie-8d41b7"
CLI_TIMEOUT = 120  # seconds; the commands bound themselves well below it
KFP_CLIENT = kfp.Client  # the real class, before a test puts the recorder in its place


# --- packages --------------------------------------------------------------------------------

def compile_dsl_package(path: Path) -> Path:
    """A real KFP package (kfp's DSL compiler) declaring runners/kubeflow.py's runtime
    parameters, all strings with defaults, as `compile_package` declares them."""
    from kfp import compiler, dsl

    def echo(text):
        return dsl.ContainerSpec(image="alpine:3.19", command=["echo"], args=[text])

    def penguin(data_root="gs://bucket/data", range_config="",
                train_args='{"splits": ["train"], "num_steps": 300}', channel="canary",
                reason="", requested_by=""):
        echo(text=data_root)

    # kfp's DSL reads types from annotations, which `from __future__ import annotations` makes
    # strings: give it the types themselves.
    echo.__annotations__ = {"text": str}
    penguin.__annotations__ = dict.fromkeys(inspect.signature(penguin).parameters, str)
    assert set(penguin.__annotations__) == set(kubeflow.RUNTIME_PARAMETERS), (
        "runners/kubeflow.py's runtime parameters changed")
    echo = dsl.container_component(echo)
    compiler.Compiler().compile(dsl.pipeline(name="penguin")(penguin), str(path))
    return path


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return compile_dsl_package(tmp_path_factory.mktemp("package") / "penguin.yaml")


@pytest.fixture
def fake_compile(monkeypatch, package) -> list[Any]:
    """`runners.kubeflow.compile_package` writing the DSL package (TFX compiles in the slow
    test); the configurations it was given."""
    seen: list[Any] = []

    def compile_package(cfg, output_path: str) -> dict[str, Any]:
        seen.append(cfg)
        Path(output_path).write_bytes(package.read_bytes())
        return {"path": output_path}

    monkeypatch.setattr(kubeflow, "compile_package", compile_package)
    return seen


@pytest.fixture
def env(monkeypatch, tmp_path) -> dict[str, str]:
    """No KFP settings from the machine: no host, namespace or credentials but a known token,
    and a HOME without a kfp context file."""
    for name in ("KFP_HOST", "KFP_NAMESPACE", "KFP_TOKEN", "KFP_COOKIES",
                 "KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_ENDPOINT",
                 "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))
    return dict(os.environ)


# --- kfp.Client, bound to its real signatures -----------------------------------------------

def bind(method: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a call of kfp.Client.<method>, bound as Python binds them to the real
    signature (TypeError for an unknown, missing or repeated argument), defaults filled in."""
    bound = inspect.signature(getattr(KFP_CLIENT, method)).bind(None, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("self")
    return arguments


def job_config(package_path: str, params: dict[str, Any]):
    """What the real kfp.Client builds from a package and parameters before it sends them
    (kfp's own code: the package read as the client reads it, at the moment of the call)."""
    return KFP_CLIENT._create_job_config(
        None, params=params, pipeline_package_path=package_path, pipeline_id=None,
        version_id=None, enable_caching=None, pipeline_root=None)


class RecordingClient:
    """Stands in for kfp.Client: each method the commands may call binds its arguments to
    kfp.Client's signature, records them (with the package's job config, read when called:
    the package is a temporary file), and answers with the real kfp_server_api model."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("__init__", bind("__init__", args, kwargs)))

    def create_experiment(self, *args: Any, **kwargs: Any):
        a = bind("create_experiment", args, kwargs)
        self.calls.append(("create_experiment", a))
        return kfp_server_api.V2beta1Experiment(experiment_id="exp-1", display_name=a["name"],
                                                namespace=a["namespace"])

    def create_recurring_run(self, *args: Any, **kwargs: Any):
        a = bind("create_recurring_run", args, kwargs)
        a["job_config"] = job_config(a["pipeline_package_path"], a["params"])
        self.calls.append(("create_recurring_run", a))
        return kfp_server_api.V2beta1RecurringRun(recurring_run_id="rr-1",
                                                  display_name=a["job_name"])

    def create_run_from_pipeline_package(self, *args: Any, **kwargs: Any):
        a = bind("create_run_from_pipeline_package", args, kwargs)
        a["job_config"] = job_config(a["pipeline_file"], a["arguments"])
        self.calls.append(("create_run_from_pipeline_package", a))
        return RunPipelineResult(self, kfp_server_api.V2beta1Run(
            run_id="run-1", display_name=a["run_name"]))


@pytest.fixture
def recorder(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    RecordingClient.calls = []
    monkeypatch.setattr(kfp, "Client", RecordingClient)
    # The host is probed before anything else; here there is none to answer.
    monkeypatch.setattr(kubeflow_client, "probe", lambda host, timeout=None: None)
    return RecordingClient.calls


def test_the_recorder_refuses_what_kfp_client_refuses():
    """The binding bites: an argument kfp.Client does not take, or one it needs, fails."""
    with pytest.raises(TypeError, match="host_url"):
        RecordingClient(host_url="http://x")
    with pytest.raises(TypeError, match="job_name"):
        RecordingClient.__new__(RecordingClient).create_recurring_run(
            "exp-1", cron_expression="0 0 3 * * *")
    with pytest.raises(TypeError, match="cron"):
        RecordingClient.__new__(RecordingClient).create_recurring_run(
            "exp-1", "job", cron="0 0 3 * * *")
    with pytest.raises(TypeError, match="params"):
        RecordingClient.__new__(RecordingClient).create_run_from_pipeline_package(
            "p.yaml", params={})


def kubeflow_config(tmp_path: Path, **kubeflow_section: Any):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"kubeflow": kubeflow_section}))
    return load_config("kubeflow", overlay, check_schema=False)


def test_schedule_asks_kfp_for_a_recurring_run_of_the_compiled_package(
        tmp_path, env, recorder, fake_compile, package, capsys):
    code = cli.main(["schedule", "kubeflow", "--cron", "0 30 2 * * MON-FRI",
                     "--host", "http://kfp.example:8888/", "--namespace", "team-a",
                     "--experiment", "nightly", "--max-concurrency", "2", "--catchup",
                     "--data-root", "gs://bucket/penguins", "--channel", "stable",
                     "--train-steps", "500", "--reason", "nightly retrain", "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert [name for name, _ in recorder] == [
        "__init__", "create_experiment", "create_recurring_run"]
    init, experiment, job = (a for _, a in recorder)
    assert (init["host"], init["namespace"], init["existing_token"]) == (
        "http://kfp.example:8888", "team-a", TOKEN)
    assert (experiment["name"], experiment["namespace"]) == ("nightly", "team-a")
    user_at_host = f"{RunRequest.from_here('x').user}@{socket.gethostname()}"
    params = {"data_root": "gs://bucket/penguins", "channel": "stable",
              "train_args": kubeflow.train_args_json(500), "reason": "nightly retrain",
              "requested_by": user_at_host}
    assert {k: job[k] for k in ("experiment_id", "cron_expression", "max_concurrency",
                                "no_catchup", "params")} == {
        "experiment_id": "exp-1", "cron_expression": "0 30 2 * * MON-FRI",
        "max_concurrency": 2, "no_catchup": False, "params": params}
    assert job["job_name"] == "penguin (0 30 2 * * MON-FRI)"
    # The package: a temporary .yaml compiled from the profile, read by kfp's own code at the
    # call; every parameter sent is one it declares.
    assert job["pipeline_package_path"].endswith(".yaml")
    assert not os.path.exists(job["pipeline_package_path"])  # removed afterwards
    spec = job["job_config"].pipeline_spec
    assert spec == yaml.safe_load(package.read_text())
    assert set(params) <= set(spec["root"]["inputDefinitions"]["parameters"])
    assert job["job_config"].runtime_config.parameters == params
    assert [c.pipeline_name for c in fake_compile] == ["penguin"]
    result = json.loads(out)
    assert result == {
        "status": "scheduled", "on": "kubeflow", "host": "http://kfp.example:8888",
        "namespace": "team-a", "experiment": "nightly", "experiment_id": "exp-1",
        "recurring_run_id": "rr-1", "job_name": "penguin (0 30 2 * * MON-FRI)",
        "cron": "0 30 2 * * MON-FRI", "max_concurrency": 2, "no_catchup": False,
        "params": params, "url": "http://kfp.example:8888/#/recurringrun/details/rr-1"}
    assert TOKEN not in out


def test_schedule_defaults_come_from_the_profile_then_the_environment(
        tmp_path, env, recorder, fake_compile, monkeypatch, capsys):
    overlay = tmp_path / "kf.yaml"
    overlay.write_text(yaml.safe_dump({"kubeflow": {
        "namespace": "from-profile", "schedule": {"cron": "@daily", "max_concurrency": 3,
                                                  "no_catchup": True}}}))
    monkeypatch.setenv("KFP_HOST", "kfp.example")  # no scheme: https, as kfp.Client does
    monkeypatch.setenv("KFP_NAMESPACE", "from-env")
    assert cli.main(["schedule", "kubeflow", "--config", str(overlay)]) == 0
    init, experiment, job = (a for _, a in recorder)
    assert (init["host"], init["namespace"], experiment["name"]) == (
        "https://kfp.example", "from-profile", "penguin")
    assert (job["cron_expression"], job["max_concurrency"], job["no_catchup"]) == (
        "@daily", 3, True)
    assert set(job["params"]) == {"requested_by"}  # the rest: the package's defaults
    out = capsys.readouterr().out
    assert "scheduled recurring run rr-1" in out and TOKEN not in out


def test_runs_submit_and_retrain_ask_for_one_run_with_the_request_as_parameters(
        tmp_path, env, recorder, fake_compile, monkeypatch, capsys):
    monkeypatch.setenv("KFP_HOST", "http://kfp.example")
    code = cli.main(["runs", "submit", "--on", "kubeflow", "--span", "7", "--reason",
                     "late data", "--experiment", "adhoc", "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    (_, init), (name, run) = recorder
    assert name == "create_run_from_pipeline_package"
    assert (init["host"], init["namespace"]) == ("http://kfp.example", "kubeflow")  # default
    assert run["pipeline_file"].endswith(".yaml")
    assert (run["experiment_name"], run["namespace"]) == ("adhoc", None)
    assert run["arguments"] == {
        "range_config": kubeflow.range_config_json(7), "reason": "late data",
        "requested_by": f"{RunRequest.from_here('x').user}@{socket.gethostname()}"}
    assert run["run_name"].startswith("penguin runs submit span 7 by ")
    assert run["job_config"].runtime_config.parameters == run["arguments"]
    result = json.loads(out)
    assert (result["status"], result["run_id"], result["params"]) == (
        "submitted", "run-1", run["arguments"])

    # retrain --on kubeflow: the same request, from the kubeflow profile by default.
    recorder.clear()
    code = cli.main(["retrain", "--on", "kubeflow", "--span", "3", "--data-root",
                     "s3://bucket/data", "--channel", "stable", "--reason", "drift"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    [(_, init), (_, run)] = recorder
    assert run["arguments"] == {
        "data_root": "s3://bucket/data", "range_config": kubeflow.range_config_json(3),
        "channel": "stable", "reason": "drift", "requested_by": run["arguments"]["requested_by"]}
    assert run["run_name"].startswith("penguin retrain span 3 by ")
    assert Path(fake_compile[-1].sources[0]).name == "kubeflow.yaml"
    assert fake_compile[-1].data.span == 3  # the compiled defaults are the request's too
    assert "submitted run run-1" in out and "follow it: http://kfp.example/#/runs/details/run-1" \
        in out


# --- refused before anything is sent: exit 2, one line ---------------------------------------

@pytest.mark.parametrize("cron", [
    "0 0 3 * * *", "0 */15 * * * *", "0 0 3 ? * MON-FRI", "30 0 9 1,15 * *", "0 0 0 1 jan *",
    "0 0 12 * * sun", "@daily", "@every 6h30m",
])
def test_six_field_crons_and_descriptors_are_taken(cron):
    assert check_cron(cron) == cron


def test_a_five_field_cron_is_refused_with_its_six_field_form():
    with pytest.raises(ValueError) as e:
        check_cron("0 3 * * *")
    assert str(e.value) == (
        "cron '0 3 * * *' has five fields; KFP's cron has six, seconds first (second minute "
        "hour day-of-month month day-of-week): for the usual meaning of these five write "
        "'0 0 3 * * *'")


@pytest.mark.parametrize("cron, why", [
    ("0 0 24 * * *", "hour field '24': 24 is outside 0-23"),
    ("0 0 3 * 13 *", "month field '13': 13 is outside 1-12"),
    ("0 0 3 * * 7", "day-of-week field '7': 7 is outside 0-6"),
    ("0 0 3 L * *", "day-of-month field 'L': 'l' is not a number"),
    ("0 */0 * * * *", "minute field '*/0': step '0' is not a positive number"),
    ("0 0 5-3 * * *", "hour field '5-3': '5-3': the range ends before it starts"),
    ("0 0 3 * * * 2030", "has 7 fields; KFP's cron has six"),
    ("@sometimes", "unknown descriptor"),
    ("", "empty cron expression"),
])
def test_a_cron_kfp_would_not_take_is_refused_naming_the_field(cron, why):
    with pytest.raises(ValueError, match=None) as e:
        check_cron(cron)
    assert why in str(e.value)


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_refusals_before_anything_is_sent(tmp_path, env, recorder, fake_compile, capsys):
    host = ["--host", "http://kfp.example"]
    assert cli.main(["schedule", "kubeflow", "--cron", "0 3 * * *", *host]) == 2
    assert "KFP's cron has six, seconds first" in one_error_line(capsys)
    assert cli.main(["schedule", "kubeflow", *host]) == 2
    assert one_error_line(capsys) == (
        "error: no schedule: give --cron '0 0 3 * * *' (six fields, seconds first) or "
        "kubeflow.schedule.cron in the profile")
    assert cli.main(["schedule", "kubeflow", "--cron", "@daily", "--max-concurrency", "11",
                     *host]) == 2
    assert "--max-concurrency: expected an integer from 1 to 10, got 11" in one_error_line(
        capsys)
    assert cli.main(["runs", "submit", "--on", "kubeflow"]) == 2
    assert one_error_line(capsys) == (
        "error: no Kubeflow Pipelines host: give --host URL, kubeflow.host in the profile, or "
        "$KFP_HOST")
    assert cli.main(["runs", "submit", "--on", "kubeflow", "--data-root", "data/penguins",
                     *host]) == 2
    assert "data_root: 'data/penguins': give a URI or an absolute path" in one_error_line(
        capsys)
    assert cli.main(["runs", "submit", "--on", "kubeflow", "--span", "-1", *host]) == 2
    assert "span: expected an integer >= 0, got -1" in one_error_line(capsys)
    assert cli.main(["runs", "submit", "--on", "kubeflow", "--host",
                     "https://me:hunter22@kfp.example"]) == 2
    line = one_error_line(capsys)
    assert "credentials in the host URL are refused" in line and "hunter22" not in line
    assert recorder == []  # nothing was sent


def test_parameters_the_package_does_not_declare_are_refused(tmp_path, package):
    spec = yaml.safe_load(package.read_text())
    del spec["root"]["inputDefinitions"]["parameters"]["reason"]
    older = tmp_path / "older.yaml"
    older.write_text(yaml.safe_dump(spec))
    declared = declared_parameters(str(older))
    assert "reason" not in declared and declared["data_root"] == "STRING"
    with pytest.raises(SubmitError) as e:
        check_declared(request_parameters(RunRequest.from_here("retrain", "why", span=1)),
                       declared)
    assert e.value.exit_code == 2
    assert str(e.value).startswith("the package declares no runtime parameter 'reason' (it "
                                   "declares: channel, data_root, range_config, requested_by")
    check_declared(request_parameters(RunRequest.from_here("retrain", span=1)), declared)
    spec["root"]["inputDefinitions"]["parameters"]["reason"] = {"parameterType": "NUMBER_INTEGER"}
    older.write_text(yaml.safe_dump(spec))
    with pytest.raises(SubmitError, match="'reason' is NUMBER_INTEGER, not a string"):
        check_declared({"reason": "why"}, declared_parameters(str(older)))
    for bad, why in [(tmp_path / "p.json", "a KFP package ends with one of"),
                     (tmp_path / "none.yaml", "no such file")]:
        with pytest.raises(SubmitError, match=why):
            declared_parameters(str(bad))
    (tmp_path / "bad.yaml").write_text("pipelineInfo: {name: x}\nnotAField: 1\n")
    with pytest.raises(SubmitError, match="not a KFP pipeline package"):
        declared_parameters(str(tmp_path / "bad.yaml"))


def test_host_and_namespace_flags_win_over_the_profile_and_the_environment(tmp_path):
    cfg = kubeflow_config(tmp_path, host="http://profile:8888", namespace="profile-ns",
                          experiment="profile-exp")
    environ = {"KFP_HOST": "http://env", "KFP_NAMESPACE": "env-ns"}
    assert resolve_target(cfg, environ=environ) == Target(
        "http://profile:8888", "profile-ns", "profile-exp")
    assert resolve_target(cfg, host="http://flag/", namespace="flag-ns", experiment="e",
                          environ=environ) == Target("http://flag", "flag-ns", "e")
    bare = load_config("kubeflow", check_schema=False)
    assert resolve_target(bare, environ=environ) == Target("http://env", "env-ns", "penguin")
    assert normalize_host("kfp.example:8443/pipeline/") == "https://kfp.example:8443/pipeline"
    for bad in ("ftp://kfp.example", "http://", "http://kfp.example:99999"):
        with pytest.raises(SubmitError):
            normalize_host(bad)


def test_a_config_layer_kfp_cannot_take_is_refused(tmp_path):
    overlay = tmp_path / "kf.yaml"
    overlay.write_text("kubeflow:\n  api_timeout_seconds: 0\n")
    with pytest.raises(ConfigError, match="api_timeout_seconds"):
        load_config("kubeflow", overlay, check_schema=False)


# --- the real CLI, the real kfp.Client ------------------------------------------------------

def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)


def assert_one_error_line(proc: subprocess.CompletedProcess, *secrets: str) -> str:
    """Exit 1, nothing on stdout, one `error:` line on stderr, no traceback, no secret."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr
    return lines[0]


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that refuses connections: bound (so nothing else takes it), not
    listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def test_a_closed_port_is_one_line_naming_the_host(env, closed_port, package):
    env = dict(env, KFP_COOKIES=f"authservice_session={COOKIE_VALUE}")
    host = f"http://127.0.0.1:{closed_port}"
    commands = [
        ["schedule", "kubeflow", "--cron", "0 0 3 * * *", "--host", host],
        ["runs", "submit", "--on", "kubeflow", "--span", "2", "--host", host],
        ["runs", "submit", "--on", "kubeflow", "--host", host, "--package", str(package)],
    ]
    for args in commands:
        line = assert_one_error_line(run_cli(*args, env=env), TOKEN, COOKIE_VALUE)
        assert line == (f"error: Kubeflow Pipelines at {host} does not answer: "
                        f"127.0.0.1:{closed_port}: connection refused"), args
    # retrain --on kubeflow: the host from the environment (the profile has none).
    proc = run_cli("retrain", "--on", "kubeflow", "--span", "2", env=dict(env, KFP_HOST=host))
    assert "does not answer" in assert_one_error_line(proc, TOKEN, COOKIE_VALUE)
    # --json: the failure is the one JSON object.
    proc = run_cli("runs", "submit", "--on", "kubeflow", "--host", host, "--json", env=env)
    assert (proc.returncode, proc.stderr) == (1, "")
    assert json.loads(proc.stdout) == {
        "status": "failed", "on": "kubeflow",
        "error": f"Kubeflow Pipelines at {host} does not answer: 127.0.0.1:{closed_port}: "
                 "connection refused"}


def test_an_unresolvable_host_is_one_line_naming_it(env):
    proc = run_cli("schedule", "kubeflow", "--cron", "@hourly", "--host", "http://kfp.invalid",
                   env=env)
    line = assert_one_error_line(proc, TOKEN)
    assert line.startswith("error: Kubeflow Pipelines at http://kfp.invalid does not answer: "
                           "cannot resolve kfp.invalid: ")


def test_a_host_that_never_answers_is_bounded_by_api_timeout_seconds(
        env, silent_port, package, tmp_path):
    overlay = tmp_path / "kf.yaml"
    overlay.write_text("kubeflow:\n  api_timeout_seconds: 2\n")
    host = f"http://127.0.0.1:{silent_port}"
    for args in (["runs", "submit", "--on", "kubeflow"],
                 ["schedule", "kubeflow", "--cron", "0 0 3 * * *", "--namespace", "ns"]):
        proc = run_cli(*args, "--host", host, "--package", str(package), "--config",
                       str(overlay), env=env)
        assert assert_one_error_line(proc, TOKEN) == (
            f"error: Kubeflow Pipelines at {host} did not answer within 2 s "
            "(kubeflow.api_timeout_seconds)")


def test_the_real_client_sends_what_the_server_takes_and_prints_no_secret(env, package):
    env = dict(env, KFP_COOKIES=f"authservice_session={COOKIE_VALUE}")
    with FakeKfpApi() as api:
        proc = run_cli("schedule", "kubeflow", "--cron", "0 0 4 * * *", "--host", api.url,
                       "--namespace", "team-a", "--max-concurrency", "2", "--no-catchup",
                       "--package", str(package), "--reason", "nightly", "--json", env=env)
        assert (proc.returncode, proc.stderr) == (0, "")
        scheduled = json.loads(proc.stdout)  # one JSON object, nothing else
        proc = run_cli("runs", "submit", "--on", "kubeflow", "--span", "5", "--host", api.url,
                       "--package", str(package), env=env)
        assert (proc.returncode, proc.stderr) == (0, "")
        submitted = proc.stdout
    assert api.paths() == [
        ("GET", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/recurringruns"),
        ("GET", "/apis/v2beta1/healthz"),  # no namespace: kfp.Client asks if multi-user
        ("GET", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
    for request in api.requests:  # the credentials from the environment, on every request
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["cookie"] == f"authservice_session={COOKIE_VALUE}"
    assert api.requests[0].query["namespace"] == ["team-a"]
    assert api.requests[1].body == {"display_name": "penguin", "namespace": "team-a"}
    spec = yaml.safe_load(package.read_text())
    job = api.requests[2].body
    assert job["experiment_id"] == api.experiments[0]["experiment_id"] == \
        scheduled["experiment_id"]
    assert (job["trigger"], job["max_concurrency"], job["no_catchup"], job["mode"]) == (
        {"cron_schedule": {"cron": "0 0 4 * * *"}}, 2, True, "ENABLE")
    assert job["pipeline_spec"] == spec
    assert job["runtime_config"]["parameters"] == scheduled["params"]
    assert set(scheduled["params"]) == {"reason", "requested_by"}
    assert scheduled["recurring_run_id"] == f"recurring-{3}"
    run = api.requests[5].body
    assert run["experiment_id"] == scheduled["experiment_id"]  # found, not created again
    assert run["runtime_config"]["parameters"]["range_config"] == kubeflow.range_config_json(5)
    assert run["pipeline_spec"] == spec
    assert "submitted run run-6 'penguin runs submit span 5 by " in submitted
    for text in (proc.stdout, json.dumps(scheduled), submitted):
        assert TOKEN not in text and COOKIE_VALUE not in text


def test_a_refusing_server_is_one_line_without_the_token_it_echoes(env, package):
    with FakeKfpApi(fail_with=(401, "Unauthorized: bad token"),
                    echo_header="Authorization") as api:
        proc = run_cli("runs", "submit", "--on", "kubeflow", "--host", api.url, "--namespace",
                       "ns", "--package", str(package), env=env)
        assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    line = assert_one_error_line(proc, TOKEN)
    assert line == (f"error: Kubeflow Pipelines at {api.url}: HTTP 401 Unauthorized: "
                    "Unauthorized: bad token (you sent Authorization: Bearer ***)")


@pytest.mark.slow
def test_retrain_on_kubeflow_submits_the_package_compile_package_compiles(env, tmp_path):
    """The real compile (TFX's KubeflowV2DagRunner, ~25 s) and the real client: every
    parameter sent is one the compiled package declares."""
    with FakeKfpApi() as api:
        proc = run_cli("retrain", "--on", "kubeflow", "--span", "4", "--data-root",
                       "gs://bucket/penguins", "--channel", "stable", "--reason", "drift",
                       "--json", env=dict(env, KFP_HOST=api.url, KFP_NAMESPACE="team-a"))
    assert (proc.returncode, proc.stderr) == (0, "")
    result = json.loads(proc.stdout)
    run = api.requests[-1].body
    declared = run["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == set(kubeflow.RUNTIME_PARAMETERS)
    assert run["runtime_config"]["parameters"] == result["params"] == {
        "data_root": "gs://bucket/penguins", "range_config": kubeflow.range_config_json(4),
        "channel": "stable", "reason": "drift", "requested_by": result["params"]["requested_by"]}
    assert set(run["pipeline_spec"]["root"]["dag"]["tasks"]) >= {"Trainer", "ServingPusher"}
    assert TOKEN not in proc.stdout
