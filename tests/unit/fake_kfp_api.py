"""A stand-in for the Kubeflow Pipelines API server (no cluster here), for the real kfp.Client.

On 127.0.0.1 it answers the v2beta1 REST requests the project's commands make through
kfp.Client, with the JSON the real server returns (the fields kfp_server_api reads):

* ``GET /apis/v2beta1/healthz`` -> ``{"multi_user": false}``;
* ``GET /apis/v2beta1/experiments?filter=...`` -> the experiments whose display_name the
  filter's EQUALS predicate names (``{}`` when none, as the server omits an empty list);
* ``POST /apis/v2beta1/experiments`` -> the experiment with a new ``experiment_id``;
* ``POST /apis/v2beta1/runs`` -> the run with a new ``run_id``;
* ``POST /apis/v2beta1/recurringruns`` -> the recurring run with a new ``recurring_run_id``;
* anything else -> 404 ``{"error": ..., "code": 5, "message": ...}``.

Every request is recorded (`requests`: method, path, query, headers with lowercase names, JSON
body). With
`fail_with=(status, message)` every request is answered with that error instead (the message
may quote a request header, as a verbose proxy's error page does: `echo_header`).
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lowercase
    body: Any


@dataclass
class FakeKfpApi:
    fail_with: tuple[int, str] | None = None
    echo_header: str | None = None  # quoted in the error message of `fail_with`
    requests: list[Request] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._answer(self, None)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake._answer(self, json.loads(raw) if raw else None)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKfpApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def _answer(self, handler: http.server.BaseHTTPRequestHandler, body: Any) -> None:
        parts = urlsplit(handler.path)
        request = Request(handler.command, parts.path, parse_qs(parts.query),
                          {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(request)
            status, answer = self._route(request)
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, r: Request) -> tuple[int, Any]:
        if self.fail_with is not None:
            status, message = self.fail_with
            if self.echo_header:
                message += (f" (you sent {self.echo_header}: "
                            f"{r.headers.get(self.echo_header.lower())})")
            return status, {"error": message, "code": 16, "message": message}
        n = len(self.requests)
        if (r.method, r.path) == ("GET", f"{PREFIX}/healthz"):
            return 200, {"multi_user": False}
        if (r.method, r.path) == ("GET", f"{PREFIX}/experiments"):
            name = None
            for predicate in json.loads(r.query.get("filter", ["{}"])[0]).get("predicates", []):
                if predicate.get("key") == "display_name":
                    name = predicate.get("stringValue")
            found = [e for e in self.experiments if name is None or e["display_name"] == name]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if (r.method, r.path) == ("POST", f"{PREFIX}/experiments"):
            experiment = dict(r.body, experiment_id=f"exp-{n}")
            self.experiments.append(experiment)
            return 200, experiment
        if (r.method, r.path) == ("POST", f"{PREFIX}/runs"):
            return 200, dict(r.body, run_id=f"run-{n}", state="PENDING")
        if (r.method, r.path) == ("POST", f"{PREFIX}/recurringruns"):
            return 200, dict(r.body, recurring_run_id=f"recurring-{n}", status="ENABLED")
        message = f"no such API: {r.method} {r.path}"
        return 404, {"error": message, "code": 5, "message": message}
