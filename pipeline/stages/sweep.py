"""Sweep: a grid (or a seeded random draw from it) of full pipeline runs, compared.

Every main parameter may be a comma-separated list (`-P hidden_units=16,50,128`).
Each trial is a whole `main` run nested under one parent run tagged
`stage=sweep`; trials share their data runs when the data parameters agree.
A failed trial is recorded as FAILED and the sweep goes on. The best trial is
the one with the lowest validation loss (`best_val_loss`); the test split only
reports. The parent logs `best_val_loss` and `best_test_rmse` (a collection:
`best_test_smape`), the tag `best_run_id`, the results table (`results.csv`,
`results.md`), `plots/test_rmse_by_parameter.png` (`test_smape_...`) and
`plots/val_loss_curves.png`, and
registers the best trial's model, moving the alias `champion` only when it has
a lower validation loss than the current champion on the same data (the same
data means the same validation split).
"""

import itertools
import traceback

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from pipeline import params, plots, registry, tables, tracking
from pipeline.stages import compare, generate_data, main, program



def parse_grid(stage, raw_values):
    """Like `params.parse`, for the sweep: each main parameter becomes a list of
    checked values ("16,50" → [16, 50]); the sweep's own parameters stay single
    values. Every combination is checked as `params.check_combination` does."""
    params.check_known(stage, raw_values)
    grid = {}
    for name in params.SEARCHED_PARAMS:
        raw = raw_values.get(name)
        if raw is None:
            grid[name] = [params.PARAMS[name].default]
            continue
        values = [params.PARAMS[name].parse(part) for part in str(raw).split(",")]
        grid[name] = list(dict.fromkeys(values))  # once each, in the order given
    scalars = params.parse_values(raw_values, [n for n in params.STAGE_PARAMS[stage] if n not in grid])
    for combination in itertools.product(*grid.values()):
        params.check_combination(dict(zip(grid, combination)))
    return {**grid, **scalars}


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
    return "-".join(params.PARAMS[name].trial_label(params.PARAMS[name].format(trial[name])) for name in swept)


def run(max_trials, sweep_seed, registered_model_name, **grid):
    """Runs the trials one after another; returns (parent run id, best main run id or None)."""
    swept = [name for name, values in grid.items() if len(values) > 1]
    chosen = trials(grid, max_trials, sweep_seed)
    generate_data.prepare_each(chosen)  # parse_grid checked everything else
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
                # A sweep compares new networks: init=auto there trains one, without the pretrained candidates.
                main.run(run_name=name, quiet=True, register=False, resume_from="none",
                         **{**trial, "init": "none" if trial.get("init", "auto") == "auto" else trial["init"]})
            except Exception:  # a failed trial is recorded (FAILED, with its error tag); the sweep goes on
                print(f"trial {name} failed:\n{traceback.format_exc(limit=3)}", flush=True)

        runs = compare.pipeline_runs([parent.info.experiment_id], parent.info.run_id)
        finished = [r for r in runs if r.info.status == "FINISHED" and "best_val_loss" in r.data.metrics]
        mlflow.log_metrics({"n_trials": len(runs), "n_failed": len(runs) - len(finished)})
        _log_plots(finished, swept)
        best = min(finished, key=lambda r: r.data.metrics["best_val_loss"]) if finished else None
        if best is not None:
            reported = registry.reported_metric(best.data.metrics)
            mlflow.log_metrics({"best_val_loss": best.data.metrics["best_val_loss"],
                                f"best_{reported}": best.data.metrics[reported]})
            mlflow.set_tag("best_run_id", best.info.run_id)
            message = registry.update_champion(registered_model_name, best)
        else:
            message = "No trial finished: nothing registered."
        mlflow.set_tag("champion", message)
        # After the registry has its say: the table marks the best trial and the champion.
        header, rows = compare.runs_table(runs)
        mlflow.log_text(tables.to_csv(header, rows), "results.csv")
        mlflow.log_text(tables.to_markdown(header, rows), "results.md")
    print(tables.to_markdown(header, rows))
    print(message)
    # The sweep's own id appears nowhere else but in MLflow's log lines.
    print(f"Sweep run {parent.info.run_id}; its trials again: lstm-compare --parent_run_id {parent.info.run_id}")
    return parent.info.run_id, best.info.run_id if best else None


def _log_plots(finished, swept):
    if not finished:
        return
    reported = registry.reported_metric(finished[0].data.metrics)
    scores = [r.data.metrics.get(reported, float("nan")) for r in finished]
    if swept:
        values = {name: [r.data.params[name] for r in finished] for name in swept}
        tracking.log_figure(plots.metric_by_parameter(values, scores, reported), f"{reported}_by_parameter")
    client = MlflowClient()
    curves = {}
    for r in finished:
        history = sorted(client.get_metric_history(r.data.tags["train_run_id"], "val_loss"), key=lambda m: m.step)
        curves[r.info.run_name] = ([m.step for m in history], [m.value for m in history])
    tracking.log_figure(plots.loss_curves(curves), "val_loss_curves")


if __name__ == "__main__":
    program("sweep", run, parse=parse_grid)
