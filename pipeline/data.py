"""Series → windows → chronological splits. All window index arithmetic lives here.

A window is `time_steps` consecutive points. The model reads the first
`time_steps - horizon` of them and predicts the last `horizon`. Splits are
chronological: the earliest windows train, the next ones validate, the last
ones test, as in the seed tutorial (and unlike a shuffled split, which would
let the model see the future of the test set). The sine's splits count
windows; a series' splits are periods of its time points
(`series_split_points`).
"""

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ParamError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Windowing:
    """Where inputs and labels sit inside a window of `time_steps` points."""

    time_steps: int
    horizon: int = 1

    def __post_init__(self):
        if self.horizon < 1 or self.time_steps <= self.horizon:
            raise ParamError(
                "Received an invalid value for parameter `time_steps`, expected an "
                f"integer larger than horizon={self.horizon}, got {self.time_steps}."
            )

    @property
    def input_width(self):
        return self.time_steps - self.horizon

    @property
    def input_indices(self):
        return np.arange(self.input_width)

    @property
    def label_indices(self):
        return np.arange(self.input_width, self.time_steps)

    def cut(self, windows):
        """(n, time_steps) windows → inputs (n, input_width, 1), labels (n, horizon)."""
        windows = np.asarray(windows)
        if windows.ndim != 2 or windows.shape[1] != self.time_steps:
            raise ValueError(
                f"Expected windows of shape (n, {self.time_steps}), got {windows.shape}."
            )
        return windows[:, self.input_indices, np.newaxis], windows[:, self.label_indices]

    def __repr__(self):
        return (
            f"Windowing(time_steps={self.time_steps}, horizon={self.horizon}): "
            f"inputs at {_span(self.input_indices)}, labels at {_span(self.label_indices)}"
        )


def seasonal_positions(input_width, horizon, season):
    """Positions of the value one season (or whole seasons) before each of the
    `horizon` steps that follow `input_width` values: step j (0-based) looks
    back to input_width + j − season·⌈(j + 1) / season⌉."""
    steps = np.arange(horizon)
    return input_width + steps - season * np.ceil((steps + 1) / season).astype(int)


def _span(indices):
    return f"[{indices[0]}]" if len(indices) == 1 else f"[{indices[0]}..{indices[-1]}]"


def split_sizes(n_windows, val_fraction, test_fraction, gap=0):
    """Window counts (train, val, test) of a chronological split; each must be ≥ 1.

    `gap` windows are left out between train and val and between val and test,
    so that no window's targets overlap the next split's (horizon - 1 for
    sliding windows over one series).
    """
    n_test = int(round(n_windows * test_fraction))
    n_val = int(round(n_windows * val_fraction))
    n_train = n_windows - n_val - n_test - 2 * gap
    if min(n_train, n_val, n_test) < 1:
        left_out = f", leaving out {gap} windows between splits," if gap else ""
        raise ParamError(
            f"Received invalid values for parameters `val_fraction` and `test_fraction`: "
            f"{n_windows} windows split as val_fraction={val_fraction}, test_fraction={test_fraction}"
            f"{left_out} give train/val/test sizes {n_train}/{n_val}/{n_test}; each split needs "
            "at least one window: use more data, a smaller `time_steps` or other fractions."
        )
    return n_train, n_val, n_test


def _split(arrays, sizes, gap):
    """Cuts each (n, ...) array into chronological train/val/test parts."""
    n_train, n_val, n_test = sizes
    starts = {"train": 0, "val": n_train + gap, "test": n_train + n_val + 2 * gap}
    lengths = dict(zip(SPLITS, sizes))
    return {
        f"{name}_{split}": array[starts[split] : starts[split] + lengths[split]]
        for name, array in arrays.items()
        for split in SPLITS
    }


def sine_windows(n_samples, time_steps):
    """The seed tutorial's data: window k = sin(linspace(k, k + time_steps, time_steps)).

    Returns (times, values), each (n_samples, time_steps) float64. Consecutive
    windows start 1 apart; points inside a window are time_steps / (time_steps - 1)
    apart, exactly as `np.linspace` places them in the tutorial.
    """
    starts = np.arange(n_samples, dtype=np.float64)[:, np.newaxis]
    times = np.linspace(starts, starts + time_steps, time_steps, axis=1)[..., 0]
    return times, np.sin(times)


def sine_continuation(last_time, step, n_steps):
    """The noise-free sine at `n_steps` points after `last_time`, `step` apart."""
    times = last_time + step * np.arange(1, n_steps + 1)
    return times, np.sin(times)


