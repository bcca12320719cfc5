"""Asset check on marts.early_decisions: what a media buyer relies on when acting on a call.

Non-blocking, like the other marts checks: the table is a leaf, so a failure is reported next to it
rather than stopping anything. The thresholds are the ones the asset ran with (its materialisation
metadata), so a run with a stricter policy is checked against that policy.
"""


import dagster as dg
import numpy as np
import pandas as pd

from creative_dag.catalog import (
    MARTS_EARLY_DECISIONS,
)
from creative_dag.marts.early_decisions import (
    DECISIONS,
    KILL,
    SCALE,
    WAIT,
    EarlyDecisionParams,
)


def problems_early_decisions(frame: pd.DataFrame, kill_threshold: float, scale_threshold: float) -> list[str]:
    """One row per creative; decisions in KILL / KEEP / SCALE / WAIT; p_bottom and p_top in [0, 1] and present
    exactly when the creative was judged; every row carries a reason; KILL has p_bottom >= the kill threshold and
    SCALE p_top >= the scale threshold; a decision is dated after the launch."""
    out: list[str] = []
    if frame.empty:
        return out
    dup = frame.loc[frame["creative_id"].duplicated(), "creative_id"]
    if len(dup):
        out.append(f"{MARTS_EARLY_DECISIONS}: creative {dup.iloc[0]} appears more than once")
    unknown = sorted(set(frame["decision"].dropna()) - set(DECISIONS))
    if unknown or frame["decision"].isna().any():
        out.append(f"{MARTS_EARLY_DECISIONS}: unknown or missing decisions {unknown or ['NULL']}; expected {', '.join(DECISIONS)}")
    for col in ("p_bottom", "p_top"):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame.loc[values.notna() & ((values < 0) | (values > 1)), "creative_id"]
        if len(bad):
            out.append(f"{MARTS_EARLY_DECISIONS}.{col} outside [0, 1] for {len(bad)} creatives, e.g. {bad.iloc[0]}")
        judged = frame["decision"].isin([d for d in DECISIONS if d != WAIT])
        missing = frame.loc[judged & values.isna(), "creative_id"]
        if len(missing):
            out.append(f"{MARTS_EARLY_DECISIONS}.{col} missing for {len(missing)} judged creatives, e.g. {missing.iloc[0]}")
    no_reason = frame.loc[frame["reason"].fillna("").astype(str).str.strip() == "", ["creative_id", "decision"]]
    if len(no_reason):
        out.append(f"{MARTS_EARLY_DECISIONS}: {len(no_reason)} rows without a reason, e.g. {no_reason['creative_id'].iloc[0]} "
                   f"({no_reason['decision'].iloc[0]})")
    for decision, col, threshold in ((KILL, "p_bottom", kill_threshold), (SCALE, "p_top", scale_threshold)):
        rows = frame.loc[frame["decision"] == decision]
        below = rows.loc[pd.to_numeric(rows[col], errors="coerce") < threshold - 1e-12, "creative_id"]
        if len(below):
            out.append(f"{MARTS_EARLY_DECISIONS}: {len(below)} {decision} calls with {col} below the threshold {threshold}, "
                       f"e.g. {below.iloc[0]}")
    dated = frame.dropna(subset=["decided_at", "launch_date"])
    early = dated.loc[pd.to_datetime(dated["decided_at"]) <= pd.to_datetime(dated["launch_date"]), "creative_id"]
    if len(early):
        out.append(f"{MARTS_EARLY_DECISIONS}: {len(early)} decisions dated on or before the launch, e.g. {early.iloc[0]}")
    return out


def _recorded(context: dg.AssetCheckExecutionContext, name: str, default: float) -> float:
    event = context.instance.get_latest_materialization_event(MARTS_EARLY_DECISIONS.key)
    value = event.asset_materialization.metadata.get(name) if event and event.asset_materialization else None
    return float(value.value) if value is not None and np.isfinite(float(value.value)) else default


@dg.asset_check(asset=MARTS_EARLY_DECISIONS.key, name="early_decisions_invariants", blocking=False,
                required_resource_keys={"warehouse"}, description=problems_early_decisions.__doc__)
def early_decisions_invariants(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    frame = context.resources.warehouse.read_table(MARTS_EARLY_DECISIONS)
    defaults = EarlyDecisionParams()
    problems = problems_early_decisions(frame, _recorded(context, "kill_threshold", defaults.kill_threshold),
                                        _recorded(context, "scale_threshold", defaults.scale_threshold))
    return dg.AssetCheckResult(passed=not problems, metadata={
        "rows": len(frame), "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_none_")})
