"""One network for a whole collection: trained on windows drawn from every
series, chosen and calibrated on each series' validation window.

The network is `pipeline.model`'s (per-window scaling, the `level`/`last`/
`seasonal` targets, the ensemble); what changes is the loss. Series of a
collection differ in scale by orders of magnitude, so the loss is each
window's mean absolute error divided by its spread s = mean |x| + std x
(`transforms.WindowSpread`): scale-free like the sMAPE the competitions score,
and robust to the odd wild series. s never falls below its series' own scale
(`collection.series_scales`, MASE's mean absolute step), so a window of zeros
weighs like any other instead of dividing by nothing. The intervals are
conformal in the same units: forecast ∓ q_k · s, s floored at the smallest
series scale (a served model sees a window, not its series).
"""

from dataclasses import dataclass, field

import keras
import numpy as np

from custom_layers import transforms
from pipeline import collection as coll
from pipeline import model as forecaster
from pipeline.errors import TrainingDiverged

SPREAD_LAYER = "spread"


@dataclass
class GlobalSettings:
    input_width: int
    horizon: int
    hidden_units: int = 50
    learning_rate: float = 0.001
    batch_size: int = 256
    epochs: int = 100
    patience: int = 10
    target: str = "level"
    season: int = 0
    ensemble_size: int = 1
    # Each member's training loss, member i taking losses[i % len(losses)] (MEMBER_LOSSES); () : all "mase".
    losses: tuple = ()
    windows_per_series: int = 0  # 0: every window
    # > 0: each training window shows only its last v values, v drawn from [min_visible, input_width], the rest
    # padded with the first of them (as a short series is): the model learns to forecast from short histories.
    min_visible: int = 0
    # "tested" / "always": each window divided by its own seasonal indices (transforms.Deseasonalise).
    deseasonalise: str = "none"
    # "pad": a window reaching back before its series' start reads the series' first value (the padding
    # rule); "mask": those values are missing, the LSTM skips them and the window's scale ignores them.
    short_history: str = "pad"
    interval_level: float = 0.9
    seed: int = 42


@dataclass
class History:
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = 0
    windows_per_epoch: int = 0


def build(settings, typical_std=1.0, spread_floor=0.0):
    """The training model (members stacked) and the forecasting model
    (forecast, lower, upper) sharing its layers, with relative intervals in units
    of each window's spread, at least `spread_floor` (`spread_floor`, below)."""
    keras.utils.set_random_seed(settings.seed)
    training = forecaster.build_model(settings.hidden_units, settings.learning_rate, settings.horizon, "window",
                                      (0.0, typical_std), settings.target, settings.season, settings.ensemble_size,
                                      fit_window=settings.input_width, deseasonalise=settings.deseasonalise,
                                      missing=settings.short_history == "mask")
    # Any window serves: cut or padded to the input width trained on (so the model can be a pretrained init).
    window, visible = training.get_layer(forecaster.FIT_WINDOW_LAYER).output, None
    if masked(training):
        window, visible = training.get_layer(forecaster.FILL_MISSING_LAYER).output
    members = training.get_layer(forecaster.MEMBERS_LAYER).output
    forecast = transforms.Median(name="median")(members)
    spread = transforms.WindowSpread(spread_floor, name=SPREAD_LAYER)(window, visible)
    lower, upper = transforms.ConformalInterval(settings.interval_level, relative=True,
                                                name=forecaster.INTERVAL_LAYER)(forecast, spread)
    serving = keras.Model(training.inputs, {"forecast": forecast, "lower": lower, "upper": upper}, name="lstm_forecaster")
    return training, serving


def masked(model):
    """Whether `model` (training or serving) masks a short series' missing history (NaN in its windows):
    the model knows, whatever the settings of a later stage say."""
    return any(layer.name == forecaster.FILL_MISSING_LAYER for layer in model.layers)


