"""Which span a run reads: the configured one, or the latest found under the data root."""

from __future__ import annotations

import os
import re

from components.data_check import DataCheckError
from pipeline.config import PipelineConfig


def list_spans(data_root: str, span_pattern: str) -> list[int]:
    """Span numbers of the folders under `data_root` matching `span_pattern` (with {SPAN})."""
    if not os.path.isdir(data_root):
        raise DataCheckError(f"data root {data_root} does not exist or is not a directory")
    head = span_pattern.split("/")[0]
    regex = re.compile(re.escape(head).replace(re.escape("{SPAN}"), r"(\d+)") + "$")
    spans = []
    for name in os.listdir(data_root):
        m = regex.match(name)
        if m:
            spans.append(int(m.group(1)))
    return sorted(spans)


def resolve_span(data_root: str, span_pattern: str, span: int | None) -> int:
    """The span to read; raises DataCheckError naming the data root when it has none."""
    spans = list_spans(data_root, span_pattern)
    if not spans:
        raise DataCheckError(f"no span folders matching {span_pattern!r} under {data_root}")
    if span is None:
        return spans[-1]
    if span not in spans:
        raise DataCheckError(
            f"span {span} not found under {data_root} (spans: {', '.join(map(str, spans))})"
        )
    return span


def selected_span(cfg: PipelineConfig) -> int:
    """The span a run with `cfg` reads (see resolve_span)."""
    return resolve_span(os.path.abspath(cfg.data.root), cfg.data.span_pattern, cfg.data.span)
