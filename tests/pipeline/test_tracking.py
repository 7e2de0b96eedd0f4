"""The MLflow shell against a real SQLite store, where runs meet."""

import sqlite3
import threading
import time

import mlflow
import pytest

from pipeline import tracking
from mlflow.tracking import MlflowClient


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


def test_a_store_error_is_explained_by_its_status_not_by_digits_of_a_port(tracking_store):
    from mlflow.exceptions import MlflowException

    from pipeline import errors

    down = tracking.explain_store_error(MlflowException(
        "API request to http://127.0.0.1:43403/api/2.0/mlflow/runs/search failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=43403): Max retries exceeded (too many 500 error responses)"))
    assert isinstance(down, errors.TrackingUnavailable) and "cannot answer" in str(down)
    refused = tracking.explain_store_error(MlflowException("API request to http://127.0.0.1:5401/x failed: 401 Unauthorized"))
    assert "asks for a sign-in (HTTP 401)" in str(refused)
    assert tracking.explain_store_error(MlflowException("RESOURCE_DOES_NOT_EXIST: run 40340 not found")) is None


def test_a_checkpoint_cut_short_by_a_signal_is_not_uploaded_beside_the_whole_one(tracking_store, tmp_path):
    """A signal that arrives while save_checkpoint writes leaves its partial files in the
    folder; the upload takes the last whole checkpoint only."""
    import numpy as np

    from pipeline import model as forecaster

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    np.savez(folder / forecaster.CHECKPOINT_ARRAYS, weight_0=np.zeros(3))
    (folder / forecaster.CHECKPOINT_STATE).write_text("{}")
    np.savez(folder / f"{forecaster.PARTIAL_PREFIX}{forecaster.CHECKPOINT_ARRAYS}", weight_0=np.ones(3))
    with mlflow.start_run() as run:
        tracking.log_checkpoint(folder)
    listed = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, tracking.CHECKPOINTS)}
    assert listed == {f"{tracking.CHECKPOINTS}/{forecaster.CHECKPOINT_ARRAYS}",
                      f"{tracking.CHECKPOINTS}/{forecaster.CHECKPOINT_STATE}"}
