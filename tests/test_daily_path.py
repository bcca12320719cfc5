"""The daily path through Dagster automation (creative_dag/automation.py):

    new export -> ingest -> features -> embeddings of just the new launch dates -> case base, marts, serving copy

Fast tests evaluate the project's automation conditions on its real asset graph with Dagster's own
evaluator (`dg.evaluate_automation_conditions`), tick by tick, with materialisations reported as
events. The slow test runs the real `dagster-daemon` on a small home and waits for the chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from creative_dag.automation import (
    AUTOMATION_SENSOR,
    CANDIDATES_JOB,
    EMBED_JOB,
    INGEST_JOB,
    REFRESH_JOB,
    keys_by_role,
)
from creative_dag.catalog import (
    CBR_CASE_BASE,
    EMBEDDINGS_MODEL_STATUS,
    FEATURES_EARLY,
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    FEATURES_REGISTRY,
    MARTS_CREATIVE_RANKING,
    MARTS_RECOMMENDATIONS,
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
    RAW_IMAGES,
    RAW_QUARANTINE,
)
from creative_dag.instance import instance_yaml
from creative_dag.partitions import launch_date_partitions
from creative_dag.step_processes import PRELOAD_EVENT

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

RAW = [RAW_CREATIVES.key, RAW_DAILY_METRICS.key, RAW_IMAGES.key, RAW_QUARANTINE.key]
FEATURES = [FEATURES_REGISTRY.key, FEATURES_PRELAUNCH.key, FEATURES_EARLY.key, FEATURES_OUTCOMES.key]
CRON = "0 5 * * *"


# ----------------------------------------------------------------------------- fast: the conditions
@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    from creative_dag.definitions import build_definitions

    root = tmp_path_factory.mktemp("conditions")
    return build_definitions(root / "home", root / "landing", refresh_cron=CRON)


@pytest.fixture(scope="module")
def roles(defs) -> dict[str, list[dg.AssetKey]]:
    return keys_by_role(defs.assets)


@contextlib.contextmanager
def fast_instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory instance whose dynamic partitions are read once per change: the condition tester
    re-reads them for every node of every condition when it builds its cursor (seconds per tick)."""
    with dg.DagsterInstance.ephemeral() as instance:
        read, add, cache = instance.get_dynamic_partitions, instance.add_dynamic_partitions, {}

        def get_dynamic_partitions(partitions_def_name: str) -> Sequence[str]:
            if partitions_def_name not in cache:
                cache[partitions_def_name] = read(partitions_def_name)
            return cache[partitions_def_name]

        def add_dynamic_partitions(partitions_def_name: str, partition_keys: Sequence[str]) -> None:
            cache.clear()
            add(partitions_def_name, partition_keys)

        instance.get_dynamic_partitions = get_dynamic_partitions
        instance.add_dynamic_partitions = add_dynamic_partitions
        yield instance


class Ticks:
    """One automation sensor, evaluated tick by tick at chosen times (minutes after the day before
    a cron tick at 04:00 UTC, so `CRON` fires between minute 60 and 61 and again 24 h later)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None
        graph = defs.resolve_asset_graph()
        self.keys = list(graph.get_all_asset_keys())
        self.order = {k: i for i, k in enumerate(graph.toposorted_asset_keys)}
        self.blocking = {}
        for check_key in graph.asset_check_keys:
            if graph.get(check_key).blocking:
                self.blocking.setdefault(check_key.asset_key, []).append(check_key)
        tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        self.origin = tomorrow.replace(hour=4, minute=0, second=0, microsecond=0)
        self.minute = -1.0

    def tick(self, minute: float) -> dict[dg.AssetKey, set[str | None]]:
        assert minute > self.minute, "ticks go forward in time"
        self.minute = minute
        result = dg.evaluate_automation_conditions(
            self.defs, self.instance, cursor=self.cursor,
            evaluation_time=self.origin + dt.timedelta(minutes=minute))
        self.cursor = result.cursor
        return {k: set(result.get_requested_partitions(k)) for k in self.keys if result.get_num_requested(k)}

    def materialized(self, keys: Iterable[dg.AssetKey], partitions: Sequence[str | None] = (None,)) -> None:
        """Report materialisations (and passing blocking checks), as a run would: in dependency order (a
        table reported before one it reads would look outdated, and hold back what reads it)."""
        for key in sorted(keys, key=self.order.__getitem__):
            for partition in partitions:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))
            for check_key in self.blocking.get(key, []):
                self.instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(asset_key=key, check_name=check_key.name, passed=True))

    def failed_check(self, key: dg.AssetKey) -> None:
        check_key = self.blocking[key][0]
        self.instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=key, check_name=check_key.name, passed=False,
                                    severity=dg.AssetCheckSeverity.ERROR))

    def register(self, *launch_dates: str) -> None:
        """What launch_date_sensor does when features/prelaunch lands new dates."""
        self.instance.add_dynamic_partitions(launch_date_partitions.name, list(launch_dates))


def in_progress(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[threading.Event, threading.Thread]:
    """A real run of a stand-in for `key` that holds until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    @dg.asset(key=key)
    def stand_in() -> None:
        started.set()
        release.wait(60)

    thread = threading.Thread(target=dg.materialize, args=([stand_in],), kwargs={"instance": instance}, daemon=True)
    thread.start()
    assert started.wait(60), "the stand-in run did not start"
    return release, thread


