"""`lstm-server`: a shared MLflow tracking server on PostgreSQL, for a team.

    lstm-server start [--data DIR] [--host 127.0.0.1] [--port 5000] [--db-port 5433] [--auth]
    lstm-server status [--data DIR]
    lstm-server stop [--data DIR]

`start` runs a real PostgreSQL (Debian's `postgresql` package, or any whose
`initdb`/`pg_ctl` are on PATH) with its data in DIR/postgres, created on the
first start with the databases `mlflow` (runs, models), `optuna` (studies of
`lstm-tune`) and, with --auth, `mlflow_auth` (users). On it, `mlflow server`
with proxied artifacts (stored in DIR/artifacts, reached by clients through
`mlflow-artifacts:`). It prints the MLFLOW_TRACKING_URI to export and the Optuna
storage URL. `stop` stops both; `start` again finds every run and model as they
were.

PostgreSQL refuses to run as root: started by root, it runs as the `postgres`
user, who must be able to reach DIR. Its password for the role `lstm` is
generated on the first start and kept in DIR/db_password (mode 600).

With --auth, MLflow's basic-auth app asks every request for a user name and
password; the admin is MLFLOW_TRACKING_USERNAME (default 'admin') with the
password MLFLOW_TRACKING_PASSWORD, which the user must set: the very variables
a client exports to sign in. There is no TLS: put a reverse proxy in front.
"""

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.errors import ParamError

DEFAULT_DATA = "lstm-server"
DB_USER = "lstm"
DATABASES = ("mlflow", "optuna")
AUTH_DATABASE = "mlflow_auth"
STATE = "server.json"
# MLflow's basic-auth app ships this admin password; a server must never keep it.
MLFLOW_DEFAULT_ADMIN_PASSWORD = "password1234"
MIN_PASSWORD_LENGTH = 12
START_TIMEOUT_S = 180


class ServerError(Exception):
    """A server process failed to start or stop; the message says where its log is."""


def postgres_binary(name):
    """`initdb`, `pg_ctl`, … from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    raise ServerError(
        f"PostgreSQL's `{name}` is not installed: on Debian or Ubuntu, `sudo apt-get install postgresql`; "
        "elsewhere install PostgreSQL and put its bin folder on PATH."
    )


class Layout:
    """Where a server keeps everything, under one folder."""

    def __init__(self, data):
        self.root = Path(data).resolve()
        self.postgres = self.root / "postgres"
        self.artifacts = self.root / "artifacts"
        self.logs = self.root / "logs"
        self.state = self.root / STATE
        self.db_password = self.root / "db_password"
        self.auth_config = self.root / "basic_auth.ini"
        self.secret_key = self.root / "flask_secret_key"

    def read_state(self):
        return json.loads(self.state.read_text()) if self.state.is_file() else None


def _postgres_user():
    """PostgreSQL will not run as root: when we are root, its programs run as `postgres`
    (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError("PostgreSQL refuses to run as root and there is no `postgres` user to run it as: "
                          "run lstm-server as a normal user.") from None


def _as_postgres_user():
    """subprocess arguments that run a program as `postgres` when we are root: its user,
    its group and no supplementary group (root's would otherwise be kept)."""
    user = _postgres_user()
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}


def _run_postgres_tool(args, log, env=None, check=True):
    result = subprocess.run(args, env=env, capture_output=True, text=True, **_as_postgres_user())
    if check and result.returncode != 0:
        log.write_text(result.stdout + result.stderr)
        first = (result.stderr or result.stdout).strip().splitlines()
        raise ServerError(f"{Path(args[0]).name} failed: {first[-1] if first else 'no output'} (log: {log})")
    return result


def _port_is_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tracking_uri(state):
    host = "127.0.0.1" if state["host"] in ("0.0.0.0", "::") else state["host"]
    return f"http://{host}:{state['port']}"


