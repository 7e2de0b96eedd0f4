"""Every pipeline parameter, written once: type, default, allowed values, meaning.

The MLproject file mirrors this table (tests/pipeline/test_params.py checks that
the two agree), the stage command lines are built from it, and values are
logged to MLflow in the canonical string form that `Param.format` gives, so that
"50", "50.0" and 50 never make two different-looking runs.
"""

import itertools
import math
import re
from dataclasses import dataclass
from typing import Callable


from pipeline.errors import ParamError  # noqa: F401  (re-exported: raised by every check)


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int, float or str
    default: object
    allowed: str  # what is allowed, in words: "a positive integer"
    check: Callable[[object], bool]
    help: str

    def parse(self, raw):
        """Converts a command-line string (or a Python value) and checks it."""
        try:
            value = _CONVERTERS[self.type](raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.check(value):
            raise ParamError(
                f"Received an invalid value for parameter `{self.name}`, "
                f"expected {self.allowed}, got {raw!r}."
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


def _run_id(value):
    return re.fullmatch(r"[0-9a-f]{32}", value) is not None


# One model call per step: beyond this the plot would take minutes and show nothing new.
MAX_FREE_RUN_STEPS = 10_000


_PARAMS = [
    # generate_data
    Param("data_source", str, "sine", "'sine' or the path of a CSV file", bool,
          "the series: the seed's sine windows, or a CSV file (relative to the project directory)"),
    Param("column", str, "auto", "'auto' or a column name", bool,
          "CSV only: the column of values; 'auto' takes the only or first numeric one"),
    Param("time_column", str, "none", "'none' or a column name", bool,
          "CSV only: a column of dates or numbers used as the time axis"),
    Param("fill_missing", str, "error", "'error' or 'interpolate'", lambda v: v in ("error", "interpolate"),
          "CSV only: fail on missing or non-numeric values, or fill them linearly in time"),
    Param("n_samples", int, 1000, "a positive integer", _positive,
          "sine only: number of windows"),
    Param("time_steps", int, 50, "an integer of at least 2", lambda v: v >= 2,
          "points per window: the model reads time_steps - horizon and predicts the rest"),
    Param("horizon", int, 1, "a positive integer", _positive,
          "how many points after its input the model predicts, in one shot"),
    Param("noise", float, 0.0, "a float of at least 0", lambda v: v >= 0,
          "sine only: standard deviation of Gaussian noise added to the sine"),
    Param("val_fraction", float, 0.1, "a float strictly between 0 and 1", _fraction,
          "share of windows, before the test windows, used for validation"),
    Param("test_fraction", float, 0.2, "a float strictly between 0 and 1", _fraction,
          "share of windows, the last ones, held out for testing"),
    Param("seed", int, 42, "an integer of at least 0", lambda v: v >= 0,
          "random seed for the noise, the weights and the shuffling"),
    # train
    Param("data_uri", str, "auto", "'auto' or an artifact URI such as runs:/<run id>/data",
          bool, "a generate_data run's `data` artifact; 'auto': in train the newest one, "
          "in evaluate the one the model was trained on"),
    Param("hidden_units", int, 50, "a positive integer", _positive,
          "size of the LSTM's hidden and cell states"),
    Param("learning_rate", float, 0.001, "a float above 0", _positive,
          "Adam's learning rate"),
    Param("epochs", int, 50, "a positive integer", _positive,
          "maximum number of passes over the training windows"),
    Param("batch_size", int, 32, "a positive integer", _positive,
          "windows per gradient step"),
    Param("scaling", str, "auto", "'auto', 'standard' or 'none'", lambda v: v in ("auto", "standard", "none"),
          "standardize inside the model with the training split's mean and std; "
          "'auto': 'none' for the sine (the seed's behaviour), 'standard' for a CSV series"),
    Param("patience", int, 10, "an integer of at least 0", lambda v: v >= 0,
          "stop after this many epochs without a lower validation loss (0: never stop early)"),
    # evaluate
    Param("model_uri", str, "auto", "'auto' or a model URI", bool,
          "evaluate: a train run's runs:/<id>/keras_model/model.keras; predict: an MLflow model "
          "(models:/<id> or runs:/<id>/model); 'auto': the newest train run's"),
    Param("season", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "season length in time steps for the seasonal naive baseline (0: no such baseline)"),
    Param("free_run_steps", int, 300, f"an integer from 1 to {MAX_FREE_RUN_STEPS}",
          lambda v: 0 < v <= MAX_FREE_RUN_STEPS,
          "steps of the free-running forecast plot"),
    # predict
    Param("input", str, "-", "a .csv or .json file, JSON windows, or '-' for JSON on standard input", bool,
          "what to forecast: a CSV series (its last values), or windows as JSON [[v1, v2, ...], ...]"),
    Param("output", str, "-", "'-' or a file path", bool,
          "where to write the forecasts as CSV, one row per window ('-': standard output)"),
    # sweep
    Param("max_trials", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "run this many trials drawn at random from the grid (0: the whole grid)"),
    Param("sweep_seed", int, 0, "an integer of at least 0", lambda v: v >= 0,
          "seed of the random draw of trials"),
    Param("registered_model_name", str, "lstm-forecaster", "a model name without '/' or ':'",
          lambda v: bool(v) and not set(v) & set("/:"),
          "the Model Registry name under which the best trial's model is registered"),
    # compare
    Param("experiment", str, "auto", "'auto' or an experiment name or id", bool,
          "the experiment whose pipeline runs to compare ('auto': the current one)"),
    Param("parent_run_id", str, "none", "'none' or a run id (32 hex digits)",
          lambda v: v == "none" or _run_id(v),
          "compare only the pipeline runs nested under this run, such as a sweep"),
    # train and main
    Param("resume_from", str, "none", "'none' or the id (32 hex digits) of a KILLED or FAILED run",
          lambda v: v == "none" or _run_id(v),
          "continue an interrupted train (or main) run from its last checkpoint, with the same "
          "parameters, to the same number of epochs"),
    # main
    Param("reuse_data", str, "true", "'true' or 'false'", lambda v: v in ("true", "false"),
          "reuse a finished generate_data run with the same parameters and code"),
]

PARAMS = {param.name: param for param in _PARAMS}

DATA_PARAMS = [
    "data_source", "column", "time_column", "fill_missing", "n_samples", "time_steps", "horizon",
    "noise", "val_fraction", "test_fraction", "seed",
]
TRAIN_PARAMS = ["hidden_units", "learning_rate", "epochs", "batch_size", "scaling", "patience", "seed"]
EVALUATE_PARAMS = ["season", "free_run_steps"]

SWEEP_PARAMS = ["max_trials", "sweep_seed", "registered_model_name"]

STAGE_PARAMS = {
    "generate_data": DATA_PARAMS,
    "train": ["data_uri"] + TRAIN_PARAMS + ["resume_from"],
    "evaluate": ["model_uri", "data_uri"] + EVALUATE_PARAMS,
    "predict": ["model_uri", "input", "column", "output"],
    "compare": ["experiment", "parent_run_id"],
    "main": DATA_PARAMS
    + [name for name in TRAIN_PARAMS if name not in DATA_PARAMS]
    + EVALUATE_PARAMS
    + ["reuse_data", "resume_from"],
}


def defaults(stage):
    return {name: PARAMS[name].default for name in STAGE_PARAMS[stage]}


def parse(stage, raw_values):
    """Checks every value for `stage` up front; unknown names are errors too.

    `raw_values` maps names to strings or Python values; missing names take
    their defaults. Returns the typed values, in the stage's order.
    """
    unknown = sorted(set(raw_values) - set(STAGE_PARAMS[stage]))
    if unknown:
        raise ParamError(
            f"Received unknown parameter `{unknown[0]}` for stage `{stage}`, "
            f"expected one of: {', '.join(STAGE_PARAMS[stage])}."
        )
    values = {
        name: PARAMS[name].parse(raw_values[name]) if name in raw_values else PARAMS[name].default
        for name in STAGE_PARAMS[stage]
    }
    check_combination(values)
    return values


def check_combination(values):
    """Checks the values that are each allowed but wrong together, for the names
    present in `values`: a window longer than its horizon, splits that leave
    every set non-empty (sine: from `n_samples`; a CSV series is checked when it
    is read), a season that fits the input window. Raises a one-line ParamError."""
    from pipeline import data  # data imports this module

    if {"time_steps", "horizon"} <= set(values):
        data.Windowing(values["time_steps"], values["horizon"])
    if {"val_fraction", "test_fraction"} <= set(values):
        val, test = values["val_fraction"], values["test_fraction"]
        if val + test >= 1:
            raise ParamError(
                f"Received invalid values for parameters `val_fraction` and `test_fraction`, expected a "
                f"sum below 1 so that windows are left for training, got {val} + {test} = {val + test:g}."
            )
        if values.get("data_source") == "sine" and {"n_samples", "time_steps", "horizon"} <= set(values):
            gap = data.sine_gap(values["time_steps"], values["horizon"])
            data.split_sizes(values["n_samples"], val, test, gap)
    if values.get("season") and {"time_steps", "horizon"} <= set(values):
        input_width = values["time_steps"] - values["horizon"]
        if values["season"] > input_width:
            raise ParamError(
                f"Received an invalid value for parameter `season`, expected 0 or an integer from 1 to "
                f"the input length {input_width} (time_steps - horizon), got {values['season']}."
            )


def formatted(values):
    """Values as logged to MLflow: {name: canonical string}."""
    return {name: PARAMS[name].format(value) for name, value in values.items()}

# A sweep takes every parameter of main but resume_from, each as one value or a
# comma-separated list.
SWEPT_PARAMS = [name for name in STAGE_PARAMS["main"] if name != "resume_from"]
STAGE_PARAMS["sweep"] = SWEPT_PARAMS + SWEEP_PARAMS


def parse_grid(stage, raw_values):
    """Like `parse`, for the sweep: each main parameter becomes a list of checked
    values ("16,50" → [16, 50]); the sweep's own parameters stay single values."""
    unknown = sorted(set(raw_values) - set(STAGE_PARAMS[stage]))
    if unknown:
        raise ParamError(
            f"Received unknown parameter `{unknown[0]}` for stage `{stage}`, "
            f"expected one of: {', '.join(STAGE_PARAMS[stage])}."
        )
    grid = {}
    for name in SWEPT_PARAMS:
        raw = raw_values.get(name)
        if raw is None:
            grid[name] = [PARAMS[name].default]
            continue
        values = [PARAMS[name].parse(part) for part in str(raw).split(",")]
        grid[name] = list(dict.fromkeys(values))  # once each, in the order given
    scalars = {name: PARAMS[name].parse(raw_values[name]) if name in raw_values else PARAMS[name].default
               for name in SWEEP_PARAMS}
    for combination in itertools.product(*grid.values()):
        check_combination(dict(zip(grid, combination)))
    return {**grid, **scalars}
