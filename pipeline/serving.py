"""The MLflow pyfunc model that `train` logs: the exported SavedModel, nothing else.

It is logged as a model from code (`mlflow.models.set_model`): loading it runs
this file and unpickles nothing, and it needs TensorFlow, not this project.
A zero-shot pretrained model is logged around its `.keras` file instead
(pipeline/logged_model.py), with the package `custom_layers` logged as its code:
Keras loads it with safe mode on, and it answers alike.
Before the SavedModel sees a request, `check_windows` turns anything it cannot
forecast into an MlflowException, which the scoring server answers with HTTP
400 and the message.
"""

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# Per request: windows × time steps. A float32 value is 4 bytes, and about 10 as JSON.
MAX_VALUES = 1_000_000

WINDOWS_FORMAT = "[[[v1], [v2], ...], ...]: one list per window, one [value] per time step"


def _bad_request(message):
    return MlflowException(f"Invalid windows: {message}.", error_code=INVALID_PARAMETER_VALUE)


def check_windows(model_input, min_window=1, missing=False):
    """Returns the request as float32 (batch, timesteps, 1), or raises a one-line
    MlflowException saying what is wrong with it. `min_window`: the fewest values
    a window may have (a seasonal model reads a whole season back). `missing`:
    NaN is allowed, as the missing values before a short series' start that
    `series_windows` makes for a model that masks them."""
    try:
        windows = np.asarray(model_input, dtype=np.float32)
    except (TypeError, ValueError):
        raise _bad_request(f"every value must be a number, expected {WINDOWS_FORMAT}") from None
    if windows.ndim != 3 or windows.shape[2] != 1:
        raise _bad_request(f"expected shape (batch, timesteps, 1), {WINDOWS_FORMAT}; got shape {windows.shape}")
    if windows.shape[0] == 0 or windows.shape[1] == 0:
        raise _bad_request(f"expected at least one window of at least one value, got shape {windows.shape}")
    if windows.shape[1] < min_window:
        raise _bad_request(
            f"windows of {windows.shape[1]} values are too short for this model, which reads the value one season "
            f"before each target: send at least {min_window} values per window"
        )
    if windows.size > MAX_VALUES:
        raise _bad_request(
            f"{windows.size} values in one request, at most {MAX_VALUES} are allowed; send fewer windows per request"
        )
    not_finite = np.argwhere(np.isinf(windows) if missing else ~np.isfinite(windows))
    if len(not_finite):
        window, step, _ = not_finite[0]
        raise _bad_request(
            f"every value must be finite, but window {window} has {windows[window, step, 0]} at time step {step} "
            f"({len(not_finite)} such values in all)"
        )
    return windows


SERIES_FORMAT = ("a table with the columns unique_id and y (and ds, the time), one row per time step, in time "
                 "order within each series")


SERIES_ROWS_FORMAT = ("a table with one row per series: unique_id, y (the series' values in time order, an array) "
                      "and ds (the time of its last value)")


def is_series_rows(frame):
    """Whether the DataFrame `frame` holds one series per row (`SERIES_ROWS_FORMAT`): its `y` holds arrays."""
    return "y" in frame.columns and len(frame) > 0 and isinstance(frame["y"].iloc[0], (list, tuple, np.ndarray))


def window_of(series, input_width, missing=False):
    """A series' window: its last `input_width` values (float32), padded on the left with its first
    value (or NaN for a model that masks a short history); (window, how many values were padded)."""
    series = np.asarray(series, np.float32)[-input_width:]
    pad = input_width - len(series)
    return np.r_[np.full(pad, np.nan if missing else series[0], np.float32), series], pad


