"""Runs and schedules on Kubeflow Pipelines: a compiled package handed to `kfp.Client`.

`pipeline runs submit --on kubeflow` and `pipeline retrain --on kubeflow` (`trigger`) ask for
one run, `pipeline schedule kubeflow` for a recurring run, of the package that
`runners/kubeflow.py: compile_package` compiles from the same `build_pipeline(cfg)` (or of one
compiled before, `--package`). What changes per run (span, data root, train steps, channel,
reason, who asked) goes in as the package's runtime parameters (`runners/kubeflow.py:
run_parameters`); one the package does not declare is refused before anything is sent.

Where things come from:
- host and namespace: the command's flags, else the profile's `kubeflow.host` and
  `kubeflow.namespace`, else $KFP_HOST and $KFP_NAMESPACE;
- credentials: only the environment, never a flag, a profile or the host URL, and never printed,
  logged or put in --json output: $KFP_TOKEN (a bearer token), $KF_PIPELINES_SA_TOKEN_PATH (a
  file holding a service-account token, read before each request: kfp's own variable),
  $KFP_COOKIES (a session cookie, e.g. Dex's `authservice_session=...`), and what kfp.Client
  reads itself ($KF_PIPELINES_IAP_OAUTH2_CLIENT_ID..., ~/.config/kfp/context.json).

Bounded: kfp.Client retries and waits without a bound (no request timeout, and a health check
that sleeps between five attempts), so the host is probed first (name lookup and TCP connect,
`CONNECT_TIMEOUT_SECONDS`), before anything is compiled, and all of one command's requests
together get `kubeflow.api_timeout_seconds`. A host that does not answer is one `error:` line
naming it, exit 1.

`kfp` (and the TFX compile) is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pipeline.config import ConfigError, PipelineConfig

HOST_ENV = "KFP_HOST"
NAMESPACE_ENV = "KFP_NAMESPACE"
TOKEN_ENV = "KFP_TOKEN"
COOKIES_ENV = "KFP_COOKIES"
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp.client.KF_PIPELINES_SA_TOKEN_ENV
SECRET_ENVS = (TOKEN_ENV, COOKIES_ENV)
CONNECT_TIMEOUT_SECONDS = 5.0
# The package files kfp.Client accepts (kfp/client/client.py: _extract_pipeline_yaml).
CLIENT_PACKAGE_SUFFIXES = (".yaml", ".yml", ".zip", ".tar.gz", ".tgz")


class SubmitError(Exception):
    """A run or schedule that cannot be asked for; one line, and the exit code (1: the server
    did not answer or refused, 2: refused here before anything was sent)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _DeadlineExceeded(BaseException):
    """Raised in the main thread when a command's requests outlast their bound; a
    BaseException so that no `except Exception` inside kfp swallows it."""


@dataclass(frozen=True)
class Target:
    """Where the runs go: the KFP API endpoint, the namespace (None: single-user), the
    experiment's name."""

    host: str
    namespace: str | None
    experiment: str


@dataclass
class Submitted:
    """What the server answered, and what was asked: for the output (`to_json`)."""

    status: str  # "submitted" or "scheduled"
    target: Target
    params: dict[str, Any]
    name: str  # the run's or the recurring run's display name
    run_id: str = ""
    recurring_run_id: str = ""
    experiment_id: str = ""
    schedule: dict[str, Any] = field(default_factory=dict)  # cron, max_concurrency, no_catchup

    @property
    def url(self) -> str:
        """The run's (or recurring run's) page in the KFP UI."""
        if self.recurring_run_id:
            return f"{self.target.host}/#/recurringrun/details/{self.recurring_run_id}"
        return f"{self.target.host}/#/runs/details/{self.run_id}" if self.run_id else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "on": "kubeflow",
                               "host": self.target.host, "namespace": self.target.namespace,
                               "experiment": self.target.experiment}
        if self.experiment_id:
            out["experiment_id"] = self.experiment_id
        if self.recurring_run_id:
            out.update(recurring_run_id=self.recurring_run_id, job_name=self.name,
                       **self.schedule)
        else:
            out.update(run_id=self.run_id, run_name=self.name)
        out.update(params=self.params, url=self.url)
        return out


# --- pure logic: targets, cron, parameters -------------------------------------------------

