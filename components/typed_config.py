"""Typed configuration sections, checked by pydantic, with errors a person can act on.

Every section of the pipeline configuration (and the trainer's job file) is a `ConfigModel`:
strict types (no `"5"` for an integer, no `true` for a number), finite numbers only, unknown keys
refused, defaults written once, on the field, with the field's valid range (``Field(ge=0)``,
``min_length=1``, a validator raising ValueError with the reason). `parse(cls, data)` checks plain
data (parsed YAML or JSON) and turns pydantic's first error into one line naming the dotted key,
what was expected and what was given, with a "did you mean" for a misspelt key, e.g.
``trainer.bach_size: unknown key (did you mean 'batch_size'?); expected one of: ...`` or
``trainer.seed: expected an integer >= 0, got -1``.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound="ConfigModel")


class ConfigModel(BaseModel):
    """A configuration section: strict types, no unknown keys, defaults on the fields."""

    # defer_build: the schema is built on first use, not when a module is imported.
    # allow_inf_nan: no setting means anything as .inf or .nan (nan <= 0 is False: it passes
    # every range check).
    model_config = ConfigDict(
        strict=True, extra="forbid", defer_build=True, protected_namespaces=(),
        allow_inf_nan=False,
    )


class ConfigDataError(ValueError):
    """Plain data that does not fit a ConfigModel; `key` is the dotted key ('' for the top)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def parse(cls: type[M], data: Any) -> M:
    """`cls` built from plain data; raises ConfigDataError for the first problem found."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        # pydantic lists errors in field order; a person reads the file from the top.
        first = min(e.errors(), key=lambda err: _position(err["loc"], data))
        raise _explain(cls, first, data) from None


def describe(tp: Any) -> str:
    """What a value of type `tp` looks like in YAML, for messages."""
    tp = _bare(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {describe(typing.get_args(tp)[0])}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"a mapping of {describe(k)} to {describe(v)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, str(tp))


def _position(loc: tuple, data: Any) -> tuple[int, ...]:
    """Where `loc` is in `data`, in the order the data was written (absent keys last)."""
    position = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            position.append(list(data).index(part))
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            position.append(part)
            data = data[part]
        else:  # a missing key, or pydantic's name of a union member: no further
            position.append(len(data) if isinstance(data, dict | list) else 0)
            break
    return tuple(position)


def _bare(tp: Any) -> Any:
    """X for `Annotated[X, constraints]`: the constraints are reported from pydantic's error."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _optional_of(tp: Any) -> Any:
    """X for `X | None`, which pydantic checks as X (its errors carry no union member)."""
    tp = _bare(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return _bare(args[0])
    return tp


_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def _range_problem(tp: Any, error: dict) -> str:
    """`expected an integer >= 0, got -1` for a value outside a Field's ge/gt/le/lt."""
    name, op = _BOUNDS[error["type"]]
    bound = error["ctx"][name]
    inner = _optional_of(tp)
    if inner is int and ((op == ">" and bound == 0) or (op == ">=" and bound == 1)):
        wanted = "a positive integer"
    elif inner is int:
        wanted = f"an integer {op} {bound}"
    else:  # a number: the range says it all
        wanted = f"{op} {bound:g}"
    if inner is not _bare(tp):
        wanted += " or null"
    return f"expected {wanted}, got {error['input']!r}"


def _explain(cls: type[BaseModel], error: dict, data: Any) -> ConfigDataError:
    """Follows the error's location through the types and the data, as far as it goes.

    The walk stops at a union of several types (pydantic then reports one error per member):
    the message names the union and the value there, as a person wrote it.
    """
    loc, kind = error["loc"], error["type"]
    tp, value, key = cls, data, ""
    steps = loc[:-1] if kind == "extra_forbidden" else loc
    for i, part in enumerate(steps):
        inner = _optional_of(tp)
        origin = typing.get_origin(inner)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            tp = inner.model_fields[part].annotation
            key = f"{key}.{part}" if key else str(part)
        elif origin is list:
            tp = typing.get_args(inner)[0]
            key = f"{key}[{part}]"
        elif origin is dict:
            k_tp, v_tp = typing.get_args(inner)
            if i + 1 < len(steps) and steps[i + 1] == "[key]":
                return ConfigDataError(key, f"key {part!r}: expected {describe(k_tp)}")
            tp = v_tp
            key = f"{key}.{part}"
        else:
            break
        value = value.get(part) if isinstance(value, dict) else (
            value[part] if isinstance(value, list) and isinstance(part, int) else None
        )
    model = _optional_of(tp)
    if kind == "extra_forbidden" and isinstance(model, type) and issubclass(model, BaseModel):
        known = list(model.model_fields)
        name = str(loc[-1])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ConfigDataError(
            f"{key}.{name}" if key else name,
            f"unknown key{hint}; expected one of: {', '.join(known)}",
        )
    if kind == "missing":
        return ConfigDataError(key, f"missing; expected {describe(tp)}")
    if kind in _BOUNDS:
        return ConfigDataError(key, _range_problem(tp, error))
    if kind == "finite_number":
        return ConfigDataError(key, f"expected a finite number, got {error['input']!r}")
    if kind in ("too_short", "string_too_short"):
        wanted = "a non-empty string" if isinstance(error["input"], str) else (
            f"at least {error['ctx']['min_length']} item(s)")
        return ConfigDataError(key, f"expected {wanted}, got {error['input']!r}")
    if kind in ("value_error", "assertion_error"):
        # A validator's reason, as it wrote it.
        return ConfigDataError(key, str(error["ctx"]["error"]))
    return ConfigDataError(key, f"expected {describe(tp)}, got {value!r}")
