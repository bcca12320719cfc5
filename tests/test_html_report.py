"""The HTML report (docs/report.md): what a person sees, offline, and what a partial warehouse gives.

Small hand-made marts frames with a known answer (which creatives, which onset, which finding); the
browser test renders the page in headless Chromium (tests/browser.py) and checks it the way a person
would: the plots are drawn, hovering a point shows its image, the table filter filters, nothing
fails in the console. Its screenshot is kept under $PYTEST_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

from creative_dag.assets.html_report import (
    REPORT_FILE_NAME,
    html_report,
    read_report_tables,
)
from creative_dag.report.html import (
    ReportParams,
    ReportTables,
    ThumbnailCache,
    build_report,
    thumbnail_data_uri,
)
from creative_dag.resources.image_store import ImageStoreResource
from creative_dag.resources.warehouse import DuckDBWarehouse, WarehouseResource

ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
START = date(2026, 3, 2)
FATIGUED = "cr_003"
ONSET = START + timedelta(days=12)
HOSTILE = "</script><script>alert('x')</script>"


# -- small marts ------------------------------------------------------------------------------
def image_bytes(colour: tuple[int, int, int], fmt: str = "JPEG", size: tuple[int, int] = (120, 160)) -> bytes:
    mode = "RGBA" if fmt == "PNG" else "RGB"
    img = Image.new(mode, size, (*colour, 128) if mode == "RGBA" else colour)
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def small_marts(n_creatives: int = 12, n_days: int = 30) -> tuple[ReportTables, dict[str, bytes]]:
    """Two accounts; cr_003 is the top spender and fatigues at day 12 (its CTR halves); one creative
    (cr_011) has no image file; findings: a DO (all accounts), a DON'T (acc_02), a TEST whose evidence
    list is NULL (DuckDB gives pd.NA), and one not shown."""
    rng = np.random.default_rng(0)
    ids = [f"cr_{i:03d}" for i in range(n_creatives)]
    accounts = ["acc_01" if i % 2 == 0 else "acc_02" for i in range(n_creatives)]
    paths = [f"images/{cid}.{'png' if i == 1 else 'jpg'}" for i, cid in enumerate(ids)]
    images = {p: image_bytes((20 * i % 255, 120, 200), "PNG" if p.endswith("png") else "JPEG")
              for i, p in enumerate(paths) if not p.startswith("images/cr_011")}
    spend = np.linspace(1000, 100, n_creatives)
    spend[3], spend[0] = spend[0], spend[3]
    tiers = ["BEST", "GOOD", "LOW", "LEARNING"]
    ranking = pd.DataFrame({
        "creative_id": ids, "account_id": accounts, "campaign_id": [f"cmp_{a[-2:]}" for a in accounts],
        "impressions": (spend * 100).astype(int), "clicks": (spend * 2).astype(int), "spend": spend,
        "conversions": (spend / 20).astype(int), "revenue": spend * 3, "ctr": 0.02, "cvr": 0.05, "roas": 3.0,
        "cpa": 20.0, "score": np.linspace(0.3, -0.3, n_creatives), "rank_in_account": [i // 2 + 1 for i in range(n_creatives)],
        "tier": [tiers[i % 4] for i in range(n_creatives)], "confidence": 0.8,
        "explanation": ["CTR above account " + HOSTILE if i == 5 else "CTR above account" for i in range(n_creatives)],
    })
    landscape = pd.DataFrame({
        "creative_id": ids, "x": rng.normal(size=n_creatives), "y": rng.normal(size=n_creatives),
        "cluster": [i % 3 - 1 for i in range(n_creatives)], "method": "umap", "account_id": accounts,
        "score": ranking["score"], "tier": ranking["tier"],
        "cluster_name": [["unclustered", "warm hue", "faces"][i % 3] for i in range(n_creatives)],
    })
    clusters = pd.DataFrame({
        "cluster": [-1, 0, 1], "cluster_name": ["unclustered", "warm hue", "faces"], "size": [4, 4, 4],
        "spend_share": [0.3, 0.4, 0.3], "mean_score": [0.0, 0.1, -0.1], "median_score": [0.0, 0.1, -0.1],
        "share_fatigued": [0.25, 0.0, 0.5], "dominant_attributes": ["", "hue=warm (100%)", "face=true (100%)"],
        "example_ids": [np.array(ids[0:2]), np.array(ids[1:3]), pd.NA], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0],
    })
    days = [START + timedelta(days=d) for d in range(n_days)]
    daily_rows = []
    for cid, s in zip(ids, spend, strict=True):
        for d, day in enumerate(days):
            ctr = 0.03 if cid != FATIGUED or day < ONSET else 0.03 * 0.5 ** ((day - ONSET).days / 4)
            daily_rows.append({"creative_id": cid, "date": day, "ctr": ctr, "spend": s / n_days})
    daily = pd.DataFrame(daily_rows)
    daily["rolling_ctr"] = daily.groupby("creative_id")["ctr"].transform(lambda c: c.rolling(7, 1).mean())
    fatigue = pd.DataFrame({
        "creative_id": ids, "account_id": accounts,
        "status": ["fatigued" if c == FATIGUED else "stable" for c in ids],
        "fatigue_onset_date": [pd.Timestamp(ONSET) if c == FATIGUED else pd.NaT for c in ids],
        "days_to_fatigue": [12 if c == FATIGUED else pd.NA for c in ids],
        "current_vs_peak": [0.2 if c == FATIGUED else 1.0 for c in ids],
        "fatigue_evidence": ["onset detected" if c == FATIGUED else "decline not significant" for c in ids],
    })
    recommendations = pd.DataFrame({
        "scope": ["ALL", "acc_02", "ALL", "ALL"], "rank": [1, 1, 2, 11], "shown": [True, True, True, False],
        "recommendation": ["DO", "DON'T", "TEST", "DO"],
        "finding": ["Faces in the creative", "Text coverage: heavy", "Warm colours", "Hidden finding"],
        "metric": ["ctr", "cvr", "ctr", "ctr"], "lift": [0.2, -0.15, 0.08, 0.05],
        "ci_low": [0.1, -0.25, -0.01, 0.0], "ci_high": [0.3, -0.05, 0.17, 0.1], "n_with": [6, 3, 2, 4],
        "stability": [0.95, 0.8, 0.5, 0.7],
        "evidence_creatives": [np.array(["cr_000", "cr_002"]), np.array(["cr_001", "cr_011"]), pd.NA, pd.NA],
        "sentence": ["DO: Faces in the creative → CTR +20%", "DON'T: Text coverage: heavy → CVR −15%",
                     "TEST: Warm colours → CTR +8%", "DO: hidden"],
    })
    weeks = [START + timedelta(weeks=w) for w in range(4)]
    health = pd.DataFrame([{"account_id": a, "week_start": w, "creative_velocity": 3 + i, "active_creatives": 6,
                            "spend": 1000.0, "freshness_rate": 0.4 + 0.1 * i, "fatigued_spend_share": 0.1,
                            "thumb_stop_ratio": 0.2 + 0.01 * i if a == "acc_01" else np.nan,
                            "days_covered": 7 if i < 3 else 2}
                           for a in ("acc_01", "acc_02") for i, w in enumerate(weeks)])
    creatives = pd.DataFrame({"creative_id": ids, "account_id": accounts, "image_path": paths})
    tables = ReportTables(creatives=creatives, ranking=ranking, landscape=landscape, landscape_clusters=clusters,
                          fatigue=fatigue, fatigue_daily=daily, recommendations=recommendations,
                          account_health=health)
    return tables, images


def candidate_marts(images: dict[str, bytes]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One batch of three candidates (two assessed, one rejected file) and its one pair."""
    images["candidates/spring/cand_a.jpg"] = image_bytes((250, 200, 10))
    assessment = pd.DataFrame({
        "batch": "spring", "candidate_id": ["cand:spring/cand_a", "cand:spring/cand_b", None],
        "name": ["cand_a", "cand_b", "broken.jpg"], "status": ["assessed", "assessed", "truncated_image"],
        "rank": pd.array([1, 2, pd.NA], dtype="Int64"), "account_id": "acc_01", "as_of": date(2026, 4, 1),
        "forecast_score": [0.12, -0.05, np.nan], "lower_score": [0.0, -0.2, np.nan], "upper_score": [0.25, 0.1, np.nan],
        "forecast_ctr": [0.021, 0.018, np.nan], "wins": [1, 0, pd.NA], "losses": [0, 1, pd.NA],
        "similar_ids": [np.array(["cr_000", "cr_002"]), np.array(["cr_004"]), pd.NA],
        "repetition_risk": ["low", "similar", None], "repetition_of": [None, "cr_004", None],
        "rules_met": [np.array(["Faces in the creative"]), np.array([], dtype=object), pd.NA],
        "rules_broken": [np.array([], dtype=object), np.array(["Text coverage: heavy"]), pd.NA],
        "candidate_notes": [None, None, "broken.jpg: image file is truncated"],
        "image_path": ["candidates/spring/cand_a.jpg", None, None],
    })
    reasons = ["cand_a has Faces in the creative (outcome +20 %)"]
    pairs = pd.DataFrame({
        "batch": ["spring"], "candidate_a": ["cand:spring/cand_a"], "candidate_b": ["cand:spring/cand_b"],
        "winner": ["cand:spring/cand_a"], "confidence": [0.81], "abstain": [False], "reasons": [np.array(reasons)],
        "verdict": ["cand_a over cand_b: 18 % more predicted conversions per impression (P = 0.81). " + reasons[0]],
    })
    return assessment, pairs


