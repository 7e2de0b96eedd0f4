"""Forecast with a trained model, no server: `lstm-predict` or `mlflow run . -e predict`.

Input is a CSV series (the model forecasts what follows its last values) or
JSON windows; output is CSV, one row per window: the forecast of each horizon
step (`step_<k>`), then the prediction interval's bounds (`lower_<k>`, `upper_<k>`).
"""

import json
import sys
from pathlib import Path

import mlflow
import numpy as np

from pipeline import csv_input, params
from pipeline.errors import ParamError
from pipeline.stages import command_line


def newest_model_uri():
    """The models:/ URI of the newest finished train run, or run over a collection
    (which trains in its main run), in any experiment."""
    runs = [run for kind in ("tags.stage = 'train'", "tags.data = 'collection'")
            for run in mlflow.search_runs(
                search_all_experiments=True,
                filter_string=f"{kind} and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
                output_format="list",
            )]
    runs.sort(key=lambda run: run.info.start_time, reverse=True)
    if not runs or "model_uri" not in runs[0].data.tags:
        raise ParamError(
            f"Received `model_uri`='auto', but the store {mlflow.get_tracking_uri()} has no finished "
            "train run (or collection run) with a model: train one first or pass -P model_uri=<URI>."
        )
    return runs[0].data.tags["model_uri"]


def csv_column(source, column, trained):
    """The column to read from the CSV `source`: the one given, else the one the
    model was trained on (`trained`: its metadata), from the very file it was
    trained on. A model is not pointed at another series without being told."""
    if column != "auto":
        return column
    trained_source = trained.get("data_source")
    if trained_source and trained_source != "sine" and Path(source).resolve() == Path(trained_source).resolve():
        return trained["column"]
    what = (f"the column {trained['column']!r} of {trained_source}" if trained_source not in (None, "sine")
            else "the sine" if trained_source == "sine" else "data it does not record")
    raise ParamError(
        f"Received `input`={source!r}, but the model was trained on {what}: to forecast this series with it "
        "anyway, name the column of values (--column <name>, -P column=<name>)."
    )


def reading_options(source, trained, given):
    """How to read the CSV `source`: each option given on the command line (`given`:
    {name: value}); else, for the very file the model was trained on, the one it
    was read with (the model's metadata); else its default."""
    same_file = trained.get("data_source") not in (None, "sine") and \
        Path(source).resolve() == Path(trained["data_source"]).resolve()
    options = {}
    for name in params.CSV_READING_PARAMS:
        default = params.PARAMS[name].default
        if name in given:
            options[name] = given[name]
        elif same_file and name in trained:
            options[name] = trained[name]
        else:
            options[name] = default
    return options


def read_windows(source, column, input_width, trained=None, reading=None):
    """Windows (batch, timesteps, 1) from a CSV series, a JSON file, JSON text or '-' (stdin),
    the times of the series (None for JSON) and its step, and the whole series (None for JSON).

    From a CSV, the last `input_width` values of `csv_column`'s column, read with
    `reading_options`."""
    trained = trained or {}
    if source.endswith(".csv"):
        options = reading_options(source, trained, reading or {})
        # A pretrained model reads any series: the column is the one given, else the file's only numeric one.
        chosen = column if trained.get("any_series") else csv_column(source, column, trained)
        series = csv_input.read_csv_series(source, chosen, **options)
        for note in series.notes:
            print(f"predict: {note}", file=sys.stderr, flush=True)
        times = series.times if options["time_column"] != "none" else None
        values = np.asarray(series.values, dtype=np.float32)
        return values[-input_width:].reshape(1, -1, 1), (times, series.step, values)
    if source == "-":
        text = sys.stdin.read()
    elif source.endswith(".json"):
        if not Path(source).is_file():
            raise ParamError(f"Received an invalid value for parameter `input`: no such file {source!r}.")
        text = Path(source).read_text()
    else:
        text = source
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise ParamError(
            "Received an invalid value for parameter `input`, expected a .csv file, a .json file, '-' or JSON "
            f"windows such as [[1.0, 2.0, 3.0]], got {source[:80]!r}."
        ) from None
    if isinstance(payload, dict):
        payload = payload.get("inputs", payload)
    try:
        windows = np.asarray(payload, dtype=np.float32)
    except (TypeError, ValueError):
        raise ParamError(
            "Received an invalid value for parameter `input`, expected windows of numbers, all of one "
            f"length, such as [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], got {text[:80]!r}."
        ) from None
    if windows.ndim == 1:  # one window as a flat list of values
        windows = windows[np.newaxis]
    if windows.ndim == 2:  # windows of plain values
        windows = windows[..., np.newaxis]
    return windows, (None, "", None)


def forecast_times(times, step, horizon):
    """The times of the `horizon` values after the series' last time, or None when
    the series has no time column or no regular step."""
    import pandas as pd

    if times is None or not step:
        return None
    if times.dtype.kind == "M":
        return pd.date_range(pd.Timestamp(times[-1]), periods=horizon + 1, freq=step)[1:].strftime("%Y-%m-%d %H:%M:%S") \
            .str.replace(" 00:00:00", "", regex=False).tolist()
    return [csv_input.format_time(times[-1] + float(step) * k) for k in range(1, horizon + 1)]


