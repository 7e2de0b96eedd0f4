"""Which target form, scaling and ensemble size a CSV series should get by default.

    python benchmarks/defaults.py [--grid forms|auto|ensemble] [--cases sunspots,co2,...] [--out FILE]
    python benchmarks/defaults.py --summary [--out FILE]      # the tables in docs/forecasting.md, from FILE

Trains with the pipeline's own functions (pipeline.data, pipeline.model: the
same windows, model and fit as the train stage, without MLflow) on every
series and horizon of benchmarks/series.py, with every configuration of the
grid, and appends one JSON line per fit to --out: the best validation MSE, the
best epoch, the test MASE and RMSE, interval coverage and the seconds taken.

`forms`: target level/last/seasonal × scaling standard/window, one network.
`auto`: target='auto' (seasonal or last, by the naive forecast that wins on the
training windows) with scaling standard and window, one network.
`ensemble`: the CSV defaults with 1, 3 and 5 networks.
`--summary` prints, per grid, each configuration's validation MSE divided by the
best of its grid on that series and horizon, their geometric mean, and the test
MASE beside it.
Defaults are chosen on validation MSE only (the test split is reported, never
used to choose); docs/forecasting.md, "Defaults for your own series", gives the outcome.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.series import CASES, write_csvs  # noqa: E402

GRIDS = {
    "forms": [{"target": t, "scaling": s, "ensemble_size": 1}
              for t, s in [("level", "standard"), ("last", "standard"), ("last", "window"),
                           ("seasonal", "standard"), ("seasonal", "window")]],
    "ensemble": [{"target": "auto", "scaling": "auto", "ensemble_size": n} for n in (1, 3, 5)],
    "auto": [{"target": "auto", "scaling": s, "ensemble_size": 1} for s in ("standard", "window")],
}


def fit_one(path, case, horizon, config, seed=42):
    import keras
    import numpy as np

    from pipeline import csv_input, data, metrics, params
    from pipeline import model as forecaster

    times, values, _, _ = csv_input.read_csv_series(path, case["column"], case["time_column"], case["fill_missing"])
    season = case["season"]
    time_steps = params.resolve_time_steps("auto", horizon, season, is_sine=False)
    dataset = data.make_series_dataset(times, values, time_steps, horizon, 0.1, 0.2)
    input_width = time_steps - horizon
    chosen = params.resolve_training(
        {"epochs": "auto", "patience": "auto", "season": season, **config}, False, input_width,
        len(dataset["y_train"]), metrics.seasonal_naive_wins(dataset["x_train"], dataset["y_train"], season))
    if chosen["target"] == "seasonal" and not 0 < season <= input_width:
        return None
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = forecaster.build_model(50, 0.001, horizon, chosen["scaling"], forecaster.standard_scale(dataset),
                                   chosen["target"], season, chosen["ensemble_size"])
    state = forecaster.fit(model, dataset, chosen["epochs"], 32, chosen["patience"], seed)
    served = forecaster.forecasting_model(model, 0.9)
    forecaster.calibrate(served, dataset["x_val"], dataset["y_val"])
    out = forecaster.predict(served, dataset["x_test"])
    seconds = time.perf_counter() - started
    scale = metrics.naive_scale(dataset["x_train"], dataset["y_train"])
    test = metrics.errors(dataset["y_test"], out["forecast"], scale)
    val_forecast = forecaster.predict(served, dataset["x_val"])["forecast"]
    return {
        "resolved": {k: chosen[k] for k in ("target", "scaling", "ensemble_size", "epochs", "patience")},
        "time_steps": time_steps, "n_train": len(dataset["y_train"]),
        "val_mse": float(np.mean((val_forecast - dataset["y_val"]) ** 2)),
        "best_epoch": state.best_epoch, "epochs_trained": state.epochs_done,
        "test_mase": test["mase"], "test_rmse": test["rmse"],
        "test_coverage": metrics.interval_scores(dataset["y_test"], out["lower"], out["upper"])["coverage"],
        "seconds": seconds,
    }


def summary(lines):
    """Markdown tables, one per grid: validation MSE / the grid's best on each
    case, and the test MASE, per configuration; geometric mean of the ratios."""
    import math

    out = []
    for grid in dict.fromkeys(line["grid"] for line in lines):
        rows = [line for line in lines if line["grid"] == grid]
        cases = list(dict.fromkeys((r["series"], r["horizon"]) for r in rows))
        best = {case: min(r["val_mse"] for r in rows if (r["series"], r["horizon"]) == case) for case in cases}

        def label(r):
            resolved = r["resolved"]
            if grid == "ensemble":
                return f"{resolved['ensemble_size']} network(s)"
            target = "auto" if r["config"]["target"] == "auto" else resolved["target"]
            return f"{target} / {resolved['scaling']}"

        configs = list(dict.fromkeys(label(r) for r in rows))
        out.append(f"grid `{grid}`: validation MSE ÷ best of the grid (test MASE)\n")
        out.append("| configuration | " + " | ".join(f"{s} h={h}" for s, h in cases) + " | geometric mean |")
        out.append("|---|" + "---:|" * (len(cases) + 1))
        for config in configs:
            cells, logs = [], []
            for case in cases:
                match = [r for r in rows if (r["series"], r["horizon"]) == case and label(r) == config]
                if not match:
                    cells.append("")
                    continue
                ratio = match[-1]["val_mse"] / best[case]
                logs.append(math.log(ratio))
                cells.append(f"{ratio:.2f} ({match[-1]['test_mase']:.3f})")
            mean = math.exp(sum(logs) / len(logs))
            out.append(f"| {config} | " + " | ".join(cells) + f" | {mean:.2f} over {len(logs)} |")
        out.append("")
    out.append(against_previous_default(lines))
    return "\n".join(out)


def against_previous_default(lines):
    """Every configuration against the previous CSV default (level / standard, one
    network) on each case: validation MSE ratio, and the test MASE ratio beside
    it (reported, not used to choose); geometric means over the cases."""
    import math

    def key(line):
        resolved = line["resolved"]
        target = "auto" if line["config"]["target"] == "auto" else resolved["target"]
        return f"{target} / {resolved['scaling']}, {resolved['ensemble_size']} network(s)"

    base = {(l["series"], l["horizon"]): l for l in lines
            if l["grid"] == "forms" and key(l) == "level / standard, 1 network(s)"}
    cases = list(base)
    out = ["against the previous default (level / standard, 1 network): validation MSE ratio (test MASE ratio)\n",
           "| configuration | " + " | ".join(f"{s} h={h}" for s, h in cases)
           + " | validation, geometric mean | lower on | test MASE, geometric mean |",
           "|---|" + "---:|" * (len(cases) + 3)]
    for config in dict.fromkeys(key(l) for l in lines):
        rows = {(l["series"], l["horizon"]): l for l in lines if key(l) == config}
        if set(rows) != set(base):
            continue
        val = [rows[c]["val_mse"] / base[c]["val_mse"] for c in cases]
        test = [rows[c]["test_mase"] / base[c]["test_mase"] for c in cases]
        cells = " | ".join(f"{v:.2f} ({t:.2f})" for v, t in zip(val, test))
        geo = lambda values: math.exp(sum(map(math.log, values)) / len(values))  # noqa: E731
        out.append(f"| {config} | {cells} | {geo(val):.2f} | {sum(v < 1 for v in val)} of {len(val)} | {geo(test):.2f} |")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="forms")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "defaults.jsonl"))
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if args.summary:
        print(summary([json.loads(line) for line in Path(args.out).read_text().splitlines()]))
        return
    paths = write_csvs(tempfile.mkdtemp(prefix="series-"))
    with open(args.out, "a") as out:
        for name in args.cases.split(","):
            case = CASES[name]
            for horizon in case["horizons"]:
                for config in GRIDS[args.grid]:
                    result = fit_one(paths[name], case, horizon, config)
                    if result is None:
                        continue
                    line = {"grid": args.grid, "series": name, "horizon": horizon, "config": config, **result}
                    print(json.dumps(line), flush=True)
                    out.write(json.dumps(line) + "\n")
                    out.flush()


if __name__ == "__main__":
    main()
