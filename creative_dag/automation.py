"""What keeps the memory current without anyone clicking: the daily path through the Dagster daemon.

    new export -> ingest -> features -> embeddings of the new launch dates -> case base, marts, serving copy

- `landing_sensor` (stopped by default; turn it on in the UI): a new or changed export in the
  landing folder starts an `ingest_landing` run. A folder is not an asset, so a sensor starts it.
- `register_launch_dates` (a success hook on `features/prelaunch`, in every run that builds it):
  the launch dates it holds that are not yet `launch_date` partitions are registered, before its
  blocking checks run, so before any downstream condition can see it. The partitions come from
  `features/prelaunch`, not `raw/creatives`: a date exists only once its creatives are in the table
  the encoders read (an encoder run before that would write 0 rows and the date would count as done).
- `launch_date_sensor` (on by default): the same after each `features/prelaunch`
  materialisation, for dates the hook missed (a hook error); and once that run has succeeded, one
  `embed_launch_dates` run over the already embedded dates whose encoder inputs changed (a creative
  added to the day, an image replaced), which the conditions below never request (not missing).
- `automation_condition_sensor` (on by default): evaluates the conditions below every 30 s and
  launches the runs; more than one launch date at once becomes one backfill, which the encoders'
  single-run backfill policy turns into one run (models loaded once).
- `candidates_sensor` (on by default): a new or changed folder `<landing>/candidates/<batch>/` becomes a
  `candidate_batch` partition and an `assess_candidates` run (docs/candidates.md).
- `stale_runs_sensor` (on by default): marks runs whose process was killed as failed and frees
  the warehouse pool slot they held, so a `kill -9` never blocks later runs (run_health.py).

Conditions (assigned here by `with_automation`, so the asset modules stay free of scheduling):

| assets | condition |
|---|---|
| `ingest` group | none: `landing_sensor` starts them |
| `candidates` group (partitioned by `candidate_batch`) | none: `candidates_sensor` starts them per batch folder |
| `features` group | `features_condition`: eager (any dependency updated), once upstream blocking checks pass |
| launch-date-partitioned encoders | `new_launch_dates_condition`: only partitions never materialised (new launch dates), once the unpartitioned inputs are built, checked and not being rebuilt |
| everything else (`embeddings/model_status`, `cbr`, `marts`, `report`) | `whole_history_condition`: once per cron tick (default `0 5 * * *`, `CREATIVE_DAG_REFRESH_CRON`) if any dependency changed since the table last ran, after upstream work settles |

Jobs, for manual runs and backfills from the UI: `ingest_landing`, `embed_launch_dates` (the
encoders; pick launch dates in its Partitions tab) and `refresh_memory` (features and every
whole-history table, now instead of at the next cron tick).
"""


import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg

from creative_dag.candidates.batch import (
    CANDIDATES_DIR,
    batch_folders,
    valid_batch_name,
)
from creative_dag.catalog import (
    FEATURES_PRELAUNCH,
    MARTS_PREDICTIONS,
)
from creative_dag.contract import (
    CREATIVES_FILE,
    DAILY_METRICS_FILE,
    INPUT_SUFFIXES,
    REGISTRY_FILE,
)
from creative_dag.encoders.store import EmbeddingStore
from creative_dag.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    candidate_batch_partitions,
    launch_date_partitions,
)
from creative_dag.resources.embedding_store import EmbeddingStoreResource
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.models import EncoderResource, EncoderSettings
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource
from creative_dag.run_health import reap_dead_runs

INGEST_JOB = "ingest_landing"
EMBED_JOB = "embed_launch_dates"
REFRESH_JOB = "refresh_memory"
AUTOMATION_SENSOR = "automation_condition_sensor"
CANDIDATES_JOB = "assess_candidates"

