"""A collection: reading the long format, the holdout split, the windows, the per-series scores and baselines."""

import numpy as np
import pandas as pd
import pytest

from pipeline import collection as coll
from pipeline import metrics
from pipeline.errors import ParamError


def write(path, rows, header="unique_id,ds,y"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def three_series(tmp_path):
    """'shop A' monthly from 2020-01 (6 points), 'b' from 2020-03 (4), 'c' (5), rows shuffled."""
    rows = [f"shop A,2020-{m:02d}-01,{v}" for m, v in zip(range(1, 7), (1, 2, 3, 4, 5, 6))]
    rows += [f"b,2020-{m:02d}-01,{v}" for m, v in zip(range(3, 7), (10, 20, 30, 40))]
    rows += [f"c,2020-{m:02d}-01,{v}" for m, v in zip(range(2, 7), (7, 7, 8, 8, 9))]
    return write(tmp_path / "shops.csv", rows[::-1])


def test_series_of_different_lengths_are_right_aligned_and_padded_with_their_first_value(tmp_path):
    read = coll.read_collection(three_series(tmp_path))
    assert read.ids == ["c", "b", "shop A"]  # in order of first appearance
    np.testing.assert_array_equal(read.lengths, [5, 4, 6])
    np.testing.assert_array_equal(read.values, [[7, 7, 7, 8, 8, 9], [10, 10, 10, 20, 30, 40], [1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(read.series(1), [10, 20, 30, 40])
    assert read.step == "MS" and str(read.last_times[0])[:10] == "2020-06-01"
    assert [str(t)[:10] for t in read.tail_times(2)[1]] == ["2020-05-01", "2020-06-01"]


def test_the_holdout_split_tests_the_last_horizon_validates_the_one_before_and_trains_on_the_rest():
    series = [np.arange(10.0), 100 + np.arange(7.0)]
    c = coll.from_arrays(["long", "short"], series)
    horizon, width = 2, 3
    rows, ends = coll.training_windows(c, width, horizon)
    # Targets [end, end + 2) stay before the last 4 points (columns 6..9); inputs hold a real value.
    for row, end in zip(rows, ends):
        assert end + horizon <= 10 - 2 * horizon
        assert end - 1 >= 10 - c.lengths[row]
    assert sorted(zip(rows.tolist(), ends.tolist())) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 4)]
    x, y = coll.gather(c.values, np.array([0, 1]), np.full(2, coll.origin(c, horizon, "val")), width, horizon)
    np.testing.assert_array_equal(y, [[6, 7], [103, 104]])
    np.testing.assert_array_equal(x[1, :, 0], [100, 101, 102])
    x, y = coll.gather(c.values, np.array([0, 1]), np.full(2, coll.origin(c, horizon, "test")), width, horizon)
    np.testing.assert_array_equal(y, [[8, 9], [105, 106]])
    # A window reaching before a series' start reads its first value: the padding rule.
    x, _ = coll.gather(c.values, np.array([1]), np.array([5]), 6, horizon)
    np.testing.assert_array_equal(x[0, :, 0], [100, 100, 100, 100, 100, 101])


def test_drawing_a_fixed_number_of_windows_per_series_weighs_every_series_alike():
    c = coll.from_arrays(["long", "short"], [np.arange(200.0), np.arange(20.0)])
    rows, ends = coll.training_windows(c, 4, 2)
    every = coll.sample_windows(rows, ends, 0, seed=1, epoch=0)
    assert len(every[0]) == len(rows) and np.bincount(every[0]).tolist() == [194, 14]
    drawn_rows, drawn_ends = coll.sample_windows(rows, ends, 8, seed=1, epoch=0)
    assert np.bincount(drawn_rows).tolist() == [8, 8]
    assert set(zip(drawn_rows.tolist(), drawn_ends.tolist())) <= set(zip(rows.tolist(), ends.tolist()))
    again = coll.sample_windows(rows, ends, 8, seed=1, epoch=0)
    np.testing.assert_array_equal(drawn_ends, again[1])


@pytest.mark.parametrize("rows, header, message", [
    (["a,2020-01-01,1"], "id,ds,y",
     "Received an invalid value for parameter `id_column`, expected one of the columns of {path} (id, ds, y), got 'unique_id'."),
    (["a,1,1", "a,2,2", "b,1,3", "a,2,4"], "unique_id,ds,y",
     "{path}: series 'a' has the time 2 twice (lines 3 and 5); each (series, time) pair must appear once."),
    (["a,1,1", "a,2,lots"], "unique_id,ds,y",
     "Column 'y' of {path} has 1 values that are not numbers with decimal '.' and thousands separator 'none', "
     "first at line 3 ('lots')."),
    (["a,1,1", "a,2,2", "a,4,4", "b,1,1", "b,2,2"], "unique_id,ds,y",
     "{path}: series 'a' has 1 missing values (1 absent time steps, the rest empty cells of 'y'): add them, or "
     "pass -P fill_missing=interpolate to fill them linearly in time."),
])
def test_bad_collections_are_refused_in_one_line_naming_what_is_wrong(tmp_path, rows, header, message):
    path = write(tmp_path / "bad.csv", rows, header)
    with pytest.raises(ParamError) as refused:
        coll.read_collection(path)
    assert str(refused.value) == message.format(path=path)


def test_absent_steps_are_filled_in_time_when_asked(tmp_path):
    path = write(tmp_path / "gap.csv", ["a,1,1", "a,2,2", "a,5,5", "b,1,1", "b,2,2"])
    read = coll.read_collection(path, fill_missing="interpolate")
    np.testing.assert_array_equal(read.series(0), [1, 2, 3, 4, 5])
    assert read.notes == ["2 missing values filled by linear interpolation"]


def test_a_series_too_short_to_be_tested_is_named_or_skipped_when_asked():
    c = coll.from_arrays(["ok", "tiny", "small"], [np.arange(30.0), np.arange(3.0), np.arange(8.0)])
    with pytest.raises(ParamError, match=r"^Series 'tiny' has 3 points; with horizon 3 a test needs at least 4 \(3 "
                                         r"test targets, 1 before them\)\. 1 series are that short: pass "
                                         r"-P min_length=4 to skip them, or a shorter horizon\.$"):
        coll.check_lengths(c, 3)
    # Too short for a validation window or a training window is not too short to be forecast.
    kept, note = coll.check_lengths(coll.subset(c, [0, 2]), 3)
    assert kept.ids == ["ok", "small"] and note is None
    kept, note = coll.check_lengths(c, 3, min_length=8)
    assert kept.ids == ["ok", "small"] and note == "1 series shorter than 8 points skipped (min_length)"


def test_per_series_scores_are_the_competitions_formulas():
    y = np.array([[100.0, 200.0], [10.0, 0.0]])
    f = np.array([[110.0, 180.0], [10.0, 5.0]])
    scores = metrics.per_series_scores(y, f, f - 15, f + 15, scale=np.array([20.0, 2.5]))
    # M3's sMAPE: 200·|y − ŷ| / (|y| + |ŷ|), averaged over the horizon.
    np.testing.assert_allclose(scores["smape"], [(200 * 10 / 210 + 200 * 20 / 380) / 2, (0 + 200 * 5 / 5) / 2])
    np.testing.assert_allclose(scores["mape"][0], (10 + 10) / 2)
    assert np.isnan(scores["mape"][1])  # a target of 0 has no percentage error
    np.testing.assert_allclose(scores["mase"], [15 / 20, 2.5 / 2.5])
    np.testing.assert_allclose(scores["coverage"], [50, 100])
    np.testing.assert_allclose(scores["interval_width"], [30, 30])
    # MASE's scale: the in-sample seasonal naive MAE.
    assert metrics.seasonal_naive_scale([1, 2, 4, 8, 9], 2) == pytest.approx((3 + 6 + 5) / 3)
    assert metrics.seasonal_naive_scale([1, 2, 4], 0) == pytest.approx(1.5)


def test_the_baselines_are_statsforecasts_own_forecasts_on_the_same_points():
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    from pipeline import baselines

    rng = np.random.default_rng(0)
    series = [100 + np.cumsum(rng.normal(size=40)), 5 + np.sin(np.arange(30) / 2) + rng.normal(0, 0.1, 30)]
    ours = baselines.forecast(series, 4, 4, ("naive", "auto_ets"))
    np.testing.assert_array_equal(ours["naive"]["forecast"], np.repeat([[series[0][-1]], [series[1][-1]]], 4, axis=1))
    frame = pd.DataFrame({"unique_id": np.repeat([0, 1], [40, 30]), "ds": np.r_[np.arange(40), np.arange(30)],
                          "y": np.r_[series[0], series[1]]})
    direct = StatsForecast(models=[AutoETS(season_length=4)], freq=1).forecast(df=frame, h=4, level=[90])
    np.testing.assert_allclose(ours["auto_ets"]["forecast"].ravel(), direct["AutoETS"].to_numpy())
    np.testing.assert_allclose(ours["auto_ets"]["upper"].ravel(), direct["AutoETS-hi-90"].to_numpy())


def test_auto_draws_every_window_unless_an_epoch_would_exceed_a_million():
    from pipeline import params
    from pipeline.stages import train

    values = params.defaults("train")
    manifest = {"horizon": 2, "season": 0, "time_steps": 6}
    small = coll.from_arrays(["a", "b"], [np.arange(30.0), np.arange(12.0)])
    assert coll.count_training_windows(small, 4, 2) == len(coll.training_windows(small, 4, 2)[0]) == 30
    assert train.collection_settings(values, small, coll.Folds(2), manifest).windows_per_series == 0
    # 20 000 series of 60 points: 20 000 × 54 windows (one real input suffices); 50 per series make a million.
    large = coll.Collection([str(i) for i in range(20_000)], np.zeros((20_000, 60), np.float32),
                            np.full(20_000, 60), np.zeros(20_000))
    assert coll.count_training_windows(large, 4, 2) == 20_000 * 54
    assert train.collection_settings(values, large, coll.Folds(2), manifest).windows_per_series == 50


def test_auto_patience_is_about_12000_gradient_steps_between_10_and_20_epochs():
    from pipeline import params
    from pipeline.stages import train

    values = params.defaults("train")
    manifest = {"horizon": 2, "season": 0, "time_steps": 6}
    # 30 windows, one batch of 32 an epoch: 20 epochs, the most (a small collection's loss stalls for long).
    small = coll.from_arrays(["a", "b"], [np.arange(30.0), np.arange(12.0)])
    settings = train.collection_settings(values, small, coll.Folds(2), manifest)
    assert settings.patience == 20 and train.resolved_of(settings)["resolved_patience"] == "20"
    # M3 Quarterly's selection epoch (18 860 windows, 590 batches): 21 → 20; M1 Monthly's (706 batches): 17;
    # M3 Monthly's (2827 batches): 10, the least, as before.
    assert [train.collection_patience(n, 32) for n in (18_860, 22_589, 90_450)] == [20, 17, 10]
    assert train.collection_patience(90_450, 8) == 10 and train.collection_patience(90_450, 256) == 20
    # Given, it is kept.
    assert train.collection_settings({**values, "patience": 3}, small, coll.Folds(2), manifest).patience == 3


def test_a_file_that_is_not_text_is_refused_as_a_single_series_file_is(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"unique_id,ds,y\n\xff\xfe,1,2\n")
    with pytest.raises(ParamError, match=r"^File .*binary.csv is not a readable CSV file \(UnicodeDecodeError\)"):
        coll.read_collection(path)


def test_the_folds_place_every_cut_off_and_every_model_stops_before_its_own():
    """Three validation cut-offs 2 apart before a horizon-3 test: no training window of a
    model reaches a target at or after the first cut-off that model is judged on."""
    c = coll.from_arrays(["long", "short", "tiny"], [np.arange(40.0), 100 + np.arange(15.0), 200 + np.arange(5.0)])
    folds = coll.Folds(3, n_windows=3, step_size=2)
    assert folds.validation_offsets() == [6, 8, 10]
    assert (folds.holdout("select"), folds.holdout("test"), folds.holdout("full")) == (10, 3, 0)
    assert repr(folds) == ("Folds(horizon=3, n_windows=3, step_size=2: validation cut-offs at 6 to 10 points from the "
                           "end, 2 apart; the test cut-off at 3)")
    for model in ("select", "test", "full"):
        rows, ends = coll.training_windows(c, 4, 3, folds.holdout(model))
        assert np.all(ends + 3 <= c.width - folds.holdout(model)), model
        assert np.all(ends - 1 >= c.width - c.lengths[rows]), model  # one real input at least
    # 'tiny' (5 points) has no window before the validation cut-offs, nor before the test one.
    assert coll.no_training_window(c, 4, 3, folds.holdout("test")).tolist() == [False, False, True]
    rows, ends = coll.validation_windows(c, folds)
    # Every series at every cut-off where it has its targets and a value before them: 'short' (15)
    # at all three, 'tiny' at none.
    assert sorted(zip(rows.tolist(), (c.width - ends).tolist())) == [(0, 6), (0, 8), (0, 10), (1, 6), (1, 8),
                                                                    (1, 10)]
    x, y = coll.gather(c.values, rows, ends, 4, 3)
    np.testing.assert_array_equal(y[(rows == 1) & (c.width - ends == 10)], [[105, 106, 107]])


def test_series_on_different_steps_are_refused_naming_one_of_each(tmp_path):
    monthly = [f"M,2020-{m:02d}-01,{m}" for m in range(1, 13)]
    quarterly = [f"Q,2020-{m:02d}-01,{m}" for m in (1, 4, 7, 10)]
    with pytest.raises(ParamError, match=r"^Column 'ds' of .*mixed.csv: series 'Q' steps by 3 × one month, series 'M' "
                                         r"by one month: a collection needs one step that every series follows"):
        coll.read_collection(write(tmp_path / "mixed.csv", monthly + quarterly))
    numbered = ["a,1,1", "a,2,2", "a,3,3", "b,10,1", "b,12,2", "b,14,3"]
    with pytest.raises(ParamError, match=r"series 'b' steps by 2 × 1, series 'a' by 1"):
        coll.read_collection(write(tmp_path / "numbered.csv", numbered))
