"""What a benchmark result was measured on, written into every results file."""

import os
import platform
from importlib.metadata import version
from pathlib import Path


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(), "python": platform.python_version(),
            "tensorflow": version("tensorflow"), "keras": version("keras"), "mlflow": version("mlflow")}
