"""The owner of a TensorFlow Serving model base path: every file under it is read and written here.

    <base>/<N>/                    version directories (``versions``: ServingDir.push)
    <base>/.versions/<N>.json      push metadata; .version_counter; .lock; .tmp-* (``versions``)
    <base>/.releases/<N>.json      release records (``records``)
    <base>/contract.json           the serving contract in force (``contract``)
    <base>/labels.json             labels, stable history, canary share, history (``labels``)
    <base>/models.config           TF Serving's ModelServerConfig (``models_config``)
    <base>/routing.json            weights per label for the router (``commit``)
    <base>/batching_parameters.txt TF Serving's BatchingParameters (``batching``)

Writes go through one atomic writer (``files``), under one lock with a bounded wait that names
its holder (``lock``). ``release_version`` (``release``) pushes a model, keeps its contract,
labels it and records it in one locked operation; ``promote``, ``rollback``, ``set_traffic`` and
``prune`` (``operations``) change labels and record themselves (who, why, when: an ``Audit``) in
``labels.json`` and, when the audit names a store, in ML Metadata; ``list_releases``
(``listing``) reads. A label moves onto a new version only once TF Serving has had time to load
it: ``ServerWait`` (``server``), configured by ``pusher.serving`` (``ServerConfig``, in
``components.serving.settings``). The pusher, the signature validator and the ``pipeline
release`` commands use only the names below (and ``ServerConfig``).

Pure standard library plus protobuf (and ``ml_metadata`` when an operation is recorded;
pydantic for ``ServerConfig`` only, which this package does not import): no TensorFlow, TFX or
Beam, so the ``pipeline release`` commands answer at once.
"""

from components.serving.batching import (
    BATCHING_FILE,
    BatchingParametersError,
    batching_parameters_text,
    parse_batching_parameters,
    write_batching_parameters,
)
from components.serving.commit import ROUTING_FILE, Audit
from components.serving.contract import (
    CONTRACT_FILE,
    Contract,
    ContractError,
    KeptContract,
    SignatureSpec,
    TensorSpec,
    read_contract,
)
from components.serving.errors import (
    InvalidNameError,
    LockTimeout,
    ReleaseError,
    ReleaseRefused,
    ServerNotReady,
)
from components.serving.labels import LABELS_FILE, LabelState, read_state, stable_version
from components.serving.listing import Listing, VersionInfo, fingerprint, list_releases
from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS, describe_lock_holder
from components.serving.models_config import (
    MODELS_CONFIG_FILE,
    BetweenSteps,
    LabelMove,
    ServingState,
    apply_serving_state,
    check_label_rule,
    label_move_steps,
    models_config_text,
    parse_models_config,
    read_models_config,
)
from components.serving.names import (
    Tag,
    make_tag,
    parse_tag,
    validate_channel,
    validate_model_name,
)
from components.serving.operations import OperationResult, promote, prune, rollback, set_traffic
from components.serving.records import RELEASES_DIR, Release, read_releases
from components.serving.release import ReleaseRequest, release_version
from components.serving.server import ServerWait
from components.serving.versions import (
    PushError,
    PushResult,
    ServingDir,
    model_content_hash,
)

__all__ = [
    "BATCHING_FILE",
    "CONTRACT_FILE",
    "DEFAULT_LOCK_TIMEOUT_SECONDS",
    "LABELS_FILE",
    "MODELS_CONFIG_FILE",
    "RELEASES_DIR",
    "ROUTING_FILE",
    "Audit",
    "BatchingParametersError",
    "BetweenSteps",
    "Contract",
    "ContractError",
    "InvalidNameError",
    "KeptContract",
    "LabelMove",
    "LabelState",
    "Listing",
    "LockTimeout",
    "OperationResult",
    "PushError",
    "PushResult",
    "Release",
    "ReleaseError",
    "ReleaseRefused",
    "ReleaseRequest",
    "ServerNotReady",
    "ServerWait",
    "ServingDir",
    "ServingState",
    "SignatureSpec",
    "Tag",
    "TensorSpec",
    "VersionInfo",
    "apply_serving_state",
    "batching_parameters_text",
    "check_label_rule",
    "describe_lock_holder",
    "fingerprint",
    "label_move_steps",
    "list_releases",
    "make_tag",
    "model_content_hash",
    "models_config_text",
    "parse_batching_parameters",
    "parse_models_config",
    "parse_tag",
    "promote",
    "prune",
    "read_contract",
    "read_models_config",
    "read_releases",
    "read_state",
    "release_version",
    "rollback",
    "set_traffic",
    "stable_version",
    "validate_channel",
    "validate_model_name",
    "write_batching_parameters",
]
