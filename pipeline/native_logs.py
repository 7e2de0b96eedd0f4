"""Keeps TensorFlow's native start-up chatter off the console.

Loading TensorFlow 2.21 writes, twice, lines such as

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:… port.cc:153] oneDNN custom operations are on. …
    I0000 00:00:… cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

and its first operation on a machine without a GPU `E0000 … failed call to cuInit: … (303)`,
which reads as a failure. They are written by C++ straight to file descriptor 2
before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so no setting hides them.
`install()` makes the first `import tensorflow` in this process (keras does it)
run with descriptor 2 sent to a temporary file, probe the devices while there,
and then write back every captured line but those start-up lines: a real
error while loading still reaches the console.
"""

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cuda_platform|cuda_executor|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
)


def without_start_up_lines(text):
    return "".join(line for line in text.splitlines(keepends=True) if not START_UP_LINE.match(line))


def _run_captured(load):
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            load()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(without_start_up_lines(capture.read().decode(errors="replace")))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        def load():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA's probe (cuInit), else at the first operation

        _run_captured(load)


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate it
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """Quiets the first `import tensorflow` of this process, if it has not happened yet."""
    if "tensorflow" in sys.modules or any(isinstance(finder, _TensorFlowFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowFinder())
