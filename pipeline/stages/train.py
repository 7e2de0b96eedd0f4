"""Stage 2: train the custom-cell LSTM on a generate_data run's data.

A collection trains one global network over its series instead
(`_train_collection`, below): checkpointed, resumed and logged alike, the model
it logs is the one evaluate scores.

Resolves every 'auto' for the data (tags `resolved_<name>`), trains the
ensemble, calibrates the prediction interval on the validation windows
(`interval_half_width_step<k>`), and logs every parameter, `train_loss` and
`val_loss` per epoch (step = epoch, from 1; with an ensemble also each
member's and the median's validation loss), the checkpoint under `checkpoints/` (see
CHECKPOINT_UPLOAD_SECONDS), the loss curve, the `.keras` model under `keras_model/`, the TensorFlow SavedModel under
`saved_model/1/` (a TensorFlow Serving base path; not for a zero-shot model, whose
MLflow model reads the .keras file), and an MLflow pyfunc model `model`, whose
models:/ URI is the tag `model_uri`.
"""

import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import mlflow
import numpy as np

from custom_layers import transforms
from pipeline import data, logged_model, metrics, params, plots, pretrained, tracking
from pipeline import model as forecaster
from pipeline.progress import EpochProgress
from pipeline.stages import program

KERAS_MODEL = forecaster.KERAS_MODEL
# TensorFlow Serving's layout: a model base path holding numbered versions.
SAVED_MODEL = logged_model.SAVED_MODEL
# The last checkpoint (pipeline.model.save_checkpoint); after a failure or an
# interruption also the best weights as a .keras model.
CHECKPOINTS = tracking.CHECKPOINTS
BEST_CHECKPOINT = "best.keras"
# The checkpoint is written to a local folder after every epoch (atomically) and
# uploaded to the run when this many seconds of training have passed since the
# last upload, when training ends, and after a failure or an interruption (Ctrl-C,
# SIGTERM): an epoch never waits for the store, and only a machine lost outright
# loses more than the epoch under way, at most this much training.
CHECKPOINT_UPLOAD_SECONDS = tracking.CHECKPOINT_UPLOAD_SECONDS
# Per-epoch losses reach the store in one request at most this often (each keeps its
# epoch and the time it was measured): tracking.EpochMetrics.
METRICS_EVERY_SECONDS = 1


