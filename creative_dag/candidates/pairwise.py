"""Pairwise choice between candidates, with reasons, and its evaluation on history (docs/candidates.md).

Creative4U's idea (choose between two creatives and say why) without an LLM: the verdict for a pair
comes from the two candidates' forecasts of the composite outcome score (log conversions per
impression relative to the account), read against the noise of such differences on past pairs;
the reasons are the interpretable attributes, blocks and DO / DON'T rules in which the two differ,
each with the as-of evidence of the account's own past creatives.

P(A beats B) = Φ((forecast_A − forecast_B) / σ), σ = root mean square of (realised − forecast)
differences over past same-account, same-week pairs known before the as-of date. The verdict
abstains when max(P, 1 − P) < `min_confidence`. Everything is antisymmetric by construction:
(B, A) has the same winner, margin −m and probability 1 − P.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag.candidates.assess import Assessment, historical_pairs, indicator_holds
from creative_dag.marts.attributes import describe_indicator

PAIR_COLUMNS = ("candidate_a", "candidate_b", "name_a", "name_b", "winner", "predicted_better", "margin",
                "relative_margin", "p_a_better", "confidence", "abstain", "reasons", "verdict")


@dataclass(frozen=True)
class PairConfig:
    """min_confidence: abstain below this probability for the predicted winner; margin: realised score
    difference that makes a historical pair a real choice (0.1 ≈ 10 % more conversions per impression);
    max_reasons: attribute reasons quoted per pair; min_support: creatives needed on each side of an
    attribute before its evidence is quoted."""

    min_confidence: float = 0.55
    margin: float = 0.1
    max_reasons: int = 3
    min_support: int = 5


def probability(margin: float, sigma: float) -> float:
    """P(A beats B) for a forecast margin A − B and pair noise σ (0.5 when σ is unknown)."""
    from scipy.stats import norm

    if not np.isfinite(margin) or not np.isfinite(sigma) or sigma <= 0:
        return 0.5
    return float(norm.cdf(margin / sigma))


Reason = tuple[str, str | None]  # (text, the candidate_id it speaks for; None for a neutral one)


def pair_verdict(a: Mapping, b: Mapping, sigma: float, reasons: list[Reason], config: PairConfig) -> dict:
    """One verdict row for the ordered pair (a, b); a, b: candidate rows (candidate_id, name, forecast_score).

    The reasons that speak for the predicted better candidate come first, then those against it (a
    media buyer read 'promo_c over summer_b: …; summer_b has …' as promo_c's justification), then neutral
    ones (where the two look alike or different)."""
    margin = float(a["forecast_score"] - b["forecast_score"])
    p = probability(margin, sigma)
    confidence = max(p, 1.0 - p)
    better = a if margin > 0 else b if margin < 0 else None
    abstain = better is None or confidence < config.min_confidence
    winner = None if abstain else better["candidate_id"]
    if better is None:
        verdict = f"{a['name']} vs {b['name']}: the same forecast; no preference"
    elif abstain:
        verdict = (f"{a['name']} vs {b['name']}: too close to call ({better['name']} ahead by "
                   f"{_percent(margin)} predicted conversions per impression, P = {confidence:.2f})")
    else:
        other = b if better is a else a
        verdict = (f"{better['name']} over {other['name']}: {_percent(margin)} more predicted "
                   f"conversions per impression (P = {confidence:.2f})")
    texts = _ordered_reasons(reasons, None if better is None else better["candidate_id"])
    if texts:
        verdict += ". " + "; ".join(texts)
    return {"candidate_a": a["candidate_id"], "candidate_b": b["candidate_id"], "name_a": a["name"],
            "name_b": b["name"], "winner": winner,
            "predicted_better": None if better is None else better["candidate_id"], "margin": margin,
            "relative_margin": float(np.expm1(margin)), "p_a_better": p, "confidence": confidence,
            "abstain": bool(abstain), "reasons": texts, "verdict": verdict}


def _percent(margin: float) -> str:
    """|e^margin − 1| as a percentage; one decimal under 1 % ('ahead by 0 %' read as a tie)."""
    x = abs(float(np.expm1(margin))) * 100
    return f"{x:.0f} %" if x >= 1 else f"{x:.1f} %"


def _ordered_reasons(reasons: list[Reason], better: str | None) -> list[str]:
    """Texts for the predicted better first, then 'against: …', then the neutral ones (order kept within each)."""
    if better is None:
        return [text for text, _ in reasons]
    pro = [text for text, side in reasons if side == better]
    con = [f"against: {text}" for text, side in reasons if side is not None and side != better]
    return pro + con + [text for text, side in reasons if side is None]


def pair_table(assessment: Assessment, config: PairConfig | None = None,
               block_tables: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every unordered pair of assessed candidates (a < b by id), with verdict and reasons."""
    config = config or PairConfig()
    cands = assessment.candidates
    cands = cands[np.isfinite(pd.to_numeric(cands.get("forecast_score"), errors="coerce"))] \
        if "forecast_score" in cands.columns else cands.iloc[0:0]
    sigma = assessment.calibration.get("pair_sigma", float("nan"))
    if not np.isfinite(sigma):  # no past pairs yet: two independent errors of the interval's size
        q = assessment.calibration.get("half_width_score", float("nan"))
        sigma = float(np.sqrt(2.0) * q / 1.2816) if np.isfinite(q) else float("nan")
    rows = []
    recs = cands.sort_values("candidate_id").to_dict("records")
    for a, b in itertools.combinations(recs, 2):
        rows.append(pair_verdict(a, b, sigma, pair_reasons(a, b, assessment, config, block_tables), config))
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def final_order(candidates: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Candidates ranked by forecast score, with decided wins and losses from the pair verdicts."""
    out = candidates.copy()
    wins = pairs["winner"].dropna().value_counts() if len(pairs) else pd.Series(dtype=int)
    decided = pairs[~pairs["abstain"]] if len(pairs) else pairs
    losers = pd.concat([decided.loc[decided["winner"] == decided["candidate_a"], "candidate_b"],
                        decided.loc[decided["winner"] == decided["candidate_b"], "candidate_a"]]) \
        if len(decided) else pd.Series(dtype=object)
    out["wins"] = out["candidate_id"].map(wins).fillna(0).astype(int)
    out["losses"] = out["candidate_id"].map(losers.value_counts()).fillna(0).astype(int)
    score = pd.to_numeric(out.get("forecast_score"), errors="coerce")
    out["rank"] = score.rank(ascending=False, method="min").astype("Int64")
    return out.sort_values(["rank", "candidate_id"], na_position="last").reset_index(drop=True)


# -- reasons -----------------------------------------------------------------------------------------
def pair_reasons(a: Mapping, b: Mapping, assessment: Assessment, config: PairConfig,
                 block_tables: Mapping[str, pd.DataFrame] | None = None) -> list[Reason]:
    """Attributes (with the account's as-of evidence), rules and blocks in which a and b differ, each with the
    candidate it speaks for. The texts name candidates, not positions, so (a, b) and (b, a) give the same."""
    reasons = _attribute_reasons(a, b, assessment, config)
    reasons += _rule_reasons(a, b, assessment.rules)
    block = _block_reason(a, b, block_tables)
    if block:
        reasons.append((block, None))
    return reasons


def _attribute_reasons(a: Mapping, b: Mapping, assessment: Assessment, config: PairConfig) -> list[Reason]:
    ev = assessment.evidence
    attrs = assessment.attributes
    if ev is None or ev.empty or attrs is None or attrs.empty:
        return []
    pair = attrs.set_index("creative_id").reindex([a["candidate_id"], b["candidate_id"]])
    account = a.get("account_id") if a.get("account_id") == b.get("account_id") else None
    scoped = ev[ev["scope"] == account] if account is not None else ev.iloc[0:0]
    pooled = ev[ev["scope"] == "ALL"]
    medians = {}
    found = []
    for _, e in pd.concat([scoped, pooled[~pooled["indicator"].isin(scoped["indicator"])]]).iterrows():
        attribute, _, value = e["indicator"].partition("=")
        if attribute not in pair.columns:
            continue
        if value == "high":
            medians[attribute] = float(pd.to_numeric(attrs[attribute], errors="coerce").median())
        held = indicator_holds(pair, attribute, value, medians)
        if held.isna().any() or held.iloc[0] == held.iloc[1]:
            continue
        has = a if held.iloc[0] == 1 else b
        other = b if has is a else a
        speaks_for = has["candidate_id"] if e["score_diff"] > 0 else other["candidate_id"] if e["score_diff"] < 0 else None
        where = f"in {e['scope']}" if e["scope"] != "ALL" else "across accounts"
        lift = e["ctr_lift"]
        text = (f"{has['name']} has {describe_indicator(attribute, value)} "
                f"(outcome {np.expm1(e['score_diff']) * 100:+.0f} %, CTR {lift * 100:+.0f} % {where}, "
                f"{int(e['n_with'])} creatives with it)")
        # Detected elements (face, colour, text, CTA) before the CNN's ImageNet tags, which mostly restate the
        # product an account sells.
        found.append((attribute.startswith("tag_"), -abs(e["score_diff"]), text, speaks_for))
    found.sort(key=lambda f: f[:3])
    return [(text, side) for *_, text, side in found[: config.max_reasons]]


def _rule_reasons(a: Mapping, b: Mapping, rules: pd.DataFrame) -> list[Reason]:
    """The DO / DON'T findings one candidate meets or breaks and the other does not. A finding is one per
    scope: the same finding name can hold across accounts (ALL) and within the pair's account, so statuses
    are matched on (scope, finding)."""
    if rules is None or rules.empty:
        return []
    out = []
    key = ["scope", "finding"]
    rules = rules.drop_duplicates(["candidate_id", *key])
    status_a = rules[rules["candidate_id"] == a["candidate_id"]].set_index(key)["status"].to_dict()
    status_b = rules[rules["candidate_id"] == b["candidate_id"]].set_index(key)["status"].to_dict()
    for scope, finding in sorted(set(status_a) & set(status_b)):
        if status_a[scope, finding] == status_b[scope, finding]:
            continue
        row = rules[(rules["scope"] == scope) & (rules["finding"] == finding)].iloc[0]
        where = "across accounts" if scope == "ALL" else f"in {scope}"
        for who, other, status in ((a, b, status_a[scope, finding]), (b, a, status_b[scope, finding])):
            if status in ("meets", "breaks"):  # has a DO's element (good for it) or a DON'T's (good for the other)
                text = (f"{who['name']} {status} {row['recommendation']} '{finding}' {where} "
                        f"({row['metric']} {row['lift'] * 100:+.0f} %)")
                out.append((text, who["candidate_id"] if status == "meets" else other["candidate_id"]))
    return out


def _block_reason(a: Mapping, b: Mapping, block_tables: Mapping[str, pd.DataFrame] | None) -> str | None:
    """Where the two look different and where alike: per-block cosine of the pair."""
    if not block_tables:
        return None
    from creative_dag.marts.block_vectors import BlockVectors

    vectors = BlockVectors.from_tables([a["candidate_id"], b["candidate_id"]], block_tables)
    sims = {}
    for block, mat in vectors.blocks.items():
        if vectors.present[block].all():
            sims[block] = float(mat[0] @ mat[1])
    if not sims:
        return None
    low = min(sims, key=sims.get)
    high = max(sims, key=sims.get)
    text = f"they differ most in {low} (similarity {sims[low]:.2f})"
    if high != low:
        text += f" and are most alike in {high} ({sims[high]:.2f})"
    return text


# -- evaluation on history -----------------------------------------------------------------------------
EVAL_COLUMNS = ("method", "window", "n_pairs", "accuracy", "abstain_rate", "accuracy_decided", "min_confidence",
                "sigma")


def evaluate_pairs(predictions: pd.DataFrame, oracle: Mapping[str, float] | None = None,
                   config: PairConfig | None = None) -> pd.DataFrame:
    """Historical pairs (same account, same launch week, realised scores differing by more than the margin),
    each side's forecast as of its own launch (`marts.predictions`): forced-choice accuracy, abstain rate and
    accuracy on the decided pairs, per window, for the served forecast, the context-only model, a coin flip
    (its expectation) and — on generated scenarios — the ground truth's expected outcome (the oracle).
    σ of each method is calibrated on its validation pairs."""
    config = config or PairConfig()
    p = predictions[(predictions["kpi"] == "score") & predictions["window"].isin(["validation", "test"])].copy()
    p["realised"] = pd.to_numeric(p["realised"], errors="coerce")
    p = p[np.isfinite(p["realised"])]
    methods = {"served forecast": "forecast", "context only": "context_forecast"}
    if oracle:
        p["oracle"] = p["creative_id"].map(oracle).astype(float)
        methods["oracle (ground truth)"] = "oracle"
    rows = []
    for method, column in methods.items():
        if column not in p.columns or not np.isfinite(pd.to_numeric(p[column], errors="coerce")).any():
            continue
        q = p.assign(forecast=pd.to_numeric(p[column], errors="coerce"))
        q = q[np.isfinite(q["forecast"])]
        calib = historical_pairs(q[q["window"] == "validation"], margin=0.0)
        err = (calib["realised_a"] - calib["realised_b"]) - (calib["forecast_a"] - calib["forecast_b"])
        sigma = float(np.sqrt(np.mean(err ** 2))) if len(err) >= 20 else float("nan")
        for window in ("validation", "test"):
            pairs = historical_pairs(q[q["window"] == window], config.margin)
            rows.append(_score_pairs(method, window, pairs, sigma if method != "oracle (ground truth)" else 0.0,
                                     config.min_confidence if method != "oracle (ground truth)" else 0.5))
    for window in ("validation", "test"):
        n = len(historical_pairs(p[p["window"] == window], config.margin))
        rows.append({"method": "random (expected)", "window": window, "n_pairs": n, "accuracy": 0.5,
                     "abstain_rate": 0.0, "accuracy_decided": 0.5, "min_confidence": 0.5, "sigma": np.nan})
    return pd.DataFrame(rows, columns=list(EVAL_COLUMNS))


def _score_pairs(method: str, window: str, pairs: pd.DataFrame, sigma: float, min_confidence: float) -> dict:
    n = len(pairs)
    if not n:
        return {"method": method, "window": window, "n_pairs": 0, "accuracy": np.nan, "abstain_rate": np.nan,
                "accuracy_decided": np.nan, "min_confidence": min_confidence, "sigma": sigma}
    margin = (pairs["forecast_a"] - pairs["forecast_b"]).to_numpy(float)
    truth = np.sign((pairs["realised_a"] - pairs["realised_b"]).to_numpy(float))
    correct = np.sign(margin) == truth
    if sigma > 0 and np.isfinite(sigma):
        from scipy.stats import norm

        p = norm.cdf(margin / sigma)
        decided = np.maximum(p, 1 - p) >= min_confidence
    else:  # the oracle (σ = 0) decides every pair it can order
        decided = margin != 0
    decided &= margin != 0
    return {"method": method, "window": window, "n_pairs": n, "accuracy": float(correct.mean()),
            "abstain_rate": float(1 - decided.mean()),
            "accuracy_decided": float(correct[decided].mean()) if decided.any() else np.nan,
            "min_confidence": min_confidence, "sigma": sigma}


def confidence_sweep(predictions: pd.DataFrame, thresholds: tuple[float, ...] = (0.5, 0.6, 0.65, 0.7, 0.8),
                     margin: float = 0.1) -> pd.DataFrame:
    """The served forecast's test-window abstain rate and accuracy on decided pairs per threshold."""
    rows = []
    for t in thresholds:
        table = evaluate_pairs(predictions, None, PairConfig(min_confidence=t, margin=margin))
        rows.append(table[(table["method"] == "served forecast") & (table["window"] == "test")])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(EVAL_COLUMNS))
