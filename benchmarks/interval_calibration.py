"""Which windows should calibrate the zero-shot model's intervals (issue 32, item 3),
measured on series the shipped pretrained model never saw and nothing reports.

    python benchmarks/interval_calibration.py [--limit N] [--model M.keras --name STEM]

Series: `pipeline.pretrained.SHORT_VALIDATION`, the third of the M1 and M3
series shorter than 26 points that pretraining leaves out (215; until
2026-12-07 pretraining skipped every series that short and this file read all
641 of them: interval_calibration_641.json), yearly with season 0
and quarterly with season 4, at h=1 and h=3 (yearly) or 4 (quarterly) where
the pipeline accepts the series (pipeline.stages.generate_data.prepare, as a
CSV of the series is read: its own test and validation periods). Each is
forecast zero-shot by the shipped pretrained model, as `init=pretrained
fine_tune_epochs=0` serves it, with its 90 % interval calibrated two ways:

  validation   the rule before: the series' validation windows when there are
               enough for the level (9), else the half-widths calibrated across
               the corpus' series;
  series       every training and validation window of the series (none of
               them trained the pretrained model, so every residual is out of
               sample), when they are enough, else the corpus' half-widths;
  corpus       the corpus' half-widths always;
  larger       per step, the larger of the series rule's and the corpus';
  every origin what `lstm-predict --model_uri pretrained` does with a series it is
               given (pipeline.pretrained.series_half_widths): per step, the
               residuals from every origin of the series before the test period
               with at least 4 values before it, when they are enough, else the
               corpus' half-width for that step.

Reported per frequency and horizon: the coverage of all test targets together
(the binomial standard error beside it), the mean coverage per series, the
share of series whose coverage is within 10 points of 90, and the mean
interval width relative to the first rule. Writes
benchmarks/results/interval_calibration.{json,md}.
"""

import argparse
import inspect
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
LEVEL = 0.9
HORIZONS = {"YEARLY": (1, 3), "QUARTERLY": (1, 4)}
SEASONS = {"YEARLY": 0, "QUARTERLY": 4}
RULES = ("validation", "series", "corpus", "larger", "every origin")


def short_series():
    """[(key, period, values)] of every series of SHORT_VALIDATION."""
    from benchmarks.pretrained_validation import validation_sample

    return validation_sample("short")


def prepared(values, horizon, season, folder):
    """The pipeline's dataset of one series, read from a CSV as a user's would be; None if it refuses."""
    from pipeline import params
    from pipeline.errors import ParamError
    from pipeline.stages import generate_data

    path = Path(folder) / "series.csv"
    path.write_text("y\n" + "".join(f"{v:g}\n" for v in values))
    accepted = inspect.signature(generate_data.prepare).parameters
    given = {name: value for name, value in params.defaults("generate_data").items() if name in accepted}
    given.update(data_source=str(path), horizon=horizon, season=season)
    try:
        return generate_data.prepare(**given)[0]
    except ParamError:
        return None


