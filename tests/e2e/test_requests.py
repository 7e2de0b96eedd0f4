"""How many requests a run and a tuning trial make to a tracking server, counted
in the access log of a real `mlflow server` on 127.0.0.1 (benchmarks.store_requests).

Against a server every request is a round trip, and with sign-in a password
check: docs/performance.md states how many a default run and a
trial make (benchmarks/requests_made.py measured them).
These tests fail if a small run or trial makes more than that.
"""

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.store_requests import TrackingServer, kinds
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

# The figures docs/performance.md states (benchmarks/results/requests.json, "now"),
# measured on the default `mlflow run .` (data reused) and on trials of 20 epochs: the runs here
# are smaller and make no more.
REQUESTS_PER_RUN = 92
REQUESTS_PER_TRIAL = 54.5
SMALL = ["-P", "n_samples=300", "-P", "epochs=5", "-P", "patience=0", "-P", "free_run_steps=10"]


def client_env(uri):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    return env


def made_by(server, command):
    """The requests the command made (it must succeed)."""
    before = len(server.requests())
    result = subprocess.run(command, cwd=REPO, env=client_env(server.uri), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return server.requests()[before:]


def tune(study, n_trials, folder):
    return [sys.executable, "-m", "pipeline.stages.tune", "--study", study, "--n_trials", str(n_trials),
            "--storage", f"sqlite:///{folder / 'optuna.db'}",
            "--n_samples", "300", "--epochs", "3", "--free_run_steps", "10", "--learning_rate", "1e-3:1e-2:log",
            "--hidden_units", "8:16", "--pruner", "none", "--tune_seed", "0"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with TrackingServer(tmp_path_factory.mktemp("server")) as running:
        yield running


def test_a_run_with_its_data_reused_makes_no_more_requests_than_stated(server):
    mlflow_run = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *SMALL]
    made_by(server, mlflow_run)  # generates the data
    made = made_by(server, mlflow_run)
    # (MLflow registers a version by asking to create the model, which answers 400 once it exists.)
    refused = [r for r in made if r[2] >= 400 and not r[1].endswith("/registered-models/create")]
    assert not refused
    print(f"requests of the run: {len(made)}", kinds(made))
    assert len(made) <= REQUESTS_PER_RUN, kinds(made)
    # Nothing was given up for it: every epoch's losses, the checkpoint, the model.
    client = MlflowClient(server.uri)
    main = client.search_runs(["0"], "tags.stage = 'main'", order_by=["attributes.start_time DESC"])[0]
    train_id = main.data.tags["train_run_id"]
    assert [m.step for m in sorted(client.get_metric_history(train_id, "val_loss"), key=lambda m: m.step)] == [
        1, 2, 3, 4, 5]
    assert {a.path for a in client.list_artifacts(train_id, "checkpoints")} == {
        "checkpoints/checkpoint.npz", "checkpoints/state.json"}
    assert main.data.tags["model_uri"].startswith("models:/") and main.data.tags["data_reused"] == "true"


def test_a_tuning_trial_makes_no_more_requests_than_stated(server, tmp_path):
    made_by(server, tune("data", 1, tmp_path))  # the data, generated if the test above has not
    one = len(made_by(server, tune("one", 1, tmp_path)))
    three = len(made_by(server, tune("three", 3, tmp_path)))
    per_trial = (three - one) / 2  # what the study itself makes cancels out
    print(f"requests per trial: {per_trial} ({one} for one trial, {three} for three)")
    assert per_trial <= REQUESTS_PER_TRIAL, (one, three)
