"""Many series in one long table: reading it, the competition's holdout split,
and the windows a global model learns from, drawn lazily.

A collection CSV has one row per (series id, time, value): the long format of
statsforecast and neuralforecast (`unique_id`, `ds`, `y` by default). Ids may be
any text; series may have different lengths and start dates, but one time step
(one month, one day, 1 for numbered steps) that every series follows.

In memory a collection is one float32 matrix, one row per series, each series
right-aligned (its last value in the last column) and padded on the left with
its first value, plus each series' length. Every series then ends at the same
column, which is where the holdout protocol cuts:

    ... train ... | validation: `horizon` points | test: `horizon` points

The test targets are each series' last `horizon` points, forecast from one
origin at the end of the rest; the `horizon` points before them are the
validation targets that choose the epoch and calibrate the intervals; training
windows see only what precedes (the M3/M4 protocol of N-BEATS).

A window is (series, end): the `input_width` values before column `end` and
the `horizon` values from it. Windows are indices; `gather` builds a batch of
them from the matrix, so a collection of 100 000 series of 300 points is the
120 MB matrix, not a tensor of every window. A window that reaches back before
its series' first value reads the left padding, its first value repeated; a
model with short_history=mask (the default) is handed NaN there instead and
masks those steps (pipeline.global_model.gather_windows): a short series is
forecast from what it has.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import csv_input
from pipeline.errors import ParamError

ID, TIME, VALUE = "unique_id", "ds", "y"
_FILLED = "missing values filled by linear interpolation"  # a note: "<count> " before it
ROWS_AT_ONCE = 8192  # series per slice where a whole-matrix statistic would copy the matrix


@dataclass
class Collection:
    """Series right-aligned in `values` (n_series, width), with their `lengths`,
    `ids` (text), `last_times` (each series' last time) and the common `step`."""

    ids: list
    values: np.ndarray
    lengths: np.ndarray
    last_times: np.ndarray
    step: object = 1
    notes: list = field(default_factory=list)

    def __len__(self):
        return len(self.ids)

    @property
    def width(self):
        return self.values.shape[1]

    def series(self, i):
        """The values of series i, without its padding."""
        return self.values[i, self.width - self.lengths[i]:]

    def tail_times(self, k):
        """(n_series, k): the times of each series' last k points."""
        if self.last_times.dtype.kind == "M":
            import pandas as pd

            return np.stack([pd.date_range(end=t, periods=k, freq=self.step).to_numpy(dtype="datetime64[ns]")
                             for t in self.last_times])
        return self.last_times[:, None] - self.step * np.arange(k - 1, -1, -1)


def from_arrays(ids, arrays, last_times=None, step=1, notes=()):
    """A Collection from one 1-d array per series (times: numbered steps ending at
    `last_times`, by default each series' length − 1)."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    if not len(lengths):
        raise ParamError("The collection has no series.")
    values = np.empty((len(arrays), int(lengths.max())), dtype=np.float32)
    for row, series in enumerate(arrays):
        series = np.asarray(series, dtype=np.float32)
        values[row, values.shape[1] - len(series):] = series
        values[row, :values.shape[1] - len(series)] = series[0] if len(series) else np.nan
    if last_times is None:
        last_times = lengths - 1
    return Collection([str(i) for i in ids], values, lengths, np.asarray(last_times), step, list(notes))


# A collection as generate_data logs it under data/ (pipeline.data.save_dataset): these arrays, and in
# the manifest its ids, step, notes and folds.
ARRAYS = ("values", "lengths", "last_times")


def to_dataset(collection):
    """(arrays, manifest entries): what `from_dataset` reads back."""
    return ({"values": collection.values, "lengths": collection.lengths, "last_times": collection.last_times},
            {"ids": list(collection.ids), "time_step": str(collection.step), "notes": list(collection.notes),
             "n_series": len(collection)})


def from_dataset(dataset, manifest):
    """The Collection a generate_data run logged, and its Folds."""
    step = manifest["time_step"]  # a pandas frequency ('MS') or a number, as text
    try:
        step = float(step)
        step = int(step) if step.is_integer() else step
    except ValueError:
        pass
    collection = Collection(list(manifest["ids"]), dataset["values"], dataset["lengths"], dataset["last_times"],
                            step, list(manifest.get("notes", [])))
    return collection, Folds(**manifest["folds"])


def sha256(collection, folds=None):
    """The data's identity for the champion rule: its values and, for a run, its
    validation cut-offs (a validation loss compares only on the same ones)."""
    from pipeline.data import sha256_of

    digest = sha256_of(collection.values)
    return digest if folds is None else sha256_of(np.frombuffer(f"{digest} {folds!r}".encode(), np.uint8))


def is_parquet(path):
    """Whether `path` is a Parquet file or a folder holding Parquet files (partitioned or not)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".pq")
    return path.is_dir() and any(path.rglob("*.parquet"))


