"""An LSTM cell written from its gate equations, weight-compatible with Keras' own."""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

# The RNN layer creates and resets variational dropout masks only for cells that
# are instances of this mixin (keras/src/layers/rnn/rnn.py); it is not exported
# under `keras.layers`, so we import it from where Keras defines it.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


class LSTMGates(NamedTuple):
    """The activations of one LSTM step, each of shape (batch, units)."""

    i: object  # input gate
    f: object  # forget gate
    c_tilde: object  # candidate cell state
    o: object  # output gate
    c: object  # cell state
    h: object  # hidden state


def _check_rate(name, value):
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, "
            f"expected a float in [0, 1), got {value!r}."
        )
    return float(value)


@keras.saving.register_keras_serializable(package="custom_layers")
class LSTMCell(keras.layers.Layer, DropoutRNNCell):
    """Long Short-Term Memory cell, one time step, for `keras.layers.RNN`.

    With [h_{t-1}, x_t] the previous hidden state joined to the input:

        f_t = σ(W_f·[h_{t-1}, x_t] + b_f)        forget gate: how much of C_{t-1} to keep
        i_t = σ(W_i·[h_{t-1}, x_t] + b_i)        input gate: how much of the candidate to write
        C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)     candidate: the new content on offer
        C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t          cell state: the long-term memory
        o_t = σ(W_o·[h_{t-1}, x_t] + b_o)        output gate: how much of the memory to show
        h_t = o_t ⊙ tanh(C_t)                    hidden state: the step's output

    The four W_g are stored as Keras stores them, split by what they multiply:
    `kernel` (input_dim, 4·units) for x_t, `recurrent_kernel` (units, 4·units) for
    h_{t-1}, and `bias` (4·units,), with the gates side by side in the order
    i, f, C̃, o. Each step is therefore one product for all four gates, and
    `cell.set_weights(keras.layers.LSTM(units).cell.get_weights())` makes this
    cell compute exactly what `keras.layers.LSTM` computes. The activations are
    fixed to σ (sigmoid) and tanh, as in the equations.

    Args:
        units: Positive integer, dimensionality of the hidden and cell states.
        kernel_initializer: Initializer for `kernel`. Default: `"glorot_uniform"`.
        recurrent_initializer: Initializer for `recurrent_kernel`.
            Default: `"orthogonal"`.
        bias_initializer: Initializer for `bias`. Default: `"zeros"`.
        unit_forget_bias: If `True`, the forget gate's bias starts at 1 (and
            `bias_initializer` fills the other three), so that the cell starts
            out remembering (Jozefowicz et al., 2015). Default: `True`.
        kernel_regularizer: Regularizer for `kernel`. Default: `None`.
        recurrent_regularizer: Regularizer for `recurrent_kernel`. Default: `None`.
        bias_regularizer: Regularizer for `bias`. Default: `None`.
        kernel_constraint: Constraint for `kernel`. Default: `None`.
        recurrent_constraint: Constraint for `recurrent_kernel`. Default: `None`.
        bias_constraint: Constraint for `bias`. Default: `None`.
        dropout: Float in [0, 1): fraction of the input x_t to drop during
            training. One mask per sequence, shared by the four gates. Default: 0.
        recurrent_dropout: Float in [0, 1): fraction of h_{t-1} to drop during
            training, one mask per sequence, shared by the gates. Default: 0.
        seed: Random seed for the dropout masks. Default: `None`.

    Call arguments:
        inputs: x_t, a tensor of shape (batch, input_dim).
        states: [h_{t-1}, c_{t-1}], each of shape (batch, units).
        training: Whether dropout applies. Default: `False`.

    Returns `(h_t, [h_t, C_t])`.
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                "Received an invalid value for argument `units`, "
                f"expected a positive integer, got {units!r}."
            )
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 4 * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = self.add_weight(
            shape=(4 * self.units,),
            name="bias",
            initializer=self._initial_bias,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _initial_bias(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        if not self.unit_forget_bias:
            return bias
        # Gate order i, f, C̃, o: the second quarter is the forget gate.
        u = self.units
        return ops.concatenate([bias[:u], ops.ones((u,), dtype=dtype), bias[2 * u :]])

    def step(self, x, h_prev, c_prev):
        """One step of the equations above, returning every activation."""
        z = ops.matmul(x, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel) + self.bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = ops.sigmoid(z_i)
        f = ops.sigmoid(z_f)
        c_tilde = ops.tanh(z_c)
        o = ops.sigmoid(z_o)
        c = f * c_prev + i * c_tilde
        h = o * ops.tanh(c)
        return LSTMGates(i=i, f=f, c_tilde=c_tilde, o=o, c=c, h=h)

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            h_prev = h_prev * self.get_recurrent_dropout_mask(h_prev)
        gates = self.step(inputs, h_prev, c_prev)
        return gates.h, [gates.h, gates.c]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in self.state_size]

    def get_config(self):
        config = {
            "units": self.units,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def gate_activations(cell, sequences, initial_state=None):
    """Runs `cell` over `sequences` and returns every activation at every step.

    Args:
        cell: a built `LSTMCell` (for a model, `model.get_layer(...).cell`).
        sequences: array of shape (batch, timesteps, input_dim).
        initial_state: optional [h_0, c_0], each (batch, units); zeros if omitted.

    Returns:
        A dict with keys `i`, `f`, `c_tilde`, `o`, `c`, `h`, each a float32 numpy
        array of shape (batch, timesteps, units). No dropout is applied: this is
        what the cell computes at inference.
    """
    sequences = ops.convert_to_tensor(np.asarray(sequences, dtype="float32"))
    if len(sequences.shape) != 3:
        raise ValueError(
            "Received an invalid value for argument `sequences`, expected a "
            f"(batch, timesteps, input_dim) array, got shape {tuple(sequences.shape)}."
        )
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=sequences.shape[0])
    h, c = initial_state
    steps = []
    for t in range(sequences.shape[1]):
        gates = cell.step(sequences[:, t, :], h, c)
        h, c = gates.h, gates.c
        steps.append(gates)
    return {
        name: np.stack([ops.convert_to_numpy(getattr(g, name)) for g in steps], axis=1)
        for name in LSTMGates._fields
    }
