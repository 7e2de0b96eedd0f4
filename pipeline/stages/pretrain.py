"""The pretrain entry point: one global LSTM over a corpus of many series,
registered as lstm-pretrained, the start of `-P init=pretrained`.

    mlflow run . -e pretrain --env-manager local                 # M1, M3 and 2000 synthetic series
    mlflow run . -e pretrain -P corpus=m1,m3                     # the competitions only

Every series of the corpus holds out its last `max_horizon` points for a test
(reported, never used) and the `max_horizon` before them for validation (the
epoch kept, the interval calibrated across series). A series too short for a
training window before those (3 · `max_horizon` points or fewer: most of M3's
yearly series) trains on every window of all its points instead and is neither
validated nor tested, so the model has seen whole short histories, not only
truncated long ones; one with no window at all (`max_horizon` points or fewer)
is skipped and counted. Training windows show a random number (at least
`min_visible`) of their last values, the rest padded, so that the model
forecasts from short histories as well as long ones. Logged as a collection's
train run is (pipeline/stages/train.py): per-epoch losses, the model in every format,
test sMAPE and MASE beside the naive forecast's, and tags that name the corpus
(`corpus_series`, `corpus_sha256`, the held-out ids) and the code version.
"""

import numpy as np

from pipeline.stages import program

EPOCHS = 100
PATIENCE = 10
WINDOWS_PER_SERIES = 16
BATCH_SIZE = 256


def prepare(values):
    """The corpus as a Collection and the GlobalSettings, every check done: (collection, every_point, settings,
    notes); `every_point` marks the series that train on all their points (global_model.fit)."""
    from custom_layers import transforms
    from pipeline import collection as coll
    from pipeline import pretrained
    from pipeline.errors import ParamError
    from pipeline.global_model import GlobalSettings

    names = [part.strip() for part in values["corpus"].split(",")]
    for name in names:
        if name not in pretrained.CORPORA and not name.endswith(".csv"):
            raise ParamError(f"Received `corpus`={values['corpus']!r}: {name!r} is none of {', '.join(pretrained.CORPORA)} "
                             "and not a .csv collection.")
        if name.endswith(".csv"):
            from pathlib import Path

            if not Path(name).is_file():
                raise ParamError(f"Received `corpus`={values['corpus']!r}: no such file {name!r}.")
    horizon, width = values["max_horizon"], values["input_width"]
    if values["min_visible"] > width:
        raise ParamError(f"Received `min_visible`={values['min_visible']}, more than `input_width`={width}.")
    series, notes = pretrained.load_corpus(names, values["synthetic_series"], values["seed"])
    if not series:
        raise ParamError(f"Received `corpus`={values['corpus']!r}: it has no series.")
    collection_ = coll.from_arrays(list(series), list(series.values()))
    collection_, note = coll.check_lengths(collection_, horizon, min_length=horizon + 1)
    notes += [note] if note else []
    every_point = coll.no_training_window(collection_, width, horizon, coll.Folds(horizon).holdout("select"))
    if every_point.any():
        notes.append(f"{int(every_point.sum())} series of {3 * horizon} points or fewer have no training window "
                     "before the validation period: they train on all their points and are neither validated nor "
                     "tested")
    needed = transforms.min_windows_for(values["interval_level"])
    if (~every_point).sum() < needed:
        raise ParamError(f"Received `interval_level`={values['interval_level']}: calibrating it across series needs "
                         f"{needed} series of more than {3 * horizon} points; the corpus has {(~every_point).sum()}.")
    chosen = {"epochs": EPOCHS, "patience": PATIENCE, "windows_per_series": WINDOWS_PER_SERIES}
    chosen = {name: default if values[name] == "auto" else values[name] for name, default in chosen.items()}
    settings = GlobalSettings(
        input_width=width, horizon=horizon, hidden_units=values["hidden_units"], learning_rate=values["learning_rate"],
        batch_size=BATCH_SIZE, epochs=chosen["epochs"], patience=chosen["patience"], target="last", season=0,
        windows_per_series=chosen["windows_per_series"], interval_level=values["interval_level"], seed=values["seed"],
        min_visible=values["min_visible"])
    return collection_, every_point, settings, notes