def gather_windows(model, collection, settings, rows, ends):
    """`collection.gather`'s windows and targets for `model`: where it masks (short_history
    "mask"), NaN where a window reaches back before its series' start."""
    x, y = coll.gather(collection.values, rows, ends, settings.input_width, settings.horizon)
    if masked(model):
        columns = ends[:, None] + np.arange(-settings.input_width, 0)
        x = np.where((columns < (collection.width - collection.lengths)[rows, None])[:, :, None], np.nan, x)
    return x, y


def build_for(settings, collection, holdout=0):
    """`build` scaled for `collection`, from its points before the last `holdout`."""
    return build(settings, typical_std(collection, holdout), spread_floor(collection, holdout))


# The losses an ensemble's members can learn with, each aligned with a metric the competitions score
# and each floored by the window's spread s (at least its series' scale), so none divides by nothing:
# "mase" |f - y| / s; "smape" 2 |f - y| / max(|f| + |y|, s); "mape" |f - y| / max(|y|, s).
MEMBER_LOSSES = ("mase", "smape", "mape")


def window_losses(members, x, y, scales, losses=(), masked=False):
    """The training loss of each window: the mean over members (batch, n, horizon)
    of each member's loss against y (batch, horizon) (member i: losses[i % len],
    MEMBER_LOSSES; default "mase", the mean absolute error in units of the window's
    spread of x (batch, width, 1; `masked`: NaN where a value is missing, the visible
    values' spread), at least its series' scale (batch,))."""
    from keras import ops

    window_spread = _SPREAD(*_FILL(x)) if masked else _SPREAD(x)
    spread = ops.maximum(window_spread, ops.cast(scales, x.dtype)[:, None])[:, :, None]  # (batch, 1, 1)
    error = ops.abs(members - y[:, None, :])
    if not losses or set(losses) == {"mase"}:
        return ops.mean(error / spread, axis=(1, 2))
    n = members.shape[1]
    kinds = [losses[i % len(losses)] for i in range(n)]
    denominators = {"mase": lambda f: spread,
                    "smape": lambda f: 0.5 * ops.maximum(ops.abs(f) + ops.abs(y[:, None, :]), spread),
                    "mape": lambda f: ops.maximum(ops.abs(y[:, None, :]), spread)}
    terms = [ops.mean(error[:, i:i + 1] / denominators[kind](members[:, i:i + 1]), axis=(1, 2))
             for i, kind in enumerate(kinds)]
    return ops.mean(ops.stack(terms, axis=1), axis=1)


def median_loss(members, x, y, scales, masked=False):
    """Each window's validation loss: the members' median (the served forecast) in
    units of the window's spread, at least its series' scale (one member: its loss)."""
    return window_losses(_MEDIAN(members)[:, None, :], x, y, scales, masked=masked)


_SPREAD = transforms.WindowSpread()
_MEDIAN = transforms.Median()
_FILL = transforms.FillMissing()


