"""Asset checks on the forecast marts: what a BI user relies on when reading a forecast.

Non-blocking, like the other marts checks: the forecast is a leaf of the graph.
"""

import pandas as pd

from creative_dag.catalog import (
    MARTS_ELEMENT_ATTRIBUTION,
    MARTS_PREDICTIONS,
)
from creative_dag.checks.marts import table_check


def problems_predictions(frame: pd.DataFrame) -> list[str]:
    """One row per creative and KPI; lower <= forecast <= upper; rates never negative; every model trained
    only on days before the creative's launch."""
    out = []
    if frame.empty:
        return out
    out += _per_kpi_rows_within_intervals(frame, MARTS_PREDICTIONS, ("creative_id", "creative"),
                                          ("forecast", "forecasts"), "lower", "upper", tolerance=1e-9)
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
    out += _per_kpi_rows_within_intervals(frame, MARTS_ELEMENT_ATTRIBUTION, ("edit", "edit"),
                                          ("effect", "effects"), "ci_low", "ci_high", tolerance=1e-12)
    called = frame[frame["direction"] != "none"]
    wrong = called[~called["significant"].astype(bool) | ((called["direction"] == "up") & (called["ci_low"] <= 0))
                   | ((called["direction"] == "down") & (called["ci_high"] >= 0))]
    if len(wrong):
        out.append(f"marts.element_attribution: {len(wrong)} directions not backed by their interval, e.g. "
                   f"{wrong['edit'].iloc[0]} {wrong['kpi'].iloc[0]}")
    return out


def _per_kpi_rows_within_intervals(frame: pd.DataFrame, table: str, key: tuple[str, str], value: tuple[str, str],
                                   low: str, high: str, tolerance: float) -> list[str]:
    """One row per (key column, kpi) and low <= value <= high where all three are known. key / value: (column,
    what a message calls it)."""
    out = []
    (key_col, key_name), (value_col, value_name) = key, value
    dup = frame[frame.duplicated([key_col, "kpi"])]
    if len(dup):
        out.append(f"{table}: {key_name} {dup[key_col].iloc[0]} has {dup['kpi'].iloc[0]} twice")
    has = frame.dropna(subset=[value_col, low, high])
    bad = has[(has[low] > has[value_col] + tolerance) | (has[value_col] > has[high] + tolerance)]
    if len(bad):
        out.append(f"{table}: {len(bad)} {value_name} outside their interval, e.g. {bad[key_col].iloc[0]}")
    return out


predictions_invariants = table_check(MARTS_PREDICTIONS.key, MARTS_PREDICTIONS, problems_predictions,
                                      "predictions_invariants")
element_attribution_invariants = table_check(MARTS_ELEMENT_ATTRIBUTION.key, MARTS_ELEMENT_ATTRIBUTION,
                                              problems_element_attribution, "element_attribution_invariants")
