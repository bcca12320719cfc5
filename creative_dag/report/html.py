"""The self-contained HTML report (docs/report.md): one file a person opens, offline, from anywhere.

DataFrames of the marts in, an HTML string out. Nothing is fetched when the page is viewed:
plotly.js is inlined once, thumbnails are small base64 JPEGs kept once per creative in a JSON map
(a creative shown in the map, the table and a card costs one thumbnail), and the CSS and the few
lines of JavaScript (table filters and sorting, the landscape's hover image) are in the page.

A warehouse that is still being built gives a useful page too: every section says what it could
not show and why (a table that does not exist yet, a table with no rows, a table from an older
version lacking columns), and an unreadable image costs one picture, never the page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from creative_dag.catalog import (
    MARTS_ACCOUNT_HEALTH,
    MARTS_CANDIDATE_ASSESSMENT,
    MARTS_CANDIDATE_PAIRS,
    MARTS_CREATIVE_FATIGUE,
    MARTS_CREATIVE_FATIGUE_DAILY,
    MARTS_CREATIVE_LANDSCAPE,
    MARTS_CREATIVE_RANKING,
    MARTS_LANDSCAPE_CLUSTERS,
    MARTS_RECOMMENDATIONS,
    RAW_CREATIVES,
)
from creative_dag.kept_entries import KeptStrings

ImageReader = Callable[[str], bytes]
"""image_path (as in raw.creatives, relative to the landing folder) -> the file's bytes."""

TABLE_NAMES: dict[str, str] = {
    "creatives": RAW_CREATIVES,
    "ranking": MARTS_CREATIVE_RANKING,
    "landscape": MARTS_CREATIVE_LANDSCAPE,
    "landscape_clusters": MARTS_LANDSCAPE_CLUSTERS,
    "fatigue": MARTS_CREATIVE_FATIGUE,
    "fatigue_daily": MARTS_CREATIVE_FATIGUE_DAILY,
    "recommendations": MARTS_RECOMMENDATIONS,
    "account_health": MARTS_ACCOUNT_HEALTH,
    "candidate_assessment": MARTS_CANDIDATE_ASSESSMENT,
    "candidate_pairs": MARTS_CANDIDATE_PAIRS,
}
"""ReportTables field -> the warehouse table it holds (named in every message about it)."""

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "creatives": ("creative_id", "image_path"),
    "ranking": ("creative_id", "account_id", "tier", "score", "spend"),
    "landscape": ("creative_id", "x", "y", "cluster"),
    "landscape_clusters": ("cluster", "cluster_name", "size"),
    "fatigue": ("creative_id", "status", "fatigue_onset_date"),
    "fatigue_daily": ("creative_id", "date", "ctr"),
    "recommendations": ("scope", "recommendation", "finding", "sentence"),
    "account_health": ("account_id", "week_start", "creative_velocity", "freshness_rate", "thumb_stop_ratio"),
    "candidate_assessment": ("batch", "candidate_id", "name", "status"),
    "candidate_pairs": ("batch", "verdict"),
}
"""The columns each section cannot do without; the rest are shown when present."""

TIER_ORDER = ("BEST", "GOOD", "LOW", "LEARNING")
TIER_COLOURS = {"BEST": "#1a9850", "GOOD": "#4575b4", "LOW": "#d73027", "LEARNING": "#969696"}
RECOMMENDATION_ORDER = ("DO", "DON'T", "TEST")
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d",
           "#eeca3b", "#bab0ac", "#1f77b4", "#8c564b")
UNCLUSTERED_COLOUR = "#c7c7c7"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class ReportParams:
    """thumbnail_px: longest side of a thumbnail (JPEG, `thumbnail_quality`); the caps keep a large
    account's file small (only what is shown gets a thumbnail): landscape points and ranking rows
    (the highest-spend creatives are kept), fatigue curves of the `top_spenders`, evidence images
    per recommendation card, similar past creatives per candidate."""

    thumbnail_px: int = 96
    thumbnail_quality: int = 70
    max_landscape_points: int = 400
    max_table_rows: int = 500
    top_spenders: int = 6
    max_evidence: int = 4
    max_similar: int = 3


@dataclass
class ReportTables:
    """The warehouse tables the report reads (TABLE_NAMES). None = the table does not exist; a frame
    with zero rows = it exists and is empty. Each section says which one it is."""

    creatives: pd.DataFrame | None = None
    ranking: pd.DataFrame | None = None
    landscape: pd.DataFrame | None = None
    landscape_clusters: pd.DataFrame | None = None
    fatigue: pd.DataFrame | None = None
    fatigue_daily: pd.DataFrame | None = None
    recommendations: pd.DataFrame | None = None
    account_health: pd.DataFrame | None = None
    candidate_assessment: pd.DataFrame | None = None
    candidate_pairs: pd.DataFrame | None = None

    def missing(self) -> list[str]:
        """Warehouse tables that do not exist (the fields that are None)."""
        return [TABLE_NAMES[f.name] for f in fields(self) if getattr(self, f.name) is None]


@dataclass(frozen=True)
class ReportPage:
    """html: the whole page; counts: what each section shows (points, rows, curves, cards, weeks,
    candidates); notes: section -> what it could not show and why; thumbnail_failures: creative or
    candidate id -> why its image is missing from the page."""

    html: str
    counts: dict[str, int]
    notes: dict[str, str]
    thumbnails: int
    thumbnail_failures: dict[str, str]


@dataclass(frozen=True)
class _Section:
    anchor: str
    title: str
    body: str
    count: int
    note: str | None = None


# -- thumbnails ------------------------------------------------------------------------------
def thumbnail_data_uri(data: bytes, size_px: int = 96, quality: int = 70) -> str:
    """A `data:image/jpeg;base64,...` URI of the image scaled to at most size_px on its longest side.

    JPEGs are decoded at a reduced scale (PIL draft mode), so a 1080 px creative costs a few ms;
    transparency is flattened on white, as an ad is shown."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size_px * 2, size_px * 2))
        if img.mode in ("RGBA", "LA", "P", "PA"):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
        else:
            flat = img.convert("RGB")
    flat.thumbnail((size_px, size_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    flat.save(buffer, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumbnail_code_digest() -> str:
    """The code a thumbnail depends on: a change to it makes every thumbnail again."""
    try:
        code = inspect.getsource(thumbnail_data_uri).encode()
    except (OSError, TypeError):  # installed without sources: the compiled function stands for them
        code = thumbnail_data_uri.__code__.co_code + repr(thumbnail_data_uri.__code__.co_consts).encode()
    digest = hashlib.blake2b(code, digest_size=16)
    digest.update(Image.__version__.encode())
    return digest.hexdigest()


@dataclass
class ThumbnailCache(KeptStrings):
    """(image bytes, size, quality, thumbnail code) -> the thumbnail's data URI, kept from one report to the
    next: every run rebuilds the page, and decoding each image again took 1.7 of the demo report's 2.6 s.
    Keyed by the bytes' hash, so a replaced image gets a new thumbnail. JSON; a save keeps the entries used."""

    salt: str = field(default_factory=_thumbnail_code_digest)
    what: ClassVar[str] = "thumbnail cache"

    def key(self, data: bytes, size_px: int, quality: int) -> str:
        return f"{hashlib.sha256(data).hexdigest()}:{size_px}:{quality}:{self.salt}"