def parse(stage, raw_values):
    """`params.parse`, and which reading options were given (`given`): the others
    are the model's own for its training file."""
    return {**params.parse(stage, raw_values), "given": sorted(set(raw_values) & set(params.CSV_READING_PARAMS))}


def run(model_uri, input, column, fill_missing, time_format, separator, decimal, thousands, output, given=(),
        engine="local", season=0):
    """Prints (output '-') or writes the forecasts as CSV; returns them as an array.
    `given`: the names of the reading options the user gave (the rest follow the model).
    `season` (`model_uri` pretrained): the season the pretrained model takes out of each window
    it reads, as `init=pretrained` does (pipeline.pretrained.adapt); a trained model reads its
    series as it was trained, so it refuses one.
    With an `engine`, a collection's model scores the Parquet collection `input` there,
    into the Parquet folder `output` (pipeline.batch); returns the number of series."""
    if season and model_uri != "pretrained":
        raise ParamError(f"Received `season`={season} with `model_uri`={model_uri!r}: a trained model reads its "
                         "series as it was trained; `season` applies to --model_uri pretrained.")
    if model_uri == "auto":
        model_uri = newest_model_uri()
    if engine != "local":
        from pipeline import batch

        if output == "-" or not output.endswith(".parquet"):
            raise ParamError(f"Received `output`={output!r} with --engine {engine}: the engine's workers write a Parquet "
                             "folder; pass --output <folder>.parquet.")
        scored = batch.score(model_uri, input, output, engine)
        print(f"predict: {scored} series scored on {engine}; forecasts in {output}", file=sys.stderr, flush=True)
        return scored
    any_series, model = model_uri == "pretrained", None
    if any_series:
        model_uri, model = _pretrained(model_uri, season)
    try:
        if model is None:
            from pipeline import workarounds

            workarounds.check_pins_first()
            model = mlflow.pyfunc.load_model(model_uri)
    except Exception as error:  # MLflow raises several types for a bad URI
        from pipeline import tracking

        explained = tracking.explain_store_error(error)
        if explained is not None:
            raise explained from None
        raise ParamError(
            f"Received an invalid value for parameter `model_uri`, expected an MLflow model URI "
            f"(models:/<id>, runs:/<train run id>/model), got {model_uri!r} ({type(error).__name__})."
        ) from error
    metadata = model.metadata.metadata
    input_width = int(metadata["input_width"])
    if any_series:  # one series, whichever: not the corpus' collection
        print(f"predict: the pretrained model {model_uri} zero-shot: it learned nothing from this series; it reads up "
              f"to its last {input_width} values and forecasts {metadata['horizon']} steps, with "
              f"{float(metadata['interval_level']):.0%} intervals", file=sys.stderr, flush=True)
        metadata = {"input_width": input_width, "any_series": True}
    reading = {name: value for name, value in (("fill_missing", fill_missing), ("time_format", time_format),
                                               ("separator", separator), ("decimal", decimal),
                                               ("thousands", thousands)) if name in given}
    if "time_step" in metadata and (input.endswith(".csv") or _is_parquet(input)):
        return _forecast_collection(model, metadata, input, column, reading, output)
    windows, (times, step, series) = read_windows(input, column, input_width, metadata, reading)
    if any_series and windows.shape[1] < input_width:
        print(f"predict: the series has {windows.shape[1]} values, fewer than the {input_width} the model reads: it "
              "forecasts from those, padded as in pretraining", file=sys.stderr, flush=True)
    if any_series and isinstance(model, KerasAnswer) and model.season:
        print(f"predict: {model.adapt(windows.ravel() if series is None else series)}", file=sys.stderr, flush=True)
    if any_series:
        print(f"predict: {_calibrate_on(model, input_width, series)}", file=sys.stderr, flush=True)
    try:
        outputs = model.predict(windows, params={"intervals": True})
    except mlflow.exceptions.MlflowException as error:
        raise ParamError(f"Received an invalid value for parameter `input`: {error.message}") from None
    if not isinstance(outputs, dict):  # a model trained before intervals existed
        outputs = {"forecast": outputs}
    columns = {"step": outputs["forecast"], "lower": outputs.get("lower"), "upper": outputs.get("upper")}
    columns = {name: values for name, values in columns.items() if values is not None}
    forecasts = outputs["forecast"]
    steps = range(1, forecasts.shape[1] + 1)
    header = [f"{name}_{step}" for name in columns for step in steps]
    rows = [[repr(float(value)) for value in row] for row in np.hstack(list(columns.values()))]
    future = forecast_times(times, step, forecasts.shape[1])
    if future is not None:  # a CSV series with dates: when each forecast step falls
        header = [f"time_{step}" for step in steps] + header
        rows = [future + row for row in rows]
    text = "\n".join(",".join(line) for line in [header] + rows) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
    return forecasts


