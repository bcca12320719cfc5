"""Worker processes (creative_dag/worker_processes.py): they run on one thread and die with their step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from creative_dag.worker_processes import THREAD_VARIABLES, process_pool


def _thread_settings() -> dict[str, str | None]:
    return {v: os.environ.get(v) for v in THREAD_VARIABLES}


def test_a_pool_worker_runs_on_one_thread_and_the_pool_shuts_down() -> None:
    pool = process_pool(2)
    try:
        settings = pool.submit(_thread_settings).result(timeout=120)
        pids = {pool.submit(os.getpid).result(timeout=60) for _ in range(4)}
    finally:
        pool.shutdown(wait=True)
    assert settings == {v: "1" for v in THREAD_VARIABLES}
    assert os.getpid() not in pids
    assert not any(_alive(pid) for pid in pids), "a worker outlived the pool's shutdown"


def test_a_worker_exits_when_the_step_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of the step must not leave a worker computing on the cores the next run needs (the
    worker is busy in a task, where loky itself would not notice its parent is gone)."""
    pid_file = tmp_path / "worker.pid"
    step = ("import os, time\n"
            "from creative_dag.worker_processes import process_pool\n"
            "def work(path):\n"
            "    open(path, 'w').write(str(os.getpid()))\n"
            "    time.sleep(120)\n"
            "pool = process_pool(1)\n"
            f"pool.submit(work, {str(pid_file)!r})\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", step])
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the worker did not start"
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    try:
        while _alive(worker_pid):
            assert time.time() < deadline, "the worker outlived its killed parent by 10 s"
            time.sleep(0.1)
    finally:
        if _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_a_step_in_a_daemonic_process_computes_itself() -> None:
    """Dask's and Celery's workers are daemonic processes, which may not start children: there the
    forecast and the OCR run in the step's own process instead of failing."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_in_a_daemon, args=(queue,), daemon=True)
    worker.start()
    outcome = queue.get(timeout=180)
    worker.join(timeout=60)
    assert "error" not in outcome, outcome
    assert outcome["can_start_workers"] is False
    assert outcome["forecast"] == ["a", "b", "c"]
    assert outcome["ocr_workers_reading"] == 0 and "daemonic process" in outcome["ocr_log"]


def _in_a_daemon(queue) -> None:
    from creative_dag.encoders.layout import LayoutExtractor
    from creative_dag.encoders.pipeline import LayoutBlockEncoder
    from creative_dag.forecast.parallel import RollingJob, run_jobs
    from creative_dag.worker_processes import can_start_workers

    try:
        jobs = [RollingJob((name, "context", True), None, [], []) for name in "abc"]
        forecast = run_jobs(_job_name, None, jobs, None, None, None, workers=2)
        encoder = LayoutBlockEncoder(LayoutExtractor(backend="rapidocr"), workers=2)
        lines: list[str] = []
        with encoder.parallel(100, lines.append):
            reading = encoder.reading_workers
        queue.put({"can_start_workers": can_start_workers(), "forecast": sorted(forecast.values()),
                   "ocr_workers_reading": reading, "ocr_log": " ".join(lines)})
    except BaseException as exc:  # noqa: BLE001 - the test reads what went wrong
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _job_name(inputs, job, rows, config, memo) -> str:
    return job.key[0]


def encode_then_kill_the_workers(encoder, images: list):
    """(`encoder.encode(images)` on 2 worker processes, the same after both were killed): the pool
    opens for enough images, a killed worker (out of memory, an operator) stops it with a log line,
    the step's own process computes the rest, and no worker outlives the block."""
    encoder.min_images_per_worker = 2
    lines: list[str] = []
    with encoder.parallel(len(images), lines.append):
        assert encoder.reading_workers == 2
        pooled = encoder.encode(images)
        assert len(_children()) == 2
        for pid in _children():
            os.kill(pid, signal.SIGKILL)
        after_kill = encoder.encode(images)
        assert encoder.reading_workers == 0 and "worker process stopped" in " ".join(lines)
    assert not _children(), "the workers outlived the block"
    return pooled, after_kill


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _children() -> list[int]:
    """Live child processes, but for the resource trackers (one per process, exits with it)."""
    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split() if _alive(int(p))]
        except FileNotFoundError:  # a thread that ended since the listing
            continue
    return [p for p in pids if "resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except FileNotFoundError:
        return ""
