"""Quick answers: a bad value is refused before MLflow or TensorFlow load, and
lstm-compare and `lstm-tune report` never load TensorFlow (benchmarks/startup.py times them)."""

import subprocess
import sys

from tests.conftest import REPO

LOADED = ("import atexit, sys; atexit.register(lambda: print('loaded:', "
          "[m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules]))")


def test_a_bad_value_is_refused_before_mlflow_or_tensorflow_load(tmp_path):
    code = (f"{LOADED}; import runpy; sys.argv = ['main', '--learning_rate', '0']; "
            "runpy.run_module('pipeline.stages.main', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Received an invalid value for parameter `learning_rate`, expected a float above 0, got '0'.")
    assert result.stdout.strip() == "loaded: []"
    assert list(tmp_path.iterdir()) == [], "nothing recorded, no store created"


def test_compare_and_the_tune_report_do_not_load_tensorflow():
    code = "import sys, pipeline.stages.compare, pipeline.stages.tune; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_lstm_tune_report_is_a_subcommand_and_names_a_missing_study(tmp_path):
    for argv in (["report", "--study", "nothing-here"], ["--report", "--study", "nothing-here"]):
        result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", *argv, "--storage",
                                 f"sqlite:///{tmp_path / 'optuna.db'}"], cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: Received an invalid value for parameter `study`: no study 'nothing-here' in "
            f"sqlite:///{tmp_path / 'optuna.db'}.")
