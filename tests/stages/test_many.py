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


def run_collection(path, register=True, epoch_hook=None, **overrides):
    values = {**params.defaults("main"), "data_source": str(path), "id_column": "item", "time_column": "quarter",
              "column": "sales", "horizon": HORIZON, "season": 4, "time_steps": 12 + HORIZON, "hidden_units": 8,
              "learning_rate": 0.01, "epochs": 4, "seed": 0, **overrides}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_ids, scores = main.run(register=register, epoch_hook=epoch_hook, **values)
    return run_ids, scores, printed.getvalue()


@pytest.fixture(scope="module")
def collection_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    path = collection_csv(folder / "sales.csv")
    with temporary_store(folder):
        run_ids, scores, printed = run_collection(path)
        run = mlflow.get_run(run_ids["main"])
        where = {"cross_validation.csv": "evaluate", "per_series_metrics.csv": "evaluate", "comparison.md": "evaluate",
                 "plots": "evaluate", "forecasts.csv": "forecast"}
        files = {name: mlflow.artifacts.download_artifacts(f"runs:/{run_ids[stage]}/{name}",
                                                           dst_path=str(folder / stage))
                 for name, stage in where.items()}
        history = MlflowClient().get_metric_history(run_ids["train"], "val_loss")
        model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
        children = {r.data.tags["stage"]: r for r in MlflowClient().search_runs(
            [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")}
        yield run, scores, printed, files, history, model, children


FORECASTERS = ("lstm", "naive", "seasonal_naive", "auto_ets", "auto_theta")


@pytest.mark.slow
def test_a_collection_is_one_run_with_every_forecaster_scored_on_the_same_targets(collection_run):
    run, scores, printed, files, history, _, children = collection_run
    assert run.info.status == "FINISHED" and run.data.tags["series"] == "12"
    # A season of 4 in windows of 12: windows where the test finds a season are deseasonalised ('auto').
    assert run.data.tags["resolved_deseasonalise"] == "tested" and "deseasonalise_notes" not in children["train"].data.tags
    # A window reaching back before its series' start is masked ('auto').
    assert run.data.tags["resolved_short_history"] == "mask"
    # The staged pipeline, as for one series: four stages under main, each finished.
    assert sorted(children) == ["evaluate", "forecast", "generate_data", "train"]
    assert all(child.info.status == "FINISHED" for child in children.values())
    assert {run.data.tags[f"{stage}_run_id"] for stage in children} == {c.info.run_id for c in children.values()}
    assert [d.dataset.name for d in children["generate_data"].inputs.dataset_inputs] == ["sales (collection)"]
    assert len(history) == run.data.metrics["epochs_trained"] == 4
    for prefix in ("", "naive_", "seasonal_naive_", "auto_ets_", "auto_theta_"):
        for metric in ("smape", "mape", "mase", "coverage", "interval_width"):
            assert np.isfinite(run.data.metrics[f"{prefix}test_{metric}"]), prefix + metric
    cv = pd.read_csv(files["cross_validation.csv"])
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "history"] + [
        f"{name}{suffix}" for name in FORECASTERS for suffix in ("", "-lo-90", "-hi-90")]
    assert len(cv) == 12 * HORIZON and cv[list(cv.columns[3:])].notna().all().all()
    # The short series is forecast like the others, never dropped.
    assert set(cv.unique_id) == {f"series {i}" for i in range(12)}
    per_series = pd.read_csv(files["per_series_metrics.csv"])
    lstm = per_series[per_series.forecaster == "lstm"]
    assert len(per_series) == 12 * 5 and lstm.smape.mean() == pytest.approx(run.data.metrics["test_smape"])
    assert "| auto_theta |" in open(files["comparison.md"]).read()
    assert "| auto_theta |" in printed and "Runs (one global model over 12 series)" in printed


@pytest.mark.slow
def test_the_test_targets_are_each_series_last_values_forecast_from_the_point_before(collection_run, tmp_path):
    run, _, _, files, _, _, _ = collection_run
    cv = pd.read_csv(files["cross_validation.csv"])
    source = pd.read_csv(run.data.params["data_source"])
    for item, rows in source.groupby("item"):
        mine = cv[cv.unique_id == item]
        np.testing.assert_allclose(mine.y, rows.sales.to_numpy()[-HORIZON:])
        assert list(mine.ds) == list(rows.quarter.to_numpy()[-HORIZON:])
        assert set(mine.cutoff) == {rows.quarter.to_numpy()[-HORIZON - 1]}
        assert set(mine.history) == {len(rows) - HORIZON}


@pytest.mark.slow
def test_the_served_model_is_trained_on_every_point_and_forecasts_the_future(collection_run):
    run, _, printed, files, _, model, children = collection_run
    tags = run.data.tags
    assert tags["served_model_trained_on"] == "trained on every point of every series"
    assert tags["evaluated_model_trained_on"] == f"trained on every series but its last {HORIZON} points"
    metadata = model.metadata.metadata
    assert metadata["served_model_trained_on"] == "trained on every point of every series"
    assert metadata["evaluated_model_uri"] == children["train"].data.tags["model_uri"] != run.data.tags["model_uri"]
    source = pd.read_csv(run.data.params["data_source"])
    assert metadata["newest_time_trained_on"] == source.quarter.max()
    # Each refit trains the epochs validation chose, no more.
    best = run.data.metrics["best_epoch"]
    client = MlflowClient()
    for name, stage in (("test", "train"), ("full", "forecast")):
        assert len(client.get_metric_history(children[stage].info.run_id, f"refit_{name}_loss")) == best
    future = pd.read_csv(files["forecasts.csv"])
    assert list(future.columns) == ["unique_id", "ds", "step", "forecast", "lower", "upper", "padded",
                                    "worse_than_seasonal_naive"]
    assert len(future) == 12 * HORIZON and future[["forecast", "lower", "upper"]].notna().all().all()
    for item, rows in source.groupby("item"):
        last = pd.Timestamp(rows.quarter.iloc[-1])
        assert list(future[future.unique_id == item].ds) == [
            f"{last + pd.DateOffset(months=3 * k):%Y-%m-%d}" for k in range(1, HORIZON + 1)]
    # The model reads 12 values, and the shortest series has 13: none was padded.
    assert set(future.padded) == {0}
    assert "Served model: trained on every point of every series" in printed
    assert f"Evaluated model: trained on every series but its last {HORIZON} points" in printed


@pytest.mark.slow
def test_the_collections_model_forecasts_windows_of_any_series_with_intervals(collection_run):
    run, _, _, _, _, model, _ = collection_run
    rng = np.random.default_rng(0)
    windows = (1000 * (2 + rng.normal(0, 0.1, (3, 12, 1)))).astype(np.float32)
    out = model.predict(windows, params={"intervals": True})
    assert out["forecast"].shape == (3, HORIZON)
    assert np.all(out["lower"] < out["forecast"]) and np.all(out["forecast"] < out["upper"])
    # Relative intervals: ten times the window, ten times the width.
    wide = model.predict(windows * 10, params={"intervals": True})
    np.testing.assert_allclose(wide["upper"] - wide["lower"], 10 * (out["upper"] - out["lower"]), rtol=1e-3)


@pytest.mark.slow
def test_a_collection_refused_before_any_run_opens_and_the_advice_runs(tmp_path):
    path = collection_csv(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        with pytest.raises(ParamError, match=r"^Series 'series 11' has 13 points; with horizon 13 a test needs at "
                                             r"least 14 \(13 test targets, 1 before them\)\. 1 series are that short: "
                                             r"pass -P min_length=14 to skip them"):
            run_collection(path, horizon=13, time_steps=26)
        with pytest.raises(ParamError, match=r"^Received `scaling`='standard' for a collection"):
            run_collection(path, scaling="standard")
        with pytest.raises(ParamError, match=r"^Received `deseasonalise`=always with `season`=0 and a window of "
                                             r"12 values: deseasonalising needs a season of at least 2"):
            run_collection(path, season=0, deseasonalise="always")
        with pytest.raises(ParamError, match=r"^No series has a training window before the first validation "
                                             r"cut-off: the longest, 'series \d+', has \d+ points and Folds\(horizon=4, "
                                             r"n_windows=12, step_size=4: validation cut-offs at 8 to 52 points from "
                                             r"the end, 4 apart; the test cut-off at 4\) hold out its last 52; a series "
                                             r"needs 57\. Pass -P n_windows=1 or a shorter horizon\.$"):
            run_collection(path, n_windows=12)
        assert mlflow.search_runs(output_format="list") == []
        _, scores, printed = run_collection(path, horizon=13, time_steps=26, min_length=14, epochs=1, n_windows=1)
        assert "1 series shorter than 14 points skipped (min_length)" in printed
        assert np.isfinite(scores["test_smape"])


COLLECTION = {"id_column": "item", "time_column": "quarter", "column": "sales", "horizon": str(HORIZON),
              "season": "4", "time_steps": str(12 + HORIZON), "learning_rate": "0.01", "epochs": "2"}


@pytest.mark.slow
def test_a_sweep_and_a_study_of_a_collection_register_the_trial_validation_chose(tracking_store, tmp_path):
    from pipeline.stages import sweep, tune

    path = collection_csv(tmp_path / "sales.csv")
    raw = {**COLLECTION, "data_source": str(path), "hidden_units": "4,8"}
    parent_id, best_id = sweep.run(**sweep.parse_grid("sweep", raw))
    parent = mlflow.get_run(parent_id)
    trials = MlflowClient().search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(trials) == 2 and all(t.data.tags["data"] == "collection" for t in trials)
    best = min(trials, key=lambda t: t.data.metrics["best_val_loss"])
    assert best.info.run_id == best_id == parent.data.tags["best_run_id"]
    assert parent.data.metrics["best_test_smape"] == best.data.metrics["test_smape"]
    champion = MlflowClient().get_model_version_by_alias("lstm-sales", "champion")
    assert champion.tags["run_id"] == best_id
    state = tune.run(**tune.parse_space("tune", {**raw, "study": "stores", "n_trials": "2", "pruner": "none"}))
    assert (state["complete"], state["total"]) == (2, 2)
    (study,) = MlflowClient().search_runs([parent.info.experiment_id], "tags.stage = 'tune'")
    assert "best_test_smape" in study.data.metrics and "best_run_id" in study.data.tags


def test_a_sweep_of_a_collection_is_refused_before_its_first_trial_when_one_corner_cannot_run(tmp_path):
    from pipeline.stages import generate_data

    path = collection_csv(tmp_path / "sales.csv")
    base = {**params.defaults("main"), "data_source": str(path), "id_column": "item", "time_column": "quarter",
            "column": "sales", "season": 4}
    with pytest.raises(ParamError, match=r"^Series 'series 11' has 13 points; with horizon 13 a test needs at least 14"):
        generate_data.prepare_each([{**base, "horizon": 4}, {**base, "horizon": 13}])
    with pytest.raises(ParamError, match=r"^Received `scaling`='standard' for a collection"):
        generate_data.prepare_each([{**base, "horizon": 4}, {**base, "horizon": 4, "scaling": "standard"}])


@pytest.mark.slow
def test_lstm_predict_forecasts_every_series_with_the_served_model_and_says_what_it_padded(tmp_path, capsys,
                                                                                             monkeypatch):
    from pipeline import parquet_input
    from pipeline.stages import predict

    path = collection_csv(tmp_path / "sales.csv")
    with temporary_store(tmp_path):
        run_ids, _, _ = run_collection(path, epochs=1)
        run_forecasts = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['forecast']}/forecasts.csv",
                                                                        dst_path=str(tmp_path)))
        table = predict.run("auto", str(path), "auto", "error", "auto", "auto", ".", "none",
                            str(tmp_path / "next.csv"))
        source = pd.read_csv(path)
        short = source[source["item"] != "series 3"]
        short = pd.concat([short, source[source["item"] == "series 3"].tail(5)])
        short.to_csv(tmp_path / "short.csv", index=False)
        # The same collection in Parquet, partitioned by series, scored into Parquet.
        pd.read_csv(path, parse_dates=["quarter"]).to_parquet(tmp_path / "sales_parquet", partition_cols=["item"])
        predict.run("auto", str(tmp_path / "sales_parquet"), "auto", "error", "auto", "auto", ".", "none",
                    str(tmp_path / "next.parquet"))
        # Read in blocks of whole series, as a collection of more than BLOCK_ROWS rows is: the same forecasts.
        monkeypatch.setattr(parquet_input, "BLOCK_ROWS", 100)
        predict.run("auto", str(tmp_path / "sales_parquet"), "auto", "error", "auto", "auto", ".", "none",
                    str(tmp_path / "blocks.parquet"))
        capsys.readouterr()
        padded = predict.run("auto", str(tmp_path / "short.csv"), "auto", "error", "auto", "auto", ".", "none",
                             str(tmp_path / "short_next.csv"))
    written = pd.read_csv(tmp_path / "next.csv")
    from_parquet = pd.read_parquet(tmp_path / "next.parquet").sort_values(["unique_id", "step"], ignore_index=True)
    pd.testing.assert_frame_equal(from_parquet, written.sort_values(["unique_id", "step"], ignore_index=True),
                                  check_exact=False, check_dtype=False, rtol=1e-6)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "blocks.parquet").sort_values(["unique_id", "step"],
                                                                                          ignore_index=True),
                                  from_parquet)
    assert len(written) == len(table) == 12 * HORIZON
    assert list(written.columns) == ["unique_id", "ds", "step", "forecast", "lower", "upper", "padded"]
    # The model lstm-predict finds is the one the run served: the run's own forecasts of the future (the run
    # also marks the series its validation found worse than the seasonal naive forecast).
    pd.testing.assert_frame_equal(written, run_forecasts.drop(columns="worse_than_seasonal_naive"), check_exact=False,
                                  rtol=1e-5)
    last = pd.Timestamp(source[source["item"] == "series 3"]["quarter"].iloc[-1])
    assert list(written[written.unique_id == "series 3"].ds) == [
        f"{last + pd.DateOffset(months=3 * k):%Y-%m-%d}" for k in range(1, HORIZON + 1)]
    assert set(padded[padded.unique_id == "series 3"].padded) == {12 - 5}
    assert set(padded[padded.unique_id != "series 3"].padded) == {0}
    assert ("predict: 1 series are shorter than the 12 values the model reads (the first, 'series 3', has 5): the "
            "model masked the values each lacks, and the column `padded` says how many") in capsys.readouterr().err


