"""Forecast errors and the baselines every forecaster must beat.

All functions take numpy arrays: inputs x (n, timesteps, 1), targets and
forecasts y (n, horizon). Errors are in the series' own units, averaged over
every window and every horizon step.
"""

import numpy as np

from pipeline.params import ParamError


def naive_scale(x_train, y_train):
    """Mean absolute one-step change over the training windows: the in-sample
    error of the one-step naive forecast, which MASE divides by."""
    windows = np.concatenate([np.asarray(x_train)[..., 0], np.asarray(y_train)], axis=1).astype(np.float64)
    return float(np.mean(np.abs(np.diff(windows, axis=1))))


def errors(y_true, y_pred, scale):
    """MSE, RMSE, MAE, sMAPE (in %, 0 to 200) and MASE (MAE / `scale`)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    residuals = np.asarray(y_pred, dtype=np.float64) - y_true
    mse = float(np.mean(residuals**2))
    mae = float(np.mean(np.abs(residuals)))
    denominator = np.abs(y_true) + np.abs(np.asarray(y_pred, dtype=np.float64))
    # 0/0 (both zero) is a perfect forecast: 0, not NaN.
    ratios = np.divide(2 * np.abs(residuals), denominator, out=np.zeros_like(residuals), where=denominator > 0)
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": mae,
        "smape": float(100 * np.mean(ratios)),
        "mase": mae / scale if scale > 0 else float("nan"),
    }


def persistence_forecast(x, horizon):
    """The naive forecast: every future value equals the last one seen."""
    return np.repeat(np.asarray(x)[:, -1, :], horizon, axis=1)


def seasonal_naive_forecast(x, horizon, season):
    """Each future value equals the value one season (or whole seasons) earlier.

    Step j (0-based) of the horizon repeats the input at position
    input_width + j - season·ceil((j + 1) / season).
    """
    x = np.asarray(x)[..., 0]
    input_width = x.shape[1]
    if not 0 < season <= input_width:
        raise ParamError(
            f"Received an invalid value for parameter `season`, expected an integer from 1 to "
            f"the input length {input_width} (time_steps - horizon), got {season}."
        )
    steps = np.arange(horizon)
    positions = input_width + steps - season * np.ceil((steps + 1) / season).astype(int)
    return x[:, positions]


class LinearAutoregression:
    """Least-squares y ≈ W·x + b over the same input window the LSTM reads,
    one output per horizon step.

    Fitted with `np.linalg.lstsq`, which returns the minimum-norm solution when
    the inputs are collinear (a noise-free sine spans only two dimensions).
    """

    def __init__(self, x_train, y_train):
        design = self._design(x_train)
        self.coef, *_ = np.linalg.lstsq(design, np.asarray(y_train, np.float64), rcond=None)

    @staticmethod
    def _design(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.hstack([x, np.ones((len(x), 1))])

    def predict(self, x):
        return self._design(x) @ self.coef


def forecast_metrics(y_test, forecasts, scale):
    """Metrics of each named forecast, keyed `<name>_test_<metric>`, plus
    `<name>_test_rmse_step<k>` per horizon step when the horizon is above 1.

    The LSTM's forecast goes under the name "" so that its keys read `test_rmse`,
    and a baseline's under its own name (`persistence_test_rmse`).
    """
    metrics = {}
    horizon = np.asarray(y_test).shape[1]
    for name, y_pred in forecasts.items():
        prefix = f"{name}_" if name else ""
        for metric, value in errors(y_test, y_pred, scale).items():
            metrics[f"{prefix}test_{metric}"] = value
        if horizon > 1:
            step_rmse = np.sqrt(np.mean((np.asarray(y_pred) - np.asarray(y_test)) ** 2, axis=0))
            for step, value in enumerate(step_rmse, start=1):
                metrics[f"{prefix}test_rmse_step{step}"] = float(value)
    return metrics


METRICS = ("mse", "rmse", "mae", "smape", "mase")
COMPARISON_HEADER = ("forecaster",) + METRICS


def comparison_table(metrics, names):
    """Rows under COMPARISON_HEADER, (forecaster, mse, rmse, mae, smape, mase),
    for the named forecasters; `names` pairs each label with its key prefix."""
    return [
        [label] + [metrics[f"{prefix}test_{metric}"] for metric in METRICS]
        for label, prefix in names
    ]

