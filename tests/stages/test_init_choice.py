"""How init=auto chooses between a new network, the pretrained model fine-tuned and the
pretrained model zero-shot: the trained candidates early-stop on a fold held back from their
training windows, so that the validation windows judge all three without having stopped any,
and a trained candidate replaces the zero-shot model only when those windows show it better
beyond chance (Diebold and Mariano's test)."""

import numpy as np
import pytest

from benchmarks.init_choice import losses as candidate_losses
from pipeline import data, metrics
from pipeline.stages import train


def series_dataset(n_points, time_steps=13, horizon=1):
    values = np.sin(np.arange(n_points) / 3.0) + np.arange(n_points) / 50.0
    return data.make_series_dataset(np.arange(n_points), values, time_steps, horizon, 0.1, 0.2)


@pytest.mark.parametrize("horizon", [1, 6])
def test_the_stopping_fold_comes_from_the_training_windows_and_leaves_validation_alone(horizon):
    dataset = series_dataset(200, horizon=horizon)
    held = data.hold_out_stopping(dataset)
    n_val = len(dataset["y_val"])
    # As many stopping windows as validation windows, cut from the end of the training period...
    assert len(held["y_val"]) == n_val
    np.testing.assert_array_equal(held["origin_val"], dataset["origin_train"][-n_val:])
    np.testing.assert_array_equal(held["x_val"], dataset["x_train"][-n_val:])
    # ...training keeping every window whose targets all end before the fold's first target, no more.
    last_train_target = held["origin_train"][-1] + horizon - 1
    assert last_train_target == held["origin_val"][0] - 1
    assert len(held["y_train"]) == len(dataset["y_train"]) - n_val - (horizon - 1)
    # The validation and test windows, and the series, untouched in the original.
    for name in ("x_test", "y_test", "origin_test", "series"):
        np.testing.assert_array_equal(held[name], dataset[name])
    assert dataset["origin_val"][0] > held["origin_val"][-1] + horizon - 1


def test_a_training_period_too_short_for_a_fold_gives_none():
    dataset = series_dataset(200, horizon=1)
    short = {**dataset, **{f"{name}_train": dataset[f"{name}_train"][:1] for name in ("x", "y", "t", "origin")}}
    assert data.hold_out_stopping(short) is None
    two = {**dataset, **{f"{name}_train": dataset[f"{name}_train"][:2] for name in ("x", "y", "t", "origin")}}
    assert len(data.hold_out_stopping(two)["y_val"]) == 1


@pytest.mark.parametrize("n,horizon", [(9, 1), (20, 1), (14, 6)])
@pytest.mark.parametrize("better", ["local", "zero_shot"])
def test_the_rule_picks_the_better_candidate_more_often_than_not(n, horizon, better):
    # Candidates of known quality (the better one's MSE half the other's), on as few validation windows as a
    # short series has: the default rule keeps the better one 67-92 % of the time (benchmarks/results/init_choice.md).
    rng = np.random.default_rng(0)
    picked = [train.choose_init(candidate_losses(rng, n, horizon, better, 0.5), horizon)[0] for _ in range(400)]
    assert picked.count(better) / len(picked) > 0.6


def test_without_evidence_the_rule_keeps_the_zero_shot_model():
    rng = np.random.default_rng(1)
    picked = [train.choose_init(candidate_losses(rng, 20, 1, "local", 1.0), 1)[0] for _ in range(400)]
    # Of equals, a trained candidate wins about as often as the test's level (0.3), not half the time.
    assert 0.6 < picked.count("zero_shot") / len(picked) < 0.8


def test_the_rule_says_what_it_chose_and_why():
    clearly = {"zero_shot": np.full(12, 2.0) + np.arange(12) * 0.01, "local": np.full(12, 1.0), "fine_tuned":
               np.full(12, 1.5)}
    chosen, reason = train.choose_init(clearly, 1)
    assert chosen == "local" and "\n" not in reason
    assert reason.startswith("model: a new network, the lowest validation MSE of 3 candidates (local 1, fine_tuned "
                             "1.5, zero_shot 2.055), better than zero-shot beyond chance (Diebold-Mariano p = ")
    close = {"zero_shot": np.array([1.0, 0.5, 2.0, 1.5]), "local": np.array([0.9, 0.7, 1.8, 1.4])}
    chosen, reason = train.choose_init(close, 1)
    assert chosen == "zero_shot"
    assert reason.startswith("model: the pretrained model zero-shot: a new network has the lowest validation MSE of "
                             "2 candidates (local 1.2, zero_shot 1.25), but not clearly better than zero-shot")
    # Without a zero-shot candidate, the lowest mean.
    assert train.choose_init({"local": np.ones(5), "fine_tuned": np.full(5, 0.9)}, 1)[0] == "fine_tuned"


def test_diebold_mariano_reads_the_sign_and_refuses_too_few_windows():
    rng = np.random.default_rng(2)
    worse, better = rng.normal(size=30) ** 2 + 1.0, rng.normal(size=30) ** 2
    assert metrics.diebold_mariano(worse, better, 1) < 0.01
    assert metrics.diebold_mariano(better, worse, 1) > 0.99
    assert metrics.diebold_mariano(worse[:2], better[:2], 1) == 1.0
    # 9 windows of 12 steps (a 100-point monthly series' validation): evidence only where it is consistent.
    assert metrics.diebold_mariano(worse[:9], better[:9], 12) > 0.05
    assert metrics.diebold_mariano(better[:9] + 25, better[:9], 12) < 0.01
    assert metrics.diebold_mariano(worse, better, 12) < train.INIT_EVIDENCE


def test_a_training_period_too_short_to_hold_a_fold_leaves_the_zero_shot_model():
    plan = train.InitPlan(("local", "zero_shot", "fine_tuned"))
    dataset = series_dataset(200)
    one = {**dataset, **{f"{name}_train": dataset[f"{name}_train"][:1] for name in ("x", "y", "t", "origin")}}
    kept, fit_data, judged = train.judging(plan, one)
    assert kept.candidates == ("zero_shot",) and fit_data is one and judged == "too_short"
    assert "the pretrained model zero-shot, untrained" in train.judged_on(judged, 0)
    # Without a zero-shot candidate, they are judged as before, and the run says what that favours.
    kept, fit_data, judged = train.judging(train.InitPlan(("local", "fine_tuned")), one)
    assert kept.candidates == ("local", "fine_tuned") and judged == "stopped"
    # One candidate, or none that trains: nothing held back.
    assert train.judging(train.InitPlan(("local",)), dataset)[1] is dataset
    kept, fit_data, judged = train.judging(plan, dataset)
    assert judged == "fair" and len(fit_data["y_train"]) == len(dataset["y_train"]) - len(dataset["y_val"])
