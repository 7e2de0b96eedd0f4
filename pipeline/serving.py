"""The MLflow pyfunc model that `train` logs: the exported SavedModel, nothing else.

It is logged as a model from code (`mlflow.models.set_model`): loading it runs
this file and unpickles nothing, and it needs TensorFlow, not this project.
"""

import mlflow
import numpy as np


class SavedModelForecaster(mlflow.pyfunc.PythonModel):
    """predict(x): x float32 (batch, timesteps, 1) → forecasts (batch, 1)."""

    def load_context(self, context):
        import tensorflow as tf

        self._tf = tf
        # `serve` is the endpoint Keras' export writes; `serving_default` wraps it.
        self._serve = tf.saved_model.load(context.artifacts["saved_model"]).serve

    def predict(self, context, model_input, params=None):
        window = self._tf.constant(np.asarray(model_input, dtype=np.float32))
        return self._serve(window).numpy()


mlflow.models.set_model(SavedModelForecaster())
