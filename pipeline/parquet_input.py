"""A collection in Parquet: one file, or a folder of files (partitioned or not),
in the long format of a collection CSV (one row per series, time and value).

Only the three columns are read, with pyarrow, column by column into arrays: no
Python object per row. The series ids are dictionary-encoded by Arrow (one Python
string per series); times are Parquet timestamps or dates, numbers, or text in ISO
8601 (anything else is refused: Parquet knows its types, so nothing is guessed);
values are numbers, nulls are missing values (`fill_missing`). The refusals are
the CSV reader's (pipeline.collection), with rows numbered from 1 in the order
pyarrow reads them (a folder's files in sorted order).
"""

from pathlib import Path

import numpy as np

from pipeline.errors import ParamError


def read_columns(path, id_column, time_column, column, time_format="auto"):
    """pipeline.csv_input.Columns of the Parquet file or folder at `path`."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    path = Path(path)
    if time_format not in ("auto", "iso"):
        raise ParamError(f"Received `time_format`={time_format!r} for the Parquet collection {path}: Parquet times are "
                         "typed (timestamps, dates, numbers or ISO 8601 text); drop time_format.")
    try:
        # Text ids are read as Parquet stores them, dictionary-encoded: one string per series, not per row.
        parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=[id_column]))
        dataset = ds.dataset(path, format=parquet, partitioning="hive", exclude_invalid_files=False)
        names = dataset.schema.names
    except (pa.ArrowInvalid, OSError) as error:
        raise ParamError(f"File {path} is not readable Parquet ({str(error).splitlines()[0]}).") from None
    for parameter, name in (("id_column", id_column), ("time_column", time_column), ("column", column)):
        if name not in names:
            raise ParamError(f"Received an invalid value for parameter `{parameter}`, expected one of the columns of "
                             f"{path} ({', '.join(names)}), got {name!r}.")
    return table_columns(dataset.to_table(columns=[id_column, time_column, column]), path, id_column, time_column,
                         column)


def table_columns(table, path, id_column, time_column, column):
    """pipeline.csv_input.Columns of an Arrow table holding the three columns (`path`
    names it in messages). Each column is released once it is an array: pass the table
    itself (not a name still bound to it) and it is read with one copy of a column at a
    time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.csv_input import Columns

    if table.num_rows == 0:
        raise ParamError(f"Parquet collection {path} has no rows: expected one row per (series, time).")
    ids, times, values = (table.column(name) for name in (id_column, time_column, column))
    del table

    if ids.null_count:
        row = _first(pc.is_null(ids))
        raise ParamError(f"Column {id_column!r} of {path} is empty at row {row}: every row needs its series id.")
    codes, unique_ids = _codes(ids)
    del ids

    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_decimal(values.type)):
        raise ParamError(f"Column {column!r} of {path} holds {values.type}, not numbers: store the values as a "
                         "numeric Parquet column.")
    values = pc.cast(values, pa.float64()).to_numpy()  # nulls become NaN

    if times.null_count:
        raise ParamError(f"Column {time_column!r} of {path} is empty at row {_first(pc.is_null(times))}: every row "
                         "needs its time.")
    return Columns(codes, unique_ids, _times(times, path, time_column), values, [], "row", 1)


def _codes(ids):
    """(codes, unique ids) of an Arrow id column: ids as text, trimmed, numbered in the
    order they first appear (as the CSV reader orders series). Only the dictionary (one
    entry per series) is handled as strings; the rows are int32 codes."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(ids, pa.ChunkedArray):
        ids = ids.unify_dictionaries() if pa.types.is_dictionary(ids.type) else ids.combine_chunks()
    if not pa.types.is_dictionary(ids.type):
        ids = pa.chunked_array([pc.dictionary_encode(ids)])
    dictionary = ids.chunk(0).dictionary if ids.num_chunks else pa.array([], pa.string())
    indices = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in ids.chunks]).astype(
        np.int32, copy=False)
    del ids
    text = pc.utf8_trim_whitespace(dictionary if pa.types.is_string(dictionary.type)
                                   else pc.cast(dictionary, pa.string()))
    # " a" and "a" are one series; a dictionary may hold entries no row uses, or any order.
    merged, names = pd.factorize(np.asarray(text.to_pylist(), dtype=object), sort=False)
    codes = merged.astype(np.int32)[indices]
    del indices
    runs = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])  # where each run of one series starts
    used, first = np.unique(codes[runs], return_index=True)
    order = used[np.argsort(runs[first], kind="stable")]  # codes in the order they first appear
    renumber = np.zeros(len(names), dtype=np.int32)
    renumber[order] = np.arange(len(order), dtype=np.int32)
    return renumber[codes], np.asarray(names, dtype=object)[order]


def _times(times, path, time_column):
    """float64 numbers or datetime64[ns], from a typed Parquet column."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = times.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pc.cast(times, pa.float64()).to_numpy()
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            raise ParamError(f"Column {time_column!r} of {path} holds times in the time zone {kind.tz}: store them "
                             "without a time zone (the collection's step is counted in local time).")
        return pc.cast(times, pa.timestamp("ns")).to_numpy()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = times.to_pandas().str.strip()
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise ParamError(f"Column {time_column!r} of {path} holds text that is not an ISO 8601 date at row "
                             f"{row + 1} ({text.iloc[row]!r}): store times as Parquet timestamps, dates or numbers.")
        return parsed.to_numpy(dtype="datetime64[ns]")
    raise ParamError(f"Column {time_column!r} of {path} holds {kind}: expected timestamps, dates, numbers or ISO 8601 "
                     "text.")


def _first(mask):
    """The 1-based row of the first true value of a boolean Arrow array."""
    import pyarrow.compute as pc

    return int(pc.index(mask, True).as_py()) + 1
