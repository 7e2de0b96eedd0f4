"""`lstm-predict` on a CSV series reads the column its model was trained on, and
refuses a series the model was not trained on unless told which column to read."""

import io
import json
import shutil

import numpy as np
import pytest

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


def forecast(model_uri, input, column="auto"):
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        predict.run(model_uri=model_uri, input=input, column=column, output="-")
    header, row = out.getvalue().splitlines()
    return dict(zip(header.split(","), map(float, row.split(","))))


def test_the_forecast_from_the_csv_is_the_one_from_the_column_it_was_trained_on(csv_model):
    from_csv = forecast(csv_model["uri"], str(csv_model["csv"]))
    last_loads = json.dumps([np.round(csv_model["load"][-29:], 3).tolist()])
    assert from_csv == pytest.approx(forecast(csv_model["uri"], last_loads), abs=1e-4)
    assert 60 < from_csv["step_1"] < 140  # a load, not an hour (~300) nor a temperature (~10)


def test_another_series_is_refused_unless_its_column_is_named(csv_model):
    other = csv_model["folder"] / "other.csv"
    shutil.copy(csv_model["csv"], other)
    with pytest.raises(ParamError) as error:
        forecast(csv_model["uri"], str(other))
    assert str(error.value) == (
        f"Received `input`={str(other)!r}, but the model was trained on the column 'load' of "
        f"{csv_model['csv'].resolve()}: to forecast this series with it anyway, name the column of values "
        "(--column <name>, -P column=<name>).")
    assert forecast(csv_model["uri"], str(other), column="load") == forecast(csv_model["uri"], str(csv_model["csv"]))