class _Epoch:
    """One epoch in one TensorFlow call: batches gathered from the collection's
    matrix by (row, end) inside the loop, then the validation windows' loss."""

    def __init__(self, model, values, scales, settings, x_val, y_val, val_scales, starts=None):
        import tensorflow as tf

        self.values, self.scales = tf.constant(values), tf.constant(scales)
        # With `starts` (each series' first column), values before them are missing (NaN): masked.
        self.starts = tf.constant(np.zeros(len(values), np.int32) if starts is None else starts.astype(np.int32))
        mask = starts is not None
        validate = x_val is not None and len(x_val) > 0
        empty = np.zeros((0, settings.input_width, 1), np.float32), np.zeros((0, settings.horizon), np.float32)
        self.x_val, self.y_val = (tf.constant(x_val), tf.constant(y_val)) if validate else map(tf.constant, empty)
        self.val_scales = tf.constant(val_scales if validate else np.zeros(0, np.float32))
        width, horizon, batch_size = settings.input_width, settings.horizon, settings.batch_size
        variables, optimizer = model.trainable_variables, model.optimizer
        if not optimizer.built:
            optimizer.build(variables)
        offsets = tf.range(-width, horizon)
        min_visible = settings.min_visible

        losses = tuple(settings.losses)

        def loss_of(x, y, scale, training):
            return window_losses(model(x, training=training), x, y, scale, losses, mask)

        def validation_loss_of(x, y, scale):
            return median_loss(model(x, training=False), x, y, scale, mask)

        def hide_early_values(x, seed):
            visible = tf.random.stateless_uniform(tf.shape(x)[:1], seed, min_visible, width + 1, tf.int32)
            if mask:
                return tf.where(tf.range(width)[None, :] < (width - visible)[:, None], float("nan"), x)
            positions = tf.maximum(tf.range(width)[None, :], (width - visible)[:, None])
            return tf.gather(x, positions, batch_dims=1)

        def train(rows, ends, values, scales, starts, seed):
            n = tf.shape(rows)[0]
            batches = (n + batch_size - 1) // batch_size

            def body(batch, total, bad):
                start = batch * batch_size
                stop = tf.minimum(start + batch_size, n)
                columns = ends[start:stop, None] + offsets
                taken = tf.gather(values, rows[start:stop])
                taken = tf.gather(taken, tf.maximum(columns, 0), batch_dims=1)
                x, y = taken[:, :width], taken[:, width:]
                if mask:  # before its series' start, a value is missing
                    before = columns[:, :width] < tf.gather(starts, rows[start:stop])[:, None]
                    x = tf.where(before, float("nan"), x)
                if min_visible:
                    x = hide_early_values(x, tf.stack([seed, tf.cast(batch, tf.int64)]))
                x = x[:, :, None]
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(loss_of(x, y, tf.gather(scales, rows[start:stop]), True))
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                bad = tf.where(tf.math.is_finite(loss), bad, batch)
                return batch + 1, total + loss * tf.cast(stop - start, loss.dtype), bad

            _, total, bad = tf.while_loop(lambda batch, total, bad: tf.logical_and(batch < batches, bad < 0), body,
                                          (tf.constant(0), tf.constant(0.0), tf.constant(-1)), parallel_iterations=1)
            return total / tf.cast(n, total.dtype), bad

        def epoch(rows, ends, values, scales, starts, x_val, y_val, val_scales, seed):
            loss, bad = train(rows, ends, values, scales, starts, seed)
            if not validate:
                return loss, bad, tf.constant(float("nan"))
            val = [validation_loss_of(x_val[i:i + 4096], y_val[i:i + 4096], val_scales[i:i + 4096])
                   for i in range(0, x_val.shape[0], 4096)]
            return loss, bad, tf.reduce_mean(tf.concat(val, 0))

        self.epoch = tf.function(epoch, autograph=False)

    def run(self, rows, ends, seed=0):
        import tensorflow as tf

        loss, bad, val_loss = self.epoch(rows, ends, self.values, self.scales, self.starts, self.x_val, self.y_val,
                                         self.val_scales, tf.constant(seed, tf.int64))
        return float(loss), int(bad), float(val_loss)


