"""Account health (velocity, freshness, fatigue share, thumb-stop, diversity) and the landscape map."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from creative_dag.marts.attributes import attribute_frame
from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.marts.health import account_health
from creative_dag.marts.landscape import (
    LandscapeParams,
    cluster_summary,
    cluster_vectors,
    keep_clusters,
    keep_map,
    landscape_coordinates,
    plot_landscape,
    trait_name,
)


def _toy():
    creatives = pd.DataFrame({"creative_id": ["a", "b", "c"], "account_id": "acc_01",
                              "launch_date": pd.to_datetime(["2026-03-02", "2026-03-02", "2026-03-12"])})
    days = pd.date_range("2026-03-02", "2026-03-15")
    rows = []
    for d in days:
        rows.append({"creative_id": "a", "date": d, "impressions": 1000, "clicks": 10, "spend": 10.0,
                     "conversions": 1, "revenue": 20.0, "video_3s_views": 300.0})
        rows.append({"creative_id": "b", "date": d, "impressions": 1000, "clicks": 10, "spend": 30.0,
                     "conversions": 1, "revenue": 20.0, "video_3s_views": np.nan})
        if d >= pd.Timestamp("2026-03-12"):
            rows.append({"creative_id": "c", "date": d, "impressions": 1000, "clicks": 10, "spend": 60.0,
                         "conversions": 1, "revenue": 20.0, "video_3s_views": np.nan})
    return creatives, pd.DataFrame(rows)


def test_weekly_health_figures_by_hand():
    creatives, daily = _toy()
    fatigue = pd.DataFrame({"creative_id": ["a", "b", "c"], "status": ["fatigued", "stable", "fresh"],
                            "fatigue_onset_date": ["2026-03-09", None, None]})
    ranking = pd.DataFrame({"creative_id": ["a", "b", "c"], "is_winner": [False, True, False]})
    ids = ["a", "b", "c"]
    vectors = BlockVectors(ids, {"visual": np.array([[1, 0], [1, 0], [0, 1]], np.float32)}, {"visual": np.ones(3, bool)})
    h = account_health(daily, creatives, fatigue, ranking, vectors).set_index("week_start")
    w1, w2 = h.loc[pd.Timestamp("2026-03-02").date()], h.loc[pd.Timestamp("2026-03-09").date()]
    assert w1["creative_velocity"] == 2 and w2["creative_velocity"] == 1
    # Week 1: both launched on its Monday -> all spend is on creatives < 7 days old except Sunday (age 6 ok).
    assert w1["freshness_rate"] == pytest.approx(1.0)
    # Week 2: a, b are 7-13 days old (stale); c (launched Thu) is fresh: 4 days x 60.
    assert w2["freshness_rate"] == pytest.approx(240 / (7 * 40 + 240))
    assert w2["fatigued_spend_share"] == pytest.approx(70 / 520)  # a from its onset (Mon 9th)
    assert w1["winners_spend_share"] == pytest.approx(0.75)
    assert w1["thumb_stop_ratio"] == pytest.approx(0.3)  # video rows only
    assert w1["creative_diversity"] == pytest.approx(0.0)  # a and b identical
    assert w2["creative_diversity"] == pytest.approx(2 / 3)  # pairs ab=0, ac=1, bc=1


def test_partial_weeks_at_the_ends_of_the_export_are_flagged():
    """The demo's last week had 2 days of data and read as a collapse of velocity and spend."""
    creatives, daily = _toy()  # Mon 2 March .. Sun 15 March: two whole weeks
    cut = daily[(daily["date"] >= "2026-03-04") & (daily["date"] <= "2026-03-10")]  # Wed .. Tue
    h = account_health(cut, creatives).set_index("week_start")
    assert h["days_covered"].to_dict() == {pd.Timestamp("2026-03-02").date(): 5, pd.Timestamp("2026-03-09").date(): 2}
    assert not h["complete_week"].any()
    assert account_health(daily, creatives)["complete_week"].all()


