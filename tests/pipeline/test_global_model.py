"""The global model's loss on the series real collections hold: zeros, flat stretches, intermittent demand."""

import numpy as np

from pipeline import collection as coll
from pipeline import global_model

HORIZON, WIDTH = 4, 8


def awkward_collection():
    """Six regular monthly series of different sizes, and four that a scale-free loss must survive:
    all zeros, flat, intermittent (85 % zeros) and a new product (40 zeros, then a ramp)."""
    rng = np.random.default_rng(0)
    t = np.arange(60)
    series = {f"regular {i}": 100 * (i + 1) * (1 + 0.1 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 3 * (i + 1), 60)
              for i in range(6)}
    series["zeros"] = np.zeros(60)
    series["flat"] = np.full(60, 7.0)
    series["intermittent"] = np.where(rng.random(60) < 0.15, rng.poisson(4, 60) + 1, 0).astype(float)
    series["new product"] = np.r_[np.zeros(40), np.arange(1.0, 21.0)]
    return coll.from_arrays(list(series), list(series.values()))


def share_of_loss(training, collection, scales):
    """Each series' share of the summed per-series mean training loss (its windows before validation)."""
    rows, ends = coll.training_windows(collection, WIDTH, HORIZON)
    x, y = (a.astype("float32") for a in coll.gather(collection.values, rows, ends, WIDTH, HORIZON))
    losses = np.asarray(global_model.window_losses(training(x), x, y, scales[rows]), np.float64)
    per_series = np.bincount(rows, losses) / np.bincount(rows)
    return dict(zip(collection.ids, per_series / per_series.sum())), losses


def train_a_diverse_ensemble(c, **options):
    """The default ensemble trained 3 epochs on `c`, calibrated, with finite losses below 1: its forecasts of
    the future and their windows (forecast_split), and the serving model."""
    settings = global_model.GlobalSettings(input_width=WIDTH, horizon=HORIZON, epochs=3, patience=3, batch_size=32,
                                           target="last", ensemble_size=3, losses=global_model.MEMBER_LOSSES, seed=0,
                                           **options)
    folds = coll.Folds(HORIZON)
    training, serving = global_model.build_for(settings, c, folds.holdout("select"))
    history = global_model.fit(training, c, settings, folds=folds)
    assert np.isfinite(history.train_loss).all() and np.isfinite(history.val_loss).all()
    assert max(history.train_loss) < 1 and max(history.val_loss) < 1
    global_model.calibrate(serving, c, settings, folds)
    out, x, _ = global_model.forecast_split(serving, c, settings, "future")
    assert all(np.isfinite(out[name]).all() for name in ("forecast", "lower", "upper"))
    return out, x, serving


def test_series_scales_are_each_series_mean_absolute_step_and_never_zero():
    c = awkward_collection()
    scales = dict(zip(c.ids, coll.series_scales(c, holdout=2 * HORIZON)))
    assert scales["flat"] == 7.0  # no step: its mean |value|
    assert scales["new product"] == np.float32(12 / 51)  # 12 steps of 1 among the 52 points before the holdout
    assert scales["zeros"] == min(v for k, v in scales.items() if k != "zeros")  # the smallest of the others
    regular = c.series(0)[:-2 * HORIZON]
    np.testing.assert_allclose(scales["regular 0"], np.mean(np.abs(np.diff(regular))), rtol=1e-6)


