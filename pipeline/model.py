"""The Keras forecaster built around the custom cell: build, fit, export, free-run."""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from custom_layers import LSTMCell
from pipeline.errors import ParamError, TrainingDiverged

RNN_LAYER = "lstm"
VALIDATION_BATCH = 1024
SCALE_LAYER = "standardize"


def build_model(hidden_units, learning_rate, horizon=1, scale=None):
    """Input (batch, timesteps, 1), any window length → RNN(LSTMCell) → Dense(horizon).

    With `scale` = (mean, std), the model standardizes its input with them and
    maps its output back (`Normalization` and its inverse), so that it takes and
    returns raw values, and so does everything exported from it. Without it,
    the layers are absent and the model is the seed's. Compiled with Adam and MSE. XLA (`jit_compile=True`) is asked for
    explicitly: Keras leaves it off on CPU, where it trained the default workload
    about 1.6× faster per epoch (576 → 363 ms on a 2-core CPU).
    """
    inputs = keras.Input(shape=(None, 1), name="window")
    hidden = inputs
    if scale is not None:
        mean, std = scale
        hidden = keras.layers.Normalization(mean=mean, variance=std**2, name=SCALE_LAYER)(hidden)
    hidden = keras.layers.RNN(LSTMCell(hidden_units), name=RNN_LAYER)(hidden)
    forecast = keras.layers.Dense(horizon, name="forecast")(hidden)
    if scale is not None:
        forecast = keras.layers.Normalization(
            mean=mean, variance=std**2, invert=True, name="unstandardize"
        )(forecast)
    model = keras.Model(inputs, forecast, name="lstm_forecaster")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mse",
        jit_compile=True,
    )
    return model


def standard_scale(dataset):
    """(mean, std) of every value of the training split, inputs and targets."""
    values = np.concatenate([dataset["x_train"].ravel(), dataset["y_train"].ravel()]).astype(np.float64)
    std = values.std()
    return float(values.mean()), float(std) if std > 0 else 1.0


def epoch_batches(x, y, batch_size, seed, first_epoch, epochs):
    """A tf.data stream of the batches of epochs `first_epoch` to `epochs - 1` (0-based).

    Epoch e visits the windows in the order of a permutation drawn from
    numpy's generator seeded with (seed, e): an epoch's batches do not depend
    on where training started, so a run resumed from a checkpoint sees the very
    batches the uninterrupted run would have.
    Nothing is prefetched and tf.data's autotuning is off (`_without_autotune`).
    """
    import tensorflow as tf

    orders = np.stack([np.random.default_rng([seed, epoch]).permutation(len(x))
                       for epoch in range(first_epoch, epochs)])
    x, y = tf.constant(x), tf.constant(y)
    return _without_autotune(
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(
            (tf.gather(x, order), tf.gather(y, order))).batch(batch_size))
    )


def validation_batches(x, y):
    """The validation windows in batches of VALIDATION_BATCH: one where it fits,
    since the recurrence is sequential, fewer and larger batches validate
    faster; the mean loss is the same."""
    import tensorflow as tf

    return _without_autotune(tf.data.Dataset.from_tensor_slices((x, y)).batch(VALIDATION_BATCH))


