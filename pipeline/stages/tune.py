"""Tune: an Optuna study of full pipeline runs, shared by any number of workers.

    lstm-tune --study NAME --n_trials 20 --hidden_units 16:128 --learning_rate 1e-4:1e-2:log
    lstm-tune report --study NAME

Every main parameter may be one value, a comma-separated list of choices
(`16,32,64`), an integer or float range (`16:128`, `0.1:0.5`) or a log-uniform
one (`1e-4:1e-2:log`). Started again with the same `study` and `storage`, on
this machine or another, the command joins the study as one more worker: each
trial runs once, on one worker, until the study holds `n_trials` in all. A
worker that dies leaves its trial RUNNING until its heartbeat is
`GRACE_PERIOD_S` old; the next trial any worker starts then marks it FAILED.

The search is steered by validation only: a trial's value is its train run's
best `val_loss`. Test metrics are recorded on every trial's runs and never
reach Optuna. `train` reports `val_loss` to the trial after every epoch, and
the pruner may stop it there: the trial is PRUNED, skips evaluate, and its
main and train runs end KILLED with the tag `pruned_at_epoch`.

In MLflow the study is one parent run (tags `stage=tune`, `study`), created by
the first worker; each trial is a `main` run nested below it, named for its
parameters and tagged `optuna_trial`. The worker that finishes the last trial
ends the parent with `best_run_id` (lowest best val_loss), the results table,
Optuna's plots, and the best model registered under the sweep's champion rule.
"""

import argparse
import itertools
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from pipeline import params, registry, tables, tracking, workarounds
from pipeline.errors import ParamError
from pipeline.stages import command_line, generate_data, program

# No MLflow "View run ... at" line for every run of every trial against a server.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

# Optuna's heartbeat: a RUNNING trial whose worker has not written for
# GRACE_PERIOD_S is failed by the next worker that starts a trial.
# LSTM_TUNE_GRACE_PERIOD_S sets another grace period (tests set a long one, so that only they
# decide when a dead worker's heartbeat has aged).
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = int(os.environ.get("LSTM_TUNE_GRACE_PERIOD_S", "60"))
# How long a joining worker waits for the first worker to open the study's MLflow run.
JOIN_TIMEOUT_S = 120
# The median pruner compares a trial with the median of the earlier trials at
# the same epoch, once MEDIAN_STARTUP_TRIALS have finished; it never stops a
# trial in its first MEDIAN_WARMUP_EPOCHS epochs (benchmarks/tuning.py measures it).
MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 2
RESULTS_HEADER = ["trial", "state", "run", "run_id", "best_val_loss", "epochs", "pruned_at_epoch", "test_rmse"]


class Surplus(Exception):
    """A worker started a trial when another had already started the study's last one."""


class Pruned(Exception):
    """Raised from train's epoch hook; Optuna records the trial PRUNED, MLflow its runs KILLED."""

    def __init__(self, epoch):
        super().__init__(f"pruned after epoch {epoch}")
        self.pruned_at_epoch = epoch


# `server:DIR` names the study database of the lstm-server in DIR (deploy/server.py writes
# both files): the URL, without a password, and libpq's password file that holds it.
SERVER_STORAGE_URL = "secrets/optuna_storage_url"
SERVER_PGPASS = "secrets/pgpass"


def resolve_storage(storage):
    """The storage's URL: `auto` → default_storage(); `server:DIR` → the server's study
    database, with PGPASSFILE set in this process so that libpq finds its password."""
    if storage == "auto":
        return default_storage()
    if not storage.startswith("server:"):
        return storage
    folder = Path(storage[len("server:"):]).expanduser()
    url_file, pgpass = folder / SERVER_STORAGE_URL, folder / SERVER_PGPASS
    if not (os.access(url_file, os.R_OK) and os.access(pgpass, os.R_OK)):
        raise ParamError(
            f"Received an invalid value for parameter `storage`: {storage} holds no lstm-server that this user can "
            f"read ({SERVER_STORAGE_URL} and {SERVER_PGPASS} are readable by the server's user only): run the worker "
            "as that user, or copy both files into the same places under a folder of your own and name that one."
        )
    os.environ["PGPASSFILE"] = str(pgpass.resolve())
    return url_file.read_text().strip()


