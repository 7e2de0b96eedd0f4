"""A collection of series, one global model, one MLflow run.

`main` comes here when `data_source` is a long-format CSV with the column
`id_column` (one row per series id, time and value). Everything is checked
before the run opens; then the run trains one network on windows drawn from
every series (pipeline.global_model), holds out each series' last `horizon`
points for testing and the `horizon` before them for validation
(pipeline.collection), fits statsforecast's baselines on exactly the points
before each test origin (pipeline.baselines), and logs:

- parameters, `resolved_*` tags, per-epoch `train_loss` and `val_loss` (the
  mean absolute error in units of each window's spread);
- `test_<metric>` and `<baseline>_test_<metric>` for sMAPE (M3's), MAPE,
  MASE, interval coverage and width, averaged over the series;
- `forecasts.csv` (unique_id, ds, step, y, forecaster, forecast, lower,
  upper), `per_series_metrics.csv`, `comparison.md`, and plots: the loss
  curve, the series at the best, median and worst sMAPE relative to
  AutoTheta, and each forecaster's distribution of per-series sMAPE;
- the model as `train` logs it (`.keras`, SavedModel, MLflow model), which
  forecasts any window, of any of the collection's series or a new one.
"""

import time

import numpy as np

from pipeline import collection as coll
from pipeline import metrics, params, tables
from pipeline.errors import ParamError

# What 'auto' becomes for a collection (docs/forecasting.md, "Many series";
# chosen on M3's validation targets, benchmarks/m3.py).
EPOCHS = 100
PATIENCE = 10
TARGET = "last"
ENSEMBLE = 1
# 'auto' draws every window, unless an epoch would then exceed this many: then as many per series
# as make about this many (at least 1), so that a large collection validates, and can stop, within minutes.
MAX_WINDOWS_PER_EPOCH = 1_000_000
TABLE_METRICS = ("smape", "mape", "mase", "coverage", "interval_width")


