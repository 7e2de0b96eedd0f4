"""Property tests: random lengths, horizons and split fractions through the
window and split code. Every case either gives windows that are correct in
every documented way, or the documented one-line ParamError."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import data
from pipeline.errors import ParamError

fractions = st.floats(min_value=0.01, max_value=0.6, allow_nan=False)


def check_dataset(dataset, time_steps, horizon, sizes=None):
    """Shapes as documented, every target after every input of its window,
    and no split overlapping the next one in time."""
    input_width = time_steps - horizon
    for split in data.SPLITS:
        x, y, t = dataset[f"x_{split}"], dataset[f"y_{split}"], dataset[f"t_{split}"]
        assert x.shape == (len(y), input_width, 1) and y.shape == (len(y), horizon)
        assert t.shape == (len(y), time_steps) and len(y) >= 1
        # Inside each window: times increase, so every label time follows every input time.
        assert (np.diff(t, axis=1) > 0).all()
        assert (t[:, input_width:].min(axis=1) > t[:, :input_width].max(axis=1)).all()
    if sizes is not None:
        assert tuple(len(dataset[f"y_{split}"]) for split in data.SPLITS) == sizes
    # Every point of every training window comes before the first validation target,
    # every validation point before the first test target.
    first_target = {split: dataset[f"t_{split}"][:, input_width:].min() for split in data.SPLITS}
    assert dataset["t_train"].max() < first_target["val"]
    assert dataset["t_val"].max() < first_target["test"]


@settings(max_examples=150, deadline=None)
@given(n_points=st.integers(1, 400), time_steps=st.integers(1, 60), horizon=st.integers(1, 12),
       val_fraction=fractions, test_fraction=fractions)
def test_series_windows_are_cut_and_split_as_documented_or_refused(n_points, time_steps, horizon,
                                                                    val_fraction, test_fraction):
    times = np.arange(n_points, dtype=np.float64) * 0.5 + 10
    values = np.sin(times)
    try:
        dataset = data.make_series_dataset(times, values, time_steps, horizon, val_fraction, test_fraction)
    except ParamError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("Received ")
        n_windows = n_points - time_steps + 1
        if time_steps <= horizon:
            assert "`time_steps`" in message and f"horizon={horizon}" in message
        elif n_windows < 3:
            assert "`time_steps`" in message and f"{n_points} points" in message
        else:  # a period too short for one window's targets, or no room for a training window's inputs
            assert "`val_fraction` and `test_fraction`" in message
            val_start, test_start = data.series_split_points(n_points, val_fraction, test_fraction)
            input_width = time_steps - horizon
            assert min(val_start - input_width, test_start - val_start, n_points - test_start) < horizon
        return
    check_dataset(dataset, time_steps, horizon)
    # The windows are the series itself, cut where the times say.
    for split in data.SPLITS:
        index = ((dataset[f"t_{split}"] - 10) / 0.5).round().astype(int)
        window_values = values.astype(np.float32)[index]
        np.testing.assert_array_equal(dataset[f"x_{split}"][..., 0], window_values[:, : time_steps - horizon])
        np.testing.assert_array_equal(dataset[f"y_{split}"], window_values[:, time_steps - horizon:])


@settings(max_examples=60, deadline=None)
@given(n_samples=st.integers(1, 300), time_steps=st.integers(2, 40), horizon=st.integers(1, 5),
       val_fraction=fractions, test_fraction=fractions)
def test_sine_windows_are_cut_and_split_as_documented_or_refused(n_samples, time_steps, horizon,
                                                                 val_fraction, test_fraction):
    try:
        dataset = data.make_sine_dataset(n_samples, time_steps, horizon, 0.0, val_fraction, test_fraction, seed=0)
    except ParamError as error:
        assert "\n" not in str(error)
        if time_steps > horizon:
            assert "`val_fraction` and `test_fraction`" in str(error)
            with pytest.raises(ParamError):
                data.split_sizes(n_samples, val_fraction, test_fraction, data.sine_gap(time_steps, horizon))
        return
    sizes = data.split_sizes(n_samples, val_fraction, test_fraction, data.sine_gap(time_steps, horizon))
    assert sum(sizes) + 2 * data.sine_gap(time_steps, horizon) == n_samples
    check_dataset(dataset, time_steps, horizon, sizes)