def _only(requested: dict[dg.AssetKey, set], keys: Iterable[dg.AssetKey]) -> bool:
    return set(requested) == set(keys)


def test_a_new_launch_date_is_embedded_once_and_old_ones_never_again(defs, roles):
    encoders = roles["partitioned"]
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.tick(0) == {}
        ticks.materialized(RAW)                          # the landing sensor's ingest run
        requested = ticks.tick(1)
        assert _only(requested, FEATURES), requested     # features eagerly; no partition exists yet
        ticks.materialized(FEATURES)
        ticks.register("2026-03-01", "2026-03-02")       # the launch-date sensor, after features/prelaunch
        requested = ticks.tick(2)
        assert _only(requested, encoders), requested     # every block, text with layout in the same request
        assert all(parts == {"2026-03-01", "2026-03-02"} for parts in requested.values()), requested
        assert ticks.tick(3) == {}, "requested once: not again while the run is queued or running"
        ticks.materialized(encoders, ["2026-03-01", "2026-03-02"])

        # the next export: features rebuild, every old partition's dependency updated
        ticks.materialized(RAW)
        assert _only(ticks.tick(10), FEATURES)
        ticks.materialized(FEATURES)
        assert ticks.tick(11) == {}, "an updated features/prelaunch re-embeds no old launch date"
        ticks.register("2026-03-03")
        requested = ticks.tick(12)
        assert _only(requested, encoders) and all(p == {"2026-03-03"} for p in requested.values()), requested
        assert ticks.tick(13) == {}


def test_new_launch_dates_wait_for_features_built_checked_and_not_in_progress(defs, roles):
    encoders = roles["partitioned"]
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.materialized(RAW + FEATURES)
        ticks.materialized(encoders, ["2026-03-01"])
        ticks.tick(1)
        # a new export and a date registered in the same tick: features are requested, and the
        # encoders, which would run as a separate, unordered run, wait for them
        ticks.materialized(RAW)
        ticks.register("2026-03-02")
        requested = ticks.tick(2)
        assert _only(requested, FEATURES), requested
        release, thread = in_progress(instance, FEATURES_PRELAUNCH.key)
        try:
            assert ticks.tick(3) == {}, "features/prelaunch is being rebuilt"
        finally:
            release.set()
            thread.join(60)
        ticks.materialized([k for k in FEATURES if k != FEATURES_PRELAUNCH.key])
        ticks.failed_check(FEATURES_PRELAUNCH.key)
        assert ticks.tick(4) == {}, "a failed blocking check on features/prelaunch stops the encoders"
        ticks.materialized([FEATURES_PRELAUNCH.key])         # fixed and passing
        requested = ticks.tick(5)
        assert _only(requested, encoders) and all(p == {"2026-03-02"} for p in requested.values()), requested


def test_whole_history_refreshes_once_per_cron_tick_and_only_when_an_input_changed(defs, roles):
    whole_history = roles["whole_history"]
    assert {CBR_CASE_BASE.key, EMBEDDINGS_MODEL_STATUS.key, dg.AssetKey(["report", "serving_copy"])} <= set(whole_history)
    assert all(k.path[0] in ("cbr", "marts", "report") or k == EMBEDDINGS_MODEL_STATUS.key for k in whole_history)
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.register("2026-03-01")
        ticks.materialized(RAW + FEATURES)
        ticks.materialized(roles["partitioned"], ["2026-03-01"])
        ticks.materialized(whole_history)
        assert ticks.tick(1) == {}
        # a new export during the day: features now, the whole-history tables wait for the cron
        ticks.materialized(RAW)
        assert _only(ticks.tick(20), FEATURES)
        ticks.materialized(FEATURES)
        assert ticks.tick(59) == {}
        requested = ticks.tick(61)                       # 05:00 passed, inputs changed: all of them, once
        # ... but embeddings/model_status, whose only inputs (the encoders) did not change today
        refreshed = [k for k in whole_history if k != EMBEDDINGS_MODEL_STATUS.key]
        assert _only(requested, refreshed), sorted(k.to_user_string() for k in requested)
        assert ticks.tick(62) == {}
        ticks.materialized(refreshed)
        # later that day, a new export with metrics but no new creative: features now, and the
        # whole-history tables at the next day's tick, not before
        ticks.materialized(RAW)
        assert _only(ticks.tick(600), FEATURES)
        ticks.materialized(FEATURES)
        assert ticks.tick(24 * 60 + 59) == {}
        assert _only(ticks.tick(24 * 60 + 61), refreshed)
        ticks.materialized(refreshed)
        # nothing changed since: the next cron tick refreshes nothing, and a change later that day
        # waits for the tick after (a tick with nothing to do is not remembered)
        assert ticks.tick(48 * 60 + 61) == {}
        ticks.materialized(RAW)
        assert _only(ticks.tick(48 * 60 + 600), FEATURES)
        ticks.materialized(FEATURES)
        assert ticks.tick(48 * 60 + 601) == {}


