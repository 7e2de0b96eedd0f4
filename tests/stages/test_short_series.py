"""A series too short for the defaults: one message that says what it has, what each
setting needs, and settings that would run; and those settings do run."""

import re

import pytest

from pipeline import params
from pipeline.errors import ParamError
from pipeline.stages import generate_data


def monthly_csv(path, n):
    path.write_text("month,sales\n" + "".join(f"{2020 + i // 12}-{i % 12 + 1:02d}-01,{100 + i % 12 * 3}\n"
                                              for i in range(n)))
    return path


def prepare(csv, **values):
    data = {**params.defaults("generate_data"), "data_source": str(csv), "time_column": "month", **values}
    return generate_data.prepare(**data, interval_level=0.9)


def test_a_30_point_monthly_series_is_refused_once_with_settings_that_run(tmp_path):
    csv = monthly_csv(tmp_path / "short.csv", 30)
    with pytest.raises(ParamError) as error:
        prepare(csv, season=12)
    message = str(error.value)
    assert "\n" not in message and "`time_steps`" not in message
    assert message.startswith(f"{csv} has 30 points, too few for the defaults: with time_steps='auto' (the seed's 49 "
                              "input values, or a season if longer: 49), a training window needs 49 input values")
    assert "interval_level 0.9 needs 9 validation windows, and the 3 validation points give 3" in message
    suggested = {name: value.rstrip(".") for name, value in
                 re.findall(r"-P (\w+)=(\S+)", message.split("this would run: ")[1])}
    # What it suggests runs: generate_data accepts it, and so would train's interval check.
    values = {name: params.PARAMS[name].parse(value) for name, value in suggested.items()}
    level = values.pop("interval_level", 0.9)
    dataset, manifest, _ = generate_data.prepare(
        **{**params.defaults("generate_data"), "data_source": str(csv), "time_column": "month", "season": 12,
           **values}, interval_level=level)
    assert len(dataset["y_val"]) >= 9 and len(dataset["y_train"]) >= 1


def test_a_series_long_enough_is_not_touched_by_the_explanation(tmp_path):
    dataset, manifest, _ = prepare(monthly_csv(tmp_path / "long.csv", 240), season=12)
    assert manifest["time_steps"] == 50 and manifest["time_step"] == "MS"
