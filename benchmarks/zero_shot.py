"""A zero-shot answer against its floor, side by side (issue 32, item 4).

    python benchmarks/zero_shot.py [--rounds 3] [--force]

On m1-MRC35 (144 points, held out of pretraining; h=12, season 12), each round
runs, one after the other in fresh processes:
- `mlflow --version`: the launcher's start;
- `python -c "import tensorflow, keras, mlflow"`: a stage process's imports;
- `mlflow run . -P data_source=... -P init=pretrained -P fine_tune_epochs=0`
  (each on a fresh SQLite store, as benchmarks.accuracy.zero_shot_seconds runs it);
- `lstm-predict --model_uri pretrained --input series.csv`: no run, no store.
The zero-shot run's floor is the first two together, lstm-predict's the
imports alone; the goals are 1.25x each. Prints the medians and ratios and
writes benchmarks/results/zero_shot.{json,md}; each command is bracketed by
benchmarks.quiet, and a busy machine writes nothing unless --force.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch, timings_markdown  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
GOAL_RATIO = 1.25


def commands(series):
    return {
        "launcher": ["mlflow", "--version"],
        "imports": [sys.executable, "-c", "import tensorflow, keras, mlflow"],
        "zero_shot_run": ["mlflow", "run", str(REPO), "--env-manager", "local", "-P", f"data_source={series}",
                          "-P", "init=pretrained", "-P", "fine_tune_epochs=0", "-P", "season=12", "-P", "horizon=12"],
        "lstm_predict": ["lstm-predict", "--model_uri", "pretrained", "--input", str(series)],
    }


def timed(command, folder):
    """Seconds from the process' start to its exit, in `folder` (no tracking store set:
    `mlflow run` makes folder/mlflow.db, lstm-predict must make none)."""
    env = {name: value for name, value in os.environ.items() if name != "MLFLOW_TRACKING_URI"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return elapsed, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    from pipeline.pretrained import competition_series

    watch = Watch()
    times = {}
    with tempfile.TemporaryDirectory(prefix="zero-shot-bench-") as folder:
        folder = Path(folder)
        series = folder / "m1-MRC35.csv"
        series.write_text("y\n" + "".join(f"{v:g}\n" for v in competition_series("m1")["MRC35"]))
        for round_ in range(1, args.rounds + 1):
            for name, command in commands(series).items():
                place = folder / f"{name}-{round_}"
                place.mkdir()
                with watch.measure(f"{name}, round {round_}"):
                    seconds, result = timed(command, place)
                times.setdefault(name, []).append(seconds)
                if name == "lstm_predict" and any(place.iterdir()):
                    raise SystemExit(f"lstm-predict left files in {place}: {sorted(p.name for p in place.iterdir())}")
                if name == "zero_shot_run" and "the pretrained model zero-shot" not in result.stdout:
                    raise SystemExit("the zero-shot run did not serve the pretrained model zero-shot:\n"
                                     + result.stdout[-2000:])
    median = {name: statistics.median(values) for name, values in times.items()}
    floors = {"zero_shot_run": median["launcher"] + median["imports"], "lstm_predict": median["imports"]}
    ratios = {name: median[name] / floor for name, floor in floors.items()}
    goals = [f"zero-shot `mlflow run .`: median {median['zero_shot_run']:.1f} s, {ratios['zero_shot_run']:.2f}x its "
             f"floor (launcher + imports, {floors['zero_shot_run']:.1f} s); goal {GOAL_RATIO}x: "
             f"{'met' if ratios['zero_shot_run'] <= GOAL_RATIO else 'not met'}",
             f"`lstm-predict --model_uri pretrained`: median {median['lstm_predict']:.1f} s, "
             f"{ratios['lstm_predict']:.2f}x the imports ({floors['lstm_predict']:.1f} s); goal {GOAL_RATIO}x: "
             f"{'met' if ratios['lstm_predict'] <= GOAL_RATIO else 'not met'}"]
    results = {"machine": machine(), "command": "python benchmarks/zero_shot.py " + " ".join(sys.argv[1:]),
               "series": "m1-MRC35 (144 points), h=12, season 12", "rounds": args.rounds,
               "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
               "median_seconds": {name: round(value, 2) for name, value in median.items()},
               "ratios": {name: round(value, 3) for name, value in ratios.items()}, "goals": goals}
    watch.write_or_refuse(results, RESULTS / "zero_shot.json", force=args.force)
    text = timings_markdown(times, watch.summary(), f"{args.rounds} rounds on m1-MRC35 (144 points, h=12)",
                            goals, results["machine"])
    (RESULTS / "zero_shot.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
