"""The TFX Trainer entry point: `run_fn(fn_args)`, referred to by module path."""

from __future__ import annotations

from typing import Any

from absl import logging

from components.trainer.features import load_schema, select_features


def train_and_export(
    train_files: list[str],
    eval_files: list[str],
    schema_path: str,
    serving_model_dir: str,
    config: dict[str, Any],
    train_steps: int,
    eval_steps: int,
) -> dict[str, float]:
    """Trains the model the schema and `config` describe and exports it; returns eval metrics.

    `config` holds the `model` and `trainer` sections of the pipeline config as plain dicts.
    """
    import tensorflow as tf

    from components.trainer.input_fn import make_dataset, numeric_stats
    from components.trainer.model import build_model, export_model
    from components.trainer.strategy import make_strategy

    mcfg, tcfg = config["model"], config["trainer"]
    schema = load_schema(schema_path)
    features, label = select_features(schema, mcfg["label"], mcfg["features"], mcfg["task"])
    tf.keras.utils.set_random_seed(tcfg["seed"])
    stats = numeric_stats(train_files, features, tcfg["normalization_sample"])

    strategy = make_strategy(tcfg.get("distribution", {}).get("communication", "auto"))
    workers = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_model(
            features, label, stats,
            hidden_units=mcfg["hidden_units"],
            learning_rate=tcfg["learning_rate"],
            embedding_threshold=mcfg["embedding_threshold"],
            embedding_dim=mcfg["embedding_dim"],
            hash_buckets=mcfg["hash_buckets"],
        )
    batch = tcfg["batch_size"]
    train_ds = make_dataset(train_files, features, label, batch, training=True,
                            seed=tcfg["seed"])
    eval_ds = make_dataset(eval_files, features, label, batch, training=False)
    # Keras runs whole epochs: train_steps is rounded up to a multiple of the epoch length.
    epochs = max(1, min(tcfg.get("epochs", 1), train_steps))
    steps_per_epoch = -(-train_steps // epochs)
    epochs = -(-train_steps // steps_per_epoch)
    import tf_keras as keras

    log_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: logging.info("epoch %d: %s", epoch + 1, logs)
    )
    history = model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_ds.repeat(),
        validation_steps=eval_steps,
        callbacks=[log_epoch],
        verbose=0,
    )
    logging.info("Trained on %d replica(s): %s", workers, history.history)
    export_model(model, features, label, serving_model_dir)
    return {k: float(v[-1]) for k, v in history.history.items()}


def run_fn(fn_args) -> None:
    """TFX Trainer hook. `fn_args.custom_config` carries the model and trainer config."""
    train_and_export(
        train_files=list(fn_args.train_files),
        eval_files=list(fn_args.eval_files),
        schema_path=fn_args.schema_path,
        serving_model_dir=fn_args.serving_model_dir,
        config=fn_args.custom_config,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
    )