def run(data_uri, hidden_units, learning_rate, epochs, batch_size, scaling, patience, target="auto", season=0,
        ensemble_size="auto", interval_level=0.9, seed=42, init="auto", fine_tune_epochs="auto",
        windows_per_series="auto", deseasonalise="auto", short_history="auto", refit="true", resume_from="none",
        epoch_hook=None, init_plan=None):
    """Trains and logs the model; returns the run id.

    `epoch_hook(epoch, logs)`, if given, is called after every epoch has been
    logged (the tuner reports val_loss to its trial there, and may stop it).
    `init_plan`: the InitPlan that main's checks already made for these values
    and this data (its pretrained model loaded once), else made here.

    With `resume_from`, continues that KILLED or FAILED train run from its last
    checkpoint, on its data, with its parameters (which must be these), as a
    new run whose per-epoch metrics start with the history it inherits.
    """
    values = dict(locals())
    del values["epoch_hook"], values["init_plan"]
    resume = None
    if resume_from != "none":
        previous = tracking.interrupted_run(resume_from, "train", values)
        data_uri = previous.data.tags["resolved_data_uri"]
        resume = tracking.download(f"runs:/{resume_from}/{CHECKPOINTS}", "resume_from")
    with tracking.stage_run("train") as active:
        tracking.log_params(values)
        if data_uri == "auto":
            data_uri = f"runs:/{tracking.newest_finished_run('generate_data', 'data_uri').info.run_id}/data"
        dataset, manifest = tracking.load_data(data_uri)
        tracking.log_dataset_input(dataset, manifest, "train", context="training")
        if manifest["source"] == "collection":
            mlflow.set_tag("data", "collection")
            _train_collection(dataset, manifest, values, data_uri, resume, epoch_hook)
            return active.info.run_id
        horizon = dataset["y_train"].shape[1]
        input_width = dataset["x_train"].shape[1]
        chosen = check_data(values, dataset, manifest, init_plan)
        plan = chosen["init_plan"]
        for note in plan.notes:
            print(f"train: {note}", flush=True)
        scaling, target, ensemble_size = chosen["scaling"], chosen["target"], chosen["ensemble_size"]
        # What 'auto' became: tags, since a parameter is logged once, as given (set again at the end if a
        # pretrained candidate wins), before training, so that a run that fails says them too.
        mlflow.set_tags({"resolved_data_uri": data_uri, **({"resumed_from": resume_from} if resume is not None else {}),
                         **{f"resolved_{name}": params.PARAMS[name].format(chosen[name])
                            for name in AUTO_TRAIN_PARAMS}})
        scale = forecaster.standard_scale(dataset)
        # What the run records at its end, in one request (tracking.log_batch).
        summary, tags = {}, {}
        plan, fit_data, judged = judging(plan, dataset)
        candidates, served_of = {}, {}
        if "local" in plan.candidates:
            if scaling == "standard":
                summary.update(scaling_mean=scale[0], scaling_std=scale[1])
            model = _train_local(fit_data, values, chosen, scale, resume, epoch_hook, summary)
            candidates["local"] = model
            served_of["local"] = forecaster.forecasting_model(model, interval_level)
        # What each candidate reads: the data's windows for a new network; for a pretrained one, as much of
        # the series before each target as it reads (the same targets).
        data_of = {"local": dataset}
        if plan.pretrained is not None:
            tags["pretrained_windows"] = pretrained.windows_note(plan.pretrained, season)
            print(f"train: pretrained candidates: {tags['pretrained_windows']}", flush=True)
            longer = data.with_history(dataset, plan.pretrained.input_width) if "series" in dataset else dataset
            longer_fit = data.hold_out_stopping(longer) if fit_data is not dataset else longer
            candidates.update(_from_pretrained(plan, longer, values, summary, longer_fit))
            for name in ("zero_shot", "fine_tuned"):
                if name in candidates:
                    served_of[name] = pretrained.forecasting_model(candidates[name], interval_level)
                    data_of[name] = longer
        # Every candidate judged on the same validation windows: each window's mean squared error.
        losses = {name: np.mean((forecaster.predict(served, data_of[name]["x_val"])["forecast"]
                                 - dataset["y_val"]) ** 2, axis=1) for name, served in served_of.items()}
        chosen_init, reason = choose_init(losses, horizon)
        if len(losses) > 1 or judged != "fair":
            reason += f"; {judged_on(judged, len(fit_data['y_val']))}"
        print(f"train: {reason}", flush=True)
        summary.update({f"val_mse_{name}": float(np.mean(value)) for name, value in losses.items()})
        if chosen_init != "local":
            target, scaling, ensemble_size = plan.pretrained.target, "window", 1
            summary["best_val_loss"] = summary[f"val_mse_{chosen_init}"]
            chosen.update(target=target, scaling=scaling, ensemble_size=ensemble_size)
            tags.update({f"resolved_{name}": params.PARAMS[name].format(chosen[name])
                         for name in AUTO_TRAIN_PARAMS})
        tags.update({"resolved_init": chosen_init, "init_choice": reason,
                     **({"init_uri": plan.pretrained.uri} if plan.pretrained is not None else {})})
        if fit_data is not dataset and chosen_init != "zero_shot":
            # The one kept, trained anew on the whole training period for the epochs its fold chose: the
            # model evaluated has seen every training window, and still none of the validation windows.
            started = time.perf_counter()
            epochs_kept = int(summary["best_epoch" if chosen_init == "local" else "fine_tune_best_epoch"])
            scale_kept = scale if chosen_init == "local" else forecaster.standard_scale(longer)  # as each trained
            served_of[chosen_init] = train_for(chosen_init, data_of[chosen_init], epochs_kept, values, chosen,
                                               scale_kept, plan.pretrained)
            summary.update(selection_refit_seconds=time.perf_counter() - started, selection_refit_epochs=epochs_kept)
        served = served_of[chosen_init]
        if chosen_init == "local":
            half_widths, calibration = calibrate_local(served, dataset["x_val"], dataset["y_val"])
            min_window = season if target == "seasonal" else 1  # a seasonal target reads a whole season back
        else:
            x_calibration, y_calibration, which = calibration_windows(chosen_init, data_of, dataset)
            half_widths, calibration = pretrained.calibrate(served, x_calibration, y_calibration, plan.pretrained,
                                                            which)
            min_window = 1  # shorter windows are padded
            input_width = plan.pretrained.input_width  # what predict and the server send it
        print(f"train: intervals {calibration}", flush=True)
        tags["interval_calibration"] = calibration
        summary.update({f"interval_half_width_step{step}": float(q) for step, q in enumerate(half_widths, 1)})
        # A zero-shot model trained on nothing here: its MLflow model reads the .keras file, and no
        # SavedModel is exported (pipeline/logged_model.py).
        model_uri = logged_model.log_models(served, input_width, horizon, interval_level, trained_on(manifest),
                                            min_window, tf_serving=chosen_init != "zero_shot")
        # Last, with the summary (after the model, which otherwise copies each metric's history to itself,
        # a request per metric): a run without `model_uri` has no finished model, whatever its artifacts.
        tracking.log_batch(summary, {**tags, "model_uri": model_uri})
        return active.info.run_id


def _train_local(dataset, values, chosen, scale, resume, epoch_hook, summary):
    """A new network trained on the series (the seed's way): checkpointed every epoch, its losses and loss
    curve logged; `summary` gains its train_seconds, epochs_trained, best_epoch and best_val_loss."""
    horizon = dataset["y_train"].shape[1]
    epochs, patience, scaling, target, ensemble_size = (
        chosen[name] for name in ("epochs", "patience", "scaling", "target", "ensemble_size"))
    keras.utils.set_random_seed(values["seed"])
    model = forecaster.build_model(values["hidden_units"], values["learning_rate"], horizon, scaling, scale, target,
                                   values["season"], ensemble_size)
    if resume is not None:
        _log_inherited_history(resume)
    started = time.perf_counter()
    progress = EpochProgress(epochs)
    losses = tracking.EpochMetrics(METRICS_EVERY_SECONDS)
    metrics_logged = [0]  # the last epoch whose losses were logged

    with tempfile.TemporaryDirectory() as checkpoint_dir:
        uploads = tracking.CheckpointUploads(checkpoint_dir, CHECKPOINT_UPLOAD_SECONDS)

        def on_epoch_end(epoch, logs):
            losses.log(epoch_losses(logs), step=epoch)
            metrics_logged[0] = epoch
            uploads.after_epoch()
            if epoch_hook is not None:
                epoch_hook(epoch, logs)
            progress(epoch, logs)

        try:
            state = forecaster.fit(model, dataset, epochs, values["batch_size"], patience, values["seed"],
                                   checkpoint_dir, on_epoch_end=on_epoch_end, resume=resume)
        except BaseException as error:
            progress.close()
            losses.flush()
            if getattr(error, "pruned_at_epoch", None) is None:  # a pruned trial is not resumed
                _log_last_checkpoint(checkpoint_dir, metrics_logged[0])
                _log_best_checkpoint(model, checkpoint_dir)
            raise
        losses.flush(synchronous=False)
        uploads.upload()
    progress.close()
    if state.epochs_done < epochs:
        progress.stopped_early(state.epochs_done, patience, state.best_epoch, state.best_val_loss)
    summary.update({
        "train_seconds": time.perf_counter() - started,
        "epochs_trained": state.epochs_done,
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
    })
    tracking.log_figure(plots.loss_curve(state.train_loss, state.val_loss, state.best_epoch), "loss_curve")
    return model


