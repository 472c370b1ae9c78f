"""``pusher.serving``: what a release must know of the TF Serving server reading the base path.

The pipeline's config composes ``ServerConfig`` (``pipeline/config.py``); the pusher gets it as
JSON and rebuilds it with the same type (``ServerConfig.from_json``), and ``pipeline release``
reads it from the same config. Its defaults are written here, once. ``ServerWait``
(``components.serving.server``) is the wait it configures. Kept apart from the rest of the
package, which does not need pydantic.
"""

from __future__ import annotations

import json
import urllib.parse

from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS
from components.typed_config import ConfigModel, parse

__all__ = ["ServerConfig"]


class ServerConfig(ConfigModel):
    # TF Serving's --model_config_file_poll_wait_seconds: how often it re-reads models.config.
    # 0: it reads the file once, at start (TF Serving's default), so waiting would not help.
    poll_seconds: float = 10.0
    # TF Serving's REST address, e.g. http://127.0.0.1:8501. Set: a label moves onto a version
    # only once GET <status_url>/v1/models/<model> reports it AVAILABLE. Null: the label moves
    # poll_seconds + load_timeout_seconds after the version was first served.
    status_url: str | None = None
    # How long a version may take to load once the server has read the config serving it.
    load_timeout_seconds: float = 60.0
    # How long a push or release operation waits for another's lock on the base path.
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS

    def problem(self) -> str | None:
        """What is wrong with these settings, as ``key: message``, or None."""
        if self.poll_seconds < 0:
            return f"poll_seconds: expected >= 0, got {self.poll_seconds:g}"
        if self.load_timeout_seconds <= 0:
            return f"load_timeout_seconds: expected > 0, got {self.load_timeout_seconds:g}"
        if self.lock_timeout_seconds <= 0:
            return f"lock_timeout_seconds: expected > 0, got {self.lock_timeout_seconds:g}"
        if self.status_url is not None:
            url = urllib.parse.urlsplit(self.status_url)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or (
                url.fragment
            ):
                return (
                    f"status_url: expected TF Serving's REST address, e.g. "
                    f"http://127.0.0.1:8501, got {self.status_url!r}"
                )
        return None

    def to_json(self) -> str:
        """The settings as JSON, for the pusher's parameter."""
        return json.dumps(self.model_dump(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Rebuild from ``to_json``'s output (raises ConfigDataError, or ValueError naming the
        key when a value is out of range)."""
        settings = parse(cls, json.loads(text))
        problem = settings.problem()
        if problem:
            raise ValueError(f"pusher.serving.{problem}")
        return settings
