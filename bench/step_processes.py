"""How Dagster's multiprocess executor starts step processes: spawned (Dagster's default) or forked from a
server that preloaded the project (the project's default since 2026-12-06, creative_dag/step_processes.py).

Runs `refresh_memory` (features and every whole-history table, ~40 steps) with `dagster job execute`, the
way the UI and the daemon run it, on two fresh copies of an existing home: once with
`start_method: spawn`, once with the project's default. Prints each wall time, the ratio and whether
every warehouse table came out equal (timestamps aside). Then times `ingest_landing` (what the landing sensor
starts) on fresh copies, its forkserver preloading every library of the graph (the default until 2026-12-06)
against the project's per-run preload, which leaves out what ingest steps never import (torch, lightgbm, ...).
Writes bench/results/step_processes.json.

Usage: python bench/step_processes.py --home H --landing L [--config assets.yaml] [--ingest N]
       (e.g. the homes `bench/e2e.py --keep DIR` leaves: DIR/home and DIR/landing)
Not a test: timings on a shared 2-core machine vary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPAWN = {"multiprocess": {"start_method": {"spawn": {}}}}


def refresh(home: Path, landing: Path, execution: dict | None, ops: dict, log: Path,
            timeout_s: float | None = None, job: str = "refresh_memory") -> float:
    """`dagster job execute ... -j refresh_memory` (or `job`) on `home` (execution None: the project's default
    executor), output to `log`; returns its wall time (raises on failure; tests/test_pipeline_e2e.py runs it too)."""
    import yaml

    run_config = {"ops": {op: {"config": cfg} for op, cfg in ops.items()}} if ops else {}
    if execution is not None:
        run_config["execution"] = {"config": execution}
    config = log.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(run_config))
    env = {**os.environ, "CREATIVE_DAG_HOME": str(home), "CREATIVE_DAG_LANDING": str(landing),
           "DAGSTER_HOME": str(home / ".dagster")}
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                               "creative_dag.definitions", "-a", "defs", "-j", job, "-c", str(config)],
                              env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{job} failed on {home} (exit {done.returncode}); see {log}")
    return seconds


def tables_equal(a: Path, b: Path) -> list[str]:
    """Tables of two homes' warehouses that differ (columns ending in _at, write times, aside)."""
    import pandas as pd

    from creative_dag.resources.warehouse import DuckDBWarehouse

    left, right = DuckDBWarehouse(a / "creative.duckdb"), DuckDBWarehouse(b / "creative.duckdb")
    differ = sorted(set(left.tables()) ^ set(right.tables()))
    for table in sorted(set(left.tables()) & set(right.tables())):
        x, y = left.read_table(table), right.read_table(table)
        stamps = [c for c in x.columns if c.endswith("_at")]
        try:
            pd.testing.assert_frame_equal(x.drop(columns=stamps), y.drop(columns=stamps))
        except AssertionError:
            differ.append(table)
    return differ


def time_ingest(source: Path, landing: Path, work: Path, repeats: int) -> dict:
    """ingest_landing on fresh copies of `source`, alternating a server that preloads every library with the
    project's per-run preload (creative_dag/step_processes.py); the wall times of each."""
    from creative_dag.instance import prepare_dagster_home
    from creative_dag.settings import resolve_locations
    from creative_dag.step_processes import PRELOAD_MODULES

    # Run config naming another list than the default's decides the preload: every library, as before.
    every = {"forkserver": {"preload_modules": ["dagster", *PRELOAD_MODULES]}}
    ways = {"every library preloaded": {"multiprocess": {"start_method": every}},
            "per-run preload (project default)": None}
    times: dict[str, list[float]] = {label: [] for label in ways}
    for i in range(repeats):
        for label, execution in ways.items():
            home = work / f"ingest_{i}_{label.split()[0]}"
            shutil.copytree(source, home)
            prepare_dagster_home(resolve_locations(home, landing))
            times[label].append(round(refresh(home, landing, execution, {}, home.with_suffix(".log"),
                                              job="ingest_landing"), 1))
            shutil.rmtree(home)
    for label, values in times.items():
        print(f"ingest_landing, {label}: {', '.join(f'{v:.1f}' for v in values)} s", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a materialised home (copied, never changed)")
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--config", type=Path, help="asset config YAML, as for creative-dag materialize --config")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "step_processes.json")
    parser.add_argument("--ingest", type=int, default=2, metavar="N",
                        help="also time ingest_landing N times each way: its server preloading every library "
                             "(FORKSERVER, the default before 2026-12-06 night) and the project's per-run preload")
    args = parser.parse_args()

    import yaml

    from bench.machine_speed import measure as machine_speed
    from creative_dag.definitions import build_definitions
    from creative_dag.instance import prepare_dagster_home
    from creative_dag.runner import op_config_for
    from creative_dag.settings import resolve_locations

    speed_before = machine_speed()
    ops = op_config_for(list(build_definitions(args.home, args.landing).assets),
                        yaml.safe_load(args.config.read_text()) if args.config else {})
    work = Path(tempfile.mkdtemp(prefix="bench_step_processes_"))
    seconds = {}
    for label, execution in (("spawn", SPAWN), ("forkserver (project default)", None)):
        home = work / label.split()[0]
        shutil.copytree(args.home, home)
        # The instance as the project ships it today (the copied home may hold an older dagster.yaml).
        prepare_dagster_home(resolve_locations(home, args.landing))
        seconds[label] = refresh(home, args.landing, execution, ops, work / f"{label.split()[0]}.log")
        print(f"refresh_memory, steps {label}: {seconds[label]:.1f} s", flush=True)
    differ = tables_equal(work / "spawn", work / "forkserver")
    ratio = seconds["forkserver (project default)"] / seconds["spawn"]
    print(f"forkserver / spawn: {ratio:.2f}; tables that differ: {differ or 'none'}")
    result = {"home": str(args.home), "seconds": {k: round(v, 1) for k, v in seconds.items()},
              "ratio": round(ratio, 3), "tables_that_differ": differ, "cpus": os.cpu_count(),
              "python": platform.python_version(), "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    if args.ingest:
        result["ingest_landing"] = time_ingest(args.home, args.landing, work, args.ingest)
    result["machine_speed"] = {"before": speed_before, "after": machine_speed()}  # bench/machine_speed.py
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