def reader(images: dict[str, bytes]):
    def read(path: str) -> bytes:
        if path not in images:
            raise FileNotFoundError(f"no such image: {path}")
        return images[path]
    return read


# -- the page ---------------------------------------------------------------------------------
def test_report_shows_every_section_with_thumbnails():
    tables, images = small_marts()
    page = build_report(tables, reader(images))
    html = page.html
    for anchor in ("overview", "landscape", "ranking", "fatigue", "recommendations", "health", "candidates"):
        assert f'<section id="{anchor}">' in html
    for plot in ("fig-landscape", "fig-fatigue", "fig-health"):
        assert f'id="{plot}"' in html
    assert page.counts == {"landscape": 12, "ranking": 12, "fatigue": 6, "recommendations": 3, "health": 4,
                           "candidates": 0}
    thumbs = json.loads(re.search(r"var CM_THUMBS=(\{.*?\});", html).group(1))
    assert set(thumbs) == {f"cr_{i:03d}" for i in range(11)}  # every creative but the one without a file
    assert all(uri.startswith("data:image/jpeg;base64,") for uri in thumbs.values())
    assert page.thumbnails == 11 and set(page.thumbnail_failures) == {"cr_011"}
    assert "images/cr_011.jpg" in page.thumbnail_failures["cr_011"]
    assert html.count('data-thumb="cr_000"') >= 3  # table, cluster examples and DO evidence share one thumbnail
    assert "Faces in the creative" in html and "Text coverage: heavy" in html and "Hidden finding" not in html
    assert "Account acc_02" in html  # the DON'T of one account, under its own heading
    assert f"onset {ONSET.isoformat()}" in html  # the fatigued top spender's onset, in its panel title
    assert "thumb-stop" in html.lower()
    last_week = (START + timedelta(weeks=3)).isoformat()
    assert f"Open markers are weeks the export covers only in part: {last_week} (2 of 7 days)." in html
    assert "(a UMAP map, from the fused image similarity)" in html  # the method in words, not `umap`
    assert "No candidate batch assessed yet (marts.candidate_assessment does not exist)" in html


