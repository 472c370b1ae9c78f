"""components/typed_config.py: pydantic's checks, reported as one line a person can act on.

The messages of the pipeline configuration are pinned in test_config.py; these are the cases
where the typed sections say more than a type name: inside optional sections, unions, mapping
keys, several problems in one file, YAML 1.2 floats, and plain data that is not a config file.
"""

from __future__ import annotations

import textwrap
from typing import Annotated

import pytest
from pydantic import AfterValidator, Field

from components.typed_config import ConfigDataError, ConfigModel, describe, parse
from pipeline.config import ConfigError, load_config


def error_of(tmp_path, text: str) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(config_file=str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


def test_a_problem_inside_an_optional_section_names_the_full_key(tmp_path):
    text = "validation: {contract: {signatures: {s: {inputs: {x: {dtype: 1}}}}}}\n"
    assert error_of(tmp_path, text) == (
        "validation.contract.signatures.s.inputs.x.dtype: expected a string, got 1"
    )
    text = "validation: {contract: {signatures: {s: {inputs: {x: {shapee: [1]}}}}}}\n"
    assert error_of(tmp_path, text) == (
        "validation.contract.signatures.s.inputs.x.shapee: unknown key "
        "(did you mean 'shape'?); expected one of: dtype, shape"
    )
    assert error_of(tmp_path, "validation: {allow_breaking_change: {reasn: x}}\n") == (
        "validation.allow_breaking_change.reasn: unknown key (did you mean 'reason'?); "
        "expected one of: reason"
    )


def test_an_item_of_an_optional_list_is_named_with_its_index(tmp_path):
    assert error_of(tmp_path, "model: {features: [island, 3]}\n") == (
        "model.features[1]: expected a string, got 3"
    )
    text = "validation: {contract: {signatures: {s: {inputs: {x: {shape: [1, x]}}}}}}\n"
    assert error_of(tmp_path, text) == (
        "validation.contract.signatures.s.inputs.x.shape[1]: expected an integer or null, "
        "got 'x'"
    )


def test_a_union_value_names_every_choice_and_the_value_as_written(tmp_path):
    assert error_of(tmp_path, "pusher: {batching: {max_batch_size: [1, x]}}\n") == (
        "pusher.batching.max_batch_size: expected an integer or true/false or a list of an "
        "integer, got [1, 'x']"
    )


def test_a_mapping_key_of_the_wrong_type(tmp_path):
    assert error_of(tmp_path, "data: {splits: {folders: {1: x}}}\n") == (
        "data.splits.folders: key 1: expected a string"
    )


def test_of_several_problems_the_first_in_the_file_is_reported(tmp_path):
    # pydantic lists errors in field order (seed after batch_size); the file's order wins.
    assert error_of(tmp_path, "trainer: {seed: x, bach_size: 3}\n").startswith(
        "trainer.seed: expected an integer, got 'x'"
    )
    assert error_of(tmp_path, "trainer: {bach_size: 3, seed: x}\n").startswith(
        "trainer.bach_size: unknown key (did you mean 'batch_size'?)"
    )


@pytest.mark.parametrize("written, value", [
    ("1e-3", 0.001), ("1E3", 1000.0), ("1.5e3", 1500.0), ("+2e-1", 0.2), (".5e-2", 0.005),
    ("1.0e-3", 0.001), ("2", 2.0),
])
def test_yaml_1_2_floats_are_numbers(tmp_path, written, value):
    path = tmp_path / "overlay.yaml"
    path.write_text(f"trainer: {{learning_rate: {written}}}\n")
    learning_rate = load_config(config_file=str(path)).trainer.learning_rate
    assert learning_rate == value and isinstance(learning_rate, float)


def test_a_quoted_number_is_a_string(tmp_path):
    # Strict, as for integers: a quoted value is text, whatever it looks like.
    assert error_of(tmp_path, "trainer: {learning_rate: '1e-3'}\n") == (
        "trainer.learning_rate: expected a number, got '1e-3'"
    )
    assert error_of(tmp_path, "trainer: {batch_size: '8'}\n") == (
        "trainer.batch_size: expected an integer, got '8'"
    )


class Inner(ConfigModel):
    size: int = 1


class Outer(ConfigModel):
    name: str
    inner: Inner = Inner()
    tags: dict[str, list[int]] = {}


def test_parse_builds_nested_sections_with_defaults():
    built = parse(Outer, {"name": "x", "tags": {"a": [1, 2]}})
    assert built == Outer(name="x", inner=Inner(size=1), tags={"a": [1, 2]})
    assert built.model_dump() == {"name": "x", "inner": {"size": 1}, "tags": {"a": [1, 2]}}


@pytest.mark.parametrize("data, key, problem", [
    ({}, "name", "missing; expected a string"),
    ([1], "", "expected a mapping, got [1]"),
    ({"name": "x", "inner": {"size": "2"}}, "inner.size", "expected an integer, got '2'"),
    ({"name": "x", "inner": {"sise": 2}}, "inner.sise",
     "unknown key (did you mean 'size'?); expected one of: size"),
    ({"name": "x", "tags": {"a": [1, None]}}, "tags.a[1]", "expected an integer, got None"),
])
def test_parse_errors_carry_the_dotted_key(data, key, problem):
    with pytest.raises(ConfigDataError) as info:
        parse(Outer, data)
    assert (info.value.key, info.value.problem) == (key, problem)
    assert str(info.value) == (f"{key}: {problem}" if key else problem)


def test_describe_reads_like_yaml():
    assert describe(dict[str, list[int | None]]) == (
        "a mapping of a string to a list of an integer or null"
    )
    assert describe(Inner) == "a mapping"


class Ranged(ConfigModel):
    count: int = Field(default=1, gt=0)
    offset: int = Field(default=0, ge=0)
    rate: float | None = Field(default=None, gt=0)
    widths: list[Annotated[int, Field(ge=2)]] = []
    names: list[str] = Field(default_factory=lambda: ["a"], min_length=1)
    label: str = Field(default="x", min_length=1)
    by_name: dict[str, Annotated[float, Field(le=1)]] = {}
    even: Annotated[int, AfterValidator(lambda v: v if v % 2 == 0 else _odd(v))] = 0


def _odd(value: int) -> int:
    raise ValueError(f"{value} is odd; the pairs would not match")


@pytest.mark.parametrize("data, key, problem", [
    ({"count": 0}, "count", "expected a positive integer, got 0"),
    ({"offset": -1}, "offset", "expected an integer >= 0, got -1"),
    ({"rate": 0}, "rate", "expected > 0 or null, got 0"),
    ({"rate": float("nan")}, "rate", "expected a finite number, got nan"),
    ({"widths": [2, 1]}, "widths[1]", "expected an integer >= 2, got 1"),
    ({"names": []}, "names", "expected at least 1 item(s), got []"),
    ({"label": ""}, "label", "expected a non-empty string, got ''"),
    ({"by_name": {"a": 1.5}}, "by_name.a", "expected <= 1, got 1.5"),
    ({"even": 3}, "even", "3 is odd; the pairs would not match"),
    # A type error still names the type, not the range.
    ({"count": "2"}, "count", "expected an integer, got '2'"),
])
def test_a_value_out_of_its_range_names_the_range_and_the_value(data, key, problem):
    with pytest.raises(ConfigDataError) as info:
        parse(Ranged, data)
    assert (info.value.key, info.value.problem) == (key, problem)
