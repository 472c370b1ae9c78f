"""``batching_parameters.txt``: TF Serving's BatchingParameters, from a dict of settings.

TF Serving reads it with ``--enable_batching --batching_parameters_file=<file>``. The message is
``tensorflow.serving.BatchingParameters`` (session_bundle_config.proto), whose scalar fields are
``google.protobuf`` wrappers, hence ``max_batch_size { value: 128 }``. tensorflow-serving-api does
not ship that proto, so ``BatchingParameters`` below is built from a descriptor of the fields
used here, with their numbers in session_bundle_config.proto, to parse the file back in checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

from components.serving.files import write_atomically
from components.serving.versions import ServingDir

__all__ = [
    "BATCHING_FILE",
    "BatchingParametersError",
    "batching_parameters_message",
    "batching_parameters_text",
    "parse_batching_parameters",
    "write_batching_parameters",
]

BATCHING_FILE = "batching_parameters.txt"

# name -> (field number in session_bundle_config.proto, smallest allowed value). Order = output.
_INT64_FIELDS = {
    "max_batch_size": (1, 1),
    "batch_timeout_micros": (2, 0),  # 0: form a batch as soon as a thread is free
    "max_enqueued_batches": (3, 1),
    "num_batch_threads": (4, 1),
}
_ALLOWED_SIZES = ("allowed_batch_sizes", 6)
_PAD = ("pad_variable_length_inputs", 7)
KNOWN_SETTINGS = (*_INT64_FIELDS, _ALLOWED_SIZES[0], _PAD[0])


class BatchingParametersError(ValueError):
    """A batching setting breaks TF Serving's rules; the message names the field."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(settings: Mapping[str, Any]) -> None:
    for key in settings:
        if key not in KNOWN_SETTINGS:
            raise BatchingParametersError(
                f"batching parameters: unknown setting {key!r}; known: {', '.join(KNOWN_SETTINGS)}"
            )
    for key, (_, lowest) in _INT64_FIELDS.items():
        if key in settings:
            value = settings[key]
            if not _is_int(value) or value < lowest:
                raise BatchingParametersError(
                    f"batching parameters: {key}: expected an integer >= {lowest}, got {value!r}"
                )
    pad = settings.get(_PAD[0], False)
    if not isinstance(pad, bool):
        raise BatchingParametersError(
            f"batching parameters: {_PAD[0]}: expected true or false, got {pad!r}"
        )
    sizes = settings.get(_ALLOWED_SIZES[0])
    if sizes is None:
        return
    key = _ALLOWED_SIZES[0]
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise BatchingParametersError(
            f"batching parameters: {key}: expected a non-empty list of sizes"
        )
    for i, size in enumerate(sizes):
        if not _is_int(size) or size < 1:
            raise BatchingParametersError(
                f"batching parameters: {key}[{i}]: expected a positive integer, got {size!r}"
            )
        if i and size <= sizes[i - 1]:
            raise BatchingParametersError(
                f"batching parameters: {key}: sizes must be strictly increasing, "
                f"got {sizes[i - 1]} then {size}"
            )
    # TF Serving's rule: the final entry must equal max_batch_size. Its default differs between
    # servers, so it must be given explicitly for the rule to be checkable.
    if "max_batch_size" not in settings:
        raise BatchingParametersError(
            f"batching parameters: {key}: set max_batch_size too (the last allowed size must "
            "equal it)"
        )
    if sizes[-1] != settings["max_batch_size"]:
        raise BatchingParametersError(
            f"batching parameters: {key}: the last size ({sizes[-1]}) must equal "
            f"max_batch_size ({settings['max_batch_size']})"
        )


def batching_parameters_text(settings: Mapping[str, Any]) -> str:
    """BatchingParameters text for ``settings``.

    Args:
        settings: any of ``max_batch_size``, ``batch_timeout_micros``, ``num_batch_threads``,
            ``max_enqueued_batches`` (integers), ``pad_variable_length_inputs`` (bool),
            ``allowed_batch_sizes`` (list of integers). Missing ones keep TF Serving's defaults.

    Raises:
        BatchingParametersError: an unknown setting, a wrong type, a value out of range,
            ``allowed_batch_sizes`` not strictly increasing, not positive or not ending at
            ``max_batch_size``. The message names the field.
    """
    _validate(settings)
    lines = [f"{key} {{ value: {settings[key]} }}" for key in _INT64_FIELDS if key in settings]
    lines += [f"{_ALLOWED_SIZES[0]}: {size}" for size in settings.get(_ALLOWED_SIZES[0], ())]
    if _PAD[0] in settings:
        lines.append(f"{_PAD[0]}: {'true' if settings[_PAD[0]] else 'false'}")
    return "".join(line + "\n" for line in lines)


def write_batching_parameters(base_path: str, settings: Mapping[str, Any]) -> str:
    """Validate ``settings`` and write ``<base>/batching_parameters.txt`` atomically, under the
    base path's lock.

    Returns:
        The path written.

    Raises:
        BatchingParametersError: as ``batching_parameters_text``; nothing is written.
    """
    text = batching_parameters_text(settings)
    serving = ServingDir(base_path)
    path = os.path.join(serving.base_path, BATCHING_FILE)
    with serving.lock():
        write_atomically(path, text.encode())
    return path


_message_class: type | None = None


def batching_parameters_message() -> type:
    """The ``tensorflow.serving.BatchingParameters`` message class (the fields used here)."""
    global _message_class
    if _message_class is None:
        pool = descriptor_pool.DescriptorPool()
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
        proto = descriptor_pb2.FileDescriptorProto(
            name="release/batching_parameters.proto",
            package="tensorflow.serving",
            syntax="proto3",
            dependency=["google/protobuf/wrappers.proto"],
        )
        message = proto.message_type.add(name="BatchingParameters")
        field = descriptor_pb2.FieldDescriptorProto
        for name, (number, _) in _INT64_FIELDS.items():
            message.field.add(
                name=name, number=number, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                type_name=".google.protobuf.Int64Value",
            )
        message.field.add(
            name=_ALLOWED_SIZES[0], number=_ALLOWED_SIZES[1], label=field.LABEL_REPEATED,
            type=field.TYPE_INT64,
        )
        message.field.add(
            name=_PAD[0], number=_PAD[1], label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL
        )
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
        _message_class = message_factory.MessageFactory(pool).GetPrototype(descriptor)
    return _message_class


def parse_batching_parameters(text: str) -> Any:
    """Parse BatchingParameters text into a message (as TF Serving's text parser would).

    Raises:
        google.protobuf.text_format.ParseError: not BatchingParameters text.
    """
    return text_format.Parse(text, batching_parameters_message()())
