"""Why data-parallel training is not offered (docs/scale-out.md, "Why not data-parallel training"): Keras 3.15 cannot
`fit` under tf.distribute.MultiWorkerMirroredStrategy with two workers.

Two real worker processes on 127.0.0.1 train the project's own cell for one
epoch. Today both fail with `PerReplica` values reaching Keras' trainer
(keras-team/keras issue 20585). The test is a strict xfail: the day Keras fixes
it, this test passes, pytest reports XPASS as a failure, and someone notices.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.e2e

WORKER = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CONFIG"] = sys.argv[1]
    import numpy as np, tensorflow as tf, keras
    from custom_layers import LSTMCell
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((10, 1)), keras.layers.RNN(LSTMCell(4)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    windows = tf.data.Dataset.from_tensor_slices(
        (rng.random((64, 10, 1), dtype="float32"), rng.random((64, 1), dtype="float32"))).batch(16)
    history = model.fit(windows, epochs=1, verbose=0)
    print("trained, loss", history.history["loss"][-1])
""")


@pytest.mark.xfail(strict=True, reason="keras-team/keras#20585: PerReplica values reach Keras' trainer "
                                       "under MultiWorkerMirroredStrategy (Keras 3.15, TF 2.21)")
def test_two_workers_train_one_model_with_multi_worker_mirrored_strategy():
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, json.dumps({"cluster": cluster,
                                                                    "task": {"type": "worker", "index": i}})],
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=180)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0 and "trained, loss" in output, output[-1500:]
