"""Encoder stage: `embeddings.clip`, `.cnn`, `.visual`, `.layout`, `.text` and `embeddings.model_status`.

Each block asset is partitioned by launch date (single-run backfills: one step per asset,
models loaded once) and processes the creatives launched on `context.partition_keys`:
decision-time inputs only (images from raw.images, creative list and ad copy from
features.prelaunch). Rows are replaced per launch date; images that fail to decode go to
raw.quarantine and the run goes on. A model that cannot load makes its block unavailable:
no rows for those dates, a warning, and metadata saying why; the asset still succeeds.
The compute lives in `creative_dag.encoders`; these are thin wrappers.
"""


import datetime as dt
import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from creative_dag.assets.keys import (
    EMBEDDING_KEYS,
    EMBEDDINGS_MODEL_STATUS,
    FEATURES_PRELAUNCH,
    RAW_IMAGES,
    embedding_key,
)
from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.blocks import CLIP, CNN, EMBEDDING_BLOCKS, LAYOUT, TEXT, VISUAL
from creative_dag.partitions import launch_date_partitions
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.models import (
    EncoderResource,
    EncoderSettings,
    block_model_id,
    load_block,
)
from creative_dag.resources.warehouse import WarehouseResource

# Single-run backfills are what make "models loaded once per backfill" true; Dagster still marks
# the parameter beta, and repeating that on every definitions load only buries real warnings.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "encoders"
QUARANTINE_TABLE = "raw.quarantine"
STATUS_TABLE = "embeddings.model_status"
_BLOCK_KINDS = {CLIP: {"pytorch", "duckdb"}, CNN: {"pytorch", "duckdb"}, TEXT: {"pytorch", "duckdb"},
                LAYOUT: {"pytorch", "opencv", "duckdb"}, VISUAL: {"opencv", "duckdb"}}
_BLOCK_DESCRIPTIONS = {
    CLIP: "CLIP image embeddings (image semantics) + zero-shot concept tags, one row per creative.",
    CNN: "EfficientNet-Lite0 (or ResNet50) pooled ImageNet features (visual structure) + top-5 object tags.",
    VISUAL: "Interpretable colour / composition / texture features; vector = fixed-scale standardised features.",
    LAYOUT: "OCR text and boxes, CTA button, faces and their positions; vector = fixed-scale layout features.",
    TEXT: "all-MiniLM-L6-v2 embedding of headline + primary text + OCR text.",
}


