"""The Evaluator's baseline: the version labelled ``stable`` in the serving base path (the
previous stable when the candidate is it), chosen from the base path alone and written as a
Model artifact by a node every orchestrator runs.

Pure Python here (``choice``, ``materialize``); TFX only in ``component``.
"""

from components.baseline.choice import (
    Choice,
    StableEntry,
    chain_from_json,
    chain_to_json,
    choose_baseline,
    stable_chain,
)
from components.baseline.materialize import BaselineError, link_or_copy_tree, write_baseline

__all__ = [
    "BaselineError",
    "Choice",
    "StableEntry",
    "chain_from_json",
    "chain_to_json",
    "choose_baseline",
    "link_or_copy_tree",
    "stable_chain",
    "write_baseline",
]
