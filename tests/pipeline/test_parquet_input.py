"""A collection in Parquet: a file, a partitioned folder or a folder of files reads
as the same collection as its CSV, with the CSV reader's refusals."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import collection as coll
from pipeline.errors import ParamError


def long_table():
    """Monthly sales of five shops, ragged: zeros, an intermittent one, a new product,
    a flat one, rows shuffled."""
    rng = np.random.default_rng(0)
    rows = []
    for name, start, values in [
        ("zeros", "2019-01-01", np.zeros(30)),
        ("intermittent", "2019-01-01", np.where(rng.random(36) < 0.2, rng.integers(1, 9, 36), 0.0)),
        ("new product", "2021-06-01", np.r_[np.zeros(4), 5 + np.arange(8.0)]),
        ("flat", "2019-04-01", np.full(33, 7.0)),
        ("shop 12", "2019-01-01", 100 + 10 * np.sin(np.arange(36) * np.pi / 6) + rng.normal(0, 1, 36)),
    ]:
        times = pd.date_range(start, periods=len(values), freq="MS")
        rows += [(name, t, v) for t, v in zip(times, values)]
    frame = pd.DataFrame(rows, columns=["unique_id", "ds", "y"])
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def assert_same(read, expected):
    assert read.ids == expected.ids
    np.testing.assert_array_equal(read.values, expected.values)
    np.testing.assert_array_equal(read.lengths, expected.lengths)
    np.testing.assert_array_equal(read.last_times, expected.last_times)
    assert read.step == expected.step == "MS"


def test_a_parquet_file_a_partitioned_folder_and_a_folder_of_files_read_as_the_csv_does(tmp_path):
    frame = long_table()
    frame.to_csv(tmp_path / "sales.csv", index=False, date_format="%Y-%m-%d")
    expected = coll.read_collection(tmp_path / "sales.csv")
    assert dict(zip(expected.ids, expected.lengths.tolist())) == {"zeros": 30, "intermittent": 36, "new product": 12,
                                                                  "flat": 33, "shop 12": 36}

    frame.to_parquet(tmp_path / "sales.parquet")
    assert coll.is_collection(tmp_path / "sales.parquet")
    assert_same(coll.read_collection(tmp_path / "sales.parquet"), expected)

    # Partitioned by series (hive layout, the id a partition column): pyarrow orders the parts by name.
    frame.to_parquet(tmp_path / "by_series", partition_cols=["unique_id"])
    partitioned = coll.read_collection(tmp_path / "by_series")
    order = [partitioned.ids.index(name) for name in expected.ids]
    np.testing.assert_array_equal(partitioned.values[order], expected.values)
    np.testing.assert_array_equal(partitioned.lengths[order], expected.lengths)

    # Several plain files, times as dates and the ids dictionary-encoded differently in each.
    folder = tmp_path / "parts"
    folder.mkdir()
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        chunk = frame.iloc[rows].assign(ds=lambda f: f["ds"].dt.date, unique_id=lambda f: f["unique_id"].astype("category"))
        chunk.to_parquet(folder / f"part-{part}.parquet")
    assert_same(coll.read_collection(folder), expected)


def test_a_file_written_series_by_series_reads_as_a_shuffled_one_ids_trimmed_in_any_file(tmp_path):
    # Rows already in order skip the sort (as a file written series by series is); ids that differ
    # only in spaces are one series, in whichever file or dictionary they appear.
    frame = long_table()
    frame.to_csv(tmp_path / "sales.csv", index=False, date_format="%Y-%m-%d")
    expected = coll.read_collection(tmp_path / "sales.csv")
    series = pd.Categorical(frame["unique_id"], categories=expected.ids)
    ordered = frame.assign(series=series).sort_values(["series", "ds"]).drop(columns="series")
    ordered.to_parquet(tmp_path / "ordered.parquet")
    assert_same(coll.read_collection(tmp_path / "ordered.parquet"), expected)

    folder = tmp_path / "spaced"
    folder.mkdir()
    spaced = ordered.assign(unique_id=np.where(np.arange(len(ordered)) % 3 == 0, " " + ordered["unique_id"] + " ",
                                               ordered["unique_id"]))
    for part, rows in enumerate(np.array_split(np.arange(len(spaced)), 2)):
        spaced.iloc[rows].to_parquet(folder / f"part-{part}.parquet")
    assert_same(coll.read_collection(folder), expected)


@pytest.mark.parametrize("block_rows", [1, 40, 100])
def test_a_collection_read_in_blocks_of_whole_series_is_the_collection_read_at_once(tmp_path, block_rows):
    # The blocks of a large collection (more than block_rows rows; 10 million by default):
    # shuffled rows over three files, ids spaced differently, dates and numbered steps.
    frame = long_table()
    spaced = frame.assign(unique_id=np.where(np.arange(len(frame)) % 4 == 0, frame["unique_id"] + "  ",
                                             frame["unique_id"]))
    numbered = spaced.assign(ds=(frame["ds"].dt.year - 2019) * 12 + frame["ds"].dt.month)
    for name, table in (("dates", spaced), ("numbered", numbered)):
        folder = tmp_path / name
        folder.mkdir()
        for part, rows in enumerate(np.array_split(np.arange(len(table)), 3)):
            table.iloc[rows].to_parquet(folder / f"part-{part}.parquet")
        whole, blocks = coll.read_collection(folder), coll.read_collection(folder, block_rows=block_rows)
        assert blocks.ids == whole.ids == ["flat", "intermittent", "new product", "zeros", "shop 12"]  # as they appear
        np.testing.assert_array_equal(blocks.values, whole.values)
        np.testing.assert_array_equal(blocks.lengths, whole.lengths)
        np.testing.assert_array_equal(blocks.last_times, whole.last_times)
        assert blocks.last_times.dtype == whole.last_times.dtype and blocks.step == whole.step


@pytest.mark.parametrize("rows,message", [
    ({"unique_id": ["a", "a", None, "b"], "ds": [1, 2, 1, 1], "y": [1.0, 2, 3, 4]},
     "Column 'unique_id' of {path} is empty at row 3: every row needs its series id."),
    ({"unique_id": ["a", "a", "b", "b"], "ds": [1, 2, 1, 1], "y": [1.0, 2, 3, 4]},
     "{path}: series 'b' has the time 1 twice; each (series, time) pair must appear once."),
    ({"unique_id": ["a", "a", "a", "b", "b"], "ds": [1, 2, 3, 10, 12], "y": [1.0, 2, 3, 4, 5]},
     "Column 'ds' of {path}: series 'b' steps by 2, series 'a' by 1: a collection needs one step that every series "
     "follows; forecast them as separate collections."),
    ({"unique_id": ["a", "a", "a", "b", "b"], "ds": [1.0, 2, 3, 10.5, 11.5], "y": [1.0, 2, 3, 4, 5]},
     "Column 'ds' of {path}: 10.5 is not a whole number of steps (1, the smallest step within a series) from the "
     "first time."),
    ({"unique_id": ["a", "a", "a", "b", "b"], "ds": ["2020-01-01", "2020-02-01", "2020-03-01", "2020-01-01", "soon"],
      "y": [1.0, 2, 3, 4, 5]},
     "Column 'ds' of {path} holds text that is not an ISO 8601 date in series 'b' ('soon'): store times as Parquet "
     "timestamps, dates or numbers."),
])
def test_a_collection_read_in_blocks_is_refused_in_one_line_naming_the_series(tmp_path, rows, message):
    path = _write(tmp_path, pa.table(rows))
    with pytest.raises(ParamError) as error:
        coll.read_collection(path, block_rows=3)  # 'a', then 'b'
    assert str(error.value) == message.format(path=path)


def test_numbered_steps_and_iso_text_times_read_as_in_a_csv(tmp_path):
    frame = long_table()
    numbered = frame.assign(ds=(frame["ds"].dt.year - 2019) * 12 + frame["ds"].dt.month)
    numbered.to_csv(tmp_path / "n.csv", index=False)
    numbered.to_parquet(tmp_path / "n.parquet")
    csv, parquet = coll.read_collection(tmp_path / "n.csv"), coll.read_collection(tmp_path / "n.parquet")
    np.testing.assert_array_equal(parquet.values, csv.values)
    assert parquet.step == csv.step == 1 and parquet.last_times.tolist() == csv.last_times.tolist()
    frame.assign(ds=frame["ds"].dt.strftime("%Y-%m-%d")).to_parquet(tmp_path / "text.parquet")
    frame.to_csv(tmp_path / "dates.csv", index=False, date_format="%Y-%m-%d")
    assert_same(coll.read_collection(tmp_path / "text.parquet"), coll.read_collection(tmp_path / "dates.csv"))


def _write(tmp_path, table):
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    return path


BASE = {"unique_id": ["a", "a", "b"], "ds": [1, 2, 1], "y": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize("change,message", [
    ({"y": None, "value": [1.0, 2.0, 3.0]},
     "Received an invalid value for parameter `column`, expected one of the columns of {path} (unique_id, ds, value), "
     "got 'y'."),
    ({"unique_id": ["a", None, "b"]}, "Column 'unique_id' of {path} is empty at row 2: every row needs its series id."),
    ({"ds": [1, None, 1]}, "Column 'ds' of {path} is empty at row 2: every row needs its time."),
    ({"y": ["1", "2", "3"]}, "Column 'y' of {path} holds string, not numbers: store the values as a numeric Parquet "
                             "column."),
    ({"ds": [1, 1, 1]}, "{path}: series 'a' has the time 1 twice (rows 1 and 2); each (series, time) pair must appear "
                        "once."),
    ({"ds": ["2020-01-01", "January 2020", "2020-01-01"]},
     "Column 'ds' of {path} holds text that is not an ISO 8601 date at row 2 ('January 2020'): store times as Parquet "
     "timestamps, dates or numbers."),
    ({"ds": pa.array([0, 2_592_000, 0], pa.timestamp("s", tz="Europe/Paris"))},
     "Column 'ds' of {path} holds times in the time zone Europe/Paris: store them without a time zone (the "
     "collection's step is counted in local time)."),
    ({"y": [1.0, None, 3.0]},
     "{path}: series 'a' has 1 missing values (0 absent time steps, the rest empty cells of 'y'): add them, or pass "
     "-P fill_missing=interpolate to fill them linearly in time."),
])
def test_bad_parquet_collections_are_refused_in_one_line_as_csv_ones_are(tmp_path, change, message):
    columns = {**BASE, **change}
    table = pa.table({name: values for name, values in columns.items() if values is not None})
    path = _write(tmp_path, table)
    with pytest.raises(ParamError) as error:
        coll.read_collection(path)
    assert str(error.value) == message.format(path=path)


def test_empty_cells_are_filled_when_asked_and_an_empty_file_is_refused(tmp_path):
    path = _write(tmp_path, pa.table({"unique_id": ["a"] * 4, "ds": [1, 2, 3, 4], "y": [1.0, None, None, 4.0]}))
    read = coll.read_collection(path, fill_missing="interpolate")
    np.testing.assert_allclose(read.series(0), [1, 2, 3, 4])
    assert read.notes == ["2 missing values filled by linear interpolation"]
    empty = _write(tmp_path, pa.table({"unique_id": pa.array([], pa.string()), "ds": pa.array([], pa.int64()),
                                       "y": pa.array([], pa.float64())}))
    with pytest.raises(ParamError, match="has no rows: expected one row per"):
        coll.read_collection(empty)


def test_a_parquet_folder_is_a_data_source_with_a_digest_of_its_files(tmp_path):
    from pipeline import params
    from pipeline.stages import generate_data

    frame = long_table()
    frame.to_parquet(tmp_path / "by_series", partition_cols=["unique_id"])
    values = {**params.defaults("generate_data"), "data_source": str(tmp_path / "by_series"), "horizon": 3,
              "season": 12}
    dataset, manifest, tags = generate_data.prepare(**values)
    assert manifest["source"] == "collection" and manifest["n_series"] == 5
    first = tags["source_sha256"]
    frame.assign(y=frame["y"] + 1).to_parquet(tmp_path / "by_series", partition_cols=["unique_id"],
                                              existing_data_behavior="delete_matching")
    assert generate_data.source_sha256(str(tmp_path / "by_series")) != first
