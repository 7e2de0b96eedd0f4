"""`lstm-server`: a shared MLflow tracking server on PostgreSQL, for a team.

    lstm-server start [--data DIR] [--host 127.0.0.1] [--port 5000] [--db-port 5433] [--auth]
                      [--default-permission NO_PERMISSIONS] [--auth-cache-seconds 60] [--db-host ADDRESS]
    lstm-server status [--data DIR]
    lstm-server stop [--data DIR]

`start` runs a real PostgreSQL (Debian's `postgresql` package, or any whose
`initdb`/`pg_ctl` are on PATH) with its data in DIR/postgres, created on the
first start with the databases `mlflow` (runs, models), `optuna` (studies of
`lstm-tune`) and, with --auth, `mlflow_auth` (users). On it, `mlflow server`
with proxied artifacts (stored in DIR/artifacts, reached by clients through
`mlflow-artifacts:`). `stop` stops whatever part runs; `start` again finds
every run and model as they were, and repairs a half-running server.

What is protected, and how:
- Two database roles. `lstm`, the superuser that initdb makes, is used by
  lstm-server alone, to create databases and roles. MLflow and Optuna sign in as
  `lstm_app`, which owns their three databases and nothing else (no SUPERUSER,
  CREATEROLE or CREATEDB).
- No password on a command line, in a log line or in anything MLflow records:
  `lstm_app`'s is in DIR/secrets/pgpass (mode 600), libpq's password file, which
  the server and every worker read through PGPASSFILE; URLs carry no password
  (`postgresql+psycopg://lstm_app@127.0.0.1:5433/optuna`), and a worker names
  the storage `server:DIR`. The admin's MLflow password reaches MLflow's auth app
  through the environment (MLFLOW_AUTH_ADMIN_PASSWORD), never a file.
- DIR is readable by the user the server runs as only (700; started by root,
  710 with the group `postgres`, which must reach DIR/postgres); MLflow writes
  artifacts with umask 077.
- PostgreSQL listens on 127.0.0.1 only, unless --db-host names another address
  for remote workers: then it takes `lstm_app` there over TLS only
  (scram-sha-256, a self-signed certificate made with openssl).
- With --auth, new users get `--default-permission` on experiments they did not
  create: NO_PERMISSIONS unless told otherwise. A password is checked against its
  hash (deliberately slow) once per `--auth-cache-seconds` (60)
  per worker, not on every request: MLflow's own `auth_cache_ttl_seconds`, whose
  cache keys are HMACs under a per-process secret. A password changed or a user
  deleted through MLflow's API takes effect at once on the worker that handled
  it, and on the others within that time; 0 checks every request. There is no TLS in front of
  MLflow: put a reverse proxy there.
"""

import argparse
import contextlib
import fcntl
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
AUTH_CACHE_SECONDS = 60
ADMIN_ROLE = "lstm"  # initdb's superuser: lstm-server's own
APP_ROLE = "lstm_app"  # what MLflow and Optuna sign in as
DATABASES = ("mlflow", "optuna")
AUTH_DATABASE = "mlflow_auth"
STATE = "server.json"
# MLflow's basic-auth app used to ship this admin password; a server must never keep it.
MLFLOW_DEFAULT_ADMIN_PASSWORD = "password1234"
MIN_PASSWORD_LENGTH = 12
START_TIMEOUT_S = 180
PERMISSIONS = ("NO_PERMISSIONS", "READ", "USE", "EDIT", "MANAGE")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
        self.postgres_log = self.postgres / "server.log"  # written by PostgreSQL's own user
        self.artifacts = self.root / "artifacts"
        self.logs = self.root / "logs"
        self.secrets = self.root / "secrets"
        self.admin_password = self.secrets / "admin_password"
        self.pgpass = self.secrets / "pgpass"
        self.secret_key = self.secrets / "flask_secret_key"
        # What `lstm-tune --storage server:DIR` reads (pipeline.stages.tune.resolve_storage): the URL, no password.
        self.storage_url = self.secrets / "optuna_storage_url"
        self.auth_config = self.root / "basic_auth.ini"
        self.state = self.root / STATE
        self.lock = self.root / ".lock"
        self.old_db_password = self.root / "db_password"  # before the two roles: the superuser's

    def read_state(self):
        return json.loads(self.state.read_text()) if self.state.is_file() else None

    def write_state(self, state):
        _write_private(self.state, json.dumps(state, indent=2) + "\n")


