"""The Keras forecaster built around the custom cell: build, fit, export, free-run."""

import contextlib
import gc
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from custom_layers import LSTM, LSTMCell
from custom_layers import transforms
from pipeline.errors import ParamError, TrainingDiverged

RNN_LAYER = "lstm"  # the first member's; member i > 0 is `lstm_<i>`
SCALE_LAYER = "scale"
MEMBERS_LAYER = "members"
INTERVAL_LAYER = "interval"
FIT_WINDOW_LAYER = "fit_window"
FILL_MISSING_LAYER = "fill_missing"
# Where a run keeps its forecasting model as a .keras file (train, many, pretrain).
KERAS_MODEL = "keras_model/model.keras"
TO_SERIES_UNITS_LAYER = "to_series_units"
VALIDATION_BATCH = 1024


def build_model(hidden_units, learning_rate, horizon=1, scaling="none", scale=(0.0, 1.0), target="level",
                season=0, ensemble_size=1, fit_window=None, steps=None, deseasonalise="none", missing=False):
    """The training model: input (batch, timesteps, 1), any window length, raw
    values → `ensemble_size` members, each RNN(LSTMCell) → Dense(horizon), whose
    forecasts in the series' units come out stacked (batch, ensemble_size, horizon).

    `scaling` (`none`, `standard` with `scale` = (mean, std) of the training
    split, or `window`) and `target` (`level`, `last`, `seasonal` with `season`)
    are the layers of `custom_layers.transforms`. For `last` and `seasonal`, the
    output layer starts at zero: the untrained model is the naive forecast it
    corrects. The loss is the mean over members
    of each member's MSE, in the series' units, so each member learns as if
    alone. `forecasting_model` turns it into the model that is saved and
    served. With the defaults (`none`, `level`, one member) it computes the
    seed's model: LSTM(LSTMCell(hidden_units)) → Dense(horizon).

    `fit_window` and `steps` make a pretrained model's network serve another
    series (pipeline.pretrained): every window is first cut or padded to the
    `fit_window` values it was trained on (`transforms.FitWindow`), and only
    the first `steps` of its `horizon` forecasts come out.

    `deseasonalise` (`tested` or `always`, with `season` ≥ 2 and `fit_window`)
    divides each window by its own seasonal indices before anything else reads it
    and multiplies the forecasts by them (`transforms.Deseasonalise`; `tested`:
    only where M3's autocorrelation test finds a season in the window).

    `missing` (with `fit_window`): NaN in a window is a missing value (a short
    series' history before its start), masked rather than read as padding
    (`transforms.FillMissing`): the LSTM skips those steps and the window's
    scaling measures its visible values alone.

    Compiled with Adam, without XLA: each member's `custom_layers.LSTM` runs
    its sequence in TensorFlow's fused `BlockLSTM` kernel (up to 64 hidden
    units; see its `fused`), which XLA cannot compile (docs/performance.md has
    the measurements behind this).
    """
    mean, std = scale
    inputs = keras.Input(shape=(None, 1), name="window")
    window = inputs if fit_window is None else transforms.FitWindow(fit_window, missing, name=FIT_WINDOW_LAYER)(inputs)
    visible = None
    if missing:
        window, visible = transforms.FillMissing(name=FILL_MISSING_LAYER)(window)
    factors = None
    if deseasonalise != "none":
        window, factors = transforms.Deseasonalise(season, horizon, test=deseasonalise == "tested",
                                                   name="deseasonalise")(window)
    scaled, location, spread = transforms.Scale(scaling, mean, std, floor=1e-3 * std, name=SCALE_LAYER)(window,
                                                                                                        visible)
    to_series_units = transforms.ToSeriesUnits(target, season, name=TO_SERIES_UNITS_LAYER)
    members = []
    for member in range(ensemble_size):
        suffix = f"_{member}" if member else ""
        hidden = LSTM(LSTMCell(hidden_units), name=RNN_LAYER + suffix)(scaled, mask=visible)
        # Forecasting a change, a network that outputs 0 is the naive forecast it starts from:
        # it starts there, and training moves it only as far as the data supports.
        initializer = "glorot_uniform" if target == "level" else "zeros"
        output = keras.layers.Dense(horizon, kernel_initializer=initializer, name="forecast" + suffix)(hidden)
        if factors is None:
            if steps is not None:
                output = transforms.FirstSteps(steps, name="first_steps" + suffix)(output)
            forecast = to_series_units(output, window, location, spread)
        else:  # the season put back, at each step's position
            forecast = keras.layers.Multiply(name="reseasonalise" + suffix)(
                [to_series_units(output, window, location, spread), factors])
            if steps is not None:
                forecast = transforms.FirstSteps(steps, name="first_steps" + suffix)(forecast)
        members.append(keras.layers.Reshape((1, forecast.shape[-1]))(forecast))
    stacked = members[0] if ensemble_size == 1 else keras.layers.Concatenate(axis=1)(members)
    stacked = keras.layers.Identity(name=MEMBERS_LAYER)(stacked)
    model = keras.Model(inputs, stacked, name="lstm_forecaster_training")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=_members_mse(ensemble_size, horizon if steps is None else steps),
        jit_compile=False,
    )
    return model


