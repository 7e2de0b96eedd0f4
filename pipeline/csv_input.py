"""One series from a CSV file, read as the file means it, or refused in one line.

What is read, and how:

- **Separator**: `separator='auto'` sniffs it from the first lines (`,`, `;`, tab
  or `|`, Python's `csv.Sniffer`); any single character may be given instead.
- **Numbers**: `decimal` is `.` or `,`; `thousands` is `none`, `,`, `.`, `'`
  or a space. A column that does not read as numbers but would with other
  settings is refused with the settings that read it.
- **Dates** (`time_format='auto'`): ISO 8601 when every value is; otherwise
  day-first when a day field exceeds 12 anywhere in the column, month-first
  when a month field does, and refused when both readings are possible, naming
  both. `dayfirst`, `monthfirst` or a strftime format (`%d.%m.%Y %H:%M`)
  settles it.
- **Time steps**: the step is inferred from the time column (pandas'
  frequencies for dates, business days when no date falls on a weekend; the
  most common difference for numbers). Absent steps are treated as empty
  values: refused with their count and the first one, or filled with
  `fill_missing=interpolate`. A duplicated time names the line that repeats it.

`read_csv_series` returns a `CsvSeries`, whose `notes` say in words what was
assumed; the stages print them and keep them with the run.
"""

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import ParamError

SNIFFED_SEPARATORS = ",;\t|"
DECIMALS = (".", ",")
THOUSANDS = {"none": None, ",": ",", ".": ".", "'": "'", "space": " "}
# A date whose first three fields are numbers: 01.02.2024, 1/2/24, 01-02-2024 13:00.
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})")


@dataclass
class Columns:
    """A long table's three columns as arrays, one entry per row: each row's series
    (`codes` into `unique_ids`), its time (`times`: float64 or datetime64[ns]) and
    value (float64, NaN where empty); `row_name` and `first_row` say how a message
    names a row ("line", 2 for a CSV: its header is line 1; None: rows are not numbered)."""

    codes: np.ndarray
    unique_ids: np.ndarray
    times: np.ndarray
    values: np.ndarray
    notes: list
    row_name: str = "line"
    first_row: int = 2


@dataclass
class CsvSeries:
    """A series as read: `times` (float64 numbers or datetime64), `values`
    float64 with nothing missing, the value column's name, how many values were
    filled (empty or absent steps), and `notes`: what was assumed, in words."""

    times: np.ndarray
    values: np.ndarray
    column: str
    n_filled: int
    notes: list = field(default_factory=list)
    step: str = ""  # the inferred time step, in pandas' words ("D", "MS") or as a number

    def __iter__(self):  # (times, values, column, n_filled), as the reader returned before
        return iter((self.times, self.values, self.column, self.n_filled))


def _lines(path, n=20):
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return [line for _, line in zip(range(n), handle)]


def sniff_separator(path):
    """The separator of the CSV file at `path`: `csv.Sniffer` over its first lines, among
    `SNIFFED_SEPARATORS`; a comma when it cannot tell (a file of one column)."""
    sample = "".join(_lines(path))
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFFED_SEPARATORS).delimiter
    except csv.Error:
        return ","


def _parse_numbers(raw, decimal, thousands):
    """Strings → float64 with `decimal` and `thousands`; NaN where a cell is not a number
    written so (a thousands separator must group three digits: `1.234,5` is not a
    number with decimal `.` and thousands `,`)."""
    import pandas as pd

    text = raw.astype("string").str.strip()
    if decimal == "." and thousands is None:
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    d, k = re.escape(decimal), re.escape(thousands or "")
    integer = rf"(\d{{1,3}}({k}\d{{3}})+|\d+)" if thousands else r"\d+"
    written = text.str.fullmatch(rf"[+-]?{integer}({d}\d*)?([eE][+-]?\d+)?").fillna(False).astype(bool)
    if thousands:
        text = text.str.replace(thousands, "", regex=False)
    if decimal != ".":
        text = text.str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(text.where(written), errors="coerce")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _number_settings_that_read(raw, decimal, thousands):
    """Other (decimal, thousands) that read more of `raw` as numbers, or None."""
    baseline = np.isfinite(_parse_numbers(raw, decimal, thousands)).sum()
    best, best_count = None, baseline
    for other_decimal in DECIMALS:
        for other_thousands in (None, ",", ".", "'", " "):
            if other_thousands == other_decimal:
                continue
            count = np.isfinite(_parse_numbers(raw, other_decimal, other_thousands)).sum()
            if count > best_count:
                best, best_count = (other_decimal, other_thousands), count
    return best