def _write_private(path, text):
    """Writes a file only its owner may read (mode 600 from the start, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


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


# What PostgreSQL's programs (and openssl) are given of lstm-server's environment: the
# postmaster keeps it for its life, readable by its user in /proc/<pid>/environ, so the
# admin's MLFLOW_TRACKING_PASSWORD and every other variable stay out of it.
POSTGRES_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR")


def postgres_environment():
    """The environment PostgreSQL's tools run with: the variables of POSTGRES_ENVIRONMENT
    that are set, and HOME and USER of the user they run as."""
    env = {name: os.environ[name] for name in POSTGRES_ENVIRONMENT if name in os.environ}
    user = _postgres_user() or pwd.getpwuid(os.geteuid())
    return {**env, "HOME": user.pw_dir, "USER": user.pw_name}


def _run_postgres_tool(args, log, check=True):
    result = subprocess.run(args, env=postgres_environment(), capture_output=True, text=True,
                            **_as_postgres_user())
    if check and result.returncode != 0:
        log.parent.mkdir(mode=0o700, exist_ok=True)
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


def storage_url(state, database="optuna"):
    """The SQLAlchemy URL of one of the server's databases, as `lstm_app`, without a
    password: libpq finds it in the password file (`pgpass_environment`)."""
    return f"postgresql+psycopg://{APP_ROLE}@127.0.0.1:{state['db_port']}/{database}"


def pgpass_environment(layout):
    """The environment variable through which libpq (psycopg) reads `lstm_app`'s password."""
    return {"PGPASSFILE": str(layout.pgpass)}


def _check_credentials():
    """The admin's name and password for --auth, from the client's own variables."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME", "admin")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if len(password) < MIN_PASSWORD_LENGTH or password == MLFLOW_DEFAULT_ADMIN_PASSWORD:
        raise ParamError(
            "Received --auth without a usable admin password: export MLFLOW_TRACKING_PASSWORD (at least "
            f"{MIN_PASSWORD_LENGTH} characters, not MLflow's old default) and optionally MLFLOW_TRACKING_USERNAME "
            "(default 'admin') before `lstm-server start --auth`; clients sign in with the same two variables."
        )
    return username, password


def _check_data_folder(data):
    """DIR must be a folder, or a path where one can be made: a one-line ParamError otherwise."""
    path = Path(data)
    if path.exists() and not path.is_dir():
        raise ParamError(f"Received --data {data}: that is a file, not a folder; name a folder for the server's data.")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not path.exists() and (not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK)):
        raise ParamError(f"Received --data {data}: cannot make that folder ({parent} is not a folder this user may "
                         "write in); name another.")


def _secure_root(layout):
    """DIR for its owner only; started by root, also traversable by PostgreSQL's group."""
    user = _postgres_user()
    if user:
        os.chown(layout.root, 0, user.pw_gid)
        os.chmod(layout.root, 0o710)
    else:
        os.chmod(layout.root, 0o700)
    for folder in (layout.artifacts, layout.logs, layout.secrets):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)


