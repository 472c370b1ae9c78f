"""Partial runs: some nodes of the pipeline executed again on top of the last run's outputs.

`select_nodes` turns `--from-node`/`--to-node`/`--only` into a `PartialRun` (no TFX: the CLI
refuses an unknown node before anything starts). `mark_pipeline` marks a compiled pipeline IR
as TFX's partial run does (the nodes before the selection are reused from the latest run of
the pipeline: `latest_pipeline_run_strategy`), with two additions:

- the node that chooses the baseline (the producer of a selected node's `baseline_model`
  input) runs again with the selection, so that the candidate is compared with the version
  that is stable now, not with the one that was stable when the reused run chose it;
- the selected nodes do not meet TFX's cache: they execute, which is what was asked (a failed
  node has no cache entry anyway; a changed one would miss it).

`check_reusable` then refuses, in one line, a partial run with no earlier run to reuse or whose
latest run lacks a successful execution of a node to reuse. Any IR-based runner can use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.build import NODE_ORDER
from pipeline.config import ConfigError

BASELINE_INPUT = "baseline_model"


@dataclass
class PartialRun:
    """The nodes asked for, and what the runner made of them (set before any node runs).

    Attributes:
      from_nodes: run from these nodes ([]: from the first).
      to_nodes: up to these ([]: to the last).
      ran: the nodes marked to run, in pipeline order (`pipeline.build.NODE_ORDER`).
      reused: the nodes whose outputs are taken from `base_run`, in pipeline order.
      skipped: the nodes neither run nor reused (after `to_nodes`).
      base_run: the run whose outputs are reused (None until known, or when nothing is).
    """

    from_nodes: list[str] = field(default_factory=list)
    to_nodes: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    base_run: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def select_nodes(nodes: Sequence[str], *, from_node: str | None = None,
                 to_node: str | None = None, only: str | None = None) -> PartialRun | None:
    """The partial run the options ask for over the pipeline's `nodes`; None for a full run.

    Raises:
      ConfigError: an unknown node (the message lists the nodes), or `only` with another.
    """
    if only and (from_node or to_node):
        raise ConfigError("--only cannot be combined with --from-node or --to-node "
                          "(--only X is --from-node X --to-node X)")
    if only:
        from_node = to_node = only
    for flag, name in (("--from-node", from_node), ("--to-node", to_node)):
        if name and name not in nodes:
            flag = "--only" if only else flag
            raise ConfigError(f"{flag}: unknown node {name!r}; the nodes are: "
                              f"{', '.join(nodes)}")
    if not (from_node or to_node):
        return None
    if from_node and to_node and list(nodes).index(to_node) < list(nodes).index(from_node):
        raise ConfigError(f"--to-node {to_node} comes before --from-node {from_node} "
                          f"(the nodes, in order: {', '.join(nodes)})")
    return PartialRun(from_nodes=[from_node] if from_node else [],
                      to_nodes=[to_node] if to_node else [])


def mark_pipeline(ir: Any, partial: PartialRun) -> None:
    """Marks the compiled pipeline `ir` (its run id already set) for `partial`, and fills
    `partial.ran`, `.reused` and `.skipped`.

    Raises:
      ConfigError: the selection leaves nothing to run.
    """
    from tfx.orchestration.portable import partial_run_utils
    from tfx.proto.orchestration import pipeline_pb2

    from_nodes = list(partial.from_nodes)
    probe = pipeline_pb2.Pipeline()
    probe.CopyFrom(ir)
    partial_run_utils.mark_pipeline(
        probe, from_nodes=from_nodes or None, to_nodes=partial.to_nodes or None)
    # The baseline is chosen again whenever a node that reads it runs.
    for node in probe.nodes:
        pipeline_node = node.pipeline_node
        if not pipeline_node.execution_options.HasField("run"):
            continue
        for channel in pipeline_node.inputs.inputs[BASELINE_INPUT].channels:
            producer = channel.producer_node_query.id
            if producer and producer not in from_nodes and _is_skipped(probe, producer):
                from_nodes.append(producer)
    partial_run_utils.mark_pipeline(
        ir, from_nodes=from_nodes or None, to_nodes=partial.to_nodes or None,
        snapshot_settings=partial_run_utils.latest_pipeline_snapshot_settings())
    reuse_modes = (pipeline_pb2.NodeExecutionOptions.Skip.REQUIRED,
                   pipeline_pb2.NodeExecutionOptions.Skip.OPTIONAL)
    partial.ran, partial.reused, partial.skipped = [], [], []
    for node in ir.nodes:
        pipeline_node = node.pipeline_node
        options = pipeline_node.execution_options
        node_id = pipeline_node.node_info.id
        if options.HasField("run"):
            options.caching_options.enable_cache = False  # the selected nodes execute
            partial.ran.append(node_id)
        elif options.skip.reuse_artifacts_mode in reuse_modes:
            partial.reused.append(node_id)
        else:
            partial.skipped.append(node_id)
    # In the order the CLI lists the nodes (the IR's topological order may differ).
    order = {name: i for i, name in enumerate(NODE_ORDER)}
    for names in (partial.ran, partial.reused, partial.skipped):
        names.sort(key=lambda name: order.get(name, len(order)))
    if not partial.ran:
        raise ConfigError(
            f"nothing to run from {', '.join(partial.from_nodes)} to "
            f"{', '.join(partial.to_nodes)}: the second is not downstream of the first")


def required_nodes(ir: Any) -> list[str]:
    """The nodes a marked pipeline must reuse (upstream of a node that runs)."""
    from tfx.proto.orchestration import pipeline_pb2

    required = pipeline_pb2.NodeExecutionOptions.Skip.REQUIRED
    return [n.pipeline_node.node_info.id for n in ir.nodes
            if n.pipeline_node.execution_options.HasField("skip")
            and n.pipeline_node.execution_options.skip.reuse_artifacts_mode == required]


def _is_skipped(ir: Any, node_id: str) -> bool:
    return any(n.pipeline_node.node_info.id == node_id
               and n.pipeline_node.execution_options.HasField("skip") for n in ir.nodes)


def check_reusable(store: Any, pipeline_name: str, run_id: str, partial: PartialRun,
                   required: Sequence[str], where: str) -> None:
    """Sets `partial.base_run` to the run TFX will reuse (the newest other run) and refuses
    the partial run, in one line, when it cannot reuse what it needs.

    Raises:
      ConfigError: no earlier run, or one without a successful execution of a required node.
    """
    from components.metadata import execution_state, get_run_executions, latest_run_id

    if not partial.reused:
        return
    partial.base_run = latest_run_id(store, pipeline_name, exclude=run_id) if store else None
    start = ", ".join(partial.from_nodes) or partial.ran[0]
    if not required:  # only optional reuses, which TFX does when it can
        return
    if partial.base_run is None:
        raise ConfigError(
            f"cannot start from {start}: no earlier run of pipeline {pipeline_name!r} in "
            f"{where} whose outputs it could reuse; run the whole pipeline first "
            "(pipeline run)")
    executions = get_run_executions(store, pipeline_name, partial.base_run)
    missing = [n for n in required if n not in executions
               or execution_state(executions[n]) not in ("succeeded", "cached")]
    if missing:
        raise ConfigError(
            f"cannot start from {start}: the latest run, {partial.base_run}, has no successful "
            f"{', '.join(missing)} to reuse; start from {missing[0]} or earlier, or run the "
            "whole pipeline (pipeline run)")