def scored(start, dataset, horizon, season):
    """{rule: (inside (n_test, horizon) bool, width (n_test, horizon))} of the zero-shot model's interval."""
    from custom_layers import transforms

    from pipeline import data, pretrained
    from pipeline import model as forecaster

    longer = data.with_history(dataset, start.input_width)
    served = pretrained.forecasting_model(
        pretrained.adapt(start, horizon, 0.001, forecaster.standard_scale(dataset)[1], season), LEVEL)
    spread_of = served.get_layer("spread")
    window_of = served.get_layer(forecaster.FIT_WINDOW_LAYER)

    def relative_residuals(split):
        x = np.asarray(longer[f"x_{split}"], np.float32)
        forecast = forecaster.predict(served, x)["forecast"]
        spread = np.asarray(spread_of(window_of(x))).reshape(-1, 1)
        return np.abs(np.asarray(dataset[f"y_{split}"]) - forecast) / spread, forecast, spread

    res_train, _, _ = relative_residuals("train")
    res_val, _, _ = relative_residuals("val")
    _, forecast_test, spread_test = relative_residuals("test")
    needed = transforms.min_windows_for(LEVEL)
    corpus = np.asarray(start.half_width[:horizon], np.float64)

    def half_widths(residuals):
        return transforms.conformal_half_width(residuals, LEVEL) if len(residuals) >= needed else corpus

    own = np.concatenate([res_train, res_val])
    widths = {"validation": (half_widths(res_val), len(res_val) >= needed),
              "series": (half_widths(own), len(own) >= needed), "corpus": (corpus, False),
              "larger": (np.maximum(half_widths(own), corpus), len(own) >= needed)}
    before_test = np.asarray(dataset["series"])[:int(np.asarray(dataset["origin_test"])[0])]
    q, calibrated_steps, _ = pretrained.series_half_widths(served, start.input_width, before_test, corpus)
    widths["every origin"] = (q, calibrated_steps == horizon)
    out = {}
    for rule, (q, calibrated) in widths.items():
        half = q[np.newaxis, :] * spread_test
        inside = np.abs(np.asarray(dataset["y_test"]) - forecast_test) <= half
        out[rule] = (inside, 2 * half, calibrated)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="the first N series only (a quick look)")
    parser.add_argument("--model", default=None, help="a pretrained .keras file (default: the shipped model)")
    parser.add_argument("--name", default="interval_calibration", help="the results' file stem")
    args = parser.parse_args()
    from pipeline import pretrained

    model_path = Path(args.model or pretrained.SHIPPED).resolve()
    start = pretrained.load(str(model_path))
    series = short_series()[: args.limit or None]
    groups = {}
    skipped = 0
    with tempfile.TemporaryDirectory() as folder:
        for i, (key, period, values) in enumerate(series):
            for horizon in HORIZONS[period]:
                dataset = prepared(values, horizon, SEASONS[period], folder)
                if dataset is None:
                    skipped += 1
                    continue
                for rule, (inside, width, own) in scored(start, dataset, horizon, SEASONS[period]).items():
                    group = groups.setdefault((period, horizon), {}).setdefault(rule, [])
                    group.append({"series": key, "inside": inside.tolist(), "width": float(width.mean()),
                                  "own": own})
            if (i + 1) % 50 == 0:
                print(f"{i + 1} of {len(series)} series", flush=True)
    rows = []
    for (period, horizon), by_rule in sorted(groups.items()):
        base_width = np.array([entry["width"] for entry in by_rule["validation"]])
        for rule in RULES:
            entries = by_rule[rule]
            inside = np.concatenate([np.ravel(entry["inside"]) for entry in entries])
            per_series = np.array([100 * np.mean(entry["inside"]) for entry in entries])
            pooled = float(inside.mean())
            rows.append({"period": period, "horizon": horizon, "rule": rule, "series": len(entries),
                         "targets": int(inside.size), "coverage": round(100 * pooled, 1),
                         "standard_error": round(100 * math.sqrt(pooled * (1 - pooled) / inside.size), 1),
                         "mean_series_coverage": round(float(per_series.mean()), 1),
                         "series_within_10_points": round(float(np.mean(np.abs(per_series - 100 * LEVEL) <= 10)), 3),
                         "own_calibration": round(float(np.mean([entry["own"] for entry in entries])), 3),
                         "width_vs_validation": round(float(np.median(
                             np.array([entry["width"] for entry in entries]) / base_width)), 3)})
    results = {"command": "python benchmarks/interval_calibration.py " + " ".join(sys.argv[1:]),
               "machine": machine(), "level": LEVEL,
               "model": str(model_path.relative_to(REPO)) if model_path.is_relative_to(REPO) else str(model_path),
               "series": len(series), "series_horizons_refused": skipped, "rows": rows}
    lines = ["| period | h | rule | series | test targets | coverage % (± s.e.) | mean per series | "
             "series within 10 points | own calibration | width / validation rule |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['period'].lower()} | {r['horizon']} | {r['rule']} | {r['series']} | {r['targets']} | "
              f"{r['coverage']} ± {r['standard_error']} | {r['mean_series_coverage']} | "
              f"{100 * r['series_within_10_points']:.0f} % | {100 * r['own_calibration']:.0f} % | "
              f"{r['width_vs_validation']} |" for r in rows]
    lines += ["", f"{len(series)} series under 26 points of M1 and M3 (SHORT_VALIDATION) that the shipped pretrained "
              "model never saw; "
              f"{skipped} series-horizon pairs the pipeline refuses (too short) left out. 'own calibration': the "
              "share of series calibrated on their own windows (the rest use the corpus' half-widths). "
              "Machine: " + results["machine"].get("cpu", "")]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
