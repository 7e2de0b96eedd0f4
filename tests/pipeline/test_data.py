"""Windows and splits: the seed's data exactly, chronological, no target inside its own input."""

import json

import numpy as np
import pytest

from pipeline import data
from pipeline.errors import ParamError


def seed_tutorial_windows():
    """The tutorial's own generator, verbatim but for the variable names."""
    return np.array([np.sin(np.linspace(k, k + 50, 50)) for k in range(1000)])


def test_default_dataset_is_the_seed_tutorials_data_cut_without_leakage():
    dataset = data.make_sine_dataset(1000, 50, 1, 0.0, 0.1, 0.2, seed=0)
    windows = seed_tutorial_windows().astype(np.float32)
    x = np.concatenate([dataset[f"x_{s}"] for s in data.SPLITS])
    y = np.concatenate([dataset[f"y_{s}"] for s in data.SPLITS])
    assert x.shape == (1000, 49, 1) and y.shape == (1000, 1)
    np.testing.assert_array_equal(x[..., 0], windows[:, :49])
    # The target is the next point after the input, never a point the model reads.
    np.testing.assert_array_equal(y[:, 0], windows[:, 49])
    assert [len(dataset[f"y_{s}"]) for s in data.SPLITS] == [700, 100, 200]
    np.testing.assert_array_equal(dataset["x_test"][..., 0], windows[800:, :49])


def test_splits_are_chronological_and_every_target_follows_its_inputs():
    dataset = data.make_sine_dataset(300, 20, 1, 0.0, 0.1, 0.2, seed=0)
    target_times = {s: dataset[f"t_{s}"][:, -1] for s in data.SPLITS}
    assert target_times["train"].max() < target_times["val"].min()
    assert target_times["val"].max() < target_times["test"].min()
    for split in data.SPLITS:
        times = dataset[f"t_{split}"]
        assert (times[:, :-1] < times[:, -1:]).all()
        np.testing.assert_allclose(np.sin(times[:, :-1]), dataset[f"x_{split}"][..., 0], atol=1e-6)


def test_windowing_puts_inputs_before_labels_and_says_so():
    windowing = data.Windowing(time_steps=5)
    assert repr(windowing) == "Windowing(time_steps=5, horizon=1): inputs at [0..3], labels at [4]"
    x, y = windowing.cut(np.arange(10).reshape(2, 5))
    np.testing.assert_array_equal(x[..., 0], [[0, 1, 2, 3], [5, 6, 7, 8]])
    np.testing.assert_array_equal(y, [[4], [9]])


def test_windowing_rejects_a_window_with_no_room_for_inputs():
    with pytest.raises(ParamError, match=r"parameter `time_steps`, expected an integer larger than horizon=1, got 1\."):
        data.Windowing(time_steps=1)


@pytest.mark.parametrize("n,val,test,sizes", [(1000, 0.1, 0.2, (700, 100, 200)), (10, 0.1, 0.2, (7, 1, 2))])
def test_split_sizes(n, val, test, sizes):
    assert data.split_sizes(n, val, test) == sizes


def test_split_that_leaves_a_set_empty_is_an_error_naming_the_parameters():
    with pytest.raises(ParamError) as error:
        data.split_sizes(10, 0.6, 0.4)
    assert "`val_fraction`" in str(error.value) and "train/val/test sizes 0/6/4" in str(error.value)


def test_windowing_with_a_horizon():
    windowing = data.Windowing(time_steps=6, horizon=2)
    assert repr(windowing) == "Windowing(time_steps=6, horizon=2): inputs at [0..3], labels at [4..5]"
    x, y = windowing.cut(np.arange(12).reshape(2, 6))
    np.testing.assert_array_equal(y, [[4, 5], [10, 11]])


@pytest.mark.parametrize("horizon", [1, 3, 7])
def test_series_split_leaks_no_later_value_into_earlier_windows(horizon):
    times = np.arange(400.0)
    dataset = data.make_series_dataset(times, np.sin(times / 5), 30, horizon, 0.1, 0.2)
    last_point = {s: dataset[f"t_{s}"].max() for s in data.SPLITS}
    first_target = {s: dataset[f"t_{s}"][:, 30 - horizon:].min() for s in data.SPLITS}
    # Every training window, inputs and targets, ends before the first validation
    # target; every validation window before the first test target.
    assert last_point["train"] < first_target["val"]
    assert last_point["val"] < first_target["test"]
    test_targets = set(dataset["t_test"][:, 30 - horizon:].ravel())
    assert not test_targets & set(dataset["t_train"].ravel()) and not test_targets & set(dataset["t_val"].ravel())
    # The test period is the last 20 % of the 400 time points, the 10 % before it validates;
    # each period's windows have all their targets inside it.
    assert test_targets == set(times[320:])
    assert set(dataset["t_val"][:, 30 - horizon:].ravel()) == set(times[280:320])
    assert [len(dataset[f"y_{s}"]) for s in data.SPLITS] == [251, 40 - horizon + 1, 80 - horizon + 1]
    np.testing.assert_allclose(dataset["y_test"], np.sin(dataset["t_test"][:, 30 - horizon:] / 5), atol=1e-6)
    # origin_<split>: where each window's first target sits in the series.
    for split in data.SPLITS:
        np.testing.assert_array_equal(dataset["series"][dataset[f"origin_{split}"]], dataset[f"y_{split}"][:, 0])


