"""A collection's per-series work on a real local Dask cluster (a LocalCluster of two
worker processes, started here): the same numbers as here, through the library call
and through `mlflow run . -P engine=dask`."""

import importlib.util
import shutil
import time

import dask
import numpy as np
import pytest
from distributed import LocalCluster
from mlflow.tracking import MlflowClient

from pipeline import baselines, engines
from pipeline.errors import ParamError
from tests.conftest import free_port, temporary_store
from tests.e2e.test_mlflow_run import mlflow_run
from tests.stages.test_many import collection_csv, run_collection

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as running:
        yield running


def awkward_series():
    """Quarterly series as real collections have them: seasonal ones, a flat one, one of
    zeros, an intermittent one, and one of 3 points that AutoETS and the seasonal naive
    forecast cannot fit (the fallback must be found and replaced the same way)."""
    rng = np.random.default_rng(7)
    t = np.arange(40)
    series = [100 * (i + 1) * (1 + 0.2 * np.sin(2 * np.pi * t / 4)) + rng.normal(0, 3, 40) for i in range(5)]
    series += [np.full(30, 7.0), np.zeros(25), np.where(rng.random(36) < 0.25, rng.integers(1, 9, 36), 0.0),
               np.array([3.0, 4.0, 5.0])]
    return series


def assert_baselines_here_and_on(engine_name, where, workers=None):
    """The baselines of the awkward series on `engine_name` are the ones fitted here, to
    float32's precision, with the same notes (the 3-point series found and replaced alike)."""
    series = awkward_series()
    here_notes, there_notes = [], []
    here = baselines.forecast(series, 4, 4, notes=here_notes)
    with engines.open_engine(engine_name) as engine:
        assert engine.where == where and (workers is None or engine.workers == workers)
        there = baselines.forecast(series, 4, 4, notes=there_notes, engine=engine)
    assert set(there) == set(baselines.DEFAULT_BASELINES)
    for name in baselines.DEFAULT_BASELINES:
        for key in ("forecast", "lower", "upper"):
            assert np.isfinite(there[name][key]).all(), (name, key)
            np.testing.assert_allclose(there[name][key], here[name][key], rtol=1e-5, atol=1e-4, err_msg=name)
    assert there_notes == here_notes and any("could not forecast 1 series (the first has 3 points)" in note
                                             for note in here_notes)


def test_the_baselines_on_dask_are_the_baselines_here(cluster):
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        assert_baselines_here_and_on("dask", f"the Dask scheduler at {cluster.scheduler_address}", workers=2)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime: apt-get install "
                    "default-jre-headless, as .ci/run does")
def test_the_baselines_on_spark_are_the_baselines_here(monkeypatch):
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master local[2] pyspark-shell")
    assert_baselines_here_and_on("spark", "Spark at local[2]")


NO_RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                            reason="Ray is not installed (pip install \"lstm-forecaster[ray]\"; the test extra leaves it "
                                   "out: a local Ray takes minutes to start on 2 cores)")


