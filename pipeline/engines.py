"""The distributed engines a collection's per-series work may run on: Dask, Ray or
Spark, each reached as its users already reach it, and each an optional extra
imported only when chosen (`pip install "lstm-forecaster[dask]"`, `[ray]`, `[spark]`).

statsforecast runs its `forecast` on such an engine's DataFrame through its Fugue
backend, partitioned by series; this module only opens the engine and turns a pandas
frame into the engine's, and back. Where the cluster is comes from the engine's own
convention, never from a parameter of ours:

- Dask: `DASK_SCHEDULER_ADDRESS` (Dask's configuration key `scheduler-address`), else a
  `LocalCluster` of one single-threaded worker process per core, started here;
- Ray: `RAY_ADDRESS`, else a local Ray started by `ray.init`;
- Spark: what `SparkSession.builder.getOrCreate()` finds (`PYSPARK_SUBMIT_ARGS="--master
  spark://host:7077 pyspark-shell"`, `spark-defaults.conf`), else `local[*]`.

A cluster that does not answer within 10 s is one line naming its address.
"""

import contextlib
import importlib.util
import os

from pipeline.errors import ParamError

ENGINES = ("local", "dask", "ray", "spark")
# What each engine needs installed (the extra that brings it), checked before anything starts.
NEEDS = {"dask": ("distributed", "dask", "fugue_dask"), "ray": ("ray", "fugue_ray"),
         "spark": ("pyspark", "fugue_spark")}
CONNECT_SECONDS = 10


def check_installed(engine):
    """A one-line ParamError naming the extra to install when `engine`'s packages are missing."""
    if engine not in ENGINES:
        raise ParamError(f"Received an invalid value for parameter `engine`, expected one of {', '.join(ENGINES)}, "
                         f"got {engine!r}.")
    missing = [name for name in NEEDS.get(engine, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise ParamError(f"Received `engine`={engine}, but {', '.join(missing)} is not installed: "
                         f"pip install \"lstm-forecaster[{engine}]\".")


class Engine:
    """An open engine: `frame(pandas)` → its DataFrame (partitioned by series where that
    is the engine's choice), `collect(frame)` → pandas; `where` says in words where it runs."""

    def __init__(self, name, where, to_frame, collect, workers):
        self.name, self.where, self._to_frame, self._collect, self.workers = name, where, to_frame, collect, workers

    def frame(self, pandas_frame):
        return self._to_frame(pandas_frame)

    def collect(self, frame):
        return self._collect(frame)


@contextlib.contextmanager
def open_engine(engine):
    """The engine `engine`, open for the block (None for 'local')."""
    check_installed(engine)
    if engine == "local":
        yield None
        return
    opener = {"dask": _dask, "ray": _ray, "spark": _spark}[engine]
    with opener() as opened:
        yield opened


@contextlib.contextmanager
def _dask():
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    address = dask.config.get("scheduler-address", None)
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout=f"{CONNECT_SECONDS}s"))
            except (OSError, TimeoutError) as error:
                raise ParamError(f"The Dask scheduler at {address} (DASK_SCHEDULER_ADDRESS) did not answer within "
                                 f"{CONNECT_SECONDS} s ({type(error).__name__}): start it, or unset "
                                 "DASK_SCHEDULER_ADDRESS for a local cluster.") from None
            where = f"the Dask scheduler at {address}"
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                                       processes=True, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
            where = f"a local Dask cluster of {len(cluster.workers)} workers"
        workers = max(len(client.scheduler_info()["workers"]), 1)

        def to_frame(frame):
            return dd.from_pandas(frame, npartitions=min(max(2 * workers, 1), max(frame["unique_id"].nunique(), 1)),
                                  sort=False)

        yield Engine("dask", where, to_frame, lambda frame: frame.compute(), workers)


@contextlib.contextmanager
def _ray():
    import ray

    address = os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, TimeoutError) as error:
        raise ParamError(f"The Ray cluster at {address} (RAY_ADDRESS) did not answer ({type(error).__name__}): "
                         "start it, or unset RAY_ADDRESS for a local Ray.") from None
    try:
        import ray.data

        workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        yield Engine("ray", f"the Ray cluster at {address}" if address else "a local Ray",
                     lambda frame: ray.data.from_pandas(frame), lambda frame: frame.to_pandas(), workers)
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _spark():
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this Python unless told otherwise
    spark = SparkSession.builder.appName("lstm-forecaster").config("spark.ui.enabled", "false") \
        .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate()
    master = spark.sparkContext.master
    try:
        workers = max(spark.sparkContext.defaultParallelism, 1)
        yield Engine("spark", f"Spark at {master}", lambda frame: spark.createDataFrame(frame),
                     lambda frame: frame.toPandas(), workers)
    finally:
        spark.stop()
