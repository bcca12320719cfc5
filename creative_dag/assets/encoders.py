"""Encoder stage: `embeddings.clip`, `.cnn`, `.visual`, `.layout`, `.text` and `embeddings.model_status`.

Each block asset is partitioned by launch date (single-run backfills: models loaded once per run)
and processes the creatives launched on `context.partition_keys`, with decision-time inputs only
(images from raw.images, creative list and ad copy from features.prelaunch). It runs in two steps:
`encode_<block>` computes, holding no warehouse lock, and writes one Parquet file per launch date
to the embedding store (creative_dag/encoders/store.py); `publish_<block>`, in the `warehouse`
pool, copies those dates' rows into `embeddings.<block>` and the failed images into raw.quarantine.
Each launch date's materialisation reports its own row count.

A model that cannot load makes its block unavailable: no rows for those dates, a warning, and
metadata saying why; the asset still succeeds (and the `embedded_every_creative` check warns).
The failure is remembered for `model_retry_after_s`, so a missing hub download is not retried on
every run, and `embeddings.model_status` reports what the encode steps recorded instead of loading
every model again. The compute lives in `creative_dag.encoders`; these are thin wrappers.
"""

import datetime as dt
import inspect
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from creative_dag.assets.metadata import (
    counts_markdown,
    markdown_preview,
    table_metadata,
)
from creative_dag.blocks import BLOCK_SPECS, EMBEDDING_BLOCKS, LAYOUT, TEXT_INPUT
from creative_dag.catalog import (
    EMBEDDING_KEYS,
    EMBEDDINGS_MODEL_STATUS,
    FEATURES_PRELAUNCH,
    RAW_IMAGES,
    RAW_QUARANTINE,
    embedding_table,
)
from creative_dag.encoders.store import EmbeddingStore
from creative_dag.partitions import launch_date_partitions
from creative_dag.resources.embedding_store import EmbeddingStoreResource
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.models import (
    EncoderResource,
    EncoderSettings,
    LoadedModels,
    block_fingerprint,
    block_model_id,
    load_with,
)
from creative_dag.resources.warehouse import WarehouseResource
from creative_dag.wording import count_of

# Single-run backfills are what make "models loaded once per backfill" true; Dagster still marks
# the parameter beta, and repeating that on every definitions load only buries real warnings.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "encoders"


def partition_dates(keys: Sequence[str]) -> list[dt.date]:
    """Partition keys (ISO dates) -> dates; a malformed key is an error naming it."""
    dates = []
    for key in keys:
        try:
            dates.append(dt.date.fromisoformat(str(key)))
        except ValueError as exc:
            raise ValueError(f"launch_date partition key {key!r} is not an ISO date (YYYY-MM-DD)") from exc
    return dates


def load_image_items(warehouse: WarehouseResource, dates: Sequence[dt.date]) -> pd.DataFrame:
    """Creatives launched on `dates` whose image decoded at ingest: creative_id, launch_date, image_path, sha256."""
    if not dates:
        return pd.DataFrame(columns=["creative_id", "launch_date", "image_path", "sha256"])
    return warehouse.query(
        """
        SELECT p.creative_id, CAST(p.launch_date AS DATE) AS launch_date, i.image_path, i.sha256
        FROM features.prelaunch p JOIN raw.images i ON i.creative_id = p.creative_id
        WHERE i.decode_status = 'ok' AND i.sha256 IS NOT NULL
          AND CAST(p.launch_date AS DATE) IN (SELECT UNNEST(CAST(? AS DATE[])))
        ORDER BY p.launch_date, p.creative_id
        """,
        [[d.isoformat() for d in dates]],
    )


