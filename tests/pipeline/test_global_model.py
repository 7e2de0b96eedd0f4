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
