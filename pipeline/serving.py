"""The MLflow pyfunc model that `train` logs: the exported SavedModel, nothing else.

It is logged as a model from code (`mlflow.models.set_model`): loading it runs
this file and unpickles nothing, and it needs TensorFlow, not this project.
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


def check_windows(model_input, min_window=1):
    """Returns the request as float32 (batch, timesteps, 1), or raises a one-line
    MlflowException saying what is wrong with it. `min_window`: the fewest values
    a window may have (a seasonal model reads a whole season back)."""
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
    not_finite = np.argwhere(~np.isfinite(windows))
    if len(not_finite):
        window, step, _ = not_finite[0]
        raise _bad_request(
            f"every value must be finite, but window {window} has {windows[window, step, 0]} at time step {step} "
            f"({len(not_finite)} such values in all)"
        )
    return windows


def _min_window(saved_model_path):
    """The model's `min_window` from its MLmodel metadata (the model folder holds
    artifacts/saved_model); 1 for a model logged before it was recorded."""
    from pathlib import Path

    from mlflow.models import Model

    mlmodel = Path(saved_model_path).parents[1] / "MLmodel"
    if not mlmodel.is_file():
        return 1
    return int((Model.load(str(mlmodel)).metadata or {}).get("min_window", 1))


class SavedModelForecaster(mlflow.pyfunc.PythonModel):
    """predict(x): x float32 (batch, timesteps, 1) → forecasts (batch, horizon).

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
        # Hold the loaded object itself: its `serve` function alone does not keep
        # the model's variables alive.
        self._saved_model = tf.saved_model.load(context.artifacts["saved_model"])
        self._min_window = _min_window(context.artifacts["saved_model"])

    def predict(self, context, model_input, params=None):
        windows = self._tf.constant(check_windows(model_input, self._min_window))
        outputs = self._saved_model.serve(windows)
        if params and params.get("intervals"):
            return {name: outputs[name].numpy() for name in ("forecast", "lower", "upper")}
        return outputs["forecast"].numpy()


mlflow.models.set_model(SavedModelForecaster())
