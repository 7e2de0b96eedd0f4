"""The sweep's grid syntax: comma-separated lists of checked values."""

import pytest

from pipeline.errors import ParamError
from pipeline.stages import sweep


def test_trial_names_use_each_parameters_short_label():
    trial = {"hidden_units": 16, "learning_rate": 0.01, "target": "last"}
    assert sweep.trial_name(trial, ["hidden_units", "learning_rate", "target"]) == "h16-lr0.01-target=last"


def test_sweep_grid_takes_comma_separated_lists_of_checked_values():
    grid = sweep.parse_grid("sweep", {"hidden_units": "16,50,16", "learning_rate": "0.001, 1e-2", "max_trials": "3"})
    assert grid["hidden_units"] == [16, 50] and grid["learning_rate"] == [0.001, 0.01]
    assert grid["epochs"] == ["auto"] and grid["max_trials"] == 3 and grid["registered_model_name"] == "auto"
    with pytest.raises(ParamError, match=r"parameter `hidden_units`, expected a positive integer, got '0'"):
        sweep.parse_grid("sweep", {"hidden_units": "16,0"})


def test_a_sweep_grid_with_one_impossible_combination_is_refused_before_any_trial():
    with pytest.raises(ParamError, match=r"parameter `time_steps`, expected an integer larger than horizon=10, got 8"):
        sweep.parse_grid("sweep", {"time_steps": "8,50", "horizon": "1,10"})
    with pytest.raises(ParamError, match=r"parameter `registered_model_name`, expected 'auto' or a model name without"):
        sweep.parse_grid("sweep", {"registered_model_name": "team/model"})
