"""Ingest stage: the landing folder -> raw.creatives, raw.daily_metrics, raw.images, raw.quarantine.

One multi-asset, because the four tables come from one consistent read of the folder (metrics
are validated against the creatives that were accepted in the same pass). Bad rows and images
go to raw.quarantine and the run goes on; only a whole-file problem (no file, two files, a
required column missing) fails the step, with a message naming the file.
"""


from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from creative_dag.assets.metadata import counts_markdown, table_metadata
from creative_dag.catalog import (
    RAW_CREATIVES,
    RAW_DAILY_METRICS,
    RAW_IMAGES,
    RAW_QUARANTINE,
)
from creative_dag.landing.files import LandingFileError
from creative_dag.landing.ingest import LandingIngest, ingest_landing_folder
from creative_dag.landing.quarantine import (
    SOURCE_CREATIVES,
    SOURCE_IMAGES,
    SOURCE_METRICS,
)
from creative_dag.partitions import launch_dates_in_warehouse
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.landing import LandingResource
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource

_KINDS = {"duckdb", "python"}
_SPECS = [
    dg.AssetSpec(RAW_CREATIVES.key, group_name="ingest", kinds=_KINDS, description=(
        "One row per valid creative, every landed column (ids as text, launch_date DATE). A creative "
        "whose image is bad stays here; the image problem is in raw.images and raw.quarantine.")),
    dg.AssetSpec(RAW_DAILY_METRICS.key, group_name="ingest", kinds=_KINDS, description=(
        "One row per creative per day for valid creatives: counts int64, money float64, optional "
        "reach/frequency/video_3s_views/likes float64 (NULL when not reported).")),
    dg.AssetSpec(RAW_IMAGES.key, group_name="ingest", kinds=_KINDS, description=(
        "One row per image of a valid creative: sha256, displayed width/height (after EXIF orientation), "
        "format, mode, byte_size, exif_orientation, decode_status ('ok' or the quarantine reason).")),
    dg.AssetSpec(RAW_QUARANTINE.key, group_name="ingest", kinds=_KINDS, description=(
        "Rejected rows and images: source, key, reason (stable code), detail (file, row, what to do), "
        "raw_value (the row as landed, JSON). See docs/input-contract.md for every reason.")),
]


@dg.multi_asset(
    name="ingest_raw_tables",
    specs=_SPECS,
    pool="warehouse",
    description="Read and validate the landing folder into the raw.* tables, quarantining bad rows and images.",
)
def ingest_raw_tables(context: AssetExecutionContext, landing: LandingResource,
                      image_store: ImageStoreResource, warehouse: WarehouseResource
                      ) -> Iterator[dg.MaterializeResult]:
    from creative_dag.imports.convert import ImportFileError

    try:
        summary = landing.run_import()
    except ImportFileError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from err
    if summary is not None:
        context.log.info("\n".join(summary.lines()))
    try:
        # The previous run's image facts: files with the same bytes are not decoded again.
        known = warehouse.read_optional(RAW_IMAGES)
        result = ingest_landing_folder(landing.folder(), image_store.locator(), today=landing.as_of(),
                                       max_image_pixels=landing.max_image_pixels,
                                       probe_workers=landing.probe_workers, known_images=known)
    except LandingFileError as err:
        # The one case that stops the run: the file itself is unusable, so nothing is written.
        raise dg.Failure(description=str(err), allow_retries=False) from err

    warehouse.write_table(RAW_CREATIVES, result.creatives)
    warehouse.write_table(RAW_DAILY_METRICS, result.daily_metrics)
    warehouse.write_table(RAW_IMAGES, result.images)
    warehouse.write_table(RAW_QUARANTINE, result.quarantine)
    if len(result.quarantine):
        context.log.warning(f"quarantined {len(result.quarantine)} rows: {result.quarantined_by_reason()}")
    for key, metadata in ingest_metadata(result).items():
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def ingest_metadata(result: LandingIngest) -> dict[dg.AssetKey, dict]:
    """Metadata per raw table: table_metadata + files read + quarantined rows by reason."""
    files = pd.DataFrame(result.files_read)
    common = {"files_read": dg.MetadataValue.md(files.to_markdown(index=False)),
              "future_date_cutoff": result.today.isoformat()}

    def quarantined(source: str | None) -> dict:
        counts = result.quarantined_by_reason(source)
        return {"quarantined_rows": sum(counts.values()),
                "quarantined_by_reason": counts_markdown(counts, "reason", "rows"),
                "quarantine_counts": counts}

    launch = pd.to_datetime(result.creatives["launch_date"]) if len(result.creatives) else pd.Series([], dtype="datetime64[ns]")
    dates = pd.to_datetime(result.daily_metrics["date"]) if len(result.daily_metrics) else pd.Series([], dtype="datetime64[ns]")
    images_ok = int((result.images["decode_status"] == "ok").sum()) if len(result.images) else 0
    by_source = (result.quarantine.groupby(["source", "reason"]).size().rename("rows").reset_index()
                 if len(result.quarantine) else pd.DataFrame())
    return {
        RAW_CREATIVES.key: table_metadata(
            RAW_CREATIVES, result.creatives, **common, **quarantined(SOURCE_CREATIVES),
            launch_date_min=_iso(launch.min()), launch_date_max=_iso(launch.max()),
            launch_dates=int(launch.nunique()), accounts=int(result.creatives["account_id"].nunique())
            if len(result.creatives) else 0),
        RAW_DAILY_METRICS.key: table_metadata(
            RAW_DAILY_METRICS, result.daily_metrics, **common, **quarantined(SOURCE_METRICS),
            date_min=_iso(dates.min()), date_max=_iso(dates.max())),
        RAW_IMAGES.key: table_metadata(
            RAW_IMAGES, result.images, **common, **quarantined(SOURCE_IMAGES), images_ok=images_ok,
            images_reused=result.images_reused,
            images_failed=int(len(result.images) - images_ok),
            formats={str(k): int(v) for k, v in result.images["format"].value_counts().items()}),
        RAW_QUARANTINE.key: table_metadata(
            RAW_QUARANTINE, result.quarantine, **common, **quarantined(None),
            quarantined_by_source_and_reason=dg.MetadataValue.md(
                by_source.to_markdown(index=False) if len(by_source) else "_none_")),
    }


def launch_dates(warehouse: WarehouseResource | DuckDBWarehouse) -> list[str]:
    """ISO launch dates present in raw.creatives, sorted (the `launch_date` partition keys)."""
    database = warehouse.get() if isinstance(warehouse, WarehouseResource) else warehouse
    return launch_dates_in_warehouse(database)


def _iso(value: object) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()