def default_storage():
    """optuna.db beside a SQLite tracking store (mlflow.db), else in the working directory."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve().parent / 'optuna.db'}"
    return f"sqlite:///{Path('optuna.db').resolve()}"


def _storage(url):
    """Optuna's RDBStorage with heartbeats; a URL it cannot open is a one-line ParamError."""
    import optuna
    import sqlalchemy.exc

    attempts = 4
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                                  grace_period=GRACE_PERIOD_S)
        except sqlalchemy.exc.DBAPIError as error:
            # Workers that start at once on an empty database race to create Optuna's
            # tables; the loser finds them made a moment later.
            racing = isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)
            if not racing or attempt == attempts - 1:
                raise ParamError(
                    f"Received an invalid value for parameter `storage`: cannot open {_hide_password(url)!r} "
                    f"({type(error).__name__}: {str(error).splitlines()[0][:200]})."
                ) from None
            time.sleep(1 + attempt)
        except Exception as error:  # SQLAlchemy's many: bad URL, no driver, no server
            raise ParamError(
                f"Received an invalid value for parameter `storage`: cannot open {_hide_password(url)!r} "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]})."
            ) from None


def _hide_password(url):
    """The URL with its password as ***, as SQLAlchemy renders it; a URL it cannot parse is shown whole
    (it holds no password SQLAlchemy could find either)."""
    import sqlalchemy.engine

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _sampler(name, seed):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed) if name == "random" else optuna.samplers.TPESampler(seed=seed)


def _pruner(name):
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name.startswith("threshold:"):
        return optuna.pruners.ThresholdPruner(upper=float(name.split(":", 1)[1]))
    return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS + 1)


@dataclass(frozen=True)
class Range:
    """A range to search: integers (`16:128`) or floats (`0.1:0.5`), uniform
    or, with `:log`, log-uniform (`1e-4:1e-2:log`)."""
    low: object
    high: object
    log: bool = False

    def text(self):
        return f"{self.low}:{self.high}" + (":log" if self.log else "")


def parse_search(name, raw):
    """One parameter's search space: a list of choices (one value: fixed), or a Range."""
    param = params.PARAMS[name]
    text = str(raw).strip()
    if ":" not in text:
        return list(dict.fromkeys(param.parse(part) for part in text.split(",")))
    parts = text.split(":")
    log = len(parts) == 3 and parts[2] == "log"
    if param.type is str or len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ParamError(
            f"Received an invalid search space for parameter `{name}`, expected a value, a comma-separated "
            f"list of values{'' if param.type is str else ', or a range low:high or low:high:log'}, got {text!r}."
        )
    low, high = (param.parse(part) for part in parts[:2])
    if low == "auto" or high == "auto" or not low < high or (log and low <= 0):
        raise ParamError(
            f"Received an invalid range for parameter `{name}`, expected numbers low < high"
            f"{' above 0 for :log' if log else ''}, got {text!r}."
        )
    return Range(low, high, log)


def space_text(space):
    """The search space in the tuner's own syntax, as logged and compared between workers."""
    return {name: (value.text() if isinstance(value, Range) else
                   ",".join(params.PARAMS[name].format(v) for v in value))
            for name, value in space.items()}


def _corners(space):
    """Every combination of choices and range ends, as dicts."""
    ends = [[value.low, value.high] if isinstance(value, Range) else value for value in space.values()]
    return [dict(zip(space, combination)) for combination in itertools.product(*ends)]


def parse_space(stage, raw_values):
    """Like `params.parse`, for the tuner: each main parameter becomes a list of
    choices or a Range; the tuner's own parameters stay single values. Every
    combination of choices and range ends is checked as `params.check_combination` does."""
    params.check_known(stage, raw_values)
    space = {name: parse_search(name, raw_values[name]) if name in raw_values else [params.PARAMS[name].default]
             for name in params.SEARCHED_PARAMS}
    scalars = params.parse_values(raw_values, [n for n in params.STAGE_PARAMS[stage] if n not in space])
    for combination in _corners(space):
        params.check_combination(combination)
    return {**space, **scalars}