def table_name(block: str) -> str:
    return f"embeddings.{block}"


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
    has_images = warehouse.exists("raw.images")
    has_layout = warehouse.exists(table_name(LAYOUT))
    frame = warehouse.query(
        f"""
        SELECT p.creative_id, CAST(p.launch_date AS DATE) AS launch_date,
               {"i.sha256" if has_images else "NULL"} AS sha256,
               {headline} AS headline, {primary} AS primary_text,
               {"l.ocr_text" if has_layout else "NULL"} AS ocr_text
        FROM features.prelaunch p
        {"LEFT JOIN raw.images i ON i.creative_id = p.creative_id" if has_images else ""}
        {"LEFT JOIN embeddings.layout l ON l.creative_id = p.creative_id" if has_layout else ""}
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
    if not warehouse.exists(table):
        return {}
    schema, name = table.split(".")
    rows = warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    )
    return dict(zip(rows["column_name"], rows["data_type"]))


def write_block_rows(warehouse: WarehouseResource, block: str, frame: pd.DataFrame,
                     dates: Sequence[dt.date], numeric_columns: Sequence[str] = ()) -> int:
    """Replace the rows of `dates` in embeddings.<block> with `frame` (typed so the schema is stable)."""
    from creative_dag.encoders.pipeline import stabilise_types

    table = table_name(block)
    types = existing_types(warehouse, table)
    frame = stabilise_types(frame, types, numeric_columns)
    if types:
        # a new attribute column (or the first rows after an unavailable run created the bare
        # table) is added in place, so earlier partitions keep their rows
        for column in [c for c in frame.columns if c not in types]:
            warehouse.query(f'ALTER TABLE {table} ADD COLUMN "{column}" {duckdb_type(frame[column])}')
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

    if quarantine.empty and not warehouse.exists(QUARANTINE_TABLE):
        return 0
    keys = [quarantine_key(block, c) for c in creative_ids]
    return warehouse.replace_rows(QUARANTINE_TABLE, quarantine, "key", keys)


def _unavailable_result(context: dg.AssetExecutionContext, warehouse: WarehouseResource, block: str,
                        settings: EncoderSettings, reason: str, dates: Sequence[dt.date]) -> dg.MaterializeResult:
    """No rows for these dates, a warning, and metadata that says why; the asset succeeds."""
    from creative_dag.encoders.pipeline import empty_block_frame

    table = table_name(block)
    empty = empty_block_frame()
    if warehouse.exists(table):
        write_block_rows(warehouse, block, empty, dates)
    else:
        warehouse.write_table(table, empty)
    model_id = block_model_id(block, settings)
    context.log.warning(f"{table}: block unavailable, no rows written for {len(dates)} launch date(s): {reason}")
    return dg.MaterializeResult(metadata=table_metadata(
        empty, block_available=False, unavailable_reason=reason, model_id=model_id,
        launch_dates=len(dates)))


def materialize_image_block(context: dg.AssetExecutionContext, block: str, warehouse: WarehouseResource,
                            image_store: ImageStoreResource, encoders: EncoderResource) -> dg.MaterializeResult:
    """Shared body of the image block assets (clip, cnn, visual, layout)."""
    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.pipeline import encode_images

    settings = encoders.settings()
    dates = partition_dates(context.partition_keys)
    try:
        encoder = load_block(block, settings)
    except ModelUnavailable as exc:
        return _unavailable_result(context, warehouse, block, settings, exc.reason, dates)
    items = load_image_items(warehouse, dates)
    context.log.info(f"embeddings.{block}: {len(items)} creatives over {len(dates)} launch date(s); "
                     f"model {encoder.model_id} {encoder.model_version} on {encoder.device}")
    run = encode_images(encoder, items, image_store.locator().read_bytes, settings.cache(),
                        batch_size=settings.batch_size, log=context.log.info)
    numeric = list(getattr(getattr(encoder, "extractor", None), "vector_columns", []))
    write_block_rows(warehouse, block, run.frame, dates, numeric)
    write_quarantine(warehouse, block, run.quarantine, items["creative_id"].tolist())
    if run.failed:
        context.log.warning(f"embeddings.{block}: {run.failed} image(s) quarantined: "
                            f"{run.quarantine['reason'].value_counts().to_dict()}")
    return dg.MaterializeResult(metadata=_block_metadata(run, encoder, dates))


def _block_metadata(run: Any, encoder: Any, dates: Sequence[dt.date]) -> dict[str, Any]:
    quarantined = run.quarantine["reason"].value_counts().to_dict() if len(run.quarantine) else {}
    return table_metadata(
        run.frame,
        block_available=True,
        model_id=encoder.model_id,
        model_version=encoder.model_version,
        dim=int(encoder.dim),
        device=encoder.device,
        launch_dates=len(dates),
        computed=int(run.computed),
        from_cache=int(run.cached),
        quarantined=int(run.failed),
        quarantined_by_reason=dg.MetadataValue.md(counts_markdown(quarantined, "reason", "images")),
        encode_rate_per_s=round(run.rate, 2) if run.computed else float("nan"),
        seconds=round(run.seconds, 2),
    )


# A model load or inference step can fail transiently (a hub download cut off, a full /tmp, a GPU
# that is briefly out of memory); retry twice with backoff. A model that is simply not there is
# not an error: the block is reported unavailable and nothing is retried.
ENCODER_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)


def _image_block_asset(block: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=embedding_key(block),
        deps=[RAW_IMAGES, FEATURES_PRELAUNCH],
        partitions_def=launch_date_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds=_BLOCK_KINDS[block],
        pool="warehouse",
        retry_policy=ENCODER_RETRY,
        description=_BLOCK_DESCRIPTIONS[block],
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               image_store: ImageStoreResource, encoders: EncoderResource) -> dg.MaterializeResult:
        return materialize_image_block(context, block, warehouse, image_store, encoders)

    return _asset


embeddings_clip = _image_block_asset(CLIP)
embeddings_cnn = _image_block_asset(CNN)
embeddings_visual = _image_block_asset(VISUAL)
embeddings_layout = _image_block_asset(LAYOUT)


@dg.asset(
    key=embedding_key(TEXT),
    deps=[RAW_IMAGES, FEATURES_PRELAUNCH, dg.AssetKey(["embeddings", LAYOUT])],
    partitions_def=launch_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds=_BLOCK_KINDS[TEXT],
    pool="warehouse",
    retry_policy=ENCODER_RETRY,
    description=_BLOCK_DESCRIPTIONS[TEXT],
)
def embeddings_text(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    encoders: EncoderResource) -> dg.MaterializeResult:
    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.pipeline import encode_texts

    settings = encoders.settings()
    dates = partition_dates(context.partition_keys)
    try:
        encoder = load_block(TEXT, settings)
    except ModelUnavailable as exc:
        return _unavailable_result(context, warehouse, TEXT, settings, exc.reason, dates)
    items = load_text_items(warehouse, dates)
    run = encode_texts(encoder, items, settings.cache(), log=context.log.info)
    write_block_rows(warehouse, TEXT, run.frame, dates)
    no_text = len(items) - len(run.frame)
    if no_text:
        context.log.info(f"embeddings.text: {no_text} creative(s) have no headline, primary text or OCR text")
    meta = _block_metadata(run, encoder, dates)
    meta["creatives_without_text"] = dg.MetadataValue.int(int(no_text))
    return dg.MaterializeResult(metadata=meta)


# ----------------------------------------------------------------------------- model status
def probe_block_statuses(settings: EncoderSettings, blocks: Sequence[str] = EMBEDDING_BLOCKS) -> list:
    """Load each block's model as configured now and report what loaded (plain Python)."""
    from creative_dag.encoders.base import ModelUnavailable, resolve_device
    from creative_dag.encoders.status import BlockStatus, encoder_status

    statuses = []
    for block in blocks:
        try:
            encoder = load_block(block, settings)
            statuses.append(encoder_status(encoder))
            del encoder
        except ModelUnavailable as exc:
            statuses.append(BlockStatus.unavailable(block, block_model_id(block, settings), exc.reason,
                                                    device=resolve_device(settings.device)))
    return statuses


@dg.asset(
    key=EMBEDDINGS_MODEL_STATUS,
    deps=EMBEDDING_KEYS,
    group_name=GROUP,
    kinds={"pytorch", "duckdb"},
    pool="warehouse",
    description=("One row per similarity block: the configured model, its version (hash of the weights "
                 "and preprocessing), vector size, device, whether it loads here (and why not), and how "
                 "many rows embeddings.<block> holds for that version."),
)
def embeddings_model_status(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            encoders: EncoderResource) -> dg.MaterializeResult:
    from creative_dag.encoders.status import status_frame

    statuses = probe_block_statuses(encoders.settings())
    frame = status_frame(statuses)
    frame["rows"] = pd.array([_rows_for(warehouse, s.block, s.model_version) for s in statuses], dtype="Int64")
    frame["checked_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    warehouse.write_table(STATUS_TABLE, frame)
    for status in statuses:
        if not status.available:
            context.log.warning(f"block {status.block} unavailable: {status.reason}")
    available = [s.block for s in statuses if s.available]
    return dg.MaterializeResult(metadata=table_metadata(
        frame, blocks_available=len(available), available_blocks=", ".join(available) or "none",
        unavailable_blocks=", ".join(s.block for s in statuses if not s.available) or "none"))


def _rows_for(warehouse: WarehouseResource, block: str, model_version: str | None) -> int:
    """Rows of embeddings.<block> made by `model_version` (0 when unavailable or not built)."""
    table = table_name(block)
    if model_version is None or not warehouse.exists(table):
        return 0
    found = warehouse.query(f"SELECT count(*) AS n FROM {table} WHERE model_version = ?", [model_version])
    return int(found["n"].iloc[0])


ENCODER_ASSETS = [embeddings_clip, embeddings_cnn, embeddings_visual, embeddings_layout, embeddings_text,
                  embeddings_model_status]
