"""The curated schema as a pipeline input: imported by content, not by path.

``schema_digest`` (pure standard library) is what the pipeline definition puts into the
importer's exec properties; ``component.CuratedSchemaImporter`` is the TFX adapter.
"""

from components.schema.digest import SchemaChangedError, check_schema_bytes, schema_digest

__all__ = ["SchemaChangedError", "check_schema_bytes", "schema_digest"]
