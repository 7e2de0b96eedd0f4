"""The LSTM layer's fused path computes what the cell computes: keras.layers.LSTM's
outputs, states and gradients, with TensorFlow's BlockLSTM kernels in the graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from custom_layers import LSTM, LSTMCell, stepwise
from tests.custom_layers.test_lstm_cell import SIZES, assert_loads_in_a_fresh_process


def twins(units, features, seed=0, **options):
    """keras.layers.LSTM and LSTM(LSTMCell) with the same random weights and options."""
    keras.utils.set_random_seed(seed)
    reference = keras.layers.LSTM(units, return_state=True, **options)
    reference.build((None, None, features))
    # Random biases rather than the initial zeros/ones, so every weight matters.
    reference.cell.set_weights([w + np.random.default_rng(seed).normal(0, 0.3, w.shape).astype("float32")
                                for w in reference.cell.get_weights()])
    fused = LSTM(LSTMCell(units), return_state=True, **options)
    fused.build((None, None, features))
    fused.cell.set_weights(reference.cell.get_weights())
    return reference, fused


def initial_state(rng, batch, units):
    """h_0 in (-1, 1), as any h_t = o_t ⊙ tanh(C_t) is, and C_0 unbounded."""
    return (tf.constant(rng.uniform(-0.9, 0.9, size=(batch, units)).astype("float32")),
            tf.constant(rng.normal(size=(batch, units)).astype("float32")))


def op_types(function, *args):
    return {op.type for op in function.get_concrete_function(*args).graph.get_operations()}


def outputs_and_gradients(layer, x, h0, c0, jit_compile=False):
    """The layer's output, h, c and the gradients of a loss that weighs every
    output element differently, in a tf.function; and the op types it ran."""
    weights = None

    def run(x, h0, c0):
        nonlocal weights
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            output, h, c = layer(x, initial_state=[h0, c0])
            if weights is None:
                weights = tf.constant(np.random.default_rng(2).normal(size=output.shape).astype("float32"))
            loss = tf.reduce_sum(output * weights) + tf.reduce_sum(c * 0.7)
        return [output, h, c] + tape.gradient(loss, [x, h0, c0] + layer.cell.trainable_weights)

    function = tf.function(run, jit_compile=jit_compile)
    values = function(x, h0, c0)
    return [np.asarray(v) for v in values], op_types(function, x, h0, c0)




def assert_close(actual, expected, name):
    """Equal to 1e-5 of the array's largest value (or 1e-5 when that is below 1):
    the kernel sums in float32 in another order, and a bias gradient of 1.1 that
    is the sum of 392 terms of the size of the largest (about 10) differs by 3e-5."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * max(1.0, np.abs(expected).max()),
                               err_msg=name)
NAMES = ["output", "h", "c", "d/dx", "d/dh0", "d/dc0", "d/dkernel", "d/drecurrent_kernel", "d/dbias"]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("batch,timesteps,features,units", SIZES)
def test_fused_path_matches_keras_lstm_in_outputs_states_and_gradients(batch, timesteps, features, units,
                                                                       return_sequences, go_backwards):
    reference, fused = twins(units, features, return_sequences=return_sequences, go_backwards=go_backwards)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(batch, timesteps, features)).astype("float32"))
    h0, c0 = initial_state(rng, batch, units)
    expected, _ = outputs_and_gradients(reference, x, h0, c0)
    actual, ops = outputs_and_gradients(fused, x, h0, c0)
    assert {"BlockLSTM", "BlockLSTMGrad"} <= ops and "While" not in ops
    for name, e, a in zip(NAMES, expected, actual, strict=True):
        assert_close(a, e, name)


def test_large_cell_states_are_not_clipped():
    # BlockLSTM clips C_t to ±cell_clip unless told not to: drive |C_t| well past 3.
    reference, fused = twins(4, 2, return_sequences=True)
    bias = np.asarray(fused.cell.bias).copy()
    bias[4:8] = 5.0  # forget gates open: C_t accumulates
    bias[8:12] = 3.0  # a large, steady candidate
    for layer in (reference, fused):
        layer.cell.bias.assign(bias)
    x = np.random.default_rng(3).normal(size=(2, 40, 2)).astype("float32")
    zeros = np.zeros((2, 4), "float32")
    (expected, _, c_ref), (actual, _, c) = (layer(x, initial_state=[zeros, zeros]) for layer in (reference, fused))
    assert np.abs(np.asarray(c_ref)).max() > 10
    np.testing.assert_allclose(np.asarray(c), np.asarray(c_ref), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=1e-5)


def test_under_xla_inside_stepwise_the_layer_steps_the_cell_and_computes_the_same():
    reference, fused = twins(6, 2, return_sequences=True)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(3, 9, 2)).astype("float32"))
    h0, c0 = initial_state(rng, 3, 6)
    expected, _ = outputs_and_gradients(reference, x, h0, c0)
    with stepwise():
        actual, ops = outputs_and_gradients(fused, x, h0, c0, jit_compile=True)
    assert "BlockLSTM" not in ops  # XLA has no kernel for it
    for name, e, a in zip(NAMES, expected, actual, strict=True):
        assert_close(a, e, name)