def _evaluated_and_served(run_id):
    """The run's evaluated model and its served model, as MLflow models."""
    run = mlflow.get_run(run_id)
    return (mlflow.pyfunc.load_model(run.data.tags["evaluated_model_uri"]),
            mlflow.pyfunc.load_model(run.data.tags["model_uri"]))


@pytest.mark.slow
def test_only_the_served_model_has_seen_each_series_last_points(tmp_path):
    """Two files that differ only in each series' last `horizon` values: the models that
    forecast the test (trained before it) are the same; the served models are not."""
    path = collection_csv(tmp_path / "sales.csv")
    source = pd.read_csv(path)
    changed = source.copy()
    last = changed.groupby("item").cumcount(ascending=False) < HORIZON
    changed.loc[last, "sales"] *= 1.5
    changed.to_csv(tmp_path / "changed.csv", index=False)
    windows = (100 * (2 + np.random.default_rng(0).normal(0, 0.1, (5, 12, 1)))).astype(np.float32)
    out = {}
    with temporary_store(tmp_path):
        for name in ("sales.csv", "changed.csv"):
            run_ids, _, _ = run_collection(tmp_path / name, register=False)
            evaluated, served = _evaluated_and_served(run_ids["main"])
            out[name] = (evaluated.predict(windows), served.predict(windows))
    np.testing.assert_array_equal(out["sales.csv"][0], out["changed.csv"][0])
    assert np.abs(out["sales.csv"][1] - out["changed.csv"][1]).max() > 1e-3


