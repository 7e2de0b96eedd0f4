"""Many series from Parquet, here and on an engine, side by side on one machine.

    python benchmarks/scale.py [--series 20000] [--score-series 100000] [--points 300] [--force]
    python benchmarks/scale.py --only-scoring   # re-measure the scoring, keep the committed baselines

Goals (issue 33): the baselines (SeasonalNaive, AutoETS, AutoTheta) of `--series`
synthetic series of `--points` points read from Parquet, with `engine=local` and on a
2-worker Dask LocalCluster; the batch scoring of a collection model over
`--score-series` series here (`lstm-predict`), on Dask (2 workers), on Spark
`local[2]` (through `mlflow.pyfunc.spark_udf`) and, where Ray is installed, on a
local Ray: series per second for each, the engine's time over local's (goal: below
1.5× on one machine), peak memory of reading and scoring (goal: under 4 GB), and
whether every engine's numbers equal local's.

The series are synthetic (a level, a trend, a yearly season of 12, noise; one in 50
intermittent, mostly zeros), written as 8 Parquet files of whole series. Each
contender runs in a fresh Python process, so that its peak resident memory
(getrusage: the process itself, and the largest of its finished children, such as
Dask's workers) is its own; the forecasts are compared afterwards. The load is
recorded beside the seconds (benchmarks.quiet). Writes benchmarks/results/scale.{json,md}.

The baselines take over an hour on two cores; `--only-scoring` re-measures the scoring
alone and carries the baselines over from the committed scale.json, with the command,
machine and load they were measured under (`baselines_from`); the table says so.
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.quiet import Watch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
HORIZON, SEASON = 12, 12
BASELINES = ("seasonal_naive", "auto_ets", "auto_theta")


def write_collection(folder, n, points, seed=0, files=8):
    """`n` synthetic series in `files` Parquet files (unique_id, ds: 0.., y)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    t = np.arange(points)
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(n), files)):
        level = rng.uniform(10, 1000, (len(rows), 1))
        values = level * (1 + rng.normal(0, 0.002, (len(rows), 1)) * t
                          + rng.uniform(0, 0.2, (len(rows), 1)) * np.sin(2 * np.pi * t / SEASON)
                          + rng.normal(0, 0.05, (len(rows), points)))
        intermittent = rows % 50 == 0
        values[intermittent] = np.where(rng.random((int(intermittent.sum()), points)) < 0.2,
                                        rng.integers(1, 9, (int(intermittent.sum()), points)), 0.0)
        ids = pa.array(np.repeat([f"s{i:06d}" for i in rows], points))
        pq.write_table(pa.table({"unique_id": ids, "ds": np.tile(t, len(rows)), "y": values.ravel()}),
                       folder / f"part-{part}.parquet")
    return folder


