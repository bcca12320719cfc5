"""Great Expectations 1.x suites, built in code and run on pandas frames with an ephemeral context.

GX is imported lazily inside `run_suite` (it takes seconds to import), so loading the Dagster
definitions never imports it. Suites are described here as plain `Expectation` specs (the GX
class name + keyword arguments) and turned into GX objects only when they run.

The dagster-ge integration pins great_expectations < 1.0, so it is not used; checks call
`run_suite` and turn the `SuiteResult` into an AssetCheckResult.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Max offending values / keys quoted per failed expectation in check metadata.
MAX_QUOTED = 20


@dataclass(frozen=True)
class Expectation:
    """One expectation: the GX 1.x class name in `great_expectations.expectations` and its kwargs."""

    type: str
    kwargs: dict[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        return f"{self.type}({args})"


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation in plain values (JSON-friendly)."""

    expectation: str          # e.g. "ExpectColumnValuesToBeBetween(column=early_ctr, min_value=0, max_value=1)"
    success: bool
    column: str | None
    unexpected_count: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteResult:
    """All outcomes of one suite run on one frame."""

    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def failures_markdown(self) -> str:
        """A markdown table of failed expectations with what they found."""
        if not self.failed:
            return "_all expectations passed_"
        lines = ["| expectation | unexpected | detail |", "|---|---|---|"]
        for o in self.failed:
            detail = "; ".join(f"{k}: {_short(v, 200)}" for k, v in o.detail.items())
            count = "" if o.unexpected_count is None else str(o.unexpected_count)
            lines.append(f"| {o.expectation} | {count} | {detail.replace('|', '/')} |")
        return "\n".join(lines)

    def to_metadata(self) -> dict[str, Any]:
        """JSON for check metadata: one entry per expectation."""
        return {
            "suite": self.suite,
            "success": self.success,
            "expectations": [
                {"expectation": o.expectation, "success": o.success,
                 "unexpected_count": o.unexpected_count, **o.detail}
                for o in self.outcomes
            ],
        }


# -- suite builders --------------------------------------------------------------------------

def columns_exactly(columns: Iterable[str]) -> Expectation:
    """The table has exactly these columns (any order): extra = leaked/denied, missing = broken."""
    return Expectation("ExpectTableColumnsToMatchSet", {"column_set": sorted(set(columns)), "exact_match": True})


def unique(column: str) -> Expectation:
    return Expectation("ExpectColumnValuesToBeUnique", {"column": column})


def not_null(column: str) -> Expectation:
    return Expectation("ExpectColumnValuesToNotBeNull", {"column": column})


def between(column: str, min_value: float | None = None, max_value: float | None = None) -> Expectation:
    """Values in [min_value, max_value]; nulls are ignored (a rate with a zero denominator is NaN)."""
    kwargs: dict[str, Any] = {"column": column}
    if min_value is not None:
        kwargs["min_value"] = min_value
    if max_value is not None:
        kwargs["max_value"] = max_value
    return Expectation("ExpectColumnValuesToBeBetween", kwargs)


