"""The content digest of a schema file, and reading it back only if it is still that content.

TFX's ImportSchemaGen is cached on its exec property `schema_file`, the path: a schema edited in
place came back cached, so validation and training kept the old one. The importer here takes
the content's sha256 as an exec property too: an edit changes it (the importer and everything
downstream run again), a revert restores it (TFX's cache returns the first import's artifact,
and everything downstream is cached again).
"""

from __future__ import annotations

import hashlib


class SchemaChangedError(RuntimeError):
    """The schema file no longer has the content the pipeline was built with."""


def schema_digest(data: bytes) -> str:
    """sha256 (hex) of a schema file's bytes."""
    return hashlib.sha256(data).hexdigest()


def check_schema_bytes(path: str, data: bytes, expected_sha256: str) -> None:
    """Checks that `data`, read from `path`, still hashes to `expected_sha256`.

    Raises:
      SchemaChangedError: the file was edited after the pipeline was built (the cache key and
        the content would disagree); naming the file and both digests.
    """
    actual = schema_digest(data)
    if actual != expected_sha256:
        raise SchemaChangedError(
            f"{path}: changed after the pipeline was built (sha256 {actual[:12]}, built with "
            f"{expected_sha256[:12]}); run again"
        )
