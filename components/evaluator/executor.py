"""TFX's Evaluator executor with TFMA's per-example metric evaluation replaced by a batched one.

Same inputs, outputs, EvalConfig, slices, thresholds, baseline diffs and blessing as
`tfx.components.evaluator.executor.Executor`; only the Beam graph between the model's
predictions and TFMA's writers changes (components/evaluator/batched.py). An EvalConfig with a
metric that has no batched path runs stock TFMA.
"""

from __future__ import annotations

from unittest import mock

from absl import logging
from tfx.components.evaluator import executor as tfx_evaluator


class BatchedEvaluatorExecutor(tfx_evaluator.Executor):
    """TFX's Evaluator executor; `batched` computes the metrics where it covers them all."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        import tensorflow_model_analysis as tfma
        from tensorflow_model_analysis.api import model_eval_lib

        from components.evaluator import batched

        stock = tfma.ExtractEvaluateAndWriteResults

        def extract_evaluate_and_write(**kwargs):
            if kwargs.get("extractors") is None and kwargs.get("eval_config") is not None:
                eval_config = model_eval_lib._update_eval_config_with_defaults(
                    kwargs["eval_config"], kwargs["eval_shared_model"])
                found = batched.batched_extractors_and_evaluators(
                    eval_config, kwargs["eval_shared_model"],
                    kwargs.get("tensor_adapter_config"))
                if found is not None:
                    kwargs["extractors"], kwargs["evaluators"] = found
                logging.info("Evaluator: %s", "metrics computed a batch at a time"
                             if found is not None else "stock TFMA (a metric batched.py lacks)")
            return stock(**kwargs)

        # The TFX executor calls tfma.ExtractEvaluateAndWriteResults by attribute; the swap is
        # undone when Do returns (the Beam graph is built, run and finished inside Do).
        with mock.patch.object(tfma, "ExtractEvaluateAndWriteResults",
                               extract_evaluate_and_write):
            return super().Do(input_dict, output_dict, exec_properties)
