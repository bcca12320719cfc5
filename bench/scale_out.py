"""Scale-out benchmark: a launch-date backfill of the encoder blocks on the Dask executor
(a local Dask cluster of N worker processes), and the same backfill in process.

`run_backfill(home, landing, executor, ...)` runs the `encoder_backfill` job
(creative_dag.scale_out) over every registered launch date on an ingested home and returns what
happened; `run_dask_backfill(home, landing, n_workers)` is the Dask case. `tests/test_scale_out.py`
uses both; a future bench/e2e.py can call them.

Usage: python bench/scale_out.py [--creatives 48] [--days 45] [--image-size 320] [--workers 1 2]
Generates a scenario, ingests it once, then for each worker count backfills a fresh copy of the
ingested home and prints the wall time; writes bench/results/scale_out.json. Not a test: timings
on a shared 2-core machine vary, and a local Dask cluster on one machine measures process
overhead and contention, not a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# The cheapest encoder settings the tests use: one torch thread per process (two Dask workers on
# two cores), small batches, OCR at 256 px. CLIP is whatever `clip_model` says (offline: unavailable).
CHEAP_ENCODERS = {"threads": 1, "batch_size": 8, "ocr_working_size": 256}


@contextlib.contextmanager
def deployment_env(home: Path, landing: Path, **extra: str) -> Iterator[None]:
    """CREATIVE_DAG_HOME / CREATIVE_DAG_LANDING (and `extra`) for the duration: worker processes
    started inside (Dask's) inherit them and build the same resources."""
    from creative_dag.settings import HOME_ENV, LANDING_ENV

    values = {HOME_ENV: str(home), LANDING_ENV: str(landing), **extra}
    saved = {k: os.environ.get(k) for k in [*values, "DAGSTER_HOME"]}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ingest(home: Path, landing: Path) -> list[str]:
    """Everything upstream of the encoder blocks, with the project's runner (as `creative-dag
    materialize` does); returns the registered launch dates."""
    import dagster as dg

    from creative_dag.definitions import build_definitions
    from creative_dag.instance import get_instance
    from creative_dag.partitions import launch_date_partitions
    from creative_dag.resources.warehouse import DuckDBWarehouse
    from creative_dag.runner import materialize_selection
    from creative_dag.scale_out import encoder_backfill_keys
    from creative_dag.settings import resolve_locations

    locations = resolve_locations(home, landing)
    with deployment_env(home, landing):
        defs = build_definitions(home, landing)
        encoders = encoder_backfill_keys(defs)
        upstream = (dg.AssetSelection.assets(*encoders).upstream() - dg.AssetSelection.groups("encoders"))
        upstream = upstream.required_multi_asset_neighbors()  # ingest is one multi-asset
        graph = defs.resolve_asset_graph()
        chosen = upstream.resolve(graph)
        keys = [k for k in graph.toposorted_asset_keys if k in chosen]
        with get_instance(locations) as instance:
            summary = materialize_selection(defs, instance, DuckDBWarehouse(locations.database), keys,
                                            log_level="WARNING", report=lambda line: None)
            if not summary.success:
                raise RuntimeError(f"ingest failed: {summary.failed_steps or summary.failed_checks or summary.skipped}")
            return list(instance.get_dynamic_partitions(launch_date_partitions.name))


def copy_home(source: Path, target: Path) -> Path:
    """A copy of an ingested home (warehouse, instance with its partitions); nothing may be running on it."""
    shutil.copytree(source, target)
    return target


def run_backfill(home: Path, landing: Path, executor: str, execution_config: Mapping[str, Any] | None = None,
                 encoder_config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> dict:
    """Backfill the encoder blocks over every registered launch date of `home`, as one run of
    `encoder_backfill` on `executor` (see creative_dag.scale_out), with the home's persistent
    instance; a home with no launch date registered is ingested from `landing` first (not timed in
    `seconds`: see `ingest_seconds`). Returns run_id, success, seconds, partitions, failed steps,
    the process and duration of each step, and how many steps, and how many warehouse-pool steps,
    overlapped in time (max_concurrent_steps, max_concurrent_pool_steps)."""
    import dagster as dg

    from creative_dag.instance import get_instance
    from creative_dag.partitions import launch_date_partitions
    from creative_dag.run_health import process_tags
    from creative_dag.scale_out import reconstructable_encoder_backfill
    from creative_dag.settings import resolve_locations

    locations = resolve_locations(home, landing)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if execution_config is not None:
        run_config["execution"] = {"config": dict(execution_config)}
    if encoder_config:
        run_config["resources"] = {"encoders": {"config": dict(encoder_config)}}
    with deployment_env(home, landing), get_instance(locations) as instance:
        registered = list(instance.get_dynamic_partitions(launch_date_partitions.name))
    ingest_seconds = None
    if not registered:
        started = time.perf_counter()
        ingest(home, landing)
        ingest_seconds = round(time.perf_counter() - started, 2)
    with deployment_env(home, landing, **dict(env or {})), get_instance(locations) as instance:
        dates = list(instance.get_dynamic_partitions(launch_date_partitions.name))
        if not dates:
            raise ValueError(f"no launch date in {landing}: nothing to backfill")
        tags = {**process_tags(), RANGE_START_TAG: dates[0], RANGE_END_TAG: dates[-1]}
        job = reconstructable_encoder_backfill(executor)
        pools = {op.name: op.pool for op in job.get_definition().graph.iterate_op_defs()}
        started = time.perf_counter()
        with dg.execute_job(job, instance=instance, run_config=run_config, tags=tags,
                            raise_on_error=False) as result:
            seconds = time.perf_counter() - started
            events = instance.all_logs(result.run_id)
            failed = [f"{e.dagster_event.step_key}: {_error_text(e.dagster_event)}" for e in events
                      if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE]
            return {
                "executor": executor,
                "run_id": result.run_id,
                "success": result.success,
                "seconds": round(seconds, 2),
                "ingest_seconds": ingest_seconds,
                "partitions": len(dates),
                "steps_succeeded": sorted(_step_keys(events, dg.DagsterEventType.STEP_SUCCESS)),
                "failed_steps": failed,
                "step_pids": _step_pids(events),
                "step_seconds": _step_seconds(events),
                "max_concurrent_steps": _max_overlap(events),
                "max_concurrent_pool_steps": _max_overlap(events, lambda step: bool(pools.get(step.split(".")[-1]))),
            }


def run_dask_backfill(home: Path, landing: Path, n_workers: int,
                      encoder_config: Mapping[str, Any] | None = None) -> dict:
    """The backfill on a local Dask cluster of `n_workers` processes (one thread each)."""
    cluster = {"local": {"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                         "dashboard_address": ":0"}}
    return run_backfill(home, landing, "dask", {"cluster": cluster},
                        encoder_config=CHEAP_ENCODERS if encoder_config is None else encoder_config,
                        env={"HF_HUB_OFFLINE": "1"})


def _error_text(event) -> str:
    error = getattr(event.event_specific_data, "error", None)
    return " ".join((error.message if error else "failed").split())[:500]


def _step_keys(events, event_type) -> set[str]:
    return {e.dagster_event.step_key for e in events if e.dagster_event and e.dagster_event.event_type == event_type}


def _step_pids(events) -> dict[str, int]:
    """step key -> the process that ran it (from STEP_START events)."""
    import dagster as dg

    return {e.dagster_event.step_key: e.dagster_event.pid for e in events
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START}


def _step_seconds(events) -> dict[str, float]:
    """step key -> seconds from its start to its success or failure."""
    import dagster as dg

    starts, took = {}, {}
    for e in events:
        event = e.dagster_event
        if not event or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = e.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            took[event.step_key] = round(e.timestamp - starts.get(event.step_key, e.timestamp), 2)
    return took


def _max_overlap(events, counted=lambda step_key: True) -> int:
    """The most `counted` steps of the run executing at the same moment (start..success/failure).
    Counting the steps in a pool (the warehouse writers, limit 1): more than 1 means the executor did
    not honour the pool."""
    import dagster as dg

    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    marks = []
    for e in events:
        if not e.dagster_event or not e.dagster_event.step_key or not counted(e.dagster_event.step_key):
            continue
        if e.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            marks.append((e.timestamp, 1))
        elif e.dagster_event.event_type in ends:
            marks.append((e.timestamp, -1))
    running = best = 0
    for _, delta in sorted(marks, key=lambda m: (m[0], m[1])):  # an end before a start at the same instant
        running += delta
        best = max(best, running)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creatives", type=int, default=48)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--in-process", action="store_true", help="also time the in-process executor")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale_out.json"))
    args = parser.parse_args(argv)

    from bench.machine_speed import measure as machine_speed
    from creative_dag.synth import generate_scenario

    results: dict[str, Any] = {
        "scenario": {"creatives": args.creatives, "days": args.days, "image_size": args.image_size, "seed": args.seed},
        "encoders": CHEAP_ENCODERS, "clip": "unavailable (HF_HUB_OFFLINE)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "speed_before": machine_speed()},  # bench/machine_speed.py: this machine's speed drifts by hour
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="scale-out-bench-") as tmp:
        root = Path(tmp)
        landing = root / "landing"
        generate_scenario(landing, n_creatives=args.creatives, n_days=args.days, seed=args.seed,
                          image_size=args.image_size)
        ingested = root / "ingested"
        started = time.perf_counter()
        dates = ingest(ingested, landing)
        results["ingest_seconds"] = round(time.perf_counter() - started, 2)
        results["launch_dates"] = len(dates)
        plans = [("in_process", None)] if args.in_process else []
        plans += [("dask", n) for n in args.workers]
        for executor, n in plans:
            home = copy_home(ingested, root / f"home-{executor}-{n or 0}")
            if executor == "dask":
                run = run_dask_backfill(home, landing, n)
            else:
                run = run_backfill(home, landing, executor, encoder_config=CHEAP_ENCODERS, env={"HF_HUB_OFFLINE": "1"})
            run["n_workers"] = n
            run.pop("step_pids", None)
            run["busy_seconds"] = round(sum(run.pop("step_seconds", {}).values()), 1)
            results["runs"].append(run)
            print(f"{executor:<10} workers={n or '-'}  {run['seconds']:7.1f} s  success={run['success']}  "
                  f"max concurrent steps={run['max_concurrent_steps']} (pooled {run['max_concurrent_pool_steps']})  "
              f"failed={run['failed_steps']}", flush=True)
    results["machine"]["speed_after"] = machine_speed()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
