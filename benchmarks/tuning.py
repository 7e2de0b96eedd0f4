"""Tuning throughput and pruning: the same Optuna study with 1 and 2 workers,
with the median pruner and without.

    python benchmarks/tuning.py [--n-trials 8] [--epochs 20] [--rounds 3] [--configs 1:median:1,2:median:1,...]
                                [--name tuning] [--force]

Each configuration runs the study afresh in its own folder (a SQLite tracking
store and `optuna.db` beside it, the one-machine default) with `lstm-tune`
worker processes started at once: the seed's sine (1000 windows), learning
rate 1e-4 to 1e-1 log-uniform, 8 to 64 hidden units, up to `--epochs` epochs,
the same `tune_seed`. With fewer trials than TPE's 10 random start-up trials,
every configuration draws the very same trials, so the pruner is compared on
identical work. Measured: wall time from the first worker's start to the last
worker's end (process start-up included), trials per minute, epochs trained in
all, and the best val_loss. The configurations alternate for `--rounds` rounds;
each row is the round with the median wall time (all rounds are in the JSON).

A configuration may name a fourth part, the store: `sqlite` (the default, above),
`server` (`lstm-server`: PostgreSQL, MLflow's server with proxied artifacts, the
study in its `optuna` database) or `auth` (the same with --auth, the workers
signed in), each started afresh for the study. For a server, also the requests
the study made (its access log, benchmarks/store_requests.py) and per trial.

Writes benchmarks/results/<name>.{json,md} (tuning by default), unless the machine
was busy during a study (benchmarks.quiet; --force writes them marked busy).
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


@contextlib.contextmanager
def store_for(store, watch):
    """None for SQLite; else a fresh `lstm-server` (signed in for `auth`), whose processes
    count as the benchmark's own work while it runs (so it is stopped after the measurement)."""
    if store == "sqlite":
        yield None
        return
    from benchmarks.store_requests import LstmServer

    with LstmServer(auth=store == "auth") as server:
        for pid in server.pids:
            watch.count_as_own(pid)
        yield server


