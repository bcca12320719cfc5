"""One candidate batch end to end — encode, assess, pair, order — and its tables and report.

Shared by `creative-dag assess` (prints) and the `marts.candidate_assessment` / `marts.candidate_pairs`
assets (write one partition per batch), so both give the same answer for the same batch and date.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from creative_dag.candidates.assess import (
    AssessConfig,
    Assessment,
    History,
    assess,
    encode_candidates,
)
from creative_dag.candidates.batch import CandidateBatch
from creative_dag.candidates.pairwise import PairConfig, final_order, pair_table

TRUTH_FILE = "ground_truth.json"
ASSESSMENT_COLUMNS = (
    "batch", "candidate_id", "name", "status", "rank", "account_id", "as_of", "forecast_score", "lower_score",
    "upper_score", "forecast_ctr", "lower_ctr", "upper_ctr", "forecast_cvr", "lower_cvr", "upper_cvr",
    "forecast_roas", "lower_roas", "upper_roas", "wins", "losses", "similar_ids", "top_similarity",
    "repetition_risk", "repetition_of", "repetition_similarity", "identical_to", "rules_met", "rules_broken",
    "candidate_notes", "n_train", "blocks", "sha256")


@dataclass
class BatchResult:
    batch: CandidateBatch
    assessment: Assessment
    pairs: pd.DataFrame
    ordered: pd.DataFrame
    seconds: float = 0.0
    models_loaded: tuple[str, ...] = ()  # blocks whose model this assessment loaded (the rest read the cache)


def assess_batch(history: History, batch: CandidateBatch, settings: Any, as_of: dt.date | None = None,
                 config: AssessConfig | None = None, pair_config: PairConfig | None = None,
                 log: Callable[[str], Any] | None = None, store: Any = None, models: Any = None) -> BatchResult:
    """settings: `EncoderSettings` (the same models and cache as the encoder assets).

    store: the embedding store (`EmbeddingStore`); with it a block its encode step recorded with these settings
    loads its model only for a candidate image or text that is not in the embedding cache, so assessing the
    same batch again (every run of the pipeline does) loads no model.
    models: the run's `LoadedModels`, whose encoders (loaded by this run's encode steps) are reused.
    """
    import time

    from creative_dag.resources.models import lazy_blocks

    started = time.perf_counter()
    as_of = as_of or history.default_as_of()
    encoders = lazy_blocks(list(history.tables), settings, store, log, models) if len(batch.items) else {}
    tables = encode_candidates(batch, encoders, as_of, settings.cache(), log=log)
    loaded = tuple(b for b, e in encoders.items() if getattr(e, "is_loaded", True))
    if log and encoders:
        log(f"candidates: model(s) loaded for {', '.join(loaded)}" if loaded else
            "candidates: every candidate image and text was in the embedding cache; no model loaded")
    assessment = assess(history, batch, tables, as_of, config)
    pairs = pair_table(assessment, pair_config, tables)
    ordered = final_order(assessment.candidates, pairs) if len(assessment.candidates) else assessment.candidates
    return BatchResult(batch, assessment, pairs, ordered, time.perf_counter() - started, loaded)


def assessment_rows(result: BatchResult) -> pd.DataFrame:
    """`marts.candidate_assessment` rows of the batch: assessed candidates in rank order, then rejected files."""
    ordered = result.ordered.copy()
    ordered["batch"] = result.batch.batch
    ordered["status"] = "assessed"
    problems = result.batch.problems
    rejected = pd.DataFrame({"batch": result.batch.batch, "candidate_id": None, "name": problems["candidate"],
                             "status": problems["reason"], "candidate_notes": problems["detail"]})
    out = pd.concat([ordered, rejected], ignore_index=True) if len(rejected) else ordered
    for c in ASSESSMENT_COLUMNS:
        if c not in out.columns:
            out[c] = None
    out = out[list(ASSESSMENT_COLUMNS)].copy()
    # Typed even when every value is empty or NULL, so BI tools that remember column types see the same
    # schema for every batch (DuckDB would type an all-NULL column "NULL").
    for c in ("similar_ids", "rules_met", "rules_broken"):
        out[c] = pd.Series([[str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else [] for v in out[c]],
                           dtype=pd.ArrowDtype(pa.list_(pa.string())), index=out.index)
    for c in ("batch", "candidate_id", "name", "status", "account_id", "repetition_risk", "repetition_of",
              "identical_to", "candidate_notes", "blocks", "sha256"):
        out[c] = out[c].astype("string")
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["rank"] = pd.to_numeric(out["rank"], errors="coerce").astype("Int64")
    for c in ("wins", "losses", "n_train"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
    return out


def pair_rows(result: BatchResult) -> pd.DataFrame:
    out = result.pairs.copy()
    out.insert(0, "batch", result.batch.batch)
    out["reasons"] = pd.Series([[str(x) for x in v] for v in out["reasons"]],
                               dtype=pd.ArrowDtype(pa.list_(pa.string())), index=out.index)
    for c in ("winner", "predicted_better"):
        out[c] = out[c].astype("string")
    return out


def read_truth(folder: str | Path) -> dict[str, float] | None:
    """name -> expected outcome score from a generated batch's ground_truth.json (None when absent)."""
    path = Path(folder) / TRUTH_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text()).get("candidates", {})
    return {k: v["expected_outcome"] for k, v in data.items() if v.get("expected_outcome") is not None} or None


