"""Stage 2: train the custom-cell LSTM on a generate_data run's windows.

Resolves every 'auto' for the data (tags `resolved_<name>`), trains the
ensemble, calibrates the prediction interval on the validation windows
(`interval_half_width_step<k>`), and logs every parameter, `train_loss` and
`val_loss` per epoch (step = epoch, from 1; with an ensemble also each
member's and the median's validation loss), a checkpoint under `checkpoints/` after every epoch, the loss curve,
the `.keras` model under `keras_model/`, the TensorFlow SavedModel under
`saved_model/1/` (a TensorFlow Serving base path), and an MLflow pyfunc model
`model`, whose models:/ URI is the tag `model_uri`.
"""

import json
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

from custom_layers import transforms
from pipeline import metrics, params, plots, tracking, workarounds
from pipeline import model as forecaster
from pipeline.progress import EpochProgress
from pipeline.stages import program

KERAS_MODEL = "keras_model/model.keras"
# TensorFlow Serving's layout: a model base path holding numbered versions.
SAVED_MODEL = "saved_model"
SAVED_MODEL_VERSION = "1"
SERVING_CODE = Path(__file__).resolve().parent.parent / "serving.py"
# Rewritten after every epoch: the last checkpoint (pipeline.model.save_checkpoint);
# after a failure or an interruption also the best weights as a .keras model.
CHECKPOINTS = "checkpoints"
BEST_CHECKPOINT = "best.keras"


