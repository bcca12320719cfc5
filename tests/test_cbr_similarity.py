"""Fused weighted similarity (docs/cbr.md): the one-inner-product form equals the formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creative_dag.blocks import BLOCKS, DEFAULT_WEIGHTS
from creative_dag.cbr.context import ContextEncoder
from creative_dag.cbr.index import CaseIndex
from creative_dag.cbr.similarity import (
    BlockLayout,
    concat_blocks,
    exact_similarity,
    fused_scores,
    weight_vector,
)


def _random_cases(rng: np.random.Generator, layout: BlockLayout, n: int, missing_rate: float):
    raw = {b: rng.normal(size=(n, d)) for b, d in zip(layout.blocks, layout.dims)}
    for b in raw:
        raw[b][rng.random(n) < missing_rate] = 0.0  # an all-zero row = block missing
    return concat_blocks(layout, raw, n)


def _formula(q_blocks, qp, c_blocks, cp, w):
    """S(q, c) written out literally for one pair: Σ w_b cos / Σ w_b over blocks present in both."""
    num = den = 0.0
    for b, weight in enumerate(w):
        if qp[b] and cp[b]:
            qv, cv = q_blocks[b], c_blocks[b]
            num += weight * float(qv @ cv / (np.linalg.norm(qv) * np.linalg.norm(cv)))
            den += weight
    return num / den if den > 0 else np.nan


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       weights=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 5.0)), min_size=4, max_size=4),
       missing_rate=st.floats(0.0, 0.7))
def test_fused_score_equals_formula_for_random_weights_and_missing_blocks(seed, weights, missing_rate):
    if not any(w > 0 for w in weights):
        weights[0] = 1.0
    rng = np.random.default_rng(seed)
    layout = BlockLayout(("clip", "visual", "text", "context"), (7, 3, 5, 4))
    x, p = _random_cases(rng, layout, 12, missing_rate)
    w = np.array(weights)
    fused = fused_scores(layout, x[:3], p[:3], x, p, w)
    loop = exact_similarity(layout, x[:3], p[:3], x, p, w)
    for i in range(3):
        for j in range(12):
            expected = _formula([x[i, layout.slice(b)] for b in layout.blocks], p[i],
                                [x[j, layout.slice(b)] for b in layout.blocks], p[j], w)
            if np.isnan(expected):
                assert np.isnan(fused[i, j]) and np.isnan(loop[i, j])
            else:
                assert fused[i, j] == pytest.approx(expected, abs=1e-5)
                assert loop[i, j] == pytest.approx(expected, abs=1e-5)
    # The index (one inner product per presence group, then the exact breakdown) returns the same
    # scores and the brute-force top-5 by the formula.
    index = CaseIndex(layout).fit(x, p)
    res = index.search(x[:3], p[:3], w, k=5)
    for i in range(3):
        row = np.nan_to_num(loop[i], nan=-np.inf)
        found = res.rows[i][res.rows[i] >= 0]
        np.testing.assert_allclose(res.scores[i][: len(found)], row[found], atol=1e-5)
        kth = np.sort(row)[::-1][min(5, np.isfinite(row).sum()) - 1] if np.isfinite(row).any() else np.inf
        assert (row[found] >= kth - 1e-5).all()
        assert len(found) == min(5, int(np.isfinite(row).sum()))


def test_missing_block_is_left_out_of_the_denominator():
    layout = BlockLayout(("clip", "visual"), (2, 2))
    q, qp = concat_blocks(layout, {"clip": np.array([[1.0, 0.0]]), "visual": np.array([[0.0, 1.0]])}, 1)
    # Case identical in clip, no visual block: S = 1 (not w_clip / (w_clip + w_visual)).
    c, cp = concat_blocks(layout, {"clip": np.array([[2.0, 0.0]]), "visual": np.zeros((1, 2))}, 1)
    w = np.array([1.0, 3.0])
    assert fused_scores(layout, q, qp, c, cp, w)[0, 0] == pytest.approx(1.0)
    assert exact_similarity(layout, q, qp, c, cp, w)[0, 0] == pytest.approx(1.0)


def test_weights_override_defaults_and_reject_bad_values():
    layout = BlockLayout(BLOCKS, (4,) * len(BLOCKS))
    w = weight_vector(layout, {"context": 0})
    assert w[BLOCKS.index("context")] == 0
    assert w[BLOCKS.index("clip")] == DEFAULT_WEIGHTS["clip"]
    with pytest.raises(ValueError, match="unknown block 'colour'"):
        weight_vector(layout, {"colour": 1})
    with pytest.raises(ValueError, match=">= 0"):
        weight_vector(layout, {"clip": -1})
    with pytest.raises(ValueError, match="all block weights are 0"):
        weight_vector(layout, {b: 0 for b in BLOCKS})


def test_block_shape_mismatch_names_the_block():
    layout = BlockLayout(("clip",), (4,))
    with pytest.raises(ValueError, match="block 'clip'"):
        concat_blocks(layout, {"clip": np.ones((2, 3))}, 2)


def test_context_cosine_is_the_share_of_matching_columns():
    frame = pd.DataFrame({"platform": ["meta", "meta", "tiktok"], "placement": ["feed", "feed", "feed"],
                          "country": ["US", "DE", "DE"], "audience": [None, None, None]})
    enc = ContextEncoder().fit(frame)
    x = enc.transform(frame)
    assert enc.feature_names == ["platform=meta", "platform=tiktok", "placement=feed", "country=DE", "country=US"]
    assert x[0] @ x[1] == pytest.approx(2 / 3)   # same platform and placement, other country
    assert x[1] @ x[2] == pytest.approx(2 / 3)
    unseen = enc.transform(pd.DataFrame({"platform": ["snap"], "placement": ["feed"], "country": ["US"]}))
    assert np.linalg.norm(unseen[0]) == pytest.approx(1.0)
    # The unseen platform contributes nothing: 2 matches over sqrt(2 known x 3 known) columns.
    assert unseen[0] @ x[0] == pytest.approx(2 / np.sqrt(6))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_cosines_equal_numpys_block_sums_bit_for_bit(dtype):
    """The compiled block sums are numpy's own (reduceat over float64 products), whatever the block widths
    (numpy's pairwise summation changes shape at 8 and 128 terms), so cached and fresh cosines agree."""
    from creative_dag.cbr.similarity import per_block_cosine

    rng = np.random.default_rng(5)
    layout = BlockLayout(blocks=("clip", "cnn", "visual", "layout", "text", "context"), dims=(1, 5, 8, 129, 300, 1280))
    queries = (rng.normal(size=(7, layout.total_dim)) * 10.0 ** rng.integers(-3, 3, size=(7, layout.total_dim)))
    cases = rng.normal(size=(11, layout.total_dim))
    queries, cases = queries.astype(dtype), cases.astype(dtype)
    query_presence, case_presence = rng.random((7, 6)) < 0.8, rng.random((11, 6)) < 0.8
    query_of, case_of = rng.integers(0, 7, 40), rng.integers(0, 11, 40)
    got = per_block_cosine(layout, queries, query_presence, cases, case_presence, pairs=(query_of, case_of))
    sums = np.add.reduceat(queries[query_of].astype(np.float64) * cases[case_of].astype(np.float64),
                           np.asarray(layout.offsets), axis=1)
    expected = np.where(query_presence[query_of] & case_presence[case_of], np.clip(sums, -1.0, 1.0), np.nan)
    np.testing.assert_array_equal(got, expected)
    aligned = per_block_cosine(layout, queries[query_of], query_presence[query_of], cases[case_of],
                               case_presence[case_of])
    np.testing.assert_array_equal(aligned, expected)
