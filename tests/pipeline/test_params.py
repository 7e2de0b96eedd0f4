"""One source of truth: pipeline/params.py, mirrored by MLproject and conda.yaml."""

import re
import tomllib

import pytest
import yaml

from pipeline import params
from pipeline.params import ParamError
from tests.conftest import REPO

MLPROJECT_TYPES = {int: "int", float: "float", str: "string"}


def mlproject():
    return yaml.safe_load((REPO / "MLproject").read_text())


@pytest.mark.parametrize("stage", sorted(params.STAGE_PARAMS))
def test_mlproject_entry_point_mirrors_the_parameter_table(stage):
    entry = mlproject()["entry_points"][stage]
    assert list(entry["parameters"]) == params.STAGE_PARAMS[stage]
    for name, spec in entry["parameters"].items():
        param = params.PARAMS[name]
        listable = stage == "sweep" and name in params.STAGE_PARAMS["main"]
        assert spec["type"] == ("string" if listable else MLPROJECT_TYPES[param.type]), name
        assert param.parse(str(spec["default"])) == param.default, name
        # `mlflow run` logs str(default) before the stage logs its canonical form.
        assert str(spec["default"]) == param.format(param.default), name
    assert entry["command"].startswith(f"python -m pipeline.stages.{stage} ")
    assert re.findall(r"--(\w+) \{(\w+)\}", entry["command"]) == [(n, n) for n in params.STAGE_PARAMS[stage]]


def test_mlproject_has_exactly_the_stages_and_predict():
    assert set(mlproject()["entry_points"]) == set(params.STAGE_PARAMS) == {"main", "generate_data", "train", "evaluate", "predict", "sweep", "compare"}


def test_seed_defaults_are_kept():
    defaults = params.defaults("main")
    assert (defaults["n_samples"], defaults["time_steps"], defaults["hidden_units"]) == (1000, 50, 50)
    assert (defaults["learning_rate"], defaults["epochs"], defaults["batch_size"]) == (0.001, 50, 32)


@pytest.mark.parametrize("name,raw,message", [
    ("epochs", "0", "Received an invalid value for parameter `epochs`, expected a positive integer, got '0'."),
    ("epochs", "2.5", "parameter `epochs`, expected a positive integer, got '2.5'."),
    ("learning_rate", "-1", "parameter `learning_rate`, expected a float above 0, got '-1'."),
    ("learning_rate", "nan", "parameter `learning_rate`, expected a float above 0, got 'nan'."),
    ("noise", "loud", "parameter `noise`, expected a float of at least 0, got 'loud'."),
    ("test_fraction", "1", "parameter `test_fraction`, expected a float strictly between 0 and 1, got '1'."),
    ("reuse_data", "yes", "parameter `reuse_data`, expected 'true' or 'false', got 'yes'."),
])
def test_bad_values_get_one_line_naming_parameter_value_and_what_is_allowed(name, raw, message):
    with pytest.raises(ParamError) as error:
        params.parse("main", {name: raw})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_parameter_is_an_error():
    with pytest.raises(ParamError, match="unknown parameter `hidden_unit` for stage `train`"):
        params.parse("train", {"hidden_unit": "3"})


def test_values_are_logged_in_one_canonical_form():
    assert params.formatted(params.parse("main", {"noise": "0", "epochs": "7", "learning_rate": "1e-3"})) == {
        **params.formatted(params.defaults("main")), "noise": "0.0", "epochs": "7", "learning_rate": "0.001",
    }


def test_conda_env_and_pyproject_pin_the_same_packages():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pip == pyproject["project"]["dependencies"]
    assert "python=3.11" in conda["dependencies"]


def test_sweep_grid_takes_comma_separated_lists_of_checked_values():
    grid = params.parse_grid("sweep", {"hidden_units": "16,50,16", "learning_rate": "0.001, 1e-2", "max_trials": "3"})
    assert grid["hidden_units"] == [16, 50] and grid["learning_rate"] == [0.001, 0.01]
    assert grid["epochs"] == [50] and grid["max_trials"] == 3 and grid["registered_model_name"] == "lstm-forecaster"
    with pytest.raises(ParamError, match=r"parameter `hidden_units`, expected a positive integer, got '0'"):
        params.parse_grid("sweep", {"hidden_units": "16,0"})


@pytest.mark.parametrize("stage,raw,message", [
    ("main", {"time_steps": "5", "horizon": "5"},
     "Received an invalid value for parameter `time_steps`, expected an integer larger than horizon=5, got 5."),
    ("generate_data", {"val_fraction": "0.5", "test_fraction": "0.5"},
     "Received invalid values for parameters `val_fraction` and `test_fraction`, expected a sum below 1 so "
     "that windows are left for training, got 0.5 + 0.5 = 1."),
    ("main", {"n_samples": "4"},
     "Received invalid values for parameters `val_fraction` and `test_fraction`: 4 windows split as "
     "val_fraction=0.1, test_fraction=0.2 give train/val/test sizes 3/0/1; each split needs at least one window"),
    ("main", {"season": "60"},
     "Received an invalid value for parameter `season`, expected 0 or an integer from 1 to the input length "
     "49 (time_steps - horizon), got 60."),
    ("main", {"free_run_steps": "1000000"},
     "parameter `free_run_steps`, expected an integer from 1 to 10000, got '1000000'."),
    ("main", {"resume_from": "last-night"},
     "parameter `resume_from`, expected 'none' or the id (32 hex digits) of a KILLED or FAILED run, got 'last-night'."),
    ("compare", {"parent_run_id": "x' or '1'='1"},
     "parameter `parent_run_id`, expected 'none' or a run id (32 hex digits), got \"x' or '1'='1\"."),
])
def test_values_wrong_together_are_refused_up_front_with_one_line(stage, raw, message):
    with pytest.raises(ParamError) as error:
        params.parse(stage, raw)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sweep_grid_with_one_impossible_combination_is_refused_before_any_trial():
    with pytest.raises(ParamError, match=r"parameter `time_steps`, expected an integer larger than horizon=10, got 8"):
        params.parse_grid("sweep", {"time_steps": "8,50", "horizon": "1,10"})
    with pytest.raises(ParamError, match=r"parameter `registered_model_name`, expected a model name without"):
        params.parse_grid("sweep", {"registered_model_name": "team/model"})
