"""Requests the default run and a tuning trial make to a tracking server.

    python benchmarks/requests_made.py [--repo PATH] [--label NAME] [--repeats 3]

Against a real `mlflow server` on 127.0.0.1 (SQLite, proxied artifacts;
benchmarks/store_requests.py counts its access log), with the code of the checkout
PATH (default: this one; an earlier commit's worktree measures "before"):

- the default `mlflow run . --env-manager local`, data reused: the median of
  `--repeats` runs after one that generates the data;
- a trial of `lstm-tune` (the seed's sine, 20 epochs, no pruner): the requests of a
  3-trial study less those of a 1-trial study, halved, so that what the study
  itself makes cancels out.

Adds the figures under NAME (default: the checkout's commit) to
benchmarks/results/requests.json. Counts, not times: a busy machine changes them
little (the per-epoch losses go out once a second, so a slow machine sends a few
more batches).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.store_requests import TrackingServer, kinds  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "requests.json"
TRIAL = ["--epochs", "20", "--learning_rate", "1e-4:1e-1:log", "--hidden_units", "8:64", "--pruner", "none",
         "--tune_seed", "0"]


def made_by(server, command, code):
    """The requests `command` made, run with the code of the checkout `code`."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "PYTHONPATH": str(code)}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    before = len(server.requests())
    result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-3000:]}")
    return server.requests()[before:]


def measure(code, repeats):
    with tempfile.TemporaryDirectory(prefix="requests-bench-") as folder, TrackingServer(Path(folder)) as server:
        run = [sys.executable, "-m", "mlflow", "run", str(code), "--env-manager", "local"]
        runs = [made_by(server, run, code) for _ in range(repeats + 1)][1:]  # the first generates the data
        tune = [sys.executable, "-m", "pipeline.stages.tune", *TRIAL, "--storage", f"sqlite:///{folder}/optuna.db"]
        one = made_by(server, [*tune, "--study", "one", "--n_trials", "1"], code)
        three = made_by(server, [*tune, "--study", "three", "--n_trials", "3"], code)
    return {"default_run_requests_median": statistics.median(len(r) for r in runs),
            "default_run_requests_all": [len(r) for r in runs], "default_run_request_kinds": kinds(runs[-1]),
            "trial_requests": (len(three) - len(one)) / 2, "study_of_1_requests": len(one),
            "study_of_3_requests": len(three)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(REPO), help="a checkout of this project whose code is measured")
    parser.add_argument("--label", default=None, help="the name of the figures (default: the checkout's commit)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    code = Path(args.repo).resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=code, capture_output=True,
                           text=True).stdout.strip()
    figures = {"commit": commit + (" (with uncommitted changes)" if dirty else ""), **measure(code, args.repeats)}
    print(json.dumps(figures, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
    results["runs"][args.label or commit] = figures
    results["command"] = "python benchmarks/requests_made.py [--repo PATH --label NAME]"
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
