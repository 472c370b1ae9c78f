"""What changed while a run went through TFX that the run itself did not do.

The run record (`up_to_date.py`) stores ML Metadata and the serving base path as they are after
the run, so that the run's own executions and release do not count as changes next time. A
change made by someone else during the run (a `pipeline release promote` while it trains,
another run, a hand edit) would be absorbed into that record, although the run did not see it:
the baseline it was evaluated against may no longer be the stable version. So the state is
marked before the run starts, and after it succeeds everything newer is attributed:

- ML Metadata: every execution created or updated since the mark must be one of this run's
  (its `pipeline_run` context); every artifact created or updated, linked by an event to one of
  them; every context created or updated, one of theirs, or this run's, its pipeline's, one of
  its nodes' or a TFX cache key.
  A release operation recorded in MLMD is an execution of no run: it counts;
- the serving base path: every entry appended to `labels.json`'s history must be this run's
  own release (operation `release` of the version it pushed as new); when the run's pusher did
  not run (cached, or never reached), the base path must not have changed at all.

Anything else, and the run is not recorded as a run to be up to date with: the next one goes
through TFX. Imports neither TensorFlow nor TFX.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pipeline.config import PipelineConfig

PIPELINE_RUN_CONTEXT = "pipeline_run"


@dataclass(frozen=True)
class StartState:
    """The marks taken before a run starts.

    Attributes:
      metadata: `components.metadata.metadata_marks` ([0, 0] per kind when there is no store).
      history: the number of entries in the base path's `labels.json` history.
      serving: `components.serving.fingerprint` of the base path.
    """

    metadata: dict[str, list[int]]
    history: int
    serving: str


def state_at_start(cfg: PipelineConfig) -> StartState:
    """The marks of ML Metadata and the serving base path, now.

    Raises:
      Exception: the store or the base path cannot be read (the caller then records nothing).
    """
    from components import serving
    from components.metadata import metadata_marks, open_store, store_exists

    marks = {kind: [0, 0] for kind in ("executions", "artifacts", "contexts")}
    target = cfg.metadata_target
    if store_exists(target):
        marks = metadata_marks(open_store(target))
    base = os.path.abspath(cfg.pusher.base_path)
    return StartState(marks, len(serving.read_state(base).history), serving.fingerprint(base))


def changes_by_others(
    cfg: PipelineConfig, store: Any, result: dict[str, Any], start: StartState
) -> list[str]:
    """One line per change since `start` that run `result` (`RunResult.to_json()`) did not
    make; [] when there is none. See the module docstring for what counts."""
    return [*_metadata_changes(cfg, store, result["run_id"], start),
            *_serving_changes(cfg, result, start)]


def _metadata_changes(cfg: PipelineConfig, store: Any, run_id: str, start: StartState
                      ) -> list[str]:
    from components.metadata import changed_since

    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    ours = {e.id for e in store.get_executions_by_context(run.id)} if run else set()
    our_artifacts = {e.artifact_id for e in store.get_events_by_execution_ids(list(ours))}
    changed = changed_since(store, start.metadata)
    lines = [
        f"ML Metadata: execution {e.id} ({e.type}) is not of this run"
        for e in changed["executions"] if e.id not in ours
    ]
    lines += [
        f"ML Metadata: artifact {a.id} ({a.type}) is not of this run"
        for a in changed["artifacts"] if a.id not in our_artifacts
    ]
    our_contexts = {c.id for e in ours for c in store.get_contexts_by_execution(e)}
    lines += [
        f"ML Metadata: context {c.name!r} ({c.type}) is not of this run"
        for c in changed["contexts"]
        if c.id not in our_contexts and not _own_context(cfg.pipeline_name, run_id, c)
    ]
    return lines


def _own_context(pipeline_name: str, run_id: str, context: Any) -> bool:
    """A context this run may create or touch: its run, its pipeline, its nodes, and TFX's
    cache keys (`execution_cache`, one per key a node looked up)."""
    return ((context.type == PIPELINE_RUN_CONTEXT and context.name == run_id)
            or (context.type == "pipeline" and context.name == pipeline_name)
            or (context.type == "node" and context.name.startswith(f"{pipeline_name}."))
            or context.type == "execution_cache")


def _serving_changes(cfg: PipelineConfig, result: dict[str, Any], start: StartState
                     ) -> list[str]:
    from components import serving

    base = os.path.abspath(cfg.pusher.base_path)
    history = serving.read_state(base).history
    if len(history) < start.history:
        return [f"{base}: labels.json's history lost entries"]
    pushed = result.get("pushed") or {}
    own_release = pushed.get("version") if pushed.get("new") else None
    lines = [
        f"{base}: {entry.get('operation')} of version {entry.get('version')} by "
        f"{entry.get('actor')} at {entry.get('at')}"
        for entry in history[start.history:]
        if not (entry.get("operation") == "release" and entry.get("version") == own_release)
    ]
    pusher = next((c for c in result["components"] if c["name"] == "ServingPusher"), None)
    if (not lines and (pusher is None or pusher["status"] != "succeeded")
            and serving.fingerprint(base) != start.serving):
        lines.append(f"{base}: changed, though this run's pusher did not run")
    return lines