def trial_seed(tune_seed, number):
    """The sampler's seed for trial `number`: numpy's SeedSequence of both, so
    that neighbouring seeds give unrelated draws."""
    import numpy as np

    return int(np.random.SeedSequence([tune_seed, number]).generate_state(1)[0])


def suggest(trial, space):
    """The trial's value for every parameter: fixed, one of the choices, or drawn from the range."""
    values = {}
    for name, searched in space.items():
        if isinstance(searched, Range):
            draw = trial.suggest_int if params.PARAMS[name].type is int else trial.suggest_float
            values[name] = draw(name, searched.low, searched.high, log=searched.log)
        elif len(searched) > 1:
            values[name] = trial.suggest_categorical(name, searched)
        else:
            values[name] = searched[0]
    return values


def trial_name(number, values, searched):
    """`t3-h37-lr0.00212`: the trial's number and its searched values."""
    def short(name):
        value = values[name]
        return f"{value:.3g}" if isinstance(value, float) else params.PARAMS[name].format(value)

    return "-".join([f"t{number}"] + [params.PARAMS[name].trial_label(short(name)) for name in searched])


def _join(study_name, storage, space, n_trials, pruner, experiment_id):
    """Creates the study and its MLflow parent run, or joins both; returns (study, parent run id)."""
    import optuna

    text = space_text(space)
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                    pruner=_pruner(pruner))
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(pruner))
        return study, _wait_for_parent(study, text, n_trials)
    client = MlflowClient()
    parent = client.create_run(
        experiment_id, run_name=f"tune-{study_name}",
        tags={"stage": "tune", "study": study_name, "code_version": tracking.code_version(),
              "optuna_storage": _hide_password(storage.url),
              "mlflow.note.content": (
                  f"Optuna study `{study_name}`: {n_trials} trials over "
                  f"{', '.join(_searched(space)) or 'no parameter'}, by validation loss; each trial is a main "
                  "run nested below. Best: tag best_run_id; every trial in results.md.")},
    )
    client.log_batch(parent.info.run_id, params=[
        mlflow.entities.Param(name, value) for name, value in
        {**text, "n_trials": str(n_trials), "pruner": pruner, "study": study_name}.items()])
    study.set_user_attr("space", text)
    study.set_user_attr("n_trials", n_trials)
    study.set_user_attr("mlflow_run_id", parent.info.run_id)  # last: joining workers wait for it
    return study, parent.info.run_id


def _wait_for_parent(study, text, n_trials):
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while "mlflow_run_id" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise ParamError(f"Study `{study.study_name}` exists but its first worker never opened its MLflow run "
                             f"within {JOIN_TIMEOUT_S} s; start the study afresh under another name.")
        time.sleep(1)
    attrs = study.user_attrs
    if attrs["space"] != text or attrs["n_trials"] != n_trials:
        differing = sorted(name for name in set(text) | set(attrs["space"])
                           if text.get(name) != attrs["space"].get(name))
        if attrs["n_trials"] != n_trials:
            differing.append("n_trials")
        wanted = " ".join(f"--{name} {attrs['space'].get(name, attrs['n_trials'])}" for name in differing)
        raise ParamError(f"Received another search for study `{study.study_name}`: join it with the same one "
                         f"({wanted}), or name a new study.")
    parent = attrs["mlflow_run_id"]
    try:
        MlflowClient().get_run(parent)
    except mlflow.exceptions.MlflowException:
        raise ParamError(f"Study `{study.study_name}` belongs to MLflow run {parent}, which is not in the tracking "
                         f"store {mlflow.get_tracking_uri()}: point MLFLOW_TRACKING_URI at that study's server.") from None
    return parent


def _searched(space):
    return [name for name, value in space.items() if isinstance(value, Range) or len(value) > 1]


def _real_trials(study, states=None):
    return [t for t in study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("surplus")]


