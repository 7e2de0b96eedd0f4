"""Where an epoch of the seed workload goes, against PyTorch, in one process.

    python benchmarks/step_breakdown.py [--rounds 9] [--force]

25 batches of 32 windows × 49 steps, 50 units (the seed workload's epoch,
without validation), each variant timed once per round, the variants taking
turns so that machine drift hits them alike; prints the median and the spread:

  pipeline epoch              pipeline.model.fit's path: the whole epoch and the
                              validation pass (100 windows) in one TensorFlow call,
                              the LSTM layer in its fused BlockLSTM kernel
  keras fit                   the same model in Keras' fit (from arrays, no XLA)
  fused recurrence            the LSTM layer alone, forward and backward, BlockLSTM
  bare XLA train step         the same model, loss and Adam in one XLA-compiled
                              step called from a Python loop: no fit, no callbacks
                              (under XLA the layer steps the cell: no BlockLSTM)
  XLA recurrence              the LSTM layer alone under XLA, forward and backward
  XLA plain while_loop        the cell's `step` in a plain tf.while_loop instead of
                              Keras' RNN loop, forward and backward
  XLA hand-written backward   the recurrence with its gradient written out
                              (tf.custom_gradient): one product per step going back,
                              the weight gradients as three products at the end
                              (its gradients equal autodiff's to 3e-7)
  torch train step            nn.LSTM + Linear, MSE, Adam, in a plain loop
  torch recurrence            nn.LSTM alone, forward and backward

The XLA variants are traced inside `custom_layers.stepwise()` (XLA has no
BlockLSTM kernel). Writes benchmarks/results/step_breakdown.json, unless the
machine was busy (benchmarks.quiet; --force writes it marked busy).

torch is needed (pip install torch==2.13.0); it is never a pipeline dependency.
"""

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402
from benchmarks.training import SEED_WORKLOAD, sine_data  # noqa: E402  (one definition of the workload)

RESULTS = Path(__file__).resolve().parent / "results" / "step_breakdown.json"

BATCH, UNITS = SEED_WORKLOAD["batch_size"], SEED_WORKLOAD["hidden_units"]
STEPS = SEED_WORKLOAD["time_steps"] - 1  # a window of 50 points: 49 inputs, 1 target
BATCHES = 800 // BATCH  # the seed's 800 training windows


