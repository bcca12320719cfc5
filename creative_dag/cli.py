"""`creative-dag`: generate scenarios, materialise the graph, run the demo, query similar creatives."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from creative_dag.catalog import (
    CBR_CASE_BASE,
)
from creative_dag.process_gc import space_out_full_collections
from creative_dag.settings import HOME_ENV, LANDING_ENV, Locations, resolve_locations
from creative_dag.wording import count_of

if TYPE_CHECKING:  # the CLI starts without Dagster; the commands import it
    import dagster as dg

# 300 creatives keep `make demo` near 10-12 minutes on 2 CPU cores: OCR (~1 s per image, the creatives'
# and the element attribution's edited ones) is most of it.
DEMO_CREATIVES = 300
DEMO_DAYS = 120
DEMO_SEED = 7
DEMO_IMAGE_SIZE = 1080
DEMO_BATCH = "sample"  # the demo's batch of new candidates, generated with ground truth


def location_options(fn: Callable) -> Callable:
    """--home / --landing on every command that touches data, with env-var defaults."""

    @click.option("--home", type=click.Path(file_okay=False), default=None,
                  help=f"Warehouse folder (default ${HOME_ENV} or ./warehouse).")
    @click.option("--landing", type=click.Path(file_okay=False), default=None,
                  help=f"Input landing folder (default ${LANDING_ENV} or <home>/landing, the --home folder's).")
    @functools.wraps(fn)
    def wrapper(*args, home: str | None, landing: str | None, **kwargs):
        locations = resolve_locations(home, landing)
        # Export so that anything loading creative_dag.definitions (dagster dev, sensors) agrees.
        os.environ[HOME_ENV] = str(locations.home)
        os.environ[LANDING_ENV] = str(locations.landing)
        return fn(*args, locations=locations, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Creative Memory: a case-based memory of an advertiser's ad creatives, as a Dagster pipeline."""
    # At exit the interpreter's last garbage collection walks every object the command made (after a
    # materialisation ~1 million: torch, Dagster, pandas), ~3 s of a ~55 s daily run. Freezing them first
    # skips that walk; every atexit handler and module teardown still runs, and what stays uncollected
    # is memory the OS takes back. (Unregister first: tests invoke the group many times in one process.)
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    # Full collections while the libraries import and the models load: 12 -> 2-3 in a daily run (process_gc).
    space_out_full_collections()


@main.command()
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Landing folder to write.")
@click.option("--creatives", "n_creatives", type=click.IntRange(1, 200_000), default=100, show_default=True)
@click.option("--days", "n_days", type=click.IntRange(7, 3650), default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML or JSON file overriding the default scenario's effects, sizes and rates.")
@click.option("--image-size", type=click.IntRange(32, 4096), default=1080, show_default=True,
              help="Short side of rendered creatives in pixels.")
@click.option("--start-date", default="2026-03-01", show_default=True, help="First day of the simulated period.")
def generate(out: str, n_creatives: int, n_days: int, seed: int, scenario: str | None,
             image_size: int, start_date: str) -> None:
    """Write a synthetic landing folder (creatives, daily metrics, images) plus ground_truth.json."""
    from creative_dag.synth import generate_scenario

    started = time.perf_counter()
    try:
        summary = generate_scenario(out, n_creatives=n_creatives, n_days=n_days, seed=seed,
                                    scenario=scenario, image_size=image_size, start_date=start_date)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} in {time.perf_counter() - started:.1f}s")
    click.echo(json.dumps(summary, indent=2, default=str))


FORCE_OPTION = click.option("--force", is_flag=True, default=False,
                            help="Run even when nothing changed since the last successful run of this selection, "
                                 "and run the per-creative assets over every launch date (not only changed ones).")

LOG_LEVEL_OPTION = click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), default="INFO",
    show_default=True, help="Console log level of the runs (DEBUG prints every Dagster event; the run history keeps all).")


@main.command()
@click.option("--select", "select", multiple=True,
              help="Assets to run: a key (raw/creatives), group:marts, key:features/*+ ... (repeatable). "
                   "Default: the whole graph.")
@click.option("--launch-dates", default=None, metavar="START:END",
              help="Restrict per-creative (launch-date partitioned) assets to this range of launch dates.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML file of asset settings: asset key (marts/element_attribution) or op name -> its config "
                   "fields, e.g. `marts/element_attribution: {sample_size: 20}` (docs/operations.md).")
