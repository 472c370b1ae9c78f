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

from pydantic import Field

from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS
from components.typed_config import ConfigDataError, ConfigModel, parse

__all__ = ["ServerConfig"]


class ServerConfig(ConfigModel):
    # TF Serving's --model_config_file_poll_wait_seconds: how often it re-reads models.config.
    # 0: it reads the file once, at start (TF Serving's default), so waiting would not help.
    poll_seconds: float = Field(default=10.0, ge=0)
    # TF Serving's REST address, e.g. http://127.0.0.1:8501. Set: a label moves onto a version
    # only once GET <status_url>/v1/models/<model> reports it AVAILABLE. Null: the label moves
    # poll_seconds + load_timeout_seconds after the version was first served.
    status_url: str | None = None
    # How long a version may take to load once the server has read the config serving it.
    load_timeout_seconds: float = Field(default=60.0, gt=0)
    # How long a push or release operation waits for another's lock on the base path.
    lock_timeout_seconds: float = Field(default=DEFAULT_LOCK_TIMEOUT_SECONDS, gt=0)

    def problem(self) -> str | None:
        """What is wrong with these settings beyond each number's range (checked on its field),
        as ``key: message``, or None."""
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
        """Rebuild from ``to_json``'s output (raises ValueError naming the key,
        ``pusher.serving.<key>: ...``)."""
        try:
            settings = parse(cls, json.loads(text))
        except ConfigDataError as e:
            raise ValueError(f"pusher.serving.{e}") from None
        problem = settings.problem()
        if problem:
            raise ValueError(f"pusher.serving.{problem}")
        return settings
