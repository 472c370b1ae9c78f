"""ImportExampleGen's executors: resolving ``{SPAN}`` when no driver did, and importing split
folders of GZIP TFRecords as the files themselves (``copy_import``).

TFX resolves the span (and the input fingerprint) of a file-based ExampleGen in a driver. Under
Kubeflow v2 that driver is a ``lifecycle.preCacheCheck`` hook of the container, which Vertex
runs and open-source Kubeflow Pipelines ignores: the executor would then glob a pattern that
still holds ``{SPAN}``. This executor does what TFX's Kubeflow v2 driver does
(``tfx/orchestration/kubeflow/v2/file_based_example_gen/driver.py``) when the execution
properties show that no driver ran, then runs TFX's own ImportExampleGen executor.
"""

from typing import Any

from absl import logging
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


class FileImportExecutor(SpanResolvingExecutor):
    """ImportExampleGen that takes the span's files as they are (a copy, or a hard link with
    ``MODE = "link"``) when they are split folders of GZIP tf.Example TFRecords, and TFX's Beam
    import otherwise (hash splits, other payloads, remote or non-GZIP files).

    The Examples artifact gets what TFX's executor gives it (split names, payload and file
    format; span, version and input fingerprint from the driver or ``resolve_span``), plus
    ``import_mode`` (``copy``, ``reflink``, ``link`` or ``beam``) and ``record_count``.
    """

    MODE = "copy"

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        from components.example_gen.copy_import import import_splits, why_not_copyable

        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        if utils.SPAN_PROPERTY_NAME not in exec_properties:  # a driver sets it
            exec_properties = resolve_span(exec_properties, examples)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                  output_config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        patterns = {split.name: split.pattern for split in input_config.splits}
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        why = why_not_copyable(
            input_base, patterns, hash_splits=bool(output_config.split_config.splits),
            payload_is_example=payload == example_gen_pb2.FORMAT_TF_EXAMPLE)
        if why is None and file_format not in (None, example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
                                               example_gen_pb2.FORMAT_TFRECORDS_GZIP):
            why = "the output file format is not GZIP TFRecords"
        if why is not None:
            logging.info("ImportExampleGen: importing through Beam: %s", why)
            examples.set_string_custom_property("import_mode", "beam")
            return super().Do(input_dict, output_dict, exec_properties)

        self._log_startup(input_dict, output_dict, exec_properties)
        split_names = utils.generate_output_split_names(input_config, output_config)
        examples.split_names = artifact_utils.encode_split_names(split_names)
        imported = import_splits(
            input_base, patterns,
            {name: artifact_utils.get_split_uri([examples], name) for name in split_names},
            self.MODE)
        from tfx.components.example_gen import write_split
        from tfx.components.util import examples_utils

        examples_utils.set_payload_format(examples, payload)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        ways = "+".join(sorted({how for s in imported for _, how in s.files.values()}))
        examples.set_string_custom_property("import_mode", ways)
        examples.set_int_custom_property("record_count", sum(s.records for s in imported))
        logging.info("ImportExampleGen: %s (%s), not re-encoded", "; ".join(
            f"{s.name}: {len(s.files)} files, {s.records} records" for s in imported), ways)


class LinkingImportExecutor(FileImportExecutor):
    """`FileImportExecutor` with hard links where the filesystem allows (``import_mode:
    link``)."""

    MODE = "link"