def objective(space, sampler, tune_seed, n_trials, parent_run_id, study_name):
    import optuna

    from pipeline.stages import main as pipeline  # TensorFlow: only where trials run

    searched = _searched(space)

    def run_trial(trial):
        if trial.number >= n_trials:
            trial.set_user_attr("surplus", True)
            raise Surplus(f"trial {trial.number} is beyond n_trials={n_trials}")
        # Trial k draws with a seed made of (tune_seed, k), whichever worker runs it:
        # workers never draw alike, and one worker repeats a study exactly.
        trial.study.sampler = _sampler(sampler, trial_seed(tune_seed, trial.number))
        values = suggest(trial, space)
        if values.get("init") == "auto":  # a study tunes a new network: no pretrained candidate in its trials
            values["init"] = "none"
        name = trial_name(trial.number, values, searched)
        print(f"trial {trial.number} ({trial.number + 1}/{n_trials}): {name}", flush=True)
        epochs = []

        def report_epoch(epoch, logs):
            epochs.append(epoch)
            trial.report(logs["val_loss"], epoch)
            if trial.should_prune():
                raise Pruned(epoch)

        try:
            run_ids, scores = pipeline.run(run_name=name, quiet=True, register=False, parent_run_id=parent_run_id, epoch_hook=report_epoch,
                                       tags={"study": study_name, "optuna_trial": str(trial.number)},
                                       resume_from="none", **values)
        except Pruned as pruned:
            trial.set_user_attr("main_run_id", tracking.outermost_run_id)
            trial.set_user_attr("epochs", len(epochs))
            print(f"trial {trial.number}: pruned after epoch {pruned.pruned_at_epoch}", flush=True)
            raise optuna.TrialPruned(str(pruned)) from None
        except Exception:
            trial.set_user_attr("main_run_id", tracking.outermost_run_id)
            trial.set_user_attr("epochs", len(epochs))
            raise
        train_run = MlflowClient().get_run(run_ids["train"])
        trial.set_user_attr("main_run_id", run_ids["main"])
        trial.set_user_attr("epochs", len(epochs))
        reported = registry.reported_metric(scores)
        trial.set_user_attr(reported, scores[reported])  # recorded, never the objective
        return train_run.data.metrics["best_val_loss"]

    return run_trial