def load_text_items(warehouse: WarehouseResource, dates: Sequence[dt.date]) -> pd.DataFrame:
    """Creatives launched on `dates` with their ad text: headline + primary text + OCR text (when read)."""
    from creative_dag.encoders.text import compose_ad_text

    columns = ["creative_id", "sha256", "launch_date", "text"]
    if not dates:
        return pd.DataFrame(columns=columns)
    prelaunch_cols = set(warehouse.query("SELECT * FROM features.prelaunch LIMIT 0").columns)
    headline = "p.headline" if "headline" in prelaunch_cols else "NULL"
    primary = "p.primary_text" if "primary_text" in prelaunch_cols else "NULL"
    has_images = warehouse.exists(RAW_IMAGES)
    # an unavailable layout block leaves a bare table without OCR columns: then there is no OCR text
    has_layout = "ocr_text" in existing_types(warehouse, embedding_table(LAYOUT))
    frame = warehouse.query(
        f"""
        SELECT p.creative_id, CAST(p.launch_date AS DATE) AS launch_date,
               {"i.sha256" if has_images else "NULL"} AS sha256,
               {headline} AS headline, {primary} AS primary_text,
               {"l.ocr_text" if has_layout else "NULL"} AS ocr_text
        FROM features.prelaunch p
        {"LEFT JOIN raw.images i ON i.creative_id = p.creative_id" if has_images else ""}
        {f"LEFT JOIN {embedding_table(LAYOUT)} l ON l.creative_id = p.creative_id" if has_layout else ""}
        WHERE CAST(p.launch_date AS DATE) IN (SELECT UNNEST(CAST(? AS DATE[])))
        ORDER BY p.launch_date, p.creative_id
        """,
        [[d.isoformat() for d in dates]],
    )
    frame["text"] = [compose_ad_text(h, p, o) for h, p, o in
                     zip(frame["headline"], frame["primary_text"], frame["ocr_text"])]
    return frame[columns]


def existing_types(warehouse: WarehouseResource, table: str) -> dict[str, str]:
    """column -> DuckDB type of an existing table ({} when it does not exist)."""
    schema, name = table.split(".")
    with warehouse.reading() as db:
        if not db.exists(table):
            return {}
        rows = db.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        )
    return dict(zip(rows["column_name"], rows["data_type"]))


def write_block_rows(warehouse: WarehouseResource, block: str, frame: pd.DataFrame,
                     dates: Sequence[dt.date], numeric_columns: Sequence[str] = ()) -> int:
    """Replace the rows of `dates` in embeddings.<block> with `frame` (typed so the schema is stable)."""
    from creative_dag.encoders.pipeline import stabilise_types

    table = embedding_table(block)
    types = existing_types(warehouse, table)
    frame = stabilise_types(frame, types, numeric_columns)
    if types:
        # a new attribute column (or the first rows after an unavailable run created the bare
        # table) is added in place, so earlier partitions keep their rows
        for column in [c for c in frame.columns if c not in types]:
            warehouse.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {duckdb_type(frame[column])}')
    return warehouse.replace_rows(table, frame, "launch_date", list(dates))


def duckdb_type(series: pd.Series) -> str:
    """The DuckDB column type for a pandas column (numbers, bools, strings, lists of them)."""
    import pyarrow as pa

    if isinstance(series.dtype, pd.ArrowDtype):
        arrow = series.dtype.pyarrow_dtype
        if pa.types.is_list(arrow):
            inner = arrow.value_type
            return "FLOAT[]" if pa.types.is_float32(inner) else (
                "VARCHAR[]" if pa.types.is_string(inner) else "DOUBLE[]")
        if pa.types.is_date(arrow):
            return "DATE"
    if pd.api.types.is_bool_dtype(series.dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series.dtype):
        return "DOUBLE"
    sample = next((v for v in series if v is not None and v is not pd.NA and not (isinstance(v, float) and pd.isna(v))),
                  None)
    if isinstance(sample, (list, tuple)) or hasattr(sample, "__array__"):
        first = next(iter(sample), None) if len(sample) else None
        return "VARCHAR[]" if isinstance(first, str) else "DOUBLE[]"
    if isinstance(sample, bool):
        return "BOOLEAN"
    if isinstance(sample, int):
        return "BIGINT"
    if isinstance(sample, float):
        return "DOUBLE"
    return "VARCHAR"


def write_quarantine(warehouse: WarehouseResource, block: str, quarantine: pd.DataFrame,
                     creative_ids: Sequence[str]) -> int:
    """Replace this block's quarantine rows for `creative_ids` (keys 'embeddings.<block>:<id>')."""
    from creative_dag.encoders.pipeline import quarantine_key

    if quarantine.empty and not warehouse.exists(RAW_QUARANTINE):
        return 0
    keys = [quarantine_key(block, c) for c in creative_ids]
    return warehouse.replace_rows(RAW_QUARANTINE, quarantine, "key", keys)


