"""Serving-contract validation: the contract of a SavedModel, the rules for breaking changes,
a probe that loads the model in a fresh process, and the verdict the pusher needs.

Pure Python here (``contract``, ``validate``); TensorFlow only in the probe's own process and
TFX only in ``component``.
"""

from components.serving.contract import (
    CONTRACT_FILE,
    Contract,
    ContractError,
    SignatureSpec,
    TensorSpec,
    compare_contracts,
    compatible_changes,
    read_contract_file,
    write_contract_file,
)
from components.signature.validate import ProbeError, Verdict, probe_model, validate_signature

__all__ = [
    "CONTRACT_FILE",
    "Contract",
    "ContractError",
    "ProbeError",
    "SignatureSpec",
    "TensorSpec",
    "Verdict",
    "compare_contracts",
    "compatible_changes",
    "probe_model",
    "read_contract_file",
    "validate_signature",
    "write_contract_file",
]