def numbered_collection(path):
    """12 yearly series numbered 1, 2, ... (integer times): three of 7-9 points, too few for
    AutoETS once the test's 4 are held out; the first two too few for a validation window."""
    rng = np.random.default_rng(5)
    rows = []
    for i, length in enumerate([7, 8, 9] + list(rng.integers(20, 31, 9))):
        start = int(rng.integers(1, 10))
        y = 50 + np.cumsum(rng.normal(1, 2, length))
        rows += [f"Y{i},{start + k},{value:.3f}" for k, value in enumerate(y)]
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_tiny_series_are_forecast_by_a_fallback_and_integer_times_stay_integers(tmp_path):
    path = numbered_collection(tmp_path / "yearly.csv")
    values = {**params.defaults("main"), "data_source": str(path), "horizon": 4, "hidden_units": 8, "epochs": 2,
              "seed": 0}
    printed = io.StringIO()
    with temporary_store(tmp_path), contextlib.redirect_stdout(printed):
        run_ids, scores = main.run(**values)
        run = mlflow.get_run(run_ids["main"])
        cv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['evaluate']}/cross_validation.csv",
                                                             dst_path=str(tmp_path)))
        future = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['forecast']}/forecasts.csv",
                                                                 dst_path=str(tmp_path)))
    assert run.info.status == "FINISHED"
    assert "auto_ets could not forecast 3 series (the first has 3 points): the naive forecast stands in" in \
        printed.getvalue()
    assert "2 series are too short for a validation window" in printed.getvalue()  # 7 and 8 points
    assert cv["auto_ets"].notna().all() and np.isfinite(scores["auto_ets_test_smape"])
    assert cv.ds.dtype.kind == "i" and future.ds.dtype.kind == "i" and cv.cutoff.dtype.kind == "i"
    source = pd.read_csv(path)
    assert list(future[future.unique_id == "Y0"].ds) == [source[source.unique_id == "Y0"].ds.max() + k
                                                         for k in range(1, 5)]


