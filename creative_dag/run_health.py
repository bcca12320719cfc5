"""Runs whose process is gone, and who holds the warehouse pool.

A run killed with `kill -9` (or an OOM kill) never reports its end: Dagster keeps it STARTED
and keeps the `warehouse` pool slot it claimed, so every later run waits for that slot forever.
Dagster's run monitoring frees slots only of runs that *ended*. So every run records the
process that executes it (pid, host, process start time: a reused pid is not mistaken for the
dead run) and, before new work starts (the CLI, and `stale_runs_sensor` in the daemon), runs
whose process no longer exists are marked failed and their slots freed.

Runs launched from the UI by the default run launcher are found through the run worker's
"Started process for run (pid: N)" engine event; they are only judged on the machine that holds
the instance's local (SQLite) storage, since a pid means nothing on another host.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from creative_dag.stop_signals import StopSignals

PID_TAG = "creative_dag/pid"
HOST_TAG = "creative_dag/host"
PROCESS_START_TAG = "creative_dag/process_start"
INVOCATION_TAG = "creative_dag/invocation"
WAREHOUSE_POOL = "warehouse"

_LIVE_STATUSES = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def _process_start(pid: int) -> str:
    """Start time of `pid` in clock ticks since boot (Linux /proc), '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; the command name (field 2) may contain spaces, so count from its closing ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


def process_tags() -> dict[str, str]:
    """Tags that identify the process executing a run started from this process."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: _process_start(pid)}


def process_alive(pid: int, start: str = "") -> bool:
    """True while `pid` exists (and, when `start` is known, is still the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not start or not _process_start(pid) or _process_start(pid) == start


@dataclass(frozen=True)
class RunProcess:
    run_id: str
    pid: int
    host: str
    start: str
    source: str  # "tag" (CLI / runner) or "engine_event" (run worker launched by the UI/daemon)

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        return process_alive(self.pid, self.start)

    @property
    def gone(self) -> bool:
        """Known dead: on this machine (a pid means nothing elsewhere) and no longer running."""
        return self.on_this_host and not self.alive()


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunProcess | None:
    """The process executing `run`, or None when it cannot be told."""
    tags = run.tags or {}
    if tags.get(PID_TAG, "").isdigit():
        return RunProcess(run.run_id, int(tags[PID_TAG]), tags.get(HOST_TAG, ""), tags.get(PROCESS_START_TAG, ""), "tag")
    if not _storage_is_local(instance):
        return None
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(getattr(event, "event_specific_data", None), "metadata", None) or {}
        pid = metadata.get("pid")
        text = str(getattr(pid, "value", pid) or "")
        # the sentence is the Dagster event's message (the entry's user_message is empty)
        if text.isdigit() and "Started process for run" in (record.event_log_entry.message or ""):
            return RunProcess(run.run_id, int(text), socket.gethostname(), "", "engine_event")
    return None


def _storage_is_local(instance: dg.DagsterInstance) -> bool:
    return type(instance.run_storage).__name__.startswith("Sqlite")


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose process is gone as failed and free their pool slots; also free slots still
    claimed by runs that already ended. Returns one sentence per run it acted on."""
    actions: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_LIVE_STATUSES)):
        proc = run_process(instance, run)
        if proc is None or not proc.gone:
            continue
        actions.append(_mark_failed(instance, run, (
            f"run {run.run_id} marked failed: its process (pid {proc.pid} on {proc.host}) is gone "
            "(killed or crashed); its warehouse pool slot is freed and its assets can be re-run")))
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            actions.append(f"freed pool slots still held by {'deleted' if run is None else 'finished'} run {run_id}")
    return actions


def fail_run(instance: dg.DagsterInstance, run_id: str) -> str:
    """Mark one unfinished run failed by hand and free its pool slots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in this instance; `creative-dag runs` lists the runs in progress")
    if run.is_finished:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        return f"run {run_id} had already ended ({run.status.value}); its pool slots are free"
    _mark_failed(instance, run, f"run {run_id} marked failed by hand (creative-dag runs --fail)")
    return f"run {run_id} marked failed; its pool slots are free"


def _mark_failed(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> str:
    """Report `run` failed with `message` and free every pool slot it claimed; returns the message."""
    instance.report_run_failed(run, message=message)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return message


def describe_live_runs(instance: dg.DagsterInstance) -> list[str]:
    """One line per unfinished run: id, status, and whether its process is alive."""
    lines = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_LIVE_STATUSES)):
        proc = run_process(instance, run)
        if proc is None:
            state = "process unknown (use --fail RUN_ID if you know it is dead)"
        elif not proc.on_this_host:
            state = f"pid {proc.pid} on another host {proc.host}"
        else:
            state = f"pid {proc.pid} {'GONE (--reap frees it)' if proc.gone else 'alive'}"
        lines.append(f"run {run.run_id} {run.status.value}: {state}")
    return lines


