"""`lstm-predict` on a CSV series reads the column its model was trained on, and
refuses a series the model was not trained on unless told which column to read."""

import io
import json
import shutil

import numpy as np
import pytest

from pipeline import params
from pipeline.errors import ParamError
from pipeline.stages import predict
from tests.stages.test_stages import small_main


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    from tests.conftest import temporary_store

    folder = tmp_path_factory.mktemp("predict")
    hours = np.arange(300)
    rng = np.random.default_rng(0)
    load = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, 300)
    temperature = 10 + 5 * np.cos(2 * np.pi * hours / 24)
    csv = folder / "load.csv"
    # The time first and numeric: the column an unguarded 'auto' would have read.
    csv.write_text("hour,temperature,load\n" + "".join(
        f"{h},{t:.3f},{v:.3f}\n" for h, t, v in zip(hours, temperature, load)))
    with temporary_store(folder):
        run_ids, _ = small_main(data_source=str(csv), column="load", time_column="hour", time_steps=30,
                                epochs=2, ensemble_size=1)
        yield {"csv": csv, "uri": f"runs:/{run_ids['train']}/model", "load": load, "folder": folder}


def forecast(model_uri, input, column="auto", **options):
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        predict.run(**{**params.defaults("predict"), "model_uri": model_uri, "input": input, "column": column,
                       "output": "-", **options, "given": list(options)})
    header, row = out.getvalue().splitlines()
    return dict(zip(header.split(","), row.split(",")))


def numbers(row):
    return {name: float(value) for name, value in row.items() if not name.startswith("time_")}


def test_the_forecast_from_the_csv_is_the_one_from_the_column_it_was_trained_on(csv_model):
    from_csv = forecast(csv_model["uri"], str(csv_model["csv"]))
    last_loads = json.dumps([np.round(csv_model["load"][-29:], 3).tolist()])
    assert numbers(from_csv) == pytest.approx(numbers(forecast(csv_model["uri"], last_loads)), abs=1e-4)
    assert 60 < float(from_csv["step_1"]) < 140  # a load, not an hour (~300) nor a temperature (~10)
    assert from_csv["time_1"] == "300"  # the hour after the last, 299


def test_another_series_is_refused_unless_its_column_is_named(csv_model):
    other = csv_model["folder"] / "other.csv"
    shutil.copy(csv_model["csv"], other)
    with pytest.raises(ParamError) as error:
        forecast(csv_model["uri"], str(other))
    assert str(error.value) == (
        f"Received `input`={str(other)!r}, but the model was trained on the column 'load' of "
        f"{csv_model['csv'].resolve()}: to forecast this series with it anyway, name the column of values "
        "(--column <name>, -P column=<name>).")
    named = forecast(csv_model["uri"], str(other), column="load")
    assert numbers(named) == numbers(forecast(csv_model["uri"], str(csv_model["csv"])))
    assert "time_1" not in named  # another file: read with the defaults, so no time column unless named


@pytest.fixture(scope="module")
def meter_model(tmp_path_factory):
    """A seasonal model trained on an hourly meter export: ';' separators, day-first dates,
    decimal commas, thousands points, an extra column, two empty values."""
    from tests.conftest import temporary_store

    folder = tmp_path_factory.mktemp("meter")
    rng = np.random.default_rng(1)
    hours = np.arange(400)
    kwh = 1500 + 300 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 10, 400)
    stamps = np.datetime64("2024-01-01T00:00") + hours.astype("timedelta64[h]")
    lines = ["Zeitstempel;Verbrauch kWh;Zähler"]
    for hour, stamp, value in zip(hours, stamps, kwh):
        text = "" if hour in (50, 51) else f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
        day = str(stamp)
        lines.append(f"{day[8:10]}.{day[5:7]}.{day[:4]} {day[11:16]};{text};A-17")
    csv = folder / "meter.csv"
    csv.write_text("\n".join(lines) + "\n")
    with temporary_store(folder):
        run_ids, _ = small_main(data_source=str(csv), column="Verbrauch kWh", time_column="Zeitstempel",
                                fill_missing="interpolate", decimal=",", thousands=".", season=24, target="seasonal",
                                time_steps=30, epochs=2, ensemble_size=1)
        yield {"csv": csv, "uri": f"runs:/{run_ids['train']}/model", "kwh": kwh}


def test_predict_reads_the_training_export_as_the_model_remembers_it(meter_model):
    row = forecast(meter_model["uri"], str(meter_model["csv"]))
    assert row["time_1"] == "2024-01-17 16:00:00"  # the hour after the last, 400 hours from the first
    assert 1000 < float(row["step_1"]) < 2000
    # Told otherwise, it reads otherwise: with decimal points, the values are not numbers.
    with pytest.raises(ParamError, match=r"pass -P decimal=, -P thousands=\. to read them as numbers"):
        forecast(meter_model["uri"], str(meter_model["csv"]), decimal=".", thousands="none")


def test_a_window_shorter_than_the_season_is_refused_naming_the_minimum(meter_model):
    with pytest.raises(ParamError) as error:
        forecast(meter_model["uri"], json.dumps([[1500.0] * 5]))
    assert str(error.value) == (
        "Received an invalid value for parameter `input`: Invalid windows: windows of 5 values are too short for "
        "this model, which reads the value one season before each target: send at least 24 values per window.")
    assert 1000 < float(forecast(meter_model["uri"], json.dumps([meter_model["kwh"][-24:].tolist()]))["step_1"]) < 2000