def test_a_layer_that_may_fuse_tells_keras_it_does_not_support_xla():
    assert LSTM(LSTMCell(8)).supports_jit is False and LSTM(LSTMCell(8), fused=True).supports_jit is False
    assert LSTM(LSTMCell(8), fused=False).supports_jit is True and LSTM(LSTMCell(65)).supports_jit is True
    inputs = keras.Input((None, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(LSTM(LSTMCell(8))(inputs)))
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
    assert model.jit_compile is False


def test_fused_true_raises_where_the_kernel_cannot_run():
    x = tf.constant(np.random.default_rng(5).normal(size=(2, 6, 3)).astype("float32"))
    dropout = LSTM(LSTMCell(4, dropout=0.5), fused=True)
    dropout(x)  # inference: no dropout, the kernel runs
    with pytest.raises(ValueError, match=r"`fused=True`, but the fused BlockLSTM kernel cannot run here: "
                                         r"the cell has dropout, in training"):
        dropout(x, training=True)
    with pytest.raises(ValueError, match="unroll=True"):
        LSTM(LSTMCell(4), fused=True, unroll=True)(x)
    inputs = keras.Input((None, 3))
    masked = keras.Model(inputs, LSTM(LSTMCell(4), fused=True, return_sequences=True)(keras.layers.Masking(0.0)(inputs)))
    with pytest.raises(ValueError, match="the input has a mask and the layer returns sequences"):
        masked(x)


def test_a_mask_left_padded_or_interleaved_runs_the_fused_kernel_as_keras_lstm_computes_it():
    rng = np.random.default_rng(8)
    reference, fused = twins(5, 2)
    x = tf.constant(rng.normal(size=(4, 7, 2)).astype("float32"))
    h0, c0 = initial_state(rng, 4, 5)
    left_padded = tf.constant(np.arange(7)[None, :] >= np.array([0, 3, 6, 7])[:, None])  # 7, 4, 1 and 0 visible
    interleaved = tf.constant(rng.random((4, 7)) < 0.6)

    def run(layer, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out, h, c = layer(x, initial_state=[h0, c0], mask=mask)
            loss = tf.reduce_sum(out * tf.range(1.0, 6.0)) + tf.reduce_sum(tf.sin(c))
        return [out, h, c, *tape.gradient(loss, [x, *layer.trainable_variables])]

    for mask in (left_padded, interleaved):
        for ours, theirs in zip(run(fused, mask), run(reference, mask)):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-5)
    assert "BlockLSTM" in op_types(tf.function(lambda x, m: fused(x, mask=m)), x, left_padded)


def test_dropout_in_training_and_masks_take_the_cells_own_loop():
    x = tf.constant(np.random.default_rng(5).normal(size=(2, 6, 3)).astype("float32"))
    dropout = LSTM(LSTMCell(4, dropout=0.5, recurrent_dropout=0.2, seed=1), return_sequences=True)
    dropout(x)
    assert "BlockLSTM" not in op_types(tf.function(lambda x: dropout(x, training=True)), x)
    assert "BlockLSTM" in op_types(tf.function(lambda x: dropout(x, training=False)), x)

    keras.utils.set_random_seed(6)
    inputs = keras.Input((None, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    model = keras.Model(inputs, LSTM(LSTMCell(4), return_sequences=True)(masked))
    reference = keras.Model(inputs, keras.layers.RNN(LSTMCell(4), return_sequences=True)(masked))
    reference.set_weights(model.get_weights())
    padded = np.concatenate([np.asarray(x), np.zeros((2, 3, 3), "float32")], axis=1)
    np.testing.assert_allclose(np.asarray(model(padded)), np.asarray(reference(padded)), atol=1e-6)


def test_auto_fuses_up_to_64_units_and_fused_true_or_false_decides():
    x = tf.constant(np.zeros((2, 5, 1), "float32"))
    for units, fused, expected in [(64, "auto", True), (65, "auto", False), (128, True, True), (8, False, False)]:
        layer = LSTM(LSTMCell(units), fused=fused)
        assert ("BlockLSTM" in op_types(tf.function(layer), x)) is expected, (units, fused)
    with pytest.raises(ValueError, match="argument `fused`, expected 'auto', True or False, got 'yes'"):
        LSTM(LSTMCell(3), fused="yes")


def test_only_an_lstm_cell_is_accepted():
    class Other(LSTMCell):
        pass

    for cell in (keras.layers.GRUCell(3), Other(3)):
        with pytest.raises(ValueError, match="argument `cell`, expected an `LSTMCell`, got"):
            LSTM(cell)


def test_keras_file_loads_in_a_fresh_process_as_the_same_layer_with_identical_outputs(tmp_path):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((None, 2))
    layer = LSTM(LSTMCell(5, recurrent_dropout=0.1), fused=True, return_sequences=True, go_backwards=True)
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    config = layer.get_config()
    assert LSTM.from_config(dict(config)).get_config() == config  # from_config takes "cell" out
    x = np.random.default_rng(8).normal(size=(4, 9, 2)).astype("float32")
    assert_loads_in_a_fresh_process(model, x, tmp_path, (
        "assert type(layer) is custom_layers.LSTM and type(layer.cell) is custom_layers.LSTMCell, layer\n"
        "assert layer.go_backwards and layer.fused is True and layer.cell.recurrent_dropout == 0.1"))
