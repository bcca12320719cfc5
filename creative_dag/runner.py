"""Materialise a selection of the asset graph in-process, the way the CLI and the demo do.

Ingest runs first, because the launch dates it lands become the `launch_date` partitions
that per-creative assets are keyed by; everything else then runs in one run covering
every registered launch date (the encoders' single-run backfill policy makes that one
step per asset, with models loaded once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from creative_dag.partitions import launch_date_partitions, unregistered_launch_dates
from creative_dag.resources.warehouse import DuckDBWarehouse

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class RunSummary:
    """What a materialisation did, for the CLI to print and tests to assert on."""

    run_ids: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    launch_dates_added: int = 0

    @property
    def success(self) -> bool:
        return not self.failed_steps and not self.failed_checks and not self.skipped


def resolve_selection(defs: dg.Definitions, select: Sequence[str] | None) -> list[dg.AssetKey]:
    """Asset keys for Dagster selection strings (e.g. `raw/creatives`, `group:marts`, `key:raw/*+`)."""
    graph = defs.resolve_asset_graph()
    all_keys = set(graph.get_all_asset_keys())
    if not select:
        chosen = all_keys
    else:
        chosen = set()
        for text in select:
            selection = _parse_selection(text)
            keys = selection.resolve(graph)
            if not keys:
                raise ValueError(f"selection {text!r} matches no asset; see `creative-dag assets` for the keys")
            chosen |= keys
    return [k for k in graph.toposorted_asset_keys if k in chosen]


def _parse_selection(text: str) -> dg.AssetSelection:
    if ":" in text or "*" in text or "+" in text or " " in text:
        return dg.AssetSelection.from_string(text)
    return dg.AssetSelection.assets(dg.AssetKey(text.split("/")))


def register_launch_dates(instance: dg.DagsterInstance, warehouse: DuckDBWarehouse) -> int:
    """Add every launch date in raw.creatives as a `launch_date` partition. Returns how many were new."""
    new = unregistered_launch_dates(instance, warehouse)
    if new:
        instance.add_dynamic_partitions(launch_date_partitions.name, new)
    return len(new)


def materialize_selection(defs: dg.Definitions, instance: dg.DagsterInstance, warehouse: DuckDBWarehouse,
                          keys: Sequence[dg.AssetKey], launch_date_range: tuple[str, str] | None = None,
                          log_level: str = "INFO") -> RunSummary:
    """Run `keys` (topologically ordered) in at most two runs: ingest, then the rest.

    log_level: what the console shows (the run's event log keeps everything). At DEBUG
    Dagster prints every event, one line per asset partition and step: thousands on the demo.
    """
    summary = RunSummary()
    run_config = {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}}
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    ingest_keys = [k for k in keys if graph.get(k).group_name == "ingest"]
    other_keys = [k for k in keys if k not in ingest_keys]
    if ingest_keys:
        _run(assets, defs, instance, ingest_keys, {}, run_config, summary)
        if not summary.success:
            summary.skipped += [k.to_user_string() for k in other_keys]
            return summary
    summary.launch_dates_added = register_launch_dates(instance, warehouse)
    if other_keys:
        tags: dict[str, str] = {}
        if any(graph.get(k).partitions_def is not None for k in other_keys):
            if launch_date_range is None:
                registered = instance.get_dynamic_partitions(launch_date_partitions.name)
                if not registered:
                    raise RuntimeError(
                        "no launch_date partitions are registered: materialise raw/creatives first "
                        "(creative-dag materialize --select group:ingest)"
                    )
                launch_date_range = (registered[0], registered[-1])
            tags = {RANGE_START_TAG: launch_date_range[0], RANGE_END_TAG: launch_date_range[1]}
        _run(assets, defs, instance, other_keys, tags, run_config, summary)
    return summary


def _run(assets: list, defs: dg.Definitions, instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey],
         tags: dict[str, str], run_config: dict, summary: RunSummary) -> None:
    result = dg.materialize(
        assets,
        instance=instance,
        resources=defs.resources,
        selection=list(keys),
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )
    summary.run_ids.append(result.run_id)
    done = {e.asset_key for e in result.get_asset_materialization_events()}
    summary.materialized += sorted({k.to_user_string() for k in done})
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            summary.failed_steps.append(f"{event.step_key}: {_failure_message(event)}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                summary.failed_checks.append(
                    f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                )
    failed_prefixes = {s.split(":")[0] for s in summary.failed_steps}
    summary.skipped += [
        k.to_user_string() for k in keys
        if k not in done and not any(k.to_python_identifier() in p for p in failed_prefixes)
    ]


def _failure_message(event: dg.DagsterEvent) -> str:
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return "failed"
    cause = error
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return cause.message.strip().splitlines()[-1] if cause.message else error.message.strip()
