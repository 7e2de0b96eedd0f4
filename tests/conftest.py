import contextlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# What a store and experiment leave in the environment (`mlflow.set_experiment` sets
# MLFLOW_EXPERIMENT_ID, which every later subprocess would inherit).
_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@contextlib.contextmanager
def temporary_store(folder):
    """A fresh SQLite tracking store with its own artifact root under `folder`,
    for stages run in this process. Yields the tracking URI; the experiment
    `tests` is active. Afterwards the environment is as it was."""
    import mlflow

    from pipeline import workarounds

    workarounds.wait_for_sqlite_locks()  # as every stage program does
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = {name: os.environ.get(name) for name in _STORE_VARIABLES}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("tests", artifact_location=str(folder / "mlruns"))
    mlflow.set_experiment(experiment_id=experiment_id)
    try:
        yield uri
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def tracking_store(tmp_path):
    with temporary_store(tmp_path) as uri:
        yield uri
