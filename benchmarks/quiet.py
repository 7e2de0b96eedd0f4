"""Was the machine quiet while we measured? Load and other processes' CPU time,
before and after each measurement, and a refusal to write results when it was not.

A benchmark that runs next to other work measures the other work too, and not
evenly: on a busy 2-core machine PyTorch's OpenMP threads lost far more than
TensorFlow's, which once made the custom cell look 1.24× PyTorch's epoch time
when a quiet machine gave 2.5×. So every measurement is bracketed:

    watch = Watch()
    with watch.measure("custom_cell, round 1"):
        ...
    watch.write_or_refuse(results, path, force=args.force)

The machine counts as busy when the 1-minute load average before the first
measurement was above the number of cores, or when, during any measurement,
processes other than this benchmark and its children used more than BUSY_SHARE
of the machine's CPU time (from /proc/stat, less this process tree's own time
and that of servers it started, beyond TICK_ALLOWANCE clock ticks, the
counters' resolution; time stolen by the hypervisor counts as other work). The load average before
and after every measurement is recorded too, but once the benchmark runs it
counts the benchmark's own threads (a 2-thread contender alone holds it near 2
on 2 cores), so only the first one can judge the machine.
"""

import json
import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BUSY_SHARE = 0.10  # of all cores' time during a measurement
TICK_ALLOWANCE = 3  # clock ticks of other processes' time forgiven per measurement (the counters' resolution)
TICKS = os.sysconf("SC_CLK_TCK")


def _busy_seconds():
    """CPU seconds the whole machine has spent on anything but idling, since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def _processes():
    """{pid: (name, parent pid, CPU seconds so far)} of every process we can read."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        found[int(stat.parent.name)] = (text[text.index("(") + 1:text.rindex(")")], int(fields[1]),
                                        (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def _own_seconds(servers=()):
    """CPU seconds of this process, its finished children, and the running
    processes in `servers` with everything they started."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    if servers:
        processes, tree = _processes(), set(servers)
        while True:
            grown = tree | {pid for pid, (_, parent, _) in processes.items() if parent in tree}
            if grown == tree:
                break
            tree = grown
        seconds += sum(processes[pid][2] for pid in tree if pid in processes)
    return seconds


def top_processes(count=3):
    """The processes that used the most CPU time since they started (name, seconds), other than us."""
    ours = {os.getpid(), os.getppid()}
    found = [(name, seconds) for pid, (name, _, seconds) in _processes().items() if pid not in ours]
    return sorted(found, key=lambda item: -item[1])[:count]


class Watch:
    """Records, for each measurement, the load average before and after and the
    share of CPU time other processes took during it."""

    def __init__(self, cores=None):
        self.cores = cores or os.cpu_count()
        self.records = []
        self.servers = set()  # pids of servers the benchmark started: their CPU time is its own

    def count_as_own(self, pid):
        """Counts a server process this benchmark started (and what it starts) as its own work."""
        self.servers.add(pid)

    @contextmanager
    def measure(self, label):
        load_before = os.getloadavg()[0]
        wall, busy, own = time.monotonic(), _busy_seconds(), _own_seconds(self.servers)
        yield
        wall, busy, own = time.monotonic() - wall, _busy_seconds() - busy, _own_seconds(self.servers) - own
        other_seconds = max(0.0, busy - own)
        other = other_seconds / (wall * self.cores) if wall > 0 else 0.0
        # /proc counts CPU time in clock ticks (10 ms): a measurement of a few ticks
        # cannot tell a stray tick of a kernel thread from other work.
        beyond_resolution = max(0.0, other_seconds - TICK_ALLOWANCE / TICKS) / (wall * self.cores) if wall > 0 else 0
        record = {"label": label, "seconds": round(wall, 3), "load_before": load_before,
                  "load_after": os.getloadavg()[0], "other_cpu_share": round(other, 4)}
        first = not self.records
        record["busy"] = (first and load_before > self.cores) or beyond_resolution > BUSY_SHARE
        self.records.append(record)
        if record["busy"]:
            print(f"BUSY during {label}: load average {load_before:.2f} before (cores: {self.cores}), "
                  f"other processes took {other:.0%} of the CPU (busiest: {top_processes()})",
                  file=sys.stderr, flush=True)

    def summary(self):
        busy = [r for r in self.records if r["busy"]]
        return {
            "rule": f"busy when the 1-minute load average before the first measurement exceeds the {self.cores} "
                    f"cores, or other processes take more than {BUSY_SHARE:.0%} of the CPU during any measurement "
                    f"(beyond {TICK_ALLOWANCE} clock ticks of {1 / TICKS:g} s, the counters' resolution)",
            "measurements": len(self.records),
            "busy_measurements": len(busy),
            "load_before_max": max((r["load_before"] for r in self.records), default=None),
            "other_cpu_share_max": max((r["other_cpu_share"] for r in self.records), default=None),
            "records": self.records,
        }

    def write_or_refuse(self, results, path, force=False):
        """Writes `results` (with the watch's summary as `quiet`) to `path` as
        JSON, unless a measurement was busy and `force` is off: then says so
        loudly and exits with status 3, writing nothing."""
        summary = self.summary()
        results = {**results, "quiet": summary}
        if summary["busy_measurements"] and not force:
            print(f"\nREFUSED: {summary['busy_measurements']} of {summary['measurements']} measurements ran on a "
                  f"busy machine (load average {self.records[0]['load_before']:.2f} before the first, on "
                  f"{self.cores} cores; other processes up to {summary['other_cpu_share_max']:.0%} of the CPU); the busiest "
                  f"processes now: {top_processes()}. Nothing written to {path}. Run again on a quiet machine, "
                  "or pass --force to write the results marked busy.", file=sys.stderr)
            raise SystemExit(3)
        if summary["busy_measurements"]:
            print(f"\nwritten despite {summary['busy_measurements']} busy measurements (--force): "
                  "the results are marked so", file=sys.stderr)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten: {path} (machine quiet in {summary['measurements'] - summary['busy_measurements']} "
              f"of {summary['measurements']} measurements: load average {self.records[0]['load_before']:.2f} "
              f"before the first, other processes at most {summary['other_cpu_share_max']:.1%} of the CPU)")


def timings_markdown(times, quiet, what, goals, machine):
    """The Markdown of a benchmark of commands timed in rounds: median and range per
    command (`times`: {name: seconds}), then `what` was run with how quiet the
    machine was (`quiet`: Watch.summary()), the goals, and the machine."""
    import statistics

    lines = ["| command | median s | range s |", "|---|---:|---|"]
    lines += [f"| {name} | {round(statistics.median(values), 2)} | {round(min(values), 2)}–{round(max(values), 2)} |"
              for name, values in times.items()]
    lines += ["", f"{what}; {quiet['measurements'] - quiet['busy_measurements']} of {quiet['measurements']} "
                  f"measurements quiet (load average {quiet['records'][0]['load_before']:.2f} before the first, "
                  f"other processes at most {quiet['other_cpu_share_max']:.1%} of the CPU).",
              "", "Goals:"] + [f"- {goal}" for goal in goals]
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores"]
    return "\n".join(lines) + "\n"
