"""The forecaster model: what it exports is what it predicts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import data
from pipeline import model as forecaster
from pipeline.errors import TrainingDiverged


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    dataset = data.make_sine_dataset(120, 12, 1, 0.0, 0.1, 0.2, seed=0)
    model = forecaster.build_model(hidden_units=8, learning_rate=0.01)
    state = forecaster.fit(model, dataset, epochs=3, batch_size=16, patience=0)
    served = forecaster.forecasting_model(model, interval_level=0.8)
    forecaster.calibrate(served, dataset["x_val"], dataset["y_val"])
    return served, dataset, state, model


def test_fit_reports_every_epoch_and_keeps_the_best_validation_weights(trained):
    _, dataset, state, model = trained
    assert state.epochs_done == 3 and len(state.train_loss) == len(state.val_loss) == 3
    assert state.best_epoch == int(np.argmin(state.val_loss)) + 1
    restored = model.evaluate(dataset["x_val"], dataset["y_val"], verbose=0)
    assert restored == pytest.approx(min(state.val_loss), rel=1e-4)


def test_each_epoch_visits_every_training_window_once_in_an_order_fixed_by_seed_and_epoch():
    orders = [forecaster.epoch_order(50, seed=7, epoch=e) for e in range(3)]
    for order in orders:
        assert sorted(order) == list(range(50))
    assert not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(forecaster.epoch_order(50, seed=7, epoch=2), orders[2])
    assert not np.array_equal(forecaster.epoch_order(50, seed=8, epoch=2), orders[2])


def _fresh_model(seed):
    keras.utils.set_random_seed(seed)
    return forecaster.build_model(hidden_units=8, learning_rate=0.01)


def test_resuming_from_a_checkpoint_trains_exactly_what_one_uninterrupted_fit_trains(tmp_path):
    dataset = data.make_sine_dataset(150, 12, 1, 0.0, 0.1, 0.2, seed=0)
    straight = _fresh_model(3)
    whole = forecaster.fit(straight, dataset, epochs=5, batch_size=16, patience=0, seed=7)

    first = forecaster.fit(_fresh_model(3), dataset, epochs=2, batch_size=16, patience=0, seed=7,
                           checkpoint_dir=tmp_path)
    assert first.epochs_done == 2 and (tmp_path / forecaster.CHECKPOINT_ARRAYS).is_file()
    # Another process would start from other initial weights: the checkpoint must override them all.
    resumed_model = _fresh_model(99)
    resumed = forecaster.fit(resumed_model, dataset, epochs=5, batch_size=16, patience=0, seed=7,
                             resume=tmp_path)
    assert resumed.train_loss == whole.train_loss and resumed.val_loss == whole.val_loss
    assert resumed.best_epoch == whole.best_epoch
    for a, b in zip(resumed_model.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_patience_stops_early_and_a_resumed_run_already_stopped_trains_no_more(tmp_path):
    dataset = data.make_sine_dataset(150, 12, 1, 0.0, 0.1, 0.2, seed=0)
    # A learning rate this large makes the validation loss bounce: it stops improving early.
    keras.utils.set_random_seed(0)
    model = forecaster.build_model(hidden_units=8, learning_rate=0.3)
    state = forecaster.fit(model, dataset, epochs=40, batch_size=16, patience=2, checkpoint_dir=tmp_path)
    assert state.epochs_done < 40 and state.epochs_done - state.best_epoch == 2
    again = forecaster.fit(_fresh_model(5), dataset, epochs=40, batch_size=16, patience=2, resume=tmp_path)
    assert again.epochs_done == state.epochs_done and again.train_loss == state.train_loss


def test_a_loss_that_becomes_infinite_stops_training_at_once_with_the_remedies():
    times = np.arange(300.0)
    # Values near 1e20: their squared error overflows float32 on the first batch.
    dataset = data.make_series_dataset(times, 1e20 * (2 + np.sin(times / 5)), 12, 1, 0.1, 0.2)
    epochs_seen = []
    with pytest.raises(TrainingDiverged) as error:
        forecaster.fit(_fresh_model(0), dataset, epochs=5, batch_size=16, patience=0,
                       on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch))
    message = str(error.value)
    assert message.startswith("Training diverged: train_loss became inf at epoch 1, batch 1.")
    assert "learning_rate" in message and "scaling=standard" in message and "\n" not in message
    assert epochs_seen == []


def test_saved_model_predicts_what_keras_predicts_for_any_batch_and_window_length(trained, tmp_path):
    model = trained[0]
    forecaster.export_saved_model(model, str(tmp_path / "saved_model"))
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    serving = loaded.signatures["serving_default"]
    spec = serving.structured_input_signature[1]["window"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None, 1]
    assert {name: spec.shape.as_list() for name, spec in serving.structured_outputs.items()} == {
        "forecast": [None, 1], "lower": [None, 1], "upper": [None, 1]}
    rng = np.random.default_rng(1)
    for batch, timesteps in [(1, 11), (5, 11), (64, 30)]:
        x = rng.uniform(-1, 1, size=(batch, timesteps, 1)).astype("float32")
        served = serving(window=tf.constant(x))
        assert served["forecast"].shape == (batch, 1)
        expected = forecaster.predict(model, x)
        compiled = loaded.signatures["serve_xla"](window=tf.constant(x))
        stepped = loaded.signatures["serve_stepwise"](window=tf.constant(x))
        for name in ("forecast", "lower", "upper"):
            np.testing.assert_allclose(served[name].numpy(), expected[name], atol=1e-5)
            np.testing.assert_allclose(compiled[name].numpy(), served[name].numpy(), atol=1e-5)
            np.testing.assert_allclose(stepped[name].numpy(), served[name].numpy(), atol=1e-5)
        assert (served["lower"].numpy() < served["forecast"].numpy()).all()


def _op_types(signature):
    graph = signature.graph.as_graph_def()
    return {node.op for node in graph.node} | {node.op for function in graph.library.function
                                               for node in function.node_def}


def test_serving_default_runs_the_fused_kernel_and_serve_stepwise_only_standard_operations(trained, tmp_path):
    forecaster.export_saved_model(trained[0], str(tmp_path / "saved_model"))
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert "BlockLSTM" in _op_types(loaded.signatures["serving_default"])
    stepwise = _op_types(loaded.signatures["serve_stepwise"])
    assert "BlockLSTM" not in stepwise and {"MatMul", "Sigmoid", "Tanh"} <= stepwise
    assert any("While" in op for op in stepwise)


def test_scaled_model_takes_and_returns_raw_values_even_exported(tmp_path):
    keras.utils.set_random_seed(1)
    times = np.arange(600.0)
    dataset = data.make_series_dataset(times, 1000 + 50 * np.sin(times / 4), 20, 3, 0.1, 0.2)
    scale = forecaster.standard_scale(dataset)
    assert scale == pytest.approx((1000, 50 / np.sqrt(2)), rel=0.02)
    trainer = forecaster.build_model(hidden_units=16, learning_rate=0.01, horizon=3, scaling="standard", scale=scale)
    forecaster.fit(trainer, dataset, epochs=8, batch_size=32, patience=0)
    model = forecaster.forecasting_model(trainer)
    predicted = forecaster.predict(model, dataset["x_test"])["forecast"]
    assert predicted.shape == (len(dataset["y_test"]), 3)
    # Raw units out: forecasts land on the series (mean 1000, amplitude 50), not on z-scores.
    assert np.sqrt(np.mean((predicted - dataset["y_test"]) ** 2)) < 25
    forecaster.export_saved_model(model, str(tmp_path / "saved_model"))
    serving = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    served = serving(window=tf.constant(dataset["x_test"]))["forecast"]
    np.testing.assert_allclose(served.numpy(), predicted, rtol=1e-5, atol=1e-3)


def test_free_run_feeds_its_own_forecasts_back(trained):
    model, dataset, *_ = trained
    window = dataset["x_test"][0]
    forecasts = forecaster.free_run(model, window, n_steps=3)
    assert forecasts.shape == (3,)
    np.testing.assert_allclose(forecasts[0], forecaster.predict(model, window[None])["forecast"][0, 0], atol=1e-6)
    second_input = np.concatenate([window[1:, 0], forecasts[:1]])[None, :, None]
    np.testing.assert_allclose(forecasts[1], forecaster.predict(model, second_input)["forecast"][0, 0], atol=1e-6)


def _network_output(model, z, member=0):
    """The bare network of one member, o = Dense(RNN(z)), for scaled input z."""
    suffix = f"_{member}" if member else ""
    hidden = model.get_layer(forecaster.RNN_LAYER + suffix)(tf.constant(z, tf.float32))
    return model.get_layer("forecast" + suffix)(hidden).numpy().astype(np.float64)


@pytest.mark.parametrize("target,scaling", [("level", "none"), ("level", "standard"), ("last", "window"),
                                            ("seasonal", "window"), ("seasonal", "standard"), ("last", "none")])
def test_the_exported_model_does_the_target_and_scaling_arithmetic_by_hand(target, scaling, tmp_path):
    """ŷ = r + σ·o (+ μ for level), done here in numpy from the bare network's output o,
    equals what the SavedModel returns for raw windows."""
    keras.utils.set_random_seed(4)
    horizon, season = 3, 5
    mean, std = 40.0, 7.0
    trainer = forecaster.build_model(6, 0.01, horizon, scaling, (mean, std), target, season, ensemble_size=1)
    dense = trainer.get_layer("forecast")
    if target != "level":  # the untrained network outputs 0 (the naive forecast): give it an output to check
        assert not np.any(dense.get_weights()[0])
        dense.set_weights([np.random.default_rng(3).normal(size=w.shape).astype("float32") for w in dense.get_weights()])
    model = forecaster.forecasting_model(trainer)
    forecaster.export_saved_model(model, str(tmp_path / "saved_model"))
    serving = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    x = (40 + 10 * np.random.default_rng(2).normal(size=(4, 12, 1))).astype(np.float32)

    if scaling == "window":
        mu, sigma = x.mean(axis=(1, 2))[:, None], x.std(axis=(1, 2))[:, None]
    elif scaling == "standard":
        mu, sigma = np.full((4, 1), mean), np.full((4, 1), std)
    else:
        mu, sigma = np.zeros((4, 1)), np.ones((4, 1))
    o = _network_output(model, (x - mu[:, :, None]) / sigma[:, :, None])
    reference = {"level": mu, "last": x[:, -1, :],
                 "seasonal": x[:, [12 - 5 + 0, 12 - 5 + 1, 12 - 5 + 2], 0]}[target]
    by_hand = reference + sigma * o
    served = serving(window=tf.constant(x))["forecast"].numpy()
    np.testing.assert_allclose(served, by_hand, rtol=1e-5, atol=1e-4)


def test_an_ensemble_forecasts_the_median_of_its_members_and_reports_each_members_loss():
    keras.utils.set_random_seed(0)
    dataset = data.make_sine_dataset(150, 12, 2, 0.05, 0.1, 0.2, seed=0)
    trainer = forecaster.build_model(hidden_units=4, learning_rate=0.01, horizon=2, ensemble_size=3)
    logged = []
    forecaster.fit(trainer, dataset, epochs=2, batch_size=16, patience=0,
                   on_epoch_end=lambda epoch, logs: logged.append(logs))
    assert {"val_member_0_mse", "val_member_1_mse", "val_member_2_mse", "val_ensemble_mse"} <= set(logged[-1])
    members = trainer.predict(dataset["x_val"], verbose=0)
    assert members.shape == (len(dataset["x_val"]), 3, 2)
    member_mse = [np.mean((members[:, i] - dataset["y_val"]) ** 2) for i in range(3)]
    np.testing.assert_allclose([logged[-1][f"val_member_{i}_mse"] for i in range(3)], member_mse, rtol=1e-4)
    # The loss is the mean of the members' own losses: each member learns as if alone.
    assert logged[-1]["val_loss"] == pytest.approx(np.mean(member_mse), rel=1e-4)
    forecast = forecaster.predict(forecaster.forecasting_model(trainer), dataset["x_val"])["forecast"]
    np.testing.assert_allclose(forecast, np.median(members, axis=1), atol=1e-6)
    # Three different networks, not one network three times.
    assert len({round(float(m), 6) for m in member_mse}) == 3


def test_even_ensembles_take_the_mean_of_the_two_middle_members():
    from custom_layers.transforms import Median

    members = np.array([[[1.0], [4.0], [2.0], [10.0]]], np.float32)  # (1 window, 4 members, horizon 1)
    assert Median()(members).numpy().tolist() == [[3.0]]


def test_conformal_half_width_covers_new_draws_of_known_noise_at_the_level():
    from custom_layers.transforms import conformal_half_width, min_windows_for

    rng = np.random.default_rng(0)
    residuals = rng.normal(0, 2.0, size=(400, 2))
    q = conformal_half_width(residuals, 0.9)
    # Gaussian noise of std 2: the 90 % two-sided half-width is 1.645 · 2.
    np.testing.assert_allclose(q, 2 * 1.645, rtol=0.1)
    fresh = rng.normal(0, 2.0, size=(20000, 2))
    assert np.mean(np.abs(fresh) <= q) == pytest.approx(0.9, abs=0.02)
    # ⌈(n + 1)·level⌉-th smallest of n: with 9 residuals 1..9 at 90 %, the 9th.
    assert conformal_half_width(np.arange(1.0, 10.0)[:, None], 0.9).tolist() == [9.0]
    assert min_windows_for(0.9) == 9 and min_windows_for(0.5) == 1
    with pytest.raises(ValueError, match="8 validation windows are too few for a 0.9 interval: at least 9"):
        conformal_half_width(np.ones((8, 1)), 0.9)


def test_a_trained_model_covers_the_test_targets_of_a_noisy_series_at_the_level():
    """Series = smooth signal + Gaussian noise of known std 0.3: the intervals,
    calibrated on validation windows only, cover about 90 % of the test targets
    and are about as wide as the noise says (2 · 1.645 · 0.3 ≈ 1 at best)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    times = np.arange(1500.0)
    series = 10 + np.sin(times / 8) + rng.normal(0, 0.3, size=times.shape)
    dataset = data.make_series_dataset(times, series, 25, 1, 0.2, 0.3)
    trainer = forecaster.build_model(16, 0.01, 1, "window", forecaster.standard_scale(dataset), "last")
    forecaster.fit(trainer, dataset, epochs=10, batch_size=32, patience=0)
    model = forecaster.forecasting_model(trainer, interval_level=0.9)
    forecaster.calibrate(model, dataset["x_val"], dataset["y_val"])
    out = forecaster.predict(model, dataset["x_test"])
    inside = (out["lower"] <= dataset["y_test"]) & (dataset["y_test"] <= out["upper"])
    assert inside.mean() == pytest.approx(0.9, abs=0.05)
    assert 2 * 1.645 * 0.3 * 0.9 < np.mean(out["upper"] - out["lower"]) < 2 * 1.645 * 0.3 * 1.5