# ----------------------------------------------------------------------------- compute (no pool)
def load_encoder(block: str, settings: EncoderSettings, store: EmbeddingStore,
                 models: LoadedModels | None = None) -> Any:
    """Load a block's model (or take the run's, `models`), recording the outcome in the store; a load
    that failed with the same settings less than `model_retry_after_s` ago is not tried again (a hub
    download with no network costs seconds per attempt, on every run). Raises ModelUnavailable."""
    from creative_dag.encoders.base import ModelUnavailable, resolve_device
    from creative_dag.encoders.status import BlockStatus, encoder_status

    fingerprint = block_fingerprint(block, settings)
    recorded = failed_load(block, settings, store)
    retry_at = remembered_until(recorded, settings) if recorded else None
    if retry_at is not None:
        raise ModelUnavailable(f"{recorded['reason']} (failed at {recorded['checked_at']}; not retried before "
                               f"{retry_at.isoformat()}: set encoders.model_retry_after_s=0 to retry now)")
    try:
        encoder = load_with(models, block, settings)
    except ModelUnavailable as exc:
        status = BlockStatus.unavailable(block, block_model_id(block, settings), exc.reason,
                                         device=resolve_device(settings.device))
        store.write_status(block, status_record(status, fingerprint))
        raise
    store.write_status(block, status_record(encoder_status(encoder), fingerprint))
    return encoder


def failed_load(block: str, settings: EncoderSettings, store: EmbeddingStore) -> dict[str, Any] | None:
    """The block's recorded status when its last model load with these settings failed, else None."""
    recorded = store.read_status(block)
    if not recorded or recorded.get("fingerprint") != block_fingerprint(block, settings) or recorded.get("available"):
        return None
    return recorded


def remembered_until(failure: Mapping[str, Any], settings: EncoderSettings) -> pd.Timestamp | None:
    """While a failed load (`failed_load`) is less than `model_retry_after_s` old: the time from which
    it is tried again; else None."""
    retry_at = pd.Timestamp(failure["checked_at"]) + pd.Timedelta(seconds=settings.model_retry_after_s)
    return retry_at if pd.Timestamp.now(tz="UTC") < retry_at else None


def would_load(block: str, settings: EncoderSettings, store: EmbeddingStore) -> bool:
    """Whether the block's encode step would get its model. A failure with these settings is
    remembered for `model_retry_after_s`; once that has passed the load is tried here (a failure is
    remembered again, so the step does not try a second time). Daily runs come further apart than
    the retry time: without this, a block that never loads (CLIP offline) has encoded no launch date
    and would make every date look changed on every run."""
    from creative_dag.encoders.base import ModelUnavailable

    if failed_load(block, settings, store) is None:
        return True
    try:
        load_encoder(block, settings, store)  # raises without trying while the failure is remembered
    except ModelUnavailable:
        return False
    return True


def status_record(status: Any, fingerprint: str) -> dict[str, Any]:
    return {**status.as_row(), "fingerprint": fingerprint, "checked_at": pd.Timestamp.now(tz="UTC").isoformat()}


def input_fingerprints(items: pd.DataFrame, key_column: str, settings_fingerprint: str) -> dict[dt.date, str]:
    """Per launch date, a hash of what a block would encode (creative ids and image/text hashes) and of
    the block's settings: equal to the stored one means that date's rows would come out the same."""
    from creative_dag.encoders.base import settings_hash

    found = {}
    for day, group in items.groupby(items["launch_date"].map(lambda v: pd.Timestamp(v).date()), sort=True):
        pairs = sorted(zip(group["creative_id"].astype(str), group[key_column].astype(str)))
        found[day] = settings_hash(settings_fingerprint, pairs)
    return found


