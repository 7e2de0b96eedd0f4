"""The Keras forecaster built around the custom cell: build, fit, export, free-run."""

import keras
import numpy as np

from custom_layers import LSTMCell

RNN_LAYER = "lstm"
SCALE_LAYER = "standardize"


def build_model(hidden_units, learning_rate, horizon=1, scale=None):
    """Input (batch, timesteps, 1), any window length → RNN(LSTMCell) → Dense(horizon).

    With `scale` = (mean, std), the model standardizes its input with them and
    maps its output back (`Normalization` and its inverse), so that it takes and
    returns raw values, and so does everything exported from it. Without it,
    the layers are absent and the model is the seed's. Compiled with Adam and MSE. XLA (`jit_compile=True`) is asked for
    explicitly: Keras leaves it off on CPU, where it trained the default workload
    about 1.6× faster per epoch (576 → 363 ms on a 2-core CPU).
    """
    inputs = keras.Input(shape=(None, 1), name="window")
    hidden = inputs
    if scale is not None:
        mean, std = scale
        hidden = keras.layers.Normalization(mean=mean, variance=std**2, name=SCALE_LAYER)(hidden)
    hidden = keras.layers.RNN(LSTMCell(hidden_units), name=RNN_LAYER)(hidden)
    forecast = keras.layers.Dense(horizon, name="forecast")(hidden)
    if scale is not None:
        forecast = keras.layers.Normalization(
            mean=mean, variance=std**2, invert=True, name="unstandardize"
        )(forecast)
    model = keras.Model(inputs, forecast, name="lstm_forecaster")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mse",
        jit_compile=True,
    )
    return model


def standard_scale(dataset):
    """(mean, std) of every value of the training split, inputs and targets."""
    values = np.concatenate([dataset["x_train"].ravel(), dataset["y_train"].ravel()]).astype(np.float64)
    std = values.std()
    return float(values.mean()), float(std) if std > 0 else 1.0


def fit(model, dataset, epochs, batch_size, patience, on_epoch_end=None):
    """Trains on the train split, validating on the val split after every epoch.

    Keeps the weights of the epoch with the lowest validation loss. With
    `patience` > 0, stops once that many epochs pass without improvement.
    `on_epoch_end(epoch, logs)` is called with 1-based epochs and the losses.

    Returns the Keras `History` and the 1-based best epoch.
    """
    best = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=patience if patience > 0 else epochs,
        restore_best_weights=True,
    )
    callbacks = [best]
    if on_epoch_end is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch + 1, logs)
            )
        )
    history = model.fit(
        dataset["x_train"],
        dataset["y_train"],
        validation_data=(dataset["x_val"], dataset["y_val"]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    return history, best.best_epoch + 1


def load_model(path):
    """Loads a `.keras` file saved by `train`, with Keras' safe mode on."""
    return keras.saving.load_model(path, safe_mode=True)


def export_saved_model(model, path):
    """Writes a TensorFlow SavedModel whose `serving_default` signature takes the
    input `window`, float32 (batch, timesteps, 1) with batch and timesteps both
    free, and returns the output `forecast`, float32 (batch, horizon).

    A second signature, `serve_xla`, computes the same with XLA: 3 to 4× faster
    for one window, but it compiles anew (some 0.4 s) for every new
    (batch, timesteps) shape, so it suits callers whose shapes repeat.
    """
    import tensorflow as tf

    window = [tf.TensorSpec(shape=(None, None, 1), dtype=tf.float32, name="window")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, jit_compile in (("serve", False), ("serve_xla", True)):
        archive.add_endpoint(
            name=name,
            fn=tf.function(lambda window: {"forecast": model(window, training=False)},
                           input_signature=window, jit_compile=jit_compile),
        )
    archive.write_out(path, verbose=False)


def rnn_input(model, window):
    """What the RNN layer reads for `window`: standardized, if the model scales."""
    if SCALE_LAYER in [layer.name for layer in model.layers]:
        return np.asarray(model.get_layer(SCALE_LAYER)(window))
    return window


def predict(model, x, batch_size=256):
    return model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0)


def free_run(model, window, n_steps):
    """Forecasts `n_steps` ahead from one window, feeding each prediction back.

    `window` is (timesteps, 1); the model always reads the latest `timesteps`
    values, of which more and more are its own predictions. With a horizon
    above 1, only the first forecast step is fed back.
    """
    context = np.asarray(window, dtype=np.float32)[np.newaxis].copy()
    forecasts = np.empty(n_steps, dtype=np.float32)
    for step in range(n_steps):
        forecasts[step] = model.predict_on_batch(context)[0, 0]
        context = np.concatenate([context[:, 1:], forecasts[step].reshape(1, 1, 1)], axis=1)
    return forecasts
