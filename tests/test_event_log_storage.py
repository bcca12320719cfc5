"""The home's event-log storage keeps one SQLite connection per database (creative_dag/pool_claims.py).

Dagster's SQLite storage opened and closed a connection for every event it stored; keeping them must not
change what anyone reads: another instance (the UI, the daemon) sees every event at once, a forked step
process writes through its own connections, a wipe empties the history, and nothing is left half-written
once the storage is disposed.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry
from sqlalchemy import event
from sqlalchemy.pool import Pool

from creative_dag.pool_claims import KEPT_SHARDS, PromptClaimSqliteEventLogStorage


def _entry(run_id: str, text: str) -> EventLogEntry:
    return EventLogEntry(error_info=None, level="INFO", user_message=text, run_id=run_id, timestamp=time.time(),
                         step_key=None, job_name=None, dagster_event=None)


def _messages(storage: PromptClaimSqliteEventLogStorage, run_id: str) -> list[str]:
    return [e.user_message for e in storage.get_logs_for_run(run_id)]


@pytest.fixture
def connects():
    """How many DBAPI connections the process opens meanwhile."""
    opened = []

    def count(*_):
        opened.append(1)

    event.listen(Pool, "connect", count)
    yield opened
    event.remove(Pool, "connect", count)


def test_a_run_of_events_opens_a_connection_once_and_others_read_them_at_once(tmp_path, connects):
    base = str(tmp_path / "runs")
    storage = PromptClaimSqliteEventLogStorage(base)
    run_id = str(uuid.uuid4())
    before = len(connects)
    for i in range(60):
        storage.store_event(_entry(run_id, f"event {i}"))
    # one connection for the run's database, plus the brief second one that creating its tables takes
    assert len(connects) - before <= 3
    reader = PromptClaimSqliteEventLogStorage(base)  # the UI or the daemon, with its own connections
    assert _messages(reader, run_id) == [f"event {i}" for i in range(60)]
    storage.store_event(_entry(run_id, "one more"))
    assert _messages(reader, run_id)[-1] == "one more"
    reader.dispose()
    storage.dispose()
    # disposed: the write-ahead log is folded back and removed, the database file holds every event
    assert not list(Path(base).glob("*.db-wal"))
    assert len(_messages(PromptClaimSqliteEventLogStorage(base), run_id)) == 61


def test_only_the_databases_in_use_keep_a_connection(tmp_path):
    storage = PromptClaimSqliteEventLogStorage(str(tmp_path / "runs"))
    runs = [str(uuid.uuid4()) for _ in range(KEPT_SHARDS + 4)]
    for run_id in runs:
        storage.store_event(_entry(run_id, "started"))
    assert len(storage._kept.engines) == KEPT_SHARDS
    assert runs[0] not in storage._kept.engines and runs[-1] in storage._kept.engines
    storage.store_event(_entry(runs[0], "again"))  # a closed one reopens
    assert _messages(storage, runs[0]) == ["started", "again"]
    storage.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_process_writes_through_its_own_connections(tmp_path):
    """Step processes are forked from a server that may hold an instance; a connection that crossed the fork
    would share the parent's file handle and locks."""
    storage = PromptClaimSqliteEventLogStorage(str(tmp_path / "runs"))
    run_id = str(uuid.uuid4())
    storage.store_event(_entry(run_id, "parent before"))
    inherited = storage._kept.engines[run_id]
    child = os.fork()
    if child == 0:  # pragma: no cover — runs in the child
        try:
            storage.store_event(_entry(run_id, "child"))
            ok = storage._kept.engines[run_id] is not inherited
            storage.dispose()
        except BaseException:  # noqa: BLE001
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    storage.store_event(_entry(run_id, "parent after"))  # the child's exit left the parent's connection alone
    assert _messages(storage, run_id) == ["parent before", "child", "parent after"]
    storage.dispose()


def test_a_wiped_history_is_empty_and_takes_new_runs(tmp_path):
    home = tmp_path / ".dagster"
    base = home / "history" / "runs"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "event_log_storage:\n  module: creative_dag.pool_claims\n  class: PromptClaimSqliteEventLogStorage\n"
        f"  config:\n    base_dir: {base}\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PromptClaimSqliteEventLogStorage)
        old = str(uuid.uuid4())
        storage.store_event(_entry(old, "before the wipe"))
        storage.wipe()
        assert _messages(storage, old) == []
        new = str(uuid.uuid4())
        storage.store_event(_entry(new, "after the wipe"))
        storage.store_event(_entry(old, "the old run again"))  # into a new file, not the deleted one
        assert _messages(PromptClaimSqliteEventLogStorage(str(base)), old) == ["the old run again"]
    assert not list(base.glob("*.db-wal"))