def test_zeros_flat_and_intermittent_series_train_with_a_finite_loss_none_dominating_and_each_is_forecast():
    c = awkward_collection()
    settings = global_model.GlobalSettings(input_width=WIDTH, horizon=HORIZON, epochs=3, patience=3, batch_size=32,
                                           target="last", seed=0)
    folds = coll.Folds(HORIZON)
    training, serving = global_model.build_for(settings, c, folds.holdout("select"))
    scales = coll.series_scales(c, folds.holdout("select"))

    # Without the floor (a window's spread alone, as before), the windows of zeros take the whole loss.
    unfloored, losses = share_of_loss(training, c, np.zeros(len(c), np.float32))
    assert losses.max() > 1e6 and unfloored["new product"] + unfloored["intermittent"] > 0.99

    history = global_model.fit(training, c, settings, folds=folds)
    assert np.isfinite(history.train_loss).all() and np.isfinite(history.val_loss).all()
    assert max(history.train_loss) < 1 and max(history.val_loss) < 1
    shares, losses = share_of_loss(training, c, scales)
    assert np.isfinite(losses).all() and max(shares.values()) < 0.5, shares

    global_model.calibrate(serving, c, settings, folds)
    out, _, _ = global_model.forecast_split(serving, c, settings, "future")
    for name in ("forecast", "lower", "upper"):
        assert np.isfinite(out[name]).all(), name
    assert (out["upper"] - out["lower"] > 0).all()  # a window of zeros has an interval too, of the smallest scale
    ids = {name: i for i, name in enumerate(c.ids)}
    np.testing.assert_allclose(out["forecast"][ids["flat"]], 7.0, atol=0.5)
    np.testing.assert_allclose(out["forecast"][ids["zeros"]], 0.0, atol=0.5)


def test_a_collection_with_series_of_zeros_says_how_it_measures_them(tmp_path):
    from pipeline import params
    from pipeline.stages import generate_data

    c = awkward_collection()
    path = tmp_path / "awkward.csv"
    path.write_text("unique_id,ds,y\n" + "".join(f"{name},{t},{v}\n" for name, row, n in zip(c.ids, c.values, c.lengths)
                                                 for t, v in enumerate(row[-n:])))
    values = {**params.defaults("generate_data"), "data_source": str(path), "horizon": HORIZON, "season": 12}
    _, manifest, _ = generate_data.prepare(**values)
    assert ("1 series are all zeros (the first, 'zeros'): their windows are measured in the smallest scale of the "
            "other series") in manifest["notes"]


def test_a_window_deseasonalised_by_its_own_decomposition_matches_statsmodels_and_only_where_it_should():
    from statsmodels.tsa.seasonal import seasonal_decompose

    from custom_layers.transforms import Deseasonalise

    rng = np.random.default_rng(1)
    for season, width in ((12, 36), (4, 16), (4, 17), (7, 21)):
        t = np.arange(width)
        x = (100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / season)) * (1 + rng.normal(0, 0.01, width))
        adjusted, future = (np.asarray(a, np.float64) for a in
                            Deseasonalise(season, 5, test=False)(x[None, :, None].astype("float32")))
        indices = seasonal_decompose(x, model="multiplicative", period=season).seasonal
        np.testing.assert_allclose(adjusted[0, :, 0], x / indices, rtol=1e-4)
        np.testing.assert_allclose(future[0], indices[(width + np.arange(5)) % season], rtol=1e-4)
    # Six seasons pass M3's test; three of the same do not (the test's limit shrinks with √n); a flat
    # window, or one with a value ≤ 0, is left as it is.
    t = np.arange(72)
    seasonal = ((100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)))[None, :, None].astype("float32")
    assert np.ptp(np.asarray(Deseasonalise(12, 3)(seasonal)[1])) > 0.1
    np.testing.assert_array_equal(Deseasonalise(12, 3)(seasonal[:, :36])[1], 1.0)
    for x in (np.full((1, 36, 1), 5.0), seasonal[:, :36] - 150):
        np.testing.assert_array_equal(Deseasonalise(12, 3, test=False)(x.astype("float32"))[1], 1.0)


def test_a_deseasonalising_model_saves_and_loads_to_the_same_forecasts(tmp_path):
    import keras

    from pipeline import model as forecaster

    settings = global_model.GlobalSettings(input_width=24, horizon=6, season=12, target="last",
                                           deseasonalise="always", seed=0)
    _, serving = global_model.build(settings)
    t = np.arange(24)
    x = ((50 + t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12)))[None, :, None].astype("float32")
    before = forecaster.predict(serving, x)
    serving.save(tmp_path / "model.keras")
    after = forecaster.predict(keras.saving.load_model(tmp_path / "model.keras"), x)
    np.testing.assert_allclose(after["forecast"], before["forecast"], rtol=1e-6)
    # Untrained, the `last` target forecasts the last deseasonalised value, its season put back.
    adjusted, indices = (np.asarray(a)[0] for a in serving.get_layer("deseasonalise")(x))
    assert np.ptp(indices) > 0.1
    np.testing.assert_allclose(before["forecast"][0], adjusted[-1, 0] * indices, rtol=1e-5)