def pool_holders(instance: dg.DagsterInstance, pool: str = WAREHOUSE_POOL) -> list[str]:
    """Who holds `pool`'s slots now: 'run <id> (step <key>, pid N, alive)' per claimed slot."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    out = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        proc = run_process(instance, run) if run is not None else None
        who = f"pid {proc.pid} on {proc.host}" if proc else "process unknown"
        status = run.status.value if run is not None else "deleted"
        out.append(f"run {slot.run_id} (step {slot.step_key}, {status}, {who})")
    return out


class PoolWaitReporter:
    """Watches the warehouse pool while this process runs and, for steps of this invocation
    (runs tagged INVOCATION_TAG) that wait for a slot:
    - reports once per step that it waits and for whom (`report` is called from this thread);
    - honours SIGTERM/SIGINT: Dagster's in-process executor only records an interrupt while it
      sleeps waiting for a slot, so a waiting run would ignore `kill` forever. When an interrupt
      has been recorded and a step of ours is still waiting, the runs are marked canceled, their
      claims dropped, and the process exits (code 143): nothing of ours is executing then;
    - with `stop_signals` (the process's wakeup pipe, stop_signals.py), stops a run that a SIGINT or
      SIGTERM did not end within `grace_s`: Dagster retries an interrupted step that has a retry policy
      (the encoders'), so Ctrl-C alone never ended those runs. The invocation's unfinished runs are marked
      canceled, their claims dropped, and the process exits at once (`stop_exit_code`, else 130 after
      SIGINT, 143 after SIGTERM), as a kill would but leaving no run "in progress": the warehouse rolls
      back the write it interrupted (one transaction per table), the embedding store only ever renames
      finished files.
    """

    def __init__(self, instance: dg.DagsterInstance, invocation: str, report: Callable[[str], None],
                 pool: str = WAREHOUSE_POOL, interval_s: float = 2.0,
                 exit_process: Callable[[int], None] = os._exit, stop_signals: StopSignals | None = None,
                 grace_s: float = 3.0, stop_exit_code: int | None = None) -> None:
        self.instance, self.invocation, self.report = instance, invocation, report
        self.pool, self.interval_s, self.exit_process = pool, interval_s, exit_process
        self.stop_signals, self.grace_s, self.stop_exit_code = stop_signals, grace_s, stop_exit_code
        self._told: set[tuple[str, str]] = set()

    def _our_waiting_steps(self) -> tuple[list, int]:
        info = self.instance.event_log_storage.get_concurrency_info(self.pool)
        waiting = [s for s in info.pending_steps if s.assigned_timestamp is None]
        if not waiting:
            return [], info.slot_count
        ours = {r.run_id for r in self.instance.get_runs(
            filters=dg.RunsFilter(run_ids=list({s.run_id for s in waiting}), tags={INVOCATION_TAG: self.invocation}))}
        return [s for s in waiting if s.run_id in ours], info.slot_count

    def poll_once(self) -> None:
        waiting, limit = self._our_waiting_steps()
        if waiting and _interrupt_recorded():
            self._cancel_and_exit({s.run_id for s in waiting})
            return
        for step in waiting:
            if (step.run_id, step.step_key) not in self._told:
                self._told.add((step.run_id, step.step_key))
                holders = pool_holders(self.instance, self.pool) or ["no run (a slot should free up shortly)"]
                self.report(f"step {step.step_key} waits for the '{self.pool}' pool (limit {limit}), held by "
                            f"{'; '.join(holders)}. If that run's process is gone, the next command "
                            "(or `creative-dag runs --reap`, or `--fail RUN_ID`) frees the slot.")

    def _cancel_and_exit(self, run_ids: set[str], message: str = "interrupted while waiting for the warehouse pool",
                         line: str = "", code: int = 143) -> None:
        for run_id in run_ids:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                self.instance.report_run_canceled(run, message=message)
            self.instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        self.report(line or f"interrupted while waiting for the '{self.pool}' pool: run(s) "
                            f"{', '.join(sorted(run_ids))} canceled, nothing was written")
        # again: the main thread goes on meanwhile and may have queued its next step (`reap_dead_runs`, which
        # every command starts with, frees what a run that ended still holds)
        for run_id in run_ids:
            self.instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        sys.stdout.flush()
        sys.stderr.flush()
        self.exit_process(code)

    def _stop_unless_ended(self, stop: Callable[[], bool]) -> None:
        """A stop signal arrived: give Dagster `grace_s` to end the run itself, else stop it here."""
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            if stop():
                return
            time.sleep(0.05)
        assert self.stop_signals is not None
        code = self.stop_signals.exit_code() if self.stop_exit_code is None else self.stop_exit_code
        waiting, _ = self._our_waiting_steps()
        if waiting:  # nothing of ours executes: the runs wrote nothing
            self._cancel_and_exit({s.run_id for s in waiting}, code=code)
            return
        unfinished = {r.run_id for r in self.instance.get_runs(filters=dg.RunsFilter(
            tags={INVOCATION_TAG: self.invocation}, statuses=[dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]))}
        name = "Ctrl-C (SIGINT)" if self.stop_signals.exit_code() == 130 else "SIGTERM"
        self._cancel_and_exit(
            unfinished, message=f"stopped by {name}", code=code,
            line=f"stopped by {name}: run(s) {', '.join(sorted(unfinished)) or '(none left)'} canceled and the "
                 f"'{self.pool}' pool slot freed; a table whose write was interrupted keeps its previous version; "
                 "run the same command again to finish")

    def run_until(self, stop: Callable[[], bool]) -> None:
        while not stop():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - reporting must never break the run it watches
                self.report(f"could not read the '{self.pool}' pool state: {exc}")
                if self.stop_signals is None:
                    return
            if self.stop_signals is None:
                time.sleep(self.interval_s)
            elif self.stop_signals.wait(self.interval_s) and not stop():
                self._stop_unless_ended(stop)
                return


def _interrupt_recorded() -> bool:
    """Whether Dagster's executor has recorded a SIGINT/SIGTERM it has not acted on yet."""
    try:
        from dagster._utils.interrupts import check_captured_interrupt
    except ImportError:  # private API moved: no early exit, the run just keeps waiting
        return False
    return bool(check_captured_interrupt())
