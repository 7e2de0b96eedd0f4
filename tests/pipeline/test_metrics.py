"""Errors and baselines on numbers worked out by hand."""

import numpy as np
import pytest

from pipeline import data, metrics, tables


def test_errors_on_known_numbers():
    result = metrics.errors(np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([[1.0], [2.0], [5.0], [2.0]]), scale=0.5)
    # sMAPE: mean of 2|e|/(|y|+|ŷ|) = (0 + 0 + 4/8 + 4/6) / 4, in %.
    assert result == pytest.approx({
        "mse": 2.0, "rmse": np.sqrt(2.0), "mae": 1.0, "smape": 100 * (0.5 + 2 / 3) / 4, "mase": 2.0,
    })


def test_smape_counts_two_zeros_as_a_perfect_forecast():
    assert metrics.errors(np.zeros((2, 1)), np.zeros((2, 1)), scale=1)["smape"] == 0


def test_naive_scale_is_the_mean_absolute_one_step_change_of_the_training_windows():
    x = np.array([[[0.0], [1.0], [3.0]]])
    assert metrics.naive_scale(x, np.array([[6.0]])) == pytest.approx((1 + 2 + 3) / 3)


def test_persistence_repeats_the_last_input_over_the_horizon():
    x = np.arange(12, dtype=float).reshape(3, 4, 1)
    np.testing.assert_array_equal(metrics.persistence_forecast(x, 1), [[3.0], [7.0], [11.0]])
    np.testing.assert_array_equal(metrics.persistence_forecast(x, 2), [[3.0, 3.0], [7.0, 7.0], [11.0, 11.0]])


def test_seasonal_naive_repeats_the_value_one_season_back():
    x = np.arange(8, dtype=float).reshape(1, 8, 1)  # inputs at positions 0..7, targets from 8
    np.testing.assert_array_equal(metrics.seasonal_naive_forecast(x, 5, season=3), [[5, 6, 7, 5, 6]])
    np.testing.assert_array_equal(metrics.seasonal_naive_forecast(x, 1, season=1), [[7]])
    with pytest.raises(ValueError, match=r"parameter `season`, expected an integer from 1 to the input length 8"):
        metrics.seasonal_naive_forecast(x, 1, season=9)


def test_linear_autoregression_recovers_a_linear_rule_and_is_exact_on_a_pure_sine():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5, 1))
    y = 0.5 * x[:, -1] - 2.0 * x[:, 0] + 3.0
    model = metrics.LinearAutoregression(x[:150], y[:150])
    np.testing.assert_allclose(model.predict(x[150:]), y[150:], atol=1e-10)
    # A sine obeys x[t+1] = 2cos(ω)x[t] - x[t-1]: the linear baseline is exact on it.
    sine = data.make_sine_dataset(1000, 50, 1, 0.0, 0.1, 0.2, seed=0)
    sine_model = metrics.LinearAutoregression(sine["x_train"], sine["y_train"])
    assert metrics.errors(sine["y_test"], sine_model.predict(sine["x_test"]), 1.0)["rmse"] < 1e-5


def test_forecast_metrics_names_the_lstm_plainly_and_baselines_by_prefix():
    y = np.array([[0.0], [1.0]])
    result = metrics.forecast_metrics(y, {"": y, "persistence": y + 1}, scale=1.0)
    assert sorted(result) == sorted(
        [f"test_{m}" for m in metrics.METRICS] + [f"persistence_test_{m}" for m in metrics.METRICS]
    )
    assert result["test_rmse"] == 0 and result["persistence_test_rmse"] == 1


def test_forecast_metrics_adds_rmse_per_step_for_a_longer_horizon():
    y = np.zeros((4, 3))
    forecast = np.array([[0.0, 1.0, 2.0]] * 4)
    result = metrics.forecast_metrics(y, {"": forecast}, scale=1.0)
    assert [result[f"test_rmse_step{k}"] for k in (1, 2, 3)] == [0.0, 1.0, 2.0]
    assert result["test_mae"] == pytest.approx(1.0)  # averaged over the horizon


def test_comparison_table_in_csv_and_markdown():
    scores = metrics.forecast_metrics(np.ones((2, 1)), {"": np.ones((2, 1)), "persistence": np.zeros((2, 1))}, 2.0)
    rows = metrics.comparison_table(scores, [("LSTM", ""), ("persistence", "persistence_")])
    assert rows == [["LSTM", 0.0, 0.0, 0.0, 0.0, 0.0], ["persistence", 1.0, 1.0, 1.0, 200.0, 0.5]]
    assert tables.to_csv(metrics.COMPARISON_HEADER, rows).splitlines() == [
        "forecaster,mse,rmse,mae,smape,mase", "LSTM,0.0,0.0,0.0,0.0,0.0", "persistence,1.0,1.0,1.0,200.0,0.5",
    ]
    assert tables.to_markdown(metrics.COMPARISON_HEADER, rows).splitlines() == [
        "| forecaster | mse | rmse | mae | smape | mase |", "|---|---|---|---|---|---|",
        "| LSTM | 0 | 0 | 0 | 0 | 0 |", "| persistence | 1 | 1 | 1 | 200 | 0.5 |",
    ]