class _Thumbnails:
    """Creative (or candidate) id -> thumbnail, made once per id on first use (or taken from `cache`). A
    missing or unreadable image is remembered with its reason and shown as "no image"."""

    def __init__(self, read_image: ImageReader | None, image_paths: Mapping[str, str], params: ReportParams,
                 cache: ThumbnailCache | None = None) -> None:
        self._read_image = read_image
        self._image_paths = dict(image_paths)
        self._params = params
        self._cache = cache
        self._uris: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    def add_paths(self, image_paths: Mapping[str, str]) -> None:
        self._image_paths.update(image_paths)

    def available(self, item_id: str) -> bool:
        if item_id in self._uris:
            return True
        if item_id in self.failures:
            return False
        path = self._image_paths.get(item_id)
        if self._read_image is None:
            self.failures[item_id] = "no image reader given"
        elif not path:
            self.failures[item_id] = "no image_path"
        else:
            try:
                self._uris[item_id] = self._make(self._read_image(path))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                self.failures[item_id] = f"{path}: {exc}"
        return item_id in self._uris

    def _make(self, data: bytes) -> str:
        size, quality = self._params.thumbnail_px, self._params.thumbnail_quality
        key = self._cache.key(data, size, quality) if self._cache is not None else None
        uri = self._cache.get(key) if key is not None else None
        if uri is None:
            uri = thumbnail_data_uri(data, size, quality)
            if key is not None:
                self._cache.put(key, uri)
        return uri

    def img(self, item_id: str, css_class: str = "thumb") -> str:
        """An <img> filled from the page's thumbnail map, or a "no image" placeholder."""
        if not self.available(item_id):
            return f'<span class="{css_class} noimg" title="{_e(self.failures.get(item_id, ""))}">no image</span>'
        return f'<img class="{css_class}" data-thumb="{_e(item_id)}" alt="{_e(item_id)}">'

    def embedded(self) -> dict[str, str]:
        return dict(self._uris)


# -- small helpers ---------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if _missing(value) else str(value), quote=True)


def _missing(value: Any) -> bool:
    """None, pd.NA, NaN, NaT; DuckDB's NULL list comes back as pd.NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (list, tuple, np.ndarray, dict)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_list(value: Any) -> list[str]:
    """A list column's value as strings (DuckDB lists arrive as numpy arrays, NULL as pd.NA)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value if not _missing(v)]
    return []


def _number(value: Any) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _iso_date(value: Any) -> str | None:
    if _missing(value):
        return None
    try:
        return pd.Timestamp(value).date().isoformat()
    except (TypeError, ValueError):
        return None


def _fmt(value: Any, kind: str) -> str:
    """kind: pct (share -> %, 2 d.p.), pct0 (share -> whole %), signed (+0.123), int and money (thousands),
    ratio (2 d.p.)."""
    number = _number(value)
    if number is None:
        return "–"
    if kind == "pct0":
        return f"{number * 100:.0f} %"
    if kind == "pct":
        return f"{number * 100:.2f} %"
    if kind == "signed":
        return f"{number:+.3f}"
    if kind in ("int", "money"):
        return f"{number:,.0f}"
    return f"{number:.2f}"


def _script_json(text: str) -> str:
    """JSON text made safe inside <script>: '<', '>' and '&' only occur inside JSON strings, where
    their \\u escapes mean the same, so "</script>" in a creative's headline cannot end the script."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _column(frame: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([default] * len(frame), index=frame.index)


def _usable(tables: ReportTables, name: str) -> tuple[pd.DataFrame | None, str | None]:
    """The table, or why a section cannot use it (named, with what to do)."""
    table = TABLE_NAMES[name]
    frame = getattr(tables, name)
    if frame is None:
        return None, f"{table} does not exist yet: materialise it (creative-dag materialize --select {table.replace('.', '/')})"
    if frame.empty:
        return None, f"{table} has no rows"
    lacking = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if lacking:
        return None, (f"{table} lacks the column(s) {', '.join(lacking)}: it was built by another version; "
                      f"re-materialise it (creative-dag materialize --select {table.replace('.', '/')})")
    return frame, None


def _plot(fig: go.Figure, div_id: str, after_js: str = "") -> str:
    """A plot div and the script that draws it with the page's inlined plotly.js."""
    then = f".then(function(el){{{after_js}}})" if after_js else ""
    return (f'<div id="{div_id}" class="plot"></div>\n'
            f"<script>(function(){{var spec={_script_json(fig.to_json())};"
            f"Plotly.newPlot({json.dumps(div_id)},spec.data,spec.layout,CM_PLOT_CONFIG){then};}})();</script>")


def _layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}, **extra)
    return fig


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _top_spenders(tables: ReportTables, limit: int) -> list[str]:
    """Creative ids by lifetime spend (marts.creative_ranking, else the daily fatigue rows)."""
    ranking, _ = _usable(tables, "ranking")
    if ranking is not None:
        spend = pd.to_numeric(ranking["spend"], errors="coerce").fillna(0.0)
        order = ranking.assign(_spend=spend).sort_values(["_spend", "creative_id"], ascending=[False, True])
        return order["creative_id"].astype(str).head(limit).tolist()
    daily, _ = _usable(tables, "fatigue_daily")
    if daily is not None and "spend" in daily.columns:
        totals = daily.groupby("creative_id")["spend"].sum().sort_values(ascending=False, kind="stable")
        return [str(c) for c in totals.index[:limit]]
    return []


