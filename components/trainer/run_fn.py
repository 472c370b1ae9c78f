"""The TFX Trainer entry point, `run_fn(fn_args)`, and the training it runs in each worker.

Three ways to train, chosen by `run_fn`:
  - TF_CONFIG is set (pods of a TFJob, or workers started by hand): join that cluster;
  - `trainer.distribution.workers` > 1: start that many local worker processes on loopback;
  - otherwise: train in this process with a single-worker MultiWorkerMirroredStrategy.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from absl import logging

from components.trainer.cluster import ClusterTask
from components.trainer.features import load_schema, select_features
from components.trainer.progress import ProgressWriter
from components.trainer.settings import TrainerCustomConfig, TrainJob


def train_and_export(
    job: TrainJob,
    *,
    cluster: ClusterTask | None = None,
    on_strategy_ready=None,
    progress_file: str | None = None,
) -> dict[str, float]:
    """Trains the model the schema and `job.model` describe and exports it; returns eval metrics.

    Args:
      cluster: this worker's place in a multi-worker cluster (None: single worker).
        Only the chief writes `job.serving_model_dir`; the others export to a temporary
        directory (saving is collective) that is removed.
      on_strategy_ready: called once every worker of the cluster has been reached.
      progress_file: where to report progress for the local launcher (components/trainer/
        progress.py): first once every worker is reached, then batches, evaluation, epochs
        and the export.
    """
    from components.trainer.strategy import start_strategy

    mcfg, tcfg = job.model, job.trainer
    # The strategy comes first: collective ops must be configured before any other TF op.
    strategy = start_strategy(
        tcfg.distribution.communication,
        cluster.peers() if cluster else [],
        collective_timeout=tcfg.distribution.collective_timeout_seconds,
    )
    if on_strategy_ready is not None:
        on_strategy_ready()
    # Keras runs whole epochs: train_steps is rounded up to a multiple of the epoch length.
    train_steps = job.train_steps
    epochs = max(1, min(tcfg.epochs, train_steps))
    steps_per_epoch = -(-train_steps // epochs)
    epochs = -(-train_steps // steps_per_epoch)
    index = cluster.index if cluster else 0
    progress = ProgressWriter(progress_file, index, epochs) if progress_file else None
    if progress:
        progress.report("starting", force=True)
    import tf_keras as keras

    from components.trainer.input_fn import make_dataset, numeric_stats
    from components.trainer.model import build_model, export_model

    schema = load_schema(job.schema_path)
    features, label = select_features(schema, mcfg.label, mcfg.features, mcfg.task)
    keras.utils.set_random_seed(tcfg.seed)
    # Every worker computes the same statistics: the first N records of the sorted files.
    stats = numeric_stats(job.train_files, features, tcfg.normalization_sample)
    with strategy.scope():
        model = build_model(features, label, stats, mcfg, learning_rate=tcfg.learning_rate)
    workers = cluster.num_workers if cluster else 1
    # Each worker reads its own shard; tf.distribute splits each worker's batch of
    # (per-worker batch x workers) across all replicas, so each worker steps on its batch size.
    global_batch = tcfg.batch_size * workers
    train_ds = make_dataset(job.train_files, features, label, global_batch, training=True,
                            seed=tcfg.seed, num_shards=workers, shard_index=index)
    eval_ds = make_dataset(job.eval_files, features, label, global_batch, training=False,
                           num_shards=workers, shard_index=index)
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

    def on_train_end(logs=None):
        if not first_epoch:  # every epoch was in the backup: a restart after the training
            say(f"resumed from backup after the last epoch ({epochs} of {epochs}): "
                "only the export is left")

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin,
                                                on_epoch_end=on_epoch_end,
                                                on_train_end=on_train_end)]
    if job.backup_dir:
        # Kept through the export (removed below): a chief that dies while exporting is
        # restarted from the finished training, not from the first epoch.
        callbacks.insert(0, keras.callbacks.BackupAndRestore(job.backup_dir,
                                                             delete_checkpoint=False))
    if progress:
        callbacks.append(_progress_callback(keras, progress))
    history = model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_ds.repeat(),
        validation_steps=job.eval_steps,
        callbacks=callbacks,
        verbose=0,
    )
    logging.info("trained on %d replica(s)", strategy.num_replicas_in_sync)
    chief = cluster is None or cluster.is_chief
    export_dir = job.serving_model_dir if chief else tempfile.mkdtemp(prefix=f"worker-{index}-")
    say("exporting the model" if chief else "exporting (collective; the chief's copy is kept)")
    if progress:
        progress.report("exporting", force=True)
    try:
        export_model(model, features, label, export_dir)
    finally:
        if not chief:
            shutil.rmtree(export_dir, ignore_errors=True)
    if chief and job.backup_dir:
        shutil.rmtree(job.backup_dir, ignore_errors=True)
    if progress:
        progress.report("exported", force=True)
    return {k: float(v[-1]) for k, v in history.history.items()}


def _progress_callback(keras, progress: ProgressWriter):
    """Reports each finished batch (train and eval) and epoch; costs microseconds a batch."""

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # logs unused: no per-batch conversion to numpy

        def on_epoch_begin(self, epoch, logs=None):
            progress.report("training", epoch=epoch + 1, batch=0, force=True)

        def on_train_batch_end(self, batch, logs=None):
            progress.report("training", batch=batch + 1)

        def on_test_begin(self, logs=None):
            progress.report("evaluating", batch=0)

        def on_test_batch_end(self, batch, logs=None):
            progress.report("evaluating", batch=batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            progress.report("epoch done", force=True)

    return Progress()


def job_spec(fn_args) -> TrainJob:
    """The job of this Trainer run: TFX's inputs and the settings rebuilt from custom_config.

    Raises:
      ConfigDataError: `custom_config` is not the settings the pipeline hands the Trainer.
    """
    settings = TrainerCustomConfig.from_custom_config(fn_args.custom_config)
    return TrainJob(
        train_files=list(fn_args.train_files),
        eval_files=list(fn_args.eval_files),
        schema_path=fn_args.schema_path,
        serving_model_dir=fn_args.serving_model_dir,
        model=settings.model,
        trainer=settings.trainer,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        backup_dir=os.path.join(fn_args.model_run_dir, "backup"),
    )


def run_fn(fn_args) -> None:
    """TFX Trainer hook. `fn_args.custom_config` carries the model and trainer settings."""
    from components.trainer.cluster import parse_tf_config

    job = job_spec(fn_args)
    dist = job.trainer.distribution
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config and dist.workers <= 1:
        train_and_export(job)
        return
    # Workers run in processes of their own: collective ops must be set up at the start of a
    # process, and a worker whose peers never come is ended by its watchdog, not this process.
    from components.trainer.launcher import run_cluster_worker, run_local_workers

    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    spec_path = os.path.join(fn_args.model_run_dir, "job.json")
    job.write(spec_path)
    if tf_config:
        cluster = parse_tf_config(tf_config)
        logging.info("joining the TF_CONFIG cluster as worker %d of %d",
                     cluster.index, cluster.num_workers)
        run_cluster_worker(spec_path, tf_config)
    else:
        run_local_workers(
            spec_path, state_file=os.path.join(fn_args.model_run_dir, "workers.json")
        )