def resolve_target(cfg: PipelineConfig, *, host: str | None = None,
                   namespace: str | None = None, experiment: str | None = None,
                   environ: Mapping[str, str] | None = None) -> Target:
    """Flags first, then the profile's `kubeflow` section, then $KFP_HOST / $KFP_NAMESPACE.

    Raises:
      SubmitError (exit 2): no host, or one that is not an http(s) URL.
    """
    env = os.environ if environ is None else environ
    kf = cfg.kubeflow
    host = host or kf.host or env.get(HOST_ENV)
    if not host:
        raise SubmitError(
            f"no Kubeflow Pipelines host: give --host URL, kubeflow.host in the profile, or "
            f"${HOST_ENV}", 2)
    return Target(host=normalize_host(host),
                  namespace=namespace or kf.namespace or env.get(NAMESPACE_ENV) or None,
                  experiment=experiment or kf.experiment or cfg.pipeline_name)


def normalize_host(host: str) -> str:
    """`host` as kfp.Client uses it: https:// when no scheme is given, no trailing slash.

    Raises:
      SubmitError (exit 2): not http(s), no host name, a bad port, or credentials in the URL
        (they belong in the environment; the message does not repeat them).
    """
    url = host.strip()
    if "://" not in url:
        url = "https://" + url  # as kfp.Client does
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if parts.username is not None or parts.password is not None:
        raise SubmitError(f"host {shown}: credentials in the host URL are refused; give them "
                          f"in ${TOKEN_ENV} or ${COOKIES_ENV}", 2)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubmitError(f"host {host!r}: expected an http:// or https:// URL", 2)
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise SubmitError(f"host {host!r}: the port is not a number from 0 to 65535",
                          2) from None
    return url.rstrip("/")


# robfig/cron v1 (what KFP's scheduled-workflow controller parses with): field bounds and names.
_CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23),
                ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 6))
_CRON_NAMES = {
    "month": {m: i for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)},
    "day-of-week": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly")
_GO_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms|us|µs|ns))+$")
SIX_FIELDS = "second minute hour day-of-month month day-of-week"


def check_cron(expression: str) -> str:
    """`expression` if KFP's cron parser takes it as meant: six fields, seconds first
    ("0 0 3 * * *": 03:00:00 every day), or a descriptor (@daily, @every 6h).

    KFP parses with robfig/cron, which also takes five fields, but reads them as second minute
    hour day month: a usual five-field cron would run at other times than meant, so five
    fields are refused with the six-field form.

    Raises:
      ValueError: one line naming the field at fault.
    """
    expr = " ".join(expression.split())
    if not expr:
        raise ValueError("empty cron expression; KFP wants six fields, seconds first: "
                         f"{SIX_FIELDS}, e.g. '0 0 3 * * *' (03:00:00 every day)")
    if expr.startswith("@"):
        word, _, rest = expr.partition(" ")
        if word in _CRON_DESCRIPTORS and not rest:
            return expr
        if word == "@every" and _GO_DURATION.match(rest):
            return expr
        raise ValueError(f"cron {expression!r}: unknown descriptor; expected one of "
                         f"{', '.join(_CRON_DESCRIPTORS)} or '@every <duration>' (e.g. @every 6h)")
    fields = expr.split(" ")
    if len(fields) == 5:
        raise ValueError(
            f"cron {expression!r} has five fields; KFP's cron has six, seconds first "
            f"({SIX_FIELDS}): for the usual meaning of these five write '0 {expr}'")
    if len(fields) != 6:
        raise ValueError(f"cron {expression!r} has {len(fields)} fields; KFP's cron has six, "
                         f"seconds first ({SIX_FIELDS}), e.g. '0 0 3 * * *'")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            why = _cron_range_error(part.lower(), name, low, high)
            if why:
                raise ValueError(f"cron {expression!r}: {name} field {text!r}: {why}")
    return expr


def _cron_range_error(part: str, name: str, low: int, high: int) -> str:
    """Why one comma-separated range of a cron field is wrong ("" if it is right)."""
    span, slash, step = part.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return f"step {step!r} is not a positive number"
    if span in ("*", "?"):
        return ""
    names = _CRON_NAMES.get(name, {})
    values = []
    for bound in span.split("-") if span else [""]:
        value = names.get(bound, int(bound) if bound.isdigit() else None)
        if value is None:
            return f"{bound!r} is not a number{' or a name' if names else ''}"
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        values.append(value)
    if len(values) > 2:
        return f"{span!r}: too many hyphens"
    if len(values) == 2 and values[0] > values[1]:
        return f"{span!r}: the range ends before it starts"
    return ""


