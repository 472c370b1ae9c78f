"""Checks a run can start, before any runner is asked to: the configuration against this
machine, and the input files of the selected span. Imports neither TensorFlow nor TFX."""

from __future__ import annotations

import os

from pipeline.config import ConfigError, PipelineConfig


def preflight(cfg: PipelineConfig) -> int:
    """Checks the configuration against this machine and the input files; returns the span
    to read.

    Raises:
      ConfigError: NCCL asked for with no GPU visible (naming the config file).
      DataCheckError: naming the data root or the bad file.
    """
    from components.data_check import check_input_files
    from components.trainer.strategy import (
        CommunicationError,
        gpus_visible,
        resolve_communication,
    )
    from pipeline.build import span_input_patterns
    from pipeline.spans import selected_span

    try:
        resolve_communication(cfg.trainer.distribution.communication, gpus_visible())
    except CommunicationError as e:
        raise ConfigError(f"{cfg.where}: {e}") from e
    span = selected_span(cfg)
    check_input_files(os.path.abspath(cfg.data.root), span_input_patterns(cfg, span))
    return span
