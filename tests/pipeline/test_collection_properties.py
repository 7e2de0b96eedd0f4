"""Property tests of a collection's folds: random collections with ragged starts and
ends, random horizons, numbers of validation cut-offs and steps between them."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import collection as coll

shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(2, 8))  # h, n, step, width


def ragged(lengths, starts):
    """A collection numbered from each series' own start: ids s0, s1, ...; values 1000·i + position."""
    arrays = [1000.0 * i + np.arange(n) for i, n in enumerate(lengths)]
    return coll.from_arrays([f"s{i}" for i in range(len(lengths))], arrays,
                            np.asarray(starts) + np.asarray(lengths) - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 45), st.integers(0, 20)), min_size=1, max_size=6), shapes)
def test_no_training_window_reaches_its_models_first_cut_off_and_every_series_is_forecast(series, shape):
    horizon, n_windows, step, width = shape
    c = ragged([n + horizon for n, _ in series], [start for _, start in series])  # each can be tested
    folds = coll.Folds(horizon, n_windows, step)
    for model in ("select", "test", "full"):
        rows, ends = coll.training_windows(c, width, horizon, folds.holdout(model))
        # Column positions: a target at column ≥ width − holdout would be at or after the cut-off.
        assert np.all(ends + horizon <= c.width - folds.holdout(model))
        assert np.all(ends - 1 >= c.width - c.lengths[rows])  # at least one real input
        x, y = coll.gather(c.values, rows, ends, width, horizon)
        assert np.isfinite(y).all() and np.isfinite(x).all()
    rows, ends = coll.validation_windows(c, folds)
    assert np.all(np.isin(c.width - ends, folds.validation_offsets()))
    x, y = coll.gather(c.values, rows, ends, width, horizon)
    assert np.all(y[:, -1] < 1000 * rows + c.lengths[rows] - horizon)  # every validation target before the test
    # Every series is forecast at the test cut-off and in the future, from its own values.
    for split in ("test", "future"):
        x, y = coll.gather(c.values, np.arange(len(c)), np.full(len(c), coll.origin(c, horizon, split)), width,
                           horizon)
        assert np.all(x[:, -1, 0] == 1000 * np.arange(len(c)) + c.lengths - 1 - (horizon if split == "test" else 0))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 25), st.integers(0, 20)), min_size=1, max_size=5), shapes)
def test_the_validation_cut_offs_are_those_of_statsforecasts_cross_validation(series, shape):
    """statsforecast's `cross_validation(h, n_windows, step_size)` of the series without their
    test points: the same (series, cut-off, targets) as `validation_windows`, and its naive
    forecast is each window's last input."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    horizon, n_windows, step, width = shape
    needed = horizon + (n_windows - 1) * step + 1  # statsforecast refuses a shorter series
    lengths = [n + needed + horizon for n, _ in series]
    c = ragged(lengths, [start for _, start in series])
    folds = coll.Folds(horizon, n_windows, step)
    frame = pd.DataFrame({
        "unique_id": np.repeat(c.ids, c.lengths - horizon),
        "ds": np.concatenate([np.arange(last - n + 1, last - horizon + 1) for last, n in zip(c.last_times, c.lengths)]),
        "y": np.concatenate([c.series(i)[:-horizon] for i in range(len(c))]),
    })
    theirs = StatsForecast([Naive(alias="naive")], freq=1).cross_validation(df=frame, h=horizon, n_windows=n_windows,
                                                                           step_size=step)
    rows, ends = coll.validation_windows(c, folds)
    x, y = coll.gather(c.values, rows, ends, width, horizon)
    ours = pd.DataFrame({
        "unique_id": np.repeat([c.ids[r] for r in rows], horizon),
        # The cut-off is the time of the last point before the targets, in statsforecast's terms.
        "cutoff": np.repeat(c.last_times[rows] - (c.width - ends), horizon),
        "y": y.ravel(), "naive": np.repeat(x[:, -1, 0], horizon)})
    assert len(ours) == len(c) * n_windows * horizon  # every series at every cut-off
    key = ["unique_id", "cutoff", "y"]
    theirs = theirs.reset_index() if "unique_id" not in theirs.columns else theirs
    left = ours.sort_values(key).reset_index(drop=True)
    right = theirs[key + ["naive"]].astype({"cutoff": np.int64}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left.astype({"cutoff": np.int64}), right, check_dtype=False)
