"""One series from a CSV file as people export them: separators, decimal commas,
day-first dates, absent days, duplicated times; read as meant, or refused in one line."""

import numpy as np
import pytest

from pipeline import csv_input
from pipeline.errors import ParamError


def write(path, text):
    path.write_text(text)
    return path


def test_csv_series_with_dates_reads_the_named_column_and_auto_does_not_guess(tmp_path):
    csv = write(tmp_path / "s.csv", "day,store,sales,price\n2024-01-01,a,1.5,9\n2024-01-02,a,2.5,9\n2024-01-03,a,3.5,9\n")
    with pytest.raises(ParamError, match=r"has several numeric columns \(sales, price\): pass -P column=<name>"):
        csv_input.read_csv_series(csv, time_column="day")
    times, values, column, filled = csv_input.read_csv_series(csv, column="sales", time_column="day")
    assert column == "sales" and filled == 0
    np.testing.assert_array_equal(values, [1.5, 2.5, 3.5])
    assert times.dtype == np.dtype("datetime64[ns]") and str(times[2])[:10] == "2024-01-03"
    _, prices, column, _ = csv_input.read_csv_series(csv, column="price")
    assert column == "price" and list(prices) == [9, 9, 9]


def test_gaps_are_an_error_by_default_and_interpolated_linearly_in_time_on_request(tmp_path):
    csv = write(tmp_path / "gaps.csv", "t,y\n0,0\n1,\n2,n/a\n4,8\n5,10\n6,\n")
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, time_column="t")
    assert str(error.value) == (
        f"Column 't' of {csv} skips 1 time step (step: 1; first absent: 3): add the missing rows, or pass "
        "-P fill_missing=interpolate to fill them linearly in time.")
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, column="y")
    assert str(error.value) == (
        f"Column 'y' of {csv} has 3 missing or non-numeric values, first at lines 3, 4, 7: "
        "clean the file or pass -P fill_missing=interpolate."
    )
    series = csv_input.read_csv_series(csv, time_column="t", fill_missing="interpolate")
    # t=3 is absent: a step like the empty ones, filled linearly in time; the last value carried forward.
    assert series.n_filled == 4 and series.times.tolist() == [0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(series.values, [0, 2, 4, 6, 8, 10, 10])
    assert series.notes == ["1 absent time step (step: 1; first absent: 3) filled by linear interpolation",
                            "3 empty or non-numeric values of 'y' filled by linear interpolation"]


@pytest.mark.parametrize("content,kwargs,message", [
    (None, {}, "expected 'sine' or the path of a CSV file, got '{path}': no such file."),
    ("", {}, "CSV file {path} is empty: expected a header row and one row per time step."),
    ("a,b\n", {}, "CSV file {path} has a header but no rows"),
    ("a,b\nx,y\nz,w\n", {}, "CSV file {path} has no numeric column (columns: a, b): pass -P column=<name>"),
    ("a,b\n1,2\n", {"column": "c"}, "parameter `column`, expected one of the columns of {path} (a, b), got 'c'."),
    ("a,b\n1,2\n", {"column": "b", "time_column": "when"}, "parameter `time_column`, expected 'none' or one of the columns"),
    ("t,y\n2,1\n1,2\n", {"time_column": "t"}, "Column 't' of {path} is not in increasing order: line 3 (1) comes before line 2 (2). Sort the file by time."),
])
def test_bad_csv_files_get_one_line_naming_the_file(tmp_path, content, kwargs, message):
    path = tmp_path / "series.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(path, **kwargs)
    assert message.format(path=path) in str(error.value) and "\n" not in str(error.value)


def test_binary_file_is_not_taken_for_a_csv(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ParamError, match=r"is not a readable CSV file"):
        csv_input.read_csv_series(path)




def test_column_auto_never_takes_the_time_and_never_guesses(tmp_path):
    csv = tmp_path / "sunspots.csv"
    csv.write_text("year,sunspots\n1700,5\n1701,11\n1702,16\n1703,23\n")
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(str(csv))
    assert str(error.value) == (
        f"CSV file {csv} has several numeric columns (year, sunspots): pass -P column=<name> for the values "
        "(and -P time_column=<name> if one of them is the time).")
    # Told which is the time, the one column left is the values.
    _, values, column, _ = csv_input.read_csv_series(str(csv), time_column="year")
    assert column == "sunspots" and values.tolist() == [5, 11, 16, 23]


def test_day_first_dates_are_read_day_first_when_a_day_exceeds_12(tmp_path):
    rows = "".join(f"{day:02d}.01.2024 00:00;{day}\n" for day in range(1, 21))
    csv = write(tmp_path / "meter.csv", "Zeit;kWh\n" + rows)
    series = csv_input.read_csv_series(csv, column="kWh", time_column="Zeit")
    assert str(series.times[12])[:10] == "2024-01-13" and str(series.times[0])[:10] == "2024-01-01"
    assert series.step == "D" and series.values.tolist() == list(range(1, 21))
    assert series.notes == ["columns separated by ';'",
                            "dates read day-first: line 14 has '13.01.2024 00:00', whose first field cannot be a month"]


def test_dates_that_read_two_ways_are_refused_naming_both_readings_and_time_format(tmp_path):
    rows = "".join(f"{day:02d}.01.2024,{day}\n" for day in range(1, 13))
    csv = write(tmp_path / "short.csv", "date,y\n" + rows)
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, time_column="date")
    assert str(error.value) == (
        f"Column 'date' of {csv} has dates that read two ways: '02.01.2024' (line 3) is 02 January 2024 day-first "
        "or 01 February 2024 month-first, and no day field exceeds 12 to settle it: pass -P time_format=dayfirst or "
        "-P time_format=monthfirst (or a strftime format such as %d.%m.%Y).")
    settled = csv_input.read_csv_series(csv, time_column="date", time_format="dayfirst")
    assert str(settled.times[11])[:10] == "2024-01-12"
    explicit = csv_input.read_csv_series(csv, time_column="date", time_format="%m.%d.%Y")
    assert str(explicit.times[11])[:10] == "2024-12-01"