# Keras matches the ranks of targets (batch, horizon) and outputs (batch, n,
# horizon) before calling a loss or metric function, by adding or dropping a
# unit axis; these functions restore both shapes first.

def _shaped(y_true, members, n, horizon):
    return keras.ops.reshape(y_true, (-1, 1, horizon)), keras.ops.reshape(members, (-1, n, horizon))


def _members_mse(n, horizon):
    """Mean over the n members of each member's mean squared error, per window."""
    def members_mse(y_true, members):
        y_true, members = _shaped(y_true, members, n, horizon)
        return keras.ops.mean(keras.ops.square(members - y_true), axis=(1, 2))
    return members_mse


def _member_mse(index, n, horizon):
    def member_mse(y_true, members):
        y_true, members = _shaped(y_true, members, n, horizon)
        return keras.ops.mean(keras.ops.square(members[:, index] - y_true[:, 0]), axis=-1)
    return member_mse


def _ensemble_mse(n, horizon):
    def ensemble_mse(y_true, members):
        y_true, members = _shaped(y_true, members, n, horizon)
        return keras.ops.mean(keras.ops.square(transforms.Median()(members) - y_true[:, 0]), axis=-1)
    return ensemble_mse


def forecasting_model(training_model, interval_level=0.9):
    """The model that is saved and served, sharing the training model's layers:
    window (batch, timesteps, 1) → {"forecast": the members' median,
    "lower", "upper": forecast ∓ the conformal half-width of each step}
    (batch, horizon) each, in the series' units. Call `calibrate` before use."""
    members = training_model.get_layer(MEMBERS_LAYER).output
    forecast = transforms.Median(name="median")(members)
    lower, upper = transforms.ConformalInterval(interval_level, name=INTERVAL_LAYER)(forecast)
    return keras.Model(training_model.inputs, {"forecast": forecast, "lower": lower, "upper": upper},
                       name="lstm_forecaster")


def calibrate(model, x_val, y_val):
    """Sets the interval's half-widths from the validation residuals of the
    forecast; returns them, one per horizon step."""
    residuals = np.asarray(y_val) - predict(model, x_val)["forecast"]
    return model.get_layer(INTERVAL_LAYER).calibrate(residuals)


def standard_scale(dataset):
    """(mean, std) of every value of the training split, inputs and targets."""
    values = np.concatenate([dataset["x_train"].ravel(), dataset["y_train"].ravel()]).astype(np.float64)
    std = values.std()
    return float(values.mean()), float(std) if std > 0 else 1.0


