"""What a user sees when a stage fails: one line, FAILED runs with the reason
tagged, nothing presented as a finished model. Real SQLite store, this process."""

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipeline.stages import command_line, evaluate, generate_data, main, train
from tests.stages.test_stages import SMALL_DATA, SMALL_TRAIN


def all_runs():
    return {run.data.tags.get("stage"): run
            for run in mlflow.search_runs(search_all_experiments=True, output_format="list")}


def test_a_loss_that_diverges_fails_train_and_main_and_leaves_no_model(tracking_store, tmp_path, capsys):
    huge = tmp_path / "huge.csv"
    huge.write_text("value\n" + "\n".join(f"{1e20 * (2 + np.sin(t / 5)):.6e}" for t in range(200)) + "\n")
    with pytest.raises(SystemExit) as exit_:
        command_line("main", main.run, ["--data_source", str(huge), "--scaling", "none", "--time_steps", "12",
                                        "--epochs", "3"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Training diverged: train_loss became inf at epoch 1, batch 1. Try a lower "
                          "learning rate (-P learning_rate, now 0.001), -P scaling=standard")
    assert err.count("\n") == 1
    runs = all_runs()
    assert set(runs) == {"main", "generate_data", "train"}  # evaluate never started
    for stage in ("main", "train"):
        assert runs[stage].info.status == "FAILED"
        assert runs[stage].data.tags["error"].startswith("Training diverged: train_loss became inf")
        assert "model_uri" not in runs[stage].data.tags
    assert runs["generate_data"].info.status == "FINISHED"
    train_artifacts = {a.path for a in MlflowClient().list_artifacts(runs["train"].info.run_id)}
    assert not train_artifacts & {"model", "keras_model", "saved_model"}


def test_a_series_too_short_for_its_windows_stops_main_before_any_run(tracking_store, tmp_path, capsys):
    # 30 points cannot hold a test, a validation and a training window of horizon 12, however short the window:
    # the defaults adapt to a short series (test_short_series.py), but not this far.
    short = tmp_path / "short.csv"
    short.write_text("value\n" + "\n".join(str(v) for v in range(30)) + "\n")
    with pytest.raises(SystemExit) as exit_:
        command_line("main", main.run, ["--data_source", str(short), "--horizon", "12"])
    assert exit_.value.code == 2
    printed = capsys.readouterr().err
    # One line, about what the user set (nothing of time_steps, which they left 'auto'), with settings that run.
    assert printed.startswith(f"error: {short} has 30 points, too few for the defaults: with time_steps='auto'")
    assert printed.count("\n") == 1 and "`time_steps`" not in printed and "this would run: -P time_steps=" in printed
    assert all_runs() == {}


def test_data_changed_in_the_store_is_an_error_naming_the_file_never_a_silent_retrain(tracking_store, capsys):
    data_run = generate_data.run(**SMALL_DATA)
    artifact = mlflow.artifacts.download_artifacts(f"runs:/{data_run}/data")  # a local store: the file itself
    stored = MlflowClient().get_run(data_run).info.artifact_uri.removeprefix("file://") + "/data/y_train.npy"
    values = np.load(stored)
    values[0, 0] += 0.5
    np.save(stored, values)
    assert artifact  # downloaded before the change; train downloads afresh
    with pytest.raises(SystemExit) as exit_:
        command_line("train", train.run, ["--data_uri", f"runs:/{data_run}/data", "--epochs", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Data file ") and "y_train.npy does not match its manifest: sha256 " in err
    failed = all_runs()["train"]
    assert failed.info.status == "FAILED" and "y_train.npy does not match its manifest" in failed.data.tags["error"]
    assert "model_uri" not in failed.data.tags


def test_a_model_file_that_would_run_pickled_code_is_refused_by_safe_mode(tracking_store, tmp_path, capsys):
    data_run = generate_data.run(**SMALL_DATA)
    inputs = keras.Input((None, 1))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda window: window[:, -1, :])(inputs))
    unsafe.save(tmp_path / "model.keras")
    with mlflow.start_run() as handed:
        mlflow.log_artifact(str(tmp_path / "model.keras"), "keras_model")
    with pytest.raises(SystemExit) as exit_:
        command_line("evaluate", evaluate.run, ["--model_uri", f"runs:/{handed.info.run_id}/keras_model/model.keras",
                                                "--data_uri", f"runs:/{data_run}/data"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Model file ") and "with safe_mode on (ValueError: Requested the deserialization " \
        "of a `Lambda` layer" in err
    assert all_runs()["evaluate"].info.status == "FAILED"


def test_resume_from_refuses_finished_runs_and_other_parameters(tracking_store, capsys):
    data_uri = f"runs:/{generate_data.run(**SMALL_DATA)}/data"
    finished = train.run(data_uri=data_uri, **{**SMALL_TRAIN, "epochs": 1})
    with pytest.raises(SystemExit):
        command_line("train", train.run, ["--data_uri", data_uri, "--epochs", "1", "--hidden_units", "8",
                                          "--learning_rate", "0.01", "--batch_size", "16", "--patience", "0",
                                          "--seed", "0", "--resume_from", finished])
    assert capsys.readouterr().err == (
        f"error: Received an invalid value for parameter `resume_from`: run {finished} FINISHED, there is nothing "
        "to resume; resume a KILLED or FAILED run.\n"
    )
    MlflowClient().set_terminated(finished, "KILLED")  # as if interrupted after its last epoch
    with pytest.raises(SystemExit):
        command_line("train", train.run, ["--data_uri", data_uri, "--resume_from", finished])
    err = capsys.readouterr().err
    assert err.startswith(f"error: Received `resume_from`={finished}, which ran with other parameters: resume it "
                          "with the same ones (-P hidden_units=8 -P learning_rate=0.01 -P epochs=1 -P batch_size=16 "
                          "-P patience=0 -P seed=0)")


def test_evaluate_refuses_a_season_longer_than_the_windows_before_loading_the_model(tracking_store, capsys):
    data_run = generate_data.run(**SMALL_DATA)  # windows of 12: 11 inputs
    with pytest.raises(SystemExit) as exit_:
        command_line("evaluate", evaluate.run, ["--model_uri", "runs:/0123456789abcdef0123456789abcdef/none.keras",
                                                "--data_uri", f"runs:/{data_run}/data", "--season", "40"])
    assert exit_.value.code == 2
    # The model URI does not exist: the season was refused before anything tried to load it.
    assert capsys.readouterr().err == (
        "error: Received an invalid value for parameter `season`, expected 0 or an integer from 1 to the input "
        "length 11 (time_steps - horizon), which the sine's baseline reads, got 40.\n"
    )
    assert all_runs()["evaluate"].info.status == "FAILED"