@FORCE_OPTION
@LOG_LEVEL_OPTION
@location_options
def materialize(select: tuple[str, ...], launch_dates: str | None, config_file: str | None, force: bool,
                log_level: str, locations: Locations) -> None:
    """Materialise the asset graph (or a selection) on the landing folder into the warehouse."""
    try:
        summary = _materialize(locations, select, launch_dates, log_level, force, _asset_config(config_file))
    except KeyboardInterrupt:
        _stopped()
    if not summary.success:
        sys.exit(1)


def _stopped() -> NoReturn:
    """Ctrl-C or SIGTERM that Dagster acted on itself: it failed the run (run_health.PoolWaitReporter stops
    the runs it does not: those exit from there, with the same code)."""
    click.echo("stopped (Ctrl-C or SIGTERM): the run was interrupted and is marked failed; tables it had not "
               "finished keep their previous version; run the same command again to finish", err=True)
    sys.exit(130)


@main.command()
@click.option("--interval", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds between looks at the landing folder.")
@click.option("--settle", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Seconds a change must stay unchanged before a run starts (an export still being copied "
                   "is not read half written).")
@click.option("--select", "select", multiple=True,
              help="Assets each run materialises (as for `materialize`). Default: the whole graph.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML file of asset settings, as for `materialize`.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None,
              help="Stop after this many runs (for scripts and benchmarks); exit 1 if any failed.")
@LOG_LEVEL_OPTION
@location_options
def watch(interval: float, settle: float, select: tuple[str, ...], config_file: str | None,
          max_runs: int | None, log_level: str, locations: Locations) -> None:
    """Keep one process running the daily path: materialise whenever the landing folder changes.

    Runs after the first skip the ~10 s of imports a fresh process pays (docs/operations.md,
    "One long-lived process"); the process stays resident between runs.
    """
    import signal

    from creative_dag.definitions import build_definitions
    from creative_dag.run_memo import code_fingerprint, run_fingerprint
    from creative_dag.stop_signals import StopSignals
    from creative_dag.watch import (
        WatchLock,
        resident_mb,
        warm_up,
        watch_landing,
    )

    # what no new export can fix is refused before anything runs (it would fail every run for ever)
    defs = build_definitions(locations.home, locations.landing)
    keys = _checked_selection(defs, select, _asset_config(config_file))
    if not any(defs.resolve_asset_graph().get(k).group_name == "ingest" for k in keys):
        click.echo("watch: this selection has no ingest asset: a new export starts a run, but the run reads the "
                   "warehouse as the last ingest left it (add --select group:ingest, or leave --select out)")
    lock = WatchLock(locations.state)
    try:
        lock.acquire()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    # A service manager's stop (SIGTERM) is Ctrl-C; both set here, since a process started in the background
    # by a shell inherits SIGINT ignored, and Dagster gives SIGTERM whatever SIGINT has after each run.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    stop_signals = StopSignals()
    code_at_start = code_fingerprint()

    def say(line: str) -> None:  # timestamped as Dagster's own lines are
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S %z')} watch: {line}")

    def one_run() -> bool | None:
        started = time.perf_counter()
        try:  # the --config file as it is now (an edit of it is a change the fingerprint sees)
            summary = _materialize(locations, select, None, log_level, False, _asset_config(config_file),
                                   stop_exit_code=0)  # a stop asked for is a clean end for a service manager
        except click.ClickException as exc:
            say(exc.format_message())
            return False
        except Exception:  # noqa: BLE001 - a service outlives one bad run; the traceback says what broke
            import traceback

            traceback.print_exc()
            return False
        if summary.unchanged:
            return None
        gc.collect()
        memory = resident_mb()
        say(f"run {'done' if summary.success else 'failed'} in {time.perf_counter() - started:.1f} s"
            + (f"; resident memory {memory:.0f} MB" if memory else ""))
        return summary.success

    def wait(seconds: float) -> bool:
        try:
            time.sleep(max(seconds, 0.0))
            return False
        except KeyboardInterrupt:
            return True

    click.echo(f"watching {locations.landing} every {interval:.0f} s for the warehouse {locations.database} "
               f"(pid {os.getpid()}; Ctrl-C or SIGTERM stops it)")
    try:
        imported, seconds = warm_up(os.environ.get("CREATIVE_DAG_OCR_BACKEND", "easyocr").strip().lower())
        say(f"imported {len(imported)} libraries the runs use in {seconds:.1f} s, once for every run")
        outcome = watch_landing(
            lambda: run_fingerprint(locations.landing, sorted(select), None,
                                    asset_config={"config_file": _file_stat(config_file)}),
            one_run, settle_s=settle, interval_s=interval, wait=wait, clock=time.monotonic,
            code_changed=lambda: code_fingerprint() != code_at_start, stop_requested=stop_signals.asked,
            report=say, max_runs=max_runs)
    except KeyboardInterrupt:  # a stop while importing, or one Dagster acted on in a run (the run is marked failed)
        say("stopped during a run (the run history marks it failed or canceled); the next run redoes what it did "
            "not finish")
        return
    finally:
        lock.release()
    if outcome.reason == "code changed":
        say("the package's source changed on disk (an upgrade?): restarting to run it")
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "creative_dag.cli", *sys.argv[1:]])
    why = "stopped" if outcome.reason == "stopped" else "stopped (--max-runs)"
    say(f"{why} after {count_of(outcome.runs, 'run')} ({outcome.failed} failed)")
    if outcome.failed and outcome.reason == "max runs":
        sys.exit(1)