def storage_url(layout, state, database="optuna"):
    """The SQLAlchemy URL of one of the server's PostgreSQL databases (psycopg 3)."""
    host = "127.0.0.1" if state["host"] in ("0.0.0.0", "::") else state["host"]
    password = layout.db_password.read_text().strip()
    return f"postgresql+psycopg://{DB_USER}:{password}@{host}:{state['db_port']}/{database}"


def _check_credentials():
    """The admin's name and password for --auth, from the client's own variables."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME", "admin")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if len(password) < MIN_PASSWORD_LENGTH or password == MLFLOW_DEFAULT_ADMIN_PASSWORD:
        raise ParamError(
            "Received --auth without a usable admin password: export MLFLOW_TRACKING_PASSWORD (at least "
            f"{MIN_PASSWORD_LENGTH} characters, not MLflow's default) and optionally MLFLOW_TRACKING_USERNAME "
            "(default 'admin') before `lstm-server start --auth`; clients sign in with the same two variables."
        )
    return username, password


def _init_postgres(layout):
    """initdb on first start: the role `lstm` with a generated password, TCP only."""
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(exist_ok=True)
    layout.db_password.write_text(secrets.token_urlsafe(24) + "\n")
    layout.db_password.chmod(0o600)
    layout.postgres.mkdir()
    user = _postgres_user()
    password_file = layout.root / ".initdb_password"
    password_file.write_text(layout.db_password.read_text())
    if user:
        for path in (layout.postgres, password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(password_file, 0o600)
        probe = subprocess.run(["test", "-w", str(layout.postgres)], **_as_postgres_user())
        if probe.returncode != 0:
            shutil.rmtree(layout.postgres)
            raise ParamError(
                f"Received --data {layout.root}: PostgreSQL refuses to run as root, so it runs as the `postgres` "
                "user, who cannot reach that folder; choose a folder every user can traverse (such as under "
                "/var/tmp) or run lstm-server as a normal user."
            )
    try:
        _run_postgres_tool(
            [postgres_binary("initdb"), "-D", str(layout.postgres), "-U", DB_USER, "--pwfile", str(password_file),
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C"],
            layout.logs / "initdb.log")
    except BaseException:
        shutil.rmtree(layout.postgres, ignore_errors=True)  # the next start begins afresh
        raise
    finally:
        password_file.unlink(missing_ok=True)


REMOTE_HBA = "host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n"


def _start_postgres(layout, host, db_port):
    if host not in ("127.0.0.1", "localhost", "::1"):
        # Other machines sign in with the generated password too (no TLS: see docs/scale-out.md).
        hba = layout.postgres / "pg_hba.conf"
        if REMOTE_HBA not in hba.read_text():
            with open(hba, "a") as rules:
                rules.write(REMOTE_HBA)
    log = layout.logs / "postgres.log"
    if not log.exists():
        log.touch()
    user = _postgres_user()
    if user:
        os.chown(log, user.pw_uid, user.pw_gid)
    listen = "*" if host in ("0.0.0.0", "::") else host
    _run_postgres_tool(
        [postgres_binary("pg_ctl"), "-D", str(layout.postgres), "-l", str(log), "-w", "-t", "60",
         "-o", f"-p {db_port} -c listen_addresses='{listen}' -c unix_socket_directories=''", "start"],
        layout.logs / "pg_ctl.log")


def _postgres_running(layout):
    """What `pg_ctl status` says (a postmaster.pid left by a crash does not fool it)."""
    if not (layout.postgres / "PG_VERSION").is_file():
        return False
    result = _run_postgres_tool([postgres_binary("pg_ctl"), "-D", str(layout.postgres), "status"],
                                layout.logs / "pg_ctl.log", check=False)
    return result.returncode == 0


def _stop_postgres(layout):
    if not _postgres_running(layout):
        return
    _run_postgres_tool([postgres_binary("pg_ctl"), "-D", str(layout.postgres), "-m", "fast", "-w", "stop"],
                       layout.logs / "pg_ctl.log")


def _create_databases(layout, state, auth):
    import psycopg

    admin = storage_url(layout, state, "postgres").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in DATABASES + ((AUTH_DATABASE,) if auth else ()):
            if name not in existing:
                connection.execute(f'CREATE DATABASE "{name}"')
    if "optuna" not in existing:
        # Optuna's tables, made once here: tuning workers that start at once then find them.
        import optuna

        optuna.storages.RDBStorage(storage_url(layout, state, "optuna"))


def _write_auth_config(layout, state):
    username, password = _check_credentials()
    layout.auth_config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {storage_url(layout, state, AUTH_DATABASE)}\n"
        f"admin_username = {username}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    layout.auth_config.chmod(0o600)


def _wait_for_health(url, process, log):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"mlflow server exited with status {process.returncode} (log: {log})")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise ServerError(f"mlflow server did not answer {url}/health within {START_TIMEOUT_S} s (log: {log})")


def start(data=DEFAULT_DATA, host="127.0.0.1", port=5000, db_port=5433, auth=False, allowed_hosts=None,
          workers=None):
    """Starts PostgreSQL and the MLflow server; returns the state (also in DIR/server.json)."""
    layout = Layout(data)
    running = status(data)
    if running and running["running"]:
        raise ParamError(f"Received --data {layout.root}: a server already runs from it "
                         f"({tracking_uri(running)}); stop it first with `lstm-server stop --data {data}`.")
    if auth:
        _check_credentials()  # before anything starts
    for option, value in (("--port", port), ("--db-port", db_port)):
        if not _port_is_free(host, value):
            raise ParamError(f"Received {option} {value}: the port is in use on {host}; pick a free one.")
    first_start = not (layout.postgres / "PG_VERSION").is_file()
    if first_start:
        _init_postgres(layout)
    layout.artifacts.mkdir(parents=True, exist_ok=True)
    state = {"host": host, "port": port, "db_port": db_port, "auth": auth}
    _start_postgres(layout, host, db_port)
    try:
        _create_databases(layout, state, auth)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        command = [sys.executable, "-m", "mlflow", "server",
                   "--backend-store-uri", storage_url(layout, state, "mlflow"),
                   "--serve-artifacts", "--artifacts-destination", str(layout.artifacts),
                   "--host", host, "--port", str(port)]
        if allowed_hosts:
            command += ["--allowed-hosts", allowed_hosts]
        if workers:
            command += ["--workers", str(workers)]
        if auth:
            _write_auth_config(layout, state)
            command += ["--app-name", "basic-auth"]
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(layout.auth_config)
            # The auth app's CSRF protection signs with this key: made once, kept across restarts.
            if not layout.secret_key.is_file():
                layout.secret_key.write_text(secrets.token_urlsafe(32) + "\n")
                layout.secret_key.chmod(0o600)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = layout.secret_key.read_text().strip()
        log = layout.logs / "mlflow.log"
        with open(log, "ab") as output:
            # Its own session: stopped as a group, and deaf to the terminal's Ctrl-C.
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, cwd=layout.root)
        state["mlflow_pid"] = process.pid
        layout.state.write_text(json.dumps(state, indent=2) + "\n")
        _wait_for_health(tracking_uri(state), process, log)
    except BaseException:
        _stop_mlflow(layout.read_state())
        _stop_postgres(layout)
        raise
    return state


def _is_our_mlflow(pid, state):
    """Whether process `pid` is still the `mlflow server` that `start` ran on state's port:
    a pid read from a file may since belong to another process."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [word.decode(errors="replace") for word in command]
    except OSError:  # no /proc (macOS): ask ps
        result = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
        words = result.stdout.split()
    return "mlflow" in words and "server" in words and str(state.get("port")) in words


