"""What the forecast stage costs a single series: the default run side by side
with a checkout from before it (issue 30's cost goal: a default run of a series
under 1000 points in under 60 s on this machine).

    python benchmarks/refit_cost.py --baseline PATH [--cases m1-QRC21:1,co2:4] [--rounds 3]

PATH is a checkout of an earlier commit (`git worktree add /tmp/before 7dcf009`).
Each round runs `python -m pipeline.stages.main` with only what a user would
give (benchmarks/series.py) in this checkout and in PATH, alternating, each into
a fresh SQLite store, and reads the run's `refit_seconds` (the forecast stage's
training). The defaults choose the same model in both (the train stage did not
change), so the difference is the forecast stage. Writes
benchmarks/results/refit_cost.json with the load during each measurement.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402
from benchmarks.series import CASES, write_csvs  # noqa: E402


def run_once(checkout, path, case, horizon):
    """Seconds of one default run of `checkout`, and its forecast stage's refit seconds (None before it)."""
    import mlflow

    with tempfile.TemporaryDirectory() as store:
        uri = f"sqlite:///{store}/mlflow.db"
        args = ["--data_source", path, "--column", case["column"], "--time_column", case["time_column"],
                "--fill_missing", case["fill_missing"], "--season", str(case["season"]), "--horizon", str(horizon)]
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(checkout)}
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "pipeline.stages.main", *args], cwd=checkout, env=env,
                                  capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if finished.returncode != 0:
            raise RuntimeError(f"{checkout} failed on {path}:\n{finished.stderr[-3000:]}")
        client = mlflow.MlflowClient(uri)
        main = client.search_runs(["0"], "tags.stage = 'main'", max_results=1)[0]
        forecast_id = main.data.tags.get("forecast_run_id")
        refit = client.get_run(forecast_id).data.metrics.get("refit_seconds") if forecast_id else None
        return seconds, refit, main.data.metrics["test_rmse"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="a checkout of the commit to compare with")
    parser.add_argument("--cases", default="m1-QRC21:1,co2:4")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    paths = write_csvs(tempfile.mkdtemp(prefix="refit-cost-"))
    watch, results = Watch(), {"command": "python benchmarks/refit_cost.py " + " ".join(argv or sys.argv[1:]),
                               "machine": machine(), "cases": {}}
    for item in args.cases.split(","):
        name, horizon = item.split(":")
        case, rows = CASES[name], {"now": [], "before": [], "refit_seconds": [], "test_rmse": {}}
        for round_ in range(args.rounds):
            for label, checkout in (("before", args.baseline), ("now", str(REPO))):
                with watch.measure(f"{name} h={horizon} {label} round {round_ + 1}"):
                    seconds, refit, rmse = run_once(checkout, paths[name], case, int(horizon))
                rows[label].append(seconds)
                rows["test_rmse"][label] = rmse
                if refit is not None:
                    rows["refit_seconds"].append(refit)
                print(f"{name} h={horizon} {label}: {seconds:.1f} s" + (f" (refit {refit:.1f} s)" if refit else ""),
                      flush=True)
        rows["median"] = {label: statistics.median(rows[label]) for label in ("now", "before")}
        rows["ratio"] = rows["median"]["now"] / rows["median"]["before"]
        results["cases"][f"{name}:{horizon}"] = rows
    results["quiet"] = watch.summary()
    (REPO / "benchmarks" / "results" / "refit_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    for key, rows in results["cases"].items():
        print(f"{key}: median {rows['median']['now']:.1f} s now, {rows['median']['before']:.1f} s before "
              f"({rows['ratio']:.2f}×); the forecast stage's refit {statistics.median(rows['refit_seconds']):.1f} s")


if __name__ == "__main__":
    main()
