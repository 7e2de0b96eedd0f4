"""Keeps an interrupted `mlflow run` entry run KILLED.

`mlflow run`, on Ctrl-C, waits for the stage process to end and then marks the
entry run FAILED, overwriting the KILLED the stage set: its check for a run
that already ended compares a status string with status numbers, so it never
matches (mlflow/projects/__init__.py, `_maybe_set_run_terminated`, MLflow
3.17). An interrupted stage starts this small detached process, which waits
for that overwrite and puts KILLED back: `python -m pipeline.stages.keep_killed <run id>`.
"""

import sys
import time

from mlflow.tracking import MlflowClient

WAIT_SECONDS = 60


def keep_killed(run_id, wait_seconds=WAIT_SECONDS):
    client = MlflowClient()
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if client.get_run(run_id).info.status == "FAILED":
            client.set_terminated(run_id, "KILLED")
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    keep_killed(sys.argv[1])