REFRESH_CRON_ENV = "CREATIVE_DAG_REFRESH_CRON"
REFRESH_TIMEZONE_ENV = "CREATIVE_DAG_REFRESH_TIMEZONE"
AUTOMATION_INTERVAL_ENV = "CREATIVE_DAG_AUTOMATION_INTERVAL_S"
SENSOR_INTERVAL_ENV = "CREATIVE_DAG_SENSOR_INTERVAL_S"
DEFAULT_REFRESH_CRON = "0 5 * * *"
DEFAULT_REFRESH_TIMEZONE = "UTC"
DEFAULT_AUTOMATION_INTERVAL_S = 30
LANDING_SENSOR_INTERVAL_S = 60
LAUNCH_DATE_SENSOR_INTERVAL_S = 30
CANDIDATES_SENSOR_INTERVAL_S = 60

INGEST_GROUP = "ingest"
FEATURES_GROUP = "features"
CANDIDATES_GROUP = "candidates"

AC = dg.AutomationCondition


# ----------------------------------------------------------------------------- conditions
def upstream_checks_passed() -> dg.AutomationCondition:
    """Every dependency's blocking checks passed, or the dependency is requested this tick (its checks
    ride along in that run and, blocking, stop this asset there if they fail).

    Between separate runs a blocking check stops nothing by itself: the condition has to. (Dagster's
    `all_deps_blocking_checks_passed` counts only the *checks* being requested this tick, never the
    case here since checks run with their asset, so a table downstream of one never materialised, or
    of a partition being embedded in the same run, would wait a tick longer than needed.) Written
    as "no dependency has a blocking check that did not pass": an all-dependencies form is never
    true while a partitioned dependency has no partition (an export with no usable creative)."""
    passed = AC.will_be_requested() | AC.all_checks_match(AC.check_passed(), blocking_only=True)
    return (~AC.any_deps_match(~passed)).with_label("upstream blocking checks passed")


def outdated() -> dg.AutomationCondition:
    """True for an asset one of whose own dependencies updated after it: a rebuild is due (and for
    `features/prelaunch` after an ingest, about to be requested or held back by an upstream check)."""
    return AC.any_deps_match(AC.newly_updated()).since(AC.newly_updated()).with_label("outdated")


def features_condition() -> dg.AutomationCondition:
    """Eager: rebuild when any dependency (the raw tables) updated, not while one is missing or in
    progress, and only once the blocking checks on the updated raw tables passed."""
    return (AC.eager() & upstream_checks_passed()).with_label("eager, upstream checks passed")


def new_launch_dates_condition(same_partitioning: dg.AssetSelection) -> dg.AutomationCondition:
    """For launch-date-partitioned assets: materialise the partitions that were never materialised.

    `eager()` alone would re-embed every launch date whenever `features/prelaunch` (an unpartitioned
    dependency of every partition) updates; `& missing()` keeps it to new launch dates. Beyond
    eager's own guards (no dependency missing or in progress, not in progress itself), a partition
    waits while an unpartitioned dependency is outdated (e.g. `features/prelaunch` after an ingest,
    before its rebuild was even requested: Dagster never treats an unpartitioned asset and a
    partition as runnable in one run, so it would launch both at once, unordered) and until the
    blocking checks of its dependencies passed. Dependencies that share the partitioning
    (`embeddings/text` on `embeddings/layout`) are requested in the same tick: same run or backfill,
    in dependency order. Requested once (eager's `since_last_handled`); a failed partition is retried
    on the next upstream update, not every tick.
    """
    return (
        AC.eager()
        & AC.missing()
        & ~AC.any_deps_match(outdated()).ignore(same_partitioning).with_label("an input is outdated")
        & upstream_checks_passed()
    ).with_label("new launch dates")