# -- sections --------------------------------------------------------------------------------
def _overview_section(tables: ReportTables, generated_at: datetime) -> _Section:
    facts: list[tuple[str, str]] = []
    ranking, _ = _usable(tables, "ranking")
    if ranking is not None:
        facts.append(("creatives ranked", f"{len(ranking):,}"))
        facts.append(("accounts", f"{ranking['account_id'].nunique():,}"))
        tiers = ranking["tier"].astype(str).value_counts()
        facts += [(f"tier {t}", f"{int(tiers[t]):,}") for t in TIER_ORDER if t in tiers]
    daily, _ = _usable(tables, "fatigue_daily")
    if daily is not None:
        dates = pd.to_datetime(daily["date"], errors="coerce").dropna()
        if len(dates):
            facts.append(("delivery days", f"{dates.min().date()} to {dates.max().date()}"))
    fatigue, _ = _usable(tables, "fatigue")
    if fatigue is not None:
        status = fatigue["status"].astype(str).value_counts()
        facts += [(s, f"{int(status[s]):,}") for s in ("fatiguing", "fatigued") if s in status]
    recs, _ = _usable(tables, "recommendations")
    if recs is not None:
        kinds = recs.loc[_shown_mask(recs), "recommendation"].astype(str).value_counts()
        facts += [(f"{k} findings", f"{int(kinds[k]):,}") for k in RECOMMENDATION_ORDER if k in kinds]
    assessed, _ = _usable(tables, "candidate_assessment")
    if assessed is not None:
        facts.append(("candidates assessed", f"{int((assessed['status'] == 'assessed').sum()):,}"))
    tiles = "".join(f'<div class="fact"><div class="value">{_e(v)}</div><div class="label">{_e(k)}</div></div>'
                    for k, v in facts)
    missing = tables.missing()
    missing_html = (_note("Not in the warehouse yet: " + ", ".join(missing) + ". The sections below say what "
                          "that leaves out.") if missing else "")
    body = (f'<p class="meta">Generated {generated_at.strftime("%Y-%m-%d %H:%M UTC")} from the Creative Memory '
            f'warehouse. Everything is in this one file: it works offline and can be mailed.</p>'
            f'<div class="facts">{tiles}</div>{missing_html}')
    return _Section("overview", "Overview", body, len(facts))


def _landscape_section(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> _Section:
    title = "Creative landscape"
    frame, why = _usable(tables, "landscape")
    if frame is None:
        return _Section("landscape", title, _note(f"No landscape: {why}."), 0, why)
    points = frame.copy()
    points["creative_id"] = points["creative_id"].astype(str)
    ranking, _ = _usable(tables, "ranking")
    if ranking is not None:
        extra = ranking[["creative_id", "spend", "tier", "score", "account_id"]].copy()
        extra["creative_id"] = extra["creative_id"].astype(str)
        points = points.drop(columns=[c for c in ("tier", "score", "account_id") if c in points.columns])
        points = points.merge(extra, on="creative_id", how="left")
    points["x"] = pd.to_numeric(points["x"], errors="coerce")
    points["y"] = pd.to_numeric(points["y"], errors="coerce")
    points = points[np.isfinite(points["x"]) & np.isfinite(points["y"])]
    total = len(points)
    notes = []
    if total > params.max_landscape_points:
        spend = pd.to_numeric(_column(points, "spend"), errors="coerce").fillna(0.0)
        points = points.assign(_spend=spend).sort_values(["_spend", "creative_id"], ascending=[False, True])
        points = points.head(params.max_landscape_points)
        notes.append(f"Showing the {params.max_landscape_points:,} highest-spend of {total:,} mapped creatives.")
    points = points.sort_values("creative_id").reset_index(drop=True)
    points["tier"] = _column(points, "tier").fillna("unknown").astype(str)
    points["cluster"] = pd.to_numeric(points["cluster"], errors="coerce").fillna(-1).astype(int)
    names = _cluster_names(points, tables.landscape_clusters)
    points["cluster_label"] = [names.get(c, f"cluster {c}") for c in points["cluster"]]
    custom = np.column_stack([
        points["creative_id"], points["tier"], points["cluster_label"],
        [_fmt(v, "signed") for v in _column(points, "score")],
        _column(points, "account_id").fillna("").astype(str),
    ])
    for cid in points["creative_id"]:
        thumbs.available(cid)
    hover = ("<b>%{customdata[0]}</b> · %{customdata[4]}<br>tier %{customdata[1]} · score %{customdata[3]}"
             "<br>%{customdata[2]}<extra></extra>")
    fig = go.Figure()
    tiers = [t for t in TIER_ORDER if t in set(points["tier"])] + sorted(set(points["tier"]) - set(TIER_ORDER))
    for tier in tiers:
        mask = (points["tier"] == tier).to_numpy()
        fig.add_trace(go.Scatter(x=points.loc[mask, "x"], y=points.loc[mask, "y"], mode="markers", name=tier,
                                 customdata=custom[mask], hovertemplate=hover, legendgroup="tier",
                                 marker={"size": 9, "color": TIER_COLOURS.get(tier, "#7f7f7f"), "opacity": 0.85,
                                             "line": {"width": 0.5, "color": "white"}}))
    clusters = sorted(set(points["cluster"]), key=lambda c: (c < 0, c))
    for i, cluster in enumerate(clusters):
        mask = (points["cluster"] == cluster).to_numpy()
        colour = UNCLUSTERED_COLOUR if cluster < 0 else PALETTE[i % len(PALETTE)]
        label = names.get(cluster, f"cluster {cluster}")
        fig.add_trace(go.Scatter(x=points.loc[mask, "x"], y=points.loc[mask, "y"], mode="markers", visible=False,
                                 name=label if len(label) <= 48 else label[:47] + "…", customdata=custom[mask],
                                 hovertemplate=hover, legendgroup="cluster",
                                 marker={"size": 9, "color": colour, "opacity": 0.85, "line": {"width": 0.5, "color": "white"}}))
    n_tier = len(tiers)
    by_tier = [True] * n_tier + [False] * len(clusters)
    by_cluster = [False] * n_tier + [True] * len(clusters)
    buttons = [{"label": "Colour by tier", "method": "update", "args": [{"visible": by_tier}]},
               {"label": "Colour by cluster", "method": "update", "args": [{"visible": by_cluster}]}]
    _layout(fig, 560, xaxis={"title": "map x", "zeroline": False, "showticklabels": False},
            yaxis={"title": "map y", "zeroline": False, "showticklabels": False},
            updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "y": 1.12, "xanchor": "left", "buttons": buttons}],
            legend={"itemsizing": "constant"})
    methods = set(_column(points, "method").dropna().astype(str))
    method = " and ".join(_MAP_METHODS.get(m, m) for m in sorted(methods)) or _MAP_METHODS["umap"]
    body = (f'<p>Every creative with image vectors, placed so that similar-looking creatives sit together '
            f'({_e(method)}, from the fused image similarity). Hover a point to see the creative; switch the colour '
            f'between performance tier and visual cluster.</p>'
            + "".join(_note(n) for n in notes)
            + '<div id="cm-hover" class="hover-panel" hidden><img alt=""><div class="caption"></div></div>'
            + _plot(fig, "fig-landscape", "cmHoverThumbnails(el);")
            + _clusters_table(tables, thumbs, params))
    return _Section("landscape", title, body, len(points), " ".join(notes) or None)