def truth_check(result: BatchResult, truth: dict[str, float]) -> dict[str, float]:
    """Against a generated batch's ground truth: rank correlation of the forecasts, and accuracy of the
    decided pair verdicts (the ground truth's better candidate won)."""
    from scipy.stats import spearmanr

    c = result.ordered
    expected = c["name"].map(truth)
    ok = expected.notna() & pd.to_numeric(c.get("forecast_score"), errors="coerce").notna()
    out = {"candidates_with_truth": int(ok.sum())}
    if ok.sum() >= 3:
        out["spearman_vs_truth"] = float(spearmanr(c.loc[ok, "forecast_score"], expected[ok]).statistic)
    p = result.pairs
    if len(p):
        ta, tb = p["name_a"].map(truth), p["name_b"].map(truth)
        decided = ~p["abstain"] & ta.notna() & tb.notna() & (ta != tb)
        right = np.where(ta > tb, p["candidate_a"], p["candidate_b"])
        out["pairs_decided"] = int(decided.sum())
        out["abstain_rate"] = float(p["abstain"].mean())
        if decided.any():
            out["decided_accuracy_vs_truth"] = float((p.loc[decided, "winner"] == right[decided]).mean())
    return out


def format_report(result: BatchResult) -> str:
    """The terminal report of `creative-dag assess`."""
    a = result.assessment
    lines = [(f"batch {result.batch.batch}: {len(a.candidates)} candidate(s) assessed as of {a.as_of} "
              f"({result.seconds:.0f} s)")]
    for note in a.notes:
        lines.append(f"note: {note}")
    for p in result.batch.problems.itertuples(index=False):
        lines.append(f"not assessed: {p.candidate}: {p.reason} ({p.detail})")
    if a.candidates.empty:
        return "\n".join(lines)
    lines.append("")
    lines.append("final order (forecast of the outcome score, 80 % interval; CTR; wins/losses of decided pairs)")
    for r in result.ordered.itertuples(index=False):
        ctr = getattr(r, "forecast_ctr", np.nan)
        lines.append(f"{r.rank:>3}. {r.name}  score {r.forecast_score:.2f} [{_num(r.lower_score)} … "
                     f"{_num(r.upper_score)}]  CTR {_pct(ctr)}  {r.wins}W/{r.losses}L  account {_text(r.account_id)}")
        lines.append(f"     similar past: {', '.join(r.similar_ids[:3]) if isinstance(r.similar_ids, list) else '-'}"
                     f" (top similarity {_num(r.top_similarity)})")
        risk = ("repetition risk not checked (no account history to compare with)" if r.repetition_risk == "unknown"
                else f"repetition risk {r.repetition_risk}")
        if r.identical_to:
            risk += f": identical to past creative {r.identical_to}"
        elif isinstance(r.repetition_of, str):
            risk += f" (closest running creative {r.repetition_of}, similarity {r.repetition_similarity:.2f})"
        lines.append(f"     {risk}")
        if len(a.rules):  # every candidate, once the account has findings: none met reads "-"
            lines.append(f"     meets DO: {', '.join(r.rules_met) or '-'}; breaks DON'T: {', '.join(r.rules_broken) or '-'}")
        if r.candidate_notes:
            lines.append(f"     {r.candidate_notes}")
    if len(result.pairs):
        lines.append("")
        lines.append("pairwise verdicts")
        for v in result.pairs["verdict"]:
            lines.append(f"- {v}")
    return "\n".join(lines)


def to_json(result: BatchResult) -> dict[str, Any]:
    def records(frame: pd.DataFrame) -> list[dict]:
        frame = frame.copy()
        for c in frame.columns:  # a day reads "2026-06-24" as the top-level as_of does, not "…T00:00:00.000"
            values = frame[c]
            if pd.api.types.is_datetime64_any_dtype(values) and (values.dropna() == values.dropna().dt.normalize()).all():
                frame[c] = values.dt.strftime("%Y-%m-%d").where(values.notna(), None)
            elif values.dtype == object and values.map(lambda v: isinstance(v, dt.date)).any():
                frame[c] = values.map(lambda v: v.isoformat() if isinstance(v, dt.date) else v)
        return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))

    return {"batch": result.batch.batch, "as_of": str(result.assessment.as_of), "notes": result.assessment.notes,
            "candidates": records(assessment_rows(result)), "pairs": records(pair_rows(result)),
            "similar": records(result.assessment.similar), "rules": records(result.assessment.rules)}


def _text(v: Any) -> str:
    return "-" if v is None or (not isinstance(v, str) and pd.isna(v)) or str(v) in ("", "None") else str(v)


def _num(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{float(v):.2f}"


def _pct(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{100 * float(v):.2f} %"