def launch_date_inputs(block: str, dates: Sequence[dt.date], warehouse: WarehouseResource,
                       settings: EncoderSettings) -> tuple[pd.DataFrame, dict[dt.date, str]]:
    """What the block would encode for `dates` (one row per creative) and each date's input fingerprint."""
    spec = BLOCK_SPECS[block]
    if spec.reads == TEXT_INPUT:
        from creative_dag.encoders.base import text_sha256

        with warehouse.reading() as db:
            items = load_text_items(db, dates)
        items["text_sha256"] = [text_sha256(str(t or "")) for t in items["text"]]
    else:
        items = load_image_items(warehouse, dates)
    fingerprints = input_fingerprints(items, spec.key_column, block_fingerprint(block, settings))
    fingerprints.update({d: "no-creatives" for d in dates if d not in fingerprints})
    return items, fingerprints


def changed_launch_dates(blocks: Sequence[str], dates: Sequence[dt.date], warehouse: WarehouseResource,
                         store: EmbeddingStore, settings: EncoderSettings, try_load: bool = True) -> list[dt.date]:
    """The launch dates an encode step of `blocks` would encode again: their inputs differ from the
    fingerprint recorded when the date was last encoded (or none was). A block whose model does not
    load with these settings adds none (`would_load`): its step would write no rows anyway. With
    try_load=False (a sensor, which must not load models) a block whose last load failed adds none,
    however long ago that was."""
    changed: set[dt.date] = set()
    for block in blocks:
        loads = would_load(block, settings, store) if try_load else failed_load(block, settings, store) is None
        if not loads:
            continue
        _, fingerprints = launch_date_inputs(block, dates, warehouse, settings)
        changed |= {d for d in dates if store.read_inputs(block, d) != fingerprints[d]}
    return sorted(changed)


def encode_launch_dates(block: str, dates: Sequence[dt.date], warehouse: WarehouseResource, store: EmbeddingStore,
                        settings: EncoderSettings, read_bytes: Callable[[str], bytes], run_id: str,
                        log: Callable[[str], Any], models: LoadedModels | None = None) -> dict[str, Any]:
    """Encode the creatives launched on `dates` into the store (rows and quarantine per date) and
    return what the run did (also saved in the store for the publish step). Reads the warehouse only.

    A date whose inputs (creatives, image or text hashes, block settings) are unchanged since it was
    last encoded is not encoded again, and the model is not even loaded when no date changed."""
    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.pipeline import (
        encode_images,
        encode_texts,
        stabilise_types,
    )

    started = time.perf_counter()
    reads_text = BLOCK_SPECS[block].reads == TEXT_INPUT
    items, fingerprints = launch_date_inputs(block, dates, warehouse, settings)
    todo = [d for d in dates if store.read_inputs(block, d) != fingerprints[d]]
    manifest: dict[str, Any] = {"block": block, "run_id": run_id, "dates": [d.isoformat() for d in dates],
                                "unchanged_dates": len(dates) - len(todo), "numeric_columns": [],
                                "creative_ids": items["creative_id"].astype(str).tolist()}
    if not todo:
        recorded = store.read_status(block) or {}
        manifest.update(available=bool(recorded.get("available", True)), reason=recorded.get("reason", ""),
                        model_id=recorded.get("model_id") or block_model_id(block, settings),
                        **{k: recorded.get(k) for k in ("model_version", "dim", "device")},
                        computed=0, from_cache=0, quarantined=0, quarantined_by_reason={}, encode_rate_per_s=None,
                        seconds=round(time.perf_counter() - started, 2))
        log(f"embeddings.{block}: all {len(dates)} launch date(s) unchanged since they were encoded; model not loaded")
        store.write_run(block, run_id, manifest)
        return manifest
    todo_items = items[items["launch_date"].map(lambda v: pd.Timestamp(v).date()).isin(todo)].reset_index(drop=True)
    try:
        encoder = load_encoder(block, settings, store, models)
    except ModelUnavailable as exc:
        from creative_dag.encoders.pipeline import empty_block_frame, quarantine_rows

        store.write_rows(block, empty_block_frame(), todo)
        store.write_quarantine(block, quarantine_rows(pd.DataFrame(columns=["creative_id", "sha256"]), {}, block),
                               pd.Series([], dtype=object), todo)
        manifest.update(available=False, reason=exc.reason, model_id=block_model_id(block, settings))
        log(f"embeddings.{block}: block unavailable, no rows for {len(todo)} launch date(s): {exc.reason}")
        store.write_run(block, run_id, manifest)
        return manifest
    log(f"embeddings.{block}: {len(todo_items)} creatives over {len(todo)} changed launch date(s) "
        f"({len(dates) - len(todo)} unchanged); model {encoder.model_id} {encoder.model_version} on {encoder.device}")
    if reads_text:
        run = encode_texts(encoder, todo_items.drop(columns="text_sha256"), settings.cache(), log=log)
        manifest["creatives_without_text"] = int(len(todo_items) - len(run.frame))
    else:
        run = encode_images(encoder, todo_items, read_bytes, settings.cache(), batch_size=settings.batch_size, log=log)
        manifest["numeric_columns"] = list(getattr(getattr(encoder, "extractor", None), "vector_columns", []))
    store.write_rows(block, stabilise_types(run.frame, {}, manifest["numeric_columns"]), todo)
    launch_of = dict(zip(todo_items["creative_id"].astype(str), todo_items["launch_date"]))
    quarantined_ids = [str(k).split(":", 1)[1] for k in run.quarantine["key"]]
    store.write_quarantine(block, run.quarantine, pd.Series([launch_of.get(c) for c in quarantined_ids],
                                                             index=run.quarantine.index, dtype=object), todo)
    # Recorded only once the rows are in place, and not for a date with a failed image: that may
    # be transient (a file replaced mid-run, a flaky network drive), so the next run tries again.
    failed_dates = {pd.Timestamp(launch_of[c]).date() for c in quarantined_ids if c in launch_of}
    for day in todo:
        if day not in failed_dates:
            store.write_inputs(block, day, fingerprints[day])
    manifest.update(
        available=True, reason="", model_id=encoder.model_id, model_version=encoder.model_version,
        dim=int(encoder.dim), device=encoder.device, computed=int(run.computed), from_cache=int(run.cached),
        quarantined=int(run.failed),
        quarantined_by_reason=run.quarantine["reason"].value_counts().to_dict() if len(run.quarantine) else {},
        encode_rate_per_s=round(run.rate, 2) if run.computed else None,
        seconds=round(time.perf_counter() - started, 2))
    if run.failed:
        log(f"embeddings.{block}: {run.failed} image(s) quarantined: {manifest['quarantined_by_reason']}")
    store.write_run(block, run_id, manifest)
    return manifest


