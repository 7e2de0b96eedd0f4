"""Serving the trained model for real: `mlflow models serve`, `saved_model_cli`, `lstm-predict`."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

import custom_layers  # noqa: F401  (registers LSTMCell for loading .keras files)
from pipeline.serving import MAX_VALUES
from pipeline.stages import generate_data, train
from tests.conftest import free_port, temporary_store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained in a temporary store: (tracking URI, train run, keras model)."""
    folder = tmp_path_factory.mktemp("store")
    with temporary_store(folder) as uri:
        data_run = generate_data.run(
            data_source="sine", column="auto", time_column="none", fill_missing="error", time_format="auto",
            separator="auto", decimal=".", thousands="none", n_samples=150,
            time_steps=12, horizon=2, noise=0.0, val_fraction=0.1, test_fraction=0.2, seed=0,
        )
        train_run = mlflow.get_run(train.run(
            data_uri=f"runs:/{data_run}/data", hidden_units=8, learning_rate=0.01, epochs=2,
            batch_size=16, scaling="standard", patience=0, seed=0,
        ))
        model = keras.saving.load_model(
            mlflow.artifacts.download_artifacts(f"runs:/{train_run.info.run_id}/keras_model/model.keras",
                                                dst_path=str(folder / "keras")),
            safe_mode=True,
        )
        saved_model = mlflow.artifacts.download_artifacts(f"runs:/{train_run.info.run_id}/saved_model",
                                                          dst_path=str(folder / "export"))
        yield {"uri": uri, "run": train_run, "model": model, "saved_model": saved_model, "folder": folder}


