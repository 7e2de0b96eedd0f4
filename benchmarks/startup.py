"""How fast the commands answer that should answer at once: a refusal, and lstm-compare.

    python benchmarks/startup.py [--rounds 5] [--force]

Each round runs, one after the other in fresh processes:
- `python -m pipeline.stages.main --learning_rate 0`: a bad value, refused (exit 2);
- `python -m pipeline.stages.compare` on a SQLite store holding 10 main runs;
- `python -m pipeline.stages.tune report` on a study of 10 trials.
Prints the median and range of the wall times (process start to exit) and
writes benchmarks/results/startup.{json,md}. Each command's run is bracketed by
benchmarks.quiet: when the machine was busy, nothing is written (exit status 3)
unless --force. Goals (issue 14): the refusal in
under 2 s, lstm-compare in under 5 s, on a 2-core machine.
"""

import argparse
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
from benchmarks.quiet import Watch, timings_markdown  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
GOALS_S = {"refusal": 2.0, "compare": 5.0}


def make_store(folder):
    """A tracking store with 10 main runs and an Optuna study of 10 trials, made without training."""
    import mlflow
    import optuna
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    for k in range(10):
        run = client.create_run("0", run_name=f"h{k}", tags={"stage": "main"})
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param("hidden_units", str(8 * (k + 1)))],
                         metrics=[mlflow.entities.Metric("test_rmse", 0.01 * (k + 1), 0, 0)])
        client.set_terminated(run.info.run_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench", storage=f"sqlite:///{folder / 'optuna.db'}")
    study.set_user_attr("n_trials", 10)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=10)


def timed(command, folder, expected_status):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != expected_status:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    commands = {
        "refusal": ([sys.executable, "-m", "pipeline.stages.main", "--learning_rate", "0"], 2),
        "compare": ([sys.executable, "-m", "pipeline.stages.compare"], 0),
        "tune_report": ([sys.executable, "-m", "pipeline.stages.tune", "report", "--study", "bench"], 0),
    }
    watch = Watch()
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as folder:
        folder = Path(folder)
        make_store(folder)
        times = {name: [] for name in commands}
        for round_ in range(1, args.rounds + 1):
            for name, (command, status) in commands.items():
                with watch.measure(f"{name}, round {round_}"):
                    times[name].append(timed(command, folder, status))
    rows = {name: {"median_s": round(statistics.median(values), 2), "min_s": round(min(values), 2),
                   "max_s": round(max(values), 2), "all_s": [round(v, 2) for v in values]}
            for name, values in times.items()}
    goals = [f"{name}: median {rows[name]['median_s']} s, goal under {goal} s: "
             f"{'met' if rows[name]['median_s'] < goal else 'not met'}" for name, goal in GOALS_S.items()]
    results = {"machine": machine(), "command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]),
               "rounds": args.rounds, "commands": rows, "goals": goals}
    watch.write_or_refuse(results, RESULTS / "startup.json", force=args.force)
    text = timings_markdown(times, watch.summary(), f"{args.rounds} rounds", goals, results["machine"])
    (RESULTS / "startup.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