def is_collection(path, id_column=ID, separator="auto"):
    """Whether the CSV at `path` has the column `id_column` in its header, or `path`
    is Parquet (always long format: pipeline.parquet_input)."""
    path = Path(path)
    if is_parquet(path):
        return True
    if not path.is_file():
        return False
    separator = csv_input.sniff_separator(path) if separator == "auto" else ("\t" if separator == "tab" else separator)
    header = csv_input._lines(path, 1)
    return bool(header) and id_column in [name.strip().strip('"') for name in header[0].rstrip("\r\n").split(separator)]


def read_collection(path, id_column=ID, time_column=TIME, column=VALUE, fill_missing="error", time_format="auto",
                    separator="auto", decimal=".", thousands="none", block_rows=None):
    """Reads a long-format CSV, or a Parquet file or folder (pipeline.parquet_input:
    the three columns only, with the same refusals; in blocks of whole series when it
    has more than `block_rows` rows, by default parquet_input.BLOCK_ROWS), into a
    Collection; every problem is one ParamError naming the file, the column and the
    first offending line (row)."""
    if is_parquet(path):
        from pipeline import parquet_input

        blocks = parquet_input.blocks(path, id_column, time_column, column, time_format,
                                      block_rows or parquet_input.BLOCK_ROWS)
        if blocks is not None:
            ids, parts = blocks
            return _combine(path, ids, (assemble(path, part, time_column, column, fill_missing) for part in parts),
                            time_column)
        columns = parquet_input.read_columns(path, id_column, time_column, column, time_format)
    else:
        columns = _csv_columns(path, id_column, time_column, column, time_format, separator, decimal, thousands)
    return assemble(path, columns, time_column, column, fill_missing)


def _combine(path, ids, parts, time_column):
    """One Collection of the Collections `parts` (blocks of whole series, pipeline.
    parquet_input.blocks), its rows in the order of `ids`: each block is copied into the
    matrix as it is read. The blocks must agree on the step, and on the grid it draws
    from the collection's first time, as the series of one read must."""
    row_of = {name: row for row, name in enumerate(ids)}
    values, lengths, last_times = None, np.zeros(len(ids), np.int64), [None] * len(ids)
    step, named, reference, filled, notes = None, None, None, 0, []
    for part in parts:
        rows = np.array([row_of[name] for name in part.ids])
        if part.lengths.max() > 1:  # a block of one-point series has no step of its own
            if step is None:
                step, named = part.step, part.ids[int(np.argmax(part.lengths))]
            elif part.step != step:
                unit = csv_input._step_name if isinstance(step, str) else "{:g}".format
                raise ParamError(
                    f"Column {time_column!r} of {path}: series {part.ids[int(np.argmax(part.lengths))]!r} steps by "
                    f"{unit(part.step)}, series {named!r} by {unit(step)}: a collection needs one step that every "
                    "series follows; forecast them as separate collections.")
            start = _first_time(part)
            if reference is None:
                reference = start
            else:
                _check_on_grid(path, time_column, reference, start, step)
        if values is None or part.width > values.shape[1]:
            wider = np.empty((len(ids), part.width if values is None else max(part.width, values.shape[1])), np.float32)
            if values is not None:
                wider[:, wider.shape[1] - values.shape[1]:] = values
                wider[:, :wider.shape[1] - values.shape[1]] = values[:, :1]
            values = wider
        width = values.shape[1]
        values[rows, width - part.width:] = part.values
        values[rows, :width - part.width] = part.values[:, :1]
        lengths[rows] = part.lengths
        for row, last in zip(rows, part.last_times):
            last_times[row] = last
        for note in part.notes:
            filled += int(note.split()[0]) if note.endswith(_FILLED) else 0
            notes += [] if note.endswith(_FILLED) or note in notes else [note]
    last_times = np.asarray(last_times)
    if last_times.dtype.kind != "M":
        last_times = last_times.astype(np.float64)
        if isinstance(step, int) and np.all(last_times == np.round(last_times)):
            last_times = last_times.astype(np.int64)
    return Collection([str(i) for i in ids], values, lengths, last_times, 1 if step is None else step,
                      notes + ([f"{filled} {_FILLED}"] if filled else []))


