"""The MLflow UI screenshots of docs/compare-and-tune.md, taken again: `python docs/screenshots.py`.

Needs Debian's `chromium` (`apt-get install chromium`). In a temporary store it
runs a small sweep (4 trials, each a main run with its three stages), starts
`mlflow server` on 127.0.0.1, and has headless Chromium photograph three pages
into docs/images/: the runs table with the stages nested, the comparison of the
four trials, and one trial's predictions plot.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
SWEEP = ["--hidden_units", "16,32", "--learning_rate", "0.001,0.01", "--epochs", "10", "--n_samples", "300",
         "--free_run_steps", "50"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(url, path, height=1000):
    subprocess.run([shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size=1600,{height}", "--virtual-time-budget=20000",
                    f"--screenshot={path}", url], check=True, capture_output=True, timeout=180)
    print(f"{path.relative_to(REPO)}  <-  {url}")


def main():
    if not shutil.which("chromium"):
        raise SystemExit("chromium is not installed: apt-get install chromium")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-m", "pipeline.stages.sweep", *SWEEP], cwd=folder, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(store)
        experiment = client.get_experiment_by_name("Default").experiment_id
        trials = client.search_runs([experiment], "tags.stage = 'main'", order_by=["metrics.best_val_loss ASC"])
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                  cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            shoot(f"{base}/#/experiments/{experiment}/runs", IMAGES / "runs_table.png")
            ids = json.dumps([run.info.run_id for run in trials])
            shoot(f"{base}/#/compare-runs?runs={urllib.request.quote(ids)}&experiments="
                  f"{urllib.request.quote(json.dumps([experiment]))}", IMAGES / "compare_trials.png", height=1400)
            best_evaluate = trials[0].data.tags["evaluate_run_id"]
            shoot(f"{base}/#/experiments/{experiment}/runs/{best_evaluate}/artifacts/plots/predictions.png",
                  IMAGES / "predictions_plot.png")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
