"""TFX adapter of the curated schema's importer (node id `ImportSchemaGen`).

Writes the file as `<artifact>/schema.pbtxt`, the only file there, as ImportSchemaGen does (the
Trainer's `schema_path` and ExampleValidator read it so). Cached on the content's digest.

No `from __future__ import annotations`: the @component decorator reads real annotations.
"""

import os

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Schema

from components.schema.digest import check_schema_bytes

# ImportSchemaGen's (and SchemaGen's) file name inside the artifact.
SCHEMA_FILE_NAME = "schema.pbtxt"


@component
def CuratedSchemaImporter(  # noqa: N802
    schema: OutputArtifact[Schema],
    schema_file: Parameter[str],
    schema_sha256: Parameter[str],
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Imports `schema_file`, which must still have the content `schema_sha256` names.

    `code_fingerprint` is not read: it re-runs the importer when its code changes.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.dsl.io import fileio  # any filesystem TFX reads (local, gs://, ...)

    with fileio.open(schema_file, "rb") as f:
        data = f.read()
    check_schema_bytes(schema_file, data, schema_sha256)
    try:
        text_format.Parse(data.decode("utf-8"), schema_pb2.Schema())
    except (UnicodeDecodeError, text_format.ParseError) as e:
        raise ValueError(f"{schema_file}: not a valid text-format schema: {e}") from None
    with fileio.open(os.path.join(schema.uri, SCHEMA_FILE_NAME), "wb") as f:
        f.write(data)
