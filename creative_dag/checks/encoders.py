"""Checks on the encoder stage: every embeddings.<block> table is decision-time only (blocking
leakage check from checks/decision_time.py) and holds well-formed vectors (blocking): one row per
creative, finite, L2-normalised, one length per model version. `embedded_every_creative` (warning)
makes an empty result visible: a block that is unavailable, or creatives never embedded."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from creative_dag.blocks import BLOCK_SPECS, IMAGE_INPUT
from creative_dag.catalog import (
    FEATURES_PRELAUNCH,
    RAW_IMAGES,
    RAW_QUARANTINE,
    embedding_table,
)
from creative_dag.checks.decision_time import EMBEDDING_COLUMNS, decision_time_check
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource
from creative_dag.vectors import vectors_to_matrix
from creative_dag.wording import count_of

NORM_TOLERANCE = 1e-3


def _attribute_columns(block: str) -> tuple[str, ...]:
    """Columns a block derives itself from the image or the ad copy (all decision-time): its
    registry entry's derived_columns (creative_dag/blocks.py)."""
    spec = BLOCK_SPECS.get(block)
    return spec.derived_columns if spec else ()


def vector_problems(frame, dim_by_version: dict | None = None) -> dict[str, int]:
    """Counts of malformed rows in an embeddings frame (creative_id, model_version, vector)."""
    problems = {"duplicate_creative_id": int(frame["creative_id"].duplicated().sum()),
                "null_vector": int(frame["vector"].isna().sum()),
                "non_finite": 0, "not_unit_norm": 0, "wrong_length": 0}
    present = frame[frame["vector"].notna()]
    for version, group in present.groupby("model_version", dropna=False):
        lengths = group["vector"].map(len)
        expected = (dim_by_version or {}).get(version, int(lengths.mode().iloc[0]))
        problems["wrong_length"] += int((lengths != expected).sum())
        ok = group[lengths == expected]
        if ok.empty:
            continue
        matrix = vectors_to_matrix(ok["vector"])
        finite = np.isfinite(matrix).all(axis=1)
        problems["non_finite"] += int((~finite).sum())
        norms = np.linalg.norm(matrix[finite], axis=1)
        problems["not_unit_norm"] += int((np.abs(norms - 1.0) > NORM_TOLERANCE).sum())
    return problems


def _vectors_check(block: str) -> dg.AssetChecksDefinition:
    table = embedding_table(block)

    @dg.asset_check(
        asset=table.key,
        name="vectors_valid",
        blocking=True,
        description=f"{table}: one row per creative; vectors finite, L2-normalised, one length per model version.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.reading() as db:
            if not db.exists(table):
                return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                           description=f"{table} does not exist; materialise embeddings/{block}")
            frame = db.query(f"SELECT creative_id, model_version, vector FROM {table}")
        problems = vector_problems(frame)
        bad = {k: v for k, v in problems.items() if v}
        return dg.AssetCheckResult(
            passed=not bad,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{table}: {len(frame)} rows, all well-formed" if not bad else
                         f"{table}: malformed rows: " + ", ".join(f"{k}={v}" for k, v in bad.items())),
            metadata={"rows": len(frame), **{k: int(v) for k, v in problems.items()}},
        )

    return _check


def creatives_without_text(warehouse: WarehouseResource | DuckDBWarehouse) -> set[str]:
    """Creatives with no headline, no primary text and no OCR text: the text block has nothing to embed."""
    from creative_dag.assets.encoders import load_text_items

    dates = warehouse.query("SELECT DISTINCT CAST(launch_date AS DATE) AS d FROM features.prelaunch")["d"]
    items = load_text_items(warehouse, [d for d in pd.to_datetime(dates).dt.date])
    return set(items.loc[items["text"].str.strip() == "", "creative_id"].astype(str))


def missing_embeddings(warehouse: WarehouseResource | DuckDBWarehouse, block: str
                       ) -> tuple[int, list[str], int, int]:
    """(creatives expected to have a `block` vector, ids of those without one and without a
    quarantine row saying why, quarantined count, creatives left out for having no text). Image blocks
    expect every creative in features.prelaunch whose image decoded at ingest; the text block expects
    every creative with some text (ad copy, or text OCR read on the image)."""
    table = embedding_table(block)
    if not warehouse.exists(FEATURES_PRELAUNCH):
        return 0, [], 0, 0
    expected_sql = "SELECT creative_id FROM features.prelaunch"
    if BLOCK_SPECS[block].reads == IMAGE_INPUT:
        if not warehouse.exists(RAW_IMAGES):
            return 0, [], 0, 0
        expected_sql = ("SELECT p.creative_id FROM features.prelaunch p JOIN raw.images i USING (creative_id) "
                        "WHERE i.decode_status = 'ok' AND i.sha256 IS NOT NULL")
    expected = set(warehouse.query(expected_sql)["creative_id"].astype(str))
    without_text = creatives_without_text(warehouse) & expected if BLOCK_SPECS[block].reads != IMAGE_INPUT else set()
    expected -= without_text
    embedded = set(warehouse.query(f"SELECT creative_id FROM {table} WHERE vector IS NOT NULL")["creative_id"]
                   .astype(str)) if warehouse.exists(table) else set()
    quarantined: set[str] = set()
    if warehouse.exists(RAW_QUARANTINE):
        keys = warehouse.query("SELECT key FROM raw.quarantine WHERE key LIKE ?", [f"{table}:%"])["key"]
        quarantined = {str(k).split(":", 1)[1] for k in keys}
    missing = sorted(expected - embedded - quarantined)
    return len(expected), missing, len(expected & quarantined), len(without_text)


def _coverage_check(block: str) -> dg.AssetChecksDefinition:
    table = embedding_table(block)

    @dg.asset_check(
        asset=table.key,
        name="embedded_every_creative",
        description=f"Warns when creatives that should have a {block} vector have none and no quarantine reason "
                    "(block unavailable, or launch dates not embedded yet).",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.reading() as db:
            expected, missing, quarantined, without_text = missing_embeddings(db, block)
        if not missing:
            text = f"{table}: all {expected} expected creatives embedded ({quarantined} quarantined with a reason)"
            if without_text:
                text += (f"; {count_of(without_text, 'creative')} without any text (no headline or primary text, and "
                         "OCR read none on the image) not expected")
        elif len(missing) == expected:
            text = (f"{table}: no vectors for any of {expected} creatives: the block is unavailable (see "
                    "embeddings.model_status) or its launch dates were never materialised")
        else:
            text = (f"{table}: {len(missing)} of {expected} creatives have no vector and no quarantine reason "
                    f"(e.g. {', '.join(missing[:5])}); materialise their launch-date partitions")
        return dg.AssetCheckResult(
            passed=not missing, severity=dg.AssetCheckSeverity.WARN, description=text,
            metadata={"expected": expected, "missing": len(missing), "quarantined": quarantined,
                      "without_text": without_text, "missing_examples": missing[:20]})

    return _check


def _leakage_check(block: str) -> dg.AssetChecksDefinition:
    table = embedding_table(block)
    return decision_time_check(table.key, table,
                               extra_allowed=EMBEDDING_COLUMNS + _attribute_columns(block))


ENCODER_CHECKS = ([_vectors_check(b) for b in BLOCK_SPECS] + [_leakage_check(b) for b in BLOCK_SPECS]
                  + [_coverage_check(b) for b in BLOCK_SPECS])