def run(n_trials, study, storage, sampler, pruner, tune_seed, threads, registered_model_name, **space):
    """Joins (or creates) the study and runs trials until it holds n_trials;
    the worker that ends the last one ends the study. Returns the report."""
    import optuna

    _limit_threads(threads)
    generate_data.prepare_each(_corners(space))
    storage_url = resolve_storage(storage)
    rdb = _storage(storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Under `mlflow run`: this worker's own run. Popped, so that the first
    # trial's start_run does not resume it.
    entry_run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    experiment_id = workarounds.current_experiment_id()
    found, parent_run_id = _join(study, rdb, space, n_trials, pruner, experiment_id)
    parent = MlflowClient().get_run(parent_run_id)
    mlflow.set_experiment(experiment_id=parent.info.experiment_id)
    if entry_run_id:  # the worker's own run, from `mlflow run` (which ends it): nested under the study's
        tags = {"stage": "tune_worker", "study": study, "mlflow.parentRunId": parent_run_id,
                "mlflow.runName": f"worker-{os.uname().nodename}-{os.getpid()}"}
        MlflowClient().log_batch(entry_run_id, tags=[RunTag(name, value) for name, value in tags.items()])
    print(f"study {study}: MLflow run {parent_run_id}, storage {_hide_password(storage_url)}", flush=True)
    run_trial = objective(space, sampler, tune_seed, n_trials, parent_run_id, study)
    while len(_real_trials(found)) < n_trials:
        found.optimize(run_trial, n_trials=1, catch=(Exception,), gc_after_trial=False)
    state = _wait_for_the_last_trials(found, parent_run_id)
    unfinished = state["running"] + state["waiting"]
    if unfinished:
        print(f"{unfinished} trial(s) still running on other workers, whose heartbeats are fresh: the last to "
              "finish ends the study.")
    elif MlflowClient().get_run(parent_run_id).info.status == "RUNNING":  # no other worker ended it yet
        finish(found, parent_run_id, registered_model_name)
    print(describe(found, state))
    return state


def _fail_stale(study, parent_run_id):
    """Fails the trials whose worker stopped beating (Optuna's heartbeat), and ends their
    MLflow runs, left RUNNING by the worker that died, as FAILED."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    client = MlflowClient()
    failed = [t.number for t in _real_trials(study, states=(TrialState.FAIL,))]
    if not failed:
        return
    experiment = client.get_run(parent_run_id).info.experiment_id
    for number in failed:
        for run in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_run_id}' and "
                                                    f"tags.optuna_trial = '{number}' and attributes.status = 'RUNNING'"):
            stranded = [run] + client.search_runs(
                [experiment], f"tags.mlflow.parentRunId = '{run.info.run_id}' and attributes.status = 'RUNNING'")
            for each in stranded:
                client.set_tag(each.info.run_id, "error", f"Trial {number}'s worker died: Optuna failed the trial "
                                                          f"when its heartbeat was {GRACE_PERIOD_S} s old.")
                client.set_terminated(each.info.run_id, "FAILED")


def _wait_for_the_last_trials(study, parent_run_id):
    """With no trial left to start: while trials still RUNNING may belong to a worker
    that died, waits out Optuna's grace period (saying so) and fails them, so that
    the study can end. Returns the report once nothing is left to wait for: no trial
    running, the study ended by another worker, or the trials running still beat."""
    deadline = time.monotonic() + GRACE_PERIOD_S + 2 * HEARTBEAT_INTERVAL_S
    said = False
    while True:
        _fail_stale(study, parent_run_id)
        state = report(study)
        running = state["running"] + state["waiting"]
        if not running or time.monotonic() > deadline or \
                MlflowClient().get_run(parent_run_id).info.status != "RUNNING":
            return state
        if not said:
            print(f"{running} trial(s) still RUNNING: waiting up to {deadline - time.monotonic():.0f} s, as a trial "
                  f"whose worker died is failed once its heartbeat is {GRACE_PERIOD_S} s old (a live worker's "
                  "trial ends the study itself).", flush=True)
            said = True
        time.sleep(HEARTBEAT_INTERVAL_S / 2)


def _limit_threads(threads):
    """TensorFlow's (and oneDNN's) thread pools for this worker; 0 leaves TensorFlow's default.

    For a model of this size one thread trains as fast as all of them (benchmarks/tuning.py),
    so one-thread workers, one per core, do not fight over the cores."""
    if not threads:
        return
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = str(threads)  # read when TensorFlow's runtime starts
    if "tensorflow" in sys.modules:  # already imported in this process (a caller in Python)
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # its runtime has started: the pools stay as they are


def report(study):
    """Counts of the study's trials by state, and the best so far."""
    from optuna.trial import TrialState

    trials = _real_trials(study)
    count = {name.lower(): sum(t.state == state for t in trials) for name, state in TrialState.__members__.items()}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    return {**count, "n_trials": study.user_attrs.get("n_trials"), "total": len(trials), "best": best}


def describe(study, state):
    lines = [f"Study {study.study_name}: {state['total']} of {state['n_trials']} trials — "
             f"{state['complete']} complete, {state['running']} running, {state['pruned']} pruned, "
             f"{state['fail']} failed."]
    best = state["best"]
    if best is not None:
        chosen = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                           for name, value in best.params.items())
        lines.append(f"Best so far: trial {best.number}, best val_loss {best.value:.4g} ({chosen or 'no search'}), "
                     f"run {best.user_attrs.get('main_run_id', '?')}.")
    parent = study.user_attrs.get("mlflow_run_id")
    if parent:
        lines.append(f"Its runs: lstm-compare --parent_run_id {parent}  (or the MLflow UI)")
    return "\n".join(lines)