def epoch_order(n, seed, epoch):
    """The order in which epoch `epoch` (0-based) visits the n training windows:
    a permutation drawn from numpy's generator seeded with (seed, epoch). An
    epoch's batches do not depend on where training started, so a run resumed
    from a checkpoint sees the very batches the uninterrupted run would have."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


@dataclass
class TrainingState:
    """What a checkpoint holds beside the weights: the history so far and the best epoch."""

    epochs_done: int = 0
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0: none yet
    best_val_loss: float = math.inf


class _Steps:
    """The compiled function behind `fit`: a whole epoch, its training steps
    and then the validation pass, in one TensorFlow call.

    Keras' `fit` runs each batch through its callbacks, logs and data
    iterator; for the seed's 25 small batches that took about as long as the
    steps themselves. Here the epoch's while loop gathers each batch from the
    windows by the epoch's order and takes a step of what Keras' `train_step`
    does (the compiled loss with any regularization, its gradient, the
    compiled optimizer). It stops at the first batch whose loss is not finite
    and says which. Validation follows in the same call: one function to trace
    and optimize, not two.
    """

    def __init__(self, model, dataset, batch_size):
        import tensorflow as tf

        self.data = [tf.constant(dataset[name]) for name in ("x_train", "y_train", "x_val", "y_val")]
        n, variables, optimizer = len(dataset["x_train"]), model.trainable_variables, model.optimizer
        if not optimizer.built:  # its variables cannot be created inside the loop
            optimizer.build(variables)
        batches = math.ceil(n / batch_size)

        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(x, y, model(x, training=True), training=True)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        if model.jit_compile:  # XLA for the step, as Keras' fit does (build_model's model is not)
            train_step = tf.function(train_step, jit_compile=True, autograph=False)

        def train(order, x_train, y_train):
            def body(batch, loss_sum, first_bad, bad_loss):
                index = order[batch * batch_size:tf.minimum((batch + 1) * batch_size, n)]
                loss = train_step(tf.gather(x_train, index), tf.gather(y_train, index))
                finite = tf.math.is_finite(loss)
                first_bad, bad_loss = tf.where(finite, first_bad, batch), tf.where(finite, bad_loss, loss)
                return batch + 1, loss_sum + loss * tf.cast(tf.size(index), loss.dtype), first_bad, bad_loss

            _, loss_sum, first_bad, bad_loss = tf.while_loop(
                lambda batch, loss_sum, first_bad, bad_loss: tf.logical_and(batch < batches, first_bad < 0),
                body, (tf.constant(0), tf.constant(0.0), tf.constant(-1), tf.constant(0.0)),
                parallel_iterations=1)  # each step reads the weights the previous one wrote
            # The mean over windows, as Keras' logged loss.
            return {"loss": loss_sum / n, "first_bad_batch": first_bad, "bad_loss": bad_loss}

        def validate(x_val, y_val):
            sums, count = {}, x_val.shape[0]
            for start in range(0, count, VALIDATION_BATCH):  # one batch where it fits
                x, y = x_val[start:start + VALIDATION_BATCH], y_val[start:start + VALIDATION_BATCH]
                predicted = model(x, training=False)
                size = tf.cast(tf.shape(x)[0], "float32")
                batch_means = {"val_loss": model.compute_loss(x, y, predicted, training=False),
                               **_member_metrics(y, predicted)}
                for name, value in batch_means.items():
                    sums[name] = sums.get(name, 0.0) + value * size
            return {name: total / count for name, total in sums.items()}

        def epoch(order, x_train, y_train, x_val, y_val):
            return {**train(order, x_train, y_train), **validate(x_val, y_val)}

        self.epoch = tf.function(epoch, autograph=False)

    def run(self, order):
        """Trains one epoch in `order` and validates. Returns the logs (`loss`,
        `val_loss` and any member metrics, floats), and the 0-based index and
        loss of the first batch whose loss was not finite (-1 if none)."""
        logs = {name: value.numpy() for name, value in self.epoch(order, *self.data).items()}
        first_bad, bad_loss = int(logs.pop("first_bad_batch")), float(logs.pop("bad_loss"))
        return {name: float(value) for name, value in logs.items()}, first_bad, bad_loss


def _member_metrics(y, members):
    """For an ensemble's stacked forecasts (batch, n > 1, horizon): each
    member's mean squared error and the median's, as `val_member_<i>_mse` and
    `val_ensemble_mse`; nothing for one network."""
    if len(members.shape) != 3 or members.shape[1] == 1:
        return {}
    import tensorflow as tf

    n, horizon = members.shape[1], members.shape[2]
    metrics = {f"val_member_{i}_mse": tf.reduce_mean(_member_mse(i, n, horizon)(y, members)) for i in range(n)}
    metrics["val_ensemble_mse"] = tf.reduce_mean(_ensemble_mse(n, horizon)(y, members))
    return metrics


def fit(model, dataset, epochs, batch_size, patience, seed=0, checkpoint_dir=None, on_epoch_end=None,
        resume=None, restore_best=True):
    """Trains on the train split, validating on the val split after every epoch.

    Keeps the weights of the epoch with the lowest validation loss (with
    `restore_best` False, those of the last epoch: a refit whose epochs were
    chosen beforehand, whose val split is no longer held out). With
    `patience` > 0, stops once that many epochs pass without improvement. A NaN
    or infinite loss raises TrainingDiverged at once. With `checkpoint_dir`, a
    checkpoint (see `save_checkpoint`) is written there after every epoch,
    before `on_epoch_end(epoch, logs)` is called with the 1-based epoch and the
    losses (`loss`, `val_loss`, and for an ensemble `val_member_<i>_mse` and
    `val_ensemble_mse`).
    `resume` is a checkpoint folder to continue from: weights, optimizer state
    and history, up to the same `epochs`.

    The model is any compiled Keras model; each epoch's windows are visited in
    `epoch_order`. Returns the TrainingState: per-epoch losses and the 1-based
    best epoch. The loop is `train_epochs`, which a collection's model shares.
    """
    def steps():
        compiled = _Steps(model, dataset, batch_size)
        return lambda epoch: compiled.run(epoch_order(len(dataset["x_train"]), seed, epoch - 1))

    return train_epochs(model, steps, epochs, patience, checkpoint_dir, on_epoch_end, resume, restore_best)


SERIES_ADVICE = "-P scaling=standard for a series of large values, or a smaller batch_size"


def train_epochs(model, steps, epochs, patience, checkpoint_dir=None, on_epoch_end=None, resume=None,
                 restore_best=True, validated=True, advice=SERIES_ADVICE):
    """The one training loop, for a series' windows (`fit`) and a collection's
    (pipeline.global_model): early stopping on the validation loss, the best
    weights kept, a checkpoint after every epoch, resume, and a loss that is not
    finite refused at once.

    `steps()` is called once, before the first epoch is trained (it may compile,
    and build the optimizer): it returns `run(epoch)`, which trains the 1-based
    epoch and returns (logs with `loss` and, when `validated`, `val_loss`; the
    0-based index of the first batch whose loss was not finite, or -1; that
    loss). Without `validated` (a refit for epochs chosen beforehand), every
    epoch runs and the last weights stay. `advice` ends the divergence message,
    after the learning rate. Returns the TrainingState."""
    state, best_weights = TrainingState(), None
    if resume is not None:
        state, best_weights = restore_checkpoint(model, resume)

    def stopped_early():
        return validated and patience and state.epochs_done - state.best_epoch >= patience

    with _lean_first_epoch():
        run = None
        while state.epochs_done < epochs and not stopped_early():
            if run is None:
                run = steps()
                read_variables = _VariableReader(model)
            epoch = state.epochs_done + 1
            logs, first_bad, bad_loss = run(epoch)
            if first_bad >= 0:
                _diverged(model, "train_loss", bad_loss, f"epoch {epoch}, batch {first_bad + 1}", advice)
            if validated and not math.isfinite(logs["val_loss"]):
                _diverged(model, "val_loss", logs["val_loss"], f"epoch {epoch}", advice)
            state.epochs_done = epoch
            state.train_loss.append(logs["loss"])
            state.val_loss.append(logs["val_loss"] if validated else math.nan)
            improved = validated and state.val_loss[-1] < state.best_val_loss
            current = read_variables() if improved or checkpoint_dir is not None else None
            if improved:
                state.best_epoch, state.best_val_loss = epoch, state.val_loss[-1]
                best_weights = current[0]
            if checkpoint_dir is not None:
                save_checkpoint(model, state, best_weights, checkpoint_dir, current)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
    if best_weights is not None and restore_best and validated:
        model.set_weights(best_weights)
    return state


class _VariableReader:
    """The model's weights (as get_weights orders them) and its optimizer's
    variables, read in one TensorFlow call: (weights, optimizer variables), numpy
    arrays. The checkpoint needs them after every epoch; read one by one, each
    is its own trip into TensorFlow."""

    def __init__(self, model):
        import tensorflow as tf

        variables = list(model.weights) + list(model.optimizer.variables)
        self.n_weights = len(model.weights)
        self.read = tf.function(lambda: [tf.identity(v.value) for v in variables], autograph=False)

    def __call__(self):
        values = [tensor.numpy() for tensor in self.read()]
        return values[:self.n_weights], values[self.n_weights:]


@contextlib.contextmanager
def _lean_first_epoch():
    """While fit runs, Python's full garbage collections leave out the objects
    made so far: they walk every object TensorFlow, Keras and MLflow have made,
    and one during tracing took 0.2 s of the 0.35 s the first epoch cost.
    Restored when fit returns."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _diverged(model, name, value, where, advice=SERIES_ADVICE):
    raise TrainingDiverged(
        f"Training diverged: {name} became {value} at {where}. Try a lower learning rate "
        f"(-P learning_rate, now {float(model.optimizer.learning_rate.numpy()):g})" + (f", {advice}." if advice else ".")
    )