def test_health_without_optional_inputs_is_nan_not_an_error():
    creatives, daily = _toy()
    h = account_health(daily.drop(columns="video_3s_views"), creatives)
    assert h["fatigued_spend_share"].isna().all() and h["creative_diversity"].isna().all()
    assert h["thumb_stop_ratio"].isna().all() and h["freshness_rate"].notna().all()


@pytest.mark.slow  # UMAP compiles its numba kernels on first use (~40 s on a busy 2-core machine)
def test_landscape_is_deterministic_and_separates_groups(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 32)) * 3
    x = np.vstack([c + rng.normal(size=(25, 32)) * 0.3 for c in centers]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"cr_{i}" for i in range(len(x))]
    one = landscape_coordinates(ids, x)
    two = landscape_coordinates(ids, x)
    assert one["method"].iloc[0] == "umap"
    assert np.allclose(one[["x", "y"]], two[["x", "y"]])
    truth = np.repeat([0, 1, 2], 25)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, one["cluster"]) > 0.9
    attrs = pd.DataFrame({"creative_id": ids, "style": np.repeat(["solid", "photo", "dots"], 25)})
    summary = cluster_summary(one, attributes=attrs)
    assert summary["size"].sum() == 75
    assert summary["dominant_attributes"].str.contains("Style: ").all()  # in words, not `style=photo`
    assert not summary["dominant_attributes"].str.contains("=").any()
    named = one.assign(style=attrs["style"]).groupby("cluster")["style"].agg(lambda v: v.mode().iloc[0])
    assert all(f"Style: {named[c]}" in summary.set_index("cluster").loc[c, "cluster_name"] for c in named.index if c >= 0)
    png = plot_landscape(one, tmp_path / "map.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_landscape_fit_leaves_no_warning_in_the_run_log():
    """UMAP warned on every map ("using precomputed metric; inverse_transform will be unavailable", "n_jobs
    value ... overridden to 1 by setting random_state") about choices the landscape makes on purpose."""
    import warnings

    x = np.random.default_rng(2).normal(size=(40, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = landscape_coordinates([f"c{i}" for i in range(40)], x)
    assert out["method"].iloc[0] == "umap"
    assert not [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_small_landscape_uses_pca():
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)
    out = landscape_coordinates([f"c{i}" for i in range(8)], x, LandscapeParams())
    assert out["method"].iloc[0] == "pca" and len(out) == 8
    with pytest.raises(ValueError, match="8 ids but 7 vectors"):
        landscape_coordinates([f"c{i}" for i in range(8)], x[:7])


def test_attribute_frame_from_blocks_and_context():
    visual = pd.DataFrame({"creative_id": ["a", "b"], "vector": [[1.0], [1.0]], "dominant_hue_family": ["warm", "cool"],
                           "brightness": [0.2, 0.8], "dominant_color_hex": ["#ff0000", "#0000ff"]})
    cnn = pd.DataFrame({"creative_id": ["a", "b"], "top_tag": ["cat", "dog"], "tags": [["cat", "toy"], ["dog", "toy"]],
                        "tag_scores": [[0.5, 0.1], [0.6, 0.1]]})
    layout = pd.DataFrame({"creative_id": ["a"], "face_count": [1], "text_boxes": ["[]"], "ocr_text": ["SALE"]})
    prelaunch = pd.DataFrame({"creative_id": ["a", "b"], "format": ["image", "video"], "placement": ["feed", "reels"]})
    frame = attribute_frame({"visual": visual, "cnn": cnn, "layout": layout, "clip": None}, prelaunch, min_tag_support=1)
    assert set(frame.columns) == {"creative_id", "dominant_hue_family", "brightness", "top_tag", "tag_cat", "tag_dog",
                                  "tag_toy", "face_count", "format"}
    assert frame.attrs["sources"]["tag_toy"] == "cnn" and frame.attrs["sources"]["format"] == "context"
    assert frame.set_index("creative_id").loc["b", "face_count"] != frame.set_index("creative_id").loc["b", "face_count"]
    # Frames derived from it carry the same mapping, not a deep copy each (pandas copies attrs into every result:
    # thousands of copies per recommendations or candidates run).
    derived = frame[frame["format"] == "image"]["brightness"].astype(float)
    assert derived.attrs["sources"] is frame.attrs["sources"]


def test_an_unchanged_landscape_is_not_fitted_again(tmp_path, monkeypatch):
    from creative_dag.marts import landscape

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    ids = [f"c{i}" for i in range(40)]
    first = landscape.landscape_coordinates(ids, vectors, cache_dir=tmp_path)
    monkeypatch.setattr(landscape, "_fit_landscape", lambda *a: pytest.fail("refitted an unchanged landscape"))
    again = landscape.landscape_coordinates(ids, vectors, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(pytest.fail.Exception):  # one creative more is a new map
        landscape.landscape_coordinates([*ids, "c40"], np.vstack([vectors, vectors[:1]]), cache_dir=tmp_path)


def test_clusters_are_named_by_what_distinguishes_them():
    """Three planted groups (warm + face, cool + cat tag, bright neutral) and noise: each cluster's name
    lists its own planted traits and none of the others'; spend share and median score by hand."""
    rng = np.random.default_rng(3)
    groups = {0: ("warm", True, "dog", 0.3), 1: ("cool", False, "cat", 0.3), 2: ("neutral", False, "dog", 0.9)}
    rows = []
    for cluster, (hue, face, tag, bright) in [*groups.items(), (-1, ("cool", False, "dog", 0.5))]:
        for i in range(20 if cluster >= 0 else 6):
            rows.append({"creative_id": f"c{cluster}_{i}", "cluster": cluster, "x": float(cluster), "y": 0.0,
                         "dominant_hue_family": hue if i < 18 else "neutral",
                         # the same trait measured twice more (one attribute family): named once
                         "background_hue_family": hue if i < 19 else "neutral",
                         "warm_share": 0.8 if hue == "warm" else 0.1,
                         "face_present": face and i < 17, "face_position": "middle_center" if face and i < 17 else "none",
                         "top_tag": tag, "brightness": bright + rng.normal(0, 0.02),
                         "style": ["solid", "photo"][i % 2],  # spread evenly: never distinctive
                         "spend": 10.0 * (cluster + 2), "score": float(cluster + 1) + i / 100})
    frame = pd.DataFrame(rows)
    attrs = frame[["creative_id", "dominant_hue_family", "background_hue_family", "warm_share", "face_present",
                   "face_position", "top_tag", "brightness", "style"]]
    summary = cluster_summary(frame[["creative_id", "cluster", "x", "y", "spend", "score"]], attributes=attrs).set_index("cluster")
    assert summary.loc[-1, "cluster_name"] == "unclustered"
    warm, cool, bright = (summary.loc[c, "cluster_name"] for c in (0, 1, 2))
    assert warm.startswith("Colour temperature: warm, Faces in the creative") and "cat" not in warm
    assert "Colour temperature: cool" in cool and "cat" in cool and "Faces" not in cool
    assert "Brightness: high" in bright and "Colour temperature: neutral" in bright and "warm" not in bright
    # one trait per attribute family: not "... warm, Background colour temperature: warm, Warm colours: high"
    assert all(name.lower().count("colour") == 1 for name in (warm, cool, bright))
    assert not summary["cluster_name"].str.contains("Face position").any()  # faces are named once, as faces
    assert not summary["cluster_name"].str.contains("style", case=False).any()
    assert summary["cluster_name"].is_unique
    total = frame["spend"].sum()
    assert summary.loc[1, "spend_share"] == pytest.approx(20 * 30.0 / total)
    assert summary["spend_share"].sum() == pytest.approx(1.0)
    assert summary.loc[2, "median_score"] == pytest.approx(3 + 0.095)
    assert summary.loc[0, "size"] == 20
    assert trait_name("tag_tiger_cat=true") == "tiger cat" and trait_name("has_face=true") == "Faces in the creative"
    assert trait_name("face_position=none") == "no faces" and trait_name("text_coverage_class=none") == "no text on the image"


def test_a_new_process_reuses_umaps_compiled_code():
    """A fit in a fresh process (every Dagster step, every daemon run) loads UMAP's numba code from
    numba's disk cache instead of compiling it again (~12 s each time before)."""
    script = (
        "import json, numpy as np\n"
        "from creative_dag.marts import landscape\n"
        "x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)\n"
        "frame = landscape.landscape_coordinates([f'c{i}' for i in range(40)], x)\n"
        "import umap.umap_ as u\n"
        "stats = u.smooth_knn_dist.stats\n"
        "print(json.dumps({'method': frame['method'].iloc[0], 'again': landscape.cache_umap_compilation(),\n"
        "                  'hits': sum(stats.cache_hits.values()), 'misses': sum(stats.cache_misses.values())}))\n")
    # numba's default place (beside umap in this venv): the first process may already find it there
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                      check=True, timeout=300).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["method"] == "umap" and runs[0]["again"] == 0      # idempotent within a process
    assert runs[1]["hits"] >= 1 and runs[1]["misses"] == 0, runs       # the second only loaded it


def _groups(seed: int, per_group: int = 40, dims: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, dims)) * 2
    x = np.vstack([c + rng.normal(size=(per_group, dims)) for c in centers]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(4), per_group)


def test_clusters_do_not_move_with_float_noise():
    """An encoder's run-to-run float noise (3e-8 on the demo) gave 3, 5 or 8 clusters when they were cut on the map."""
    from sklearn.metrics import adjusted_rand_score

    x, truth = _groups(0)
    labels = cluster_vectors(x)
    assert adjusted_rand_score(truth, labels) > 0.9
    for eps in (3e-8, 1e-6):
        noisy = x + np.random.default_rng(1).normal(0, eps, x.shape).astype(np.float32)
        np.testing.assert_array_equal(cluster_vectors(noisy), labels)
    # Numbered by size, largest first.
    sizes = np.bincount(labels[labels >= 0])
    assert (np.diff(sizes) <= 0).all()


def test_cluster_count_follows_clear_structure_and_stays_readable_without_it():
    """Two well-separated groups stay two clusters; vectors with no structure (silhouette < 0.25 for
    every k, as the demo's 0.07-0.12) get a readable 4-8 instead of whatever k scrapes the best score."""
    rng = np.random.default_rng(4)
    two = np.vstack([c + rng.normal(size=(60, 32)) for c in rng.normal(size=(2, 32)) * 4])
    labels = cluster_vectors(two)
    assert len(set(labels[labels >= 0])) == 2
    for seed in range(3):
        blob = np.random.default_rng(seed).normal(size=(200, 32))
        labels = cluster_vectors(blob)
        assert 4 <= len(set(labels[labels >= 0])) <= 8, seed
        # unrestricted, the silhouette's weak maximum is 2 regions: too coarse to navigate
        unrestricted = cluster_vectors(blob, LandscapeParams(readable_clusters=(2, 12)))
        assert len(set(unrestricted[unrestricted >= 0])) == 2, seed


def test_clusters_keep_their_labels_when_a_day_of_creatives_lands():
    x, truth = _groups(2, per_group=50)
    ids = [f"cr_{i:03d}" for i in range(len(x))]
    rng = np.random.default_rng(3)
    landed = rng.random(len(x)) > 0.05  # yesterday's creatives; today 5 % more, from the same groups
    yesterday = pd.Series(cluster_vectors(x[landed]), index=[i for i, k in zip(ids, landed) if k])
    labels, how = keep_clusters(ids, x, cluster_vectors(x), yesterday)
    assert how.startswith("kept from the previous run")
    np.testing.assert_array_equal(labels[landed], yesterday.to_numpy())
    # Each new creative joins the cluster of its own group.
    group_cluster = pd.Series(yesterday.to_numpy()).groupby(truth[landed]).agg(lambda v: v.mode().iloc[0])
    new = np.flatnonzero(~landed)
    assert len(new) >= 5 and (labels[new] == group_cluster.reindex(truth[new]).to_numpy()).mean() >= 0.9
    # Many new creatives (or none before): clustered afresh.
    few = pd.Series(yesterday.iloc[:50].to_numpy(), index=yesterday.index[:50])
    fresh = cluster_vectors(x)
    again, how = keep_clusters(ids, x, fresh, few)
    assert how.startswith("clustered again") and (again == fresh).all()
    assert keep_clusters(ids, x, fresh, None)[1] == "clustered (no previous run)"


def test_the_map_stays_put_when_a_day_of_creatives_lands_and_is_fitted_again_when_many_have():
    """A BI chart read day after day: yesterday's creatives keep their x, y; a new one lands among its own
    group; placed points count towards the refit, so a map is not kept for ever on 5 % a day."""
    x, truth = _groups(4, per_group=50)
    ids = [f"cr_{i:03d}" for i in range(len(x))]
    landed = np.random.default_rng(5).random(len(x)) > 0.05
    yesterday = landscape_coordinates([c for c, k in zip(ids, landed) if k], x[landed])
    assert keep_map(ids, x, None)[0] is None
    today, how = keep_map(ids, x, yesterday)
    assert how.startswith("kept from the previous run")
    pd.testing.assert_frame_equal(today[landed][["creative_id", "x", "y", "method"]].reset_index(drop=True),
                                  yesterday[["creative_id", "x", "y", "method"]])
    new = np.flatnonzero(~landed)
    assert len(new) >= 5 and (today["method"].iloc[new] == "umap-placed").all()
    # each new creative lands nearer its own group's centre than any other group's (on yesterday's map)
    centres = yesterday.assign(group=truth[landed]).groupby("group")[["x", "y"]].mean()
    placed = today.iloc[new][["x", "y"]].to_numpy()
    nearest = np.argmin(((placed[:, None, :] - centres.to_numpy()[None]) ** 2).sum(axis=2), axis=1)
    assert (centres.index.to_numpy()[nearest] == truth[new]).mean() >= 0.9
    # the next day: what was placed still counts as not fitted, and past the share the map is fitted again
    placed_before = today.assign(method=np.where(np.arange(len(ids)) < 40, "umap-placed", today["method"]))
    assert keep_map(ids, x, placed_before)[0] is None
    assert keep_map(ids, x, placed_before)[1].startswith("fitted again")
    assert keep_map(ids, x, yesterday.assign(method="pca"))[0] is None  # a small map is fitted again


def test_the_landscape_distances_are_umaps_own_and_give_the_same_map():
    """The landscape hands UMAP the cosine matrix computed in compiled code instead of letting it call its
    metric once per pair from Python: the matrix must be the one UMAP builds, bit for bit (a zero vector
    included: its distances are UMAP's conventions, 0 to itself and 1 to the rest), and so must the map."""
    import umap
    from sklearn.metrics import pairwise_distances
    from umap.distances import named_distances

    from creative_dag.marts.cosine_matrix import cosine_matrix
    from creative_dag.marts.landscape import cache_umap_compilation

    cache_umap_compilation()  # as a landscape fit does: UMAP's compiled code from the disk cache
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 40)).astype(np.float32)
    x[:40] += 3 * rng.normal(size=40).astype(np.float32)  # some structure for the map
    x[7] = 0.0
    ours = cosine_matrix(x)
    assert ours.dtype == np.float32 and ours[7, 7] == 0.0 and ours[7, 8] == 1.0
    np.testing.assert_array_equal(ours, pairwise_distances(x, metric=named_distances["cosine"]))
    x[7] = rng.normal(size=40)  # a zero vector has no cosine map of its own
    settings = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "random_state": 0, "init": "spectral"}
    by_umap = umap.UMAP(metric="cosine", **settings).fit_transform(x)
    from_matrix = umap.UMAP(metric="precomputed", **settings).fit_transform(cosine_matrix(x))
    np.testing.assert_array_equal(from_matrix, by_umap)
