"""Killed runs, a held warehouse pool, a locked DuckDB file, and the error a failed step shows.

The kill -9 and SIGTERM tests start the real CLI in a subprocess, the way an on-call engineer
meets these faults: a run killed mid-step must not block the next run, and a run waiting for
the pool must say for whom and stop when told to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from creative_dag.cli import main
from creative_dag.instance import get_instance
from creative_dag.pool_claims import PromptClaimSqliteEventLogStorage
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseLockedError
from creative_dag.run_health import (
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    WAREHOUSE_POOL,
    process_tags,
    reap_dead_runs,
)
from creative_dag.settings import resolve_locations
from creative_dag.synth import generate_scenario

CLI = [sys.executable, "-m", "creative_dag.cli"]


def _instance(home: Path, landing: Path) -> dg.DagsterInstance:
    return get_instance(resolve_locations(home, landing))


def _fake_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    """A STARTED run holding the warehouse pool's slot, as a killed process leaves it."""
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="__ephemeral_asset_job__", run_id=run_id,
                                   status=dg.DagsterRunStatus.STARTED, tags=tags))
    storage = instance.event_log_storage
    storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    assert storage.claim_concurrency_slot(WAREHOUSE_POOL, run_id, "some_step").is_claimed
    return run_id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reaper_fails_runs_of_dead_processes_and_frees_their_slots(tmp_path):
    instance = _instance(tmp_path / "home", tmp_path / "landing")
    dead = _fake_run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: ""})
    actions = reap_dead_runs(instance)
    assert any(dead in line and "marked failed" in line for line in actions), actions
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots


def test_reaper_leaves_live_and_foreign_runs_alone(tmp_path):
    instance = _instance(tmp_path / "home", tmp_path / "landing")
    alive = _fake_run(instance, process_tags())  # this very process
    instance.event_log_storage.free_concurrency_slots_for_run(alive)
    foreign = _fake_run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: "another-machine", PROCESS_START_TAG: ""})
    assert reap_dead_runs(instance) == []
    for run_id in (alive, foreign):
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    # A reused pid is not the dead run's process: a different start time means "gone".
    instance.event_log_storage.free_concurrency_slots_for_run(foreign)
    reused = _fake_run(instance, {**process_tags(), PROCESS_START_TAG: "1"})
    assert any(reused in line for line in reap_dead_runs(instance))


def test_a_run_the_ui_or_daemon_launched_is_known_by_its_workers_pid(tmp_path):
    """A run launched by `dagster dev` carries none of our tags: its run worker's pid is in the engine event
    Dagster writes ("Started process for run (pid: N)."). A `dagster dev` killed with its workers left such a
    run holding the pool slot, and neither `runs --reap` nor `stale_runs_sensor` freed it (stop 50)."""
    from dagster._core.events import EngineEventData

    from creative_dag.run_health import describe_live_runs

    instance = _instance(tmp_path / "home", tmp_path / "landing")
    alive = _fake_run(instance, {})
    instance.event_log_storage.free_concurrency_slots_for_run(alive)
    dead = _fake_run(instance, {})
    for run_id, pid in ((dead, _dead_pid()), (alive, os.getpid())):
        # exactly as the run worker reports it (dagster/_grpc/impl.py, dagster/_cli/api.py)
        instance.report_engine_event(f"Started process for run (pid: {pid}).", instance.get_run_by_id(run_id),
                                     EngineEventData.in_process(pid))
    assert not any("process unknown" in line for line in describe_live_runs(instance)), describe_live_runs(instance)
    actions = reap_dead_runs(instance)
    assert len(actions) == 1 and dead in actions[0] and "marked failed" in actions[0], actions
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
    assert not instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("faults") / "export"
    generate_scenario(landing, n_creatives=30, n_days=30, seed=2, image_size=64)
    return landing


def _cli(*args: str, home: Path, landing: Path) -> list[str]:
    return [*CLI, *args, "--home", str(home), "--landing", str(landing)]


