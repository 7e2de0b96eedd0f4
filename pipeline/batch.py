"""Batch scoring of a collection's MLflow model on an engine: a Parquet collection
(a file or a folder, in the long format) in, the forecasts table out as Parquet.

Every series must reach one worker whole. On Dask the long table is shuffled by
series id and each partition scored with `map_partitions`, on Ray hash-partitioned by
id and each block scored with `map_batches`; the model is sent to the workers once,
as the bytes of its folder, and loaded once per worker process. On
Spark the table is repartitioned by id, each partition's series become one row per
series (`series_rows`: a row is a whole series, so no batch of rows cuts one in
two), and those rows are scored by MLflow's own `mlflow.pyfunc.spark_udf`, as a
Spark user scores any registered model. Either way each series is read with the
collection reader's checks (pipeline.collection) and forecast from the same last
values as `lstm-predict` sends (`collection_forecasts`), so the numbers are those
of a local `lstm-predict` on the same series.
"""

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from pipeline.errors import ParamError

# The forecasts table, as the MLflow model returns it.
SCHEMA = (("unique_id", "string"), ("ds", "string"), ("step", "int64"), ("forecast", "float32"),
          ("lower", "float32"), ("upper", "float32"), ("padded", "int64"))


class ModelArchive:
    """A model folder as bytes, to ship to workers; `load()` unpacks and loads it once per process."""

    _loaded = {}

    def __init__(self, folder):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder))
        self.data = buffer.getvalue()
        self.digest = hashlib.sha256(self.data).hexdigest()

    def load(self):
        import tempfile

        import mlflow

        if self.digest not in ModelArchive._loaded:
            folder = Path(tempfile.mkdtemp(prefix="lstm-model-"))
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                archive.extractall(folder)
            from pipeline import workarounds

            workarounds.check_pins_first()
            ModelArchive._loaded[self.digest] = mlflow.pyfunc.load_model(str(folder))
        return ModelArchive._loaded[self.digest]


def empty_table():
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in SCHEMA})


def read_frame(frame, columns, source):
    """The Collection of the pandas long `frame` (its `columns`: id, time, value), read with
    the collection reader's checks, as lstm-predict reads a file."""
    import pyarrow as pa

    from pipeline import collection as coll
    from pipeline import parquet_input

    id_column, time_column, column = columns
    table = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
    return coll.assemble(source, parquet_input.table_columns(table, source, id_column, time_column, column),
                         time_column, column, "error")


def score_frame(frame, archive, columns, width, source):
    """The forecasts of the whole series in the pandas `frame` (its `columns`: id, time,
    value), with the model in `archive`."""
    if frame.empty:
        return empty_table()
    out = collection_forecasts(archive.load(), read_frame(frame, columns, source), width)
    return out.astype({name: kind for name, kind in SCHEMA})