def _from_pretrained(plan, dataset, values, summary, fit_on=None):
    """{"zero_shot": model, "fine_tuned": model}, those the plan asks for, from its pretrained model.
    Fine-tuning starts from the pretrained weights at the learning rate and trains on `fit_on`
    (default `dataset`; a fold held back to early-stop on: `judging`); its losses are logged
    as fine_tune_train_loss and fine_tune_val_loss, and `summary` gains fine_tune_seconds,
    fine_tune_epochs_trained and fine_tune_best_epoch."""
    horizon, season = dataset["y_train"].shape[1], int(values.get("season", 0))
    std = forecaster.standard_scale(dataset)[1]
    out = {}
    if "zero_shot" in plan.candidates:
        out["zero_shot"] = pretrained.adapt(plan.pretrained, horizon, values["learning_rate"], std, season)
    if "fine_tuned" in plan.candidates:
        keras.utils.set_random_seed(values["seed"])
        model = pretrained.adapt(plan.pretrained, horizon, values["learning_rate"], std, season)
        started = time.perf_counter()
        losses = tracking.EpochMetrics(METRICS_EVERY_SECONDS)

        def on_epoch_end(epoch, logs):
            losses.log({"fine_tune_train_loss": logs["loss"], "fine_tune_val_loss": logs["val_loss"]}, step=epoch)

        try:
            state = forecaster.fit(model, dataset if fit_on is None else fit_on, plan.fine_tune_epochs,
                                   values["batch_size"], params.FINE_TUNE_PATIENCE, values["seed"], on_epoch_end=on_epoch_end)
        finally:
            losses.flush(synchronous=False)
        summary.update({"fine_tune_seconds": time.perf_counter() - started,
                        "fine_tune_epochs_trained": state.epochs_done, "fine_tune_best_epoch": state.best_epoch})
        out["fine_tuned"] = model
    return out


# init=auto keeps a trained candidate (a new network, the pretrained one fine-tuned) over the
# pretrained model zero-shot only when the validation windows show it better beyond chance:
# Diebold and Mariano's one-sided p below this (docs/pretrained.md, "How init=auto chooses";
# its power and its level, benchmarks/results/init_choice.md).
INIT_EVIDENCE = 0.3
LABELS = {"local": "a new network", "zero_shot": "the pretrained model zero-shot",
          "fine_tuned": "the pretrained model fine-tuned"}
# The candidates that train, and so early-stop on the windows they are given as validation.
TRAINED = ("local", "fine_tuned")


def judging(plan, dataset):
    """(plan, the dataset trained candidates fit and early-stop on, how they are judged).

    With several candidates, the ones that train early-stop on a fold held back from the
    training windows (data.hold_out_stopping), so that the validation windows judge every
    candidate without having stopped any: "fair". Where the training period is too short to
    hold a fold back, only the zero-shot model is left when it is a candidate ("too_short"),
    else they stop on the validation windows that judge them ("stopped")."""
    if len(plan.candidates) < 2 or not set(plan.candidates) & set(TRAINED):
        return plan, dataset, "fair"
    held_out = data.hold_out_stopping(dataset)
    if held_out is not None:
        return plan, held_out, "fair"
    if "zero_shot" in plan.candidates:
        return replace(plan, candidates=("zero_shot",)), dataset, "too_short"
    return plan, dataset, "stopped"


def judged_on(judged, n_fold):
    """One line: how the candidates were judged (`judging`)."""
    if judged == "fair":
        return (f"trained candidates early-stopped on the last {n_fold} training windows, so the validation "
                "windows that judge them stopped none")
    if judged == "too_short":
        return ("the training period is too short to hold back windows to early-stop on, and a candidate judged "
                "on the windows that stopped it looks better than it is: the pretrained model zero-shot, untrained")
    return ("the training period is too short to hold back windows to early-stop on: the candidates are judged "
            "on the validation windows that stopped them, which favours the one that trained longest")


def choose_init(losses, horizon, alpha=INIT_EVIDENCE):
    """The candidate init=auto keeps, from each one's loss on every validation window
    ({name: array of n}, the same windows), and one line saying why: the lowest mean,
    except that a trained candidate replaces the zero-shot model only when Diebold and
    Mariano's test (metrics.diebold_mariano) finds it better at level `alpha`."""
    mse = {name: float(np.mean(value)) for name, value in losses.items()}
    scores = ", ".join(f"{name} {value:.4g}" for name, value in sorted(mse.items(), key=lambda item: item[1]))
    lowest = min(mse, key=mse.get)
    if len(mse) == 1:
        return lowest, f"model: {LABELS[lowest]} (validation MSE {scores})"
    of = f"the lowest validation MSE of {len(mse)} candidates ({scores})"
    if lowest == "zero_shot" or "zero_shot" not in mse:
        return lowest, f"model: {LABELS[lowest]}, {of}"
    p = metrics.diebold_mariano(losses["zero_shot"], losses[lowest], horizon)
    test = f"Diebold-Mariano p = {p:.2g} on {len(losses[lowest])} windows"
    if p < alpha:
        return lowest, f"model: {LABELS[lowest]}, {of}, better than zero-shot beyond chance ({test} < {alpha:g})"
    return "zero_shot", (f"model: the pretrained model zero-shot: {LABELS[lowest]} has {of}, but not clearly "
                         f"better than zero-shot ({test}, not below {alpha:g})")


