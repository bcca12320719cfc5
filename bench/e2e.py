"""End-to-end benchmark: a cold run of the whole graph, an unchanged re-run, and two one-new-day runs.

The way a user runs it: `creative-dag materialize` in a fresh process each time (models load,
numba compiles, the Dagster instance opens). The forecast refits its models on the first launch of
every 7th day (`ForecastConfig.refit_days`, `forecast.model.refit_dates`) and reuses them on the days
between, so a daily run is either a refit day or not, and the bench times one of each: the latest two
consecutive days with launches of which one is a refit day are held back (their metrics and the
creatives launched on them), the cold run covers the scenario up to the day before, and the two days
then land one at a time (`one_new_day`, `next_new_day`). The days after them are not used (on the
demo, 300 x 120 at seed 7: cold through 2026-06-21, the refit day 06-22, then 06-23; five of 120 days
left out). Each new-day run records how many forecast refits it fitted (`forecast_refits_fitted`: 0 on
a day between refits).

Prints creatives/s of the cold run, peak RSS of each run, each run's time as a ratio of the cold
run (goal for one new day: <= 0.05), a week's average of daily runs (six days between refits and one
refit day) as the same ratio, and the slowest steps of each run (from the run's event log).
With --watch it also runs the same two new days through one `creative-dag watch` process started on the
state before them (imports kept between runs; the first new day still loads the models), and records those
runs' seconds and ratios under "watch". With --dask it also times a launch-date backfill of the encoders on the Dask executor at 1 and 2
workers (bench/scale_out.py). Records the machine's reference speed (bench/machine_speed.py) before
the first run and after the last, since this machine's speed drifts by hour. Writes
bench/results/e2e.json.

--ocr-backend rapidocr runs the layout block (and the attribution's edits) on PP-OCRv4 instead of
EasyOCR ($CREATIVE_DAG_OCR_BACKEND) and writes bench/results/e2e_rapidocr.json. Another scale than the
demo's 300 x 120, or another image size than its 1080 px, adds it to the name
(e2e_rapidocr_2000x120.json, e2e_rapidocr_2000x120_128px.json).

Usage: python bench/e2e.py [--creatives 300] [--days 120] [--image-size 1080] [--seed 7] [--dask] [--watch]
       [--ocr-backend easyocr|rapidocr] [--keep DIR]
Not a test: timings on a shared machine vary; compare the ratios measured in one invocation.
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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def metric_days(full: Path) -> list[str]:
    return sorted(set(pd.read_csv(full / "daily_metrics.csv", dtype=str, usecols=["date"])["date"]))


def held_back_days(full: Path) -> tuple[str, str, str]:
    """(the cold run's last day, the first new day, the second): the latest two consecutive metric days on which
    creatives launched (a day of metrics only embeds nothing) and exactly one of which is a forecast refit day;
    the scenario's last three days when it has none."""
    from creative_dag.forecast.model import refit_dates

    days = metric_days(full)
    launches = pd.read_csv(full / "creatives.csv", dtype=str, usecols=["launch_date"])["launch_date"]
    refits, launched = {day.date().isoformat() for day in refit_dates(launches)}, set(launches)
    for i in range(len(days) - 2, 0, -1):
        pair = days[i], days[i + 1]
        if set(pair) <= launched and (pair[0] in refits) != (pair[1] in refits):
            return days[i - 1], *pair
    return days[-3], days[-2], days[-1]


def land_through(full: Path, landing: Path, last: str) -> None:
    """The landing folder as the export looked on day `last`: its metrics through that day and the
    creatives launched by then (images and the rest as they are)."""
    if not landing.exists():
        shutil.copytree(full, landing, ignore=shutil.ignore_patterns("creatives.csv", "daily_metrics.csv"))
    creatives = pd.read_csv(full / "creatives.csv", dtype=str, keep_default_na=False)
    metrics = pd.read_csv(full / "daily_metrics.csv", dtype=str, keep_default_na=False)
    creatives[creatives["launch_date"] <= last].to_csv(landing / "creatives.csv", index=False)
    metrics[metrics["date"] <= last].to_csv(landing / "daily_metrics.csv", index=False)


def forecast_refits_fitted(home: Path, since: float) -> int | None:
    """How many forecast refits the run fitted (the rest it reused), from `marts.performance_model`'s
    materialisation metadata; None if the forecast did not run."""
    os.environ["DAGSTER_HOME"] = str(home / ".dagster")
    import dagster as dg

    records = dg.DagsterInstance.get().fetch_materializations(
        dg.AssetKey(["marts", "performance_model"]), limit=1).records
    if not records or records[0].timestamp < since:
        return None
    value = records[0].asset_materialization.metadata.get("refits_fitted")
    return None if value is None else int(value.value)


# Linux counts the address space a child was forked with in its peak RSS, so a child of this process
# (which imports torch for the speed reference and Dagster to read the event log) would report at least
# this process's size. Each run is therefore started by this small launcher, which reports its child's.
_LAUNCHER = """import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "peak_rss_kb": usage.ru_maxrss}, out)
"""


def timed_materialize(home: Path, landing: Path, threads: int, ocr_backend: str | None = None) -> dict:
    """One `creative-dag materialize` in a fresh process: wall seconds, peak RSS, exit code."""
    env = {**os.environ, "CREATIVE_DAG_TORCH_THREADS": str(threads)}
    if ocr_backend:
        env["CREATIVE_DAG_OCR_BACKEND"] = ocr_backend
    command = [sys.executable, "-m", "creative_dag.cli", "materialize", "--home", str(home),
               "--landing", str(landing), "--log-level", "WARNING"]
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "run.json"
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report), *command], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = process.stdout.read()
        process.wait()
        seconds = time.perf_counter() - started
        run = json.loads(report.read_text())
    if run["exit_code"] != 0:
        print(output[-4000:])
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(run["peak_rss_kb"] / 1024),
            "exit_code": run["exit_code"]}


