"""The forecast stage of a CSV series: the served model is trained on every point,
the evaluated one is not, and the future is forecast by the model that is served."""

import contextlib
import io

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import params
from pipeline.stages import main, predict
from tests.conftest import temporary_store

HORIZON = 2
SETTINGS = {"column": "y", "time_column": "month", "season": 12, "horizon": HORIZON, "hidden_units": 8,
            "epochs": 6, "ensemble_size": 1, "init": "none", "seed": 3}


def monthly(path, n=96, bump=1.0):
    """A monthly series from 2000-01; `bump` scales its last HORIZON values."""
    t = np.arange(n)
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.02 * t + np.random.default_rng(0).normal(0, 0.1, n)
    y[-HORIZON:] *= bump
    months = pd.period_range("2000-01", periods=n, freq="M").start_time.strftime("%Y-%m-%d")
    pd.DataFrame({"month": months, "y": np.round(y, 4)}).to_csv(path, index=False)
    return path


def run_series(path, **overrides):
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        run_ids, scores = main.run(**{**params.defaults("main"), "data_source": str(path), **SETTINGS, **overrides})
    return run_ids, printed.getvalue()


@pytest.mark.slow
def test_only_the_served_model_has_seen_the_series_last_points(tmp_path):
    windows = (10 + np.random.default_rng(1).normal(0, 1, (4, 49, 1))).astype(np.float32)
    out = {}
    with temporary_store(tmp_path):
        for name, bump in (("a.csv", 1.0), ("b.csv", 1.5)):
            run_ids, printed = run_series(monthly(tmp_path / name, bump=bump))
            run = mlflow.get_run(run_ids["main"])
            evaluated = mlflow.pyfunc.load_model(run.data.tags["evaluated_model_uri"])
            served = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
            out[name] = evaluated.predict(windows), served.predict(windows)
    np.testing.assert_array_equal(out["a.csv"][0], out["b.csv"][0])
    # float32 rounding alone moves a forecast near 10 by about 1e-6.
    assert np.abs(out["a.csv"][1] - out["b.csv"][1]).max() > 1e-4
    assert set(run_ids) == {"main", "generate_data", "train", "evaluate", "forecast"}
    assert "Served model: trained on every point of the series" in printed
    assert "through 2007-12-01" in printed  # the served model's newest point: the series' last month


@pytest.mark.slow
def test_the_future_is_forecast_by_the_served_model_and_lstm_predict_agrees(tmp_path):
    path = monthly(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        run_ids, _ = run_series(path)
        run = mlflow.get_run(run_ids["main"])
        future = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['forecast']}/forecasts.csv",
                                                                 dst_path=str(tmp_path)))
        forecast_run = mlflow.get_run(run_ids["forecast"])
        best_epoch = mlflow.get_run(run_ids["train"]).data.metrics["best_epoch"]
        with contextlib.redirect_stdout(io.StringIO()):
            answered = predict.run("models:/lstm-sales@champion", str(path), "auto", "error", "auto", "auto", ".",
                                   "none", "-")
        unrefitted, _ = run_series(path, refit="false", seed=4)
        plain = mlflow.get_run(unrefitted["main"])
        plain_train = mlflow.get_run(unrefitted["train"])
    assert list(future.columns) == ["ds", "step", "forecast", "lower", "upper"]
    assert list(future.ds) == ["2008-01-01", "2008-02-01"]
    assert (future.lower < future.forecast).all() and (future.forecast < future.upper).all()
    # The champion is the served model, and it forecasts the future from the series' newest values.
    assert run.data.tags["model_uri"] == forecast_run.data.tags["model_uri"] != run.data.tags["evaluated_model_uri"]
    np.testing.assert_allclose(np.asarray(answered)[0], future.forecast, rtol=1e-5)
    assert forecast_run.data.metrics["refit_epochs"] == best_epoch
    # refit=false: the evaluated model is served.
    assert plain.data.tags["model_uri"] == plain_train.data.tags["model_uri"]
    assert plain.data.tags["served_model_trained_on"] == "the evaluated model itself (refit=false)"


@pytest.mark.slow
def test_a_series_test_period_is_logged_as_statsforecasts_cross_validation(tmp_path):
    path = monthly(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        run_ids, _ = run_series(path)
        cv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['evaluate']}/cross_validation.csv",
                                                             dst_path=str(tmp_path)))
        main_run = mlflow.get_run(run_ids["main"])
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "lstm", "lstm-lo-90", "lstm-hi-90", "persistence",
                                "seasonal_naive", "ets", "linear"]
    source = pd.read_csv(path)
    # Every test window, forecast from each origin in the test period (the last 20 % of the 96 months).
    assert set(cv.ds) <= set(source.month[-20:]) and cv.ds.iloc[-1] == source.month.iloc[-1]
    first = cv.iloc[0]
    assert source.month.tolist().index(first.cutoff) == source.month.tolist().index(first.ds) - 1
    np.testing.assert_allclose(cv.y, source.set_index("month").loc[cv.ds, "y"].to_numpy(), rtol=1e-6)
    rmse = np.sqrt(np.mean((cv.lstm - cv.y) ** 2))
    assert rmse == pytest.approx(main_run.data.metrics["test_rmse"], rel=1e-5)