def _csv_columns(path, id_column, time_column, column, time_format, separator, decimal, thousands):
    import pandas as pd

    frame, _, notes = csv_input.read_frame(path, separator, "one row per (series, time)")
    names = ", ".join(frame.columns)
    for parameter, name in (("id_column", id_column), ("time_column", time_column), ("column", column)):
        if name not in frame.columns:
            raise ParamError(f"Received an invalid value for parameter `{parameter}`, expected one of the columns of "
                             f"{path} ({names}), got {name!r}.")
    if frame[id_column].isna().any():
        line = int(np.flatnonzero(frame[id_column].isna().to_numpy())[0]) + 2
        raise ParamError(f"Column {id_column!r} of {path} is empty at line {line}: every row needs its series id.")

    values = csv_input._parse_numbers(frame[column], decimal, csv_input.THOUSANDS[thousands])
    unread = ~np.isfinite(values) & frame[column].notna().to_numpy()
    if unread.any():
        line = int(np.flatnonzero(unread)[0])
        raise ParamError(f"Column {column!r} of {path} has {int(unread.sum())} values that are not numbers with decimal "
                         f"{decimal!r} and thousands separator {thousands!r}, first at line {line + 2} "
                         f"({frame[column].iloc[line]!r}).")
    raw_times = frame[time_column]
    if raw_times.isna().any():
        line = int(np.flatnonzero(raw_times.isna().to_numpy())[0]) + 2
        raise ParamError(f"Column {time_column!r} of {path} is empty at line {line}: every row needs its time.")
    times = csv_input._parse_numbers(raw_times, ".", None)
    if not (time_format == "auto" and np.isfinite(times).all()):
        times, note = csv_input.read_times(raw_times, path, time_column, time_format)
        if note:
            notes.append(note)
    ids = frame[id_column].astype(str).str.strip().to_numpy()
    codes, unique_ids = pd.factorize(ids, sort=False)
    return csv_input.Columns(codes, np.asarray(unique_ids), times, values, notes)


def _first_time(part):
    """The earliest first time of the series of the Collection `part`."""
    if part.last_times.dtype.kind != "M":
        return float(np.min(part.last_times - part.step * (part.lengths - 1)))
    import pandas as pd

    step = pd.tseries.frequencies.to_offset(part.step)
    return min(pd.Timestamp(part.last_times[part.lengths == n].min()) - (int(n) - 1) * step
               for n in np.unique(part.lengths))


def _check_on_grid(path, time_column, reference, start, step):
    """Refuses a block of series whose first time is off the grid that `step` draws from
    the first block's first time `reference` (within a block, assemble checks)."""
    if isinstance(reference, float):
        steps = (start - reference) / step
        if abs(steps - round(steps)) > 1e-6 + 1e-5 * abs(round(steps)):
            raise ParamError(f"Column {time_column!r} of {path}: {start:g} is not a whole number of steps ({step:g}, "
                             "the smallest step within a series) from the first time.")
        return
    import pandas as pd

    early, late = sorted((reference, start))
    grid = pd.date_range(early, late, freq=step)
    if not len(grid) or grid[0] != early or grid[-1] != late:
        raise ParamError(f"Column {time_column!r} of {path}: {csv_input.format_time(start.to_datetime64())} is not on "
                         f"the collection's step ({csv_input._step_name(step)}, inferred from the longest series).")


