import contextlib
import os
import random
import socket
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _ephemeral_ports():
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except OSError:
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_handed_out = set()


def free_port():
    """A port free on 127.0.0.1 now and outside the kernel's ephemeral range, so that no
    client connection made meanwhile can take it before a server restarts on it."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(20000, 32768) if port not in ephemeral and port not in _handed_out]
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 between 20000 and 32767")


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