def train_for(init, fit_data, epochs, values, chosen, scale, start=None):
    """The served model of candidate `init` ("local" or "fine_tuned", from the pretrained
    model `start`) trained anew on `fit_data` for `epochs` chosen beforehand (its last
    weights kept): a new network of the `chosen` settings scaled by `scale`, or the
    pretrained network adapted to the series' spread scale[1]."""
    horizon, seed = fit_data["y_train"].shape[1], int(values["seed"])
    keras.utils.set_random_seed(seed)
    if init == "local":
        model = forecaster.build_model(int(values["hidden_units"]), float(values["learning_rate"]), horizon,
                                       chosen["scaling"], scale, chosen["target"], int(values["season"]),
                                       int(chosen["ensemble_size"]))
        served = forecaster.forecasting_model(model, float(values["interval_level"]))
    else:
        model = pretrained.adapt(start, horizon, float(values["learning_rate"]), scale[1], int(values["season"]))
        served = pretrained.forecasting_model(model, float(values["interval_level"]))
    if epochs:
        forecaster.fit(model, fit_data, epochs, int(values["batch_size"]), 0, seed, restore_best=False)
    return served


def calibration_windows(init, data_of, dataset):
    """(inputs, targets, which) of the windows that calibrate the intervals of the candidate `init`
    kept: the validation windows, which trained none of them; for the pretrained model zero-shot,
    which no window of the series trained, every training and validation window: all out of
    sample, and more of them hold the level better on series it never saw
    (benchmarks/results/interval_calibration.md)."""
    if init != "zero_shot":
        return data_of[init]["x_val"], dataset["y_val"], "validation"
    return (np.concatenate([data_of[init]["x_train"], data_of[init]["x_val"]]),
            np.concatenate([dataset["y_train"], dataset["y_val"]]), "training and validation")


def calibrate_local(served, x_val, y_val):
    """A local model's half-widths from its validation residuals; with fewer windows
    than the level needs, the largest residual of each step, and a note saying
    the level that can be claimed: (half-widths, note)."""
    layer = served.get_layer(forecaster.INTERVAL_LAYER)
    needed, n = transforms.min_windows_for(layer.level), len(y_val)
    if n >= needed:
        return forecaster.calibrate(served, x_val, y_val), f"calibrated on the series' {n} validation windows"
    residuals = np.abs(np.asarray(y_val) - forecaster.predict(served, x_val)["forecast"])
    q = residuals.max(axis=0)
    layer.half_width.assign(q.astype("float32"))
    return q, (f"the series has {n} validation windows, fewer than the {needed} a {layer.level:g} interval needs: "
               f"each step's largest validation residual is used, which covers at least {100 * n / (n + 1):.0f} %")


AUTO_TRAIN_PARAMS = ("epochs", "patience", "scaling", "target", "ensemble_size")


@dataclass
class InitPlan:
    """What training starts from: the candidates (`local`, `zero_shot`, `fine_tuned`)
    validation chooses among, the pretrained model if any, and notes for the user."""

    candidates: tuple
    pretrained: object = None
    fine_tune_epochs: int = 0
    notes: list = field(default_factory=list)


def check_data(values, dataset, manifest, init_plan=None):
    """The train values with 'auto' resolved for this data (params.resolve_training)
    and `init_plan` (InitPlan), after the checks that need the data: a season that
    fits the window for target='seasonal', an init model that can serve the
    horizon, no option the init overrides. For a collection: its GlobalSettings
    (collection_settings). Raises a one-line ParamError."""
    if manifest["source"] == "collection":
        from pipeline import collection as coll

        return collection_settings(values, *coll.from_dataset(dataset, manifest), manifest)
    for name in ("windows_per_series", "deseasonalise", "short_history"):
        if values.get(name, "auto") != "auto":
            raise params.ParamError(f"Received `{name}`={values[name]} for one series: it applies to a collection "
                                    "(a CSV with id_column); drop it.")
    is_sine = manifest["source"] == "sine"
    input_width, horizon = dataset["x_train"].shape[1], dataset["y_train"].shape[1]
    chosen = params.resolve_training(
        values, is_sine, input_width, len(dataset["y_train"]),
        metrics.seasonal_naive_wins(dataset["x_train"], dataset["y_train"], values.get("season", 0)))
    params.check_combination({"data_source": "sine" if is_sine else "csv", "target": chosen["target"],
                              "season": chosen["season"], "time_steps": input_width + horizon, "horizon": horizon})
    chosen["init_plan"] = init_plan if init_plan is not None else plan_init(values, horizon, is_sine)
    return chosen


