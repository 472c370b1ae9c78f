"""Load a SavedModel as a server would, in a process of its own, and report on it as JSON.

    python -m components.signature.probe MODEL_DIR EXAMPLES_GLOB N

prints one JSON object on the last line of stdout:

    {"model_dir", "pid", "contract", "import_seconds", "load_seconds", "sample_size",
     "first_call_ms", "latency": {"batch_size", "repeats", "p50_ms", "p99_ms", "mean_ms"},
     "outputs": {key: {"shape", "dtype", "finite"}}, "problems": [...]}

With N = 0 (or an empty glob) only the contract is read: nothing is run. Otherwise the first N
records of the GZIP TFRecord files matching EXAMPLES_GLOB (serialized ``tf.Example``) are fed
as one batch to ``serving_default``; every declared output must come back with the declared
dtype and a shape compatible with the declared one (batch dimension N), and floating outputs
must be finite. The batch is then run ``REPEATS`` more times for the latency percentiles.
A problem (no examples, a failing call, a bad output) is reported in ``problems``, exit code 0;
a model that cannot be loaded also exits 0 with the problem, so that the caller gets a reason.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

# 100 calls: p99 is then the second slowest, not simply the maximum.
REPEATS = 100


def _contract_of(loaded) -> dict[str, Any]:
    """The contract (``Contract.to_json()`` form) of a loaded SavedModel's signatures."""

    def spec(t) -> dict[str, Any]:
        shape = None if t.shape.rank is None else list(t.shape.as_list())
        return {"dtype": t.dtype.name, "shape": shape}

    signatures = {}
    for name, fn in loaded.signatures.items():
        _, kwargs = fn.structured_input_signature
        outputs = fn.structured_outputs
        if not isinstance(outputs, dict):  # signatures always return a dict; be explicit
            outputs = {"output_0": outputs}
        signatures[name] = {
            "inputs": {k: spec(v) for k, v in sorted(kwargs.items())},
            "outputs": {k: spec(v) for k, v in sorted(outputs.items())},
        }
    return {"signatures": signatures}


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]


def _run_sample(tf, loaded, contract: dict[str, Any], pattern: str, n: int,
                report: dict[str, Any]) -> None:
    problems = report["problems"]
    sig_spec = contract["signatures"].get("serving_default")
    if sig_spec is None:
        problems.append("no serving_default signature")
        return
    string_inputs = [k for k, v in sig_spec["inputs"].items() if v["dtype"] == "string"]
    if len(sig_spec["inputs"]) != 1 or len(string_inputs) != 1:
        problems.append(
            "serving_default must take one string input (serialized tf.Example), takes "
            f"{sorted(sig_spec['inputs'])}"
        )
        return
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        problems.append(f"no evaluation examples match {pattern}")
        return
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(n).batch(n)
    records = next(iter(dataset), None)
    if records is None:
        problems.append(f"no evaluation examples in {pattern}")
        return
    batch = int(records.shape[0])
    report["sample_size"] = batch
    fn = loaded.signatures["serving_default"]
    feed = {string_inputs[0]: records}
    try:
        start = time.perf_counter()
        out = fn(**feed)
        report["first_call_ms"] = round((time.perf_counter() - start) * 1000, 3)
    except Exception as e:  # noqa: BLE001  (any failure of the model is a reason, not a crash)
        problems.append(f"serving_default failed on {batch} examples: {_first_line(e)}")
        return
    outputs = {}
    for key, declared in sorted(sig_spec["outputs"].items()):
        value = out.get(key)
        if value is None:
            problems.append(f"serving_default: declared output {key!r} missing from the result")
            continue
        shape = list(value.shape)
        finite = True
        if value.dtype.is_floating:
            finite = bool(tf.reduce_all(tf.math.is_finite(value)).numpy())
            if not finite:
                problems.append(f"serving_default: output {key!r} has NaN or infinite values "
                                f"on {batch} evaluation examples")
        outputs[key] = {"shape": shape, "dtype": value.dtype.name, "finite": finite}
        if value.dtype.name != declared["dtype"]:
            problems.append(f"serving_default: output {key!r} is {value.dtype.name}, declared "
                            f"{declared['dtype']}")
        want = declared["shape"]
        if want is not None and (
            len(want) != len(shape)
            or any(w is not None and w != s for w, s in zip(want, shape, strict=False))
            or (shape and shape[0] != batch)
        ):
            problems.append(f"serving_default: output {key!r} has shape {shape} for a batch of "
                            f"{batch}, declared {want}")
    report["outputs"] = outputs
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(**feed)
        times.append((time.perf_counter() - start) * 1000)
    report["latency"] = {
        "batch_size": batch,
        "repeats": REPEATS,
        "p50_ms": round(_percentile(times, 50), 3),
        "p99_ms": round(_percentile(times, 99), 3),
        "mean_ms": round(sum(times) / len(times), 3),
    }


def probe(model_dir: str, pattern: str, n: int) -> dict[str, Any]:
    """The report described in the module docstring. Imports TensorFlow: run it in a process
    of its own (``main``), as a server loads a model."""
    from components.tf_process import LOG_LEVEL_ERRORS, prepare_tf_process

    prepare_tf_process(log_level=LOG_LEVEL_ERRORS)  # before TensorFlow is imported
    report: dict[str, Any] = {"model_dir": model_dir, "contract": None, "problems": [],
                              "sample_size": 0, "outputs": {}, "latency": None,
                              "pid": os.getpid()}
    start = time.perf_counter()
    import tensorflow as tf

    report["import_seconds"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as e:  # noqa: BLE001
        report["problems"].append(f"cannot load the SavedModel in {model_dir}: {_first_line(e)}")
        return report
    report["load_seconds"] = round(time.perf_counter() - start, 3)
    contract = _contract_of(loaded)
    report["contract"] = contract
    if n > 0 and pattern:
        _run_sample(tf, loaded, contract, pattern, n, report)
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 4 or not argv[3].isdigit():
        print("usage: python -m components.signature.probe MODEL_DIR EXAMPLES_GLOB N",
              file=sys.stderr)
        return 2
    report = probe(argv[1], argv[2], int(argv[3]))
    sys.stdout.flush()
    print(json.dumps(report, sort_keys=True, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
