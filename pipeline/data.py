"""Series → windows → chronological splits. All window index arithmetic lives here.

A window is `time_steps` consecutive points. The model reads the first
`time_steps - horizon` of them and predicts the last `horizon`. Splits are
chronological: the earliest windows train, the next ones validate, the last
ones test, as in the seed tutorial (and unlike a shuffled split, which would
let the model see the future of the test set).
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.params import ParamError

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


def _span(indices):
    return f"[{indices[0]}]" if len(indices) == 1 else f"[{indices[0]}..{indices[-1]}]"


def split_sizes(n_windows, val_fraction, test_fraction):
    """Window counts (train, val, test) of a chronological split; each must be ≥ 1."""
    n_test = int(round(n_windows * test_fraction))
    n_val = int(round(n_windows * val_fraction))
    n_train = n_windows - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ParamError(
            "Received invalid values for parameters `n_samples`, `val_fraction` and "
            f"`test_fraction`: {n_windows} windows split as val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} gives train/val/test sizes "
            f"{n_train}/{n_val}/{n_test}; each split needs at least one window."
        )
    return n_train, n_val, n_test


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


def make_sine_dataset(n_samples, time_steps, noise, val_fraction, test_fraction, seed):
    """Windows of the seed's sine (plus Gaussian noise of std `noise`), cut and split.

    Returns a dict of float arrays: `x_<split>` (n, time_steps - 1, 1) inputs,
    `y_<split>` (n, 1) targets, `t_<split>` (n, time_steps) the time of every
    point of every window, for split in train, val, test.
    """
    windowing = Windowing(time_steps)
    sizes = split_sizes(n_samples, val_fraction, test_fraction)
    times, values = sine_windows(n_samples, time_steps)
    if noise > 0:
        values = values + np.random.default_rng(seed).normal(0.0, noise, size=values.shape)
    x, y = windowing.cut(values.astype(np.float32))
    bounds = np.cumsum((0,) + sizes)
    dataset = {}
    for split, start, stop in zip(SPLITS, bounds[:-1], bounds[1:]):
        dataset[f"x_{split}"] = x[start:stop]
        dataset[f"y_{split}"] = y[start:stop]
        dataset[f"t_{split}"] = times[start:stop]
    return dataset


def sha256_of(array):
    """Content hash of an array: dtype, shape and bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
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
    """Reads a folder written by `save_dataset`, checking every array's sha256.

    Returns (dataset, manifest); raises ParamError naming the file on a mismatch.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ParamError(f"Data folder {folder} has no {MANIFEST}: it was not written by generate_data.")
    manifest = json.loads(manifest_path.read_text())
    dataset = {}
    for name, entry in manifest["arrays"].items():
        path = folder / f"{name}.npy"
        array = np.load(path, allow_pickle=False)
        if sha256_of(array) != entry["sha256"]:
            raise ParamError(
                f"Data file {path} does not match its manifest: sha256 {sha256_of(array)}, "
                f"expected {entry['sha256']}. Regenerate the data."
            )
        dataset[name] = array
    return dataset, manifest
