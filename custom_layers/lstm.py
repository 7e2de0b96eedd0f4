"""The LSTM layer: `keras.layers.RNN` over this project's `LSTMCell`, which runs a
whole sequence in one fused TensorFlow kernel where it can."""

import threading
from contextlib import contextmanager

import keras
from keras import ops

from custom_layers.lstm_cell import LSTMCell

_stepwise = threading.local()


@contextmanager
def stepwise():
    """Within this block, `LSTM` layers run the cell step by step, as
    `keras.layers.RNN` does, even where the fused kernel could run: for
    tracing a graph of standard operations only (a SavedModel for a server
    built without TensorFlow's RNN kernels), or for comparing the two paths."""
    previous = getattr(_stepwise, "active", False)
    _stepwise.active = True
    try:
        yield
    finally:
        _stepwise.active = previous


@keras.saving.register_keras_serializable(package="custom_layers")
class LSTM(keras.layers.RNN):
    """`keras.layers.RNN(cell)` for an `LSTMCell`, computing the same, faster.

    Keras' RNN loop calls the cell once per time step, each step a handful of
    small operations; on a CPU their dispatch costs more than their arithmetic.
    This layer hands the whole sequence to TensorFlow's `BlockLSTM` kernel
    instead: one operation forward, one backward (its gradient `BlockLSTMGrad`),
    with C++ loops over the time steps. The kernel reads the cell's own weights,
    so the cell stays the one place where the equations and the weights live;
    `fused_lstm` only reorders them, and the tests hold the two paths equal to
    `keras.layers.LSTM` to 1e-5 in outputs, states and gradients.

    Whether to take the fused path is `fused`: `"auto"` (the default) takes it
    for cells of at most FUSED_MAX_UNITS units, `True` always, `False` never.
    The kernel saves the dispatch of small per-step operations but multiplies
    its matrices with Eigen, where TensorFlow's own `MatMul` uses oneDNN: on a
    2-core CPU the fused path trained the seed workload's 50 units 1.8× faster
    per epoch than the cell's loop (batch 32), and 64 units 2.1× faster, but
    128 units 1.8× slower and 256 units 1.6× slower (docs/performance.md).

    Either way, the fused path is taken only with the TensorFlow backend,
    float32, no mask, no `unroll`, outside XLA (which has no `BlockLSTM`
    kernel: inside a `jit_compile` function the layer runs the cell step by
    step, so a model compiled with XLA still works), without dropout in
    training, and outside a `stepwise()` block. Otherwise the layer is exactly
    `keras.layers.RNN(cell)`.

    Args:
        cell: an `LSTMCell`.
        fused: `"auto"`, `True` or `False`, as above. Default: `"auto"`.
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask: as for `keras.layers.RNN`.
    """

    FUSED_MAX_UNITS = 64

    def __init__(self, cell, fused="auto", **kwargs):
        if type(cell) is not LSTMCell:
            # A subclass may change the equations the fused kernel computes.
            raise ValueError(
                "Received an invalid value for argument `cell`, expected an "
                f"`LSTMCell`, got {cell!r}."
            )
        if fused not in ("auto", True, False):
            raise ValueError(
                "Received an invalid value for argument `fused`, expected "
                f"'auto', True or False, got {fused!r}."
            )
        super().__init__(cell, **kwargs)
        self.fused = fused

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fused(sequences, mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
        h, c = initial_state
        cell = self.cell
        outputs, h, c = fused_lstm(sequences, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
        if not self.return_sequences:
            outputs = h[:, None]
        return h, outputs, [h, c]

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}

    def _fused(self, sequences, mask, training):
        if self.fused is False or (self.fused == "auto" and self.cell.units > self.FUSED_MAX_UNITS):
            return False
        if keras.backend.backend() != "tensorflow" or mask is not None or self.unroll:
            return False
        if sequences.dtype != "float32" or self.cell.compute_dtype != "float32":
            return False
        if training and (self.cell.dropout or self.cell.recurrent_dropout):
            return False
        return not getattr(_stepwise, "active", False) and not _in_xla_context()


def fused_lstm(sequences, h, c, kernel, recurrent_kernel, bias):
    """Runs the LSTM of `LSTMCell` over `sequences` (batch, timesteps,
    input_dim) from states h, c (batch, units) with TensorFlow's `BlockLSTM`
    kernel. Returns every h_t (batch, timesteps, units) and the last h and C.

    `BlockLSTM` takes one weight matrix for [x_t, h_{t-1}] with the gates in
    the order i, C̃, f, o (the cell's are i, f, C̃, o), adds `forget_bias` to
    the forget gate's pre-activation and clips C_t to ±`cell_clip`: the
    weights are stacked and reordered, and the bias and the clip turned off.
    (`BlockLSTMV2` takes the cell's order, but TensorFlow registers the first
    version's gradient for it, which assumes the other order: its gradients
    are wrong, so it is not used.)
    """
    import tensorflow as tf

    units = recurrent_kernel.shape[0]

    def icfo(gates):  # i, f, C̃, o → i, C̃, f, o along the last axis
        i, f, c_tilde, o = tf.split(gates, 4, axis=-1)
        return tf.concat([i, c_tilde, f, o], axis=-1)

    no_peephole = tf.zeros((units,), dtype=sequences.dtype)
    time_major = tf.transpose(sequences, [1, 0, 2])
    _, c_all, _, _, _, _, h_all = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(time_major)[0], tf.int64),
        x=time_major,
        cs_prev=c,
        h_prev=h,
        w=icfo(tf.concat([kernel, recurrent_kernel], axis=0)),
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=icfo(bias),
        forget_bias=0.0,
        cell_clip=-1.0,  # no clipping
        use_peephole=False,
    )
    return tf.transpose(h_all, [1, 0, 2]), h_all[-1], c_all[-1]


def _in_xla_context():
    """Whether the function being traced will be compiled by XLA."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
