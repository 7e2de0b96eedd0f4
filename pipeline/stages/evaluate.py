"""Stage 3: score the model and the baselines on the same test windows, and draw it.

Logs `test_<metric>` for the LSTM and `<baseline>_test_<metric>` for the
`persistence`, `seasonal_naive` (with `season`), `ets` and `linear` baselines,
metric in mse, rmse, mae, smape, mase (plus `test_rmse_step<k>` for a horizon
above 1), the LSTM's `test_coverage` and `test_interval_width`, `free_run_rmse`,
the comparison table as `comparison.csv` and `comparison.md`, and under
`plots/`: predictions, residuals, free_run, gate_activations and, for a horizon
above 1, forecast_fan. A CSV series also logs `cross_validation.csv`.

A collection (`_evaluate_collection`) is scored on each series' test cut-off,
the competition protocol, by the metrics the competitions publish.
"""

import mlflow
import numpy as np

from custom_layers import gate_activations
from pipeline import data, metrics, params, plots, tables, tracking
from pipeline import model as forecaster
from pipeline.errors import ParamError
from pipeline.stages import program
from pipeline.stages.train import KERAS_MODEL


def check_values(values, collection):
    """Refuses, in one line, what applies only to a collection given for a series, and
    an engine that is not installed: before any run opens."""
    from pipeline import engines

    if not collection:
        for name, default in (("auto_arima", "false"), ("engine", "local")):
            if values.get(name, default) != default:
                raise ParamError(f"Received `{name}`={values[name]} for one series: it applies to a collection (a CSV "
                                 "with id_column, or Parquet); drop it.")
    engines.check_installed(values.get("engine", "local"))


def run(model_uri, data_uri, season, free_run_steps, auto_arima="false", engine="local"):
    """Evaluates and logs; returns (run id, metrics, comparison table rows)."""
    values = dict(locals())
    # Given both (as main gives them), what they resolve to goes with the request that creates the run.
    resolved = ({"resolved_model_uri": model_uri, "resolved_data_uri": data_uri}
                if "auto" not in (model_uri, data_uri) else None)
    with tracking.stage_run("evaluate", tags=resolved) as active:
        tracking.log_params(values)
        if resolved is None:
            if model_uri == "auto":
                train_run_id = tracking.newest_finished_run("train", "model_uri").info.run_id
                model_uri = f"runs:/{train_run_id}/{KERAS_MODEL}"
            if data_uri == "auto":
                data_uri = _training_data_of(model_uri)
            mlflow.set_tags({"resolved_model_uri": model_uri, "resolved_data_uri": data_uri})
        dataset, manifest = tracking.load_data(data_uri)
        tracking.log_dataset_input(dataset, manifest, "test", context="evaluation")
        if manifest["source"] == "collection":
            mlflow.set_tag("data", "collection")
            model = forecaster.load_model(tracking.download(model_uri, "model_uri", reuse=True))
            check_values(values, collection=True)
            scores, table = _evaluate_collection(model, dataset, manifest, season, auto_arima == "true", engine)
            return active.info.run_id, scores, table
        check_values(values, collection=False)
        # The one check that needs the data: a season that fits its windows.
        input_width, horizon = dataset["x_test"].shape[1], dataset["y_test"].shape[1]
        params.check_combination({"season": season, "time_steps": input_width + horizon, "horizon": horizon,
                                  "data_source": "sine" if manifest["source"] == "sine" else "csv"})
        model = forecaster.load_model(tracking.download(model_uri, "model_uri", reuse=True))
        model_data = dataset
        if forecaster.FIT_WINDOW_LAYER in {layer.name for layer in model.layers} and "series" in dataset:
            # A model from a pretrained one reads as much history as it was pretrained on, as it is served;
            # the baselines keep the data's windows.
            model_data = data.with_history(dataset, model.get_layer(forecaster.FIT_WINDOW_LAYER).width)
        test_forecast = forecaster.predict(model, model_data["x_test"])
        scores, table, forecasts = score(test_forecast, dataset, season)
        free = free_run(model, dataset, manifest, free_run_steps)
        scores["free_run_rmse"] = float(np.sqrt(np.mean((free["truth"] - free["forecast"]) ** 2)))
        mlflow.log_metrics(scores)
        mlflow.log_text(tables.to_csv(metrics.COMPARISON_HEADER, table), "comparison.csv")
        mlflow.log_text(tables.to_markdown(metrics.COMPARISON_HEADER, table), "comparison.md")
        log_plots(model, dataset, test_forecast, free)
        if manifest["source"] == "csv":
            level = model.get_layer(forecaster.INTERVAL_LAYER).level
            mlflow.log_text(cross_validation(dataset, manifest, test_forecast, forecasts, level).to_csv(index=False),
                            "cross_validation.csv")
        return active.info.run_id, scores, table