def plan_init(values, horizon, is_sine):
    """The InitPlan for `init` and `fine_tune_epochs` (see their help in pipeline.params)."""
    init, fine_tune = values.get("init", "auto"), values.get("fine_tune_epochs", "auto")
    if init == "none" or (init == "auto" and is_sine):  # the sine keeps the seed's model
        if fine_tune != "auto":
            raise params.ParamError(f"Received `fine_tune_epochs`={fine_tune} with `init`={init!r}: fine-tuning needs "
                                    "a pretrained init (-P init=pretrained or a model URI).")
        return InitPlan(("local",))
    configured = [f"{name}={values[name]}" for name in ("scaling", "target", "ensemble_size", "epochs", "patience")
                  if values.get(name, "auto") != "auto"]
    if init == "auto" and configured and fine_tune == "auto":
        # Options for a new network: the user wants one.
        return InitPlan(("local",), notes=[f"{', '.join(configured)} given: a new network is trained (init=auto "
                                           "tries the pretrained model when they are left to auto)"])
    if init == "auto":
        try:
            model = pretrained.load("pretrained")
        except params.ParamError as error:
            return InitPlan(("local",), notes=[f"no pretrained model to try ({error}); a new network is trained"])
        if horizon > model.horizon:
            return InitPlan(("local",), notes=[f"the pretrained model forecasts at most {model.horizon} steps, "
                                               f"fewer than horizon {horizon}: a new network is trained"])
    else:
        model = pretrained.load(init)
        if horizon > model.horizon:
            raise params.ParamError(
                f"Received `init`={init!r} with `horizon`={horizon}: {model.uri} forecasts at most {model.horizon} "
                f"steps from up to {model.input_width} values (shorter windows padded); pass -P horizon=1..."
                f"{model.horizon} or -P init=none.")
        overridden = list(configured)
        if values.get("hidden_units", model.hidden_units) != model.hidden_units:
            overridden.append(f"hidden_units={values['hidden_units']} (the model has {model.hidden_units})")
        if overridden:
            raise params.ParamError(
                f"Received `init`={init!r} with {', '.join(overridden)}: the pretrained model fixes its network and "
                "fine-tuning has its own epochs; drop them, or pass fine_tune_epochs, or -P init=none.")
    epochs = params.FINE_TUNE_EPOCHS if fine_tune == "auto" else fine_tune
    candidates = (("local",) if init == "auto" else ()) + (("zero_shot",) if fine_tune in ("auto", 0) else ()) + (
        ("fine_tuned",) if fine_tune != 0 else ())
    return InitPlan(candidates, model, epochs)


def _log_last_checkpoint(checkpoint_dir, metrics_logged):
    """After a failure or an interruption: the last checkpoint uploaded again, whole (a
    signal may have cut the last epoch's upload short, leaving a file half copied), with
    the losses of any epoch it holds that were not logged yet, so that the run's history
    and its checkpoint agree. Further signals wait for this bookkeeping."""
    state_file = Path(checkpoint_dir) / forecaster.CHECKPOINT_STATE
    if not state_file.is_file():
        return  # not one epoch finished
    state = forecaster.checkpoint_state(checkpoint_dir)
    missing = tracking.EpochMetrics(every=float("inf"))
    for epoch in range(metrics_logged + 1, state.epochs_done + 1):
        missing.log({"train_loss": state.train_loss[epoch - 1], "val_loss": state.val_loss[epoch - 1]}, step=epoch)
    missing.flush()
    tracking.log_checkpoint(checkpoint_dir)


def epoch_losses(logs):
    """The metrics of one epoch: train_loss and val_loss, and with an ensemble each
    member's validation MSE (member_<i>_val_loss) and the median's (ensemble_val_loss)."""
    losses = {"train_loss": logs["loss"], "val_loss": logs["val_loss"]}
    losses.update({name[len("val_"):].replace("_mse", "_val_loss"): value
                   for name, value in logs.items() if name.startswith("val_") and name != "val_loss"})
    return losses


def _log_inherited_history(checkpoint):
    state = forecaster.checkpoint_state(checkpoint)
    history = tracking.EpochMetrics(every=float("inf"))
    for epoch, (train_loss, val_loss) in enumerate(zip(state.train_loss, state.val_loss), start=1):
        history.log({"train_loss": train_loss, "val_loss": val_loss}, step=epoch)
    history.flush(synchronous=False)


def _log_best_checkpoint(model, checkpoint_dir):
    """After a failure or an interruption: the best weights so far as
    `checkpoints/best.keras`, a model Keras loads, beside the last checkpoint."""
    checkpoint = Path(checkpoint_dir)
    if not (checkpoint / forecaster.CHECKPOINT_ARRAYS).is_file():
        return  # not one epoch finished
    _, best_weights = forecaster.restore_checkpoint(model, checkpoint)
    if best_weights is None:
        return
    model.set_weights(best_weights)
    with tempfile.TemporaryDirectory() as folder:
        # The forecasting model, as train saves it, with its interval not yet calibrated.
        forecaster.forecasting_model(model).save(Path(folder) / BEST_CHECKPOINT)
        mlflow.log_artifact(str(Path(folder) / BEST_CHECKPOINT), artifact_path=CHECKPOINTS)


def trained_on(manifest):
    """What the model remembers of its data (the MLflow model's metadata), so that
    `predict` reads the same column of the same series by default (a collection's
    model: how to read its file, and the time step, so that it dates its forecasts)."""
    if manifest["source"] == "collection":
        reading = {name: manifest["parameters"][name] for name in params.CSV_READING_PARAMS}
        return {"data_source": manifest["path"], "id_column": manifest["id_column"], "column": manifest["column"],
                **reading, "time_column": manifest["time_column"], "time_step": manifest["time_step"]}
    if manifest["source"] != "csv":
        return {"data_source": "sine"}
    reading = {name: manifest["parameters"].get(name, params.PARAMS[name].default) for name in params.CSV_READING_PARAMS}
    return {"data_source": manifest["path"], "column": manifest["column"], **reading}