def _thousands_name(thousands):
    return {None: "none", " ": "space"}.get(thousands, thousands)


def _describe_numbers(decimal, thousands):
    return f"-P decimal={decimal} -P thousands={_thousands_name(thousands)}"


def read_times(raw, path, time_column, time_format):
    """The time column as float64 numbers or datetime64[ns]; (times, note or None)."""
    import pandas as pd

    text = raw.astype("string").str.strip()
    note = None
    if time_format in ("auto", "iso"):
        iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if iso.notna().all() or time_format == "iso":
            return _checked_dates(iso, text, path, time_column, "ISO 8601 dates"), None
        fields = text.str.extract(_NUMERIC_DATE)
        numeric = fields.notna().all(axis=1)
        if numeric.any() and not fields[0][numeric].str.len().eq(4).all():
            first, second = fields[0][numeric].astype(int), fields[1][numeric].astype(int)
            if (first > 12).any() and (second > 12).any():
                line = int(np.flatnonzero(second.to_numpy() > 12)[0])
                raise ParamError(
                    f"Column {time_column!r} of {path} has dates with a day field above 12 in both the first and "
                    f"the second place (line {numeric[numeric].index[line] + 2}: {text.iloc[numeric[numeric].index[line]]!r}): "
                    "pass -P time_format=<strftime format>, such as %d.%m.%Y."
                )
            if (first > 12).any():
                time_format = "dayfirst"
                at = int(first.index[np.flatnonzero(first.to_numpy() > 12)[0]])
                note = f"dates read day-first: line {at + 2} has {text.iloc[at]!r}, whose first field cannot be a month"
            elif (second > 12).any():
                time_format = "monthfirst"
                at = int(second.index[np.flatnonzero(second.to_numpy() > 12)[0]])
                note = (f"dates read month-first: line {at + 2} has {text.iloc[at]!r}, whose second field "
                        "cannot be a month")
            else:
                day_first = pd.to_datetime(text, dayfirst=True, format="mixed", errors="coerce")
                month_first = pd.to_datetime(text, dayfirst=False, format="mixed", errors="coerce")
                differ = np.flatnonzero((day_first != month_first).to_numpy())
                if len(differ):
                    at = int(differ[0])
                    raise ParamError(
                        f"Column {time_column!r} of {path} has dates that read two ways: {text.iloc[at]!r} (line "
                        f"{at + 2}) is {day_first.iloc[at]:%d %B %Y} day-first or {month_first.iloc[at]:%d %B %Y} month-first, "
                        "and no day field exceeds 12 to settle it: pass -P time_format=dayfirst or "
                        "-P time_format=monthfirst (or a strftime format such as %d.%m.%Y)."
                    )
                return _checked_dates(day_first, text, path, time_column, "dates"), None
        else:
            return _checked_dates(pd.to_datetime(text, format="mixed", errors="coerce"), text, path, time_column,
                                  "dates or numbers"), None
    if time_format in ("dayfirst", "monthfirst"):
        parsed = pd.to_datetime(text, dayfirst=time_format == "dayfirst", format="mixed", errors="coerce")
        what = "day-first dates" if time_format == "dayfirst" else "month-first dates"
    else:
        parsed = pd.to_datetime(text, format=time_format, errors="coerce")
        what = f"dates in the format {time_format!r}"
    return _checked_dates(parsed, text, path, time_column, what), note


def _checked_dates(parsed, text, path, time_column, what):
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise ParamError(
            f"Column {time_column!r} of {path} has {len(bad)} values that are not {what}, first at line "
            f"{bad[0] + 2} ({text.iloc[bad[0]]!r}): fix them, pass -P time_format=<dayfirst, monthfirst or a "
            "strftime format>, or -P time_column=none."
        )
    return parsed.to_numpy(dtype="datetime64[ns]")


