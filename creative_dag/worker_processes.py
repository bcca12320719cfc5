"""Worker processes for CPU-bound steps: one per core, one thread each, gone with their parent.

Three steps use them: the forecast's rolling forecasts (creative_dag/forecast/parallel.py), the
layout block's OCR and the visual block's features (creative_dag/encoders/extractor_pool.py). All gain
from processes rather than threads: their libraries (LightGBM's OpenMP, ONNX Runtime, BLAS, OpenCV on
small images, numpy) either fight over the cores or barely use a second thread on small inputs, while a
process per core on one thread each scales 1.4-1.9x on two cores.

Where a step runs in a daemonic process (the Dask executor's workers, Celery's prefork children),
Python forbids it child processes: `can_start_workers` says so and callers compute in the step's own
process instead.

A pool here is the caller's own (loky's executor, not joblib's reusable one, which idles for 300 s:
a step process that Dagster's multiprocess executor started waits for its children before it exits)
and must be shut down by the caller. Each worker caps its libraries at one thread through the
environment, so a library it loads later (torch, onnxruntime) starts that way too, and it exits within
a second of its parent's death (kill -9, an out-of-memory kill, Dagster terminating the run) instead
of finishing its work on the cores the next run needs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_start_workers() -> bool:
    """False in a daemonic process (a Dask worker, a Celery prefork child): Python forbids it children,
    so a step running there computes in its own process."""
    import multiprocessing

    return not multiprocessing.current_process().daemon


def process_pool(workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: Sequence[Any] = ()) -> Any:
    """A loky ProcessPoolExecutor of `workers` one-thread processes that exit when this process dies.

    `initializer(*initargs)` runs once in each worker (e.g. to load a model it keeps); it must be a
    module-level function. Shut the pool down when done (`shutdown(wait=True)`, with
    `kill_workers=True` on an error)."""
    from joblib.externals.loky import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, tuple(initargs)),
                               env={v: "1" for v in THREAD_VARIABLES})


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    exit_when_orphaned(parent)
    if initializer is not None:
        initializer(*initargs)


def exit_when_orphaned(parent: int, poll_s: float = 0.5) -> None:
    """Start (once per process) a daemon thread that ends this process as soon as `parent` is gone."""
    name = f"exit-when-{parent}-dies"
    if any(t.name == name for t in threading.enumerate()):
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)  # the results have nobody to go to; no clean-up is owed to a dead parent

    threading.Thread(target=watch, name=name, daemon=True).start()
