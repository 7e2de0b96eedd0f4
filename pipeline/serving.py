"""The MLflow pyfunc model that `train` logs: the exported SavedModel, nothing else.

It is logged as a model from code (`mlflow.models.set_model`): loading it runs
this file and unpickles nothing, and it needs TensorFlow, not this project.
"""

import mlflow
import numpy as np


class SavedModelForecaster(mlflow.pyfunc.PythonModel):
    """predict(x): x float32 (batch, timesteps, 1) → forecasts (batch, 1)."""

    # The input is checked against the tensor signature logged with the model;
    # this tells MLflow not to look for (and warn about) predict() type hints too.
    _skip_type_hint_validation = True

    def load_context(self, context):
        import tensorflow as tf

        self._tf = tf
        # Hold the loaded object itself: its `serve` function alone does not keep
        # the model's variables alive.
        self._saved_model = tf.saved_model.load(context.artifacts["saved_model"])

    def predict(self, context, model_input, params=None):
        window = self._tf.constant(np.asarray(model_input, dtype=np.float32))
        return self._saved_model.serve(window).numpy()


mlflow.models.set_model(SavedModelForecaster())
