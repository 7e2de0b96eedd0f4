"""Stage 1: the data, logged under `data/`.

A series (the seed tutorial's sine, `data_source=sine`, or a column of a CSV
file) is cut into windows, split chronologically. A collection (a long-format
CSV with the column `id_column`: one row per series id, time and value) is
logged as its series, right-aligned in one matrix, and its folds: the test
cut-off at each series' last `horizon` points, and `n_windows` validation
cut-offs before it (pipeline.collection.Folds). Every problem with the file
is reported before the run opens.
"""

import dataclasses
import hashlib
import itertools
from pathlib import Path

import mlflow
import numpy as np

from pipeline import collection as coll
from pipeline import csv_input, data, metrics, params, tracking
from pipeline.errors import ParamError
from pipeline.stages import program


def source_sha256(data_source):
    """The sha256 of a CSV source file (of a Parquet folder: of its files' relative
    paths and bytes, in sorted order), or None for the sine."""
    if data_source == "sine":
        return None
    path = Path(data_source)
    if path.is_dir() and coll.is_parquet(path):
        digest = hashlib.sha256()
        for part in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(part.relative_to(path)).encode() + b"\0")
            with part.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()
    if not path.is_file():
        raise ParamError(
            f"Received an invalid value for parameter `data_source`, expected 'sine', the path of a CSV file or a "
            f"Parquet collection (a .parquet file or a folder of them), got {data_source!r}: no such file (relative "
            f"paths start at {Path.cwd()})."
        )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fits(n_points, horizon, season, val_fraction, test_fraction, input_width, level):
    """What fails for these values, in words (an empty list when everything fits)."""
    val_start, test_start = data.series_split_points(n_points, val_fraction, test_fraction)
    n_val, n_test = test_start - val_start, n_points - test_start
    problems = []
    if val_start - horizon - input_width + 1 < 1:
        problems.append(f"a training window needs {input_width} input values and {horizon} target"
                        f"{'s' if horizon > 1 else ''} before the validation period, which starts at point {val_start + 1}")
    if n_val - horizon + 1 < 1 or n_test - horizon + 1 < 1:
        problems.append(f"horizon {horizon} needs {horizon} points in the validation period ({n_val}) and in the "
                        f"test period ({n_test})")
    if season and test_start < 2 * season:
        problems.append(f"season {season} needs two seasons ({2 * season} points) before the test period, which "
                        f"starts at point {test_start + 1}")
    return problems


MIN_TRAIN_WINDOWS = 16


def fit_defaults(path, n_points, horizon, season, val_fraction, test_fraction):
    """With time_steps='auto', what makes a short series run rather than be refused:
    (time_steps, val_fraction, test_fraction, notes). The horizon and season asked
    are kept; the validation and test periods grow to hold at least one
    horizon each (validation, if the series allows, enough windows for a 90 %
    interval), then the input window shrinks until a training window fits. Each
    change is a note. Raises explain_what_fits' ParamError when nothing fits."""
    width = params.resolve_time_steps("auto", horizon, season, False) - horizon
    if not _fits(n_points, horizon, season, val_fraction, test_fraction, width, None):
        return width + horizon, val_fraction, test_fraction, []
    n_val, n_test = int(round(n_points * val_fraction)), int(round(n_points * test_fraction))
    for val_points in dict.fromkeys(max(n_val, wanted) for wanted in (horizon + 8, horizon)):
        test_points = max(n_test, horizon)
        v, t = val_points / n_points, test_points / n_points
        val_start = n_points - test_points - val_points
        widths = [w for w in range(width, 0, -1) if not (w == 1 and season >= 2)
                  and not _fits(n_points, horizon, season, v, t, w, None)]
        # The longest window that leaves MIN_TRAIN_WINDOWS training windows, else the longest that fits.
        widths = [w for w in widths if val_start - horizon - w + 1 >= MIN_TRAIN_WINDOWS] or widths
        for w in widths[:1]:
            notes = []
            if test_points != n_test:
                notes.append(f"the test period was {n_test} points, fewer than horizon {horizon}: it is the last "
                             f"{test_points} (test_fraction {t:.3g})")
            if val_points != n_val:
                notes.append(f"the validation period was {n_val} points: it is the {val_points} before the test "
                             f"period (val_fraction {v:.3g}), {val_points - horizon + 1} validation windows")
            if w != width:
                notes.append(f"{path} has {n_points} points, too few for {width} input values: windows read {w} "
                             f"(time_steps {w + horizon})")
            return w + horizon, v, t, notes
    explain_what_fits(path, n_points, horizon, season, val_fraction, test_fraction, None)


