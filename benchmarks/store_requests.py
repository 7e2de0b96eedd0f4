"""Requests a client makes to a tracking server, counted from the server's access log.

`mlflow server` (uvicorn) writes a line for each request it answers:

    INFO:     127.0.0.1:50412 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200 OK

`TrackingServer` starts a real one on 127.0.0.1 (SQLite, proxied artifacts) with its
log in a file; `requests_in(log)` reads such a log, lstm-server's included
(DIR/logs/mlflow.log). Used by benchmarks/training.py and benchmarks/tuning.py, and
by tests/e2e/test_requests.py, which fails if a run makes more than the README states.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) HTTP/[\d.]+" (\d{3})')
# Polled by whoever waits for a server to come up, not made by a run.
NOT_A_CLIENT_REQUEST = ("/health",)


def requests_in(log):
    """[(method, path, status)] for each request line of the access log `log`, in order."""
    found = []
    for line in Path(log).read_text(errors="replace").splitlines():
        match = REQUEST.search(line)
        if match and not match.group(2).startswith(NOT_A_CLIENT_REQUEST):
            found.append((match.group(1), match.group(2), int(match.group(3))))
    return found


def kinds(requests):
    """How many of each kind: the method and the API path, without ids or artifact paths."""
    def kind(method, path):
        path = path.split("?", 1)[0]
        if "/mlflow-artifacts/" in path:
            return f"{method} mlflow-artifacts"
        return f"{method} {re.sub(r'/m-[0-9a-f]{32}', '/<model>', path.replace('/api/2.0/mlflow/', ''))}"

    return dict(Counter(kind(method, path) for method, path, _ in requests).most_common())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TrackingServer:
    """`mlflow server` on 127.0.0.1 with a SQLite store and proxied artifacts in
    `folder`, its access log in folder/server.log; a context manager."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "server.log"

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
            env.pop(name, None)
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                   f"sqlite:///{self.folder / 'mlflow.db'}", "--serve-artifacts", "--artifacts-destination",
                   str(self.folder / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.process = subprocess.Popen(command, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env,
                                        cwd=self.folder, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"mlflow server did not answer {self.uri}/health in 120 s")

    def requests(self):
        return requests_in(self.log)

    def __exit__(self, *exc):
        import signal

        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


class LstmServer:
    """`lstm-server` (PostgreSQL and `mlflow server`) in a fresh folder, with --auth if
    asked (an admin with a random password, which `env` carries for clients); a
    context manager. `log` is its MLflow access log, `pids` its processes."""

    def __init__(self, auth=False, auth_cache_seconds=None):
        import secrets
        import tempfile

        self.auth, self.auth_cache_seconds = auth, auth_cache_seconds
        # PostgreSQL runs as `postgres` when started by root: the folder must be reachable by that user.
        self.folder = Path(tempfile.mkdtemp(prefix="lstm-server-bench-"))
        self.folder.chmod(0o755)
        self.credentials = ({"MLFLOW_TRACKING_USERNAME": "bench-admin",
                             "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(24)} if auth else {})

    def _command(self, *args):
        env = {**os.environ, **self.credentials}
        return subprocess.run([sys.executable, "-m", "deploy.server", *args, "--data", str(self.folder / "server")],
                              capture_output=True, text=True, env=env, timeout=300,
                              cwd=Path(__file__).resolve().parent.parent)

    def __enter__(self):
        from deploy import server

        options = ["--port", str(free_port()), "--db-port", str(free_port())]
        if self.auth:
            options.append("--auth")
            if self.auth_cache_seconds is not None:
                options += ["--auth-cache-seconds", str(self.auth_cache_seconds)]
        started = self._command("start", *options)
        if started.returncode != 0:
            raise RuntimeError(f"lstm-server start failed: {started.stderr[-2000:]}")
        layout = server.Layout(self.folder / "server")
        state = layout.read_state()
        self.uri = server.tracking_uri(state)
        self.log = layout.logs / "mlflow.log"
        self.env = {"MLFLOW_TRACKING_URI": self.uri, **self.credentials}
        postmaster = layout.postgres / "postmaster.pid"
        self.pids = [state["mlflow_pid"]] + ([int(postmaster.read_text().split()[0])] if postmaster.is_file() else [])
        return self

    def requests(self):
        return requests_in(self.log)

    def __exit__(self, *exc):
        import shutil

        self._command("stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def request_seconds(uri, credentials=None, count=30):
    """Median seconds of one small request (GET experiments/get), signed in with
    `credentials` ({MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD}) if given."""
    import base64
    import statistics

    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/get?experiment_id=0")
    if credentials:
        token = f"{credentials['MLFLOW_TRACKING_USERNAME']}:{credentials['MLFLOW_TRACKING_PASSWORD']}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    seconds = []
    for _ in range(count + 1):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])  # the first opens the connection