def test_a_step_waiting_for_the_pool_checks_again_every_quarter_second(tmp_path, monkeypatch):
    """Dagster's SQLite storage leaves the re-check to the executor: 1 s, growing 10 % per check, which left
    13-14 s of the demo's ~60 s refresh_memory with no step running. Each home's instance tells a blocked
    step to check again in 0.25 s, keeps its run history where Dagster's default storage keeps it, and is
    the same instance whoever opens it from its folder, whatever $DAGSTER_HOME says."""
    home = tmp_path / "home"
    instance = _instance(home, tmp_path / "landing")
    storage = instance.event_log_storage
    assert isinstance(storage, PromptClaimSqliteEventLogStorage)
    writer, waiter = str(uuid.uuid4()), str(uuid.uuid4())
    storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    assert storage.claim_concurrency_slot(WAREHOUSE_POOL, writer, "features__prelaunch").is_claimed
    blocked = storage.claim_concurrency_slot(WAREHOUSE_POOL, waiter, "cbr__case_base")
    assert not blocked.is_claimed and blocked.sleep_interval == 0.25
    assert (home / ".dagster" / "history" / "runs" / "index.db").exists()
    # Opened from its folder by another process (the daemon test watches the daemon's instance this way):
    # the same claims, not another home's.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    with dg.DagsterInstance.from_config(str(home / ".dagster")) as seen:
        claimed = seen.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        assert [slot.run_id for slot in claimed] == [writer]
    storage.free_concurrency_slot_for_step(writer, "features__prelaunch")
    assert storage.claim_concurrency_slot(WAREHOUSE_POOL, waiter, "cbr__case_base").is_claimed
    with pytest.raises(ValueError, match="claim_poll_seconds.*dagster.yaml"):
        PromptClaimSqliteEventLogStorage(str(tmp_path / "runs"), claim_poll_seconds=0)


@pytest.mark.slow
def test_kill_9_mid_run_then_the_next_run_finishes(tmp_path, small_export):
    home = tmp_path / "home"
    cmd = _cli("materialize", "--select", "group:ingest", "--select", "group:features", home=home, landing=small_export)
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    instance = _instance(home, small_export)
    deadline = time.monotonic() + 180
    holder = None
    while time.monotonic() < deadline and victim.poll() is None:
        slots = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        if slots:
            holder = slots[0].run_id
            break
        time.sleep(0.05)
    assert holder, "the run never took the warehouse pool (or ended before it could be killed)"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED  # what kill -9 leaves
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"run {holder} marked failed" in rerun.stderr
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
    assert len(DuckDBWarehouse(home / "creative.duckdb").read_table("features.prelaunch")) == 30


@pytest.mark.slow
def test_a_run_waiting_for_the_pool_says_for_whom_and_stops_on_sigterm(tmp_path, small_export):
    home = tmp_path / "home"
    instance = _instance(home, small_export)
    blocker = _fake_run(instance, {})  # a run whose process cannot be checked: never reaped automatically
    log = tmp_path / "waiting.log"
    with open(log, "w") as fh:
        waiting = subprocess.Popen(_cli("materialize", "--select", "group:ingest", home=home, landing=small_export),
                                   stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "waits for the 'warehouse' pool" not in log.read_text():
            time.sleep(0.5)
        assert f"held by run {blocker}" in log.read_text(), log.read_text()
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=30) == 143, log.read_text()
    assert "interrupted while waiting" in log.read_text()
    # The operator frees the unknown run by hand; the next run goes through.
    freed = CliRunner().invoke(main, ["runs", "--fail", blocker, "--home", str(home), "--landing", str(small_export)])
    assert freed.exit_code == 0 and "marked failed" in freed.output, freed.output
    assert subprocess.run(_cli("materialize", "--select", "group:ingest", home=home, landing=small_export),
                          capture_output=True, timeout=300, check=False).returncode == 0


def test_a_transiently_locked_warehouse_is_waited_for_then_named(tmp_path):
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).write_table("raw.t", pd.DataFrame({"a": [1]}))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(2)"),
        str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WarehouseLockedError, match="locked by another process"):
        DuckDBWarehouse(path, lock_timeout_s=0.3).read_table("raw.t")
    assert len(DuckDBWarehouse(path, lock_timeout_s=30).read_table("raw.t")) == 1  # waits for the holder
    holder.wait()


def test_a_failed_step_shows_the_projects_message_not_the_library_error(tmp_path, small_export):
    export = tmp_path / "export"
    export.mkdir()
    (export / "creatives.csv").write_bytes("creative_id,launch_date\n\xff\xfe bad,2026-03-01\n".encode("latin-1"))
    (export / "daily_metrics.csv").write_bytes((small_export / "daily_metrics.csv").read_bytes())
    result = CliRunner().invoke(main, ["materialize", "--select", "group:ingest", "--landing", str(export),
                                       "--home", str(tmp_path / "home")])
    assert result.exit_code != 0
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED step")]
    assert failed and "creatives.csv" in failed[0] and "UnicodeDecodeError" not in failed[0], result.output


def test_the_daemon_sensor_frees_a_killed_run(tmp_path):
    from creative_dag.definitions import build_definitions

    instance = _instance(tmp_path / "home", tmp_path / "landing")
    dead = _fake_run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: ""})
    defs = build_definitions(tmp_path / "home", tmp_path / "landing")
    sensor = next(s for s in defs.sensors if s.name == "stale_runs_sensor")
    result = sensor(dg.build_sensor_context(instance=instance))
    assert dead in str(result.skip_message if hasattr(result, "skip_message") else result)
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
