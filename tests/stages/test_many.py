"""A collection through `main`: one run, one global model, the tables and plots a user opens."""

import contextlib
import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import params
from pipeline.errors import ParamError
from pipeline.stages import main
from tests.conftest import temporary_store

HORIZON = 4


def collection_csv(path, n=12):
    """n quarterly series, sizes from 1 to 10^4, lengths 30 to 52; the last one has 13 points,
    5 to train on: its training windows start in its padding."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        length = 13 if i == n - 1 else int(rng.integers(30, 53))
        t = np.arange(length)
        y = 10.0 ** (i % 5) * (2 + np.sin(2 * np.pi * t / 4) * 0.3 + 0.02 * t + rng.normal(0, 0.03, length))
        start = pd.Period("2010Q1", "Q") + int(rng.integers(0, 8))
        for k, value in enumerate(y):
            rows.append(f"series {i},{(start + k).start_time:%Y-%m-%d},{value:.4f}")
    path.write_text("item,quarter,sales\n" + "\n".join(rows) + "\n")
    return path


def run_collection(path, **overrides):
    values = {**params.defaults("main"), "data_source": str(path), "id_column": "item", "time_column": "quarter",
              "column": "sales", "horizon": HORIZON, "season": 4, "time_steps": 12 + HORIZON, "hidden_units": 8,
              "learning_rate": 0.01, "epochs": 4, "seed": 0, **overrides}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_ids, scores = main.run(**values)
    return run_ids, scores, printed.getvalue()


@pytest.fixture(scope="module")
def collection_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    path = collection_csv(folder / "sales.csv")
    with temporary_store(folder):
        run_ids, scores, printed = run_collection(path)
        run = mlflow.get_run(run_ids["main"])
        files = {name: mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{name}", dst_path=str(folder))
                 for name in ("forecasts.csv", "per_series_metrics.csv", "comparison.md", "plots")}
        history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
        model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
        yield run, scores, printed, files, history, model


@pytest.mark.slow
def test_a_collection_is_one_run_with_every_forecaster_scored_on_the_same_targets(collection_run):
    run, scores, printed, files, history, _ = collection_run
    assert run.info.status == "FINISHED" and run.data.tags["series"] == "12"
    assert len(history) == run.data.metrics["epochs_trained"] == 4
    for prefix in ("", "naive_", "seasonal_naive_", "auto_ets_", "auto_theta_"):
        for metric in ("smape", "mape", "mase", "coverage", "interval_width"):
            assert np.isfinite(run.data.metrics[f"{prefix}test_{metric}"]), prefix + metric
    forecasts = pd.read_csv(files["forecasts.csv"])
    assert list(forecasts.columns) == ["unique_id", "ds", "step", "y", "forecaster", "forecast", "lower", "upper"]
    assert len(forecasts) == 12 * HORIZON * 5
    # The short series is forecast like the others, never dropped.
    assert set(forecasts.unique_id) == {f"series {i}" for i in range(12)}
    per_series = pd.read_csv(files["per_series_metrics.csv"])
    lstm = per_series[per_series.forecaster == "lstm"]
    assert len(per_series) == 12 * 5 and lstm.smape.mean() == pytest.approx(run.data.metrics["test_smape"])
    assert "| auto_theta |" in open(files["comparison.md"]).read()
    assert "| auto_theta |" in printed and "one global model over 12 series" in printed


@pytest.mark.slow
def test_the_test_targets_are_each_series_last_values(collection_run, tmp_path):
    run, _, _, files, _, _ = collection_run
    forecasts = pd.read_csv(files["forecasts.csv"])
    source = pd.read_csv(run.data.params["data_source"])
    for item, rows in source.groupby("item"):
        mine = forecasts[(forecasts.unique_id == item) & (forecasts.forecaster == "lstm")]
        np.testing.assert_allclose(mine.y, rows.sales.to_numpy()[-HORIZON:])
        assert list(mine.ds) == list(rows.quarter.to_numpy()[-HORIZON:])


@pytest.mark.slow
def test_the_collections_model_forecasts_windows_of_any_series_with_intervals(collection_run):
    run, _, _, _, _, model = collection_run
    rng = np.random.default_rng(0)
    windows = (1000 * (2 + rng.normal(0, 0.1, (3, 12, 1)))).astype(np.float32)
    out = model.predict(windows, params={"intervals": True})
    assert out["forecast"].shape == (3, HORIZON)
    assert np.all(out["lower"] < out["forecast"]) and np.all(out["forecast"] < out["upper"])
    # Relative intervals: ten times the window, ten times the width.
    wide = model.predict(windows * 10, params={"intervals": True})
    np.testing.assert_allclose(wide["upper"] - wide["lower"], 10 * (out["upper"] - out["lower"]), rtol=1e-3)


@pytest.mark.slow
def test_a_collection_refused_before_any_run_opens(tmp_path):
    path = collection_csv(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        with pytest.raises(ParamError, match=r"^Series 'series 11' has 13 points; with horizon 6 the holdout split "
                                             r"needs at least 14"):
            run_collection(path, horizon=6, time_steps=18)
        with pytest.raises(ParamError, match=r"^Received `scaling`='standard' for a collection"):
            run_collection(path, scaling="standard")
        assert mlflow.search_runs(output_format="list") == []
        _, scores, printed = run_collection(path, horizon=6, time_steps=18, min_length=14, epochs=1)
        assert "1 series shorter than 14 points skipped (min_length)" in printed


def test_a_sweep_of_a_collection_is_refused_in_one_line(tmp_path):
    from pipeline.stages import generate_data

    path = collection_csv(tmp_path / "sales.csv")
    with pytest.raises(ParamError, match=r"^Received `data_source`='.*sales.csv', a collection \(it has the column "
                                         r"'item'\): sweeps and studies of a collection are not supported yet"):
        generate_data.prepare_each([{**params.defaults("main"), "data_source": str(path), "id_column": "item"}])


@pytest.mark.slow
def test_lstm_predict_forecasts_every_series_of_a_collection_with_the_newest_model(tmp_path):
    from pipeline.stages import predict

    path = collection_csv(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        run_collection(path, epochs=1)
        table = predict.run("auto", str(path), "auto", "error", "auto", "auto", ".", "none",
                            str(tmp_path / "next.csv"))
    written = pd.read_csv(tmp_path / "next.csv")
    assert len(written) == len(table) == 12 * HORIZON
    assert list(written.columns) == ["unique_id", "ds", "step", "forecast", "lower", "upper"]
    source = pd.read_csv(path)
    last = pd.Timestamp(source[source["item"] == "series 3"]["quarter"].iloc[-1])
    assert list(written[written.unique_id == "series 3"].ds) == [
        f"{last + pd.DateOffset(months=3 * k):%Y-%m-%d}" for k in range(1, HORIZON + 1)]
