"""The classical forecasters practitioners compare against, from statsforecast
(Nixtla), fitted per series on exactly the points a global model may use.

statsforecast fits many series at once (numba, `n_jobs`), and the same call
runs on Spark, Dask or Ray through its Fugue backend when a collection
outgrows one machine: pass such a DataFrame to `StatsForecast.forecast`.
Imported only here, and only when a collection is evaluated.
"""

import numpy as np

BASELINES = ("naive", "seasonal_naive", "auto_ets", "auto_theta", "auto_arima")
DEFAULT_BASELINES = ("naive", "seasonal_naive", "auto_ets", "auto_theta")  # AutoARIMA is slow: ask for it


def _models(names, season):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    m = max(int(season), 1)
    make = {"naive": lambda: Naive(alias="naive"),
            "seasonal_naive": lambda: SeasonalNaive(season_length=m, alias="seasonal_naive"),
            "auto_ets": lambda: AutoETS(season_length=m, alias="auto_ets"),
            "auto_theta": lambda: AutoTheta(season_length=m, alias="auto_theta"),
            "auto_arima": lambda: AutoARIMA(season_length=m, alias="auto_arima")}
    return [make[name]() for name in names]


def forecast(series, horizon, season, names=DEFAULT_BASELINES, level=0.9, n_jobs=1):
    """Each baseline's forecast of the `horizon` steps after each of `series` (a
    list of 1-d arrays): {name: {"forecast", "lower", "upper"}} (n_series,
    horizon) each, the bounds statsforecast's `level` prediction interval."""
    import pandas as pd
    from statsforecast import StatsForecast

    lengths = np.array([len(s) for s in series])
    frame = pd.DataFrame({
        "unique_id": np.repeat(np.arange(len(series)), lengths),
        "ds": np.concatenate([np.arange(n) for n in lengths]),
        "y": np.concatenate(series).astype(np.float64),
    })
    percent = int(round(level * 100))
    result = StatsForecast(models=_models(names, season), freq=1, n_jobs=n_jobs).forecast(
        df=frame, h=horizon, level=[percent])
    result = result.sort_values(["unique_id", "ds"])
    out = {}
    for name in names:
        def column(suffix):
            return result[name + suffix].to_numpy(np.float64).reshape(len(series), horizon)
        out[name] = {"forecast": column(""), "lower": column(f"-lo-{percent}"), "upper": column(f"-hi-{percent}")}
    return out
