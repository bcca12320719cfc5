"""Benchmark of the CBR case index (not a test): latency, recall and memory at 10k / 100k / 1M cases.

    .venv/bin/python bench/cbr.py                     # all tiers, JSON to bench/results/cbr.json
    .venv/bin/python bench/cbr.py --tiers 10000 100000

Synthetic case vectors with the real block dimensions (clip 512, cnn 1280, visual 40, layout 20,
text 384, context 40 = 2276 dims). They are *clustered* (2,000 themes in a 48-d latent space mapped
into each block, plus per-case noise) because real creative embeddings are: families,
templates, products. Uniform random vectors would have no neighbours worth finding. 10 % of
cases lack the layout block and 5 % the text block, so the index runs with several
block-presence groups, as in production.

The 1M tier uses per-block PCA-reduced dims (clip 128, cnn 128, text 96; visual, layout,
context unchanged = 452 dims, 1.8 GB float32) because 1M x 2276 float32 is 9.1 GB per copy;
its vectors are generated directly at the reduced dims. The fidelity of that reduction
(top-10 overlap of exact search on PCA-reduced vs full vectors) is measured on the 100k tier.

Per tier, in one run:
* exact (IndexFlatIP per presence group) and approximate (HNSW at <= 100k, IVF at 1M) modes:
  build time, p50/p99 latency of one top-10 query through `CaseIndex.search` (one thread; the
  time includes the exact per-block breakdown), recall@10 against exact, with default weights
  and with random per-query weights (one index serves any weights);
* the naive per-block loop: for each block a cosine (normalising both sides) then the
  weighted sum with per-pair denominators and a full sort; single query and a 64-query batch
  ("one cosine matrix per block"); also a tuned loop (pre-normalised blocks, argpartition);
* peak resident memory (ru_maxrss) after the tier.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from creative_dag.blocks import DEFAULT_WEIGHTS
from creative_dag.cbr.index import CaseIndex
from creative_dag.cbr.similarity import BlockLayout, weight_vector

FULL_DIMS = {"clip": 512, "cnn": 1280, "visual": 40, "layout": 20, "text": 384, "context": 40}
REDUCED_DIMS = {"clip": 128, "cnn": 128, "visual": 40, "layout": 20, "text": 96, "context": 40}
MISSING = {"layout": 0.10, "text": 0.05}
LATENT = 48
THEMES = 2000
K = 10
RESULTS = Path(__file__).resolve().parent / "results" / "cbr.json"


def generate(n: int, dims: dict[str, int], seed: int = 0, chunk: int = 50_000):
    """Clustered synthetic cases: (n, D) float32 with L2-normalised blocks (zeros = missing), (n, B) presence."""
    layout = BlockLayout(tuple(dims), tuple(dims.values()))
    rng = np.random.default_rng(seed)
    themes = rng.standard_normal((THEMES, LATENT)).astype(np.float32)
    maps = {b: (rng.standard_normal((LATENT, d)) / np.sqrt(LATENT)).astype(np.float32) for b, d in dims.items()}
    x = np.empty((n, layout.total_dim), dtype=np.float32)
    presence = np.ones((n, len(dims)), dtype=bool)
    for b, rate in MISSING.items():
        presence[:, layout.blocks.index(b)] = rng.random(n) >= rate
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        m = stop - start
        z = themes[rng.integers(0, THEMES, m)] + 0.35 * rng.standard_normal((m, LATENT), dtype=np.float32)
        for i, b in enumerate(layout.blocks):
            block = z @ maps[b] + 0.5 * rng.standard_normal((m, dims[b]), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            block[~presence[start:stop, i]] = 0.0
            x[start:stop, layout.slice(b)] = block
    return layout, x, presence


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3), "queries": len(ms)}


def time_single(index: CaseIndex, x, p, rows, weights) -> tuple[dict, np.ndarray]:
    out, times = [], []
    for i, r in enumerate(rows):
        w = weights[i] if isinstance(weights, list) else weights
        t = time.perf_counter()
        res = index.search(x[r:r + 1], p[r:r + 1], w, k=K, exclude=np.array([r]))
        times.append(time.perf_counter() - t)
        out.append(res.rows[0])
    return percentiles(times), np.array(out)


def naive_single(blocks: dict[str, np.ndarray], presence, layout, q, qp, w, k=K) -> np.ndarray:
    """The per-block loop as usually written: sklearn cosine_similarity per block, weighted sum, sort."""
    return naive_batch(blocks, presence, layout, q[None, :], qp[None, :], w, k)[0]


def naive_batch(blocks, presence, layout, q, qp, w, k=K) -> np.ndarray:
    """"One cosine matrix per block then a weighted sum": sklearn's cosine_similarity (it normalises
    both sides on every call), (m, n) matrices, per-pair denominators from block presence, full sort."""
    from sklearn.metrics.pairwise import cosine_similarity

    m, n = q.shape[0], presence.shape[0]
    num = np.zeros((m, n), dtype=np.float32)
    den = np.zeros((m, n), dtype=np.float32)
    for i, b in enumerate(layout.blocks):
        if w[i] == 0:
            continue
        cos = cosine_similarity(q[:, layout.slice(b)], blocks[b])
        both = qp[:, i][:, None] & presence[:, i][None, :]
        num += np.where(both, w[i] * cos, 0.0)
        den += np.where(both, w[i], 0.0)
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), -np.inf)
    return np.argsort(-s, axis=1)[:, :k]


def tuned_single(blocks, presence_f, layout, q, qp, w, k=K) -> np.ndarray:
    """A careful per-block loop: blocks pre-normalised, presence-weighted denominators, argpartition."""
    n = presence_f.shape[0]
    num = np.zeros(n, dtype=np.float32)
    for i, b in enumerate(layout.blocks):
        if qp[i] and w[i]:
            num += w[i] * (blocks[b] @ q[layout.slice(b)])
    den = presence_f @ (w * qp)
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), -np.inf)
    part = np.argpartition(-s, k)[:k]
    return part[np.argsort(-s[part])]


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(g[g >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum()) for g, t in zip(got, truth)]))


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)


def run_tier(n: int, args) -> dict:
    dims = FULL_DIMS if n <= 100_000 else REDUCED_DIMS
    tier: dict = {"n_cases": n, "dims": dims, "total_dim": int(sum(dims.values()))}
    t0 = time.perf_counter()
    layout, x, p = generate(n, dims, seed=n)
    tier["generate_s"] = round(time.perf_counter() - t0, 1)
    rng = np.random.default_rng(1)
    n_q = args.queries if n < 1_000_000 else args.queries_1m
    rows = rng.choice(n, n_q, replace=False)
    w = weight_vector(layout, DEFAULT_WEIGHTS)
    random_w = [dict(zip(layout.blocks, rng.uniform(0.05, 2.0, len(layout.blocks)))) for _ in rows]

    # Availability days (uniform over a year) let one index per mode also serve the as-of check.
    available = np.random.default_rng(2).integers(0, 365, n)
    t = time.perf_counter()
    exact = CaseIndex(layout, approximate_above=10 ** 12).fit(x, p, available)
    tier["exact_build_s"] = round(time.perf_counter() - t, 2)
    tier["presence_groups"] = [{"blocks": g["blocks"], "size": g["size"]} for g in exact.summary()["groups"]]
    tier["exact"], truth = time_single(exact, x, p, rows, DEFAULT_WEIGHTS)
    _, truth_random_w = time_single(exact, x, p, rows, random_w)
    tier["exact"]["recall@10"] = 1.0

    # Naive and tuned per-block loops on the same data (per-block contiguous copies).
    blocks = {b: np.ascontiguousarray(x[:, layout.slice(b)]) for b in layout.blocks}
    presence_f = p.astype(np.float32)
    n_naive = max(3, n_q // (10 if n < 1_000_000 else 5))
    # Interleaved per query (exact, naive, tuned back to back) so that load on a shared machine hits
    # all three alike; ratios are medians of per-query ratios.
    exact_t, naive_t, tuned_t, agree = [], [], [], []
    for r in rows[:n_naive]:
        t = time.perf_counter()
        exact.search(x[r:r + 1], p[r:r + 1], DEFAULT_WEIGHTS, k=K, exclude=np.array([r]))
        exact_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        top = naive_single(blocks, p, layout, x[r], p[r], w, K + 1)
        naive_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        tuned_single(blocks, presence_f, layout, x[r], p[r], w, K + 1)
        tuned_t.append(time.perf_counter() - t)
        agree.append(top[top != r][:K])
    tier["naive_loop_single"] = percentiles(naive_t)
    tier["tuned_loop_single"] = percentiles(tuned_t)
    tier["exact_interleaved_single"] = percentiles(exact_t)
    tier["naive_agrees_with_index_recall@10"] = recall(np.array(agree), truth[:n_naive])
    tier["speedup_exact_vs_naive_single"] = round(float(np.median(np.array(naive_t) / np.array(exact_t))), 1)
    tier["speedup_exact_vs_tuned_single"] = round(float(np.median(np.array(tuned_t) / np.array(exact_t))), 2)

    # Batch of 64 queries: both sides under the same thread cap.
    batch = rows[:64]
    t = time.perf_counter()
    exact.search(x[batch], p[batch], DEFAULT_WEIGHTS, k=K)
    exact_batch_s = time.perf_counter() - t
    batch_naive_rows = batch[: (64 if n <= 100_000 else 16)]
    t = time.perf_counter()
    naive_batch(blocks, p, layout, x[batch_naive_rows], p[batch_naive_rows], w)
    naive_batch_s = (time.perf_counter() - t) * len(batch) / len(batch_naive_rows)
    tier["batch64"] = {"exact_ms_per_query": round(exact_batch_s / len(batch) * 1000, 3),
                       "naive_ms_per_query": round(naive_batch_s / len(batch) * 1000, 3),
                       "naive_queries_timed": len(batch_naive_rows)}
    tier["speedup_exact_vs_naive_batch64"] = round(naive_batch_s / exact_batch_s, 1)
    del blocks, presence_f
    gc.collect()

    # Approximate mode.
    kind = "hnsw" if n <= args.hnsw_max else "ivf"
    params = dict(approximate_above=0, approximate=kind)
    if kind == "hnsw":
        params.update(hnsw_m=args.hnsw_m, hnsw_ef_construction=args.hnsw_ef_construction)
    else:
        params.update(ivf_nlist=args.ivf_nlist_1m if n >= 1_000_000 else args.ivf_nlist)
    t = time.perf_counter()
    approx = CaseIndex(layout, **params).fit(x, p, available)
    tier["approx_build_s"] = round(time.perf_counter() - t, 1)
    sweep = args.hnsw_ef_search if kind == "hnsw" else args.ivf_nprobe
    tier["approximate_sweep"] = []
    for value in sweep:
        if kind == "hnsw":
            approx.hnsw_ef_search = value
        else:
            approx.ivf_nprobe = value
        lat, got = time_single(approx, x, p, rows, DEFAULT_WEIGHTS)
        _, got_rw = time_single(approx, x, p, rows, random_w)
        lat.update({"efSearch" if kind == "hnsw" else "nprobe": value, "recall@10": round(recall(got, truth), 4),
                    "recall@10_random_weights": round(recall(got_rw, truth_random_w), 4)})
        tier["approximate_sweep"].append(lat)
    good = [s for s in tier["approximate_sweep"] if s["recall@10"] >= 0.95]
    tier["approximate"] = dict(min(good, key=lambda s: s["p50_ms"]) if good else max(tier["approximate_sweep"], key=lambda s: s["recall@10"]))
    tier["approximate"].update(kind=kind, build_params={k: v for k, v in params.items() if k not in ("approximate_above", "exact_below", "approximate")})
    if kind == "hnsw":
        approx.hnsw_ef_search = tier["approximate"]["efSearch"]
        params["hnsw_ef_search"] = tier["approximate"]["efSearch"]
    else:
        approx.ivf_nprobe = tier["approximate"]["nprobe"]
        params["ivf_nprobe"] = tier["approximate"]["nprobe"]
    # As-of restriction (cases available before day 180 of 365) through the selector / prefix.
    a = exact.search(x[rows], p[rows], DEFAULT_WEIGHTS, k=K, as_of=180, exclude=rows).rows
    b_ = approx.search(x[rows], p[rows], DEFAULT_WEIGHTS, k=K, as_of=180, exclude=rows).rows
    tier["approximate"]["recall@10_as_of_half"] = round(recall(b_, a), 4)
    tier["approximate"]["as_of_violations"] = int((available[b_[b_ >= 0]] >= 180).sum())
    tier["peak_rss_gb"] = peak_rss_gb()

    if n == 100_000 and args.pca_fidelity:
        tier["pca_fidelity"] = pca_fidelity(layout, x, p, rows[:100], truth[:100])
    del exact, approx, x, p
    gc.collect()
    return tier


def pca_fidelity(layout, x, p, rows, truth) -> dict:
    """Exact top-10 on per-block PCA-reduced vectors (the 1M tier's dims) vs exact on full vectors."""
    from sklearn.decomposition import PCA

    fit = np.random.default_rng(3).choice(len(x), 20_000, replace=False)
    reduced_blocks = {}
    for i, b in enumerate(layout.blocks):
        full = x[:, layout.slice(b)]
        if REDUCED_DIMS[b] < FULL_DIMS[b]:
            ok = p[fit, i]
            pca = PCA(REDUCED_DIMS[b], random_state=0).fit(full[fit[ok]])
            red = pca.transform(full).astype(np.float32)
            red /= np.linalg.norm(red, axis=1, keepdims=True) + 1e-12
            red[~p[:, i]] = 0.0
            reduced_blocks[b] = red
        else:
            reduced_blocks[b] = full
    rl = BlockLayout(layout.blocks, tuple(REDUCED_DIMS[b] for b in layout.blocks))
    xr = np.hstack([reduced_blocks[b] for b in layout.blocks]).astype(np.float32)
    idx = CaseIndex(rl, approximate_above=10 ** 12).fit(xr, p)
    got = idx.search(xr[rows], p[rows], DEFAULT_WEIGHTS, k=K, exclude=rows).rows
    return {"reduced_dims": REDUCED_DIMS, "recall@10_vs_full_dims": round(recall(got, truth), 4),
            "queries": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--queries-1m", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--hnsw-ef-construction", type=int, default=60)
    ap.add_argument("--hnsw-ef-search", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--hnsw-max", type=int, default=10_000, help="largest tier using HNSW (IVF above)")
    ap.add_argument("--ivf-nlist", type=int, default=256, help="IVF lists below 1M cases")
    ap.add_argument("--ivf-nlist-1m", type=int, default=1024, help="IVF lists at 1M cases")
    ap.add_argument("--ivf-nprobe", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--no-pca-fidelity", dest="pca_fidelity", action="store_false")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    # BLAS and FAISS threads capped for the whole run: on a shared machine spinning OpenMP/OpenBLAS
    # threads make small products 10-30x slower; every method runs under the same cap.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=args.threads)
    faiss.omp_set_num_threads(args.threads)
    started = time.perf_counter()
    report = {"benchmark": "cbr_index", "python": platform.python_version(), "faiss": faiss.__version__,
              "machine": platform.machine(), "cpu_count": __import__("os").cpu_count(), "k": K,
              "weights": DEFAULT_WEIGHTS, "missing_block_rates": MISSING, "tiers": []}
    for n in args.tiers:
        t = time.perf_counter()
        tier = run_tier(n, args)
        tier["tier_wall_s"] = round(time.perf_counter() - t, 1)
        report["tiers"].append(tier)
        print(json.dumps(tier, indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["peak_rss_gb"] = peak_rss_gb()
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} in {report['wall_s']} s; peak RSS {report['peak_rss_gb']} GB")


if __name__ == "__main__":
    main()