def declared_parameters(package_path: str) -> dict[str, str]:
    """The runtime parameters a KFP package declares: name -> type (STRING, NUMBER_INTEGER...),
    read as kfp.Client reads the package (its first YAML document as a PipelineSpec).

    Raises:
      SubmitError (exit 2): not a file kfp.Client accepts, or not a pipeline spec.
    """
    from kfp.client.client import _extract_pipeline_yaml  # kfp's own loader of packages
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not package_path.endswith(CLIENT_PACKAGE_SUFFIXES):
        raise SubmitError(f"{package_path}: a KFP package ends with one of "
                          f"{', '.join(CLIENT_PACKAGE_SUFFIXES)}", 2)
    if not os.path.isfile(package_path):
        raise SubmitError(f"{package_path}: no such file", 2)
    try:
        spec = _extract_pipeline_yaml(package_path).pipeline_spec
    except Exception as e:  # noqa: BLE001  (yaml, protobuf, tar and zip errors)
        raise SubmitError(f"{package_path}: not a KFP pipeline package: "
                          f"{_one_line(str(e)) or type(e).__name__}", 2) from None
    if not spec.root.dag.tasks:
        raise SubmitError(f"{package_path}: not a KFP pipeline package: no tasks", 2)
    types = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    return {name: types.Name(p.parameter_type)
            for name, p in spec.root.input_definitions.parameters.items()}


def request_parameters(request: Any, *, train_steps: int | None = None) -> dict[str, str]:
    """The runtime parameters of a run asked for by `request` (a RunRequest: details span,
    data_root, channel; reason; user and host): `runners/kubeflow.py: run_parameters`.

    Raises:
      ConfigError (runners.kubeflow.KubeflowError): a value the run would fail on.
    """
    from runners.kubeflow import run_parameters

    details = request.details
    return run_parameters(
        data_root=details.get("data_root"), span=details.get("span"), train_steps=train_steps,
        channel=details.get("channel"), reason=request.reason or None,
        requested_by=requested_by(request))


def check_declared(params: Mapping[str, Any], declared: Mapping[str, str]) -> None:
    """Refuses a parameter the package does not declare (`declared_parameters`), or declares
    as other than a string.

    Raises:
      SubmitError (exit 2).
    """
    for name in params:
        if name not in declared:
            raise SubmitError(
                f"the package declares no runtime parameter {name!r} (it declares: "
                f"{', '.join(sorted(declared)) or 'none'}); compile it again with "
                "`pipeline compile kubeflow`", 2)
        if declared[name] not in ("STRING", "PARAMETER_TYPE_ENUM_UNSPECIFIED"):
            raise SubmitError(f"the package's runtime parameter {name!r} is "
                              f"{declared[name]}, not a string", 2)


def requested_by(request: Any) -> str:
    return f"{request.user}@{request.host}"


def run_name(cfg: PipelineConfig, request: Any) -> str:
    """A run's display name: the pipeline, what asked, the span, who, when (UTC)."""
    span = request.details.get("span")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"{cfg.pipeline_name} {request.trigger}{'' if span is None else f' span {span}'} "
            f"by {requested_by(request)} {when}")


# --- credentials and output without secrets ------------------------------------------------