def watched_new_days(home: Path, landing: Path, full: Path, new_days: dict[str, str], threads: int,
                     ocr_backend: str | None = None) -> dict:
    """The same new days through one `creative-dag watch` process, started on the home and landing folder as
    they were before the first new day (their copies put back at the same paths, with their files' times, so
    the watch's first look finds nothing to do). Each day lands once the previous run is done; the seconds are
    the watch's own ("run done in"), from the run's start to its end."""
    env = {**os.environ, "CREATIVE_DAG_TORCH_THREADS": str(threads)}
    if ocr_backend:
        env["CREATIVE_DAG_OCR_BACKEND"] = ocr_backend
    command = [sys.executable, "-m", "creative_dag.cli", "watch", "--home", str(home), "--landing", str(landing),
               "--interval", "1", "--settle", "1", "--log-level", "WARNING", "--max-runs", str(len(new_days))]
    pending = list(new_days.items())
    runs: dict = {}
    imports_s = None
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "run.json"
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report), *command], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output, since, name = [], time.time(), "start"
        for line in process.stdout:  # the watch's lines: "<time> watch: ...", and materialize's own
            output.append(line)
            if "watch: imported" in line:
                imports_s = float(line.split(" in ")[1].split(" s")[0])
            # the first look finds the state before the first day unchanged; each later run is a day's
            finished = next((m for m in ("watch: run done in ", "watch: run failed in ") if m in line), None)
            if not (line.startswith("nothing to do") or finished):
                continue
            seconds = float(line.split(finished)[1].split(" s")[0]) if finished else 0.0
            memory = line.split("resident memory ")[1].split(" MB")[0] if "resident memory" in line else None
            if name != "start":
                runs[name] = {"day": new_days[name], "seconds": seconds, "resident_mb_after": memory and int(memory),
                              "forecast_refits_fitted": forecast_refits_fitted(home, since),
                              "slowest_steps": {k: round(v, 1) for k, v in list(step_seconds(home, since).items())[:8]}}
            if pending:
                name, day = pending.pop(0)
                since = time.time()
                land_through(full, landing, day)
        process.wait()
        run = json.loads(report.read_text())
    if run["exit_code"] != 0 or len(runs) < len(new_days):
        print("".join(output)[-4000:])
    return {"runs": runs, "imports_at_start_s": imports_s, "peak_rss_mb": round(run["peak_rss_kb"] / 1024),
            "exit_code": run["exit_code"], "wall_s": round(time.perf_counter() - started, 1)}