def _cluster_names(points: pd.DataFrame, clusters: pd.DataFrame | None) -> dict[int, str]:
    names: dict[int, str] = {}
    if "cluster_name" in points.columns:
        for c, n in zip(points["cluster"], points["cluster_name"], strict=True):
            if not _missing(n):
                names.setdefault(int(c), str(n))
    if clusters is not None and {"cluster", "cluster_name"} <= set(clusters.columns):
        for c, n in zip(clusters["cluster"], clusters["cluster_name"], strict=True):
            if not _missing(c) and not _missing(n):
                names.setdefault(int(c), str(n))
    names.setdefault(-1, "unclustered")
    return names


# marts.creative_landscape.method in words (the page is read by marketers, the column by BI tools)
_MAP_METHODS = {"umap": "a UMAP map", "umap-placed": "creatives since the last map fit placed beside their most "
                "similar mapped ones", "pca": "a PCA projection (too few creatives for UMAP)",
                "single": "a single creative"}


def _clusters_table(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> str:
    frame, why = _usable(tables, "landscape_clusters")
    if frame is None:
        return _note(f"No cluster summary: {why}.")
    rows = []
    for r in frame.sort_values("size", ascending=False).itertuples(index=False):
        examples = _as_list(getattr(r, "example_ids", None))[:3]
        images = "".join(thumbs.img(cid, "thumb-sm") for cid in examples)
        rows.append(f"<tr><td>{_e(r.cluster_name)}</td><td class=num>{_fmt(r.size, 'int')}</td>"
                    f"<td class=num>{_fmt(getattr(r, 'spend_share', None), 'pct0')}</td>"
                    f"<td class=num>{_fmt(getattr(r, 'mean_score', None), 'signed')}</td>"
                    f"<td class=num>{_fmt(getattr(r, 'share_fatigued', None), 'pct0')}</td>"
                    f"<td>{_e(getattr(r, 'dominant_attributes', ''))}</td><td class=imgs>{images}</td></tr>")
    return ('<h3>Clusters</h3><table class="data"><thead><tr><th>cluster</th><th>creatives</th><th>spend share</th>'
            '<th>mean score</th><th>fatigued</th><th>what stands out</th><th>examples</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


RANKING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("creative_id", "creative", "text"), ("account_id", "account", "text"), ("tier", "tier", "text"),
    ("score", "score", "signed"), ("confidence", "confidence", "ratio"), ("rank_in_account", "rank", "int"),
    ("spend", "spend", "money"), ("impressions", "impressions", "int"), ("ctr", "CTR", "pct"),
    ("cvr", "CVR", "pct"), ("roas", "ROAS", "ratio"), ("cpa", "CPA", "ratio"), ("status", "fatigue", "text"),
)
"""(column, header, format) of the ranking table, after the thumbnail."""


def _ranking_section(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> _Section:
    title = "Ranking"
    frame, why = _usable(tables, "ranking")
    if frame is None:
        return _Section("ranking", title, _note(f"No ranking: {why}."), 0, why)
    rows = frame.copy()
    rows["creative_id"] = rows["creative_id"].astype(str)
    fatigue, _ = _usable(tables, "fatigue")
    if fatigue is not None:
        status = fatigue[["creative_id", "status"]].assign(creative_id=lambda f: f["creative_id"].astype(str))
        rows = rows.drop(columns=[c for c in ("status",) if c in rows.columns]).merge(status, on="creative_id",
                                                                                       how="left")
    total = len(rows)
    notes = []
    if total > params.max_table_rows:
        spend = pd.to_numeric(rows["spend"], errors="coerce").fillna(0.0)
        rows = rows.assign(_spend=spend).sort_values(["_spend", "creative_id"], ascending=[False, True])
        rows = rows.head(params.max_table_rows)
        notes.append(f"Showing the {params.max_table_rows:,} highest-spend of {total:,} creatives.")
    rank = pd.to_numeric(_column(rows, "rank_in_account"), errors="coerce")
    score = pd.to_numeric(rows["score"], errors="coerce")
    rows = rows.assign(_rank=rank, _score=-score).sort_values(["account_id", "_rank", "_score", "creative_id"],
                                                              na_position="last")
    header = "<th>image</th>" + "".join(f'<th data-kind="{kind}">{_e(label)}</th>'
                                         for col, label, kind in RANKING_COLUMNS if col in rows.columns)
    body_rows = []
    for record in rows.to_dict("records"):
        cells = [f"<td>{thumbs.img(record['creative_id'], 'thumb-sm')}</td>"]
        for col, _label, kind in RANKING_COLUMNS:
            if col not in rows.columns:
                continue
            value = record[col]
            if kind == "text":
                text = "" if _missing(value) else str(value)
                css = f' class="tier tier-{_e(text)}"' if col == "tier" else ""
                cells.append(f'<td data-value="{_e(text)}"{css}>{_e(text)}</td>')
            else:
                number = _number(value)
                cells.append(f'<td class=num data-value="{"" if number is None else repr(number)}">'
                             f"{_fmt(value, kind)}</td>")
        explanation = record.get("explanation")
        title_attr = f' title="{_e(explanation)}"' if not _missing(explanation) else ""
        body_rows.append(f'<tr data-account="{_e(record["account_id"])}" data-tier="{_e(record["tier"])}" '
                         f'data-status="{_e(record.get("status"))}"{title_attr}>' + "".join(cells) + "</tr>")
    accounts = sorted({str(a) for a in rows["account_id"].dropna()})
    tiers = [t for t in TIER_ORDER if t in set(rows["tier"].astype(str))]
    statuses = sorted({str(s) for s in _column(rows, "status").dropna()})

    def options(values: Iterable[str], everything: str) -> str:
        return f'<option value="">{everything}</option>' + "".join(
            f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)

    filters = (f'<div class="filters"><label>account <select id="f-account">{options(accounts, "all")}</select></label>'
               f'<label>tier <select id="f-tier">{options(tiers, "all")}</select></label>'
               f'<label>fatigue <select id="f-status">{options(statuses, "all")}</select></label>'
               '<label>search <input id="f-text" type="search" placeholder="id, campaign, explanation"></label>'
               '<span id="f-count" class="count"></span></div>')
    body = ("<p>Every creative's score: its shrunk CTR, CVR, ROAS and CPA against what the account's typical "
            "creative earns in the same context (0 = typical, +0.10 ≈ 10 % better). Filter by account, tier or "
            "fatigue, search, or click a column header to sort; hover a row for the explanation.</p>"
            + "".join(_note(n) for n in notes) + filters
            + f'<div class="scroll"><table id="ranking-table" class="data sortable"><thead><tr>{header}</tr></thead>'
            + "<tbody>" + "".join(body_rows) + "</tbody></table></div>")
    return _Section("ranking", title, body, len(rows), " ".join(notes) or None)


def _fatigue_section(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> _Section:
    title = "Fatigue of the top spenders"
    daily, why = _usable(tables, "fatigue_daily")
    if daily is None:
        return _Section("fatigue", title, _note(f"No fatigue curves: {why}."), 0, why)
    top = _top_spenders(tables, params.top_spenders)
    daily = daily.assign(creative_id=daily["creative_id"].astype(str))
    delivered = set(daily["creative_id"])
    top = [cid for cid in top if cid in delivered]
    if not top:
        why = "no creative has daily rows in marts.creative_fatigue_daily"
        return _Section("fatigue", title, _note(f"No fatigue curves: {why}."), 0, why)
    fatigue, fatigue_why = _usable(tables, "fatigue")
    summary: dict[str, dict[str, Any]] = {}
    if fatigue is not None:
        summary = {str(r["creative_id"]): r for r in fatigue.to_dict("records")}
    ranking, _ = _usable(tables, "ranking")
    spend = ({str(c): s for c, s in zip(ranking["creative_id"], ranking["spend"], strict=True)}
             if ranking is not None else {})
    cols = min(3, len(top))
    n_rows = math.ceil(len(top) / cols)
    titles = []
    for cid in top:
        info = summary.get(cid, {})
        onset = _iso_date(info.get("fatigue_onset_date"))
        titles.append(f"{cid} · {info.get('status', 'status unknown')}" + (f" · onset {onset}" if onset else ""))
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.14 if n_rows > 1 else 0.1)
    for i, cid in enumerate(top):
        row, col = i // cols + 1, i % cols + 1
        days = daily[daily["creative_id"] == cid].sort_values("date")
        dates = [_iso_date(d) for d in days["date"]]
        ctr = pd.to_numeric(days["ctr"], errors="coerce") * 100
        fig.add_trace(go.Scatter(x=dates, y=ctr, mode="markers", name="daily CTR", legendgroup="daily",
                                 showlegend=i == 0, marker={"size": 4, "color": "#9ecae1"},
                                 hovertemplate="%{x}: CTR %{y:.2f} %<extra>" + cid + "</extra>"), row=row, col=col)
        if "rolling_ctr" in days.columns:
            rolling = pd.to_numeric(days["rolling_ctr"], errors="coerce") * 100
            fig.add_trace(go.Scatter(x=dates, y=rolling, mode="lines", name="7-day CTR", legendgroup="rolling",
                                     showlegend=i == 0, line={"width": 2, "color": "#08519c"},
                                     hovertemplate="%{x}: 7-day CTR %{y:.2f} %<extra>" + cid + "</extra>"),
                          row=row, col=col)
        onset = _iso_date(summary.get(cid, {}).get("fatigue_onset_date"))
        if onset:
            fig.add_vline(x=onset, row=row, col=col, line={"color": "#d73027", "width": 2, "dash": "dash"})
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="detected onset",
                             line={"color": "#d73027", "width": 2, "dash": "dash"}), row=1, col=1)
    fig.update_yaxes(title_text="CTR %", col=1)
    _layout(fig, 300 * n_rows + 80, legend={"orientation": "h", "y": -0.08 if n_rows > 1 else -0.15})
    fig.update_annotations(font_size=12)
    cards = []
    for cid in top:
        info = summary.get(cid, {})
        onset = _iso_date(info.get("fatigue_onset_date"))
        detail = (f"onset {onset} (day {_fmt(info.get('days_to_fatigue'), 'int')})" if onset
                  else _e(info.get("fatigue_evidence") or "no onset detected"))
        cards.append(f'<figure class="mini">{thumbs.img(cid)}<figcaption><b>{_e(cid)}</b><br>spend '
                     f"{_fmt(spend.get(cid), 'money')} · {_e(info.get('status', '–'))}<br>{detail}<br>now "
                     f"{_fmt(info.get('current_vs_peak'), 'pct0')} of early peak</figcaption></figure>")
    notes = [] if fatigue is not None else [f"No onsets marked: {fatigue_why}."]
    body = ("<p>Daily CTR (dots) and 7-day CTR (line) of the creatives with the most spend; the dashed line is "
            "the detected fatigue onset (change point on the creative's own clicks per impression, "
            "docs/marts.md).</p>" + "".join(_note(n) for n in notes)
            + f'<div class="strip">{"".join(cards)}</div>' + _plot(fig, "fig-fatigue"))
    return _Section("fatigue", title, body, len(top), " ".join(notes) or None)


