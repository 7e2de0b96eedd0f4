"""The custom cell is an LSTM: same outputs, states and gradients as keras.layers.LSTM,
stepped by Keras' RNN loop or run whole by the fused LSTM layer (tests/custom_layers/test_lstm_layer.py)."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from custom_layers import LSTM, LSTMCell, gate_activations
from tests.conftest import REPO

SIZES = [  # batch, timesteps, features, units
    (1, 1, 1, 1),
    (4, 7, 3, 5),
    (8, 49, 1, 50),
    (3, 20, 6, 16),
]


def twin_layers(units, features, return_sequences, seed=0, layer=keras.layers.RNN):
    """keras.layers.LSTM and `layer`(LSTMCell) built with the same random weights:
    Keras' RNN loop over the cell, or this project's fused LSTM layer."""
    keras.utils.set_random_seed(seed)
    reference = keras.layers.LSTM(units, return_sequences=return_sequences, return_state=True)
    reference.build((None, None, features))
    # Random biases rather than the initial zeros/ones, so every weight matters.
    weights = [w + np.random.default_rng(seed).normal(0, 0.3, w.shape).astype("float32")
               for w in reference.cell.get_weights()]
    reference.cell.set_weights(weights)
    custom = layer(LSTMCell(units), return_sequences=return_sequences, return_state=True)
    custom.build((None, None, features))
    custom.cell.set_weights(reference.cell.get_weights())
    return reference, custom


@pytest.mark.parametrize("layer", [keras.layers.RNN, LSTM], ids=["rnn_loop", "fused"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("batch,timesteps,features,units", SIZES)
def test_outputs_states_and_gradients_match_keras_lstm(batch, timesteps, features, units, return_sequences, layer):
    reference, custom = twin_layers(units, features, return_sequences, layer=layer)
    x = tf.constant(np.random.default_rng(1).normal(size=(batch, timesteps, features)).astype("float32"))
    output_shape = (batch, timesteps, units) if return_sequences else (batch, units)
    # A loss that weighs every output element differently, plus the final cell state.
    weights = tf.constant(np.random.default_rng(2).normal(size=output_shape).astype("float32"))
    results = []
    for layer in (reference, custom):
        with tf.GradientTape() as tape:
            tape.watch(x)
            output, h, c = layer(x)
            loss = tf.reduce_sum(output * weights) + tf.reduce_sum(c)
        gradients = tape.gradient(loss, [x] + layer.cell.trainable_weights)
        results.append([output, h, c] + gradients)
    names = ["output", "h", "c", "d/dx", "d/dkernel", "d/drecurrent_kernel", "d/dbias"]
    for name, expected, actual in zip(names, *results):
        assert actual is not None and expected is not None, name
        # The fused kernel sums in another order. A weight gradient sums `timesteps` terms as large
        # as the largest element (26 here), so float32 rounding bounds its error by that magnitude,
        # not by the element's own size (an element near 0 can be a difference of terms near 20:
        # 1.1e-5 off on one AMD EPYC machine): 1e-5 of the array's largest magnitude, or of 1.
        expected = np.asarray(expected)
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


def test_weights_have_keras_names_shapes_and_gate_order():
    cell = LSTMCell(4)
    cell.build((None, 3))
    assert [(w.name, tuple(w.shape)) for w in cell.weights] == [
        ("kernel", (3, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,)),
    ]
    # Gate order i, f, C̃, o: only the forget gate's bias starts at 1.
    np.testing.assert_array_equal(np.asarray(cell.bias), np.repeat([0.0, 1.0, 0.0, 0.0], 4))
    no_forget_bias = LSTMCell(4, unit_forget_bias=False)
    no_forget_bias.build((None, 3))
    np.testing.assert_array_equal(np.asarray(no_forget_bias.bias), np.zeros(16))


@pytest.mark.parametrize("argument,value,message", [
    ("units", 0, "Received an invalid value for argument `units`, expected a positive integer, got 0."),
    ("units", 2.5, "expected a positive integer, got 2.5."),
    ("dropout", 1.0, "Received an invalid value for argument `dropout`, expected a float in [0, 1), got 1.0."),
    ("recurrent_dropout", -0.1, "argument `recurrent_dropout`, expected a float in [0, 1), got -0.1."),
])
def test_bad_arguments_are_rejected_with_a_clear_message(argument, value, message):
    kwargs = {"units": 3, argument: value}
    with pytest.raises(ValueError) as error:
        LSTMCell(**kwargs)
    assert message in str(error.value)


def test_config_round_trip_keeps_every_option():
    cell = LSTMCell(
        7, kernel_initializer="he_normal", recurrent_initializer="glorot_uniform",
        bias_initializer="ones", unit_forget_bias=False, kernel_regularizer="l2",
        dropout=0.25, recurrent_dropout=0.1, seed=3,
    )
    config = cell.get_config()
    assert LSTMCell.from_config(config).get_config() == config
    assert config["units"] == 7 and config["dropout"] == 0.25 and config["recurrent_dropout"] == 0.1
    assert config["unit_forget_bias"] is False and config["seed"] == 3


def test_dropout_applies_in_training_only_with_one_mask_per_sequence():
    x = np.ones((2, 6, 4), dtype="float32")
    layer = keras.layers.RNN(LSTMCell(8, dropout=0.5, recurrent_dropout=0.3, seed=1), return_sequences=True)
    inference = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), inference)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        trained = layer(x, training=True)
        total = tf.reduce_sum(trained)
    assert not np.allclose(np.asarray(trained), inference)
    # One input mask per sequence: a dropped input feature has no effect at any step,
    # a kept one has an effect at every step.
    dropped = np.asarray(tape.gradient(total, x)) == 0
    assert dropped.any() and not dropped.all()
    np.testing.assert_array_equal(dropped, np.repeat(dropped[:, :1, :], 6, axis=1))


def test_gate_read_out_recomputes_the_layers_own_output():
    keras.utils.set_random_seed(2)
    layer = keras.layers.RNN(LSTMCell(6), return_sequences=True, return_state=True)
    x = np.random.default_rng(3).normal(size=(3, 11, 2)).astype("float32")
    outputs, h, c = layer(x)
    gates = gate_activations(layer.cell, x)
    assert set(gates) == {"i", "f", "c_tilde", "o", "c", "h"}
    assert all(values.shape == (3, 11, 6) for values in gates.values())
    np.testing.assert_allclose(gates["h"], np.asarray(outputs), atol=1e-6)
    np.testing.assert_allclose(gates["c"][:, -1], np.asarray(c), atol=1e-6)
    for name in ("i", "f", "o"):
        assert gates[name].min() >= 0 and gates[name].max() <= 1
    # The equations hold between the read-out values themselves.
    c_prev = np.concatenate([np.zeros((3, 1, 6)), gates["c"][:, :-1]], axis=1)
    np.testing.assert_allclose(gates["c"], gates["f"] * c_prev + gates["i"] * gates["c_tilde"], atol=1e-6)
    np.testing.assert_allclose(gates["h"], gates["o"] * np.tanh(gates["c"]), atol=1e-6)


def assert_loads_in_a_fresh_process(model, x, folder, checks):
    """Saves `model` to a .keras file, loads it in a new Python process with safe
    mode on, runs `checks` there (code about `layer`, the model's second layer),
    and asserts that it predicts exactly what `model` predicts for `x`."""
    np.save(folder / "x.npy", x)
    model.save(folder / "model.keras")
    script = (
        "import sys, numpy as np, keras, custom_layers\n"
        "folder = sys.argv[1]\n"
        "model = keras.saving.load_model(f'{folder}/model.keras', safe_mode=True)\n"
        "layer = model.layers[1]\n"
        f"{checks}\n"
        "np.save(f'{folder}/y.npy', model.predict(np.load(f'{folder}/x.npy'), verbose=0))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(folder)], cwd=REPO, check=True)
    np.testing.assert_array_equal(np.load(folder / "y.npy"), model.predict(x, verbose=0))


def test_keras_file_loads_in_a_fresh_process_with_identical_outputs(tmp_path):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, 2))
    outputs = keras.layers.Dense(1)(keras.layers.RNN(LSTMCell(5, dropout=0.1))(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(5).normal(size=(4, 9, 2)).astype("float32")
    assert_loads_in_a_fresh_process(model, x, tmp_path,
                                    "assert type(layer.cell) is custom_layers.LSTMCell, type(layer.cell)")
