"""Forecast accuracy out of the box: the whole pipeline, defaults only, on real series.

    python benchmarks/accuracy.py [--cases sunspots,co2,wineind,taylor] [--horizons all|1]

For every series of benchmarks/series.py (the two examples and two series that
ship inside pmdarima: `pip install -e ".[bench]"`) and each of its horizons, runs
`python -m pipeline.stages.main` with only what a user would give (data_source,
column, time_column, fill_missing, season, horizon) into a fresh SQLite store,
then reads the evaluate run's metrics: MASE, RMSE and sMAPE of the LSTM and of
every baseline on the same test targets, and the interval coverage and width.

Writes benchmarks/results/accuracy.json (with the machine) and
benchmarks/results/accuracy.md, and prints the table and the goals of issue 12:
the LSTM's MASE below persistence's and the seasonal naive's on every row, its
RMSE at most 1.1x ETS's on average over the series, coverage within 5 points of
the nominal 90 %.
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
from benchmarks.series import CASES, write_csvs  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
FORECASTERS = [("LSTM", ""), ("persistence", "persistence_"), ("seasonal naive", "seasonal_naive_"),
               ("ETS", "ets_"), ("linear AR", "linear_")]


def run_case(path, case, horizon, store):
    import mlflow

    args = ["--data_source", path, "--column", case["column"], "--time_column", case["time_column"],
            "--fill_missing", case["fill_missing"], "--season", str(case["season"]), "--horizon", str(horizon)]
    uri = f"sqlite:///{store}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-m", "pipeline.stages.main", *args], cwd=store, env=env,
                              capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"pipeline failed on {path} horizon {horizon}:\n{finished.stderr[-3000:]}")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    main_run = client.search_runs(["0"], "tags.stage = 'main'", max_results=1)[0]
    evaluate_run = client.get_run(main_run.data.tags["evaluate_run_id"])
    train_run = client.get_run(main_run.data.tags["train_run_id"])
    chosen = {name[len("resolved_"):]: value for name, value in train_run.data.tags.items()
              if name.startswith("resolved_") and name != "resolved_data_uri"}
    metrics = evaluate_run.data.metrics
    return {
        "seconds": seconds, "chosen": chosen,
        "best_epoch": train_run.data.metrics["best_epoch"], "epochs_trained": train_run.data.metrics["epochs_trained"],
        "train_seconds": train_run.data.metrics["train_seconds"],
        "metrics": {label: {m: metrics[f"{prefix}test_{m}"] for m in ("mase", "rmse", "smape")}
                    for label, prefix in FORECASTERS if f"{prefix}test_rmse" in metrics},
        "coverage": metrics["test_coverage"], "interval_width": metrics["test_interval_width"],
    }


def table(rows):
    lines = ["| series | h | forecaster | MASE | RMSE | sMAPE % | coverage % (90) |", "|---|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        for label, values in row["metrics"].items():
            coverage = f"{row['coverage']:.1f}" if label == "LSTM" else ""
            name = f"**{label}**" if label == "LSTM" else label
            lines.append(f"| {row['series']} | {row['horizon']} | {name} | {values['mase']:.3f} | "
                         f"{values['rmse']:.4g} | {values['smape']:.2f} | {coverage} |")
    return "\n".join(lines)


def goals(rows):
    """Each goal of issue 12, with the numbers that decide it."""
    lines = []
    losses = [f"{r['series']} h={r['horizon']} vs {label} ({r['metrics']['LSTM']['mase']:.3f} ≥ {r['metrics'][label]['mase']:.3f})"
              for r in rows for label in ("persistence", "seasonal naive")
              if label in r["metrics"] and r["metrics"]["LSTM"]["mase"] >= r["metrics"][label]["mase"]]
    lines.append("MASE below persistence and seasonal naive on every row: "
                 + ("met" if not losses else "NOT met: " + "; ".join(losses)))
    ratios = {}
    for r in rows:
        ratios.setdefault(r["series"], []).append(r["metrics"]["LSTM"]["rmse"] / r["metrics"]["ETS"]["rmse"])
    per_series = {name: statistics.mean(values) for name, values in ratios.items()}
    mean_ratio = statistics.mean(per_series.values())
    beaten = sum(ratio < 1 for values in ratios.values() for ratio in values)
    lines.append(f"RMSE / ETS's, mean over series: {mean_ratio:.3f} (goal ≤ 1.1: {'met' if mean_ratio <= 1.1 else 'NOT met'}); "
                 f"per series {', '.join(f'{k} {v:.3f}' for k, v in per_series.items())}; "
                 f"LSTM beats ETS on {beaten} of {len(rows)} rows")
    off = [f"{r['series']} h={r['horizon']} {r['coverage']:.1f}" for r in rows if abs(r["coverage"] - 90) > 5]
    lines.append("Coverage within 5 points of 90 % on every row: " + ("met" if not off else "NOT met: " + ", ".join(off)))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--horizons", choices=["all", "1"], default="all")
    args = parser.parse_args()
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="accuracy-"))
    paths = write_csvs(folder / "series")
    rows = []
    for name in args.cases.split(","):
        case = CASES[name]
        for horizon in case["horizons"] if args.horizons == "all" else (1,):
            store = folder / f"{name}-h{horizon}"
            store.mkdir()
            row = {"series": name, "horizon": horizon, "season": case["season"],
                   **run_case(paths[name], case, horizon, store)}
            print(f"{name} h={horizon}: {row['seconds']:.0f} s, LSTM MASE {row['metrics']['LSTM']['mase']:.3f}, "
                  f"ETS {row['metrics']['ETS']['mase']:.3f}, coverage {row['coverage']:.1f}", flush=True)
            rows.append(row)
    text = table(rows)
    summary = goals(rows)
    print("\n" + text + "\n\n" + "\n".join(summary))
    RESULTS.mkdir(exist_ok=True)
    command = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:])
    (RESULTS / "accuracy.json").write_text(json.dumps(
        {"command": command.strip(), "machine": machine(),
         # The accuracy figures do not depend on the machine's load; the seconds do.
         "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
         "rows": rows, "goals": summary}, indent=2))
    (RESULTS / "accuracy.md").write_text(text + "\n\n" + "\n".join(f"- {line}" for line in summary) + "\n")


if __name__ == "__main__":
    main()
