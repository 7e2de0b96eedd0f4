"""The real series the accuracy benchmarks run on: the two examples and two
series that ship inside pmdarima (`pip install -e ".[bench]"`), so nothing is
downloaded at run time.

  sunspots  yearly sunspot numbers, 1700-2008 (examples/sunspots.csv): no calendar season
  co2       weekly CO2 at Mauna Loa, 1958-2001 (examples/co2_weekly.csv): rising level, season 52
  wineind   Australian monthly wine sales, 1980-1994 (pmdarima.datasets.load_wineind): season 12
  taylor    half-hourly electricity demand, England and Wales, June-August 2000
            (pmdarima.datasets.load_taylor, Taylor 2003): daily season 48

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
    return {name: str(path) for name, path in paths.items()}
