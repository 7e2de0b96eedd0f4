"""The forecasting arithmetic around the network, as Keras layers.

They live inside the model, so that the `.keras` file, the SavedModel, the
MLflow model and `lstm-predict` all take raw values and return raw values.
With x the input window (batch, timesteps, 1) in the series' units:

    μ, σ   = Scale(x)                       the window's location and spread
    z      = (x − μ) / σ                    what the LSTM reads
    r      = Reference(x)                   the value each forecast step starts from
    ŷ_k    = r_k + σ · o_k  (+ μ for level) o: the network's output for step k

Scale modes:  `none` μ = 0, σ = 1; `standard` μ, σ of the training split;
              `window` μ, σ of each input window itself (instance normalization,
              as in RevIN, Kim et al., ICLR 2022).
Targets:      `level` r = 0, so the network forecasts the standardized value;
              `last` r_k = x_last, the change since the last value seen;
              `seasonal` r_k = the value one season before step k (within the
              window), the change from the seasonal naive forecast.

Each layer is registered with Keras, so a saved model loads with `safe_mode`
on once `custom_layers` is imported.
"""

import math

import keras
import numpy as np
from keras import ops

SCALINGS = ("none", "standard", "window")
TARGETS = ("level", "last", "seasonal")


def seasonal_offsets(horizon, season):
    """Where, relative to the end of the input, the value one season (or whole
    seasons) before each horizon step sits: step j (0-based) looks back to
    j − season·⌈(j + 1) / season⌉ (pipeline.data.seasonal_positions, with the
    input's width added, is the same rule; a test checks that they agree)."""
    steps = np.arange(horizon)
    return steps - season * np.ceil((steps + 1) / season).astype(int)


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class Scale(keras.layers.Layer):
    """x (batch, timesteps, 1) → (z, μ, σ), z = (x − μ) / σ, μ and σ (batch, 1).

    `mode`: one of SCALINGS. `mean`, `std`: the training split's, for
    `standard`. `floor`: the smallest σ a window may get under `window`, so a
    flat window is not divided by zero (its z is 0 whatever the floor).
    `visible` (batch, timesteps), from FillMissing: μ and σ of those values only.
    """

    def __init__(self, mode="none", mean=0.0, std=1.0, floor=1e-6, **kwargs):
        super().__init__(**kwargs)
        if mode not in SCALINGS:
            raise ValueError(f"Received an invalid value for argument `mode`, expected one of {SCALINGS}, got {mode!r}.")
        self.mode, self.mean, self.std, self.floor = mode, float(mean), float(std), float(floor)

    def call(self, x, visible=None):
        if self.mode == "window":
            if visible is None:
                mean = ops.mean(x, axis=(1, 2))[:, None]
                std = ops.maximum(ops.std(x, axis=(1, 2))[:, None], self.floor)
            else:  # the statistics of the visible values alone (FillMissing)
                mean, std = _visible_mean_std(x, visible)
                std = ops.maximum(std, self.floor)
        else:
            ones = ops.ones_like(x[:, 0, :])
            mean = ones * (self.mean if self.mode == "standard" else 0.0)
            std = ones * (self.std if self.mode == "standard" else 1.0)
        return (x - mean[:, :, None]) / std[:, :, None], mean, std

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean, "std": self.std, "floor": self.floor}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class ToSeriesUnits(keras.layers.Layer):
    """(o, x, μ, σ) → ŷ = r + σ·o (+ μ for `level`), r the `target`'s reference
    (see the module docstring); o and ŷ are (batch, horizon)."""

    def __init__(self, target="level", season=0, **kwargs):
        super().__init__(**kwargs)
        if target not in TARGETS:
            raise ValueError(f"Received an invalid value for argument `target`, expected one of {TARGETS}, got {target!r}.")
        if target == "seasonal" and season < 1:
            raise ValueError(f"Received an invalid value for argument `season`, expected a positive integer for target='seasonal', got {season}.")
        self.target, self.season = target, int(season)

    def call(self, output, x, mean, std):
        forecast = std * output
        if self.target == "level":
            return forecast + mean
        if self.target == "last":
            return forecast + x[:, -1, :]
        horizon = output.shape[-1]
        input_width = ops.shape(x)[1]
        positions = self._checked(input_width) + ops.convert_to_tensor(seasonal_offsets(horizon, self.season), "int32")
        return forecast + ops.take(x[:, :, 0], positions, axis=1)

    def min_window(self):
        """The shortest window this layer can forecast from: a whole season for `seasonal`."""
        return self.season if self.target == "seasonal" else 1

    def _checked(self, input_width):
        # A shorter window would read before its start (a negative index, which
        # Keras' take wraps around to the window's end): refuse, saying the minimum.
        # The width is returned through the assertion so that, in a graph, the
        # gather that uses it cannot run before the check (nothing else orders them).
        import tensorflow as tf

        input_width = tf.cast(input_width, "int32")
        check = tf.debugging.assert_greater_equal(
            input_width, self.season,
            message=f"Window too short: the seasonal target with season {self.season} reads the value one season "
                    f"before each target, so a window needs at least {self.season} values")
        with tf.control_dependencies([check] if check is not None else []):
            return tf.identity(input_width)

    def get_config(self):
        return {**super().get_config(), "target": self.target, "season": self.season}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class Median(keras.layers.Layer):
    """Members (batch, n, horizon) → their median over n (batch, horizon); for an
    even n, the mean of the two middle values."""

    def call(self, members):
        n = members.shape[1]
        ordered = ops.sort(ops.transpose(members, (0, 2, 1)), axis=-1)
        return (ordered[..., (n - 1) // 2] + ordered[..., n // 2]) / 2


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class ConformalInterval(keras.layers.Layer):
    """forecast (batch, horizon) → (lower, upper) = forecast ∓ q, one half-width
    q_k per horizon step, set after training by `calibrate` (0 until then)."""

    def __init__(self, level=0.9, relative=False, **kwargs):
        super().__init__(**kwargs)
        self.level, self.relative = float(level), bool(relative)

    def build(self, forecast_shape, spread_shape=None):
        self.half_width = self.add_weight(name="half_width", shape=(forecast_shape[-1],), initializer="zeros",
                                          trainable=False)

    def call(self, forecast, spread=None):
        """With `relative`, q is in units of each window's `spread` (batch, 1)
        (`WindowSpread`): one calibration serves series of any scale."""
        half_width = self.half_width * spread if self.relative else self.half_width
        return forecast - half_width, forecast + half_width

    def calibrate(self, residuals, spread=None):
        """Sets q from the absolute validation residuals (n, horizon), divided by
        each window's `spread` (n, 1) when relative: per step, the
        ⌈(n + 1)·level⌉-th smallest, which covers a new residual from the same
        distribution with probability at least `level` (split conformal
        prediction, Lei et al., JASA 2018)."""
        residuals = np.asarray(residuals, np.float64)
        if self.relative:
            residuals = residuals / np.asarray(spread, np.float64).reshape(-1, 1)
        q = conformal_half_width(residuals, self.level)
        self.half_width.assign(q.astype("float32"))
        return q

    def get_config(self):
        return {**super().get_config(), "level": self.level, "relative": self.relative}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class Deseasonalise(keras.layers.Layer):
    """x (batch, width, 1) → (x / s_t, s_future (batch, horizon)): each window's own
    classical multiplicative decomposition (Makridakis et al.; M3's Naive2 and
    Theta). Its seasonal indices s are the mean ratio of x to its centred moving
    average of order `season` (2×season for an even season) at each position of
    the season, normalised to mean 1; s_t are the indices of the window's
    positions and s_future those of the `horizon` steps after it. Applied only
    where every value is positive and (with `test`) M3's 90 % test finds a season,
    |r_m| > 1.645·√((1 + 2Σ_{k<m} r_k²)/n) for the window's autocorrelations r at
    lags k ≤ m = season; elsewhere s = 1. The width must be known and hold two
    seasons."""

    def __init__(self, season, horizon, test=True, **kwargs):
        super().__init__(**kwargs)
        self.season, self.horizon, self.test = int(season), int(horizon), bool(test)
        if self.season < 2:
            raise ValueError(f"Received an invalid value for argument `season`, expected at least 2, got {season}.")

    def call(self, x):
        m, width = self.season, x.shape[1]
        if width is None or width < 2 * m:
            raise ValueError(f"Deseasonalise needs a known window width of at least {2 * m} values (two seasons "
                             f"of {m}), got {width}.")
        v = x[:, :, 0]
        weights = [1.0 / m] * m if m % 2 else [0.5 / m] + [1.0 / m] * (m - 1) + [0.5 / m]
        k, valid = len(weights), width - len(weights) + 1
        trend = sum(w * v[:, j:j + valid] for j, w in enumerate(weights))
        ratio = v[:, k // 2:k // 2 + valid] / ops.where(trend > 0, trend, 1.0)
        phases = np.eye(m, dtype="float32")[(np.arange(valid) + k // 2) % m]  # (valid, m)
        indices = ops.matmul(ratio, phases) / phases.sum(axis=0)
        indices = indices / ops.mean(indices, axis=1, keepdims=True)
        centred = v - ops.mean(v, axis=1, keepdims=True)
        power = ops.sum(centred ** 2, axis=1)
        r = ops.stack([ops.sum(centred[:, lag:] * centred[:, :-lag], axis=1) for lag in range(1, m + 1)], axis=1)
        r = r / ops.where(power > 0, power, 1.0)[:, None]
        limit = 1.6448536 * ops.sqrt((1 + 2 * ops.sum(r[:, :-1] ** 2, axis=1)) / width)
        seasonal = (power > 0) & ops.all(v > 0, axis=1)
        if self.test:
            seasonal = seasonal & (ops.abs(r[:, -1]) > limit)
        indices = ops.where(seasonal[:, None], indices, 1.0)
        within = ops.take(indices, np.arange(width) % m, axis=1)
        future = ops.take(indices, (width + np.arange(self.horizon)) % m, axis=1)
        return (v / within)[:, :, None], future

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "season": self.season, "horizon": self.horizon, "test": self.test}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class WindowSpread(keras.layers.Layer):
    """x (batch, timesteps, 1) → s (batch, 1) = max(mean |x| + std x, floor)
    (+ 1e-8): the scale in which a global model's errors and intervals are
    measured, so that series of any size weigh alike. Without a `floor` it is
    1e-8 for a window of zeros; a collection's model sets the floor to the
    smallest of its series' scales (pipeline.collection.series_scales).
    With `visible` (FillMissing's), the visible values' spread alone."""

    def __init__(self, floor=0.0, **kwargs):
        super().__init__(**kwargs)
        self.floor = float(floor)

    def call(self, x, visible=None):
        if visible is None:
            spread = ops.mean(ops.abs(x), axis=(1, 2)) + ops.std(x, axis=(1, 2))
        else:  # of the visible values alone (FillMissing)
            mean_abs, _ = _visible_mean_std(ops.abs(x), visible)
            _, std = _visible_mean_std(x, visible)
            spread = (mean_abs + std)[:, 0]
        return ops.maximum(spread, self.floor)[:, None] + 1e-8

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class FitWindow(keras.layers.Layer):
    """x (batch, timesteps, 1) → (batch, width, 1): the last `width` values, or
    when the window is shorter, the window padded on the left with its first
    value, as a collection pads its shorter series (pipeline.collection), or
    with `missing`, with NaN: values FillMissing then masks. A pretrained model
    reads windows of any length through it."""

    def __init__(self, width, missing=False, **kwargs):
        super().__init__(**kwargs)
        self.width, self.missing = int(width), bool(missing)

    def call(self, x):
        length = ops.shape(x)[1]
        positions = ops.arange(self.width) + length - self.width
        fitted = ops.take(x, ops.maximum(positions, 0), axis=1)
        if not self.missing:
            return fitted
        return ops.where((positions >= 0)[None, :, None], fitted, ops.cast(float("nan"), fitted.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.width, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "width": self.width, "missing": self.missing}


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class FillMissing(keras.layers.Layer):
    """x (batch, timesteps, 1), NaN where a value is missing (before a short
    series' start) → (filled, visible): filled is x with each NaN replaced by the
    window's first value that is not (what the padding rule reads), visible
    (batch, timesteps) is where x is not NaN. The LSTM takes `visible` as its
    mask, so a masked step carries its state unchanged and a short history is
    read from its first value on (as N-BEATS masks its inputs), and Scale and
    WindowSpread measure the visible values alone. A window with no value at all
    is forecast as NaN."""

    def call(self, x):
        visible = ops.logical_not(ops.isnan(x[:, :, 0]))
        first = ops.argmax(ops.cast(visible, "int32"), axis=1)
        first_value = ops.take_along_axis(x[:, :, 0], first[:, None], axis=1)[:, :, None]
        return ops.where(visible[:, :, None], x, first_value), visible

    def compute_output_shape(self, input_shape):
        return input_shape, input_shape[:2]


def _visible_mean_std(x, visible):
    """(mean, std), each (batch, 1), of x (batch, timesteps, 1) where `visible` (batch, timesteps)."""
    weight = ops.cast(visible, x.dtype)[:, :, None]
    count = ops.maximum(ops.sum(weight, axis=(1, 2)), 1.0)[:, None]
    mean = ops.sum(x * weight, axis=(1, 2))[:, None] / count
    variance = ops.sum(weight * ops.square(x - mean[:, :, None]), axis=(1, 2))[:, None] / count
    return mean, ops.sqrt(variance)


@keras.saving.register_keras_serializable(package="lstm_forecaster")
class FirstSteps(keras.layers.Layer):
    """forecasts (..., horizon) → (..., steps): a long-horizon model serving a shorter horizon."""

    def __init__(self, steps, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, forecasts):
        return forecasts[..., :self.steps]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.steps)

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


def conformal_half_width(residuals, level):
    """Per column of `residuals` (n, horizon): the ⌈(n + 1)·level⌉-th smallest
    absolute value. Needs n ≥ level / (1 − level) (9 windows for 90 %)."""
    residuals = np.sort(np.abs(np.asarray(residuals, np.float64)), axis=0)
    n = len(residuals)
    rank = math.ceil((n + 1) * level - 1e-9)
    if rank > n:
        raise ValueError(f"{n} validation windows are too few for a {level:g} interval: at least "
                         f"{min_windows_for(level)} are needed.")
    return residuals[rank - 1]


def min_windows_for(level):
    """The fewest calibration windows n with ⌈(n + 1)·level⌉ ≤ n."""
    n = 1
    while math.ceil((n + 1) * level - 1e-9) > n:
        n += 1
    return n
