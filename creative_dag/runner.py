"""Materialise a selection of the asset graph in-process, the way the CLI and the demo do.

Ingest runs first, because the launch dates it lands become the `launch_date` partitions
that per-creative assets are keyed by. Then what the per-creative assets read (the features)
runs, so that the launch dates whose encoder inputs changed since they were encoded can be
told; everything else then runs in one run over those dates only (the encoders' single-run
backfill policy makes that one step per asset, with models loaded once). A day's export thus
re-publishes and records its new launch dates, not every one since the first.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg

from creative_dag.candidates.batch import (
    CANDIDATES_DIR,
    batch_folders,
    valid_batch_name,
)
from creative_dag.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    candidate_batch_partitions,
    launch_date_partitions,
    unregistered_launch_dates,
)
from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.run_health import (
    INVOCATION_TAG,
    PoolWaitReporter,
    process_tags,
    reap_dead_runs,
)
from creative_dag.stop_signals import StopSignals

_log = logging.getLogger("creative_dag.runner")
COMMAND_TAG = "creative_dag/command"  # the command line behind a CLI run, for the UI's Runs page
COMMAND_TAG_CHARS = 250



@dataclass
class RunSummary:
    """What a materialisation did, for the CLI to print and tests to assert on."""

    run_ids: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warned_checks: list[str] = field(default_factory=list)  # non-blocking checks that did not pass
    skipped: list[str] = field(default_factory=list)
    launch_dates_added: int = 0
    unchanged: bool = False  # nothing ran: the last successful run's inputs, code and settings (CLI run memo)

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
            # A multi-asset (e.g. the landscape and its cluster summary) is run whole.
            selection = _parse_selection(text).required_multi_asset_neighbors()
            try:
                keys = selection.resolve(graph)
            except dg.DagsterInvalidSubsetError:
                keys = set()  # a key that is not in the graph (a typo): said below, without Dagster's traceback
            if not keys:
                names = sorted(k.to_user_string() for k in all_keys)
                close = difflib.get_close_matches(text, names, n=3, cutoff=0.85)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise ValueError(f"selection {text!r} matches no asset; {hint}see `creative-dag assets` for the keys")
            chosen |= keys
    return [k for k in graph.toposorted_asset_keys if k in chosen]


def _parse_selection(text: str) -> dg.AssetSelection:
    if ":" in text or "*" in text or "+" in text or " " in text:
        # Dagster's own parser passes a beta parameter for `group:` terms
        with warnings.catch_warnings(action="ignore", category=dg.BetaWarning):
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
                          log_level: str = "INFO", report: Callable[[str], None] | None = None,
                          asset_config: Mapping[str, Mapping[str, Any]] | None = None,
                          all_launch_dates: bool = False, command: str | None = None,
                          stop_exit_code: int | None = None) -> RunSummary:
    """Run `keys` (topologically ordered) in at most three runs: ingest, what the per-creative
    assets read, then the rest.

    launch_date_range: the per-creative assets' dates; None = from the first launch date whose
    encoder inputs changed since it was encoded to the last such date (none changed: those assets
    are not run), or every registered date with `all_launch_dates`.

    asset_config: asset key ("marts/element_attribution") or op name ("prelaunch_forecast") -> that
    asset's config fields (the `ops.<op>.config` of Dagster's run config), applied in the run that
    materialises it. A name that matches no asset raises ValueError.

    log_level: what the console shows (the run's event log keeps everything). At DEBUG
    Dagster prints every event, one line per asset partition and step: thousands on the demo.
    report: where operational notes go (runs of killed processes marked failed, a step waiting
    for the warehouse pool and for whom); default: this module's logger at INFO.
    command: the command line that started the runs, as the tag `creative_dag/command` (the UI's Runs
    page lists CLI runs as `__ephemeral_asset_job__`, three per command, with nothing else to tell them by).
    stop_exit_code: the exit code when Ctrl-C or SIGTERM stops a run (run_health.PoolWaitReporter); default
    130 / 143 (`creative-dag watch` exits 0 on any stop asked for).
    """
    report = report or _log.info
    summary = RunSummary()
    run = partial(_run, stop_exit_code=stop_exit_code)
    # A killed earlier run would hold the warehouse pool's only slot forever: release it first.
    for line in reap_dead_runs(instance):
        report(line)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}}
    ops_config = op_config_for(list(defs.assets or []), asset_config or {})
    tags = {**process_tags(), INVOCATION_TAG: uuid.uuid4().hex,
            **({COMMAND_TAG: command[:COMMAND_TAG_CHARS]} if command else {})}
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    ingest_keys = [k for k in keys if graph.get(k).group_name == "ingest"]
    candidate_keys = [k for k in keys if graph.get(k).partitions_def == candidate_batch_partitions]
    other_keys = [k for k in keys if k not in ingest_keys and k not in candidate_keys]
    # The report group (the serving copy, the page) publishes and shows the candidate tables too: with
    # batches to assess it runs after them, or BI tools would see this run's verdicts only after the next.
    batches = _candidate_batch_folders(defs) if candidate_keys else []
    last_keys = [k for k in other_keys if graph.get(k).group_name == "report"] if batches else []
    other_keys = [k for k in other_keys if k not in last_keys]
    if ingest_keys:
        run(assets, defs, instance, ingest_keys, tags, _with_ops(run_config, ops_config, assets, ingest_keys),
            summary, report)
        if not summary.success:
            summary.skipped += [k.to_user_string() for k in other_keys]
            return summary
    summary.launch_dates_added = register_launch_dates(instance, warehouse)
    partitioned = [k for k in other_keys if graph.get(k).partitions_def is not None]
    registered = instance.get_dynamic_partitions(launch_date_partitions.name)
    if launch_date_range is not None:
        if not partitioned:
            report("--launch-dates restricts the per-creative (launch-date partitioned) assets; this selection has "
                   "none, so it changes nothing")
        launch_date_range = snap_launch_dates(launch_date_range, registered)
    if partitioned and launch_date_range is None and registered and not all_launch_dates:
        upstream = [k for k in dg.AssetSelection.assets(*partitioned).upstream().resolve(graph)
                    if k in other_keys and k not in partitioned]
        if upstream:
            run(assets, defs, instance, upstream, tags, _with_ops(run_config, ops_config, assets, upstream),
                summary, report)
            if not summary.success:
                summary.skipped += [k.to_user_string() for k in other_keys if k not in upstream]
                return summary
            other_keys = [k for k in other_keys if k not in upstream]
        changed = _changed_launch_dates(defs, partitioned, registered)
        if changed is None:
            launch_date_range = (registered[0], registered[-1])
        elif changed:
            launch_date_range = (changed[0], changed[-1])
            report(f"launch dates {changed[0]}..{changed[-1]} changed since they were encoded "
                   f"({len(changed)} of {len(registered)}): the per-creative assets run over those")
        else:
            other_keys = [k for k in other_keys if k not in partitioned]
            report(f"no launch date's encoder inputs changed since it was encoded: {len(partitioned)} per-creative "
                   "asset(s) not run (--force runs them over every launch date)")
    if other_keys:
        if any(graph.get(k).partitions_def is not None for k in other_keys):
            if launch_date_range is None and registered:
                launch_date_range = (registered[0], registered[-1])
            if launch_date_range is None:
                # No creative has landed (empty export, or every row quarantined): there is nothing
                # to embed, and the whole-history tables still run and say so.
                partitioned = [k for k in other_keys if graph.get(k).partitions_def is not None]
                other_keys = [k for k in other_keys if k not in partitioned]
                report(f"no launch dates registered (raw.creatives is empty?): {len(partitioned)} per-creative "
                       "asset(s) have nothing to process and were not run; see raw.quarantine for rejected rows")
            else:
                tags = {**tags, RANGE_START_TAG: launch_date_range[0], RANGE_END_TAG: launch_date_range[1]}
        if other_keys:
            run(assets, defs, instance, other_keys, tags, _with_ops(run_config, ops_config, assets, other_keys),
                summary, report)
    memory_ok = summary.success
    if candidate_keys and memory_ok:
        _run_candidate_batches(run, assets, defs, instance, candidate_keys, batches, tags,
                               _with_ops(run_config, ops_config, assets, candidate_keys), summary, report)
    if last_keys and memory_ok:  # a failed candidate batch still gets the memory's tables published
        run(assets, defs, instance, last_keys, _without_range(tags),
            _with_ops(run_config, ops_config, assets, last_keys), summary, report)
    elif last_keys:
        summary.skipped += [k.to_user_string() for k in last_keys]
    return summary


def _candidate_batch_folders(defs: dg.Definitions) -> list[Path]:
    """The valid candidate batch folders under the landing folder (each a `candidate_batch` partition)."""
    landing = Path(defs.resources["landing"].root)
    return [f for f in batch_folders(landing) if valid_batch_name(f.name)]


def snap_launch_dates(date_range: tuple[str, str], registered: Sequence[str]) -> tuple[str, str]:
    """The first and last launch date (partition) inside an ISO `date_range`: a range may start or end on a day
    without launches (Dagster wants existing partition keys). ValueError when it holds none."""
    inside = sorted(d for d in registered if date_range[0] <= d <= date_range[1])
    if not inside:
        known = f"launch dates run from {min(registered)} to {max(registered)}" if registered else \
            "no launch date is registered yet (materialise raw/creatives first)"
        raise ValueError(f"--launch-dates {date_range[0]}:{date_range[1]} holds no launch date; {known}")
    return inside[0], inside[-1]


def _changed_launch_dates(defs: dg.Definitions, partitioned: Sequence[dg.AssetKey],
                          registered: Sequence[str]) -> list[str] | None:
    """ISO launch dates an encoder among `partitioned` would encode again; None when every date must
    run: a per-creative asset that is not an encoder, resources that are not the project's, or an
    encoder whose warehouse table is gone (the store still has its rows: they are published again)."""
    from creative_dag.assets.encoders import changed_launch_dates
    from creative_dag.blocks import BLOCK_SPECS

    blocks = [k.path[-1] for k in partitioned if len(k.path) == 2 and k.path[0] == "embeddings"]
    resources = defs.resources or {}
    if len(blocks) != len(partitioned) or not set(blocks) <= set(BLOCK_SPECS) or \
            not {"warehouse", "embedding_store", "encoders"} <= set(resources):
        return None
    if not all(resources["warehouse"].exists(f"embeddings.{b}") for b in blocks):
        return None
    dates = [dt.date.fromisoformat(d) for d in registered]
    changed = changed_launch_dates(blocks, dates, resources["warehouse"], resources["embedding_store"].get(),
                                   resources["encoders"].settings())
    return [d.isoformat() for d in changed]


def _run_candidate_batches(run: Callable[..., None], assets: list, defs: dg.Definitions, instance: dg.DagsterInstance,
                           keys: Sequence[dg.AssetKey], folders: Sequence[Path], tags: dict[str, str],
                           run_config: dict, summary: RunSummary, report: Callable[[str], None]) -> None:
    """One run per candidate batch folder (`_candidate_batch_folders`; each its own `candidate_batch` partition)."""
    if not folders:
        landing = Path(defs.resources["landing"].root)
        report(f"no candidate batch under {landing / CANDIDATES_DIR}: {len(keys)} candidate asset(s) not run")
        return
    known = set(instance.get_dynamic_partitions(candidate_batch_partitions.name))
    new = [f.name for f in folders if f.name not in known]
    if new:
        instance.add_dynamic_partitions(candidate_batch_partitions.name, new)
    for folder in folders:
        run(assets, defs, instance, keys, _without_range(tags), run_config, summary, report,
            partition_key=folder.name)


def _without_range(tags: dict[str, str]) -> dict[str, str]:
    """The run tags less the launch-date range of the run before (a run after it targets no such range)."""
    return {k: v for k, v in tags.items() if k not in (RANGE_START_TAG, RANGE_END_TAG)}


def op_config_for(assets: Sequence[Any], asset_config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Op name -> config from a mapping keyed by asset key or op name (see materialize_selection)."""
    names: dict[str, str] = {}
    fields_of: dict[str, list[str]] = {}  # op -> its settings (ops with none are left out)
    for a in assets:
        if isinstance(a, dg.AssetsDefinition):
            names[a.node_def.name] = a.node_def.name
            names.update({k.to_user_string(): a.node_def.name for k in a.keys})
            schema = a.node_def.config_schema
            # an op declared without config has Dagster's permissive "Any" schema; one with an empty Config
            # class (the ingest's) a shape of no field
            config_type = schema.config_type if schema is not None else None
            if config_type is not None and config_type.kind.name != "ANY" and getattr(config_type, "fields", None):
                fields_of[a.node_def.name] = sorted(config_type.fields)
    settable = set(fields_of)
    with_settings = sorted(n for n, op in names.items() if "/" in n and op in settable)
    for key in asset_config:
        if key not in names:
            close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.8)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"--config entry {key!r}: no such asset or op; {hint}assets with settings: "
                             f"{', '.join(with_settings)}")
        if names[key] not in settable and asset_config[key]:
            # Dagster would accept and ignore any field here: say so instead of running without it
            raise ValueError(f"--config entry {key!r}: this asset has no settings, so its fields "
                             f"{', '.join(sorted(asset_config[key]))} would do nothing; assets with settings: "
                             f"{', '.join(with_settings)}")
        for field_name in asset_config[key] or {}:
            if names[key] in settable and field_name not in fields_of[names[key]]:
                close = difflib.get_close_matches(str(field_name), fields_of[names[key]], n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"--config entry {key!r}: no setting {field_name!r}; {hint}its settings: "
                                 f"{', '.join(fields_of[names[key]])}")
    return {names[k]: dict(v) for k, v in asset_config.items()}


