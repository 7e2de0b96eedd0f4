"""Compare pipeline runs from the terminal: `lstm-compare` or `mlflow run . -e compare`.

Prints one row per `main` run (of an experiment, or nested under a parent run
such as a sweep): its name, id, status, duration, the parameters that differ
between the runs, and the headline test metrics. The sweep logs the same table.
"""

import mlflow
from mlflow.tracking import MlflowClient

from pipeline import metrics, params, tables, workarounds
from pipeline.errors import ParamError
from pipeline.stages import command_line

COLUMNS = ["run", "run_id", "status", "duration_s"]


def pipeline_runs(experiment_ids, parent_run_id=None):
    """The `main` runs of the experiments (or under `parent_run_id`), oldest first."""
    query = "tags.stage = 'main'"
    if parent_run_id:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    return MlflowClient().search_runs(experiment_ids, query, order_by=["attributes.start_time ASC"],
                                      max_results=5000)


def table(runs):
    """(header, rows): one row per run, with the parameters that differ between them."""
    names = [name for name in params.STAGE_PARAMS["main"]
             if len({run.data.params.get(name) for run in runs}) > 1]
    shown = [name for name in metrics.HEADLINE_METRICS if any(name in run.data.metrics for run in runs)]
    rows = []
    for run in runs:
        ended = run.info.end_time or run.info.start_time
        rows.append(
            [run.info.run_name, run.info.run_id, run.info.status, round((ended - run.info.start_time) / 1000, 1)]
            + [run.data.params.get(name, "") for name in names]
            + [run.data.metrics.get(name, float("nan")) for name in shown]
        )
    return COLUMNS + names + shown, rows


def run(experiment, parent_run_id):
    """Prints the table; returns (header, rows)."""
    if experiment == "auto":
        # What `mlflow.start_run` would use: MLFLOW_EXPERIMENT_ID/NAME, set_experiment, or Default.
        experiment_ids = [workarounds.current_experiment_id()]
    else:
        found = mlflow.get_experiment_by_name(experiment) or (
            mlflow.get_experiment(experiment) if experiment.isdigit() else None
        )
        if found is None:
            raise ParamError(
                f"Received an invalid value for parameter `experiment`, expected 'auto' or the name or id "
                f"of an experiment in {mlflow.get_tracking_uri()}, got {experiment!r}."
            )
        experiment_ids = [found.experiment_id]
    runs = pipeline_runs(experiment_ids, None if parent_run_id == "none" else parent_run_id)
    if not runs:
        raise ParamError(f"No pipeline runs to compare in experiment {experiment_ids[0]}"
                         f"{'' if parent_run_id == 'none' else f' under run {parent_run_id}'}.")
    header, rows = table(runs)
    print(tables.to_markdown(header, rows), end="")
    return header, rows


def main(argv=None):
    """The `lstm-compare` console script."""
    command_line("compare", run, argv)


if __name__ == "__main__":
    main()
