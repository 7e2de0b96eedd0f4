"""A stage run as a program (`python -m pipeline.stages.<stage>`) ends at once
after its work, and loses nothing on the way out: real processes, real store."""

import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from tests.conftest import REPO

# A stand-in stage: it queues metrics for MLflow's background logger and
# registers an atexit handler, then returns or fails as told.
PROGRAM = """
import atexit
from mlflow.tracking import MlflowClient
from pipeline.errors import ParamError
from pipeline.stages import program

def run(**values):
    client = MlflowClient()
    run = client.create_run(client.get_experiment_by_name("tests").experiment_id)
    for step in range(500):
        client.log_metric(run.info.run_id, "queued", float(step), step=step, synchronous=False)
    atexit.register(lambda: print("atexit handler ran", flush=True))
    print("work done", end="")  # no newline: only a flush writes it
    if values["n_samples"] == 13:
        raise ParamError("Received `n_samples`=13: unlucky.")

program("generate_data", run)
"""


def run_program(*args):
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def queued_steps(client):
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "queued"))


def test_a_program_that_finishes_exits_0_with_every_queued_metric_and_atexit_handler_done(tracking_store):
    finished = run_program()
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout == "work doneatexit handler ran\n"
    assert queued_steps(MlflowClient()) == list(range(500))


def test_a_program_that_fails_exits_with_its_status_and_one_line_and_still_logs_what_it_queued(tracking_store):
    failed = run_program("--n_samples", "13")
    assert failed.returncode == 2
    assert failed.stderr.splitlines()[-1] == "error: Received `n_samples`=13: unlucky."
    assert failed.stdout == "work doneatexit handler ran\n"
    assert queued_steps(MlflowClient()) == list(range(500))


def test_under_a_profiler_a_program_exits_as_usual_so_the_profile_is_written(tracking_store, tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(PROGRAM)
    profiled = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "stage.prof"), str(script)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                              timeout=300)
    assert profiled.returncode == 0, profiled.stderr[-2000:]
    assert (tmp_path / "stage.prof").stat().st_size > 0


def test_bad_options_still_get_argparse_usage_and_status_2(tracking_store):
    refused = run_program("--no_such_option", "1")
    assert refused.returncode == 2
    assert "unrecognized arguments: --no_such_option 1" in refused.stderr
