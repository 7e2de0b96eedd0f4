"""The forecast stage: the model that is served, trained on every point of the
series, and its forecast of what comes after the series' last point.

`train` chooses a model on the series' training and validation periods and
`evaluate` scores it on the test period, which neither has seen; that model
has never seen the newest 30 % of the series. So with `refit` true this stage
trains the same choice again, on every window of the whole series, for as
many epochs as validation chose (`best_epoch`, or `fine_tune_best_epoch` for a
fine-tuned pretrained model), with no early stopping (nothing is left to stop
on), and keeps the interval half-widths that validation calibrated. A
zero-shot pretrained model has nothing to learn: it is served as it is, and
reads the newest values like any other. With `refit` false the evaluated model
is served.

Logs `forecasts.csv` (ds, step, forecast, lower, upper: the `horizon` values
after the series' end, forecast by the served model through its MLflow model,
as `mlflow models serve` would), the plot `forecast`, the served model three
ways (as `train` does), and tags saying which model is which:
`served_model_trained_on`, `evaluated_model_uri`, `newest_time_trained_on`.

For a collection (`_forecast_collection`) the same: a new global network on
every point of every series, `forecasts.csv` with each series' next `horizon`
values (unique_id, ds, step, forecast, lower, upper, padded).
"""

import time

import numpy as np

from pipeline.stages import program

FORECASTS = "forecasts.csv"


