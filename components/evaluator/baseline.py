"""Which model the candidate is compared with: the latest blessed model older than it.

TFX's LatestBlessedModelStrategy returns the newest blessed model, which after a first run is the
candidate itself when training was cached; the Evaluator's inputs then change, it runs again and a
duplicate version is pushed. Choosing among models created *before* the candidate keeps the
baseline of a given candidate fixed, so an unchanged re-run is cached from end to end.
"""

from __future__ import annotations

from tfx.dsl.components.common.resolver import ResolverStrategy

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
    blessing_of = {
        b.get_int_custom_property(CURRENT_MODEL_ID): b
        for b in sorted(blessings, key=lambda b: b.id)
        if b.get_int_custom_property(BLESSED) == 1
    }
    oldest_candidate = min(candidate_ids) if candidate_ids else None
    older = [
        m for m in models
        if m.id in blessing_of and (oldest_candidate is None or m.id < oldest_candidate)
    ]
    if not older:
        return None, None
    best = max(older, key=lambda m: m.id)
    return best, blessing_of[best.id]


class BaselineBeforeCandidateStrategy(ResolverStrategy):
    """Resolver strategy over inputs `candidate`, `model` and `model_blessing`."""

    def resolve_artifacts(self, store, input_dict):
        candidates = input_dict.get("candidate", [])
        model, blessing = pick_baseline(
            [c.id for c in candidates], input_dict.get("model", []),
            input_dict.get("model_blessing", []),
        )
        # Every input key must come back, or TFX's input resolution fails on the missing one.
        return {
            "candidate": candidates,
            "model": [model] if model else [],
            "model_blessing": [blessing] if blessing else [],
        }