def test_series_with_values_at_or_below_zero_are_named_as_not_deseasonalised():
    from pipeline.stages import train

    c = awkward_collection()
    assert train.not_deseasonalised_note(c) == (
        "3 series hold a value <= 0 (the first, 'zeros'): their windows holding one are not deseasonalised (a "
        "multiplicative decomposition needs positive values); the others are")
    assert train.not_deseasonalised_note(coll.subset(c, range(6))) is None


def test_an_ensembles_members_learn_with_the_competitions_losses_each_floored_by_the_window_spread():
    x = np.array([[[1.0], [3.0]], [[0.0], [0.0]]], np.float32)  # spreads 2 + 1 = 3, and 0 (floored by its scale)
    y = np.array([[4.0, 0.0], [0.0, 0.0]], np.float32)
    members = np.array([[[5.0, 1.0], [2.0, 2.0], [4.0, 3.0]], [[1.0, -1.0]] * 3], np.float32)
    scales = np.array([0.5, 0.25], np.float32)
    losses = np.asarray(global_model.window_losses(members, x, y, scales, global_model.MEMBER_LOSSES), np.float64)
    s = np.array([3.0, 0.25]) + 1e-8
    mase = [np.mean([1, 1]) / s[0], 1 / s[1]]
    smape = [np.mean([2 * 2 / max(6, s[0]), 2 * 2 / max(2, s[0])]), np.mean([2 / max(1, s[1])] * 2)]
    mape = [np.mean([0 / 4, 3 / s[0]]), np.mean([1 / s[1]] * 2)]
    np.testing.assert_allclose(losses, np.mean([mase, smape, mape], axis=0), rtol=1e-5)
    # All "mase" (the default for one network, or members alike) is the mean absolute error over the spread.
    same = np.asarray(global_model.window_losses(members, x, y, scales), np.float64)
    np.testing.assert_allclose(same, [np.mean([1, 1, 2, 2, 0, 3]) / s[0], 1 / s[1]], rtol=1e-5)
    # The validation loss scores what is served: the members' median.
    median = np.asarray(global_model.median_loss(members, x, y, scales), np.float64)
    np.testing.assert_allclose(median, [np.mean([0, 2]) / s[0], 1 / s[1]], rtol=1e-5)


def test_a_diverse_ensemble_trains_on_zeros_flat_and_intermittent_series_to_finite_forecasts():
    c = awkward_collection()
    out, _, _ = train_a_diverse_ensemble(c)
    np.testing.assert_allclose(out["forecast"][list(c.ids).index("zeros")], 0.0, atol=0.5)


def test_a_masked_short_history_is_read_as_its_visible_values_alone_and_saves_to_the_same_forecasts(tmp_path):
    import keras

    from pipeline import model as forecaster

    settings = global_model.GlobalSettings(input_width=12, horizon=3, target="level", short_history="mask", seed=0)
    _, serving = global_model.build(settings)
    visible = (40 + np.cumsum(np.random.default_rng(1).normal(size=5)))
    window = np.r_[np.full(7, np.nan), visible][None, :, None].astype("float32")
    # The same network without a mask or a window fit, reading the five values alone.
    alone = forecaster.build_model(settings.hidden_units, settings.learning_rate, settings.horizon, "window",
                                   (0.0, 1.0), "level")
    alone.set_weights(serving.get_weights()[:len(alone.get_weights())])  # the LSTM's and the Dense layer's
    expected = np.asarray(alone(visible[None, :, None].astype("float32")))[:, 0]
    masked = forecaster.predict(serving, window)
    np.testing.assert_allclose(masked["forecast"], expected, rtol=1e-5)
    # The padding rule (the first value repeated) reads something else.
    _, padded = global_model.build(global_model.GlobalSettings(**{**settings.__dict__, "short_history": "pad"}))
    padded.set_weights(serving.get_weights())
    first_value = np.where(np.isnan(window), visible[0], window).astype("float32")
    assert np.abs(forecaster.predict(padded, first_value)["forecast"] - expected).max() > 1e-3
    # A window shorter than the input width is the same missing history; the saved model reads it alike.
    np.testing.assert_allclose(forecaster.predict(serving, window[:, 7:])["forecast"], expected, rtol=1e-5)
    serving.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(forecaster.predict(loaded, window[:, 7:])["forecast"], expected, rtol=1e-5)


