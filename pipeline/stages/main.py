"""The whole pipeline as one parent run: generate_data → train → evaluate, and
for a CSV series or a collection → forecast (the served model, trained on
every point). A series and a collection (a long-format CSV with the column
`id_column`) run the same stages; each stage reads which it has from the data.

Each stage is a nested child run; outputs pass between them as artifact URIs.
A finished generate_data run with exactly the same parameters (as logged) and
the same code version is reused unless `reuse_data` is 'false'. With
`resume_from`, an interrupted main run continues: its train run resumes from
its last checkpoint, on the same data. The headline
test metrics are logged on the parent too, so runs compare at a glance.
"""

from pipeline import metrics, params, tables
from pipeline.errors import ParamError
from pipeline.stages import program

# MLflow, TensorFlow and the stages that need them are imported where they are
# used: a bad parameter is refused before they load, in a fraction of a second
# (benchmarks/startup.py), and lstm-compare never loads TensorFlow.



def run(run_name=None, quiet=False, parent_run_id=None, tags=None, epoch_hook=None, register=True, **values):
    """Runs the stages under one parent run; returns the run ids and metrics.

    With `register`, the finished model is a candidate for its series' champion
    (registry.update_champion: registered as lstm-<series>, champion if its
    validation loss on the same data is the lowest); sweeps and studies pass
    False and register only their best trial.
    `run_name` names the parent run (default: "main"); `quiet` skips the summary;
    `parent_run_id` and `tags` place and mark it (the tuner's trials);
    `epoch_hook(epoch, logs)` is called after every training epoch (train.run).
    Parameters not given take their defaults.
    """
    import mlflow

    from pipeline import tracking
    from pipeline.stages import evaluate, forecast, generate_data, train

    values = {**params.defaults("main"), **values}
    data_values = {name: values[name] for name in params.DATA_PARAMS}
    train_values = {name: values[name] for name in params.TRAIN_PARAMS}
    evaluate_values = {name: values[name] for name in params.EVALUATE_PARAMS}
    # Everything that can be checked is, before the run opens: the series must
    # give every split a window, the training choices must suit it, a run to
    # resume must match.
    prepared = generate_data.prepare(**data_values)
    chosen_settings = train.check_data(train_values, prepared[0], prepared[1])
    many = prepared[1]["source"] == "collection"
    evaluate.check_values(evaluate_values, many)
    stages = "generate_data → train → evaluate" + (" → forecast" if values["data_source"] != "sine" else "")
    description = (
        f"The whole pipeline on {values['data_source']}: {stages}, nested below"
        + (f" (one global LSTM over its {len(prepared[1]['ids'])} series; each series' last {values['horizon']} "
           f"points are its test targets, {prepared[1]['folds_text']})" if many else "")
        + ". Headline test metrics are logged here; the comparison table is on the evaluate run."
    )
    if many:
        tags = {"data": "collection", **(tags or {})}
    resume_from = values.get("resume_from", "none")
    interrupted_train = None
    if resume_from != "none":
        interrupted_train = _interrupted_train_run(tracking.interrupted_run(resume_from, "main", values))
    with tracking.stage_run("main", run_name, description, parent_run_id, tags) as parent:
        tracking.log_params(values)
        reused = None
        if interrupted_train is not None:
            mlflow.set_tag("resumed_from", resume_from)
            data_uri = interrupted_train.data.tags["resolved_data_uri"]
            data_run_id = tracking.run_id_of(data_uri)
            reused = mlflow.get_run(data_run_id)
        else:
            if values["reuse_data"] == "true":
                sha256 = prepared[2].get("source_sha256")
                reused = tracking.find_reusable_run(
                    "generate_data", data_values, tags={"source_sha256": sha256} if sha256 else None
                )
            if reused:
                for note in prepared[1].get("notes", []):  # what was assumed in reading the file
                    print(f"generate_data: {note}", flush=True)
            data_run_id = reused.info.run_id if reused else generate_data.run(**data_values, prepared=prepared)
            data_uri = f"runs:/{data_run_id}/data"
        if interrupted_train is not None and interrupted_train.info.status == "FINISHED":
            train_run_id = interrupted_train.info.run_id  # stopped during evaluate: the model is done
        else:
            train_run_id = train.run(
                data_uri=data_uri, **train_values,
                resume_from=interrupted_train.info.run_id if interrupted_train is not None else "none",
                epoch_hook=epoch_hook, init_plan=None if many else chosen_settings["init_plan"],
            )
        evaluate_run_id, scores, table = evaluate.run(
            model_uri=f"runs:/{train_run_id}/{train.KERAS_MODEL}", data_uri=data_uri, **evaluate_values
        )
        run_ids = {"main": parent.info.run_id, "generate_data": data_run_id, "train": train_run_id,
                   "evaluate": evaluate_run_id}
        through = {}
        if values["data_source"] != "sine":  # a series has a future; the sine's windows are not one series
            run_ids["forecast"], served_uri, through = forecast.run(
                model_uri=f"runs:/{train_run_id}/{train.KERAS_MODEL}", data_uri=data_uri, refit=values["refit"])
        trained = mlflow.get_run(train_run_id).data
        if many:  # every forecaster's scores, and how training went
            headline = {**scores, **{name: trained.metrics[name] for name in
                                     ("best_epoch", "epochs_trained", "train_seconds", "val_mase",
                                      "seasonal_naive_val_mase", "series_worse_than_seasonal_naive")}}
        else:
            headline = {name: scores[name] for name in metrics.HEADLINE_METRICS if name in scores}
        # The validation loss of the weights kept (the model's best epoch): the score models are chosen by.
        headline["best_val_loss"] = trained.metrics["best_val_loss"]
        data_tags = (reused or mlflow.get_run(data_run_id)).data.tags
        model_uri = served_uri if through else trained.tags["model_uri"]
        # In one request: the headline, where its parts are, and what 'auto' became (on the run people
        # compare: lstm-compare shows these, not "auto").
        tracking.log_batch(headline, {
            **{f"{stage}_run_id": run_id for stage, run_id in run_ids.items() if stage != "main"},
            "resolved_time_steps": str(prepared[1]["time_steps"]),
            **{name: value for name, value in trained.tags.items()
               if name.startswith("resolved_") and name[len("resolved_"):] in params.PARAMS},
            **({"init_choice": trained.tags["init_choice"]} if "init_choice" in trained.tags else {}),
            "data_reused": str(reused is not None).lower(),
            "model_uri": model_uri,
            "data_sha256": data_tags.get("data_sha256", ""),
            **({"series": data_tags["series"],
                "worse_than_seasonal_naive": trained.tags["worse_than_seasonal_naive"]} if many else {}),
            **({"notes": data_tags["data_notes"]} if many and "data_notes" in data_tags else {}),
            **through,
        })
    registered = None
    if register:
        from pipeline import registry

        registered = registry.update_champion("auto", mlflow.get_run(parent.info.run_id))
    if not quiet and many:
        print(collection_summary(run_ids, prepared[1], table, chosen_settings, model_uri, registered, through,
                                 trained.metrics))
    elif not quiet:
        chosen = {name: trained.tags.get(f"resolved_{name}", "") for name in train.AUTO_TRAIN_PARAMS}
        print(summary(run_ids, reused is not None, table, model_uri, chosen, values["interval_level"], scores,
                      registered, trained.tags.get("init_choice")
                      if trained.tags.get("resolved_init", "local") != "local"
                      or "candidates" in trained.tags.get("init_choice", "") else None, through))
    return run_ids, scores


