"""Creative families on variant kinds not used to tune them: leave-one-kind-out over several seeds.

A generated scenario (300 creatives at 128 px, half of them in families whose variants cover every
kind in VARIANT_KINDS) is embedded with the visual (OpenCV), CNN (EfficientNet-Lite0) and text
(MiniLM on headline + primary text) blocks. For each variant kind k, `min_evidence` is tuned on
the other six kinds (`leave_one_kind_out`) and pair precision / recall / F1 of
`marts.creative_repetition`'s families are scored on bases, singletons and k's variants. Per seed a
kind rests on 10-20 true pairs, so one pair moves its F1 by ~0.05; the pair counts are also pooled
over the seeds per held-out kind. tests/test_marts_repetition.py runs seed 7 with these functions.

Usage: python bench/families.py [--seeds 5 6 7 8 9 10 11 12] [--work DIR]
About 25 s per seed on 2 cores (most of it generating and encoding; `--work DIR` keeps the vectors
there for a re-run). Prints per-seed and pooled figures; writes bench/results/families.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.marts.repetition import RepetitionParams, creative_repetition

VARIANT_KINDS = ("crop", "reframe", "hue_shift", "headline", "cta_text", "aspect_ratio", "reencode")
EVIDENCE_GRID = (1.5, 1.75, 2.0, 2.25, 2.5, 2.75)
WEIGHTS = {"visual": 1.0, "cnn": 1.0, "text": 1.0}


def pair_counts(predicted: Mapping[str, str | None], truth: Mapping[str, str | None]) -> tuple[int, int, int]:
    """(true, false, missed) unordered pairs that share a family (None = singleton)."""
    ids = sorted(truth)
    tp = fp = fn = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            t = truth[a] is not None and truth[a] == truth[b]
            p = predicted.get(a) is not None and predicted.get(a) == predicted.get(b)
            tp += t and p
            fp += p and not t
            fn += t and not p
    return tp, fp, fn


def scores_of(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of pair counts."""
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), 2 * tp / max(2 * tp + fp + fn, 1)


def pair_scores(predicted: Mapping[str, str | None], truth: Mapping[str, str | None]) -> tuple[float, float, float]:
    """(precision, recall, F1) over unordered pairs that share a family (None = singleton)."""
    return scores_of(*pair_counts(predicted, truth))


def predicted_families(creatives: pd.DataFrame, vectors: BlockVectors, params: RepetitionParams) -> dict[str, str | None]:
    table = creative_repetition(creatives, vectors, params)
    return dict(zip(table["creative_id"], table["family_id"].where(table["family_id"].notna(), None), strict=True))


def families_scores(creatives: pd.DataFrame, vectors: BlockVectors, truth: Mapping[str, str | None],
                    params: RepetitionParams) -> tuple[float, float, float]:
    return pair_scores(predicted_families(creatives, vectors, params), {c: truth[c] for c in creatives["creative_id"]})


def only_kinds(creatives: pd.DataFrame, edit: Mapping[str, str | None], kinds: set[str]) -> pd.DataFrame:
    """Singletons, family bases and the variants of `kinds` (variants of other kinds left out)."""
    keep = [edit[c] in (None, "base") or edit[c] in kinds for c in creatives["creative_id"]]
    return creatives[keep].reset_index(drop=True)


