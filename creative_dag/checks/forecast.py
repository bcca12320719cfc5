"""Asset checks on the forecast marts: what a BI user relies on when reading a forecast.

Non-blocking, like the other marts checks: the forecast is a leaf of the graph.
"""

import dagster as dg
import pandas as pd

from creative_dag.assets.keys import MARTS_ELEMENT_ATTRIBUTION, MARTS_PREDICTIONS


def problems_predictions(frame: pd.DataFrame) -> list[str]:
    """One row per creative and KPI; lower <= forecast <= upper; rates never negative; every model trained
    only on days before the creative's launch."""
    out = []
    if frame.empty:
        return out
    dup = frame[frame.duplicated(["creative_id", "kpi"])]
    if len(dup):
        out.append(f"marts.predictions: creative {dup['creative_id'].iloc[0]} has {dup['kpi'].iloc[0]} twice")
    has = frame.dropna(subset=["forecast", "lower", "upper"])
    bad = has[(has["lower"] > has["forecast"] + 1e-9) | (has["forecast"] > has["upper"] + 1e-9)]
    if len(bad):
        out.append(f"marts.predictions: {len(bad)} forecasts outside their interval, e.g. {bad['creative_id'].iloc[0]}")
    rates = frame[(frame["kpi"] != "score") & (frame["forecast"] < 0)]
    if len(rates):
        out.append(f"marts.predictions: {len(rates)} negative rate forecasts, e.g. {rates['creative_id'].iloc[0]}")
    trained = frame.dropna(subset=["model_trained_through"])
    future = trained[pd.to_datetime(trained["model_trained_through"]) >= pd.to_datetime(trained["launch_date"])]
    if len(future):
        out.append(f"marts.predictions: {len(future)} forecasts from a model trained on or after the creative's "
                   f"launch, e.g. {future['creative_id'].iloc[0]}")
    return out


def problems_element_attribution(frame: pd.DataFrame) -> list[str]:
    """One row per edit and KPI; ci_low <= effect <= ci_high; an effect called up or down is significant and
    its interval lies on that side of zero."""
    out = []
    if frame.empty:
        return out
    dup = frame[frame.duplicated(["edit", "kpi"])]
    if len(dup):
        out.append(f"marts.element_attribution: edit {dup['edit'].iloc[0]} has {dup['kpi'].iloc[0]} twice")
    has = frame.dropna(subset=["effect", "ci_low", "ci_high"])
    bad = has[(has["ci_low"] > has["effect"] + 1e-12) | (has["effect"] > has["ci_high"] + 1e-12)]
    if len(bad):
        out.append(f"marts.element_attribution: {len(bad)} effects outside their interval, e.g. {bad['edit'].iloc[0]}")
    called = frame[frame["direction"] != "none"]
    wrong = called[~called["significant"].astype(bool) | ((called["direction"] == "up") & (called["ci_low"] <= 0))
                   | ((called["direction"] == "down") & (called["ci_high"] >= 0))]
    if len(wrong):
        out.append(f"marts.element_attribution: {len(wrong)} directions not backed by their interval, e.g. "
                   f"{wrong['edit'].iloc[0]} {wrong['kpi'].iloc[0]}")
    return out


def _table_check(asset_key: dg.AssetKey, table: str, validator, name: str) -> dg.AssetChecksDefinition:
    """A non-blocking check that reads `table` and reports `validator`'s problems."""

    @dg.asset_check(asset=asset_key, name=name, blocking=False, required_resource_keys={"warehouse"},
                    description=validator.__doc__)
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        frame = context.resources.warehouse.read_table(table)
        problems = validator(frame)
        return dg.AssetCheckResult(passed=not problems, metadata={
            "rows": len(frame), "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_none_")})

    return _check


predictions_invariants = _table_check(MARTS_PREDICTIONS, "marts.predictions", problems_predictions,
                                      "predictions_invariants")
element_attribution_invariants = _table_check(MARTS_ELEMENT_ATTRIBUTION, "marts.element_attribution",
                                              problems_element_attribution, "element_attribution_invariants")
