"""The tables of docs/performance.md, generated from benchmarks/results/*.json.

    python benchmarks/performance_doc.py           # rewrites the tables in docs/performance.md
    python benchmarks/performance_doc.py --check   # exit 1 if a table differs from its results file

Each table in the page sits between `<!-- table: NAME -->` and `<!-- end table -->`;
everything else on the page is prose, whose numbers cite the results file they
come from. tests/benchmarks/test_performance_doc.py runs the check.
"""

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PAGE = REPO / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- end table -->)", re.S)

TRAINING_LABELS = {
    "custom_cell": "custom cell, as the pipeline trains it (fused `LSTM` layer)",
    "custom_cell_grappler": "custom cell, Grappler on (the pipeline's path now)",
    "keras_lstm": "`keras.layers.LSTM`, same `fit`",
    "keras_lstm_xla": "`keras.layers.LSTM`, XLA",
    "torch_lstm": "PyTorch `nn.LSTM`",
}
STAGE_LABELS = {
    "custom_cell": "`fit` alone (custom cell)",
    "torch_lstm": "PyTorch loop",
    "train_stage_local": "the train stage, SQLite store",
    "train_stage_server": "the train stage, `lstm-server`",
    "train_stage_auth": "the train stage, `lstm-server --auth`, signed in",
}
STORE_LABELS = {"sqlite": "SQLite", "server": "`lstm-server`", "auth": "`lstm-server --auth`, signed in"}
SERVING_LABELS = {
    "keras_predict": "Keras `model.predict` (reference)",
    "saved_model": "SavedModel `serving_default` (fused `BlockLSTM`), in process",
    "saved_model_stepwise": "SavedModel `serve_stepwise` (standard operations only), in process",
    "saved_model_xla": "SavedModel `serve_xla`, in process",
    "rest": "REST, `mlflow models serve` on 127.0.0.1",
}


def load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def source(name, results):
    quiet = results.get("quiet", {})
    counted = (f", {quiet['measurements'] - quiet['busy_measurements']} of {quiet['measurements']} measurements quiet"
               if quiet else "")
    return f"\nFrom `benchmarks/results/{name}.json` (`{results.get('command', '').strip()}`{counted}).\n"


def label(name, seed_workload):
    """A contender's name; in a file from before Grappler was dropped, `custom_cell` ran with it off."""
    if name == "custom_cell" and "custom_cell_grappler" in seed_workload:
        return "custom cell, Grappler off (the pipeline's path when measured)"
    return TRAINING_LABELS.get(name, name)


def pipeline_contender(seed_workload):
    """The contender that is the pipeline's path now."""
    return seed_workload.get("custom_cell_grappler", seed_workload["custom_cell"])


def training_table():
    results = load("training")
    rows = []
    for name, r in results["seed_workload"].items():
        rows.append([label(name, results["seed_workload"]),
                     f"{r['epoch_seconds_median']:.3f} ({r['epoch_seconds_min']:.3f}–{r['epoch_seconds_max']:.3f})",
                     f"{r['epoch_time_vs_custom_cell']:.2f}", f"{r['first_epoch_seconds_median']:.2f}",
                     f"{r['seconds_to_val_mse_1e-4_median']:.2f}", f"{r['windows_per_second_batch_256_median']:.0f}",
                     f"{r['peak_rss_mb_median']:.0f}"])
    return table(["contender", "s/epoch, median (min–max)", "× custom cell", "first epoch s",
                  "s until val MSE < 1e-4", "windows/s, batch 256", "peak RSS MB"], rows) + source("training", results)


def scaling_table():
    results = load("training")
    cells = {}
    for r in results["scaling"]:
        key = (r["time_steps"], r["hidden_units"], r["batch_size"])
        cells.setdefault(key, {})[r["contender"]] = r.get("epoch_seconds")
    contenders = [c for c in ("custom_cell", "keras_lstm", "torch_lstm") if any(c in v for v in cells.values())]
    rows = [[*key, *(f"{values[c]:.3f}" if values.get(c) is not None else "—" for c in contenders)]
            for key, values in sorted(cells.items())]
    return table(["time_steps", "hidden", "batch", *(TRAINING_LABELS[c].split(" (")[0].split(",")[0] for c in contenders)], rows,
                 ["---:"] * (3 + len(contenders))) + source("training", results)


def newest_pipeline():
    """(file name, results) of the newest measurement of the default pipeline."""
    for name in ("train_stage", "training"):
        results = load(name)
        if results and results.get("pipeline"):
            return name, results
    raise SystemExit("no results file measures the default pipeline")