def check_order(times, path, time_column):
    """Refuses a time that repeats the one before it, or goes back."""
    steps = np.diff(as_numbers(times))
    repeated = np.flatnonzero(steps == 0)
    backwards = np.flatnonzero(steps < 0)
    if len(repeated) and (not len(backwards) or repeated[0] < backwards[0]):
        line = repeated[0] + 3
        raise ParamError(
            f"Column {time_column!r} of {path}: line {line} repeats the time of line {line - 1} "
            f"({format_time(times[repeated[0]])}); each time step must appear once. Remove or merge the duplicate."
        )
    if len(backwards):
        raise ParamError(
            f"Column {time_column!r} of {path} is not in increasing order: line {backwards[0] + 3} "
            f"({format_time(times[backwards[0] + 1])}) comes before line {backwards[0] + 2} "
            f"({format_time(times[backwards[0]])}). Sort the file by time."
        )


def format_time(value):
    value = np.asarray(value)
    if value.dtype.kind == "M":
        text = str(value.astype("datetime64[s]"))
        return text[:-9] if text.endswith("T00:00:00") else text.replace("T", " ")
    number = float(value)
    # A whole number stays one, however large (:g would write 1990001 as 1.99e+06).
    return str(int(number)) if number.is_integer() else f"{number:.15g}"


def regular_steps(times):
    """The time step and the times absent from a regular grid of it: (step, full
    times, absent times), or (None, times, []) when the times follow no grid."""
    import pandas as pd

    if len(times) < 3:
        return None, times, times[:0]
    if times.dtype.kind == "M":
        index = pd.DatetimeIndex(times)
        freq = pd.infer_freq(index)
        if freq:
            return freq, times, times[:0]
        # Gaps: the step most triples of neighbours agree on.
        starts = np.unique(np.linspace(0, len(index) - 3, min(len(index) - 2, 300)).astype(int))
        guesses = [pd.infer_freq(index[i:i + 3]) for i in starts]
        guesses = [g for g in guesses if g]
        if not guesses:
            return None, times, times[:0]
        freq = max(set(guesses), key=guesses.count)
        if freq == "D" and not (index.dayofweek >= 5).any():
            freq = "B"  # weekdays only: weekends are not gaps
        full = pd.date_range(index[0], index[-1], freq=freq)
        if not index.isin(full).all():
            return None, times, times[:0]
        absent = full.difference(index)
        return freq, full.to_numpy(dtype="datetime64[ns]"), absent.to_numpy(dtype="datetime64[ns]")
    steps = np.diff(times)
    values, counts = np.unique(np.round(steps, 9), return_counts=True)
    step = values[np.argmax(counts)]
    if step <= 0:
        return None, times, times[:0]
    ratios = steps / step
    if not np.allclose(ratios, np.round(ratios), atol=0.01):
        return None, times, times[:0]
    full = times[0] + step * np.arange(int(round((times[-1] - times[0]) / step)) + 1)
    present = np.zeros(len(full), bool)
    present[np.round((times - times[0]) / step).astype(int)] = True
    full[present] = times  # the file's own values where it has them
    return f"{step:g}", full, full[~present]


