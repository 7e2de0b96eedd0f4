"""What an ensemble of N networks costs against one, and whether one Keras model
with N branches trains them faster than N separate fits.

    python benchmarks/ensemble_cost.py [--members 5] [--epochs 20] [--rounds 3] [--force]

On a CSV-like workload (a noisy seasonal series of 2000 points: about 1400
training windows of 49 inputs, horizon 1, target 'last', per-window scaling,
batch 32, Adam 0.001), each round times, in this one process and alternating:
one network; N networks as one model with N branches (what `train` builds);
N one-network fits one after another. Prints the medians of seconds per fit
(compilation included) and their ratios; writes benchmarks/results/ensemble_cost.json,
unless the machine was busy (benchmarks.quiet; --force writes it marked busy).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    watch = Watch()

    import keras
    import numpy as np

    from pipeline import data
    from pipeline import model as forecaster

    rng = np.random.default_rng(0)
    times = np.arange(2000.0)
    dataset = data.make_series_dataset(times, 50 + 10 * np.sin(2 * np.pi * times / 24) + rng.normal(0, 1, 2000),
                                       50, 1, 0.1, 0.2)
    scale = forecaster.standard_scale(dataset)

    def fit(members, seed):
        keras.utils.set_random_seed(seed)
        model = forecaster.build_model(50, 0.001, 1, "window", scale, "last", 0, members)
        forecaster.fit(model, dataset, args.epochs, 32, patience=0, seed=seed)

    contenders = {
        "one network": lambda: fit(1, 0),
        f"{args.members} networks, one model": lambda: fit(args.members, 0),
        f"{args.members} networks, {args.members} fits": lambda: [fit(1, seed) for seed in range(args.members)],
    }
    seconds = {name: [] for name in contenders}
    for number in range(1, args.rounds + 1):
        for name, contender in contenders.items():
            with watch.measure(f"{name}, round {number}"):
                started = time.perf_counter()
                contender()
                seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    base = medians["one network"]
    print(f"{args.epochs} epochs of {len(dataset['y_train'])} windows, {args.rounds} alternating rounds\n")
    print("| contender | s per fit, median (min-max) | x one network |\n|---|---:|---:|")
    for name, values in seconds.items():
        print(f"| {name} | {medians[name]:.1f} ({min(values):.1f}-{max(values):.1f}) | {medians[name] / base:.2f} |")
    watch.write_or_refuse({"command": "python benchmarks/ensemble_cost.py " + " ".join(sys.argv[1:]),
                           "machine": machine(), "epochs": args.epochs, "members": args.members,
                           "n_train": len(dataset["y_train"]), "seconds": seconds, "median": medians},
                          REPO / "benchmarks" / "results" / "ensemble_cost.json", force=args.force)


if __name__ == "__main__":
    main()
