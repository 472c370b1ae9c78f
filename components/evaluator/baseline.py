"""Which model the candidate is compared with: the `stable` serving version, else the latest
blessed model, always among models older than the candidate.

1. When the serving base path has a ``stable`` label (``labels.json``), the baseline is the Model
   artifact that was released as that version: the ``PushedModel`` artifacts whose
   ``pushed_version`` is the stable version and whose ``pushed_destination`` is under the base
   path lead, through the pusher execution that wrote them, to the Model it consumed (input
   ``model``). If that model is not older than the candidate (the candidate itself was
   promoted, then the pipeline runs again), the previous stables are tried, newest first
   (``stable_history``): the baseline is the stable version the candidate was meant to replace.
2. Without a usable stable (no label, a version pushed outside this pipeline's ML Metadata, or
   none older than the candidate), the newest model blessed by an Evaluator run and older than
   the candidate.

Why "older than the candidate": TFX's LatestBlessedModelStrategy returns the newest blessed model,
which after a first run is the candidate itself when training was cached; the Evaluator's inputs
then change, it runs again and a duplicate version is pushed. Choosing among models created
*before* the candidate keeps the baseline of a given candidate fixed while the labels do not
change, so an unchanged re-run is cached from end to end.

The strategy gets the base path through ``Resolver(strategy_class=..., config={"base_path": P})``:
TFX 1.16 stores ``config`` as the resolver op's static kwargs and constructs the strategy with
``strategy_class(**config)`` (``input_graph_resolver._evaluate_op_node``), then calls
``resolve_artifacts(store, input_dict)`` with the MLMD store.
"""

from __future__ import annotations

import os

from tfx.dsl.components.common.resolver import ResolverStrategy

from components.metadata import get_models_released_as

BLESSED = "blessed"
CURRENT_MODEL_ID = "current_model_id"


def pick_baseline(candidate_ids: list[int], models: list, blessings: list) -> tuple:
    """The newest model blessed by some Evaluator run and created before every candidate.

    Args:
      candidate_ids: MLMD ids of this run's candidate model(s).
      models, blessings: every Model and ModelBlessing artifact of the pipeline.

    Returns:
      (baseline Model, its ModelBlessing), or (None, None).
    """
    blessing_of = _blessings_by_model(blessings)
    oldest_candidate = min(candidate_ids) if candidate_ids else None
    older = [
        m for m in models
        if m.id in blessing_of and (oldest_candidate is None or m.id < oldest_candidate)
    ]
    if not older:
        return None, None
    best = max(older, key=lambda m: m.id)
    return best, blessing_of[best.id]


def _blessings_by_model(blessings: list) -> dict:
    return {
        b.get_int_custom_property(CURRENT_MODEL_ID): b
        for b in sorted(blessings, key=lambda b: b.id)
        if b.get_int_custom_property(BLESSED) == 1
    }


def stable_versions(base_path: str) -> list[int]:
    """The stable version, then the previous stables, newest first (no duplicates)."""
    from components.serving import read_state

    state = read_state(base_path)
    ordered = [state.labels["stable"]] if "stable" in state.labels else []
    ordered += reversed(state.stable_history)
    return list(dict.fromkeys(ordered))


def pick_stable_baseline(store, base_path: str, candidate_ids: list[int], models: list,
                         blessings: list) -> tuple:
    """(the Model released as the newest stable version older than the candidates, its blessing
    or None), or (None, None) when there is none; see the module docstring."""
    if not base_path or not os.path.isdir(base_path):
        return None, None
    oldest_candidate = min(candidate_ids) if candidate_ids else None
    by_id = {m.id: m for m in models}
    for version in stable_versions(base_path):
        released = get_models_released_as(store, base_path, version)
        ids = [m.id for m in released
               if m.id in by_id and (oldest_candidate is None or m.id < oldest_candidate)]
        if ids:
            # The same content may have been released by several identical models: the first.
            model = by_id[min(ids)]
            return model, _blessings_by_model(blessings).get(model.id)
    return None, None


class BaselineBeforeCandidateStrategy(ResolverStrategy):
    """Resolver strategy over inputs `candidate`, `model` and `model_blessing`.

    Args:
      base_path: the serving base path whose `stable` label names the baseline ("" for none).
    """

    def __init__(self, base_path: str = ""):
        self.base_path = base_path

    def resolve_artifacts(self, store, input_dict):
        candidates = input_dict.get("candidate", [])
        ids = [c.id for c in candidates]
        models, blessings = input_dict.get("model", []), input_dict.get("model_blessing", [])
        model, blessing = pick_stable_baseline(store, self.base_path, ids, models, blessings)
        if model is None:
            model, blessing = pick_baseline(ids, models, blessings)
        # Every input key must come back, or TFX's input resolution fails on the missing one.
        return {
            "candidate": candidates,
            "model": [model] if model else [],
            "model_blessing": [blessing] if blessing else [],
        }
