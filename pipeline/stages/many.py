"""A collection of series, one global model: a main run and the four stages below it.

`main` comes here when `data_source` is a long-format CSV with the column
`id_column` (one row per series id, time and value). Everything is checked
before any run opens. Each series' last `horizon` points are its test targets;
`n_windows` validation cut-offs before them choose the epochs and calibrate the
intervals (pipeline.collection.Folds). The stages, nested under main:

- generate_data: the collection as read (`data/`: its arrays and manifest), an
  MLflow dataset input, `data_sha256`;
- train: the selection model on windows drawn from every series
  (pipeline.global_model), early-stopped on the validation cut-offs, per-epoch
  `train_loss` and `val_loss` (the mean absolute error in units of each window's
  spread), the intervals calibrated; then (refit) the evaluated model, a new
  network trained on everything before the test cut-off for the epochs chosen,
  logged as `train` logs a series' model (`.keras`, SavedModel, MLflow model);
- evaluate: that model and statsforecast's baselines (pipeline.baselines), fitted
  on exactly the points before each test origin: `test_<metric>` and
  `<baseline>_test_<metric>` for sMAPE (M3's), MAPE, MASE, interval coverage
  and width, averaged over the series; `cross_validation.csv`,
  `per_series_metrics.csv`, `comparison.md`, plots;
- forecast: the served model, a new network trained on every point for the same
  epochs, `forecasts.csv` (its next `horizon` values of every series), the plot
  of the future, and the model, which forecasts any window, of any of the
  collection's series or a new one.

main carries the parameters, the headline metrics, the tags `<stage>_run_id`,
`model_uri` (the served model) and those that say which model is which.
"""

import time

import numpy as np