def run(**values):
    """Pretrains, logs and registers; returns the run id."""
    import mlflow

    from pipeline import collection as coll
    from pipeline import global_model, logged_model, metrics, plots, pretrained, registry, tracking
    from pipeline.stages import train

    collection_, every_point, settings, notes = prepare(values)
    for note in notes:
        print(f"pretrain: {note}", flush=True)
    horizon = settings.horizon
    description = (f"A global LSTM pretrained on {len(collection_)} series ({values['corpus']}): the start of "
                   f"-P init=pretrained. Reads {settings.input_width} values, forecasts {horizon} steps.")
    with tracking.stage_run("pretrain", None, description, tags={"data": "corpus"}) as active:
        tracking.log_params(values)
        mlflow.set_tags({
            "resolved_epochs": str(settings.epochs), "resolved_patience": str(settings.patience),
            "resolved_windows_per_series": str(settings.windows_per_series), "corpus_series": str(len(collection_)),
            "corpus_every_point": str(int(every_point.sum())),
            "corpus_sha256": coll.sha256(collection_), "data_sha256": coll.sha256(collection_),
            "held_out": " ".join(f"{name}/{key}" for name, keys in pretrained.HELD_OUT.items() for key in keys),
            "validation": " ".join(f"{name}/{key}" for name, keys in pretrained.VALIDATION.items() for key in keys),
            "short_validation": " ".join(f"{name}/{key}" for name, keys in pretrained.SHORT_VALIDATION.items()
                                         for key in keys)})
        if notes:
            mlflow.set_tag("notes", "; ".join(notes))
        training, serving = global_model.build(settings, global_model.typical_std(collection_))  # no spread floor: any series
        history, seconds = train.fit_collection(training, collection_, settings, every_point=every_point)
        tested = coll.subset(collection_, np.flatnonzero(~every_point))  # the others trained on their test points
        half_widths = global_model.calibrate(serving, tested, settings)
        out, x, y = global_model.forecast_split(serving, tested, settings, "test")
        before = [tested.series(i)[:-horizon] for i in range(len(tested))]
        scale = np.array([metrics.seasonal_naive_scale(s, 0) for s in before])
        naive = np.repeat(np.asarray(x).reshape(len(x), -1)[:, -1:], horizon, axis=1)
        lstm = metrics.per_series_scores(y, out["forecast"], out["lower"], out["upper"], scale)
        persistence = metrics.per_series_scores(y, naive, naive, naive, scale)
        scores = {"test_smape": float(np.nanmean(lstm["smape"])), "test_mase": float(np.nanmean(lstm["mase"])),
                  "test_coverage": float(np.nanmean(lstm["coverage"])),
                  "naive_test_smape": float(np.nanmean(persistence["smape"])),
                  "naive_test_mase": float(np.nanmean(persistence["mase"]))}
        mlflow.log_metrics({**scores, **{f"interval_half_width_step{k}": float(q) for k, q in enumerate(half_widths, 1)}})
        tracking.log_figure(plots.loss_curve(history.train_loss, history.val_loss, history.best_epoch,
                                             ylabel="MAE / window spread"), "loss_curve")
        model_uri = logged_model.log_models(serving, settings.input_width, horizon, settings.interval_level,
                                      {"data_source": values["corpus"], "time_step": "1"}, series_input=True)
        mlflow.set_tag("model_uri", model_uri)
    name = pretrained.NAME if values["registered_model_name"] == "auto" else values["registered_model_name"]
    registered = registry.update_champion(name, mlflow.get_run(active.info.run_id))
    print(f"\nPretrained on {len(collection_)} series in {seconds:.0f} s ({len(history.val_loss)} epochs, best "
          f"{history.best_epoch}): test sMAPE {scores['test_smape']:.2f} % (naive {scores['naive_test_smape']:.2f} %), "
          f"MASE {scores['test_mase']:.3f} (naive {scores['naive_test_mase']:.3f}), 90 % coverage "
          f"{scores['test_coverage']:.1f} %.\n{registered}\nUse it: mlflow run . -P data_source=<csv> -P "
          f"init=models:/{name}@champion\n", flush=True)
    return active.info.run_id


if __name__ == "__main__":
    program("pretrain", run)
