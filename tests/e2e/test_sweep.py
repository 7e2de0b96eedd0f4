"""Sweeps against a real `mlflow server` on 127.0.0.1 with its own SQLite store and artifact root."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

SMALL = ["--n_samples", "120", "--time_steps", "12", "--free_run_steps", "10"]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    log = open(folder / "server.log", "wb")  # a file, not a pipe: an unread pipe would block the server
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def run_module(url, module, *args):
    result = subprocess.run(
        [sys.executable, "-m", module, *args], env={**os.environ, "MLFLOW_TRACKING_URI": url},
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def first_sweep(tracking_server):
    printed = run_module(tracking_server, "pipeline.stages.sweep", "--hidden_units", "4,8",
                         "--learning_rate", "0.01,0.02", "--epochs", "2", *SMALL)
    client = MlflowClient(tracking_server)
    (sweep,) = client.search_runs(["0"], "tags.stage = 'sweep'")
    return client, sweep, printed


def trials_of(client, sweep):
    return client.search_runs(["0"], f"tags.stage = 'main' and tags.mlflow.parentRunId = '{sweep.info.run_id}'")


def test_sweep_nests_four_comparable_trials(first_sweep):
    client, sweep, printed = first_sweep
    trials = trials_of(client, sweep)
    assert sorted(t.info.run_name for t in trials) == ["h4-lr0.01", "h4-lr0.02", "h8-lr0.01", "h8-lr0.02"]
    assert all(t.info.status == "FINISHED" for t in trials)
    assert len({frozenset(t.data.params) for t in trials}) == 1
    assert len({frozenset(t.data.metrics) for t in trials}) == 1
    assert {t.data.params["hidden_units"] for t in trials} == {"4", "8"}
    assert {t.data.params["learning_rate"] for t in trials} == {"0.01", "0.02"}
    # The four trials share one data run: their data parameters agree.
    assert len({t.data.tags["generate_data_run_id"] for t in trials}) == 1
    assert sweep.data.tags["mlflow.note.content"].startswith("Sweep of 4 pipeline runs over hidden_units, learning_rate")
    assert sweep.data.params["hidden_units"] == "4,8"
    artifacts = {a.path for a in client.list_artifacts(sweep.info.run_id)}
    assert {"results.csv", "results.md", "plots"} <= artifacts
    assert {a.path for a in client.list_artifacts(sweep.info.run_id, "plots")} == {
        "plots/test_rmse_by_parameter.png", "plots/val_loss_curves.png"}
    assert "| h8-lr0.02 |" in printed
    # Named for what it swept, and its id printed with the command that lists its trials.
    assert sweep.info.run_name == "sweep-hidden_units-learning_rate"
    assert f"lstm-compare --parent_run_id {sweep.info.run_id}" in printed


def test_best_trial_is_the_lowest_validation_loss_and_it_is_champion(first_sweep):
    client, sweep, _ = first_sweep
    (ranked_first,) = client.search_runs(
        ["0"], f"tags.stage = 'main' and tags.mlflow.parentRunId = '{sweep.info.run_id}'",
        order_by=["metrics.best_val_loss ASC"], max_results=1)
    # Chosen by validation loss; its test RMSE reported beside it.
    assert sweep.data.tags["best_run_id"] == ranked_first.info.run_id
    assert sweep.data.metrics["best_val_loss"] == ranked_first.data.metrics["best_val_loss"]
    assert sweep.data.metrics["best_test_rmse"] == ranked_first.data.metrics["test_rmse"]
    train = client.get_run(ranked_first.data.tags["train_run_id"])
    assert ranked_first.data.metrics["best_val_loss"] == train.data.metrics["best_val_loss"]
    champion = client.get_model_version_by_alias("lstm-sine", "champion")
    assert champion.tags["run_id"] == ranked_first.info.run_id
    assert champion.source == ranked_first.data.tags["model_uri"]
    assert float(champion.tags["val_loss"]) == ranked_first.data.metrics["best_val_loss"]


def test_compare_answers_which_is_best_from_the_terminal(first_sweep, tracking_server):
    client, sweep, _ = first_sweep
    printed = run_module(tracking_server, "pipeline.stages.compare", "--parent_run_id", sweep.info.run_id)
    lines = printed.strip().splitlines()
    assert lines[0] == "sine: 4 runs (registered as lstm-sine)"
    assert lines[2].startswith(
        "| run | run_id | status | duration_s | hidden_units | learning_rate | best_val_loss | test_rmse | test_mase |")
    assert lines[2].endswith("| note |") and len(lines) == 4 + 4
    marked = {line.split("|")[2].strip(): line.split("|")[-2].strip() for line in lines[4:]}
    best = sweep.data.tags["best_run_id"]
    assert marked[best] == "best (val), champion"
    assert all(note == "" for run_id, note in marked.items() if run_id != best)
    # The sweep's own table marks its best trial the same way.
    results = client.download_artifacts(sweep.info.run_id, "results.md")
    with open(results) as logged:
        rows = logged.read().splitlines()[2:]
    assert {row.split("|")[2].strip(): row.split("|")[-2].strip() for row in rows}[best] == "best (val), champion"
    wide = run_module(tracking_server, "pipeline.stages.compare", "--parent_run_id", sweep.info.run_id,
                      "--table", "wide").strip().splitlines()
    assert wide[0].startswith("| run | run_id | status | duration_s | hidden_units | learning_rate | best_val_loss |")
    assert "persistence_test_rmse" in wide[0] and len(wide) == 2 + 4


def test_worse_sweep_leaves_the_champion_and_a_failed_trial_does_not_stop_it(first_sweep, tracking_server):
    client, _, _ = first_sweep
    before = client.get_model_version_by_alias("lstm-sine", "champion")
    # A learning rate of 1e30 makes the loss infinite: that trial fails in train.
    printed = run_module(tracking_server, "pipeline.stages.sweep", "--hidden_units", "2",
                         "--learning_rate", "0.0001,1e30", "--epochs", "1", *SMALL)
    sweeps = client.search_runs(["0"], "tags.stage = 'sweep'", order_by=["attributes.start_time DESC"])
    second = sweeps[0]
    statuses = {t.info.run_name: t.info.status for t in trials_of(client, second)}
    assert statuses == {"lr0.0001": "FINISHED", "lr1e+30": "FAILED"}
    assert second.data.metrics["n_failed"] == 1
    after = client.get_model_version_by_alias("lstm-sine", "champion")
    assert after.version == before.version
    assert "stays" in second.data.tags["champion"] and "stays" in printed
    first_champion_message = client.get_run(client.search_runs(
        ["0"], "tags.stage = 'sweep'", order_by=["attributes.start_time ASC"])[0].info.run_id).data.tags["champion"]
    assert first_champion_message.endswith("--env-manager local --port 5001")
    assert len(client.search_model_versions("name = 'lstm-sine'")) == 2
