"""A collection in Parquet: one file, or a folder of files (partitioned or not),
in the long format of a collection CSV (one row per series, time and value).

Only the three columns are read, with pyarrow, column by column into arrays: no
Python object per row. The series ids are dictionary-encoded by Arrow (one Python
string per series); times are Parquet timestamps or dates, numbers, or text in ISO
8601 (anything else is refused: Parquet knows its types, so nothing is guessed);
values are numbers, nulls are missing values (`fill_missing`). The refusals are
the CSV reader's (pipeline.collection), with rows numbered from 1 in the order
pyarrow reads them (a folder's files in sorted order).

A collection of more than `BLOCK_ROWS` rows is read in blocks of whole series
(`blocks`): a first pass over the id and time columns alone numbers the series
and checks every row's id and time; then each block's rows are read with a filter
on its ids and assembled on their own (pipeline.collection.read_collection), so
that memory holds the collection's matrix of values and one block, never the
whole long table. A message about a block's rows names the series, not the row.
"""

from pathlib import Path

import numpy as np

from pipeline.errors import ParamError


# Rows read at once: about 1 GB at most while a block is assembled (pipeline.collection); 100 000 series of
# 300 points read in blocks of 5 million rows in 1.25x the time of one read, at half its peak memory.
BLOCK_ROWS = 5_000_000


def open_dataset(path, id_column, time_column, column, time_format="auto"):
    """The pyarrow dataset of the Parquet file or folder at `path`, its three columns checked."""
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
    return dataset


def read_columns(path, id_column, time_column, column, time_format="auto"):
    """pipeline.csv_input.Columns of the Parquet file or folder at `path`."""
    dataset = open_dataset(path, id_column, time_column, column, time_format)
    return table_columns(dataset.to_table(columns=[id_column, time_column, column]), Path(path), id_column, time_column,
                         column)


def blocks(path, id_column, time_column, column, time_format="auto", block_rows=BLOCK_ROWS):
    """None when the collection at `path` has at most `block_rows` rows (read it with
    read_columns); else (the series ids in the order they first appear, and an
    iterator of Columns, one per block of whole series of at most `block_rows` rows
    where a series is not longer on its own)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    dataset = open_dataset(path, id_column, time_column, column, time_format)
    if dataset.count_rows() <= block_rows:
        return None
    seen, raw, first, counts, rows = {}, [], np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    for batch in dataset.to_batches(columns=[id_column, time_column]):
        ids, times = batch.column(0), batch.column(1)
        for name, values, what in ((id_column, ids, "its series id"), (time_column, times, "its time")):
            if values.null_count:
                raise ParamError(f"Column {name!r} of {path} is empty at row {rows + _first(pc.is_null(values))}: "
                                 f"every row needs {what}.")
        ids = ids if pa.types.is_dictionary(ids.type) else pc.dictionary_encode(ids)
        entries = ids.dictionary.to_pylist()
        for entry in entries:
            if entry not in seen:
                seen[entry] = len(raw)
                raw.append(entry)
        codes = np.array([seen[entry] for entry in entries], dtype=np.int64)[ids.indices.to_numpy(
            zero_copy_only=False)]
        first = np.r_[first, np.full(len(raw) - len(first), np.iinfo(np.int64).max)]
        counts = np.r_[counts, np.zeros(len(raw) - len(counts), np.int64)] + np.bincount(codes, minlength=len(raw))
        runs = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        used, at = np.unique(codes[runs], return_index=True)
        first[used] = np.minimum(first[used], rows + runs[at])
        rows += len(codes)
    # Ids as text, trimmed, as read_columns makes them: " a" and "a" are one series.
    id_type = dataset.schema.field(id_column).type
    id_type = id_type.value_type if pa.types.is_dictionary(id_type) else id_type
    text = id_text(pa.array(raw, id_type)).to_pylist()
    series, names = pd.factorize(np.asarray(text, dtype=object), sort=False)
    starts = np.full(len(names), np.iinfo(np.int64).max)
    np.minimum.at(starts, series, first)
    order = np.argsort(starts, kind="stable")  # series in the order they first appear
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    rows_of = np.bincount(position[series], weights=counts, minlength=len(order))
    raw_of = [[] for _ in order]
    for code, entry in enumerate(raw):
        raw_of[position[series[code]]].append(entry)
    cuts, total = [0], 0
    for i, size in enumerate(rows_of):
        if total and total + size > block_rows:
            cuts.append(i)
            total = 0
        total += size
    cuts.append(len(order))

    def read():
        for start, end in zip(cuts[:-1], cuts[1:]):
            wanted = pa.array([entry for members in raw_of[start:end] for entry in members], id_type)
            table = dataset.to_table(columns=[id_column, time_column, column],
                                     filter=pc.field(id_column).isin(wanted))
            yield table_columns(table, path, id_column, time_column, column, numbered=False)
            pa.default_memory_pool().release_unused()  # the block's columns, back to the system

    return np.asarray(names, dtype=object)[order], read()


def table_columns(table, path, id_column, time_column, column, numbered=True):
    """pipeline.csv_input.Columns of an Arrow table holding the three columns (`path`
    names it in messages). Each column is released once it is an array: pass the table
    itself (not a name still bound to it) and it is read with one copy of a column at a
    time. With `numbered=False` (a block of series, whose rows are not the file's)
    messages name the series instead of the row."""
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
    where = (lambda row: f"at row {row + 1}") if numbered else (lambda row: f"in series {unique_ids[codes[row]]!r}")
    return Columns(codes, unique_ids, _times(times, path, time_column, where), values, [], "row", 1 if numbered else None)


def id_text(ids):
    """An Arrow array of series ids (any type) as the reader names the series: as text,
    trimmed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.utf8_trim_whitespace(ids if pa.types.is_string(ids.type) else pc.cast(ids, pa.string()))


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
    text = id_text(dictionary)
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


def _times(times, path, time_column, where):
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
            raise ParamError(f"Column {time_column!r} of {path} holds text that is not an ISO 8601 date {where(row)} "
                             f"({text.iloc[row]!r}): store times as Parquet timestamps, dates or numbers.")
        return parsed.to_numpy(dtype="datetime64[ns]")
    raise ParamError(f"Column {time_column!r} of {path} holds {kind}: expected timestamps, dates, numbers or ISO 8601 "
                     "text.")


def _first(mask):
    """The 1-based row of the first true value of a boolean Arrow array."""
    import pyarrow.compute as pc

    return int(pc.index(mask, True).as_py()) + 1
