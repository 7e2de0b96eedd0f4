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

from pipeline import data
from pipeline.errors import ParamError
from pipeline.stages import command_line


def newest_model_uri():
    """The models:/ URI of the newest finished train run, in any experiment."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.stage = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs or "model_uri" not in runs[0].data.tags:
        raise ParamError(
            f"Received `model_uri`='auto', but the store {mlflow.get_tracking_uri()} has no finished "
            "train run with a model: train one first or pass -P model_uri=<URI>."
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


def read_windows(source, column, input_width, trained=None):
    """Windows (batch, timesteps, 1) from a CSV series, a JSON file, JSON text or '-' (stdin).

    From a CSV, the last `input_width` values of `csv_column`'s column."""
    if source.endswith(".csv"):
        _, values, _, _ = data.read_csv_series(source, csv_column(source, column, trained or {}))
        return np.asarray(values[-input_width:], dtype=np.float32).reshape(1, -1, 1)
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
    return windows


def run(model_uri, input, column, output):
    """Prints (output '-') or writes the forecasts as CSV; returns them as an array."""
    if model_uri == "auto":
        model_uri = newest_model_uri()
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as error:  # MLflow raises several types for a bad URI
        raise ParamError(
            f"Received an invalid value for parameter `model_uri`, expected an MLflow model URI "
            f"(models:/<id>, runs:/<train run id>/model), got {model_uri!r} ({type(error).__name__})."
        ) from error
    input_width = int(model.metadata.metadata["input_width"])
    windows = read_windows(input, column, input_width, model.metadata.metadata)
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
    header = ",".join(f"{name}_{step}" for name in columns for step in steps)
    rows = np.hstack(list(columns.values()))
    lines = [header] + [",".join(repr(float(value)) for value in row) for row in rows]
    text = "\n".join(lines) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
    return forecasts


def main(argv=None):
    """The `lstm-predict` console script."""
    command_line("predict", run, argv)


if __name__ == "__main__":
    main()