def assemble(path, columns, time_column, column, fill_missing):
    """The Collection of a long table's columns: series sorted by time, one step
    that every series follows, gaps refused or filled. `columns` is consumed: its
    arrays are released as they are sorted, so that a collection of millions of rows
    holds few copies of them at once."""
    unique_ids, notes, row_name, first_row = columns.unique_ids, list(columns.notes), columns.row_name, \
        columns.first_row
    codes, times, values = columns.codes, columns.times, columns.values
    columns.codes = columns.times = columns.values = None
    floats = times.dtype == np.float64  # float times are their own numbers: one sorted copy serves as both
    numbers = times if floats else csv_input.as_numbers(times)
    order = _time_order(codes, numbers)
    if order is not None:  # sorted one array at a time
        codes = codes[order]
        values = values[order]
        numbers = numbers[order]
        times = numbers if floats else times[order]
    same_series = codes[1:] == codes[:-1]
    repeated = np.flatnonzero(same_series & (numbers[1:] == numbers[:-1]))
    if len(repeated):
        at = repeated[0]
        lines = "" if first_row is None else " ({}s {} and {})".format(
            row_name, *sorted(((np.array([at, at + 1]) if order is None else order[[at, at + 1]]) + first_row).tolist()))
        raise ParamError(f"{path}: series {unique_ids[codes[at]]!r} has the time {csv_input.format_time(times[at])} "
                         f"twice{lines}; each (series, time) pair must appear once.")
    del order, repeated

    step, positions = _grid_positions(times, numbers, codes, same_series, path, time_column)
    del numbers
    starts = np.flatnonzero(np.r_[True, ~same_series])
    ends = np.r_[starts[1:], len(codes)]
    _check_one_step(positions, codes, same_series, starts, ends, unique_ids, step, path, time_column)
    del same_series
    spans = positions[ends - 1] - positions[starts] + 1
    width = int(spans.max())
    # Right-aligned in one float32 matrix, written series by series (no list of arrays beside it).
    matrix = np.empty((len(starts), width), dtype=np.float32)
    filled = 0
    for row, (start, end, span) in enumerate(zip(starts, ends, spans)):
        series = np.full(int(span), np.nan)
        series[positions[start:end] - positions[start]] = values[start:end]
        missing = np.isnan(series)
        if missing.any():
            name = unique_ids[codes[start]]
            if fill_missing == "error":
                absent = int(missing.sum() - np.isnan(values[start:end]).sum())
                raise ParamError(
                    f"{path}: series {name!r} has {int(missing.sum())} missing values ({absent} absent time steps, "
                    f"the rest empty cells of {column!r}): add them, or pass -P fill_missing=interpolate to fill "
                    "them linearly in time.")
            known = ~missing
            if not known.any():
                raise ParamError(f"{path}: series {name!r} has no numeric values in {column!r}.")
            series[missing] = np.interp(np.flatnonzero(missing), np.flatnonzero(known), series[known])
            filled += int(missing.sum())
        matrix[row, width - len(series):] = series
        matrix[row, :width - len(series)] = series[0]
    if filled:
        notes.append(f"{filled} {_FILLED}")
    last_times = times[ends - 1]
    if last_times.dtype.kind == "f" and isinstance(step, int) and np.all(last_times == np.round(last_times)):
        last_times = last_times.astype(np.int64)  # whole-numbered times stay integers in every output
    return Collection([str(i) for i in unique_ids[codes[starts]]], matrix, spans.astype(np.int64), last_times, step,
                      notes)


def _time_order(codes, numbers):
    """The order that sorts rows by series, then time; None when they already are
    (as a file written series by series is), which spares a collection of millions
    of rows its sort and its sorted copies."""
    later = codes[1:] >= codes[:-1]
    if later.all():
        same = codes[1:] == codes[:-1]
        if (np.diff(numbers)[same] > 0).all():
            return None
    return np.lexsort((numbers, codes))


