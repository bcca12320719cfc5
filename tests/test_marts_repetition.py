"""Repetition mart: near-duplicate families recovered as clusters; density counts recent look-alikes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.families import (
    VARIANT_KINDS,
    families_scores,
    leave_one_kind_out,
    only_kinds,
    pair_scores,
)
from bench.families import all_kinds_scenario as all_kinds
from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.marts.repetition import (
    RepetitionParams,
    creative_repetition,
    tired_or_repetitive,
)


def pairwise_f1(predicted: dict[str, str | None], truth: dict[str, str | None]) -> float:
    """F1 over unordered pairs that share a cluster (None = singleton)."""
    return pair_scores(predicted, truth)[2]


def _planted(n_families: int = 12, n_single: int = 60, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, vecs, fam = [], [], {}
    k = 0
    for f in range(n_families + n_single):
        base = rng.normal(size=dim)
        members = int(rng.integers(2, 5)) if f < n_families else 1
        for m in range(members):
            cid = f"cr_{k:04d}"
            k += 1
            vecs.append(base + rng.normal(scale=0.15, size=dim))  # variants: small edits
            fam[cid] = f"fam_{f}" if members > 1 else None
            rows.append({"creative_id": cid, "account_id": "acc_01" if f % 2 else "acc_02",
                         "launch_date": pd.Timestamp("2026-03-01") + pd.Timedelta(days=int(rng.integers(0, 60)) + m)})
    creatives = pd.DataFrame(rows)
    mat = np.asarray(vecs, dtype=np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    return creatives, BlockVectors(creatives["creative_id"], {"visual": mat}, {"visual": np.ones(len(mat), bool)}), fam


def test_planted_families_become_clusters():
    creatives, vectors, fam = _planted()
    table = creative_repetition(creatives, vectors, RepetitionParams(weights={"visual": 1.0}))
    predicted = dict(zip(table["creative_id"], table["near_duplicate_cluster"].where(table["near_duplicate_cluster"].notna(), None)))
    assert pairwise_f1(predicted, fam) == pytest.approx(1.0)
    assert table.loc[table["near_duplicate_cluster"].notna(), "is_repetitive"].all()
    assert (table.groupby("near_duplicate_cluster")["account_id"].nunique() == 1).all()


def test_density_counts_only_trailing_window_same_account():
    ids = ["a", "b", "c", "d"]
    v = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    creatives = pd.DataFrame({"creative_id": ids, "account_id": ["x", "x", "x", "x"],
                              "launch_date": pd.to_datetime(["2026-03-01", "2026-03-10", "2026-05-01", "2026-03-11"])})
    vectors = BlockVectors(ids, {"visual": v}, {"visual": np.ones(4, bool)})
    t = creative_repetition(creatives, vectors, RepetitionParams(window_days=28, weights={"visual": 1.0})).set_index("creative_id")
    assert t.loc["a", "similarity_density"] == 0  # nothing launched before it
    assert t.loc["b", "similarity_density"] == 1  # a, 9 days earlier
    assert t.loc["c", "similarity_density"] == 0  # a and b are out of the 28-day window
    assert t.loc["d", "similarity_density"] == 0  # dissimilar
    assert t.loc["a", "near_duplicate_cluster"] == t.loc["c", "near_duplicate_cluster"]  # clusters ignore time


def test_missing_vectors_are_reported_not_counted_as_unique():
    creatives = pd.DataFrame({"creative_id": ["a", "b"], "account_id": "x", "launch_date": ["2026-03-01"] * 2})
    vectors = BlockVectors(["a"], {"visual": np.ones((1, 2), np.float32)}, {"visual": np.ones(1, bool)})
    t = creative_repetition(creatives, vectors, RepetitionParams(weights={"visual": 1.0})).set_index("creative_id")
    assert t.loc["b", "vector_status"] == "no vectors" and pd.isna(t.loc["b", "similarity_density"])
    with pytest.raises(ValueError, match="stricter"):
        creative_repetition(creatives, vectors, RepetitionParams(tau=0.9, dup_threshold=0.8))


def test_unusable_aspect_ratios_fall_back_to_one_null():
    """An aspect ratio that is missing, zero, negative or not a number (an image that did not decode,
    a NULL read back from DuckDB) gives no shape: the result is what it is without the column."""
    creatives, vectors, _ = _planted()
    params = RepetitionParams(weights={"visual": 1.0})
    junk = pd.Series([np.nan, 0, -1.0, "wide", pd.NA, None] * (len(creatives) // 6 + 1))[:len(creatives)]
    pd.testing.assert_frame_equal(creative_repetition(creatives.assign(aspect_ratio=junk.to_numpy()), vectors, params),
                                  creative_repetition(creatives, vectors, params))


def test_tired_or_repetitive_view_joins_fatigue():
    creatives, vectors, _ = _planted(n_families=2, n_single=3)
    rep = creative_repetition(creatives, vectors, RepetitionParams(weights={"visual": 1.0}))
    single = rep.loc[rep["near_duplicate_cluster"].isna(), "creative_id"].iloc[0]
    fatigue = pd.DataFrame({"creative_id": rep["creative_id"], "status": "stable", "fatigue_onset_date": None,
                            "current_vs_peak": 1.0})
    fatigue.loc[fatigue["creative_id"] == single, ["status", "fatigue_onset_date"]] = ["fatigued", "2026-04-01"]
    view = tired_or_repetitive(rep, fatigue).set_index("creative_id")
    assert view.loc[single, "tired_or_repetitive"] and "fatigued since 2026-04-01" in view.loc[single, "reason"]
    clustered = rep.loc[rep["near_duplicate_cluster"].notna(), "creative_id"].iloc[0]
    assert "near-duplicate of" in view.loc[clustered, "reason"]
    assert tired_or_repetitive(rep, None)["is_tired"].sum() == 0


def test_tired_reasons_read_as_dates_and_name_the_cpa_rule():
    """marts.creative_fatigue as DuckDB gives it back (a DATE column is Timestamps, NULL is NaT): the
    reason says 'since 2026-04-01', not '2026-04-01 00:00:00', and a creative fatigued by the CPA rule
    alone (no CTR onset) says so instead of 'since NaT'."""
    creatives, vectors, _ = _planted(n_families=2, n_single=3)
    rep = creative_repetition(creatives, vectors, RepetitionParams(weights={"visual": 1.0}))
    onset, by_cpa = rep.loc[rep["near_duplicate_cluster"].isna(), "creative_id"].iloc[:2]
    fatigue = pd.DataFrame({"creative_id": rep["creative_id"], "status": "stable",
                            "fatigue_onset_date": pd.NaT, "current_vs_peak": 1.0, "cpa_rule_triggered": False,
                            "cpa_multiple": np.nan})
    fatigue["fatigue_onset_date"] = pd.to_datetime(fatigue["fatigue_onset_date"])
    fatigue.loc[fatigue["creative_id"] == onset, ["status", "fatigue_onset_date"]] = ["fatigued", pd.Timestamp("2026-04-01")]
    fatigue.loc[fatigue["creative_id"] == by_cpa, ["status", "cpa_rule_triggered", "cpa_multiple"]] = ["fatigued", True, 2.43]
    view = tired_or_repetitive(rep, fatigue).set_index("creative_id")
    assert view.loc[onset, "reason"] == "fatigued since 2026-04-01"
    assert view.loc[by_cpa, "reason"] == "fatigued by the CPA rule (recent CPA 2.4x its first 7 days')"
    assert view.loc[onset, "fatigue_onset_date"] == pd.Timestamp("2026-04-01").date()
    assert view.loc[by_cpa, "fatigue_onset_date"] is None
    assert not view["reason"].str.contains("NaT|00:00:00").any()
    assert "cpa_multiple" not in view.columns


def test_fused_similarity_matches_design_formula():
    """S = sum_b w_b cos_b / sum_b w_b over blocks present in both (a missing block drops out)."""
    a = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    b = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    vectors = BlockVectors(["p", "q", "r"], {"visual": a, "cnn": b},
                           {"visual": np.array([True, True, True]), "cnn": np.array([True, True, False])})
    s = vectors.similarity_matrix({"visual": 1.0, "cnn": 3.0})
    assert s[0, 1] == pytest.approx((1 * 0 + 3 * 1) / 4)
    assert s[0, 2] == pytest.approx(1.0)  # only visual shared
    fused = vectors.fused_vectors({"visual": 1.0, "cnn": 3.0})
    assert float(fused[0] @ fused[1]) == pytest.approx(s[0, 1])


@pytest.mark.slow
def test_families_recovered_from_rendered_images_with_real_encoders(tmp_path):
    """Rendered scenario (120 creatives, 128 px): visual (OpenCV) + CNN (EfficientNet-Lite0) blocks.

    Measured pairwise F1 0.952 (precision 0.968, recall 0.938) at the default dup_threshold 0.92;
    the visual block alone reaches 0.90 (docs/marts.md).
    """
    torch = pytest.importorskip("torch")
    from PIL import Image

    from creative_dag.encoders.base import ModelUnavailable
    from creative_dag.encoders.cnn import CnnEncoder
    from creative_dag.encoders.visual import VisualFeatureExtractor
    from creative_dag.synth import generate_scenario

    torch.set_num_threads(1)
    generate_scenario(tmp_path, n_creatives=120, n_days=60, seed=2, image_size=128)
    creatives = pd.read_csv(tmp_path / "creatives.csv")
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    images = [np.asarray(Image.open(tmp_path / p).convert("RGB")) for p in creatives["image_path"]]
    extractor = VisualFeatureExtractor(working_size=128)
    visual = extractor.vectorize(extractor.transform(images, creatives["creative_id"].tolist()))
    try:
        cnn = np.asarray(CnnEncoder.load().encode(images).vectors, dtype=np.float32)
    except ModelUnavailable as exc:
        pytest.skip(f"CNN block unavailable: {exc}")
    ones = np.ones(len(creatives), bool)
    vectors = BlockVectors(creatives["creative_id"], {"visual": visual, "cnn": cnn}, {"visual": ones, "cnn": ones})
    table = creative_repetition(creatives, vectors, RepetitionParams(weights={"visual": 1.0, "cnn": 1.0}))
    predicted = dict(zip(table["creative_id"], table["near_duplicate_cluster"].where(table["near_duplicate_cluster"].notna(), None)))
    f1 = pairwise_f1(predicted, {c: g["family_id"] for c, g in truth["creatives"].items()})
    assert f1 >= 0.95, f"pairwise F1 {f1:.3f}"
    assert table["family_id"].equals(table["near_duplicate_cluster"])


# -- families with every kind of variant: leave-one-kind-out (bench/families.py runs it over 8 seeds) --
@pytest.fixture(scope="module")
def all_kinds_scenario(tmp_path_factory):
    """300 creatives at 128 px, half of them in families whose variants cover every kind, with the
    visual (OpenCV), CNN (EfficientNet-Lite0) and text (MiniLM on headline + primary text) blocks."""
    pytest.importorskip("torch")
    from creative_dag.encoders.base import ModelUnavailable

    try:
        return all_kinds(tmp_path_factory.mktemp("all_kinds"), seed=7)
    except ModelUnavailable as exc:
        pytest.skip(f"block unavailable: {exc}")


@pytest.mark.slow
def test_families_with_every_variant_kind_recovered_with_block_evidence(all_kinds_scenario):
    """Default parameters against the fused-cosine rule alone (the previous method) on all kinds.

    Measured (seed 7): fused only P 1.00 R 0.40 F1 0.57; with block evidence P 0.95 R 0.98 F1 0.97 (0.92
    with one null for every shape; 0.94 with the centre-cropping CNN at full weight on pairs of different
    shapes). The average-linkage split (split_below) changes nothing on seed 7 since that weight; it
    raises F1 on seeds 6 / 8 / 9 / 10 (test_two_families_bridged_by_one_look_alike_pair_stay_two
    tests it). docs/marts.md has the figures.
    """
    creatives, vectors, truth, edit = all_kinds_scenario
    weights = {"visual": 1.0, "cnn": 1.0, "text": 1.0}
    fused_only = families_scores(creatives, vectors, truth, RepetitionParams(weights=weights, min_evidence_blocks=99))
    p, r, f = families_scores(creatives, vectors, truth, RepetitionParams(weights=weights))
    assert f >= 0.9 and f >= fused_only[2] + 0.2, f"block evidence P {p:.3f} R {r:.3f} F1 {f:.3f}; fused only {fused_only}"
    unsplit = families_scores(creatives, vectors, truth, RepetitionParams(weights=weights, split_below=0.0))
    assert p >= unsplit[0] and f >= unsplit[2], f"split P {p:.3f} F1 {f:.3f}; single linkage only {unsplit}"
    full_cnn = families_scores(creatives, vectors, truth, RepetitionParams(weights=weights, cross_shape_weight=1.0))
    assert r > full_cnn[1] and f > full_cnn[2], f"P {p:.3f} R {r:.3f} F1 {f:.3f}; CNN at full weight across shapes {full_cnn}"
    one_null = families_scores(creatives.drop(columns="aspect_ratio"), vectors, truth, RepetitionParams(weights=weights))
    assert f > one_null[2], f"shape-aware nulls F1 {f:.3f} vs one null {one_null}"
    table = creative_repetition(creatives, vectors, RepetitionParams(weights=weights)).set_index("creative_id")
    fam = table.dropna(subset=["family_id"])
    assert (fam["closest_variant_id"].map(table["family_id"]) == fam["family_id"]).all()
    assert fam["blocks_agree"].str.len().gt(0).all()
    # The evidence names what changed: a new headline is a text difference, a resize an image-block one.
    headline = [c for c in fam.index if edit[c] == "headline" and edit.get(fam.loc[c, "closest_variant_id"]) == "base"]
    assert np.mean(["text" in fam.loc[c, "blocks_differ"] for c in headline]) >= 0.8
    resized = [c for c in fam.index if edit[c] == "aspect_ratio" and edit.get(fam.loc[c, "closest_variant_id"]) == "base"]
    assert len(resized) >= 5 and all("aspect_ratio" in fam.loc[c, "blocks_differ"] for c in resized)
    assert not any("aspect_ratio" in fam.loc[c, "blocks_differ"] for c in headline)
    assert {"visual", "cnn", "text"} == set(json.loads(fam["block_similarity"].iloc[0]))


@pytest.mark.slow
def test_held_out_variant_kinds_leave_one_kind_out(all_kinds_scenario):
    """min_evidence tuned on six kinds, scored on the seventh (bases, singletons and its variants).

    Measured held-out pair F1 (seed 7): crop, reframe, hue_shift, cta_text 1.00, headline 0.97, reencode
    0.97, aspect_ratio 0.90 (recall 0.81); on another machine (2026-12-04, same package versions as far as
    checked) aspect_ratio 0.86 (recall 0.75), where 2.25 and 2.5 tied on the worst tuning kind and the
    mean-F1 tie-break keeps the other kinds at the figures above (the permissive one gave them
    precision 0.75-0.82). With the centre-cropping CNN at full weight on pairs of
    different shapes (cross_shape_weight=1, the previous default): aspect_ratio 0.67 / recall 0.50, and
    the level tuned with aspect_ratio among the tuning kinds cost every other kind precision (0.88-0.92).
    With one null for every shape: 0.75-0.80 and aspect 0.32; fused cosine alone: headline recall 0.03,
    aspect 0.06. The issue's goal (held-out F1 >= 0.9) is met by 7 of 7 kinds here and on seeds 5 and 11,
    by 47 of 56 kind x seed cells over seeds 5-12, and by every kind with the pair counts of those eight seeds
    pooled (bench/families.py; docs/marts.md).
    """
    creatives, vectors, truth, edit = all_kinds_scenario
    weights = {"visual": 1.0, "cnn": 1.0, "text": 1.0}
    result = leave_one_kind_out(creatives, vectors, truth, edit, weights)
    report = {k: (round(v["precision"], 3), round(v["recall"], 3), round(v["f1"], 3)) for k, v in result.items()}
    others = [k for k in VARIANT_KINDS if k != "aspect_ratio"]
    assert all(result[k]["recall"] >= 0.9 and result[k]["f1"] >= 0.9 for k in others), report
    assert result["aspect_ratio"]["f1"] >= 0.85, report
    # At the same level, the previous default (the CNN's centre crop at full weight across shapes):
    full_cnn = families_scores(only_kinds(creatives, edit, {"aspect_ratio"}), vectors, truth,
                               RepetitionParams(weights=weights, min_evidence=result["aspect_ratio"]["min_evidence"],
                                                cross_shape_weight=1.0))
    assert result["aspect_ratio"]["f1"] >= full_cnn[2] + 0.15, (report, full_cnn)
    fused_headline = families_scores(only_kinds(creatives, edit, {"headline"}), vectors, truth,
                                     RepetitionParams(weights=weights, min_evidence_blocks=99))
    assert result["headline"]["f1"] >= fused_headline[2] + 0.5, (report, fused_headline)
    fused_aspect = families_scores(only_kinds(creatives, edit, {"aspect_ratio"}), vectors, truth,
                                   RepetitionParams(weights=weights, min_evidence_blocks=99))
    assert result["aspect_ratio"]["recall"] >= fused_aspect[1], (report, fused_aspect)


def _families(creatives: pd.DataFrame, blocks: dict[str, np.ndarray], **params) -> pd.DataFrame:
    """creative_repetition by creative_id, every block of every creative present and weighted 1."""
    ones = np.ones(len(creatives), bool)
    vectors = BlockVectors(creatives["creative_id"], blocks, {b: ones for b in blocks})
    return creative_repetition(creatives, vectors, RepetitionParams(weights=dict.fromkeys(blocks, 1.0), **params)
                               ).set_index("creative_id")


def test_two_families_bridged_by_one_look_alike_pair_stay_two():
    """Single linkage joins two families through one member that passes the evidence rule with both (a
    design between two packshots); the average-linkage split keeps them apart, and without it
    (split_below=0) they merge."""
    rng = np.random.default_rng(4)
    n_other, dim = 120, 64
    sizes = {"a": 4, "b": 3}
    blocks = {b: rng.normal(size=(n_other + 7, dim)) for b in ("visual", "cnn", "text")}
    for mat in blocks.values():
        row = n_other
        for size in sizes.values():
            base = rng.normal(size=dim)
            for _ in range(size):  # a base and its variants: every block close to the base
                mat[row] = base + 0.15 * rng.normal(size=dim)
                row += 1
        # The bridge: the first family's last member looks as much like the second family in every block.
        mat[n_other + 3] += mat[n_other + 4]
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    ids = [f"u{i:03d}" for i in range(n_other)] + [f"{f}{k}" for f, size in sizes.items() for k in range(size)]
    accounts = [f"acc_{i % 6 + 2}" for i in range(n_other)] + ["acc_1"] * 7
    creatives = pd.DataFrame({"creative_id": ids, "account_id": accounts,
                              "launch_date": pd.Timestamp("2026-03-01") + pd.to_timedelta(np.arange(len(ids)) % 50, "D")})
    families = _families(creatives, blocks)
    merged = _families(creatives, blocks, split_below=0.0)
    first, second = ["a0", "a1", "a2"], ["b0", "b1", "b2"]
    assert merged.loc[first + second + ["a3"], "family_id"].nunique() == 1  # the chain single linkage sees
    assert families.loc[first, "family_id"].nunique() == 1 and families.loc[second, "family_id"].nunique() == 1
    assert families.loc["a0", "family_id"] != families.loc["b0", "family_id"]
    members = families["family_id"].value_counts()  # sizes and ids follow the split
    assert (families.loc[first + second, "cluster_size"] == families.loc[first + second, "family_id"].map(members)).all()
    assert families.loc[first + second, "closest_variant_id"].map(families["family_id"]).eq(
        families.loc[first + second, "family_id"]).all()


def test_a_resize_is_a_variant_although_the_centre_cropping_cnn_disagrees():
    """A pair of different shapes whose visual and text blocks agree while the CNN (which sees only the
    centre square of each canvas) does not: a family at the default cross_shape_weight, not with the CNN
    at full weight; the same blocks on two creatives of one shape are no family either way."""
    rng = np.random.default_rng(7)
    n_other, dim = 150, 64
    blocks = {b: rng.normal(size=(n_other + 4, dim)) for b in ("visual", "cnn", "text")}
    for mat in blocks.values():
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    for b in ("visual", "text"):  # two pairs alike (cosine 0.33, ~top 0.4 % of unrelated pairs) in visual and
        for first in (n_other, n_other + 2):  # text, unrelated in the CNN
            mat = blocks[b]
            other = mat[first + 1] - (mat[first + 1] @ mat[first]) * mat[first]
            mat[first + 1] = 0.33 * mat[first] + np.sqrt(1 - 0.33 ** 2) * other / np.linalg.norm(other)
    ids = [f"u{i:03d}" for i in range(n_other)] + ["square", "portrait", "square_a", "square_b"]
    creatives = pd.DataFrame({
        "creative_id": ids, "account_id": [f"acc_{i % 5 + 2}" for i in range(n_other)] + ["acc_1"] * 4,
        "launch_date": pd.Timestamp("2026-03-01") + pd.to_timedelta(np.arange(len(ids)) % 40, "D"),
        "aspect_ratio": rng.choice([1.0, 0.5625], size=len(ids))})
    creatives.loc[creatives["creative_id"].isin(["square", "square_a", "square_b"]), "aspect_ratio"] = 1.0
    creatives.loc[creatives["creative_id"] == "portrait", "aspect_ratio"] = 0.5625
    table = _families(creatives, blocks)
    full = _families(creatives, blocks, cross_shape_weight=1.0)
    assert pd.notna(table.loc["square", "family_id"])
    assert table.loc["square", "family_id"] == table.loc["portrait", "family_id"]
    assert "aspect_ratio" in table.loc["portrait", "blocks_differ"] and "cnn" in table.loc["portrait", "blocks_differ"]
    assert pd.isna(full.loc["square", "family_id"])
    assert pd.isna(table.loc["square_a", "family_id"]) and pd.isna(full.loc["square_a", "family_id"])
