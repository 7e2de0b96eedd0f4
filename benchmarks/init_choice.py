"""How often init=auto's rule keeps the better of two candidates of known quality (issue 32, item 2).

    python benchmarks/init_choice.py [--draws 2000]

Each draw makes the per-window losses of a trained candidate and of the zero-shot model
on n overlapping h-step validation windows (squared Gaussian errors, the better
candidate's variance `ratio` times the other's), and asks `train.choose_init` which to
keep, at each evidence level alpha (`train.INIT_EVIDENCE` is the default). Reports, per
(n, h, ratio), the share of draws that keep the better candidate when the trained one is
better, and when the zero-shot model is; at ratio 1 (equals) the second is the share that
keeps the zero-shot model. No training: seconds, on any machine. Writes
benchmarks/results/init_choice.{json,md}.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.stages import train  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SETTINGS = [(9, 1), (14, 1), (20, 1), (14, 6), (20, 12)]  # validation windows, horizon
RATIOS = (0.5, 0.7, 1.0)
ALPHAS = (0.1, 0.2, 0.3, 0.5)


def losses(rng, n, horizon, better, ratio):
    """Per-window mean squared errors of "local" and "zero_shot" on n windows of h steps that
    overlap as a series' windows do (one error path per candidate, stride 1)."""
    paths = np.lib.stride_tricks.sliding_window_view(rng.normal(size=(2, n + horizon - 1)), horizon, axis=1)
    scale = {"zero_shot": 1.0, "local": 1.0, better: np.sqrt(ratio)}
    return {"zero_shot": np.mean((scale["zero_shot"] * paths[0]) ** 2, axis=1),
            "local": np.mean((scale["local"] * paths[1]) ** 2, axis=1)}


def share_kept(n, horizon, better, ratio, alpha, draws, seed=0):
    rng = np.random.default_rng(seed)
    return sum(train.choose_init(losses(rng, n, horizon, better, ratio), horizon, alpha)[0] == better
               for _ in range(draws)) / draws


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = []
    for n, horizon in SETTINGS:
        for ratio in RATIOS:
            rows.append({"n": n, "horizon": horizon, "ratio": ratio, **{
                f"alpha_{alpha}": [share_kept(n, horizon, "local", ratio, alpha, args.draws),
                                   share_kept(n, horizon, "zero_shot", ratio, alpha, args.draws)]
                for alpha in ALPHAS}})
    results = {"command": "python benchmarks/init_choice.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "draws": args.draws, "default_alpha": train.INIT_EVIDENCE, "rows": rows}
    lines = [f"# init=auto's rule against candidates of known quality ({args.draws} draws each)", "",
             "Each cell: the share of draws that keep the better candidate when the new network is better / "
             "when the zero-shot model is (at ratio 1, equals, the second is the share kept zero-shot). "
             f"The default level is alpha = {train.INIT_EVIDENCE:g}.", "",
             "| windows | horizon | MSE ratio | " + " | ".join(f"alpha {a:g}" for a in ALPHAS) + " |",
             "|---:|---:|---:|" + "---:|" * len(ALPHAS)]
    for row in rows:
        lines.append(f"| {row['n']} | {row['horizon']} | {row['ratio']:g} | " + " | ".join(
            "{:.2f} / {:.2f}".format(*row[f"alpha_{a}"]) for a in ALPHAS) + " |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "init_choice.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "init_choice.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
