"""A benchmark refuses to write results measured next to other work."""

import json
import os
import subprocess
import sys
import time

import pytest

from benchmarks.quiet import Watch

BURN = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\n"


def busy_measurement(watch):
    # As many CPU-bound processes as cores, started outside the measured process tree.
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count())]
    try:
        time.sleep(0.3)
        with watch.measure("next to other work"):
            time.sleep(0.8)
    finally:
        for burner in burners:
            burner.wait()


def test_results_measured_on_a_busy_machine_are_refused_loudly_and_nothing_is_written(tmp_path, capsys):
    watch = Watch()
    busy_measurement(watch)
    record = watch.records[0]
    assert record["busy"] and record["other_cpu_share"] > 0.5
    assert {"load_before", "load_after", "seconds"} <= set(record)
    with pytest.raises(SystemExit) as exit_status:
        watch.write_or_refuse({"figure": 1.0}, tmp_path / "results.json")
    assert exit_status.value.code == 3
    assert "REFUSED: 1 of 1 measurements ran on a busy machine" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_forced_results_are_written_marked_busy(tmp_path):
    watch = Watch()
    busy_measurement(watch)
    watch.write_or_refuse({"figure": 1.0}, tmp_path / "results.json", force=True)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["figure"] == 1.0
    assert written["quiet"]["busy_measurements"] == 1 and written["quiet"]["records"][0]["busy"]