def test_a_semicolon_export_with_decimal_commas_and_thousands_points_reads_with_the_named_settings(tmp_path):
    csv = write(tmp_path / "export.csv", "Datum;Verbrauch;Zähler\n01.02.2024;1.234,5;A\n02.02.2024;2.000,25;A\n"
                                         "03.02.2024;950,75;A\n13.02.2024;1,5;A\n")
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, column="Verbrauch", time_column="Datum", fill_missing="interpolate")
    assert str(error.value) == (
        f"Column 'Verbrauch' of {csv} has values such as '1.234,5' that are not numbers with decimal '.' and "
        "thousands separator 'none': pass -P decimal=, -P thousands=. to read them as numbers.")
    series = csv_input.read_csv_series(csv, column="Verbrauch", time_column="Datum", fill_missing="interpolate",
                                       decimal=",", thousands=".")
    assert series.values[:3].tolist() == [1234.5, 2000.25, 950.75] and series.values[-1] == 1.5
    assert "9 absent time steps (step: one day; first absent: 2024-02-04) filled by linear interpolation" in series.notes


def test_a_file_read_as_one_column_names_the_separator(tmp_path):
    csv = write(tmp_path / "semi.csv", "a;b\n1;2\n3;4\n")
    with pytest.raises(ParamError, match=r"reads as one column \('a;b'\) with the separator ',': pass -P separator"):
        csv_input.read_csv_series(csv, separator=",")
    assert csv_input.read_csv_series(csv, column="b").values.tolist() == [2, 4]


def test_missing_days_are_refused_with_their_count_and_the_first_or_filled_on_request(tmp_path):
    days = [d for d in range(1, 32) if d not in (6, 7, 15, 20, 21)]
    rows = "".join(f"2024-01-{d:02d},{d}\n" for d in days)
    csv = write(tmp_path / "sales.csv", "date,sales\n" + rows)
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, time_column="date")
    assert str(error.value) == (
        f"Column 'date' of {csv} skips 5 time steps (step: one day; first absent: 2024-01-06): add the missing "
        "rows, or pass -P fill_missing=interpolate to fill them linearly in time.")
    series = csv_input.read_csv_series(csv, time_column="date", fill_missing="interpolate")
    assert len(series.values) == 31 and series.values.tolist() == list(range(1, 32)) and series.n_filled == 5


def test_weekdays_only_are_business_days_not_gaps(tmp_path):
    import pandas as pd

    days = pd.bdate_range("2024-01-01", periods=30)
    csv = write(tmp_path / "prices.csv", "date,close\n" + "".join(f"{d:%Y-%m-%d},{i}\n" for i, d in enumerate(days)))
    series = csv_input.read_csv_series(csv, time_column="date")
    assert series.step == "B" and series.notes == [] and len(series.values) == 30


def test_a_duplicated_time_names_the_line_that_repeats_it(tmp_path):
    csv = write(tmp_path / "dup.csv", "date,y\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-03,4\n")
    with pytest.raises(ParamError) as error:
        csv_input.read_csv_series(csv, time_column="date")
    assert str(error.value) == (
        f"Column 'date' of {csv}: line 4 repeats the time of line 3 (2024-01-02); each time step must appear "
        "once. Remove or merge the duplicate.")


def test_monthly_series_with_a_missing_month_is_seen(tmp_path):
    months = [m for m in range(1, 13) if m != 5]
    csv = write(tmp_path / "monthly.csv", "month,y\n" + "".join(f"2023-{m:02d}-01,{m}\n" for m in months))
    with pytest.raises(ParamError, match=r"skips 1 time step \(step: one month; first absent: 2023-05-01\)"):
        csv_input.read_csv_series(csv, time_column="month")