def test_the_test_targets_are_the_same_whatever_the_window_length():
    times = np.arange(300.0)
    targets = [set(data.make_series_dataset(times, np.cos(times), time_steps, 2, 0.1, 0.2)["t_test"][:, -2:].ravel())
               for time_steps in (10, 40, 55)]
    assert targets[0] == targets[1] == targets[2] == set(times[240:])


def test_series_too_short_for_its_windows_is_an_error_naming_time_steps():
    with pytest.raises(ParamError, match=r"`time_steps`: a series of 40 points gives 0 windows of time_steps=50"):
        data.make_series_dataset(np.arange(40.0), np.zeros(40), 50, 1, 0.1, 0.2)
    with pytest.raises(ParamError, match=r"a series of 12 points split as .* gives train/val/test sizes 0/1/2"):
        data.make_series_dataset(np.arange(12.0), np.zeros(12), 10, 1, 0.1, 0.2)


def test_noise_is_seeded_gaussian_with_the_requested_std():
    clean = data.make_sine_dataset(1000, 50, 1, 0.0, 0.1, 0.2, seed=1)
    noisy = data.make_sine_dataset(1000, 50, 1, 0.05, 0.1, 0.2, seed=1)
    again = data.make_sine_dataset(1000, 50, 1, 0.05, 0.1, 0.2, seed=1)
    other = data.make_sine_dataset(1000, 50, 1, 0.05, 0.1, 0.2, seed=2)
    np.testing.assert_array_equal(noisy["x_train"], again["x_train"])
    assert not np.array_equal(noisy["x_train"], other["x_train"])
    assert np.std(noisy["x_train"] - clean["x_train"]) == pytest.approx(0.05, rel=0.05)


def test_sine_continuation_continues_the_window_grid():
    dataset = data.make_sine_dataset(1000, 50, 1, 0.0, 0.1, 0.2, seed=0)
    times = dataset["t_test"][0]
    future_times, values = data.sine_continuation(times[-2], times[1] - times[0], 3)
    np.testing.assert_allclose(future_times[0], times[-1])
    np.testing.assert_allclose(values[0], dataset["y_test"][0, 0], atol=1e-6)


def test_saved_dataset_round_trips_and_a_changed_file_is_caught(tmp_path):
    dataset = data.make_sine_dataset(50, 10, 1, 0.0, 0.1, 0.2, seed=0)
    data.save_dataset(dataset, {"source": "sine"}, tmp_path)
    loaded, manifest = data.load_dataset(tmp_path)
    assert manifest["source"] == "sine"
    assert manifest["arrays"]["x_train"]["shape"] == [35, 9, 1]
    for name, array in dataset.items():
        np.testing.assert_array_equal(loaded[name], array)
    tampered = dataset["y_test"].copy()
    tampered[0] += 1
    np.save(tmp_path / "y_test.npy", tampered)
    with pytest.raises(ParamError, match=r"Data file .*y_test\.npy does not match its manifest"):
        data.load_dataset(tmp_path)
    json.loads((tmp_path / data.MANIFEST).read_text())  # the manifest itself is untouched JSON


def _saved(tmp_path):
    dataset = data.make_sine_dataset(50, 10, 1, 0.0, 0.1, 0.2, seed=0)
    data.save_dataset(dataset, {"source": "sine"}, tmp_path)
    return dataset


def test_a_missing_array_file_is_an_error_naming_it(tmp_path):
    _saved(tmp_path)
    (tmp_path / "x_val.npy").unlink()
    with pytest.raises(ParamError, match=r"^Data file .*x_val\.npy cannot be read \(FileNotFoundError"):
        data.load_dataset(tmp_path)


def test_an_array_that_needs_pickle_is_refused_not_unpickled(tmp_path):
    _saved(tmp_path)
    np.save(tmp_path / "x_train.npy", np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(ParamError, match=r"^Data file .*x_train\.npy cannot be read \(ValueError: .*allow_pickle"):
        data.load_dataset(tmp_path)


def test_non_finite_values_are_an_error_even_when_the_manifest_agrees(tmp_path):
    dataset = _saved(tmp_path)
    poisoned = {**dataset, "x_train": dataset["x_train"].copy()}
    poisoned["x_train"][3, 2, 0] = np.nan
    data.save_dataset(poisoned, {"source": "sine"}, tmp_path)  # a manifest that matches the NaN
    with pytest.raises(ParamError, match=r"^Data file .*x_train\.npy holds 1 NaN or infinite values"):
        data.load_dataset(tmp_path)


@pytest.mark.parametrize("manifest,message", [
    ("{not json", r"^Data manifest .*manifest\.json is not valid \(JSONDecodeError"),
    ('{"arrays": {}}', r"^Data manifest .*manifest\.json lists \[\], expected at least"),
])
def test_a_broken_manifest_is_an_error_naming_it(tmp_path, manifest, message):
    _saved(tmp_path)
    (tmp_path / data.MANIFEST).write_text(manifest)
    with pytest.raises(ParamError, match=message):
        data.load_dataset(tmp_path)
