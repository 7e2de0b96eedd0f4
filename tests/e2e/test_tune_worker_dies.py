"""A tuning worker that dies: its trial is failed through Optuna's heartbeat, and
another worker finishes the study. Real `lstm-tune` processes on the one-machine
defaults (SQLite tracking store, optuna.db beside it)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e

# A grace period far longer than any trial, so a heartbeat ages only when the test says (a
# slow machine's survivor would otherwise find the dead trial stale before it starts waiting).
GRACE_PERIOD_S = 3600
STUDY = ["--study", "crash", "--n_trials", "2", "--n_samples", "200", "--free_run_steps", "10",
         "--epochs", "40", "--patience", "0"]


def test_a_dead_workers_trial_is_failed_and_the_study_still_completes(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "LSTM_TUNE_GRACE_PERIOD_S": str(GRACE_PERIOD_S)}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    doomed = subprocess.Popen([sys.executable, "-m", "pipeline.stages.tune", *STUDY], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:  # until its first trial has trained a few epochs
            assert doomed.poll() is None and time.monotonic() < deadline, "the worker ended early"
            try:
                study = optuna.load_study(study_name="crash", storage=storage)
                if study.trials and len(study.trials[0].intermediate_values) >= 3:
                    break
            except KeyError:  # the study is not created yet
                pass
            time.sleep(0.5)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    assert optuna.load_study(study_name="crash", storage=storage).trials[0].state.name == "RUNNING"
    # Time passes: the dead worker's last heartbeat is older than the grace period.
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
                   (f"-{GRACE_PERIOD_S + 5} seconds",))
    survivor = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", *STUDY], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
    assert survivor.returncode == 0, survivor.stdout[-2000:] + survivor.stderr[-2000:]
    study = optuna.load_study(study_name="crash", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert "Study crash: 2 of 2 trials — 1 complete, 0 running, 0 pruned, 1 failed." in survivor.stdout
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (parent,) = client.search_runs(["0"], "tags.stage = 'tune'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_run_id"] == study.trials[1].user_attrs["main_run_id"]


def test_a_survivor_that_finds_only_the_dead_workers_trial_left_finishes_the_study(tmp_path):
    """The dead worker's trial is among the last: the survivor ends its own trial within
    the grace period, waits it out (saying so), fails the trial, ends its MLflow runs
    FAILED, and finishes the study with a champion."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "LSTM_TUNE_GRACE_PERIOD_S": str(GRACE_PERIOD_S)}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study_args = [arg if arg != "crash" else "last" for arg in STUDY]
    doomed = subprocess.Popen([sys.executable, "-m", "pipeline.stages.tune", *study_args], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert doomed.poll() is None and time.monotonic() < deadline, "the worker ended early"
            try:
                trials = optuna.load_study(study_name="last", storage=storage).trials
                if trials and len(trials[0].intermediate_values) >= 3:
                    break
            except KeyError:
                pass
            time.sleep(0.5)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    survivor = subprocess.Popen([sys.executable, "-m", "pipeline.stages.tune", *study_args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in survivor.stdout:  # it runs trial 1, then finds trial 0 RUNNING, its heartbeat not yet stale
        lines.append(line)
        if "trial(s) still RUNNING: waiting up to" in line:
            # Time passes: the dead worker's heartbeat ages past the grace period.
            with sqlite3.connect(tmp_path / "optuna.db") as db:
                db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
                           (f"-{GRACE_PERIOD_S + 5} seconds",))
    survivor.wait(timeout=600)
    printed = "".join(lines)
    assert survivor.returncode == 0, printed[-3000:]
    assert "1 trial(s) still RUNNING: waiting up to" in printed
    study = optuna.load_study(study_name="last", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (parent,) = client.search_runs(["0"], "tags.stage = 'tune'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_run_id"] == study.trials[1].user_attrs["main_run_id"]
    assert client.get_model_version_by_alias("lstm-sine", "champion").tags["run_id"] == parent.data.tags["best_run_id"]
    dead = client.search_runs(["0"], "tags.optuna_trial = '0'")
    assert dead and all(run.info.status == "FAILED" for run in dead)
    nested = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{dead[0].info.run_id}'")
    assert all(run.info.status != "RUNNING" for run in nested)
    assert "worker died" in dead[0].data.tags["error"]
