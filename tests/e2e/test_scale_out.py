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
from tests.conftest import REPO, free_port
from tests.e2e.test_serving import post

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


def app_password(layout):
    """`lstm_app`'s password, from the server's password file (read as the server's user)."""
    return layout.pgpass.read_text().splitlines()[0].split(":", 4)[-1]


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
               "storage": f"server:{folder / 'server'}"}
    finally:
        lstm_server("stop", *data, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_start_prints_what_a_client_exports(shared_server):
    printed = shared_server["printed"]
    assert f"export MLFLOW_TRACKING_URI={shared_server['uri']}" in printed
    assert f"--storage {shared_server['storage']}" in printed
    assert "postgresql+psycopg://lstm_app@127.0.0.1:" in printed and "/optuna" in printed
    assert app_password(shared_server["layout"]) not in printed
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

    url = server.storage_url(shared_server["layout"].read_state(), "mlflow")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                         password=app_password(shared_server["layout"])) as connection:
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
    assert "Stopped MLflow and PostgreSQL in" in lstm_server("stop", *shared_server["data"]).stdout
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
    ports = ["--port", str(free_port()), "--db-port", str(free_port())]
    started = lstm_server("start", *data, *ports, "--auth", "--workers", "1", env=env)
    uri = next(line.split("=", 1)[1] for line in started.stdout.splitlines() if "MLFLOW_TRACKING_URI=" in line)
    try:
        yield {"uri": uri, "data": data, "ports": ports, "layout": server.Layout(folder / "server")}
    finally:
        lstm_server("stop", *data, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _request(uri, path, body=None, credentials=None):
    """The HTTP status of a request to the server (a POST of `body` as JSON, else a GET), signed in
    with `credentials` ("user:password"); None when nothing listens."""
    import base64

    request = urllib.request.Request(f"{uri}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"}, method="POST" if body else "GET")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return None  # nothing listens


def _search_experiments(uri, credentials=None):
    return _request(uri, "/api/2.0/mlflow/experiments/search?max_results=1", credentials=credentials)


def test_without_credentials_the_server_answers_401(signed_in_server):
    signed_in_server = signed_in_server["uri"]
    assert _search_experiments(signed_in_server) == 401
    assert _search_experiments(signed_in_server, "admin:wrong-password-here") == 401
    assert _search_experiments(signed_in_server, f"admin:{PASSWORD}") == 200


def test_with_credentials_a_run_lands(signed_in_server):
    signed_in_server = signed_in_server["uri"]
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
                             "postgresql+psycopg://lstm_app@127.0.0.1:1/optuna"],
                            cwd=tmp_path, env=client_env(f"sqlite:///{tmp_path / 'mlflow.db'}"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Received an invalid value for parameter `storage`: cannot open "
                           "'postgresql+psycopg://lstm_app@127.0.0.1:1/optuna' (OperationalError")
    assert not (tmp_path / "mlflow.db").exists(), "refused before anything is recorded"


def test_a_storage_url_with_a_password_is_refused_without_showing_it(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", "--n_trials", "1", "--storage",
                             "postgresql+psycopg://lstm:s3cret-value@127.0.0.1:1/optuna"],
                            cwd=tmp_path, env=client_env(f"sqlite:///{tmp_path / 'mlflow.db'}"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "s3cret-value" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Received an invalid value for parameter `storage`, expected 'auto', 'server:<lstm-server folder>' "
        "or an SQLAlchemy database URL without a password (sqlite:///..., postgresql+psycopg://user@host:port/db, "
        "the password in PGPASSFILE), got 'postgresql+psycopg://lstm:***@127.0.0.1:1/optuna'.")


# Security and faults -------------------------------------------------------------------------------------------

NOBODY = "nobody"


