"""How the collection defaults were chosen: M3's validation targets only, never its test targets.

    python benchmarks/m3_validation.py GROUP '{"target": "last"}' [--baselines]

Each series' last `h` points (its test targets) are never read. Of the rest,
the last `h` points are the validation targets; the global model
(pipeline.global_model, as `main` trains a collection) is trained on what
precedes them with the settings given as JSON over GlobalSettings' defaults,
and its validation sMAPE is printed, one line per call. `--baselines` prints
statsforecast's on the same validation targets. The lines behind the defaults
are in benchmarks/results/m3_validation.md.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.m3 import GROUPS, load_m3  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    group, settings = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from pipeline import collection as coll
    from pipeline import global_model, metrics

    _, horizon, season = GROUPS[group]
    series = load_m3()[group]
    # Whole series, so that the columns are `main`'s; nothing below reads the last h (test) columns:
    # training targets end before the validation targets, whose inputs end where they start.
    collection = coll.from_arrays([key for key, _, _ in series], [np.r_[train, test] for _, train, test in series])
    width = settings.pop("input_width", coll.default_input_width(horizon, season))
    chosen = global_model.GlobalSettings(input_width=width, horizon=horizon, season=season, **settings)
    started = time.perf_counter()
    training, serving = global_model.build(chosen, typical_std=float(np.median(np.std(collection.values, axis=1))))
    history = global_model.fit(training, collection, chosen)
    out, _, y = global_model.forecast_split(serving, collection, chosen, "val")
    print(f"{group} {json.dumps(settings)} width {width} epochs {len(history.val_loss)} best {history.best_epoch} "
          f"val smape {metrics.smape_terms(y, out['forecast']).mean():.2f} secs {time.perf_counter() - started:.0f}",
          flush=True)
    if "--baselines" in argv:
        from pipeline import baselines

        before = [collection.series(i)[:-2 * horizon] for i in range(len(collection))]
        for name, forecast in baselines.forecast(before, horizon, season).items():
            print(f"{group} {name} val smape {metrics.smape_terms(y, forecast['forecast']).mean():.2f}", flush=True)


if __name__ == "__main__":
    main()
