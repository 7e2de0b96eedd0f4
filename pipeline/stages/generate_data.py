"""Stage 1: the series as windows, split chronologically, logged under `data/`.

The series is the seed tutorial's sine (`data_source=sine`) or a column of a
CSV file. Every problem with the file is reported before the run opens.
"""

import hashlib
from pathlib import Path

import mlflow

from pipeline import data, params, tracking
from pipeline.errors import ParamError
from pipeline.stages import program


def source_sha256(data_source):
    """The sha256 of a CSV source file, or None for the sine."""
    if data_source == "sine":
        return None
    path = Path(data_source)
    if not path.is_file():
        raise ParamError(
            f"Received an invalid value for parameter `data_source`, expected 'sine' or the path "
            f"of a CSV file, got {data_source!r}: no such file (relative paths start at {Path.cwd()})."
        )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_each(combinations):
    """Reads and windows every distinct CSV series among `combinations` (dicts of
    at least the data parameters), so that a series too short for one trial's
    windows stops a sweep or a study before its first trial."""
    for values in dict.fromkeys(tuple(c[name] for name in params.DATA_PARAMS) for c in combinations):
        if values[0] != "sine":
            prepare(*values)


def prepare(data_source, column, time_column, fill_missing, n_samples, time_steps, horizon, noise,
            val_fraction, test_fraction, seed, season=0):
    """Builds and checks the dataset, logging nothing: (dataset, manifest, tags).

    `season` sizes time_steps='auto' and must fit a CSV series twice before its
    test period. Every problem with the parameters or the file is a
    ParamError, raised before any run is opened.
    """
    values = dict(locals())
    time_steps = params.resolve_time_steps(time_steps, horizon, season, data_source == "sine")
    windowing = data.Windowing(time_steps, horizon)
    manifest = {"parameters": values, "time_steps": time_steps, "windowing": repr(windowing),
                "code_version": tracking.code_version()}
    tags = {}
    if data_source == "sine":
        dataset = data.make_sine_dataset(n_samples, time_steps, horizon, noise, val_fraction, test_fraction, seed)
        manifest["source"] = "sine"
    else:
        tags["source_sha256"] = source_sha256(data_source)
        times, series, column_name, n_filled = data.read_csv_series(data_source, column, time_column, fill_missing)
        dataset = data.make_series_dataset(times, series, time_steps, horizon, val_fraction, test_fraction)
        fit_points = int(dataset["origin_test"][0])
        if season and fit_points < 2 * season:
            raise ParamError(
                f"Received an invalid value for parameter `season`: {data_source} has {fit_points} points "
                f"before its test period, fewer than two seasons of {season} (ETS and the seasonal baselines "
                "need two); use a shorter season, -P season=0, or a longer series."
            )
        manifest.update(source="csv", path=str(Path(data_source).resolve()), column=column_name,
                        n_points=len(series), n_filled=n_filled, source_sha256=tags["source_sha256"])
    return dataset, manifest, tags


def run(data_source, column, time_column, fill_missing, n_samples, time_steps, horizon, noise,
        val_fraction, test_fraction, seed, season=0, prepared=None):
    """Generates and logs the dataset; returns the run id (its data: runs:/<id>/data).

    `prepared`: what `prepare` returned for these values, if it was called already.
    """
    values = dict(locals())
    del values["prepared"]
    dataset, manifest, tags = prepared or prepare(**values)
    with tracking.stage_run("generate_data") as active:
        tracking.log_params(values)
        # The content of the data: what "the same data" means when models are compared.
        tags = {**tags, "data_sha256": data.sha256_of_dataset(dataset)}
        mlflow.set_tags(tags)
        tracking.log_dataset(dataset, manifest)
        tracking.log_dataset_input(dataset, manifest, "train", context="generated")
        counts = {f"n_{split}": len(dataset[f"y_{split}"]) for split in data.SPLITS}
        if manifest["source"] == "csv":
            counts.update(n_points=manifest["n_points"], n_filled=manifest["n_filled"])
        mlflow.log_metrics(counts)
        return active.info.run_id


if __name__ == "__main__":
    program("generate_data", run)