def _training_data_of(model_uri):
    train_run_id = tracking.run_id_of(model_uri)
    if train_run_id is None:
        raise ParamError(
            f"Received `data_uri`='auto' with `model_uri`={model_uri!r}: 'auto' finds the "
            "training data only for a runs:/<train run id>/... model URI; pass -P data_uri=<URI>."
        )
    training_data = mlflow.get_run(train_run_id).data.tags.get("resolved_data_uri")
    if training_data is None:
        raise ParamError(
            f"Received `data_uri`='auto', but run {train_run_id} is not a train run "
            "(it has no `resolved_data_uri` tag); pass -P data_uri=<URI>."
        )
    return training_data


def score(test_forecast, dataset, season):
    """Test metrics of the LSTM's `test_forecast` (the forecasting model's
    outputs) and of each baseline on the very same windows, and the comparison
    table of them. With the whole series in the dataset (a CSV), the seasonal
    naive forecast and ETS look back into it past the window."""
    x_test, y_test = dataset["x_test"], dataset["y_test"]
    horizon = y_test.shape[1]
    series = dataset.get("series")
    forecasts = {
        "": test_forecast["forecast"],
        "persistence": metrics.persistence_forecast(x_test, horizon),
    }
    names = [("LSTM", ""), ("persistence", "persistence_")]
    if season:
        forecasts["seasonal_naive"] = metrics.seasonal_naive_forecast(
            x_test, horizon, season, series, dataset.get("origin_test"))
        names.append((f"seasonal naive ({season})", "seasonal_naive_"))
    if series is not None:
        fit_end = int(dataset["origin_test"][0])  # the training and validation part of the series
        forecasts["ets"] = metrics.ets_forecast(series, fit_end, dataset["origin_test"], horizon, season)
    elif "ets_test" in dataset:  # made with the sine's windows (generate_data.with_ets_forecasts)
        forecasts["ets"] = dataset["ets_test"]
    else:
        forecasts["ets"] = metrics.ets_forecast_windows(x_test, horizon)
    names.append(("ETS", "ets_"))
    forecasts["linear"] = metrics.LinearAutoregression(dataset["x_train"], dataset["y_train"]).predict(x_test)
    names.append(("linear AR", "linear_"))
    scale = metrics.naive_scale(dataset["x_train"], dataset["y_train"])
    scores = metrics.forecast_metrics(y_test, forecasts, scale)
    scores.update({f"test_{name}": value for name, value in
                   metrics.interval_scores(y_test, test_forecast["lower"], test_forecast["upper"]).items()})
    return scores, metrics.comparison_table(scores, names), forecasts


def cross_validation(dataset, manifest, test_forecast, forecasts, level):
    """The test period in statsforecast's `cross_validation` layout: one row per test
    window and step, `unique_id` (the column), `ds` (the target's time), `cutoff`
    (the time of the last value before the window's first target), `y`, then the
    LSTM (`lstm`, `lstm-lo-<level>`, `lstm-hi-<level>`) and every baseline."""
    import pandas as pd

    from pipeline import csv_input

    y, t = dataset["y_test"], dataset["t_test"]
    n, horizon = y.shape
    input_width = dataset["x_test"].shape[1]
    has_times = manifest.get("parameters", {}).get("time_column", "none") != "none"

    def text(times):
        return [csv_input.format_time(value) for value in times] if has_times else list(times)

    frame = {"unique_id": manifest.get("column", "y"), "ds": text(t[:, input_width:].ravel()),
             "cutoff": text(np.repeat(t[:, input_width - 1], horizon)), "y": y.ravel(),
             "lstm": test_forecast["forecast"].ravel()}
    percent = f"{100 * level:g}"
    frame[f"lstm-lo-{percent}"] = test_forecast["lower"].ravel()
    frame[f"lstm-hi-{percent}"] = test_forecast["upper"].ravel()
    for name, forecast in forecasts.items():
        if name:
            frame[name] = np.asarray(forecast, np.float64).reshape(n * horizon)
    return pd.DataFrame(frame)