@pytest.mark.slow
def test_the_run_says_how_the_model_fared_against_the_seasonal_naive_forecast_on_validation(collection_run):
    run, _, printed, files, _, _, children = collection_run
    comparison = pd.read_csv(mlflow.artifacts.download_artifacts(
        f"runs:/{children['train'].info.run_id}/validation_vs_seasonal_naive.csv"))
    assert len(comparison) == 12 and (comparison.validation_windows >= 1).all()
    assert run.data.metrics["val_mase"] == pytest.approx(comparison.lstm_mase.mean())
    assert run.data.metrics["seasonal_naive_val_mase"] == pytest.approx(comparison.seasonal_naive_mase.mean())
    assert run.data.metrics["series_worse_than_seasonal_naive"] == comparison.worse.sum()
    loses = run.data.metrics["val_mase"] > run.data.metrics["seasonal_naive_val_mase"]
    assert run.data.tags["worse_than_seasonal_naive"] == str(loses).lower()
    future = pd.read_csv(files["forecasts.csv"])
    marked = future.groupby("unique_id").worse_than_seasonal_naive.first()
    assert marked.to_dict() == dict(zip(comparison.unique_id, comparison.worse))
    assert f"{int(comparison.worse.sum())} of 12 series forecast worse than by the seasonal naive" in printed


