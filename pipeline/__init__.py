"""The forecasting pipeline: data generation → training → evaluation, tracked by MLflow.

The modules directly under `pipeline` are the functional core (arrays in,
arrays or figures out, no MLflow); `pipeline.stages` holds the MLflow entry
points and `pipeline.tracking` the helpers they share.
"""