def test_the_seasonal_target_looks_back_where_the_seasonal_baseline_does():
    from custom_layers.transforms import seasonal_offsets

    for input_width, horizon, season in [(12, 3, 5), (49, 48, 48), (60, 7, 2), (10, 1, 10)]:
        np.testing.assert_array_equal(input_width + seasonal_offsets(horizon, season),
                                      data.seasonal_positions(input_width, horizon, season))


def test_in_a_graph_the_seasonal_look_back_waits_for_the_window_length_check():
    """In a graph nothing orders two ops but their inputs: the gather that reads
    one season back must depend on the check, or a short window can reach it
    first and fail with an index error instead of the message (seen in CI)."""
    from custom_layers.transforms import ToSeriesUnits

    layer = ToSeriesUnits(target="seasonal", season=24)
    forecast = tf.function(layer.call).get_concrete_function(
        tf.TensorSpec((None, 2)), tf.TensorSpec((None, None, 1)), tf.TensorSpec((None, 1)), tf.TensorSpec((None, 1)))
    gathers = [op for op in forecast.graph.get_operations() if op.type == "GatherV2"]
    assert gathers

    def reaches_an_assert(op, seen):
        if op.type == "Assert":
            return True
        seen.add(op.name)
        upstream = [t.op for t in op.inputs] + list(op.control_inputs)
        return any(reaches_an_assert(u, seen) for u in upstream if u.name not in seen)

    assert all(reaches_an_assert(op, set()) for op in gathers)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Window too short: the seasonal target with season 24"):
        forecast(tf.zeros((1, 2)), tf.zeros((1, 5, 1)), tf.zeros((1, 1)), tf.ones((1, 1)))


def test_a_keras_model_that_is_not_a_forecasting_model_is_refused_with_one_line(tmp_path):
    from pipeline.errors import ParamError

    inputs = keras.Input((None, 1))
    keras.Model(inputs, keras.layers.Dense(1)(inputs[:, -1, :])).save(tmp_path / "plain.keras")
    with pytest.raises(ParamError) as error:
        forecaster.load_model(tmp_path / "plain.keras")
    assert "is a Keras model, but not a forecasting model as train saves it" in str(error.value)
    assert "\n" not in str(error.value)