def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The credential values in the environment (what no output may contain)."""
    env = os.environ if environ is None else environ
    values = [env.get(name, "") for name in SECRET_ENVS]
    # A cookie header's values one by one too ("a=1; b=2").
    for cookie in env.get(COOKIES_ENV, "").split(";"):
        values.append(cookie.partition("=")[2].strip())
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def client_arguments(target: Target, environ: Mapping[str, str] | None = None
                     ) -> dict[str, Any]:
    """The keyword arguments of `kfp.Client(...)` for `target`, credentials from `environ`.

    Raises:
      SubmitError (exit 2): $KF_PIPELINES_SA_TOKEN_PATH names a file that cannot be read.
    """
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {"host": target.host}
    if target.namespace:
        kwargs["namespace"] = target.namespace
    if env.get(TOKEN_ENV):
        kwargs["existing_token"] = env[TOKEN_ENV]
    elif env.get(SA_TOKEN_PATH_ENV):
        path = env[SA_TOKEN_PATH_ENV]
        if not os.access(path, os.R_OK):
            raise SubmitError(f"${SA_TOKEN_PATH_ENV}: {path}: cannot read the token file", 2)
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path=path)
    if env.get(COOKIES_ENV):
        kwargs["cookies"] = env[COOKIES_ENV]
    return kwargs


# --- talking to the server, bounded --------------------------------------------------------

def probe(host: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Looks up `host`'s name and opens a TCP connection to it, each within `timeout` seconds.

    Raises:
      SubmitError (exit 1): the name does not resolve, or no address accepts a connection.
    """
    parts = urlsplit(host)
    name = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"Kubeflow Pipelines at {host} does not answer"
    found: list[Any] = []

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except OSError as e:
            found.append(e)

    # getaddrinfo has no timeout of its own: run it beside, and stop waiting after `timeout`.
    lookup = threading.Thread(target=resolve, daemon=True)
    lookup.start()
    lookup.join(timeout)
    if not found:
        raise SubmitError(f"{where}: looking up {name} took more than {timeout:g} s")
    if isinstance(found[0], OSError):
        why = getattr(found[0], "strerror", None) or str(found[0])
        raise SubmitError(f"{where}: cannot resolve {name}: {why}")
    last = ""
    for family, kind, proto, _, address in found[0]:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(timeout)
                s.connect(address)
                return
        except TimeoutError:
            last = f"no answer within {timeout:g} s"
        except OSError as e:
            last = e.strerror or str(e)
    raise SubmitError(f"{where}: {name}:{port}: {last.lower() or 'no address'}")


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raises _DeadlineExceeded in the main thread after `seconds` (a timer signal), since
    kfp.Client's requests have no timeout of their own. Elsewhere than in the main thread,
    no bound. A timer already set (pytest-timeout's) is set again afterwards, to what was left
    of it."""
    import time

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _DeadlineExceeded()

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            left = outer_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links on stdout, warns, and logs tracebacks on the root logger: none
    of that reaches the command's output (one line, or one JSON object)."""
    import logging

    disabled = logging.root.manager.disable  # the level disabled before: set again after
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(disabled)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _server_error(e: BaseException) -> str:
    """An exception raised while talking to the server, as one short line."""
    import kfp_server_api

    if isinstance(e, kfp_server_api.ApiException):
        if not e.status:  # kfp_server_api's own failures (TLS): the reason holds the message
            return _one_line(e.reason or type(e).__name__)
        message = ""
        try:
            body = json.loads(e.body or "{}")
            message = body.get("message") or body.get("error") or ""
        except (ValueError, AttributeError):
            message = e.body if isinstance(e.body, str) else ""
        return _one_line(f"HTTP {e.status} {e.reason or ''}"
                         f"{': ' + str(message) if message else ''}")
    import urllib3

    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        e = e.reason
    if isinstance(e, urllib3.exceptions.NewConnectionError):
        return _one_line(str(e).rpartition(": ")[2])  # "[Errno 111] Connection refused"
    return _one_line(f"{type(e).__name__}: {e}")


def call_kfp(target: Target, timeout: float, work: Callable[[Any], Any],
             environ: Mapping[str, str] | None = None) -> Any:
    """`work(client)` with a `kfp.Client` for `target`, quiet and within `timeout` seconds.

    Raises:
      SubmitError: exit 1 when the server did not answer in time or refused, naming the host;
        never containing a credential.
    """
    import kfp

    kwargs = client_arguments(target, environ)
    secrets = secret_values(environ)
    where = f"Kubeflow Pipelines at {target.host}"
    try:
        with _quiet(), _deadline(timeout):
            client = kfp.Client(**kwargs)
            return work(client)
    except _DeadlineExceeded:
        raise SubmitError(f"{where} did not answer within {timeout:g} s "
                          "(kubeflow.api_timeout_seconds)") from None
    except SubmitError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever failed there, as one line without secrets)
        raise SubmitError(redact(f"{where}: {_server_error(e)}", secrets)) from None


# --- the commands ----------------------------------------------------------------------------

