"""The stages against a real temporary SQLite store, in this process."""

import contextlib
import io
import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipeline import params
from pipeline.stages import command_line, evaluate, generate_data, main, train
from tests.conftest import temporary_store

SMALL_DATA = dict(
    data_source="sine", column="auto", time_column="none", fill_missing="error", time_format="auto", separator="auto",
    decimal=".", thousands="none",
    n_samples=120, time_steps=12, horizon=1, noise=0.0, val_fraction=0.1, test_fraction=0.2, seed=0,
)
SMALL_TRAIN = dict(hidden_units=8, learning_rate=0.01, epochs=3, batch_size=16, scaling="auto", patience=0, seed=0)


def small_main(**overrides):
    values = {**SMALL_DATA, **SMALL_TRAIN, "season": 0, "free_run_steps": 20, "reuse_data": "true", **overrides}
    return main.run(**values)


def seasonal_csv(path, n=700, gaps=()):
    """An hourly load series: level 100, daily cycle of ±20, noise of std 2."""
    rng = np.random.default_rng(0)
    hours = np.arange(n)
    load = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 2, n)
    lines = ["timestamp,load,site"]
    for hour, value in zip(hours, load):
        stamp = np.datetime64("2025-03-01T00:00") + np.timedelta64(int(hour), "h")
        lines.append(f"{stamp},{'' if hour in gaps else f'{value:.3f}'},north")
    path.write_text("\n".join(lines) + "\n")
    return path


def runs_by_stage(experiment_runs):
    return {run.data.tags["stage"]: run for run in experiment_runs}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """One small main run shared by the tests that only read it: (run ids, scores, printed)."""
    with temporary_store(tmp_path_factory.mktemp("store")):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            run_ids, scores = small_main()
        yield run_ids, scores, printed.getvalue()


def test_main_nests_the_three_stages_and_logs_what_users_compare(pipeline_run):
    run_ids, scores, printed = pipeline_run
    client = MlflowClient()
    parent = client.get_run(run_ids["main"])
    assert parent.info.status == "FINISHED" and parent.data.tags["stage"] == "main"
    for stage in ("generate_data", "train", "evaluate"):
        child = client.get_run(run_ids[stage])
        assert child.info.status == "FINISHED"
        assert child.data.tags["stage"] == stage
        assert child.data.tags["mlflow.parentRunId"] == run_ids["main"]
        assert parent.data.tags[f"{stage}_run_id"] == run_ids[stage]
    # Headline metrics on the parent are the evaluate run's own numbers.
    evaluated = client.get_run(run_ids["evaluate"]).data.metrics
    for name in ("test_rmse", "test_mae", "test_mse", "persistence_test_rmse", "linear_test_rmse"):
        assert parent.data.metrics[name] == evaluated[name] == pytest.approx(scores[name])
    assert parent.data.params["hidden_units"] == "8" and parent.data.params["noise"] == "0.0"
    assert run_ids["train"] in printed and "persistence" in printed
    assert "mlflow ui --backend-store-uri sqlite:///" in printed


def test_a_run_says_what_it_is_doing_stage_by_stage_and_epoch_by_epoch(pipeline_run):
    run_ids, _, printed = pipeline_run
    lines = printed.splitlines()
    started = [line for line in lines if line.endswith(")") and ": started (run " in line]
    assert [line.split(":")[0] for line in started] == ["main", "generate_data", "train", "evaluate"]
    assert f"train: started (run {run_ids['train']})" in lines
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]  # small_main trains 3 epochs
    assert all(" train " in line and " val " in line and " best " in line for line in epochs)
    assert epochs[0].endswith(" s") and all(line.endswith(" s left") for line in epochs[1:])
    done = [line.split(":")[0] for line in lines if ": done in " in line]
    assert done == ["generate_data", "train", "evaluate", "main"]


