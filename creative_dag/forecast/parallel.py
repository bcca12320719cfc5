"""Run the forecast's rolling forecasts side by side in worker processes.

A run makes a few dozen rolling forecasts (every KPI x input set x target variant), each a sequence of
single-threaded fits that depend on nothing but the shared inputs: one per core is the cheap way to use
a machine's cores. Processes, not threads: LightGBM's OpenMP threads and the BLAS threads of the ridges
and PCAs fight over the cores when one process runs both (two LightGBM threads per fit made the whole
forecast 1.7-1.9x slower on 2 cores), while a worker process runs its fits one after another on one core.
Every job runs with one BLAS/OpenMP thread, here or in a worker: a BLAS product on two threads can round
differently from one, and the answers must not depend on the number of workers (with one worker, one
thread is also slightly faster: the demo's forecast 78 -> 76 s).

Every worker gets the same inputs and a read-only copy of the refit memo; what each worker used or put
in it comes back and is merged, so a run on N workers saves the same memo and gives the same answers as
on one (tests/test_forecast.py checks both).

The workers are those of creative_dag/worker_processes.py: one thread each, gone within a second of
their step process (loky's own workers only notice a dead parent when they ask for their next task).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from creative_dag.forecast.memo import RefitMemo
from creative_dag.worker_processes import can_start_workers, process_pool, usable_cores


@dataclass(frozen=True)
class RollingJob:
    """One rolling forecast: key (kpi, input set, normalised target) and `rolling_forecast`'s arguments."""

    key: tuple[str, str, bool]
    target: Any  # KpiTarget
    static_cols: Sequence[str]
    blocks: Sequence[str]
    keep_last: bool = False


def worker_count(requested: int, jobs: int) -> int:
    """requested: workers (0 = one per core this process may use); never more than there are jobs, and
    1 where this process may not start any (a Dask or Celery worker)."""
    if not can_start_workers():
        return 1
    if requested <= 0:
        requested = usable_cores()
    return max(1, min(requested, jobs))


def run_jobs(run_one: Callable[..., Any], inputs: Any, jobs: Sequence[RollingJob], rows: Any, config: Any,
             memo: RefitMemo | None, workers: int) -> dict[tuple[str, str, bool], Any]:
    """{job.key: run_one(inputs, job, rows, config, memo)} for every job, on `workers` processes (1: here);
    the worker processes are gone when it returns or raises.

    run_one must be a module-level function (it is sent to the workers by reference)."""
    here: dict[tuple[str, str, bool], Any] = {}
    if worker_count(workers, len(jobs)) > 1:
        here = _run_while_kept(run_one, inputs, jobs, rows, config, memo)
    rest = [job for job in jobs if job.key not in here]
    n = worker_count(workers, len(rest))
    if n > 1:
        here.update(_run_on_workers(run_one, inputs, rest, rows, config, memo, n))
    else:  # one worker asked for, or one job left: not worth a process
        here.update(_run_here(run_one, inputs, rest, rows, config, memo))
    return {job.key: here[job.key] for job in jobs}


def _run_here(run_one: Callable[..., Any], inputs: Any, jobs: Sequence[RollingJob], rows: Any, config: Any,
              memo: RefitMemo | None) -> dict[tuple[str, str, bool], Any]:
    """The jobs one after another in this process, on one BLAS/OpenMP thread (see the module's docstring)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return {job.key: run_one(inputs, job, rows, config, memo) for job in jobs}


def _run_while_kept(run_one: Callable[..., Any], inputs: Any, jobs: Sequence[RollingJob], rows: Any, config: Any,
                    memo: RefitMemo | None) -> dict[tuple[str, str, bool], Any]:
    """Run jobs here, cheapest first, until one has to fit (the memo counts a new fit).

    A day whose refits are all in the memo takes a few seconds in all, less than starting the workers
    (the demo's new day: forecast 3.3 s here, 4.8 s on two workers). With no saved memo (a cold run)
    every job fits: straight to the workers."""
    from threadpoolctl import threadpool_limits

    done: dict[tuple[str, str, bool], Any] = {}
    if memo is None or not memo.stored:
        return done
    with threadpool_limits(limits=1):
        for job in sorted(jobs, key=job_cost):
            fitted = memo.fitted
            done[job.key] = run_one(inputs, job, rows, config, memo)
            if memo.fitted > fitted:
                break
    return done


def _run_on_workers(run_one: Callable[..., Any], inputs: Any, jobs: Sequence[RollingJob], rows: Any, config: Any,
                    memo: RefitMemo | None, n: int) -> dict[tuple[str, str, bool], Any]:
    groups = balanced_groups(jobs, n)
    # One task per worker: the inputs and the memo (tens of MB) travel once per worker, not once per job.
    pool = process_pool(n)
    try:
        futures = [pool.submit(_run_group, run_one, inputs, group, rows, config, memo)
                   for group in groups]
        done = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=True, kill_workers=True)  # a failed job or Ctrl-C: the rest is not wanted
        raise
    pool.shutdown(wait=True)
    out = {}
    for results, record in done:
        out.update(results)
        if memo is not None:
            memo.merge(record)
    return {job.key: out[job.key] for job in jobs}


def job_cost(job: RollingJob) -> float:
    """Rough relative cost of a job (the demo's timings: a block's PCA columns cost most, the kept model a fit)."""
    return 0.5 + 0.7 * len(job.blocks) + 0.007 * len(job.static_cols)


def balanced_groups(jobs: Sequence[RollingJob], n: int) -> list[list[RollingJob]]:
    """`jobs` in n groups of about equal cost (largest first, each to the cheapest group so far)."""
    groups: list[list[RollingJob]] = [[] for _ in range(n)]
    load = [0.0] * n
    for job in sorted(jobs, key=job_cost, reverse=True):
        k = load.index(min(load))
        groups[k].append(job)
        load[k] += job_cost(job)
    return [g for g in groups if g]


def _run_group(run_one: Callable[..., Any], inputs: Any, jobs: Sequence[RollingJob], rows: Any, config: Any,
               memo: RefitMemo | None) -> tuple[dict[tuple[str, str, bool], Any], RefitMemo | None]:
    if memo is not None:
        memo = RefitMemo(None, salt=memo.salt, stored=memo.stored)  # this worker's own record of what it used
    results = _run_here(run_one, inputs, jobs, rows, config, memo)
    return results, None if memo is None else replace(memo, stored={})  # what it read need not travel back