# ----------------------------------------------------------------------------- publish (pooled)
def publish_launch_dates(block: str, dates: Sequence[dt.date], warehouse: WarehouseResource,
                         store: EmbeddingStore, manifest: dict[str, Any]) -> tuple[pd.DataFrame, dict[dt.date, int]]:
    """Copy the store's rows (and quarantine rows) of `dates` into the warehouse; returns the rows
    and the row count of each date."""
    frame = store.read_rows(block, dates)
    write_block_rows(warehouse, block, frame, dates, manifest.get("numeric_columns", []))
    write_quarantine(warehouse, block, store.read_quarantine(block, dates), manifest.get("creative_ids", []))
    per_date = pd.Series([pd.Timestamp(v).date() for v in frame["launch_date"]], dtype=object).value_counts() \
        if len(frame) else pd.Series(dtype=int)
    return frame, {d: int(per_date.get(d, 0)) for d in dates}


def run_manifest(store: EmbeddingStore, block: str, run: dg.DagsterRun) -> dict[str, Any]:
    """The encoder step's record for this run (or, re-executed from failure, for the run it re-executes)."""
    from creative_dag.encoders.store import StoreError

    for run_id in dict.fromkeys([run.run_id, run.parent_run_id, run.root_run_id]):
        if run_id is None:
            continue
        try:
            return store.read_run(block, run_id)
        except StoreError:
            continue
    return store.read_run(block, run.run_id)  # raises, naming this run


