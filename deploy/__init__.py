"""Deployment, apart from the forecasting pipeline: `lstm-server`, a team's
MLflow tracking server on PostgreSQL. Nothing in `pipeline` or `custom_layers`
imports it."""
