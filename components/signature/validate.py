"""The signature verdict: may this model replace what clients call today?

``validate_signature`` probes the candidate in a fresh process (``components.signature.probe``),
then compares its contract with

1. the contract: from config if given, else the one in force in the base path
   (``components.serving.read_contract``; none before the first release, which sets it), and
2. the version labelled ``stable`` in the base path (``components.serving.stable_version``),
   whose contract is read by the same probe, in another fresh process.

The verdict is blessed when the probe found no problem (the model loads, ``serving_default``
answers real evaluation examples with finite outputs of the declared shapes) and there is no
breaking change, or the breaking changes are explicitly allowed with a reason. Problems are
never waived: a reason allows a changed contract, not a broken model. The rules for breaking
changes are in ``compatibility``. No TensorFlow here; the base path is read only through
``components.serving``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.serving import (
    CONTRACT_FILE,
    Contract,
    ContractError,
    ReleaseError,
    read_contract,
    stable_version,
)
from components.signature.compatibility import compare_contracts, compatible_changes

__all__ = [
    "REPORT_FILE",
    "ProbeError",
    "Verdict",
    "probe_model",
    "read_verdict",
    "validate_signature",
    "write_verdict",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_SECONDS = 600.0
REPORT_FILE = "report.json"  # in the verdict artifact's directory


class ProbeError(RuntimeError):
    """The probe process failed or printed no report; the message has its last words."""


@dataclass
class Verdict:
    """Blessed or not, why, and the whole report (written as ``report.json``)."""

    blessed: bool
    reasons: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed_breaking_reason(self) -> str:
        """Why breaking changes were let through ("" when none were)."""
        allowed = self.report.get("allowed_breaking_change") or {}
        return allowed.get("reason", "")

    @property
    def contract(self) -> Contract | None:
        """The candidate's contract, as the probe read it (None if it could not be read).

        Raises:
            ContractError: the report holds a malformed contract.
        """
        data = (self.report.get("candidate") or {}).get("contract")
        return Contract.from_json(data, "verdict") if data else None


def write_verdict(directory: str, verdict: Verdict) -> None:
    """Write the verdict's report as ``<directory>/report.json``."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, REPORT_FILE), "w") as f:
        json.dump(verdict.report, f, indent=2, sort_keys=True)


def read_verdict(directory: str) -> Verdict:
    """The verdict whose report is in ``<directory>/report.json``.

    A missing or unreadable report gives an unblessed verdict with an empty report (no
    contract, no allowed breaking change): the pusher checks the blessing on the artifact.
    """
    try:
        with open(os.path.join(directory, REPORT_FILE)) as f:
            report = json.load(f)
    except (OSError, ValueError):
        report = {}
    if not isinstance(report, dict):
        report = {}
    return Verdict(bool(report.get("blessed")), list(report.get("reasons") or []), report)


def probe_model(model_dir: str, examples_glob: str = "", sample_size: int = 0, *,
                timeout: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Run ``python -m components.signature.probe`` on ``model_dir`` in a new process.

    Returns:
        The probe's report (see ``components.signature.probe``).

    Raises:
        ProbeError: the process crashed, timed out or printed no JSON report.
    """
    from components.tf_process import LOG_LEVEL_ERRORS, tf_child_env

    env = tf_child_env(log_level=LOG_LEVEL_ERRORS)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    cmd = [sys.executable, "-m", "components.signature.probe", model_dir, examples_glob,
           str(sample_size)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO_ROOT))
    except subprocess.TimeoutExpired as e:
        raise ProbeError(f"probe of {model_dir} did not finish in {timeout:.0f} s") from e
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            report = json.loads(lines[-1])
        except ValueError:
            report = None
        if isinstance(report, dict):
            return report
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise ProbeError(f"probe of {model_dir} failed (exit {proc.returncode}): {tail}")


def validate_signature(
    model_dir: str,
    examples_glob: str,
    base_path: str,
    *,
    contract: Contract | None = None,
    allow_breaking_reason: str = "",
    sample_size: int = 64,
    probe: Callable[..., dict[str, Any]] = probe_model,
) -> Verdict:
    """Probe the candidate and compare it with the contract and with the stable version.

    Args:
        model_dir: the candidate SavedModel.
        examples_glob: GZIP TFRecord files of evaluation examples.
        base_path: the serving base path (for ``contract.json`` and the ``stable`` label).
        contract: the contract from config; None to use the base path's.
        allow_breaking_reason: non-empty to let breaking changes through, recorded as given.
        sample_size: evaluation examples fed to ``serving_default``.
        probe: ``probe_model`` (tests may pass another).

    Returns:
        The verdict; never raises for a bad model: every failure becomes a reason.
    """
    reasons: list[str] = []
    breaking: list[str] = []
    report: dict[str, Any] = {"model_dir": model_dir, "base_path": base_path}
    try:
        candidate = probe(model_dir, examples_glob, sample_size)
    except ProbeError as e:
        candidate = {"problems": [str(e)], "contract": None}
    report["candidate"] = candidate
    for key in ("load_seconds", "import_seconds", "first_call_ms"):
        report[key] = candidate.get(key)
    latency = candidate.get("latency") or {}
    report["p50_ms"], report["p99_ms"] = latency.get("p50_ms"), latency.get("p99_ms")
    reasons += candidate.get("problems", [])
    actual = Contract.from_json(candidate["contract"], "probe") if candidate.get(
        "contract") else None

    source, expected = "config", contract
    if expected is None:
        try:
            kept = read_contract(base_path)
        except ContractError as e:
            kept, reasons = None, [*reasons, f"the base path's contract is unusable: {e}"]
        source = "none (the first release sets it)" if kept is None else (
            f"{os.path.join(base_path, CONTRACT_FILE)} (set by version {kept.version})"
        )
        expected = kept.contract if kept else None
    report["contract_source"] = source
    report["contract_diff"] = {"breaking": [], "compatible": []}
    if expected is not None and actual is not None:
        diff = compare_contracts(expected, actual)
        report["contract_diff"] = {"breaking": diff,
                                   "compatible": compatible_changes(expected, actual)}
        breaking += [f"breaking change against the contract: {line}" for line in diff]

    report["stable"] = None
    try:
        stable = stable_version(base_path)
    except ReleaseError as e:  # a malformed labels.json
        stable = None
        breaking.append(f"cannot read the stable label of {base_path}: {e}")
    if stable is not None and actual is not None:
        stable_dir = os.path.join(base_path, str(stable))
        try:
            stable_report = probe(stable_dir, "", 0)
            if not stable_report.get("contract"):
                raise ProbeError("; ".join(stable_report.get("problems", [])) or "no contract")
            stable_contract = Contract.from_json(stable_report["contract"], "stable probe")
            diff = compare_contracts(stable_contract, actual)
            report["stable"] = {"version": stable, "breaking": diff,
                                "compatible": compatible_changes(stable_contract, actual)}
            breaking += [f"breaking change against stable version {stable}: {line}"
                         for line in diff]
        except (ProbeError, ContractError) as e:
            report["stable"] = {"version": stable, "error": str(e)}
            breaking.append(f"cannot read the contract of stable version {stable}: {e}")

    report["breaking_changes"] = breaking
    report["allowed_breaking_change"] = None
    if breaking and allow_breaking_reason:
        report["allowed_breaking_change"] = {"reason": allow_breaking_reason,
                                             "changes": breaking}
    else:
        reasons += breaking
    report["blessed"] = not reasons
    report["reasons"] = reasons
    return Verdict(not reasons, reasons, report)
