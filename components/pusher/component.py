"""TFX adapter of the pusher: no blessing, no push."""


import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelBlessing, PushedModel

from components.pusher.serving_dir import ServingDir


def is_blessed(blessing) -> bool:
    return blessing.get_int_custom_property("blessed") == 1


@component
def ServingPusher(  # noqa: N802
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    pushed_model: OutputArtifact[PushedModel],
    base_path: Parameter[str],
) -> None:
    """Pushes the blessed model as the next integer version under `base_path`."""
    if not is_blessed(model_blessing):
        pushed_model.set_int_custom_property("pushed", 0)
        return
    result = ServingDir(base_path).push(os.path.join(model.uri, "Format-Serving"))
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_int_custom_property("pushed_version", result.version)
    pushed_model.set_string_custom_property("pushed_destination", result.path)
    pushed_model.set_string_custom_property("content_hash", result.content_hash)
    pushed_model.set_int_custom_property("reused_existing_version", int(result.reused))
