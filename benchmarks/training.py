"""Training speed of the custom cell against keras.layers.LSTM and PyTorch's nn.LSTM, side by side.

    python benchmarks/training.py [--rounds 3] [--epochs 50] [--threads N] [--skip-scaling]
                                  [--skip-pipeline] [--pipeline-repeats 3] [--force]

The seed workload: 800 training windows of 49 steps (sine windows of 50 points,
split 800/100/100), 1 feature, 50 hidden units, batch 32, Adam 0.001, MSE,
validation on the 100 next windows after every epoch. Contenders:

  custom_cell       this project's LSTMCell in its LSTM layer, built and trained by
                    pipeline.model (build_model, fit) exactly as the train stage does
  keras_lstm        keras.layers.LSTM(50) in a plain model, trained by the same fit
  keras_lstm_xla    the same, compiled with XLA (fit then compiles its epoch with XLA)
  torch_lstm        torch.nn.LSTM(1, 50, batch_first=True) + Linear(50, 1), the seed's
                    framework, in a plain training loop (skipped, with a message,
                    where torch is not installed: pip install torch==2.13.0)
  train_stage_local what a user runs: `python -m pipeline.stages.train` on the same
                    windows (generate_data with the split above, seed 0) against a
                    SQLite store, patience 0; its epoch is the gap between
                    consecutive epochs' logged metrics (their timestamps, in ms)
  train_stage_server  the same against `lstm-server` (PostgreSQL, proxied artifacts)
  train_stage_auth    the same against `lstm-server --auth`, signed in
                    (the server contenders need PostgreSQL's programs; without
                    them they are skipped with a message)

Every contender gets the same thread settings: --threads (default: the number
of cores) threads within an operation and as many between operations
(TensorFlow's intra- and inter-op pools, PyTorch's set_num_threads and
set_num_interop_threads); the values each framework reports back are recorded.

On a machine with an NVIDIA GPU, TensorFlow places the Keras contenders on it
(keras_lstm then runs cuDNN's kernel) and torch_lstm runs on CUDA.

Each measurement is its own process (so that peak memory is its own), and the
contenders alternate round by round, so machine drift hits them alike. An epoch
is one pass over the training windows plus the validation pass, for every
contender. Reported: median seconds per epoch after the first (min and max
beside it), seconds from the start of training until the validation MSE first
falls below 1e-4 (compilation included), windows per second predicted in batches
of 256, and peak resident memory of the process.

For the train-stage contenders, also the requests each run made (the server's
access log: benchmarks/store_requests.py), and the median seconds of one small
request to each server (`request_seconds`), with sign-in also with the password
checked on every request (`--auth-cache-seconds 0`).

Then the scaling grid (seconds per epoch for time_steps 50/200/1000, hidden
units 50/256, batch 32/256) and the default pipeline (`mlflow run .`) with its
start-up share. Each measurement is bracketed by benchmarks.quiet: when the
machine was busy, nothing is written (exit status 3) unless --force. Prints
tables, writes benchmarks/results/training.json and
benchmarks/results/training_scaling.png.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CONTENDERS = ["custom_cell", "keras_lstm", "keras_lstm_xla", "torch_lstm"]
# The train stage itself, against each kind of store: not in the scaling grid, and run only when named.
STAGE_STORES = {"train_stage_local": "local", "train_stage_server": "server", "train_stage_auth": "auth"}
# Compared on the seed workload only, not in the scaling grid.
NOT_SCALED = ("keras_lstm_xla", *STAGE_STORES)
SEED_WORKLOAD = {"time_steps": 50, "hidden_units": 50, "batch_size": 32}
TARGET_VAL_MSE = 1e-4
N_WINDOWS = 1000  # 800 train, 100 validation, 100 test
SCALING_GRID = [{"time_steps": t, "hidden_units": h, "batch_size": b}
                for t in (50, 200, 1000) for h in (50, 256) for b in (32, 256)]


# ---------------------------------------------------------------- one measurement, in its own process

def sine_data(time_steps):
    sys.path.insert(0, str(REPO))
    from pipeline import data

    return data.make_sine_dataset(N_WINDOWS, time_steps, 1, 0.0, 0.1, 0.1, seed=0)


def set_threads(contender, threads):
    """The same settings for every contender: `threads` threads within an
    operation and `threads` for running operations side by side. Returns
    them as the framework reports them back."""
    if contender == "torch_lstm":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def measure_keras(contender, config, epochs, seed=0):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from pipeline import model as forecaster

    dataset = sine_data(config["time_steps"])
    keras.utils.set_random_seed(seed)
    if contender == "custom_cell":
        model = forecaster.build_model(config["hidden_units"], 0.001)
    else:
        inputs = keras.Input(shape=(None, 1), name="window")
        hidden = keras.layers.LSTM(config["hidden_units"], name="lstm")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1, name="forecast")(hidden))
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse",
                      jit_compile=contender == "keras_lstm_xla")
    ends, val_loss = [], []

    def on_epoch_end(epoch, logs):
        ends.append(time.perf_counter())
        val_loss.append(logs["val_loss"])

    started = time.perf_counter()
    forecaster.fit(model, dataset, epochs, config["batch_size"], patience=0, seed=seed, on_epoch_end=on_epoch_end)
    batch = np.repeat(dataset["x_test"], 3, axis=0)[:256]
    return started, ends, val_loss, lambda: model.predict_on_batch(batch)


def measure_torch(config, epochs, seed=0):
    import torch

    dataset = sine_data(config["time_steps"])
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class Forecaster(torch.nn.Module):
        def __init__(self, hidden_units):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, hidden_units, batch_first=True)
            self.forecast = torch.nn.Linear(hidden_units, 1)

        def forward(self, window):
            output, _ = self.lstm(window)
            return self.forecast(output[:, -1])

    model = Forecaster(config["hidden_units"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = torch.nn.MSELoss()
    x, y = torch.from_numpy(dataset["x_train"]).to(device), torch.from_numpy(dataset["y_train"]).to(device)
    x_val, y_val = torch.from_numpy(dataset["x_val"]).to(device), torch.from_numpy(dataset["y_val"]).to(device)
    generator = torch.Generator().manual_seed(seed)
    ends, val_loss = [], []
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        for start in range(0, len(x), config["batch_size"]):
            index = order[start:start + config["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss.append(float(loss_fn(model(x_val), y_val)))  # float() waits for the GPU too
        ends.append(time.perf_counter())
    batch = torch.from_numpy(dataset["x_test"]).repeat(3, 1, 1)[:256].to(device)

    def predict():
        with torch.no_grad():
            return model(batch).cpu()

    return started, ends, val_loss, predict


def worker(contender, config, epochs, throughput_calls, threads):
    applied_threads = set_threads(contender, threads)
    if contender == "torch_lstm":
        started, ends, val_loss, predict = measure_torch(config, epochs)
    else:
        started, ends, val_loss, predict = measure_keras(contender, config, epochs)
    seconds = [b - a for a, b in zip([started] + ends[:-1], ends)]
    reached = next((ends[i] - started for i, loss in enumerate(val_loss) if loss < TARGET_VAL_MSE), None)
    result = {"epoch_seconds": seconds, "val_loss": val_loss, "seconds_to_target": reached,
              "threads": applied_threads}
    if throughput_calls:
        predict()
        predict()
        calls = []
        for _ in range(throughput_calls):
            tic = time.perf_counter()
            predict()
            calls.append(time.perf_counter() - tic)
        result["windows_per_second"] = 256 / statistics.median(calls)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ---------------------------------------------------------------- the driver

def run_worker(watch, label, contender, config, epochs, threads, throughput_calls=0):
    with tempfile.NamedTemporaryFile(suffix=".json") as out, watch.measure(label):
        command = [sys.executable, __file__, "--worker", contender, "--config", json.dumps(config),
                   "--epochs", str(epochs), "--throughput-calls", str(throughput_calls), "--threads", str(threads),
                   "--out", out.name]
        subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return json.loads(Path(out.name).read_text())


# ---------------------------------------------------------------- the train stage, against a store

SEED_DATA = ["--n_samples", str(N_WINDOWS), "--time_steps", "50", "--horizon", "1", "--noise", "0",
             "--val_fraction", "0.1", "--test_fraction", "0.1", "--seed", "0"]


class Stores:
    """The stores the train-stage contenders write to, each with the seed workload's
    data generated once: a SQLite file, and `lstm-server` without and with --auth."""

    def __init__(self, watch, names, folder):
        from benchmarks.store_requests import LstmServer

        self.watch, self.folder, self.servers, self.stores = watch, Path(folder), {}, {}
        for name in names:
            kind = STAGE_STORES[name]
            if kind == "local":
                store = {"env": {"MLFLOW_TRACKING_URI": f"sqlite:///{self.folder / 'mlflow.db'}"}, "server": None}
            else:
                server = LstmServer(auth=kind == "auth").__enter__()
                self.servers[kind] = server
                for pid in server.pids:
                    watch.count_as_own(pid)
                store = {"env": server.env, "server": server}
            store["data_uri"] = self.generate(store["env"])
            self.stores[name] = store

    def run(self, command, env):
        env = {**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "3"}
        for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
            env.pop(name, None)
        result = subprocess.run([sys.executable, "-m", *command], cwd=self.folder, env=env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-3000:]}")
        return result

    def generate(self, env):
        output = self.run(["pipeline.stages.generate_data", *SEED_DATA], env).stdout
        run_id = next(line.split("(run ")[1].rstrip(")") for line in output.splitlines() if "started (run" in line)
        return f"runs:/{run_id}/data"

    def close(self):
        for server in self.servers.values():
            server.__exit__()


def measure_train_stage(stores, name, epochs, threads):
    """One `train` run of the seed workload against the contender's store: its logged
    epochs' gaps, val_loss, wall time, and the requests it made to a server."""
    import mlflow

    from deploy.server import scoped_environment

    store = stores.stores[name]
    server = store["server"]
    before = len(server.requests()) if server else 0
    # The same thread pools as the other contenders (TensorFlow reads these at start-up).
    env = {**store["env"], "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads)}
    started = time.perf_counter()
    output = stores.run(["pipeline.stages.train", "--data_uri", store["data_uri"], "--epochs", str(epochs),
                         "--patience", "0", "--seed", "0"], env).stdout
    wall = time.perf_counter() - started
    made = server.requests()[before:] if server else None  # before this benchmark's own requests below
    run_id = next(line.split("(run ")[1].rstrip(")") for line in output.splitlines() if "started (run" in line)
    with scoped_environment(store["env"]):
        client = mlflow.MlflowClient(store["env"]["MLFLOW_TRACKING_URI"])
        history = sorted(client.get_metric_history(run_id, "val_loss"), key=lambda m: m.step)
        train_seconds = client.get_run(run_id).data.metrics["train_seconds"]
    stamps = [m.timestamp / 1000 for m in history]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # The first epoch (compiling included) is what train_seconds holds beyond the later epochs' gaps.
    return {"epoch_seconds": [train_seconds - sum(gaps)] + gaps, "val_loss": [m.value for m in history],
            "seconds_to_target": None, "threads": {"intra_op": threads, "inter_op": threads},
            "wall_seconds": wall, "requests": len(made) if server else None,
            "request_kinds": _kinds(made) if server else None}


def _kinds(requests):
    from benchmarks.store_requests import kinds

    return kinds(requests)


def pipeline_requests(stores, repeats):
    """Requests the default `mlflow run .` makes to `lstm-server`, data reused: the
    median of `repeats` runs after one that generates the data."""
    server = stores.servers["server"]
    counts, kinds = [], None
    for number in range(repeats + 1):
        before = len(server.requests())
        stores.run(["mlflow", "run", str(REPO), "--env-manager", "local"], server.env)
        made = server.requests()[before:]
        if number:
            counts.append(len(made))
            kinds = _kinds(made)
    return {"requests_median": statistics.median(counts), "requests_all": counts, "request_kinds_last": kinds}


def auth_request_cost(watch):
    """Median seconds of one small request: to `lstm-server`, to `lstm-server --auth`
    signed in (a checked password trusted for 60 s, the default), and with the
    password checked on every request (--auth-cache-seconds 0)."""
    from benchmarks.store_requests import LstmServer, request_seconds

    figures = {}
    for label, options in (("server", {}), ("auth", {"auth": True}),
                           ("auth_checked_every_request", {"auth": True, "auth_cache_seconds": 0})):
        with LstmServer(**options) as server:
            for pid in server.pids:
                watch.count_as_own(pid)
            with watch.measure(f"one request, {label}"):
                figures[f"{label}_request_seconds_median"] = request_seconds(server.uri, server.credentials or None)
    return figures


def postgres_available():
    from deploy import server

    try:
        server.postgres_binary("initdb")
        return True
    except server.ServerError as missing:
        print(f"PostgreSQL is missing ({missing}): the train_stage_server and train_stage_auth contenders are "
              "skipped.")
        return False


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        print("torch is not installed: the torch_lstm contender is skipped (pip install torch==2.13.0).")
        return False


def seed_workload(watch, contenders, rounds, epochs, threads, stores=None):
    runs = {name: [] for name in contenders}
    for number in range(1, rounds + 1):
        for name in contenders if number % 2 else contenders[::-1]:  # alternate the order too
            print(f"round {number}/{rounds}: {name}", flush=True)
            if name in STAGE_STORES:
                with watch.measure(f"{name}, round {number}"):
                    runs[name].append(measure_train_stage(stores, name, epochs, threads))
            else:
                runs[name].append(run_worker(watch, f"{name}, round {number}", name, SEED_WORKLOAD, epochs,
                                             threads, throughput_calls=50))
    summary = {}
    for name, results in runs.items():
        after_warm_up = [s for r in results for s in r["epoch_seconds"][1:]]
        reached = [r["seconds_to_target"] for r in results]
        figures = summary[name] = {
            "epoch_seconds_median": statistics.median(after_warm_up),
            "epoch_seconds_min": min(after_warm_up),
            "epoch_seconds_max": max(after_warm_up),
            "first_epoch_seconds_median": statistics.median(r["epoch_seconds"][0] for r in results),
            "seconds_to_val_mse_1e-4_median": statistics.median(reached) if None not in reached else None,
            "rounds_reaching_val_mse_1e-4": sum(r is not None for r in reached),
            "final_val_mse_median": statistics.median(r["val_loss"][-1] for r in results),
        }
        if name in STAGE_STORES:
            figures["wall_seconds_median"] = statistics.median(r["wall_seconds"] for r in results)
            if results[0]["requests"] is not None:
                figures["requests_median"] = statistics.median(r["requests"] for r in results)
        else:
            figures["windows_per_second_batch_256_median"] = statistics.median(
                r["windows_per_second"] for r in results)
            figures["peak_rss_mb_median"] = statistics.median(r["peak_rss_mb"] for r in results)
    reference = summary["custom_cell"]["epoch_seconds_median"]
    for figures in summary.values():
        figures["epoch_time_vs_custom_cell"] = figures["epoch_seconds_median"] / reference
    return summary, runs


def scaling(watch, contenders, threads, epochs=3):
    """Seconds per epoch over the grid: the median of the epochs after the first."""
    table = []
    for config in SCALING_GRID:
        for name in contenders:
            print(f"scaling {config}: {name}", flush=True)
            result = run_worker(watch, f"scaling {config}: {name}", name, config, epochs, threads)
            table.append({**config, "contender": name,
                          "epoch_seconds": statistics.median(result["epoch_seconds"][1:])})
    return table


def scaling_plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, batch in zip(axes, (32, 256)):
        for name in dict.fromkeys(row["contender"] for row in table):
            for hidden, style in ((50, "-"), (256, "--")):
                rows = [r for r in table if r["contender"] == name and r["batch_size"] == batch
                        and r["hidden_units"] == hidden]
                axis.loglog([r["time_steps"] for r in rows], [r["epoch_seconds"] for r in rows], style,
                            marker="o", label=f"{name}, {hidden} units")
        axis.set(title=f"batch {batch}", xlabel="time_steps (log)", xticks=[50, 200, 1000],
                 xticklabels=["50", "200", "1000"])
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds per epoch (log), 800 windows")
    axes[1].legend(fontsize=7)
    figure.suptitle("Cost of an epoch against the window length (a slope of 1 is linear)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def pipeline_wall_time(watch, repeats):
    """The default `mlflow run .`: wall time, peak memory, and what start-up takes of it.

    One run that generates the data, then `repeats` runs that reuse it, whose
    median is the figure quoted (single runs on a shared 2-core machine vary by
    a third). The import times are medians of `repeats` cold processes.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        figures = {}
        for label, command in (
            ("mlflow_cli_import_seconds", [sys.executable, "-c", "import mlflow.cli"]),
            ("stage_import_seconds", [sys.executable, "-c", "import pipeline.stages.main"]),
        ):
            seconds = []
            for _ in range(repeats):
                tic = time.perf_counter()
                subprocess.run(command, check=True, cwd=REPO, env=env, capture_output=True)
                seconds.append(time.perf_counter() - tic)
            figures[f"{label}_median"] = statistics.median(seconds)
        runs = []
        for number in range(repeats + 1):
            print(f"pipeline run {number + 1}/{repeats + 1}", flush=True)
            with watch.measure(f"pipeline run {number + 1}"):
                tic = time.perf_counter()
                result = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mlflow", "run",
                                         str(REPO), "--env-manager", "local"], cwd=folder, env=env,
                                        capture_output=True, text=True)
                wall = time.perf_counter() - tic
            if result.returncode != 0:
                raise RuntimeError(result.stderr[-3000:])
            # /usr/bin/time reports the largest resident set of the process tree's members.
            runs.append({"wall_seconds": wall, "peak_rss_mb": int(result.stderr.strip().splitlines()[-1]) / 1024})
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        mains = client.search_runs(["0"], "tags.stage = 'main'", order_by=["attributes.start_time ASC"])
        for run, main in zip(runs, mains, strict=True):
            run["data_reused"] = main.data.tags["data_reused"] == "true"
            for stage in ("train", "evaluate"):
                info = client.get_run(main.data.tags[f"{stage}_run_id"]).info
                run[f"{stage}_stage_seconds"] = (info.end_time - info.start_time) / 1000
            run["train_seconds_metric"] = client.get_run(main.data.tags["train_run_id"]).data.metrics["train_seconds"]
            run["test_rmse"] = main.data.metrics["test_rmse"]
        reused = runs[1:]
        walls = [r["wall_seconds"] for r in reused]
        figures.update({
            "first_run_wall_seconds": runs[0]["wall_seconds"],
            "first_run_peak_rss_mb": runs[0]["peak_rss_mb"],
            "data_reused_wall_seconds_median": statistics.median(walls),
            "data_reused_wall_seconds_min": min(walls),
            "data_reused_wall_seconds_max": max(walls),
            "data_reused_peak_rss_mb_max": max(r["peak_rss_mb"] for r in reused),
            "data_reused_train_stage_seconds_median": statistics.median(r["train_stage_seconds"] for r in reused),
            "data_reused_evaluate_stage_seconds_median": statistics.median(
                r["evaluate_stage_seconds"] for r in reused),
            "test_rmse": runs[-1]["test_rmse"],
            "runs": runs,
        })
        figures["start_up_share_of_data_reused_median"] = (
            figures["mlflow_cli_import_seconds_median"] + figures["stage_import_seconds_median"]
        ) / figures["data_reused_wall_seconds_median"]
        return figures


def pipeline_side_by_side(watch, baseline, repeats):
    """The default `mlflow run .` of this checkout and of `baseline` (another checkout,
    such as an earlier commit's worktree), alternating run by run, each with its own
    store (the data is reused only by the code that made it): one run each that
    generates the data, then `repeats` each that reuse it. Medians of the latter."""
    import mlflow

    checkouts = {"this": REPO, "baseline": Path(baseline).resolve()}
    walls = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as folder:
        for number in range(repeats + 1):
            for name, code in (checkouts.items() if number % 2 else reversed(checkouts.items())):
                store = Path(folder) / name
                store.mkdir(exist_ok=True)
                env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
                       "PYTHONPATH": str(code)}
                for variable in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
                    env.pop(variable, None)
                print(f"pipeline side by side, run {number + 1}/{repeats + 1}: {name}", flush=True)
                with watch.measure(f"pipeline {name} {number + 1}"):
                    tic = time.perf_counter()
                    result = subprocess.run([sys.executable, "-m", "mlflow", "run", str(code), "--env-manager",
                                             "local"], cwd=store, env=env, capture_output=True, text=True)
                    wall = time.perf_counter() - tic
                if result.returncode != 0:
                    raise RuntimeError(result.stderr[-3000:])
                if number:  # the first run of each generated its data
                    walls[name].append(wall)
        for name in checkouts:
            mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / name / 'mlflow.db'}")
            mains = mlflow.MlflowClient().search_runs(["0"], "tags.stage = 'main'")
            assert sum(run.data.tags["data_reused"] == "true" for run in mains) == repeats, name
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkouts["baseline"], capture_output=True,
                            text=True).stdout.strip()
    this, before = statistics.median(walls["this"]), statistics.median(walls["baseline"])
    return {"baseline_commit": commit, "data_reused_wall_seconds_median": this,
            "baseline_data_reused_wall_seconds_median": before, "ratio": this / before,
            "wall_seconds": walls["this"], "baseline_wall_seconds": walls["baseline"]}


def print_tables(summary, table, pipeline):
    print("\nSeed workload (800 windows × 49 steps, 50 units, batch 32), medians over rounds:\n")
    print("| contender | s/epoch median (min–max) | × custom cell | first epoch s | s to val MSE < 1e-4 | "
          "windows/s, batch 256 | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, f in summary.items():
        reached = f["seconds_to_val_mse_1e-4_median"]
        print(f"| {name} | {f['epoch_seconds_median']:.3f} ({f['epoch_seconds_min']:.3f}–{f['epoch_seconds_max']:.3f}) | "
              f"{f['epoch_time_vs_custom_cell']:.2f} | {f['first_epoch_seconds_median']:.2f} | "
              f"{'—' if reached is None else f'{reached:.2f}'} | "
              f"{f.get('windows_per_second_batch_256_median', 0):.0f} | {f.get('peak_rss_mb_median', 0):.0f} |")
    if table:
        contenders = list(dict.fromkeys(row["contender"] for row in table))
        print("\nScaling, seconds per epoch (800 windows):\n")
        print("| time_steps | hidden | batch | " + " | ".join(contenders) + " |")
        print("|---:|---:|---:|" + "---:|" * len(contenders))
        for config in SCALING_GRID:
            cells = [next(r["epoch_seconds"] for r in table if r["contender"] == c and all(
                r[k] == v for k, v in config.items())) for c in contenders]
            print(f"| {config['time_steps']} | {config['hidden_units']} | {config['batch_size']} | "
                  + " | ".join(f"{cell:.3f}" for cell in cells) + " |")
    if pipeline:
        print("\nDefault pipeline (`mlflow run . --env-manager local`):\n")
        for name, value in pipeline.items():
            if name != "runs":
                print(f"  {name}: {value if not isinstance(value, float) else round(value, 3)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra- and inter-op threads for every contender (default: the cores)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--pipeline-repeats", type=int, default=3)
    parser.add_argument("--pipeline-baseline", default=None, metavar="PATH",
                        help="only the default pipeline, alternating with the checkout at PATH (an earlier commit)")
    parser.add_argument("--skip-auth-cost", action="store_true",
                        help="with train_stage_auth: skip timing one request to each kind of server")
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    parser.add_argument("--out", default=str(RESULTS / "training.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--throughput-calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(REPO))
        result = worker(args.worker, json.loads(args.config), args.epochs, args.throughput_calls, args.threads)
        Path(args.out).write_text(json.dumps(result))
        return

    sys.path.insert(0, str(REPO))
    from benchmarks.machine import machine
    from benchmarks.quiet import Watch

    watch = Watch()
    if args.pipeline_baseline:
        figures = pipeline_side_by_side(watch, args.pipeline_baseline, args.pipeline_repeats)
        print(json.dumps(figures, indent=2))
        watch.write_or_refuse({"machine": machine(), "command": " ".join(
            ["python", "benchmarks/training.py", *sys.argv[1:]]), "pipeline_side_by_side": figures}, args.out,
            force=args.force)
        return
    contenders = [c for c in args.contenders.split(",") if c != "torch_lstm" or torch_available()]
    contenders = [c for c in contenders if STAGE_STORES.get(c, "local") == "local" or postgres_available()]
    stage_contenders = [c for c in contenders if c in STAGE_STORES]
    extra = {}
    with tempfile.TemporaryDirectory(prefix="train-stage-bench-") as folder:
        stores = Stores(watch, stage_contenders, folder) if stage_contenders else None
        try:
            summary, runs = seed_workload(watch, contenders, args.rounds, args.epochs, args.threads, stores)
            if stores and "server" in stores.servers and not args.skip_pipeline:
                with watch.measure("requests of the default pipeline"):
                    extra["pipeline_requests_server"] = pipeline_requests(stores, args.pipeline_repeats)
        finally:
            if stores:
                stores.close()
    if "train_stage_auth" in contenders and not args.skip_auth_cost:
        extra["request_seconds"] = auth_request_cost(watch)
    scaled = [c for c in contenders if c not in NOT_SCALED]
    table = [] if args.skip_scaling else scaling(watch, scaled, args.threads)
    pipeline = None if args.skip_pipeline else pipeline_wall_time(watch, args.pipeline_repeats)
    print_tables(summary, table, pipeline)
    about = machine()
    if "torch_lstm" in contenders:
        import torch

        about.update(torch=torch.__version__)
    threads = {name: results[0]["threads"] for name, results in runs.items()}
    results = {"machine": about, "command": " ".join(["python", "benchmarks/training.py", *sys.argv[1:]]),
               "threads": threads, "seed_workload": summary, "seed_workload_rounds": runs, "scaling": table,
               "pipeline": pipeline, **extra}
    watch.write_or_refuse(results, args.out, force=args.force)
    if table:
        scaling_plot(table, Path(args.out).with_name("training_scaling.png"))


if __name__ == "__main__":
    main()
