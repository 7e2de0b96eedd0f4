"""Each workaround in pipeline/workarounds.py does its job, and the upstream
behaviour it answers still exists: the day one of the `test_*_still_*` tests
fails, upstream has fixed it, and the workaround (and that test) can go."""

import contextlib
import os
import subprocess
import sys
import threading
import warnings

import mlflow
import numpy as np
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from pipeline import workarounds
from tests.conftest import REPO

START_UP = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795858183.722463   25908 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795858183.722806   25908 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1795858186.337995   25908 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
"""


def test_only_the_known_start_up_lines_are_dropped():
    real = ("E0000 00:00:1795858186.337995   25908 op_kernel.cc:1857] OP_REQUIRES failed: out of memory\n"
            "Traceback (most recent call last):\n")
    assert workarounds.without_start_up_lines(START_UP + real) == real


def test_a_stage_process_loads_tensorflow_without_a_word():
    # What a stage does: pipeline.stages first, then Keras, then an operation on the CPU.
    code = ("import pipeline.stages, keras, tensorflow as tf, sys; tf.constant(1.0) + 1; "
            "print('still here', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert result.stderr == "still here\n"


def test_tensorflow_still_prints_start_up_lines():
    # Without the workaround, with the log level that should hide them.
    code = "import tensorflow as tf; tf.constant(1.0) + 1"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0
    assert workarounds.without_start_up_lines(result.stderr) != result.stderr, (
        "TensorFlow no longer prints its start-up lines: workaround 1 can go")


def test_mlflow_still_sets_a_20_s_busy_timeout(tmp_path):
    """MLflow's own statement, seen on a real SQLite store in a process without the workaround."""
    code = f"""
import sqlalchemy, mlflow
seen = []
sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: seen.append(statement))
mlflow.set_tracking_uri("sqlite:///{tmp_path / 'mlflow.db'}")
mlflow.MlflowClient().search_experiments()
print(sorted({{s.strip() for s in seen if "busy_timeout" in s}}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['PRAGMA busy_timeout = 20000;']", (
        "MLflow no longer sets a 20 s busy timeout per session: workaround 2 may go")


def test_our_busy_timeout_replaces_mlflows(tracking_store):
    seen = []

    def record(conn, cursor, statement, *rest):
        seen.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        MlflowClient().search_experiments()
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    # Our listener runs after the recorder saw MLflow's text; what SQLite gets is asked of SQLite itself.
    engine = sqlalchemy.create_engine(tracking_store)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == workarounds.SQLITE_BUSY_TIMEOUT_MS
    assert any("busy_timeout" in statement for statement in seen)


@pytest.fixture
def rival_inserts_first():
    """Just before this process inserts a dataset row, another run (on another thread
    and connection) logs the same dataset and commits: the race two `mlflow run`s
    started together on one store meet now and then, made certain."""
    race = {"rivals": []}

    def log_as_a_rival(dataset):
        with mlflow.start_run() as run:  # the active run is per thread
            workarounds.log_input(dataset, "training")
            race["rivals"].append(run.info.run_id)

    def before_execute(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO datasets") and not race.get("started"):
            race["started"] = True  # the rival's own insert goes through
            rival = threading.Thread(target=log_as_a_rival, args=(race["dataset"],))
            rival.start()
            rival.join()

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", before_execute)
    yield race
    sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", before_execute)


def _dataset():
    return mlflow.data.from_numpy(np.zeros((4, 3)), name="race", digest="0123456789abcdef")


def test_mlflow_still_fails_the_second_of_two_racing_inserts(tracking_store, rival_inserts_first):
    rival_inserts_first["dataset"] = _dataset()
    with mlflow.start_run(), pytest.raises(mlflow.exceptions.MlflowException, match="UNIQUE constraint failed"):
        workarounds.log_input(rival_inserts_first["dataset"], "training", attempts=1)  # MLflow's own, once
    assert len(rival_inserts_first["rivals"]) == 1, "the rival did not log between the lookup and the insert"


def test_the_retry_links_the_second_run_to_the_rivals_dataset(tracking_store, rival_inserts_first):
    rival_inserts_first["dataset"] = _dataset()
    with mlflow.start_run() as run:
        workarounds.log_input(rival_inserts_first["dataset"], "training")
    client = MlflowClient()
    logged = [client.get_run(run_id).inputs.dataset_inputs for run_id in (run.info.run_id, *rival_inserts_first["rivals"])]
    assert [len(inputs) for inputs in logged] == [1, 1]
    assert logged[0][0].dataset.digest == logged[1][0].dataset.digest == "0123456789abcdef"


def test_mlflow_run_still_overwrites_a_killed_run(tracking_store):
    from mlflow.entities import RunStatus
    from mlflow.projects import _maybe_set_run_terminated

    client = MlflowClient()
    run = client.create_run(mlflow.get_experiment_by_name("tests").experiment_id)
    client.set_terminated(run.info.run_id, "KILLED")  # what an interrupted stage does
    assert RunStatus.is_terminated(client.get_run(run.info.run_id).info.status) is False
    _maybe_set_run_terminated(client.get_run(run.info.run_id), "FAILED")  # what `mlflow run` does next
    assert client.get_run(run.info.run_id).info.status == "FAILED", (
        "mlflow run no longer overwrites KILLED: workaround 4 can go")
    assert workarounds.keep_killed(run.info.run_id, wait_seconds=5) is True
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_mlflow_still_has_no_public_current_experiment_id(tracking_store):
    public = [name for name in dir(mlflow) if not name.startswith("_") and "experiment_id" in name]
    assert public == [], f"MLflow now has {public}: workaround 5 can use it"
    assert workarounds.current_experiment_id() == mlflow.get_experiment_by_name("tests").experiment_id


def test_mlflow_still_warns_about_a_missing_input_example(tracking_store):
    from pipeline.logged_model import signature

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    def log(quiet):
        with mlflow.start_run(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with workarounds.no_input_example_warning() if quiet else contextlib.nullcontext():
                mlflow.pyfunc.log_model(name="model", python_model=Echo(), signature=signature(1),
                                        pip_requirements=["mlflow"])
        return [str(w.message) for w in caught if "input example" in str(w.message)]

    assert log(quiet=False), "MLflow no longer warns about a missing input example: workaround 6 can go"
    assert log(quiet=True) == []


def test_mlflow_still_maps_every_distribution_to_check_a_pin(monkeypatch):
    from importlib.metadata import version

    from mlflow.utils import requirements_utils

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    requirements_utils.warn_dependency_requirement_mismatches([f"numpy=={version('numpy')}"])
    mapped = requirements_utils._MODULES_TO_PACKAGES
    assert mapped is not None and len(mapped) > 50, "MLflow no longer maps every distribution: workaround 7 can go"


def test_pins_that_hold_skip_the_map_and_a_pin_that_does_not_still_warns(monkeypatch):
    from importlib.metadata import version

    import mlflow.pyfunc
    import mlflow.utils.environment
    from mlflow.utils import requirements_utils

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    for module in (mlflow.utils.environment, mlflow.pyfunc):
        monkeypatch.setattr(module, "warn_dependency_requirement_mismatches",
                            requirements_utils.warn_dependency_requirement_mismatches)
    warned = []
    monkeypatch.setattr(requirements_utils._logger, "warning", warned.append)
    workarounds.check_pins_first()
    workarounds.check_pins_first()  # installing twice wraps once
    check = mlflow.utils.environment.warn_dependency_requirement_mismatches
    assert check.upstream is requirements_utils.warn_dependency_requirement_mismatches
    assert mlflow.pyfunc.warn_dependency_requirement_mismatches.upstream is check.upstream
    check([f"mlflow=={mlflow.__version__}", f"tensorflow=={version('tensorflow')}", f"numpy=={version('numpy')}"])
    assert requirements_utils._MODULES_TO_PACKAGES is None, "a pin that holds built the map"
    assert warned == []
    check([f"numpy=={version('numpy')}", "numpy==0.0.1"])
    assert len(warned) == 1 and f"numpy (current: {version('numpy')}, required: numpy==0.0.1)" in warned[0]
