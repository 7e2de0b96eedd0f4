"""The stages against a real temporary SQLite store, in this process."""

import contextlib
import io

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipeline.stages import command_line, evaluate, generate_data, main, train
from tests.conftest import temporary_store

SMALL_DATA = dict(n_samples=120, time_steps=12, noise=0.0, val_fraction=0.1, test_fraction=0.2, seed=0)
SMALL_TRAIN = dict(hidden_units=8, learning_rate=0.01, epochs=3, batch_size=16, patience=0, seed=0)


def small_main(**overrides):
    return main.run(**{**SMALL_DATA, **SMALL_TRAIN, "free_run_steps": 20, "reuse_data": "true", **overrides})


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


def test_train_logs_losses_per_epoch_models_and_plots(pipeline_run):
    run_ids, *_ = pipeline_run
    client = MlflowClient()
    run = client.get_run(run_ids["train"])
    assert run.data.params == {
        "data_uri": f"runs:/{run_ids['generate_data']}/data", "hidden_units": "8",
        "learning_rate": "0.01", "epochs": "3", "batch_size": "16", "patience": "0", "seed": "0",
    }
    for metric in ("train_loss", "val_loss"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert sorted(m.step for m in history) == [1, 2, 3]
        assert all(np.isfinite(m.value) and m.value > 0 for m in history)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"keras_model", "saved_model", "plots"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/loss_curve.png"]
    assert "saved_model/saved_model.pb" in {a.path for a in client.list_artifacts(run.info.run_id, "saved_model")}
    x = np.linspace(-1, 1, 2 * 11).reshape(2, 11, 1).astype("float32")
    predicted = mlflow.pyfunc.load_model(f"runs:/{run_ids['train']}/model").predict(x)
    assert predicted.shape == (2, 1) and np.isfinite(predicted).all()


def test_evaluate_logs_metrics_against_baselines_and_the_four_plots(pipeline_run):
    run_ids, scores, _ = pipeline_run
    client = MlflowClient()
    run = client.get_run(run_ids["evaluate"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/predictions.png", "plots/residuals.png", "plots/free_run.png", "plots/gate_activations.png",
    }
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
        scores.append(evaluate.run(f"runs:/{train_run}/keras_model/model.keras", data_uri, 5)[1])
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
    evaluate_run, _ = evaluate.run(model_uri="auto", data_uri="auto", free_run_steps=5)
    evaluated = client.get_run(evaluate_run).data
    assert evaluated.params == {"model_uri": "auto", "data_uri": "auto", "free_run_steps": "5"}
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