# A collection: one global network over every series (pipeline.global_model) ------------------------

# What 'auto' becomes for a collection (docs/forecasting.md, "Many series"; chosen on M3's validation
# targets, benchmarks/m3.py).
COLLECTION_EPOCHS = 100
# 'auto' stops after about params.COLLECTION_PATIENCE_STEPS gradient steps without a lower validation loss, at
# least COLLECTION_PATIENCE epochs and at most params.COLLECTION_MAX_PATIENCE: 10 epochs of a small collection are a few
# thousand steps, and its validation loss often stalls that long before it falls again (M1 Quarterly, 3 seeds
# × 2 origins: 20 epochs instead of 10, 13.72 → 13.51; benchmarks/results/m3_validation.md, 2026-12-06).
COLLECTION_PATIENCE = 10
COLLECTION_TARGET = "last"
# A window reaching back before its series' start: masked (benchmarks/results/m3_validation.md, 2026-12-03).
COLLECTION_SHORT_HISTORY = "mask"
# 'auto' trains an ensemble of this many networks, their losses diverse (global_model.MEMBER_LOSSES), when an
# epoch has at most ENSEMBLE_MAX_WINDOWS training windows (about as many member-windows as one network's
# MAX_WINDOWS_PER_EPOCH); beyond, one network, and the run says so.
COLLECTION_ENSEMBLE = 3
ENSEMBLE_MAX_WINDOWS = 300_000
# 'auto' draws every window, unless an epoch would then exceed this many: then as many per series
# as make about this many (at least 1), so that a large collection validates, and can stop, within minutes.
MAX_WINDOWS_PER_EPOCH = 1_000_000


