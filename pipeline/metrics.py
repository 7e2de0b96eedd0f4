"""Forecast errors and the baselines every forecaster must beat.

All functions take numpy arrays: inputs x (n, timesteps, 1), targets and
forecasts y (n, horizon). Errors are in the series' own units, averaged over
every window and every horizon step.
"""

import warnings

import numpy as np

from pipeline.data import seasonal_positions
from pipeline.errors import ParamError


def naive_scale(x_train, y_train):
    """Mean absolute one-step change over the training windows: the in-sample
    error of the one-step naive forecast, which MASE divides by."""
    windows = np.concatenate([np.asarray(x_train)[..., 0], np.asarray(y_train)], axis=1).astype(np.float64)
    return float(np.mean(np.abs(np.diff(windows, axis=1))))


def smape_terms(y_true, y_pred):
    """Each point's sMAPE in %, 200·|y − ŷ|/(|y| + |ŷ|), 0 to 200: the published M3
    tables average these over every series and horizon step (N-BEATS, appendix C).
    0/0 (both zero) is a perfect forecast: 0, not NaN."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    denominator = np.abs(y_true) + np.abs(y_pred)
    return np.divide(200 * np.abs(y_pred - y_true), denominator, out=np.zeros_like(y_true), where=denominator > 0)


def errors(y_true, y_pred, scale):
    """MSE, RMSE, MAE, sMAPE (in %, 0 to 200) and MASE (MAE / `scale`)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    residuals = np.asarray(y_pred, dtype=np.float64) - y_true
    mse = float(np.mean(residuals**2))
    mae = float(np.mean(np.abs(residuals)))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": mae,
        "smape": float(np.mean(smape_terms(y_true, y_pred))),
        "mase": mae / scale if scale > 0 else float("nan"),
    }


def persistence_forecast(x, horizon):
    """The naive forecast: every future value equals the last one seen."""
    return np.repeat(np.asarray(x)[:, -1, :], horizon, axis=1)


def seasonal_naive_forecast(x, horizon, season, series=None, origins=None):
    """Each future value equals the value one season (or whole seasons) earlier
    (`data.seasonal_positions`).

    From the windows x alone, the season must fit the input; given the whole
    `series` and each window's `origins` (its first target's index in it), the
    forecast looks back into the series, past the window if need be.
    """
    if series is not None:
        positions = np.asarray(origins)[:, np.newaxis] + seasonal_positions(0, horizon, season)
        return np.asarray(series)[positions]
    x = np.asarray(x)[..., 0]
    input_width = x.shape[1]
    if not 0 < season <= input_width:
        raise ParamError(
            f"Received an invalid value for parameter `season`, expected an integer from 1 to "
            f"the input length {input_width} (time_steps - horizon), got {season}."
        )
    return x[:, seasonal_positions(input_width, horizon, season)]


def seasonal_naive_wins(x_train, y_train, season):
    """Whether the seasonal naive forecast has a lower mean absolute error than
    persistence on the training windows (False when the season does not fit
    the input window): what target='auto' starts the network's forecast from."""
    input_width, horizon = np.asarray(x_train).shape[1], np.asarray(y_train).shape[1]
    if not 0 < season <= input_width:
        return False
    seasonal = np.mean(np.abs(seasonal_naive_forecast(x_train, horizon, season) - y_train))
    return bool(seasonal < np.mean(np.abs(persistence_forecast(x_train, horizon) - y_train)))


ETS_SPEC = "additive errors, additive damped trend, additive season when season > 0"  # the sine's, per window


def _ets_model(values, season):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(np.asarray(values, np.float64), error="add", trend="add", damped_trend=True,
                    seasonal="add" if season else None, seasonal_periods=season or None)


def ets_forecast(series, fit_end, origins, horizon, season):
    """statsforecast's AutoETS (the ETS model with the lowest AICc, with the
    season when there is one), chosen and fitted on
    series[:fit_end], then run with those parameters up to each window's origin
    (`forward`: the states filtered over series[:origin], the model fixed), so
    that every window is forecast from the last value it sees, as the other
    baselines are. Returns (n, horizon)."""
    return classical_forecast("AutoETS", series, fit_end, origins, horizon, season)


def classical_forecast(model, series, fit_end, origins, horizon, season):
    """`ets_forecast` for any of statsforecast's AutoETS, AutoARIMA and AutoTheta (named so)."""
    import statsforecast.models

    series = np.asarray(series, np.float64)
    fitted = getattr(statsforecast.models, model)(season_length=max(int(season), 1)).fit(series[:fit_end])
    return np.stack([fitted.forward(y=series[:origin], h=horizon)["mean"] for origin in np.asarray(origins)])


