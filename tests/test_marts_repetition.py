"""Repetition mart: near-duplicate families recovered as clusters; density counts recent look-alikes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creative_dag.marts.repetition import (
    RepetitionParams,
    creative_repetition,
    tired_or_repetitive,
)
from creative_dag.marts.similarity import BlockVectors


def pairwise_f1(predicted: dict[str, str | None], truth: dict[str, str | None]) -> float:
    """F1 over unordered pairs that share a cluster (None = singleton)."""
    ids = sorted(truth)
    tp = fp = fn = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            t = truth[a] is not None and truth[a] == truth[b]
            p = predicted.get(a) is not None and predicted.get(a) == predicted.get(b)
            tp += t and p
            fp += p and not t
            fn += t and not p
    return 2 * tp / max(2 * tp + fp + fn, 1)


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
