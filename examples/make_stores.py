"""Writes examples/stores.csv: 40 monthly series in long format (unique_id, ds, y),
the made-up sales of 40 stores, of different sizes, lengths and start dates, with a
trend, a yearly season and noise. Reproducible: `python examples/make_stores.py`."""

from pathlib import Path

import numpy as np
import pandas as pd


def stores(n=40, seed=7):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        length = int(rng.integers(48, 121))
        start = pd.Timestamp("2014-01-01") + pd.DateOffset(months=int(rng.integers(0, 36)))
        t = np.arange(length)
        level = rng.uniform(50, 5000)
        trend = rng.normal(0.004, 0.004)
        season = rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * (t + rng.integers(12)) / 12)
        noise = rng.normal(0, rng.uniform(0.02, 0.08), length)
        y = level * np.exp(trend * t) * (1 + season + noise)
        frames.append(pd.DataFrame({"unique_id": f"store_{i:02d}",
                                    "ds": pd.date_range(start, periods=length, freq="MS").strftime("%Y-%m-%d"),
                                    "y": np.round(y, 1)}))
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":
    stores().to_csv(Path(__file__).with_name("stores.csv"), index=False)
