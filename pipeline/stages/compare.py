"""Compare pipeline runs from the terminal: `lstm-compare` or `mlflow run . -e compare`.

Answers "which is best": one table per series (runs on the same data_source and
column, whose losses share a scale), with the parameters that differ between
its runs as each run resolved them (what `auto` chose, not "auto"), the
validation loss that selection goes by and the test metrics beside it, and a
note marking the best run by validation loss and the series' registered
champion. `--table wide` prints every run in one table with every headline
metric, as a sweep's `results.csv` holds them.
"""

import os

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import metrics, params, registry, tables, tracking, workarounds
from pipeline.errors import ParamError
from pipeline.stages import command_line

COLUMNS = ["run", "run_id", "status", "duration_s"]
# What the per-series table shows: the score selection goes by, then what it reports.
SERIES_METRICS = ["best_val_loss", "test_rmse", "test_mase", "test_coverage", "persistence_test_rmse"]
BEST = "best (val)"


def pipeline_runs(experiment_ids, parent_run_id=None):
    """The `main` runs of the experiments (or under `parent_run_id`), oldest first."""
    query = "tags.stage = 'main'"
    if parent_run_id:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    return MlflowClient().search_runs(experiment_ids, query, order_by=["attributes.start_time ASC"],
                                      max_results=5000)


def resolved(run, name):
    """A parameter as the run resolved it: its `resolved_<name>` tag where 'auto' was
    resolved, floats to 4 significant digits."""
    value = run.data.tags.get(f"resolved_{name}", run.data.params.get(name, ""))
    if params.PARAMS[name].type is float and value not in ("", "auto"):
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value
    return value


def best_run_id(runs):
    """The finished run with the lowest validation loss, or None."""
    finished = [r for r in runs if r.info.status == "FINISHED" and "best_val_loss" in r.data.metrics]
    return min(finished, key=lambda r: r.data.metrics["best_val_loss"]).info.run_id if finished else None


def champion_run_id(runs):
    """The run whose model is its series' champion (`lstm-<series>@champion`), if it is among `runs`."""
    if not runs:
        return None
    name = registry.registered_model_name("auto", runs[0].data.params.get("data_source", "sine"))
    try:
        version = MlflowClient().get_model_version_by_alias(name, registry.CHAMPION)
    except MlflowException:
        return None
    run_id = version.tags.get("run_id")
    return run_id if any(r.info.run_id == run_id for r in runs) else None


def runs_table(runs, shown_metrics=None):
    """(header, rows): one row per run, with the parameters that differ between
    them (as resolved), the metrics, and a note marking the best run by
    validation loss and the champion. `shown_metrics`: default every headline
    metric any run has."""
    names = [name for name in params.STAGE_PARAMS["main"]
             if len({resolved(run, name) for run in runs}) > 1]
    shown = [name for name in shown_metrics or metrics.HEADLINE_METRICS if any(name in run.data.metrics for run in runs)]
    best, champion = best_run_id(runs), champion_run_id(runs)
    rows = []
    for run in runs:
        ended = run.info.end_time or run.info.start_time
        note = ", ".join(mark for mark, marked in ((BEST, run.info.run_id == best),
                                                   (registry.CHAMPION, run.info.run_id == champion)) if marked)
        rows.append(
            [run.info.run_name, run.info.run_id, run.info.status, round((ended - run.info.start_time) / 1000, 1)]
            + [resolved(run, name) for name in names]
            + [run.data.metrics.get(name, float("nan")) for name in shown]
            + [note]
        )
    return COLUMNS + names + shown + ["note"], rows


def series_of(run):
    return run.data.params.get("data_source", "?"), run.data.params.get("column", "auto")


def by_series(runs):
    """{(data_source, column): runs}, in the order each series first ran."""
    groups = {}
    for run in runs:
        groups.setdefault(series_of(run), []).append(run)
    return groups


def run(experiment, parent_run_id, table="by_series"):
    """Prints the tables; returns {series: (header, rows)} ({'all': ...} for the wide table)."""
    table_kind = table
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
    if table_kind == "wide":
        header, rows = runs_table(runs)
        print(tables.to_markdown(header, rows), end="")
        return {"all": (header, rows)}
    printed = {}
    for (source, column), group in by_series(runs).items():
        header, rows = runs_table(group, SERIES_METRICS)
        what = source if column == "auto" else f"{source}, column {column}"
        print(f"{what}: {len(group)} run{'s' if len(group) > 1 else ''} "
              f"(registered as {registry.registered_model_name('auto', source)})\n")
        print(tables.to_markdown(header, rows))
        printed[(source, column)] = (header, rows)
    return printed


def main(argv=None):
    """The `lstm-compare` console script."""
    # One try, a short wait: an interactive command says at once that the server cannot answer.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    command_line("compare", tracking.store_errors_in_one_line(run), argv, prog="lstm-compare")


if __name__ == "__main__":
    main()
