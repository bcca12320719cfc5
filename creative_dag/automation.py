"""Sensors and schedules: what keeps the memory current without anyone clicking.

- `landing_sensor`: a new or changed export in the landing folder starts an ingest run.
- `launch_date_sensor`: after each ingest, new launch dates become `launch_date` partitions and
  one run embeds just those creatives (a single-run backfill over the new range).
- `stale_runs_sensor` (on by default): marks runs whose process was killed as failed and frees
  the warehouse pool slot they held, so a `kill -9` never blocks later runs (run_health.py).
- `nightly_refresh`: rebuilds the unpartitioned, whole-history tables (case base, marts, serving
  copy) once a day, after the day's metrics have landed.
"""


import hashlib
from pathlib import Path

import dagster as dg

from creative_dag.assets.keys import RAW_CREATIVES
from creative_dag.contract import (
    CREATIVES_FILE,
    DAILY_METRICS_FILE,
    INPUT_SUFFIXES,
    REGISTRY_FILE,
)
from creative_dag.partitions import launch_date_partitions, unregistered_launch_dates
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.warehouse import WarehouseResource
from creative_dag.run_health import reap_dead_runs
from creative_dag.runner import RANGE_END_TAG, RANGE_START_TAG

INGEST_JOB = "ingest_landing"
EMBED_JOB = "embed_new_launches"
REFRESH_JOB = "refresh_memory"


def landing_fingerprint(landing: Path) -> str | None:
    """A hash of the input files' names, sizes and mtimes; None when no input file is there."""
    parts = []
    for stem in (CREATIVES_FILE, DAILY_METRICS_FILE, REGISTRY_FILE):
        for candidate in [landing / stem] + [landing / f"{stem}{s}" for s in INPUT_SUFFIXES]:
            if candidate.is_file():
                stat = candidate.stat()
                parts.append(f"{candidate.name}:{stat.st_size}:{stat.st_mtime_ns}")
    if not any(p.startswith((CREATIVES_FILE, DAILY_METRICS_FILE)) for p in parts):
        return None
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_automation(graph_keys: dict[str, list[dg.AssetKey]]) -> tuple[list, list, list]:
    """Jobs, sensors and schedules for the asset keys of each kind.

    graph_keys: {"ingest": [...], "partitioned": [...], "unpartitioned_downstream": [...]}.
    """
    ingest_job = dg.define_asset_job(INGEST_JOB, selection=graph_keys["ingest"],
                                     description="Read the landing folder into raw.* (with quarantine).")
    jobs = [ingest_job]
    sensors: list = []
    schedules: list = []

    @dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts an ingest run when the landing folder's input files change.")
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource) -> dg.SensorResult | dg.SkipReason:
        fingerprint = landing_fingerprint(Path(landing.root))
        if fingerprint is None:
            return dg.SkipReason(f"no creatives/daily_metrics file in {landing.root}")
        if fingerprint == context.cursor:
            return dg.SkipReason("landing folder unchanged")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=fingerprint)], cursor=fingerprint)

    sensors.append(landing_sensor)

    @dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Marks runs whose process is gone (kill -9, OOM) as failed and frees the warehouse "
                           "pool slot they held, so later runs do not wait forever.")
    def stale_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        actions = reap_dead_runs(context.instance)
        for line in actions:
            context.log.warning(line)
        return dg.SkipReason("; ".join(actions) if actions else "no run of a dead process")

    sensors.append(stale_runs_sensor)

    if graph_keys["partitioned"]:
        embed_job = dg.define_asset_job(
            EMBED_JOB, selection=graph_keys["partitioned"], partitions_def=launch_date_partitions,
            description="Embed the creatives of given launch dates (one step per block, models loaded once).",
        )
        jobs.append(embed_job)

        @dg.asset_sensor(asset_key=RAW_CREATIVES, job=embed_job,
                         default_status=dg.DefaultSensorStatus.STOPPED,
                         description="After ingest, registers new launch dates and embeds only those.")
        def launch_date_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry,
                               warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
            new = unregistered_launch_dates(context.instance, warehouse.get())
            if not new:
                return dg.SkipReason("no new launch dates")
            request = dg.RunRequest(
                run_key=f"launch-dates-{new[0]}-{new[-1]}-{len(new)}",
                tags={RANGE_START_TAG: new[0], RANGE_END_TAG: new[-1]},
            )
            return dg.SensorResult(
                run_requests=[request],
                dynamic_partitions_requests=[launch_date_partitions.build_add_request(new)],
            )

        sensors.append(launch_date_sensor)

    if graph_keys["unpartitioned_downstream"]:
        refresh_job = dg.define_asset_job(
            REFRESH_JOB, selection=graph_keys["unpartitioned_downstream"],
            description="Rebuild the case base, marts and serving copy from the current warehouse.",
        )
        jobs.append(refresh_job)
        schedules.append(dg.ScheduleDefinition(
            name="nightly_refresh", job=refresh_job, cron_schedule="0 5 * * *",
            default_status=dg.DefaultScheduleStatus.STOPPED,
        ))
    return jobs, sensors, schedules