def _check_one_step(positions, codes, same_series, starts, ends, unique_ids, step, path, time_column):
    """Refuses a collection whose series follow different steps (monthly and quarterly
    mixed): a series none of whose consecutive times are one step apart steps by more."""
    none = np.iinfo(np.int64).max  # no gap: where one series ends and the next begins
    gaps = np.r_[np.diff(positions), none]
    gaps[:-1][~same_series] = none
    if not (gaps == 1).any():
        return
    one_step = int(np.argmax(gaps == 1))
    smallest = np.minimum.reduceat(gaps, starts)  # each series' smallest step (`none` for one point)
    wider = np.flatnonzero((smallest > 1) & (smallest < none))
    if len(wider):
        unit = csv_input._step_name(step) if isinstance(step, str) else f"{step:g}"
        raise ParamError(
            f"Column {time_column!r} of {path}: series {unique_ids[codes[starts[wider[0]]]]!r} steps by "
            f"{int(smallest[wider[0]])} × {unit}, series {unique_ids[codes[one_step]]!r} by {unit}: a collection "
            "needs one step that every series follows; forecast them as separate collections.")


def _grid_positions(times, numbers, codes, same_series, path, time_column):
    """(step, each row's position on the collection's common time grid)."""
    import pandas as pd

    if times.dtype.kind == "M":
        longest = np.argmax(np.bincount(codes))
        mine = codes == longest
        step, _, _ = csv_input.regular_steps(times[mine])
        if step is None:
            raise ParamError(f"Column {time_column!r} of {path}: the times of the longest series follow no regular "
                             "step (daily, monthly, ...): a collection needs one step that every series follows.")
        grid = pd.date_range(times.min(), times.max(), freq=step)
        positions = grid.get_indexer(pd.DatetimeIndex(times))
        off = np.flatnonzero(positions < 0)
        if len(off):
            raise ParamError(f"Column {time_column!r} of {path}: {csv_input.format_time(times[off[0]])} is not on the "
                             f"collection's step ({csv_input._step_name(step)}, inferred from the longest series).")
        return step, positions.astype(np.int64)
    steps = np.diff(numbers)
    steps[~same_series] = np.inf
    step = float(np.min(steps)) if same_series.any() else 1.0
    del steps
    step = int(step) if step.is_integer() else step
    positions = numbers - numbers.min()
    positions /= step
    whole = np.round(positions)
    # np.isclose(positions, whole, atol=1e-6), in place: |positions − whole| ≤ 1e-6 + 1e-5·|whole|
    positions -= whole
    np.abs(positions, out=positions)
    positions -= 1e-5 * np.abs(whole)
    off = np.flatnonzero(positions > 1e-6)[:1]
    if len(off):
        raise ParamError(f"Column {time_column!r} of {path}: {numbers[off[0]]:g} is not a whole number of steps "
                         f"({step:g}, the smallest step within a series) from the first time.")
    del positions
    return step, whole.astype(np.int64)


# The holdout protocol --------------------------------------------------------