def leave_one_kind_out(creatives: pd.DataFrame, vectors: BlockVectors, truth: Mapping[str, str | None],
                       edit: Mapping[str, str | None], weights: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per kind k: min_evidence tuned WITHOUT k (best worst-kind F1 over the other kinds; ties to the best
    mean F1 over them, then to the more permissive value), then pair precision / recall / F1 and counts
    on bases, singletons and k's variants. The mean breaks ties because a worst kind can sit at the same
    F1 on two levels (one losing precision, the other recall) while every other kind differs between them."""
    counts = {}
    for k in VARIANT_KINDS:
        subset = only_kinds(creatives, edit, {k})
        for level in EVIDENCE_GRID:
            predicted = predicted_families(subset, vectors, RepetitionParams(weights=dict(weights), min_evidence=level))
            counts[k, level] = pair_counts(predicted, {c: truth[c] for c in subset["creative_id"]})
    scores = {key: scores_of(*c) for key, c in counts.items()}
    out = {}
    for held_out in VARIANT_KINDS:
        tuning = [k for k in VARIANT_KINDS if k != held_out]
        worst, _, level = max((round(min(scores[k, level][2] for k in tuning), 3),
                               round(float(np.mean([scores[k, level][2] for k in tuning])), 3), -level)
                              for level in EVIDENCE_GRID)
        p, r, f = scores[held_out, -level]
        tp, fp, fn = counts[held_out, -level]
        out[held_out] = {"min_evidence": -level, "tuning_worst_f1": worst, "precision": p, "recall": r, "f1": f,
                         "true_pairs": tp, "false_pairs": fp, "missed_pairs": fn}
    return out


def all_kinds_scenario(root: Path, seed: int) -> tuple[pd.DataFrame, BlockVectors, dict, dict]:
    """Generate the scenario into root and embed it: (creatives with aspect_ratio, vectors, creative ->
    family id or None, creative -> variant edit or None). Raises ModelUnavailable without the CNN or
    MiniLM weights."""
    import torch
    from PIL import Image

    from creative_dag.encoders.cnn import CnnEncoder
    from creative_dag.encoders.text import TextEncoder, compose_ad_text
    from creative_dag.encoders.visual import VisualFeatureExtractor
    from creative_dag.synth import generate_scenario

    torch.set_num_threads(1)
    generate_scenario(root, n_creatives=300, n_days=60, seed=seed, image_size=128,
                      scenario={"families": {"share": 0.5, "edits": dict.fromkeys(VARIANT_KINDS, 1.0)}})
    creatives = pd.read_csv(root / "creatives.csv")
    truth = json.loads((root / "ground_truth.json").read_text())["creatives"]
    images = [np.asarray(Image.open(root / p).convert("RGB")) for p in creatives["image_path"]]
    creatives["aspect_ratio"] = [img.shape[1] / img.shape[0] for img in images]  # as the asset adds from raw.images
    extractor = VisualFeatureExtractor(working_size=128)
    blocks = {"visual": extractor.vectorize(extractor.transform(images, creatives["creative_id"].tolist())),
              "cnn": np.asarray(CnnEncoder.load().encode(images).vectors, dtype=np.float32)}
    texts = [compose_ad_text(h, t) for h, t in zip(creatives["headline"], creatives["primary_text"], strict=True)]
    blocks["text"] = np.asarray(TextEncoder.load().encode(texts).vectors, dtype=np.float32)
    ones = np.ones(len(creatives), bool)
    vectors = BlockVectors(creatives["creative_id"], blocks, {b: ones for b in blocks})
    return (creatives, vectors, {c: g["family_id"] for c, g in truth.items()},
            {c: g["variant_edit"] for c, g in truth.items()})


def _scenario(work: Path, seed: int):
    """all_kinds_scenario, kept under work (vectors as .npz, table as .csv, labels as .json) for a re-run."""
    folder = work / f"seed{seed}"
    saved = folder / "vectors.npz", folder / "creatives_with_shape.csv", folder / "labels.json"
    if all(p.exists() for p in saved):
        with np.load(saved[0]) as npz:
            blocks = {b: npz[b] for b in npz.files}
        creatives = pd.read_csv(saved[1])
        labels = json.loads(saved[2].read_text())
        ones = np.ones(len(creatives), bool)
        return (creatives, BlockVectors(creatives["creative_id"], blocks, {b: ones for b in blocks}),
                labels["family"], labels["edit"])
    creatives, vectors, truth, edit = all_kinds_scenario(folder, seed)
    np.savez(saved[0], **vectors.blocks)
    creatives.to_csv(saved[1], index=False)
    saved[2].write_text(json.dumps({"family": truth, "edit": edit}))
    return creatives, vectors, truth, edit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8, 9, 10, 11, 12])
    parser.add_argument("--work", type=Path, default=None, help="keep the generated scenarios and vectors here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "families.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="families_"))
    work.mkdir(parents=True, exist_ok=True)
    per_seed, pooled = {}, {k: np.zeros(3, int) for k in VARIANT_KINDS}
    print(f"{'seed':>4}  " + "  ".join(f"{k:>12}" for k in VARIANT_KINDS) + "   all kinds P / R / F1")
    for seed in args.seeds:
        creatives, vectors, truth, edit = _scenario(work, seed)
        held_out = leave_one_kind_out(creatives, vectors, truth, edit, WEIGHTS)
        everything = families_scores(creatives, vectors, truth, RepetitionParams(weights=WEIGHTS))
        for k, v in held_out.items():
            pooled[k] += (v["true_pairs"], v["false_pairs"], v["missed_pairs"])
        per_seed[seed] = {"held_out": held_out, "all_kinds_default": dict(zip(("precision", "recall", "f1"), everything,
                                                                             strict=True))}
        print(f"{seed:>4}  " + "  ".join(f"{held_out[k]['f1']:>12.3f}" for k in VARIANT_KINDS)
              + "   " + " / ".join(f"{x:.3f}" for x in everything), flush=True)
    cells = [v["f1"] for s in per_seed.values() for v in s["held_out"].values()]
    pooled_scores = {k: dict(zip(("precision", "recall", "f1"), scores_of(*c), strict=True)) | {
        "true_pairs": int(c[0]), "false_pairs": int(c[1]), "missed_pairs": int(c[2])} for k, c in pooled.items()}
    print("pooled  " + "  ".join(f"{pooled_scores[k]['f1']:>12.3f}" for k in VARIANT_KINDS))
    print(f"cells with held-out F1 >= 0.9: {sum(f >= 0.9 for f in cells)} of {len(cells)}; mean {np.mean(cells):.3f}, "
          f"worst {min(cells):.3f}; pooled per kind: worst {min(v['f1'] for v in pooled_scores.values()):.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"python": platform.python_version()}, "seeds": args.seeds,
                                    "weights": WEIGHTS, "per_seed": per_seed, "pooled_held_out": pooled_scores},
                                   indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