def fit(training, collection, settings, on_epoch_end=None, folds=None, checkpoint_dir=None, resume=None,
        every_point=None):
    """Trains on every series' windows whose targets precede the earliest
    validation cut-off of `folds` (default: one, the `horizon` points before the
    test), keeping the weights of the epoch with the lowest validation loss over
    every series at every validation cut-off; stops after `patience` epochs
    without improvement. Returns History.

    `every_point` (a bool per series; a pretraining corpus' series too short for
    a training window before the validation cut-off) marks series that train on
    every window of all their points and are never validated on: nothing they
    train on is looked at, so the epoch is still chosen out of sample.

    With `checkpoint_dir`, a checkpoint (`pipeline.model.save_checkpoint`: the
    weights, Adam's state, the best weights, the history) is written there after
    every epoch; `resume` is such a folder to continue from, to the same bits:
    an epoch's windows are drawn from (seed, epoch) alone. The loop is the one a
    series trains with (pipeline.model.train_epochs)."""
    width, horizon = settings.input_width, settings.horizon
    folds = folds or coll.Folds(horizon)
    rows, ends = coll.training_windows(collection, width, horizon, folds.holdout("select"))
    val_rows, val_ends = coll.validation_windows(collection, folds)
    scales = coll.series_scales(collection, folds.holdout("select"))
    if every_point is not None and np.any(every_point):
        rows, ends, val_rows, val_ends, scales = _with_every_point(collection, settings, every_point, rows, ends,
                                                                   val_rows, val_ends, scales)
    if not len(rows):
        raise TrainingDiverged("No series has a training window before the first validation cut-off: every series "
                               "is shorter than the holdout needs.")
    x_val, y_val = gather_windows(training, collection, settings, val_rows, val_ends)
    steps, windows = _epochs(training, collection, scales, settings, rows, ends, x_val, y_val, scales[val_rows])
    state = forecaster.train_epochs(training, steps, settings.epochs, settings.patience, checkpoint_dir,
                                    on_epoch_end, resume, advice=None)
    return History(state.train_loss, state.val_loss, state.best_epoch, windows[0])


def _with_every_point(collection, settings, every_point, rows, ends, val_rows, val_ends, scales):
    """`fit`'s windows and scales with the `every_point` series' windows over all their
    points instead of those before the holdout, and none of their validation windows."""
    every_point = np.asarray(every_point, bool)
    all_rows, all_ends = coll.training_windows(collection, settings.input_width, settings.horizon, 0)
    keep, extra = ~every_point[rows], every_point[all_rows]
    rows, ends = np.concatenate([rows[keep], all_rows[extra]]), np.concatenate([ends[keep], all_ends[extra]])
    order = np.argsort(rows, kind="stable")  # sample_windows reads each series' windows together, in row order
    validated = ~every_point[val_rows]
    scales = np.where(every_point, coll.series_scales(collection, 0), scales).astype(np.float32)
    return rows[order], ends[order], val_rows[validated], val_ends[validated], scales


def refit(training, collection, settings, epochs, holdout, on_epoch_end=None):
    """Trains a new network for exactly `epochs` epochs (what validation chose) on
    every window whose targets precede the last `holdout` points (0: every point),
    with no early stopping: nothing it forecasts is looked at. Returns History
    (no validation loss)."""
    rows, ends = coll.training_windows(collection, settings.input_width, settings.horizon, holdout)
    if not len(rows):
        raise TrainingDiverged("No series has a training window for the refit.")
    steps, windows = _epochs(training, collection, coll.series_scales(collection, holdout), settings, rows, ends)
    state = forecaster.train_epochs(training, steps, epochs, 0, on_epoch_end=on_epoch_end, validated=False,
                                    advice=None)
    return History(state.train_loss, best_epoch=epochs, windows_per_epoch=windows[0])


def _epochs(training, collection, scales, settings, rows, ends, x_val=None, y_val=None, val_scales=None):
    """For pipeline.model.train_epochs: (steps, [windows in the last epoch]). An epoch
    draws its windows from (seed, epoch) alone (coll.sample_windows), so a resumed
    run trains on the very windows the uninterrupted one would have."""
    windows = [0]

    def steps():
        validation = None if x_val is None else (x_val.astype(np.float32), y_val.astype(np.float32))
        starts = (collection.width - collection.lengths) if masked(training) else None
        epoch_steps = _Epoch(training, collection.values, scales, settings, *(validation or (None, None)), val_scales,
                             starts)

        def run(epoch):
            epoch_rows, epoch_ends = coll.sample_windows(rows, ends, settings.windows_per_series, settings.seed,
                                                         epoch - 1)
            windows[0] = len(epoch_rows)
            loss, bad, val_loss = epoch_steps.run(epoch_rows, epoch_ends, settings.seed * 100_003 + epoch)
            return {"loss": loss, **({"val_loss": val_loss} if validation is not None else {})}, bad, loss

        return run

    return steps, windows