def _shown_mask(recs: pd.DataFrame) -> pd.Series:
    """The findings a person sees by default (`shown`); all of them when the column is absent."""
    if "shown" not in recs.columns:
        return pd.Series(True, index=recs.index)
    return recs["shown"].astype("boolean").fillna(False).astype(bool)


def _recommendations_section(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> _Section:
    title = "DO / DON'T / TEST"
    frame, why = _usable(tables, "recommendations")
    if frame is None:
        if tables.recommendations is not None and tables.recommendations.empty:
            why = "no finding met the thresholds (marts.recommendations has no rows)"
        return _Section("recommendations", title, _note(f"No recommendations: {why}."), 0, why)
    recs = frame[_shown_mask(frame)].copy()
    recs["_kind"] = recs["recommendation"].map({k: i for i, k in enumerate(RECOMMENDATION_ORDER)}).fillna(9)
    recs["_rank"] = pd.to_numeric(_column(recs, "rank"), errors="coerce")
    scopes = sorted(set(recs["scope"].astype(str)), key=lambda s: (s != "ALL", s))
    parts = []
    for scope in scopes:
        group = recs[recs["scope"].astype(str) == scope].sort_values(["_kind", "_rank"], na_position="last")
        cards = []
        for r in group.to_dict("records"):
            kind = str(r["recommendation"])
            css = {"DO": "do", "DON'T": "dont", "TEST": "test"}.get(kind, "other")
            evidence = _as_list(r.get("evidence_creatives"))[: params.max_evidence]
            images = "".join(f'<figure class="ev">{thumbs.img(cid)}<figcaption>{_e(cid)}</figcaption></figure>'
                             for cid in evidence)
            facts = []
            if _number(r.get("lift")) is not None:
                facts.append(f"{_e(str(r.get('metric', '')).upper())} {_number(r.get('lift')) * 100:+.0f} %"
                             + (f" (95 % CI {_number(r.get('ci_low')) * 100:+.0f} % to {_number(r.get('ci_high')) * 100:+.0f} %)"
                                if _number(r.get("ci_low")) is not None and _number(r.get("ci_high")) is not None
                                else ""))
            if _number(r.get("n_with")) is not None:
                facts.append(f"{_fmt(r.get('n_with'), 'int')} creatives with it")
            if _number(r.get("stability")) is not None:
                facts.append(f"stable in {_number(r.get('stability')) * 100:.0f} % of resamples")
            cards.append(f'<article class="card rec rec-{css}"><header><span class="badge">{_e(kind)}</span> '
                         f"{_e(r['finding'])}</header><p>{_e(r['sentence'])}</p>"
                         f'<p class="facts">{" · ".join(facts)}</p>'
                         + (f'<div class="evidence">{images}</div>' if images else "") + "</article>")
        heading = "All accounts" if scope == "ALL" else f"Account {scope}"
        parts.append(f'<h3>{_e(heading)}</h3><div class="cards">{"".join(cards)}</div>')
    body = ("<p>What the memory found works (DO), hurts (DON'T) or is worth trying (TEST), other findings held "
            "equal, with the creatives that show it best (worst for DON'T).</p>" + "".join(parts))
    return _Section("recommendations", title, body, len(recs))


def _health_section(tables: ReportTables) -> _Section:
    title = "Account health"
    frame, why = _usable(tables, "account_health")
    if frame is None:
        return _Section("health", title, _note(f"No account health trends: {why}."), 0, why)
    health = frame.copy()
    health["week"] = [_iso_date(w) for w in health["week_start"]]
    health = health.dropna(subset=["week"]).sort_values(["account_id", "week"])
    metrics = (("creative_velocity", "Creative velocity (launched per week)", 1.0),
               ("freshness_rate", "Freshness (% of spend on creatives ≤ 6 days old)", 100.0),
               ("thumb_stop_ratio", "Thumb-stop (% of impressions, video)", 100.0))
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[m[1] for m in metrics])
    accounts = sorted(set(health["account_id"].astype(str)))
    days = pd.to_numeric(_column(health, "days_covered"), errors="coerce")
    health["_partial"] = days.notna() & (days < 7)
    for i, account in enumerate(accounts):
        rows = health[health["account_id"].astype(str) == account]
        colour = PALETTE[i % len(PALETTE)]
        # a partial week (the export's first or last) is an open marker: its velocity is not a full week's
        symbols = np.where(rows["_partial"], "circle-open", "circle").tolist()
        for j, (column, _label, scale) in enumerate(metrics):
            values = pd.to_numeric(rows[column], errors="coerce") * scale
            fig.add_trace(go.Scatter(x=rows["week"], y=values, mode="lines+markers", name=account,
                                     legendgroup=account, showlegend=j == 0, line={"color": colour, "width": 2},
                                     marker={"size": 7, "symbol": symbols},
                                     hovertemplate="%{x}: %{y:.2f}<extra>" + account + "</extra>"),
                          row=j + 1, col=1)
    notes = []
    partial = health[health["_partial"]].drop_duplicates("week")
    if len(partial):
        weeks = ", ".join(f"{w} ({int(d)} of 7 days)" for w, d in zip(partial["week"], days[partial.index]))
        notes.append(f"Open markers are weeks the export covers only in part: {weeks}. Their velocity "
                     "counts fewer days than a full week's.")
    if pd.to_numeric(health["thumb_stop_ratio"], errors="coerce").notna().sum() == 0:
        notes.append("Thumb-stop is empty: the export has no video delivery (3-second views).")
        fig.add_annotation(text="no video delivery: thumb-stop is empty", xref="x3 domain", yref="y3 domain",
                           x=0.5, y=0.5, showarrow=False, font={"color": "#7f7f7f"})
    _layout(fig, 720, legend={"title": "account"})
    body = ("<p>Per account and week: how many creatives launched, how much of the spend went to fresh "
            "creatives, and how often a video stopped the scroll.</p>" + "".join(_note(n) for n in notes)
            + _plot(fig, "fig-health"))
    return _Section("health", title, body, int(health["week"].nunique()), " ".join(notes) or None)