def finish(study, parent_run_id, registered_model_name):
    """Ends the study's MLflow run: table, metrics, Optuna's plots, best model registered."""
    from optuna.trial import TrialState

    client = MlflowClient()
    trials = _real_trials(study)
    runs = {r.data.tags.get("optuna_trial"): r for r in client.search_runs(
        [client.get_run(parent_run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.stage = 'main'", max_results=5000)}
    searched = sorted({name for t in trials for name in t.params})
    reported = "test_smape" if any(r.data.tags.get("data") == "collection" for r in runs.values()) else "test_rmse"
    rows = []
    for t in trials:
        r = runs.get(str(t.number))
        rows.append([t.number, t.state.name, r.info.run_name if r else "", r.info.run_id if r else "",
                     t.value if t.value is not None else math.nan, t.user_attrs.get("epochs", ""),
                     r.data.tags.get("pruned_at_epoch", "") if r else "",
                     r.data.metrics.get(reported, math.nan) if r else math.nan]
                    + [t.params.get(name, "") for name in searched])
    header = RESULTS_HEADER[:-1] + [reported] + searched  # a collection reports test_smape
    client.log_text(parent_run_id, tables.to_csv(header, rows), "results.csv")
    client.log_text(parent_run_id, tables.to_markdown(header, rows), "results.md")
    state = report(study)
    metrics = {"n_trials": state["total"], "n_complete": state["complete"], "n_pruned": state["pruned"],
               "n_failed": state["fail"],
               "epochs_trained": sum(t.user_attrs.get("epochs", 0) for t in trials)}
    best = state["best"]
    message = "No trial finished: nothing registered."
    if best is not None:
        best_run = runs.get(str(best.number))
        metrics["best_val_loss"] = best.value
        if best_run is not None:
            metrics[f"best_{reported}"] = best_run.data.metrics.get(reported, math.nan)
            client.set_tag(parent_run_id, "best_run_id", best_run.info.run_id)
            message = registry.update_champion(registered_model_name, best_run)
    for name, value in metrics.items():
        client.log_metric(parent_run_id, name, value)
    client.set_tag(parent_run_id, "champion", message)
    _log_plots(study, parent_run_id, [t for t in trials if t.state == TrialState.COMPLETE])
    client.set_terminated(parent_run_id, "FINISHED")
    print(tables.to_markdown(header, rows))
    print(message)


def _log_plots(study, parent_run_id, complete):
    """Optuna's own figures (optuna.visualization.matplotlib) as plots/*.png; a
    figure Optuna cannot draw for this study (too few trials) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as figures

    client = MlflowClient()
    drawings = {"optimization_history": figures.plot_optimization_history,
                "param_importances": figures.plot_param_importances,
                "parallel_coordinate": figures.plot_parallel_coordinate}
    for name, draw in drawings.items():
        if len(complete) < 2 and name != "optimization_history":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as error:
                print(f"plot {name} skipped: {error}", flush=True)
                continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        client.log_figure(parent_run_id, figure, f"plots/{name}.png")
        plt.close(figure)


def report_command(argv):
    """`lstm-tune report [--study NAME] [--storage URL]`: where a study stands."""
    parser = argparse.ArgumentParser(prog="lstm-tune")
    commands = parser.add_subparsers(dest="command", required=True)
    report_parser = commands.add_parser("report", help="where a study stands: its trials and its best")
    report_parser.add_argument("--study", default=params.PARAMS["study"].default, help=params.PARAMS["study"].help)
    report_parser.add_argument("--storage", default="auto", help=params.PARAMS["storage"].help)
    args = parser.parse_args(argv)
    import optuna

    storage = resolve_storage(params.PARAMS["storage"].parse(args.storage))
    rdb = _storage(storage)
    try:
        study = optuna.load_study(study_name=args.study, storage=rdb)
    except KeyError:
        raise ParamError(f"Received an invalid value for parameter `study`: no study {args.study!r} in "
                         f"{_hide_password(storage)}.") from None
    print(describe(study, report(study)))


def _report_argv(argv):
    """The arguments of the `report` subcommand, or None for a worker. `--report`
    anywhere is the older spelling of `report` first."""
    if argv[:1] == ["report"]:
        return argv
    if "--report" in argv:
        return ["report"] + [arg for arg in argv if arg != "--report"]
    return None


def main(argv=None):
    """The `lstm-tune` console script: a worker, or `lstm-tune report` where a study stands."""
    argv = sys.argv[1:] if argv is None else argv
    report_argv = _report_argv(argv)
    if report_argv is not None:
        try:
            report_command(report_argv)
        except ParamError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2)
        return
    command_line("tune", run, argv, parse=parse_space, prog="lstm-tune")


if __name__ == "__main__":
    if _report_argv(sys.argv[1:]) is not None:
        main()
    else:
        program("tune", run, parse=parse_space)
