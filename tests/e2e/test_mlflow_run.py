"""`mlflow run` as a user runs it: real processes, a real SQLite store in a temporary folder."""

import json
import os
import subprocess
import sys
import time

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

import custom_layers  # noqa: F401  (registers LSTMCell for loading .keras files)
from tests.conftest import REPO
from tests.stages.test_stages import seasonal_csv

pytestmark = pytest.mark.e2e


def mlflow_run(store, *args):
    """Runs `mlflow run <repo> --env-manager local ...` from inside `store`."""
    # A module's temporary store may have set an experiment of its own: not this store's.
    env = {name: value for name, value in os.environ.items()
           if name not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    return subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *args],
        cwd=store, env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default pipeline, exactly as the README's quick start runs it."""
    store = tmp_path_factory.mktemp("store")
    result = mlflow_run(store)
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    runs = {r.data.tags["stage"]: r for r in MlflowClient().search_runs(["0"])}
    yield store, uri, result, runs
    mlflow.set_tracking_uri(None)


def test_default_run_nests_three_stages_under_main(default_run):
    _, _, result, runs = default_run
    assert set(runs) == {"main", "generate_data", "train", "evaluate"}
    main = runs["main"]
    assert all(r.info.status == "FINISHED" for r in runs.values())
    for stage in ("generate_data", "train", "evaluate"):
        assert runs[stage].data.tags["mlflow.parentRunId"] == main.info.run_id
        assert main.data.tags[f"{stage}_run_id"] == runs[stage].info.run_id
    assert main.data.params == {
        "data_source": "sine", "column": "auto", "time_column": "none", "fill_missing": "error",
        "time_format": "auto", "separator": "auto", "decimal": ".", "thousands": "none",
        "n_samples": "1000", "time_steps": "auto", "horizon": "1", "noise": "0.0", "val_fraction": "0.1",
        "test_fraction": "0.2", "seed": "42", "hidden_units": "50", "learning_rate": "0.001",
        "epochs": "auto", "batch_size": "32", "scaling": "auto", "patience": "auto", "season": "0",
        "target": "auto", "ensemble_size": "auto", "interval_level": "0.9", "init": "auto",
        "fine_tune_epochs": "auto", "free_run_steps": "300", "id_column": "unique_id", "windows_per_series": "auto",
        "deseasonalise": "auto", "short_history": "auto", "min_length": "0",
        "auto_arima": "false", "engine": "local", "n_windows": "auto", "step_size": "auto", "refit": "true", "reuse_data": "true",
        "resume_from": "none",
    }
    # 'auto' is the seed's model for the sine: 50-point windows, 50 epochs, patience 10, one network on the level.
    assert "Model: epochs=50, patience=10, scaling=none, target=level, ensemble_size=1" in result.stdout
    assert runs["evaluate"].data.params["season"] == "0"
    manifest = json.loads(mlflow.artifacts.load_text(f"runs:/{runs['generate_data'].info.run_id}/data/manifest.json"))
    assert manifest["time_steps"] == 50
    assert "Prediction intervals (90 %): " in result.stdout
    assert main.info.run_id in result.stdout and "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert f"mlflow models serve -m {main.data.tags['model_uri']} --env-manager local" in result.stdout
    # Every finished run is a candidate for its series' champion; the first one becomes it.
    assert "lstm-sine@champion is now version 1 (val_loss " in result.stdout


def test_default_run_says_what_it_does_and_none_of_tensorflows_start_up_lines(default_run):
    # Among them "E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)" on every machine without a GPU.
    _, _, result, _ = default_run
    printed = result.stdout + result.stderr
    for line in ("cuInit", "absl::InitializeLog", "cudart_stub", "oneDNN custom operations", "I0000 ", "E0000 "):
        assert line not in printed, line
    # What it prints instead: each stage as it starts and ends, and a plain line per epoch (not a terminal).
    lines = result.stdout.splitlines()
    assert "train: started (run " in result.stdout and "evaluate: done in " in result.stdout
    assert any(line.startswith("epoch  1/50  train ") for line in lines)
    assert "\r" not in result.stdout


def test_default_run_is_accurate_and_far_better_than_persistence(default_run):
    main = default_run[3]["main"]
    metrics = main.data.metrics
    assert metrics["test_rmse"] <= 0.01
    assert metrics["test_rmse"] < metrics["persistence_test_rmse"] / 10
    assert f"{metrics['test_rmse']:.4g}" in default_run[2].stdout