def whole_history_condition(refreshed_together: dg.AssetSelection, partitioned: dg.AssetSelection,
                            cron: str = DEFAULT_REFRESH_CRON, timezone: str = DEFAULT_REFRESH_TIMEZONE,
                            siblings: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Once per cron tick, if any dependency changed since this table last ran.

    `AutomationCondition.on_cron` waits until ALL dependencies updated since the tick: a day with new
    metrics but no new creative (the encoders do not run) would never refresh the marts. Here:

    - changed: some dependency updated since this table was last requested or materialised;
    - busy (held back): upstream work is pending: a dependency in progress; one outside the set
      requested this tick or outdated; one of the set never materialised (nor failed) and not requested
      with this table; a launch-date partition (`partitioned`) never materialised
      and not failed (a new launch date about to be embedded: Dagster would not order that
      partition's run before this one; new dates are partitions before `features/prelaunch`'s
      blocking checks pass, see `register_launch_dates_hook`, so they are seen in time); or a
      dependency's blocking check has not passed. Or the same for a table this one reads that is
      materialised with it (`siblings`: the other assets of its non-subsettable multi-asset, which
      Dagster requests together);
    - due: a cron tick passed while the table had changed or was busy (its inputs may be about to
      change); it stays due until the table is requested, or until a later tick passes with
      nothing changed and nothing pending. Changes after a tick wait for the next tick;
    - follows: a dependency in the set is requested this tick, so the tables downstream of a
      refreshed one refresh in the same run.

    Requested when (due and changed, or follows), not busy and not in progress. A table of the set
    that reads no embedding (marts/creative_fatigue_daily, and what follows it) may refresh while
    new launch dates are being embedded; it refreshes again, after them, with the tables that read
    them.
    """
    changed = AC.any_deps_updated().since_last_handled().with_label("dependency changed since last run")
    own_inputs_busy = (
        AC.any_deps_in_progress()
        | AC.any_deps_match(AC.will_be_requested() | outdated()).ignore(refreshed_together).ignore(partitioned)
        | AC.any_deps_match(AC.missing() & ~AC.execution_failed()).allow(partitioned)
        # a table of the set never materialised yet (the first refresh) and not requested with this one: a
        # daemon run once read marts/creative_ranking before any run had written it
        | AC.any_deps_match(AC.missing() & ~AC.execution_failed() & ~AC.will_be_requested()).allow(refreshed_together)
    ).with_label("upstream work pending")
    # Without the sibling clause a table that follows a refreshed one (marts/tired_or_repetitive after
    # marts/creative_fatigue) drags its multi-asset sibling (marts/creative_repetition) into the
    # request while that sibling waits for new launch dates to be embedded. (Only siblings: the same
    # clause over every input of the set multiplies the condition's size, and its cost every tick.)
    held_back = (own_inputs_busy | ~upstream_checks_passed()).with_label("held back")
    busy = held_back
    if siblings is not None:
        busy = (held_back | AC.any_deps_match(held_back).allow(siblings)).with_label(
            "held back, or a multi-asset sibling it reads is")
    tick = AC.cron_tick_passed(cron, timezone)
    handled = (AC.newly_requested() | AC.newly_updated() | AC.initial_evaluation()).with_label("handled")
    # A tick at which nothing changed and nothing is pending resets `due` in the same evaluation
    # (reset wins a tie), so each of `changed` and `busy` is evaluated twice per tick, not three times.
    due = tick.since(handled | (tick & ~changed & ~busy).with_label("tick with nothing to do")).with_label(
        f"cron tick ({cron}, {timezone}) passed with changes or pending work")
    follows = AC.any_deps_match(AC.will_be_requested()).allow(refreshed_together).with_label(
        "refreshed with an upstream whole-history table")
    return (((due & changed) | follows) & ~busy & ~AC.in_progress()).with_label(
        f"whole history on cron ({cron}, {timezone})")


def refresh_cron_from_env() -> tuple[str, str]:
    """The cron of the whole-history refresh and its timezone ($CREATIVE_DAG_REFRESH_CRON / _TIMEZONE)."""
    cron = os.environ.get(REFRESH_CRON_ENV, "").strip() or DEFAULT_REFRESH_CRON
    timezone = os.environ.get(REFRESH_TIMEZONE_ENV, "").strip() or DEFAULT_REFRESH_TIMEZONE
    return cron, timezone


def with_automation(assets: Sequence[dg.AssetsDefinition], refresh_cron: str | None = None,
                    refresh_timezone: str | None = None) -> list[dg.AssetsDefinition]:
    """The assets with their automation conditions (see the table in the module docstring), and
    features/prelaunch with `register_launch_dates_hook`.

    refresh_cron / refresh_timezone: the whole-history refresh; default from the environment
    ($CREATIVE_DAG_REFRESH_CRON, $CREATIVE_DAG_REFRESH_TIMEZONE), else "0 5 * * *" UTC.
    """
    env_cron, env_timezone = refresh_cron_from_env()
    cron, timezone = refresh_cron or env_cron, refresh_timezone or env_timezone
    specs = [spec for asset in assets for spec in asset.specs]
    partitioned = dg.AssetSelection.assets(*[s.key for s in specs if _role(s) == "partitioned"])
    whole_history = dg.AssetSelection.assets(*[s.key for s in specs if _role(s) == "whole_history"])
    conditions = {
        "ingest": None,
        "candidates": None,
        "features": features_condition(),
        "partitioned": new_launch_dates_condition(partitioned),
        "whole_history": whole_history_condition(whole_history, partitioned, cron, timezone),
    }

    def assign(asset: dg.AssetsDefinition, spec: dg.AssetSpec) -> dg.AssetSpec:
        condition = conditions[_role(spec)]
        siblings = [k for k in asset.keys if k != spec.key and k in _spec_deps(spec)] if not asset.can_subset else []
        if _role(spec) == "whole_history" and siblings:
            condition = whole_history_condition(whole_history, partitioned, cron, timezone,
                                                siblings=dg.AssetSelection.assets(*siblings))
        return spec.replace_attributes(automation_condition=condition)

    automated = [asset.map_asset_specs(lambda spec, asset=asset: assign(asset, spec)) for asset in assets]
    return [a.with_hooks({register_launch_dates_hook}) if FEATURES_PRELAUNCH.key in a.keys else a for a in automated]


def _spec_deps(spec: dg.AssetSpec) -> set[dg.AssetKey]:
    return {dep.asset_key for dep in spec.deps}


def role_of(group_name: str | None, partitioned: bool) -> str:
    """An asset's role (ingest, features, partitioned = the encoders, whole_history, candidates) from its group
    and whether it has partitions: what automation does with it, and what its steps import
    (creative_dag/step_processes.py)."""
    if group_name == INGEST_GROUP:
        return "ingest"
    if group_name == CANDIDATES_GROUP:
        return "candidates"
    if group_name == FEATURES_GROUP:
        return "features"
    if partitioned:
        return "partitioned"
    return "whole_history"


def _role(spec: dg.AssetSpec) -> str:
    return role_of(spec.group_name, spec.partitions_def is not None)


def keys_by_role(assets: Iterable[dg.AssetsDefinition]) -> dict[str, list[dg.AssetKey]]:
    """Asset keys of each role: ingest, features, partitioned (encoders), whole_history."""
    roles: dict[str, list[dg.AssetKey]] = {"ingest": [], "features": [], "partitioned": [], "whole_history": [],
                                           "candidates": []}
    for asset in assets:
        for spec in asset.specs:
            roles[_role(spec)].append(spec.key)
    return roles


# ----------------------------------------------------------------------------- launch dates
def prelaunch_launch_dates(warehouse: DuckDBWarehouse) -> list[str]:
    """ISO launch dates of the creatives in features.prelaunch, sorted; empty before it is built."""
    if not warehouse.exists(FEATURES_PRELAUNCH):
        return []
    frame = warehouse.query(
        "SELECT DISTINCT CAST(CAST(launch_date AS DATE) AS VARCHAR) AS d FROM features.prelaunch "
        "WHERE launch_date IS NOT NULL ORDER BY 1"
    )
    return frame["d"].tolist()


def unregistered_prelaunch_dates(instance: dg.DagsterInstance, warehouse: DuckDBWarehouse) -> list[str]:
    """Launch dates in features.prelaunch that are not yet `launch_date` partitions."""
    existing = set(instance.get_dynamic_partitions(launch_date_partitions.name))
    return [d for d in prelaunch_launch_dates(warehouse) if d not in existing]


@dg.success_hook(name="register_launch_dates", required_resource_keys={"warehouse"})
def register_launch_dates_hook(context: dg.HookContext) -> None:
    """After features/prelaunch materialises, in the same run: its new launch dates become partitions.

    In the run, not only in a sensor: the hook finishes before the asset's blocking checks run, and
    every automated asset downstream waits for those checks, so no condition is ever evaluated
    against a features/prelaunch whose launch dates are not partitions yet. (A sensor alone races
    the automation tick: the whole-history tables could be refreshed before the new dates are
    even known to be missing, so before they are embedded. The daemon test caught this.)
    """
    new = unregistered_prelaunch_dates(context.instance, context.resources.warehouse.get())
    if new:
        context.instance.add_dynamic_partitions(launch_date_partitions.name, new)
        context.log.info(f"registered {len(new)} new launch date(s) as partitions: {new[0]} .. {new[-1]}")


def launch_date_requests(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, store: EmbeddingStore,
                         settings: EncoderSettings, encoder_keys: Sequence[dg.AssetKey]) -> dg.SensorResult | dg.SkipReason:
    """What `launch_date_sensor` does for the newest features/prelaunch materialisation (cursor: its storage id).

    - Launch dates in features.prelaunch that are not partitions yet are registered at once.
    - Once the run that built it succeeded (its blocking checks passed), the launch dates that every encoder has
      materialised and whose encoder inputs changed since (a creative added to the day, an image or text
      replaced: `changed_launch_dates`) get one `embed_launch_dates` run over their range. The daemon's
      automation embeds only never-materialised dates, so without this a changed day kept its old embeddings.
      A block whose model failed to load is left out without trying it again: a sensor loads no model.
    - While that run is in progress the cursor stays, so the next evaluation looks again; a failed run (a
      blocking check did not pass) re-embeds nothing.
    """
    from creative_dag.assets.encoders import changed_launch_dates
    from creative_dag.blocks import BLOCK_SPECS

    latest = context.instance.fetch_materializations(FEATURES_PRELAUNCH.key, limit=1, ascending=False).records
    if not latest:
        return dg.SkipReason("features/prelaunch has not been materialised yet")
    record = latest[0]
    if context.cursor and context.cursor.isdigit() and int(context.cursor) >= record.storage_id:
        return dg.SkipReason("no new features/prelaunch materialisation")
    new = unregistered_prelaunch_dates(context.instance, warehouse.get())
    added = [launch_date_partitions.build_add_request(new)] if new else []
    if new:
        context.log.info(f"registering {len(new)} launch date(s): {new[0]} .. {new[-1]}")
    run = context.instance.get_run_by_id(record.run_id) if record.run_id else None
    if run is not None and not run.is_finished:
        return dg.SensorResult(dynamic_partitions_requests=added, cursor=context.cursor, skip_reason=dg.SkipReason(
            f"features/prelaunch's run {run.run_id[:8]} is still running: changed launch dates wait for its checks"))
    if run is not None and run.status != dg.DagsterRunStatus.SUCCESS:
        return dg.SensorResult(dynamic_partitions_requests=added, cursor=str(record.storage_id), skip_reason=dg.SkipReason(
            f"features/prelaunch's run {run.run_id[:8]} did not succeed ({run.status.value}): nothing re-embedded"))
    blocks = [k.path[-1] for k in encoder_keys if len(k.path) == 2 and k.path[0] == "embeddings"
              and k.path[-1] in BLOCK_SPECS]
    embedded = set.intersection(*(set(context.instance.get_materialized_partitions(k)) for k in encoder_keys)) \
        if encoder_keys else set()
    dates = [dt.date.fromisoformat(d) for d in sorted(embedded)]
    changed = [d.isoformat() for d in changed_launch_dates(blocks, dates, warehouse, store, settings, try_load=False)]
    if not changed:
        return dg.SensorResult(dynamic_partitions_requests=added, cursor=str(record.storage_id), skip_reason=dg.SkipReason(
            f"no embedded launch date's creatives changed ({len(dates)} checked)"))
    context.log.info(f"{len(changed)} embedded launch date(s) changed since they were encoded "
                     f"({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}): one embed_launch_dates run "
                     f"over {changed[0]}..{changed[-1]} (unchanged dates inside the range are skipped)")
    request = dg.RunRequest(run_key=f"changed-launch-dates:{record.storage_id}",
                            tags={RANGE_START_TAG: changed[0], RANGE_END_TAG: changed[-1]})
    return dg.SensorResult(run_requests=[request], dynamic_partitions_requests=added, cursor=str(record.storage_id))


# ----------------------------------------------------------------------------- sensors and jobs
def batch_fingerprint(folder: Path) -> str:
    """A hash of a candidate batch folder's file names, sizes and mtimes."""
    parts = sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in folder.iterdir() if p.is_file())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def candidate_batch_requests(context: dg.SensorEvaluationContext, landing: Path,
                             warehouse: DuckDBWarehouse) -> dg.SensorResult | dg.SkipReason:
    """New partitions and runs for batch folders that are new or changed since the cursor (JSON: batch ->
    fingerprint). Waits while the memory has no forecast to compare candidates with."""
    folders = batch_folders(landing)
    if not folders:
        return dg.SkipReason(f"no candidate batch folder under {landing / CANDIDATES_DIR}")
    if not warehouse.exists(MARTS_PREDICTIONS):
        return dg.SkipReason("marts.predictions is not materialised yet: candidates wait for the memory")
    seen = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(candidate_batch_partitions.name))
    new_partitions, requests = [], []
    for folder in folders:
        if not valid_batch_name(folder.name):
            context.log.warning(f"candidate folder {folder} skipped: name it with letters, digits, '-', '_' or '.'")
            continue
        fingerprint = batch_fingerprint(folder)
        if seen.get(folder.name) == fingerprint:
            continue
        if folder.name not in known:
            new_partitions.append(folder.name)
        requests.append(dg.RunRequest(partition_key=folder.name, run_key=f"{folder.name}:{fingerprint}"))
        seen[folder.name] = fingerprint
    if not requests:
        return dg.SkipReason("every candidate batch is assessed and unchanged")
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        dynamic_partitions_requests=[candidate_batch_partitions.build_add_request(new_partitions)]
        if new_partitions else [])


