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
    return model, dataset, state


def test_fit_reports_every_epoch_and_keeps_the_best_validation_weights(trained):
    model, dataset, state = trained
    assert state.epochs_done == 3 and len(state.train_loss) == len(state.val_loss) == 3
    assert state.best_epoch == int(np.argmin(state.val_loss)) + 1
    restored = model.evaluate(dataset["x_val"], dataset["y_val"], verbose=0)
    assert restored == pytest.approx(min(state.val_loss), rel=1e-4)


def test_the_datasets_fit_reads_have_tf_data_autotuning_off():
    # Its thread made fit return 1 to 10 s late after early stopping (see _without_autotune).
    dataset = data.make_sine_dataset(150, 12, 1, 0.0, 0.1, 0.2, seed=0)
    train = forecaster.epoch_batches(dataset["x_train"], dataset["y_train"], 16, seed=0, first_epoch=0, epochs=2)
    validation = forecaster.validation_batches(dataset["x_val"], dataset["y_val"])
    assert train.options().autotune.enabled is False
    assert validation.options().autotune.enabled is False
    assert sum(1 for _ in train) == 2 * int(np.ceil(len(dataset["x_train"]) / 16))
    (x_val, y_val), = list(validation)  # one batch: fewer passes of the sequential recurrence
    np.testing.assert_array_equal(x_val.numpy(), dataset["x_val"])
    np.testing.assert_array_equal(y_val.numpy(), dataset["y_val"])


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
