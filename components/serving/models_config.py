"""``models.config``: TF Serving's ModelServerConfig for one base path, and label moves.

The file lists one model: its name, base path, ``model_platform: "tensorflow"``, a ``specific``
version policy with the versions to serve (exactly the labelled ones) and ``version_labels``
``stable`` and ``canary``. TF Serving is started with ``--model_config_file=<base>/models.config``
(and ``--model_config_file_poll_wait_seconds`` to pick up changes).

TF Serving refuses a config whose label points at a version it has not loaded yet. So a label
never moves onto a new version in one write: the first file serves the new version beside the old
ones with the labels unchanged, the second moves the labels (and may drop versions no longer
labelled). Each step is a complete, valid file, renamed into place. Before the step that moves a
label, ``apply_serving_state`` calls ``between_steps`` with a ``LabelMove``: the place to wait
until the server has loaded the versions the labels move onto (``components.serving.server``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.serving.errors import ReleaseError
from components.serving.files import write_atomically

__all__ = [
    "MODELS_CONFIG_FILE",
    "BetweenSteps",
    "LabelMove",
    "ServingState",
    "apply_serving_state",
    "check_label_rule",
    "label_move_steps",
    "models_config_text",
    "parse_models_config",
    "read_models_config",
]

MODELS_CONFIG_FILE = "models.config"


@dataclass(frozen=True)
class ServingState:
    """What ``models.config`` says: the model, the versions served, the labels.

    Attributes:
        model_name: the model's name.
        base_path: absolute base path of its versions.
        versions: the versions of the ``specific`` policy, ascending.
        labels: label -> version; each version must be in ``versions``.
    """

    model_name: str
    base_path: str
    versions: tuple[int, ...]
    labels: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", tuple(sorted(set(self.versions))))
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))


@dataclass(frozen=True)
class LabelMove:
    """A label move about to be written: what the server has been told, and what comes next.

    Attributes:
        before: ``models.config`` as it was before this operation (None: there was none, so no
            server can have read a config of this base path yet).
        served: the file on disk now: the first step of the move, or ``before`` when the move
            takes one step (its versions were served already).
        served_since: when ``served`` was written (seconds since the epoch).
        target: the file written next, whose labels move.
    """

    before: ServingState | None
    served: ServingState
    served_since: float
    target: ServingState

    @property
    def onto(self) -> tuple[int, ...]:
        """The versions a label moves onto, ascending. Only labelled versions are served, so
        every version the first step started serving is among them."""
        return tuple(sorted({
            version for label, version in self.target.labels.items()
            if self.served.labels.get(label) != version
        }))


# Called before a step that moves a label: wait there until the server has loaded the versions
# the labels move onto, or raise (ServerNotReady) to leave the file at the step before.
BetweenSteps = Callable[[LabelMove], None]


def check_label_rule(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Check TF Serving's rules on a parsed config: a model list whose every model has a
    ``specific`` policy listing at least one version, and labels only on listed versions.

    Raises:
        ReleaseError: naming the model and label at fault.
    """
    if config.WhichOneof("config") != "model_config_list":
        raise ReleaseError("models.config: expected a model_config_list")
    for model in config.model_config_list.config:
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") != "specific" or not policy.specific.versions:
            raise ReleaseError(f"models.config: model {model.name!r}: no specific versions")
        served = set(policy.specific.versions)
        for label, version in model.version_labels.items():
            if version not in served:
                raise ReleaseError(
                    f"models.config: model {model.name!r}: label {label!r} points at version "
                    f"{version}, which is not served (versions {sorted(served)})"
                )


def models_config_text(state: ServingState) -> str:
    """Render ``state`` as ModelServerConfig text.

    Raises:
        ReleaseError: the state breaks the label rule (never written).
    """
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = state.model_name
    model.base_path = state.base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.extend(state.versions)
    for label, version in state.labels.items():
        model.version_labels[label] = version
    check_label_rule(config)
    return text_format.MessageToString(config)


