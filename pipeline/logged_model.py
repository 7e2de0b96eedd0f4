"""The model a run logs, three ways: the `.keras` file, a SavedModel in TensorFlow
Serving's layout (`saved_model/1/`), and the MLflow pyfunc model of
pipeline/serving.py around that SavedModel. Every stage that ends with a model
(train, a collection's main, pretrain) logs it here, so that `mlflow models
serve` and `lstm-predict` read every model alike.

A zero-shot pretrained model, which a run serves without training anything, is
logged two ways (`tf_serving=False`): the `.keras` file, and the MLflow model
around that file, with the package `custom_layers` logged beside it as code.
Exporting a SavedModel traces three serving graphs, most of a zero-shot run's
own work (benchmarks/zero_shot.py); `export_saved_model(model_file, folder)`
writes one from the `.keras` file when TensorFlow Serving needs it."""

import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

from pipeline import model as forecaster
from pipeline import tracking, workarounds

KERAS_MODEL = forecaster.KERAS_MODEL
SAVED_MODEL = "saved_model"
SAVED_MODEL_VERSION = "1"
SERVING_CODE = Path(__file__).resolve().parent / "serving.py"
# What a model logged from its .keras file needs to load it: the layers it is made of.
CUSTOM_LAYERS = Path(__file__).resolve().parent.parent / "custom_layers"


def signature(horizon):
    """float32 (batch, timesteps, 1) in, both free; float32 (batch, horizon) out:
    the forecast, or with the parameter `intervals` true, the forecast and the
    interval bounds (see pipeline/serving.py)."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, 1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, horizon))]),
        params=ParamSchema([ParamSpec("intervals", "boolean", False)]),
    )


def short_history_of(model):
    """'mask' where `model` masks the values a window lacks before its series' start, else 'pad'."""
    return "mask" if any(layer.name == forecaster.FILL_MISSING_LAYER for layer in model.layers) else "pad"


def log_models(model, input_width, horizon, interval_level, data_source, min_window=1, series_input=False,
               tf_serving=True):
    """Logs the .keras file, the SavedModel in TensorFlow Serving's layout
    (`saved_model/1/`), and the MLflow model `model`; returns its models:/ URI.
    With `series_input` (a collection's model), the MLflow model takes windows or
    a DataFrame of series, so its signature declares only the parameter.
    `data_source` (a dict) goes into the MLflow model's metadata, beside the
    window and horizon: what the model was trained on, and through when.
    Without `tf_serving`, no SavedModel: the MLflow model reads the .keras file."""
    with tempfile.TemporaryDirectory() as folder:
        keras_path = Path(folder) / "model.keras"
        model.save(keras_path)
        mlflow.log_artifact(str(keras_path), artifact_path=str(Path(KERAS_MODEL).parent))
        tracking.keep_local_copy(f"runs:/{mlflow.active_run().info.run_id}/{KERAS_MODEL}", keras_path)
        if tf_serving:
            base_path = Path(folder) / SAVED_MODEL
            saved_model = base_path / SAVED_MODEL_VERSION
            forecaster.export_saved_model(model, str(saved_model))
            mlflow.log_artifacts(str(base_path), artifact_path=SAVED_MODEL)
            artifacts, code_paths, needs = {"saved_model": str(saved_model)}, None, ("mlflow", "tensorflow", "numpy")
        else:
            artifacts, code_paths = {"keras_model": str(keras_path)}, [str(CUSTOM_LAYERS)]
            needs = ("mlflow", "tensorflow", "keras", "numpy")
        workarounds.check_pins_first()
        with workarounds.no_input_example_warning():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_CODE),
                artifacts=artifacts,
                code_paths=code_paths,
                signature=ModelSignature(inputs=None, params=signature(horizon).params) if series_input
                else signature(horizon),
                metadata={"input_width": input_width, "horizon": horizon, "interval_level": interval_level,
                          "min_window": min_window, "short_history": short_history_of(model), **data_source},
                pip_requirements=[f"{name}=={version(name)}" for name in needs],
            )
    return info.model_uri


def export_saved_model(model_file, folder):
    """Writes the SavedModel of the .keras file `model_file` (as `log_models` logs it) into
    `folder`/1, TensorFlow Serving's layout: for a model logged without one (zero-shot)."""
    saved_model = Path(folder) / SAVED_MODEL_VERSION
    forecaster.export_saved_model(forecaster.load_model(str(model_file)), str(saved_model))
    return saved_model
