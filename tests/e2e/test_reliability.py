"""Failures provoked for real: signals to running processes, four `mlflow run`
processes on one SQLite store, a store locked by another process."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import custom_layers  # noqa: F401  (registers LSTMCell for loading .keras files)
from pipeline import params
from pipeline.metrics import HEADLINE_METRICS
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

# Values no run may ever show: environment values are not parameters or tags.
SECRETS = {"AWS_SECRET_ACCESS_KEY": "never-log-me-7f3a9c", "LSTM_FORECASTER_TOKEN": "never-log-me-b81d2e"}


def store_at(folder):
    """A SQLite store in `folder`, its tables created (as any first run creates
    them; see docs/pipeline.md on starting runs side by side on a fresh store)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()
    return uri, client


def start(folder, uri, *command):
    """Starts a command in its own process group, in `folder`, logging to a file."""
    log = open(folder / f"log-{time.monotonic_ns()}.txt", "w+")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **SECRETS}
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True)
    process.log = log
    return process


def finish(process, timeout=900):
    process.wait(timeout=timeout)
    process.log.seek(0)
    return process.log.read()


def mlflow_run(folder, uri, *args):
    return start(folder, uri, sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *args)


def runs(client, stage):
    return client.search_runs(["0"], f"tags.stage = '{stage}'", order_by=["attributes.start_time ASC"])


def history(client, run_id, metric="train_loss"):
    return [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]