def test_thumbnails_are_kept_for_the_next_report_and_made_again_for_a_replaced_image(tmp_path, monkeypatch):
    """Every run rebuilds the page; a thumbnail is decoded again only when its image's bytes changed."""
    import creative_dag.report.html as report_html

    tables, images = small_marts()
    path = tmp_path / "thumbnails.json"
    first = build_report(tables, reader(images), thumbnail_cache=(cache := ThumbnailCache.open(path)))
    cache.save()
    kept, for_replaced = ThumbnailCache.open(path), ThumbnailCache.open(path)  # salted before the spy below
    made = []
    real = report_html.thumbnail_data_uri
    monkeypatch.setattr(report_html, "thumbnail_data_uri", lambda data, *a: made.append(data) or real(data, *a))
    again = build_report(tables, reader(images), thumbnail_cache=kept)
    assert made == [] and kept.hits == 11
    thumbs = [json.loads(re.search(r"var CM_THUMBS=(\{.*?\});", p.html).group(1)) for p in (first, again)]
    assert thumbs[0] == thumbs[1] and len(thumbs[0]) == 11

    replaced = dict(images)
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (0, 200, 0)).save(buffer, "JPEG")
    replaced["images/cr_003.jpg"] = buffer.getvalue()
    build_report(tables, reader(replaced), thumbnail_cache=for_replaced)
    assert made == [buffer.getvalue()]

    path.write_text("{not json")  # a damaged cache is a cold one, with a note
    damaged = ThumbnailCache.open(path)
    assert "unreadable" in damaged.note
    assert build_report(tables, reader(images), thumbnail_cache=damaged).thumbnails == 11


