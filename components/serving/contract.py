"""The serving contract of a SavedModel and the rules that say which changes break clients.

A contract lists the signatures a server exposes and, for each, its input and output keys with
dtype and shape, as TensorFlow Serving reports them (``GetModelMetadata``). It is plain data:
``Contract.to_json()`` / ``Contract.from_json()`` round-trip through JSON.

Breaking changes (``compare_contracts``), from the point of view of a client written against
the expected contract:

- a signature removed; an input or output key removed (a rename is a removal plus an addition);
- an input key added: every input of a TF signature is required, so old requests lack it;
- a dtype changed, of an input or an output;
- a rank changed (unknown rank, ``shape: null``, is compatible with any shape);
- a dimension changed. ``None`` is a dimension of any size. Inputs may only *accept more*:
  a fixed size may become ``None`` (or stay), but ``None`` may not become fixed and a fixed size
  may not change. Outputs may only *promise more*: ``None`` may become fixed (or stay), but a
  fixed size may not become ``None`` or change (a client may rely on, say, 3 classes).

Additions that old clients do not see (a new signature, a new output key) are compatible and
listed by ``compatible_changes``.

The contract of a base path is kept in ``<base_path>/contract.json`` (``read_contract_file``,
``write_contract_file``): written atomically under the base path's lock when the first model is
released there, and replaced when a breaking change is released with an explicit reason.
Pure standard library.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import Any

from components.serving.versions import ServingDir, write_atomically

__all__ = [
    "CONTRACT_FILE",
    "Contract",
    "ContractError",
    "SignatureSpec",
    "TensorSpec",
    "compare_contracts",
    "compatible_changes",
    "read_contract_file",
    "write_contract_file",
]

CONTRACT_FILE = "contract.json"

Shape = tuple[int | None, ...] | None


class ContractError(ValueError):
    """A contract (from config or a file) is malformed; the message names the key."""


@dataclass(frozen=True)
class TensorSpec:
    """dtype (TensorFlow's name: ``float32``, ``int64``, ``string``) and shape (None: any rank;
    a None dimension: any size)."""

    dtype: str
    shape: Shape

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype}[?]"
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class SignatureSpec:
    inputs: dict[str, TensorSpec] = field(default_factory=dict)
    outputs: dict[str, TensorSpec] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": {k: v.to_json() for k, v in sorted(self.inputs.items())},
            "outputs": {k: v.to_json() for k, v in sorted(self.outputs.items())},
        }


@dataclass(frozen=True)
class Contract:
    """Signature name -> its inputs and outputs."""

    signatures: dict[str, SignatureSpec] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"signatures": {k: v.to_json() for k, v in sorted(self.signatures.items())}}

    @classmethod
    def from_json(cls, data: Any, where: str = "contract") -> Contract:
        """Parse ``{"signatures": {name: {"inputs": {key: {"dtype", "shape"}}, "outputs": ...}}}``.

        Raises:
            ContractError: naming the key at fault (prefixed with ``where``).
        """
        sigs = _mapping(data, where).get("signatures")
        signatures = {}
        for name, sig in _mapping(sigs, f"{where}.signatures").items():
            at = f"{where}.signatures.{name}"
            sig = _mapping(sig, at)
            unknown = set(sig) - {"inputs", "outputs"}
            if unknown:
                raise ContractError(f"{at}: unknown key(s) {sorted(unknown)}; expected inputs, "
                                    "outputs")
            signatures[str(name)] = SignatureSpec(
                inputs=_tensors(sig.get("inputs", {}), f"{at}.inputs"),
                outputs=_tensors(sig.get("outputs", {}), f"{at}.outputs"),
            )
        if not signatures:
            raise ContractError(f"{where}.signatures: expected at least one signature")
        return cls(signatures)


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: expected a mapping, got {value!r}")
    return value


def _tensors(value: Any, where: str) -> dict[str, TensorSpec]:
    out = {}
    for key, spec in _mapping(value, where).items():
        at = f"{where}.{key}"
        spec = _mapping(spec, at)
        dtype = spec.get("dtype")
        if not isinstance(dtype, str) or not dtype:
            raise ContractError(f"{at}.dtype: expected a dtype name such as float32, got "
                                f"{dtype!r}")
        shape = spec.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                for d in shape
            ):
                raise ContractError(
                    f"{at}.shape: expected a list of sizes (null for any size), or null for any "
                    f"rank, got {shape!r}"
                )
            shape = tuple(shape)
        out[str(key)] = TensorSpec(dtype, shape)
    return out


# --- comparison ------------------------------------------------------------------------------


def _dims_compatible(expected: int | None, actual: int | None, direction: str) -> bool:
    if direction == "input":  # the new model must accept whatever the old one accepted
        return actual is None or actual == expected
    return expected is None or actual == expected  # the new model must promise as much


def _tensor_changes(where: str, expected: TensorSpec, actual: TensorSpec,
                    direction: str) -> list[str]:
    changes = []
    if expected.dtype != actual.dtype:
        changes.append(f"{where}: dtype changed from {expected.dtype} to {actual.dtype}")
    if expected.shape is None or actual.shape is None:
        return changes
    if len(expected.shape) != len(actual.shape):
        changes.append(f"{where}: rank changed from {expected.describe()} to "
                       f"{actual.describe()}")
    elif not all(_dims_compatible(e, a, direction)
                 for e, a in zip(expected.shape, actual.shape, strict=True)):
        changes.append(f"{where}: shape changed from {expected.describe()} to "
                       f"{actual.describe()}")
    return changes


def _renamed_hint(removed: dict[str, TensorSpec], added: dict[str, TensorSpec]) -> str:
    if len(removed) == 1 and len(added) == 1:
        [old_spec] = removed.values()
        [(new, new_spec)] = added.items()
        if old_spec == new_spec:
            return f" (renamed to {new!r}?)"
    return ""


def compare_contracts(expected: Contract, actual: Contract) -> list[str]:
    """The changes from ``expected`` to ``actual`` that break a client of ``expected``.

    Returns:
        One line per breaking change, naming the signature, direction and key, e.g.
        ``"predict_raw: input 'island' removed"``; empty when ``actual`` is compatible.
    """
    lines = []
    for name, exp in sorted(expected.signatures.items()):
        act = actual.signatures.get(name)
        if act is None:
            lines.append(f"signature {name!r} removed")
            continue
        for direction, exp_t, act_t in (("input", exp.inputs, act.inputs),
                                        ("output", exp.outputs, act.outputs)):
            removed = {k: v for k, v in exp_t.items() if k not in act_t}
            added = {k: v for k, v in act_t.items() if k not in exp_t}
            hint = _renamed_hint(removed, added)
            for key, spec in sorted(removed.items()):
                lines.append(f"{name}: {direction} {key!r} {spec.describe()} removed{hint}")
            if direction == "input":
                for key, spec in sorted(added.items()):
                    lines.append(f"{name}: input {key!r} {spec.describe()} added (required by "
                                 "the new model, absent from existing requests)")
            for key in sorted(set(exp_t) & set(act_t)):
                lines += _tensor_changes(f"{name}: {direction} {key!r}", exp_t[key],
                                         act_t[key], direction)
    return lines


def compatible_changes(expected: Contract, actual: Contract) -> list[str]:
    """Additions that existing clients do not notice: new signatures and new output keys."""
    lines = [f"signature {n!r} added" for n in sorted(set(actual.signatures)
                                                      - set(expected.signatures))]
    for name in sorted(set(expected.signatures) & set(actual.signatures)):
        exp, act = expected.signatures[name], actual.signatures[name]
        lines += [f"{name}: output {k!r} added" for k in sorted(set(act.outputs)
                                                                - set(exp.outputs))]
    return lines


# --- the contract kept in a base path --------------------------------------------------------


def read_contract_file(base_path: str) -> tuple[Contract, dict[str, Any]] | None:
    """The contract kept in ``<base_path>/contract.json`` and its provenance, or None.

    Returns:
        (contract, {"version", "set_at", "reason"}) or None when there is no file.

    Raises:
        ContractError: the file is unreadable or malformed (naming it).
    """
    path = os.path.join(base_path, CONTRACT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ContractError(f"{path}: unreadable ({e})") from e
    contract = Contract.from_json(_mapping(data, path).get("contract"), f"{path}: contract")
    return contract, {k: data.get(k) for k in ("version", "set_at", "reason")}


def write_contract_file(
    base_path: str,
    contract: Contract,
    version: int,
    reason: str = "",
    *,
    replace: bool = False,
) -> bool:
    """Keep ``contract`` as the base path's contract, set by release ``version``.

    Under the base path's lock; the file is written atomically (temporary name, fsync, rename).

    Args:
        replace: overwrite an existing contract (a breaking change released with ``reason``);
            otherwise an existing contract is left alone.

    Returns:
        True when the file was written.
    """
    serving = ServingDir(base_path)
    with serving.lock():
        path = os.path.join(serving.base_path, CONTRACT_FILE)
        if os.path.exists(path) and not replace:
            return False
        data = {
            "version": version,
            "set_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "reason": reason,
            "contract": contract.to_json(),
        }
        write_atomically(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return True
