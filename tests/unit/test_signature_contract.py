"""The serving contract: compare rules, JSON forms, and the verdict logic with a stand-in probe
(no TensorFlow). The contract kept with a release: ``test_release_contract.py``."""

from __future__ import annotations

import json

import pytest

from components.serving import (
    Contract,
    ContractError,
    ReleaseRequest,
    SignatureSpec,
    TensorSpec,
    release_version,
)
from components.signature.compatibility import compare_contracts, compatible_changes
from components.signature.validate import (
    ProbeError,
    Verdict,
    read_verdict,
    validate_signature,
    write_verdict,
)

FEATURES = {"bill_length_mm": "float32", "island": "string", "year": "int64"}


def contract(features=FEATURES, classes=3, serving_out=None) -> Contract:
    outputs = serving_out or {
        "probabilities": TensorSpec("float32", (None, classes)),
        "class_id": TensorSpec("int64", (None,)),
    }
    return Contract({
        "serving_default": SignatureSpec({"examples": TensorSpec("string", (None,))},
                                         dict(outputs)),
        "predict_raw": SignatureSpec({k: TensorSpec(v, (None,)) for k, v in features.items()},
                                     dict(outputs)),
    })


def with_tensor(c: Contract, sig: str, direction: str, key: str, spec: TensorSpec | None):
    data = c.to_json()
    table = data["signatures"][sig][direction]
    if spec is None:
        del table[key]
    else:
        table[key] = spec.to_json()
    return Contract.from_json(data)


# --- compare rules ---------------------------------------------------------------------------


def test_identical_contracts_have_no_changes():
    assert compare_contracts(contract(), contract()) == []
    assert compatible_changes(contract(), contract()) == []


def test_removed_input_is_breaking_and_named():
    no_island = {k: v for k, v in FEATURES.items() if k != "island"}
    assert compare_contracts(contract(), contract(no_island)) == [
        "predict_raw: input 'island' string[None] removed"
    ]


def test_added_input_is_breaking_because_every_input_is_required():
    more = {**FEATURES, "sex": "string"}
    [line] = compare_contracts(contract(), contract(more))
    assert line.startswith("predict_raw: input 'sex' string[None] added")


def test_renamed_input_is_reported_as_removed_with_a_hint_and_added():
    renamed = {"bill_length": "float32", "island": "string", "year": "int64"}
    lines = compare_contracts(contract(), contract(renamed))
    assert lines == [
        "predict_raw: input 'bill_length_mm' float32[None] removed (renamed to 'bill_length'?)",
        "predict_raw: input 'bill_length' float32[None] added (required by the new model, "
        "absent from existing requests)",
    ]


def test_removed_output_is_breaking_added_output_is_compatible():
    c = contract()
    fewer = with_tensor(c, "serving_default", "outputs", "class_id", None)
    assert compare_contracts(c, fewer) == ["serving_default: output 'class_id' int64[None] removed"]
    more = with_tensor(c, "serving_default", "outputs", "logits",
                       TensorSpec("float32", (None, 3)))
    assert compare_contracts(c, more) == []
    assert compatible_changes(c, more) == ["serving_default: output 'logits' added"]


def test_removed_signature_is_breaking_added_one_is_compatible():
    c = contract()
    only_default = Contract({"serving_default": c.signatures["serving_default"]})
    assert compare_contracts(c, only_default) == ["signature 'predict_raw' removed"]
    assert compare_contracts(only_default, c) == []
    assert compatible_changes(only_default, c) == ["signature 'predict_raw' added"]


@pytest.mark.parametrize("direction", ["inputs", "outputs"])
def test_changed_dtype_is_breaking_both_ways(direction):
    c = contract()
    key = "year" if direction == "inputs" else "class_id"
    changed = with_tensor(c, "predict_raw", direction, key, TensorSpec("int32", (None,)))
    [line] = compare_contracts(c, changed)
    assert line == f"predict_raw: {direction[:-1]} {key!r}: dtype changed from int64 to int32"


