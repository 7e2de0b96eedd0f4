"""Tuning throughput and pruning: the same Optuna study with 1 and 2 workers,
with the median pruner and without.

    python benchmarks/tuning.py [--n-trials 8] [--epochs 20] [--configs 1:median,2:median,1:none,2:none]

Each configuration runs the study afresh in its own folder (a SQLite tracking
store and `optuna.db` beside it, the one-machine default) with `lstm-tune`
worker processes started at once: the seed's sine (1000 windows), learning
rate 1e-4 to 1e-1 log-uniform, 8 to 64 hidden units, up to `--epochs` epochs,
the same `tune_seed`. With fewer trials than TPE's 10 random start-up trials,
every configuration draws the very same trials, so the pruner is compared on
identical work. Measured: wall time from the first worker's start to the last
worker's end (process start-up included), trials per minute, epochs trained in
all, and the best val_loss. Writes benchmarks/results/tuning.{json,md}.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def run_study(workers, pruner, n_trials, epochs, folder):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pipeline.stages.tune", "--study", "bench", "--n_trials", str(n_trials),
               "--epochs", str(epochs), "--learning_rate", "1e-4:1e-1:log", "--hidden_units", "8:64",
               "--pruner", pruner, "--tune_seed", "0"]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=folder, env=env, stdout=open(folder / f"worker{i}.log", "w"),
                                  stderr=subprocess.STDOUT) for i in range(workers)]
    for process in processes:
        process.wait()
    wall = time.perf_counter() - started
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed: see {folder}/worker*.log")

    import optuna

    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{folder / 'optuna.db'}")
    trials = [t for t in study.trials if not t.user_attrs.get("surplus")]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    return {
        "workers": workers, "pruner": pruner, "trials": len(trials), "wall_s": round(wall, 1),
        "trials_per_minute": round(60 * len(trials) / wall, 2),
        "complete": len(complete), "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "failed": sum(t.state.name == "FAIL" for t in trials),
        "epochs_trained": sum(t.user_attrs.get("epochs", 0) for t in trials),
        "best_val_loss": min(t.value for t in complete) if complete else None,
        "per_trial": [{"number": t.number, "state": t.state.name, "params": t.params,
                       "epochs": t.user_attrs.get("epochs"), "value": t.value} for t in trials],
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
    }


def markdown(results):
    lines = ["| workers | pruner | trials | wall s | trials/min | complete | pruned | epochs trained | best val_loss |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["studies"]:
        lines.append(f"| {r['workers']} | {r['pruner']} | {r['trials']} | {r['wall_s']} | {r['trials_per_minute']} | "
                     f"{r['complete']} | {r['pruned']} | {r['epochs_trained']} | {r['best_val_loss']:.3g} |")
    lines += ["", "Goals:"] + [f"- {goal}" for goal in results["goals"]]
    lines += ["", f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
                  f"command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def goals(studies):
    by = {(r["workers"], r["pruner"]): r for r in studies}
    said = []
    if (1, "median") in by and (2, "median") in by:
        ratio = by[2, "median"]["trials_per_minute"] / by[1, "median"]["trials_per_minute"]
        said.append(f"2 workers / 1 worker, trials per minute (median pruner): {ratio:.2f}× "
                    f"({'met' if ratio >= 1.5 else 'not met'}; goal ≥ 1.5×)")
    if (1, "none") in by and (2, "none") in by:
        ratio = by[2, "none"]["trials_per_minute"] / by[1, "none"]["trials_per_minute"]
        said.append(f"2 workers / 1 worker, trials per minute (no pruner): {ratio:.2f}×")
    if (1, "median") in by and (1, "none") in by:
        on, off = by[1, "median"], by[1, "none"]
        saved = 1 - on["epochs_trained"] / off["epochs_trained"]
        worse = on["best_val_loss"] / off["best_val_loss"] - 1
        said.append(f"pruning saved {100 * saved:.0f} % of the epochs ({on['epochs_trained']} against "
                    f"{off['epochs_trained']}; goal ≥ 30 %: {'met' if saved >= 0.3 else 'not met'}), best val_loss "
                    f"{on['best_val_loss']:.3g} against {off['best_val_loss']:.3g} ({100 * worse:+.0f} %; goal within "
                    f"10 %: {'met' if worse <= 0.1 else 'not met'})")
    return said


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--configs", default="1:median,2:median,1:none,2:none",
                        help="workers:pruner pairs, in the order run")
    args = parser.parse_args()
    studies = []
    for config in args.configs.split(","):
        workers, pruner = config.split(":", 1)
        with tempfile.TemporaryDirectory(prefix="tuning-bench-") as folder:
            result = run_study(int(workers), pruner, args.n_trials, args.epochs, Path(folder))
        print(json.dumps({k: v for k, v in result.items() if k != "per_trial"}), flush=True)
        studies.append(result)
    results = {"machine": machine(), "command": "python benchmarks/tuning.py " + " ".join(sys.argv[1:]),
               "n_trials": args.n_trials, "epochs": args.epochs, "studies": studies, "goals": goals(studies)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tuning.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "tuning.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
