"""Errors and baselines on numbers worked out by hand."""

import numpy as np
import pytest

from pipeline import data, metrics


def test_errors_on_known_numbers():
    result = metrics.errors(np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([[1.0], [2.0], [5.0], [2.0]]))
    assert result == pytest.approx({"mse": 2.0, "rmse": np.sqrt(2.0), "mae": 1.0})


def test_persistence_repeats_the_last_input():
    x = np.arange(12, dtype=float).reshape(3, 4, 1)
    np.testing.assert_array_equal(metrics.persistence_forecast(x), [[3.0], [7.0], [11.0]])


def test_linear_autoregression_recovers_a_linear_rule_and_is_exact_on_a_pure_sine():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5, 1))
    y = 0.5 * x[:, -1] - 2.0 * x[:, 0] + 3.0
    model = metrics.LinearAutoregression(x[:150], y[:150])
    np.testing.assert_allclose(model.predict(x[150:]), y[150:], atol=1e-10)
    # A sine obeys x[t+1] = 2cos(ω)x[t] - x[t-1]: the linear baseline is exact on it.
    sine = data.make_sine_dataset(1000, 50, 0.0, 0.1, 0.2, seed=0)
    sine_model = metrics.LinearAutoregression(sine["x_train"], sine["y_train"])
    assert metrics.errors(sine["y_test"], sine_model.predict(sine["x_test"]))["rmse"] < 1e-5


def test_forecast_metrics_names_the_lstm_plainly_and_baselines_by_prefix():
    y = np.array([[0.0], [1.0]])
    result = metrics.forecast_metrics(y, {"": y, "persistence": y + 1})
    assert sorted(result) == sorted([
        "test_mse", "test_rmse", "test_mae",
        "persistence_test_mse", "persistence_test_rmse", "persistence_test_mae",
    ])
    assert result["test_rmse"] == 0 and result["persistence_test_rmse"] == 1