def test_default_run_logs_losses_per_epoch_and_every_plot(default_run):
    runs = default_run[3]
    client = MlflowClient()
    train_id = runs["train"].info.run_id
    epochs = int(runs["train"].data.metrics["epochs_trained"])
    assert 10 < epochs <= 50
    for metric in ("train_loss", "val_loss"):
        assert sorted(m.step for m in client.get_metric_history(train_id, metric)) == list(range(1, epochs + 1))
    losses = [m.value for m in sorted(client.get_metric_history(train_id, "train_loss"), key=lambda m: m.step)]
    assert losses[-1] < losses[0] / 10
    plots = {a.path for r in runs.values() for a in client.list_artifacts(r.info.run_id, "plots")}
    assert plots == {"plots/loss_curve.png", "plots/predictions.png", "plots/residuals.png",
                     "plots/free_run.png", "plots/gate_activations.png"}
    data_files = {a.path for a in client.list_artifacts(runs["generate_data"].info.run_id, "data")}
    assert {"data/manifest.json", "data/x_train.npy", "data/y_test.npy"} <= data_files


def test_saved_model_and_mlflow_model_predict_what_keras_predicts(default_run, tmp_path):
    store, uri, _, runs = default_run
    train_id = runs["train"].info.run_id
    model = keras.saving.load_model(
        mlflow.artifacts.download_artifacts(f"runs:/{train_id}/keras_model/model.keras", dst_path=str(tmp_path)),
        safe_mode=True,
    )
    x = np.sin(np.linspace(0, 20, 3 * 70)).reshape(3, 70, 1).astype("float32")  # a window length never trained on
    expected = model.predict(x, verbose=0)["forecast"]

    saved_model = tf.saved_model.load(
        mlflow.artifacts.download_artifacts(f"runs:/{train_id}/saved_model/1", dst_path=str(tmp_path))
    )
    served = saved_model.signatures["serving_default"](window=tf.constant(x))["forecast"]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)

    # The MLflow model, loaded in a fresh interpreter that never imports this project.
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, json, mlflow, numpy as np\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "print(json.dumps(model.predict(np.load(sys.argv[2])).tolist()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, f"runs:/{train_id}/model", str(tmp_path / "x.npy")],
        cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, check=True,
    )
    predicted = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(predicted, expected, atol=1e-5)