def wait_for_epochs(client, process, epochs, timeout=300):
    """Waits until the running train run has logged the losses of at least `epochs` epochs; returns the run.
    (Its checkpoint is uploaded every 30 s of training and when it is interrupted, not every epoch.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, finish(process)[-3000:]
        for run in client.search_runs(["0"], "tags.stage = 'train' and attributes.status = 'RUNNING'"):
            if len(client.get_metric_history(run.info.run_id, "train_loss")) >= epochs:
                return run
        time.sleep(0.2)
    raise AssertionError(f"no train run logged {epochs} epochs within {timeout} s")


def test_ctrl_c_marks_the_runs_killed_keeps_the_checkpoint_and_resume_from_finishes_the_epochs(tmp_path):
    uri, client = store_at(tmp_path)
    args = ["-P", "epochs=300", "-P", "patience=0", "-P", "n_samples=600"]
    process = mlflow_run(tmp_path, uri, *args)
    interrupted_train = wait_for_epochs(client, process, 3)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    output = finish(process)
    assert process.returncode != 0

    (killed_main,) = runs(client, "main")
    # `mlflow run` marks its run FAILED after the stage ends; pipeline.workarounds.keep_killed
    # puts KILLED back (see there), moments later.
    deadline = time.monotonic() + 30
    while killed_main.info.status != "KILLED" and time.monotonic() < deadline:
        time.sleep(0.5)
        killed_main = client.get_run(killed_main.info.run_id)
    killed_train = client.get_run(interrupted_train.info.run_id)
    for run in (killed_main, killed_train):
        assert run.info.status == "KILLED", output[-3000:]
        assert run.data.tags["error"].startswith("Interrupted: stopped by SIG")
    assert "model_uri" not in killed_train.data.tags
    assert {a.path for a in client.list_artifacts(killed_train.info.run_id, "checkpoints")} == {
        "checkpoints/best.keras", "checkpoints/checkpoint.npz", "checkpoints/state.json"}
    with open(client.download_artifacts(killed_train.info.run_id, "checkpoints/state.json")) as state:
        done = json.load(state)["epochs_done"]
    assert 3 <= done < 300
    # The best checkpoint is a model Keras loads in safe mode, and it forecasts.
    best = keras.saving.load_model(client.download_artifacts(killed_train.info.run_id, "checkpoints/best.keras"),
                                   safe_mode=True)
    assert np.isfinite(best.predict(np.zeros((1, 49, 1), "float32"), verbose=0)["forecast"]).all()
    killed_history = history(client, killed_train.info.run_id)

    resumed = mlflow_run(tmp_path, uri, *args, "-P", f"resume_from={killed_main.info.run_id}")
    output = finish(resumed)
    assert resumed.returncode == 0, output[-3000:]
    resumed_main = runs(client, "main")[-1]
    assert resumed_main.info.status == "FINISHED" and resumed_main.data.tags["resumed_from"] == killed_main.info.run_id
    resumed_train = client.get_run(resumed_main.data.tags["train_run_id"])
    assert resumed_train.data.tags["resumed_from"] == killed_train.info.run_id
    assert resumed_train.data.tags["resolved_data_uri"] == killed_train.data.tags["resolved_data_uri"]
    # The same final epoch count; the inherited epochs carried over exactly.
    resumed_history = history(client, resumed_train.info.run_id)
    assert len(resumed_history) == 300 and resumed_train.data.metrics["epochs_trained"] == 300
    assert resumed_history[:done] == killed_history[:done]
    assert resumed_main.data.metrics["test_rmse"] < resumed_main.data.metrics["persistence_test_rmse"] / 10


def test_sigterm_to_a_training_process_marks_its_run_killed_and_says_how_to_resume(tmp_path):
    uri, client = store_at(tmp_path)
    data = start(tmp_path, uri, sys.executable, "-m", "pipeline.stages.generate_data", "--n_samples", "600")
    output = finish(data, 300)
    assert data.returncode == 0, output[-3000:]
    process = start(tmp_path, uri, sys.executable, "-m", "pipeline.stages.train", "--epochs", "400",
                    "--patience", "0")
    running = wait_for_epochs(client, process, 2)
    process.send_signal(signal.SIGTERM)
    output = finish(process)
    assert process.returncode == 143
    assert (f"interrupted: train stopped by SIGTERM; its runs are marked KILLED. To continue from the last "
            f"checkpoint, run it again with the same parameters and resume_from={running.info.run_id}.") in output
    killed = client.get_run(running.info.run_id)
    assert killed.info.status == "KILLED" and killed.data.tags["error"] == "Interrupted: stopped by SIGTERM"
    assert "checkpoints/best.keras" in {a.path for a in client.list_artifacts(killed.info.run_id, "checkpoints")}


def test_four_mlflow_runs_at_once_on_one_store_all_land_whole_and_identical(tmp_path):
    uri, client = store_at(tmp_path)
    args = ["-P", "epochs=3", "-P", "n_samples=200", "-P", "reuse_data=false"]
    processes = [mlflow_run(tmp_path, uri, *args) for _ in range(4)]
    outputs = [finish(process) for process in processes]
    assert [p.returncode for p in processes] == [0] * 4, "\n".join(o[-2000:] for o in outputs)

    mains = runs(client, "main")
    assert len(mains) == 4 and all(run.info.status == "FINISHED" for run in mains)
    histories = []
    for main in mains:
        assert set(main.data.params) == set(params.STAGE_PARAMS["main"])
        assert set(HEADLINE_METRICS) - {"seasonal_naive_test_rmse"} <= set(main.data.metrics)
        children = {stage: client.get_run(main.data.tags[f"{stage}_run_id"])
                    for stage in ("generate_data", "train", "evaluate")}
        assert all(child.info.status == "FINISHED" for child in children.values())
        train_id, evaluate_id = children["train"].info.run_id, children["evaluate"].info.run_id
        assert {"keras_model", "saved_model", "checkpoints", "plots"} <= {a.path for a in client.list_artifacts(train_id)}
        assert children["train"].data.tags["model_uri"].startswith("models:/")
        assert {"comparison.csv", "comparison.md", "plots"} <= {a.path for a in client.list_artifacts(evaluate_id)}
        for metric in ("train_loss", "val_loss"):
            assert [m.step for m in sorted(client.get_metric_history(train_id, metric), key=lambda m: m.step)] == [1, 2, 3]
        histories.append((history(client, train_id), history(client, train_id, "val_loss"), main.data.metrics["test_rmse"]))
    # Same parameters and seed: the same numbers, to the last bit, in four processes.
    assert histories.count(histories[0]) == 4

    # Nothing from the environment is logged as a parameter or a tag.
    for run in client.search_runs(["0"]):
        logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert not any(secret in logged for secret in SECRETS.values())


def test_a_store_locked_by_another_process_for_longer_than_sqlites_default_loses_nothing(tmp_path):
    uri, client = store_at(tmp_path)
    blocker = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # no other process may read or write until COMMIT
    process = start(tmp_path, uri, sys.executable, "-m", "pipeline.stages.generate_data", "--n_samples", "100",
                    "--time_steps", "10")
    time.sleep(15)  # three times Python's default SQLite timeout of 5 s
    still_waiting = process.poll() is None
    blocker.execute("COMMIT")
    blocker.close()
    output = finish(process)
    assert still_waiting, output[-3000:]
    assert process.returncode == 0, output[-3000:]
    (run,) = runs(client, "generate_data")
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"n_train": 70.0, "n_val": 10.0, "n_test": 20.0}
    assert set(run.data.params) == set(params.STAGE_PARAMS["generate_data"])