def _calibrate_on(model, input_width, series):
    """Calibrates the shipped pretrained model's intervals on the CSV series it forecasts
    (pipeline.pretrained.series_half_widths: every origin of the series, none of which trained
    it; on 641 short M1/M3 series this held the level better than the corpus' half-widths,
    benchmarks/results/interval_calibration.md); says how."""
    corpus = "calibrated across its corpus' series"
    if not isinstance(model, KerasAnswer) or series is None:  # a registered MLflow model, or JSON windows
        return f"the intervals are {corpus}"
    from pipeline import model as forecaster
    from pipeline import pretrained

    layer = model.model.get_layer(forecaster.INTERVAL_LAYER)
    q, own, windows = pretrained.series_half_widths(model.model, input_width, series,
                                                    np.asarray(layer.half_width.numpy()))
    layer.half_width.assign(q.astype("float32"))
    steps = len(q)
    if not own:
        return (f"the series has {windows} windows with {pretrained.MIN_VISIBLE} values before their target, too few "
                f"to calibrate a {layer.level:g} interval: its intervals are {corpus}")
    return (f"the intervals of steps 1 to {own} are calibrated on the series' own {windows} windows"
            + (f"; steps {own + 1} to {steps}, which the series holds too few of, {corpus}" if own < steps else ""))


def _pretrained(name, season=0):
    """`--model_uri pretrained`: (the URI, the model), the model None for an MLflow
    model (lstm-pretrained@champion, loaded as any other), else the shipped Keras
    model answering as one (`KerasAnswer`); with a `season`, the Keras model of
    either, which `KerasAnswer.adapt` then reads the series' windows through."""
    from pipeline import pretrained

    uri = pretrained.resolve_uri(name)
    model = KerasAnswer(pretrained.load(uri, "model_uri"), season) if uri.endswith(".keras") or season else None
    return uri, model


class KerasAnswer:
    """A pretrained model's Keras file, predicting as its MLflow model would
    (forecast, lower, upper for windows), with the metadata lstm-predict reads;
    no run and no store involved."""

    def __init__(self, loaded, season=0):
        from types import SimpleNamespace

        from pipeline import model as forecaster

        self.loaded, self.season, self.model = loaded, season, loaded.model
        self.metadata = SimpleNamespace(metadata={
            "input_width": loaded.input_width, "horizon": loaded.horizon,
            "interval_level": float(loaded.model.get_layer(forecaster.INTERVAL_LAYER).level)})

    def adapt(self, series):
        """With a season: the model reads each window through its own decomposition, as
        `init=pretrained` serves the series (scaled by its spread); says how, in one line."""
        from pipeline import pretrained

        loaded = self.loaded
        self.model = pretrained.zero_shot_model(loaded, loaded.horizon, float(np.std(series)) or 1.0, self.season)
        return f"it reads {pretrained.windows_note(loaded, self.season)}"

    def predict(self, windows, params=None):
        from pipeline import model as forecaster

        return forecaster.predict(self.model, windows)


def _forecast_collection(model, trained, source, column, given, output):
    """A collection's model and a collection CSV (its id, time and value columns
    named as in training unless `column` is given): the next values of every
    series, as the MLflow model's long table (unique_id, ds, step, forecast,
    lower, upper)."""
    from pipeline import collection as coll

    options = reading_options(source, trained, given)
    read = coll.read_collection(source, trained["id_column"], trained.get("time_column", coll.TIME),
                                trained.get("column", coll.VALUE) if column == "auto" else column,
                                **{name: options[name] for name in params.CSV_READING_PARAMS if name != "time_column"})
    for note in read.notes:
        print(f"predict: {note}", file=sys.stderr, flush=True)
    try:
        from pipeline.batch import collection_forecasts

        table = collection_forecasts(model, read, int(trained["input_width"]))
    except mlflow.exceptions.MlflowException as error:
        raise ParamError(f"Received an invalid value for parameter `input`: {error.message}") from None
    width = int(trained["input_width"])
    short = read.lengths < width
    if short.any():
        first = int(np.flatnonzero(short)[0])
        print(f"predict: {int(short.sum())} series are shorter than the {width} values the model reads (the first, "
              f"{read.ids[first]!r}, has {read.lengths[first]}): "
              + ("the model masked the values each lacks" if trained.get("short_history") == "mask"
                 else "each was padded on the left with its first value")
              + ", and the column `padded` says how many", file=sys.stderr, flush=True)
    if output.endswith(".parquet"):
        table.to_parquet(output, index=False)
        return table
    text = table.to_csv(index=False)
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
    return table


def _is_parquet(source):
    from pipeline import collection as coll

    return coll.is_parquet(source)


def main(argv=None):
    """The `lstm-predict` console script."""
    from pipeline import tracking

    command_line("predict", tracking.store_errors_in_one_line(run), argv, parse=parse, prog="lstm-predict")


if __name__ == "__main__":
    main()
