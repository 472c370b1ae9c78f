"""ImportExampleGen's executor, resolving ``{SPAN}`` when no driver did.

TFX resolves the span (and the input fingerprint) of a file-based ExampleGen in a driver. Under
Kubeflow v2 that driver is a ``lifecycle.preCacheCheck`` hook of the container, which Vertex
runs and open-source Kubeflow Pipelines ignores: the executor would then glob a pattern that
still holds ``{SPAN}``. This executor does what TFX's Kubeflow v2 driver does
(``tfx/orchestration/kubeflow/v2/file_based_example_gen/driver.py``) when the execution
properties show that no driver ran, then runs TFX's own ImportExampleGen executor.
"""

from typing import Any

from tfx.components.example_gen import driver, input_processor, utils
from tfx.components.example_gen.import_example_gen.executor import Executor
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils


def resolve_span(exec_properties: dict[str, Any], examples) -> dict[str, Any]:
    """`exec_properties` with the span, version and fingerprint resolved under the input base
    and the split patterns made concrete; `examples` (the output artifact) gets them as custom
    properties, as TFX's driver sets them.

    Raises:
      ValueError: no span matches the patterns (TFX's own message).
    """
    resolved = dict(exec_properties)
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(resolved[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    range_config = None
    if resolved.get(standard_component_specs.RANGE_CONFIG_KEY):  # "": the latest span
        range_config = range_config_pb2.RangeConfig()
        proto_utils.json_to_proto(resolved[standard_component_specs.RANGE_CONFIG_KEY],
                                  range_config)
    processor = input_processor.FileBasedInputProcessor(
        resolved[standard_component_specs.INPUT_BASE_KEY], input_config.splits, range_config)
    span, version = processor.resolve_span_and_version()
    resolved[utils.SPAN_PROPERTY_NAME] = span
    resolved[utils.VERSION_PROPERTY_NAME] = version
    resolved[utils.FINGERPRINT_PROPERTY_NAME] = processor.get_input_fingerprint(span, version)
    for split in input_config.splits:
        split.pattern = processor.get_pattern_for_span_version(split.pattern, span, version)
    resolved[standard_component_specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(input_config)
    driver.update_output_artifact(resolved, examples.mlmd_artifact)
    return resolved


class SpanResolvingExecutor(Executor):
    """TFX's ImportExampleGen executor, after `resolve_span` where no driver ran."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        if utils.SPAN_PROPERTY_NAME not in exec_properties:  # a driver sets it
            examples = artifact_utils.get_single_instance(
                output_dict[standard_component_specs.EXAMPLES_KEY])
            exec_properties = resolve_span(exec_properties, examples)
        return super().Do(input_dict, output_dict, exec_properties)
