"""A large collection in memory: 100 000 series of 300 points, a few epochs of the global model.

    python benchmarks/many_series_memory.py [--series 100000] [--points 300] [--epochs 3]
                                            [--windows-per-series 4]

Goal (issue 23): peak memory under 4 GB, and the throughput in training windows
per second. The series are synthetic (a random level, trend, yearly season of 12
and noise each), built straight into a Collection (pipeline.collection.from_arrays),
then trained by pipeline.global_model.fit as `main` trains a collection: windows
are (series, end) indices gathered from the 120 MB matrix batch by batch, never
one tensor of every window. The peak is the process's maximum resident set size
(getrusage), which includes TensorFlow itself. Writes
benchmarks/results/many_series_memory.json; the load is recorded beside the
seconds (benchmarks.quiet), since memory does not depend on it but throughput does.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n, points, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(points, dtype=np.float32)
    level = rng.uniform(10, 1000, (n, 1)).astype(np.float32)
    trend = rng.normal(0, 0.002, (n, 1)).astype(np.float32)
    season = rng.uniform(0, 0.2, (n, 1)).astype(np.float32) * np.sin(2 * np.pi * t / 12)
    noise = rng.normal(0, 0.05, (n, points)).astype(np.float32)
    return level * (1 + trend * t + season + noise)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--windows-per-series", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
    from pipeline import collection as coll
    from pipeline import global_model

    before = peak_mb()
    values = synthetic(args.series, args.points)
    collection = coll.Collection([str(i) for i in range(args.series)], values,
                                 np.full(args.series, args.points), np.full(args.series, args.points - 1.0))
    horizon, season = 18, 12
    settings = global_model.GlobalSettings(input_width=coll.default_input_width(horizon, season), horizon=horizon,
                                           season=season, target="last", epochs=args.epochs, patience=0,
                                           batch_size=args.batch_size, windows_per_series=args.windows_per_series)
    rows, _ = coll.training_windows(collection, settings.input_width, horizon)
    watch = Watch()
    training, _ = global_model.build(settings, typical_std=float(np.median(values.std(axis=1))))
    epoch_seconds = []
    last = [time.perf_counter()]

    def on_epoch_end(epoch, logs):
        now = time.perf_counter()
        epoch_seconds.append(now - last[0])
        last[0] = now
        print(f"epoch {epoch}: {epoch_seconds[-1]:.1f} s, loss {logs['loss']:.4f}, val {logs['val_loss']:.4f}, "
              f"peak {peak_mb():.0f} MB", flush=True)

    with watch.measure("training"):
        history = global_model.fit(training, collection, settings, on_epoch_end)
    # The first epoch traces the step; the others are the steady rate.
    steady = epoch_seconds[1:] or epoch_seconds
    results = {
        "command": "python benchmarks/many_series_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(), "series": args.series, "points": args.points, "input_width": settings.input_width,
        "horizon": horizon, "windows_available": int(len(rows)), "windows_per_epoch": history.windows_per_epoch,
        "batch_size": args.batch_size, "epochs": len(history.val_loss), "epoch_seconds": epoch_seconds,
        "windows_per_second": history.windows_per_epoch / float(np.median(steady)),
        "matrix_mb": values.nbytes / 2**20, "peak_mb_before_data": before, "peak_mb": peak_mb(),
        "goal_peak_mb": 4096, "quiet": watch.summary(),
    }
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "quiet")}, indent=1))
    (RESULTS / "many_series_memory.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS / 'many_series_memory.json'}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