def _without_autotune(dataset):
    """`dataset` with tf.data's autotuning off. Its optimisation thread is joined
    when an iterator is destroyed, and that join waited 1 to 10 s after early
    stopping in about a third of default runs (2-core CPU; a `py-spy dump`
    showed `~IteratorResource` waiting on it). The data is in memory already,
    so there is nothing to tune."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


@dataclass
class TrainingState:
    """What a checkpoint holds beside the weights: the history so far and the best epoch."""

    epochs_done: int = 0
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0: none yet
    best_val_loss: float = math.inf


class Training(keras.callbacks.Callback):
    """Keeps the best weights, stops early, stops at once on a NaN or infinite
    loss, and after every epoch writes a checkpoint and calls `on_epoch_end`."""

    def __init__(self, state, patience, checkpoint_dir=None, on_epoch_end=None, best_weights=None):
        super().__init__()
        self.state, self.patience = state, patience
        self.checkpoint_dir, self.on_epoch_end_hook = checkpoint_dir, on_epoch_end
        self.best_weights = best_weights

    def on_train_batch_end(self, batch, logs=None):
        self._check_finite("train_loss", logs["loss"], f"epoch {self.state.epochs_done + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        self._check_finite("val_loss", logs["val_loss"], f"epoch {epoch + 1}")
        state.epochs_done = epoch + 1
        state.train_loss.append(float(logs["loss"]))
        state.val_loss.append(float(logs["val_loss"]))
        if state.val_loss[-1] < state.best_val_loss:
            state.best_epoch, state.best_val_loss = state.epochs_done, state.val_loss[-1]
            self.best_weights = self.model.get_weights()
        if self.patience and state.epochs_done - state.best_epoch >= self.patience:
            self.model.stop_training = True
        if self.checkpoint_dir is not None:
            save_checkpoint(self.model, state, self.best_weights, self.checkpoint_dir)
        if self.on_epoch_end_hook is not None:
            self.on_epoch_end_hook(state.epochs_done, {"loss": state.train_loss[-1], "val_loss": state.val_loss[-1]})

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def _check_finite(self, name, value, where):
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"Training diverged: {name} became {value} at {where}. Try a lower learning rate "
                f"(-P learning_rate, now {float(self.model.optimizer.learning_rate.numpy()):g}), "
                "-P scaling=standard for a series of large values, or a smaller batch_size."
            )


def fit(model, dataset, epochs, batch_size, patience, seed=0, checkpoint_dir=None, on_epoch_end=None,
        resume=None):
    """Trains on the train split, validating on the val split after every epoch.

    Keeps the weights of the epoch with the lowest validation loss. With
    `patience` > 0, stops once that many epochs pass without improvement. A NaN
    or infinite loss raises TrainingDiverged at once. With `checkpoint_dir`, a
    checkpoint (see `save_checkpoint`) is written there after every epoch,
    before `on_epoch_end(epoch, logs)` is called with the 1-based epoch and the
    losses. `resume` is a checkpoint folder to continue from: weights,
    optimizer state and history, up to the same `epochs`.

    Returns the TrainingState: per-epoch losses and the 1-based best epoch.
    """
    state, best_weights = TrainingState(), None
    if resume is not None:
        state, best_weights = restore_checkpoint(model, resume)
    training = Training(state, patience, checkpoint_dir, on_epoch_end, best_weights)
    if state.epochs_done < epochs and not (patience and state.epochs_done - state.best_epoch >= patience):
        model.fit(
            epoch_batches(dataset["x_train"], dataset["y_train"], batch_size, seed, state.epochs_done, epochs),
            steps_per_epoch=math.ceil(len(dataset["x_train"]) / batch_size),
            validation_data=validation_batches(dataset["x_val"], dataset["y_val"]),
            initial_epoch=state.epochs_done,
            epochs=epochs,
            callbacks=[training],
            shuffle=False,  # epoch_batches shuffles, reproducibly
            verbose=0,
        )
    else:
        training.set_model(model)
        training.on_train_end()
    return state


# A checkpoint is two files: arrays in an .npz (read without pickle) and the
# training state as JSON.
CHECKPOINT_ARRAYS = "checkpoint.npz"
CHECKPOINT_STATE = "state.json"


def save_checkpoint(model, state, best_weights, folder):
    """Writes the weights, the optimizer's variables (Adam's step count and
    moments), the best weights so far and the training state to `folder`."""
    folder = Path(folder)
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)})
    arrays.update({f"best_{i}": w for i, w in enumerate(best_weights or [])})
    # Written under temporary names, then renamed: a checkpoint is whole or absent.
    np.savez(folder / f"partial-{CHECKPOINT_ARRAYS}", **arrays)
    (folder / f"partial-{CHECKPOINT_STATE}").write_text(json.dumps(asdict(state)))
    (folder / f"partial-{CHECKPOINT_ARRAYS}").replace(folder / CHECKPOINT_ARRAYS)
    (folder / f"partial-{CHECKPOINT_STATE}").replace(folder / CHECKPOINT_STATE)


def restore_checkpoint(model, folder):
    """Loads a checkpoint written by `save_checkpoint` into `model`, which must
    be built with the same parameters; returns (TrainingState, best weights)."""
    folder = Path(folder)
    try:
        state = TrainingState(**json.loads((folder / CHECKPOINT_STATE).read_text()))
        with np.load(folder / CHECKPOINT_ARRAYS, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, TypeError) as error:
        raise ParamError(f"Checkpoint {folder} cannot be read ({type(error).__name__}: {error}).") from None

    def numbered(prefix):
        return [arrays[f"{prefix}_{i}"] for i in range(sum(name.startswith(prefix) for name in arrays))]

    weights, optimizer_variables = numbered("weight"), numbered("optimizer")
    expected = [w.shape for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ParamError(
            f"Checkpoint {folder} holds weights of shapes {[w.shape for w in weights]}, but this model's "
            f"are {expected}: resume with the parameters of the run that wrote it."
        )
    model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    for variable, value in zip(model.optimizer.variables, optimizer_variables, strict=True):
        variable.assign(value)
    return state, numbered("best") or None


def load_model(path):
    """Loads a `.keras` file saved by `train`, with Keras' safe mode on: a file
    that would run pickled Python code (a `Lambda` layer) is refused. Any file
    that does not load is a ParamError naming it."""
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError, zipfile errors...
        reason = str(error).split("\n")[0][:300]
        raise ParamError(
            f"Model file {path} cannot be loaded as a Keras model saved by train, with safe_mode on "
            f"({type(error).__name__}: {reason})."
        ) from None


def export_saved_model(model, path):
    """Writes a TensorFlow SavedModel whose `serving_default` signature takes the
    input `window`, float32 (batch, timesteps, 1) with batch and timesteps both
    free, and returns the output `forecast`, float32 (batch, horizon).

    A second signature, `serve_xla`, computes the same with XLA: 3 to 4× faster
    for one window, but it compiles anew (some 0.4 s) for every new
    (batch, timesteps) shape, so it suits callers whose shapes repeat.
    """
    import tensorflow as tf

    window = [tf.TensorSpec(shape=(None, None, 1), dtype=tf.float32, name="window")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, jit_compile in (("serve", False), ("serve_xla", True)):
        archive.add_endpoint(
            name=name,
            fn=tf.function(lambda window: {"forecast": model(window, training=False)},
                           input_signature=window, jit_compile=jit_compile),
        )
    archive.write_out(path, verbose=False)


def rnn_input(model, window):
    """What the RNN layer reads for `window`: standardized, if the model scales."""
    if SCALE_LAYER in [layer.name for layer in model.layers]:
        return np.asarray(model.get_layer(SCALE_LAYER)(window))
    return window


def predict(model, x, batch_size=256):
    return model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0)


def free_run(model, window, n_steps):
    """Forecasts `n_steps` ahead from one window, feeding each prediction back.

    `window` is (timesteps, 1); the model always reads the latest `timesteps`
    values, of which more and more are its own predictions. With a horizon
    above 1, only the first forecast step is fed back.
    """
    context = np.asarray(window, dtype=np.float32)[np.newaxis].copy()
    forecasts = np.empty(n_steps, dtype=np.float32)
    for step in range(n_steps):
        forecasts[step] = model.predict_on_batch(context)[0, 0]
        context = np.concatenate([context[:, 1:], forecasts[step].reshape(1, 1, 1)], axis=1)
    return forecasts