def series_windows(frame, input_width, missing=False):
    """A long table of series (`SERIES_FORMAT`) → (ids, windows (n, input_width, 1)
    of each series' last values, each series' last ds or None, how many values
    each window was padded with). A series shorter than the window is padded on
    the left with its first value, as in training, or with `missing` (a model
    that masks a short history) with NaN, which the model masks."""
    import pandas as pd

    missing = [name for name in ("unique_id", "y") if name not in frame.columns]
    if missing:
        raise _bad_request(f"no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))}); expected "
                           f"{SERIES_FORMAT}")
    values = pd.to_numeric(frame["y"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise _bad_request(f"every y must be a finite number, but row {bad[0]} of series "
                           f"{frame['unique_id'].iloc[bad[0]]!r} has {frame['y'].iloc[bad[0]]!r}")
    if len(frame) > MAX_VALUES:
        raise _bad_request(f"{len(frame)} rows in one request, at most {MAX_VALUES} are allowed")
    ids, windows, last_times, padded = [], [], [], []
    for key, rows in frame.assign(y=values).groupby("unique_id", sort=False):
        window, pad = window_of(rows["y"].to_numpy(np.float32), input_width, missing)
        windows.append(window)
        ids.append(key)
        last_times.append(rows["ds"].iloc[-1] if "ds" in frame.columns else None)
        padded.append(pad)
    return ids, np.stack(windows)[..., None], last_times, np.array(padded, np.int64)


def series_rows_windows(frame, input_width, missing=False):
    """A table of one series per row (`SERIES_ROWS_FORMAT`) → (windows (n, input_width, 1) of
    each series' last values, how many values each was padded with), as `series_windows`."""
    absent = [name for name in ("unique_id", "y") if name not in frame.columns]
    if absent:
        raise _bad_request(f"no column {absent[0]!r} (columns: {', '.join(map(str, frame.columns))}); expected "
                           f"{SERIES_ROWS_FORMAT}")
    if len(frame) * input_width > MAX_VALUES:
        raise _bad_request(f"{len(frame)} series of {input_width} values in one request, at most {MAX_VALUES} "
                           "values are allowed")
    windows, padded = [], []
    for row, (key, values) in enumerate(zip(frame["unique_id"], frame["y"])):
        try:
            series = np.asarray(values, np.float64).ravel()
        except (TypeError, ValueError):
            series = np.array([np.nan])
        if not len(series) or not np.isfinite(series).all():
            raise _bad_request(f"row {row} (series {key!r}): y must be a non-empty array of finite numbers")
        window, pad = window_of(series, input_width, missing)
        windows.append(window)
        padded.append(pad)
    return np.stack(windows)[..., None], np.array(padded, np.int64)


def future_times(last_time, step, horizon):
    """The `horizon` times after `last_time`, `step` a pandas frequency ('MS') or a number."""
    import pandas as pd

    try:
        number = float(step)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        last = float(last_time)
        if number.is_integer() and last.is_integer():  # an integer time stays an integer (55, not 55.0)
            return [int(last) + int(number) * k for k in range(1, horizon + 1)]
        return [last + number * k for k in range(1, horizon + 1)]
    times = pd.date_range(pd.Timestamp(last_time), periods=horizon + 1, freq=step)[1:]
    return [text.replace(" 00:00:00", "") for text in times.strftime("%Y-%m-%d %H:%M:%S")]


def _metadata(artifact_path):
    """The model's MLmodel metadata (the model folder holds artifacts/saved_model, or
    artifacts/model.keras);
    {} for a model logged before any was recorded."""
    from pathlib import Path

    from mlflow.models import Model

    mlmodel = Path(artifact_path).parents[1] / "MLmodel"
    if not mlmodel.is_file():
        return {}
    return Model.load(str(mlmodel)).metadata or {}


class SavedModelForecaster(mlflow.pyfunc.PythonModel):
    """predict(x): x float32 (batch, timesteps, 1) → forecasts (batch, horizon).

    A collection's model also takes a DataFrame of series in long format
    (`SERIES_FORMAT`; `dataframe_split` in a REST request) and returns the next
    `horizon` values of each series with the interval, as a long table; or one
    series per row (`SERIES_ROWS_FORMAT`, as `mlflow.pyfunc.spark_udf` sends rows),
    answered one row per series.

    With the parameter `intervals` true (`params={"intervals": True}`, or
    `"params": {"intervals": true}` beside `"inputs"` in a REST request), a dict
    of three such arrays instead: `forecast`, and `lower` and `upper`, the
    bounds of the prediction interval at the level the model was trained with.
    """

    # The input is checked against the tensor signature logged with the model;
    # this tells MLflow not to look for (and warn about) predict() type hints too.
    _skip_type_hint_validation = True

    def load_context(self, context):
        import tensorflow as tf

        self._tf = tf
        if "keras_model" in context.artifacts:  # a zero-shot model: its .keras file, custom_layers beside it
            import keras

            import custom_layers  # noqa: F401 (registers the layers the file is made of)

            path = context.artifacts["keras_model"]
            self._keras_model = keras.saving.load_model(path, safe_mode=True)
            self._serve = lambda windows: self._keras_model(windows, training=False)
        else:
            path = context.artifacts["saved_model"]
            # Hold the loaded object itself: its `serve` function alone does not keep
            # the model's variables alive.
            self._saved_model = tf.saved_model.load(path)
            self._serve = self._saved_model.serve
        self._metadata = _metadata(path)
        self._min_window = int(self._metadata.get("min_window", 1))

    def predict(self, context, model_input, params=None):
        import pandas as pd

        if isinstance(model_input, pd.DataFrame) and "time_step" in self._metadata:
            if is_series_rows(model_input):
                return self._forecast_series_rows(model_input)
            return self._forecast_series(model_input)
        windows = self._tf.constant(check_windows(model_input, self._min_window))
        outputs = self._serve(windows)
        if params and params.get("intervals"):
            return {name: outputs[name].numpy() for name in ("forecast", "lower", "upper")}
        return outputs["forecast"].numpy()

    def _forecast_series(self, frame):
        """A collection's model, given series in long format: the next `horizon`
        values of each, with the interval, as a long table (unique_id, ds when
        the input has it, step, forecast, lower, upper)."""
        import pandas as pd

        missing = self._metadata.get("short_history") == "mask"
        ids, windows, last_times, padded = series_windows(frame, int(self._metadata["input_width"]), missing)
        outputs = self._serve(self._tf.constant(check_windows(windows, self._min_window, missing)))
        horizon = outputs["forecast"].shape[1]
        table = {"unique_id": np.repeat(ids, horizon), "step": np.tile(np.arange(1, horizon + 1), len(ids))}
        if "ds" in frame.columns:
            table["ds"] = [t for last in last_times for t in future_times(last, self._metadata["time_step"], horizon)]
        for name in ("forecast", "lower", "upper"):
            table[name] = outputs[name].numpy().ravel()
        # A series shorter than the window the model reads was padded on the left with its first
        # value, or by a model that masks them with values it skips: how many values it lacked, so
        # that a short series' forecast is never taken for one made from a whole window.
        table["padded"] = np.repeat(padded, horizon)
        columns = ["unique_id"] + (["ds"] if "ds" in table else []) + ["step", "forecast", "lower", "upper", "padded"]
        return pd.DataFrame(table)[columns]

    def _forecast_series_rows(self, frame):
        """A collection's model, given one series per row (`SERIES_ROWS_FORMAT`, what
        `mlflow.pyfunc.spark_udf` sends): one row per series, the next `horizon` values
        as arrays `forecast`, `lower` and `upper`, their times `ds` (as text) when the
        input has each series' last time, and `padded`, in the order of the input."""
        import pandas as pd

        missing = self._metadata.get("short_history") == "mask"
        windows, padded = series_rows_windows(frame, int(self._metadata["input_width"]), missing)
        outputs = self._serve(self._tf.constant(check_windows(windows, self._min_window, missing)))
        horizon = outputs["forecast"].shape[1]
        table = {"unique_id": list(frame["unique_id"])}
        if "ds" in frame.columns:
            table["ds"] = [[str(t) for t in future_times(last, self._metadata["time_step"], horizon)]
                           for last in frame["ds"]]
        for name in ("forecast", "lower", "upper"):
            table[name] = list(outputs[name].numpy())
        table["padded"] = padded
        return pd.DataFrame(table)


mlflow.models.set_model(SavedModelForecaster())