def lstm_with_written_gradient(x, kernel, recurrent_kernel, bias):
    """h_T of the LSTM over x (batch, steps, features), gates i, f, C̃, o as in
    custom_layers.LSTMCell, with back-propagation through time written out."""
    import tensorflow as tf

    @tf.custom_gradient
    def run(x, kernel, recurrent_kernel, bias):
        steps, batch, units = tf.shape(x)[1], tf.shape(x)[0], tf.shape(recurrent_kernel)[0]
        xs = tf.transpose(x, [1, 0, 2])
        projected = tf.einsum("tbd,dg->tbg", xs, kernel) + bias
        zeros = tf.zeros((batch, units), x.dtype)

        def forward(t, h, c, gates, cs, hs):
            i, f, g, o = tf.split(projected[t] + tf.matmul(h, recurrent_kernel), 4, axis=-1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return t + 1, h, c, gates.write(t, tf.concat([i, f, g, o], -1)), cs.write(t, c), hs.write(t, h)

        arrays = [tf.TensorArray(x.dtype, size=steps) for _ in range(3)]
        _, h, _, gates, cs, hs = tf.while_loop(lambda t, *_: t < steps, forward, (0, zeros, zeros, *arrays),
                                               maximum_iterations=steps)
        gates, cs, hs = gates.stack(), cs.stack(), hs.stack()

        def gradient(dh_last):
            c_before = tf.concat([zeros[None], cs[:-1]], 0)
            h_before = tf.concat([zeros[None], hs[:-1]], 0)

            def backward(t, dh, dc, dzs):
                i, f, g, o = tf.split(gates[t], 4, axis=-1)
                tanh_c = tf.tanh(cs[t])
                dc = dc + dh * o * (1 - tanh_c**2)
                dz = tf.concat([dc * g * i * (1 - i), dc * c_before[t] * f * (1 - f), dc * i * (1 - g**2),
                                dh * tanh_c * o * (1 - o)], -1)
                return t - 1, tf.matmul(dz, recurrent_kernel, transpose_b=True), dc * f, dzs.write(t, dz)

            _, _, _, dzs = tf.while_loop(lambda t, *_: t >= 0, backward,
                                         (steps - 1, dh_last, zeros, tf.TensorArray(x.dtype, size=steps)),
                                         maximum_iterations=steps)
            dz = dzs.stack()
            return (tf.transpose(tf.einsum("tbg,dg->tbd", dz, kernel), [1, 0, 2]),
                    tf.einsum("tbd,tbg->dg", xs, dz), tf.einsum("tbu,tbg->ug", h_before, dz),
                    tf.reduce_sum(dz, [0, 1]))

        return h, gradient

    return run(x, kernel, recurrent_kernel, bias)


def variants():
    import keras
    import numpy as np
    import tensorflow as tf
    import torch

    from pipeline import model as forecaster

    torch.set_num_threads(2)
    dataset = sine_data(SEED_WORKLOAD["time_steps"])
    x, y = dataset["x_train"][: BATCH * BATCHES], dataset["y_train"][: BATCH * BATCHES]
    keras.utils.set_random_seed(0)
    model = forecaster.build_model(UNITS, 0.001)
    steps = forecaster._Steps(model, {"x_train": x, "y_train": y, "x_val": dataset["x_val"],
                                      "y_val": dataset["y_val"]}, BATCH)
    order = forecaster.epoch_order(len(x), seed=0, epoch=0)
    xb = [tf.constant(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    yb = [tf.constant(y[i:i + BATCH]) for i in range(0, len(y), BATCH)]
    rnn = model.get_layer(forecaster.RNN_LAYER)
    cell = rnn.cell

    @tf.function(jit_compile=True)
    def train_step(xs, ys):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(xs, training=True) - ys) ** 2)
        model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    def plain_loop(xs):
        xs = tf.transpose(xs, [1, 0, 2])
        zeros = tf.zeros((BATCH, UNITS))

        def body(t, h, c):
            gates = cell.step(xs[t], h, c)
            return t + 1, gates.h, gates.c

        return tf.while_loop(lambda t, *_: t < STEPS, body, (0, zeros, zeros), maximum_iterations=STEPS)[1]

    def recurrence(last_hidden, jit_compile=True):
        @tf.function(jit_compile=jit_compile)
        def step(xs):
            with tf.GradientTape() as tape:
                out = tf.reduce_sum(last_hidden(xs) ** 2)
            return tape.gradient(out, rnn.trainable_variables)

        def epoch():
            for xs in xb:
                grads = step(xs)
            grads[0].numpy()

        return epoch

    def bare_steps():
        for xs, ys in zip(xb, yb):
            loss = train_step(xs, ys)
        loss.numpy()

    lstm, linear = torch.nn.LSTM(1, UNITS, batch_first=True), torch.nn.Linear(UNITS, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *linear.parameters()], lr=0.001)
    tx = [torch.from_numpy(np.ascontiguousarray(x[i:i + BATCH])) for i in range(0, len(x), BATCH)]
    ty = [torch.from_numpy(np.ascontiguousarray(y[i:i + BATCH])) for i in range(0, len(y), BATCH)]

    def torch_steps():
        for xs, ys in zip(tx, ty):
            optimizer.zero_grad()
            output, _ = lstm(xs)
            ((linear(output[:, -1]) - ys) ** 2).mean().backward()
            optimizer.step()

    def torch_recurrence():
        for xs in tx:
            output, _ = lstm(xs)
            (output[:, -1] ** 2).sum().backward()

    return {
        "pipeline epoch": lambda: steps.run(order),
        "keras fit": lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0),
        "fused recurrence": recurrence(rnn, jit_compile=False),
        "bare XLA train step": bare_steps,
        "XLA recurrence": recurrence(rnn),
        "XLA plain while_loop": recurrence(plain_loop),
        "XLA hand-written backward": recurrence(lambda xs: lstm_with_written_gradient(
            xs, cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value)),
        "torch train step": torch_steps,
        "torch recurrence": torch_recurrence,
    }


def main():
    from custom_layers import stepwise

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    contenders = variants()
    for name, epoch in contenders.items():
        with stepwise() if "XLA" in name else contextlib.nullcontext():
            epoch()  # trace, compile and warm up
    watch = Watch()
    seconds = {name: [] for name in contenders}
    for number in range(1, args.rounds + 1):
        for name, epoch in contenders.items():
            with watch.measure(f"{name}, round {number}"):
                tic = time.perf_counter()
                epoch()
                seconds[name].append(time.perf_counter() - tic)
    print(f"\nSeconds per epoch ({BATCHES} batches of {BATCH} × {STEPS} steps, {UNITS} units), "
          f"median of {args.rounds} alternating rounds:\n")
    print("| variant | median | min–max |\n|---|---:|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f}–{max(values):.3f} |")
    watch.write_or_refuse({
        "command": "python benchmarks/step_breakdown.py " + " ".join(sys.argv[1:]), "machine": machine(),
        "workload": {"batches": BATCHES, "batch": BATCH, "steps": STEPS, "units": UNITS}, "rounds": args.rounds,
        "seconds_per_epoch": {name: {"median": statistics.median(values), "min": min(values), "max": max(values),
                                     "all": values} for name, values in seconds.items()},
    }, RESULTS, force=args.force)


if __name__ == "__main__":
    main()