def parse_models_config(text: str, where: str = MODELS_CONFIG_FILE) -> ServingState:
    """Parse a ``models.config`` written by this module back into a ``ServingState``.

    Raises:
        ReleaseError: not ModelServerConfig text, not exactly one model, or a label rule broken.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ReleaseError(f"{where}: not a ModelServerConfig ({e})") from e
    try:
        check_label_rule(config)
    except ReleaseError as e:
        raise ReleaseError(f"{where}: {e}") from e
    models = config.model_config_list.config
    if len(models) != 1:
        raise ReleaseError(f"{where}: expected one model, found {len(models)}")
    model = models[0]
    return ServingState(
        model_name=model.name,
        base_path=model.base_path,
        versions=tuple(model.model_version_policy.specific.versions),
        labels=dict(model.version_labels),
    )


def read_models_config(base_path: str) -> ServingState | None:
    """The state in ``<base>/models.config``, or None when there is no such file.

    Raises:
        ReleaseError: as ``parse_models_config``.
    """
    path = os.path.join(base_path, MODELS_CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return parse_models_config(text, path)


def label_move_steps(current: ServingState | None, target: ServingState) -> list[ServingState]:
    """The configs to write, in order, to go from ``current`` to ``target`` safely.

    1. Serve the union of current and target versions, keeping the current labels (TF Serving
       loads the new versions; no label moves yet). With no current config for this model,
       the target versions without labels.
    2. The target: labels moved, versions no longer labelled dropped.

    A step equal to the state before it is left out, so an operation that changes nothing
    writes nothing and a move onto versions already served takes one step.

    Returns:
        The states to write, each valid on its own; every label of each step points at a
        version served by the step before it (or by the step itself, for unchanged labels).
    """
    same_model = (
        current is not None
        and current.model_name == target.model_name
        and current.base_path == target.base_path
    )
    if same_model:
        assert current is not None
        serve_first = ServingState(
            target.model_name,
            target.base_path,
            current.versions + target.versions,
            current.labels,
        )
    else:
        serve_first = ServingState(target.model_name, target.base_path, target.versions, {})
    steps: list[ServingState] = []
    previous = current if same_model else None
    for step in (serve_first, target):
        if step != previous:
            steps.append(step)
            previous = step
    return steps


def apply_serving_state(
    base_path: str,
    target: ServingState,
    between_steps: BetweenSteps | None = None,
    *,
    before_last: Callable[[], None] | None = None,
) -> list[ServingState]:
    """Bring ``<base>/models.config`` to ``target`` through ``label_move_steps``.

    Call under the base path's lock. Each step is written atomically (temporary file, fsync,
    rename). Before the last step, when it moves a label onto a version, ``between_steps`` is
    called with the ``LabelMove``: give TF Serving time there to load those versions (at least
    its config poll period plus the load time), or raise to stop with the file at the step
    before. ``before_last`` is called right before the last step is written (after
    ``between_steps``).

    Returns:
        The states written (empty when the file already says ``target``).

    Raises:
        ReleaseError: the current file is unreadable, or ``target`` breaks the label rule.
        Whatever ``between_steps`` raises: the last step is not written.
    """
    path = os.path.join(base_path, MODELS_CONFIG_FILE)
    before = read_models_config(base_path)
    steps = label_move_steps(before, target)
    texts = [models_config_text(step) for step in steps]  # all checked before the first write
    served = before
    served_since = os.stat(path).st_mtime if before is not None else 0.0
    for i, (step, text) in enumerate(zip(steps, texts, strict=True)):
        if i == len(steps) - 1:
            if between_steps is not None and served is not None:
                move = LabelMove(before, served, served_since, step)
                if move.onto:
                    between_steps(move)
            if before_last is not None:
                before_last()
        write_atomically(path, text.encode())
        served, served_since = step, time.time()
    return steps