def test_fatigue_curves_are_the_top_spenders_with_the_onset_line():
    tables, images = small_marts()
    page = build_report(tables, reader(images), ReportParams(top_spenders=3))
    spec = json.loads(re.search(r'id="fig-fatigue".*?var spec=(\{.*?\});Plotly', page.html, re.DOTALL).group(1))
    names = [a["text"].split(" · ")[0] for a in spec["layout"]["annotations"] if " · " in a.get("text", "")]
    assert names == ["cr_003", "cr_001", "cr_002"]  # by spend: cr_003 took cr_000's budget
    onset_lines = [s for s in spec["layout"].get("shapes", []) if s.get("type") == "line"]
    assert len(onset_lines) == 1 and str(onset_lines[0]["x0"]).startswith(ONSET.isoformat())


def test_nothing_is_fetched_when_the_page_is_viewed():
    tables, images = small_marts()
    tables.candidate_assessment, tables.candidate_pairs = candidate_marts(images)
    html = build_report(tables, reader(images)).html
    attributes = re.findall(r"""<(?:script|link|img|iframe|source|embed|object)\b[^>]*?\b(?:src|href|data)\s*=\s*["']?([^"'\s>]+)""",
                            html, re.IGNORECASE)
    assert not [a for a in attributes if re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", a, re.IGNORECASE) and not a.startswith("data:")]
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html, re.IGNORECASE)
    assert html.count(get_plotlyjs()[:2000]) == 1  # plotly.js inlined once


def test_missing_tables_are_named_and_the_page_still_builds():
    page = build_report(ReportTables(), reader({}))
    html = page.html
    assert page.counts == {"landscape": 0, "ranking": 0, "fatigue": 0, "recommendations": 0, "health": 0,
                           "candidates": 0}
    for table in ("marts.creative_landscape", "marts.creative_ranking", "marts.creative_fatigue_daily",
                  "marts.recommendations", "marts.account_health"):
        assert f"{table} does not exist yet" in html
    assert "creative-dag materialize --select marts/creative_ranking" in html
    assert "No candidate batch assessed yet" in page.notes["candidates"]
    assert 'class="plot"' not in html and page.thumbnails == 0


def test_empty_and_outdated_tables_say_so():
    tables, images = small_marts()
    tables.landscape = tables.landscape.iloc[0:0]
    tables.recommendations = tables.recommendations.iloc[0:0]
    tables.account_health = tables.account_health.drop(columns=["freshness_rate"])
    page = build_report(tables, reader(images))
    assert page.notes["landscape"] == "marts.creative_landscape has no rows"
    assert "no finding met the thresholds" in page.notes["recommendations"]
    assert "marts.account_health lacks the column(s) freshness_rate" in page.notes["health"]
    assert page.counts["ranking"] == 12  # the rest of the page is unaffected