def _with_ops(run_config: dict, ops_config: Mapping[str, dict], assets: Sequence[Any],
              keys: Sequence[dg.AssetKey]) -> dict:
    """run_config plus the config of the ops this run materialises (Dagster rejects config for any other)."""
    wanted = set(keys)
    ops = {a.node_def.name for a in assets if isinstance(a, dg.AssetsDefinition) and set(a.keys) & wanted}
    chosen = {op: {"config": cfg} for op, cfg in ops_config.items() if op in ops}
    return {**run_config, "ops": chosen} if chosen else run_config


def _run(assets: list, defs: dg.Definitions, instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey],
         tags: dict[str, str], run_config: dict, summary: RunSummary, report: Callable[[str], None],
         partition_key: str | None = None, stop_exit_code: int | None = None) -> None:
    from dagster._core.errors import DagsterExecutionInterruptedError

    done_event = threading.Event()
    # Ctrl-C / SIGTERM stop the run even where Dagster retries the step it interrupts (stop_signals.py);
    # signal handling belongs to the main thread, so a run started elsewhere (a test's thread) does without
    stops = StopSignals() if threading.current_thread() is threading.main_thread() else None
    watcher = threading.Thread(target=PoolWaitReporter(instance, tags[INVOCATION_TAG], report,
                                                       stop_signals=stops, stop_exit_code=stop_exit_code).run_until,
                               args=(done_event.is_set,), daemon=True, name="pool-wait-reporter")
    watcher.start()
    try:
        result = dg.materialize(
            assets,
            instance=instance,
            resources=defs.resources,
            selection=list(keys),
            tags=tags,
            run_config=run_config,
            partition_key=partition_key,
            raise_on_error=False,
        )
    except DagsterExecutionInterruptedError as exc:  # Dagster stopped the run itself (and marked it failed)
        raise KeyboardInterrupt from exc
    finally:
        done_event.set()
        if stops is not None:
            stops.wake()
            watcher.join(timeout=10)
            stop_asked = stops.asked()
            stops.close()
    if stops is not None and stop_asked:
        # Dagster ended the run on the signal (it failed the step it interrupted): the command stops too
        raise KeyboardInterrupt
    summary.run_ids.append(result.run_id)
    done = {e.asset_key for e in result.get_asset_materialization_events()}
    summary.materialized += sorted({k.to_user_string() for k in done})
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            summary.failed_steps.append(f"{event.step_key}: {_failure_message(event)}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation.passed:
                continue
            # What did not pass and why, as the check says it: the console is where a CLI user looks first.
            line = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}: " \
                   f"{evaluation.description or 'did not pass'}"
            blocking = evaluation.severity == dg.AssetCheckSeverity.ERROR
            (summary.failed_checks if blocking else summary.warned_checks).append(line)
    failed_prefixes = {s.split(":")[0] for s in summary.failed_steps}
    summary.skipped += [
        k.to_user_string() for k in keys
        if k not in done and not any(k.to_python_identifier() in p for p in failed_prefixes)
    ]


def _failure_message(event: dg.DagsterEvent) -> str:
    """The message of the exception the step's own code raised (Dagster wraps it; that exception
    may in turn wrap a library error, whose text names no file or fix, so it is not the one shown)."""
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return "failed"
    chain = []
    cause = error
    while cause is not None:
        chain.append(cause)
        cause = getattr(cause, "cause", None)
    own = next((e for e in chain if not (e.cls_name or "").startswith("Dagster")), chain[-1])
    text = " ".join((own.message or "").split())  # "ClassName: message", on one line
    return text[:1000] or "failed"