def landing_fingerprint(landing: Path) -> str | None:
    """A hash of the input files' and the images' names, sizes and mtimes (the candidate batches are the
    candidates sensor's); None when no input file is there. An image replaced alone (the fix for a
    quarantined one) is a change: the ingest reads it again."""
    parts = []
    for stem in (CREATIVES_FILE, DAILY_METRICS_FILE, REGISTRY_FILE):
        for candidate in [landing / stem] + [landing / f"{stem}{s}" for s in INPUT_SUFFIXES]:
            if candidate.is_file():
                stat = candidate.stat()
                parts.append(f"{candidate.name}:{stat.st_size}:{stat.st_mtime_ns}")
    if not any(p.startswith((CREATIVES_FILE, DAILY_METRICS_FILE)) for p in parts):
        return None
    inputs = {p.split(":", 1)[0] for p in parts}
    for path in sorted(landing.rglob("*")):  # image_path may name any file under the landing folder
        relative = path.relative_to(landing)
        if relative.parts[0] != CANDIDATES_DIR and str(relative) not in inputs and path.is_file():
            stat = path.stat()
            parts.append(f"{relative.as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _seconds_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def automation_interval_s() -> int:
    """Seconds between evaluations of the automation conditions ($CREATIVE_DAG_AUTOMATION_INTERVAL_S)."""
    return _seconds_from_env(AUTOMATION_INTERVAL_ENV, DEFAULT_AUTOMATION_INTERVAL_S)


def sensor_interval_s(default: int) -> int:
    """Seconds between looks of the landing, launch-date and candidates sensors: `default` (their own), or
    $CREATIVE_DAG_SENSOR_INTERVAL_S for all three (e.g. a landing folder that must be picked up sooner)."""
    return _seconds_from_env(SENSOR_INTERVAL_ENV, default)


def build_automation(graph_keys: dict[str, list[dg.AssetKey]]) -> tuple[list, list]:
    """Jobs and sensors for the asset keys of each role (see `keys_by_role`)."""
    ingest_job = dg.define_asset_job(INGEST_JOB, selection=graph_keys["ingest"],
                                     description="Read the landing folder into raw.* (with quarantine).")
    jobs = [ingest_job]
    sensors: list = []

    @dg.sensor(job=ingest_job, minimum_interval_seconds=sensor_interval_s(LANDING_SENSOR_INTERVAL_S),
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts an ingest run when the landing folder's input files (creatives.csv, "
                           "daily_metrics.csv, images/) change. Off by default: turn it on once in the UI "
                           "(Automation) or with `dagster sensor start landing_sensor`.")
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
            description="Embed the creatives of chosen launch dates (per block an encode step outside the warehouse "
                        "pool and a short publish step in it; models loaded once). "
                        "New launch dates are embedded by automation, changed ones by launch_date_sensor; "
                        "this job is for re-embedding by hand.",
        )
        jobs.append(embed_job)

        @dg.sensor(job=embed_job, minimum_interval_seconds=sensor_interval_s(LAUNCH_DATE_SENSOR_INTERVAL_S),
                   default_status=dg.DefaultSensorStatus.RUNNING,
                   description="After each features/prelaunch materialisation: registers the launch dates it holds "
                               "that are not launch_date partitions yet (the register_launch_dates hook does this in "
                               "the run; this catches what it missed), and once that run has succeeded, starts one "
                               "embed_launch_dates run over the already embedded launch dates whose creatives changed "
                               "(a creative added to the day, an image replaced). New launch dates are automation's.")
        def launch_date_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                               embedding_store: EmbeddingStoreResource, encoders: EncoderResource
                               ) -> dg.SensorResult | dg.SkipReason:
            # A plain sensor with its own cursor, not @asset_sensor: Dagster 1.13's asset sensor drops a
            # returned SensorResult (it passes on only RunRequest / SkipReason), so partitions requested
            # that way are never added.
            return launch_date_requests(context, warehouse, embedding_store.get(), encoders.settings(),
                                        graph_keys["partitioned"])

        sensors.append(launch_date_sensor)

    if graph_keys.get("candidates"):
        candidates_job = dg.define_asset_job(
            CANDIDATES_JOB, selection=graph_keys["candidates"], partitions_def=candidate_batch_partitions,
            description="Assess one batch of new candidate creatives (<landing>/candidates/<batch>/); the "
                        "candidates sensor starts it for every new or changed batch folder.")
        jobs.append(candidates_job)

        @dg.sensor(job=candidates_job, minimum_interval_seconds=sensor_interval_s(CANDIDATES_SENSOR_INTERVAL_S),
                   default_status=dg.DefaultSensorStatus.RUNNING,
                   description="Adds a candidate_batch partition for every folder <landing>/candidates/<batch>/ and "
                               "assesses it when its files are new or changed.")
        def candidates_sensor(context: dg.SensorEvaluationContext, landing: LandingResource,
                              warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
            return candidate_batch_requests(context, Path(landing.root), warehouse.get())

        sensors.append(candidates_sensor)

    automated = [k for role in ("features", "partitioned", "whole_history") for k in graph_keys[role]]
    if automated:
        sensors.append(dg.AutomationConditionSensorDefinition(
            AUTOMATION_SENSOR, target=dg.AssetSelection.assets(*automated),
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=automation_interval_s(),
            emit_backfills=True,
            description="Evaluates the assets' automation conditions: features after ingest, encoders for new "
                        "launch dates, whole-history tables on the refresh cron (05:00 UTC by default; "
                        "CREATIVE_DAG_REFRESH_CRON) when an input changed (creative_dag/automation.py).",
        ))
    refreshed = graph_keys["features"] + graph_keys["whole_history"]
    if refreshed:
        jobs.append(dg.define_asset_job(
            REFRESH_JOB, selection=refreshed,
            description="Rebuild the features, case base, marts, model status, report page and serving copy "
                        "from the current warehouse now (automation does it at the next refresh cron tick).",
        ))
    return jobs, sensors
