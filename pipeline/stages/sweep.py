"""Sweep: a grid (or a seeded random draw from it) of full pipeline runs, compared.

Every main parameter may be a comma-separated list (`-P hidden_units=16,50,128`).
Each trial is a whole `main` run nested under one parent run tagged
`stage=sweep`; trials share their data runs when the data parameters agree.
A failed trial is recorded as FAILED and the sweep goes on. The best trial is
the one with the lowest validation loss (`best_val_loss`); the test split only
reports. The parent logs `best_val_loss` and `best_test_rmse`, the tag
`best_run_id`, the results table (`results.csv`, `results.md`),
`plots/test_rmse_by_parameter.png` and `plots/val_loss_curves.png`, and
registers the best trial's model, moving the alias `champion` only when it has
a lower validation loss than the current champion on the same data (the same
data means the same validation split).
"""

import itertools
import traceback

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import params, plots, tables, tracking
from pipeline.stages import compare, generate_data, main, program

CHAMPION = "champion"
# Short labels for run names ("h50-lr0.001"); other parameters go by their full name.
LABELS = {"hidden_units": "h", "learning_rate": "lr", "batch_size": "bs", "epochs": "ep", "time_steps": "ts",
          "horizon": "hz", "noise": "noise", "seed": "seed", "patience": "pat"}


def trials(grid, max_trials, sweep_seed):
    """Every combination of the grid, or `max_trials` of them drawn with `sweep_seed`."""
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if 0 < max_trials < len(combinations):
        chosen = np.random.default_rng(sweep_seed).choice(len(combinations), size=max_trials, replace=False)
        combinations = [combinations[i] for i in sorted(chosen)]
    return combinations


def trial_name(trial, swept):
    if not swept:
        return "trial"
    return "-".join(f"{LABELS.get(name, name + '=')}{params.PARAMS[name].format(trial[name])}" for name in swept)


def run(max_trials, sweep_seed, registered_model_name, **grid):
    """Runs the trials one after another; returns (parent run id, best main run id or None)."""
    swept = [name for name, values in grid.items() if len(values) > 1]
    chosen = trials(grid, max_trials, sweep_seed)
    # Up front, a series too short for some trial's windows stops the sweep
    # before its first trial (parse_grid checked everything else).
    data_combinations = {tuple(trial[name] for name in params.DATA_PARAMS) for trial in chosen}
    for combination in data_combinations:
        if combination[0] != "sine":
            generate_data.prepare(*combination)
    description = (
        f"Sweep of {len(chosen)} pipeline runs over {', '.join(swept) or 'no parameter'} "
        f"({'the whole grid' if len(chosen) == np.prod([len(v) for v in grid.values()]) else 'a random draw'}). "
        f"Best by validation loss (best_val_loss): tag best_run_id; every trial in results.md."
    )
    # Named for what it sweeps: "sweep-hidden_units-learning_rate".
    with tracking.stage_run("sweep", f"sweep-{'-'.join(swept) or 'single'}", description) as parent:
        # `mlflow run` may have logged the lists already, as typed; those stay.
        logged = mlflow.get_run(parent.info.run_id).data.params
        mlflow.log_params({name: ",".join(params.PARAMS[name].format(v) for v in values)
                           for name, values in grid.items() if name not in logged})
        tracking.log_params({"max_trials": max_trials, "sweep_seed": sweep_seed,
                             "registered_model_name": registered_model_name})
        for number, trial in enumerate(chosen, start=1):
            name = trial_name(trial, swept)
            print(f"trial {number}/{len(chosen)}: {name}", flush=True)
            try:
                main.run(run_name=name, quiet=True, register=False, resume_from="none", **trial)
            except Exception:  # a failed trial is recorded (FAILED, with its error tag); the sweep goes on
                print(f"trial {name} failed:\n{traceback.format_exc(limit=3)}", flush=True)

        runs = compare.pipeline_runs([parent.info.experiment_id], parent.info.run_id)
        header, rows = compare.table(runs)
        mlflow.log_text(tables.to_csv(header, rows), "results.csv")
        mlflow.log_text(tables.to_markdown(header, rows), "results.md")
        finished = [r for r in runs if r.info.status == "FINISHED" and "test_rmse" in r.data.metrics]
        mlflow.log_metrics({"n_trials": len(runs), "n_failed": len(runs) - len(finished)})
        _log_plots(finished, swept)
        best = min(finished, key=lambda r: r.data.metrics["best_val_loss"]) if finished else None
        if best is not None:
            mlflow.log_metrics({"best_val_loss": best.data.metrics["best_val_loss"],
                                "best_test_rmse": best.data.metrics["test_rmse"]})
            mlflow.set_tag("best_run_id", best.info.run_id)
            message = update_champion(registered_model_name, best)
        else:
            message = "No trial finished: nothing registered."
        mlflow.set_tag("champion", message)
    print(tables.to_markdown(header, rows))
    print(message)
    # The sweep's own id appears nowhere else but in MLflow's log lines.
    print(f"Sweep run {parent.info.run_id}; its trials again: lstm-compare --parent_run_id {parent.info.run_id}")
    return parent.info.run_id, best.info.run_id if best else None