def _checked_selection(defs: dg.Definitions, select: Sequence[str], asset_config: dict[str, dict]
                       ) -> list[dg.AssetKey]:
    """The asset keys of --select, with --config checked against them: either wrong stops the command (one
    line) before any run."""
    from creative_dag.runner import op_config_for, resolve_selection

    try:
        keys = resolve_selection(defs, list(select))
        op_config_for(list(defs.assets or []), asset_config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return keys


def _file_stat(path: str | None) -> str:
    """name:size:mtime of a file ('' for none): its edits are changes a watch sees."""
    if path is None:
        return ""
    try:
        stat = Path(path).stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _asset_config(path: str | None) -> dict[str, dict]:
    """The --config file: a mapping of asset key or op name -> mapping of config fields."""
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.ClickException(f"--config {path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
        raise click.ClickException(f"--config {path}: expected `asset_key: {{field: value, ...}}` entries, e.g. "
                                   "`marts/element_attribution: {sample_size: 20}`")
    return {str(k): v for k, v in loaded.items()}


def _materialize(locations: Locations, select: tuple[str, ...] | list[str], launch_dates: str | None,
                 log_level: str = "INFO", force: bool = False, asset_config: dict[str, dict] | None = None,
                 stop_exit_code: int | None = None):
    from dagster import DagsterInvalidConfigError

    from creative_dag.definitions import build_definitions
    from creative_dag.instance import get_instance
    from creative_dag.resources.warehouse import DuckDBWarehouse
    from creative_dag.run_memo import RunMemo, run_fingerprint
    from creative_dag.runner import RunSummary, materialize_selection

    if not locations.landing.is_dir():
        raise click.ClickException(
            f"landing folder {locations.landing} does not exist; pass --landing DIR, set {LANDING_ENV}, "
            f"or generate one with `creative-dag generate --out {locations.landing}`"
        )
    date_range = _launch_date_range(launch_dates) if launch_dates else None
    defs = build_definitions(locations.home, locations.landing)
    keys = _checked_selection(defs, select, asset_config or {})
    selection = [k.to_user_string() for k in keys]
    memo = RunMemo(locations.run_memo)
    fingerprint = run_fingerprint(locations.landing, selection, date_range, asset_config=asset_config)
    previous = memo.last_run(selection, fingerprint)
    if previous and not force and _tables_present(locations, keys):
        click.echo(f"nothing to do: the landing folder, code, settings and selection are those of the last "
                   f"successful run ({', '.join(previous)}); its tables are current (--force re-runs anyway)")
        return RunSummary(run_ids=previous, unchanged=True)
    instance = get_instance(locations)
    started = time.perf_counter()
    click.echo(f"materialising {count_of(len(keys), 'asset')}: landing {locations.landing} -> warehouse {locations.database}")
    try:
        summary = materialize_selection(defs, instance, DuckDBWarehouse(locations.database), keys, date_range,
                                        log_level=log_level, report=lambda line: click.echo(line, err=True),
                                        asset_config=asset_config, all_launch_dates=force,
                                        command=" ".join(["creative-dag", *sys.argv[1:]]),
                                        stop_exit_code=stop_exit_code)
    except ValueError as exc:  # a --launch-dates range holding no launch date
        raise click.ClickException(str(exc)) from exc
    except DagsterInvalidConfigError as exc:  # a --config field the asset does not have, or of the wrong type
        raise click.ClickException(f"--config: {exc}") from exc
    finally:  # its run-history connections closed: `creative-dag watch` calls this once per run in one process
        instance.dispose()
    if summary.success:
        memo.record(selection, fingerprint, summary.run_ids)
    else:
        memo.forget()
    elapsed = time.perf_counter() - started
    click.echo(f"materialised {count_of(len(summary.materialized), 'asset')} in {elapsed:.0f}s (runs {', '.join(summary.run_ids)})")
    for line in summary.failed_steps:
        click.echo(f"FAILED step   {line}", err=True)
    for line in summary.warned_checks:
        click.echo(f"WARNING check {line}", err=True)
    for line in summary.failed_checks:
        click.echo(f"FAILED check  (blocking: downstream assets were not materialised) {line}", err=True)
    if summary.skipped:
        click.echo(f"not materialised: {', '.join(summary.skipped)}", err=True)
    return summary


def _iso_date(value: str | None) -> str | None:
    """An --as-of value, checked: a date as YYYY-MM-DD (click names the option in the error)."""
    if value is not None:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a date as YYYY-MM-DD") from None
    return value


def _require_warehouse(locations: Locations) -> None:
    if not locations.database.exists():
        raise click.ClickException(f"no warehouse at {locations.database}; run `creative-dag demo` or "
                                   "`creative-dag materialize` first (or pass --home)")


def _launch_date_range(text: str) -> tuple[str, str]:
    """--launch-dates START:END (or one DATE) as ISO strings, checked before anything runs."""
    start, _, end = text.partition(":")
    end = end or start
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError:
        raise click.ClickException(f"--launch-dates {text!r}: expected START:END or one date, as YYYY-MM-DD "
                                   "(e.g. 2026-03-01:2026-03-31)") from None
    if first > last:
        raise click.ClickException(f"--launch-dates {text!r}: the start is after the end")
    return first.isoformat(), last.isoformat()


def _tables_present(locations: Locations, keys) -> bool:
    """Every selected table is in the warehouse (and the serving copy exists when selected)."""
    from creative_dag.resources.warehouse import DuckDBWarehouse

    present = set(DuckDBWarehouse(locations.database).tables())
    for key in keys:
        if key.path[-1].startswith("candidate_"):  # written per batch; a landing without batches has none
            continue
        if key.path == ["report", "html"]:
            if not (locations.home / "reports" / "creative_memory.html").exists():
                return False
        elif key.path[0] == "report":
            if not (locations.serving / "creative.duckdb").exists():
                return False
        elif ".".join(key.path) not in present:
            return False
    return True


@main.command()
@click.option("--creatives", "n_creatives", type=click.IntRange(10, 200_000), default=DEMO_CREATIVES, show_default=True)
@click.option("--days", "n_days", type=click.IntRange(14, 3650), default=DEMO_DAYS, show_default=True)
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True)
@click.option("--image-size", type=click.IntRange(64, 4096), default=DEMO_IMAGE_SIZE, show_default=True)
@FORCE_OPTION
@LOG_LEVEL_OPTION
@location_options
def demo(n_creatives: int, n_days: int, seed: int, image_size: int, force: bool, log_level: str,
         locations: Locations) -> None:
    """Generate the demo scenario (and a sample batch of new candidates) into the landing folder (once) and
    materialise every asset."""
    from creative_dag.synth import generate_scenario
    from creative_dag.synth.candidates import write_candidate_batch

    params = {"creatives": n_creatives, "days": n_days, "seed": seed, "image_size": image_size}
    marker = locations.landing / ".demo-params.json"
    if marker.exists() and json.loads(marker.read_text()) == params:
        click.echo(f"demo landing folder {locations.landing} is up to date")
    else:
        click.echo(f"generating demo scenario into {locations.landing} ({n_creatives} creatives x {n_days} days)")
        started = time.perf_counter()
        generate_scenario(locations.landing, n_creatives=n_creatives, n_days=n_days, seed=seed,
                          image_size=image_size)
        marker.write_text(json.dumps(params))
        click.echo(f"generated in {time.perf_counter() - started:.0f}s")
    batch = locations.landing / "candidates" / DEMO_BATCH
    if not batch.is_dir():
        write_candidate_batch(locations.landing, batch=DEMO_BATCH, seed=seed + 1000, image_size=image_size)
        click.echo(f"wrote a sample batch of new candidates (with ground truth) into {batch}")
    try:
        summary = _materialize(locations, (), None, log_level, force)
    except KeyboardInterrupt:
        _stopped()
    click.echo("")
    click.echo(f"landing folder : {locations.landing}")
    click.echo(f"warehouse      : {locations.database}")
    click.echo(f"serving copy   : {locations.serving} (BI tools open serving/creative.duckdb or its Parquet files)")
    click.echo(f"report         : {locations.home / 'reports' / 'creative_memory.html'} (open it in a browser; "
               "one file, works offline)")
    click.echo(f"run history    : {locations.dagster_home} (make dev opens the Dagster UI on it)")
    click.echo(f"candidates     : {locations.landing / 'candidates' / DEMO_BATCH} -> marts.candidate_assessment, "
               f"marts.candidate_pairs (or: creative-dag assess {locations.landing / 'candidates' / DEMO_BATCH})")
    _print_tables(locations)
    if not summary.success:
        sys.exit(1)


@main.command()
@click.argument("creative_id")
@click.option("--k", type=click.IntRange(1, 500), default=10, show_default=True, help="Neighbours to show.")
@click.option("--weights", default=None, metavar="BLOCK=W,...",
              help="Block weights, e.g. clip=1,cnn=0.5,context=0. Blocks not named keep their default weight; "
                   "0 switches a block off.")
@click.option("--as-of", "as_of", default=None, metavar="DATE", callback=lambda _c, _p, v: _iso_date(v),
              help="Only cases mature before this ISO date (default: the creative's launch date).")
@location_options
def similar(creative_id: str, k: int, weights: str | None, as_of: str | None, locations: Locations) -> None:
    """Print the as-of nearest past creatives of CREATIVE_ID with the per-block similarity breakdown."""
    from creative_dag.cbr.query import format_neighbors, similar_for_creative
    from creative_dag.resources.warehouse import DuckDBWarehouse

    _require_warehouse(locations)
    warehouse = DuckDBWarehouse(locations.database)
    try:
        neighbors = similar_for_creative(warehouse, creative_id, k=k, weights=weights, as_of=as_of)
    except KeyError as exc:  # the memory's message names the id, the case count and what to check
        raise click.ClickException(str(exc.args[0]) if exc.args else f"{creative_id!r} is not in cbr.case_base") from exc
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for note in neighbors.attrs.get("notes", []):
        click.echo(f"note: {note}", err=True)
    click.echo(format_neighbors(neighbors))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="IMAGE_OR_DIR...")
