"""Stage 3: score the model and the baselines on the same test windows, and draw it.

Logs `test_mse`, `test_rmse`, `test_mae` for the LSTM and the same for the
`persistence_` and `linear_` baselines, `free_run_rmse`, and under `plots/`:
predictions, residuals, free_run and gate_activations.
"""

import mlflow
import numpy as np

from custom_layers import gate_activations
from pipeline import data, metrics, plots, tracking
from pipeline import model as forecaster
from pipeline.params import ParamError
from pipeline.stages import command_line
from pipeline.stages.train import KERAS_MODEL


def run(model_uri, data_uri, free_run_steps):
    """Evaluates and logs; returns (run id, metrics)."""
    values = dict(locals())
    with tracking.stage_run("evaluate") as active:
        tracking.log_params(values)
        if model_uri == "auto":
            train_run_id = tracking.newest_finished_run("train", "model_uri").info.run_id
            model_uri = f"runs:/{train_run_id}/{KERAS_MODEL}"
        if data_uri == "auto":
            data_uri = _training_data_of(model_uri)
        mlflow.set_tags({"resolved_model_uri": model_uri, "resolved_data_uri": data_uri})
        model = forecaster.load_model(tracking.download(model_uri, "model_uri"))
        dataset, manifest = tracking.load_data(data_uri)

        scores = score(model, dataset)
        free = free_run(model, dataset, manifest, free_run_steps)
        if free is not None:
            scores["free_run_rmse"] = metrics.errors(free["truth"], free["forecast"])["rmse"]
        mlflow.log_metrics(scores)
        log_plots(model, dataset, free)
        return active.info.run_id, scores


def _training_data_of(model_uri):
    train_run_id = tracking.run_id_of(model_uri)
    if train_run_id is None:
        raise ParamError(
            f"Received `data_uri`='auto' with `model_uri`={model_uri!r}: 'auto' finds the "
            "training data only for a runs:/<train run id>/... model URI; pass -P data_uri=<URI>."
        )
    training_data = mlflow.get_run(train_run_id).data.tags.get("resolved_data_uri")
    if training_data is None:
        raise ParamError(
            f"Received `data_uri`='auto', but run {train_run_id} is not a train run "
            "(it has no `resolved_data_uri` tag); pass -P data_uri=<URI>."
        )
    return training_data


def score(model, dataset):
    """Test metrics of the LSTM and of each baseline on the very same windows."""
    x_test, y_test = dataset["x_test"], dataset["y_test"]
    forecasts = {
        "": forecaster.predict(model, x_test),
        "persistence": metrics.persistence_forecast(x_test),
        "linear": metrics.LinearAutoregression(dataset["x_train"], dataset["y_train"]).predict(x_test),
    }
    return metrics.forecast_metrics(y_test, forecasts)


def free_run(model, dataset, manifest, n_steps):
    """The model's own forecasts fed back from the first test window, against the
    noise-free continuation of the sine; None for a source without one."""
    if manifest["source"] != "sine":
        return None
    times = dataset["t_test"][0]
    forecast = forecaster.free_run(model, dataset["x_test"][0], n_steps)
    future_times, truth = data.sine_continuation(times[-2], times[1] - times[0], n_steps)
    return {"context_times": times[:-1], "context": dataset["x_test"][0, :, 0],
            "times": future_times, "truth": truth, "forecast": forecast}


def log_plots(model, dataset, free):
    predicted = {split: forecaster.predict(model, dataset[f"x_{split}"])[:, 0] for split in ("train", "test")}
    target_time = {split: dataset[f"t_{split}"][:, -1] for split in ("train", "test")}
    truth = {split: dataset[f"y_{split}"][:, 0] for split in ("train", "test")}
    tracking.log_figure(
        plots.predictions(target_time["train"], truth["train"], predicted["train"],
                          target_time["test"], truth["test"], predicted["test"]),
        "predictions",
    )
    tracking.log_figure(plots.residuals(target_time["test"], predicted["test"] - truth["test"]), "residuals")
    if free is not None:
        tracking.log_figure(
            plots.free_run(free["context_times"], free["context"], free["times"], free["truth"], free["forecast"]),
            "free_run",
        )
    window = dataset["x_test"][:1]
    activations = gate_activations(model.get_layer(forecaster.RNN_LAYER).cell, window)
    tracking.log_figure(
        plots.gate_activations({name: values[0] for name, values in activations.items()}, window[0]),
        "gate_activations",
    )


if __name__ == "__main__":
    command_line("evaluate", run)