def resolve(values, collection_):
    """The GlobalSettings, every 'auto' made a value for this collection."""
    from pipeline.global_model import GlobalSettings

    horizon, season = values["horizon"], values["season"]
    if values["scaling"] not in ("auto", "window"):
        raise ParamError(f"Received `scaling`={values['scaling']!r} for a collection: a global model scales each "
                         "window by itself so that series of any size are alike; pass -P scaling=auto or window.")
    time_steps = values["time_steps"]
    input_width = coll.default_input_width(horizon, season) if time_steps == "auto" else time_steps - horizon
    if input_width < 1:
        raise ParamError(f"Received `time_steps`={time_steps} with `horizon`={horizon}: the window must be longer "
                         "than the horizon.")
    target = TARGET if values["target"] == "auto" else values["target"]
    if target == "seasonal" and season > input_width:
        raise ParamError(f"Received `target`='seasonal' with `season`={season} longer than the input window "
                         f"({input_width} values): pass a longer -P time_steps or another target.")
    every = coll.count_training_windows(collection_, input_width, horizon) <= MAX_WINDOWS_PER_EPOCH
    auto = {"epochs": EPOCHS, "patience": PATIENCE, "ensemble_size": ENSEMBLE,
            "windows_per_series": 0 if every else max(1, MAX_WINDOWS_PER_EPOCH // len(collection_))}
    chosen = {name: auto[name] if values[name] == "auto" else values[name] for name in auto}
    settings = GlobalSettings(
        input_width=input_width, horizon=horizon, hidden_units=values["hidden_units"],
        learning_rate=values["learning_rate"], batch_size=values["batch_size"], epochs=chosen["epochs"],
        patience=chosen["patience"], target=target, season=season, ensemble_size=chosen["ensemble_size"],
        windows_per_series=chosen["windows_per_series"], interval_level=values["interval_level"], seed=values["seed"])
    return settings


def prepare(values):
    """Reads and checks the collection and the settings: (collection, settings, notes)."""
    from custom_layers import transforms

    reading = {name: values[name] for name in ("fill_missing", "time_format", "separator", "decimal", "thousands")}
    time_column, column = reading_columns(values)
    collection_ = coll.read_collection(values["data_source"], values["id_column"], time_column, column, **reading)
    collection_, note = coll.check_lengths(collection_, values["horizon"], min_length=values["min_length"])
    settings = resolve(values, collection_)
    notes = list(collection_.notes) + ([note] if note else [])
    needed = transforms.min_windows_for(values["interval_level"])
    if len(collection_) < needed:
        raise ParamError(f"Received `interval_level`={values['interval_level']}: its intervals are calibrated on one "
                         f"validation window per series and need {needed} series, the collection has "
                         f"{len(collection_)}; lower it, or forecast a single series with a CSV without "
                         f"{values['id_column']!r}.")
    return collection_, settings, notes


def run(values, run_name=None, quiet=False, parent_run_id=None, tags=None, epoch_hook=None, register=True):
    """One collection, one run: see the module's doc. Returns ({"main": run id}, metrics)."""
    import mlflow

    from pipeline import global_model, plots, tracking
    from pipeline.stages import train

    collection_, settings, notes = prepare(values)
    for note in notes:
        print(f"collection: {note}", flush=True)
    horizon, season = settings.horizon, settings.season
    description = (f"One global LSTM over the {len(collection_)} series of {values['data_source']}: each series' last "
                   f"{horizon} points are its test targets, the {horizon} before them its validation targets.")
    with tracking.stage_run("main", run_name, description, parent_run_id, {"data": "collection", **(tags or {})}) as active:
        tracking.log_params(values)
        mlflow.set_tags({"resolved_time_steps": str(settings.input_width + horizon),
                         "resolved_epochs": str(settings.epochs), "resolved_patience": str(settings.patience),
                         "resolved_target": settings.target, "resolved_scaling": "window",
                         "resolved_ensemble_size": str(settings.ensemble_size),
                         "resolved_windows_per_series": str(settings.windows_per_series),
                         "series": str(len(collection_)), "data_sha256": _sha256(collection_)})
        if notes:
            mlflow.set_tag("notes", "; ".join(notes))
        typical_std = float(np.median(np.std(collection_.values, axis=1))) or 1.0
        training, serving = global_model.build(settings, typical_std)
        history, seconds = fit_logged(training, collection_, settings, epoch_hook)
        tracking.log_figure(plots.loss_curve(history.train_loss, history.val_loss, history.best_epoch,
                                             ylabel="MAE / window spread"), "loss_curve")
        half_widths = global_model.calibrate(serving, collection_, settings)
        mlflow.log_metrics({f"interval_half_width_step{k}": float(q) for k, q in enumerate(half_widths, 1)})

        forecasts, scores, table = evaluate(serving, collection_, settings, values)
        mlflow.log_metrics(scores)
        per_series = _per_series(forecasts, collection_)
        _log_tables(forecasts, per_series, collection_, settings)
        mlflow.log_text(tables.to_markdown(("forecaster",) + TABLE_METRICS, table), "comparison.md")
        tracking.log_figure(plots.series_grid(collection_, forecasts, per_series, horizon), "series")
        tracking.log_figure(plots.smape_distribution(per_series), "smape_distribution")
        model_uri = train._log_models(serving, settings.input_width, horizon, settings.interval_level,
                                      trained_on(values, collection_), season if settings.target == "seasonal" else 1,
                                      series_input=True)
        mlflow.set_tag("model_uri", model_uri)
    registered = None
    if register:
        from pipeline import registry

        registered = registry.update_champion("auto", mlflow.get_run(active.info.run_id))
    if not quiet:
        print(summary(active.info.run_id, len(collection_), table, settings, model_uri, registered))
    return {"main": active.info.run_id}, scores


def fit_logged(training, collection_, settings, epoch_hook=None):
    """global_model.fit with each epoch's losses logged and shown, and the run's training
    metrics (seconds, epochs, best epoch and loss, windows per second) logged after: (history, seconds)."""
    import mlflow

    from pipeline import global_model
    from pipeline.progress import EpochProgress

    progress = EpochProgress(settings.epochs)

    def on_epoch_end(epoch, logs):
        mlflow.log_metrics({"train_loss": logs["loss"], "val_loss": logs["val_loss"]}, step=epoch,
                           synchronous=False)
        progress(epoch, logs)
        if epoch_hook is not None:
            epoch_hook(epoch, logs)

    started = time.perf_counter()
    try:
        history = global_model.fit(training, collection_, settings, on_epoch_end)
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    mlflow.log_metrics({"train_seconds": seconds, "epochs_trained": len(history.val_loss),
                        "best_epoch": history.best_epoch, "best_val_loss": min(history.val_loss),
                        "windows_per_epoch": history.windows_per_epoch,
                        "windows_per_second": history.windows_per_epoch * len(history.val_loss) / seconds})
    return history, seconds


def trained_on(values, collection_):
    """What the model remembers of its collection (the MLflow model's metadata):
    how to read its file, and the time step, so that it dates its forecasts."""
    reading = {name: values[name] for name in params.CSV_READING_PARAMS}
    reading["time_column"] = reading_columns(values)[0]
    return {"data_source": values["data_source"], "id_column": values["id_column"],
            "column": reading_columns(values)[1], **reading, "time_step": str(collection_.step)}


def reading_columns(values):
    """(time column, value column) of a collection: the given ones, else ds and y."""
    return (coll.TIME if values["time_column"] == "none" else values["time_column"],
            coll.VALUE if values["column"] == "auto" else values["column"])


def evaluate(serving, collection_, settings, values):
    """Every forecaster's test forecasts and scores: (forecasts {name: {forecast,
    lower, upper}}, scores {test_<metric>, <name>_test_<metric>}, table rows)."""
    from pipeline import baselines, global_model

    horizon, season = settings.horizon, settings.season
    out, _, y_test = global_model.forecast_split(serving, collection_, settings, "test")
    before = [collection_.series(i)[:-horizon] for i in range(len(collection_))]
    names = baselines.DEFAULT_BASELINES + (("auto_arima",) if values.get("auto_arima") == "true" else ())
    forecasts = {"lstm": out, **baselines.forecast(before, horizon, season, names, settings.interval_level)}
    scale = np.array([metrics.seasonal_naive_scale(series, season) for series in before])
    scores, table = {}, []
    for name, forecast in forecasts.items():
        per_series = metrics.per_series_scores(y_test, forecast["forecast"], forecast["lower"], forecast["upper"], scale)
        prefix = "" if name == "lstm" else f"{name}_"
        row = [name]
        for metric in TABLE_METRICS:
            value = float(np.nanmean(per_series[metric]))
            scores[f"{prefix}test_{metric}"] = value
            row.append(value)
        table.append(row)
        forecast["scores"] = per_series
    forecasts["actual"] = y_test
    return forecasts, scores, table


def _per_series(forecasts, collection_):
    import pandas as pd

    frames = []
    for name, forecast in forecasts.items():
        if name == "actual":
            continue
        frames.append(pd.DataFrame({"unique_id": collection_.ids, "length": collection_.lengths, "forecaster": name,
                                    **forecast["scores"]}))
    return pd.concat(frames, ignore_index=True)


def _log_tables(forecasts, per_series, collection_, settings):
    import mlflow
    import pandas as pd

    horizon, n = settings.horizon, len(collection_)
    ends = collection_.tail_times(horizon)
    frames = []
    for name, forecast in forecasts.items():
        if name == "actual":
            continue
        frames.append(pd.DataFrame({
            "unique_id": np.repeat(collection_.ids, horizon), "ds": ends.ravel(),
            "step": np.tile(np.arange(1, horizon + 1), n), "y": forecasts["actual"].ravel(), "forecaster": name,
            "forecast": forecast["forecast"].ravel(), "lower": forecast["lower"].ravel(),
            "upper": forecast["upper"].ravel()}))
    mlflow.log_text(pd.concat(frames, ignore_index=True).to_csv(index=False), "forecasts.csv")
    mlflow.log_text(per_series.to_csv(index=False), "per_series_metrics.csv")


def _sha256(collection_):
    from pipeline.data import sha256_of

    return sha256_of(collection_.values)


def summary(run_id, n_series, table, settings, model_uri, registered):
    from pipeline import tracking

    lines = ["", f"Run: main {run_id} (one global model over {n_series} series)", "",
             f"Test metrics, averaged over the series (sMAPE and MAPE in %, coverage of the "
             f"{100 * settings.interval_level:g} % intervals in %):", "",
             tables.to_markdown(("forecaster",) + TABLE_METRICS, table),
             "Per series: forecasts.csv and per_series_metrics.csv on the run.", "",
             f"Compare runs in the MLflow UI:  {tracking.ui_command()}",
             f"Serve the model on 127.0.0.1:5001:  mlflow models serve -m {model_uri} --env-manager local --port 5001",
             registered or "Not registered.", ""]
    return "\n".join(lines)