def _candidates_section(tables: ReportTables, thumbs: _Thumbnails, params: ReportParams) -> _Section:
    title = "Candidate verdicts"
    frame, why = _usable(tables, "candidate_assessment")
    if frame is None:
        detail = ("marts.candidate_assessment does not exist" if tables.candidate_assessment is None else why)
        text = (f"No candidate batch assessed yet ({detail}). Put new, unlaunched images in "
                "<landing>/candidates/<batch>/ or run creative-dag assess (docs/candidates.md).")
        return _Section("candidates", title, _note(text), 0, f"No candidate batch assessed yet ({detail})")
    assessment = frame.copy()
    if "image_path" in assessment.columns:
        thumbs.add_paths({str(c): str(p) for c, p in zip(assessment["candidate_id"], assessment["image_path"],
                                                           strict=True) if not _missing(c) and not _missing(p)})
    pairs, pairs_why = _usable(tables, "candidate_pairs")
    as_of = pd.to_datetime(_column(assessment, "as_of"), errors="coerce")
    order = (assessment.assign(_as_of=as_of).groupby("batch")["_as_of"].max()
             .sort_values(ascending=False, na_position="last"))
    parts = []
    for n, batch in enumerate(order.index):
        rows = assessment[assessment["batch"] == batch].copy()
        rows["_rank"] = pd.to_numeric(_column(rows, "rank"), errors="coerce")
        rows = rows.sort_values(["_rank", "name"], na_position="last")
        as_of_text = _iso_date(order[batch]) or "unknown date"
        parts.append(f"<h3>Batch {_e(batch)} <small>as of {_e(as_of_text)}</small></h3>")
        parts.append(_candidate_table(rows, thumbs, params))
        assessed = rows[(rows["status"] == "assessed")]
        score = pd.to_numeric(_column(assessed, "forecast_score"), errors="coerce")
        if score.notna().any():
            parts.append(_plot(_candidate_figure(assessed), f"fig-candidates-{n}"))
        if pairs is not None:
            parts.append(_verdicts(pairs[pairs["batch"] == batch]))
        else:
            parts.append(_note(f"No pairwise verdicts: {pairs_why}."))
    body = ("<p>New, unlaunched candidates assessed as of their launch date: forecast with an 80 % interval, "
            "the most similar past creatives, repetition risk, DO/DON'T rules met or broken, and pairwise "
            "verdicts with reasons (docs/candidates.md).</p>" + "".join(parts))
    return _Section("candidates", title, body, int((assessment["status"] == "assessed").sum()))


