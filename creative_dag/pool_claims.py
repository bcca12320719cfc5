"""The instance's event-log storage: Dagster's SQLite one, with prompt re-checks of the warehouse pool.

Every step that writes the warehouse claims a slot of pool "warehouse" (limit 1). A step that finds it
taken checks again after an interval the storage may set; Dagster's SQLite storage sets none, and the
executor then waits 1 s, growing by 10 % with each check, so a step that has waited through half a minute
of others checks only every ~4 s. Measured on `refresh_memory` of the demo home under the multiprocess
executor (UI, daemon), 2026-12-06: 13-14 s of a 60-63 s run had no step running at all; re-checking
every 0.25 s made the run 50-52 s (3.7 s with none running), every table equal. A check is two reads of
the small index database.

`instance.prepare_dagster_home` names this class in each home's dagster.yaml with that home's event-log
folder written out: a storage class gets no instance directory from Dagster, and guessing it from
$DAGSTER_HOME would read another home's logs whenever an instance is opened from its folder
(`DagsterInstance.from_config(dir)`). The Postgres instance of deploy/ keeps Dagster's own storage.
"""

from __future__ import annotations

from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus

DEFAULT_CLAIM_POLL_SECONDS = 0.25


class PromptClaimSqliteEventLogStorage(SqliteEventLogStorage, ConfigurableClass):
    """Dagster's SQLite event-log storage (one database per run under `base_dir`); a step blocked on a pool
    checks again every `claim_poll_seconds`."""

    def __init__(self, base_dir: str, claim_poll_seconds: float = DEFAULT_CLAIM_POLL_SECONDS,
                 inst_data: ConfigurableClassData | None = None) -> None:
        if not claim_poll_seconds > 0:
            raise ValueError(f"claim_poll_seconds must be positive, got {claim_poll_seconds!r} (dagster.yaml)")
        self.claim_poll_seconds = float(claim_poll_seconds)
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": StringSource,
                "claim_poll_seconds": Field(float, is_required=False, default_value=DEFAULT_CLAIM_POLL_SECONDS)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # ty: ignore[invalid-method-override]
                          config_value: dict[str, Any]) -> PromptClaimSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def check_concurrency_claim(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencyClaimStatus:
        return super().check_concurrency_claim(concurrency_key, run_id, step_key).with_sleep_interval(
            self.claim_poll_seconds)
