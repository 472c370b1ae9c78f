"""A stand-in for TensorFlow Serving (no binary can be installed here), for the release tests.

It behaves as TF Serving does with ``--model_config_file=<base>/models.config
--model_config_file_poll_wait_seconds=<poll>`` as far as a release can tell:

* every ``poll`` seconds it reads ``models.config`` (ModelServerConfig text). A version newly
  listed in the ``specific`` policy goes START -> LOADING, then AVAILABLE after its load time
  (or never, for a version told never to load); a version no longer listed goes UNLOADING ->
  END. Then it applies the labels, with TF Serving's rule: a label may point only at a version
  that is AVAILABLE. A config that breaks the rule is rejected (recorded in ``rejected``) and the
  previous labels stay, as TF Serving's ``UpdateModelVersionLabelMap`` does (this fake tries
  again at the next poll). The first config read is the one the server starts with: TF Serving
  loads its versions before applying its labels, so it is never rejected, and reads no other
  config until they are loaded;
* on 127.0.0.1 it answers TF Serving's model status REST API exactly:
  ``GET /v1/models/<name>`` -> 200 ``{"model_version_status": [{"version": "3", "state":
  "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}, ...]}`` (versions as
  strings, newest first, as TF Serving prints its proto), and 404 ``{"error": "Could not find
  any versions of model <name>"}`` for a model it has no version of; any other path is 404
  ``{"error": "Malformed request: GET <path>"}``.

``answers`` logs every answer (time, version -> state), ``configs_read`` every distinct config
read (time, versions, labels), so that a test can check the order of events.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from dataclasses import dataclass, field

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclass
class _Version:
    state: str
    available_at: float | None  # None: never


@dataclass
class FakeTFServing:
    base_path: str
    model_name: str
    poll_seconds: float = 0.1
    load_seconds: float = 0.3
    never_loads: set[int] = field(default_factory=set)
    versions: dict[int, _Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    answers: list[tuple[float, dict[int, str]]] = field(default_factory=list)
    configs_read: list[tuple[float, list[int], dict[str, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                status, body = fake._answer(self.path)
                data = json.dumps(body, indent=1).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._poll_config, daemon=True),
        ]

    def __enter__(self) -> FakeTFServing:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def load_now(self, version: int) -> None:
        """Let a version told never to load finish loading at once."""
        with self._lock:
            self.never_loads.discard(version)
            if version in self.versions and self.versions[version].state == "LOADING":
                self.versions[version].available_at = time.time()

    # --- the model server --------------------------------------------------------------------

    def _poll_config(self) -> None:
        path = os.path.join(self.base_path, "models.config")
        last_text = None
        while not self._stop.is_set():
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                text = None
            with self._lock:
                self._advance()
                if not self._started:  # the config it starts with, until its labels apply
                    last_text = last_text or text
                    if last_text is not None:
                        self._started = self._apply(last_text, changed=not self.configs_read,
                                                    starting=True)
                elif text is not None:
                    self._apply(text, changed=text != last_text, starting=False)
                    last_text = text
            self._stop.wait(self.poll_seconds)

    def _advance(self) -> None:
        now = time.time()
        for version in self.versions.values():
            if version.state == "LOADING" and version.available_at is not None and (
                now >= version.available_at
            ):
                version.state = "AVAILABLE"
            elif version.state == "UNLOADING":
                version.state = "END"

    def _apply(self, text: str, *, changed: bool, starting: bool) -> bool:
        """Serve the versions of ``text``; apply its labels if allowed. True: applied."""
        config = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(text, config)
        models = [m for m in config.model_config_list.config if m.name == self.model_name]
        if not models:
            return True  # not this server's model
        (model,) = models
        wanted = set(model.model_version_policy.specific.versions)
        labels = dict(model.version_labels)
        if changed:
            self.configs_read.append((time.time(), sorted(wanted), labels))
        now = time.time()
        for number in wanted:
            known = self.versions.get(number)
            if known is None or known.state in ("END", "UNLOADING"):
                never = number in self.never_loads
                self.versions[number] = _Version(
                    "LOADING", None if never else now + self.load_seconds
                )
        for number, version in self.versions.items():
            if number not in wanted and version.state in ("LOADING", "AVAILABLE"):
                version.state = "UNLOADING"
        self._advance()
        unavailable = {
            label: v for label, v in labels.items()
            if self.versions.get(v) is None or self.versions[v].state != "AVAILABLE"
        }
        if unavailable:
            if changed and not starting:
                self.rejected.append(
                    f"labels {unavailable} point at versions that are not available "
                    f"({ {v: self.versions[v].state for v in unavailable.values()} })"
                )
            return False  # TF Serving keeps the previous labels; this fake tries again later
        self.labels = labels
        return True

    # --- the REST API ------------------------------------------------------------------------

    def _answer(self, path: str) -> tuple[int, dict]:
        prefix = f"/v1/models/{self.model_name}"
        if path.rstrip("/") != prefix:
            if path.startswith("/v1/models/") and path.count("/") == 3:
                name = path.rsplit("/", 1)[1]
                return 404, {"error": f"Could not find any versions of model {name}"}
            return 404, {"error": f"Malformed request: GET {path}"}
        with self._lock:
            self._advance()
            states = {n: v.state for n, v in self.versions.items()}
            self.answers.append((time.time(), dict(states)))
        if not states:
            return 404, {"error": f"Could not find any versions of model {self.model_name}"}
        return 200, {"model_version_status": [
            {"version": str(n), "state": state,
             "status": {"error_code": "OK", "error_message": ""}}
            for n, state in sorted(states.items(), reverse=True)
        ]}

    def first_answer(self, version: int, state: str) -> float | None:
        """When the server first answered that ``version`` was in ``state``."""
        return next((t for t, states in self.answers if states.get(version) == state), None)