def test_short_zero_flat_and_intermittent_series_train_masked_to_finite_forecasts_read_from_their_own_values():
    base = awkward_collection()
    rng = np.random.default_rng(2)
    short = {"five points": 20 + rng.normal(size=5), "ten points": 5 + rng.normal(size=10)}
    c = coll.from_arrays([*base.ids, *short], [*(base.series(i) for i in range(len(base))), *short.values()])
    out, x, serving = train_a_diverse_ensemble(c, short_history="mask")
    assert (out["upper"] - out["lower"] > 0).all()
    five = list(c.ids).index("five points")
    assert np.isnan(x[five, :WIDTH - 5]).all() and np.isfinite(x[five, WIDTH - 5:]).all()
    from pipeline import model as forecaster

    alone = forecaster.predict(serving, c.series(five)[None, :, None].astype("float32"))["forecast"]
    np.testing.assert_allclose(out["forecast"][five], alone[0], rtol=1e-5)
    np.testing.assert_allclose(out["forecast"][list(c.ids).index("zeros")], 0.0, atol=0.5)


def test_a_series_too_short_to_validate_trains_on_all_its_points_and_never_reaches_the_validation_loss():
    """A pretraining corpus' short series (global_model.fit's `every_point`): every window of all its
    points trains, and the validation loss, which keeps the epoch, is that of the long series alone."""
    import keras

    rng = np.random.default_rng(3)
    t = np.arange(60)
    long = [50 * (i + 1) * (1 + 0.1 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 2, 60) for i in range(6)]
    short = [rng.uniform(10, 20) + rng.normal(0, 1, 10) for _ in range(3)]  # 10 points: no window before 8 held out
    c = coll.from_arrays([f"long {i}" for i in range(6)] + [f"short {i}" for i in range(3)], long + short)
    every_point = coll.no_training_window(c, WIDTH, HORIZON, coll.Folds(HORIZON).holdout("select"))
    assert every_point.tolist() == [False] * 6 + [True] * 3
    long_only = coll.subset(c, np.arange(6))
    # learning rate 0: the weights never move, so each fit's validation loss is a function of its windows alone
    settings = global_model.GlobalSettings(input_width=WIDTH, horizon=HORIZON, epochs=1, patience=1, batch_size=16,
                                           target="last", learning_rate=0.0, seed=0)
    training, _ = global_model.build_for(settings, long_only, 2 * HORIZON)
    weights = training.get_weights()
    with_short = global_model.fit(training, c, settings, every_point=every_point)
    training.set_weights(weights)
    training.optimizer = keras.optimizers.Adam(0.0)
    alone = global_model.fit(training, long_only, settings)
    assert with_short.windows_per_epoch == alone.windows_per_epoch + 3 * (10 - HORIZON)
    np.testing.assert_allclose(with_short.val_loss, alone.val_loss, rtol=1e-6)
    # without `every_point` those series have no training window, and their last points are validated
    training.set_weights(weights)
    training.optimizer = keras.optimizers.Adam(0.0)
    plain = global_model.fit(training, c, settings)
    assert plain.windows_per_epoch == alone.windows_per_epoch and plain.val_loss != alone.val_loss
