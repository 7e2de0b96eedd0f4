"""The tuner in this process, on one machine's defaults: a temporary SQLite tracking
store with Optuna's `optuna.db` beside it (the e2e tests run two workers on PostgreSQL)."""

import math

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.errors import ParamError
from pipeline.stages import tune

SMALL = {"n_samples": "120", "time_steps": "12", "free_run_steps": "10", "batch_size": "16", "epochs": "4",
         "patience": "0"}


def run_study(**raw):
    return tune.run(**tune.parse_space("tune", {**SMALL, **raw}))


def test_the_default_storage_is_optuna_db_beside_the_tracking_store(tracking_store, tmp_path):
    assert tune.default_storage() == f"sqlite:///{tmp_path / 'optuna.db'}"


@pytest.mark.slow
def test_a_study_is_steered_by_validation_and_ends_with_its_best_trial(tracking_store, tmp_path):
    state = run_study(study="small", n_trials="3", hidden_units="4:16", learning_rate="0.003:0.03:log",
                      pruner="none")
    assert (state["complete"], state["total"]) == (3, 3)
    client = MlflowClient()
    (parent,) = client.search_runs([mlflow.get_experiment_by_name("tests").experiment_id],
                                   "tags.stage = 'tune' and tags.study = 'small'")
    assert parent.info.status == "FINISHED"
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial in study.trials:
        (run,) = [r for r in trials if r.data.tags["optuna_trial"] == str(trial.number)]
        train = client.get_run(run.data.tags["train_run_id"])
        # The objective is the best validation loss; the test metric is recorded, never optimised.
        assert trial.value == train.data.metrics["best_val_loss"]
        assert trial.user_attrs["test_rmse"] == run.data.metrics["test_rmse"] != trial.value
        assert trial.user_attrs["epochs"] == 4
        assert 4 <= trial.params["hidden_units"] <= 16 and 0.003 <= trial.params["learning_rate"] <= 0.03
        assert int(run.data.params["hidden_units"]) == trial.params["hidden_units"]
    best = min(study.trials, key=lambda t: t.value)
    assert parent.data.tags["best_run_id"] == best.user_attrs["main_run_id"]
    assert parent.data.metrics["epochs_trained"] == 12


@pytest.mark.slow
def test_trials_draw_the_same_values_whoever_runs_them(tracking_store):
    first = run_study(study="a", n_trials="2", hidden_units="4:64", pruner="none")
    again = run_study(study="b", n_trials="2", hidden_units="4:64", pruner="none")
    storage = tune.default_storage()
    draws = [[t.params for t in optuna.load_study(study_name=name, storage=storage).trials] for name in "ab"]
    assert draws[0] == draws[1] and draws[0][0] != draws[0][1]
    assert first["complete"] == again["complete"] == 2


@pytest.mark.slow
def test_a_complete_study_runs_nothing_more(tracking_store, capsys):
    run_study(study="done", n_trials="1", pruner="none")
    capsys.readouterr()
    state = run_study(study="done", n_trials="1", pruner="none")
    assert state["total"] == 1
    printed = capsys.readouterr().out
    assert not any(line.startswith("trial ") for line in printed.splitlines()), "no trial ran"
    assert "Study done: 1 of 1 trials — 1 complete, 0 running, 0 pruned, 0 failed." in printed


@pytest.mark.slow
def test_the_median_pruner_stops_a_trial_worse_than_the_earlier_ones(tracking_store):
    # With tune_seed 2, trials 0 and 1 draw the learning rate 0.03 and trial 2 draws 1e-9, which cannot
    # learn: the median pruner (2 start-up trials, 2 warm-up epochs) stops it at the first epoch it may.
    state = run_study(study="median", n_trials="3", learning_rate="0.03,1e-9", epochs="6", pruner="median",
                      tune_seed="2")
    study = optuna.load_study(study_name="median", storage=tune.default_storage())
    assert [(t.params["learning_rate"], t.state.name) for t in study.trials] == [
        (0.03, "COMPLETE"), (0.03, "COMPLETE"), (1e-9, "PRUNED")]
    assert study.trials[2].user_attrs["epochs"] == tune.MEDIAN_WARMUP_EPOCHS + 1 == 3
    assert state["pruned"] == 1 and state["complete"] == 2


def test_the_password_of_a_storage_url_is_never_shown():
    assert tune._hide_password("postgresql+psycopg://lstm:s3cret@db:5433/optuna") == \
        "postgresql+psycopg://lstm:***@db:5433/optuna"
    assert tune._hide_password("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"


def test_trial_seeds_differ_between_neighbours():
    seeds = [tune.trial_seed(0, k) for k in range(100)] + [tune.trial_seed(1, k) for k in range(100)]
    assert len(set(seeds)) == 200 and all(0 <= s < 2**32 for s in seeds)
    assert not math.isclose(tune.trial_seed(0, 1) - tune.trial_seed(0, 0), tune.trial_seed(0, 2) - tune.trial_seed(0, 1))


def test_a_search_space_takes_values_choices_and_ranges():
    space = tune.parse_space("tune", {"hidden_units": "16:128", "learning_rate": "1e-4:1e-2:log",
                                        "batch_size": "16,32,64", "noise": "0.1:0.5", "scaling": "standard,window",
                                        "n_trials": "12", "pruner": "threshold:0.2"})
    assert space["hidden_units"] == tune.Range(16, 128) and isinstance(space["hidden_units"].low, int)
    assert space["learning_rate"] == tune.Range(1e-4, 1e-2, log=True)
    assert space["noise"] == tune.Range(0.1, 0.5)
    assert space["batch_size"] == [16, 32, 64] and space["scaling"] == ["standard", "window"]
    assert space["epochs"] == ["auto"] and space["n_trials"] == 12 and space["pruner"] == "threshold:0.2"
    # The same text for the same space, as workers compare it.
    assert tune.space_text({name: space[name] for name in ("hidden_units", "learning_rate", "batch_size")}) == {
        "hidden_units": "16:128", "learning_rate": "0.0001:0.01:log", "batch_size": "16,32,64"}


@pytest.mark.parametrize("raw,message", [
    ({"hidden_units": "128:16"}, "Received an invalid range for parameter `hidden_units`, expected numbers "
                                 "low < high, got '128:16'."),
    ({"learning_rate": "0:1e-2:log"}, "parameter `learning_rate`, expected a float above 0, got '0'."),
    ({"hidden_units": "16:1.5"}, "parameter `hidden_units`, expected a positive integer, got '1.5'."),
    ({"scaling": "none:window"}, "Received an invalid search space for parameter `scaling`, expected a value, "
                                 "a comma-separated list of values, got 'none:window'."),
    ({"hidden_units": "16:64:lin"}, "expected a value, a comma-separated list of values, or a range low:high "
                                    "or low:high:log, got '16:64:lin'."),
    ({"pruner": "hyperband"}, "parameter `pruner`, expected 'median', 'none' or 'threshold:<val_loss>', got "
                              "'hyperband'."),
    ({"storage": "optuna.db"}, "parameter `storage`, expected 'auto', 'server:<lstm-server folder>' or an SQLAlchemy database URL without a "
                                "password"),
    ({"study": "my study"}, "parameter `study`, expected a study name of letters, digits"),
    ({"time_steps": "10:60", "horizon": "20"}, "time_steps"),
    ({"n_trials": "0"}, "parameter `n_trials`, expected a positive integer, got '0'."),
])
def test_a_bad_search_space_is_refused_in_one_line(raw, message):
    with pytest.raises(ParamError) as error:
        tune.parse_space("tune", raw)
    assert message in str(error.value) and "\n" not in str(error.value)
