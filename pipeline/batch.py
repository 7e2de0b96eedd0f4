"""Batch scoring of a collection's MLflow model on an engine: a Parquet collection
(a file or a folder, in the long format) in, the forecasts table out as Parquet.

Every series must reach one worker whole. On Dask the long table is shuffled by
series id and each partition scored with `map_partitions`, on Ray hash-partitioned by
id and each block scored with `map_batches`; the model is sent to the workers once,
as the bytes of its folder, and loaded once per worker process. On
Spark each task reads a row group with pyarrow and sends its rows on as one Arrow
block per bucket of ids (Spark moving the rows one by one made its scoring over 2×
the time of a local one on 100 000 series; benchmarks/results/scale.md), each
bucket's series become one row per series (`series_rows`: a row is a whole series,
so no batch of rows cuts one in two), and those rows are scored by MLflow's own
`mlflow.pyfunc.spark_udf`, as a Spark user scores any registered model. Either way
each series is read with the collection reader's checks (pipeline.collection) and
forecast from the same last values as `lstm-predict` sends (`collection_forecasts`),
so the numbers are those of a local `lstm-predict` on the same series.
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


# Rows of the long table one Spark task reads at most, bounding what its Python worker holds.
ROWS_PER_PARTITION = 8_000_000
# What the collection's MLflow model returns for one series per row (pipeline.serving, SERIES_ROWS_FORMAT).
SPARK_RESULT = "ds array<string>, forecast array<float>, lower array<float>, upper array<float>, padded bigint"


def _on_spark(engine, folder, columns, width, source, output):
    """Spark: each task reads row groups of the Parquet collection with pyarrow and
    splits their rows into one bucket of series ids per partition, one compressed Arrow
    block per bucket (`_bucket_blocks`), so that Spark moves a few blocks, not one row
    per value; each bucket's blocks meet in one task (`repartition` on a key that
    Spark's hash sends to that bucket's own partition) and are read with the
    collection reader's checks into one row per series (`series_rows`); those rows are
    scored by the MLflow model through `mlflow.pyfunc.spark_udf` (loaded once per
    executor process); the forecasts exploded back into the long table. The path must
    be one the executors read (a shared file system on a cluster)."""
    import pickle

    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from pipeline import parquet_input, serving

    spark = SparkSession.builder.getOrCreate()
    dataset = parquet_input.open_dataset(source, *columns)  # the reader's refusals, before any task
    groups = [pickle.dumps(group) for fragment in dataset.get_fragments() for group in fragment.split_by_row_group()]
    if not groups:
        raise ParamError(f"Parquet collection {source} has no rows: expected one row per (series, time).")
    # A partition per core, more where a partition would hold over ROWS_PER_PARTITION rows (a
    # partition is read whole by one task). Each gets one bucket of series ids, under a key that
    # Spark's hash partitioning sends to that very partition, so that the buckets never share one.
    partitions = max(engine.workers, -(-dataset.count_rows() // ROWS_PER_PARTITION))
    keys = _partition_keys(spark, partitions)
    schema = dataset.schema

    def split(batches):
        for batch in batches:
            for group, blob in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                yield _bucket_blocks(pickle.loads(blob), group, schema, columns, keys)

    def read_buckets(batches):
        import pyarrow as pa

        from pipeline import collection as coll

        parts = [part for part in batches if part.num_rows]
        if parts:  # whole buckets, so whole series
            table = pa.Table.from_batches(parts)
            del parts
            order = np.argsort(table.column("group").to_numpy(), kind="stable")  # the row groups in reading order
            blocks = [pa.ipc.open_stream(blob).read_all() for blob in table.column("block").take(order).to_pylist()]
            del table
            read = coll.assemble(source, parquet_input.table_columns(pa.concat_tables(blocks), source, *columns,
                                                                     numbered=False), columns[1], columns[2], "error")
            yield from series_rows(read, width).to_batches()

    units = spark.createDataFrame([(i, blob) for i, blob in enumerate(groups)], "group int, blob binary")
    blocks = units.repartition(min(len(groups), 4 * engine.workers)).mapInArrow(
        split, "bucket int, group int, block binary")
    rows = blocks.repartition(partitions, "bucket").mapInArrow(read_buckets, "unique_id string, ds string, y array<double>")
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


def _partition_keys(spark, partitions):
    """For each of `partitions` partitions, an int that Spark's hash partitioning
    (`repartition(partitions, column)`: pmod(murmur3(value), partitions)) sends to it."""
    from pyspark.sql import functions as F

    keys, tried = {}, 0
    while len(keys) < partitions:
        found = spark.range(tried, tried + 64 * partitions).select(F.col("id").cast("int").alias("key")).select(
            "key", F.expr(f"pmod(hash(key), {partitions})").alias("partition")).collect()
        for key, partition in found:
            keys.setdefault(partition, key)
        tried += 64 * partitions
    return np.array([keys[p] for p in range(partitions)], np.int32)


def _bucket_blocks(fragment, group, schema, columns, keys):
    """The rows of one Parquet row group (`fragment`, the `group`-th) as Arrow IPC blocks,
    one per bucket of series ids (a CRC-32 of the id as the reader names it: the same
    bucket on every executor), in a record batch of (bucket: the key of its partition, group, block)."""
    import zlib

    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline import parquet_input

    table = fragment.to_table(schema=schema, columns=list(columns))
    ids = table.column(columns[0])
    if ids.null_count:
        raise ParamError(f"Column {columns[0]!r} of {fragment.path} is empty in row group {group}: every row needs "
                         "its series id.")
    ids = ids.combine_chunks() if ids.num_chunks else pa.array([], ids.type)
    encoded = ids if pa.types.is_dictionary(ids.type) else pc.dictionary_encode(ids)
    of_id = keys[np.array([zlib.crc32(name.encode()) % len(keys)  # the reader's id: " a" and "a" meet
                           for name in parquet_input.id_text(encoded.dictionary).to_pylist()], np.int64)]
    bucket = of_id[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    order = np.argsort(bucket, kind="stable")
    table, bucket = table.take(pa.array(order)), bucket[order]
    kept, starts = np.unique(bucket, return_index=True)
    blobs = []
    for start, stop in zip(starts, np.r_[starts[1:], len(bucket)]):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
            writer.write_table(table.slice(start, stop - start))
        blobs.append(sink.getvalue().to_pybytes())
    return pa.RecordBatch.from_arrays([pa.array(kept, pa.int32()), pa.array(np.full(len(kept), group), pa.int32()),
                                       pa.array(blobs, pa.binary())], names=["bucket", "group", "block"])


def series_rows(read, width):
    """The Collection `read` as an Arrow table of one row per series: unique_id, ds (its
    last time, as text) and y (its last `width` values), what `collection_forecasts`
    sends the model."""
    import pyarrow as pa

    from pipeline import csv_input

    kept = np.minimum(read.lengths, width)
    values = np.concatenate([read.series(i)[-k:] for i, k in enumerate(kept)])
    offsets = pa.array(np.r_[0, np.cumsum(kept)].astype(np.int32))
    return pa.table({"unique_id": pa.array([str(key) for key in read.ids], pa.string()),
                     "ds": pa.array([csv_input.format_time(t) for t in read.last_times], pa.string()),
                     "y": pa.ListArray.from_arrays(offsets, pa.array(values, pa.float64()))})


def _refusal_in(error):
    """The one-line ParamError of a refusal (the reader's ParamError, the model's MlflowException)
    raised on a Spark executor, or `error` itself when it holds none."""
    for line in str(error).splitlines():
        for kind in ("pipeline.errors.ParamError: ", "mlflow.exceptions.MlflowException: "):
            if line.strip().startswith(kind):
                return ParamError(line.strip()[len(kind):])
    return error