def test_whole_history_waits_for_upstream_work_in_progress(defs, roles):
    whole_history = roles["whole_history"]
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.materialized(RAW + FEATURES)
        ticks.materialized(whole_history)
        ticks.tick(1)
        ticks.materialized(RAW)
        assert _only(ticks.tick(50), FEATURES)
        release, thread = in_progress(instance, FEATURES_PRELAUNCH.key)
        try:
            assert ticks.tick(61) == {}, "the cron tick passed while features/prelaunch is in progress"
        finally:
            release.set()
            thread.join(60)
        ticks.materialized(FEATURES)                     # the features run's other tables and checks
        requested = ticks.tick(62)                       # still due from 05:00: runs now, once
        assert _only(requested, [k for k in whole_history if k != EMBEDDINGS_MODEL_STATUS.key]), sorted(
            k.to_user_string() for k in requested)
        assert ticks.tick(63) == {}


def test_a_cron_tick_during_embedding_refreshes_what_reads_embeddings_after_them(defs, roles):
    encoders, whole_history = roles["partitioned"], roles["whole_history"]
    graph = defs.resolve_asset_graph()
    reads_embeddings = {k for k in whole_history if set(graph.get(k).parent_keys) & set(encoders)}
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.register("2026-03-01")
        ticks.materialized(RAW + FEATURES)
        ticks.materialized(encoders, ["2026-03-01"])
        ticks.materialized(whole_history)
        ticks.tick(1)
        ticks.materialized(RAW)
        assert _only(ticks.tick(55), FEATURES)
        ticks.materialized(FEATURES)
        ticks.register("2026-03-02")
        requested = ticks.tick(61)                       # the cron tick, with a launch date to embed
        assert {k: p for k, p in requested.items() if k in encoders} == {k: {"2026-03-02"} for k in encoders}
        early = set(requested) - set(encoders)           # tables that read no embedding may go ahead ...
        assert not early & (reads_embeddings | {dg.AssetKey(["marts", "tired_or_repetitive"])}), \
            sorted(k.to_user_string() for k in early)
        ticks.materialized(early)
        assert ticks.tick(62) == {}, "the encoders' run is under way"
        ticks.materialized(encoders, ["2026-03-02"])
        requested = ticks.tick(63)                       # ... the rest, still due from 05:00, after them
        assert _only(requested, whole_history), sorted(k.to_user_string() for k in requested)
        assert ticks.tick(64) == {}


def test_a_table_never_written_holds_back_the_tables_that_read_it(defs, roles):
    """CI caught the daemon requesting marts/recommendations while marts/creative_ranking had never been
    written: the first refresh had not reached it, and at the next cron tick the second export's ingest
    was running, which held the ranking back (it reads raw/daily_metrics) but not the recommendations."""
    ranking, recommendations = MARTS_CREATIVE_RANKING.key, MARTS_RECOMMENDATIONS.key
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.materialized(RAW + FEATURES)
        ticks.materialized([k for k in roles["whole_history"] if k != ranking])
        ticks.tick(1)
        ticks.materialized(FEATURES)
        release, thread = in_progress(instance, RAW_DAILY_METRICS.key)  # the next export's ingest
        try:
            requested = ticks.tick(61)                   # the cron tick
        finally:
            release.set()
            thread.join(60)
        assert ranking not in requested and recommendations not in requested, sorted(
            k.to_user_string() for k in requested)
        ticks.materialized(requested)
        ranking_written, recommended, seen = False, False, {}
        for minute in range(62, 70):                     # the ingest done: features, then the refresh
            requested = ticks.tick(minute)
            seen[minute] = sorted(k.to_user_string() for k in requested)
            assert ranking_written or recommendations not in requested or ranking in requested, seen
            recommended |= recommendations in requested
            ranking_written |= ranking in requested
            ticks.materialized(requested)
        assert ranking_written and recommended, seen