# A checkpoint is two files: arrays in an .npz (read without pickle) and the
# training state as JSON.
CHECKPOINT_ARRAYS = "checkpoint.npz"
# save_checkpoint writes a checkpoint's files under this prefix first, then renames them: a file
# that still has it is a checkpoint being written (or cut short by a signal), never one to keep.
PARTIAL_PREFIX = "partial-"
CHECKPOINT_STATE = "state.json"


def save_checkpoint(model, state, best_weights, folder, current=None):
    """Writes the weights, the optimizer's variables (Adam's step count and
    moments), the best weights so far and the training state to `folder`.
    `current`: (weights, optimizer variables) as already read, else they are read here."""
    folder = Path(folder)
    weights, optimizer_values = current if current is not None else (
        model.get_weights(), [np.asarray(v) for v in model.optimizer.variables])
    arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
    arrays.update({f"optimizer_{i}": v for i, v in enumerate(optimizer_values)})
    arrays.update({f"best_{i}": w for i, w in enumerate(best_weights or [])})
    # Written under temporary names, then renamed: a checkpoint is whole or absent.
    np.savez(folder / f"{PARTIAL_PREFIX}{CHECKPOINT_ARRAYS}", **arrays)
    (folder / f"{PARTIAL_PREFIX}{CHECKPOINT_STATE}").write_text(json.dumps(asdict(state)))
    (folder / f"{PARTIAL_PREFIX}{CHECKPOINT_ARRAYS}").replace(folder / CHECKPOINT_ARRAYS)
    (folder / f"{PARTIAL_PREFIX}{CHECKPOINT_STATE}").replace(folder / CHECKPOINT_STATE)


