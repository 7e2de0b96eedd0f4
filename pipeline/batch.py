"""Batch scoring of a collection's MLflow model on an engine: a Parquet collection
(a file or a folder, in the long format) in, the forecasts table out as Parquet.

Every series must reach one worker whole: on Dask the long table is shuffled by
series id and each partition scored with `map_partitions`; on Spark it is
repartitioned by id and each partition scored with `mapInPandas`. (MLflow's
`spark_udf` scores batches of rows that may cut a series in two; this model reads
a series' history, so the partition, not the row batch, is the unit.) The model is
sent to the workers once, as the bytes of its folder, and loaded once per worker
process; each partition's series are read with the collection reader's checks
(pipeline.collection) and forecast as `lstm-predict` forecasts them
(`collection_forecasts`), so the numbers are those of a
local `lstm-predict` on the same series.
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
            ModelArchive._loaded[self.digest] = mlflow.pyfunc.load_model(str(folder))
        return ModelArchive._loaded[self.digest]


def empty_table():
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in SCHEMA})


def score_frame(frame, archive, columns, width, source):
    """The forecasts of the whole series in the pandas `frame` (its `columns`: id, time,
    value), with the model in `archive`."""
    import pyarrow as pa

    from pipeline import collection as coll
    from pipeline import parquet_input

    if frame.empty:
        return empty_table()
    id_column, time_column, column = columns
    table = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
    read = coll.assemble(source, parquet_input.table_columns(table, source, id_column, time_column, column),
                         time_column, column, "error")
    out = collection_forecasts(archive.load(), read, width)
    return out.astype({name: kind for name, kind in SCHEMA})


def collection_forecasts(model, read, width):
    """The MLflow model's long table (unique_id, ds, step, forecast, lower, upper,
    padded) for the Collection `read`: each series' last `width` values are sent, every
    row dated by the series' last time (all the model needs to date the forecasts)."""
    import pandas as pd

    from pipeline import csv_input

    kept = np.minimum(read.lengths, width)
    last = [csv_input.format_time(t) for t in read.last_times]
    frame = pd.DataFrame({"unique_id": np.repeat(read.ids, kept), "ds": np.repeat(last, kept),
                          "y": np.concatenate([read.series(i)[-k:] for i, k in enumerate(kept)])})
    return model.predict(frame, params={"intervals": True})


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
    if engine_name not in ("dask", "spark"):
        raise ParamError(f"Received `engine`={engine_name} for batch scoring: it runs on dask or spark (ray: not yet); "
                         "without --engine, lstm-predict scores here.")
    if not coll.is_parquet(source):
        raise ParamError(f"Received an invalid value for parameter `input`, expected a Parquet collection (a .parquet "
                         f"file or a folder of them) to score with --engine, got {source!r}.")
    folder, metadata = model_folder(model_uri)
    columns = (metadata.get("id_column", coll.ID), metadata.get("time_column", coll.TIME),
               metadata.get("column", coll.VALUE))
    archive, width = ModelArchive(folder), int(metadata["input_width"])
    with engines.open_engine(engine_name) as engine:
        return {"dask": _on_dask, "spark": _on_spark}[engine_name](engine, archive, columns, width, str(source),
                                                                   str(output))


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


def _on_spark(engine, archive, columns, width, source, output):
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    shipped = spark.sparkContext.broadcast(archive)
    schema = ", ".join(f"{name} {'bigint' if kind == 'int64' else 'float' if kind == 'float32' else kind}"
                       for name, kind in SCHEMA)
    from pyspark.errors import AnalysisException

    try:
        frame = spark.read.parquet(source).select(*columns)
    except AnalysisException as error:
        if "TIMESTAMP(NANOS" in str(error):
            raise ParamError(f"Spark cannot read the nanosecond timestamps of {source} (pandas writes them): write the "
                             "times in microseconds (pandas: to_parquet(..., coerce_timestamps='us')), as Spark writes "
                             "them.") from None
        raise

    def score_partition(batches):
        import pandas as pd

        parts = list(batches)
        if parts:
            yield score_frame(pd.concat(parts, ignore_index=True), shipped.value, columns, width, source)

    scored = frame.repartition(max(2 * engine.workers, 2), columns[0]).mapInPandas(score_partition, schema)
    scored.write.mode("overwrite").parquet(output)
    return int(spark.read.parquet(output).select("unique_id").distinct().count())