def test_each_stage_logs_the_data_it_read_as_an_mlflow_dataset(pipeline_run):
    run_ids, _, _ = pipeline_run
    client = MlflowClient()
    data_sha256 = client.get_run(run_ids["generate_data"]).data.tags["data_sha256"]
    for stage, name, context in (("generate_data", "sine (train)", "generated"), ("train", "sine (train)", "training"),
                                 ("evaluate", "sine (test)", "evaluation")):
        (logged,) = client.get_run(run_ids[stage]).inputs.dataset_inputs
        assert (logged.dataset.name, logged.dataset.digest) == (name, data_sha256[:16])
        assert [(tag.key, tag.value) for tag in logged.tags] == [("mlflow.data.context", context)]
        source = json.loads(logged.dataset.source)["tags"]
        assert source["generator"] == "pipeline.data.make_sine_dataset"
        assert (source["n_samples"], source["time_steps"], source["seed"]) == ("120", "12", "0")


def test_train_logs_losses_per_epoch_models_and_plots(pipeline_run):
    run_ids, *_ = pipeline_run
    client = MlflowClient()
    run = client.get_run(run_ids["train"])
    assert run.data.params == {
        "data_uri": f"runs:/{run_ids['generate_data']}/data", "hidden_units": "8", "learning_rate": "0.01",
        "epochs": "3", "batch_size": "16", "scaling": "auto", "patience": "0", "seed": "0", "resume_from": "none",
        "target": "auto", "season": "0", "ensemble_size": "auto", "interval_level": "0.9", "init": "auto",
        "fine_tune_epochs": "auto", "windows_per_series": "auto", "deseasonalise": "auto", "short_history": "auto",
        "refit": "true",
    }
    assert "scaling_mean" not in run.data.metrics  # 'auto' keeps the seed's unscaled model for the sine
    # What 'auto' became for the sine: the seed's model.
    assert {name: run.data.tags[f"resolved_{name}"] for name in ("target", "scaling", "ensemble_size", "epochs")} == {
        "target": "level", "scaling": "none", "ensemble_size": "1", "epochs": "3"}
    assert run.data.metrics["interval_half_width_step1"] > 0
    for metric in ("train_loss", "val_loss"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert sorted(m.step for m in history) == [1, 2, 3]
        assert all(np.isfinite(m.value) and m.value > 0 for m in history)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"keras_model", "saved_model", "plots", "checkpoints"} <= artifacts
    # The last epoch's checkpoint; best.keras only after a failure or an interruption.
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} == {
        "checkpoints/checkpoint.npz", "checkpoints/state.json"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/loss_curve.png"]
    # TensorFlow Serving's layout: a base path with numbered versions.
    assert [a.path for a in client.list_artifacts(run.info.run_id, "saved_model")] == ["saved_model/1"]
    assert "saved_model/1/saved_model.pb" in {a.path for a in client.list_artifacts(run.info.run_id, "saved_model/1")}
    model_uri = run.data.tags["model_uri"]
    assert model_uri.startswith("models:/")
    assert client.get_run(run_ids["main"]).data.tags["model_uri"] == model_uri
    x = np.linspace(-1, 1, 2 * 11).reshape(2, 11, 1).astype("float32")
    served = mlflow.pyfunc.load_model(f"runs:/{run_ids['train']}/model")
    predicted = served.predict(x)
    assert predicted.shape == (2, 1) and np.isfinite(predicted).all()
    # Asked for, the interval comes too: the forecast ∓ the calibrated half-width.
    with_intervals = served.predict(x, params={"intervals": True})
    np.testing.assert_array_equal(with_intervals["forecast"], predicted)
    half_width = run.data.metrics["interval_half_width_step1"]
    np.testing.assert_allclose(with_intervals["upper"] - predicted, half_width, rtol=1e-4)
    np.testing.assert_allclose(predicted - with_intervals["lower"], half_width, rtol=1e-4)


def test_evaluate_logs_metrics_against_baselines_and_the_four_plots(pipeline_run):
    run_ids, scores, _ = pipeline_run
    client = MlflowClient()
    run = client.get_run(run_ids["evaluate"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/predictions.png", "plots/residuals.png", "plots/free_run.png", "plots/gate_activations.png",
    }
    table = mlflow.artifacts.load_text(f"runs:/{run_ids['evaluate']}/comparison.csv").splitlines()
    assert table[0] == "forecaster,mse,rmse,mae,smape,mase"
    assert [line.split(",")[0] for line in table[1:]] == ["LSTM", "persistence", "ETS", "linear AR"]
    assert 0 <= scores["test_coverage"] <= 100 and scores["test_interval_width"] > 0
    assert scores["ets_test_rmse"] > 0
    assert float(table[1].split(",")[2]) == pytest.approx(scores["test_rmse"])
    assert scores["test_rmse"] == pytest.approx(np.sqrt(scores["test_mse"]))
    assert scores["linear_test_rmse"] < 1e-4  # exact on a pure sine
    assert scores["persistence_test_rmse"] > 0.1
    assert run.data.params["model_uri"] == f"runs:/{run_ids['train']}/keras_model/model.keras"
    assert run.data.tags["resolved_model_uri"] == run.data.params["model_uri"]


def test_main_reuses_data_only_for_exactly_the_same_parameters(pipeline_run):
    first, *_ = pipeline_run
    again, _ = small_main(epochs=1)
    assert again["generate_data"] == first["generate_data"]
    assert MlflowClient().get_run(again["main"]).data.tags["data_reused"] == "true"
    noisier, _ = small_main(noise=0.01, epochs=1)
    assert noisier["generate_data"] != first["generate_data"]
    fresh, _ = small_main(reuse_data="false", epochs=1)
    assert fresh["generate_data"] != first["generate_data"]


def test_same_parameters_and_seed_give_the_same_numbers(tracking_store):
    data_run = generate_data.run(**SMALL_DATA)
    data_uri = f"runs:/{data_run}/data"
    client = MlflowClient()
    histories, scores = [], []
    for _ in range(2):
        train_run = train.run(data_uri=data_uri, **SMALL_TRAIN)
        histories.append([m.value for m in sorted(client.get_metric_history(train_run, "train_loss"), key=lambda m: m.step)])
        scores.append(evaluate.run(f"runs:/{train_run}/keras_model/model.keras", data_uri, 0, 5)[1])
    assert histories[0] == histories[1]
    assert scores[0] == scores[1]


def test_standalone_stages_pick_the_newest_runs_for_auto(tracking_store):
    data_run = generate_data.run(**SMALL_DATA)
    train_run = train.run(data_uri="auto", **{**SMALL_TRAIN, "epochs": 1})
    client = MlflowClient()
    # Parameters say what was asked for; tags say what it resolved to.
    trained = client.get_run(train_run).data
    assert trained.params["data_uri"] == "auto"
    assert trained.tags["resolved_data_uri"] == f"runs:/{data_run}/data"
    evaluate_run, *_ = evaluate.run(model_uri="auto", data_uri="auto", season=0, free_run_steps=5)
    evaluated = client.get_run(evaluate_run).data
    assert evaluated.params == {"model_uri": "auto", "data_uri": "auto", "season": "0", "free_run_steps": "5",
                                "auto_arima": "false", "engine": "local"}
    assert evaluated.tags["resolved_model_uri"] == f"runs:/{train_run}/keras_model/model.keras"
    assert evaluated.tags["resolved_data_uri"] == f"runs:/{data_run}/data"


def test_bad_parameter_stops_before_any_run_with_one_line(tracking_store, capsys):
    with pytest.raises(SystemExit) as exit_:
        command_line("main", main.run, ["--hidden_units", "0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: Received an invalid value for parameter `hidden_units`, expected a positive integer, got '0'.\n"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_auto_with_nothing_to_find_fails_the_run_with_the_reason(tracking_store, capsys):
    with pytest.raises(SystemExit):
        command_line("train", train.run, ["--epochs", "1"])
    assert "no finished `generate_data` run" in capsys.readouterr().err
    (failed,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert failed.info.status == "FAILED"
    assert "no finished `generate_data` run" in failed.data.tags["error"]


@pytest.mark.slow
def test_csv_series_with_horizon_beats_persistence_in_raw_units(tracking_store, tmp_path, capsys):
    csv = seasonal_csv(tmp_path / "load.csv")
    run_ids, scores = small_main(
        data_source=str(csv), time_column="timestamp", time_steps=30, horizon=4, season=24,
        hidden_units=16, epochs=25, batch_size=32, learning_rate=0.005,
    )
    client = MlflowClient()
    generated = client.get_run(run_ids["generate_data"])
    assert generated.data.tags["source_sha256"] and generated.data.metrics["n_points"] == 700
    (logged,) = client.get_run(run_ids["train"]).inputs.dataset_inputs
    assert logged.dataset.name == "load:load (train)"
    assert json.loads(logged.dataset.source)["uri"] == str(csv.resolve())
    trained = client.get_run(run_ids["train"]).data
    # 'auto' for a CSV with a season that fits the 26 inputs: the change from one season before,
    # each window scaled by itself, an ensemble.
    assert (trained.tags["resolved_target"], trained.tags["resolved_scaling"], trained.tags["resolved_ensemble_size"]) == (
        "seasonal", params.CSV_SCALING, str(params.CSV_ENSEMBLE))
    assert scores["test_rmse"] < scores["persistence_test_rmse"] / 2
    assert scores["test_rmse"] < scores["seasonal_naive_test_rmse"] and scores["ets_test_rmse"] > 0
    assert 60 < scores["test_coverage"] <= 100
    assert scores["test_mase"] < 1
    assert [f"test_rmse_step{k}" in scores for k in (1, 2, 3, 4)] == [True] * 4
    assert "seasonal_naive_test_rmse" in scores and "test_smape" in scores
    evaluated = client.get_run(run_ids["evaluate"])
    plots = {a.path for a in client.list_artifacts(evaluated.info.run_id, "plots")}
    assert "plots/forecast_fan.png" in plots
    printed = capsys.readouterr().out
    assert "| seasonal naive (24) |" in printed and "| LSTM |" in printed and "| ETS |" in printed
    # The MLflow model takes raw loads and returns raw loads, four steps ahead.
    window = np.asarray(100 + 20 * np.sin(2 * np.pi * np.arange(26) / 24), dtype="float32").reshape(1, 26, 1)
    forecast = mlflow.pyfunc.load_model(f"runs:/{run_ids['train']}/model").predict(window)
    truth = 100 + 20 * np.sin(2 * np.pi * np.arange(26, 30) / 24)
    assert forecast.shape == (1, 4) and np.abs(forecast[0] - truth).max() < 10


def test_csv_gaps_fail_by_default_and_are_filled_on_request(tracking_store, tmp_path, capsys):
    csv = seasonal_csv(tmp_path / "gappy.csv", n=300, gaps={10, 11, 200})
    with pytest.raises(SystemExit):
        command_line("generate_data", generate_data.run, ["--data_source", str(csv), "--time_column", "timestamp"])
    assert capsys.readouterr().err == (
        f"error: Column 'load' of {csv} has 3 missing or non-numeric values, first at lines 12, 13, 202: "
        "clean the file or pass -P fill_missing=interpolate.\n"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    run_id = generate_data.run(**{**SMALL_DATA, "data_source": str(csv), "fill_missing": "interpolate"})
    assert MlflowClient().get_run(run_id).data.metrics["n_filled"] == 3


@pytest.mark.slow
def test_changed_csv_file_is_not_reused(tracking_store, tmp_path):
    csv = seasonal_csv(tmp_path / "load.csv", n=200)
    first, _ = small_main(data_source=str(csv), epochs=1)
    again, _ = small_main(data_source=str(csv), epochs=1)
    assert again["generate_data"] == first["generate_data"]
    seasonal_csv(csv, n=210)
    changed, _ = small_main(data_source=str(csv), epochs=1)
    assert changed["generate_data"] != first["generate_data"]