def as_nobody(command):
    """A shell command run by a local user who is not the server's: what they can see."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a command as another local user")
    return subprocess.run(["sh", "-c", command], user=NOBODY, group="nogroup", extra_groups=[],
                          capture_output=True, text=True, timeout=120, cwd="/")


def test_a_local_user_finds_no_secret_in_ps_proc_the_folder_or_mlflow(shared_server, study):
    layout = shared_server["layout"]
    secrets = [app_password(layout), layout.admin_password.read_text().strip()]
    seen = as_nobody("ps auxww; for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do "
                     "tr '\\0' ' ' < $f 2>/dev/null; echo; done")
    assert "lstm_app@127.0.0.1" in seen.stdout, "ps shows the server's command line, without a password"
    assert not [secret for secret in secrets if secret in seen.stdout]
    listed = as_nobody(f"ls {layout.root}; cat {layout.pgpass}; cat {layout.root}/artifacts/*/*/*/* ")
    assert listed.stdout == "" and "Permission denied" in listed.stderr
    # Nor in anything MLflow recorded: every run's parameters and tags, the study's included.
    client = MlflowClient(shared_server["uri"])
    for run in client.search_runs(["0"], max_results=1000):
        recorded = json.dumps({**run.data.params, **run.data.tags})
        assert not [secret for secret in secrets if secret in recorded], run.info.run_id
    storage = [run.data.params["storage"] for run in study["entry_runs"]]
    assert storage == [shared_server["storage"]]


def test_postgresql_holds_none_of_the_admins_environment(signed_in_server):
    """lstm-server was started with MLFLOW_TRACKING_PASSWORD set: the postmaster, whose
    environment its own user (`postgres`, when the server runs as root) can read, was
    given only what PostgreSQL needs."""
    layout = signed_in_server["layout"]
    pid = int((layout.postgres / "postmaster.pid").read_text().splitlines()[0])
    command = ["cat", f"/proc/{pid}/environ"]
    runs_as = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
    environ = subprocess.run(command, capture_output=True, timeout=60, **runs_as).stdout.decode().split("\0")
    names = {entry.split("=", 1)[0] for entry in environ if entry}
    assert "PATH" in names  # the file was read
    assert not [entry for entry in environ if PASSWORD in entry]
    assert names <= set(server.POSTGRES_ENVIRONMENT) | {"HOME", "USER", "PGDATA", "PG_GRANDPARENT_PID", "PGSYSCONFDIR",
                                                         "PGLOCALEDIR", "PWD"}, names


def test_the_app_role_owns_its_databases_and_has_no_superuser_right(shared_server):
    import psycopg

    layout = shared_server["layout"]
    url = server.storage_url(layout.read_state(), "optuna").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, password=app_password(layout), autocommit=True) as connection:
        rights = connection.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                    "WHERE rolname = current_user").fetchone()
        assert rights == (False, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT * FROM pg_authid")
        owners = dict(connection.execute("SELECT d.datname, r.rolname FROM pg_database d JOIN pg_roles r "
                                         "ON r.oid = d.datdba WHERE d.datname IN ('mlflow', 'optuna')").fetchall())
        assert owners == {"mlflow": "lstm_app", "optuna": "lstm_app"}


def test_postgresql_listens_on_loopback_only(shared_server):
    settings = (shared_server["layout"].postgres / "postmaster.pid").read_text().splitlines()
    assert settings[5] == "127.0.0.1"  # postmaster.pid's listen address line
    hba = (shared_server["layout"].postgres / "pg_hba.conf").read_text()
    assert "0.0.0.0/0" not in hba and "::/0" not in hba


def test_a_bad_data_folder_is_one_line_and_leaves_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for data, message in ((afile, "that is a file, not a folder"), (afile / "sub" / "server", "cannot make that folder")):
        result = lstm_server("start", "--data", str(data), "--port", str(free_port()), "--db-port", str(free_port()),
                             check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    refused = lstm_server("start", "--data", str(tmp_path / "new"), "--auth", check=False,
                          env={**os.environ, "MLFLOW_TRACKING_PASSWORD": ""})
    assert refused.returncode == 2 and not (tmp_path / "new").exists()


def test_two_starts_at_once_on_a_fresh_folder_one_starts_one_says_so():
    folder = server_folder()
    data = ["--data", str(folder / "server")]
    command = [sys.executable, "-m", "deploy.server", "start", *data, "--port", str(free_port()),
               "--db-port", str(free_port())]
    starts = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    try:
        results = sorted((process.wait(timeout=300), *process.communicate()) for process in starts)
        (ok, ok_out, _), (refused, _, refused_err) = results
        assert ok == 0 and "MLFLOW_TRACKING_URI=" in ok_out
        assert refused == 2 and refused_err.strip().splitlines() == [
            f"error: Received --data {folder / 'server'}: another `lstm-server start` is starting the server in that "
            "folder now; wait for it, then `lstm-server status`."]
        assert lstm_server("status", *data).stdout.startswith("Running.")
    finally:
        lstm_server("stop", *data, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_stopped_database_is_said_at_once_and_start_repairs_it(shared_server, study):
    layout = shared_server["layout"]
    stop_db = [server.postgres_binary("pg_ctl"), "-D", str(layout.postgres), "-m", "fast", "-w", "stop"]
    subprocess.run(stop_db, check=True, capture_output=True, **server._as_postgres_user())
    status = lstm_server("status", *shared_server["data"], check=False)
    assert status.returncode == 3 and status.stdout.startswith("Stopped (PostgreSQL down; MLflow up)")
    started = time.monotonic()
    compared = subprocess.run([sys.executable, "-m", "pipeline.stages.compare"], cwd=REPO,
                              env=client_env(shared_server["uri"]), capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 30
    assert compared.returncode == 1 and len(compared.stderr.strip().splitlines()) == 1, compared.stderr
    assert compared.stderr.startswith(f"error: The tracking server {shared_server['uri']} cannot answer (")
    lstm_server("start", *shared_server["data"], *shared_server["ports"], "--workers", "2")
    assert lstm_server("status", *shared_server["data"]).stdout.startswith("Running.")
    assert MlflowClient(shared_server["uri"]).search_runs(["0"], max_results=5)


def _admin_request(uri, path, body=None, credentials=f"admin:{PASSWORD}"):
    return _request(uri, path, body, credentials)


def test_a_second_user_is_refused_the_admins_experiment_by_default(signed_in_server):
    signed_in_server = signed_in_server["uri"]
    assert _admin_request(signed_in_server, "/api/2.0/mlflow/users/create",
                          {"username": "reader", "password": "a-readers-long-password"}) == 200
    reader = "reader:a-readers-long-password"
    assert _admin_request(signed_in_server, "/api/2.0/mlflow/experiments/get?experiment_id=0", credentials=reader) == 403
    # Granted READ on it, the same user reads it.
    assert _admin_request(signed_in_server, "/api/3.0/mlflow/users/permissions/grant",
                          {"username": "reader", "resource_type": "experiment", "resource_id": "0",
                           "permission": "READ"}) == 200
    assert _admin_request(signed_in_server, "/api/2.0/mlflow/experiments/get?experiment_id=0", credentials=reader) == 200


def test_lstm_predict_without_credentials_says_401_and_what_to_set(signed_in_server):
    signed_in_server = signed_in_server["uri"]
    env = client_env(signed_in_server)
    env.pop("MLFLOW_TRACKING_USERNAME", None)
    env.pop("MLFLOW_TRACKING_PASSWORD", None)
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.predict", "--model_uri", "models:/lstm-sine/1",
                             "--input", "[[1, 2, 3]]"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: The tracking server {signed_in_server} asks for a sign-in (HTTP 401): export "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, an account on that server.")


def test_a_restart_with_another_admin_password_is_refused(signed_in_server):
    data, ports = signed_in_server["data"], signed_in_server["ports"]
    lstm_server("stop", *data)
    wrong = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "another-long-password"}
    refused = lstm_server("start", *data, *ports, "--auth", env=wrong, check=False)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: Received MLFLOW_TRACKING_PASSWORD that is not the password of the admin 'admin' on this server (its "
        "admin was made on an earlier start, with another): export the one in use; to change it, see `lstm-server` "
        "in docs/scale-out.md. The server is stopped."]
    assert _search_experiments(signed_in_server["uri"], "admin:another-long-password") is None
    right = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    lstm_server("start", *data, *ports, "--auth", "--workers", "1", env=right)
    assert _search_experiments(signed_in_server["uri"], f"admin:{PASSWORD}") == 200