def in_set(column: str, values: Sequence[Any]) -> Expectation:
    return Expectation("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)})


def feature_table_suite(expected_columns: Iterable[str], key: str = "creative_id",
                        not_null_columns: Iterable[str] = (),
                        unit_interval_columns: Iterable[str] = (),
                        non_negative_columns: Iterable[str] = ()) -> list[Expectation]:
    """Exact column set, unique non-null key, non-nulls, rates in [0, 1], non-negative values."""
    expected = list(expected_columns)
    suite = [columns_exactly(expected), unique(key), not_null(key)]
    present = set(expected)
    suite += [not_null(c) for c in not_null_columns if c in present and c != key]
    suite += [between(c, 0, 1) for c in unit_interval_columns if c in present]
    suite += [between(c, 0, None) for c in non_negative_columns if c in present]
    return suite


# -- running ---------------------------------------------------------------------------------

def run_suite(frame: pd.DataFrame, expectations: Sequence[Expectation], suite_name: str,
              index_columns: Sequence[str] = ("creative_id",)) -> SuiteResult:
    """Validate `frame` against `expectations` with an ephemeral GX context.

    Column-level expectations whose column is absent are reported as failed (with the reason)
    instead of raising, so one missing column does not hide the other results. `index_columns`
    (when present) identify offending rows in the result (e.g. which creative_id).
    """
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx  # lazy: importing GX costs seconds
    from great_expectations.data_context.types.base import ProgressBarsConfig

    runnable: list[Expectation] = []
    outcomes: list[ExpectationOutcome] = []
    for e in expectations:
        column = e.kwargs.get("column")
        if column is not None and column not in frame.columns:
            outcomes.append(ExpectationOutcome(e.describe(), False, column, None,
                                               {"error": f"column {column!r} is not in the table"}))
        else:
            runnable.append(e)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (context.data_sources.add_pandas(f"{suite_name}_source")
                        .add_dataframe_asset(f"{suite_name}_frame")
                        .add_batch_definition_whole_dataframe("whole_frame"))
    # `meta` carries our position so results map back to specs whatever order GX returns. The suite is
    # stored once with every expectation: `add_expectation` re-serialises the whole suite per call
    # (quadratic; 1.4 of 3.1 s for a 44-expectation suite).
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=[
        getattr(gx.expectations, e.type)(**e.kwargs, meta={"position": position})
        for position, e in enumerate(runnable)]))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch_definition, suite=suite))
    ids = [c for c in index_columns if c in frame.columns]
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if ids:
        result_format["unexpected_index_column_names"] = ids
    # GX validates on a positional index; a clean RangeIndex keeps unexpected indices meaningful.
    result = validation.run(batch_parameters={"dataframe": frame.reset_index(drop=True)},
                            result_format=result_format)
    for e, r in zip(runnable, _results_in_order(result, runnable)):
        outcomes.append(_outcome(e, r, ids))
    success = all(o.success for o in outcomes)
    return SuiteResult(suite=suite_name, success=success, outcomes=outcomes)


def _results_in_order(result: Any, runnable: Sequence[Expectation]) -> list[Any]:
    """GX results matched back to our specs through the `position` we put in each one's meta."""
    by_position = {int((r.expectation_config.meta or {})["position"]): r for r in result.results}
    missing = [e.describe() for i, e in enumerate(runnable) if i not in by_position]
    if missing:
        raise RuntimeError(f"Great Expectations returned no result for {missing}")
    return [by_position[i] for i in range(len(runnable))]


def _outcome(e: Expectation, r: Any, ids: Sequence[str]) -> ExpectationOutcome:
    res = dict(r.result or {})
    detail: dict[str, Any] = {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        detail["error"] = str(r.exception_info.get("exception_message"))[:500]
    mismatched = (res.get("details") or {}).get("mismatched")
    if mismatched:
        if mismatched.get("unexpected"):
            detail["unexpected_columns"] = list(mismatched["unexpected"])
        if mismatched.get("missing"):
            detail["missing_columns"] = list(mismatched["missing"])
    if not r.success:
        if res.get("partial_unexpected_list"):
            detail["unexpected_values"] = [_plain(v) for v in res["partial_unexpected_list"][:MAX_QUOTED]]
        if res.get("unexpected_index_list") and ids:
            keys = []
            for item in res["unexpected_index_list"][:MAX_QUOTED]:
                if isinstance(item, dict):
                    keys.append({k: _plain(item.get(k)) for k in ids})
            detail["unexpected_rows"] = keys
    return ExpectationOutcome(
        expectation=e.describe(),
        success=bool(r.success),
        column=e.kwargs.get("column"),
        unexpected_count=res.get("unexpected_count"),
        detail=detail,
    )


def _plain(v: Any) -> Any:
    """numpy / pandas scalars -> JSON-friendly Python values."""
    if v is None:
        return None
    if hasattr(v, "item"):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _short(v: Any, limit: int = 80) -> str:
    text = str(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"
