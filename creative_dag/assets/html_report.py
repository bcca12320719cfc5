"""Report stage: the self-contained HTML report people open (docs/report.md).

Thin wrapper: read the marts (read-only), build the page with creative_dag.report.html, write
`<home>/reports/creative_memory.html` atomically, link it from the materialisation's metadata. It
writes no table, so the serving copy does not wait for it; it runs in the `warehouse` pool because a
read-only connection is refused while another process writes.
"""


import time
from pathlib import Path

import dagster as dg
import pandas as pd

from creative_dag.assets.metadata import counts_markdown
from creative_dag.atomic_files import write_text_atomically
from creative_dag.candidates.batch import CANDIDATES_DIR
from creative_dag.catalog import (
    MARTS_ACCOUNT_HEALTH,
    MARTS_CREATIVE_FATIGUE,
    MARTS_CREATIVE_FATIGUE_DAILY,
    MARTS_CREATIVE_LANDSCAPE,
    MARTS_CREATIVE_RANKING,
    MARTS_LANDSCAPE_CLUSTERS,
    MARTS_RECOMMENDATIONS,
)
from creative_dag.report.html import (
    TABLE_NAMES,
    ReportTables,
    ThumbnailCache,
    build_report,
)
from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.settings import HomeLayout

REPORT_HTML_KEY = dg.AssetKey(["report", "html"])
REPORT_FILE_NAME = "creative_memory.html"
# Candidate tables are read when they exist but are not deps: they are partitioned by batch and
# assessed on demand, and the report must not wait for (or be stale because of) a batch.
# raw.creatives (image paths) is read but not a dependency: the marts follow every ingest anyway, and a
# dependency outside the refreshed set would let the refresh cron rebuild the page from stale marts while
# the features after an ingest are still running (tests/test_daily_path.py).
REPORT_DEPS = [MARTS_CREATIVE_RANKING.key, MARTS_CREATIVE_LANDSCAPE.key, MARTS_LANDSCAPE_CLUSTERS.key,
               MARTS_CREATIVE_FATIGUE.key, MARTS_CREATIVE_FATIGUE_DAILY.key, MARTS_RECOMMENDATIONS.key, MARTS_ACCOUNT_HEALTH.key]
# Only what the page shows: the daily fatigue rows are the one large table (creatives x days).
_COLUMNS = {
    "creatives": ["creative_id", "image_path"],
    "fatigue_daily": ["creative_id", "date", "ctr", "rolling_ctr", "spend"],
}


def read_report_tables(warehouse: DuckDBWarehouse) -> ReportTables:
    """Every table the report shows, None for those that do not exist yet (one read-only connection,
    so a writer waits at most for this read)."""
    frames: dict[str, pd.DataFrame | None] = {}
    with warehouse.connect() as con:
        existing = {f"{schema}.{table}" for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        for field_name, table in TABLE_NAMES.items():
            if table not in existing:
                frames[field_name] = None
                continue
            present = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
            wanted = [c for c in _COLUMNS.get(field_name, []) if c in present]
            columns = ", ".join(f'"{c}"' for c in wanted) if wanted else "*"
            frames[field_name] = con.execute(f"SELECT {columns} FROM {table}").df()
    return ReportTables(**frames)


def with_candidate_images(assessment: pd.DataFrame | None, landing: Path) -> pd.DataFrame | None:
    """The assessment with `image_path` (relative to the landing folder) for candidates whose file is
    still in `<landing>/candidates/<batch>/` (named by its stem, or by its full name when two files
    share a stem), so the report can show their thumbnails."""
    if assessment is None or assessment.empty or not {"batch", "name"} <= set(assessment.columns):
        return assessment
    paths = []
    for batch, name in zip(assessment["batch"], assessment["name"], strict=True):
        folder = landing / CANDIDATES_DIR / str(batch)
        match = None
        if isinstance(name, str) and folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.is_file())
            match = next((p for p in files if p.name == name), None) or next(
                (p for p in files if p.stem == name), None)
        paths.append(match.relative_to(landing).as_posix() if match else None)
    return assessment.assign(image_path=paths)


@dg.asset(
    key=REPORT_HTML_KEY,
    deps=REPORT_DEPS,
    group_name="report",
    kinds={"html", "plotly", "python"},
    required_resource_keys={"warehouse", "image_store"},
    # It only reads DuckDB, but a reader from another process is refused while a run writes: in the pool
    # it waits its turn instead (a few seconds of building).
    pool="warehouse",
    description=(
        "One self-contained HTML file, $CREATIVE_DAG_HOME/reports/creative_memory.html (plotly.js and "
        "thumbnails inlined; nothing is fetched when it is viewed): creative landscape with hover "
        "thumbnails, ranking table with filters, fatigue curves of the top spenders with their onset, "
        "DO/DON'T/TEST with evidence images, account-health trends and candidate verdicts."
    ),
)
def html_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    image_store = context.resources.image_store
    started = time.perf_counter()
    tables = read_report_tables(warehouse.get())
    tables.candidate_assessment = with_candidate_images(tables.candidate_assessment, Path(image_store.root))
    locator = image_store.locator()
    layout = HomeLayout.of_database(warehouse.database)
    thumbnails = ThumbnailCache.open(layout.cache / "report" / "thumbnails.json")
    if thumbnails.note:
        context.log.warning(f"report: {thumbnails.note}")
    page = build_report(tables, locator.read_bytes, thumbnail_cache=thumbnails)
    path = layout.reports / REPORT_FILE_NAME
    write_text_atomically(path, page.html, durable=True)  # a browser or a mail attachment may read it
    thumbnails.save()
    size = path.stat().st_size
    for section, note in page.notes.items():
        context.log.info(f"report section {section}: {note}")
    if page.thumbnail_failures:
        first = next(iter(page.thumbnail_failures.items()))
        context.log.warning(f"{len(page.thumbnail_failures)} image(s) could not be shown, e.g. {first[0]}: "
                            f"{first[1]}")
    context.log.info(f"wrote {path} ({size / 1e6:.1f} MB)")
    metadata = {
        "path": dg.MetadataValue.path(str(path)),
        "report": dg.MetadataValue.url(path.as_uri()),
        "size_bytes": dg.MetadataValue.int(size),
        "size": dg.MetadataValue.text(f"{size / 1e6:.1f} MB"),
        "sections": counts_markdown(page.counts, "section", "shown"),
        "thumbnails": dg.MetadataValue.int(page.thumbnails),
        "thumbnails_reused": dg.MetadataValue.int(thumbnails.hits),
        "images_missing": dg.MetadataValue.int(len(page.thumbnail_failures)),
        "missing_tables": dg.MetadataValue.text(", ".join(tables.missing()) or "none"),
        "build_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
    }
    metadata.update({f"{section}_shown": dg.MetadataValue.int(count) for section, count in page.counts.items()})
    if page.notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- **{s}**: {n}" for s, n in page.notes.items()))
    return dg.MaterializeResult(metadata=metadata)
