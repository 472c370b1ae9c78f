"""TFX adapter of the signature validator: a verdict (ModelBlessing) with its reasons."""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing

from components.serving import Contract
from components.signature.validate import validate_signature, write_verdict


@component
def SignatureValidator(  # noqa: N802
    model: InputArtifact[Model],
    examples: InputArtifact[Examples],
    verdict: OutputArtifact[ModelBlessing],
    base_path: Parameter[str],
    contract_json: Parameter[str],
    allow_breaking_reason: Parameter[str],
    sample_size: Parameter[int],
    baseline_model: InputArtifact[Model] = None,
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Blesses `model` when it loads, answers real examples and keeps the serving contract.

    `baseline_model` is not read: the verdict depends on the `stable` version, and this input
    (the resolver's baseline, which is the stable model) re-runs the validator when it changes.
    `code_fingerprint` is not read either: it re-runs the validator when its code changes.
    """
    contract = Contract.from_json(json.loads(contract_json), "validation.contract") if (
        contract_json) else None
    result = validate_signature(
        os.path.join(model.uri, "Format-Serving"),
        os.path.join(examples.uri, "Split-eval", "*.gz"),
        base_path, contract=contract, allow_breaking_reason=allow_breaking_reason,
        sample_size=sample_size,
    )
    write_verdict(verdict.uri, result)
    for key in ("blessed", "signature_blessed"):
        verdict.set_int_custom_property(key, int(result.blessed))
    verdict.set_string_custom_property("reasons", json.dumps(result.reasons))
    verdict.set_string_custom_property("allowed_breaking_reason", result.allowed_breaking_reason)
    verdict.set_int_custom_property("model_id", model.id)
