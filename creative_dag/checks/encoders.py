"""Checks on the encoder stage: every embeddings.<block> table is decision-time only (blocking
leakage check from checks/leakage.py) and holds well-formed vectors (blocking): one row per
creative, finite, L2-normalised, one length per model version."""

from __future__ import annotations

import dagster as dg
import numpy as np

from creative_dag.blocks import CLIP, CNN, EMBEDDING_BLOCKS, LAYOUT, TEXT, VISUAL
from creative_dag.checks.leakage import EMBEDDING_COLUMNS, decision_time_check
from creative_dag.resources.warehouse import WarehouseResource
from creative_dag.vectors import vectors_to_matrix

NORM_TOLERANCE = 1e-3
TAG_COLUMNS = ("top_tag", "tags", "tag_scores")
TEXT_COLUMNS = ("text", "text_sha256", "n_tokens")


def _attribute_columns(block: str) -> tuple[str, ...]:
    """Columns a block derives itself from the image or the ad copy (all decision-time)."""
    if block in (CLIP, CNN):
        return TAG_COLUMNS
    if block == TEXT:
        return TEXT_COLUMNS
    if block == VISUAL:
        from creative_dag.encoders.visual import VisualFeatureExtractor

        return tuple(VisualFeatureExtractor.output_columns())
    if block == LAYOUT:
        from creative_dag.encoders.layout import LayoutExtractor

        return tuple(LayoutExtractor.output_columns())
    return ()


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
    table = f"embeddings.{block}"

    @dg.asset_check(
        asset=dg.AssetKey(["embeddings", block]),
        name="vectors_valid",
        blocking=True,
        description=f"{table}: one row per creative; vectors finite, L2-normalised, one length per model version.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        if not warehouse.exists(table):
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       description=f"{table} does not exist; materialise embeddings/{block}")
        frame = warehouse.query(f"SELECT creative_id, model_version, vector FROM {table}")
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


def _leakage_check(block: str) -> dg.AssetChecksDefinition:
    return decision_time_check(["embeddings", block], f"embeddings.{block}",
                               extra_allowed=EMBEDDING_COLUMNS + _attribute_columns(block))


ENCODER_CHECKS = [_vectors_check(b) for b in EMBEDDING_BLOCKS] + [_leakage_check(b) for b in EMBEDDING_BLOCKS]