from pipeline import collection as coll
from pipeline import csv_input, metrics, params, tables
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
    """(GlobalSettings, Folds): every 'auto' made a value for this collection."""
    from custom_layers import transforms
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
    step_size = horizon if values.get("step_size", "auto") == "auto" else values["step_size"]
    needed = transforms.min_windows_for(values["interval_level"])
    folds = _folds(collection_, horizon, values.get("n_windows", "auto"), step_size, needed)
    every = coll.count_training_windows(collection_, input_width, horizon, folds.holdout("select")) \
        <= MAX_WINDOWS_PER_EPOCH
    auto = {"epochs": EPOCHS, "patience": PATIENCE, "ensemble_size": ENSEMBLE,
            "windows_per_series": 0 if every else max(1, MAX_WINDOWS_PER_EPOCH // len(collection_))}
    chosen = {name: auto[name] if values[name] == "auto" else values[name] for name in auto}
    settings = GlobalSettings(
        input_width=input_width, horizon=horizon, hidden_units=values["hidden_units"],
        learning_rate=values["learning_rate"], batch_size=values["batch_size"], epochs=chosen["epochs"],
        patience=chosen["patience"], target=target, season=season, ensemble_size=chosen["ensemble_size"],
        windows_per_series=chosen["windows_per_series"], interval_level=values["interval_level"], seed=values["seed"])
    if not coll.count_training_windows(collection_, input_width, horizon, folds.holdout("select")):
        longest = int(np.argmax(collection_.lengths))
        raise ParamError(
            f"No series has a training window before the first validation cut-off: the longest, "
            f"{collection_.ids[longest]!r}, has {collection_.lengths[longest]} points and {folds!r} hold out its last "
            f"{folds.holdout('select')}; a series needs {folds.holdout('select') + horizon + 1}. Pass -P n_windows=1 "
            "or a shorter horizon.")
    return settings, folds


def _folds(collection_, horizon, n_windows, step_size, needed):
    """The validation cut-offs: `n_windows` of them, or for 'auto' 1, or the fewest
    (up to what the series' lengths allow) that give the intervals `needed` windows."""
    def windows(n):
        return len(coll.validation_windows(collection_, coll.Folds(horizon, n, step_size))[0])

    if n_windows == "auto":
        most = max(1, (int(collection_.lengths.max()) - 1 - 2 * horizon) // step_size + 1)
        n_windows = next((n for n in range(1, most + 1) if windows(n) >= needed), most)
    folds = coll.Folds(horizon, n_windows, step_size)
    found = windows(n_windows)
    if not found:
        raise ParamError(f"No series has a validation window: {folds!r}, and the longest series has "
                         f"{int(collection_.lengths.max())} points. Pass -P n_windows=1 or a shorter horizon.")
    if found < needed:
        raise ParamError(
            f"The collection has {found} validation windows ({len(collection_)} series, {folds!r}); intervals need "
            f"{needed} to be calibrated: pass a larger -P n_windows, a lower -P interval_level, or a shorter horizon.")
    return folds


def prepare(values):
    """Reads and checks the collection and the settings: (collection, settings, folds, notes)."""
    reading = {name: values[name] for name in ("fill_missing", "time_format", "separator", "decimal", "thousands")}
    time_column, column = reading_columns(values)
    collection_ = coll.read_collection(values["data_source"], values["id_column"], time_column, column, **reading)
    collection_, note = coll.check_lengths(collection_, values["horizon"], min_length=values["min_length"])
    settings, folds = resolve(values, collection_)
    notes = list(collection_.notes) + ([note] if note else [])
    horizon, width = settings.horizon, settings.input_width
    for model, what in (("select", "the first validation cut-off"), ("test", "the test cut-off")):
        short = coll.no_training_window(collection_, width, horizon, folds.holdout(model))
        if short.any():
            first = int(np.flatnonzero(short)[0])
            notes.append(f"{int(short.sum())} series have no training window before {what} (the first, "
                         f"{collection_.ids[first]!r}, has {collection_.lengths[first]} points): the model learns "
                         "from the others and forecasts them from what they have")
    unvalidated = collection_.lengths < folds.shortest_validated()
    if unvalidated.any():
        notes.append(f"{int(unvalidated.sum())} series are too short for a validation window: they are tested, "
                     "but choose nothing")
    return collection_, settings, folds, notes


def run(values, run_name=None, quiet=False, parent_run_id=None, tags=None, epoch_hook=None, register=True):
    """One collection: a main run and its four stages (see the module's doc).
    Returns ({stage: run id}, test metrics)."""
    import mlflow

    from pipeline import global_model, logged_model, plots, tracking

    collection_, settings, folds, notes = prepare(values)
    resume = _checkpoint_to_resume(values) if values.get("resume_from", "none") != "none" else None
    for note in notes:
        print(f"collection: {note}", flush=True)
    horizon, season = settings.horizon, settings.season
    refit = values.get("refit", "true") == "true"
    description = (f"One global LSTM over the {len(collection_)} series of {values['data_source']}: each series' last "
                   f"{horizon} points are its test targets; {folds.n_windows} validation cut-off(s) before them "
                   "choose the epochs and calibrate the intervals"
                   + ("; the served model is trained on every point." if refit else "."))
    resolved = {"resolved_time_steps": str(settings.input_width + horizon),
                "resolved_epochs": str(settings.epochs), "resolved_patience": str(settings.patience),
                "resolved_target": settings.target, "resolved_scaling": "window",
                "resolved_ensemble_size": str(settings.ensemble_size),
                "resolved_windows_per_series": str(settings.windows_per_series),
                "resolved_n_windows": str(folds.n_windows), "resolved_step_size": str(folds.step)}
    data_sha256 = _sha256(collection_, folds)
    run_ids = {}
    with tracking.stage_run("main", run_name, description, parent_run_id, {"data": "collection", **(tags or {})}) as active:
        run_ids["main"] = active.info.run_id
        tracking.log_params(values)
        mlflow.set_tags({**resolved, "series": str(len(collection_)), "data_sha256": data_sha256,
                         **({"notes": "; ".join(notes)} if notes else {}),
                         **({"resumed_from": values["resume_from"]} if resume is not None else {})})

        # generate_data: the collection as read, and its lineage.
        with tracking.stage_run("generate_data", tags={"data": "collection"}) as stage:
            run_ids["generate_data"] = stage.info.run_id
            mlflow.set_tags({"series": str(len(collection_)), "data_sha256": data_sha256,
                             **({"data_notes": "; ".join(notes)} if notes else {})})
            _log_collection(collection_, values, folds, "generated")
            mlflow.log_metrics({"n_series": len(collection_), "n_points": int(collection_.lengths.sum())})

        # train: the selection model, early-stopped on the validation cut-offs, which calibrate the
        # intervals; then the evaluated model, trained on everything before the test cut-off.
        with tracking.stage_run("train", tags={"data": "collection", **resolved}) as stage:
            run_ids["train"] = stage.info.run_id
            _log_collection(collection_, values, folds, "training", artifacts=False)
            training, serving = global_model.build(settings,
                                                   global_model.typical_std(collection_, folds.holdout("select")))
            if resume is not None:
                mlflow.set_tag("resumed_from", values["resume_from"])
            history, seconds = _fit_checkpointed(training, collection_, settings, epoch_hook, folds, resume)
            tracking.log_figure(plots.loss_curve(history.train_loss, history.val_loss, history.best_epoch,
                                                 ylabel="MAE / window spread"), "loss_curve")
            half_widths = global_model.calibrate(serving, collection_, settings, folds)
            mlflow.log_metrics({f"interval_half_width_step{k}": float(q) for k, q in enumerate(half_widths, 1)})
            evaluated = refit_logged(collection_, settings, history.best_epoch, folds.holdout("test"), half_widths,
                                     "test") if refit else serving
            held = {"full": "trained on every point of every series",
                    "test": f"trained on every series but its last {horizon} points",
                    "select": f"trained on every series but its last {folds.holdout('select')} points"}
            trained = trained_on(values, collection_)
            evaluated_on = held["test" if refit else "select"]
            evaluated_uri = logged_model.log_models(
                evaluated, settings.input_width, horizon, settings.interval_level,
                {**trained, "evaluated_model_trained_on": evaluated_on},
                season if settings.target == "seasonal" else 1, series_input=True)
            mlflow.set_tags({"model_uri": evaluated_uri, "evaluated_model_trained_on": evaluated_on})

        # evaluate: the evaluated model and statsforecast's baselines on the same test targets.
        with tracking.stage_run("evaluate", tags={"data": "collection", "resolved_model_uri": evaluated_uri}) as stage:
            run_ids["evaluate"] = stage.info.run_id
            forecasts, scores, table, baseline_notes = evaluate(evaluated, collection_, settings, values)
            for note in baseline_notes:
                print(f"collection: {note}", flush=True)
            if baseline_notes:
                mlflow.set_tag("baseline_notes", "; ".join(baseline_notes))
            mlflow.log_metrics(scores)
            per_series = _per_series(forecasts, collection_)
            _log_tables(forecasts, per_series, collection_, settings)
            mlflow.log_text(tables.to_markdown(("forecaster",) + TABLE_METRICS, table), "comparison.md")
            tracking.log_figure(plots.series_grid(collection_, forecasts, per_series, horizon), "series")
            tracking.log_figure(plots.smape_distribution(per_series), "smape_distribution")

        # forecast: the served model, trained on every point for the same epochs, and the future.
        with tracking.stage_run("forecast", tags={"data": "collection", "evaluated_model_uri": evaluated_uri}) as stage:
            run_ids["forecast"] = stage.info.run_id
            served = refit_logged(collection_, settings, history.best_epoch, folds.holdout("full"), half_widths,
                                  "full") if refit else serving
            future = _log_future(served, collection_, settings)
            tracking.log_figure(plots.future_grid(collection_, future), "forecast")
            through = {"served_model_trained_on": held["full" if refit else "select"],
                       "evaluated_model_trained_on": evaluated_on, "evaluated_model_uri": evaluated_uri,
                       "newest_time_trained_on": csv_input.format_time(
                           np.max(collection_.last_times) if refit
                           else collection_.tail_times(folds.holdout("select") + 1)[:, 0].max())}
            model_uri = logged_model.log_models(served, settings.input_width, horizon, settings.interval_level,
                                                {**trained, **through}, season if settings.target == "seasonal" else 1,
                                                series_input=True) if refit else evaluated_uri
            mlflow.set_tags({"model_uri": model_uri, **through})

        # The headline on main, where runs are compared: what the champion rule and sweeps read.
        headline = {**scores, "best_val_loss": min(history.val_loss), "best_epoch": history.best_epoch,
                    "epochs_trained": len(history.val_loss), "train_seconds": seconds}
        tracking.log_batch(headline, {**{f"{stage}_run_id": run_id for stage, run_id in run_ids.items()
                                         if stage != "main"}, "model_uri": model_uri, **through})
    registered = None
    if register:
        from pipeline import registry

        registered = registry.update_champion("auto", mlflow.get_run(active.info.run_id))
    if not quiet:
        print(summary(run_ids, len(collection_), table, settings, folds, model_uri, registered, through,
                      history.best_epoch))
    return run_ids, scores


def _log_collection(collection_, values, folds, context, artifacts=True):
    """The collection as an MLflow dataset input of the active run (the UI's Datasets), and
    with `artifacts` its arrays and manifest under data/ (values.npy: each series
    right-aligned; lengths.npy, last_times.npy, ids.json; manifest.json)."""
    import json
    import tempfile
    import warnings
    from pathlib import Path

    import mlflow

    from pipeline import workarounds

    path = str(Path(values["data_source"]).resolve())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a local path reads as two kinds of file source
        logged = mlflow.data.from_numpy(collection_.values, source=path, name=f"{Path(path).stem} (collection)",
                                        digest=_sha256(collection_)[:16])
    workarounds.log_input(logged, context)
    if not artifacts:
        return
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "values.npy", collection_.values)
        np.save(folder / "lengths.npy", collection_.lengths)
        np.save(folder / "last_times.npy", collection_.last_times)
        (folder / "ids.json").write_text(json.dumps(collection_.ids))
        (folder / "manifest.json").write_text(json.dumps({
            "source": "collection", "path": path, "step": str(collection_.step), "folds": repr(folds),
            "notes": collection_.notes, "sha256": _sha256(collection_)}, indent=2))
        mlflow.log_artifacts(str(folder), artifact_path="data")


def refit_logged(collection_, settings, epochs, holdout, half_widths, name):
    """A new network, trained `epochs` epochs on the windows whose targets precede the
    last `holdout` points, with the selection model's interval half-widths: its
    serving model. Logs `refit_<name>_loss` per epoch and `refit_<name>_seconds`."""
    import mlflow

    from pipeline import global_model
    from pipeline import model as forecaster
    from pipeline.progress import EpochProgress

    training, serving = global_model.build(settings, global_model.typical_std(collection_, holdout))
    progress = EpochProgress(epochs)
    what = "before the test cut-off" if holdout else "on every point"
    print(f"refit {what}: {epochs} epochs, as validation chose", flush=True)

    def on_epoch_end(epoch, logs):
        mlflow.log_metric(f"refit_{name}_loss", logs["loss"], step=epoch, synchronous=False)
        progress(epoch, {"loss": logs["loss"], "val_loss": float("nan")})

    started = time.perf_counter()
    try:
        global_model.refit(training, collection_, settings, epochs, holdout, on_epoch_end)
    finally:
        progress.close()
    mlflow.log_metric(f"refit_{name}_seconds", time.perf_counter() - started)
    serving.get_layer(forecaster.INTERVAL_LAYER).half_width.assign(np.asarray(half_widths, np.float32))
    return serving


def _log_future(served, collection_, settings):
    """forecasts.csv: the served model's forecast of the `horizon` steps after each series' end."""
    import mlflow
    import pandas as pd

    from pipeline import global_model
    from pipeline.serving import future_times

    out, _, _ = global_model.forecast_split(served, collection_, settings, "future")
    horizon, n = settings.horizon, len(collection_)
    times = [t for last in collection_.last_times for t in future_times(
        csv_input.format_time(last) if collection_.last_times.dtype.kind == "M" else last, collection_.step, horizon)]
    frame = pd.DataFrame({"unique_id": np.repeat(collection_.ids, horizon), "ds": times,
                          "step": np.tile(np.arange(1, horizon + 1), n), "forecast": out["forecast"].ravel(),
                          "lower": out["lower"].ravel(), "upper": out["upper"].ravel(),
                          "padded": np.repeat(np.maximum(settings.input_width - collection_.lengths, 0), horizon)})
    mlflow.log_text(frame.to_csv(index=False), "forecasts.csv")
    return out


def _checkpoint_to_resume(values):
    """The last checkpoint of the train stage under the interrupted main run that
    `resume_from` names (checked to have run with these values), downloaded."""
    import mlflow

    from pipeline import tracking

    interrupted = tracking.interrupted_run(values["resume_from"], "main", values)
    trains = mlflow.search_runs([interrupted.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{interrupted.info.run_id}' and tags.stage = 'train'",
                                output_format="list")
    if not trains or not any(a.path == tracking.CHECKPOINTS for a in
                             mlflow.MlflowClient().list_artifacts(trains[0].info.run_id)):
        raise ParamError(f"Received `resume_from`={values['resume_from']}: that main run stopped before its first "
                         "epoch was checkpointed; start it afresh without resume_from.")
    return tracking.download(f"runs:/{trains[0].info.run_id}/{tracking.CHECKPOINTS}", "resume_from")


def _fit_checkpointed(training, collection_, settings, epoch_hook, folds, resume):
    """fit_logged, checkpointed after every epoch to a local folder, which is uploaded to
    the train run's `checkpoints/` every 30 s of training, at the end, and after a failure
    or an interruption (as a series' train stage does), so that `resume_from` continues it."""
    import tempfile
    from pathlib import Path

    from pipeline import model as forecaster
    from pipeline import tracking

    with tempfile.TemporaryDirectory() as checkpoint_dir:
        uploads = tracking.CheckpointUploads(checkpoint_dir, tracking.CHECKPOINT_UPLOAD_SECONDS)

        def hook(epoch, logs):
            uploads.after_epoch()
            if epoch_hook is not None:
                epoch_hook(epoch, logs)

        try:
            result = fit_logged(training, collection_, settings, hook, folds, checkpoint_dir, resume)
        except BaseException as error:
            written = (Path(checkpoint_dir) / forecaster.CHECKPOINT_STATE).is_file()
            if written and getattr(error, "pruned_at_epoch", None) is None:  # a pruned trial is not resumed
                uploads.upload()
            raise
        uploads.upload()
    return result


def fit_logged(training, collection_, settings, epoch_hook=None, folds=None, checkpoint_dir=None, resume=None):
    """global_model.fit with each epoch's losses logged and shown, and the run's training
    metrics (seconds, epochs, best epoch and loss, windows per second) logged after: (history, seconds)."""
    import mlflow

    from pipeline import global_model
    from pipeline import model as forecaster
    from pipeline.progress import EpochProgress

    progress = EpochProgress(settings.epochs)

    def on_epoch_end(epoch, logs):
        mlflow.log_metrics({"train_loss": logs["loss"], "val_loss": logs["val_loss"]}, step=epoch,
                           synchronous=False)
        progress(epoch, logs)
        if epoch_hook is not None:
            epoch_hook(epoch, logs)

    if resume is not None:  # the epochs the interrupted run trained, on this run's curve too
        inherited = forecaster.checkpoint_state(resume)
        for epoch, (loss, val_loss) in enumerate(zip(inherited.train_loss, inherited.val_loss), start=1):
            mlflow.log_metrics({"train_loss": loss, "val_loss": val_loss}, step=epoch, synchronous=False)
    started = time.perf_counter()
    try:
        history = global_model.fit(training, collection_, settings, on_epoch_end, folds, checkpoint_dir, resume)
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
    lower, upper}}, scores {test_<metric>, <name>_test_<metric>}, table rows, notes
    on the baselines that fell back to a simpler forecast for some series)."""
    from pipeline import baselines, global_model

    horizon, season = settings.horizon, settings.season
    out, _, y_test = global_model.forecast_split(serving, collection_, settings, "test")
    before = [collection_.series(i)[:-horizon] for i in range(len(collection_))]
    names = baselines.DEFAULT_BASELINES + (("auto_arima",) if values.get("auto_arima") == "true" else ())
    notes = []
    forecasts = {"lstm": out, **baselines.forecast(before, horizon, season, names, settings.interval_level,
                                                   notes=notes)}
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


def _log_tables(forecasts, per_series, collection_, settings):
    """cross_validation.csv, in statsforecast's layout: one row per series and test
    target (unique_id, ds, cutoff: the time of the last point before the target's
    cut-off, y, `history`: the points the forecasts read), then each forecaster's
    forecast and interval bounds (`<name>`, `<name>-lo-<level>`, `<name>-hi-<level>`);
    and per_series_metrics.csv."""
    import mlflow
    import pandas as pd

    horizon = settings.horizon
    times = collection_.tail_times(horizon + 1)
    percent = int(round(100 * settings.interval_level))
    table = {"unique_id": np.repeat(collection_.ids, horizon), "ds": _times_text(times[:, 1:].ravel()),
             "cutoff": _times_text(np.repeat(times[:, 0], horizon)), "y": forecasts["actual"].ravel(),
             "history": np.repeat(collection_.lengths - horizon, horizon)}
    for name, forecast in forecasts.items():
        if name == "actual":
            continue
        table[name] = forecast["forecast"].ravel()
        table[f"{name}-lo-{percent}"] = forecast["lower"].ravel()
        table[f"{name}-hi-{percent}"] = forecast["upper"].ravel()
    mlflow.log_text(pd.DataFrame(table).to_csv(index=False), "cross_validation.csv")
    mlflow.log_text(per_series.to_csv(index=False), "per_series_metrics.csv")


def _times_text(times):
    """Times as the CSV wrote them: dates as dates, whole numbers as integers."""
    return [csv_input.format_time(t) for t in times]


def _sha256(collection_, folds=None):
    """The data's identity for the champion rule: its values and, for a run, its
    validation cut-offs (a validation loss compares only on the same ones)."""
    from pipeline.data import sha256_of

    digest = sha256_of(collection_.values)
    return digest if folds is None else sha256_of(np.frombuffer(f"{digest} {folds!r}".encode(), np.uint8))


def summary(run_ids, n_series, table, settings, folds, model_uri, registered, through, best_epoch):
    from pipeline import tracking

    lines = ["", f"Runs (one global model over {n_series} series):"]
    lines += [f"  {stage:<14} {run_id}" for stage, run_id in run_ids.items()]
    lines += ["",
             f"Validation: {folds.n_windows} cut-off(s), {folds.step} apart, before each series' last "
             f"{settings.horizon} points; best epoch {best_epoch}.",
             f"Evaluated model: {through['evaluated_model_trained_on']}.",
             f"Served model: {through['served_model_trained_on']}, through {through['newest_time_trained_on']}; "
             "forecasts.csv on the forecast run holds its forecast of the future.", "",
             f"Test metrics, averaged over the series (sMAPE and MAPE in %, coverage of the "
             f"{100 * settings.interval_level:g} % intervals in %):", "",
             tables.to_markdown(("forecaster",) + TABLE_METRICS, table),
             "Per series: cross_validation.csv and per_series_metrics.csv on the evaluate run.", "",
             f"Compare runs in the MLflow UI:  {tracking.ui_command()}",
             f"Serve the model on 127.0.0.1:5001:  mlflow models serve -m {model_uri} --env-manager local --port 5001",
             registered or "Not registered.", ""]
    return "\n".join(lines)