def _init_postgres(layout):
    """initdb on first start: the superuser `lstm` with a generated password, TCP only."""
    _write_private(layout.admin_password, secrets.token_urlsafe(24) + "\n")
    layout.postgres.mkdir()
    user = _postgres_user()
    password_file = layout.root / ".initdb_password"
    _write_private(password_file, layout.admin_password.read_text())
    if user:
        for path in (layout.postgres, password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
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
            [postgres_binary("initdb"), "-D", str(layout.postgres), "-U", ADMIN_ROLE, "--pwfile", str(password_file),
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C"],
            layout.logs / "initdb.log")
    except BaseException:
        shutil.rmtree(layout.postgres, ignore_errors=True)  # the next start begins afresh
        raise
    finally:
        password_file.unlink(missing_ok=True)


def _configure_network(layout, db_host):
    """PostgreSQL on 127.0.0.1; with a `db_host`, also there for `lstm_app`, over TLS only."""
    hba = layout.postgres / "pg_hba.conf"
    lines = [line for line in hba.read_text().splitlines()
             if "0.0.0.0/0" not in line and "::/0" not in line and not line.startswith("hostssl")]
    if db_host:
        lines.append(f"hostssl all {APP_ROLE} 0.0.0.0/0 scram-sha-256")
        lines.append(f"hostssl all {APP_ROLE} ::/0 scram-sha-256")
        certificate, key = layout.postgres / "server.crt", layout.postgres / "server.key"
        if not certificate.is_file():
            if not shutil.which("openssl"):
                raise ParamError("Received --db-host, which needs TLS, but `openssl` is not installed to make "
                                 "PostgreSQL's certificate: install it, or leave out --db-host.")
            _run_postgres_tool(["openssl", "req", "-new", "-x509", "-days", "3650", "-nodes", "-subj",
                                f"/CN={db_host}", "-keyout", str(key), "-out", str(certificate)],
                               layout.logs / "openssl.log")
            _run_postgres_tool(["chmod", "600", str(key)], layout.logs / "openssl.log")
    hba.write_text("\n".join(lines) + "\n")  # root keeps the file PostgreSQL's


def _start_postgres(layout, db_host, db_port):
    _configure_network(layout, db_host)
    listen = "127.0.0.1" + (f",{db_host}" if db_host else "")
    options = f"-p {db_port} -c listen_addresses='{listen}' -c unix_socket_directories=''"
    if db_host:
        options += " -c ssl=on"
    _run_postgres_tool(
        [postgres_binary("pg_ctl"), "-D", str(layout.postgres), "-l", str(layout.postgres_log), "-w", "-t", "60",
         "-o", options, "start"],
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
        return False
    _run_postgres_tool([postgres_binary("pg_ctl"), "-D", str(layout.postgres), "-m", "fast", "-w", "stop"],
                       layout.logs / "pg_ctl.log")
    return True


def _admin_connection(layout, state, database="postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=state["db_port"], user=ADMIN_ROLE, dbname=database,
                           password=layout.admin_password.read_text().strip(), autocommit=True)


def _app_password(layout):
    """`lstm_app`'s password, made on the first start and kept in the password file."""
    if layout.pgpass.is_file():
        return layout.pgpass.read_text().splitlines()[0].split(":", 4)[-1]
    password = secrets.token_urlsafe(24)
    # host:port:database:user:password, for every port and database of this role on 127.0.0.1.
    _write_private(layout.pgpass, "".join(f"{host}:*:*:{APP_ROLE}:{password}\n" for host in ("127.0.0.1", "localhost")))
    return password


def _create_databases(layout, state, auth):
    """The app role and its databases; on a server made before the role existed,
    hands it the databases and everything in them."""
    from psycopg import sql

    password = _app_password(layout)
    with _admin_connection(layout, state) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        connection.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(APP_ROLE), sql.Literal(password)))
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in DATABASES + ((AUTH_DATABASE,) if auth else ()):
            if name not in existing:
                connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(APP_ROLE)))
            else:
                connection.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(name), sql.Identifier(APP_ROLE)))
    for name in DATABASES + ((AUTH_DATABASE,) if auth else ()):
        with _admin_connection(layout, state, name) as connection:
            # Tables a server made before the app role existed belong to the superuser.
            for kind, objects in (("TABLE", "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                            "AND tableowner <> %s"),
                                  ("SEQUENCE", "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' "
                                               "AND sequenceowner <> %s")):
                for (table,) in connection.execute(objects, (APP_ROLE,)).fetchall():
                    connection.execute(sql.SQL("ALTER {} public.{} OWNER TO {}").format(
                        sql.SQL(kind), sql.Identifier(table), sql.Identifier(APP_ROLE)))
    if "optuna" not in existing:
        # Optuna's tables, made once here: tuning workers that start at once then find them.
        import optuna

        with scoped_environment(pgpass_environment(layout)):
            optuna.storages.RDBStorage(storage_url(state, "optuna"))


@contextlib.contextmanager
def scoped_environment(values):
    """`values` set in os.environ while the block runs, then what was there before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _write_auth_config(layout, state, default_permission, auth_cache_seconds):
    """MLflow's auth app's settings, without a secret: the admin's password reaches it
    through the environment, the database's through the password file."""
    _write_private(layout.auth_config, (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {storage_url(state, AUTH_DATABASE)}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {auth_cache_seconds}\n"
    ))


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


def _admin_signs_in(url, username, password):
    """Whether the auth app takes these credentials for the admin (a restart with another
    MLFLOW_TRACKING_PASSWORD would otherwise start silently, the old one still valid)."""
    import base64

    request = urllib.request.Request(f"{url}/api/2.0/mlflow/users/get?username={username}")
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        return error.code not in (401, 403)


@contextlib.contextmanager
def _start_lock(layout):
    """One `start` at a time per folder; a second says the first is starting."""
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ParamError(f"Received --data {layout.root}: another `lstm-server start` is starting the server in that "
                         "folder now; wait for it, then `lstm-server status`.") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def start(data=DEFAULT_DATA, host="127.0.0.1", port=5000, db_port=5433, auth=False, allowed_hosts=None,
          workers=None, default_permission="NO_PERMISSIONS", db_host=None, auth_cache_seconds=AUTH_CACHE_SECONDS):
    """Starts PostgreSQL and the MLflow server, or the part of them that is down; returns
    the state (also in DIR/server.json)."""
    _check_data_folder(data)
    layout = Layout(data)
    credentials = _check_credentials() if auth else None  # before anything starts
    existed = layout.root.exists()
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _start_lock(layout):
        before = set(layout.root.iterdir())
        fresh = not (layout.postgres / "PG_VERSION").is_file()
        try:
            return _start_locked(layout, host, port, db_port, auth, allowed_hosts, workers, default_permission,
                                 db_host, credentials, auth_cache_seconds)
        except BaseException:
            if fresh:  # a refused or failed first start leaves nothing behind
                if not existed:
                    shutil.rmtree(layout.root, ignore_errors=True)
                else:
                    for made in set(layout.root.iterdir()) - before:
                        shutil.rmtree(made, ignore_errors=True) if made.is_dir() else made.unlink(missing_ok=True)
                    layout.lock.unlink(missing_ok=True)
            raise


def _start_locked(layout, host, port, db_port, auth, allowed_hosts, workers, default_permission, db_host,
                  credentials, auth_cache_seconds):
    running = status(layout.root)
    if running and running["running"]:
        raise ParamError(f"Received --data {layout.root}: a server already runs from it "
                         f"({tracking_uri(running)}); stop it first with `lstm-server stop --data {layout.root}`.")
    if running:  # half-running: stop what runs, start both afresh
        # Without its database, MLflow's requests under way cannot finish: no grace for them.
        stop(layout.root, grace=30 if running["postgres_up"] else 3)
    for option, value, address in (("--port", port, host), ("--db-port", db_port, "127.0.0.1")):
        if not _port_is_free(address, value):
            raise ParamError(f"Received {option} {value}: the port is in use on {address}; pick a free one.")
    _secure_root(layout)
    if layout.old_db_password.is_file() and not layout.admin_password.is_file():
        # A server made before the two roles: its one password is the superuser's.
        _write_private(layout.admin_password, layout.old_db_password.read_text())
        layout.old_db_password.unlink()
    if not (layout.postgres / "PG_VERSION").is_file():
        _init_postgres(layout)
    state = {"host": host, "port": port, "db_port": db_port, "auth": auth, "db_host": db_host,
             "default_permission": default_permission if auth else None,
             "auth_cache_seconds": auth_cache_seconds if auth else None}
    _start_postgres(layout, db_host, db_port)
    try:
        _create_databases(layout, state, auth)
        _write_private(layout.storage_url, storage_url(state) + "\n")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **pgpass_environment(layout)}
        command = [sys.executable, "-m", "mlflow", "server",
                   "--backend-store-uri", storage_url(state, "mlflow"),
                   "--serve-artifacts", "--artifacts-destination", str(layout.artifacts),
                   "--host", host, "--port", str(port)]
        if allowed_hosts:
            command += ["--allowed-hosts", allowed_hosts]
        if workers:
            command += ["--workers", str(workers)]
        if auth:
            _write_auth_config(layout, state, default_permission, auth_cache_seconds)
            command += ["--app-name", "basic-auth"]
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(layout.auth_config)
            env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"] = credentials
            # The auth app's CSRF protection signs with this key: made once, kept across restarts.
            if not layout.secret_key.is_file():
                _write_private(layout.secret_key, secrets.token_urlsafe(32) + "\n")
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = layout.secret_key.read_text().strip()
        log = layout.logs / "mlflow.log"
        with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as output:
            # Its own session: stopped as a group, and deaf to the terminal's Ctrl-C. umask 077:
            # the artifacts it writes are its own user's only.
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, cwd=layout.root, umask=0o077)
        state["mlflow_pid"] = process.pid
        layout.write_state(state)
        _wait_for_health(tracking_uri(state), process, log)
        if auth and not _admin_signs_in(tracking_uri(state), *credentials):
            raise ParamError(
                f"Received MLFLOW_TRACKING_PASSWORD that is not the password of the admin "
                f"{credentials[0]!r} on this server (its admin was made on an earlier start, with another): export "
                "the one in use; to change it, see `lstm-server` in docs/scale-out.md. The server is stopped."
            )
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