@dataclass(frozen=True)
class Folds:
    """Where a collection is cut: every index of the protocol, in one place.

    Columns count in the right-aligned matrix, so "the last h points" is the same
    columns for every series. A cut-off is the column of the first target it
    forecasts; everything a forecast from it reads lies before it.

    - test: one cut-off, at `width − horizon` (each series' last `horizon` points,
      the competition protocol of M3 and M4);
    - validation: `n_windows` cut-offs before it, `step_size` apart, the latest at
      `width − 2·horizon` (statsforecast's `cross_validation(h, n_windows,
      step_size)` ending where the test begins);
    - each model's training windows end their targets before the first cut-off
      it is judged on (`holdout`): the selection model before the earliest
      validation cut-off, the test model before the test cut-off, the served
      model nowhere (it trains on every point).
    """

    horizon: int
    n_windows: int = 1
    step_size: int = 0  # 0: horizon

    @property
    def step(self):
        return self.step_size or self.horizon

    def validation_offsets(self):
        """The validation cut-offs, as points from the end of the matrix, latest first."""
        return [2 * self.horizon + k * self.step for k in range(self.n_windows)]

    def holdout(self, model):
        """Points at the end of the matrix that `model`'s training targets never reach:
        `select` (chooses the epoch), `test` (forecasts the test cut-off), `full` (served)."""
        return {"select": self.validation_offsets()[-1], "test": self.horizon, "full": 0}[model]

    def shortest_validated(self, k=0):
        """The fewest points a series needs for a target at validation cut-off k and one input before it."""
        return self.validation_offsets()[k] + 1

    def __repr__(self):
        offsets = self.validation_offsets()
        where = f"{offsets[0]}" if len(offsets) == 1 else f"{offsets[0]} to {offsets[-1]}"
        apart = "" if len(offsets) == 1 else f", {self.step} apart"
        return (f"Folds(horizon={self.horizon}, n_windows={self.n_windows}, step_size={self.step}: validation "
                f"cut-offs at {where} points from the end{apart}; the test cut-off at {self.horizon})")


def check_lengths(collection, horizon, min_train=0, min_length=0):
    """The series too short to be tested: each needs its `horizon` test targets and
    at least `min_train` + 1 points before them. Refuses naming the first, or with
    `min_length` > 0 drops those shorter than it and says how many. A series too
    short for validation or a training window is kept: it is forecast from what it
    has (and counted by `no_training_window`). Returns (collection, note or None)."""
    needed = horizon + min_train + 1
    if min_length:
        keep = collection.lengths >= max(min_length, needed)
        if not keep.all():
            dropped = int((~keep).sum())
            kept = subset(collection, np.flatnonzero(keep))
            if not len(kept):
                raise ParamError(f"Every series is shorter than {max(min_length, needed)} points: none is left.")
            return kept, f"{dropped} series shorter than {max(min_length, needed)} points skipped (min_length)"
        return collection, None
    short = np.flatnonzero(collection.lengths < needed)
    if len(short):
        first = short[0]
        raise ParamError(
            f"Series {collection.ids[first]!r} has {collection.lengths[first]} points; with horizon {horizon} a test "
            f"needs at least {needed} ({horizon} test targets, {min_train + 1} before them). {len(short)} series are "
            f"that short: pass -P min_length={needed} to skip them, or a shorter horizon.")
    return collection, None


def no_training_window(collection, input_width, horizon, holdout, min_inputs=1):
    """Which series have no training window for a model holding out `holdout` points."""
    return _window_range(collection, input_width, horizon, holdout, min_inputs)[1] == 0


def subset(collection, rows):
    rows = np.asarray(rows)
    return Collection([collection.ids[i] for i in rows], collection.values[rows], collection.lengths[rows],
                      collection.last_times[rows], collection.step, list(collection.notes))


