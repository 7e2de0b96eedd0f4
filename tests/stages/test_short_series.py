"""A short series with the defaults: it runs, saying what was adapted to it
(test and validation periods that hold a horizon, a shorter window), and never
refuses a plain request for a lack of validation windows; only a series too
short for any window is refused, with settings that would run, which do."""

import re

import pytest

from pipeline import params
from pipeline.errors import ParamError
from pipeline.stages import generate_data, main


def monthly_csv(path, n):
    path.write_text("month,sales\n" + "".join(f"{2020 + i // 12}-{i % 12 + 1:02d}-01,{100 + i % 12 * 3 + i}\n"
                                              for i in range(n)))
    return path


def prepare(csv, **values):
    data = {**params.defaults("generate_data"), "data_source": str(csv), "time_column": "month", **values}
    return generate_data.prepare(**data)


def test_a_30_point_monthly_series_runs_with_a_shorter_window_and_says_so(tmp_path):
    csv = monthly_csv(tmp_path / "short.csv", 30)
    dataset, manifest, _ = prepare(csv, season=12)
    # 30 points: the last 6 test; validation grows from 3 points to 9 (9 windows of horizon 1), and the
    # window shrinks from 49 values to the longest that leaves training windows (at least 12 for the season).
    assert len(dataset["y_val"]) == 9 and len(dataset["y_test"]) == 6
    width = manifest["time_steps"] - 1
    assert 12 <= width < 49 and len(dataset["y_train"]) >= 1
    notes = manifest["notes"]
    assert "the validation period was 3 points: it is the 9 before the test period (val_fraction 0.3), " \
           "9 validation windows" in notes
    assert f"{csv} has 30 points, too few for 49 input values: windows read {width} (time_steps {width + 1})" in notes


def test_a_100_point_monthly_series_at_a_season_horizon_runs_with_the_defaults(tracking_store, tmp_path, capsys):
    # Issue 24: with only column, time column, horizon and season, 100 points and horizon 12 were refused
    # (interval_level 0.9 needed 9 validation windows). Now the run completes and says what it assumed.
    csv = monthly_csv(tmp_path / "hundred.csv", 100)
    run_ids, scores = main.run(data_source=str(csv), column="sales", time_column="month", season=12, horizon=12)
    printed = capsys.readouterr().out
    assert "generate_data: the validation period was 10 points: it is the 20 before the test period" in printed
    assert "test period was 20 points" not in printed  # 20 test points hold a 12-step horizon
    assert "train: model: " in printed and "train: intervals " in printed
    # The trained candidates early-stopped on windows held back from training, not on the validation windows
    # that judged the three; the summary says which was kept and why, as train did.
    assert printed.count("the lowest validation MSE of 3 candidates") == 2
    assert printed.count("trained candidates early-stopped on the last 2 training windows, so the validation "
                         "windows that judge them stopped none") == 2
    assert 0 <= scores["test_coverage"] <= 100 and scores["test_rmse"] > 0


def test_a_series_too_short_for_any_window_is_refused_once_with_settings_that_run(tmp_path):
    csv = monthly_csv(tmp_path / "short.csv", 30)
    with pytest.raises(ParamError) as error:
        prepare(csv, season=12, horizon=12)
    message = str(error.value)
    assert "\n" not in message and "`time_steps`" not in message
    assert message.startswith(f"{csv} has 30 points, too few for the defaults: with time_steps='auto' (the seed's 49 "
                              "input values, or a season if longer: 49), a training window needs 49 input values")
    suggested = {name: value.rstrip(".") for name, value in
                 re.findall(r"-P (\w+)=(\S+)", message.split("this would run: ")[1])}
    values = {name: params.PARAMS[name].parse(value) for name, value in suggested.items()}
    dataset, manifest, _ = generate_data.prepare(
        **{**params.defaults("generate_data"), "data_source": str(csv), "time_column": "month", "season": 12,
           "horizon": 12, **values})
    assert len(dataset["y_val"]) >= 1 and len(dataset["y_train"]) >= 1


def test_a_series_long_enough_is_not_touched(tmp_path):
    dataset, manifest, _ = prepare(monthly_csv(tmp_path / "long.csv", 240), season=12)
    assert manifest["time_steps"] == 50 and manifest["time_step"] == "MS" and manifest["notes"] == []
