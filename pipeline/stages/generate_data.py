"""Stage 1: the seed tutorial's sine windows, split chronologically, logged under `data/`."""

import mlflow

from pipeline import data, tracking
from pipeline.stages import command_line


def run(n_samples, time_steps, noise, val_fraction, test_fraction, seed):
    """Generates and logs the dataset; returns the run id (its data: runs:/<id>/data)."""
    values = dict(locals())
    windowing = data.Windowing(time_steps)
    data.split_sizes(n_samples, val_fraction, test_fraction)  # fail before opening a run
    with tracking.stage_run("generate_data") as active:
        tracking.log_params(values)
        dataset = data.make_sine_dataset(**values)
        manifest = {
            "source": "sine",
            "parameters": values,
            "windowing": repr(windowing),
            "code_version": tracking.code_version(),
        }
        tracking.log_dataset(dataset, manifest)
        mlflow.log_metrics({f"n_{split}": len(dataset[f"y_{split}"]) for split in data.SPLITS})
        return active.info.run_id


if __name__ == "__main__":
    command_line("generate_data", run)