def update_champion(name, best):
    """Registers `best`'s model under `name` ('auto': the series' own name,
    params.registered_model_name); moves the alias `champion` to it
    only if there is none yet, or if its validation loss (`best_val_loss`) is
    lower than the champion's on the same data (same data_sha256, so the same
    validation split). The test RMSE is reported beside it, never compared.
    Returns a sentence saying what happened."""
    client = MlflowClient()
    name = params.registered_model_name(name, best.data.params["data_source"])
    val_loss, rmse = best.data.metrics["best_val_loss"], best.data.metrics["test_rmse"]
    data_sha256 = best.data.tags.get("data_sha256", "")
    version = mlflow.register_model(
        best.data.tags["model_uri"], name,
        tags={"val_loss": repr(val_loss), "test_rmse": repr(rmse), "data_sha256": data_sha256,
              "run_id": best.info.run_id},
    )
    scores = f"val_loss {val_loss:.4g}, test_rmse {rmse:.4g}"
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is not None and champion.tags.get("data_sha256") != data_sha256:
        return (f"Registered {name} version {version.version} ({scores}); the champion, version "
                f"{champion.version}, was scored on other data, so it stays.")
    # A champion registered before validation losses were recorded has none: the new model replaces it.
    if champion is not None and "val_loss" in champion.tags and float(champion.tags["val_loss"]) <= val_loss:
        return (f"Registered {name} version {version.version} ({scores}); the champion, version "
                f"{champion.version} (val_loss {float(champion.tags['val_loss']):.4g}, test_rmse "
                f"{float(champion.tags['test_rmse']):.4g}), stays.")
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return (f"{name}@{CHAMPION} is now version {version.version} ({scores}): "
            f"mlflow models serve -m models:/{name}@{CHAMPION} --env-manager local --port 5001")


def _log_plots(finished, swept):
    if not finished:
        return
    rmse = [r.data.metrics["test_rmse"] for r in finished]
    if swept:
        values = {name: [r.data.params[name] for r in finished] for name in swept}
        tracking.log_figure(plots.metric_by_parameter(values, rmse, "test_rmse"), "test_rmse_by_parameter")
    client = MlflowClient()
    curves = {}
    for r in finished:
        history = sorted(client.get_metric_history(r.data.tags["train_run_id"], "val_loss"), key=lambda m: m.step)
        curves[r.info.run_name] = ([m.step for m in history], [m.value for m in history])
    tracking.log_figure(plots.loss_curves(curves), "val_loss_curves")


if __name__ == "__main__":
    program("sweep", run, parse=params.parse_grid)