def spread_floor(collection, holdout=0):
    """The served model's least spread: the smallest series scale, on the points
    before the last `holdout` (a window of zeros then has intervals of that scale)."""
    return float(coll.series_scales(collection, holdout).min())


def typical_std(collection, holdout=0):
    """The median over series of each series' spread, on the points before the last
    `holdout` (the window scaling's floor is a thousandth of it); 1 when that is 0."""
    seen = collection.values[:, :collection.width - holdout] if holdout else collection.values
    spreads = np.concatenate([np.std(seen[start:start + coll.ROWS_AT_ONCE], axis=1)
                              for start in range(0, len(seen), coll.ROWS_AT_ONCE)])
    return float(np.median(spreads)) or 1.0


def forecast_split(serving, collection, settings, split):
    """{"forecast", "lower", "upper"} (n_series, horizon) from each series' one origin for `split`."""
    rows = np.arange(len(collection), dtype=np.int32)
    x, y = gather_windows(serving, collection, settings, rows,
                          np.full(len(collection), coll.origin(collection, settings.horizon, split), np.int32))
    out = forecaster.predict(serving, x, batch_size=4096)
    return {name: np.asarray(value, np.float64) for name, value in out.items()}, x, y


def calibrate(serving, collection, settings, folds=None):
    """Sets the relative interval half-widths, step by step, from the residuals of
    every series at every validation cut-off of `folds`: returns them."""
    folds = folds or coll.Folds(settings.horizon)
    rows, ends = coll.validation_windows(collection, folds)
    x, y = gather_windows(serving, collection, settings, rows, ends)
    out = forecaster.predict(serving, x, batch_size=4096)
    window = x.astype(np.float32)
    spread = np.asarray(serving.get_layer(SPREAD_LAYER)(*(_FILL(window) if masked(serving) else (window,))))
    return serving.get_layer(forecaster.INTERVAL_LAYER).calibrate(y - np.asarray(out["forecast"], np.float64), spread)


def versus_seasonal_naive(serving, collection, settings, folds=None):
    """How the model fares against the seasonal naive forecast (the naive one for
    season 0 or 1) on every validation window of `folds`, series by series: a frame
    of unique_id, validation_windows, the mean absolute error of each and their
    MASE (in units of `collection.series_scales`), and `worse` where the model's
    error is the larger."""
    import pandas as pd

    folds = folds or coll.Folds(settings.horizon)
    horizon, season = settings.horizon, max(settings.season, 1)
    rows, ends = coll.validation_windows(collection, folds)
    x, y = gather_windows(serving, collection, settings, rows, ends)
    forecast = np.asarray(forecaster.predict(serving, x, batch_size=4096)["forecast"], np.float64)
    # The value one season before each target's season position, from the matrix (the padding rule before a start).
    columns = np.maximum(ends[:, None] - season + np.arange(horizon) % season, 0)
    naive = collection.values[rows[:, None], columns].astype(np.float64)
    windows = np.bincount(rows, minlength=len(collection))
    seen = windows > 0

    def mae(errors):
        return np.bincount(rows, errors.mean(axis=1), minlength=len(collection))[seen] / windows[seen]

    scales = coll.series_scales(collection, folds.holdout("select"))[seen].astype(np.float64)
    lstm, baseline = mae(np.abs(forecast - y)), mae(np.abs(naive - y))
    return pd.DataFrame({"unique_id": np.asarray(collection.ids, dtype=object)[seen],
                         "validation_windows": windows[seen], "lstm_mae": lstm, "seasonal_naive_mae": baseline,
                         "lstm_mase": lstm / scales, "seasonal_naive_mase": baseline / scales,
                         "worse": lstm > baseline})