def test_changed_class_count_is_breaking():
    [line, line2] = compare_contracts(contract(classes=3), contract(classes=4))
    assert line == ("predict_raw: output 'probabilities': shape changed from float32[None, 3] "
                    "to float32[None, 4]")
    assert line2.startswith("serving_default: output 'probabilities'")


def test_changed_rank_is_breaking():
    c = contract()
    changed = with_tensor(c, "predict_raw", "inputs", "year", TensorSpec("int64", (None, 1)))
    assert compare_contracts(c, changed) == [
        "predict_raw: input 'year': rank changed from int64[None] to int64[None, 1]"
    ]


# None-dimension rules: inputs may accept more (fixed -> None), outputs may promise more
# (None -> fixed); the opposite directions break clients.
@pytest.mark.parametrize(
    ("direction", "before", "after", "breaks"),
    [
        ("inputs", (None, 4), (None, None), False),  # input accepts any width now
        ("inputs", (None, None), (None, 4), True),  # input now refuses other widths
        ("inputs", (None, 4), (None, 5), True),
        ("inputs", (None,), (8,), True),  # a fixed batch size refuses other batches
        ("outputs", (None, None), (None, 3), False),  # output promises a width now
        ("outputs", (None, 3), (None, None), True),  # clients relied on 3 columns
        ("outputs", (None, 3), (None, 3), False),
        ("outputs", (None, 3), None, False),  # unknown rank: compatible with anything
        ("inputs", None, (None, 2), False),
    ],
)
def test_none_dimension_rules(direction, before, after, breaks):
    base = contract()
    key = "x"
    c1 = with_tensor(base, "predict_raw", direction, key, TensorSpec("float32", before))
    c2 = with_tensor(base, "predict_raw", direction, key, TensorSpec("float32", after))
    assert bool(compare_contracts(c1, c2)) is breaks


# --- JSON forms ------------------------------------------------------------------------------


def test_contract_round_trips_through_json():
    c = contract()
    text = json.dumps(c.to_json())
    assert Contract.from_json(json.loads(text)) == c


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([], "contract: expected a mapping"),
        ({"signatures": {}}, "contract.signatures: expected at least one signature"),
        ({"signatures": {"s": {"inputz": {}}}}, "contract.signatures.s: unknown key"),
        ({"signatures": {"s": {"inputs": {"x": {"shape": [None]}}}}},
         "contract.signatures.s.inputs.x.dtype"),
        ({"signatures": {"s": {"inputs": {"x": {"dtype": "int64", "shape": [-1]}}}}},
         "contract.signatures.s.inputs.x.shape"),
        ({"signatures": {"s": {"inputs": {"x": {"dtype": "int64", "shape": "3"}}}}},
         "contract.signatures.s.inputs.x.shape"),
    ],
)
def test_malformed_contract_names_the_key(data, needle):
    with pytest.raises(ContractError) as info:
        Contract.from_json(data)
    assert needle in str(info.value)


# --- the verdict, with a stand-in probe ------------------------------------------------------


def fake_probe(contracts: dict[str, Contract], problems=()):
    calls = []

    def probe(model_dir, examples_glob, n):
        calls.append((model_dir, n))
        if model_dir not in contracts:
            raise ProbeError(f"probe of {model_dir} failed (exit 1): OSError: no such model")
        return {"contract": contracts[model_dir].to_json(), "problems": list(problems),
                "load_seconds": 0.5, "latency": {"p50_ms": 1.0, "p99_ms": 2.0}}

    probe.calls = calls
    return probe


def stable_base(tmp_path, version: int, stable: Contract):
    base = tmp_path / "serving"
    (base / str(version)).mkdir(parents=True)
    (base / "labels.json").write_text(json.dumps(
        {"model_name": "m", "labels": {"stable": version}, "stable_history": [version]}))
    return str(base), {str(base / str(version)): stable}