@contextlib.contextmanager
def package_for(cfg: PipelineConfig, package: str | None, *, quiet: bool) -> Iterator[str]:
    """The package to submit: `package` as given, else `cfg` compiled (runners/kubeflow.py)
    into a temporary directory that is removed afterwards.

    Raises:
      SubmitError (exit 2), ConfigError: what compiling refused.
    """
    import tempfile

    if package:
        yield package
        return
    from components.tf_process import prepare_tf_process
    from runners.kubeflow import compile_package

    prepare_tf_process()  # TensorFlow's log lines and warnings are not the command's output
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.pipeline_name).strip("-.") or "pipeline"
    if not quiet:
        print(f"compiling pipeline {cfg.pipeline_name} for Kubeflow Pipelines ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="kfp-package-") as tmp:
        path = os.path.join(tmp, f"{name}.yaml")
        # TFX's and Google's import-time warnings are not the command's output.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            compile_package(cfg, path)
        yield path


def submit_run(cfg: PipelineConfig, request: Any, target: Target, *,
               package: str | None = None, name: str | None = None,
               train_steps: int | None = None, quiet: bool = False) -> Submitted:
    """One run of the pipeline now: `kfp.Client.create_run_from_pipeline_package`.

    Raises:
      SubmitError, ConfigError.
    """
    params = request_parameters(request, train_steps=train_steps)
    display = name or run_name(cfg, request)
    probe(target.host)
    with package_for(cfg, package, quiet=quiet) as path:
        check_declared(params, declared_parameters(path))

        def create(client: Any) -> Any:
            return client.create_run_from_pipeline_package(
                path, arguments=params, run_name=display, experiment_name=target.experiment,
                namespace=target.namespace)

        result = call_kfp(target, cfg.kubeflow.api_timeout_seconds, create)
    return Submitted(status="submitted", target=target, params=params, name=display,
                     run_id=str(getattr(result, "run_id", "") or ""))


def schedule_run(cfg: PipelineConfig, request: Any, target: Target, *, cron: str,
                 max_concurrency: int, no_catchup: bool, package: str | None = None,
                 name: str | None = None, train_steps: int | None = None,
                 quiet: bool = False) -> Submitted:
    """A recurring run: the experiment got (or created), then
    `kfp.Client.create_recurring_run(experiment_id, job_name, cron_expression=...)`.

    Raises:
      SubmitError, ConfigError.
    """
    try:
        cron = check_cron(cron)
    except ValueError as e:
        raise SubmitError(str(e), 2) from None
    params = request_parameters(request, train_steps=train_steps)
    job = name or f"{cfg.pipeline_name} ({cron})"
    probe(target.host)
    with package_for(cfg, package, quiet=quiet) as path:
        check_declared(params, declared_parameters(path))

        def create(client: Any) -> tuple[Any, Any]:
            experiment = client.create_experiment(name=target.experiment,
                                                  namespace=target.namespace)
            job_run = client.create_recurring_run(
                experiment.experiment_id, job, cron_expression=cron,
                max_concurrency=max_concurrency, no_catchup=no_catchup, params=params,
                pipeline_package_path=path)
            return experiment, job_run

        experiment, job_run = call_kfp(target, cfg.kubeflow.api_timeout_seconds, create)
    return Submitted(status="scheduled", target=target, params=params, name=job,
                     recurring_run_id=str(getattr(job_run, "recurring_run_id", "") or ""),
                     experiment_id=str(getattr(experiment, "experiment_id", "") or ""),
                     schedule={"cron": cron, "max_concurrency": max_concurrency,
                               "no_catchup": no_catchup})


def print_submitted(result: Submitted, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json()))
        return
    t = result.target
    where = (f"Kubeflow Pipelines at {t.host} (experiment {t.experiment}"
             f"{f', namespace {t.namespace}' if t.namespace else ''})")
    if result.recurring_run_id:
        s = result.schedule
        print(f"scheduled recurring run {result.recurring_run_id} {result.name!r} on {where}")
        print(f"cron {s['cron']!r} (seconds first), at most {s['max_concurrency']} at a time, "
              f"{'no catch-up' if s['no_catchup'] else 'missed runs caught up'}")
    else:
        print(f"submitted run {result.run_id or '(id not reported)'} {result.name!r} to {where}")
    print(f"parameters: {json.dumps(result.params) if result.params else '(the defaults)'}")
    if result.url:
        print(f"follow it: {result.url}")


def print_failed(message: str, as_json: bool, environ: Mapping[str, str] | None = None) -> None:
    message = redact(message, secret_values(environ))
    if as_json:
        print(json.dumps({"status": "failed", "on": "kubeflow", "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)


def trigger(cfg: PipelineConfig, request: Any, *, as_json: bool) -> int:
    """`pipeline retrain --on kubeflow`: one run with the request's span, data root, channel
    and reason, host and namespace from the profile or the environment; the exit code."""
    try:
        target = resolve_target(cfg)
        result = submit_run(cfg, request, target, quiet=as_json)
    except SubmitError as e:
        print_failed(str(e), as_json)
        return e.exit_code
    except ConfigError as e:
        print_failed(str(e), as_json)
        return 2
    print_submitted(result, as_json)
    return 0
