"""A pretrained model as the start of a single series' model (issue 24):
zero-shot on a series it never saw beats a network trained on that short
series alone; `init=auto` chooses on the validation windows only; a bad
`init` is refused in one line before any run opens."""

import re

import mlflow
import numpy as np
import pytest

from pipeline import params, pretrained
from pipeline.stages import command_line, main, predict, pretrain
from tests.stages.test_failures import all_runs


def family(n, length, seed, noise=0.02):
    """Monthly series of one family: a level, a trend, a season of 12 whose shape varies, noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(length)
        shape = np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi)) + 0.5 * np.sin(4 * np.pi * t / 12)
        level = rng.uniform(50, 500)
        out.append(level * (1 + rng.uniform(-0.003, 0.006) * t + rng.uniform(0.1, 0.3) * shape
                            + rng.normal(0, noise, length)))
    return out


def write_collection(path, series):
    rows = ["unique_id,ds,y"] + [f"s{i},{t},{v:.4f}" for i, values in enumerate(series) for t, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_series(path, values):
    path.write_text("month,y\n" + "".join(f"{2000 + t // 12}-{t % 12 + 1:02d}-01,{v:.4f}\n"
                                          for t, v in enumerate(values)))
    return path


@pytest.fixture(scope="module")
def pretrained_store(tmp_path_factory):
    """A small model pretrained on 300 series of the family and 20 short ones (24 points: none has a
    training window before its 24 validation and test points), registered as lstm-pretrained@champion."""
    from tests.conftest import temporary_store

    folder = tmp_path_factory.mktemp("pretrained")
    corpus = write_collection(folder / "family.csv", family(300, 120, seed=1, noise=0.05) + family(20, 24, seed=2))
    with temporary_store(folder) as uri:
        run_id = pretrain.run(**{**params.defaults("pretrain"), "corpus": str(corpus), "epochs": 15,
                                 "max_horizon": 12, "input_width": 36})
        yield {"uri": uri, "run_id": run_id, "folder": folder}


def test_pretrain_registers_a_model_that_names_its_corpus(pretrained_store):
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("lstm-pretrained", "champion")
    run = client.get_run(version.run_id)
    assert run.info.run_id == pretrained_store["run_id"] and run.data.tags["stage"] == "pretrain"
    assert run.data.tags["corpus_series"] == "320" and len(run.data.tags["corpus_sha256"]) == 64
    # the short series train on all their points, and neither validate nor test the model
    assert run.data.tags["corpus_every_point"] == "20"
    assert ("20 series of 36 points or fewer have no training window before the validation period: they train on "
            "all their points and are neither validated nor tested") in run.data.tags["notes"]
    assert "m1/YAD6" in run.data.tags["held_out"] and "m3/N0001" in run.data.tags["short_validation"]
    # It learned something: better than the naive forecast on the corpus' held-out last 12 points.
    assert run.data.metrics["test_mase"] < run.data.metrics["naive_test_mase"]


def test_the_corpus_holds_every_short_m1_and_m3_series_but_the_short_validation_sample():
    corpus, _ = pretrained.load_corpus(["m1", "m3"])
    short = {key for key, values in corpus.items() if len(values) < 26}
    kept_out = {f"{name}/{key}" for name, keys in pretrained.SHORT_VALIDATION.items() for key in keys}
    assert len(kept_out) == 215 and not kept_out & set(corpus)
    # 641 series of M1 and M3 are under 26 points: the other 426 train, less any sharing a run with a kept-out one
    assert 400 <= len(short) <= 426 and "m3/N0003" in short and "m1/YAF10" in short


def test_zero_shot_on_a_new_short_series_beats_a_network_trained_on_it_alone(pretrained_store, tmp_path):
    # 36 points of a series of the family, never seen: 7 test targets, 9 validation windows, 20 points to
    # train a new network on, which ends up no better than persistence; the pretrained model reads all
    # the history there is before each target.
    short = write_series(tmp_path / "short.csv", family(1, 36, seed=99, noise=0.05)[0])
    common = {"data_source": str(short), "column": "y", "time_column": "month", "season": 12, "horizon": 1}
    loads = []
    with pytest.MonkeyPatch.context() as patch:  # counted, not replaced: the checks before the run open and
        real = pretrained.load                    # the train stage share one loaded model
        patch.setattr(pretrained, "load", lambda init: loads.append(init) or real(init))
        _, zero_shot = main.run(**common, init="pretrained", fine_tune_epochs=0, quiet=True)
    assert loads == ["pretrained"]
    _, local = main.run(**common, init="none", quiet=True)
    assert zero_shot["test_rmse"] < 0.75 * local["test_rmse"]
    assert zero_shot["test_rmse"] < zero_shot["persistence_test_rmse"]
    runs = mlflow.search_runs(filter_string="tags.stage = 'train'", output_format="list")
    assert {run.data.tags["resolved_init"] for run in runs} == {"zero_shot", "local"}
    zero_shot_run = next(run for run in runs if run.data.tags["resolved_init"] == "zero_shot")
    assert zero_shot_run.data.tags["init_uri"] == "models:/lstm-pretrained@champion"
    assert zero_shot_run.data.tags["pretrained_windows"].startswith(
        "each window of 36 values divided by its own seasonal indices of season 12 where M3's 90 % autocorrelation "
        "test finds that season in it")
    assert "epochs_trained" not in zero_shot_run.data.metrics  # nothing was trained


def test_zero_shot_intervals_are_calibrated_on_every_window_before_the_test_period(pretrained_store, tmp_path):
    # No window of a series trained the zero-shot model, so all of them before the test period calibrate it.
    from custom_layers import transforms
    from pipeline import data, tracking
    from pipeline import model as forecaster
    from pipeline.stages import train

    csv = write_series(tmp_path / "series.csv", family(1, 60, seed=7, noise=0.05)[0])
    run_ids, scores = main.run(data_source=str(csv), column="y", time_column="month", season=12, horizon=3,
                               init="pretrained", fine_tune_epochs=0, quiet=True, register=False)
    run = mlflow.get_run(run_ids["train"])
    dataset, _ = tracking.load_data(run.data.tags["resolved_data_uri"])
    n = len(dataset["y_train"]) + len(dataset["y_val"])
    assert n > len(dataset["y_val"]) >= transforms.min_windows_for(0.9)
    assert run.data.tags["interval_calibration"] == f"calibrated on the series' {n} training and validation windows"
    # Each step's half-width: the conformal quantile of those windows' errors in units of their spread.
    served = forecaster.load_model(tracking.download(f"runs:/{run_ids['train']}/{train.KERAS_MODEL}", "model_uri"))
    longer = data.with_history(dataset, served.get_layer(forecaster.FIT_WINDOW_LAYER).width)
    x = np.concatenate([longer["x_train"], longer["x_val"]]).astype(np.float32)
    errors = np.concatenate([dataset["y_train"], dataset["y_val"]]) - forecaster.predict(served, x)["forecast"]
    spread = np.asarray(served.get_layer("spread")(served.get_layer(forecaster.FIT_WINDOW_LAYER)(x)))
    expected = transforms.conformal_half_width(errors / spread.reshape(-1, 1), 0.9)
    assert [run.data.metrics[f"interval_half_width_step{k}"] for k in (1, 2, 3)] == pytest.approx(expected, rel=1e-4)
    assert 0 <= scores["test_coverage"] <= 100 and scores["test_interval_width"] > 0


def test_auto_chooses_on_the_validation_windows_only(pretrained_store, tmp_path):
    values = family(1, 90, seed=5, noise=0.05)[0]
    wild = values.copy()
    wild[-18:] *= 3  # the test period (the last 20 %) changed beyond recognition
    runs = {}
    for name, series in (("plain", values), ("wild", wild)):
        csv = write_series(tmp_path / f"{name}.csv", series)
        run_ids, _ = main.run(data_source=str(csv), column="y", time_column="month", season=12, horizon=1,
                              quiet=True, register=False)
        runs[name] = mlflow.get_run(run_ids["train"])
    plain, wild_run = runs["plain"], runs["wild"]
    candidates = {name for name in plain.data.metrics if name.startswith("val_mse_")}
    assert candidates == {"val_mse_local", "val_mse_zero_shot", "val_mse_fine_tuned"}
    # The same validation windows, the same scores and the same choice, whatever the test targets are.
    assert {name: wild_run.data.metrics[name] for name in candidates} == pytest.approx(
        {name: plain.data.metrics[name] for name in candidates}, rel=1e-3)
    assert wild_run.data.tags["resolved_init"] == plain.data.tags["resolved_init"]
    # None of them early-stopped on those windows; the one kept has the lowest validation MSE, or is the
    # zero-shot model where the trained one with the lowest is not clearly better; the run says which.
    choice, kept = plain.data.tags["init_choice"], plain.data.tags["resolved_init"]
    assert re.search(r"; trained candidates early-stopped on the last \d+ training windows, so the validation "
                     "windows that judge them stopped none$", choice)
    lowest = min(candidates, key=plain.data.metrics.get)[len("val_mse_"):]
    assert f"{lowest} {plain.data.metrics['val_mse_' + lowest]:.4g}" in choice
    if kept == lowest:
        assert "the lowest validation MSE of 3 candidates" in choice
    else:
        assert kept == "zero_shot" and "but not clearly better than zero-shot (Diebold-Mariano p = " in choice
    # A trained candidate kept is trained again on every training window, for the epochs its fold chose.
    assert ("selection_refit_epochs" in plain.data.metrics) == (kept != "zero_shot")


@pytest.mark.parametrize("extra,message", [
    (["--init", "models:/nothing-here@champion"],
     "error: Received `init`='models:/nothing-here@champion': no such model in this tracking store"),
    (["--init", "pretrained", "--horizon", "13"],
     "error: Received `init`='pretrained' with `horizon`=13: models:/lstm-pretrained@champion forecasts at most 12 "
     "steps from up to 36 values (shorter windows padded); pass -P horizon=1...12 or -P init=none."),
    (["--init", "pretrained", "--epochs", "5"],
     "error: Received `init`='pretrained' with epochs=5: the pretrained model fixes its network"),
    (["--init", "none", "--fine_tune_epochs", "3"],
     "error: Received `fine_tune_epochs`=3 with `init`='none': fine-tuning needs a pretrained init"),
])
def test_a_bad_init_is_refused_in_one_line_before_any_run(pretrained_store, tmp_path, capsys, extra, message):
    csv = write_series(tmp_path / "series.csv", family(1, 120, seed=3)[0])
    before = set(all_runs())
    with pytest.raises(SystemExit) as exit_:
        command_line("main", main.run, ["--data_source", str(csv), "--time_column", "month", "--season", "12", *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert set(all_runs()) == before


def test_a_model_of_one_series_is_not_an_init(pretrained_store, tmp_path, capsys):
    csv = write_series(tmp_path / "series.csv", family(1, 120, seed=4)[0])
    run_ids, _ = main.run(data_source=str(csv), column="y", time_column="month", season=12, init="none", epochs=2,
                          ensemble_size=1, quiet=True, register=False)
    with pytest.raises(SystemExit):
        command_line("main", main.run, ["--data_source", str(csv), "--time_column", "month", "--init",
                                        f"runs:/{run_ids['train']}/model"])
    assert "is a forecasting model of one series; init takes a model trained across series" in capsys.readouterr().err


def test_lstm_predict_forecasts_with_the_registered_pretrained_model_without_a_run(pretrained_store, tmp_path,
                                                                                  capsys):
    values = family(1, 60, seed=11, noise=0.05)[0]
    csv = write_series(tmp_path / "any.csv", values)
    before = set(all_runs())
    command_line("predict", predict.run, ["--model_uri", "pretrained", "--input", str(csv)], parse=predict.parse)
    out, err = capsys.readouterr()
    assert "predict: the pretrained model models:/lstm-pretrained@champion zero-shot: it learned nothing from this " \
           "series; it reads up to its last 36 values and forecasts 12 steps" in err
    header, row = out.splitlines()
    assert header.split(",")[:2] == ["step_1", "step_2"] and len(row.split(",")) == 36  # 12 steps, lower, upper
    forecast, lower, upper = np.asarray(row.split(","), float).reshape(3, 12)
    model = pretrained.load("pretrained").model
    expected = model.predict(np.asarray(values[-36:], np.float32).reshape(1, 36, 1), verbose=0)
    np.testing.assert_allclose(forecast, expected["forecast"][0], rtol=1e-5)
    assert np.all(lower < forecast) and np.all(forecast < upper)
    assert set(all_runs()) == before  # nothing recorded


def test_lstm_predict_takes_a_given_season_out_of_each_window_as_init_pretrained_does(pretrained_store, tmp_path,
                                                                                       capsys):
    from pipeline import model as forecaster
    from pipeline.errors import ParamError

    values = family(1, 60, seed=11, noise=0.05)[0]
    csv = write_series(tmp_path / "any.csv", values)
    command_line("predict", predict.run, ["--model_uri", "pretrained", "--input", str(csv), "--season", "12"],
                 parse=predict.parse)
    out, err = capsys.readouterr()
    assert ("predict: it reads each window of 36 values divided by its own seasonal indices of season 12 where "
            "M3's 90 % autocorrelation test finds that season in it") in err
    forecast = np.asarray(out.splitlines()[1].split(","), float).reshape(3, 12)[0]
    start = pretrained.load("pretrained")
    served = pretrained.forecasting_model(pretrained.adapt(start, 12, 0.001, float(np.std(values)), 12), 0.9)
    expected = forecaster.predict(served, np.asarray(values[-36:], np.float32).reshape(1, 36, 1))["forecast"][0]
    np.testing.assert_allclose(forecast, expected, rtol=1e-5)
    raw = start.model.predict(np.asarray(values[-36:], np.float32).reshape(1, 36, 1), verbose=0)["forecast"][0]
    assert not np.allclose(forecast, raw, rtol=1e-3)  # the season was taken out: another forecast
    # A trained model reads its series as it was trained: a season given to it is refused.
    with pytest.raises(ParamError, match=r"^Received `season`=12 with `model_uri`='runs:/abc/model': a trained "
                                         r"model reads its series as it was trained"):
        predict.run("runs:/abc/model", str(csv), "auto", "error", "auto", "auto", ".", "none", "-", season=12)


def test_a_missing_pretrained_file_is_refused_naming_the_parameter_it_came_from(tmp_path):
    import re

    from pipeline.errors import ParamError

    missing = str(tmp_path / "gone.keras")
    with pytest.raises(ParamError, match=rf"^Received `model_uri`='{re.escape(missing)}': no such file "
                                         rf"{re.escape(missing)}\.$"):
        pretrained.load(missing, "model_uri")
    with pytest.raises(ParamError, match=r"^Received `init`="):
        pretrained.load(missing)


def test_a_seasonal_series_is_read_through_each_windows_own_decomposition():
    # The shipped model, no store: with the series' season (two of which fit in the 36 values it reads), each
    # window is divided by its own seasonal indices and the forecasts multiplied by them.
    from dataclasses import replace

    from pipeline import model as forecaster

    start = pretrained.load(str(pretrained.SHIPPED))
    assert [pretrained.decomposition_season(start, m) for m in (0, 1, 4, 12, 18, 24)] == [0, 0, 4, 12, 18, 0]
    # A network trained on decomposed windows (a collection's, deseasonalise=tested) always reads them.
    assert pretrained.decomposition_season(replace(start, deseasonalised=12), 0) == 12
    pattern = np.array([0.8, 1.1, 1.3, 0.8])  # mean 1: a window of it is its own seasonal indices
    window = (100 * np.tile(pattern, 9))[None, :, None].astype(np.float32)
    truth = 100 * np.tile(pattern, 2)
    seasonal = pretrained.forecasting_model(pretrained.adapt(start, 8, 0.001, season=4), 0.9)
    raw = pretrained.forecasting_model(pretrained.adapt(start, 8, 0.001), 0.9)
    assert "deseasonalise" in {layer.name for layer in seasonal.layers}
    assert "deseasonalise" not in {layer.name for layer in raw.layers}
    forecast = forecaster.predict(seasonal, window)["forecast"][0]
    # The season-free window is flat at 100: the season put back is the window's own.
    assert forecast == pytest.approx(truth, rel=0.02)
    assert np.abs(forecaster.predict(raw, window)["forecast"][0] - truth).max() > np.abs(forecast - truth).max()