def explain_what_fits(path, n_points, horizon, season, val_fraction, test_fraction, level):
    """With time_steps='auto': when the series cannot give every split its windows,
    one ParamError that says what the series has, what each setting needs, and
    settings that would run (found by trying shorter windows, more validation,
    shorter horizons and seasons, lower interval levels, in that order)."""
    input_width = params.resolve_time_steps("auto", horizon, season, False) - horizon
    problems = _fits(n_points, horizon, season, val_fraction, test_fraction, input_width, level)
    if not problems:
        return
    levels = [level] + ([0.8, 0.5] if level and level > 0.5 else [])
    seasons = sorted({season, *(s for s in (12, 7, 4, 0) if s < season)}, reverse=True)
    vals = [v for v in sorted({val_fraction, 0.2, 0.3, 0.4}) if v >= val_fraction and v + test_fraction < 1]
    # In this order of preference: the level asked, the season asked, the horizon asked, as little more
    # validation as needed, the longest window (a one-value window only without a season).
    tries = itertools.product(levels, seasons, range(horizon, 0, -1), vals, range(input_width, 0, -1))
    suggestion = next(({"time_steps": width + h, "val_fraction": v, "horizon": h, "season": s, "interval_level": lv}
                       for lv, s, h, v, width in tries
                       if not (width == 1 and s >= 2) and not _fits(n_points, h, s, v, test_fraction, width, lv)),
                      None)
    current = {"time_steps": "auto", "val_fraction": val_fraction, "horizon": horizon, "season": season,
               "interval_level": level}
    if suggestion:
        changes = " ".join(f"-P {name}={value}" for name, value in suggestion.items()
                           if value != current[name] and value is not None)
        advice = f"this would run: {changes}"
    else:
        advice = "no window, horizon or season makes a series this short run: use a longer series"
    raise ParamError(
        f"{path} has {n_points} points, too few for the defaults: with time_steps='auto' (the seed's 49 input values, "
        f"or a season if longer: {input_width}), {'; '.join(problems)}. Of these points the last {round(n_points * test_fraction)} "
        f"test (test_fraction {test_fraction}) and the {round(n_points * val_fraction)} before them validate "
        f"(val_fraction {val_fraction}); {advice}."
    )


def prepare_each(combinations):
    """Reads and checks every distinct CSV series or collection among `combinations`
    (dicts of at least the data parameters), so that a series too short for one
    trial's windows, or a collection given a setting it refuses (scaling=standard),
    stops a sweep or a study before its first trial."""
    prepared, checked = {}, set()
    for c in combinations:
        values = tuple(c.get(name, params.PARAMS[name].default) for name in params.DATA_PARAMS)
        if values[0] == "sine":
            continue
        if values not in prepared:
            prepared[values] = prepare(**dict(zip(params.DATA_PARAMS, values)))
        dataset, manifest, _ = prepared[values]
        trained = {name: c.get(name, params.PARAMS[name].default) for name in params.TRAIN_PARAMS}
        key = (values, tuple(map(str, trained.values())))
        if manifest["source"] == "collection" and key not in checked:  # the settings its data constrains
            from pipeline.stages import train

            checked.add(key)
            train.check_data(trained, dataset, manifest)