def read_frame(path, separator="auto", rows="one row per time step"):
    """The CSV at `path` as a DataFrame of text cells with stripped column names,
    the separator used, and a note when it was sniffed and is not a comma.
    A missing, empty, header-only or unreadable file is a one-line ParamError;
    `rows` says in it what each row should be."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ParamError(
            f"Received an invalid value for parameter `data_source`, expected 'sine' or the "
            f"path of a CSV file, got {str(path)!r}: no such file."
        )
    notes = []
    separator = "\t" if separator == "tab" else separator
    if separator == "auto":
        separator = sniff_separator(path)
        if separator != ",":
            notes.append(f"columns separated by {_separator_name(separator)}")
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, na_values=[""],
                            skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ParamError(f"CSV file {path} is empty: expected a header row and {rows}.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ParamError(
            f"File {path} is not a readable CSV file ({type(error).__name__}): expected text with a header row "
            f"and columns separated by {_separator_name(separator)} (-P separator=<character> names another)."
        ) from None
    if frame.empty:
        raise ParamError(f"CSV file {path} has a header but no rows: expected {rows}.")
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame, separator, notes


def read_csv_series(path, column="auto", time_column="none", fill_missing="error", time_format="auto",
                    separator="auto", decimal=".", thousands="none"):
    """Reads one univariate series from a CSV file with a header row (see the module's doc).

    `column`: the values' column, or "auto" for the only numeric one but the time column.
    `time_column`: a column of dates or numbers in increasing order, or "none"
    (then the time is the row number, from 0). `fill_missing`: "error" refuses
    missing, non-numeric or absent values, "interpolate" fills them linearly in time.

    Returns a CsvSeries. Every problem is a ParamError naming the file and what to change.
    """
    frame, separator, notes = read_frame(path, separator, "one row per time step")
    path = Path(path)
    thousands_character = THOUSANDS[thousands]

    if column == "auto":
        # Numeric: most of the cells that are not empty parse as numbers (the
        # gaps and the odd typo are for fill_missing to deal with).
        def numeric(name):
            return np.isfinite(_parse_numbers(frame[name], decimal, thousands_character)).sum() > frame[name].notna().sum() / 2

        candidates = [name for name in frame.columns if name != time_column and numeric(name)]
        if not candidates:
            _refuse_unread_numbers(frame, path, separator, decimal, thousands_character, time_column)
            raise ParamError(
                f"CSV file {path} has no numeric column (columns: {', '.join(map(str, frame.columns))}): "
                "pass -P column=<name> to choose one."
            )
        if len(candidates) > 1:
            # Never a guess: the first numeric column is often the time (a year, a timestamp).
            raise ParamError(
                f"CSV file {path} has several numeric columns ({', '.join(map(str, candidates))}): pass "
                "-P column=<name> for the values (and -P time_column=<name> if one of them is the time)."
            )
        column = candidates[0]
    elif column not in frame.columns:
        hint = ""
        if len(frame.columns) == 1 and separator != ";" and ";" in frame.columns[0]:
            hint = " The file looks separated by ';': pass -P separator=';'."
        raise ParamError(
            f"Received an invalid value for parameter `column`, expected one of the columns of {path} "
            f"({', '.join(map(str, frame.columns))}), got {column!r}.{hint}"
        )

    values = _parse_numbers(frame[column], decimal, thousands_character)
    values[~np.isfinite(values)] = np.nan
    unread = np.isnan(values) & frame[column].notna().to_numpy()
    if unread.sum() > len(values) / 2:
        better = _number_settings_that_read(frame[column], decimal, thousands_character)
        if better:
            raise ParamError(
                f"Column {column!r} of {path} has values such as {frame[column][unread].iloc[0]!r} that are not "
                f"numbers with decimal {decimal!r} and thousands separator {_thousands_name(thousands_character)!r}: "
                f"pass {_describe_numbers(*better)} to read them as numbers."
            )

    step = ""
    if time_column == "none":
        times = np.arange(len(frame), dtype=np.float64)
    else:
        if time_column not in frame.columns:
            raise ParamError(
                f"Received an invalid value for parameter `time_column`, expected 'none' or one of the "
                f"columns of {path} ({', '.join(map(str, frame.columns))}), got {time_column!r}."
            )
        raw_times = frame[time_column]
        numeric_times = _parse_numbers(raw_times, ".", None)
        if time_format == "auto" and np.isfinite(numeric_times).all():
            times = numeric_times
        else:
            if raw_times.isna().any():
                bad = int(np.flatnonzero(raw_times.isna().to_numpy())[0])
                raise ParamError(
                    f"Column {time_column!r} of {path} has {int(raw_times.isna().sum())} empty values, first at "
                    f"line {bad + 2}: fix them or pass -P time_column=none."
                )
            times, note = read_times(raw_times, path, time_column, time_format)
            if note:
                notes.append(note)
        check_order(times, path, time_column)
        step, full, absent = regular_steps(times)
        if step is None:
            notes.append(f"the times of {time_column!r} follow no regular step: each row is taken as one step")
            step = ""
        elif len(absent):
            if fill_missing == "error":
                raise ParamError(
                    f"Column {time_column!r} of {path} skips {len(absent)} time step{'s' if len(absent) > 1 else ''} "
                    f"(step: {_step_name(step)}; first absent: {format_time(absent[0])}): add the missing rows, or "
                    "pass -P fill_missing=interpolate to fill them linearly in time."
                )
            notes.append(f"{len(absent)} absent time step{'s' if len(absent) > 1 else ''} (step: {_step_name(step)}; "
                         f"first absent: {format_time(absent[0])}) filled by linear interpolation")
            positions = np.searchsorted(as_numbers(full), as_numbers(times))
            filled = np.full(len(full), np.nan)
            filled[positions] = values
            values, times = filled, full

    missing = np.flatnonzero(np.isnan(values))
    if len(missing) == len(values):
        raise ParamError(f"Column {column!r} of {path} has no numeric values: choose another with -P column=<name>.")
    absent_count = len(values) - len(frame)  # rows added for absent steps (only when filling)
    if len(missing) and fill_missing == "error":
        lines = ", ".join(str(i + 2) for i in missing[:5])
        plural = "s" if len(missing) > 1 else ""
        raise ParamError(
            f"Column {column!r} of {path} has {len(missing)} missing or non-numeric value{plural}, first at "
            f"line{plural} {lines}: clean the file or pass -P fill_missing=interpolate."
        )
    if len(missing):
        # Linear in time; before the first or after the last value, the nearest value.
        position = as_numbers(times)
        known = ~np.isnan(values)
        values[missing] = np.interp(position[missing], position[known], values[known])
        empty_cells = len(missing) - absent_count
        if empty_cells:
            notes.append(f"{empty_cells} empty or non-numeric value{'s' if empty_cells > 1 else ''} of {column!r} "
                         "filled by linear interpolation")
    return CsvSeries(times, values, str(column), len(missing), notes, str(step))


def _refuse_unread_numbers(frame, path, separator, decimal, thousands, time_column):
    """When no column reads as numbers: the settings under which one would, or that the separator is wrong."""
    for name in frame.columns:
        if name == time_column:
            continue
        better = _number_settings_that_read(frame[name], decimal, thousands)
        if better:
            raise ParamError(
                f"CSV file {path} has no column that reads as numbers with decimal {decimal!r} and thousands "
                f"separator {_thousands_name(thousands)!r}: pass {_describe_numbers(*better)} to read column {name!r}."
            )
    if len(frame.columns) == 1:
        raise ParamError(
            f"CSV file {path} reads as one column ({frame.columns[0]!r}) with the separator "
            f"{_separator_name(separator)}: pass -P separator=<the file's separator>, such as ';'."
        )


def _separator_name(separator):
    return {",": "','", ";": "';'", "\t": "tabs", "|": "'|'", " ": "spaces"}.get(separator, repr(separator))


def _step_name(step):
    import pandas as pd

    names = {"D": "one day", "B": "one business day", "h": "one hour", "H": "one hour", "W": "one week",
             "MS": "one month", "ME": "one month", "M": "one month", "QS": "one quarter", "QE": "one quarter",
             "YS": "one year", "YE": "one year", "min": "one minute", "30min": "30 minutes"}
    if step in names:
        return names[step]
    for prefix, name in (("W-", "one week"), ("QS-", "one quarter"), ("QE-", "one quarter"), ("YS-", "one year"),
                         ("YE-", "one year"), ("BQE", "one quarter")):
        if step.startswith(prefix):
            return name
    try:
        return str(pd.tseries.frequencies.to_offset(step))
    except ValueError:
        return step


def as_numbers(times):
    """Times as float64: numbers as they are, datetimes as nanoseconds."""
    return times.astype(np.int64).astype(np.float64) if times.dtype.kind == "M" else times.astype(np.float64)