def run(model_uri, data_uri, refit="true"):
    """Returns (run id, the served model's models:/ URI, the tags that say which model is which)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipeline import csv_input, logged_model, plots, tracking
    from pipeline.stages import train

    values = {"model_uri": model_uri, "data_uri": data_uri, "refit": refit}
    with tracking.stage_run("forecast") as active:
        tracking.log_params(values)
        if model_uri == "auto":  # the newest trained model, on the data it was trained on
            model_uri = f"runs:/{tracking.newest_finished_run('train', 'model_uri').info.run_id}/{train.KERAS_MODEL}"
        if data_uri == "auto":
            data_uri = MlflowClient().get_run(tracking.run_id_of(model_uri)).data.tags["resolved_data_uri"]
        mlflow.set_tags({"resolved_model_uri": model_uri, "resolved_data_uri": data_uri})
        dataset, manifest = tracking.load_data(data_uri)
        tracking.log_dataset_input(dataset, manifest, "train", context="training")
        train_run = MlflowClient().get_run(tracking.run_id_of(model_uri))
        if manifest["source"] == "collection":
            mlflow.set_tag("data", "collection")
            served_uri, through = _forecast_collection(dataset, manifest, train_run, model_uri, refit == "true")
            tracking.log_batch({}, {**through, "model_uri": served_uri})
            return active.info.run_id, served_uri, through
        init = train_run.data.tags.get("resolved_init", "local")
        times = _series_times(dataset, manifest)
        last_val = int(np.asarray(dataset["origin_val"])[-1]) + dataset["y_val"].shape[1] - 1
        newest, evaluated_through = ((csv_input.format_time(times[-1]), csv_input.format_time(times[last_val]))
                                     if times is not None else (f"point {len(dataset['series'])}",
                                                                f"point {last_val + 1}"))
        through = {"evaluated_model_uri": train_run.data.tags["model_uri"],
                   "evaluated_model_trained_on": f"trained on the training period, chosen on the validation period "
                                                 f"(through {evaluated_through})"}
        if refit == "true" and init != "zero_shot":
            served, input_width, min_window, epochs, seconds = _refit(dataset, train_run, init)
            through.update(served_model_trained_on=f"trained on every point of the series ({epochs} epochs, as "
                                                   "validation chose)",
                           newest_time_trained_on=newest)
            served_uri = logged_model.log_models(served, input_width, dataset["y_train"].shape[1],
                                                 float(train_run.data.params["interval_level"]),
                                                 {**train.trained_on(manifest), **through}, min_window)
            mlflow.log_metrics({"refit_seconds": seconds, "refit_epochs": epochs})
        else:
            served_uri = train_run.data.tags["model_uri"]
            why = ("the pretrained model zero-shot: it learns nothing from the series, and reads its newest values"
                   if init == "zero_shot" else "the evaluated model itself (refit=false)")
            through.update(served_model_trained_on=why,
                           newest_time_trained_on=newest if init == "zero_shot" else evaluated_through)
        future = _forecast_future(served_uri, dataset, times, manifest.get("time_step"))
        mlflow.log_text(future.to_csv(index=False), FORECASTS)
        tracking.log_figure(plots.future_of_series(dataset["series"], future), "forecast")
        tracking.log_batch({}, {**through, "model_uri": served_uri})
        return active.info.run_id, served_uri, through


def _series_times(dataset, manifest):
    """The time of every point of the series, from the windows' times (which cover
    every point), or None for a series read without a time column."""
    if manifest.get("parameters", {}).get("time_column", "none") == "none":
        return None
    times = np.empty(len(dataset["series"]), dtype=np.asarray(dataset["t_train"]).dtype)
    for split in ("train", "val", "test"):
        origins = np.asarray(dataset[f"origin_{split}"])
        t = np.asarray(dataset[f"t_{split}"])
        positions = origins[:, None] + np.arange(-dataset[f"x_{split}"].shape[1], dataset[f"y_{split}"].shape[1])
        times[positions.ravel()] = t.ravel()
    return times


def _refit(dataset, train_run, init):
    """The chosen model trained anew on every window of the series: (served model,
    input width, min_window, epochs, seconds)."""
    from pipeline import data, pretrained
    from pipeline import model as forecaster
    from pipeline.stages import train

    run_params, tags, metrics = train_run.data.params, train_run.data.tags, train_run.data.metrics
    horizon = dataset["y_train"].shape[1]
    half_widths = np.array([metrics[f"interval_half_width_step{k}"] for k in range(1, horizon + 1)], np.float32)
    started = time.perf_counter()
    chosen = {name: tags[f"resolved_{name}"] for name in ("scaling", "target", "ensemble_size")}
    if init == "local":
        full = {**data.every_window(dataset), "x_val": dataset["x_val"], "y_val": dataset["y_val"]}
        start, scale, epochs = None, forecaster.standard_scale(full), int(metrics["best_epoch"])
        season = int(run_params["season"])
        input_width, min_window = dataset["x_train"].shape[1], season if chosen["target"] == "seasonal" else 1
    else:  # fine_tuned: the pretrained model, fine-tuned on every window for the epochs validation chose
        start = pretrained.load(tags["init_uri"])
        longer = data.with_history(dataset, start.input_width)
        full = {**data.every_window(dataset, start.input_width), "x_val": longer["x_val"], "y_val": longer["y_val"]}
        scale, epochs = forecaster.standard_scale(dataset), int(metrics["fine_tune_best_epoch"])
        input_width, min_window = start.input_width, 1
    served = train.train_for(init, full, epochs, run_params, chosen, scale, start)
    served.get_layer(forecaster.INTERVAL_LAYER).half_width.assign(half_widths)
    return served, input_width, min_window, epochs, time.perf_counter() - started


def _forecast_future(served_uri, dataset, times, step):
    """The served MLflow model's forecast of the `horizon` values after the series' end."""
    import mlflow
    import pandas as pd

    from pipeline.stages import predict

    from pipeline import data, workarounds

    workarounds.check_pins_first()
    model = mlflow.pyfunc.load_model(served_uri)
    width = int(model.metadata.metadata["input_width"])
    window = data.every_window(dataset, width)["x_future"].astype(np.float32)
    out = model.predict(window, params={"intervals": True})
    horizon = out["forecast"].shape[1]
    frame = {"step": np.arange(1, horizon + 1)}
    future_times = predict.forecast_times(times, step, horizon)
    if future_times is not None:
        frame = {"ds": future_times, **frame}
    for name in ("forecast", "lower", "upper"):
        frame[name] = np.asarray(out[name], np.float64)[0]
    return pd.DataFrame(frame)


def _forecast_collection(dataset, manifest, train_run, model_uri, refit):
    """A collection's served model: a new network trained on every point of every
    series for the epochs validation chose, with the intervals it calibrated (or,
    without `refit`, the train run's model); forecasts.csv and the plot of the
    future. Returns (its models:/ URI, the tags that say which model is which)."""
    from pipeline import collection as coll
    from pipeline import csv_input, logged_model, params, plots, tracking
    from pipeline import model as forecaster
    from pipeline.stages import train

    collection_, folds = coll.from_dataset(dataset, manifest)
    run_params, tags, metrics = train_run.data.params, train_run.data.tags, train_run.data.metrics
    # A parameter newer than the train run takes its default, as the run did.
    values = {name: params.PARAMS[name].parse(run_params.get(name, params.PARAMS[name].format(
        params.PARAMS[name].default))) for name in params.TRAIN_PARAMS}
    settings = train.collection_settings(values, collection_, folds, manifest)
    half_widths = [metrics[f"interval_half_width_step{k}"] for k in range(1, settings.horizon + 1)]
    evaluated_on = tags["evaluated_model_trained_on"]
    if refit:
        served = train.refit_collection(collection_, settings, int(metrics["best_epoch"]), folds.holdout("full"),
                                        half_widths, "full")
        newest = np.max(collection_.last_times)
    else:  # the evaluated model, which is the selection model
        served = forecaster.load_model(tracking.download(model_uri, "model_uri", reuse=True))
        newest = collection_.tail_times(folds.holdout("select") + 1)[:, 0].max()
    future = _log_collection_future(served, collection_, settings, _worse_than_naive(train_run))
    tracking.log_figure(plots.future_grid(collection_, future), "forecast")
    through = {"served_model_trained_on": train.held_out(folds, "full" if refit else "select"),
               "evaluated_model_trained_on": evaluated_on, "evaluated_model_uri": tags["model_uri"],
               "newest_time_trained_on": csv_input.format_time(newest)}
    served_uri = logged_model.log_models(
        served, settings.input_width, settings.horizon, settings.interval_level,
        {**train.trained_on(manifest), **through}, settings.season if settings.target == "seasonal" else 1,
        series_input=True)
    return served_uri, through


def _worse_than_naive(train_run):
    """{unique_id: whether validation found the model worse than the seasonal naive
    forecast on it} from the train run (train.VERSUS_NAIVE)."""
    import io

    import mlflow
    import pandas as pd

    from pipeline.stages import train

    text = mlflow.artifacts.load_text(f"runs:/{train_run.info.run_id}/{train.VERSUS_NAIVE}")
    frame = pd.read_csv(io.StringIO(text), dtype={"unique_id": str})
    return dict(zip(frame["unique_id"], frame["worse"].astype(bool)))


def _log_collection_future(served, collection_, settings, worse):
    """forecasts.csv: the served model's forecast of the `horizon` steps after each
    series' end, with `padded` (how many of the values it read lay before the series'
    start: padding, or missing values a model with short_history=mask skipped) and
    `worse_than_seasonal_naive` (on validation; empty for a series too short to be
    validated)."""
    import mlflow
    import pandas as pd

    from pipeline import csv_input, global_model
    from pipeline.serving import future_times

    out, _, _ = global_model.forecast_split(served, collection_, settings, "future")
    horizon, n = settings.horizon, len(collection_)
    times = [t for last in collection_.last_times for t in future_times(
        csv_input.format_time(last) if collection_.last_times.dtype.kind == "M" else last, collection_.step, horizon)]
    frame = pd.DataFrame({"unique_id": np.repeat(collection_.ids, horizon), "ds": times,
                          "step": np.tile(np.arange(1, horizon + 1), n), "forecast": out["forecast"].ravel(),
                          "lower": out["lower"].ravel(), "upper": out["upper"].ravel(),
                          "padded": np.repeat(np.maximum(settings.input_width - collection_.lengths, 0), horizon),
                          "worse_than_seasonal_naive": np.repeat([worse.get(i) for i in collection_.ids], horizon)})
    mlflow.log_text(frame.to_csv(index=False), FORECASTS)
    return out


if __name__ == "__main__":
    program("forecast", run)