def prepare(data_source, column, time_column, fill_missing, time_format, separator, decimal, thousands,
            n_samples, time_steps, horizon, noise, val_fraction, test_fraction, seed, season=0,
            id_column=coll.ID, min_length=0, n_windows="auto", step_size="auto", interval_level=0.9):
    """Builds and checks the dataset, logging nothing: (dataset, manifest, tags).

    A CSV with the column `id_column` is a collection (`prepare_collection`).
    For a series, `season` sizes time_steps='auto' and must fit it twice before
    its test period. Every problem with the parameters or the file is a
    ParamError, raised before any run is opened.
    """
    values = dict(locals())
    if data_source != "sine" and coll.is_collection(data_source, id_column, separator):
        return prepare_collection(values)
    given = [f"{name}={values[name]}" for name in ("min_length", "n_windows", "step_size")
             if values[name] != params.PARAMS[name].default]
    if given:
        raise ParamError(f"Received {', '.join(given)} for {data_source}, which is one series (it has no column "
                         f"{id_column!r}): they apply to a collection; drop them.")
    for name in ("id_column", "min_length", "n_windows", "step_size", "interval_level"):
        del values[name]  # the manifest keeps a series' own parameters
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
        read = csv_input.read_csv_series(data_source, column, time_column, fill_missing, time_format, separator,
                                         decimal, thousands)
        times, series, column_name, n_filled = read
        fitted = []
        if values["time_steps"] == "auto":
            time_steps, val_fraction, test_fraction, fitted = fit_defaults(
                data_source, len(series), horizon, season, val_fraction, test_fraction)
            manifest.update(time_steps=time_steps, windowing=repr(data.Windowing(time_steps, horizon)))
        dataset = data.make_series_dataset(times, series, time_steps, horizon, val_fraction, test_fraction)
        fit_points = int(dataset["origin_test"][0])
        if season and fit_points < 2 * season:
            raise ParamError(
                f"Received an invalid value for parameter `season`: {data_source} has {fit_points} points "
                f"before its test period, fewer than two seasons of {season} (ETS and the seasonal baselines "
                "need two); use a shorter season, -P season=0, or a longer series."
            )
        manifest.update(source="csv", path=str(Path(data_source).resolve()), column=column_name,
                        n_points=len(series), n_filled=n_filled, source_sha256=tags["source_sha256"],
                        time_step=read.step, notes=list(read.notes) + fitted)
    return dataset, manifest, tags


def prepare_collection(values):
    """A collection's (arrays, manifest, tags): the series as read
    (pipeline.collection), those too short dropped with min_length, and the
    folds (pipeline.collection.Folds): `n_windows` validation cut-offs `step_size`
    apart before each series' last `horizon` points ('auto': 1, or the fewest
    that give `interval_level` enough windows)."""
    from custom_layers import transforms

    path, horizon, season = values["data_source"], values["horizon"], values["season"]
    reading = {name: values[name] for name in ("fill_missing", "time_format", "separator", "decimal", "thousands")}
    time_column = coll.TIME if values["time_column"] == "none" else values["time_column"]
    column = coll.VALUE if values["column"] == "auto" else values["column"]
    sha256 = source_sha256(path)
    collection_ = coll.read_collection(path, values["id_column"], time_column, column, **reading)
    collection_, note = coll.check_lengths(collection_, horizon, min_length=values["min_length"])
    time_steps = values["time_steps"]
    input_width = coll.default_input_width(horizon, season) if time_steps == "auto" else time_steps - horizon
    if input_width < 1:
        raise ParamError(f"Received `time_steps`={time_steps} with `horizon`={horizon}: the window must be longer "
                         "than the horizon.")
    step_size = horizon if values["step_size"] == "auto" else values["step_size"]
    folds = _folds(collection_, horizon, values["n_windows"], step_size,
                   transforms.min_windows_for(values["interval_level"]))
    if not coll.count_training_windows(collection_, input_width, horizon, folds.holdout("select")):
        longest = int(np.argmax(collection_.lengths))
        raise ParamError(
            f"No series has a training window before the first validation cut-off: the longest, "
            f"{collection_.ids[longest]!r}, has {collection_.lengths[longest]} points and {folds!r} hold out its last "
            f"{folds.holdout('select')}; a series needs {folds.holdout('select') + horizon + 1}. Pass -P n_windows=1 "
            "or a shorter horizon.")
    notes = list(collection_.notes) + ([note] if note else [])
    for model, what in (("select", "the first validation cut-off"), ("test", "the test cut-off")):
        short = coll.no_training_window(collection_, input_width, horizon, folds.holdout(model))
        if short.any():
            first = int(np.flatnonzero(short)[0])
            notes.append(f"{int(short.sum())} series have no training window before {what} (the first, "
                         f"{collection_.ids[first]!r}, has {collection_.lengths[first]} points): the model learns "
                         "from the others and forecasts them from what they have")
    zeros = ~np.any(collection_.values, axis=1)
    if zeros.all():
        notes.append("every series is all zeros: windows are measured in units of 1, and the forecasts are the "
                     "model's forecast of zeros")
    elif zeros.any():
        notes.append(f"{int(zeros.sum())} series are all zeros (the first, {collection_.ids[int(np.argmax(zeros))]!r}): "
                     "their windows are measured in the smallest scale of the other series")
    unvalidated = collection_.lengths < folds.shortest_validated()
    if unvalidated.any():
        notes.append(f"{int(unvalidated.sum())} series are too short for a validation window: they are tested, "
                     "but choose nothing")
    ends = np.unique(collection_.last_times)
    if len(ends) > 1:
        notes.append(f"the series end at {len(ends)} different times ({csv_input.format_time(ends[0])} to "
                     f"{csv_input.format_time(ends[-1])}): each is cut at its own end, as statsforecast's "
                     "cross_validation cuts, so one series' training windows may reach past another's test cut-off")
    collection_.notes = notes
    arrays, entries = coll.to_dataset(collection_)
    manifest = {"parameters": values, "source": "collection", "path": str(Path(path).resolve()),
                "id_column": values["id_column"], "time_column": time_column, "column": column,
                "time_steps": input_width + horizon, "horizon": horizon, "season": season,
                "folds": dataclasses.asdict(folds), "folds_text": repr(folds), "source_sha256": sha256,
                "code_version": tracking.code_version(), **entries}
    return arrays, manifest, {"source_sha256": sha256, "series": str(len(collection_))}


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