def collection_settings(values, collection_, folds, manifest):
    """The GlobalSettings of these train values, every 'auto' made a value for this collection."""
    from pipeline import collection as coll
    from pipeline.global_model import GlobalSettings

    horizon, season = manifest["horizon"], manifest["season"]
    input_width = manifest["time_steps"] - horizon
    if values["scaling"] not in ("auto", "window"):
        raise params.ParamError(f"Received `scaling`={values['scaling']!r} for a collection: a global model scales "
                                "each window by itself so that series of any size are alike; pass -P scaling=auto "
                                "or window.")
    target = COLLECTION_TARGET if values["target"] == "auto" else values["target"]
    if target == "seasonal" and not season:
        raise params.ParamError("Received `target`='seasonal' with `season`=0: the seasonal target is the change "
                                "from the value one season earlier; pass -P season=<steps per season>.")
    if target == "seasonal" and season > input_width:
        raise params.ParamError(f"Received `target`='seasonal' with `season`={season} longer than the input window "
                                f"({input_width} values): pass a longer -P time_steps or another target.")
    if values.get("init", "auto") not in ("auto", "none") or values.get("fine_tune_epochs", "auto") != "auto":
        raise params.ParamError(f"Received `init`={values['init']!r} for a collection: a collection trains its own "
                                "global network (init applies to a single series); drop it.")
    deseasonalise = values.get("deseasonalise", "auto")
    fits = season >= 2 and input_width >= 2 * season
    if deseasonalise in ("tested", "always") and not fits:
        raise params.ParamError(f"Received `deseasonalise`={deseasonalise} with `season`={season} and a window of {input_width} "
                                "values: deseasonalising needs a season of at least 2 and a window of two seasons; "
                                "pass -P season=<steps per season> and a longer -P time_steps, or deseasonalise=false.")
    windows = coll.count_training_windows(collection_, input_width, horizon, folds.holdout("select"))
    per_series = values["windows_per_series"]
    if per_series == "auto":
        per_series = 0 if windows <= MAX_WINDOWS_PER_EPOCH else max(1, MAX_WINDOWS_PER_EPOCH // len(collection_))
    drawn = epoch_windows(windows, per_series, len(collection_))
    auto = {"epochs": COLLECTION_EPOCHS, "patience": collection_patience(drawn, values["batch_size"]),
            "windows_per_series": per_series}
    chosen = {name: auto[name] if values[name] == "auto" else values[name] for name in auto}
    chosen["ensemble_size"] = auto_ensemble_size(drawn) if values["ensemble_size"] == "auto" \
        else values["ensemble_size"]
    return GlobalSettings(
        input_width=input_width, horizon=horizon, hidden_units=values["hidden_units"],
        learning_rate=values["learning_rate"], batch_size=values["batch_size"], epochs=chosen["epochs"],
        patience=chosen["patience"], target=target, season=season, ensemble_size=chosen["ensemble_size"],
        losses=member_losses(chosen["ensemble_size"]),
        windows_per_series=chosen["windows_per_series"], interval_level=values["interval_level"], seed=values["seed"],
        deseasonalise={"auto": "tested" if fits else "none", "false": "none"}.get(deseasonalise, deseasonalise),
        short_history=COLLECTION_SHORT_HISTORY if values.get("short_history", "auto") == "auto"
        else values["short_history"])


def collection_patience(windows_per_epoch, batch_size):
    """What patience='auto' becomes for a collection whose epoch draws this many windows."""
    batches = max(1, math.ceil(windows_per_epoch / batch_size))
    return max(COLLECTION_PATIENCE,
               min(params.COLLECTION_MAX_PATIENCE, math.ceil(params.COLLECTION_PATIENCE_STEPS / batches)))


def epoch_windows(windows, windows_per_series, n_series):
    """About how many of a collection's `windows` training windows an epoch draws."""
    return windows if not windows_per_series else min(windows, windows_per_series * n_series)


def auto_ensemble_size(windows_per_epoch):
    """What ensemble_size='auto' becomes for a collection whose epoch draws this many windows."""
    return COLLECTION_ENSEMBLE if windows_per_epoch <= ENSEMBLE_MAX_WINDOWS else 1


def member_losses(ensemble_size):
    """Each member's loss: one network learns the mean absolute error in units of the window's
    spread (MASE's); an ensemble's members cycle through sMAPE's, MASE's and MAPE's."""
    from pipeline.global_model import MEMBER_LOSSES

    return ("mase",) if ensemble_size == 1 else tuple(MEMBER_LOSSES[i % 3] for i in range(ensemble_size))


def ensemble_note(settings, values, windows_per_epoch):
    """What the run says about its ensemble, in one line."""
    losses = ", ".join(settings.losses)
    if values["ensemble_size"] != "auto":
        return f"ensemble_size={settings.ensemble_size}: {settings.ensemble_size} network(s), losses {losses} (given)"
    if settings.ensemble_size > 1:
        return (f"ensemble_size=auto: {settings.ensemble_size} networks, median-combined, trained with the losses "
                f"{losses} ({windows_per_epoch} training windows an epoch, within the {ENSEMBLE_MAX_WINDOWS} an "
                "ensemble is trained for)")
    return (f"ensemble_size=auto: 1 network ({windows_per_epoch} training windows an epoch, over the "
            f"{ENSEMBLE_MAX_WINDOWS} an ensemble of {COLLECTION_ENSEMBLE} is trained for: it would take about "
            f"{COLLECTION_ENSEMBLE}× as long); pass -P ensemble_size={COLLECTION_ENSEMBLE} for one anyway")


def resolved_of(settings):
    """What 'auto' became for a collection: the tags `resolved_<name>`."""
    return {"resolved_time_steps": str(settings.input_width + settings.horizon),
            "resolved_epochs": str(settings.epochs), "resolved_patience": str(settings.patience),
            "resolved_target": settings.target, "resolved_scaling": "window",
            "resolved_ensemble_size": str(settings.ensemble_size),
            "resolved_member_losses": ",".join(settings.losses),
            "resolved_windows_per_series": str(settings.windows_per_series),
            "resolved_deseasonalise": {"none": "false"}.get(settings.deseasonalise, settings.deseasonalise),
            "resolved_short_history": settings.short_history}


def held_out(folds, model):
    """What a collection's model was trained on, in words."""
    return {"full": "trained on every point of every series",
            "test": f"trained on every series but its last {folds.horizon} points",
            "select": f"trained on every series but its last {folds.holdout('select')} points"}[model]


def _train_collection(dataset, manifest, values, data_uri, resume, epoch_hook):
    """The selection model on windows drawn from every series, early-stopped on the
    validation cut-offs, which also calibrate its intervals; then (refit) the
    evaluated model, a new network trained on everything before the test cut-off
    for the epochs chosen. Logs the evaluated model as a series' train run logs its model."""
    from pipeline import collection as coll
    from pipeline import global_model

    collection_, folds = coll.from_dataset(dataset, manifest)
    settings = collection_settings(values, collection_, folds, manifest)
    mlflow.set_tags({"resolved_data_uri": data_uri, **resolved_of(settings),
                     "resolved_n_windows": str(folds.n_windows), "resolved_step_size": str(folds.step),
                     **({"resumed_from": values["resume_from"]} if resume is not None else {})})
    note = ensemble_note(settings, values, epoch_windows(
        coll.count_training_windows(collection_, settings.input_width, settings.horizon, folds.holdout("select")),
        settings.windows_per_series, len(collection_)))
    print(f"train: {note}", flush=True)
    mlflow.set_tag("ensemble_note", note)
    note = not_deseasonalised_note(collection_) if settings.deseasonalise != "none" else None
    if note:
        print(f"train: {note}", flush=True)
        mlflow.set_tag("deseasonalise_notes", note)
    training, serving = global_model.build_for(settings, collection_, folds.holdout("select"))
    history, _ = _fit_checkpointed(training, collection_, settings, epoch_hook, folds, resume)
    tracking.log_figure(plots.loss_curve(history.train_loss, history.val_loss, history.best_epoch,
                                         ylabel="MAE / window spread"), "loss_curve")
    half_widths = global_model.calibrate(serving, collection_, settings, folds)
    log_versus_seasonal_naive(global_model.versus_seasonal_naive(serving, collection_, settings, folds),
                              folds.n_windows)
    refit = values["refit"] == "true"
    evaluated = refit_collection(collection_, settings, history.best_epoch, folds.holdout("test"), half_widths,
                                 "test") if refit else serving
    evaluated_on = held_out(folds, "test" if refit else "select")
    model_uri = logged_model.log_models(
        evaluated, settings.input_width, settings.horizon, settings.interval_level,
        {**trained_on(manifest), "evaluated_model_trained_on": evaluated_on},
        settings.season if settings.target == "seasonal" else 1, series_input=True)
    tracking.log_batch({f"interval_half_width_step{k}": float(q) for k, q in enumerate(half_widths, 1)},
                       {"model_uri": model_uri, "evaluated_model_trained_on": evaluated_on})


def not_deseasonalised_note(collection_):
    """A multiplicative decomposition needs positive values: the note naming the series
    that hold a value <= 0, whose windows holding one are read as they are; or None."""
    seen = np.arange(collection_.width) >= collection_.width - collection_.lengths[:, None]
    not_positive = np.any(seen & (collection_.values <= 0), axis=1)
    if not not_positive.any():
        return None
    return (f"{int(not_positive.sum())} series hold a value <= 0 (the first, "
            f"{collection_.ids[int(np.argmax(not_positive))]!r}): their windows holding one are not deseasonalised "
            "(a multiplicative decomposition needs positive values); the others are")


VERSUS_NAIVE = "validation_vs_seasonal_naive.csv"


def log_versus_seasonal_naive(comparison, cut_offs):
    """Says, in the console, tags and metrics, whether the model's validation MASE
    (the mean over series) is worse than the seasonal naive forecast's, and how many
    series it forecast worse; the series by series figures as VERSUS_NAIVE."""
    lstm, naive = float(comparison["lstm_mase"].mean()), float(comparison["seasonal_naive_mase"].mean())
    worse, n = int(comparison["worse"].sum()), len(comparison)
    mlflow.log_text(comparison.to_csv(index=False), VERSUS_NAIVE)
    tracking.log_batch({"val_mase": lstm, "seasonal_naive_val_mase": naive, "series_worse_than_seasonal_naive": worse},
                       {"worse_than_seasonal_naive": str(lstm > naive).lower()})
    print(versus_naive_line(lstm, naive, worse, n, cut_offs), flush=True)


def versus_naive_line(lstm, naive, worse, n, cut_offs):
    """One line: the model against the seasonal naive forecast on the validation cut-offs."""
    verdict = ("WORSE: see validation_vs_seasonal_naive.csv on the train run before serving it" if lstm > naive
               else "better")
    return (f"Validation ({cut_offs} cut-off(s)): the LSTM's MASE {lstm:.3f} against the seasonal naive forecast's "
            f"{naive:.3f}, {verdict}; {worse} of {n} series forecast worse than by the seasonal naive (marked in "
            "forecasts.csv).")


def refit_collection(collection_, settings, epochs, holdout, half_widths, name):
    """A new network, trained `epochs` epochs on the windows whose targets precede the
    last `holdout` points, with the selection model's interval half-widths: its
    serving model. Logs `refit_<name>_loss` per epoch and `refit_<name>_seconds`."""
    from pipeline import global_model

    training, serving = global_model.build_for(settings, collection_, holdout)
    progress = EpochProgress(epochs)
    what = "before the test cut-off" if holdout else "on every point"
    print(f"refit {what}: {epochs} epochs, as validation chose", flush=True)

    def on_epoch_end(epoch, logs):
        mlflow.log_metric(f"refit_{name}_loss", logs["loss"], step=epoch, synchronous=False)
        progress(epoch, {"loss": logs["loss"], "val_loss": float("nan")})

    started = time.perf_counter()
    try:
        global_model.refit(training, collection_, settings, epochs, holdout, on_epoch_end)
    finally:
        progress.close()
    mlflow.log_metric(f"refit_{name}_seconds", time.perf_counter() - started)
    serving.get_layer(forecaster.INTERVAL_LAYER).half_width.assign(np.asarray(half_widths, np.float32))
    return serving


def _fit_checkpointed(training, collection_, settings, epoch_hook, folds, resume):
    """fit_collection, checkpointed after every epoch to a local folder, which is uploaded
    to the run's `checkpoints/` every CHECKPOINT_UPLOAD_SECONDS of training, at the end,
    and after a failure or an interruption (as a series' is), so that `resume_from`
    continues it."""
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        uploads = tracking.CheckpointUploads(checkpoint_dir, CHECKPOINT_UPLOAD_SECONDS)

        def hook(epoch, logs):
            uploads.after_epoch()
            if epoch_hook is not None:
                epoch_hook(epoch, logs)

        try:
            result = fit_collection(training, collection_, settings, hook, folds, checkpoint_dir, resume)
        except BaseException as error:
            written = (Path(checkpoint_dir) / forecaster.CHECKPOINT_STATE).is_file()
            if written and getattr(error, "pruned_at_epoch", None) is None:  # a pruned trial is not resumed
                uploads.upload()
            raise
        uploads.upload()
    return result


def fit_collection(training, collection_, settings, epoch_hook=None, folds=None, checkpoint_dir=None, resume=None,
                   every_point=None):
    """global_model.fit with each epoch's losses logged and shown, and the run's training
    metrics (seconds, epochs, best epoch and loss, windows per second) logged after:
    (history, seconds). `train_loss` and `val_loss` are the mean absolute error in
    units of each window's spread; `every_point`: global_model.fit's."""
    from pipeline import global_model

    progress = EpochProgress(settings.epochs)

    def on_epoch_end(epoch, logs):
        mlflow.log_metrics({"train_loss": logs["loss"], "val_loss": logs["val_loss"]}, step=epoch,
                           synchronous=False)
        progress(epoch, logs)
        if epoch_hook is not None:
            epoch_hook(epoch, logs)

    if resume is not None:  # the epochs the interrupted run trained, on this run's curve too
        _log_inherited_history(resume)
    started = time.perf_counter()
    try:
        history = global_model.fit(training, collection_, settings, on_epoch_end, folds, checkpoint_dir, resume,
                                   every_point)
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    mlflow.log_metrics({"train_seconds": seconds, "epochs_trained": len(history.val_loss),
                        "best_epoch": history.best_epoch, "best_val_loss": min(history.val_loss),
                        "windows_per_epoch": history.windows_per_epoch,
                        "windows_per_second": history.windows_per_epoch * len(history.val_loss) / seconds})
    return history, seconds


if __name__ == "__main__":
    program("train", run)