def test_each_stage_runs_as_its_own_entry_point(tmp_path):
    steps = [
        # noise=0 as a user types it: MLflow logs "0", the stage reads it as 0.0.
        ("generate_data", "-P", "n_samples=100", "-P", "time_steps=10", "-P", "noise=0"),
        ("train", "-P", "epochs=2", "-P", "hidden_units=4"),
        ("evaluate", "-P", "free_run_steps=10"),
    ]
    for entry_point, *args in steps:
        result = mlflow_run(tmp_path, "-e", entry_point, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        runs = {r.data.tags["stage"]: r for r in MlflowClient().search_runs(["0"])}
    finally:
        mlflow.set_tracking_uri(None)
    assert set(runs) == {"generate_data", "train", "evaluate"}
    assert all(r.info.status == "FINISHED" and "mlflow.parentRunId" not in r.data.tags for r in runs.values())
    assert runs["train"].data.params["data_uri"] == "auto"
    assert runs["train"].data.tags["resolved_data_uri"] == f"runs:/{runs['generate_data'].info.run_id}/data"
    assert runs["evaluate"].data.tags["resolved_model_uri"].startswith(f"runs:/{runs['train'].info.run_id}/")
    assert "test_rmse" in runs["evaluate"].data.metrics


def test_bad_parameter_fails_the_run_with_one_clear_line(tmp_path):
    result = mlflow_run(tmp_path, "-P", "learning_rate=0")
    assert result.returncode != 0
    assert (
        "error: Received an invalid value for parameter `learning_rate`, expected a float above 0, got '0'."
        in result.stderr.splitlines()
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # Refused before any work: out of the default view (deleted), once `mlflow run` has ended it.
    deadline = time.monotonic() + 30
    while client.search_runs(["0"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.search_runs(["0"]) == []
    (run,) = client.search_runs(["0"], run_view_type=ViewType.DELETED_ONLY)
    assert run.info.status == "FAILED" and run.data.metrics == {}
    # The UI shows why: the same line, as the run's tag `error`.
    assert run.data.tags["error"] == (
        "Received an invalid value for parameter `learning_rate`, expected a float above 0, got '0'."
    )
    assert client.list_artifacts(run.info.run_id) == []


def test_csv_series_runs_end_to_end_in_raw_units(tmp_path):
    csv = seasonal_csv(tmp_path / "load.csv", n=400)
    result = mlflow_run(
        tmp_path, "-P", f"data_source={csv}", "-P", "column=load", "-P", "time_steps=30",
        "-P", "time_column=timestamp", "-P", "horizon=2", "-P", "season=24", "-P", "epochs=15",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| seasonal naive (24) |" in result.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = {r.data.tags["stage"]: r for r in client.search_runs(["0"])}
    main = runs["main"].data
    for name in ("test_rmse", "test_mase", "test_smape", "persistence_test_rmse", "seasonal_naive_test_rmse",
                 "linear_test_rmse"):
        assert np.isfinite(main.metrics[name]), name
    evaluate_id = runs["evaluate"].info.run_id
    assert {a.path for a in client.list_artifacts(evaluate_id)} >= {"comparison.csv", "comparison.md", "plots"}
    assert "plots/forecast_fan.png" in {a.path for a in client.list_artifacts(evaluate_id, "plots")}
    # Four stages under main; the one served is the forecast stage's, trained on every point.
    children = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{runs['main'].info.run_id}'")
    assert sorted(r.data.tags["stage"] for r in children) == ["evaluate", "forecast", "generate_data", "train"]
    forecast_id = runs["forecast"].info.run_id
    assert main.tags["model_uri"] == runs["forecast"].data.tags["model_uri"] != runs["train"].data.tags["model_uri"]
    assert main.tags["served_model_trained_on"].startswith("trained on every point of the series")
    assert {"forecasts.csv", "plots"} <= {a.path for a in client.list_artifacts(forecast_id)}
    assert "Served model: trained on every point of the series" in result.stdout
    # The exported SavedModel reads raw loads (around 100) and answers in raw loads.
    mlflow.set_tracking_uri(uri)
    try:
        folder = mlflow.artifacts.download_artifacts(f"runs:/{runs['train'].info.run_id}/saved_model/1",
                                                     dst_path=str(tmp_path / "export"))
    finally:
        mlflow.set_tracking_uri(None)
    window = (100 + 20 * np.sin(2 * np.pi * np.arange(28) / 24)).astype("float32").reshape(1, 28, 1)
    forecast = tf.saved_model.load(folder).signatures["serving_default"](window=tf.constant(window))["forecast"]
    truth = 100 + 20 * np.sin(2 * np.pi * np.arange(28, 30) / 24)
    assert forecast.shape == (1, 2) and np.abs(forecast.numpy()[0] - truth).max() < 10


def test_after_the_quick_start_a_worse_sweep_leaves_the_better_model_champion(default_run):
    # Last in this module: it adds runs to the default run's store.
    store, uri, result, runs = default_run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    before = client.get_model_version_by_alias("lstm-sine", "champion")
    assert before.tags["run_id"] == runs["main"].info.run_id
    sweep = subprocess.run([sys.executable, "-m", "pipeline.stages.sweep", "--hidden_units", "4,8", "--epochs", "1",
                            "--free_run_steps", "10"], cwd=store, env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)},
                           capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    champion = client.get_model_version_by_alias("lstm-sine", "champion")
    assert champion.version == before.version, "the quick start's model, trained 50 epochs, is still the better one"
    assert "the champion, version 1" in sweep.stdout and "stays" in sweep.stdout
    assert len(client.search_model_versions("name = 'lstm-sine'")) == 2


def test_the_readme_shows_the_table_a_default_run_prints(default_run):
    _, _, result, _ = default_run
    readme = (REPO / "README.md").read_text()

    def table(text):
        return [line for line in text.splitlines() if line.startswith("| ") and "|" in line[2:]
                and line.split("|")[1].strip() in ("forecaster", "LSTM", "persistence", "ETS", "linear AR")]

    assert table(readme) and table(readme) == table(result.stdout)
    assert "Model: epochs=50, patience=10, scaling=none, target=level, ensemble_size=1" in readme
