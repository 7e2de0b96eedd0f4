"""The forecasting pipeline: data generation → training → evaluation, tracked by MLflow.

The functional core takes arrays and returns arrays or figures, and imports no
MLflow: `csv_input`, `data`, `params`, `model`, `metrics`, `plots`, `tables`,
`progress`, `errors`. The MLflow shell is `tracking` (runs, parameters, lookups),
`registry` (registered models and the champion rule), `serving` (the MLflow
pyfunc model that serves the SavedModel), `workarounds` (every upstream
workaround) and `stages/`, the entry points. `tests/test_imports.py` keeps the
imports free of circles; deployment (`lstm-server`) lives apart, in `deploy/`.
"""
