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


def forecast(series, horizon, season, names=DEFAULT_BASELINES, level=0.9, n_jobs=1, notes=None, engine=None):
    """Each baseline's forecast of the `horizon` steps after each of `series` (a
    list of 1-d arrays): {name: {"forecast", "lower", "upper"}} (n_series,
    horizon) each, the bounds statsforecast's `level` prediction interval.

    A model that cannot forecast a series (statsforecast's AutoETS refuses tiny
    ones; the seasonal naive forecast of a series shorter than a season is NaN)
    gives way, for that series alone, to the simplest forecast that can: the
    seasonal naive, else the naive one. Each such fallback is appended to
    `notes` in a sentence naming the model, how many series and the first.

    With `engine` (pipeline.engines.Engine), each model's forecast runs there,
    partitioned by series, through statsforecast's Fugue backend; where one series
    makes it fail, the model is fitted here instead, to find and replace it."""
    import pandas as pd

    lengths = np.array([len(s) for s in series])
    frame = pd.DataFrame({
        "unique_id": np.repeat(np.arange(len(series)), lengths),
        "ds": np.concatenate([np.arange(n) for n in lengths]),
        "y": np.concatenate(series).astype(np.float64),
    })
    percent = int(round(level * 100))
    columns = ("", f"-lo-{percent}", f"-hi-{percent}")
    out = {}
    for name in names:
        result = None if engine is None else _forecast_on(engine, frame, name, season, horizon, percent)
        failed = []
        if result is None:
            result, failed = _forecast_where_possible(frame, name, season, horizon, percent, np.arange(len(series)))
        values = np.stack([result[name + suffix].reindex(
            pd.MultiIndex.from_product([np.arange(len(series)), range(horizon)])).to_numpy(np.float64)
            .reshape(len(series), horizon) for suffix in columns])
        unusable = sorted(set(failed) | set(np.flatnonzero(~np.isfinite(values).all(axis=(0, 2)))))
        if unusable:
            seasonal = [i for i in unusable if name != "seasonal_naive" and season > 1 and lengths[i] >= season]
            plain = [i for i in unusable if i not in seasonal]
            for fallback, rows in (("seasonal_naive", seasonal), ("naive", plain)):
                if rows:
                    instead = forecast([series[i] for i in rows], horizon, season, (fallback,), level)[fallback]
                    values[:, rows] = np.stack([instead[key] for key in ("forecast", "lower", "upper")])
            if notes is not None:
                instead = "the seasonal naive forecast" if not plain else (
                    "the naive forecast" if not seasonal else "the seasonal naive (else the naive) forecast")
                notes.append(f"{name} could not forecast {len(unusable)} series (the first has "
                             f"{lengths[unusable[0]]} points): {instead} stands in for it there")
        out[name] = dict(zip(("forecast", "lower", "upper"), values))
    return out


def _forecast_on(engine, frame, name, season, horizon, percent):
    """statsforecast's forecast on `engine`, indexed by (unique_id, step); None where it failed."""
    import pandas as pd
    from statsforecast import StatsForecast

    try:
        result = engine.collect(StatsForecast(models=_models([name], season), freq=1, n_jobs=1).forecast(
            df=engine.frame(frame), h=horizon, level=[percent]))
    except Exception:  # a series the model cannot fit fails the whole job: found by halving, here
        return None
    result = pd.DataFrame({"unique_id": result["unique_id"].to_numpy(np.int64), "ds": result["ds"].to_numpy(np.int64),
                           **{column: result[column].to_numpy(np.float64) for column in result.columns
                              if column.startswith(name)}})
    result = result.sort_values(["unique_id", "ds"])
    result["step"] = result.groupby("unique_id").cumcount()
    return result.set_index(["unique_id", "step"])


def _forecast_where_possible(frame, name, season, horizon, percent, ids):
    """statsforecast's forecast of the series `ids` of `frame` by `name`, indexed by
    (unique_id, step); where the whole batch fails, the batch is halved until the
    series that fail are found alone: (forecasts, ids of the failing series)."""
    import pandas as pd
    from statsforecast import StatsForecast

    part = frame[frame["unique_id"].isin(ids)]
    try:
        result = StatsForecast(models=_models([name], season), freq=1, n_jobs=1).forecast(
            df=part, h=horizon, level=[percent])
    except Exception:  # statsforecast raises NotImplementedError, ValueError, ... for a series it cannot fit
        if len(ids) == 1:
            return pd.DataFrame(columns=[name, f"{name}-lo-{percent}", f"{name}-hi-{percent}"]), [int(ids[0])]
        halves = [_forecast_where_possible(frame, name, season, horizon, percent, half)
                  for half in np.array_split(ids, 2)]
        return pd.concat([h[0] for h in halves if len(h[0])]) if any(len(h[0]) for h in halves) else halves[0][0], \
            halves[0][1] + halves[1][1]
    result = result.sort_values(["unique_id", "ds"])
    result["step"] = result.groupby("unique_id").cumcount()
    return result.set_index(["unique_id", "step"]), []