def run_study(workers, pruner, n_trials, epochs, folder, threads, store="sqlite", server=None):
    if server is None:
        store_env, storage = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}, f"sqlite:///{folder / 'optuna.db'}"
    else:
        store_env, storage = server.env, f"server:{server.folder / 'server'}"
    env = {**os.environ, **store_env, "PYTHONPATH": str(REPO)}
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pipeline.stages.tune", "--study", "bench", "--n_trials", str(n_trials),
               "--epochs", str(epochs), "--learning_rate", "1e-4:1e-1:log", "--hidden_units", "8:64",
               "--pruner", pruner, "--tune_seed", "0", "--threads", str(threads)]
    if store != "sqlite":
        command += ["--storage", storage]
    requests_before = len(server.requests()) if server else 0
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=folder, env=env, stdout=open(folder / f"worker{i}.log", "w"),
                                  stderr=subprocess.STDOUT) for i in range(workers)]
    for process in processes:
        process.wait()
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed: see {folder}/worker*.log")

    requests = len(server.requests()) - requests_before if server else None
    import optuna

    if server:
        from deploy import server as lstm_server

        layout = lstm_server.Layout(server.folder / "server")
        os.environ.update(lstm_server.pgpass_environment(layout))
        storage = lstm_server.storage_url(layout.read_state())
    study = optuna.load_study(study_name="bench", storage=storage)
    trials = [t for t in study.trials if not t.user_attrs.get("surplus")]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    return {
        "workers": workers, "pruner": pruner, "threads": threads, "store": store, "trials": len(trials),
        "wall_s": round(wall, 1), "cores_busy": round(cpu / wall, 2),
        "requests": requests, "requests_per_trial": round(requests / len(trials), 1) if requests else None,
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
    lines = ["| workers | pruner | TF threads | store | trials | wall s | cores busy | trials/min | complete | pruned | "
             "epochs trained | best val_loss | requests per trial |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["studies"]:
        store = {"sqlite": "SQLite", "server": "lstm-server", "auth": "lstm-server, signed in"}[r.get("store", "sqlite")]
        per_trial = r.get("requests_per_trial")
        lines.append(f"| {r['workers']} | {r['pruner']} | {r['threads']} | {store} | {r['trials']} | {r['wall_s']} | "
                     f"{r['cores_busy']} | {r['trials_per_minute']} | "
                     f"{r['complete']} | {r['pruned']} | {r['epochs_trained']} | {r['best_val_loss']:.3g} | "
                     f"{'—' if per_trial is None else per_trial} |")
    lines += ["", f"Each row: the median of {results['rounds']} alternating rounds by wall time "
                  f"(every round's wall time is in {Path(results['name']).name}.json).", "", "Goals:"] + [f"- {goal}" for goal in results["goals"]]
    lines += ["", f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
                  f"command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def goals(studies):
    said = []
    stores = {(r["workers"], r["pruner"], r["threads"], r.get("store", "sqlite")): r for r in studies}
    for (workers, pruner, threads, store), signed_in in stores.items():
        plain = stores.get((workers, pruner, threads, "server"))
        if store == "auth" and plain:
            ratio = plain["trials_per_minute"] / signed_in["trials_per_minute"]
            said.append(f"a trial signed in / the same trial without sign-in, on lstm-server ({workers} worker, "
                        f"pruner {pruner}): {ratio:.2f}× the time ({'met' if ratio <= 1.5 else 'not met'}; "
                        "goal ≤ 1.5×)")
    by = {(r["workers"], r["pruner"], r["threads"]): r for r in studies if r.get("store", "sqlite") == "sqlite"}
    for pruner, threads in (("median", 1), ("none", 1), ("none", 0)):
        if (1, pruner, threads) in by and (2, pruner, threads) in by:
            ratio = by[2, pruner, threads]["trials_per_minute"] / by[1, pruner, threads]["trials_per_minute"]
            said.append(f"2 workers / 1 worker, trials per minute, pruner {pruner}, "
                        f"{'TensorFlow default threads' if threads == 0 else f'{threads} thread per worker'}: "
                        f"{ratio:.2f}× ({'met' if ratio >= 1.5 else 'not met'}; goal ≥ 1.5×)")
    if (1, "median", 1) in by and (1, "none", 1) in by:
        on, off = by[1, "median", 1], by[1, "none", 1]
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--configs", default="1:median:1,2:median:1,1:none:1,2:none:1,1:none:0,2:none:0",
                        help="workers:pruner:threads, in the order run (threads: lstm-tune's, 0 for "
                             "TensorFlow's default)")
    parser.add_argument("--name", default="tuning", help="results file name: benchmarks/results/<name>.{json,md}")
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    watch = Watch()
    rounds = []
    for round_number in range(1, args.rounds + 1):  # the configurations alternate, round after round
        for config in args.configs.split(","):
            workers, pruner, threads, store = (config.split(":") + ["sqlite"])[:4]
            with tempfile.TemporaryDirectory(prefix="tuning-bench-") as folder, store_for(store, watch) as server, \
                    watch.measure(config):
                result = run_study(int(workers), pruner, args.n_trials, args.epochs, Path(folder), int(threads),
                                   store, server)
            result["round"] = round_number
            print(json.dumps({k: v for k, v in result.items() if k != "per_trial"}), flush=True)
            rounds.append(result)
    studies = []
    for config in args.configs.split(","):
        workers, pruner, threads, store = (config.split(":") + ["sqlite"])[:4]
        runs = [r for r in rounds if (r["workers"], r["pruner"], r["threads"], r["store"])
                == (int(workers), pruner, int(threads), store)]
        median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        studies.append({**{k: v for k, v in median.items() if k != "round"},
                        "wall_s_all_rounds": [r["wall_s"] for r in runs]})
    results = {"machine": machine(), "command": "python benchmarks/tuning.py " + " ".join(sys.argv[1:]),
               "name": args.name,
               "n_trials": args.n_trials, "epochs": args.epochs, "rounds": args.rounds, "studies": studies,
               "goals": goals(studies), "all_rounds": rounds}
    print(markdown(results))
    watch.write_or_refuse(results, RESULTS / f"{args.name}.json", force=args.force)
    (RESULTS / f"{args.name}.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
