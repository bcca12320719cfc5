"""Does the recommendations mart meet its goals (issue 14) beyond the seeds it was tuned on?

Not a test: a measurement. Generates the recommendation scenarios of
tests/test_marts_recommendations.py (600 creatives x 120 days, no images) and runs
`marts.recommendations.recommend` at default `RecommendationParams` on each, scored by the test's
`_goal_figures`: planted element effects >= 15 % recovered exactly once with the right sign in their
scope, duplicates, findings with no planted cause, rows per scope. Three groups: "tuned-on" (the
seeds the tests use: 0, 3, 5 in fixtures, 11, 12, 21, 22, 23 in the slow test), "held-out" (31-34,
used by no test, but read by the stops that changed the method since) and "held-out-2" (41-52, added
2026-12-07 and not used to choose anything: the variants and disguise in turn). For each missed
effect it prints what the table and the screening (`attribute_effects`) say about the planted
attribute in its scope and metric, so a reader sees at which step it was lost. Results:
bench/results/recommendations.json.

    .venv/bin/python bench/recommendations.py [--seeds 0 31] [--out bench/results/recommendations.json]

About 5 s per seed on 2 cores (most of it generating the scenario; `recommend` itself 1-2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from test_marts_recommendations import (  # tests/ must be on sys.path first
    MIN_PLANTED,
    RENAMED,
    VARIANT_1,
    VARIANT_2,
    _disguised,
    _goal_figures,
    _scenario,
)

from creative_dag.marts.recommendations import (
    RecommendationParams,
    attribute_effects,
    recommend,
)

# seed -> (group, effects variant name, disguised): the seeds of the tests, then four held out.
SCENARIOS: dict[int, tuple[str, str, bool]] = {
    0: ("tuned-on", "default", False), 3: ("tuned-on", "VARIANT_1", True), 5: ("tuned-on", "VARIANT_2", False),
    11: ("tuned-on", "default", False), 12: ("tuned-on", "default", False), 21: ("tuned-on", "VARIANT_1", True),
    22: ("tuned-on", "VARIANT_2", True), 23: ("tuned-on", "VARIANT_2", False),
    31: ("held-out", "default", False), 32: ("held-out", "VARIANT_1", True), 33: ("held-out", "VARIANT_2", True),
    34: ("held-out", "VARIANT_2", False),
    **{seed: ("held-out-2", ("default", "VARIANT_1", "VARIANT_2")[(seed - 41) % 3], (seed - 41) % 2 == 1)
       for seed in range(41, 53)},
}
EFFECTS: dict[str, list[dict] | None] = {"default": None, "VARIANT_1": VARIANT_1, "VARIANT_2": VARIANT_2}
TABLE_COLUMNS = ("kind", "recommendation", "attribute", "value", "attribute_b", "value_b", "metric", "lift", "q_value")


def seen_as(attribute: str, value: object, disguised: bool) -> tuple[str, str]:
    """The (column, level) the method sees for a planted attribute = value: `_disguised` renames
    columns and reverses non-boolean levels; indicators spell booleans `true`."""
    if isinstance(value, bool):
        return (RENAMED[attribute] if disguised else attribute), str(value).lower()
    level = f"{str(value)[::-1]}_{len(str(value))}" if disguised else str(value)
    return (RENAMED[attribute] if disguised else attribute), level


def lost_at(found_times: int, column: str, screening: list[dict], screened: bool, rows: list[dict]) -> str:
    """A one-line guess at the step that lost the effect (the rows printed beside it are the evidence).
    screened: the indicator passed screening in some metric (as `_representatives` lets a cause on)."""
    if found_times > 1:
        return f"found {found_times} times (duplicate findings)"
    if not screening:
        return "not tested in screening (indicator dropped: support / levels)"
    if not screened:
        return "screening (q > fdr or |lift| < min_lift in every metric)"
    # Rows of another level of the attribute say nothing about this one.
    levels = {s["value"] for s in screening}
    rows = [r for r in rows if (r["attribute"] == column and r["value"] in levels)
            or (r["attribute_b"] == column and r["value_b"] in levels)]
    if not rows:
        return "joint model / finding filters (screened, but no row for the level in the table)"
    if all(r["recommendation"] == "TEST" for r in rows):
        return "finding filters (only a TEST row for the level)"
    return "row present but not matched to the planted effect (other level, sign or restated elsewhere)"


def explain_miss(miss: tuple, effect: dict, table: pd.DataFrame, attrs: pd.DataFrame, perf: pd.DataFrame,
                 disguised: bool, screen: pd.DataFrame | None, p: RecommendationParams) -> tuple[dict, pd.DataFrame]:
    attribute, value, scope, found_times = miss
    column, level = seen_as(attribute, value, disguised)
    in_scope = table[(table["scope"] == scope) & ((table["attribute"] == column) | (table["attribute_b"] == column))]
    rows = in_scope[list(TABLE_COLUMNS)].to_dict("records")
    if screen is None:  # screened only when something is missed; recommend() computes the same internally
        screen = attribute_effects(attrs, perf, p)
    s = screen[(screen["scope"] == scope) & (screen["attribute"] == column) & (screen["metric"] == effect["metric"])]
    # A two-level column is tested on its rarer level only: then the other level (the mirror) is shown.
    s = s[s["value"] == level] if (s["value"] == level).any() else s
    screening = s[["value", "lift", "p_value", "q_value"]].to_dict("records")
    any_metric = screen[(screen["scope"] == scope) & (screen["attribute"] == column) & screen["value"].isin(s["value"])]
    screened = bool(((any_metric["q_value"] <= p.fdr) & (any_metric["lift"].abs() >= p.min_lift)).any())
    info = {"attribute": attribute, "value": value, "seen_as": f"{column}={level}", "scope": scope,
            "metric": effect["metric"], "multiplier": effect["multiplier"], "found_times": found_times,
            "table_rows": rows, "screening": screening,
            "lost_at": lost_at(found_times, column, screening, screened, rows)}
    return info, screen


def run_seed(seed: int, work: Path, p: RecommendationParams) -> dict:
    group, variant, disguised = SCENARIOS[seed]
    truth, attrs, perf = _scenario(work / f"seed{seed}", seed, EFFECTS[variant])
    attrs = _disguised(attrs, seed) if disguised else attrs
    start = time.perf_counter()
    table = recommend(attrs, perf, p)
    seconds = time.perf_counter() - start
    fig = _goal_figures(table, truth, attrs, perf)
    planted = {(e["attribute"], str(e["value"]), scope): e for e in truth["effects"]
               if abs(np.log(e["multiplier"])) >= MIN_PLANTED for scope in e["accounts"] or ["ALL"]}
    screen, misses = None, []
    for miss in fig["missed"]:
        info, screen = explain_miss(miss, planted[miss[0], str(miss[1]), miss[2]], table, attrs, perf, disguised,
                                    screen, p)
        misses.append(info)
    return {"seed": seed, "group": group, "effects": variant, "disguised": disguised, "planted_ge_15pct": len(planted),
            "recovered": len(fig["recovered"]), "missed": len(fig["missed"]), "duplicates": fig["duplicates"],
            "findings": fig["n_findings"], "no_cause": fig["no_cause"], "max_rows_per_scope": fig["max_rows_per_scope"],
            "seconds": round(seconds, 1), "recovered_effects": [list(map(str, r[:3])) for r in fig["recovered"]],
            "missed_effects": misses}


def pooled(runs: list[dict]) -> dict:
    rec, mis, findings, no_cause = (sum(r[k] for r in runs) for k in ("recovered", "missed", "findings", "no_cause"))
    return {"seeds": [r["seed"] for r in runs], "recovered": rec, "missed": mis, "recall": rec / max(rec + mis, 1),
            "duplicates": sum(r["duplicates"] for r in runs), "findings": findings, "no_cause": no_cause,
            "no_cause_share": no_cause / max(findings, 1), "max_rows_per_scope": max(r["max_rows_per_scope"] for r in runs),
            "seconds": round(sum(r["seconds"] for r in runs), 1)}


def print_misses(run: dict) -> None:
    for m in run["missed_effects"]:
        print(f"  seed {run['seed']} missed {m['attribute']}={m['value']} ({m['seen_as']}), {m['scope']}, {m['metric']} "
              f"x{m['multiplier']}: lost at {m['lost_at']}")
        for s in m["screening"]:
            print(f"      screening {m['metric']} {m['seen_as'].partition('=')[0]}={s['value']}: lift {s['lift']:+.3f}, "
                  f"p {s['p_value']:.3g}, q {s['q_value']:.3g}")
        for r in m["table_rows"]:
            pair = f" & {r['attribute_b']}={r['value_b']}" if r["kind"] == "combination" else ""
            print(f"      table {r['recommendation']} {r['attribute']}={r['value']}{pair} ({r['metric']}): "
                  f"lift {r['lift']:+.3f}, q {r['q_value']:.3g}")
        if not m["table_rows"]:
            print("      table: no row for this attribute in this scope")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recommendations.json")
    args = parser.parse_args()
    p = RecommendationParams()
    work = Path(tempfile.mkdtemp(prefix="bench_recommendations_"))
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(seed, work, p))
        print({k: v for k, v in runs[-1].items() if not k.endswith("_effects")}, flush=True)
    frame = pd.DataFrame([{**{k: v for k, v in r.items() if not k.endswith("_effects")},
                           "missed (attribute=value, scope, metric)": "; ".join(
                               f"{m['attribute']}={m['value']}, {m['scope']}, {m['metric']}" for m in r["missed_effects"])}
                          for r in runs])
    print(frame.to_markdown(index=False))
    totals = {g: pooled([r for r in runs if r["group"] == g]) for g in dict.fromkeys(r["group"] for r in runs)}
    totals["overall"] = pooled(runs)
    for name, t in totals.items():
        print(f"{name:>10}: recovered {t['recovered']} / missed {t['missed']} (recall {t['recall']:.3f}), duplicates "
              f"{t['duplicates']}, no cause {t['no_cause']} of {t['findings']} findings ({t['no_cause_share']:.3f}), "
              f"max rows per scope {t['max_rows_per_scope']}, {t['seconds']} s")
    print("misses:" if any(r["missed_effects"] for r in runs) else "misses: none")
    for r in runs:
        print_misses(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                                    "python": platform.python_version(), "params": "RecommendationParams() defaults",
                                    "scenario": "600 creatives x 120 days, render_images=False", "totals": totals,
                                    "per_seed": runs}, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