def free_run(model, dataset, manifest, n_steps):
    """The model's own forecasts fed back from the first test window, against
    the truth: the noise-free continuation of the sine, or the test period of
    a series (then at most as many steps as it has)."""
    window = dataset["x_test"][0]
    times = dataset["t_test"][0]
    input_width = window.shape[0]
    if manifest["source"] == "sine":
        future_times, truth = data.sine_continuation(times[input_width - 1], times[1] - times[0], n_steps)
    else:
        n_steps = min(n_steps, len(dataset["y_test"]))
        future_times, truth = dataset["t_test"][:n_steps, input_width], dataset["y_test"][:n_steps, 0]
    forecast = forecaster.free_run(model, window, n_steps)
    return {"context_times": times[:input_width], "context": window[:, 0],
            "times": future_times, "truth": truth, "forecast": forecast}


def log_plots(model, dataset, test_forecast, free):
    input_width = dataset["x_test"].shape[1]
    predicted = {"train": forecaster.predict(model, dataset["x_train"])["forecast"],
                 "test": test_forecast["forecast"]}
    band = (test_forecast["lower"], test_forecast["upper"])
    # The first forecast step of every window, at the time of its first target.
    target_time = {split: dataset[f"t_{split}"][:, input_width] for split in ("train", "test")}
    truth = {split: dataset[f"y_{split}"][:, 0] for split in ("train", "test")}
    tracking.log_figure(
        plots.predictions(target_time["train"], truth["train"], predicted["train"][:, 0],
                          target_time["test"], truth["test"], predicted["test"][:, 0],
                          band=(band[0][:, 0], band[1][:, 0])),
        "predictions",
    )
    tracking.log_figure(
        plots.residuals(target_time["test"], predicted["test"][:, 0] - truth["test"]), "residuals"
    )
    tracking.log_figure(
        plots.free_run(free["context_times"], free["context"], free["times"], free["truth"], free["forecast"]),
        "free_run",
    )
    if dataset["y_test"].shape[1] > 1:
        origins = np.linspace(0, len(truth["test"]) - 1, 4).astype(int)
        fans = [(dataset["t_test"][i, input_width:], predicted["test"][i], band[0][i], band[1][i]) for i in origins]
        tracking.log_figure(plots.forecast_fan(target_time["test"], truth["test"], fans), "forecast_fan")
    window = dataset["x_test"][:1]
    activations = gate_activations(forecaster.member_cell(model), forecaster.rnn_input(model, window))
    tracking.log_figure(
        plots.gate_activations({name: values[0] for name, values in activations.items()}, window[0]),
        "gate_activations",
    )




# A collection ---------------------------------------------------------------------------------------

COLLECTION_METRICS = ("smape", "mape", "mase", "coverage", "interval_width")


def _evaluate_collection(model, dataset, manifest, season, auto_arima, engine="local"):
    """A collection's model and statsforecast's baselines (pipeline.baselines), fitted on
    exactly the points before each series' test cut-off: `test_<metric>` and
    `<baseline>_test_<metric>` for sMAPE (M3's), MAPE, MASE, interval coverage and width,
    averaged over the series; `cross_validation.csv`, `per_series_metrics.csv`,
    `comparison.md`, plots. Returns (scores, table rows)."""
    from pipeline import collection as coll
    from pipeline.global_model import GlobalSettings

    collection_, folds = coll.from_dataset(dataset, manifest)
    horizon = folds.horizon
    level = model.get_layer(forecaster.INTERVAL_LAYER).level
    settings = GlobalSettings(input_width=manifest["time_steps"] - horizon, horizon=horizon, season=season,
                              interval_level=level)
    from pipeline import engines

    with engines.open_engine(engine) as opened:
        if opened is not None:
            print(f"evaluate: the baselines run on {opened.where}", flush=True)
            mlflow.set_tag("engine", opened.where)
        forecasts, scores, table, baseline_notes = score_collection(model, collection_, settings, auto_arima, opened)
    for note in baseline_notes:
        print(f"evaluate: {note}", flush=True)
    if baseline_notes:
        mlflow.set_tag("baseline_notes", "; ".join(baseline_notes))
    mlflow.log_metrics(scores)
    per_series = _per_series(forecasts, collection_)
    _log_collection_tables(forecasts, per_series, collection_, settings)
    mlflow.log_text(tables.to_markdown(("forecaster",) + COLLECTION_METRICS, table), "comparison.md")
    tracking.log_figure(plots.series_grid(collection_, forecasts, per_series, horizon), "series")
    tracking.log_figure(plots.smape_distribution(per_series), "smape_distribution")
    return scores, table