def pipeline_table():
    name, results = newest_pipeline()
    p = results["pipeline"]
    rows = [["generating the data (first run)", f"{p['first_run_wall_seconds']:.1f}", f"{p['first_run_peak_rss_mb']:.0f}"],
            [f"data reused, median of {sum(r['data_reused'] for r in p['runs'])}",
             f"{p['data_reused_wall_seconds_median']:.1f} ({p['data_reused_wall_seconds_min']:.1f}–"
             f"{p['data_reused_wall_seconds_max']:.1f})", f"{p['data_reused_peak_rss_mb_max']:.0f}"],
            ["of which: MLflow's command line starting", f"{p['mlflow_cli_import_seconds_median']:.1f}", ""],
            ["of which: the train stage", f"{p['data_reused_train_stage_seconds_median']:.1f}", ""],
            ["of which: the evaluate stage", f"{p['data_reused_evaluate_stage_seconds_median']:.1f}", ""]]
    return (table(["`mlflow run . --env-manager local`", "wall s", "peak RSS MB"], rows)
            + f"\nTest RMSE of every run: {p['test_rmse']:.6g}." + source(name, results))


def train_stage_table():
    results = load("train_stage")
    if results is None:
        return "(No results yet: `python benchmarks/training.py --contenders ...` writes them.)\n"
    seed = results["seed_workload"]
    fit, torch = seed["custom_cell"]["epoch_seconds_median"], seed.get("torch_lstm", {}).get("epoch_seconds_median")
    rows = []
    for name, r in seed.items():
        epoch = r["epoch_seconds_median"]
        rows.append([STAGE_LABELS.get(name, name),
                     f"{epoch:.3f} ({r['epoch_seconds_min']:.3f}–{r['epoch_seconds_max']:.3f})",
                     f"{epoch / fit:.2f}", f"{epoch / torch:.2f}" if torch else "—",
                     f"{r['requests_median']:.0f}" if "requests_median" in r else "—",
                     f"{r['wall_seconds_median']:.1f}" if "wall_seconds_median" in r else "—"])
    return table(["contender", "s/epoch, median (min–max)", "× `fit`", "× PyTorch", "requests per run",
                  "wall s per run"], rows) + source("train_stage", results)


def requests_table():
    requests, stage = load("requests"), load("train_stage")
    rows = []
    if requests:
        runs = requests["runs"]
        before, now = runs.get("before"), runs.get("now")
        for label, key in (("default `mlflow run .`, data reused", "default_run_requests_median"),
                           ("a tuning trial (20 epochs)", "trial_requests")):
            if before and now:
                rows.append([label, f"{before[key]:g}", f"{now[key]:g}", f"{now[key] / before[key]:.2f}"])
    text = table(["requests to a tracking server", f"before ({requests['runs']['before']['commit']})",
                  f"now ({requests['runs']['now']['commit']})", "now / before"], rows) if rows else ""
    text += "\nFrom `benchmarks/results/requests.json` (`python benchmarks/requests_made.py`).\n" if rows else ""
    if stage and "request_seconds" in stage:
        cost = stage["request_seconds"]
        text += ("\n" + table(["one request (GET experiments/get), median", "ms"], [
            ["`lstm-server`", f"{1000 * cost['server_request_seconds_median']:.1f}"],
            ["`lstm-server --auth`, signed in (a checked password trusted for 60 s, the default)",
             f"{1000 * cost['auth_request_seconds_median']:.1f}"],
            ["`lstm-server --auth --auth-cache-seconds 0` (the password hashed on every request)",
             f"{1000 * cost['auth_checked_every_request_request_seconds_median']:.1f}"]])
            + source("train_stage", stage))
    return text or "(No results yet: `python benchmarks/requests_made.py` writes them.)\n"


def signed_in_table():
    results = load("tuning_server")
    if results is None:
        return "(No results yet: `python benchmarks/tuning.py --configs 1:none:1:server,1:none:1:auth` writes them.)\n"
    rows = [[STORE_LABELS[r["store"]], r["trials"], r["wall_s"], r["trials_per_minute"],
             f"{60 / r['trials_per_minute']:.1f}", r["requests_per_trial"]] for r in results["studies"]]
    return (table(["store", "trials", "wall s", "trials/min", "s per trial", "requests per trial (study's own included)"],
                  rows) + source("tuning_server", results))


def step_breakdown_table():
    results = load("step_breakdown")
    if results is None:
        return "(No results yet: `python benchmarks/step_breakdown.py` writes them.)\n"
    rows = [[name, f"{v['median']:.3f}", f"{v['min']:.3f}–{v['max']:.3f}"]
            for name, v in results["seconds_per_epoch"].items()]
    return table(["variant", "s per epoch, median", "min–max"], rows) + source("step_breakdown", results)


def serving_table():
    results = load("serving")
    rows = [[SERVING_LABELS.get(name, name), f"{r['latency_batch1_ms_p50']:.3g}", f"{r['latency_batch1_ms_p99']:.3g}",
             f"{r['throughput_batch256_windows_per_s']:.0f}"] for name, r in results["results"].items()]
    return table(["contender", "p50 ms, 1 window", "p99 ms, 1 window", "windows/s in batches of 256"], rows) + source(
        "serving", results)


