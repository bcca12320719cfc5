"""Does marts.element_attribution recover the planted element effects of a generated scenario?

Reads the table from a materialised home and the planted effects from the landing folder's
ground_truth.json (a `creative-dag generate` / `make demo` export), maps each planted effect to the
edits that reach it, and prints, per edit and KPI: expected sign (+, -, 0 = nothing planted), the
measured effect with its interval and direction, and whether they agree. Results:
bench/results/attribution.json.

`planted_size` is what the planted effects alone make of each edit over the creatives it was applied to
(the sample drawn as the asset draws it, `--sample-size` / `--seed`; applied where the detectors saw
what the edit needs, as the edits are): the mean of (planted multiplier after / before) - 1 from the
ground-truth attributes. An edit reaches a planted effect only through the creatives it changes:
making backgrounds neutral moves warm ones (x 1/1.15) and cool ones (x 1), removing the text helps only
the heavy-text ones. The table's `by_origin` breaks those edits down by the original's detected value,
so the bench also scores the subgroup that carries each planted effect (rows "hue_neutral from warm",
"remove_text from heavy": planted size from the same ground truth over that subgroup). The summary
counts the signs per planted effect the edit reaches (`planted_*`, pooled rows), for the edits whose
planted size is at least 15 % (`in_scope_*`), and for the carrying subgroups (`origin_*`).

    .venv/bin/python bench/attribution.py --home ~/.creative_dag/demo/home --landing ~/.creative_dag/demo/landing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
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
# edit -> whether it applies to a creative (its detected attributes, as the edits decide), and the planted
# attribute and value it leaves the creative with
APPLIES = {
    "hue_warm": lambda d: d["background_hue_family"] != "warm",
    "hue_cool": lambda d: d["background_hue_family"] != "cool",
    "hue_neutral": lambda d: d["background_hue_family"] != "neutral",
    "remove_face": lambda d: bool(d["face_present"]),
    "remove_text": lambda d: bool(d["text_present"]),
    "remove_cta": lambda d: bool(d["cta_detected"]),
}
# planted (attribute, value) -> the edits whose subgroup with that detected original carries it, and the
# detected value naming the subgroup.
ORIGIN_ROWS = {("hue_family", "warm"): [("hue_cool", "warm"), ("hue_neutral", "warm")],
               ("text_coverage", "heavy"): [("remove_text", "heavy")]}
AFTER = {"hue_warm": ("hue_family", "warm"), "hue_cool": ("hue_family", "cool"), "hue_neutral": ("hue_family", "neutral"),
         "remove_face": ("has_face", False), "remove_text": ("text_coverage", "none"), "remove_cta": ("has_cta", False)}


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


def planted_multiplier(attributes: dict, effects: list[dict], kpi: str) -> float:
    """The product of the account-wide planted multipliers on `kpi` that these true attributes carry."""
    out = 1.0
    for e in effects:
        if e["metric"] == kpi and not e.get("accounts") and attributes.get(e["attribute"]) == e["value"]:
            out *= e["multiplier"]
    return out


def planted_sizes(home: Path, truth: dict, sample_size: int, seed: int) -> dict[tuple[str, str, str], float]:
    """(edit, kpi, origin) -> mean planted change over the sampled creatives the edit applies to, origin "" for
    all of them, else only those whose detected original has that value of the edit's `by_origin` attribute."""
    from creative_dag.assets.marts import attribute_frame_of, embedding_tables_of
    from creative_dag.attribution.effects import (
        ORIGIN_COLUMNS,
        editable_cases,
        sample_creatives,
    )
    from creative_dag.resources.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    case_base = warehouse.read_table("cbr.case_base")
    ids = sample_creatives(editable_cases(case_base, embedding_tables_of(warehouse)), sample_size, seed)
    detected = attribute_frame_of(warehouse).set_index("creative_id")
    effects = truth.get("effects") or truth.get("scenario", {}).get("effects", [])
    creatives = truth["creatives"]
    out = {}
    for edit, applies in APPLIES.items():
        column, value = AFTER[edit]
        for kpi in ("ctr", "cvr"):
            ratios: dict[str, list[float]] = {}
            for cid in ids:
                if cid not in detected.index or not applies(detected.loc[cid]):
                    continue
                attrs = creatives[cid]["attributes"]
                ratio = planted_multiplier({**attrs, column: value}, effects, kpi) / planted_multiplier(attrs, effects, kpi)
                ratios.setdefault("", []).append(ratio)
                if edit in ORIGIN_COLUMNS:
                    ratios.setdefault(str(detected.loc[cid, ORIGIN_COLUMNS[edit]]), []).append(ratio)
            for origin, values in ratios.items():
                out[(edit, kpi, origin)] = float(np.mean(values) - 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--sample-size", type=int, default=30, help="the asset's sample_size (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="the asset's seed (default 0)")
    args = parser.parse_args()
    from creative_dag.resources.warehouse import DuckDBWarehouse

    table = DuckDBWarehouse(args.home / "creative.duckdb", read_only=True).read_table("marts.element_attribution")
    truth = json.loads((args.landing / "ground_truth.json").read_text())
    expected = expectations(truth)
    sizes = planted_sizes(args.home, truth, args.sample_size, args.seed)
    rows = []
    for (edit, kpi), sign in sorted(expected.items()):
        hit = table[(table["edit"] == edit) & (table["kpi"] == kpi)]
        if hit.empty:
            continue
        r = hit.iloc[0]
        called = {"up": 1, "down": -1}.get(r["direction"], 0)
        size = sizes.get((edit, kpi, ""), 0.0)
        rows.append({"edit": edit, "kpi": kpi, "expected": sign, "planted_size": round(size, 3),
                     "effect": round(float(r["effect"]), 3),
                     "ci": f"{r['ci_low']:+.3f} … {r['ci_high']:+.3f}", "direction": r["direction"], "n": int(r["n"]),
                     "sign_right": None if sign == 0 else bool((r["effect"] > 0) == (sign > 0)),
                     "agrees": called == sign})
    origin_rows = []
    for effect in truth.get("effects") or truth.get("scenario", {}).get("effects", []):
        if effect.get("accounts"):
            continue
        for edit, origin in ORIGIN_ROWS.get((effect["attribute"], effect["value"]), []):
            hit = table[(table["edit"] == edit) & (table["kpi"] == effect["metric"])]
            parts = json.loads(hit["by_origin"].iloc[0]) if len(hit) and "by_origin" in hit and \
                isinstance(hit["by_origin"].iloc[0], str) else []
            part = next((p for p in parts if p["origin"] == origin), None)
            if part is None:
                continue
            size = sizes.get((edit, effect["metric"], origin), 0.0)
            origin_rows.append({"edit": f"{edit} from {origin}", "kpi": effect["metric"], "planted_size": round(size, 3),
                                "effect": part["effect"], "ci": f"{part['ci_low']:+.3f} … {part['ci_high']:+.3f}",
                                "n": part["n"], "sign_right": bool(np.sign(part["effect"]) == np.sign(size))})
    frame = pd.DataFrame(rows)
    planted = frame[frame["expected"] != 0]
    null = frame[frame["expected"] == 0]
    summary = {"planted_sign_right": int(planted["sign_right"].astype(bool).sum()), "planted_called": int(planted["agrees"].sum()),
               "planted": len(planted), "false_claims": int((null["direction"] != "none").sum()), "nulls": len(null)}
    scope = frame[frame["planted_size"].abs() >= 0.15 - 1e-9]
    summary.update({"in_scope": len(scope), "in_scope_sign_right": int((np.sign(scope["effect"])
                                                                        == np.sign(scope["planted_size"])).sum()),
                    "in_scope_called": int(scope["agrees"].sum()),
                    "origin_rows": len(origin_rows), "origin_sign_right": sum(r["sign_right"] for r in origin_rows)})
    print(frame.to_markdown(index=False))
    if origin_rows:
        print(pd.DataFrame(origin_rows).to_markdown(index=False))
    print(summary)
    out = ROOT / "bench" / "results" / "attribution.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows, "origin_rows": origin_rows}, indent=1))


if __name__ == "__main__":
    main()
