"""Serving-contract validation: which contract changes break clients, a probe that loads the
model in a fresh process, and the verdict the pusher needs.

Pure Python here (``compatibility``, ``validate``); TensorFlow only in the probe's own process
and TFX only in ``component``. The contract's data types and the contract kept in a base path
belong to ``components.serving``.
"""

from components.signature.compatibility import compare_contracts, compatible_changes
from components.signature.validate import (
    REPORT_FILE,
    ProbeError,
    Verdict,
    probe_model,
    read_verdict,
    validate_signature,
    write_verdict,
)

__all__ = [
    "REPORT_FILE",
    "ProbeError",
    "Verdict",
    "compare_contracts",
    "compatible_changes",
    "probe_model",
    "read_verdict",
    "validate_signature",
    "write_verdict",
]