def goals_table():
    training, serving = load("training"), load("serving")
    seed = training["seed_workload"]
    ours, torch = pipeline_contender(seed), seed.get("torch_lstm")
    rows = []
    if torch:
        ratio = ours["epoch_seconds_median"] / torch["epoch_seconds_median"]
        rows.append(["custom cell ≤ 1.0× PyTorch per epoch (seed workload)",
                     f"{ours['epoch_seconds_median']:.3f} against {torch['epoch_seconds_median']:.3f} s: {ratio:.2f}×",
                     "met" if ratio <= 1.0 else "not met"])
        ratio = ours["seconds_to_val_mse_1e-4_median"] / torch["seconds_to_val_mse_1e-4_median"]
        rows.append(["time until validation MSE < 1e-4, compilation included, ≤ 2× PyTorch's",
                     f"{ours['seconds_to_val_mse_1e-4_median']:.2f} against "
                     f"{torch['seconds_to_val_mse_1e-4_median']:.2f} s: {ratio:.2f}×",
                     "met" if ratio <= 2.0 else "not met"])
    p50 = serving["results"]["saved_model"]["latency_batch1_ms_p50"]
    rows.append(["`serving_default` in process, p50 for one window < 1 ms", f"{p50:.2f} ms",
                 "met" if p50 < 1 else "not met"])
    stage = load("train_stage")
    files = ["training", "serving"]
    if stage:
        files.append("train_stage")
        seed = stage["seed_workload"]
        local, fit = seed["train_stage_local"]["epoch_seconds_median"], seed["custom_cell"]["epoch_seconds_median"]
        rows.append(["the train stage's epoch ≤ 1.1× `fit`'s (SQLite store, side by side)",
                     f"{local:.3f} against {fit:.3f} s: {local / fit:.2f}×", "met" if local / fit <= 1.1 else "not met"])
        if "torch_lstm" in seed:
            torch = seed["torch_lstm"]["epoch_seconds_median"]
            rows.append(["the train stage's epoch ≤ 1.0× a PyTorch loop's (side by side)",
                         f"{local:.3f} against {torch:.3f} s: {local / torch:.2f}×",
                         "met" if local / torch <= 1.0 else "not met"])
    requests = load("requests")
    if requests and {"before", "now"} <= set(requests["runs"]):
        files.append("requests")
        before, now = requests["runs"]["before"], requests["runs"]["now"]
        for label, key in (("requests per default run", "default_run_requests_median"),
                           ("requests per tuning trial", "trial_requests")):
            ratio = now[key] / before[key]
            rows.append([f"{label} ≤ a third of before", f"{now[key]:g} against {before[key]:g}: {ratio:.2f}×",
                         "met" if ratio <= 1 / 3 else "not met"])
    signed_in = load("tuning_server")
    if signed_in:
        files.append("tuning_server")
        by = {r["store"]: r for r in signed_in["studies"]}
        ratio = by["server"]["trials_per_minute"] / by["auth"]["trials_per_minute"]
        rows.append(["a trial signed in ≤ 1.5× the same trial without sign-in (`lstm-server`)",
                     f"{60 / by['auth']['trials_per_minute']:.1f} against {60 / by['server']['trials_per_minute']:.1f}"
                     f" s: {ratio:.2f}×", "met" if ratio <= 1.5 else "not met"])
    side_by_side = load("pipeline")
    if side_by_side:
        name, figures = "pipeline", side_by_side["pipeline_side_by_side"]
        wall = figures["data_reused_wall_seconds_median"]
        rows.append(["default `mlflow run .` ≤ 12 s",
                     f"{wall:.1f} s (median, data reused), where commit {figures['baseline_commit']} took "
                     f"{figures['baseline_data_reused_wall_seconds_median']:.1f} s side by side: "
                     f"{figures['ratio']:.2f}×", "met" if wall <= 12 else "not met"])
    else:
        name, newest = newest_pipeline()
        wall = newest["pipeline"]["data_reused_wall_seconds_median"]
        rows.append(["default `mlflow run .` ≤ 12 s", f"{wall:.1f} s (median, data reused)",
                     "met" if wall <= 12 else "not met"])
    return table(["goal", "measured", ""], rows, ["---", "---", "---"]) + (
        "\nFrom " + ", ".join(f"`benchmarks/results/{f}.json`" for f in dict.fromkeys(files + [name])) + ".\n")


TABLES = {"goals": goals_table, "training": training_table, "scaling": scaling_table, "pipeline": pipeline_table,
          "step_breakdown": step_breakdown_table, "serving": serving_table, "train_stage": train_stage_table,
          "requests": requests_table, "signed_in": signed_in_table}


def render(page_text):
    return BLOCK.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + m.group(4), page_text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the results files")
    args = parser.parse_args(argv)
    text = PAGE.read_text()
    rendered = render(text)
    if args.check:
        if rendered != text:
            print(f"{PAGE} is out of date: run python benchmarks/performance_doc.py", file=sys.stderr)
            raise SystemExit(1)
        return
    PAGE.write_text(rendered)
    print(f"written: {PAGE}")


if __name__ == "__main__":
    main()