def _candidate_table(rows: pd.DataFrame, thumbs: _Thumbnails, params: ReportParams) -> str:
    lines = []
    for r in rows.to_dict("records"):
        cid = "" if _missing(r.get("candidate_id")) else str(r["candidate_id"])
        image = thumbs.img(cid) if cid else '<span class="thumb noimg">no image</span>'
        forecast = (f"{_fmt(r.get('forecast_score'), 'signed')} [{_fmt(r.get('lower_score'), 'signed')}, "
                    f"{_fmt(r.get('upper_score'), 'signed')}]") if _number(r.get("forecast_score")) is not None else "–"
        similar = _as_list(r.get("similar_ids"))[: params.max_similar]
        similar_html = "".join(f'<figure class="ev">{thumbs.img(s, "thumb-sm")}<figcaption>{_e(s)}</figcaption>'
                               "</figure>" for s in similar)
        repetition = _e(r.get("repetition_risk")) + (f" ({_e(r.get('repetition_of'))})"
                                                     if not _missing(r.get("repetition_of")) else "")
        rules = "; ".join([f"meets {x}" for x in _as_list(r.get("rules_met"))]
                          + [f"breaks {x}" for x in _as_list(r.get("rules_broken"))])
        lines.append(f"<tr><td class=num>{_fmt(r.get('rank'), 'int')}</td><td>{image}</td><td><b>{_e(r.get('name'))}"
                     f"</b><br><small>{_e(r.get('account_id'))}</small></td><td>{_e(r.get('status'))}</td>"
                     f"<td class=num>{forecast}</td><td class=num>{_fmt(r.get('forecast_ctr'), 'pct')}</td>"
                     f"<td class=num>{_fmt(r.get('wins'), 'int')} / {_fmt(r.get('losses'), 'int')}</td>"
                     f"<td>{repetition}</td><td>{_e(rules)}</td><td class=imgs>{similar_html}</td>"
                     f"<td><small>{_e(r.get('candidate_notes'))}</small></td></tr>")
    return ('<div class="scroll"><table class="data"><thead><tr><th>rank</th><th>image</th><th>candidate</th>'
            "<th>status</th><th>forecast score [80 %]</th><th>forecast CTR</th><th>wins / losses</th>"
            "<th>repetition</th><th>rules</th><th>similar past creatives</th><th>notes</th></tr></thead><tbody>"
            + "".join(lines) + "</tbody></table></div>")