def test_a_failed_blocking_check_holds_back_the_tables_that_read_it_and_their_siblings(defs, roles):
    encoders, whole_history = roles["partitioned"], roles["whole_history"]
    visual = dg.AssetKey(["embeddings", "visual"])
    repetition, tired = dg.AssetKey(["marts", "creative_repetition"]), dg.AssetKey(["marts", "tired_or_repetitive"])
    graph = defs.resolve_asset_graph()
    reads_visual = {k for k in whole_history if visual in graph.get(k).parent_keys}
    with fast_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick(0)
        ticks.register("2026-03-01")
        ticks.materialized(RAW + FEATURES)
        ticks.materialized(encoders, ["2026-03-01"])
        ticks.materialized(whole_history)
        ticks.tick(1)
        ticks.materialized(RAW + FEATURES)
        ticks.failed_check(visual)
        requested = set(ticks.tick(61))
        assert requested and not requested & (reads_visual | {repetition, tired}), \
            sorted(k.to_user_string() for k in requested)
        ticks.materialized(requested)
        ticks.materialized([visual], ["2026-03-01"])      # re-embedded, checks pass
        requested = set(ticks.tick(62))                  # still due from 05:00
        assert reads_visual | {repetition, tired} <= requested, sorted(k.to_user_string() for k in requested)


def test_ingest_has_no_condition_and_the_automation_sensor_runs_by_default(defs, roles):
    graph = defs.resolve_asset_graph()
    assert all(graph.get(k).automation_condition is None for k in roles["ingest"])
    sensors = {s.name: s for s in defs.sensors}
    automation = sensors[AUTOMATION_SENSOR]
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.emit_backfills, "several launch dates at once must become one (single-run) backfill"
    targeted = automation.asset_selection.resolve(graph)
    assert targeted == {k for role in ("features", "partitioned", "whole_history") for k in roles[role]}
    assert sensors["launch_date_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["landing_sensor"].default_status == dg.DefaultSensorStatus.STOPPED
    assert not list(defs.schedules or []), "the whole-history refresh is a condition, not a schedule"
    assert {j.name for j in defs.jobs} == {INGEST_JOB, EMBED_JOB, REFRESH_JOB, CANDIDATES_JOB}
    # candidate batches run on demand (their sensor), never by a condition or the refresh
    assert sensors["candidates_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert roles["candidates"] and all(graph.get(k).automation_condition is None for k in roles["candidates"])
    assert not targeted & set(roles["candidates"])


def test_sensor_intervals_default_per_sensor_and_one_setting_shortens_them(tmp_path, monkeypatch):
    from creative_dag.definitions import build_definitions

    def intervals() -> dict[str, int]:
        defs = build_definitions(tmp_path / "home", tmp_path / "landing")
        return {s.name: s.minimum_interval_seconds for s in defs.sensors}

    assert intervals() == {"landing_sensor": 60, "launch_date_sensor": 30, "candidates_sensor": 60,
                           "stale_runs_sensor": 60, AUTOMATION_SENSOR: 30}
    monkeypatch.setenv("CREATIVE_DAG_SENSOR_INTERVAL_S", "5")
    monkeypatch.setenv("CREATIVE_DAG_AUTOMATION_INTERVAL_S", "10")
    assert intervals() == {"landing_sensor": 5, "launch_date_sensor": 5, "candidates_sensor": 5,
                           "stale_runs_sensor": 60, AUTOMATION_SENSOR: 10}
    monkeypatch.setenv("CREATIVE_DAG_SENSOR_INTERVAL_S", "soon")  # not a number of seconds: the defaults
    assert intervals()["landing_sensor"] == 60


def test_landing_sensor_sees_a_replaced_image_and_not_a_candidate_batch(tmp_path):
    """The input contract's fix for a quarantined image is to copy it again: that alone must start an ingest
    (the sensor said 'landing folder unchanged'). Candidate batches are the candidates sensor's."""
    import time

    from creative_dag.automation import landing_fingerprint

    landing = tmp_path / "landing"
    (landing / "images").mkdir(parents=True)
    assert landing_fingerprint(landing) is None  # no input file yet
    (landing / "creatives.csv").write_text("creative_id\n")
    (landing / "daily_metrics.csv").write_text("creative_id\n")
    (landing / "images" / "cr_1.jpg").write_bytes(b"")  # the zero-byte image the ingest quarantined
    before = landing_fingerprint(landing)
    (landing / "candidates" / "next_week").mkdir(parents=True)
    (landing / "candidates" / "next_week" / "a.png").write_bytes(b"png")
    assert landing_fingerprint(landing) == before
    time.sleep(0.01)
    (landing / "images" / "cr_1.jpg").write_bytes(b"\xff\xd8 a real one")
    assert landing_fingerprint(landing) != before


def test_launch_date_sensor_registers_dates_of_features_prelaunch_and_starts_no_run(tmp_path):
    from creative_dag.definitions import build_definitions
    from creative_dag.resources.warehouse import DuckDBWarehouse

    home = tmp_path / "home"
    home.mkdir()
    DuckDBWarehouse(home / "creative.duckdb").write_table("features.prelaunch", pd.DataFrame({
        "creative_id": ["a", "b", "c"], "launch_date": pd.to_datetime(["2026-03-02", "2026-03-01", "2026-03-02"]).date}))
    defs = build_definitions(home, tmp_path / "landing")
    sensor = next(s for s in defs.sensors if s.name == "launch_date_sensor")
    with fast_instance() as instance:
        def evaluate(cursor: str | None = None):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={
                    k: defs.resources[k] for k in ("warehouse", "embedding_store", "encoders")}) as context:
                return sensor(context)

        assert isinstance(evaluate(), dg.SkipReason), "nothing to do before features/prelaunch is built"
        instance.add_dynamic_partitions(launch_date_partitions.name, ["2026-03-01"])
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=FEATURES_PRELAUNCH.key))
        result = evaluate()
        assert not result.run_requests
        (request,) = result.dynamic_partitions_requests
        assert request.partition_keys == ["2026-03-02"]
        again = evaluate(result.cursor)
        assert isinstance(again, dg.SkipReason), "the same materialisation is read once"