def ets_forecast_windows(x, horizon):
    """For windows not cut from one series (the sine's): ETS without a season
    (ETS_SPEC) fitted to each window's own inputs, forecasting its targets."""
    forecasts = np.empty((len(x), horizon))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, window in enumerate(np.asarray(x)[..., 0]):
            forecasts[i] = _ets_model(window, 0).fit(disp=False).forecast(horizon)
    return forecasts


def interval_scores(y_true, lower, upper):
    """Coverage (share of targets inside [lower, upper], in %) and mean width."""
    y_true = np.asarray(y_true)
    inside = (np.asarray(lower) <= y_true) & (y_true <= np.asarray(upper))
    return {"coverage": float(100 * inside.mean()), "interval_width": float(np.mean(np.asarray(upper) - lower))}


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

# The metrics a main run logs on itself, so that runs compare at a glance (lstm-compare, the sweep's table).
# best_val_loss first: what selection (sweeps, tuning, the champion) goes by; the test metrics are reported.
HEADLINE_METRICS = [
    "best_val_loss", "test_rmse", "test_mae", "test_mse", "test_smape", "test_mase", "test_coverage", "test_interval_width",
    "persistence_test_rmse", "seasonal_naive_test_rmse", "ets_test_rmse", "linear_test_rmse", "free_run_rmse",
]


def comparison_table(metrics, names):
    """Rows under COMPARISON_HEADER, (forecaster, mse, rmse, mae, smape, mase),
    for the named forecasters; `names` pairs each label with its key prefix."""
    return [
        [label] + [metrics[f"{prefix}test_{metric}"] for metric in METRICS]
        for label, prefix in names
    ]



def per_series_scores(y_true, forecast, lower, upper, scale):
    """For a collection's one window per series, (n, horizon) arrays: each series'
    sMAPE (M3's, in %), MAPE (in %, NaN where a target is 0), MASE (MAE / its
    `scale`, the in-sample seasonal naive MAE), interval coverage (in %) and mean
    interval width; {name: (n,) array}."""
    y_true, forecast = np.asarray(y_true, np.float64), np.asarray(forecast, np.float64)
    absolute = np.abs(forecast - y_true)
    smape = smape_terms(y_true, forecast).reshape(y_true.shape).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = np.where((y_true == 0).any(axis=1), np.nan, 100 * np.mean(absolute / np.abs(y_true), axis=1))
        mase = np.where(np.asarray(scale) > 0, absolute.mean(axis=1) / np.asarray(scale), np.nan)
    inside = (np.asarray(lower) <= y_true) & (y_true <= np.asarray(upper))
    return {"smape": smape, "mape": mape, "mase": mase, "coverage": 100 * inside.mean(axis=1),
            "interval_width": np.mean(np.asarray(upper) - np.asarray(lower), axis=1)}


def seasonal_naive_scale(series, season):
    """The in-sample MAE of the seasonal naive forecast (lag `season`, 1 for none)
    over a series' points: MASE's denominator (Hyndman & Koehler 2006; M4)."""
    values = np.asarray(series, np.float64)
    lag = max(int(season), 1)
    if len(values) <= lag:
        lag = 1
    return float(np.mean(np.abs(values[lag:] - values[:-lag]))) if len(values) > lag else float("nan")


def diebold_mariano(loss_a, loss_b, horizon):
    """The one-sided p-value of Diebold and Mariano's test that forecasts b have a lower
    expected loss than forecasts a, from their losses on the same windows (arrays of n):
    the mean difference over its long-run standard error (Bartlett weights up to lag
    horizon - 1, as overlapping h-step windows call for), with Harvey, Leybourne and
    Newbold's small-sample correction, against Student's t with n - 1 degrees of freedom.
    The correction only ever shrinks the statistic (it would grow it for fewer windows than
    about h/2). 1.0 (no evidence) for fewer than 3 windows or where the correction is not
    positive."""
    from scipy import stats

    d = np.asarray(loss_a, np.float64) - np.asarray(loss_b, np.float64)
    n = len(d)
    if n < 3:
        return 1.0
    centred = d - d.mean()
    lags = min(horizon - 1, n - 2)
    variance = centred @ centred / n + 2 * sum(
        (1 - k / (lags + 1)) * (centred[k:] @ centred[:-k]) / n for k in range(1, lags + 1))
    correction = min(1.0, (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    if correction <= 0:
        return 1.0
    if variance <= 0:  # the same difference on every window
        return 0.0 if d.mean() > 0 else 1.0
    statistic = d.mean() / np.sqrt(variance / n) * np.sqrt(correction)
    return float(stats.t.sf(statistic, n - 1))