def test_no_image_reader_and_unreadable_images_cost_pictures_not_the_page():
    tables, images = small_marts()
    images["images/cr_000.jpg"] = b"not an image"
    page = build_report(tables, reader(images))
    assert "cr_000" in page.thumbnail_failures and page.thumbnails == 10
    assert 'class="thumb-sm noimg"' in page.html
    without = build_report(tables, None)
    assert without.thumbnails == 0 and without.counts["ranking"] == 12


def test_text_from_the_data_cannot_break_out_of_the_page():
    tables, images = small_marts()
    tables.recommendations.loc[0, "finding"] = HOSTILE
    html = build_report(tables, reader(images)).html
    assert HOSTILE not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(" in html  # shown as text
    assert html.count("</script>") == html.count("<script")


def test_caps_keep_a_large_account_small():
    tables, images = small_marts(n_creatives=60)
    page = build_report(tables, reader(images), ReportParams(max_landscape_points=20, max_table_rows=25))
    assert page.counts["landscape"] == 20 and page.counts["ranking"] == 25
    assert "Showing the 20 highest-spend of 60 mapped creatives." in page.html
    assert page.thumbnails < 60  # only what is shown gets a thumbnail


def test_candidate_verdicts_when_a_batch_was_assessed():
    tables, images = small_marts()
    tables.candidate_assessment, tables.candidate_pairs = candidate_marts(images)
    page = build_report(tables, reader(images))
    html = page.html
    assert page.counts["candidates"] == 2 and "candidates" not in page.notes
    assert "Batch spring" in html and 'id="fig-candidates-0"' in html
    assert "cand_a over cand_b: 18 % more predicted conversions per impression (P = 0.81)" in html
    assert "<li>cand_a has Faces in the creative (outcome +20 %)</li>" in html
    assert 'data-thumb="cand:spring/cand_a"' in html and "truncated_image" in html
    assert "meets Faces in the creative" in html and "breaks Text coverage: heavy" in html


def test_thumbnail_is_a_small_jpeg_and_flattens_transparency():
    uri = thumbnail_data_uri(image_bytes((255, 0, 0), "PNG", (1080, 540)), size_px=96)
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.format == "JPEG" and img.size == (96, 48)
    r, g, _b = img.getpixel((48, 24))
    assert r > 240 and 100 < g < 160  # half-transparent red on white


# -- the asset --------------------------------------------------------------------------------
def small_warehouse(tmp_path: Path) -> tuple[DuckDBWarehouse, Path]:
    """The small marts written to a DuckDB file and their images to a landing folder."""
    tables, images = small_marts()
    landing = tmp_path / "landing"
    for path, data in images.items():
        (landing / path).parent.mkdir(parents=True, exist_ok=True)
        (landing / path).write_bytes(data)
    wh = DuckDBWarehouse(tmp_path / "home" / "creative.duckdb")
    for name, table in (("creatives", "raw.creatives"), ("ranking", "marts.creative_ranking"),
                        ("landscape", "marts.creative_landscape"), ("fatigue", "marts.creative_fatigue"),
                        ("fatigue_daily", "marts.creative_fatigue_daily"), ("account_health", "marts.account_health"),
                        ("recommendations", "marts.recommendations")):
        frame = getattr(tables, name).copy()
        for column in frame.columns:  # lists as Python lists, NULL list as None: what the marts write
            if frame[column].map(lambda v: isinstance(v, np.ndarray)).any():
                frame[column] = [list(v) if isinstance(v, np.ndarray) else None for v in frame[column]]
        wh.write_table(table, frame)
    return wh, landing


def report_metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(["report", "html"])]
    return events[-1].step_materialization_data.materialization.metadata