@click.option("--account", default=None, help="Account the candidates would run in (default: from candidates.csv).")
@click.option("--context", "context_pairs", multiple=True, metavar="KEY=VALUE",
              help="Prelaunch context of every candidate, e.g. --context placement=feed --context platform=meta.")
@click.option("--copy", "copy_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Ad copy: first line the headline, the rest the primary text.")
@click.option("--as-of", "as_of", default=None, metavar="DATE", callback=lambda _c, _p, v: _iso_date(v),
              help="Launch date to assess for; only what was known before it is used (default: the day after the "
                   "last metric date).")
@click.option("--batch", "batch_name", default="cli", show_default=True, help="Label of this batch in the output.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (candidates, pairs, similar cases, rules).")
@location_options
def assess(paths: tuple[str, ...], account: str | None, context_pairs: tuple[str, ...], copy_file: str | None,
           as_of: str | None, batch_name: str, as_json: bool, locations: Locations) -> None:
    """Assess new candidate images: forecast with interval, similar past creatives, repetition risk, DO/DON'T
    rules, pairwise verdicts with reasons and a final order. Reads the warehouse and writes no table (the
    candidates' embeddings are cached under <home>/cache, so a second assessment of an image loads no model)."""
    from creative_dag.candidates.assess import History
    from creative_dag.candidates.batch import (
        CANDIDATES_FILE,
        parse_context,
        read_batch_folder,
        read_candidates,
        read_copy,
    )
    from creative_dag.candidates.run import assess_batch, format_report, to_json
    from creative_dag.encoders.store import EmbeddingStore
    from creative_dag.resources.models import EncoderResource
    from creative_dag.resources.warehouse import DuckDBWarehouse

    try:
        defaults = parse_context(context_pairs)
        if account:
            defaults["account_id"] = account
        if copy_file:
            defaults.update(read_copy(copy_file))
        when = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if len(paths) == 1 and Path(paths[0]).is_dir() and (Path(paths[0]) / CANDIDATES_FILE).exists():
        batch = read_batch_folder(paths[0], defaults, batch=batch_name)
    else:
        batch = read_candidates(batch_name, paths, defaults)
    if batch.items.empty:
        for p in batch.problems.itertuples(index=False):
            click.echo(f"not assessed: {p.candidate}: {p.reason} ({p.detail})", err=True)
        raise click.ClickException("no readable candidate image among the paths given")
    _require_warehouse(locations)
    try:
        history = History.from_warehouse(DuckDBWarehouse(locations.database, read_only=True))
        settings = EncoderResource.from_locations(locations).settings()
        result = assess_batch(history, batch, settings, when, log=lambda m: click.echo(m, err=True),
                              store=EmbeddingStore(str(locations.embedding_store)))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(to_json(result), indent=1, default=str))
    else:
        click.echo(format_report(result))


