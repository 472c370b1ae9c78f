"""The TFX Trainer entry point, `run_fn(fn_args)`, and the training it runs in each worker.

Three ways to train, chosen by `run_fn`:
  - TF_CONFIG is set (pods of a TFJob, or workers started by hand): join that cluster;
  - `trainer.distribution.workers` > 1: start that many local worker processes on loopback;
  - otherwise: train in this process with a single-worker MultiWorkerMirroredStrategy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from absl import logging

from components.trainer.cluster import ClusterTask
from components.trainer.features import load_schema, select_features


def train_and_export(
    train_files: list[str],
    eval_files: list[str],
    schema_path: str,
    serving_model_dir: str,
    config: dict[str, Any],
    train_steps: int,
    eval_steps: int,
    *,
    backup_dir: str | None = None,
    cluster: ClusterTask | None = None,
    on_strategy_ready=None,
) -> dict[str, float]:
    """Trains the model the schema and `config` describe and exports it; returns eval metrics.

    Args:
      config: the `model` and `trainer` sections of the pipeline config, as plain dicts.
      backup_dir: where BackupAndRestore keeps its checkpoints, so that a restarted worker
        group resumes from the last finished epoch (None: no backups).
      on_strategy_ready: called once every worker of the cluster has been reached.
      cluster: this worker's place in a multi-worker cluster (None: single worker).
        Only the chief writes `serving_model_dir`; the others export to a temporary directory
        (saving is collective) that is removed.
    """
    from components.trainer.strategy import start_strategy

    mcfg, tcfg = config["model"], config["trainer"]
    dist = tcfg.get("distribution", {})
    # The strategy comes first: collective ops must be configured before any other TF op.
    strategy = start_strategy(
        dist.get("communication", "auto"),
        cluster.peers() if cluster else [],
        collective_timeout=dist.get("collective_timeout_seconds"),
    )
    if on_strategy_ready is not None:
        on_strategy_ready()
    import tf_keras as keras

    from components.trainer.input_fn import make_dataset, numeric_stats
    from components.trainer.model import build_model, export_model

    schema = load_schema(schema_path)
    features, label = select_features(schema, mcfg["label"], mcfg["features"], mcfg["task"])
    keras.utils.set_random_seed(tcfg["seed"])
    # Every worker computes the same statistics: the first N records of the sorted files.
    stats = numeric_stats(train_files, features, tcfg["normalization_sample"])
    with strategy.scope():
        model = build_model(
            features, label, stats,
            hidden_units=mcfg["hidden_units"],
            learning_rate=tcfg["learning_rate"],
            embedding_threshold=mcfg["embedding_threshold"],
            embedding_dim=mcfg["embedding_dim"],
            hash_buckets=mcfg["hash_buckets"],
        )
    workers = cluster.num_workers if cluster else 1
    index = cluster.index if cluster else 0
    # Each worker reads its own shard; tf.distribute splits each worker's batch of
    # (per-worker batch x workers) across all replicas, so each worker steps on its batch size.
    global_batch = tcfg["batch_size"] * workers
    train_ds = make_dataset(train_files, features, label, global_batch, training=True,
                            seed=tcfg["seed"], num_shards=workers, shard_index=index)
    eval_ds = make_dataset(eval_files, features, label, global_batch, training=False,
                           num_shards=workers, shard_index=index)
    # Keras runs whole epochs: train_steps is rounded up to a multiple of the epoch length.
    epochs = max(1, min(tcfg.get("epochs", 1), train_steps))
    steps_per_epoch = -(-train_steps // epochs)
    epochs = -(-train_steps // steps_per_epoch)

    first_epoch: list[int] = []

    def say(line: str) -> None:
        # A worker's stdout is streamed into the run's log by its launcher; in-process, the
        # log is enough (stdout may carry a JSON result).
        logging.info(line)
        if cluster is not None:
            print(line, flush=True)

    def on_epoch_begin(epoch, logs=None):
        if not first_epoch:
            first_epoch.append(epoch)
            if epoch > 0:
                say(f"resumed from backup at epoch {epoch + 1} of {epochs}")

    def on_epoch_end(epoch, logs=None):
        say(f"epoch {epoch + 1}/{epochs} done: "
            + ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items()))

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin,
                                                on_epoch_end=on_epoch_end)]
    if backup_dir:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir))
    history = model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_ds.repeat(),
        validation_steps=eval_steps,
        callbacks=callbacks,
        verbose=0,
    )
    logging.info("trained on %d replica(s)", strategy.num_replicas_in_sync)
    chief = cluster is None or cluster.is_chief
    export_dir = serving_model_dir if chief else tempfile.mkdtemp(prefix=f"worker-{index}-")
    try:
        export_model(model, features, label, export_dir)
    finally:
        if not chief:
            shutil.rmtree(export_dir, ignore_errors=True)
    return {k: float(v[-1]) for k, v in history.history.items()}


def job_spec(fn_args) -> dict[str, Any]:
    """Everything a worker process needs to train, as JSON-able data."""
    return {
        "train_files": list(fn_args.train_files),
        "eval_files": list(fn_args.eval_files),
        "schema_path": fn_args.schema_path,
        "serving_model_dir": fn_args.serving_model_dir,
        "config": fn_args.custom_config,
        "train_steps": fn_args.train_steps,
        "eval_steps": fn_args.eval_steps,
        "backup_dir": os.path.join(fn_args.model_run_dir, "backup"),
    }


def run_fn(fn_args) -> None:
    """TFX Trainer hook. `fn_args.custom_config` carries the model and trainer config."""
    from components.trainer.cluster import parse_tf_config

    spec = job_spec(fn_args)
    dist = spec["config"]["trainer"].get("distribution", {})
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config and dist.get("workers", 1) <= 1:
        train_and_export(**spec)
        return
    # Workers run in processes of their own: collective ops must be set up at the start of a
    # process, and a worker whose peers never come is ended by its watchdog, not this process.
    from components.trainer.launcher import run_cluster_worker, run_local_workers

    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    spec_path = os.path.join(fn_args.model_run_dir, "job.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    if tf_config:
        cluster = parse_tf_config(tf_config)
        logging.info("joining the TF_CONFIG cluster as worker %d of %d",
                     cluster.index, cluster.num_workers)
        run_cluster_worker(spec_path, tf_config)
    else:
        run_local_workers(
            spec_path,
            dist["workers"],
            max_restarts=dist.get("max_restarts", 2),
            state_file=os.path.join(fn_args.model_run_dir, "workers.json"),
        )
