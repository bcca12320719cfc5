"""The FAISS case index: exact == brute force, approximate recall, as-of and filters, persistence."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from creative_dag.cbr.index import CaseIndex, PairCosines
from creative_dag.cbr.similarity import (
    BlockLayout,
    concat_blocks,
    exact_similarity,
    weight_vector,
)

LAYOUT = BlockLayout(("clip", "cnn", "visual", "context"), (32, 24, 8, 6))


@pytest.fixture(autouse=True)
def _one_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered_cases(n: int, seed: int = 0, missing_rate: float = 0.15):
    """Cases around 40 cluster centres (like creative families/themes), some blocks missing."""
    rng = np.random.default_rng(seed)
    centres = {b: rng.normal(size=(40, d)) for b, d in zip(LAYOUT.blocks, LAYOUT.dims)}
    label = rng.integers(0, 40, n)
    raw = {b: centres[b][label] + 0.6 * rng.normal(size=(n, d)) for b, d in zip(LAYOUT.blocks, LAYOUT.dims)}
    for b in ("cnn", "visual"):
        raw[b][rng.random(n) < missing_rate] = 0.0
    x, p = concat_blocks(LAYOUT, raw, n)
    available = rng.integers(0, 365, n)
    return x, p, available


def brute_force(x, p, available, q, qp, w, k, as_of, mask=None, exclude=None):
    s = exact_similarity(LAYOUT, q, qp, x, p, w)
    s[~(available[None, :] < np.asarray(as_of)[:, None])] = np.nan
    if mask is not None:
        s[:, ~mask] = np.nan
    if exclude is not None:
        s[np.arange(len(q)), exclude] = np.nan
    s = np.nan_to_num(s, nan=-np.inf)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(s, top, axis=1)


def test_exact_index_equals_brute_force_with_missing_blocks_as_of_and_filters():
    x, p, available = clustered_cases(3000)
    rng = np.random.default_rng(1)
    q_rows = rng.choice(3000, 40, replace=False)
    as_of = rng.integers(30, 365, 40)
    mask = rng.random(3000) < 0.6
    weights = {"clip": 0.5, "cnn": 2.0, "visual": 1.0, "context": 0.25}
    index = CaseIndex(LAYOUT).fit(x, p, available)
    assert {g.mode for g in index.groups} == {"flat"}
    assert len(index.groups) == 4  # presence patterns: all, no cnn, no visual, neither
    res = index.search(x[q_rows], p[q_rows], weights, k=10, as_of=as_of, mask=mask, exclude=q_rows)
    top, scores = brute_force(x, p, available, x[q_rows], p[q_rows], weight_vector(LAYOUT, weights), 10,
                              as_of, mask, q_rows)
    np.testing.assert_allclose(res.scores, scores, atol=1e-5)
    # Same sets (ties in float32 could swap order; scores already match exactly).
    assert all(set(res.rows[i]) == set(top[i]) for i in range(40))
    # Nothing retrieved is unavailable on the query's day, filtered out, or the query itself.
    got = res.rows[res.rows >= 0]
    assert (available[res.rows] < as_of[:, None])[res.rows >= 0].all()
    assert mask[got].all()
    assert not (res.rows == q_rows[:, None]).any()
    # Per-block breakdown: NaN exactly where a block is missing on either side.
    clip, cnn = LAYOUT.blocks.index("clip"), LAYOUT.blocks.index("cnn")
    assert np.isfinite(res.per_block[:, :, clip]).all()
    shared_cnn = p[q_rows][:, None, cnn] & p[res.rows][:, :, cnn]
    assert (np.isfinite(res.per_block[:, :, cnn]) == shared_cnn).all()


def test_searches_with_reused_pair_cosines_equal_fresh_searches():
    """The backtest searches the same case rows ~70 times with other weights; reusing the per-block cosines
    of pairs seen before changes no neighbour, score or breakdown, and computes each pair once."""
    x, p, available = clustered_cases(1500)
    rng = np.random.default_rng(2)
    q_rows = rng.choice(1500, 200, replace=False)
    as_of = rng.integers(30, 365, 200)
    index = CaseIndex(LAYOUT).fit(x, p, available)
    cache = PairCosines()
    settings = [{"clip": 0.5, "cnn": 2.0, "visual": 1.0, "context": 0.25}, {"clip": 1.0, "cnn": 0.0, "visual": 1.0, "context": 1.0},
                {"clip": 0.5, "cnn": 2.0, "visual": 1.0, "context": 0.25}, {"clip": 0.0, "cnn": 0.0, "visual": 0.0, "context": 1.0}]
    sizes = []
    for weights in settings:
        fresh = index.search(x[q_rows], p[q_rows], weights, k=10, as_of=as_of, exclude=q_rows)
        reused = index.search(x[q_rows], p[q_rows], weights, k=10, as_of=as_of, exclude=q_rows, cache=cache)
        for name in ("rows", "scores", "per_block"):
            np.testing.assert_array_equal(getattr(reused, name), getattr(fresh, name))
        sizes.append(len(cache.keys))
    assert len(np.unique(cache.keys)) == len(cache.keys)
    found = (fresh.rows >= 0).sum()
    assert sizes[0] == (index.search(x[q_rows], p[q_rows], settings[0], k=10, as_of=as_of,
                                     exclude=q_rows).rows >= 0).sum()
    assert sizes[2] == sizes[1] > sizes[0]  # the repeated setting adds no pair
    assert sizes[3] < sizes[2] + found  # other weights still share pairs with earlier searches
    # A full cache stops growing and still answers what it holds.
    full = PairCosines(max_pairs=sizes[0])
    for weights in settings:
        fresh = index.search(x[q_rows], p[q_rows], weights, k=10, as_of=as_of, exclude=q_rows)
        capped = index.search(x[q_rows], p[q_rows], weights, k=10, as_of=as_of, exclude=q_rows, cache=full)
        np.testing.assert_array_equal(capped.per_block, fresh.per_block)
    assert len(full.keys) == sizes[0]


def test_a_case_with_a_missing_block_is_not_lost_behind_fused_scores():
    """A case lacking a block has a smaller fused numerator; ranked by N / W_query it would fall out
    of the top-1, but its exact score (own denominator) is the highest."""
    layout = BlockLayout(("clip", "visual"), (3, 3))
    cases = {"clip": np.array([[1.0, 0, 0], [0.9, 0.43589, 0]]),
             "visual": np.array([[0.0, 0, 0], [1.0, 0, 0]])}
    x, p = concat_blocks(layout, cases, 2)
    q, qp = concat_blocks(layout, {"clip": np.array([[1.0, 0, 0]]), "visual": np.array([[0.0, 1, 0]])}, 1)
    index = CaseIndex(layout).fit(x, p)
    res = index.search(q, qp, {"clip": 1, "visual": 1}, k=1)
    assert res.rows[0, 0] == 0 and res.scores[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_recall_at_10(kind):
    x, p, available = clustered_cases(8000, seed=2, missing_rate=0.0)
    queries = np.random.default_rng(3).choice(8000, 60, replace=False)
    exact = CaseIndex(LAYOUT).fit(x, p, available)
    approx = CaseIndex(LAYOUT, approximate_above=1000, approximate=kind, exact_below=0,
                       ivf_nprobe=16).fit(x, p, available)
    assert {g.mode for g in approx.groups} == {kind}
    truth = exact.search(x[queries], p[queries], None, k=10, exclude=queries)
    got = approx.search(x[queries], p[queries], None, k=10, exclude=queries)
    recall = np.mean([len(set(got.rows[i]) & set(truth.rows[i])) / 10 for i in range(60)])
    assert recall >= 0.9, f"{kind} recall@10 = {recall:.3f}"
    # Scores of what the approximate index returns are still the exact formula.
    for i in range(60):
        both = {r: s for r, s in zip(truth.rows[i], truth.scores[i])}
        for r, s in zip(got.rows[i], got.scores[i]):
            if r in both:
                assert s == pytest.approx(both[r], abs=1e-5)
    # As-of through the selector on the approximate index: never a case from the future.
    as_of = np.full(60, 200)
    res = approx.search(x[queries], p[queries], None, k=10, as_of=as_of)
    assert (available[res.rows[res.rows >= 0]] < 200).all()


def test_save_load_roundtrip_and_fingerprint(tmp_path):
    x, p, available = clustered_cases(500)
    ids = [f"cr_{i:06d}" for i in range(500)]
    index = CaseIndex(LAYOUT, approximate_above=100, approximate="ivf", exact_below=0).fit(x, p, available, ids)
    assert "ivf" in {g.mode for g in index.groups}
    index.save(tmp_path / "idx")
    loaded = CaseIndex.load(tmp_path / "idx")
    assert loaded.fingerprint == index.fingerprint
    a = index.search(x[:5], p[:5], None, k=7, as_of=300)
    b = loaded.search(x[:5], p[:5], None, k=7, as_of=300)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_allclose(a.scores, b.scores)
    x2 = x.copy()
    x2[0, :4] = x2[0, [1, 0, 2, 3]]  # one case re-encoded
    assert CaseIndex(LAYOUT).fit(x2, p, available, ids).fingerprint != index.fingerprint
    with pytest.raises(FileNotFoundError, match="cbr/case_base"):
        CaseIndex.load(tmp_path / "nothing-here")


def test_bad_inputs_are_reported():
    x, p, available = clustered_cases(50)
    index = CaseIndex(LAYOUT).fit(x, p, available)
    with pytest.raises(ValueError, match="query must be"):
        index.search(x[:2, :10], p[:2], None)
    with pytest.raises(ValueError, match="mask must be"):
        index.search(x[:2], p[:2], None, mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="k must be"):
        index.search(x[:2], p[:2], None, k=0)
    with pytest.raises(ValueError, match="vectors must be"):
        CaseIndex(LAYOUT).fit(x[:, :5], p, available)
    # Nothing eligible (as of before every case): empty rows, not an error.
    res = index.search(x[:2], p[:2], None, k=3, as_of=-1)
    assert (res.rows == -1).all() and np.isnan(res.scores).all()
