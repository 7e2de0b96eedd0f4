"""One source of truth: pipeline/params.py, mirrored by MLproject and conda.yaml."""

import re
import tomllib

import pytest
import yaml

from pipeline import params, registry
from pipeline.errors import ParamError
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
        listable = stage in ("sweep", "tune") and name in params.STAGE_PARAMS["main"]
        assert spec["type"] == ("string" if listable or param.auto else MLPROJECT_TYPES[param.type]), name
        assert param.parse(str(spec["default"])) == param.default, name
        # `mlflow run` logs str(default) before the stage logs its canonical form.
        assert str(spec["default"]) == param.format(param.default), name
    assert entry["command"].startswith(f"python -m pipeline.stages.{stage} ")
    assert re.findall(r"--(\w+) \{(\w+)\}", entry["command"]) == [(n, n) for n in params.STAGE_PARAMS[stage]]


def test_mlproject_has_exactly_the_stages_and_predict():
    assert set(mlproject()["entry_points"]) == set(params.STAGE_PARAMS) == {"main", "generate_data", "train", "evaluate", "forecast", "predict", "sweep", "compare", "tune",
                                       "pretrain"}


def test_seed_defaults_are_kept():
    defaults = params.defaults("main")
    assert params.resolve_time_steps(defaults["time_steps"], defaults["horizon"], defaults["season"], True) == 50
    chosen = params.resolve_training(defaults, is_sine=True, input_width=49, n_train=700)
    assert (defaults["n_samples"], defaults["hidden_units"]) == (1000, 50)
    assert (chosen["learning_rate"], chosen["epochs"], chosen["batch_size"], chosen["patience"]) == (0.001, 50, 32, 10)
    # The seed's model: one network forecasting the level of the raw windows.
    assert (chosen["target"], chosen["scaling"], chosen["ensemble_size"]) == ("level", "none", 1)


def test_auto_for_a_csv_series_follows_the_documented_rule():
    values = params.parse("main", {"data_source": "series.csv", "season": "12", "horizon": "3"})
    assert params.resolve_time_steps(values["time_steps"], 3, 12, False) == 3 + 49
    assert params.resolve_time_steps("auto", 48, 336, False) == 48 + 336
    chosen = params.resolve_training(values, is_sine=False, input_width=49, n_train=320,  # 10 batches
                                     seasonal_naive_wins=True)
    assert chosen["epochs"] == min(params.CSV_STEPS // 10, params.CSV_MAX_EPOCHS)
    assert chosen["patience"] == min(params.CSV_PATIENCE_STEPS // 10, params.CSV_MAX_PATIENCE)
    # A series of a few dozen windows (one batch) trains at most CSV_MAX_EPOCHS epochs, not 4000.
    tiny = params.resolve_training(values, is_sine=False, input_width=49, n_train=25)
    assert (tiny["epochs"], tiny["patience"]) == (params.CSV_MAX_EPOCHS, params.CSV_MAX_PATIENCE)
    assert (chosen["target"], chosen["scaling"], chosen["ensemble_size"]) == (
        "seasonal", params.CSV_SCALING, params.CSV_ENSEMBLE)
    # Persistence the better naive forecast, or a season longer than the input window:
    # the change from the last value instead.
    assert params.resolve_training(values, False, 49, 320, seasonal_naive_wins=False)["target"] == "last"
    assert params.resolve_training({**values, "season": 52}, False, 49, 320, True)["target"] == "last"
    # Given values stay as given.
    assert params.resolve_training({**values, "target": "level", "epochs": 7}, False, 49, 320)["epochs"] == 7


@pytest.mark.parametrize("raw,message", [
    ({"target": "seasonal"}, "Received `target`='seasonal' with `season`=0"),
    ({"ensemble_size": "21"}, "parameter `ensemble_size`, expected 'auto' or an integer from 1 to 20, got '21'."),
    ({"interval_level": "1.5"}, "parameter `interval_level`, expected a float strictly between 0 and 1, got '1.5'."),
    ({"target": "trend"}, "parameter `target`, expected 'auto', 'level', 'last' or 'seasonal', got 'trend'."),
    ({"data_source": "x.csv", "target": "seasonal", "season": "60", "time_steps": "50"},
     "parameter `season`, expected 0 or an integer from 1 to the input length 49 (time_steps - horizon), "
     "which target='seasonal' reads, got 60."),
])
def test_forecasting_choices_that_do_not_fit_are_refused_in_one_line(raw, message):
    with pytest.raises(ParamError) as error:
        params.parse("main", raw)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_csv_baseline_may_look_back_past_the_window_for_its_season():
    # The seasonal naive and ETS read the series, so a weekly season of 336 half-hours needs no 337-point window.
    params.parse("main", {"data_source": "x.csv", "season": "336", "time_steps": "50"})


@pytest.mark.parametrize("name,raw,message", [
    ("epochs", "0", "Received an invalid value for parameter `epochs`, expected 'auto' or a positive integer, got '0'."),
    ("epochs", "2.5", "parameter `epochs`, expected 'auto' or a positive integer, got '2.5'."),
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
     "49 (time_steps - horizon), which the sine's baseline reads, got 60."),
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


def test_each_series_has_its_own_registered_model_unless_named():
    assert registry.registered_model_name("auto", "sine") == "lstm-sine"
    assert registry.registered_model_name("auto", "examples/co2_weekly.csv") == "lstm-co2_weekly"
    assert registry.registered_model_name("auto", "/data/my sales (2024).csv") == "lstm-my-sales-2024"
    assert registry.registered_model_name("team-model", "examples/sunspots.csv") == "team-model"