def signature(horizon):
    """float32 (batch, timesteps, 1) in, both free; float32 (batch, horizon) out:
    the forecast, or with the parameter `intervals` true, the forecast and the
    interval bounds (see pipeline/serving.py)."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, 1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, horizon))]),
        params=ParamSchema([ParamSpec("intervals", "boolean", False)]),
    )


def run(data_uri, hidden_units, learning_rate, epochs, batch_size, scaling, patience, target="auto", season=0,
        ensemble_size="auto", interval_level=0.9, seed=42, resume_from="none", epoch_hook=None):
    """Trains and logs the model; returns the run id.

    `epoch_hook(epoch, logs)`, if given, is called after every epoch has been
    logged (the tuner reports val_loss to its trial there, and may stop it).

    With `resume_from`, continues that KILLED or FAILED train run from its last
    checkpoint, on its data, with its parameters (which must be these), as a
    new run whose per-epoch metrics start with the history it inherits.
    """
    values = dict(locals())
    del values["epoch_hook"]
    resume = None
    if resume_from != "none":
        previous = tracking.interrupted_run(resume_from, "train", values)
        data_uri = previous.data.tags["resolved_data_uri"]
        resume = tracking.download(f"runs:/{resume_from}/{CHECKPOINTS}", "resume_from")
    with tracking.stage_run("train") as active:
        tracking.log_params(values)
        if data_uri == "auto":
            data_uri = f"runs:/{tracking.newest_finished_run('generate_data', 'data_uri').info.run_id}/data"
        mlflow.set_tag("resolved_data_uri", data_uri)
        if resume is not None:
            mlflow.set_tag("resumed_from", resume_from)
        dataset, manifest = tracking.load_data(data_uri)
        tracking.log_dataset_input(dataset, manifest, "train", context="training")
        horizon = dataset["y_train"].shape[1]
        input_width = dataset["x_train"].shape[1]
        chosen = check_data(values, dataset, manifest)
        epochs, patience, scaling, target, ensemble_size = (
            chosen[name] for name in ("epochs", "patience", "scaling", "target", "ensemble_size"))
        # What 'auto' became: tags, since a parameter is logged once, as given.
        mlflow.set_tags({f"resolved_{name}": params.PARAMS[name].format(chosen[name])
                         for name in AUTO_TRAIN_PARAMS})
        scale = forecaster.standard_scale(dataset)
        if scaling == "standard":
            mlflow.log_metrics({"scaling_mean": scale[0], "scaling_std": scale[1]})

        keras.utils.set_random_seed(seed)
        model = forecaster.build_model(hidden_units, learning_rate, horizon, scaling, scale, target, season,
                                       ensemble_size)
        if resume is not None:
            _log_inherited_history(resume)
        started = time.perf_counter()
        progress = EpochProgress(epochs)

        metrics_logged = [0]  # the last epoch whose losses were logged

        def on_epoch_end(epoch, logs):
            _log_epoch(epoch, logs, checkpoint_dir, epoch_hook, metrics_logged)
            progress(epoch, logs)

        with tempfile.TemporaryDirectory() as checkpoint_dir:
            try:
                state = forecaster.fit(model, dataset, epochs, batch_size, patience, seed, checkpoint_dir,
                                       on_epoch_end=on_epoch_end, resume=resume)
            except BaseException as error:
                progress.close()
                if getattr(error, "pruned_at_epoch", None) is None:  # a pruned trial is not resumed
                    _log_last_checkpoint(checkpoint_dir, metrics_logged[0])
                    _log_best_checkpoint(model, checkpoint_dir)
                raise
        progress.close()
        if state.epochs_done < epochs:
            progress.stopped_early(state.epochs_done, patience, state.best_epoch, state.best_val_loss)
        mlflow.log_metrics({
            "train_seconds": time.perf_counter() - started,
            "epochs_trained": state.epochs_done,
            "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss,
        })
        tracking.log_figure(plots.loss_curve(state.train_loss, state.val_loss, state.best_epoch), "loss_curve")
        served = forecaster.forecasting_model(model, interval_level)
        half_widths = forecaster.calibrate(served, dataset["x_val"], dataset["y_val"])
        mlflow.log_metrics({f"interval_half_width_step{step}": float(q) for step, q in enumerate(half_widths, 1)})
        min_window = season if target == "seasonal" else 1  # a seasonal target reads a whole season back
        model_uri = _log_models(served, input_width, horizon, interval_level, trained_on(manifest), min_window)
        # Last: a run without this tag has no finished model, whatever its artifacts.
        mlflow.set_tag("model_uri", model_uri)
        return active.info.run_id


AUTO_TRAIN_PARAMS = ("epochs", "patience", "scaling", "target", "ensemble_size")


def check_data(values, dataset, manifest):
    """The train values with 'auto' resolved for this data (params.resolve_training),
    after the checks that need it: a season that fits the window for
    target='seasonal', enough validation windows for the interval level.
    Raises a one-line ParamError."""
    is_sine = manifest["source"] == "sine"
    input_width, horizon = dataset["x_train"].shape[1], dataset["y_train"].shape[1]
    chosen = params.resolve_training(
        values, is_sine, input_width, len(dataset["y_train"]),
        metrics.seasonal_naive_wins(dataset["x_train"], dataset["y_train"], values.get("season", 0)))
    params.check_combination({"data_source": "sine" if is_sine else "csv", "target": chosen["target"],
                              "season": chosen["season"], "time_steps": input_width + horizon, "horizon": horizon})
    n_val, level = len(dataset["y_val"]), chosen["interval_level"]
    if n_val < transforms.min_windows_for(level):
        raise params.ParamError(
            f"Received an invalid value for parameter `interval_level`: {level} needs at least "
            f"{transforms.min_windows_for(level)} validation windows to calibrate, the data has {n_val}; "
            "lower it, or give validation more of the series (-P val_fraction)."
        )
    return chosen


def _log_last_checkpoint(checkpoint_dir, metrics_logged):
    """After a failure or an interruption: the last checkpoint uploaded again, whole (a
    signal may have cut the last epoch's upload short, leaving a file half copied), with
    the losses of any epoch it holds that were not logged yet, so that the run's history
    and its checkpoint agree. Further signals wait for this bookkeeping."""
    state_file = Path(checkpoint_dir) / forecaster.CHECKPOINT_STATE
    if not state_file.is_file():
        return  # not one epoch finished
    state = forecaster.TrainingState(**json.loads(state_file.read_text()))
    for epoch in range(metrics_logged + 1, state.epochs_done + 1):
        mlflow.log_metrics({"train_loss": state.train_loss[epoch - 1], "val_loss": state.val_loss[epoch - 1]},
                           step=epoch)
    mlflow.log_artifacts(checkpoint_dir, artifact_path=CHECKPOINTS)


def _log_epoch(epoch, logs, checkpoint_dir, epoch_hook=None, metrics_logged=None):
    # The metrics are logged asynchronously (an epoch does not wait for them); the
    # checkpoint upload is synchronous, one request per file. With an ensemble,
    # each member's validation MSE and the median's too.
    losses = {"train_loss": logs["loss"], "val_loss": logs["val_loss"]}
    losses.update({name[len("val_"):].replace("_mse", "_val_loss"): value
                   for name, value in logs.items() if name.startswith("val_") and name != "val_loss"})
    mlflow.log_metrics(losses, step=epoch, synchronous=False)
    if metrics_logged is not None:
        metrics_logged[0] = epoch
    mlflow.log_artifacts(checkpoint_dir, artifact_path=CHECKPOINTS)
    if epoch_hook is not None:
        epoch_hook(epoch, logs)


def _log_inherited_history(checkpoint):
    state = forecaster.TrainingState(**json.loads((Path(checkpoint) / forecaster.CHECKPOINT_STATE).read_text()))
    for epoch, (train_loss, val_loss) in enumerate(zip(state.train_loss, state.val_loss), start=1):
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss}, step=epoch, synchronous=False)


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
    `predict` reads the same column of the same series by default."""
    if manifest["source"] != "csv":
        return {"data_source": "sine"}
    reading = {name: manifest["parameters"].get(name, params.PARAMS[name].default) for name in params.CSV_READING_PARAMS}
    return {"data_source": manifest["path"], "column": manifest["column"], **reading}


def _log_models(model, input_width, horizon, interval_level, data_source, min_window=1, series_input=False):
    """Logs the .keras file, the SavedModel in TensorFlow Serving's layout
    (`saved_model/1/`), and the MLflow model `model`; returns its models:/ URI.
    With `series_input` (a collection's model), the MLflow model takes windows or
    a DataFrame of series, so its signature declares only the parameter."""
    with tempfile.TemporaryDirectory() as folder:
        keras_path = Path(folder) / "model.keras"
        model.save(keras_path)
        mlflow.log_artifact(str(keras_path), artifact_path=str(Path(KERAS_MODEL).parent))
        base_path = Path(folder) / SAVED_MODEL
        saved_model = base_path / SAVED_MODEL_VERSION
        forecaster.export_saved_model(model, str(saved_model))
        mlflow.log_artifacts(str(base_path), artifact_path=SAVED_MODEL)
        with workarounds.no_input_example_warning():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_CODE),
                artifacts={"saved_model": str(saved_model)},
                signature=ModelSignature(inputs=None, params=signature(horizon).params) if series_input
                else signature(horizon),
                metadata={"input_width": input_width, "horizon": horizon, "interval_level": interval_level,
                          "min_window": min_window, **data_source},
                pip_requirements=[f"{name}=={version(name)}" for name in ("mlflow", "tensorflow", "numpy")],
            )
    return info.model_uri


if __name__ == "__main__":
    program("train", run)