@NO_RAY
def test_the_baselines_on_a_local_ray_are_the_baselines_here(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert_baselines_here_and_on("ray", "a local Ray")


def test_a_scheduler_that_does_not_answer_is_one_line_with_its_address():
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with dask.config.set({"scheduler-address": address}), pytest.raises(ParamError) as error:
        with engines.open_engine("dask"):
            pass
    assert str(error.value).startswith(f"The Dask scheduler at {address} (DASK_SCHEDULER_ADDRESS) did not answer "
                                       "within 10 s")
    assert time.perf_counter() - started < 120  # bounded by the 10 s timeout, not hung


@pytest.mark.parametrize("engine", [name for name in ("ray", "spark")
                                    if any(importlib.util.find_spec(module) is None
                                           for module in engines.NEEDS[name])])
def test_an_engine_that_is_not_installed_names_its_extra(engine):
    with pytest.raises(ParamError) as error:
        engines.check_installed(engine)
    assert str(error.value).endswith(f"is not installed: pip install \"lstm-forecaster[{engine}]\".")
    with pytest.raises(ParamError, match=r"expected one of local, dask, ray, spark, got 'hadoop'"):
        engines.check_installed("hadoop")


def test_a_collection_runs_with_engine_dask_through_mlflow_run(cluster, tmp_path, monkeypatch):
    from pipeline.stages import evaluate

    path = collection_csv(tmp_path / "sales.csv")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    result = mlflow_run(tmp_path, "-P", f"data_source={path}", "-P", "id_column=item", "-P", "time_column=quarter",
                        "-P", "column=sales", "-P", "horizon=4", "-P", "season=4", "-P", "time_steps=16",
                        "-P", "hidden_units=8", "-P", "epochs=2", "-P", "engine=dask")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"evaluate: the baselines run on the Dask scheduler at {cluster.scheduler_address}" in result.stdout
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    with temporary_store(tmp_path):  # the run's own store, and no experiment left active by another test
        (evaluated,) = MlflowClient().search_runs(["0"], "tags.stage = 'evaluate'")
        assert evaluated.data.params["engine"] == "dask"
        assert evaluated.data.tags["engine"] == f"the Dask scheduler at {cluster.scheduler_address}"
        # The same model and data evaluated here: every baseline's metrics are the Dask run's.
        _, scores, _ = evaluate.run(evaluated.data.tags["resolved_model_uri"], evaluated.data.tags["resolved_data_uri"],
                                    season=4, free_run_steps=5, engine="local")
    on_dask = {name: value for name, value in evaluated.data.metrics.items() if name in scores}
    assert len(on_dask) == len(scores) and any(name.startswith("auto_ets_") for name in on_dask)
    for name, value in scores.items():
        assert on_dask[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_engine_is_refused_for_one_series_before_any_run(tmp_path):
    from pipeline.stages import main

    with pytest.raises(ParamError, match=r"^Received `engine`=dask for one series: it applies to a collection"):
        main.run(data_source="sine", n_samples=100, engine="dask")


READING = ("auto", "error", "auto", "auto", ".", "none")  # lstm-predict's reading options, as given by default
NO_JAVA = "Spark needs a Java runtime: apt-get install default-jre-headless, as .ci/run does"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A collection's served model in a temporary store, lstm-predict's forecasts of the
    collection here, and the collection in Parquet (partitioned by series, its times in
    microseconds, as Spark writes it; and once as pandas writes it, in nanoseconds)."""
    import pandas as pd

    from pipeline.stages import predict

    folder = tmp_path_factory.mktemp("served")
    path = collection_csv(folder / "sales.csv")
    frame = pd.read_csv(path, parse_dates=["quarter"])
    frame.to_parquet(folder / "sales_parquet", partition_cols=["item"], coerce_timestamps="us")
    frame.to_parquet(folder / "nanoseconds.parquet")
    with temporary_store(folder):
        run_collection(path, epochs=1)
        here = predict.run("auto", str(path), *READING, str(folder / "here.csv"))
        yield {"folder": folder, "csv": path, "here": here.sort_values(["unique_id", "step"], ignore_index=True)}


def _scored(served, engine, source="sales_parquet"):
    import pandas as pd

    from pipeline.stages import predict

    folder = served["folder"]
    count = predict.run("auto", str(folder / source), *READING, str(folder / f"{engine}.parquet"), engine=engine)
    assert count == served["here"]["unique_id"].nunique() == 12
    scored = pd.read_parquet(folder / f"{engine}.parquet").sort_values(["unique_id", "step"], ignore_index=True)
    assert list(scored.columns) == list(served["here"].columns)
    pd.testing.assert_frame_equal(scored, served["here"], check_dtype=False, check_exact=False, rtol=1e-6)


def test_the_served_model_scores_a_parquet_collection_on_dask_as_lstm_predict_does(served, cluster):
    from pipeline.stages import predict

    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        _scored(served, "dask")
        with pytest.raises(ParamError, match=r"^Received `output`='-' with --engine dask: the engine's workers write"):
            predict.run("auto", str(served["folder"] / "sales_parquet"), *READING, "-", engine="dask")
        with pytest.raises(ParamError, match=r"expected a Parquet collection .* to score with --engine, got"):
            predict.run("auto", str(served["csv"]), *READING, str(served["folder"] / "x.parquet"), engine="dask")


def test_a_collection_over_the_cap_of_one_request_is_scored_in_several(served, monkeypatch):
    # 100 000 series of 24 values are 2.4 million, over the model's 1 000 000 a request: here the cap is
    # lowered to 5 series' worth, so that the 12 series go in 3 requests, which must answer as one does.
    import mlflow

    from pipeline import batch, serving
    from pipeline import collection as coll
    from pipeline.stages.predict import newest_model_uri

    model = mlflow.pyfunc.load_model(newest_model_uri())
    width = int(model.metadata.metadata["input_width"])
    read = coll.read_collection(str(served["csv"]), "item", "quarter", "sales")
    monkeypatch.setattr(serving, "MAX_VALUES", 5 * width)
    sent, real = [], model.predict  # counted, not replaced
    monkeypatch.setattr(model, "predict", lambda frame, params=None: sent.append(frame["unique_id"].nunique())
                        or real(frame, params=params))
    table = batch.collection_forecasts(model, read, width).sort_values(["unique_id", "step"], ignore_index=True)
    assert sent == [5, 5, 2]
    here = served["here"]
    assert len(table) == len(here) and list(table["unique_id"]) == list(here["unique_id"])
    np.testing.assert_allclose(table[["forecast", "lower", "upper"]].to_numpy(np.float64),
                               here[["forecast", "lower", "upper"]].to_numpy(np.float64), rtol=1e-6)


@NO_RAY
def test_the_served_model_scores_a_parquet_collection_on_a_local_ray_as_lstm_predict_does(served, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _scored(served, "ray")


def test_the_collection_model_takes_one_series_per_row_as_spark_udf_sends_them(served):
    # What mlflow.pyfunc.spark_udf hands the model: one row per series, its values as an array, its last time.
    import mlflow
    import pandas as pd

    long = pd.read_csv(served["csv"])
    from pipeline.stages.predict import newest_model_uri

    model = mlflow.pyfunc.load_model(newest_model_uri())
    rows = pd.DataFrame([{"unique_id": key, "ds": part["quarter"].iloc[-1], "y": part["sales"].to_numpy()}
                         for key, part in long.groupby("item", sort=True)])
    out = model.predict(rows)
    assert list(out.columns) == ["unique_id", "ds", "forecast", "lower", "upper", "padded"] and len(out) == 12
    here = served["here"]
    for _, row in out.iterrows():
        own = here[here["unique_id"] == row["unique_id"]]
        np.testing.assert_allclose(row["forecast"], own["forecast"], rtol=1e-6)
        np.testing.assert_allclose(row["upper"] - row["lower"], own["upper"] - own["lower"], rtol=1e-5)
        assert list(row["ds"]) == list(own["ds"].astype(str)) and row["padded"] == own["padded"].iloc[0]
    bad = rows.copy()
    bad.at[3, "y"] = np.r_[bad.at[3, "y"][:-1], np.nan]
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"^Invalid windows: row 3 \(series '.*'\): y must be "
                                                                  "a non-empty array of finite numbers"):
        model.predict(bad)


@pytest.mark.skipif(shutil.which("java") is None, reason=NO_JAVA)
def test_the_served_model_scores_a_parquet_collection_on_spark_as_lstm_predict_does(served, monkeypatch):
    import pandas as pd

    from pipeline.stages import predict

    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master local[2] pyspark-shell")
    _scored(served, "spark")  # through mlflow.pyfunc.spark_udf
    _scored(served, "spark", "nanoseconds.parquet")  # pyarrow reads the file, so pandas' nanoseconds are no bar
    # Each series cut across row groups of 7 rows and across two files, its rows out of order: read whole.
    shuffled = pd.read_csv(served["csv"], parse_dates=["quarter"]).sample(frac=1.0, random_state=0)
    (served["folder"] / "scattered").mkdir()
    for part, rows in enumerate(np.array_split(shuffled, 2)):
        rows.to_parquet(served["folder"] / "scattered" / f"part-{part}.parquet", coerce_timestamps="us",
                        row_group_size=7)
    _scored(served, "spark", "scattered")
    # A refusal of the collection reader, raised on an executor, reaches the user as its one line.
    frame = pd.read_csv(served["csv"], parse_dates=["quarter"])
    pd.concat([frame, frame.iloc[[5]]]).to_parquet(served["folder"] / "twice.parquet", coerce_timestamps="us")
    with pytest.raises(ParamError, match=r"twice.parquet: series '.*' has the time .* twice"):
        predict.run("auto", str(served["folder"] / "twice.parquet"), *READING,
                    str(served["folder"] / "x.parquet"), engine="spark")
    frame.loc[7, "item"] = None
    frame.to_parquet(served["folder"] / "no_id.parquet", coerce_timestamps="us")
    with pytest.raises(ParamError, match=r"^Column 'item' of .*no_id.parquet is empty in row group 0: every row needs"):
        predict.run("auto", str(served["folder"] / "no_id.parquet"), *READING,
                    str(served["folder"] / "x.parquet"), engine="spark")