def test_asset_writes_the_report_and_links_it(tmp_path):
    wh, landing = small_warehouse(tmp_path)
    resources = {"warehouse": WarehouseResource(database=str(wh.path)), "image_store": ImageStoreResource(root=str(landing))}
    for _ in range(2):  # the second run replaces the file in place
        result = dg.materialize([html_report], resources=resources)
        assert result.success
    path = tmp_path / "home" / "reports" / REPORT_FILE_NAME
    reports = sorted(p.name for p in path.parent.iterdir())
    assert reports == [REPORT_FILE_NAME]  # no temporary file left behind
    meta = report_metadata(result)
    assert meta["path"].value == str(path) and meta["report"].value == path.as_uri()
    assert meta["size_bytes"].value == path.stat().st_size
    assert meta["missing_tables"].value == ("marts.landscape_clusters, marts.candidate_assessment, "
                                            "marts.candidate_pairs")
    assert meta["landscape_shown"].value == 12 and meta["images_missing"].value == 1
    assert meta["thumbnails_reused"].value == 11  # the second run decoded no image again
    assert (tmp_path / "home" / "cache" / "report" / "thumbnails.json").exists()
    html = path.read_text(encoding="utf-8")
    assert '"cr_005"' in html and "No cluster summary: marts.landscape_clusters does not exist yet" in html
    tables = read_report_tables(wh)
    assert isinstance(tables.recommendations.loc[2, "evidence_creatives"], type(pd.NA))  # NULL list as pd.NA


def test_asset_shows_candidate_thumbnails_from_the_batch_folder(tmp_path):
    wh, landing = small_warehouse(tmp_path)
    _, images = small_marts()
    assessment, pairs = candidate_marts(images)
    (landing / "candidates" / "spring").mkdir(parents=True)
    (landing / "candidates" / "spring" / "cand_a.jpg").write_bytes(images["candidates/spring/cand_a.jpg"])
    wh.write_table("marts.candidate_assessment", assessment.drop(columns=["image_path"]).assign(
        similar_ids=[["cr_000"], ["cr_004"], None], rules_met=[[], [], None], rules_broken=[[], [], None]))
    wh.write_table("marts.candidate_pairs", pairs.assign(reasons=[["cand_a has faces"]]))
    resources = {"warehouse": WarehouseResource(database=str(wh.path)), "image_store": ImageStoreResource(root=str(landing))}
    result = dg.materialize([html_report], resources=resources)
    meta = report_metadata(result)
    assert meta["candidates_shown"].value == 2
    html = (tmp_path / "home" / "reports" / REPORT_FILE_NAME).read_text(encoding="utf-8")
    assert '"cand:spring/cand_a": "data:image/jpeg;base64,' in html


# -- in a browser -----------------------------------------------------------------------------
CHROMIUM_150_STDERR = """\
[18256:18283:1203/065734.368281:ERROR:dbus/bus.cc:405] Failed to connect to the bus: Failed to connect to socket
[18256:18256:1203/065735.103811:INFO:CONSOLE:1] "log-msg", source: file:///tmp/t.html (1)
[18256:18256:1203/065735.105482:INFO:CONSOLE:1] "err-msg", source: file:///tmp/t.html (1)
[18256:18256:1203/065735.105482:INFO:CONSOLE:1] "err-msg", source: file:///tmp/t.html (1)
[18256:18256:1203/065735.106540:INFO:CONSOLE:1] "Uncaught ReferenceError: undefinedFn is not defined", source: x.html (1)
[1:1:0101/000000.000000:INFO:CONSOLE(7)] "old format", source: http://localhost:3000/app.js (7)
"""


