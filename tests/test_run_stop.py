"""Ctrl-C stops `creative-dag materialize` mid-step, as a user at a terminal expects.

Dagster's in-process execution retries an interrupted step that has a retry policy (the encoders'): before
the fix a Ctrl-C during `embeddings/layout` had the step start again 10 s later and the run went on to the
end, exit 0 (creative_dag/stop_signals.py). The run is now canceled, its warehouse pool slot freed and the
command exits 130, and the next command finishes the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from creative_dag.synth import generate_scenario

STOP_WITHIN_S = 60


# As from a terminal: a test runner may have started us with SIGINT ignored, which a child would inherit.
AS_FROM_A_TERMINAL = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "sys.argv[0] = 'creative-dag'; runpy.run_module('creative_dag.cli', run_name='__main__')")


def _materialize(home: Path, landing: Path, *select: str) -> subprocess.Popen:
    command = [sys.executable, "-c", AS_FROM_A_TERMINAL, "materialize", "--home", str(home), "--landing", str(landing)]
    for key in select:
        command += ["--select", key]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CREATIVE_DAG_TORCH_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_ctrl_c_during_an_encoder_step_stops_the_run_frees_the_pool_and_the_next_run_finishes(tmp_path):
    landing, home = tmp_path / "landing", tmp_path / "home"
    generate_scenario(landing, n_creatives=16, n_days=10, seed=6, image_size=256)
    process = _materialize(home, landing)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "embeddings.layout:" in line and "creatives over" in line:  # the OCR step has begun its images
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(300), "the layout step never started:\n" + "".join(lines[-60:])
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    asked = time.monotonic()
    try:
        code = process.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"Ctrl-C did not stop the run within {STOP_WITHIN_S}s:\n" + "".join(lines[-60:]))
    reader.join(10)
    output = "".join(lines)
    assert code == 130, f"exit {code} after Ctrl-C\n{output[-6000:]}"
    assert "materialised" not in output, "the run went on to the end"
    print(f"Ctrl-C to exit: {time.monotonic() - asked:.1f}s")

    instance = dg.DagsterInstance.from_config(str(home / ".dagster"))
    try:
        runs = instance.get_runs()
        assert not [r.run_id for r in runs if not r.is_finished], "a run is left in progress"
        assert runs[0].status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE), runs[0].status
        pool = instance.event_log_storage.get_concurrency_info("warehouse")
        assert not pool.claimed_slots, "the warehouse pool slot is still held"
        # a step the run queued in its last instant is freed by the next command's reaping of ended runs
        assert all(instance.get_run_by_id(s.run_id).is_finished for s in pool.pending_steps)
    finally:
        instance.dispose()

    again = _materialize(home, landing, "embeddings/layout")
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output[-6000:]
    assert "embeddings.layout: 16 creatives" in output or "16/16 done" in output, output[-3000:]
