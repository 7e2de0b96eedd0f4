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


def test_ets_baseline_is_statsforecasts_autoets_fitted_once_and_run_to_each_windows_origin():
    from statsforecast.models import AutoETS

    rng = np.random.default_rng(0)
    t = np.arange(80.0)
    y = 10 + 0.3 * t + 3 * np.sin(2 * np.pi * t / 4) + rng.normal(0, 0.5, 80)
    origins = np.array([60, 61, 70, 77])
    forecast = metrics.ets_forecast(y, 60, origins, horizon=3, season=4)
    # Chosen and fitted on y[:60], the part before the test period; from its end, statsforecast's own forecast.
    np.testing.assert_allclose(forecast[0], AutoETS(season_length=4).forecast(y[:60], 3)["mean"], rtol=1e-9)
    # Later origins: the same model, its states run over what the window has seen (not refitted).
    fitted = AutoETS(season_length=4).fit(y[:60])
    np.testing.assert_allclose(forecast[3], fitted.forward(y=y[:77], h=3)["mean"], rtol=1e-9)
    refitted = AutoETS(season_length=4).forecast(y[:77], 3)["mean"]
    assert not np.allclose(forecast[3], refitted)
    # It sees the trend and the season: far better than persistence here.
    y_test = np.stack([y[o:o + 3] for o in origins])
    assert np.abs(forecast - y_test).mean() < np.abs(y[origins - 1, None] - y_test).mean() / 2


def test_seasonal_naive_from_the_series_looks_back_past_the_window():
    series = np.arange(100.0)
    x = series[np.arange(40, 50)][None, :, None]  # one window of 10 inputs, targets from 50
    forecast = metrics.seasonal_naive_forecast(x, 3, 24, series=series, origins=np.array([50]))
    assert forecast.tolist() == [[26.0, 27.0, 28.0]]  # 24 steps before 50, 51, 52


def test_seasonal_naive_wins_is_decided_on_the_training_windows():
    t = np.arange(200.0)
    seasonal = np.sin(2 * np.pi * t / 12)
    windows = np.lib.stride_tricks.sliding_window_view(seasonal, 25)
    assert metrics.seasonal_naive_wins(windows[:, :24, None], windows[:, 24:], 12)
    trend = np.lib.stride_tricks.sliding_window_view(t, 25)
    assert not metrics.seasonal_naive_wins(trend[:, :24, None], trend[:, 24:], 12)
    assert not metrics.seasonal_naive_wins(windows[:, :24, None], windows[:, 24:], 30)  # does not fit


def test_a_results_csv_quotes_a_cell_with_a_comma_and_reads_back_whole():
    import csv
    import io

    from pipeline import tables

    header = ["run", "data_source", "test_rmse"]
    rows = [["main", "data/sales, 2024.csv", 0.1 + 0.2], ["main", 'say "hi"', 1.5]]
    text = tables.to_csv(header, rows)
    assert list(csv.reader(io.StringIO(text))) == [header, ["main", "data/sales, 2024.csv", "0.30000000000000004"],
                                                   ["main", 'say "hi"', "1.5"]]


def test_smape_is_the_published_m3_formula_point_by_point():
    from pipeline import metrics

    # 200·|y − ŷ|/(|y| + |ŷ|): 200·10/210, 0, 200·5/15, and both zero is 0.
    terms = metrics.smape_terms([100.0, 50.0, 5.0, 0.0], [110.0, 50.0, 10.0, 0.0])
    np.testing.assert_allclose(terms, [2000 / 210, 0.0, 1000 / 15, 0.0])
    assert metrics.errors([100.0, 50.0, 5.0, 0.0], [110.0, 50.0, 10.0, 0.0], 1.0)["smape"] == \
        np.mean([2000 / 210, 0.0, 1000 / 15, 0.0])
