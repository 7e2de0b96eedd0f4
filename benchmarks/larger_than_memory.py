"""A Parquet collection that cannot be read at once within a memory cap, read in blocks and trained.

    python benchmarks/larger_than_memory.py [--series 400000] [--points 300] [--limit-gb 5]

Goal (issue 33, item 4): a collection larger than the memory given trains on one
machine. The collection is synthetic (benchmarks.scale.write_collection: a level,
trend and season of 12 with noise, one series in 50 intermittent), written as 8
Parquet files. Each contender runs in a fresh process inside a cgroup (v1) whose
memory is capped at `--limit-gb`, so the kernel kills whatever needs more:

- `at once`: the collection reader in one read (block_rows above the row count),
  as every collection was read before blocks;
- `in blocks, then trained`: the pipeline's own stages, as `mlflow run . -e
  generate_data` and `-e train` run them: generate_data reads the collection in
  blocks of whole series (pipeline.parquet_input.BLOCK_ROWS) and logs its matrix,
  train trains the global model on it (one network of 8 units, one epoch, one
  window per series, no refit: what is measured is memory, not accuracy).

Records each contender's exit status, seconds and peak resident memory (the
largest finished child's, getrusage), and the cgroup's own peak (which also
counts the page cache). Needs root and a cgroup v1 memory controller at
/sys/fs/cgroup/memory (Linux). Writes benchmarks/results/larger_than_memory.{json,md}.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402
from benchmarks.scale import HORIZON, SEASON, write_collection  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CGROUP = Path("/sys/fs/cgroup/memory")


class Capped:
    """A memory cgroup capped at `limit` bytes: `run` starts a command inside it."""

    def __init__(self, limit):
        if not (CGROUP / "cgroup.procs").is_file():
            raise SystemExit(f"no cgroup v1 memory controller at {CGROUP}: this benchmark needs one (and root)")
        self.folder = CGROUP / f"lstm-benchmark-{os.getpid()}"
        self.folder.mkdir()
        (self.folder / "memory.limit_in_bytes").write_text(str(limit))
        self.limit = limit

    def run(self, command, env, watch, scratch):
        """`command` in the cgroup: its exit status, seconds, peak resident memory (its own,
        from wait4) and the cgroup's peak (page cache included)."""
        (self.folder / "memory.max_usage_in_bytes").write_text("0")
        out, err = scratch / "stdout.txt", scratch / "stderr.txt"
        started = time.perf_counter()
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(["sh", "-c", f'echo $$ > {self.folder / "cgroup.procs"} && exec "$@"', "sh",
                                        *command], env=env, cwd=REPO, stdout=stdout, stderr=stderr)
            watch.count_as_own(process.pid)
            _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code  # reaped here, not by Popen
        return {"exit_status": code, "killed_for_memory": code == -9, "seconds": time.perf_counter() - started,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "cgroup_peak_mb": int((self.folder / "memory.max_usage_in_bytes").read_text()) / 2 ** 20,
                "stdout": out.read_text()[-1500:], "stderr": err.read_text()[-1500:]}

    def close(self):
        self.folder.rmdir()


def at_once(data):
    """The reader in one read (every row at once), as before blocks."""
    return [sys.executable, "-c", "import sys; from pipeline import collection as coll; "
            f"c = coll.read_collection({str(data)!r}, block_rows=10 ** 12); print(c.values.shape)"]


def stage(name, **values):
    return [sys.executable, "-m", f"pipeline.stages.{name}"] + [f"--{k}={v}" for k, v in values.items()]


def newest_run(tracking_uri, stage_name):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.stage = '{stage_name}'", order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=400_000)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--limit-gb", type=float, default=5.0)
    parser.add_argument("--force", action="store_true", help="write results even if the machine was busy")
    args = parser.parse_args(argv)
    from pipeline.parquet_input import BLOCK_ROWS

    watch = Watch()
    results = {"command": "python benchmarks/larger_than_memory.py " + " ".join(argv if argv is not None
                                                                                 else sys.argv[1:]),
               "machine": machine(), "series": args.series, "points": args.points, "rows": args.series * args.points,
               "limit_gb": args.limit_gb, "block_rows": BLOCK_ROWS,
               "matrix_mb": args.series * args.points * 4 / 2 ** 20}
    capped = Capped(int(args.limit_gb * 2 ** 30))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            data = write_collection(scratch / "collection", args.series, args.points, seed=3)
            results["parquet_mb"] = sum(p.stat().st_size for p in data.rglob("*.parquet")) / 2 ** 20
            uri = f"sqlite:///{scratch / 'mlflow.db'}"
            env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
            with watch.measure("at once"):
                results["at_once"] = capped.run(at_once(data), env, watch, scratch)
            print("at once:", {k: v for k, v in results["at_once"].items() if k not in ("stdout", "stderr")},
                  flush=True)
            with watch.measure("generate_data"):
                results["generate_data"] = capped.run(stage("generate_data", data_source=data, horizon=HORIZON,
                                                            season=SEASON), env, watch, scratch)
            print("generate_data:", {k: v for k, v in results["generate_data"].items()
                                     if k not in ("stdout", "stderr")}, flush=True)
            if results["generate_data"]["exit_status"] == 0:
                data_uri = f"runs:/{newest_run(uri, 'generate_data')}/data"
                with watch.measure("train"):
                    results["train"] = capped.run(stage(
                        "train", data_uri=data_uri, hidden_units=8, epochs=1, ensemble_size=1, season=SEASON,
                        windows_per_series=1, refit="false"), env, watch, scratch)
                print("train:", {k: v for k, v in results["train"].items() if k not in ("stdout", "stderr")},
                      flush=True)
    finally:
        capped.close()
    RESULTS.mkdir(exist_ok=True)
    watch.write_or_refuse(results, RESULTS / "larger_than_memory.json", force=args.force)
    (RESULTS / "larger_than_memory.md").write_text(markdown(results))
    print(markdown(results))


def markdown(results):
    def row(name, measured):
        if measured is None:
            return f"| {name} | not run | | | |"
        status = ("killed for memory" if measured["killed_for_memory"] else
                  "finished" if measured["exit_status"] == 0 else f"failed ({measured['exit_status']})")
        return (f"| {name} | {status} | {measured['seconds']:.0f} | {measured['peak_rss_mb']:.0f} | "
                f"{measured['cgroup_peak_mb']:.0f} |")

    trained = results.get("train", {}).get("exit_status") == 0
    lines = [f"{results['series']} series of {results['points']} points ({results['rows']:,} rows; "
             f"{results['parquet_mb']:.0f} MB of Parquet; the matrix of values {results['matrix_mb']:.0f} MB), "
             f"each step in a fresh process capped at {results['limit_gb']:g} GB of memory (a cgroup); "
             f"blocks of {results['block_rows']:,} rows.", "",
             "| step | outcome | seconds | peak resident MB | cgroup peak MB (with page cache) |",
             "|---|---|---:|---:|---:|",
             row("the reader, every row at once", results.get("at_once")),
             row("generate_data (the reader in blocks)", results.get("generate_data")),
             row("train (one epoch)", results.get("train")), "",
             "Goal (issue 33, item 4): a collection larger than the memory given trains on one machine: "
             + ("**met**" if trained and results["at_once"]["killed_for_memory"] else "**not met**")
             + f" ({'read at once it was killed, ' if results['at_once']['killed_for_memory'] else 'read at once it fit, '}"
             + ("in blocks it was read and trained)." if trained else "in blocks it did not train).")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
