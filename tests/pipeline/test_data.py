"""Windows and splits: the seed's data exactly, chronological, no target inside its own input."""

import json

import numpy as np
import pytest

from pipeline import data
from pipeline.params import ParamError


def seed_tutorial_windows():
    """The tutorial's own generator, verbatim but for the variable names."""
    return np.array([np.sin(np.linspace(k, k + 50, 50)) for k in range(1000)])


def test_default_dataset_is_the_seed_tutorials_data_cut_without_leakage():
    dataset = data.make_sine_dataset(1000, 50, 0.0, 0.1, 0.2, seed=0)
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
    dataset = data.make_sine_dataset(300, 20, 0.0, 0.1, 0.2, seed=0)
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


def test_noise_is_seeded_gaussian_with_the_requested_std():
    clean = data.make_sine_dataset(1000, 50, 0.0, 0.1, 0.2, seed=1)
    noisy = data.make_sine_dataset(1000, 50, 0.05, 0.1, 0.2, seed=1)
    again = data.make_sine_dataset(1000, 50, 0.05, 0.1, 0.2, seed=1)
    other = data.make_sine_dataset(1000, 50, 0.05, 0.1, 0.2, seed=2)
    np.testing.assert_array_equal(noisy["x_train"], again["x_train"])
    assert not np.array_equal(noisy["x_train"], other["x_train"])
    assert np.std(noisy["x_train"] - clean["x_train"]) == pytest.approx(0.05, rel=0.05)


def test_sine_continuation_continues_the_window_grid():
    dataset = data.make_sine_dataset(1000, 50, 0.0, 0.1, 0.2, seed=0)
    times = dataset["t_test"][0]
    future_times, values = data.sine_continuation(times[-2], times[1] - times[0], 3)
    np.testing.assert_allclose(future_times[0], times[-1])
    np.testing.assert_allclose(values[0], dataset["y_test"][0, 0], atol=1e-6)


def test_saved_dataset_round_trips_and_a_changed_file_is_caught(tmp_path):
    dataset = data.make_sine_dataset(50, 10, 0.0, 0.1, 0.2, seed=0)
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
