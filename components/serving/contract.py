"""The serving contract of a model, and the copy of it kept in a base path (``contract.json``).

A contract lists the signatures a server exposes and, for each, its input and output keys with
dtype and shape, as TensorFlow Serving reports them (``GetModelMetadata``). It is plain data:
``Contract.to_json()`` / ``Contract.from_json()`` round-trip through JSON. Which changes of a
contract break clients is the signature validator's business
(``components.signature.compatibility``).

``<base_path>/contract.json`` holds the contract the next candidate is validated against::

    {"version": N, "set_at": ISO time, "reason": "...", "contract": {...},
     "previous": {"version", "set_at", "reason", "contract"} or null}

It is written only by ``release_version``, in the same locked operation as the release that
sets it (``keep_contract``): the first release that brings a contract, or a release whose
breaking change was allowed with a reason (``reason``). It is written after the push and before
any label moves, so no label ever points at a version whose contract is not kept; the release
record comes last. A contract is **in force once its release is recorded**: if a release dies
after writing ``contract.json`` and before its record, ``read_contract`` returns the contract it
replaced (kept as ``previous``), or None when there was none; releasing the same model again
completes the release and puts its contract in force. Pure standard library.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from components.serving.files import fsync_path, read_json, write_json
from components.serving.records import record_path

__all__ = [
    "CONTRACT_FILE",
    "Contract",
    "ContractError",
    "KeptContract",
    "SignatureSpec",
    "TensorSpec",
    "keep_contract",
    "read_contract",
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


# --- the contract kept in a base path --------------------------------------------------------


@dataclass(frozen=True)
class KeptContract:
    """A contract kept in ``contract.json`` and where it came from.

    Attributes:
        contract: the contract.
        version: the release (version number) that set it.
        set_at: when, UTC ISO 8601.
        reason: why a breaking change was allowed ("" for a first release).
        path: the ``contract.json`` it was read from.
    """

    contract: Contract
    version: int
    set_at: str
    reason: str
    path: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "set_at": self.set_at, "reason": self.reason,
                "contract": self.contract.to_json()}


def _contract_path(base_path: str) -> str:
    return os.path.join(os.path.abspath(base_path), CONTRACT_FILE)


def _entry(data: Any, path: str, prefix: str) -> KeptContract:
    """One entry of ``contract.json``; ``prefix`` ("" or "previous.") names where in the file."""
    data = _mapping(data, f"{path}: {prefix or '<top>'}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ContractError(f"{path}: {prefix}version: expected a version number, got "
                            f"{version!r}")
    return KeptContract(
        contract=Contract.from_json(data.get("contract"), f"{path}: {prefix}contract"),
        version=version,
        set_at=str(data.get("set_at") or ""),
        reason=str(data.get("reason") or ""),
        path=path,
    )


def _read_file(base_path: str) -> tuple[KeptContract, KeptContract | None] | None:
    """(the newest contract written, the one it replaced) or None when there is no file."""
    path = _contract_path(base_path)
    data = read_json(path, ContractError)
    if data is None:
        return None
    current = _entry(data, path, "")
    previous = data.get("previous")
    return current, None if previous is None else _entry(previous, path, "previous.")


def _in_force(base_path: str, kept: tuple[KeptContract, KeptContract | None] | None,
              ) -> KeptContract | None:
    if kept is None:
        return None
    current, previous = kept
    # A previous entry was in force when it was replaced, and records are never removed.
    return current if os.path.exists(record_path(base_path, current.version)) else previous


def read_contract(base_path: str) -> KeptContract | None:
    """The contract in force in ``base_path``: the newest one whose release is recorded.

    Takes no lock (the file is renamed into place complete).

    Returns:
        The contract and its provenance, or None before the first release that kept one.

    Raises:
        ContractError: ``contract.json`` is unreadable or malformed (naming it and the key).
    """
    base_path = os.path.abspath(base_path)
    return _in_force(base_path, _read_file(base_path))


def keep_contract(
    base_path: str,
    version: int,
    contract: Contract | None,
    *,
    breaking_change_reason: str = "",
    when: str,
) -> bool:
    """Bring ``contract.json`` to what the release of ``version`` needs, as the module says.

    Call under the base path's lock, after the push and before the release's labels and record.

    - no contract in force and ``contract`` given: keep it (a first release);
    - ``contract`` given with a ``breaking_change_reason``: it replaces the one in force, which
      is kept as ``previous`` until this release is recorded;
    - otherwise the contract in force stays. A newer one left by an interrupted release that
      is not in force is dropped, so that recording this release cannot put it in force.

    Args:
        base_path: the model base path.
        version: the version being released.
        contract: its serving contract (None: the caller has none to keep).
        breaking_change_reason: non-empty when a breaking change was allowed.
        when: the release time, recorded as ``set_at``.

    Returns:
        True when ``contract.json`` now holds ``contract`` as set by ``version``.

    Raises:
        ContractError: the existing file is unreadable or malformed; nothing is written.
    """
    base_path = os.path.abspath(base_path)
    path = _contract_path(base_path)
    kept = _read_file(base_path)
    in_force = _in_force(base_path, kept)
    if contract is not None and (in_force is None or breaking_change_reason):
        entry = KeptContract(contract, version, when, breaking_change_reason)
        previous = None if in_force is None else in_force.to_json()
        write_json(path, {**entry.to_json(), "previous": previous})
        return True
    if kept is not None and kept[0] != in_force:  # a leftover of an interrupted release
        if in_force is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            fsync_path(base_path)
        else:
            write_json(path, {**in_force.to_json(), "previous": None})
    return False