def series_scales(collection, holdout=0):
    """Per series, the scale below which no window of it is measured: the mean
    absolute step of its real points before the last `holdout` (MASE's scale),
    or for a flat series its mean |value|. A series of zeros, or one with too few
    points, takes the smallest positive scale of the others (1 if none has one),
    so that a window of zeros weighs like any other in a global model's loss."""
    columns = np.arange(collection.width)
    steps, levels = np.empty(len(collection), np.float32), np.empty(len(collection), np.float32)
    for start in range(0, len(collection), ROWS_AT_ONCE):  # a few copies of a slice, not of the matrix
        rows = slice(start, start + ROWS_AT_ONCE)
        seen = (columns >= collection.width - collection.lengths[rows, None]) & (columns < collection.width - holdout)
        values = np.where(seen, collection.values[rows], np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows with no or one point seen: NaN, filled below
            steps[rows] = np.nanmean(np.abs(np.diff(values, axis=1)), axis=1)
            levels[rows] = np.nanmean(np.abs(values), axis=1)
    scales = np.where(np.nan_to_num(steps) > 0, steps, levels)
    scales = np.where(np.isfinite(scales) & (scales > 0), scales, np.nan)
    fill = np.nanmin(scales) if np.isfinite(scales).any() else 1.0
    return np.where(np.isnan(scales), fill, scales).astype(np.float32)


def training_windows(collection, input_width, horizon, holdout=None, min_inputs=1):
    """Every training window as (series row, end column): its targets
    [end, end + horizon) lie before the last `holdout` points (by default
    2 · horizon, `Folds(horizon).holdout("select")`), its inputs
    [end − input_width, end) hold at least `min_inputs` real values."""
    first_end, counts = _window_range(collection, input_width, horizon, holdout, min_inputs)
    # In int32 throughout: a collection has about as many windows as points, and no int64 copy of them.
    rows = np.repeat(np.arange(len(collection), dtype=np.int32), counts)
    ends = np.repeat((first_end - (np.cumsum(counts) - counts)).astype(np.int32), counts)
    ends += np.arange(len(ends), dtype=np.int32)  # the window's place in the list, less its series' first place
    return rows, ends


def count_training_windows(collection, input_width, horizon, holdout=None, min_inputs=1):
    """How many windows `training_windows` gives, without listing them."""
    return int(_window_range(collection, input_width, horizon, holdout, min_inputs)[1].sum())


def _window_range(collection, input_width, horizon, holdout, min_inputs):
    """Per series: the first window's end, and how many windows there are."""
    holdout = 2 * horizon if holdout is None else holdout
    last_end = collection.width - holdout - horizon  # the last end whose targets precede the holdout
    # A window may start before column 0: `gather` reads column 0 there, which is the longest series' first
    # value, as the padding of any other series is its own first value.
    first_end = collection.width - collection.lengths + min_inputs
    return first_end, np.maximum(last_end - first_end + 1, 0)


def validation_windows(collection, folds, min_inputs=1):
    """(rows, ends) of every validation window: each series at each validation
    cut-off where it has its targets and at least `min_inputs` values before them."""
    rows, ends = [], []
    for offset in folds.validation_offsets():
        keep = np.flatnonzero(collection.lengths >= offset + min_inputs)
        rows.append(keep)
        ends.append(np.full(len(keep), collection.width - offset))
    return np.concatenate(rows).astype(np.int32), np.concatenate(ends).astype(np.int32)


def sample_windows(rows, ends, per_series, seed, epoch):
    """The windows of one epoch, in the order it visits them: all of them
    (`per_series` 0), or `per_series` drawn with replacement from each series'
    windows, so every series weighs the same whatever its length."""
    rng = np.random.default_rng([seed, epoch])
    if per_series:
        # `training_windows` lists each series' windows together, in order of rows.
        counts = np.bincount(rows)
        first = (np.cumsum(counts) - counts)[counts > 0]
        counts = counts[counts > 0]
        picks = first[:, None] + (rng.random((len(counts), per_series)) * counts[:, None]).astype(np.int64)
        index = picks.ravel()
        index = index[rng.permutation(len(index))]
    else:  # rng.permutation(len(rows)), drawn in place in int32: the same order, a third of the memory
        index = np.arange(len(rows), dtype=np.int32)
        rng.shuffle(index)
    return rows[index], ends[index]


def origin(collection, horizon, split):
    """The end column (first target) of each series' one window for `split`:
    `val` the latest validation cut-off, `test` the test targets, `future` past the end."""
    shift = {"val": 2 * horizon, "test": horizon, "future": 0}[split]
    return collection.width - shift


def gather(values, rows, ends, input_width, horizon):
    """Windows (n, input_width, 1) and their targets (n, horizon) from the matrix
    (numpy); a column before the first reads the first (the padding rule), targets
    past the last column are NaN."""
    columns = ends[:, None] + np.arange(-input_width, horizon)
    taken = values[rows[:, None], np.clip(columns, 0, values.shape[1] - 1)]
    taken = np.where(columns >= values.shape[1], np.nan, taken)
    return taken[:, :input_width, None], taken[:, input_width:]


def default_input_width(horizon, season):
    """Inputs of two horizons or two seasons, whichever is longer (N-BEATS' shortest lookbacks are 2h)."""
    return int(max(2 * horizon, 2 * season, 3))
