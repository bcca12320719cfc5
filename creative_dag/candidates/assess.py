"""Assess new candidate creatives against the memory, as of a launch date (docs/candidates.md).

Each candidate becomes one more case of the case base, built by the same code as `cbr.case_base`
(`build_case_base`) from the history's tables plus the candidate's own block vectors, encoded by the
same encoders and cache as the landed creatives. Then, as of the launch date (`as_of`):

* forecast: the served forecast of `creative_dag.forecast` (its members refitted on every case
  matured before `as_of`, averaged the same way) with an interval whose half-width is the split-
  conformal quantile of `marts.predictions`' recent residuals known before `as_of`;
* evidence: the most similar past cases (as-of, with the per-block breakdown);
* repetition risk: the highest fused image similarity to the account's creatives that delivered in
  the `active_days` before `as_of`, naming that creative (and any past creative with identical bytes);
* rules: the DO / DON'T findings of `marts.recommendations` (this account or ALL) the candidate
  meets or breaks — only when those findings used no data after `as_of`.

As-of by construction: the history is cut before anything is built (creatives launched on or after
`as_of` and metric rows dated on or after it are dropped), so nothing later can reach a verdict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.blocks import DEFAULT_WEIGHTS, EMBEDDING_BLOCKS, TEXT
from creative_dag.candidates.batch import CandidateBatch
from creative_dag.catalog import (
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    MARTS_CREATIVE_FATIGUE,
    MARTS_PREDICTIONS,
    MARTS_RECOMMENDATIONS,
    RAW_DAILY_METRICS,
    RAW_IMAGES,
)
from creative_dag.cbr.backtest import AsOfLabels
from creative_dag.cbr.case_base import build_case_base
from creative_dag.cbr.context import CONTEXT_COLUMNS
from creative_dag.cbr.query import CaseMemory
from creative_dag.forecast.features import build_inputs
from creative_dag.forecast.model import (
    ForecastConfig,
    adapted_level,
    conformal_q,
    from_reporting_scale,
    input_sets,
    reporting_scale,
    served_forecast,
)
from creative_dag.forecast.targets import KPIS, kpi_targets
from creative_dag.marts.attributes import attribute_frame
from creative_dag.marts.block_vectors import BlockVectors

IMAGE_WEIGHTS = {b: w for b, w in DEFAULT_WEIGHTS.items() if b in EMBEDDING_BLOCKS and b != TEXT}
RISK_LEVELS = ("identical", "near_duplicate", "similar", "low", "unknown")


@dataclass(frozen=True)
class AssessConfig:
    """kpis: forecast KPIs; learner: the forecast's learner (the ridge with a penalty per input group by
    default: a candidate run refits once per KPI, and on real-encoder homes it ranked the test window far
    better than the plain ridge, 0.687 against 0.545 on the demo and 0.41 against 0.31 on v1, at about half
    the stack's cost; bench/forecast.py, docs/candidates.md); interval / conformal_window / interval_gamma: the interval's coverage, the recent
    residuals it is calibrated on and how fast its level adapts to past misses (as ForecastConfig);
    k_similar: past cases shown; active_days: a creative that delivered in these days before `as_of` counts
    as running (repetition risk); near_duplicate / similar: fused image similarity thresholds of the risk
    levels (the repetition mart's dup_threshold and tau)."""

    kpis: tuple[str, ...] = KPIS
    learner: str = "grouped_linear"
    interval: float = 0.8
    conformal_window: int = 50
    interval_gamma: float = 0.01
    k_similar: int = 5
    active_days: int = 14
    near_duplicate: float = 0.92
    similar: float = 0.85
    seed: int = 0

    def forecast_config(self) -> ForecastConfig:
        return ForecastConfig(kpis=self.kpis, learner=self.learner, interval=self.interval,
                              conformal_window=self.conformal_window, interval_gamma=self.interval_gamma,
                              seed=self.seed, evaluate=False,
                              workers=1)  # ridge refits take less time than starting worker processes


@dataclass
class History:
    """The warehouse tables an assessment reads (any may be empty; see `from_warehouse`)."""

    prelaunch: pd.DataFrame
    outcomes: pd.DataFrame
    daily_metrics: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    images: pd.DataFrame
    predictions: pd.DataFrame | None = None
    recommendations: pd.DataFrame | None = None
    fatigue: pd.DataFrame | None = None

    @classmethod
    def from_warehouse(cls, warehouse: Any) -> History:
        """warehouse: anything with read_optional() (the resource or a DuckDBWarehouse)."""

        def table(name: str) -> pd.DataFrame | None:
            return warehouse.read_optional(name)

        prelaunch, outcomes = table(FEATURES_PRELAUNCH), table(FEATURES_OUTCOMES)
        missing = [t for t, frame in ((FEATURES_PRELAUNCH, prelaunch), (FEATURES_OUTCOMES, outcomes)) if frame is None]
        if missing:
            raise LookupError(f"{', '.join(missing)} missing from the warehouse; materialise the pipeline first "
                              "(creative-dag materialize)")
        tables = {}
        for block in EMBEDDING_BLOCKS:
            frame = table(f"embeddings.{block}")
            if frame is not None and len(frame):
                tables[block] = frame
        daily, images = table(RAW_DAILY_METRICS), table(RAW_IMAGES)
        return cls(prelaunch=prelaunch, outcomes=outcomes,
                   daily_metrics=daily if daily is not None else
                   pd.DataFrame(columns=["creative_id", "date", "impressions", "clicks", "spend", "conversions",
                                         "revenue"]),
                   tables=tables, images=images if images is not None else pd.DataFrame(columns=["creative_id", "sha256"]),
                   predictions=table(MARTS_PREDICTIONS), recommendations=table(MARTS_RECOMMENDATIONS),
                   fatigue=table(MARTS_CREATIVE_FATIGUE))

    @property
    def horizon(self) -> dt.date | None:
        """The last metric date (the data's 'today')."""
        if self.daily_metrics.empty:
            return None
        return pd.Timestamp(pd.to_datetime(self.daily_metrics["date"]).max()).date()

    def default_as_of(self) -> dt.date:
        """The day after the last metric date: launching tomorrow."""
        h = self.horizon
        return (h + dt.timedelta(days=1)) if h else dt.date.today()

    def before(self, as_of: dt.date) -> History:
        """The history as it was on `as_of`: creatives launched before it, metric rows dated before it."""
        keep = set(self.prelaunch.loc[pd.to_datetime(self.prelaunch["launch_date"]).dt.date < as_of,
                                      "creative_id"].astype(str))

        def cut(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            if frame is None or "creative_id" not in frame.columns:
                return frame
            return frame[frame["creative_id"].astype(str).isin(keep)].reset_index(drop=True)

        daily = cut(self.daily_metrics)
        daily = daily[pd.to_datetime(daily["date"]).dt.date < as_of].reset_index(drop=True)
        return History(prelaunch=cut(self.prelaunch), outcomes=cut(self.outcomes), daily_metrics=daily,
                       tables={b: cut(t) for b, t in self.tables.items()}, images=cut(self.images),
                       predictions=cut(self.predictions), recommendations=self.recommendations, fatigue=None)


@dataclass
class Assessment:
    """candidates: one row per candidate (see `CANDIDATE_COLUMNS` in docs/candidates.md);
    similar: long table of the past cases most similar to each candidate; rules: DO / DON'T findings
    each candidate meets or breaks; attributes: the candidates' interpretable attributes (pair reasons);
    evidence: per (account, indicator) as-of outcome lifts (pair reasons); calibration: the pairwise
    noise scale; notes: what was left out and why."""

    as_of: dt.date
    candidates: pd.DataFrame
    similar: pd.DataFrame
    rules: pd.DataFrame
    attributes: pd.DataFrame
    evidence: pd.DataFrame
    calibration: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def encode_candidates(batch: CandidateBatch, encoders: Mapping[str, Any], as_of: dt.date, cache: Any = None,
                      log: Callable[[str], Any] | None = None) -> dict[str, pd.DataFrame]:
    """block -> embeddings-like frame of the candidates (creative_id = candidate_id) for every loaded encoder;
    the text block embeds headline + primary text + the OCR text the layout block read, as for landed ads."""
    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.pipeline import encode_images, encode_texts
    from creative_dag.encoders.text import compose_ad_text

    items = batch.items
    if items.empty:
        return {}
    image_items = pd.DataFrame({"creative_id": items["candidate_id"], "sha256": items["sha256"],
                                "launch_date": as_of, "image_path": items["candidate_id"]})
    out = {}
    for block, encoder in encoders.items():
        if block == TEXT:
            continue
        try:
            run = encode_images(encoder, image_items, batch.read_bytes, cache, batch_size=16, log=log)
        except ModelUnavailable as exc:  # a lazily loaded model that no longer loads
            if log:
                log(f"block {block} cannot encode the candidates now ({exc.reason}); it is left out")
            continue
        out[block] = run.frame
        if run.failed and log:
            log(f"{run.failed} candidate image(s) failed in block {block}")
    if TEXT in encoders:
        ocr = {}
        if "layout" in out and "ocr_text" in out["layout"].columns:
            ocr = dict(zip(out["layout"]["creative_id"], out["layout"]["ocr_text"], strict=True))
        texts = pd.DataFrame({"creative_id": items["candidate_id"], "sha256": items["sha256"], "launch_date": as_of,
                              "text": [compose_ad_text(h, p, ocr.get(c)) for c, h, p in
                                       zip(items["candidate_id"], items["headline"], items["primary_text"],
                                           strict=True)]})
        try:
            out[TEXT] = encode_texts(encoders[TEXT], texts, cache, log=log).frame
        except ModelUnavailable as exc:
            if log:
                log(f"block {TEXT} cannot encode the candidates now ({exc.reason}); it is left out")
    return out


def assess(history: History, batch: CandidateBatch, candidate_tables: Mapping[str, pd.DataFrame],
           as_of: dt.date | None = None, config: AssessConfig | None = None) -> Assessment:
    """Forecast, evidence, repetition risk and rules for every candidate of `batch` (see module doc).

    candidate_tables: `encode_candidates` output. A history block the candidates have no vectors for (its
    model unavailable now) is left out of the comparison, so both sides are compared on the same blocks.
    """
    config = config or AssessConfig()
    notes: list[str] = []
    horizon = history.horizon
    if as_of is not None and horizon is not None and as_of > horizon + dt.timedelta(days=1):
        # Nothing is known after the data's last day: a later launch date would count creatives still in their
        # maturity window as matured (their outcome is partial).
        notes.append(f"as-of {as_of} is after the data's last day ({horizon}): assessed with what was known on "
                     f"{horizon + dt.timedelta(days=1)}, as if launched then")
        as_of = horizon + dt.timedelta(days=1)
    as_of = as_of or history.default_as_of()
    past = history.before(as_of)
    if past.prelaunch.empty:
        raise LookupError(f"no creative launched before {as_of}; the memory has nothing to compare candidates "
                          "with (choose a later --as-of or ingest history first)")
    items = batch.items.copy()
    if items.empty:
        return Assessment(as_of, empty_candidates(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                          notes=["no readable candidate image"])
    blocks = [b for b in past.tables if b in candidate_tables and len(candidate_tables[b])]
    left_out = [b for b in past.tables if b not in blocks]
    if left_out:
        notes.append(f"blocks left out (no candidate vectors now): {', '.join(left_out)}")
    tables = {b: pd.concat([past.tables[b], candidate_tables[b]], ignore_index=True) for b in blocks}
    cand_prelaunch = _candidate_prelaunch(items, past.prelaunch, as_of)
    prelaunch = pd.concat([past.prelaunch, cand_prelaunch], ignore_index=True)
    cb = build_case_base(prelaunch, past.outcomes, tables, past.daily_metrics).frame
    _require_a_matured_case(cb, set(items["candidate_id"]), as_of)
    attributes = attribute_frame(tables, prelaunch)
    ids = items["candidate_id"].tolist()
    row_of = {c: i for i, c in enumerate(cb["creative_id"])}
    rows = np.array([row_of[c] for c in ids], dtype=np.int64)

    out = items[["candidate_id", "name", "account_id", "sha256", "width", "height"]].copy()
    out["as_of"] = as_of
    visual = candidate_tables.get("visual")
    edges = dict(zip(visual["creative_id"], visual["edge_density"], strict=True)) \
        if visual is not None and "edge_density" in visual.columns else {}
    out["candidate_notes"] = [_candidate_notes(r, past, edges.get(r["candidate_id"])) for r in items.to_dict("records")]
    memory = CaseMemory(cb)  # one index for the forecast's CBR features and the similar cases
    forecasts, calibration = _forecast(memory, rows, attributes, past, as_of, config, notes)
    out = pd.concat([out.reset_index(drop=True), forecasts.reset_index(drop=True)], axis=1)
    similar = _similar(memory, ids, config.k_similar)
    out = out.merge(_similar_summary(similar), on="candidate_id", how="left")
    out = out.merge(_repetition(cb, ids, tables, past, as_of, config), on="candidate_id", how="left")
    out = mark_identical(out, past.images)
    rules, rule_note = _rules(attributes, ids, dict(zip(out["candidate_id"], out["account_id"], strict=True)),
                              history, as_of)
    if rule_note:
        notes.append(rule_note)
    out = out.merge(_rule_summary(rules, ids), on="candidate_id", how="left")
    out["blocks"] = ", ".join(blocks) or "none"
    evidence = indicator_evidence(cb, attributes, as_of)
    cand_attrs = attributes[attributes["creative_id"].isin(ids)].reset_index(drop=True)
    return Assessment(as_of, out, similar, rules, cand_attrs, evidence, calibration, notes)


def empty_candidates() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in ("candidate_id", "name", "account_id", "as_of")})


# -- candidate rows --------------------------------------------------------------------------
def _require_a_matured_case(cb: pd.DataFrame, candidates: set[str], as_of: dt.date) -> None:
    """LookupError when no past creative's outcome was known before `as_of`: a forecast would be NaN."""
    past = cb[~cb["creative_id"].isin(candidates)]
    available = pd.to_datetime(past["available_date"], errors="coerce")
    known = available.notna() & (available.dt.date < as_of) & past["outcome_score"].notna()
    if not known.any():
        first = available[past["outcome_score"].notna()].min()
        when = f"; the first outcome is known on {first.date()}" if pd.notna(first) else ""
        raise LookupError(f"no creative had matured before {as_of}, so there is nothing to learn a forecast from"
                          f"{when} (choose a later --as-of)")


def _candidate_prelaunch(items: pd.DataFrame, prelaunch: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """features.prelaunch-like rows for the candidates (launch_date = as_of)."""
    rows = pd.DataFrame({"creative_id": items["candidate_id"],
                         "account_id": items["account_id"].fillna("(no account)").astype(str),
                         "campaign_id": items["campaign_id"].fillna("candidate").astype(str),
                         "launch_date": as_of, "image_path": items["image_path"]})
    for c in (*CONTEXT_COLUMNS, "headline", "primary_text", "cta"):
        if c in prelaunch.columns:
            rows[c] = items[c].to_numpy() if c in items.columns else None
    return rows


# Edge pixels below this share: the image is one flat colour (a blank placeholder or a failed export), not
# a minimal design; every creative of the demo and of a held-out 150-creative export has at least 0.0075.
FLAT_EDGE_DENSITY = 0.001


def _candidate_notes(item: Mapping[str, Any], past: History, edge_density: float | None = None) -> str:
    """What the memory cannot vouch for: an unknown account, context values never seen, an image that shows
    nothing (its forecast would rest on context and colour alone, and may still rank it first)."""
    notes = []
    if edge_density is not None and np.isfinite(edge_density) and edge_density < FLAT_EDGE_DENSITY:
        notes.append(f"the image is almost one flat colour (edges on {edge_density:.2%} of its pixels): a blank "
                     "placeholder or a failed export? Check the file; its forecast rests on context and colour alone")
    account = item.get("account_id")
    accounts = set(past.prelaunch["account_id"].astype(str))
    if account is None or pd.isna(account):
        notes.append("no account given: compared with every account, no account level or repetition check")
    elif str(account) not in accounts:
        notes.append(f"account {account} has no history here: forecast from the other accounts' creatives, no "
                     f"account level or repetition check (known accounts: {', '.join(sorted(accounts)[:8])})")
    for c in CONTEXT_COLUMNS:
        value = item.get(c)
        if value is None or pd.isna(value) or c not in past.prelaunch.columns:
            continue
        seen = set(past.prelaunch[c].dropna().astype(str))
        if str(value) not in seen:
            notes.append(f"{c}={value} never seen before: the model treats it as unknown")
    return "; ".join(notes)


# -- forecast ----------------------------------------------------------------------------------
def _forecast(memory: CaseMemory, rows: np.ndarray, attributes: pd.DataFrame, past: History, as_of: dt.date,
              config: AssessConfig, notes: list[str]) -> tuple[pd.DataFrame, dict[str, float]]:
    fc = config.forecast_config()
    cb = memory.case_base
    labels = AsOfLabels(cb, fc.target.prior_strength)
    kpis = [k for k in config.kpis if k in KPIS]
    targets = kpi_targets(cb, kpis, fc.target, labels)
    inputs = build_inputs(memory, attributes, targets[True], k=fc.k)
    sets = input_sets(inputs)
    out: dict[str, Any] = {}
    calibration: dict[str, float] = {}
    for kpi in kpis:
        _, members, primary = served_forecast(inputs, {n: targets[n][kpi] for n in (True, False)}, sets, rows, fc)
        q = recent_half_width(past, cb, kpi, as_of, config)
        calibration[f"half_width_{kpi}"] = q
        out[f"forecast_{kpi}"] = primary.pred
        out[f"lower_{kpi}"] = from_reporting_scale(primary.z_pred - q, kpi) if np.isfinite(q) else np.nan
        out[f"upper_{kpi}"] = from_reporting_scale(primary.z_pred + q, kpi) if np.isfinite(q) else np.nan
        out[f"level_{kpi}"] = targets[True][kpi].level[rows]
        if kpi == "score":
            out["n_train"] = primary.n_train
            out["forecast_members"] = ", ".join(f"{n} ({'normalised' if m else 'raw'})" for n, m in members)
        if not np.isfinite(q):
            notes.append(f"{kpi}: no interval (marts.predictions holds fewer than 10 matured forecasts before "
                         f"{as_of}; materialise marts/predictions)")
    sigma = pair_noise_scale(past.predictions, cb, as_of)
    calibration["pair_sigma"] = sigma
    return pd.DataFrame(out), calibration


def _matured_forecasts(predictions: pd.DataFrame | None, cb: pd.DataFrame, kpi: str,
                       as_of: dt.date) -> pd.DataFrame:
    """Served forecasts of `kpi` whose outcome was known before `as_of`, oldest outcome first."""
    if predictions is None or predictions.empty:
        return pd.DataFrame(columns=["creative_id", "account_id", "launch_date", "forecast", "lower", "upper",
                                     "realised"])
    p = predictions[(predictions["kpi"] == kpi) & predictions["window"].isin(["validation", "test"])].copy()
    p["forecast"] = pd.to_numeric(p["forecast"], errors="coerce")
    p["realised"] = pd.to_numeric(p["realised"], errors="coerce")
    available = cb.set_index("creative_id")["available_date"]
    p["available"] = pd.to_datetime(p["creative_id"].map(available))
    p = p[p["available"].notna() & (p["available"].dt.date < as_of)
          & np.isfinite(p["forecast"]) & np.isfinite(p["realised"])]
    return p.sort_values("available", kind="stable").reset_index(drop=True)


def recent_half_width(past: History, cb: pd.DataFrame, kpi: str, as_of: dt.date, config: AssessConfig) -> float:
    """Split-conformal half-width (reporting scale) over the last `conformal_window` served forecasts whose
    outcome was known before `as_of`, at the level adapted to how often their intervals missed: the
    forecast's own recent errors, as `marts.predictions` does (`rolling_conformal`)."""
    p = _matured_forecasts(past.predictions, cb, kpi, as_of)
    lower, upper = (pd.to_numeric(p[c], errors="coerce") for c in ("lower", "upper"))
    judged = lower.notna() & upper.notna()
    missed = ((p["realised"] < lower) | (p["realised"] > upper))[judged].to_numpy(dtype=float)
    level = adapted_level(config.interval, missed, config.interval_gamma)
    p = p.tail(config.conformal_window)
    return conformal_q(reporting_scale(p["forecast"].to_numpy(float), kpi),
                       reporting_scale(p["realised"].to_numpy(float), kpi), level)


def pair_noise_scale(predictions: pd.DataFrame | None, cb: pd.DataFrame, as_of: dt.date, max_pairs: int = 2000) -> float:
    """Spread of (realised − forecast) differences of same-account, same-week pairs known before `as_of`
    (score scale): the noise a forecast margin between two candidates is read against. NaN with < 20 pairs."""
    p = _matured_forecasts(predictions, cb, "score", as_of)
    pairs = historical_pairs(p, margin=0.0)
    if len(pairs) < 20:
        return float("nan")
    err = (pairs["realised_a"] - pairs["realised_b"]) - (pairs["forecast_a"] - pairs["forecast_b"])
    return float(np.sqrt(np.mean(err.tail(max_pairs) ** 2)))


def historical_pairs(p: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Pairs of creatives of one account launched in the same ISO week whose realised values differ by more
    than `margin`: the questions a media buyer actually faced (a < b by id, one row per pair)."""
    if p.empty:
        return pd.DataFrame(columns=["a", "b", "forecast_a", "forecast_b", "realised_a", "realised_b"])
    p = p.copy()
    p["week"] = pd.to_datetime(p["launch_date"]).dt.strftime("%G-W%V")
    m = p.merge(p, on=["account_id", "week"], suffixes=("_a", "_b"))
    m = m[m["creative_id_a"] < m["creative_id_b"]]
    m = m[(m["realised_a"] - m["realised_b"]).abs() > margin]
    return m.rename(columns={"creative_id_a": "a", "creative_id_b": "b"}).reset_index(drop=True)


# -- evidence ------------------------------------------------------------------------------------
def _similar(memory: CaseMemory, ids: list[str], k: int) -> pd.DataFrame:
    nb = memory.neighbors(creative_ids=ids, k=k)
    return nb.rename(columns={"creative_id": "candidate_id"})


def _similar_summary(similar: pd.DataFrame) -> pd.DataFrame:
    if similar.empty:
        return pd.DataFrame(columns=["candidate_id", "similar_ids", "top_similarity"])
    top = similar.sort_values(["candidate_id", "neighbor_rank"])
    return top.groupby("candidate_id").agg(similar_ids=("neighbor_id", list),
                                           top_similarity=("similarity", "max")).reset_index()


def _repetition(cb: pd.DataFrame, ids: list[str], tables: Mapping[str, pd.DataFrame], past: History,
                as_of: dt.date, config: AssessConfig) -> pd.DataFrame:
    """Highest fused image similarity to the account's running creatives (delivered in the last
    `active_days` before as_of), and any past creative with the very same bytes."""
    daily = past.daily_metrics
    start = as_of - dt.timedelta(days=config.active_days)
    recent = daily[(pd.to_datetime(daily["date"]).dt.date >= start)
                   & (pd.to_numeric(daily["impressions"], errors="coerce") > 0)]
    active = set(recent["creative_id"].astype(str))
    account_of = cb.set_index("creative_id")["account_id"].astype(str)
    known_accounts = set(account_of.drop(index=ids, errors="ignore"))
    image_tables = {b: t for b, t in tables.items() if b in IMAGE_WEIGHTS}
    rows = []
    for cid in ids:
        acc = account_of.get(cid)
        if acc not in known_accounts:  # no account given, or one without history: nothing to compare with
            rows.append({"candidate_id": cid, "repetition_risk": "unknown", "repetition_similarity": np.nan,
                         "repetition_of": None, "repetition_status": None})
            continue
        peers = sorted(c for c in active if account_of.get(c) == acc)
        rec = {"candidate_id": cid, "repetition_risk": "unknown", "repetition_similarity": np.nan,
               "repetition_of": None, "repetition_status": None}
        if peers and image_tables:
            vectors = BlockVectors.from_tables([cid, *peers], image_tables)
            sims = vectors.similarity_matrix(IMAGE_WEIGHTS)[0, 1:]
            if np.isfinite(sims).any():
                j = int(np.nanargmax(sims))
                s = float(sims[j])
                rec.update(repetition_similarity=s, repetition_of=peers[j],
                           repetition_risk="near_duplicate" if s >= config.near_duplicate else
                           "similar" if s >= config.similar else "low")
        elif image_tables:
            rec["repetition_risk"] = "low"  # nothing of this account is running: nothing to repeat
        rows.append(rec)
    return pd.DataFrame(rows)


def mark_identical(candidates: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """`identical_to`: a past creative whose image file has the candidate's exact bytes (risk 'identical')."""
    out = candidates.copy()
    if images is None or images.empty or "sha256" not in images.columns:
        out["identical_to"] = None
        return out
    first = images.sort_values("creative_id").drop_duplicates("sha256").set_index("sha256")["creative_id"]
    out["identical_to"] = out["sha256"].map(first).astype(object).where(out["sha256"].isin(first.index), None)
    same = out["identical_to"].notna()
    out.loc[same, "repetition_risk"] = "identical"
    return out


# -- rules and attribute evidence --------------------------------------------------------------------
def indicator_holds(attrs: pd.DataFrame, attribute: str, value: str, medians: Mapping[str, float]) -> pd.Series:
    """Whether each row meets the indicator `attribute=value` as `attribute_indicators` defines it
    (true → truthy, high → above the history's median, else the level); NaN where the attribute is unknown."""
    if attribute not in attrs.columns:
        return pd.Series(np.nan, index=attrs.index)
    s = attrs[attribute]
    known = s.notna()
    if value == "true":
        held = s.map(lambda v: bool(v) if not pd.isna(v) else False)
    elif value == "high":
        med = medians.get(attribute, np.nan)
        held = pd.to_numeric(s, errors="coerce") > med
    else:
        held = s.astype(str) == str(value)
    return held.astype(float).where(known, np.nan)


def _medians(attributes: pd.DataFrame, ids: list[str]) -> dict[str, float]:
    hist = attributes[~attributes["creative_id"].isin(ids)]
    out = {}
    for c in hist.columns:
        if c != "creative_id" and pd.api.types.is_numeric_dtype(hist[c]) and hist[c].dtype != bool:
            out[c] = float(hist[c].median())
    return out


def _rules(attributes: pd.DataFrame, ids: list[str], accounts: Mapping[str, str], history: History,
           as_of: dt.date) -> tuple[pd.DataFrame, str | None]:
    """DO / DON'T findings (the candidate's account's and ALL) each candidate meets or breaks; accounts:
    candidate_id -> account_id."""
    cols = ["candidate_id", "recommendation", "scope", "finding", "sentence", "lift", "metric", "status"]
    recs = history.recommendations
    if recs is None or recs.empty:
        return pd.DataFrame(columns=cols), "no DO / DON'T rules (marts.recommendations not materialised)"
    horizon = history.horizon
    if horizon is not None and as_of <= horizon:
        return pd.DataFrame(columns=cols), (f"DO / DON'T rules left out: marts.recommendations used data up to "
                                            f"{horizon}, after the as-of date {as_of}")
    recs = recs[recs["recommendation"].isin(["DO", "DON'T"])]
    cand = attributes[attributes["creative_id"].isin(ids)].set_index("creative_id").reindex(ids)
    medians = _medians(attributes, ids)
    rows = []
    for r in recs.itertuples(index=False):
        held = indicator_holds(cand, r.attribute, r.value, medians)
        if isinstance(r.attribute_b, str) and r.attribute_b:
            held = held * indicator_holds(cand, r.attribute_b, r.value_b, medians)
        for cid, h in held.items():
            if pd.isna(h) or (r.scope != "ALL" and r.scope != accounts.get(cid)):
                continue
            meets = bool(h)
            status = ("meets" if meets else "misses") if r.recommendation == "DO" else ("breaks" if meets else "keeps")
            rows.append({"candidate_id": cid, "recommendation": r.recommendation, "scope": r.scope,
                         "finding": r.finding, "sentence": r.sentence, "lift": r.lift, "metric": r.metric,
                         "status": status})
    return pd.DataFrame(rows, columns=cols), None


def _rule_summary(rules: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({"candidate_id": ids})
    if rules.empty:
        out["rules_met"] = [[] for _ in ids]
        out["rules_broken"] = [[] for _ in ids]
        return out
    met = rules[rules["status"] == "meets"].groupby("candidate_id")["finding"].apply(list)
    broken = rules[rules["status"] == "breaks"].groupby("candidate_id")["finding"].apply(list)
    out["rules_met"] = [met.get(c, []) for c in ids]
    out["rules_broken"] = [broken.get(c, []) for c in ids]
    return out


def indicator_evidence(cb: pd.DataFrame, attributes: pd.DataFrame, as_of: dt.date, min_support: int = 5) -> pd.DataFrame:
    """Per account (and ALL) and indicator: the as-of relative CTR and outcome of creatives with vs without it,
    from cases matured before `as_of` — the numbers a pair's reasons quote ("CTR +18 % in this account,
    24 creatives")."""
    from creative_dag.marts.recommendations import attribute_indicators

    avail = pd.to_datetime(cb["available_date"])
    known = cb[avail.notna() & (avail.dt.date < as_of) & np.isfinite(cb["outcome_score"].to_numpy(float))]
    cols = ["scope", "indicator", "n_with", "n_without", "ctr_lift", "score_diff"]
    if len(known) < 2 * min_support:
        return pd.DataFrame(columns=cols)
    attrs = attributes[attributes["creative_id"].isin(set(known["creative_id"]))].drop_duplicates("creative_id")
    ind = attribute_indicators(attrs, min_support=min_support)
    if ind.empty:
        return pd.DataFrame(columns=cols)
    k = known.set_index("creative_id").reindex(ind.index)
    rows = []
    for scope, sel in [("ALL", np.ones(len(k), bool)), *[(a, (k["account_id"] == a).to_numpy())
                                                         for a in sorted(k["account_id"].dropna().unique())]]:
        sub, sk = ind[sel], k[sel]
        for name in ind.columns:
            has = sub[name] == 1
            not_has = sub[name] == 0
            if has.sum() < min_support or not_has.sum() < min_support:
                continue
            ctr_w = sk.loc[has, "outcome_clicks"].sum() / max(sk.loc[has, "outcome_impressions"].sum(), 1.0)
            ctr_wo = sk.loc[not_has, "outcome_clicks"].sum() / max(sk.loc[not_has, "outcome_impressions"].sum(), 1.0)
            rows.append({"scope": scope, "indicator": name, "n_with": int(has.sum()), "n_without": int(not_has.sum()),
                         "ctr_lift": ctr_w / ctr_wo - 1.0 if ctr_wo > 0 else np.nan,
                         "score_diff": float(sk.loc[has, "outcome_score"].mean() - sk.loc[not_has, "outcome_score"].mean())})
    return pd.DataFrame(rows, columns=cols)
