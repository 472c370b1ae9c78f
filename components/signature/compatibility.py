"""Which changes of a serving contract break clients (``compare_contracts``) and which do not
(``compatible_changes``).

Breaking changes, from the point of view of a client written against the expected contract:

- a signature removed; an input or output key removed (a rename is a removal plus an addition);
- an input key added: every input of a TF signature is required, so old requests lack it;
- a dtype changed, of an input or an output;
- a rank changed (unknown rank, ``shape: null``, is compatible with any shape);
- a dimension changed. ``None`` is a dimension of any size. Inputs may only *accept more*:
  a fixed size may become ``None`` (or stay), but ``None`` may not become fixed and a fixed size
  may not change. Outputs may only *promise more*: ``None`` may become fixed (or stay), but a
  fixed size may not become ``None`` or change (a client may rely on, say, 3 classes).

Additions that old clients do not see (a new signature, a new output key) are compatible and
listed by ``compatible_changes``. The contract itself (data, JSON, the copy kept in a base path)
is ``components.serving.contract``'s. Pure standard library.
"""

from __future__ import annotations

from components.serving import Contract, TensorSpec

__all__ = ["compare_contracts", "compatible_changes"]


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
