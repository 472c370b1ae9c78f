"""Wait for TF Serving between the two steps of a label move (the ``between_steps`` strategy).

TF Serving reads ``models.config`` every ``--model_config_file_poll_wait_seconds`` and refuses
a config whose label points at a version it has not loaded. So before the step that moves a
label onto a version, the server must have read the first step (which serves the version) and
loaded it. ``ServerWait`` waits for that, as ``pusher.serving`` (``ServerConfig``) says:

* with ``status_url``: ``GET <status_url>/v1/models/<model>`` (TF Serving's model status API:
  ``{"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {"error_code":
  "OK", "error_message": ""}}, ...]}``) until every version the labels move onto reports
  ``AVAILABLE``, for at most ``poll_seconds + load_timeout_seconds`` after the file serving it
  was written (and at least ``load_timeout_seconds`` from now); then ``ServerNotReady`` naming
  the version, the URL and the last state seen;
* without: until ``poll_seconds + load_timeout_seconds`` have passed since the file serving
  the version was written (nothing, when ``poll_seconds`` is 0: the server never re-reads it).

Moves that need no wait get none: when the base path had no ``models.config`` before the
operation (a first release: no server can have read a config that did not exist; a server
started later reads the final file and loads its versions before applying labels), and moves
that only take labels away (``apply_serving_state`` does not call the strategy then). A move
onto a version already served (promote the canary) waits only for what is left of the
period, and with a status URL costs one request. Pure standard library.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from components.serving.errors import ServerNotReady
from components.serving.models_config import LabelMove

if TYPE_CHECKING:
    from components.serving.settings import ServerConfig

__all__ = ["AVAILABLE", "ServerWait", "model_status_url", "version_states"]

AVAILABLE = "AVAILABLE"
_log = logging.getLogger(__name__)
# The status URL is the server's own REST port, reached directly: an http_proxy set for the
# machine must not intercept it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def model_status_url(status_url: str, model_name: str) -> str:
    """TF Serving's model status URL of ``model_name``."""
    return f"{status_url.rstrip('/')}/v1/models/{urllib.parse.quote(model_name)}"


def _describe(entry: dict[str, Any]) -> str:
    state = str(entry.get("state", "UNKNOWN"))
    status = entry.get("status") or {}
    code = status.get("error_code", "OK") if isinstance(status, dict) else "OK"
    if code in ("OK", 0, ""):
        return state
    return f"{state} ({code}: {status.get('error_message', '')})"


def version_states(url: str, timeout: float) -> tuple[dict[int, str], str | None]:
    """Ask TF Serving for the state of every version of a model.

    Returns:
        (version -> state, e.g. ``"LOADING"`` or ``"END (NOT_FOUND: ...)"``, None), or
        ({}, what went wrong) when there is no usable answer (unreachable, HTTP error, not a
        model status answer).
    """
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read() or b"{}").get("error", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        return {}, f"HTTP {e.code}" + (f" ({detail})" if detail else "")
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return {}, f"unreachable ({reason})"
    try:
        entries = json.loads(body)["model_version_status"]
        states = {int(entry["version"]): _describe(entry) for entry in entries}
    except (ValueError, KeyError, TypeError) as e:
        return {}, f"not a model status answer ({type(e).__name__}: {e})"
    return states, None


class ServerWait:
    """The ``between_steps`` of a base path that TF Serving reads (see the module docstring).

    Args:
        settings: ``pusher.serving``.
        interval: seconds between two status requests.
    """

    def __init__(self, settings: ServerConfig, *, interval: float = 0.25) -> None:
        self.settings = settings
        self.interval = interval

    def __repr__(self) -> str:
        return f"ServerWait({self.settings!r})"

    def __call__(self, move: LabelMove) -> None:
        if move.before is None:
            return  # no server can have read a config of this base path yet
        s = self.settings
        if s.status_url is not None:
            self._until_available(move, s.status_url)
            return
        if s.poll_seconds <= 0:
            return
        remaining = move.served_since + s.poll_seconds + s.load_timeout_seconds - time.time()
        if remaining > 0:
            _log.info("waiting %.1f s for TF Serving to load version(s) %s", remaining,
                      list(move.onto))
            time.sleep(remaining)

    def _until_available(self, move: LabelMove, status_url: str) -> None:
        s = self.settings
        url = model_status_url(status_url, move.target.model_name)
        now = time.time()
        budget = max(move.served_since + s.poll_seconds, now) + s.load_timeout_seconds - now
        deadline = time.monotonic() + budget
        waiting = list(move.onto)
        last: dict[int, str] = {}
        while True:
            states, problem = version_states(url, timeout=max(0.1, min(5.0, budget)))
            for version in waiting:
                last[version] = states.get(version) or problem or (
                    "not listed (the server reports "
                    + (", ".join(f"{v} {st}" for v, st in sorted(states.items())) or "none")
                    + ")"
                )
            waiting = [v for v in waiting if states.get(v) != AVAILABLE]
            if not waiting:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                version = waiting[0]
                raise ServerNotReady(
                    f"TF Serving did not report version {version} of model "
                    f"{move.target.model_name!r} {AVAILABLE} within {budget:.1f} s "
                    f"(GET {url}; last state seen: {last[version]})"
                )
            time.sleep(min(self.interval, left))