def _block_metadata(block: str, frame: pd.DataFrame, manifest: dict[str, Any], dates: Sequence[dt.date]) -> dict[str, Any]:
    meta = table_metadata(embedding_table(block), frame, block_available=bool(manifest["available"]), model_id=manifest["model_id"],
                          launch_dates=len(dates), rows_this_run=len(frame))
    # each launch date carries its own row count and preview (added per partition by the publish step); the
    # figures below are the run's, over all its launch dates
    meta.pop("dagster/row_count")
    meta.pop("preview")
    meta["figures_are_for"] = dg.MetadataValue.text(
        f"this run: {count_of(len(dates), 'launch date')}, {count_of(len(frame), 'row')} (row count and preview: "
        "each launch date's own)")
    if not manifest["available"]:
        meta["unavailable_reason"] = dg.MetadataValue.text(manifest["reason"])
        return meta
    rate = manifest.get("encode_rate_per_s")
    meta.update({
        "model_version": dg.MetadataValue.text(str(manifest.get("model_version"))),
        "dim": dg.MetadataValue.int(int(manifest.get("dim") or 0)),
        "device": dg.MetadataValue.text(str(manifest.get("device"))),
        "unchanged_launch_dates": dg.MetadataValue.int(manifest["unchanged_dates"]),
        "computed": dg.MetadataValue.int(manifest["computed"]),
        "from_cache": dg.MetadataValue.int(manifest["from_cache"]),
        "quarantined": dg.MetadataValue.int(manifest["quarantined"]),
        "quarantined_by_reason": counts_markdown(manifest["quarantined_by_reason"], "reason", "images"),
        "encode_rate_per_s": dg.MetadataValue.float(rate) if rate is not None else dg.MetadataValue.text("nan"),
        "seconds": dg.MetadataValue.float(manifest["seconds"]),
    })
    if "creatives_without_text" in manifest:
        meta["creatives_without_text"] = dg.MetadataValue.int(manifest["creatives_without_text"])
    return meta


# A model load or inference step can fail transiently (a hub download cut off, a full /tmp, a GPU
# that is briefly out of memory); retry twice with backoff. A model that is simply not there is
# not an error: the block is reported unavailable and nothing is retried.
ENCODER_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
# The publish step only copies rows into DuckDB; a retry covers a lock held past lock_timeout_s.
PUBLISH_RETRY = dg.RetryPolicy(max_retries=1, delay=5)


def _encode_op(block: str, upstream: Sequence[str]) -> dg.OpDefinition:
    @dg.op(name=f"encode_{block}", ins={name: dg.In(dg.Nothing) for name in upstream}, out=dg.Out(dg.Nothing),
           retry_policy=ENCODER_RETRY, tags={"stage": "encode"},
           description=f"Encode the selected launch dates' creatives with the {block} model into the embedding "
                       "store. Holds no warehouse lock: encoder steps run side by side.")
    def _encode(context: dg.OpExecutionContext, warehouse: WarehouseResource, image_store: ImageStoreResource,
                encoders: EncoderResource, embedding_store: EmbeddingStoreResource) -> None:
        manifest = encode_launch_dates(
            block, partition_dates(context.partition_keys), warehouse, embedding_store.get(), encoders.settings(),
            image_store.locator().read_bytes, context.run_id, context.log.info, encoders.models())
        if not manifest["available"]:
            context.log.warning(f"embeddings.{block}: block unavailable: {manifest['reason']}")

    return _encode


def _publish_op(block: str) -> dg.OpDefinition:
    @dg.op(name=f"publish_{block}", ins={"encoded": dg.In(dg.Nothing)}, pool="warehouse",
           retry_policy=PUBLISH_RETRY, tags={"stage": "publish"},
           description=f"Copy the store's {block} rows of the selected launch dates into embeddings.{block} "
                       "(the short step that holds the warehouse pool).")
    def _publish(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 embedding_store: EmbeddingStoreResource) -> None:
        store = embedding_store.get()
        dates = partition_dates(context.partition_keys)
        manifest = run_manifest(store, block, context.run)
        frame, per_date = publish_launch_dates(block, dates, warehouse, store, manifest)
        days = pd.Series([pd.Timestamp(v).date() for v in frame["launch_date"]], index=frame.index, dtype=object) \
            if len(frame) else pd.Series(dtype=object)
        for key, day in zip(context.partition_keys, dates):
            # a launch date's own rows, not the run's (a partition showed the first dates' creatives)
            context.add_asset_metadata({"dagster/row_count": dg.MetadataValue.int(per_date[day]),
                                        "preview": dg.MetadataValue.md(markdown_preview(frame[days == day]))},
                                       partition_key=key)
        context.add_output_metadata(_block_metadata(block, frame, manifest, dates))

    return _publish


