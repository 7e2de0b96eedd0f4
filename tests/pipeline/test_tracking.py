"""The MLflow shell against a real SQLite store, where runs meet."""

import sqlite3
import threading
import time

import mlflow
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.stages import generate_data

DATA = dict(data_source="sine", column="auto", time_column="none", fill_missing="error", n_samples=100,
            time_steps=10, horizon=1, noise=0.0, val_fraction=0.1, test_fraction=0.2, seed=0)


@pytest.fixture
def rival_logs_between_lookup_and_insert():
    """Just before this process inserts a dataset row, another run (on another thread
    and connection) logs the same dataset and commits: the race two `mlflow run`s
    started together on one store meet now and then, made certain."""
    race = {"rivals": []}

    def log_as_a_rival(dataset, manifest):
        with mlflow.start_run() as run:  # the active run is per thread
            tracking.log_dataset_input(dataset, manifest, "train", context="training")
            race["rivals"].append(run.info.run_id)

    def before_execute(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO datasets") and not race.get("started"):
            race["started"] = True  # the rival's own insert goes through
            rival = threading.Thread(target=log_as_a_rival, args=race["data"])
            rival.start()
            rival.join()

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", before_execute)
    yield race
    sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", before_execute)


def test_two_runs_logging_the_same_dataset_at_once_both_get_it(tracking_store, rival_logs_between_lookup_and_insert):
    dataset, manifest, _ = generate_data.prepare(**DATA)
    race = rival_logs_between_lookup_and_insert
    race["data"] = (dataset, manifest)
    with mlflow.start_run() as run:
        tracking.log_dataset_input(dataset, manifest, "train", context="training")

    client = MlflowClient()
    assert len(race["rivals"]) == 1, "the rival did not log between the lookup and the insert"
    logged = [client.get_run(run_id).inputs.dataset_inputs for run_id in (run.info.run_id, *race["rivals"])]
    assert [len(inputs) for inputs in logged] == [1, 1]
    assert logged[0][0].dataset.name == logged[1][0].dataset.name == "sine (train)"
    assert logged[0][0].dataset.digest == logged[1][0].dataset.digest
    assert [tag.value for tag in logged[0][0].tags if tag.key == "mlflow.data.context"] == ["training"]


@pytest.mark.slow
def test_a_write_waits_out_another_connections_lock_past_mlflows_own_20_s(tracking_store, tmp_path):
    client = MlflowClient()
    run = client.create_run(mlflow.get_experiment_by_name("tests").experiment_id)  # the store is open
    blocker = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # no other connection may read or write until COMMIT
    release = threading.Timer(25, blocker.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        client.log_metric(run.info.run_id, "val_loss", 0.25, step=1)
    finally:
        release.join()
        blocker.close()
    assert time.monotonic() - started > 24, "the lock did not hold the write back"
    assert [(m.value, m.step) for m in client.get_metric_history(run.info.run_id, "val_loss")] == [(0.25, 1)]