def _candidate_figure(assessed: pd.DataFrame) -> go.Figure:
    score = pd.to_numeric(assessed["forecast_score"], errors="coerce")  # case base outcome_score scale
    lower = pd.to_numeric(_column(assessed, "lower_score"), errors="coerce")
    upper = pd.to_numeric(_column(assessed, "upper_score"), errors="coerce")
    names = assessed["name"].astype(str).tolist()
    fig = go.Figure(go.Scatter(
        x=score, y=names, mode="markers", marker={"size": 11, "color": "#4c78a8"}, name="forecast score",
        error_x={"type": "data", "symmetric": False, "array": (upper - score).fillna(0),
                     "arrayminus": (score - lower).fillna(0), "color": "#9ecae1", "thickness": 2},
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    _layout(fig, 120 + 36 * len(names),
            xaxis={"title": "forecast score: log predicted conversions per impression (+0.1 ≈ 10 % more)"},
            yaxis={"autorange": "reversed"}, showlegend=False)
    return fig


def _verdicts(pairs: pd.DataFrame) -> str:
    if pairs.empty:
        return _note("No pairwise verdicts for this batch (fewer than two candidates were assessed).")
    confidence = pd.to_numeric(_column(pairs, "confidence"), errors="coerce")
    items = []
    for r in pairs.assign(_c=confidence).sort_values("_c", ascending=False, na_position="last").to_dict("records"):
        reasons = _as_list(r.get("reasons"))
        verdict = "" if _missing(r.get("verdict")) else str(r["verdict"])
        suffix = ". " + "; ".join(reasons)
        headline = verdict[: -len(suffix)] if reasons and verdict.endswith(suffix) else verdict
        abstain = bool(r.get("abstain")) if not _missing(r.get("abstain")) else False
        reasons_html = "".join(f"<li>{_e(x)}</li>" for x in reasons)
        items.append(f'<li class="{"abstain" if abstain else "decided"}">{_e(headline)}'
                     + (f"<ul>{reasons_html}</ul>" if reasons else "") + "</li>")
    return f'<h4>Pairwise verdicts</h4><ul class="verdicts">{"".join(items)}</ul>'


# -- the page --------------------------------------------------------------------------------
_CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa}
*{box-sizing:border-box}[hidden]{display:none!important}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#102a43;color:#fff;padding:14px 24px}header.top h1{margin:0;font-size:20px}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 24px}
nav a{margin-right:16px;color:#334e68;text-decoration:none;font-weight:600}
main{padding:0 24px 48px;max-width:1500px;margin:auto}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:18px 0;padding:14px 20px}
section h2{margin:4px 0 8px;font-size:18px}h3{font-size:15px;margin:18px 0 8px}h4{margin:14px 0 6px}
.note{color:#8d2b0b;background:#fff4e5;border-left:3px solid #f0b429;padding:6px 10px;margin:8px 0}
.meta{color:var(--muted)}.facts{display:flex;flex-wrap:wrap;gap:10px}
.fact{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:120px}
.fact .value{font-size:18px;font-weight:700}.fact .label{color:var(--muted);font-size:12px}
.plot{width:100%;min-height:200px}
table.data{border-collapse:collapse;width:100%;font-size:13px}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:middle}
table.data th{background:#f0f4f8;position:sticky;top:0}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-sort=asc]::after{content:" \\25B2"}table.sortable th[data-sort=desc]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.tier{font-weight:700}.tier-BEST{color:#1a9850}.tier-GOOD{color:#4575b4}.tier-LOW{color:#d73027}.tier-LEARNING{color:#969696}
.filters{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:8px 0}
.filters select,.filters input{font:inherit;padding:3px 6px}.count{color:var(--muted)}
img.thumb,.thumb.noimg{max-width:96px;max-height:96px;border-radius:4px;display:block}
img.thumb-sm,.thumb-sm.noimg{max-width:48px;max-height:48px;border-radius:3px;display:block}
.noimg{display:inline-block;width:48px;height:48px;background:#f0f4f8;color:var(--muted);font-size:10px;text-align:center;padding-top:16px}
td.imgs{white-space:nowrap}td.imgs img{display:inline-block;margin-right:4px}
td.imgs figure,.evidence figure{display:inline-block;margin:0 6px 0 0;font-size:11px;color:var(--muted);text-align:center}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;border-top:4px solid #bcccdc}
.card header{font-weight:700;margin-bottom:4px}.card .facts{color:var(--muted);font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;margin-right:4px}
.rec-do{border-top-color:#1a9850}.rec-do .badge{background:#1a9850}
.rec-dont{border-top-color:#d73027}.rec-dont .badge{background:#d73027}
.rec-test{border-top-color:#f0b429}.rec-test .badge{background:#de911d}
.strip{display:flex;flex-wrap:wrap;gap:12px}figure.mini{margin:0;display:flex;gap:8px;font-size:12px;min-width:260px}
.hover-panel{position:fixed;right:24px;top:60px;z-index:10;background:#fff;border:1px solid #9fb3c8;border-radius:8px;padding:8px;box-shadow:0 4px 14px rgba(0,0,0,.15);max-width:220px;font-size:12px}
.hover-panel img{display:block;max-width:200px;max-height:200px;margin-bottom:4px}
ul.verdicts li{margin:4px 0}ul.verdicts li.abstain{color:var(--muted)}
"""

_JS = """
function cmFillThumbnails(){document.querySelectorAll('img[data-thumb]').forEach(function(img){
  var uri=CM_THUMBS[img.getAttribute('data-thumb')];if(uri){img.src=uri;}});}
function cmHoverThumbnails(el){var panel=document.getElementById('cm-hover');if(!panel){return;}
  var img=panel.querySelector('img'),caption=panel.querySelector('.caption');
  el.on('plotly_hover',function(ev){var p=ev.points&&ev.points[0];if(!p||!p.customdata){return;}
    var uri=CM_THUMBS[p.customdata[0]];img.hidden=!uri;if(uri){img.src=uri;}
    caption.textContent=p.customdata[0]+' · '+p.customdata[1]+' · '+p.customdata[2];panel.hidden=false;});
  el.on('plotly_unhover',function(){panel.hidden=true;});}
function cmRankingTable(){var table=document.getElementById('ranking-table');if(!table){return;}
  var tbody=table.tBodies[0],rows=Array.prototype.slice.call(tbody.rows);
  var account=document.getElementById('f-account'),tier=document.getElementById('f-tier'),
      status=document.getElementById('f-status'),text=document.getElementById('f-text'),
      count=document.getElementById('f-count');
  function filter(){var q=text.value.trim().toLowerCase(),shown=0;rows.forEach(function(r){
    var ok=(!account.value||r.dataset.account===account.value)&&(!tier.value||r.dataset.tier===tier.value)
      &&(!status.value||r.dataset.status===status.value)
      &&(!q||(r.textContent+' '+(r.title||'')).toLowerCase().indexOf(q)>=0);
    r.hidden=!ok;if(ok){shown++;}});count.textContent=shown+' of '+rows.length+' creatives';}
  [account,tier,status].forEach(function(s){s.addEventListener('change',filter);});
  text.addEventListener('input',filter);
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){if(!th.dataset.kind){return;}
    th.addEventListener('click',function(){var asc=th.dataset.sort!=='asc';
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(o){delete o.dataset.sort;});
      th.dataset.sort=asc?'asc':'desc';var numeric=th.dataset.kind!=='text';
      rows.sort(function(a,b){var x=a.cells[i].dataset.value,y=b.cells[i].dataset.value;
        if(x===''&&y!==''){return 1;}if(y===''&&x!==''){return -1;}
        var c=numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y);return asc?c:-c;});
      rows.forEach(function(r){tbody.appendChild(r);});});});
  filter();}
"""


def build_report(tables: ReportTables, read_image: ImageReader | None = None, params: ReportParams | None = None,
                 generated_at: datetime | None = None, title: str = "Creative Memory report",
                 thumbnail_cache: ThumbnailCache | None = None) -> ReportPage:
    """The whole report page from the marts' frames.

    read_image: image_path -> bytes (raw.creatives.image_path, and candidate_assessment.image_path when
    the caller added it); None leaves every image out. Thumbnails are made only for what is shown, or
    taken from `thumbnail_cache` (the caller saves it)."""
    params = params or ReportParams()
    generated_at = generated_at or datetime.now(UTC)
    paths: dict[str, str] = {}
    creatives, _ = _usable(tables, "creatives")
    if creatives is not None:
        paths = {str(c): str(p) for c, p in zip(creatives["creative_id"], creatives["image_path"], strict=True)
                 if not _missing(p)}
    thumbs = _Thumbnails(read_image, paths, params, thumbnail_cache)
    sections = [
        _overview_section(tables, generated_at),
        _landscape_section(tables, thumbs, params),
        _ranking_section(tables, thumbs, params),
        _fatigue_section(tables, thumbs, params),
        _recommendations_section(tables, thumbs, params),
        _health_section(tables),
        _candidates_section(tables, thumbs, params),
    ]
    nav = "".join(f'<a href="#{s.anchor}">{_e(s.title)}</a>' for s in sections)
    content = "".join(f'<section id="{s.anchor}"><h2>{_e(s.title)}</h2>{s.body}</section>' for s in sections)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style>\n<script>{get_plotlyjs()}</script>\n"
            f"<script>var CM_PLOT_CONFIG={json.dumps(PLOT_CONFIG)};"
            f"var CM_THUMBS={_script_json(json.dumps(thumbs.embedded(), sort_keys=True))};\n{_JS}</script></head>\n"
            f'<body><header class="top"><h1>{_e(title)}</h1></header><nav>{nav}</nav><main>{content}</main>\n'
            "<script>cmFillThumbnails();cmRankingTable();</script></body></html>\n")
    return ReportPage(
        html=page,
        counts={s.anchor: s.count for s in sections if s.anchor != "overview"},
        notes={s.anchor: s.note for s in sections if s.note},
        thumbnails=len(thumbs.embedded()),
        thumbnail_failures=dict(thumbs.failures),
    )


__all__ = ["REQUIRED_COLUMNS", "TABLE_NAMES", "ImageReader", "ReportPage", "ReportParams", "ReportTables",
           "ThumbnailCache", "build_report", "thumbnail_data_uri"]