def _new_creative_like(landing: Path, like: str, new_id: str,
                       launch_date: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The creatives.csv row and daily_metrics.csv rows of a creative like `like` (its metrics copied) under a
    new id, launched on `launch_date` or on the same day as `like`; its image, `like`'s mirrored (another image,
    so other hashes), is written into the landing folder."""
    import cv2

    creatives = pd.read_csv(landing / "creatives.csv", dtype=str, keep_default_na=False)
    metrics = pd.read_csv(landing / "daily_metrics.csv", dtype=str, keep_default_na=False)
    row = creatives[creatives["creative_id"] == like].iloc[0].copy()
    image = cv2.imread(str(landing / row["image_path"]))
    row["image_path"] = f"images/{new_id}.png"
    cv2.imwrite(str(landing / row["image_path"]), cv2.flip(image, 1))
    row["creative_id"], row["launch_date"] = new_id, launch_date or row["launch_date"]
    copied = metrics[metrics["creative_id"] == like].copy()
    copied["creative_id"] = new_id
    return row.to_frame().T, copied[copied["date"] >= row["launch_date"]]


def _append_creative(landing: Path, like: str, new_id: str, launch_date: str | None = None) -> None:
    """`_new_creative_like`, appended to the export's two files."""
    row, metrics = _new_creative_like(landing, like, new_id, launch_date)
    for name, rows in (("creatives.csv", row), ("daily_metrics.csv", metrics)):
        with open(landing / name, "a", newline="") as fh:
            rows.to_csv(fh, header=False, index=False)


