"""What the model sees, derived from a TFMD schema and the model config (no TensorFlow here).

Each feature gets a kind that decides its parsing default and its preprocessing:
  - ``float``: numeric, normalised; missing values are NaN at parse time; they, NaN and ±inf
    values are imputed and flagged (the validation gate counts them all as missing).
  - ``int``: numeric integer, normalised; missing values are a sentinel, imputed and flagged.
  - ``int_categorical``: an integer with ``is_categorical`` or a small ``int_domain``; lookup.
  - ``string_vocab``: a string with a ``string_domain`` (inline or referenced); lookup.
  - ``string_hashed``: a string with no domain; hashed into buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# An int64 that real data does not hold, standing for "absent" at parse time.
INT_MISSING = -(2**62)
# Integer domains up to this size are treated as categorical even without is_categorical.
MAX_IMPLICIT_INT_CATEGORIES = 32

Kind = Literal["float", "int", "int_categorical", "string_vocab", "string_hashed"]


class FeatureSpecError(ValueError):
    """The schema and the model config disagree; the message names the feature."""


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    kind: Kind
    dtype: Literal["float32", "int64", "string"]
    # int_categorical: the integer values; string_vocab: the strings. Empty otherwise.
    vocabulary: tuple = ()


@dataclass(frozen=True)
class LabelInfo:
    name: str
    task: Literal["multiclass", "binary", "regression"]
    dtype: Literal["float32", "int64"]
    num_classes: int | None


def _string_domain(schema, feature) -> tuple[str, ...]:
    if feature.HasField("string_domain"):
        return tuple(feature.string_domain.value)
    if feature.HasField("domain"):
        for d in schema.string_domain:
            if d.name == feature.domain:
                return tuple(d.value)
        raise FeatureSpecError(
            f"feature {feature.name!r}: domain {feature.domain!r} is not in the schema"
        )
    return ()


def _is_multivalent(feature) -> bool:
    return feature.HasField("value_count") and feature.value_count.max > 1


def describe_feature(schema, feature) -> FeatureInfo:
    """The FeatureInfo of one `schema_pb2.Feature`."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    if _is_multivalent(feature):
        raise FeatureSpecError(
            f"feature {feature.name!r}: value_count max {feature.value_count.max} > 1; "
            "only single-valued features are supported"
        )
    if feature.type == schema_pb2.FLOAT:
        return FeatureInfo(feature.name, "float", "float32")
    if feature.type == schema_pb2.INT:
        dom = feature.int_domain if feature.HasField("int_domain") else None
        bounded = dom is not None and dom.HasField("min") and dom.HasField("max")
        size = dom.max - dom.min + 1 if bounded else None
        if bounded and (dom.is_categorical or size <= MAX_IMPLICIT_INT_CATEGORIES):
            return FeatureInfo(
                feature.name, "int_categorical", "int64", tuple(range(dom.min, dom.max + 1))
            )
        if dom is not None and dom.is_categorical:
            raise FeatureSpecError(
                f"feature {feature.name!r}: categorical int_domain needs min and max"
            )
        return FeatureInfo(feature.name, "int", "int64")
    if feature.type == schema_pb2.BYTES:
        vocab = _string_domain(schema, feature)
        if vocab:
            return FeatureInfo(feature.name, "string_vocab", "string", vocab)
        return FeatureInfo(feature.name, "string_hashed", "string")
    raise FeatureSpecError(f"feature {feature.name!r}: unsupported type {feature.type}")


def select_features(
    schema, label: str, features: list[str] | None, task: str
) -> tuple[list[FeatureInfo], LabelInfo]:
    """The model's input features and label, from the schema and the config.

    Args:
      schema: a `schema_pb2.Schema`.
      label: the label feature's name.
      features: the feature names to use, or None for every feature but the label.
      task: multiclass, binary or regression.

    Raises:
      FeatureSpecError: naming the label or feature that the schema lacks or cannot serve.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    by_name = {f.name: f for f in schema.feature}
    if label not in by_name:
        raise FeatureSpecError(
            f"label {label!r} is not in the schema (features: {', '.join(sorted(by_name))})"
        )
    names = [n for n in by_name if n != label] if features is None else list(features)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FeatureSpecError(f"feature {missing[0]!r} is not in the schema")
    if not names:
        raise FeatureSpecError("no input features: the schema holds only the label")
    infos = [describe_feature(schema, by_name[n]) for n in names]

    lab = by_name[label]
    if _is_multivalent(lab):
        raise FeatureSpecError(f"label {label!r}: must be single-valued")
    if task == "regression":
        if lab.type not in (schema_pb2.FLOAT, schema_pb2.INT):
            raise FeatureSpecError(f"label {label!r}: regression needs a FLOAT or INT label")
        return infos, LabelInfo(label, task, "float32", None)
    if lab.type != schema_pb2.INT:
        raise FeatureSpecError(
            f"label {label!r}: {task} classification needs an INT label of class ids 0..n-1"
        )
    if task == "binary":
        dom = lab.int_domain
        if lab.HasField("int_domain") and (dom.min, dom.max) != (0, 1):
            raise FeatureSpecError(
                f"label {label!r}: binary needs values 0 and 1, the schema allows "
                f"{dom.min}..{dom.max}"
            )
        return infos, LabelInfo(label, task, "int64", 2)
    dom = lab.int_domain
    if not (lab.HasField("int_domain") and dom.HasField("max")) or dom.min != 0:
        raise FeatureSpecError(
            f"label {label!r}: multiclass needs an int_domain with min 0 and max n-1"
        )
    return infos, LabelInfo(label, task, "int64", dom.max + 1)


def load_schema(path: str):
    """Reads a text-format schema; raises FeatureSpecError naming the file."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise FeatureSpecError(f"{path}: cannot read the schema: {e.strerror}") from None
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as e:
        raise FeatureSpecError(f"{path}: not a valid schema: {e}") from None
    return schema