def peaks():
    return {"process_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def contender(args):
    """One contender, in this fresh process: prints {"seconds", peaks, "series"} as JSON."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    if args.contender.startswith("baselines"):
        from pipeline import baselines, engines
        from pipeline import collection as coll

        engine = args.contender.split("-")[1]
        read = coll.read_collection(args.data)
        series = [read.series(i) for i in range(len(read))]
        with engines.open_engine(engine) as opened:
            out = baselines.forecast(series, HORIZON, SEASON, BASELINES, engine=opened)
        np.savez(args.out, **{name: out[name]["forecast"] for name in out})
        count = len(series)
    else:
        import pipeline.stages  # noqa: F401  (TensorFlow's start-up lines kept quiet)
        from pipeline.stages import predict

        engine = args.contender.split("-")[1]
        reading = ("auto", "error", "auto", "auto", ".", "none")
        scored = predict.run(args.model, args.data, *reading, args.out, engine=engine)
        count = scored if isinstance(scored, int) else int(scored["unique_id"].nunique())
    print(json.dumps({"seconds": time.perf_counter() - started, "series": count, **peaks()}))


def run_contender(name, data, out, watch, model=None, env=None):
    """The contender in a fresh process, whose whole tree (Dask's workers, Spark's JVM) the
    watch counts as this benchmark's own work."""
    command = [sys.executable, str(Path(__file__).resolve()), "--contender", name, "--data", str(data), "--out",
               str(out)] + (["--model", model] if model else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    watch.count_as_own(process.pid)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def train_model(folder, data, env):
    """A collection model trained (briefly: it is scored, not judged) on the series in `data`."""
    code = ("import json, pipeline.stages; from pipeline import params; from pipeline.stages import main; "
            f"ids, _ = main.run(**{{**params.defaults('main'), 'data_source': {str(data)!r}, "
            f"'horizon': {HORIZON}, 'season': {SEASON}, 'epochs': 1, 'hidden_units': 8}}, register=False, quiet=True); "
            "import mlflow; print(mlflow.get_run(ids['forecast']).data.tags['model_uri'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=folder)
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--score-series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--force", action="store_true", help="write results even if the machine was busy")
    parser.add_argument("--only-scoring", action="store_true",
                        help="re-measure the scoring only; keep the baselines of the committed scale.json")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        return contender(args)

    import pandas as pd

    watch = Watch()
    results = {"command": "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "series": args.series, "score_series": args.score_series,
               "points": args.points, "baselines": {}, "scoring": {}}
    if args.only_scoring:
        earlier = json.loads((RESULTS / "scale.json").read_text())
        if earlier["points"] != args.points:
            raise SystemExit(f"--only-scoring: the committed baselines are of {earlier['points']}-point series, "
                             f"not --points {args.points}")
        results.update(series=earlier["series"], baselines=earlier["baselines"],  # carried over again, or measured
                       baselines_from=earlier.get("baselines_from") or {
                           "command": earlier["command"], "machine": earlier["machine"],
                           "quiet_records": [r for r in earlier["quiet"]["records"] if r["label"].startswith("baselines")]})
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
               "PYSPARK_SUBMIT_ARGS": "--master local[2] pyspark-shell",
               "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
        env.pop("DASK_SCHEDULER_ADDRESS", None)  # a LocalCluster of one worker per core (2 here)
        if not args.only_scoring:
            small = write_collection(scratch / "baselines", args.series, args.points)
            for engine in ("local", "dask"):
                with watch.measure(f"baselines, {engine}"):
                    results["baselines"][engine] = run_contender(f"baselines-{engine}", small,
                                                                 scratch / f"{engine}.npz", watch, env=env)
                print(f"baselines {engine}: {results['baselines'][engine]}", flush=True)
            here, there = np.load(scratch / "local.npz"), np.load(scratch / "dask.npz")
            results["baselines"]["max_relative_difference"] = max(
                float(np.max(np.abs(there[k] - here[k]) / np.maximum(np.abs(here[k]), 1e-9))) for k in here.files)

        large = write_collection(scratch / "scoring", args.score_series, args.points, seed=1)
        model = train_model(scratch, write_collection(scratch / "training", 300, args.points, seed=2, files=1), env)
        results["model"] = "a collection model trained for one epoch on 300 other series (scored, not judged)"
        scorers = ("local", "dask", "spark") + (("ray",) if importlib.util.find_spec("ray") else ())
        for engine in scorers:
            with watch.measure(f"scoring, {engine}"):
                results["scoring"][engine] = run_contender(f"scoring-{engine}", large,
                                                           scratch / f"scored_{engine}.parquet", watch, model, env)
            print(f"scoring {engine}: {results['scoring'][engine]}", flush=True)
        local = pd.read_parquet(scratch / "scored_local.parquet").sort_values(["unique_id", "step"], ignore_index=True)
        for engine in scorers[1:]:
            other = pd.read_parquet(scratch / f"scored_{engine}.parquet").sort_values(["unique_id", "step"],
                                                                                   ignore_index=True)
            same = len(other) == len(local) and (other["unique_id"].to_numpy() == local["unique_id"].to_numpy()).all()
            results["scoring"][engine]["equal_to_local"] = bool(same and np.allclose(
                other[["forecast", "lower", "upper"]].to_numpy(np.float64),
                local[["forecast", "lower", "upper"]].to_numpy(np.float64), rtol=1e-6))
    for part in ("scoring",) if args.only_scoring else ("baselines", "scoring"):
        local = results[part]["local"]["seconds"]
        for engine, measured in results[part].items():
            if isinstance(measured, dict):
                measured["series_per_second"] = measured["series"] / measured["seconds"]
                measured["time_over_local"] = measured["seconds"] / local
    RESULTS.mkdir(exist_ok=True)
    results["quiet"] = watch.summary()  # for the table's busy line (write_or_refuse records the same)
    watch.write_or_refuse(results, RESULTS / "scale.json", force=args.force)
    (RESULTS / "scale.md").write_text(markdown(results))
    print(markdown(results))


def markdown(results):
    lines = [f"Baselines ({', '.join(BASELINES)}) of {results['series']} series of {results['points']} points, and "
             f"the batch scoring of {results['score_series']} series, from Parquet, on this machine "
             f"({results['machine']['cores']} cores); peaks are resident memory (the process; the largest finished "
             "child, such as a Dask worker; Spark's JVM is not counted: it is not a finished child).", "",
             "| work | engine | seconds | series/s | time over local | process peak MB | largest child MB | "
             "same numbers as local |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for part in ("baselines", "scoring"):
        for engine, m in results[part].items():
            if not isinstance(m, dict):
                continue
            if engine == "local":
                same = "—"
            elif part == "baselines":
                difference = results["baselines"]["max_relative_difference"]
                same = f"{'yes' if difference < 1e-5 else '**no**'} (max relative difference {difference:.1e})"
            else:
                same = "yes" if m.get("equal_to_local") else "**no**"
            lines.append(f"| {part} | {engine} | {m['seconds']:.1f} | {m['series_per_second']:.1f} | "
                         f"{m['time_over_local']:.2f}× | {m['process_mb']:.0f} | {m['largest_child_mb']:.0f} | {same} |")
    over = {f"{part} on {engine}": m["time_over_local"] for part in ("baselines", "scoring")
            for engine, m in results[part].items() if isinstance(m, dict) and engine != "local"}
    slow = [f"{name} {ratio:.2f}×" for name, ratio in over.items() if ratio >= 1.5]
    peak = max(max(m["process_mb"], m["largest_child_mb"]) for m in results["scoring"].values() if isinstance(m, dict))
    carried = results.get("baselines_from")
    busy = [r["label"] for r in results.get("quiet", {}).get("records", []) + (carried or {}).get("quiet_records", [])
            if r["busy"]]
    if carried:
        lines += ["", f"The baselines rows are carried over from an earlier run (`{carried['command']}`, "
                  f"{carried['machine']['cpu']}, {carried['machine']['cores']} cores); the scoring rows were "
                  f"measured by `{results['command']}` ({results['machine']['cpu']}, "
                  f"{results['machine']['cores']} cores)."]
    if "ray" not in results["scoring"]:
        lines += ["", "Ray was not installed on the machine that scored: no Ray row."]
    lines += ["", "Goals (issue 33, on one machine):",
              f"- an engine's time below 1.5× local's: {'met' if not slow else '**not met**: ' + ', '.join(slow)}"
              " (local fits the baselines on one core, as the pipeline does; Dask's two workers use both)",
              f"- peak memory of reading and scoring under 4 GB: {'met' if peak < 4096 else '**not met**'} at "
              f"{results['score_series']} series ({peak:.0f} MB, the largest process)"
              + ("" if results["score_series"] >= 100_000 else "; the goal's 100 000 series were not run"),
              f"- the same numbers everywhere: {'met' if all(m.get('equal_to_local', True) for m in results['scoring'].values() if isinstance(m, dict)) and results['baselines']['max_relative_difference'] < 1e-5 else '**not met**'}"]
    if busy:
        lines.append(f"- measured busy (benchmarks.quiet): {', '.join(busy)}; Spark's JVM outlives the process "
                     "that started it, so its CPU time counts as another process's")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