def _interrupted_train_run(main_run):
    """The train run nested under an interrupted main run, whose checkpoint resumes it."""
    import mlflow

    runs = mlflow.search_runs(
        [main_run.info.experiment_id],
        f"tags.mlflow.parentRunId = '{main_run.info.run_id}' and tags.stage = 'train'",
        order_by=["attributes.start_time DESC"], max_results=1, output_format="list",
    )
    if not runs:
        raise ParamError(
            f"Received `resume_from`={main_run.info.run_id}: that main run stopped before training began, "
            "so there is no checkpoint; start it afresh without resume_from."
        )
    return runs[0]


def summary(run_ids, data_reused, table, model_uri, chosen, interval_level, scores, registered=None, init_choice=None,
            through=None):
    from pipeline import tracking

    lines = ["", "Runs:"]
    for stage, run_id in run_ids.items():
        note = "  (reused: same parameters and code)" if stage == "generate_data" and data_reused else ""
        lines.append(f"  {stage:<14} {run_id}{note}")
    lines += ["", "Model: " + ", ".join(f"{name}={value}" for name, value in chosen.items())]
    if init_choice:  # a pretrained start was among the candidates: which model, and why
        lines.append(init_choice[0].upper() + init_choice[1:])
    lines += ["", "Test metrics (lower is better; smape in %):", "", tables.to_markdown(metrics.COMPARISON_HEADER, table)]
    lines += [
        f"Prediction intervals ({100 * interval_level:g} %): {scores['test_coverage']:.1f} % of the test targets "
        f"inside, mean width {scores['test_interval_width']:.4g}",
        "",
    ]
    if through:
        lines += [f"Evaluated model: {through['evaluated_model_trained_on']}.",
                  f"Served model: {through['served_model_trained_on']}, through {through['newest_time_trained_on']}; "
                  "forecasts.csv on the forecast run holds its forecast of the future.", ""]
    lines += [
        f"Compare runs in the MLflow UI:  {tracking.ui_command()}",
        f"Serve the model on 127.0.0.1:5001:  mlflow models serve -m {model_uri} --env-manager local --port 5001",
        registered or "Not registered.",
        "",
    ]
    return "\n".join(lines)


def collection_summary(run_ids, manifest, table, settings, model_uri, registered, through, trained):
    from pipeline import tracking
    from pipeline.stages import train
    from pipeline.stages.evaluate import COLLECTION_METRICS

    lines = ["", f"Runs (one global model over {len(manifest['ids'])} series):"]
    lines += [f"  {stage:<14} {run_id}" for stage, run_id in run_ids.items()]
    folds = manifest["folds"]
    lines += ["",
              f"Validation: {folds['n_windows']} cut-off(s), {folds['step_size'] or folds['horizon']} apart, before "
              f"each series' last {settings.horizon} points; best epoch {int(trained['best_epoch'])}.",
              train.versus_naive_line(trained["val_mase"], trained["seasonal_naive_val_mase"],
                                      int(trained["series_worse_than_seasonal_naive"]), len(manifest["ids"]),
                                      folds["n_windows"]),
              f"Evaluated model: {through['evaluated_model_trained_on']}.",
              f"Served model: {through['served_model_trained_on']}, through {through['newest_time_trained_on']}; "
              "forecasts.csv on the forecast run holds its forecast of the future.", "",
              f"Test metrics, averaged over the series (sMAPE and MAPE in %, coverage of the "
              f"{100 * settings.interval_level:g} % intervals in %):", "",
              tables.to_markdown(("forecaster",) + COLLECTION_METRICS, table),
              "Per series: cross_validation.csv and per_series_metrics.csv on the evaluate run.", "",
              f"Compare runs in the MLflow UI:  {tracking.ui_command()}",
              f"Serve the model on 127.0.0.1:5001:  mlflow models serve -m {model_uri} --env-manager local --port 5001",
              registered or "Not registered.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    program("main", run)