def with_ets_forecasts(dataset):
    """The sine's dataset with `ets_test`: ETS's forecasts of its test windows, the
    baseline evaluate compares with. ETS is fitted to each window alone (200 fits
    for the default sine, evaluate's slowest part); made here, it is made once
    for all the runs that reuse the data rather than once per evaluate.
    Not added if any forecast is not finite (evaluate then fits ETS itself)."""
    forecasts = metrics.ets_forecast_windows(dataset["x_test"], dataset["y_test"].shape[1])
    return {**dataset, "ets_test": forecasts} if np.isfinite(forecasts).all() else dataset


def run(data_source, column, time_column, fill_missing, time_format, separator, decimal, thousands, n_samples,
        time_steps, horizon, noise, val_fraction, test_fraction, seed, season=0, id_column=coll.ID, min_length=0,
        n_windows="auto", step_size="auto", interval_level=0.9, prepared=None):
    """Generates and logs the dataset; returns the run id (its data: runs:/<id>/data).

    `prepared`: what `prepare` returned for these values, if it was called already.
    """
    values = dict(locals())
    del values["prepared"]
    dataset, manifest, tags = prepared or prepare(**values)
    for note in manifest.get("notes", []):  # what was assumed in reading the file
        print(f"generate_data: {note}", flush=True)
    if manifest["source"] == "sine":
        dataset = with_ets_forecasts(dataset)
    with tracking.stage_run("generate_data", tags={"data": "collection"} if manifest["source"] == "collection"
                            else None) as active:
        tracking.log_params(values)
        # The content of the data: what "the same data" means when models are compared (for a collection
        # with its validation cut-offs: a validation loss compares only on the same ones).
        tags = {**tags, "data_sha256": coll.sha256(*coll.from_dataset(dataset, manifest))
                if manifest["source"] == "collection" else data.sha256_of_dataset(dataset)}
        if manifest.get("notes"):
            tags["data_notes"] = "; ".join(manifest["notes"])
        mlflow.set_tags(tags)
        tracking.log_dataset(dataset, manifest)
        tracking.log_dataset_input(dataset, manifest, "train", context="generated")
        if manifest["source"] == "collection":
            counts = {"n_series": len(manifest["ids"]), "n_points": int(dataset["lengths"].sum())}
        else:
            counts = {f"n_{split}": len(dataset[f"y_{split}"]) for split in data.SPLITS}
        if manifest["source"] == "csv":
            counts.update(n_points=manifest["n_points"], n_filled=manifest["n_filled"])
        mlflow.log_metrics(counts)
        return active.info.run_id


if __name__ == "__main__":
    program("generate_data", run)