@pytest.mark.slow
def test_a_model_worse_than_the_seasonal_naive_forecast_is_served_with_a_warning(tmp_path):
    """Series that repeat one season exactly: the seasonal naive forecast is perfect, two epochs of
    LSTM are not, and the user is told, for the collection and for every series."""
    pattern = np.array([1.0, 3.0, 2.0, 5.0])
    rows = [f"s{i},{k},{10 ** (i % 3) * pattern[k % 4]:.3f}" for i in range(6) for k in range(40)]
    path = tmp_path / "seasons.csv"
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    values = {**params.defaults("main"), "data_source": str(path), "horizon": 4, "season": 4, "hidden_units": 8,
              "epochs": 2, "deseasonalise": "false"}  # deseasonalised, these series are flat: too easy
    with temporary_store(tmp_path), contextlib.redirect_stdout(io.StringIO()) as printed:
        run_ids, _ = main.run(**values)
        run = mlflow.get_run(run_ids["main"])
        future = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_ids['forecast']}/forecasts.csv"))
    assert run.data.tags["worse_than_seasonal_naive"] == "true"
    assert run.data.metrics["seasonal_naive_val_mase"] == 0 < run.data.metrics["val_mase"]
    assert run.data.metrics["series_worse_than_seasonal_naive"] == 6 and future.worse_than_seasonal_naive.all()
    assert "WORSE: see validation_vs_seasonal_naive.csv on the train run" in printed.getvalue()
    assert "6 of 6 series forecast worse than by the seasonal naive" in printed.getvalue()


