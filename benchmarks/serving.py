"""Serving latency and throughput of the default model, side by side, in one run.

    python benchmarks/serving.py [--rounds 10] [--calls 30] [--force]

Contenders, each with the seed's default model (50 hidden units, windows of 49
points, one-step forecasts; weights do not change the cost):
  keras_predict      model.predict(x) in this process (the reference)
  saved_model        the exported SavedModel's serving_default in this process
                     (the LSTM in TensorFlow's fused BlockLSTM kernel)
  saved_model_stepwise  its serve_stepwise signature (standard operations only:
                     the cell's step in a while loop)
  saved_model_xla    its serve_xla signature (XLA; compiles once per input shape)
  rest               POST /invocations to a real `mlflow models serve` on 127.0.0.1
For each: latency of one window (p50, p99) and throughput with batches of 256
windows. Contenders alternate round by round, so machine drift hits them alike.
Each contender's share of a round is bracketed by benchmarks.quiet: when the
machine was busy, nothing is written (exit status 3) unless --force.
Prints a table and writes benchmarks/results/serving.json (the machine and its
load described inside).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402
from pipeline import model as forecaster  # noqa: E402
from pipeline import logged_model  # noqa: E402
from pipeline.stages import train  # noqa: E402

WINDOW = 49
BATCH = 256


def start_server(model_uri, tracking_uri):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return process, f"http://127.0.0.1:{port}/invocations"
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise RuntimeError("mlflow models serve did not start in 180 s")


def rest_call(url):
    def call(x):
        body = json.dumps({"inputs": x.tolist()}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]
    return call


def timed(call, x, calls):
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call(x)
        seconds.append(time.perf_counter() - started)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=30, help="calls per contender per round (batch 1)")
    parser.add_argument("--force", action="store_true", help="write the results even if the machine was busy")
    args = parser.parse_args()
    watch = Watch()

    keras.utils.set_random_seed(0)
    # The forecasting model as train exports it (the seed's: one network, no scaling, the level).
    model = forecaster.forecasting_model(forecaster.build_model(hidden_units=50, learning_rate=0.001))
    with tempfile.TemporaryDirectory() as folder:
        tracking_uri = f"sqlite:///{folder}/mlflow.db"
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", artifact_location=f"{folder}/mlruns"))
        with mlflow.start_run():
            model_uri = logged_model.log_models(model, WINDOW, horizon=1, interval_level=0.9,
                                          data_source=train.trained_on({"source": "sine"}))
        export = Path(folder) / "export"
        forecaster.export_saved_model(model, str(export))
        loaded = tf.saved_model.load(str(export))
        serving_default = loaded.signatures["serving_default"]
        serve_xla = loaded.signatures["serve_xla"]
        serve_stepwise = loaded.signatures["serve_stepwise"]
        process, url = start_server(model_uri, tracking_uri)
        watch.count_as_own(process.pid)
        try:
            contenders = {
                "keras_predict": lambda x: model.predict(x, verbose=0),
                "saved_model": lambda x: serving_default(window=tf.constant(x))["forecast"].numpy(),
                "saved_model_stepwise": lambda x: serve_stepwise(window=tf.constant(x))["forecast"].numpy(),
                "saved_model_xla": lambda x: serve_xla(window=tf.constant(x))["forecast"].numpy(),
                "rest": rest_call(url),
            }
            one = np.sin(np.arange(WINDOW) * 0.3, dtype=np.float32).reshape(1, WINDOW, 1)
            many = np.repeat(one, BATCH, axis=0)
            for call in contenders.values():  # warm-up: tracing, first connections
                timed(call, one, 5)
                timed(call, many, 2)
            latency = {name: [] for name in contenders}
            batch_seconds = {name: [] for name in contenders}
            for number in range(1, args.rounds + 1):
                for name, call in contenders.items():
                    with watch.measure(f"{name}, round {number}"):
                        latency[name] += timed(call, one, args.calls)
                        batch_seconds[name] += timed(call, many, 3)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    results = {}
    for name in contenders:
        ms = np.array(latency[name]) * 1000
        results[name] = {
            "latency_batch1_ms_p50": float(np.percentile(ms, 50)),
            "latency_batch1_ms_p99": float(np.percentile(ms, 99)),
            "throughput_batch256_windows_per_s": float(BATCH / np.median(batch_seconds[name])),
            "latency_samples": len(ms),
        }
    reference = results["keras_predict"]
    for figures in results.values():
        figures["p50_vs_keras_predict"] = figures["latency_batch1_ms_p50"] / reference["latency_batch1_ms_p50"]
    report = {"benchmark": "serving", "model": "default: 50 hidden units, window 49, horizon 1",
              "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]), "rounds": args.rounds,
              "calls_per_round": args.calls, "machine": machine(), "tensorflow_threads": {
                  "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}, "results": results}

    print(f"{'contender':<21} {'p50 ms':>9} {'p99 ms':>9} {'windows/s @256':>15} {'p50 / keras':>12}")
    for name, figures in results.items():
        print(f"{name:<21} {figures['latency_batch1_ms_p50']:>9.3f} {figures['latency_batch1_ms_p99']:>9.3f} "
              f"{figures['throughput_batch256_windows_per_s']:>15.0f} {figures['p50_vs_keras_predict']:>12.3f}")
    watch.write_or_refuse(report, REPO / "benchmarks" / "results" / "serving.json", force=args.force)


if __name__ == "__main__":
    main()
