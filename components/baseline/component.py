"""TFX adapter of the baseline: a Model artifact, the one every orchestrator can produce.

A custom component, not a TFX resolver: Kubeflow v2 compiles only TFX's two built-in resolver
strategies and open-source KFP runs no resolver at all, and under Airflow the resolver saw every
run's model as the candidate. This runs as any other node (LocalDagRunner, Airflow, a Kubeflow
container) and reads only the serving base path.
"""

import json

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model

from components.baseline.choice import chain_from_json, check_mounted, stable_chain
from components.baseline.materialize import SERVING_MODEL_DIR, write_baseline


@component
def StableBaseline(  # noqa: N802
    candidate: InputArtifact[Model],
    baseline: OutputArtifact[Model],
    base_path: Parameter[str],
    stable_chain_json: Parameter[str] = "",
    mounted_volume: Parameter[int] = 0,
    code_fingerprint: Parameter[str] = "",
) -> None:
    """The stable version the candidate is compared with (``components.baseline.choice``), or
    the candidate itself on a first release, as a Model with ``Format-Serving/``.

    `stable_chain_json` is the base path's stable chain as the pipeline's build read it: the
    cache key, so that an unchanged re-run reuses this output and a promote or a rollback
    re-runs the node; the choice is made from it, so the output is always what the key says.
    Empty where the build could not read the base path: the chain is read here, at run time.
    `mounted_volume` (1 where the base path is a volume mounted into the step, e.g. under
    Kubeflow): its parent folder must exist, or the step refuses to run; an unmounted volume
    would otherwise look like a base path where nothing was released, and the candidate would
    be its own baseline.
    `code_fingerprint` is not read: it re-runs the node when its code changes.
    """
    if mounted_volume:
        check_mounted(base_path)
    chain = (chain_from_json(stable_chain_json) if stable_chain_json
             else stable_chain(base_path))
    choice = write_baseline(f"{candidate.uri}/{SERVING_MODEL_DIR}", base_path, chain,
                            baseline.uri)
    entry = choice.entry
    baseline.set_string_custom_property("baseline_kind", choice.kind)
    baseline.set_string_custom_property("baseline_reason", choice.reason)
    baseline.set_int_custom_property("baseline_version", entry.version if entry else 0)
    baseline.set_string_custom_property("baseline_tag", entry.tag if entry else "")
    baseline.set_string_custom_property("content_hash", entry.content_hash if entry else "")
    # The Model released as that version, when the release recorded it (-1: unknown).
    baseline.set_int_custom_property("released_model_id", entry.model_id if entry else -1)
    baseline.set_int_custom_property("candidate_model_id", candidate.id)
    baseline.set_string_custom_property("stable_chain", json.dumps(
        [e.version for e in chain]))
