"""Scale out for real: `lstm-server` (PostgreSQL + `mlflow server` with proxied
artifacts) on 127.0.0.1, pipeline runs and two `lstm-tune` workers against it,
the champion served from it, sign-in, and a restart that keeps everything.

Needs PostgreSQL's programs (Debian's `postgresql`, which .ci/run installs);
without them every test here is skipped with one line saying so.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from deploy import server
from tests.conftest import REPO
from tests.e2e.test_serving import free_port, post

pytestmark = pytest.mark.e2e

try:
    server.postgres_binary("initdb")
    server.postgres_binary("pg_ctl")
    NO_POSTGRES = None
except server.ServerError as missing:
    NO_POSTGRES = str(missing)

if NO_POSTGRES:
    pytestmark = [pytest.mark.e2e, pytest.mark.skip(reason=f"no PostgreSQL here: {NO_POSTGRES}")]

SMALL = ["--n_samples", "200", "--free_run_steps", "10"]
# Six short trials: a learning rate of 1e-9 never leaves the untrained model's
# val_loss (about 0.5, the sine's variance), so the threshold pruner stops those
# trials after epoch 1, certainly; 0.01 gets below 0.3 in the first epoch.
TUNE = ["--study", "shared", "--n_trials", "6", *SMALL, "--batch_size", "8", "--epochs", "4",
        "--learning_rate", "1e-9,0.01", "--hidden_units", "8:32", "--pruner", "threshold:0.3"]
PASSWORD = "a-long-test-password"


def lstm_server(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "deploy.server", *args], capture_output=True, text=True,
                            cwd=REPO, env=env or os.environ, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def server_folder():
    # PostgreSQL runs as `postgres` when the tests run as root: the folder must be
    # reachable by that user, which pytest's own (0700) temporary folders are not.
    folder = Path(tempfile.mkdtemp(prefix="lstm-server-"))
    folder.chmod(0o755)
    return folder


def client_env(uri, **extra):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **extra}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def shared_server():
    folder = server_folder()
    ports = ["--port", str(free_port()), "--db-port", str(free_port())]
    data = ["--data", str(folder / "server")]
    started = lstm_server("start", *data, *ports, "--workers", "2")
    uri = next(line.split("=", 1)[1] for line in started.stdout.splitlines() if "MLFLOW_TRACKING_URI=" in line)
    layout = server.Layout(folder / "server")
    try:
        yield {"uri": uri, "data": data, "ports": ports, "layout": layout, "printed": started.stdout,
               "storage": server.storage_url(layout, layout.read_state())}
    finally:
        lstm_server("stop", *data, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_start_prints_what_a_client_exports(shared_server):
    printed = shared_server["printed"]
    assert f"export MLFLOW_TRACKING_URI={shared_server['uri']}" in printed
    assert "postgresql+psycopg://lstm:" in printed and "/optuna" in printed
    status = lstm_server("status", *shared_server["data"])
    assert status.stdout.startswith("Running.")


@pytest.fixture(scope="module")
def pipeline_run(shared_server):
    result = subprocess.run(
        ["mlflow", "run", ".", "--env-manager", "local", "-P", "n_samples=200", "-P", "epochs=3",
         "-P", "free_run_steps=10"],
        cwd=REPO, env=client_env(shared_server["uri"]), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    client = MlflowClient(shared_server["uri"])
    main = client.search_runs(["0"], "tags.stage = 'main'", order_by=["attributes.start_time DESC"])[0]
    return main


def test_a_pipeline_run_lands_in_postgresql_with_its_artifacts_proxied(shared_server, pipeline_run):
    client = MlflowClient(shared_server["uri"])
    assert pipeline_run.info.status == "FINISHED" and "test_rmse" in pipeline_run.data.metrics
    train = client.get_run(pipeline_run.data.tags["train_run_id"])
    assert train.info.artifact_uri.startswith("mlflow-artifacts:")
    # Uploaded through the server into the folder `lstm-server` keeps them in.
    stored = shared_server["layout"].artifacts / "0" / train.info.run_id / "artifacts" / "keras_model" / "model.keras"
    assert stored.is_file() and stored.stat().st_size > 10_000
    # And the runs are in PostgreSQL: the server's own database, read directly.
    import psycopg

    url = server.storage_url(shared_server["layout"], shared_server["layout"].read_state(), "mlflow")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        (status,) = connection.execute("SELECT status FROM runs WHERE run_uuid = %s",
                                       (pipeline_run.info.run_id,)).fetchone()
    assert status == "FINISHED"


@pytest.fixture(scope="module")
def study(shared_server, pipeline_run):
    """Two lstm-tune workers started at once on one study in PostgreSQL."""
    env = client_env(shared_server["uri"])
    arguments = [*TUNE, "--storage", shared_server["storage"]]
    # One worker as a script, the other as MLflow's entry point (whose own run is nested under the study's).
    as_entry_point = ["mlflow", "run", ".", "--env-manager", "local", "-e", "tune"] + [
        part for name, value in zip(arguments[::2], arguments[1::2]) for part in ("-P", f"{name[2:]}={value}")]
    workers = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
               for command in ([sys.executable, "-m", "pipeline.stages.tune", *arguments], as_entry_point)]
    outputs = [worker.communicate(timeout=1200)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    client = MlflowClient(shared_server["uri"])
    parent = client.search_runs(["0"], "tags.stage = 'tune' and tags.study = 'shared'")
    assert len(parent) == 1, "one MLflow run per study, whichever worker made it"
    trials = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}' and tags.stage = 'main'")
    entry_runs = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}' "
                                           "and tags.stage = 'tune_worker'")
    return {"outputs": outputs, "parent": client.get_run(parent[0].info.run_id), "trials": trials,
            "entry_runs": entry_runs}


def test_two_workers_run_each_trial_once_under_one_parent(study):
    numbers = sorted(int(run.data.tags["optuna_trial"]) for run in study["trials"])
    assert numbers == list(range(6))
    started = [{line.split(" (")[0] for line in output.splitlines() if line.startswith("trial ") and "/6): " in line}
               for output in study["outputs"]]
    assert started[0] and started[1], "both workers ran trials"
    assert not started[0] & started[1] and len(started[0] | started[1]) == 6
    assert all(run.info.run_name.startswith(f"t{run.data.tags['optuna_trial']}-h") for run in study["trials"])
    (entry_run,) = study["entry_runs"]  # `mlflow run`'s own run for its worker
    assert entry_run.info.status == "FINISHED" and entry_run.data.params["study"] == "shared"


def test_a_pruned_trial_is_recorded_as_such(study, shared_server):
    pruned = [run for run in study["trials"] if "pruned_at_epoch" in run.data.tags]
    finished = [run for run in study["trials"] if run.info.status == "FINISHED"]
    assert pruned and finished
    for run in pruned:
        assert run.data.params["learning_rate"] == "1e-09"
        assert run.info.status == "KILLED" and run.data.tags["pruned_at_epoch"] == "1"
        assert "test_rmse" not in run.data.metrics, "a pruned trial skips evaluate"
        train = MlflowClient(shared_server["uri"]).search_runs(
            ["0"], f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.stage = 'train'")[0]
        assert train.data.tags["pruned_at_epoch"] == "1" and train.info.status == "KILLED"
    assert study["parent"].data.metrics["n_pruned"] == len(pruned)


def test_the_study_ends_with_the_best_by_validation_registered(study, shared_server):
    client = MlflowClient(shared_server["uri"])
    parent = study["parent"]
    assert parent.info.status == "FINISHED"
    finished = [run for run in study["trials"] if run.info.status == "FINISHED"]
    best_val = {run.info.run_id: client.get_run(run.data.tags["train_run_id"]).data.metrics["best_val_loss"]
                for run in finished}
    best = min(best_val, key=best_val.get)
    assert parent.data.tags["best_run_id"] == best
    assert parent.data.metrics["best_val_loss"] == pytest.approx(best_val[best])
    champion = client.get_model_version_by_alias("lstm-sine", "champion")
    assert champion.tags["run_id"] == best
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/param_importances.png",
            "plots/parallel_coordinate.png"} <= artifacts
    results = client.download_artifacts(parent.info.run_id, "results.md")
    assert Path(results).read_text().count("PRUNED") == parent.data.metrics["n_pruned"]


def test_report_says_where_the_study_stands(study, shared_server):
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", "report", "--study", "shared",
                             "--storage", shared_server["storage"]],
                            cwd=REPO, env=client_env(shared_server["uri"]), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    pruned = int(study["parent"].data.metrics["n_pruned"])
    assert f"Study shared: 6 of 6 trials — {6 - pruned} complete, 0 running, {pruned} pruned, 0 failed." \
        in result.stdout
    assert f"run {study['parent'].data.tags['best_run_id']}" in result.stdout


def test_the_champion_is_served_from_the_server(study, shared_server, tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/lstm-sine@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env=client_env(shared_server["uri"]), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        window = [[[float(v)] for v in range(49)]]
        status, answer = post(f"http://127.0.0.1:{port}/invocations", {"inputs": window})
        assert status == 200 and len(answer["predictions"]) == 1 and len(answer["predictions"][0]) == 1
        # lstm-predict, from the same registry, forecasts the same.
        predicted = subprocess.run(
            [sys.executable, "-m", "pipeline.stages.predict", "--model_uri", "models:/lstm-sine@champion",
             "--input", json.dumps([[row[0] for row in window[0]]])],
            cwd=REPO, env=client_env(shared_server["uri"]), capture_output=True, text=True, timeout=300)
        assert predicted.returncode == 0, predicted.stderr[-2000:]
        header, row = predicted.stdout.strip().splitlines()[-2:]
        assert header.split(",")[0] == "step_1"
        assert float(row.split(",")[0]) == pytest.approx(answer["predictions"][0][0], abs=1e-5)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def test_stop_then_start_finds_every_run_and_model(study, shared_server):
    client = MlflowClient(shared_server["uri"])
    before = sorted(run.info.run_id for run in client.search_runs(["0"], max_results=1000))
    versions = [v.version for v in client.search_model_versions("name = 'lstm-sine'")]
    assert "Stopped the server" in lstm_server("stop", *shared_server["data"]).stdout
    stopped = lstm_server("status", *shared_server["data"], check=False)
    assert stopped.returncode == 3 and stopped.stdout.startswith("Stopped")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{shared_server['uri']}/health", timeout=2)
    lstm_server("start", *shared_server["data"], *shared_server["ports"], "--workers", "2")
    client = MlflowClient(shared_server["uri"])
    assert sorted(run.info.run_id for run in client.search_runs(["0"], max_results=1000)) == before
    assert [v.version for v in client.search_model_versions("name = 'lstm-sine'")] == versions
    best = study["parent"].data.tags["best_run_id"]
    model = client.download_artifacts(client.get_run(best).data.tags["train_run_id"], "keras_model/model.keras")
    assert Path(model).stat().st_size > 10_000


def test_a_worker_with_another_search_is_refused_in_one_line(study, shared_server):
    different = [arg if arg != "8:32" else "8:64" for arg in TUNE]
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", *different, "--storage",
                             shared_server["storage"]], cwd=REPO, env=client_env(shared_server["uri"]),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Received another search for study `shared`: join it with the same one (--hidden_units 8:32), "
        "or name a new study.")


# Sign-in --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_in_server():
    folder = server_folder()
    data = ["--data", str(folder / "server")]
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    started = lstm_server("start", *data, "--port", str(free_port()), "--db-port", str(free_port()), "--auth",
                          "--workers", "1", env=env)
    uri = next(line.split("=", 1)[1] for line in started.stdout.splitlines() if "MLFLOW_TRACKING_URI=" in line)
    try:
        yield uri
    finally:
        lstm_server("stop", *data, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _search_experiments(uri, credentials=None):
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1")
    if credentials:
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_without_credentials_the_server_answers_401(signed_in_server):
    assert _search_experiments(signed_in_server) == 401
    assert _search_experiments(signed_in_server, "admin:wrong-password-here") == 401
    assert _search_experiments(signed_in_server, f"admin:{PASSWORD}") == 200


def test_with_credentials_a_run_lands(signed_in_server):
    env = client_env(signed_in_server, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=PASSWORD)
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.generate_data", "--n_samples", "100"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    client_env_without = client_env(signed_in_server)
    client_env_without.pop("MLFLOW_TRACKING_USERNAME", None)
    client_env_without.pop("MLFLOW_TRACKING_PASSWORD", None)
    refused = subprocess.run([sys.executable, "-m", "pipeline.stages.generate_data", "--n_samples", "100"],
                             cwd=REPO, env=client_env_without, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "401" in refused.stderr
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=PASSWORD)
    try:
        runs = MlflowClient(signed_in_server).search_runs(["0"], "tags.stage = 'generate_data'")
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


@pytest.mark.parametrize("password,args", [
    ("", ["--auth"]),
    ("password1234", ["--auth"]),
    (PASSWORD, ["--host", "0.0.0.0"]),
])
def test_a_server_without_a_real_password_is_refused_before_it_starts(tmp_path, password, args):
    env = {**os.environ, "MLFLOW_TRACKING_PASSWORD": password}
    result = lstm_server("start", "--data", str(tmp_path / "server"), "--port", str(free_port()), *args,
                         env=env, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert ("MLFLOW_TRACKING_PASSWORD" in result.stderr) if "--auth" in args else ("without --auth" in result.stderr)
    assert not (tmp_path / "server").exists()


def test_a_storage_that_cannot_be_opened_is_refused_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", "--n_trials", "1", "--storage",
                             "postgresql+psycopg://lstm:secret@127.0.0.1:1/optuna"],
                            cwd=tmp_path, env=client_env(f"sqlite:///{tmp_path / 'mlflow.db'}"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Received an invalid value for parameter `storage`: cannot open "
                           "'postgresql+psycopg://lstm:***@127.0.0.1:1/optuna' (OperationalError")
    assert "secret" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists(), "refused before anything is recorded"


def test_postgresql_runs_without_roots_supplementary_groups(shared_server):
    if os.geteuid() != 0:
        pytest.skip("only root drops privileges to run PostgreSQL")
    pid = int((shared_server["layout"].postgres / "postmaster.pid").read_text().split()[0])
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    postgres = server.pwd.getpwnam("postgres")
    assert status["Uid"].split()[0] == str(postgres.pw_uid) and status["Gid"].split()[0] == str(postgres.pw_gid)
    assert status["Groups"].split() == []


def test_stop_leaves_alone_a_process_that_took_the_servers_recorded_pid(tmp_path):
    """A pid read from server.json may belong to another process by now: stop must not kill it."""
    layout = server.Layout(tmp_path)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        layout.state.write_text(json.dumps({"host": "127.0.0.1", "port": 5999, "db_port": 5998, "auth": False,
                                            "mlflow_pid": stranger.pid}))
        assert server.status(tmp_path)["mlflow_up"] is False
        lstm_server("stop", "--data", str(tmp_path))
        assert stranger.poll() is None, "stop killed a process that is not the server"
    finally:
        stranger.kill()
        stranger.wait()
