"""The forecaster model: what it exports is what it predicts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import data
from pipeline import model as forecaster


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    dataset = data.make_sine_dataset(120, 12, 1, 0.0, 0.1, 0.2, seed=0)
    model = forecaster.build_model(hidden_units=8, learning_rate=0.01)
    history, best_epoch = forecaster.fit(model, dataset, epochs=3, batch_size=16, patience=0)
    return model, dataset, history, best_epoch


def test_fit_reports_every_epoch_and_keeps_the_best_validation_weights(trained):
    model, dataset, history, best_epoch = trained
    val_loss = history.history["val_loss"]
    assert len(val_loss) == 3 and best_epoch == int(np.argmin(val_loss)) + 1
    restored = model.evaluate(dataset["x_val"], dataset["y_val"], verbose=0)
    assert restored == pytest.approx(min(val_loss), rel=1e-4)


def test_saved_model_predicts_what_keras_predicts_for_any_batch_and_window_length(trained, tmp_path):
    model = trained[0]
    forecaster.export_saved_model(model, str(tmp_path / "saved_model"))
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    serving = loaded.signatures["serving_default"]
    spec = serving.structured_input_signature[1]["window"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None, 1]
    assert serving.structured_outputs["forecast"].shape.as_list() == [None, 1]
    rng = np.random.default_rng(1)
    for batch, timesteps in [(1, 11), (5, 11), (64, 30)]:
        x = rng.uniform(-1, 1, size=(batch, timesteps, 1)).astype("float32")
        served = serving(window=tf.constant(x))["forecast"]
        assert served.shape == (batch, 1)
        np.testing.assert_allclose(served.numpy(), forecaster.predict(model, x), atol=1e-5)
        compiled = loaded.signatures["serve_xla"](window=tf.constant(x))["forecast"]
        np.testing.assert_allclose(compiled.numpy(), served.numpy(), atol=1e-5)


def test_scaled_model_takes_and_returns_raw_values_even_exported(tmp_path):
    keras.utils.set_random_seed(1)
    times = np.arange(600.0)
    dataset = data.make_series_dataset(times, 1000 + 50 * np.sin(times / 4), 20, 3, 0.1, 0.2)
    scale = forecaster.standard_scale(dataset)
    assert scale == pytest.approx((1000, 50 / np.sqrt(2)), rel=0.02)
    model = forecaster.build_model(hidden_units=16, learning_rate=0.01, horizon=3, scale=scale)
    forecaster.fit(model, dataset, epochs=8, batch_size=32, patience=0)
    predicted = forecaster.predict(model, dataset["x_test"])
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
    np.testing.assert_allclose(forecasts[0], forecaster.predict(model, window[None])[0, 0], atol=1e-6)
    second_input = np.concatenate([window[1:, 0], forecasts[:1]])[None, :, None]
    np.testing.assert_allclose(forecasts[1], forecaster.predict(model, second_input)[0, 0], atol=1e-6)
