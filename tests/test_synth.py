"""Tests of the synthetic scenario generator (creative_dag.synth)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import spearmanr

from creative_dag import contract
from creative_dag.synth import ScenarioError, generate_scenario, resolve_scenario

N_CREATIVES, N_DAYS, SIZE, SEED = 120, 45, 256, 7
START = "2026-03-01"


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "landing"
    generate_scenario(out, n_creatives=N_CREATIVES, n_days=N_DAYS, seed=SEED, image_size=SIZE, start_date=START)
    return out


@pytest.fixture(scope="module")
def truth(landing: Path) -> dict:
    return json.loads((landing / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def creatives(landing: Path) -> pd.DataFrame:
    return pd.read_csv(landing / "creatives.csv")


@pytest.fixture(scope="module")
def daily(landing: Path) -> pd.DataFrame:
    return pd.read_csv(landing / "daily_metrics.csv")


@pytest.fixture(scope="module")
def large_metrics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bigger metrics-only run of the default scenario, for statistical checks."""
    out = tmp_path_factory.mktemp("synth_large")
    generate_scenario(out, n_creatives=600, n_days=90, seed=11, image_size=SIZE, render_images=False)
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic_for_a_seed(landing: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_scenario(again, n_creatives=N_CREATIVES, n_days=N_DAYS, seed=SEED, image_size=SIZE,
                      start_date=START, workers=2)
    for name in ("creatives.csv", "daily_metrics.csv", "ground_truth.json"):
        assert _digest(landing / name) == _digest(again / name), name
    first = sorted((landing / "images").iterdir())
    assert [p.name for p in first] == sorted(p.name for p in (again / "images").iterdir())
    for p in first:
        assert _digest(p) == _digest(again / "images" / p.name), p.name

    other = tmp_path / "other"
    generate_scenario(other, n_creatives=N_CREATIVES, n_days=N_DAYS, seed=SEED + 1, image_size=SIZE,
                      start_date=START, render_images=False)
    assert _digest(landing / "daily_metrics.csv") != _digest(other / "daily_metrics.csv")
    assert _digest(landing / "creatives.csv") != _digest(other / "creatives.csv")


def test_creatives_contract(landing: Path, creatives: pd.DataFrame) -> None:
    for col in contract.CREATIVES_REQUIRED + contract.CREATIVES_OPTIONAL + contract.KNOWN_LEAKY_EXPORT_COLUMNS:
        assert col in creatives.columns, col
    assert len(creatives) == N_CREATIVES
    assert creatives["creative_id"].is_unique
    assert creatives["creative_id"].str.fullmatch(r"cr_\d{6}").all()
    assert set(creatives["account_id"]) == {"acc_01", "acc_02", "acc_03", "acc_04"}
    assert set(creatives["platform"]) <= {"meta", "tiktok", "google"}
    assert set(creatives["format"]) == {"image", "video"}
    launch = pd.to_datetime(creatives["launch_date"], format="%Y-%m-%d")
    first, last = dt.date.fromisoformat(START), dt.date.fromisoformat(START) + dt.timedelta(days=N_DAYS - 1)
    assert launch.min().date() >= first and launch.max().date() <= last
    # Launches are continuous: every 10-day window of the period has some.
    days = (launch - pd.Timestamp(START)).dt.days
    assert all(((days >= a) & (days < a + 10)).any() for a in range(0, N_DAYS - 9, 10))

    sizes, formats = set(), set()
    for rel in creatives["image_path"]:
        assert not Path(rel).is_absolute() and rel.startswith("images/")
        with Image.open(landing / rel) as im:
            im.verify()
        with Image.open(landing / rel) as im:
            sizes.add(im.size)
            formats.add(im.format)
    assert (SIZE, SIZE) in sizes and any(h > w for w, h in sizes)
    assert min(min(s) for s in sizes) == SIZE
    assert formats == {"JPEG", "PNG"}


def test_daily_metrics_contract(creatives: pd.DataFrame, daily: pd.DataFrame) -> None:
    for col in contract.METRICS_REQUIRED + contract.METRICS_OPTIONAL:
        assert col in daily.columns, col
    assert not daily.duplicated(["creative_id", "date"]).any()
    pd.to_datetime(daily["date"], format="%Y-%m-%d")
    for col in ("impressions", "clicks", "conversions", "reach", "likes"):
        assert pd.api.types.is_integer_dtype(daily[col]), col
        assert (daily[col] >= 0).all(), col
    assert (daily[["spend", "revenue", "frequency"]] >= 0).all().all()
    assert (daily["clicks"] <= daily["impressions"]).all()
    assert (daily["conversions"] <= daily["clicks"]).all()
    assert (daily["reach"] <= daily["impressions"]).all()
    assert ((daily["impressions"] == 0) | (daily["spend"] > 0)).all()
    merged = daily.merge(creatives[["creative_id", "launch_date", "format"]], on="creative_id", how="left")
    assert merged["launch_date"].notna().all()
    assert (merged["date"] >= merged["launch_date"]).all(), "metrics before launch"
    assert set(creatives["creative_id"]) == set(daily["creative_id"])
    video = merged["format"] == "video"
    assert merged.loc[~video, "video_3s_views"].isna().all()
    assert merged.loc[video, "video_3s_views"].notna().all()
    assert (merged.loc[video, "video_3s_views"] <= merged.loc[video, "impressions"]).all()
    assert 0.15 < creatives["format"].eq("video").mean() < 0.5


def test_ground_truth_structure(truth: dict, creatives: pd.DataFrame) -> None:
    for key in ("seed", "scenario", "leaky_columns", "effects", "creatives", "families"):
        assert key in truth, key
    assert truth["seed"] == SEED
    assert truth["leaky_columns"] == ["last_7d_ctr", "lifetime_spend", "lifetime_roas"]
    assert {e["metric"] for e in truth["effects"]} == {"ctr", "cvr"}
    assert any(e["accounts"] for e in truth["effects"]), "an account-specific effect is planted"
    for e in truth["effects"]:
        assert set(e) >= {"attribute", "value", "metric", "multiplier", "accounts"}
    assert set(truth["creatives"]) == set(creatives["creative_id"])
    families = set()
    for cid, c in truth["creatives"].items():
        a = c["attributes"]
        assert a["hue_family"] in ("warm", "cool", "neutral")
        assert a["text_coverage"] in ("none", "light", "medium", "heavy")
        assert isinstance(a["has_face"], bool) and isinstance(a["has_cta"], bool)
        assert (c["face_box"] is not None) == a["has_face"]
        assert (c["headline_box"] is None) == (a["text_coverage"] == "none")
        assert isinstance(c["latent_quality"], float)
        assert 0 < c["expected_ctr"] < 0.5 and 0 < c["expected_cvr"] < 1
        assert len(c["dominant_background_rgb"]) == 3
        for box in (c["face_box"], c["headline_box"]):
            if box is not None:
                x, y, w, h = box
                assert 0 <= x and 0 <= y and w > 0 and h > 0
                assert x + w <= c["image_width"] and y + h <= c["image_height"]
        if c["family_id"]:
            families.add(c["family_id"])
            assert cid in truth["families"][c["family_id"]]
    assert families == set(truth["families"])
    fatiguing = np.mean([c["fatigues"] for c in truth["creatives"].values()])
    assert 0.4 < fatiguing < 0.75


def test_family_members_are_near_duplicates(landing: Path, truth: dict) -> None:
    assert truth["families"], "default scenario plants near-duplicate families"
    cs = truth["creatives"]

    def thumb(cid: str) -> np.ndarray:
        with Image.open(landing / cs[cid]["image_path"]) as im:
            return np.asarray(im.convert("L").resize((32, 32)), dtype=float)

    family_d, other_d = [], []
    ids = sorted(cs)
    rng = np.random.default_rng(0)
    for members in truth["families"].values():
        base = cs[members[0]]
        assert base["variant_edit"] == "base"
        for cid in members[1:]:
            c = cs[cid]
            assert c["account_id"] == base["account_id"] and c["campaign_id"] == base["campaign_id"]
            gap = (dt.date.fromisoformat(c["launch_date"]) - dt.date.fromisoformat(base["launch_date"])).days
            assert 0 <= gap <= 21
            diff = {k for k in c["attributes"] if c["attributes"][k] != base["attributes"][k]}
            assert diff <= ({"headline"} if c["variant_edit"] == "headline" else set()), diff
            family_d.append(np.abs(thumb(cid) - thumb(members[0])).mean())
            other = ids[int(rng.integers(len(ids)))]
            if cs[other]["family_id"] != base["family_id"]:
                other_d.append(np.abs(thumb(other) - thumb(members[0])).mean())
    assert np.median(family_d) < 0.5 * np.median(other_d)


def test_leaky_columns_leak(creatives: pd.DataFrame, daily: pd.DataFrame) -> None:
    life = daily.groupby("creative_id")[["clicks", "impressions", "spend", "revenue"]].sum()
    df = creatives.set_index("creative_id").join(life)
    df = df[df["impressions"] > 0]
    rho = spearmanr(df["last_7d_ctr"], df["clicks"] / df["impressions"], nan_policy="omit").statistic
    assert rho > 0.7
    assert np.allclose(df["lifetime_spend"], df["spend"], atol=0.05)
    assert np.allclose(df["lifetime_roas"], df["revenue"] / df["spend"], atol=1e-3)


def _effect_frame(truth: dict) -> pd.DataFrame:
    rows = []
    for c in truth["creatives"].values():
        a, life = c["attributes"], c["lifetime"]
        rows.append({"account": c["account_id"], "imps": life["impressions"], "clicks": life["clicks"],
                     "conv": life["conversions"], "ctx_ctr": c["context_ctr_multiplier"],
                     "ctx_cvr": c["context_cvr_multiplier"], **a})
    return pd.DataFrame(rows)


def _log_ols(y: np.ndarray, design: pd.DataFrame) -> dict[str, float]:
    x = design.astype(float).assign(const=1.0)
    coef, *_ = np.linalg.lstsq(x.to_numpy(), y, rcond=None)
    return dict(zip(x.columns, np.exp(coef)))


def test_default_effects_recovered_from_metrics(large_metrics: Path) -> None:
    truth = json.loads((large_metrics / "ground_truth.json").read_text())
    df = _effect_frame(truth)
    df = df[df["clicks"] > 20].reset_index(drop=True)
    accounts = pd.get_dummies(df["account"], drop_first=True)
    design = pd.DataFrame({"face": df["has_face"], "warm": df["hue_family"] == "warm",
                           "heavy": df["text_coverage"] == "heavy", "photo": df["product_kind"] == "photo"})
    ctr = _log_ols(np.log(df["clicks"] / df["imps"] / df["ctx_ctr"]).to_numpy(), pd.concat([design, accounts], axis=1))
    assert ctr["face"] == pytest.approx(1.20, abs=0.08)
    assert ctr["warm"] == pytest.approx(1.15, abs=0.08)
    assert ctr["heavy"] == pytest.approx(0.80, abs=0.08)
    df = df[df["conv"] > 5].reset_index(drop=True)
    accounts = pd.get_dummies(df["account"], drop_first=True)
    design = pd.DataFrame({"cta": df["has_cta"],
                           "photo_bg_acc02": (df["background_style"] == "photo") & (df["account"] == "acc_02")})
    cvr = _log_ols(np.log(df["conv"] / df["clicks"] / df["ctx_cvr"]).to_numpy(), pd.concat([design, accounts], axis=1))
    assert cvr["cta"] == pytest.approx(1.15, abs=0.08)
    assert cvr["photo_bg_acc02"] > 1.05


def test_planted_effect_exact_under_controlled_scenario(tmp_path: Path) -> None:
    # One context, no latent quality, fatigue or rate jitter: aggregate rates then
    # differ only by the planted multipliers (and binomial sampling).
    overrides = {
        "accounts": {"base_ctr": [0.012], "base_cvr": [0.04]},
        "context": {"platforms": {"meta": 1.0}, "placements": {"meta": {"feed": 1.0}},
                    "audiences": {"interest": 1.0}, "objectives": {"conversions": 1.0}},
        "quality": {"ctr_sigma": 0.0, "cvr_sigma": 0.0, "family_member_sigma": 0.0},
        "fatigue": {"share": 0.0},
        "noise": {"daily_rate_sigma": 0.0},
        "effects": [{"attribute": "has_face", "value": True, "metric": "ctr", "multiplier": 1.3},
                    {"attribute": "has_cta", "value": True, "metric": "cvr", "multiplier": 1.2, "accounts": []}],
    }
    generate_scenario(tmp_path, n_creatives=300, n_days=60, seed=3, image_size=SIZE, scenario=overrides,
                      render_images=False)
    df = _effect_frame(json.loads((tmp_path / "ground_truth.json").read_text()))
    g = df.groupby("has_face")[["clicks", "imps"]].sum()
    assert (g.clicks / g.imps)[True] / (g.clicks / g.imps)[False] == pytest.approx(1.3, rel=0.04)
    g = df.groupby("has_cta")[["conv", "clicks"]].sum()
    assert (g.conv / g.clicks)[True] / (g.conv / g.clicks)[False] == pytest.approx(1.2, rel=0.06)
    g = df.groupby("hue_family")[["clicks", "imps"]].sum()  # no longer planted: no effect
    assert (g.clicks / g.imps)["warm"] / (g.clicks / g.imps)["cool"] == pytest.approx(1.0, abs=0.06)


def test_fatigue_visible(large_metrics: Path) -> None:
    truth = json.loads((large_metrics / "ground_truth.json").read_text())
    daily = pd.read_csv(large_metrics / "daily_metrics.csv", parse_dates=["date"])
    plan = pd.DataFrame([
        {"creative_id": cid, "fatigues": c["fatigues"],
         # Non-fatiguing creatives are split at the age a typical fatiguing one turns.
         "split": pd.Timestamp(c["fatigue_onset_date"]) if c["fatigue_onset_date"]
         else pd.Timestamp(c["launch_date"]) + pd.Timedelta(days=10)}
        for cid, c in truth["creatives"].items()
        if not (c["fatigues"] and c["fatigue_onset_date"] is None)  # stopped before its onset
    ])
    d = daily.merge(plan, on="creative_id")
    d["phase"] = np.select([d["date"] < d["split"], d["date"] >= d["split"] + pd.Timedelta(days=4)],
                           ["before", "after"], "gap")
    g = d[d["phase"] != "gap"].groupby(["creative_id", "phase"])[["clicks", "impressions"]].sum().unstack()
    g = g[(g["impressions"] >= 5000).all(axis=1)]
    ratio = (g["clicks"]["after"] / g["impressions"]["after"]) / (g["clicks"]["before"] / g["impressions"]["before"])
    fatigues = plan.set_index("creative_id")["fatigues"].loc[ratio.index]
    assert fatigues.sum() > 50 and (~fatigues).sum() > 30
    assert ratio[fatigues].median() < 0.8
    assert ratio[~fatigues].median() == pytest.approx(1.0, abs=0.06)


def test_latent_quality_ranks_outcomes(large_metrics: Path) -> None:
    truth = json.loads((large_metrics / "ground_truth.json").read_text())
    cs = [c for c in truth["creatives"].values() if c["lifetime"]["clicks"] > 50]
    conv_per_imp = [c["lifetime"]["conversions"] / c["lifetime"]["impressions"] / (
        c["context_ctr_multiplier"] * c["context_cvr_multiplier"]) for c in cs]
    assert spearmanr([c["latent_quality"] for c in cs], conv_per_imp).statistic > 0.5


def test_faces_detected_by_haar_cascade(landing: Path, truth: dict) -> None:
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        pytest.skip("this OpenCV build has no Haar cascades (OpenCV 5 moved them out of the main module)")
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    with_face = [c for c in truth["creatives"].values() if c["attributes"]["has_face"]][:8]
    assert with_face
    for c in with_face:
        gray = cv2.imread(str(landing / c["image_path"]), cv2.IMREAD_GRAYSCALE)
        x, y, w, h = c["face_box"]
        found = cascade.detectMultiScale(gray, 1.1, 5)
        assert any(abs(fx + fw / 2 - x - w / 2) < 0.35 * w and abs(fy + fh / 2 - y - h / 2) < 0.35 * h
                   for fx, fy, fw, fh in found), (c["image_path"], c["face_box"], found)


def test_headline_box_has_contrasting_text(landing: Path, truth: dict) -> None:
    checked = 0
    for c in truth["creatives"].values():
        if c["headline_box"] is None or c["variant_edit"] not in (None, "base"):
            continue
        x, y, w, h = c["headline_box"]
        with Image.open(landing / c["image_path"]) as im:
            patch = np.asarray(im.convert("L"), dtype=float)[y:y + h, x:x + w]
        # Glyph strokes against their backdrop: a wide luminance spread inside the box.
        assert np.percentile(patch, 95) - np.percentile(patch, 5) > 120, c["image_path"]
        checked += 1
    assert checked > 20


def test_scenario_file_overrides(tmp_path: Path) -> None:
    yaml_file = tmp_path / "scenario.yaml"
    yaml_file.write_text("accounts:\n  count: 3\nfamilies:\n  share: 0.0\n"
                         "effects:\n  - {attribute: has_face, value: true, metric: ctr, multiplier: 1.5}\n")
    summary = generate_scenario(tmp_path / "y", n_creatives=60, n_days=20, seed=1, image_size=SIZE,
                                scenario=yaml_file, render_images=False)
    truth = json.loads(Path(summary["paths"]["ground_truth"]).read_text())
    assert summary["n_accounts"] == 3 and summary["n_families"] == 0
    assert truth["effects"] == [{"attribute": "has_face", "value": True, "metric": "ctr",
                                 "multiplier": 1.5, "accounts": []}]
    assert truth["scenario"]["fatigue"] == resolve_scenario(None)["fatigue"]  # untouched defaults kept

    json_file = tmp_path / "scenario.json"
    json_file.write_text(json.dumps({"context": {"platforms": {"tiktok": 1.0}}}))
    generate_scenario(tmp_path / "j", n_creatives=40, n_days=20, seed=1, scenario=json_file, render_images=False)
    assert set(pd.read_csv(tmp_path / "j" / "creatives.csv")["platform"]) == {"tiktok"}


@pytest.mark.parametrize("overrides, key", [
    ({"not_a_section": 1}, "not_a_section"),
    ({"fatigue": {"shar": 0.5}}, "fatigue.shar"),
    ({"effects": [{"attribute": "has_face", "value": True, "metric": "ctr", "multiplier": 1.2, "acounts": []}]},
     "effects[0].acounts"),
    ({"effects": [{"attribute": "logo", "value": True, "metric": "ctr", "multiplier": 1.2}]}, "logo"),
    ({"effects": [{"attribute": "has_face", "value": True, "metric": "cpa", "multiplier": 1.2}]}, "effects[0]"),
    ({"fatigue": {"share": "half"}}, "fatigue.share"),
    ({"context": {"platforms": {"snapchat": 1.0}}}, "snapchat"),
])
def test_invalid_scenarios_name_the_key(overrides: dict, key: str, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=key.replace("[", r"\[").replace("]", r"\]")):
        generate_scenario(tmp_path, n_creatives=10, n_days=5, scenario=overrides, render_images=False)
