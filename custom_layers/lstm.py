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
    where it can run, for cells of at most FUSED_MAX_UNITS units; `True` takes
    it and raises a ValueError where it cannot run; `False` never takes it.
    The kernel saves the dispatch of small per-step operations but multiplies
    its matrices with Eigen, where TensorFlow's own `MatMul` uses oneDNN: hence
    the limit for `"auto"` (docs/performance.md has the measurements).

    The fused path runs with the TensorFlow backend, float32, no `unroll`,
    without dropout in training, and with no mask or a mask where the layer
    returns the last output, not each step's (`_fused_masked`); elsewhere
    `"auto"` makes the
    layer exactly `keras.layers.RNN(cell)`. Inside a `stepwise()` block every
    `LSTM` layer steps the cell, whatever its `fused`.

    XLA has no `BlockLSTM` kernel. As Keras' own `LSTM` does for cuDNN, a
    layer that may fuse declares `supports_jit = False`, so that Keras compiles
    a model holding it without XLA (`jit_compile="auto"`; `True` falls back
    with Keras' warning). To trace it in a `tf.function(jit_compile=True)` of
    your own, trace inside `stepwise()` or build it with `fused=False`.

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
        if fused is True or (fused == "auto" and cell.units <= self.FUSED_MAX_UNITS):
            self.supports_jit = False  # XLA cannot compile BlockLSTM

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fused(sequences, mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if mask is not None:
            return self._fused_masked(sequences, initial_state, mask)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
        h, c = initial_state
        cell = self.cell
        outputs, h, c = fused_lstm(sequences, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
        if not self.return_sequences:
            outputs = h[:, None]
        return h, outputs, [h, c]

    def _fused_masked(self, sequences, initial_state, mask):
        """The fused kernel under a mask. A masked step carries the state
        unchanged, so the masked sequence's last output and states are those of
        its visible steps alone, in their order: they are moved to the front of
        each row (a short history padded on the left, or any other mask), the
        kernel runs, and the states after each row's last visible step are taken
        (as Keras' LSTM does with right-padded sequences before it runs cuDNN)."""
        import tensorflow as tf

        h, c = initial_state
        mask = tf.cast(mask, tf.int32)
        visible = tf.reduce_sum(mask, axis=1)
        order = tf.argsort(1 - mask, axis=1, stable=True)  # the visible steps first, in their order
        front = tf.gather(sequences, order, batch_dims=1)
        cell = self.cell
        (h_all, c_all), _, _ = fused_lstm(front, h, c, cell.kernel, cell.recurrent_kernel, cell.bias, every_c=True)
        last = tf.maximum(visible - 1, 0)[:, None]
        seen = (visible > 0)[:, None]
        h = tf.where(seen, tf.gather(h_all, last, batch_dims=1)[:, 0], h)
        c = tf.where(seen, tf.gather(c_all, last, batch_dims=1)[:, 0], c)
        # A sequence with no visible step outputs zeros and keeps its initial state, as in Keras' loop.
        output = tf.where(seen, h, tf.zeros_like(h))
        return output, output[:, None], [h, c]

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}

    def _fused(self, sequences, mask, training):
        if self.fused is False or getattr(_stepwise, "active", False):
            return False
        if self.fused == "auto" and self.cell.units > self.FUSED_MAX_UNITS:
            return False
        blocker = self._why_not_fused(sequences, mask, training)
        if blocker and self.fused is True:
            raise ValueError(
                "Received `fused=True`, but the fused BlockLSTM kernel cannot run here: "
                f"{blocker}. Use fused='auto' (which then steps the cell) or fused=False."
            )
        return blocker is None

    def _why_not_fused(self, sequences, mask, training):
        if keras.backend.backend() != "tensorflow":
            return f"the backend is {keras.backend.backend()!r}, not 'tensorflow'"
        if mask is not None and (self.return_sequences or self.go_backwards):
            return "the input has a mask and the layer returns sequences or goes backwards"
        if self.unroll:
            return "unroll=True"
        if sequences.dtype != "float32" or self.cell.compute_dtype != "float32":
            return f"the dtype is {sequences.dtype}, not float32"
        if training and (self.cell.dropout or self.cell.recurrent_dropout):
            return "the cell has dropout, in training"
        return None


def fused_lstm(sequences, h, c, kernel, recurrent_kernel, bias, every_c=False):
    """Runs the LSTM of `LSTMCell` over `sequences` (batch, timesteps,
    input_dim) from states h, c (batch, units) with TensorFlow's `BlockLSTM`
    kernel. Returns every h_t (batch, timesteps, units) and the last h and C;
    with `every_c`, (every h_t, every C_t) and the last h and C.

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
    every_h = tf.transpose(h_all, [1, 0, 2])
    if every_c:
        return (every_h, tf.transpose(c_all, [1, 0, 2])), h_all[-1], c_all[-1]
    return every_h, h_all[-1], c_all[-1]