def _stop_mlflow(state):
    pid = (state or {}).get("mlflow_pid")
    if not pid or not _alive(pid) or not _is_our_mlflow(pid, state):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def stop(data=DEFAULT_DATA):
    """Stops the MLflow server, then PostgreSQL. Returns whether anything ran."""
    layout = Layout(data)
    state = layout.read_state()
    running = status(data)
    was_running = bool(running and running["running"])
    _stop_mlflow(state)
    _stop_postgres(layout)
    if state:
        state.pop("mlflow_pid", None)
        layout.state.write_text(json.dumps(state, indent=2) + "\n")
    return was_running


def status(data=DEFAULT_DATA):
    """The saved state with `running` (both processes up), or None if never started."""
    layout = Layout(data)
    state = layout.read_state()
    if state is None:
        return None
    mlflow_up = bool(state.get("mlflow_pid")) and _alive(state["mlflow_pid"]) and _is_our_mlflow(state["mlflow_pid"], state)
    postgres_up = _postgres_running(layout)
    return {**state, "running": mlflow_up and postgres_up, "mlflow_up": mlflow_up, "postgres_up": postgres_up}


def _describe(layout, state):
    uri = tracking_uri(state)
    lines = [
        f"MLflow tracking server on PostgreSQL: {uri}  (data in {layout.root})",
        "",
        f"  export MLFLOW_TRACKING_URI={uri}",
    ]
    if state["auth"]:
        lines.append("  export MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...   (sign-in is on)")
    lines += [
        "",
        f"Optuna storage for lstm-tune (-P storage=...; password in {layout.db_password}):",
        f"  {storage_url(layout, state)}",
        "",
        f"Stop it with: lstm-server stop --data {layout.root}",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lstm-server", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        command = commands.add_parser(name)
        command.add_argument("--data", default=DEFAULT_DATA,
                             help=f"folder for the database and artifacts (default: ./{DEFAULT_DATA})")
        if name == "start":
            command.add_argument("--host", default="127.0.0.1",
                                 help="address to listen on (default 127.0.0.1; any other needs --auth)")
            command.add_argument("--port", type=int, default=5000, help="MLflow's port (default 5000)")
            command.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's port (default 5433)")
            command.add_argument("--auth", action="store_true",
                                 help="sign-in with MLflow's basic-auth app (admin: MLFLOW_TRACKING_USERNAME/"
                                      "MLFLOW_TRACKING_PASSWORD)")
            command.add_argument("--allowed-hosts", default=None,
                                 help="host names clients may use (MLflow's --allowed-hosts), for a non-local host")
            command.add_argument("--workers", type=int, default=None,
                                 help="MLflow server worker processes (default: MLflow's)")
    args = parser.parse_args(argv)
    layout = Layout(args.data)
    try:
        if args.command == "start":
            if args.host not in ("127.0.0.1", "localhost", "::1") and not args.auth:
                raise ParamError(f"Received --host {args.host} without --auth: a server reachable from other "
                                 "machines must ask for a password; add --auth (and --allowed-hosts).")
            state = start(args.data, args.host, args.port, args.db_port, args.auth, args.allowed_hosts, args.workers)
            print(_describe(layout, state))
        elif args.command == "stop":
            print(f"Stopped the server in {layout.root}." if stop(args.data)
                  else f"No server was running from {layout.root}.")
        else:
            state = status(args.data)
            if state is None:
                print(f"No server has been started from {layout.root}.")
                raise SystemExit(3)
            if not state["running"]:
                down = [name for name, up in (("mlflow", state["mlflow_up"]), ("postgres", state["postgres_up"]))
                        if not up]
                print(f"Stopped ({', '.join(down)} down): start it with lstm-server start --data {layout.root}")
                raise SystemExit(3)
            print("Running. " + _describe(layout, state))
    except (ParamError, ServerError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2 if isinstance(error, ParamError) else 1)


if __name__ == "__main__":
    main()
