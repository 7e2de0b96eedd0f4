"""The Model Registry: one registered model per series, and the champion rule.

Every finished `main` run (and the best trial of a sweep or a study) is a
candidate for its series' champion. It is registered as `lstm-<series>`
(`lstm-sine`, or `lstm-` and the CSV file's name) unless the user names the
model, and the alias `champion` moves to it only when its validation loss is
lower than the champion's on the same data. The test RMSE is reported beside
it, never compared.
"""

import re

CHAMPION = "champion"


def registered_model_name(name, data_source):
    """`registered_model_name` with 'auto' made a name: one registered model, and so
    one champion, per series: `lstm-sine`, or `lstm-` and the CSV file's name."""
    if name != "auto":
        return name
    if data_source == "sine":
        return "lstm-sine"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", data_source.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0])
    return f"lstm-{stem.strip('-') or 'series'}"


def reported_metric(metrics):
    """The test metric reported beside the validation loss, never compared: a series'
    RMSE, a collection's mean sMAPE (its series differ in scale)."""
    return "test_rmse" if "test_rmse" in metrics else "test_smape"


def update_champion(name, best):
    """Registers `best`'s model (a finished main run) under `name` ('auto': the
    series' own name, `registered_model_name`); moves the alias `champion` to it
    only if there is none yet, or if its validation loss (`best_val_loss`) is
    lower than the champion's on the same data (same data_sha256, so the same
    validation split). Returns a sentence saying what happened."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = registered_model_name(name, best.data.params.get("data_source", ""))
    reported = reported_metric(best.data.metrics)
    val_loss, test_score = best.data.metrics["best_val_loss"], best.data.metrics[reported]
    data_sha256 = best.data.tags.get("data_sha256", "")
    version = mlflow.register_model(
        best.data.tags["model_uri"], name,
        tags={"val_loss": repr(val_loss), reported: repr(test_score), "data_sha256": data_sha256,
              "run_id": best.info.run_id},
    )
    scores = f"val_loss {val_loss:.4g}, {reported} {test_score:.4g}"
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
                f"{champion.version} (val_loss {float(champion.tags['val_loss']):.4g}, {reported} "
                f"{float(champion.tags.get(reported, 'nan')):.4g}), stays.")
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return (f"{name}@{CHAMPION} is now version {version.version} ({scores}): "
            f"mlflow models serve -m models:/{name}@{CHAMPION} --env-manager local --port 5001")