@main.command("validate-attribution")
@click.option("--attribute", required=True, metavar="COLUMN[=VALUE]",
              help="Attribute whose creatives are boosted, e.g. face_present or dominant_hue_family=warm "
                   "(a column of the attribute frame: see docs/attributes.md).")
@click.option("--factors", default="1,2,5", show_default=True, help="Boost factors (× the KPI's mean).")
@click.option("--kpi", type=click.Choice(["ctr", "cvr", "roas"]), default="ctr", show_default=True)
@click.option("--similar", default=None, metavar="COLUMN[=VALUE]",
              help="A similar but different attribute whose creatives should barely move.")
@click.option("--blocks-only", is_flag=True, help="The model sees only the block vectors (the paper's setting).")
@click.option("--learner", default=None,
              help="Learner to validate (default: the forecast's, stacked; grouped_linear is marts.element_attribution's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@location_options
def validate_attribution(attribute: str, factors: str, kpi: str, similar: str | None, blocks_only: bool,
                         learner: str | None, as_json: bool, locations: Locations) -> None:
    """Boost the KPI of creatives with ATTRIBUTE, refit, and report the predicted uplift on held-out creatives
    with and without it (Dutt et al., Hypothesis A): the uplift should grow with the factor."""
    from creative_dag.assets.marts import attribute_frame_of
    from creative_dag.cbr.query import CaseMemory, index_dir_for
    from creative_dag.forecast.model import LEARNERS, ForecastConfig
    from creative_dag.forecast.validation import boosting_validation
    from creative_dag.resources.warehouse import DuckDBWarehouse

    if learner is not None and learner not in LEARNERS:
        raise click.BadParameter(f"--learner must be one of {', '.join(LEARNERS)}, got {learner!r}")
    try:
        factor_values = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"--factors must be numbers separated by commas, got {factors!r}") from exc
    warehouse = DuckDBWarehouse(locations.database)
    if not warehouse.exists(CBR_CASE_BASE):
        raise click.ClickException(f"no cbr.case_base in {locations.database}: run `creative-dag materialize` first")
    case_base = warehouse.read_table(CBR_CASE_BASE)
    memory = CaseMemory.open(case_base, index_dir_for(locations.database))
    try:
        table = boosting_validation(case_base, attribute_frame_of(warehouse), attribute, factor_values, kpi=kpi,
                                    similar=similar, memory=memory, blocks_only=blocks_only,
                                    config=ForecastConfig(learner=learner) if learner else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(table.to_json(orient="records", indent=1))
        return
    shown = table[["factor", "uplift_with", "uplift_with_ci_low", "uplift_with_ci_high", "uplift_without",
                   "uplift_similar", "n_with", "n_without", "n_similar"]]
    click.echo(f"{attribute} on {kpi} ({table['inputs'].iloc[0]}; {int(table['n_train'].iloc[0])} training "
               f"creatives, {int(table['n_train_with'].iloc[0])} with it); uplift = mean predicted change "
               "relative to the unboosted model\n")
    click.echo(shown.round(3).to_markdown(index=False))
    grows = bool((table["uplift_with"].diff().dropna() > 0).all())
    click.echo("\nthe uplift " + ("grows with the factor: the model learns the attribute" if grows
                                  else "does NOT grow with the factor: the inputs do not carry the attribute"))


@main.command()
@location_options
def tables(locations: Locations) -> None:
    """List the warehouse tables with their row counts."""
    _print_tables(locations)


def _print_tables(locations: Locations) -> None:
    from creative_dag.resources.warehouse import DuckDBWarehouse

    if not locations.database.exists():
        click.echo(f"no tables: no warehouse at {locations.database} yet (run `creative-dag demo` or "
                   "`creative-dag materialize`, or pass --home)")
        return
    warehouse = DuckDBWarehouse(locations.database)
    names = warehouse.tables()
    if not names:
        click.echo(f"no tables in {locations.database} yet")
        return
    click.echo("tables:")
    for name in names:
        count = warehouse.query(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0]
        click.echo(f"  {name:<36} {count:>9,} rows")


@main.command()
@location_options
def assets(locations: Locations) -> None:
    """List the asset keys in the order a run materialises them, each with its group (for --select)."""
    from creative_dag.definitions import build_definitions

    graph = build_definitions(locations.home, locations.landing).resolve_asset_graph()
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        name = getattr(node.partitions_def, "name", None)
        partitioned = f" (partitioned by {name})" if name else ""
        click.echo(f"{node.group_name:<10} {key.to_user_string()}{partitioned}")


@main.command()
@click.option("--reap", is_flag=True, help="Mark runs whose process is gone as failed and free their pool slots.")
@click.option("--fail", "fail_ids", multiple=True, metavar="RUN_ID",
              help="Mark this in-progress run failed and free its pool slots (for a run whose process cannot be "
                   "checked, e.g. started on another machine). Repeatable.")
@location_options
def runs(reap: bool, fail_ids: tuple[str, ...], locations: Locations) -> None:
    """In-progress runs, the process behind each, and who holds the warehouse pool."""
    from creative_dag.instance import get_instance
    from creative_dag.run_health import (
        describe_live_runs,
        fail_run,
        pool_holders,
        reap_dead_runs,
    )

    if not locations.dagster_home.exists():  # a mistyped --home must not get a Dagster instance made for it
        click.echo(f"no runs: no Dagster instance under {locations.home} (nothing has run there; check --home)")
        return
    instance = get_instance(locations)
    for run_id in fail_ids:
        try:
            click.echo(fail_run(instance, run_id))
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    if reap:
        for line in reap_dead_runs(instance) or ["no run of a dead process found"]:
            click.echo(line)
    for line in describe_live_runs(instance) or ["no run in progress"]:
        click.echo(line)
    holders = pool_holders(instance)
    click.echo(f"warehouse pool held by: {'; '.join(holders) if holders else 'nobody'}")


@main.command()
@click.option("--port", type=int, default=3000, show_default=True)
@location_options
def dev(port: int, locations: Locations) -> None:
    """Open the Dagster UI (dagster dev) on this warehouse's run history."""
    from creative_dag.instance import prepare_dagster_home

    prepare_dagster_home(locations)
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    # this interpreter's Dagster, whether or not the virtualenv's bin is on PATH (`.venv/bin/creative-dag dev`
    # failed with "No such file or directory: 'dagster'"); PATH gains that bin for what Dagster starts by name
    command = [sys.executable, "-m", "dagster", "dev", "-p", str(port)]
    command += ["-w", str(workspace)] if workspace.exists() else ["-m", "creative_dag.definitions"]
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    click.echo(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev -p {port}")
    import signal

    # dagster dev stops on SIGTERM by giving it SIGINT's handler: a SIGINT ignored here (a shell's background job,
    # a CI runner) would be ignored in it too, and so would the SIGTERM. Its children get SIGINT's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(command, env=env)
    # a SIGTERM (kill, a service manager) to this wrapper reaches `dagster dev`, which stops its webserver,
    # daemon and code servers; they outlived the wrapper (Ctrl-C reaches them all through the terminal)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, lambda signum, _frame: process.send_signal(signum))
    while True:
        try:
            raise SystemExit(process.wait())
        except KeyboardInterrupt:
            continue  # dagster dev got the Ctrl-C too: wait for it to shut down


def _register_commands() -> None:
    """Commands that live beside what they run (imported lazily: the CLI starts without pandas)."""
    from creative_dag.imports.command import import_export

    main.add_command(import_export)


_register_commands()

if __name__ == "__main__":
    main()