def make_sine_dataset(n_samples, time_steps, horizon, noise, val_fraction, test_fraction, seed):
    """Windows of the seed's sine (plus Gaussian noise of std `noise`), cut and split.

    Consecutive windows start 1 apart and span `time_steps` time units, so they
    overlap in time. With horizon 1 (the seed's), the last training window
    still ends before the first validation target; with a longer horizon,
    `sine_gap` windows are left out at each split boundary so that it does.
    Returns a dict of arrays: `x_<split>` (n, time_steps - horizon, 1) inputs,
    `y_<split>` (n, horizon) targets, `t_<split>` (n, time_steps) the time of
    every point of every window, for split in train, val, test.
    """
    windowing = Windowing(time_steps, horizon)
    gap = sine_gap(time_steps, horizon)
    sizes = split_sizes(n_samples, val_fraction, test_fraction, gap)
    times, values = sine_windows(n_samples, time_steps)
    if noise > 0:
        values = values + np.random.default_rng(seed).normal(0.0, noise, size=values.shape)
    x, y = windowing.cut(values.astype(np.float32))
    return _split({"x": x, "y": y, "t": times}, sizes, gap)


def sine_gap(time_steps, horizon):
    """Sine windows to leave out at a split boundary so that every point of one
    split's windows precedes the next split's first target.

    Window k holds times k + i·s, s = time_steps / (time_steps - 1), and its
    targets start at i = time_steps - horizon. The last window before the gap
    ends at k + time_steps; the first after it, g + 1 windows later, has its
    first target at k + g + 1 + (time_steps - horizon)·s. That is later for
    every g > ((horizon - 2)·time_steps + 1) / (time_steps - 1).
    """
    bound = ((horizon - 2) * time_steps + 1) / (time_steps - 1)
    return max(0, math.floor(bound) + 1)


def series_split_points(n_points, val_fraction, test_fraction):
    """Where a series' validation and test periods start: (val_start, test_start).

    The test period is the last `test_fraction` of the series' time points and
    the validation period the `val_fraction` before it, whatever the window
    length or horizon: runs with different windows are scored on the very same
    targets.
    """
    n_test = int(round(n_points * test_fraction))
    n_val = int(round(n_points * val_fraction))
    return n_points - n_test - n_val, n_points - n_test


def make_series_dataset(times, values, time_steps, horizon, val_fraction, test_fraction):
    """Sliding windows (stride 1) over one series, split chronologically by the
    time of their targets.

    A window belongs to the split whose period holds all of its targets
    (`series_split_points`); windows whose targets straddle two periods are
    left out, so every training window, inputs and targets, lies before the
    first validation target, and every validation window before the first test
    target. A window's inputs may reach back into the period before its own.

    Returns the dict of `make_sine_dataset` plus `series` (the whole series,
    float32) and `origin_<split>`: for each window, the index in `series` of
    its first target, so that a baseline can look back past the window.
    """
    windowing = Windowing(time_steps, horizon)
    n_points = len(values)
    n_windows = n_points - time_steps + 1
    if n_windows < 3:
        raise ParamError(
            f"Received an invalid value for parameter `time_steps`: a series of {n_points} "
            f"points gives {max(n_windows, 0)} windows of time_steps={time_steps}; "
            "use a smaller `time_steps` or a longer series."
        )
    val_start, test_start = series_split_points(n_points, val_fraction, test_fraction)
    # First-target positions o of the windows of each period: inputs at o - input_width .. o - 1.
    periods = {"train": (windowing.input_width, val_start), "val": (val_start, test_start),
               "test": (test_start, n_points)}
    origins = {split: np.arange(max(start, windowing.input_width), end - horizon + 1)
               for split, (start, end) in periods.items()}
    sizes = {split: len(origin) for split, origin in origins.items()}
    if min(sizes.values()) < 1:
        raise ParamError(
            f"Received invalid values for parameters `time_steps`, `horizon`, `val_fraction` and "
            f"`test_fraction`: a series of {n_points} points split as val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} with windows of time_steps={time_steps} and horizon={horizon} "
            f"gives train/val/test sizes {sizes['train']}/{sizes['val']}/{sizes['test']}; each split "
            "needs at least one window: use a longer series, a smaller `time_steps` or `horizon`, or other fractions."
        )
    series = np.asarray(values, np.float32)
    times = np.asarray(times)
    dataset = {"series": series}
    for split, origin in origins.items():
        positions = origin[:, np.newaxis] + np.arange(-windowing.input_width, horizon)
        x, y = windowing.cut(series[positions])
        dataset.update({f"x_{split}": x, f"y_{split}": y, f"t_{split}": times[positions],
                        f"origin_{split}": origin})
    return dataset


def with_history(dataset, width):
    """The dataset with every split's inputs cut anew at `width` values before each
    window's first target, reaching back into the series as far as it goes and
    padded on the left with its first value beyond (as `transforms.FitWindow`
    pads): the same targets, the longer history a pretrained model reads."""
    series = dataset["series"]
    padded = np.concatenate([np.full(width, series[0], series.dtype), series])
    out = dict(dataset)
    for split in ("train", "val", "test"):
        origins = np.asarray(dataset[f"origin_{split}"])
        positions = (origins + width)[:, np.newaxis] + np.arange(-width, 0)
        out[f"x_{split}"] = padded[positions][..., np.newaxis]
    return out