def test_console_messages_are_read_from_chromium_log():
    from browser import console_errors

    assert console_errors(CHROMIUM_150_STDERR) == [
        '"log-msg", source: file:///tmp/t.html (1)', '"err-msg", source: file:///tmp/t.html (1)',
        '"Uncaught ReferenceError: undefinedFn is not defined", source: x.html (1)',
        '"old format", source: http://localhost:3000/app.js (7)']


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_chromium_skips_with_the_reason_but_fails_in_ci(monkeypatch, ci):
    import browser

    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(browser, "_unavailable_reason", None)
    browser.find_or_install_chromium.cache_clear()
    try:
        if ci:
            with pytest.raises(RuntimeError, match="installing it needs root"):
                browser.find_or_install_chromium()
        else:
            assert browser.find_or_install_chromium() is None
            assert "sudo apt-get install -y --no-install-recommends chromium" in browser.chromium_unavailable_reason()
    finally:
        browser.find_or_install_chromium.cache_clear()  # the real lookup for the tests after this one


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PlotContents(HTMLParser):
    """Per plot div (`id="fig-..."`): how many Plotly SVG roots, drawn points and drawn lines it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.open: list[tuple[str, int]] = []
        self.plots: dict[str, dict[str, int]] = {}

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        classes = set((attr.get("class") or "").split())
        if tag == "div" and (attr.get("id") or "").startswith("fig-"):
            self.open.append((attr["id"], self.depth))
            self.plots[attr["id"]] = {"main-svg": 0, "point": 0, "line": 0}
        for plot, _ in self.open:
            counts = self.plots[plot]
            counts["main-svg"] += tag == "svg" and "main-svg" in classes
            counts["point"] += tag == "path" and "point" in classes
            counts["line"] += tag == "path" and "js-line" in classes
        if tag not in _VOID:
            self.depth += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.depth -= 1

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        self.depth -= 1
        while self.open and self.open[-1][1] >= self.depth:
            self.open.pop()


PROBE = """<script>setTimeout(function(){var out={};
var el=document.getElementById('fig-landscape'),panel=document.getElementById('cm-hover');
var point=el.querySelector('.scatterlayer .point').getBoundingClientRect(),drag=el.querySelector('.nsewdrag');
drag.dispatchEvent(new MouseEvent('mousemove',{bubbles:true,clientX:point.left+point.width/2,
  clientY:point.top+point.height/2}));
out.hover_shown=!panel.hidden;out.hover_image=panel.querySelector('img').src.slice(0,23);
out.hover_caption=panel.querySelector('.caption').textContent;
Plotly.Fx.unhover(el);panel.hidden=true;
var account=document.getElementById('f-account');account.value='acc_02';account.dispatchEvent(new Event('change'));
var rows=Array.prototype.slice.call(document.querySelectorAll('#ranking-table tbody tr'));
out.rows_shown=rows.filter(function(r){return !r.hidden;}).map(function(r){return r.dataset.account;});
out.count=document.getElementById('f-count').textContent;
account.value='';account.dispatchEvent(new Event('change'));
out.thumbs_filled=document.querySelectorAll('img[data-thumb][src^="data:image/jpeg"]').length;
document.body.setAttribute('data-probe',JSON.stringify(out));},200);</script></body>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    from browser import chromium_or_skip, render

    chromium_or_skip()
    tables, images = small_marts()
    tables.candidate_assessment, tables.candidate_pairs = candidate_marts(images)
    page = build_report(tables, reader(images))
    # The page as written, plus a probe that moves the mouse onto a landscape point (Plotly emits hover
    # events only for real mouse events) and filters the table the way a person would, records what
    # happened in the DOM, and puts everything back before the screenshot.
    target = tmp_path / "report.html"
    target.write_text(page.html.replace("</body>", PROBE), encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = render(str(target), ARTIFACTS / "html_report.png", width=1400, height=3000, wait_ms=3000)

    assert result.console_errors == []
    plots = PlotContents()
    plots.feed(result.dom)
    assert set(plots.plots) == {"fig-landscape", "fig-fatigue", "fig-health", "fig-candidates-0"}
    for plot, counts in plots.plots.items():
        assert counts["main-svg"] >= 1, f"{plot} was not drawn"
        assert counts["point"] + counts["line"] > 0, f"{plot} has axes but nothing plotted: {counts}"
    assert plots.plots["fig-landscape"]["point"] == 12
    assert plots.plots["fig-fatigue"]["line"] >= 6  # a 7-day CTR line per top spender (+ the onset legend)
    probe = json.loads(re.search(r"data-probe=\"([^\"]*)\"", result.dom).group(1).replace("&quot;", '"'))
    assert probe["hover_shown"] and probe["hover_image"] == "data:image/jpeg;base64,"
    assert probe["hover_caption"].startswith("cr_")
    assert set(probe["rows_shown"]) == {"acc_02"} and probe["count"] == "6 of 12 creatives"
    assert probe["thumbs_filled"] >= 11
    assert result.screenshot.stat().st_size > 10_000
    with Image.open(result.screenshot) as shot:
        assert shot.size == (1400, 3000)
        assert len(set(shot.convert("L").resize((70, 150)).getdata())) > 20  # not a blank page