def score_collection(serving, collection_, settings, auto_arima=False, engine=None):
    """Every forecaster's test forecasts and scores: (forecasts {name: {forecast,
    lower, upper}}, scores {test_<metric>, <name>_test_<metric>}, table rows, notes
    on the baselines that fell back to a simpler forecast for some series)."""
    from pipeline import baselines, global_model

    horizon, season = settings.horizon, settings.season
    out, _, y_test = global_model.forecast_split(serving, collection_, settings, "test")
    before = [collection_.series(i)[:-horizon] for i in range(len(collection_))]
    names = baselines.DEFAULT_BASELINES + (("auto_arima",) if auto_arima else ())
    notes = []
    forecasts = {"lstm": out, **baselines.forecast(before, horizon, season, names, settings.interval_level,
                                                   notes=notes, engine=engine)}
    scale = np.array([metrics.seasonal_naive_scale(series, season) for series in before])
    scores, table = {}, []
    for name, forecast in forecasts.items():
        per_series = metrics.per_series_scores(y_test, forecast["forecast"], forecast["lower"], forecast["upper"], scale)
        prefix = "" if name == "lstm" else f"{name}_"
        row = [name]
        for metric in COLLECTION_METRICS:
            value = float(np.nanmean(per_series[metric]))
            scores[f"{prefix}test_{metric}"] = value
            row.append(value)
        table.append(row)
        forecast["scores"] = per_series
    forecasts["actual"] = y_test
    return forecasts, scores, table, notes


def _per_series(forecasts, collection_):
    import pandas as pd

    frames = []
    for name, forecast in forecasts.items():
        if name == "actual":
            continue
        frames.append(pd.DataFrame({"unique_id": collection_.ids, "length": collection_.lengths, "forecaster": name,
                                    **forecast["scores"]}))
    return pd.concat(frames, ignore_index=True)


def _log_collection_tables(forecasts, per_series, collection_, settings):
    """cross_validation.csv, in statsforecast's layout: one row per series and test
    target (unique_id, ds, cutoff: the time of the last point before the target's
    cut-off, y, `history`: the points the forecasts read), then each forecaster's
    forecast and interval bounds (`<name>`, `<name>-lo-<level>`, `<name>-hi-<level>`);
    and per_series_metrics.csv."""
    import pandas as pd

    from pipeline import csv_input

    horizon = settings.horizon
    times = collection_.tail_times(horizon + 1)
    percent = int(round(100 * settings.interval_level))
    table = {"unique_id": np.repeat(collection_.ids, horizon),
             "ds": [csv_input.format_time(t) for t in times[:, 1:].ravel()],
             "cutoff": [csv_input.format_time(t) for t in np.repeat(times[:, 0], horizon)],
             "y": forecasts["actual"].ravel(), "history": np.repeat(collection_.lengths - horizon, horizon)}
    for name, forecast in forecasts.items():
        if name == "actual":
            continue
        table[name] = forecast["forecast"].ravel()
        table[f"{name}-lo-{percent}"] = forecast["lower"].ravel()
        table[f"{name}-hi-{percent}"] = forecast["upper"].ravel()
    mlflow.log_text(pd.DataFrame(table).to_csv(index=False), "cross_validation.csv")
    mlflow.log_text(per_series.to_csv(index=False), "per_series_metrics.csv")


if __name__ == "__main__":
    program("evaluate", run)