def post(url, body, timeout=60):
    """POSTs `body` (bytes or JSON-able); returns (status, parsed JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def models_serve(model_uri, tracking_uri, folder):
    """A real `mlflow models serve` process on 127.0.0.1 for `model_uri`; yields its
    /invocations URL and stops it afterwards."""
    port = free_port()
    log_path = folder / f"serve-{port}.log"
    log = open(log_path, "wb")  # a file, not a pipe: an unread pipe would block the server
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"{url}/invocations"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def server(trained):
    """The small model, served for real."""
    with models_serve(trained["run"].data.tags["model_uri"], trained["uri"], trained["folder"]) as url:
        yield url


def test_a_seasonal_model_refuses_windows_shorter_than_its_season_over_rest(tmp_path):
    """target=seasonal reads the value one season before each target: a shorter window
    would read before its start. 400 with the minimum, from REST and from the SavedModel."""
    from tests.stages.test_stages import SMALL_DATA, seasonal_csv

    csv = seasonal_csv(tmp_path / "load.csv", n=300)
    with temporary_store(tmp_path) as uri:
        data_run = generate_data.run(**{**SMALL_DATA, "data_source": str(csv), "time_column": "timestamp",
                                        "column": "load", "time_steps": 30, "season": 24})
        train_run = mlflow.get_run(train.run(
            data_uri=f"runs:/{data_run}/data", hidden_units=8, learning_rate=0.01, epochs=1, batch_size=16,
            scaling="window", patience=0, target="seasonal", season=24, ensemble_size=1, seed=0))
        saved_model = mlflow.artifacts.download_artifacts(f"runs:/{train_run.info.run_id}/saved_model/1",
                                                          dst_path=str(tmp_path / "export"))
    with models_serve(train_run.data.tags["model_uri"], uri, tmp_path) as url:
        for length in (2, 3, 5, 23):
            status, answer = post(url, {"inputs": [[[100.0]] * length]})
            assert status == 400, (length, answer)
            assert (f"Invalid windows: windows of {length} values are too short for this model, which reads the "
                    "value one season before each target: send at least 24 values per window.") in answer["message"]
        status, answer = post(url, {"inputs": [[[100.0]] * 24, [[100.0]] * 24]})
        assert status == 200 and len(answer["predictions"]) == 2
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model)
    for signature in ("serving_default", "serve_stepwise"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Window too short: the seasonal target with season 24"):
            loaded.signatures[signature](window=tf.constant(np.full((1, 5, 1), 100.0, "float32")))


@pytest.mark.parametrize("batch,timesteps", [(1, 10), (64, 10), (1, 25), (64, 25)])
def test_server_predicts_what_keras_predicts(server, trained, batch, timesteps):
    x = np.sin(np.linspace(0, 30, batch * timesteps)).reshape(batch, timesteps, 1).astype("float32")
    status, answer = post(server, {"inputs": x.tolist()})
    assert status == 200
    predictions = np.array(answer["predictions"])
    assert predictions.shape == (batch, 2)
    expected = trained["model"].predict(x, verbose=0)
    np.testing.assert_allclose(predictions, expected["forecast"], atol=1e-5)
    # Asked for with the parameter `intervals`, the bounds come too, beside an unchanged forecast.
    status, answer = post(server, {"inputs": x.tolist(), "params": {"intervals": True}})
    assert status == 200 and set(answer["predictions"]) == {"forecast", "lower", "upper"}
    for name in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(np.array(answer["predictions"][name]), expected[name], atol=1e-5)
    assert (np.array(answer["predictions"]["lower"]) < predictions).all()


BAD_REQUESTS = {
    "wrong rank": ({"inputs": [[0.1, 0.2, 0.3]]}, "does not match expected shape (-1, -1, 1)"),
    "two features": ({"inputs": [[[0.1, 0.2], [0.3, 0.4]]]}, "does not match expected shape (-1, -1, 1)"),
    "strings": ({"inputs": [[["a"], ["b"]]]}, "could not convert string to float: 'a'"),
    "empty window": ({"inputs": [[]]}, "does not match expected shape"),
    "no windows": ({"inputs": []}, "tensor-based model signature"),
    "NaN": (b'{"inputs": [[[0.1], [NaN], [0.3]]]}', "every value must be finite, but window 0 has nan at time step 1"),
    "infinity": (b'{"inputs": [[[0.1], [Infinity]]]}', "every value must be finite, but window 0 has inf at time step 1"),
    "too many values": ({"inputs": [[[0.0]] * (MAX_VALUES + 1)]},
                        f"{MAX_VALUES + 1} values in one request, at most {MAX_VALUES} are allowed"),
    "no inputs key": ({"windows": [[[0.1]]]}, "The input must be a JSON dictionary with exactly one of the input fields"),
    "not JSON": (b"[[[0.1]", "Ensure that input is a valid JSON formatted string"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_gets_a_4xx_that_says_what_is_wrong_and_the_server_goes_on(server, case):
    body, message = BAD_REQUESTS[case]
    status, answer = post(server, body)
    assert 400 <= status < 500
    assert message in answer["message"]
    status, answer = post(server, {"inputs": [[[0.1], [0.2], [0.3]]]})
    assert status == 200 and len(answer["predictions"]) == 1


def saved_model_cli(*args):
    executable = shutil.which("saved_model_cli")
    assert executable, "saved_model_cli comes with tensorflow"
    result = subprocess.run([executable, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_describes_and_runs_the_export(trained, tmp_path):
    version = os.path.join(trained["saved_model"], "1")
    assert sorted(os.listdir(trained["saved_model"])) == ["1"]  # TensorFlow Serving's base path layout
    shown = saved_model_cli("show", "--dir", version, "--all")
    serving_default = shown[shown.index("signature_def['serving_default']"):]
    assert re.search(r"inputs\['window'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1, 1\)", serving_default)
    for output in ("forecast", "lower", "upper"):
        assert re.search(rf"outputs\['{output}'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 2\)", serving_default)
    x = np.linspace(-1, 1, 3 * 9).reshape(3, 9, 1).astype("float32")
    np.save(tmp_path / "x.npy", x)
    saved_model_cli("run", "--dir", version, "--tag_set", "serve", "--signature_def", "serving_default",
                    "--inputs", f"window={tmp_path / 'x.npy'}", "--outdir", str(tmp_path / "out"))
    expected = trained["model"].predict(x, verbose=0)
    for output in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{output}.npy"), expected[output], atol=1e-5)


def lstm_predict(trained, *args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.stages.predict", *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": trained["uri"]}, capture_output=True, text=True, timeout=300,
    )


def test_predict_command_forecasts_json_windows_and_a_csv_series(trained, tmp_path):
    model_uri = trained["run"].data.tags["model_uri"]
    windows = [[0.1, 0.4, 0.7, 0.9, 1.0], [0.5, 0.2, -0.1, -0.4, -0.7]]
    result = lstm_predict(trained, "--model_uri", model_uri, "--input", json.dumps(windows))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "step_1,step_2,lower_1,lower_2,upper_1,upper_2"
    printed = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    expected = trained["model"].predict(np.array(windows, dtype="float32")[..., None], verbose=0)
    np.testing.assert_allclose(printed, np.hstack([expected["forecast"], expected["lower"], expected["upper"]]),
                               atol=1e-5)

    series = np.sin(np.arange(40) * 0.7)
    csv = tmp_path / "series.csv"
    csv.write_text("value\n" + "\n".join(f"{v:.6f}" for v in series) + "\n")
    # The model was trained on the sine: pointed at a CSV series, it must be told which column to read.
    refused = lstm_predict(trained, "--input", str(csv))
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1] == (
        f"error: Received `input`={str(csv)!r}, but the model was trained on the sine: to forecast this series "
        "with it anyway, name the column of values (--column <name>, -P column=<name>).")
    result = lstm_predict(trained, "--input", str(csv), "--column", "value",
                          "--output", str(tmp_path / "out.csv"))  # model: auto
    assert result.returncode == 0, result.stderr[-3000:]
    written = (tmp_path / "out.csv").read_text().splitlines()
    last_window = np.asarray(series[-10:], dtype="float32").reshape(1, 10, 1)  # the model's input width
    np.testing.assert_allclose([float(v) for v in written[1].split(",")][:2],
                               trained["model"].predict(last_window, verbose=0)["forecast"][0], atol=1e-5)


def test_predict_command_rejects_bad_input_with_one_line(trained):
    result = lstm_predict(trained, "--input", "[[0.1, NaN]]")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Received an invalid value for parameter `input`: Invalid windows: every value must be finite, "
        "but window 0 has nan at time step 1 (1 such values in all)."
    )


def test_a_collection_runs_through_mlflow_run_serve_and_lstm_predict(tmp_path):
    """The README's many-series path: `mlflow run .` on a long CSV, then every series'
    next values from `mlflow models serve` (a DataFrame) and from `lstm-predict`."""
    import pandas as pd

    from tests.e2e.test_mlflow_run import mlflow_run
    from tests.stages.test_many import collection_csv

    csv = collection_csv(tmp_path / "sales.csv")
    result = mlflow_run(tmp_path, "-P", f"data_source={csv}", "-P", "id_column=item", "-P", "time_column=quarter",
                        "-P", "column=sales", "-P", "horizon=4", "-P", "season=4", "-P", "epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Runs (one global model over 12 series)" in result.stdout and "| auto_ets |" in result.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = mlflow.MlflowClient(uri).search_runs(["0"], "tags.stage = 'main'")
    assert len(runs) == 1 and runs[0].data.tags["data"] == "collection"
    forecast_run_id = runs[0].data.tags["forecast_run_id"]
    source = pd.read_csv(csv)
    last = source.groupby("item", sort=False).tail(12)
    frame = {"columns": ["unique_id", "ds", "y"],
             "data": [[i, d, v] for i, d, v in zip(last["item"], last["quarter"], last["sales"])]}
    with models_serve("models:/lstm-sales@champion", uri, tmp_path) as url:
        status, answer = post(url, {"dataframe_split": frame})
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"])
    assert list(served.columns) == ["unique_id", "ds", "step", "forecast", "lower", "upper", "padded"]
    # The server answers from the served model, trained on every point: the run's own forecast of the future.
    future = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{forecast_run_id}/forecasts.csv",
                                                             dst_path=str(tmp_path), tracking_uri=uri))
    np.testing.assert_allclose(served.forecast, future.forecast, rtol=1e-5)
    assert runs[0].data.tags["served_model_trained_on"] == "trained on every point of every series"
    assert len(served) == 12 * 4 and (served.lower < served.forecast).all() and (served.forecast < served.upper).all()
    first = served[served.unique_id == "series 0"]
    after = pd.Timestamp(source[source["item"] == "series 0"]["quarter"].iloc[-1])
    assert list(first.ds) == [f"{after + pd.DateOffset(months=3 * k):%Y-%m-%d}" for k in range(1, 5)]

    predicted = subprocess.run(
        [sys.executable, "-c", "from pipeline.stages.predict import main; main()", "--model_uri",
         "models:/lstm-sales@champion", "--input", str(csv)],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    table = pd.read_csv(__import__("io").StringIO(predicted.stdout))
    # The same series, the same last values: the same forecasts as the server's.
    np.testing.assert_allclose(table.forecast, served.forecast, rtol=1e-5)


def test_a_pretrained_model_runs_zero_shot_through_mlflow_run_serve_and_lstm_predict(tmp_path):
    """`mlflow run . -e pretrain`, then `mlflow run .` on a new series from it with no
    training (zero-shot), then that model from `mlflow models serve` and `lstm-predict`."""
    import pandas as pd

    from tests.e2e.test_mlflow_run import mlflow_run
    from tests.stages.test_pretrained import family, write_collection, write_series

    corpus = write_collection(tmp_path / "family.csv", family(60, 80, seed=1, noise=0.05))
    result = mlflow_run(tmp_path, "-e", "pretrain", "-P", f"corpus={corpus}", "-P", "epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pretrained on 60 series" in result.stdout and "lstm-pretrained@champion is now version 1" in result.stdout
    series = family(1, 50, seed=7, noise=0.05)[0]
    csv = write_series(tmp_path / "new.csv", series)
    result = mlflow_run(tmp_path, "-P", f"data_source={csv}", "-P", "time_column=month", "-P", "season=12",
                        "-P", "horizon=3", "-P", "init=pretrained", "-P", "fine_tune_epochs=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: model: the pretrained model zero-shot" in result.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    main_run = mlflow.MlflowClient(uri).search_runs(["0"], "tags.stage = 'main'")[0]
    assert main_run.data.tags["resolved_init"] == "zero_shot"
    # Logged two ways, no SavedModel: the .keras file, and the MLflow model around it with custom_layers as its code.
    client = mlflow.MlflowClient(uri)
    train_run = client.search_runs(["0"], "tags.stage = 'train'")[0]
    logged = {artifact.path for artifact in client.list_artifacts(train_run.info.run_id)}
    assert "keras_model" in logged and "saved_model" not in logged
    location = client.get_logged_model(train_run.data.tags["model_uri"].removeprefix("models:/")).artifact_location
    folder = Path(location.removeprefix("file://"))
    assert (folder / "artifacts" / "model.keras").is_file() and (folder / "code" / "custom_layers" / "lstm.py").is_file()
    last = np.asarray(series[-36:], np.float32).reshape(1, 36, 1).tolist()
    with models_serve("models:/lstm-new@champion", uri, tmp_path) as url:
        status, answer = post(url, {"inputs": last, "params": {"intervals": True}})
    assert status == 200, answer
    served = answer["predictions"]
    forecast = np.asarray(served["forecast"] if isinstance(served, dict) else served, np.float64).reshape(-1)
    assert forecast.shape == (3,) and np.all(np.isfinite(forecast))
    predicted = subprocess.run(
        [sys.executable, "-c", "from pipeline.stages.predict import main; main()", "--model_uri",
         "models:/lstm-new@champion", "--input", str(csv)],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    row = pd.read_csv(__import__("io").StringIO(predicted.stdout)).iloc[0]
    # lstm-predict sends the model the series' last 36 values, as the server got them: the same forecast.
    np.testing.assert_allclose([row["step_1"], row["step_2"], row["step_3"]], forecast, rtol=1e-4)
    # docs/serving.md's export of its SavedModel, from the .keras file: serving_default forecasts the same.
    import tensorflow as tf

    from pipeline.logged_model import export_saved_model

    version = export_saved_model(folder / "artifacts" / "model.keras", tmp_path / "export" / "saved_model")
    assert sorted(os.listdir(tmp_path / "export" / "saved_model")) == ["1"]
    exported = tf.saved_model.load(str(version)).signatures["serving_default"](window=tf.constant(last))["forecast"]
    np.testing.assert_allclose(np.asarray(exported).reshape(-1), forecast, rtol=1e-5)


def test_lstm_predict_forecasts_with_the_shipped_pretrained_model_and_makes_no_store(tmp_path):
    """No tracking store anywhere: `lstm-predict --model_uri pretrained` reads the shipped
    model, forecasts the series (a short one too, saying so) and leaves no file behind."""
    import pandas as pd

    from pipeline import pretrained
    from tests.stages.test_pretrained import family, write_series

    values = family(1, 80, seed=21, noise=0.05)[0]
    runs_in = tmp_path / "cwd"
    runs_in.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("MLFLOW_")}
    answers = {}
    for name, series in (("long", values), ("short", values[:20])):
        csv = write_series(tmp_path / f"{name}.csv", series)
        answers[name] = subprocess.run(
            [sys.executable, "-c", "from pipeline.stages.predict import main; main()", "--model_uri", "pretrained",
             "--input", str(csv)], cwd=runs_in, env=env, capture_output=True, text=True, timeout=300)
        assert answers[name].returncode == 0, answers[name].stderr[-2000:]
        assert f"predict: the pretrained model {pretrained.SHIPPED} zero-shot" in answers[name].stderr
    assert list(runs_in.iterdir()) == []  # no mlflow.db, no mlruns
    assert "the series has 20 values, fewer than the 36 the model reads" in answers["short"].stderr
    # Intervals calibrated on the series itself, every origin with 4 values before it: the 80-point
    # series holds 9 windows (a 90 % interval's least) for every step, the 20-point one for steps 1 to 8.
    assert "the intervals of steps 1 to 12 are calibrated on the series' own 76 windows" in answers["long"].stderr
    assert ("the intervals of steps 1 to 8 are calibrated on the series' own 16 windows; steps 9 to 12, which the "
            "series holds too few of, calibrated across its corpus' series") in answers["short"].stderr
    loaded = pretrained.load(str(pretrained.SHIPPED))
    shipped, corpus = loaded.model, np.asarray(loaded.half_width, np.float64)
    for name, whole in (("long", values), ("short", values[:20])):
        row = pd.read_csv(__import__("io").StringIO(answers[name].stdout)).iloc[0]
        forecast = np.array([row[f"step_{k}"] for k in range(1, 13)])
        x = np.asarray(whole[-36:], np.float32).reshape(1, -1, 1)
        expected = shipped.predict(x, verbose=0)
        np.testing.assert_allclose(forecast, expected["forecast"][0], rtol=1e-5)
        upper = np.array([row[f"upper_{k}"] for k in range(1, 13)])
        lower = np.array([row[f"lower_{k}"] for k in range(1, 13)])
        assert np.all(lower < forecast) and np.all(forecast < upper)
        q, own, _ = pretrained.series_half_widths(shipped, 36, whole, corpus)
        assert own == (12 if name == "long" else 8) and np.all(q[own:] == corpus[own:12])
        spread = float(np.asarray(shipped.get_layer("spread")(shipped.get_layer("fit_window")(x))).ravel()[0])
        np.testing.assert_allclose(upper - forecast, q * spread, rtol=1e-4)