def collection_forecasts(model, read, width):
    """The MLflow model's long table (unique_id, ds, step, forecast, lower, upper,
    padded) for the Collection `read`: each series' last `width` values are sent, every
    row dated by the series' last time (all the model needs to date the forecasts), in
    requests of at most the model's cap on values (pipeline.serving.MAX_VALUES)."""
    import pandas as pd

    from pipeline import csv_input
    from pipeline.serving import MAX_VALUES

    kept = np.minimum(read.lengths, width)
    last = [csv_input.format_time(t) for t in read.last_times]
    per_request = max(MAX_VALUES // max(width, 1), 1)  # series per request
    ids, tables = np.asarray(read.ids), []
    for start in range(0, len(ids), per_request):  # a collection holds at least one series (the reader's check)
        part = slice(start, start + per_request)
        frame = pd.DataFrame({"unique_id": np.repeat(ids[part], kept[part]), "ds": np.repeat(last[part], kept[part]),
                              "y": np.concatenate([read.series(i)[-k:] for i, k in enumerate(kept[part], start)])})
        tables.append(model.predict(frame, params={"intervals": True}))
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def model_folder(model_uri):
    """The local folder of `model_uri` (downloaded once) and its metadata: the columns
    and input width it was trained with. A model of one series is refused."""
    import mlflow
    from mlflow.models import Model

    try:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    except Exception as error:  # MLflow raises several types for a bad URI
        raise ParamError(f"Received an invalid value for parameter `model_uri`, expected an MLflow model URI "
                         f"(models:/<name>/<version>, runs:/<run id>/model), got {model_uri!r} "
                         f"({type(error).__name__}).") from None
    metadata = Model.load(str(Path(folder) / "MLmodel")).metadata or {}
    if "time_step" not in metadata:
        raise ParamError(f"Received `model_uri`={model_uri!r}, a model of one series: --engine scores a collection's "
                         "model; forecast a series without --engine.")
    return folder, metadata


def score(model_uri, source, output, engine_name):
    """Scores the Parquet collection `source` with the collection model `model_uri` on
    `engine_name`, writing the forecasts to the Parquet folder `output`; returns the
    number of series scored."""
    from pipeline import collection as coll
    from pipeline import engines

    engines.check_installed(engine_name)
    if engine_name not in ("dask", "spark", "ray"):
        raise ParamError(f"Received `engine`={engine_name} for batch scoring: it runs on dask, spark or ray; without "
                         "--engine, lstm-predict scores here.")
    if not coll.is_parquet(source):
        raise ParamError(f"Received an invalid value for parameter `input`, expected a Parquet collection (a .parquet "
                         f"file or a folder of them) to score with --engine, got {source!r}.")
    folder, metadata = model_folder(model_uri)
    columns = (metadata.get("id_column", coll.ID), metadata.get("time_column", coll.TIME),
               metadata.get("column", coll.VALUE))
    width = int(metadata["input_width"])
    with engines.open_engine(engine_name) as engine:
        if engine_name == "spark":
            return _on_spark(engine, folder, columns, width, str(source), str(output))
        on = _on_dask if engine_name == "dask" else _on_ray
        return on(engine, ModelArchive(folder), columns, width, str(source), str(output))


def _on_dask(engine, archive, columns, width, source, output):
    import dask.dataframe as dd
    from distributed import get_client

    frame = dd.read_parquet(source, columns=list(columns))
    frame = frame.shuffle(on=columns[0], npartitions=max(frame.npartitions, 2 * engine.workers))
    shipped = get_client().scatter(archive, broadcast=True)
    scored = frame.map_partitions(_score_partition, shipped, columns, width, source, meta=empty_table())
    scored.to_parquet(output, write_index=False, overwrite=True)
    return int(dd.read_parquet(output, columns=["unique_id"])["unique_id"].nunique().compute())


def _score_partition(frame, archive, columns, width, source):
    return score_frame(frame, archive, columns, width, source)


def _on_ray(engine, archive, columns, width, source, output):
    """Ray: the long table hash-partitioned by id (every series in one block), each block
    scored whole (`map_batches` without a batch size) by a worker that loads the model once."""
    import ray.data

    frame = ray.data.read_parquet(source, columns=list(columns))
    frame = frame.repartition(max(2 * engine.workers, 2), keys=[columns[0]])
    scored = frame.map_batches(_score_partition, batch_size=None, batch_format="pandas",
                               fn_args=(archive, columns, width, source))
    scored.write_parquet(output)
    return len(ray.data.read_parquet(output, columns=["unique_id"]).unique("unique_id"))


def series_rows(frame, columns, width, source):
    """The pandas long `frame` (its `columns`: id, time, value) read with the collection
    reader's checks, as one row per series: unique_id, ds (its last time, as text) and y
    (its last `width` values), what `collection_forecasts` sends the model."""
    import pandas as pd

    from pipeline import csv_input

    read = read_frame(frame, columns, source)
    return pd.DataFrame({"unique_id": [str(key) for key in read.ids],
                         "ds": [csv_input.format_time(t) for t in read.last_times],
                         "y": [read.series(i)[-width:] for i in range(len(read.ids))]})


# What the collection's MLflow model returns for one series per row (pipeline.serving, SERIES_ROWS_FORMAT).
SPARK_RESULT = "ds array<string>, forecast array<float>, lower array<float>, upper array<float>, padded bigint"


def _on_spark(engine, folder, columns, width, source, output):
    """Spark: the long table repartitioned by id; each partition's series read with the
    collection reader's checks into one row per series (`series_rows`, with `mapInPandas`);
    those rows scored by the MLflow model through `mlflow.pyfunc.spark_udf` (loaded once per
    executor process); the forecasts exploded back into the long table."""
    import mlflow
    from pyspark.errors import AnalysisException
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from pipeline import serving

    spark = SparkSession.builder.getOrCreate()
    try:
        frame = spark.read.parquet(source).select(*columns)
    except AnalysisException as error:
        if "TIMESTAMP(NANOS" in str(error):
            raise ParamError(f"Spark cannot read the nanosecond timestamps of {source} (pandas writes them): write the "
                             "times in microseconds (pandas: to_parquet(..., coerce_timestamps='us')), as Spark writes "
                             "them.") from None
        raise

    def read_partition(batches):
        import pandas as pd

        parts = list(batches)
        if parts:
            yield series_rows(pd.concat(parts, ignore_index=True), columns, width, source)

    rows = frame.repartition(max(2 * engine.workers, 2), columns[0]).mapInPandas(
        read_partition, "unique_id string, ds string, y array<double>")
    # Arrow batches small enough for the model's cap on the values of one request.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(max(serving.MAX_VALUES // width, 1)))
    model = mlflow.pyfunc.spark_udf(spark, str(folder), result_type=SPARK_RESULT, env_manager="local")
    scored = rows.select("unique_id", model(F.struct("unique_id", "ds", "y")).alias("out"))
    at = "element_at(out.{}, position + 1)"
    table = scored.select("unique_id", "out", F.posexplode("out.forecast").alias("position", "forecast")).select(
        "unique_id", F.expr(at.format("ds")).alias("ds"), (F.col("position") + 1).cast("bigint").alias("step"),
        F.col("forecast").cast("float").alias("forecast"), F.expr(at.format("lower")).cast("float").alias("lower"),
        F.expr(at.format("upper")).cast("float").alias("upper"), F.col("out.padded").alias("padded"))
    try:
        table.write.mode("overwrite").parquet(output)
    except Exception as error:  # a refusal raised on an executor reaches here inside Spark's own exception
        raise _refusal_in(error) from None
    return int(spark.read.parquet(output).select("unique_id").distinct().count())


def _refusal_in(error):
    """The one-line ParamError of a refusal (the reader's ParamError, the model's MlflowException)
    raised on a Spark executor, or `error` itself when it holds none."""
    for line in str(error).splitlines():
        for kind in ("pipeline.errors.ParamError: ", "mlflow.exceptions.MlflowException: "):
            if line.strip().startswith(kind):
                return ParamError(line.strip()[len(kind):])
    return error