@pytest.mark.slow
def test_a_collection_of_four_series_runs_with_the_defaults(tmp_path):
    """Four series give four validation windows at one cut-off; 90 % intervals need 9, so
    `n_windows=auto` takes three cut-offs, and says so."""
    rows = [f"s{i},{(pd.Period('2015-01', 'M') + k).start_time:%Y-%m-%d},{100 + 10 * np.sin(k / 2) + i:.3f}"
            for i in range(4) for k in range(60)]
    path = tmp_path / "four.csv"
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    values = {**params.defaults("main"), "data_source": str(path), "horizon": 6, "season": 12, "hidden_units": 8,
              "epochs": 2}
    with temporary_store(tmp_path), contextlib.redirect_stdout(io.StringIO()) as printed:
        run_ids, scores = main.run(**values)
        run = mlflow.get_run(run_ids["main"])
        trained = mlflow.get_run(run_ids["train"]).data.tags
    assert run.info.status == "FINISHED" and run.data.tags["resolved_n_windows"] == "3"
    assert np.isfinite(scores["test_coverage"])
    assert "Validation: 3 cut-off(s), 6 apart" in printed.getvalue()
    # 'auto': an ensemble of three whose members learn MASE's, sMAPE's and MAPE's losses, and the run says so.
    assert (trained["resolved_ensemble_size"], trained["resolved_member_losses"]) == ("3", "mase,smape,mape")
    assert "train: ensemble_size=auto: 3 networks, median-combined, trained with the losses mase, smape, mape (" \
        in printed.getvalue() and trained["ensemble_note"].startswith("ensemble_size=auto: 3 networks")


def test_an_ensemble_is_trained_only_for_a_collection_an_epoch_of_which_stays_within_the_budget():
    from pipeline.global_model import GlobalSettings
    from pipeline.stages import train

    assert train.auto_ensemble_size(train.ENSEMBLE_MAX_WINDOWS) == 3
    assert train.auto_ensemble_size(train.ENSEMBLE_MAX_WINDOWS + 1) == 1
    assert train.epoch_windows(5_000_000, 0, 1000) == 5_000_000 and train.epoch_windows(5_000_000, 100, 1000) == 100_000
    one = GlobalSettings(input_width=8, horizon=4, ensemble_size=1, losses=train.member_losses(1))
    assert train.ensemble_note(one, {"ensemble_size": "auto"}, 400_000) == (
        "ensemble_size=auto: 1 network (400000 training windows an epoch, over the 300000 an ensemble of 3 is "
        "trained for: it would take about 3× as long); pass -P ensemble_size=3 for one anyway")
    five = GlobalSettings(input_width=8, horizon=4, ensemble_size=5, losses=train.member_losses(5))
    assert five.losses == ("mase", "smape", "mape", "mase", "smape")
    assert train.ensemble_note(five, {"ensemble_size": 5}, 10) == (
        "ensemble_size=5: 5 network(s), losses mase, smape, mape, mase, smape (given)")


