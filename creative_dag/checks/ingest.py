"""Checks beside the ingest stage: quarantine is reported (WARN), creative keys are sound (ERROR).

The decisions are plain functions (`quarantine_summary`, `creative_key_problems`) so they are
testable without Dagster; the checks only read the warehouse and report.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from creative_dag.assets.metadata import counts_markdown
from creative_dag.catalog import (
    RAW_CREATIVES,
    RAW_QUARANTINE,
)
from creative_dag.landing.quarantine import REASONS
from creative_dag.resources.warehouse import WarehouseResource


def quarantine_summary(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Rows by (source, reason), most frequent first, with what to do: columns source, reason, rows, to_fix."""
    if quarantine.empty:
        return pd.DataFrame({"source": [], "reason": [], "rows": [], "to_fix": []})
    summary = (quarantine.groupby(["source", "reason"]).size().rename("rows").reset_index()
               .sort_values(["rows", "source", "reason"], ascending=[False, True, True]))
    summary["to_fix"] = [REASONS.get(r, "") for r in summary["reason"]]
    return summary.reset_index(drop=True)


def creative_key_problems(creatives: pd.DataFrame) -> dict[str, int]:
    """{'null_creative_id': n, 'duplicate_creative_id': n} — rows breaking the key of raw.creatives."""
    ids = creatives["creative_id"]
    present = ids[ids.notna() & (ids.astype("str").str.strip() != "")]
    return {"null_creative_id": int(len(ids) - len(present)),
            "duplicate_creative_id": int(present.duplicated().sum())}


@dg.asset_check(asset=RAW_QUARANTINE.key, name="nothing_quarantined", pool="warehouse",
                description="Warns (does not block) when any row or image was quarantined; counts by reason.")
def nothing_quarantined(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    quarantine = warehouse.read_table(RAW_QUARANTINE, columns=["source", "reason"])
    summary = quarantine_summary(quarantine)
    counts = {f"{s}/{r}": int(n) for s, r, n in zip(summary["source"], summary["reason"], summary["rows"])}
    return dg.AssetCheckResult(
        passed=bool(quarantine.empty),
        severity=dg.AssetCheckSeverity.WARN,
        description=("nothing quarantined" if quarantine.empty else
                     f"{len(quarantine)} rows quarantined; see raw.quarantine (detail says what to fix)"),
        metadata={
            "quarantined_rows": dg.MetadataValue.int(len(quarantine)),
            "by_reason": dg.MetadataValue.md(summary.to_markdown(index=False) if len(summary) else "_none_"),
            "counts": dg.MetadataValue.json(counts),
        },
    )


@dg.asset_check(asset=RAW_CREATIVES.key, name="creative_id_unique_and_present", pool="warehouse", blocking=True,
                description="Every raw.creatives row has a creative_id and no id repeats (ERROR, blocks downstream).")
def creative_id_unique_and_present(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    creatives = warehouse.read_table(RAW_CREATIVES, columns=["creative_id"])
    problems = creative_key_problems(creatives)
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": dg.MetadataValue.int(len(creatives)),
                  "problems": counts_markdown(problems, "problem", "rows"),
                  **{k: dg.MetadataValue.int(v) for k, v in problems.items()}},
    )