def _group_ends(pid, seconds):
    """Whether process group `pid` is gone within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _stop_mlflow(state, grace=30):
    """Stops the `mlflow server` and all its workers: `grace` seconds for the requests under
    way, then killed. Returns once its processes are gone, so its port is free again."""
    pid = (state or {}).get("mlflow_pid")
    if not pid or not _alive(pid) or not _is_our_mlflow(pid, state):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
        if not _group_ends(pid, grace):
            # A worker waiting on a database that is down does not finish its requests.
            os.killpg(pid, signal.SIGKILL)
            _group_ends(pid, 10)
    except ProcessLookupError:
        pass
    return True


def stop(data=DEFAULT_DATA, grace=30):
    """Stops whatever part of the server runs: MLflow (given `grace` seconds to finish
    its requests), then PostgreSQL. Returns the names of what it stopped."""
    layout = Layout(data)
    state = layout.read_state()
    stopped = []
    if _stop_mlflow(state, grace):
        stopped.append("MLflow")
    if _stop_postgres(layout):
        stopped.append("PostgreSQL")
    if state and "mlflow_pid" in state:
        state.pop("mlflow_pid")
        layout.write_state(state)
    return stopped


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
        lines.append("  export MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...   (sign-in is on; new users: "
                     f"{state.get('default_permission') or 'NO_PERMISSIONS'} on others' experiments)")
    lines += [
        "",
        f"Optuna storage for lstm-tune workers on this machine: --storage server:{layout.root}",
        f"  ({storage_url(state)}, whose password libpq reads from {layout.pgpass}, mode 600)",
    ]
    if state.get("db_host"):
        lines.append(f"  Remote workers: PostgreSQL takes {APP_ROLE} at {state['db_host']}:{state['db_port']} over TLS "
                     "only; copy server.json and secrets/pgpass to them (see docs/scale-out.md).")
    lines += ["", f"Stop it with: lstm-server stop --data {layout.root}"]
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
                                 help="address MLflow listens on (default 127.0.0.1; any other needs --auth)")
            command.add_argument("--port", type=int, default=5000, help="MLflow's port (default 5000)")
            command.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's port (default 5433)")
            command.add_argument("--auth", action="store_true",
                                 help="sign-in with MLflow's basic-auth app (admin: MLFLOW_TRACKING_USERNAME/"
                                      "MLFLOW_TRACKING_PASSWORD)")
            command.add_argument("--default-permission", default="NO_PERMISSIONS", choices=PERMISSIONS,
                                 help="with --auth: what a user may do on experiments others made, unless granted "
                                      "more (default NO_PERMISSIONS)")
            command.add_argument("--auth-cache-seconds", type=int, default=AUTH_CACHE_SECONDS,
                                 help="with --auth: how long a worker trusts a password it checked, instead of "
                                      f"hashing it on every request (default {AUTH_CACHE_SECONDS}; 0: every request)")
            command.add_argument("--db-host", default=None,
                                 help="an address where PostgreSQL also takes remote tuning workers, over TLS only "
                                      "(default: none, 127.0.0.1 only)")
            command.add_argument("--allowed-hosts", default=None,
                                 help="host names clients may use (MLflow's --allowed-hosts), for a non-local host")
            command.add_argument("--workers", type=int, default=None,
                                 help="MLflow server worker processes (default: MLflow's)")
    args = parser.parse_args(argv)
    try:
        layout = Layout(args.data)
        if args.command == "start":
            if args.host not in LOOPBACK and not args.auth:
                raise ParamError(f"Received --host {args.host} without --auth: a server reachable from other "
                                 "machines must ask for a password; add --auth (and --allowed-hosts).")
            if args.auth_cache_seconds < 0:
                raise ParamError(f"Received --auth-cache-seconds {args.auth_cache_seconds}: expected 0 (check the "
                                 "password on every request) or a positive number of seconds.")
            if args.db_host in LOOPBACK:
                args.db_host = None
            state = start(args.data, args.host, args.port, args.db_port, args.auth, args.allowed_hosts, args.workers,
                          args.default_permission, args.db_host, args.auth_cache_seconds)
            print(_describe(layout, state))
        elif args.command == "stop":
            stopped = stop(args.data) if layout.state.is_file() else []
            print(f"Stopped {' and '.join(stopped)} in {layout.root}." if stopped
                  else f"No server was running from {layout.root}.")
        else:
            state = status(args.data) if layout.root.is_dir() else None
            if state is None:
                print(f"No server has been started from {layout.root}.")
                raise SystemExit(3)
            if not state["running"]:
                up = [name for name, running in (("MLflow", state["mlflow_up"]), ("PostgreSQL", state["postgres_up"]))
                      if running]
                down = [name for name, running in (("MLflow", state["mlflow_up"]), ("PostgreSQL", state["postgres_up"]))
                        if not running]
                print(f"Stopped ({', '.join(down)} down{'; ' + ', '.join(up) + ' up' if up else ''}): start it with "
                      f"lstm-server start --data {layout.root} (which stops what still runs and starts both)")
                raise SystemExit(3)
            print("Running. " + _describe(layout, state))
    except (ParamError, ServerError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2 if isinstance(error, ParamError) else 1)


if __name__ == "__main__":
    main()
