"""Does marts.element_attribution recover the planted element effects of a generated scenario?

Reads the table from a materialised home and the planted effects from the landing folder's
ground_truth.json (a `creative-dag generate` / `make demo` export), maps each planted effect to the
edits that reach it, and prints, per edit and KPI: expected sign (+, -, 0 = nothing planted), the
measured effect with its interval and direction, and whether they agree. Results:
bench/results/attribution.json.

    .venv/bin/python bench/attribution.py --home ~/.creative_dag/demo/home --landing ~/.creative_dag/demo/landing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

# planted (attribute, value) -> {edit: +1 if the edit adds the attribute, -1 if it takes it away}; the expected
# sign of the predicted change is that times the sign of the planted effect.
REACH = {
    ("hue_family", "warm"): {"hue_warm": +1, "hue_cool": -1, "hue_neutral": -1},
    ("has_face", True): {"remove_face": -1},
    ("text_coverage", "heavy"): {"remove_text": -1},
    ("has_cta", True): {"remove_cta": -1},
}
UNPLANTED = ("brighter", "darker", "more_contrast", "less_contrast")


def expectations(truth: dict) -> dict[tuple[str, str], int]:
    """(edit, kpi) -> expected sign, from the scenario's planted effects (account-wide ones only)."""
    out: dict[tuple[str, str], int] = {}
    for effect in truth.get("effects") or truth.get("scenario", {}).get("effects", []):
        key = (effect["attribute"], effect["value"])
        if effect.get("accounts") or key not in REACH:
            continue
        sign = 1 if effect["multiplier"] > 1 else -1
        for edit, s in REACH[key].items():
            out[(edit, effect["metric"])] = s * sign
    for edit in UNPLANTED:
        for kpi in ("ctr", "cvr"):
            out.setdefault((edit, kpi), 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--landing", type=Path, required=True)
    args = parser.parse_args()
    from creative_dag.resources.warehouse import DuckDBWarehouse

    table = DuckDBWarehouse(args.home / "creative.duckdb", read_only=True).read_table("marts.element_attribution")
    truth = json.loads((args.landing / "ground_truth.json").read_text())
    expected = expectations(truth)
    rows = []
    for (edit, kpi), sign in sorted(expected.items()):
        hit = table[(table["edit"] == edit) & (table["kpi"] == kpi)]
        if hit.empty:
            continue
        r = hit.iloc[0]
        called = {"up": 1, "down": -1}.get(r["direction"], 0)
        rows.append({"edit": edit, "kpi": kpi, "expected": sign, "effect": round(float(r["effect"]), 3),
                     "ci": f"{r['ci_low']:+.3f} … {r['ci_high']:+.3f}", "direction": r["direction"], "n": int(r["n"]),
                     "sign_right": None if sign == 0 else bool((r["effect"] > 0) == (sign > 0)),
                     "agrees": called == sign})
    frame = pd.DataFrame(rows)
    planted = frame[frame["expected"] != 0]
    null = frame[frame["expected"] == 0]
    summary = {"planted_sign_right": int(planted["sign_right"].astype(bool).sum()), "planted_called": int(planted["agrees"].sum()),
               "planted": len(planted), "false_claims": int((null["direction"] != "none").sum()), "nulls": len(null)}
    print(frame.to_markdown(index=False))
    print(summary)
    out = ROOT / "bench" / "results" / "attribution.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