@pytest.mark.slow
def test_an_interrupted_collection_run_resumes_from_its_checkpoint_to_the_same_numbers(tmp_path):
    path = collection_csv(tmp_path / "sales.csv")

    def interrupt(epoch, logs):
        if epoch == 2:
            raise KeyboardInterrupt("stopped at epoch 2")

    client = MlflowClient
    with temporary_store(tmp_path):
        whole, whole_scores, _ = run_collection(path, register=False)
        with pytest.raises(KeyboardInterrupt):
            run_collection(path, register=False, epoch_hook=interrupt)
        (killed,) = [r for r in mlflow.search_runs(output_format="list", filter_string="tags.stage = 'main'")
                     if r.info.status == "KILLED"]
        resumed, resumed_scores, printed = run_collection(path, register=False, resume_from=killed.info.run_id)
        histories = [[m.value for m in sorted(client().get_metric_history(ids["train"], "val_loss"),
                                              key=lambda m: m.step)] for ids in (whole, resumed)]
        resumed_main = mlflow.get_run(resumed["main"])
        with pytest.raises(ParamError, match=r"^Received `resume_from`=.*, which ran with other parameters: resume it "
                                             r"with the same ones \(-P epochs=4\)"):
            run_collection(path, register=False, resume_from=killed.info.run_id, epochs=5)
    assert len(histories[0]) == 4 and histories[0] == histories[1]
    assert resumed_scores == whole_scores
    assert resumed_main.data.tags["resumed_from"] == killed.info.run_id


@pytest.mark.slow
def test_a_collection_runs_stage_by_stage_through_the_entry_points_a_series_runs(collection_run, tmp_path):
    """The stages main nests are the entry points `mlflow run . -e <stage>` runs: one
    at a time, on the same file with the same values, they give main's very forecasts."""
    from pipeline.stages import command_line, evaluate, forecast, generate_data, train

    main_run, _, _, files, _, _, _ = collection_run
    given = {"data_source": main_run.data.params["data_source"], "id_column": "item", "time_column": "quarter",
             "column": "sales", "horizon": HORIZON, "season": 4, "time_steps": 12 + HORIZON}
    trained = {"hidden_units": 8, "learning_rate": 0.01, "epochs": 4, "seed": 0, "season": 4}

    def argv(values):
        return [text for name, value in values.items() for text in (f"--{name}", str(value))]

    def entry_point(stage, run, values):  # as `mlflow run . -e <stage>` runs it; returns what run returned
        returned = []
        command_line(stage, lambda **parsed: returned.append(run(**parsed)), argv(values))
        return returned[0]

    with temporary_store(tmp_path):
        data_run = entry_point("generate_data", generate_data.run, given)
        data_uri = f"runs:/{data_run}/data"
        train_run = entry_point("train", train.run, {"data_uri": data_uri, **trained})
        model_uri = f"runs:/{train_run}/keras_model/model.keras"
        entry_point("evaluate", evaluate.run, {"model_uri": model_uri, "data_uri": data_uri, "season": 4})
        forecast_run = entry_point("forecast", forecast.run, {"model_uri": model_uri, "data_uri": data_uri})[0]
        future = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{forecast_run}/forecasts.csv",
                                                                 dst_path=str(tmp_path / "mine")))
        tags = {stage: mlflow.get_run(run_id).data.tags for stage, run_id in
                (("generate_data", data_run), ("train", train_run), ("forecast", forecast_run))}
    assert all(t["data"] == "collection" for t in tags.values())
    assert tags["generate_data"]["data_sha256"] == main_run.data.tags["data_sha256"]
    pd.testing.assert_frame_equal(future, pd.read_csv(files["forecasts.csv"]))


def test_the_parameters_of_a_collection_are_refused_for_one_series(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("t,y\n" + "\n".join(f"{t},{np.sin(t / 3):.4f}" for t in range(200)) + "\n")
    with pytest.raises(ParamError, match=r"^Received n_windows=3 for .*one.csv, which is one series \(it has no "
                                         r"column 'unique_id'\): they apply to a collection; drop them\.$"):
        main.run(data_source=str(path), time_column="t", n_windows=3)
    with pytest.raises(ParamError, match=r"^Received `windows_per_series`=5 for one series"):
        main.run(data_source=str(path), time_column="t", windows_per_series=5)
    with pytest.raises(ParamError, match=r"^Received `deseasonalise`=tested for one series: it applies to a "
                                         r"collection"):
        main.run(data_source=str(path), time_column="t", deseasonalise="tested")
    with pytest.raises(ParamError, match=r"^Received `short_history`=mask for one series: it applies to a "
                                         r"collection"):
        main.run(data_source=str(path), time_column="t", short_history="mask")