def _block_asset(block: str) -> dg.AssetsDefinition:
    """embeddings.<block>: two steps, the heavy encode outside the warehouse pool and a short publish in it."""
    spec = BLOCK_SPECS[block]
    upstream = {"raw_images": RAW_IMAGES.key, "prelaunch": FEATURES_PRELAUNCH.key}
    upstream.update({other: embedding_table(other).key for other in spec.reads_blocks})
    encode, publish = _encode_op(block, list(upstream)), _publish_op(block)

    def compose(**deps):
        return publish(encode(**deps))

    compose.__signature__ = inspect.Signature(  # graph_asset reads its inputs from the signature
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in upstream])
    compose.__name__ = block
    return dg.graph_asset(
        key=embedding_table(block).key,
        ins={name: dg.AssetIn(key=key, dagster_type=dg.Nothing) for name, key in upstream.items()},
        partitions_def=launch_date_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds=set(spec.kinds),
        description=spec.description,
    )(compose)


# embeddings/<block> for every entry of the registry (creative_dag/blocks.py, BLOCK_SPECS)
BLOCK_ASSETS: dict[str, dg.AssetsDefinition] = {block: _block_asset(block) for block in BLOCK_SPECS}


# ----------------------------------------------------------------------------- model status
def block_statuses(settings: EncoderSettings, store: EmbeddingStore,
                   blocks: Sequence[str] = EMBEDDING_BLOCKS) -> list[tuple[Any, str]]:
    """(status, checked_at) of each block's model with these settings, as the encode steps recorded
    it; only a block with no such record is loaded now. Plain Python."""
    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.status import STATUS_COLUMNS, BlockStatus

    found = []
    for block in blocks:
        recorded = store.read_status(block)
        if not recorded or recorded.get("fingerprint") != block_fingerprint(block, settings):
            try:
                load_encoder(block, settings, store)  # records what happened
            except ModelUnavailable:
                pass
            recorded = store.read_status(block)
        found.append((BlockStatus(**{c: recorded[c] for c in STATUS_COLUMNS}), recorded["checked_at"]))
    return found


@dg.asset(
    key=EMBEDDINGS_MODEL_STATUS.key,
    deps=EMBEDDING_KEYS,
    group_name=GROUP,
    kinds={"pytorch", "duckdb"},
    pool="warehouse",
    description=("One row per similarity block: the configured model, its version (hash of the weights "
                 "and preprocessing), vector size, device, whether it loaded (and why not) when last tried "
                 "with these settings (checked_at), and how many rows embeddings.<block> holds for that version."),
)
def embeddings_model_status(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            encoders: EncoderResource, embedding_store: EmbeddingStoreResource) -> dg.MaterializeResult:
    from creative_dag.encoders.status import status_frame

    found = block_statuses(encoders.settings(), embedding_store.get())
    statuses = [status for status, _ in found]
    frame = status_frame(statuses)
    with warehouse.reading() as db:
        frame["rows"] = pd.array([_rows_for(db, s.block, s.model_version) for s in statuses], dtype="Int64")
    frame["checked_at"] = [pd.Timestamp(at).tz_convert("UTC").tz_localize(None) for _, at in found]
    warehouse.write_table(EMBEDDINGS_MODEL_STATUS, frame)
    for status in statuses:
        if not status.available:
            context.log.warning(f"block {status.block} unavailable: {status.reason}")
    available = [s.block for s in statuses if s.available]
    return dg.MaterializeResult(metadata=table_metadata(
        EMBEDDINGS_MODEL_STATUS, frame, blocks_available=len(available), available_blocks=", ".join(available) or "none",
        unavailable_blocks=", ".join(s.block for s in statuses if not s.available) or "none"))


def _rows_for(warehouse: WarehouseResource, block: str, model_version: str | None) -> int:
    """Rows of embeddings.<block> made by `model_version` (0 when unavailable or not built)."""
    table = embedding_table(block)
    if model_version is None or not warehouse.exists(table):
        return 0
    found = warehouse.query(f"SELECT count(*) AS n FROM {table} WHERE model_version = ?", [model_version])
    return int(found["n"].iloc[0])


ENCODER_ASSETS = [*BLOCK_ASSETS.values(), embeddings_model_status]