def hold_out_stopping(dataset):
    """The dataset with a fold held back from its training windows to early-stop on, so that
    its validation windows judge what trains on it without having stopped it; None where the
    training period is too short for both parts.

    The fold is the last training windows, as many as the validation windows but at most
    half of what the training period holds apart from the h - 1 windows that would straddle
    the two parts: `x_val`, `y_val`, `t_val`, `origin_val` become the fold; training keeps
    the windows whose targets all end before the fold's first target; the test split and
    the series stay."""
    horizon = dataset["y_train"].shape[1]
    n_train = len(dataset["y_train"])
    kept = n_train - horizon + 1  # the windows training and fold can share out without overlapping targets
    n_fold = min(len(dataset["y_val"]), kept // 2)
    if n_fold < 1:
        return None
    train, fold = slice(0, kept - n_fold), slice(n_train - n_fold, n_train)
    out = dict(dataset)
    for name in ("x", "y", "t", "origin"):
        arrays = dataset.get(f"{name}_train")
        if arrays is not None:
            out[f"{name}_train"], out[f"{name}_val"] = arrays[train], arrays[fold]
    return out


def every_window(dataset, width=None):
    """Every window of a series, whatever its period: inputs (n, width, 1) of the
    `width` values (default: the dataset's own input width) before each first
    target, from the first training window's to the last point's, stride 1,
    padded on the left with the series' first value where they reach before it;
    targets (n, horizon). What the served model trains on (the forecast stage),
    as {"x_train", "y_train"}; the newest window, (1, width, 1), as `x_future`."""
    series = dataset["series"]
    horizon = dataset["y_train"].shape[1]
    width = dataset["x_train"].shape[1] if width is None else width
    padded = np.concatenate([np.full(width, series[0], series.dtype), series])
    origins = np.arange(int(np.asarray(dataset["origin_train"])[0]), len(series) - horizon + 1)
    inputs = padded[(origins + width)[:, np.newaxis] + np.arange(-width, 0)][..., np.newaxis]
    targets = series[origins[:, np.newaxis] + np.arange(horizon)]
    future = padded[len(padded) - width:][np.newaxis, :, np.newaxis]
    return {"x_train": inputs, "y_train": targets, "x_future": future}


def sha256_of(array):
    """Content hash of an array: dtype, shape and bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # its own bytes, not a copy of them
    return digest.hexdigest()


def sha256_of_dataset(dataset):
    """One hash over every array of a dataset, by name."""
    digest = hashlib.sha256()
    for name in sorted(dataset):
        digest.update(f"{name}:{sha256_of(dataset[name])};".encode())
    return digest.hexdigest()


MANIFEST = "manifest.json"


def save_dataset(dataset, manifest, folder):
    """Writes each array as `<name>.npy` and a manifest with every array's
    shape, dtype and sha256 beside `manifest`'s own entries."""
    folder = Path(folder)
    arrays = {}
    for name, array in dataset.items():
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
        arrays[name] = {"shape": list(array.shape), "dtype": array.dtype.str, "sha256": sha256_of(array)}
    (folder / MANIFEST).write_text(json.dumps({**manifest, "arrays": arrays}, indent=2, sort_keys=True))


def load_dataset(folder):
    """Reads a folder written by `save_dataset`, checking every array as it is
    read: present, readable without pickle, the manifest's sha256 (which covers
    dtype and shape), finite values, and the arrays a dataset has (six splits, or a
    collection's three: pipeline.collection.to_dataset).

    Returns (dataset, manifest); raises ParamError naming the file on any mismatch.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ParamError(f"Data folder {folder} has no {MANIFEST}: it was not written by generate_data.")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["arrays"]
    except (ValueError, KeyError, TypeError) as error:
        raise ParamError(f"Data manifest {manifest_path} is not valid ({type(error).__name__}: {error}). "
                         "Regenerate the data.") from None
    expected = ({"values", "lengths", "last_times"} if manifest.get("source") == "collection"
                else {f"{name}_{split}" for name in ("x", "y") for split in SPLITS})
    if not expected <= set(entries):
        raise ParamError(f"Data manifest {manifest_path} lists {sorted(entries)}, expected at least "
                         f"{sorted(expected)}. Regenerate the data.")
    dataset = {}
    for name, entry in entries.items():
        path = folder / f"{name}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:  # missing, truncated, or an object array (pickle)
            raise ParamError(f"Data file {path} cannot be read ({type(error).__name__}: {error}). "
                             "Regenerate the data.") from None
        if sha256_of(array) != entry["sha256"]:
            raise ParamError(
                f"Data file {path} does not match its manifest: sha256 {sha256_of(array)}, "
                f"expected {entry['sha256']}. Regenerate the data."
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ParamError(f"Data file {path} holds {np.count_nonzero(~np.isfinite(array))} NaN or infinite "
                             "values. Regenerate the data.")
        dataset[name] = array
    return dataset, manifest