def test_first_release_is_blessed_with_no_contract_to_compare(tmp_path):
    probe = fake_probe({"cand": contract()})
    v = validate_signature("cand", "eval/*.gz", str(tmp_path / "none"), probe=probe)
    assert v.blessed and v.reasons == []
    assert v.report["contract_source"].startswith("none")
    assert v.report["p50_ms"] == 1.0 and v.report["p99_ms"] == 2.0
    assert probe.calls == [("cand", 64)]


def test_probe_problems_block_and_cannot_be_waived(tmp_path):
    probe = fake_probe({"cand": contract()}, problems=["serving_default: output 'p' has NaN"])
    v = validate_signature("cand", "g", str(tmp_path), probe=probe, allow_breaking_reason="x")
    assert not v.blessed and v.reasons == ["serving_default: output 'p' has NaN"]


def test_breaking_change_against_stable_blocks_then_a_reason_lets_it_through(tmp_path):
    no_island = contract({k: t for k, t in FEATURES.items() if k != "island"})
    base, known = stable_base(tmp_path, 3, contract())
    probe = fake_probe({"cand": no_island, **known})
    blocked = validate_signature("cand", "g", base, probe=probe)
    assert not blocked.blessed
    assert blocked.reasons == [
        "breaking change against stable version 3: predict_raw: input 'island' string[None] "
        "removed"
    ]
    assert blocked.report["stable"]["version"] == 3
    allowed = validate_signature("cand", "g", base, probe=probe,
                                 allow_breaking_reason="island is no longer collected")
    assert allowed.blessed and allowed.reasons == []
    assert allowed.allowed_breaking_reason == "island is no longer collected"
    assert allowed.report["allowed_breaking_change"]["changes"] == blocked.reasons


def test_config_contract_wins_over_the_kept_one(tmp_path):
    base = str(tmp_path / "serving")
    model = tmp_path / "released"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"a model")
    release_version(
        base, ReleaseRequest(model_dir=str(model), model_name="m", contract=contract(classes=4))
    )
    probe = fake_probe({"cand": contract()})
    kept = validate_signature("cand", "g", base, probe=probe)
    assert not kept.blessed and "set by version 1" in kept.report["contract_source"]
    assert "shape changed from float32[None, 4] to float32[None, 3]" in kept.reasons[0]
    configured = validate_signature("cand", "g", base, contract=contract(), probe=probe)
    assert configured.blessed and configured.report["contract_source"] == "config"


def test_unreadable_stable_version_fails_closed(tmp_path):
    base, _ = stable_base(tmp_path, 2, contract())
    v = validate_signature("cand", "g", base, probe=fake_probe({"cand": contract()}))
    assert not v.blessed
    assert v.reasons[0].startswith("cannot read the contract of stable version 2")


def test_candidate_that_does_not_load_is_not_blessed(tmp_path):
    v = validate_signature("missing", "g", str(tmp_path), probe=fake_probe({}))
    assert not v.blessed and "no such model" in v.reasons[0]


def test_verdict_report_round_trips_with_the_candidate_contract(tmp_path):
    probe = fake_probe({"cand": contract()})
    verdict = validate_signature("cand", "g", str(tmp_path / "none"), probe=probe,
                                 allow_breaking_reason="unused: nothing breaks")
    write_verdict(str(tmp_path / "verdict"), verdict)
    read = read_verdict(str(tmp_path / "verdict"))
    assert (read.blessed, read.reasons, read.report) == (True, [], verdict.report)
    assert read.contract == contract()
    assert read.allowed_breaking_reason == ""  # nothing broke, so nothing was allowed
    missing = read_verdict(str(tmp_path / "nowhere"))
    assert (missing.blessed, missing.contract, missing.allowed_breaking_reason) == (
        False, None, "")
    assert Verdict(True, report={"allowed_breaking_change": {"reason": "r"}}) \
        .allowed_breaking_reason == "r"