def step_seconds(home: Path, since: float) -> dict[str, float]:
    """Seconds per step of every run that started after `since` (from the instance's event log)."""
    os.environ["DAGSTER_HOME"] = str(home / ".dagster")
    import dagster as dg

    instance = dg.DagsterInstance.get()
    durations: dict[str, float] = {}
    for run in instance.get_runs():
        starts: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.timestamp < since or not event.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE) \
                    and event.step_key in starts:
                durations[event.step_key] = durations.get(event.step_key, 0.0) + record.timestamp - starts[event.step_key]
    return dict(sorted(durations.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creatives", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--image-size", type=int, default=1080)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dask", action="store_true", help="also time a Dask backfill at 1 and 2 workers")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (with home_before_one_new_day/ and home_before_next_new_day/, "
                             "the homes before those runs)")
    parser.add_argument("--ocr-backend", default=None, help="layout OCR backend (default: the deployment's, EasyOCR)")
    parser.add_argument("--watch", action="store_true",
                        help="also run the new days through one `creative-dag watch` process (imports kept)")
    args = parser.parse_args()

    from creative_dag.synth import generate_scenario

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    full, landing, home = work / "full", work / "landing", work / "home"
    for folder in (landing, home):
        shutil.rmtree(folder, ignore_errors=True)
    if not (full / "creatives.csv").exists():
        started = time.perf_counter()
        generate_scenario(full, n_creatives=args.creatives, n_days=args.days, seed=args.seed,
                          image_size=args.image_size)
        print(f"generated {args.creatives} creatives x {args.days} days in {time.perf_counter() - started:.0f}s")
    cold_day, next_day, last_day = held_back_days(full)
    land_through(full, landing, cold_day)
    cold_creatives = len(pd.read_csv(landing / "creatives.csv", dtype=str))
    from bench.machine_speed import measure as machine_speed

    # the reference figures before the first run and after the last: the hour's speed, to compare sessions
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "speed_before": machine_speed(args.threads)},
                     "scenario": {"creatives": args.creatives, "days": args.days, "image_size": args.image_size,
                                  "held_back_days": [next_day, last_day]},
               "ocr_backend": args.ocr_backend or os.environ.get("CREATIVE_DAG_OCR_BACKEND") or "easyocr", "runs": {}}

    new_days = {"one_new_day": next_day, "next_new_day": last_day}
    for name in ("cold", "unchanged", *new_days):
        if name in new_days:
            if args.keep or args.watch:  # the state before the new day, to repeat that run (by hand, or watched)
                for folder in (home, landing):
                    shutil.rmtree(work / f"{folder.name}_before_{name}", ignore_errors=True)
                    shutil.copytree(folder, work / f"{folder.name}_before_{name}", symlinks=True)
            land_through(full, landing, new_days[name])
        since = time.time()
        run = timed_materialize(home, landing, args.threads, args.ocr_backend)
        run["slowest_steps"] = {k: round(v, 1) for k, v in list(step_seconds(home, since).items())[:8]}
        if name in new_days:
            run["day"] = new_days[name]
            run["forecast_refits_fitted"] = forecast_refits_fitted(home, since)
        results["runs"][name] = run
        print(f"{name:12s} {run['seconds']:7.1f}s  peak RSS {run['peak_rss_mb']} MB  exit {run['exit_code']}"
              + (f"  forecast refits fitted: {run['forecast_refits_fitted']}" if name in new_days else ""))
        print("             slowest steps: " + ", ".join(f"{k} {v}s" for k, v in run["slowest_steps"].items()))
    results["machine"]["speed_after"] = machine_speed(args.threads)
    print(f"machine speed before / after: {results['machine']['speed_before']} / {results['machine']['speed_after']}")
    cold = results["runs"]["cold"]["seconds"]
    results["cold_creatives_per_s"] = round(cold_creatives / cold, 2)
    for name in ("unchanged", *new_days):
        results["runs"][name]["ratio_to_cold"] = round(results["runs"][name]["seconds"] / cold, 3)
    print(f"cold: {results['cold_creatives_per_s']} creatives/s; unchanged / cold = "
          f"{results['runs']['unchanged']['ratio_to_cold']}; new day / cold = "
          + ", ".join(f"{results['runs'][n]['ratio_to_cold']} ({n}, {results['runs'][n]['forecast_refits_fitted']} "
                      "forecast refits)" for n in new_days) + " (goal <= 0.05)")
    # What a user's week of daily runs costs: six days between refits and one refit day.
    refit_day = [n for n in new_days if results["runs"][n]["forecast_refits_fitted"]]
    between = [n for n in new_days if results["runs"][n]["forecast_refits_fitted"] == 0]
    if refit_day and between:
        week = (6 * results["runs"][between[0]]["seconds"] + results["runs"][refit_day[0]]["seconds"]) / 7
        results["week_of_new_days_ratio_to_cold"] = round(week / cold, 3)
        print(f"a week of daily runs (6 days between refits, 1 refit day): {week:.1f}s a day on average, "
              f"{week / cold:.3f} of the cold run")

    if args.watch:
        first = next(iter(new_days))
        for folder in (home, landing):  # back to the state before the first new day, at the same paths
            shutil.rmtree(folder)
            shutil.copytree(work / f"{folder.name}_before_{first}", folder, symlinks=True)
        watched = watched_new_days(home, landing, full, new_days, args.threads, args.ocr_backend)
        for name in new_days:
            if name in watched["runs"]:
                watched["runs"][name]["ratio_to_cold"] = round(watched["runs"][name]["seconds"] / cold, 3)
        refit_day = [n for n in new_days if watched["runs"].get(n, {}).get("forecast_refits_fitted")]
        between = [n for n in new_days if watched["runs"].get(n, {}).get("forecast_refits_fitted") == 0]
        if refit_day and between:
            week = (6 * watched["runs"][between[0]]["seconds"] + watched["runs"][refit_day[0]]["seconds"]) / 7
            watched["week_of_new_days_ratio_to_cold"] = round(week / cold, 3)
        results["watch"] = watched
        print("one watch process (imports kept): " + ", ".join(
            f"{n} {r['seconds']}s = {r['ratio_to_cold']} of the cold run ({r['forecast_refits_fitted']} forecast "
            f"refits)" for n, r in watched["runs"].items() if n in new_days)
              + f"; a week {watched.get('week_of_new_days_ratio_to_cold')} of the cold run; peak RSS "
              f"{watched['peak_rss_mb']} MB, exit {watched['exit_code']}")
        print("             slowest steps: " + "; ".join(
            f"{n}: " + ", ".join(f"{k} {v}s" for k, v in r["slowest_steps"].items())
            for n, r in watched["runs"].items() if n in new_days))

    if args.dask:
        from bench.scale_out import run_dask_backfill

        results["dask"] = {}
        for workers in (1, 2):
            dask_home = work / f"dask-{workers}"
            shutil.rmtree(dask_home, ignore_errors=True)
            results["dask"][workers] = run_dask_backfill(dask_home, landing, workers)
            print(f"dask backfill, {workers} worker(s): {results['dask'][workers]}")

    suffix = "" if results["ocr_backend"] == "easyocr" else f"_{results['ocr_backend']}"
    if (args.creatives, args.days) != (300, 120):  # another scale keeps the demo's figures
        suffix += f"_{args.creatives}x{args.days}"
    if args.image_size != 1080:
        suffix += f"_{args.image_size}px"
    out = ROOT / "bench" / "results" / f"e2e{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
