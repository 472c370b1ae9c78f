"""A run's log file and its one-line error: the terminal shows the line, the file the rest."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable


class RunLogHandler(logging.FileHandler):
    """The handler of `<work_dir>/logs/<run_id>.log` (a class of its own so that the next run
    in the same process replaces it instead of writing to both files)."""


class RedactingFormatter(logging.Formatter):
    """Writes `***` for each secret wherever it shows in a line, traceback included: TFX's
    LocalDagRunner logs the ML Metadata connection config, a MySQL password in it."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()):
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def open_run_log(log_file: str, secrets: Iterable[str] = ()) -> logging.Handler:
    """Sends every library log line (TFX, Beam, absl, the project) to `log_file` instead of
    the terminal, at INFO, from now until the process ends or the next run opens its log;
    `secrets` (the ML Metadata password) are written as `***`."""
    from absl import logging as absl_logging

    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    handler = RunLogHandler(log_file)
    handler.setFormatter(RedactingFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.removeHandler(absl_logging.get_absl_handler())
    for h in list(root.handlers):
        if isinstance(h, RunLogHandler) or (
            isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ):
            root.removeHandler(h)
            if isinstance(h, RunLogHandler):
                h.close()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    return handler


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def error_kind(exc: BaseException) -> str:
    """What a run's failure was, for its exit code (see `RunResult.exit_code`): "config" (a
    configuration the run cannot use, exit 2), "input" (data refused) or "run" (exit 1)."""
    from components.data_check import DataCheckError
    from components.data_validation import AnomaliesFoundError
    from pipeline.config import ConfigError

    for e in _chain(exc):
        if isinstance(e, ConfigError):
            return "config"
        if isinstance(e, AnomaliesFoundError | DataCheckError):
            return "input"
    return "run"


def error_line(exc: BaseException) -> str:
    """The most specific, readable reason in an exception chain: the message of a project
    error that names the file, feature or key, else the root cause's first line."""
    from components.data_check import DataCheckError
    from components.data_validation import AnomaliesFoundError
    from pipeline.config import ConfigError

    chain = _chain(exc)
    for e in chain:
        if isinstance(e, AnomaliesFoundError | DataCheckError | ConfigError):
            return str(e)
    root = chain[-1]
    text = str(root).strip().splitlines()[0] if str(root).strip() else ""
    return f"{type(root).__name__}: {text}" if text else type(root).__name__