def test_launch_date_sensor_re_embeds_an_embedded_launch_date_whose_creatives_changed(tmp_path):
    """The daemon's automation embeds only never-materialised launch dates; a creative added to a day that is
    already embedded must still get its embeddings: the sensor starts one run over the changed days, and only
    once the run that rebuilt features/prelaunch has succeeded."""
    from click.testing import CliRunner

    from creative_dag.automation import launch_date_requests
    from creative_dag.cli import main
    from creative_dag.definitions import build_definitions
    from creative_dag.partitions import RANGE_END_TAG, RANGE_START_TAG
    from creative_dag.synth import generate_scenario

    landing, home = tmp_path / "landing", tmp_path / "home"
    generate_scenario(landing, n_creatives=10, n_days=8, seed=4, image_size=64)
    visual = dg.AssetKey(["embeddings", "visual"])
    base = ["materialize", "--home", str(home), "--landing", str(landing), "--select", "group:ingest",
            "--select", "group:features"]
    done = CliRunner().invoke(main, [*base, "--select", "embeddings/visual"], env={"HF_HUB_OFFLINE": "1"})
    assert done.exit_code == 0, done.output
    defs = build_definitions(home, landing)
    warehouse, store = defs.resources["warehouse"], defs.resources["embedding_store"].get()
    settings = defs.resources["encoders"].settings()
    instance = dg.DagsterInstance.from_config(str(home / ".dagster"))
    try:
        def evaluate(cursor: str | None) -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
                return launch_date_requests(context, warehouse, store, settings, [visual])

        embedded = sorted(instance.get_materialized_partitions(visual))
        first = evaluate(None)
        assert not first.run_requests, "nothing changed since the dates were embedded"
        assert "no embedded launch date's creatives changed" in str(first.skip_reason)

        creatives = pd.read_csv(landing / "creatives.csv", dtype=str)
        day = embedded[len(embedded) // 2]
        _append_creative(landing, creatives.loc[creatives["launch_date"] == day, "creative_id"].iloc[0], "added_same_day")
        later = (dt.date.fromisoformat(embedded[-1]) + dt.timedelta(days=1)).isoformat()
        _append_creative(landing, creatives["creative_id"].iloc[0], "added_new_day", launch_date=later)
        done = CliRunner().invoke(main, base, env={"HF_HUB_OFFLINE": "1"})  # ingest and features only
        assert done.exit_code == 0, done.output

        # while the run that rebuilt features/prelaunch is running, its blocking checks have not passed yet
        real_run = instance.get_run_by_id
        status = {"now": dg.DagsterRunStatus.STARTED}
        instance.get_run_by_id = lambda run_id: real_run(run_id).with_status(status["now"])
        waiting = evaluate(first.cursor)
        assert not waiting.run_requests and waiting.cursor == first.cursor, "no re-embedding before its checks"
        status["now"] = dg.DagsterRunStatus.FAILURE
        failed = evaluate(first.cursor)
        assert not failed.run_requests and "did not succeed" in str(failed.skip_reason)
        instance.get_run_by_id = real_run

        second = evaluate(first.cursor)
        (request,) = second.run_requests
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (day, day), \
            "one run over the changed embedded day; the new day is automation's (never materialised)"
        assert later in instance.get_dynamic_partitions(launch_date_partitions.name), "the hook registered it"
        assert int(second.cursor) > int(first.cursor)
        assert "no new features/prelaunch materialisation" in str(evaluate(second.cursor))
    finally:
        instance.dispose()


# ----------------------------------------------------------------------------- slow: a real daemon
# The project's definitions with CLIP pointed at a missing folder (unavailable at once, as offline),
# run as the UI and a user's daemon run them: the project's multiprocess executor, each step forked from
# a server that preloaded what the run's steps import (creative_dag/step_processes.py). Alone on 2 cores
# (2026-12-06): 249 s; with every step in the run's own process it took 252-256 s in CI beside other tests.
DAEMON_DEFINITIONS = '''
import dagster as dg
from creative_dag.automation import with_automation
from creative_dag.definitions import build_definitions
from creative_dag.resources.models import EncoderResource
from creative_dag.step_processes import project_executor


LEFT_OUT = dg.AssetKey(["marts", "element_attribution"])


def light_encoders(project: dg.Definitions) -> dg.Definitions:
    encoders = EncoderResource.from_locations(clip_model=MISSING, allow_download=False, threads=1)
    # the element attribution (nothing reads it) OCRs ~300 edited images per refresh at its default
    # sample: minutes of the test spent on what the e2e and bad-export tests already run
    # (conditions again for the graph without it: a table the refresh waits for is never written here)
    assets = with_automation([a for a in project.assets if LEFT_OUT not in a.keys])
    checks = [c for c in project.asset_checks if all(k.asset_key != LEFT_OUT for k in c.check_keys)]
    jobs = [j for j in project.jobs if j.name != "refresh_memory"]  # selects it by key; no sensor runs it
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs,
                          sensors=project.sensors, resources={**project.resources, "encoders": encoders},
                          executor=project_executor())  # the project's: steps forked as the UI and daemon run them


defs = light_encoders(build_definitions())
'''
ROUND_TIMEOUT_S = 420
IMAGE_BLOCKS_HERE = ["visual", "cnn", "layout"]  # every image block but CLIP


def _split_export(source: Path, landing: Path, cutoff: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the export as of `cutoff` (creatives launched and metrics dated up to it) into `landing`;
    return the rest, to append later."""
    creatives = pd.read_csv(source / "creatives.csv", dtype=str, keep_default_na=False)
    metrics = pd.read_csv(source / "daily_metrics.csv", dtype=str, keep_default_na=False)
    shutil.copytree(source / "images", landing / "images")
    early = creatives["launch_date"] <= cutoff
    creatives[early].to_csv(landing / "creatives.csv", index=False)
    metrics[metrics["date"] <= cutoff].to_csv(landing / "daily_metrics.csv", index=False)
    return creatives[~early], metrics[metrics["date"] > cutoff]


class Daemon:
    """`dagster-daemon run` on a temporary DAGSTER_HOME, in its own process group."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.log = root / "daemon.log"
        self.process: subprocess.Popen | None = None
        self.dagster_home = Path(env["DAGSTER_HOME"])

    def cli(self, *args: str) -> None:
        done = subprocess.run([str(Path(sys.executable).parent / "dagster"), *args, "-w", str(self.root / "workspace.yaml")],
                              env=self.env, cwd=self.root, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, f"dagster {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-6000:]}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(self.root / "workspace.yaml")],
            env=self.env, cwd=self.root, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, to the daemon's process group: the daemon, the code server and the
        run workers it started (and nothing else)."""
        if self.process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                pass
        self.process = None

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def report(self, instance: dg.DagsterInstance) -> str:
        lines = ["runs (newest first):"]
        for run in instance.get_runs(limit=40):
            selection = sorted(k.to_user_string() for k in (run.asset_selection or []))
            partition = run.tags.get("dagster/partition") or (
                f"{run.tags.get('dagster/asset_partition_range_start')}..{run.tags.get('dagster/asset_partition_range_end')}"
                if "dagster/asset_partition_range_start" in run.tags else "")
            lines.append(f"  {run.run_id[:8]} {run.status.value:<10} {run.job_name} {partition} "
                         f"{run.tags.get('dagster/backfill', '')} {','.join(selection)[:300]}")
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no daemon log)"
        return "\n".join(lines) + "\n--- daemon log (tail) ---\n" + text[-12000:]

    def wait_for(self, what: str, done: Callable[[dg.DagsterInstance], bool], timeout_s: float) -> float:
        """Seconds until `done`; fails on a failed run, a dead daemon or the timeout, with the run list
        and the daemon log."""
        start = time.monotonic()
        instance = self.instance()
        try:
            while time.monotonic() - start < timeout_s:
                assert self.process is not None and self.process.poll() is None, \
                    f"dagster-daemon exited while waiting for {what}\n{self.report(instance)}"
                if done(instance):
                    return time.monotonic() - start
                failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
                assert not failed, f"a run failed while waiting for {what}\n{self.report(instance)}"
                time.sleep(3)
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{self.report(instance)}")
        finally:
            instance.dispose()


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> list:
    return list(instance.fetch_materializations(key, limit=10_000, ascending=True).records)


def _per_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in _materializations(instance, key):
        partition = record.partition_key
        counts[partition] = counts.get(partition, 0) + 1
    return counts


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    records = instance.fetch_materializations(key, limit=1, ascending=False).records
    return records[0].storage_id if records else -1


def _embedded_and_refreshed(launch_dates: Sequence[str], encoders: Sequence[dg.AssetKey],
                            whole_history: Sequence[dg.AssetKey] = ()) -> Callable[[dg.DagsterInstance], bool]:
    """Every encoder has every launch date, and every whole-history table materialised after that."""
    def done(instance: dg.DagsterInstance) -> bool:
        if not set(launch_dates) <= set(instance.get_dynamic_partitions(launch_date_partitions.name)):
            return False
        for key in encoders:
            if not set(launch_dates) <= set(instance.get_materialized_partitions(key)):
                return False
        last_encoded = max(_latest_storage_id(instance, k) for k in encoders)
        return all(_latest_storage_id(instance, k) > last_encoded for k in whole_history)
    return done


def _re_embedded(day: str, encoders: Sequence[dg.AssetKey],
                 whole_history: Sequence[dg.AssetKey]) -> Callable[[dg.DagsterInstance], bool]:
    """Every encoder materialised `day` a second time, and every whole-history table after that."""
    def done(instance: dg.DagsterInstance) -> bool:
        if any(_per_partition(instance, key).get(day, 0) < 2 for key in encoders):
            return False
        last_encoded = max(_latest_storage_id(instance, k) for k in encoders)
        return all(_latest_storage_id(instance, k) > last_encoded for k in whole_history)
    return done


@pytest.mark.slow
def test_the_daemon_runs_the_daily_path_end_to_end(tmp_path):
    from creative_dag.definitions import build_definitions
    from creative_dag.resources.warehouse import DuckDBWarehouse
    from creative_dag.synth import generate_scenario

    started = time.monotonic()
    source, landing, home = tmp_path / "source", tmp_path / "landing", tmp_path / "home"
    generate_scenario(source, n_creatives=26, n_days=20, seed=5, image_size=96)
    # the first export up to 03-19 (14 launch dates: one single-run backfill); the second adds the
    # creatives launched on 03-20 (one launch date: a plain run) and everyone's metrics of 03-20
    later_creatives, later_metrics = _split_export(source, landing, cutoff="2026-03-19")
    first_dates = sorted(set(pd.read_csv(landing / "creatives.csv", dtype=str)["launch_date"]))
    later_dates = sorted(set(later_creatives["launch_date"]))
    assert first_dates and later_dates and max(first_dates) < min(later_dates)

    dagster_home = home / ".dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml(dagster_home))  # as `creative-dag dev` writes it
    (tmp_path / "daemon_defs.py").write_text(DAEMON_DEFINITIONS.replace("MISSING", repr(str(tmp_path / "no-model"))))
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(f"""\
        load_from:
          - python_file:
              relative_path: {tmp_path / 'daemon_defs.py'}
              working_directory: {Path(__file__).resolve().parents[1]}
        """))
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "CREATIVE_DAG_HOME": str(home),
           "CREATIVE_DAG_LANDING": str(landing), "CREATIVE_DAG_REFRESH_CRON": "* * * * *",
           "CREATIVE_DAG_AUTOMATION_INTERVAL_S": "10", "CREATIVE_DAG_SENSOR_INTERVAL_S": "5",
           "CREATIVE_DAG_TORCH_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1"}
    roles = keys_by_role(a for a in build_definitions(home, landing).assets
                         if dg.AssetKey(["marts", "element_attribution"]) not in a.keys)  # as the daemon's
    encoders, whole_history = roles["partitioned"], roles["whole_history"]

    daemon = Daemon(tmp_path, env)
    try:
        daemon.cli("sensor", "start", "landing_sensor")  # stopped by default; a user clicks it on once
        daemon.start()
        first_s = daemon.wait_for("the first export: ingest, features, embeddings of every launch date",
                                  _embedded_and_refreshed(first_dates, encoders), ROUND_TIMEOUT_S)

        warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
        ok_images = set(warehouse.query("SELECT creative_id FROM raw.images WHERE decode_status = 'ok'")["creative_id"])
        assert len(ok_images) >= 10 and len(first_dates) >= 10
        for block in IMAGE_BLOCKS_HERE:
            embedded = set(warehouse.read_table(f"embeddings.{block}")["creative_id"])
            assert embedded == ok_images, f"embeddings.{block}: {sorted(ok_images - embedded)} not embedded"

        # the next day's export: later creatives (new launch dates), every day's metrics since, and a late
        # arrival on a launch date already embedded: automation embeds only never-materialised dates, so
        # launch_date_sensor must start the run that re-embeds that day
        day = first_dates[-2]
        like = pd.read_csv(landing / "creatives.csv", dtype=str).query("launch_date == @day")["creative_id"].iloc[0]
        late_row, late_metrics = _new_creative_like(landing, like, "late_arrival")
        with open(landing / "creatives.csv", "a", newline="") as fh:
            pd.concat([later_creatives, late_row]).to_csv(fh, header=False, index=False)
        with open(landing / "daily_metrics.csv", "a", newline="") as fh:
            pd.concat([later_metrics, late_metrics]).to_csv(fh, header=False, index=False)
        # (the first export's whole-history refresh may still be running: the next one must follow it)
        new_dates_done = _embedded_and_refreshed(first_dates + later_dates, encoders, whole_history)
        changed_day_done = _re_embedded(day, encoders, whole_history)
        second_s = daemon.wait_for("the second export: the new launch date embedded, the changed one again, "
                                   "whole-history tables after both",
                                   lambda i: new_dates_done(i) and changed_day_done(i), ROUND_TIMEOUT_S)

        instance = daemon.instance()
        try:
            for key in encoders:
                counts = _per_partition(instance, key)
                assert counts == {d: 2 if d == day else 1 for d in first_dates + later_dates}, \
                    f"{key.to_user_string()}: materialisations per launch date {counts}\n{daemon.report(instance)}"
            for key in FEATURES:
                assert len(_materializations(instance, key)) == 2, f"{key.to_user_string()}: once per export"
            bad = [r for r in instance.get_runs()
                   if r.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
            assert not bad, daemon.report(instance)
            # each run's forkserver preloaded what its steps import (creative_dag/step_processes.py)
            for run in instance.get_runs():
                [preload] = [e.message.removeprefix(PRELOAD_EVENT) for e in instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT) if e.message.startswith(PRELOAD_EVENT)]
                keys = set(encoders) if run.job_name == EMBED_JOB else set(run.asset_selection or [])
                if run.job_name == INGEST_JOB or keys <= set(FEATURES):
                    assert "torch" not in preload and "lightgbm" not in preload, (run.job_name, keys, preload)
                elif keys <= set(encoders):
                    assert "torch" in preload and "lightgbm" not in preload, (keys, preload)
                else:
                    assert "torch" in preload and "lightgbm" in preload, (keys, preload)
        finally:
            instance.dispose()

        daemon.stop()

        warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
        all_ids = set(warehouse.read_table("raw.creatives")["creative_id"])
        assert "late_arrival" in all_ids
        assert set(later_creatives["creative_id"]) <= all_ids
        ok_images = set(warehouse.query("SELECT creative_id FROM raw.images WHERE decode_status = 'ok'")["creative_id"])
        for block in IMAGE_BLOCKS_HERE:
            embedded = warehouse.read_table(f"embeddings.{block}")["creative_id"]
            assert embedded.is_unique and set(embedded) == ok_images, f"embeddings.{block}"
        text = warehouse.read_table("embeddings.text")["creative_id"]
        assert text.is_unique and set(later_creatives["creative_id"]) <= set(text), "embeddings.text"
        case_base = set(warehouse.read_table("cbr.case_base")["creative_id"])
        assert case_base == all_ids, "the case base was refreshed with the new creatives"
        serving = DuckDBWarehouse(home / "serving" / "creative.duckdb", read_only=True)
        assert set(serving.read_table("cbr.case_base")["creative_id"]) == all_ids, "the serving copy is current"
        print(f"daemon daily path: first export {first_s:.0f}s, second {second_s:.0f}s, "
              f"whole test {time.monotonic() - started:.0f}s")
    finally:
        daemon.stop()
