"""Forecast errors and the baselines every forecaster must beat.

All functions take numpy arrays: inputs x (n, timesteps, 1), targets y (n, 1).
"""

import numpy as np


def errors(y_true, y_pred):
    """MSE, RMSE and MAE of a forecast, in the series' own units."""
    residuals = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    mse = float(np.mean(residuals**2))
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(residuals)))}


def persistence_forecast(x):
    """The naive forecast: the next value equals the last one seen."""
    return np.asarray(x)[:, -1, :]


class LinearAutoregression:
    """Least-squares y ≈ w·x + b over the same input window the LSTM reads.

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


def forecast_metrics(y_test, forecasts):
    """Metrics of each named forecast, keyed `<name>_test_<metric>`.

    The LSTM's forecast goes under the name "" so that its keys read `test_rmse`,
    and a baseline's under its own name (`persistence_test_rmse`).
    """
    metrics = {}
    for name, y_pred in forecasts.items():
        prefix = f"{name}_" if name else ""
        for metric, value in errors(y_test, y_pred).items():
            metrics[f"{prefix}test_{metric}"] = value
    return metrics
