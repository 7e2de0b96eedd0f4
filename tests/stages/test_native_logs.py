"""TensorFlow's native start-up lines stay off the console; anything else written while it loads gets through."""

import subprocess
import sys

from pipeline import native_logs
from tests.conftest import REPO

START_UP = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795858183.722463   25908 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795858183.722806   25908 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1795858186.337995   25908 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
"""


def test_only_the_known_start_up_lines_are_dropped():
    real = ("E0000 00:00:1795858186.337995   25908 op_kernel.cc:1857] OP_REQUIRES failed: out of memory\n"
            "Traceback (most recent call last):\n")
    assert native_logs.without_start_up_lines(START_UP + real) == real


def test_a_stage_process_loads_tensorflow_without_a_word():
    # What a stage does: pipeline.stages first, then Keras, then an operation on the CPU.
    code = ("import pipeline.stages, keras, tensorflow as tf, sys; tf.constant(1.0) + 1; "
            "print('still here', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert result.stderr == "still here\n"