def checkpoint_state(folder):
    """The TrainingState (history, best epoch) a checkpoint folder holds."""
    return TrainingState(**json.loads((Path(folder) / CHECKPOINT_STATE).read_text()))


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
    that does not load, or is not a `forecasting_model`, is a ParamError naming it."""
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError, zipfile errors...
        reason = str(error).split("\n")[0][:300]
        raise ParamError(
            f"Model file {path} cannot be loaded as a Keras model saved by train, with safe_mode on "
            f"({type(error).__name__}: {reason})."
        ) from None
    if not isinstance(model.output, dict) or set(model.output) != {"forecast", "lower", "upper"}:
        raise ParamError(
            f"Model file {path} is a Keras model, but not a forecasting model as train saves it (outputs "
            "forecast, lower, upper): it was saved by an older version of this project or by other code; "
            "train it again."
        )
    return model


def export_saved_model(model, path):
    """Writes a TensorFlow SavedModel of a `forecasting_model` whose
    `serving_default` signature takes the input `window`, float32 (batch,
    timesteps, 1) with batch and timesteps both free, and returns the outputs
    `forecast`, `lower` and `upper`, float32 (batch, horizon) each. Its LSTM
    layers run in TensorFlow's fused `BlockLSTM` kernel.

    Two more signatures compute the same: `serve_stepwise` with standard
    operations only (the cell's step in a while loop), for a server built
    without TensorFlow's RNN kernels; and `serve_xla`, the cell's step
    compiled by XLA, which compiles anew (some 0.4 s) for every new
    (batch, timesteps) shape.
    """
    import tensorflow as tf

    from custom_layers import stepwise

    window = [tf.TensorSpec(shape=(None, None, 1), dtype=tf.float32, name="window")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    def serve(window):
        return model(window, training=False)

    archive.add_endpoint(name="serve", fn=tf.function(serve, input_signature=window))
    # Traced here, once, inside stepwise(): these graphs keep the cell's step-by-step
    # loop (XLA has no BlockLSTM kernel; serve_stepwise is for servers without TF's RNN kernels).
    for name, jit_compile in (("serve_xla", True), ("serve_stepwise", False)):
        function = tf.function(serve, input_signature=window, jit_compile=jit_compile)
        with stepwise():
            function.get_concrete_function()
        archive.add_endpoint(name=name, fn=function)
    archive.write_out(path, verbose=False)


def rnn_input(model, window):
    """What every member's RNN layer reads for `window`: the scaled window (the members share it)."""
    return np.asarray(model.get_layer(SCALE_LAYER)(np.asarray(window, np.float32))[0])


def member_cell(model, member=0):
    return model.get_layer(RNN_LAYER + (f"_{member}" if member else "")).cell


# Up to this many windows, one eager call of the model (some 20 ms for a series' windows) beats
# Keras' `predict`, which traces a function for every model it is given (0.2-0.3 s each;
# benchmarks/zero_shot.py). Both run the same kernels; only the batching differs (float32 round-off).
EAGER_WINDOWS = 1024


def predict(model, x, batch_size=256):
    """A forecasting model's outputs for windows x: {"forecast", "lower", "upper"}."""
    x = np.asarray(x, dtype=np.float32)
    if 0 < len(x) <= EAGER_WINDOWS:
        return {name: np.asarray(value) for name, value in model([x], training=False).items()}
    return model.predict(x, batch_size=batch_size, verbose=0)


def free_run(model, window, n_steps):
    """Forecasts `n_steps` ahead from one window, feeding each forecast back.

    `window` is (timesteps, 1); the model always reads the latest `timesteps`
    values, of which more and more are its own forecasts. With a horizon
    above 1, only the first forecast step is fed back.
    """
    context = np.asarray(window, dtype=np.float32)[np.newaxis].copy()
    forecasts = np.empty(n_steps, dtype=np.float32)
    for step in range(n_steps):
        forecasts[step] = np.asarray(model([context], training=False)["forecast"])[0, 0]
        context = np.concatenate([context[:, 1:], forecasts[step].reshape(1, 1, 1)], axis=1)
    return forecasts
