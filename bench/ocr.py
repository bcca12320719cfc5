"""OCR backend benchmark: speed and accuracy of the layout block's backends on generated creatives.

Each backend runs the layout block's own path (LayoutExtractor.transform: OCR on the working copy,
reading order, CTA button, faces) on the same rendered creatives, whose ground truth knows every
line of text drawn (headline; sub-line at medium / heavy coverage; three extra lines at heavy),
the CTA label and whether there is a button. Reported per backend:

- s_per_image: wall seconds per image of `transform` (model loaded before timing), best of repeats;
- word_recall: share of drawn words found in the OCR text (lower-case letters and digits; a word
  also counts when the OCR joined it to its neighbour, e.g. "pricefrom29");
- exact_word_recall: share of drawn words that come out as a word of their own;
- cta_accuracy: cta_detected == the creative has a button; cta_text_match: the label read
  exactly (case-insensitive) where a button was found and there is one;
- coverage_agreement: text_coverage_class == the planted coverage (docs/attributes.md: only rough
  for either backend, the planted classes differ by lines, not area); heavy_lines: share of heavy
  creatives read as >= 5 lines.

- with `--workers 2` (or more): the same images read by that many worker processes
  (creative_dag/encoders/extractor_pool.py, the pool started before timing, its start timed apart):
  s_per_image_workers_N, speedup_workers_N over the step's own process, and whether the rows are
  identical to it.

Usage: python bench/ocr.py [--n 40] [--image-size 1080] [--working-size 540] [--threads 2]
       [--backends easyocr,rapidocr] [--workers 2]
Prints a table and writes bench/results/ocr.json. A backend that is not installed is reported
as unavailable with its reason, not skipped silently. Not a test: timings vary between machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def _words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^a-z0-9]", "", t.lower()) for t in str(text).split()) if w]


def drawn_text(attributes: dict) -> tuple[list[str], str | None]:
    """(the words drawn on the creative, its CTA label or None), as synth/render.py draws them."""
    coverage = attributes["text_coverage"]
    lines = []
    if coverage != "none":
        lines.append(attributes["headline"])
        if coverage in ("medium", "heavy"):
            lines.append(attributes["subline"])
        if coverage == "heavy":
            lines.extend(attributes["extra_lines"])
    cta = attributes["cta_text"] if attributes["has_cta"] else None
    if cta:
        lines.append(cta)
    return [w for line in lines for w in _words(line)], cta


def score(rows: pd.DataFrame, truth: list[dict]) -> dict[str, float]:
    """Accuracy figures of one backend's layout rows against the generator's ground truth."""
    found = exact = total = 0
    cta_right, label_right, label_n, cover_right, heavy_hits, heavy_n = 0, 0, 0, 0, 0, 0
    for (_, row), attrs in zip(rows.iterrows(), truth):
        words, cta = drawn_text(attrs)
        read = _words(row["ocr_text"])
        joined = "".join(read)
        total += len(words)
        found += sum(w in joined for w in words)
        exact += sum(w in read for w in words)
        detected = bool(row["cta_detected"])
        cta_right += detected == bool(cta)
        if detected and cta:
            label_n += 1
            label_right += str(row["cta_text"]).strip().lower() == cta.lower()
        cover_right += row["text_coverage_class"] == attrs["text_coverage"]
        if attrs["text_coverage"] == "heavy":
            heavy_n += 1
            heavy_hits += int(row["text_line_count"]) >= 5
    n = len(truth)
    return {"word_recall": found / max(total, 1), "exact_word_recall": exact / max(total, 1),
            "cta_accuracy": cta_right / n, "cta_text_match": label_right / max(label_n, 1),
            "coverage_agreement": cover_right / n, "heavy_lines": heavy_hits / max(heavy_n, 1), "n_heavy": heavy_n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=1080)
    parser.add_argument("--working-size", type=int, default=540)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--backends", default="easyocr,rapidocr")
    parser.add_argument("--workers", default="2", help="worker-process counts to time besides the step's own "
                                                       "process, comma-separated ('' = none)")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip() and int(w) > 1]

    import torch
    from PIL import Image

    from creative_dag.encoders.layout import LayoutExtractor
    from creative_dag.synth import generate_scenario

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_scenario(root, n_creatives=args.n, n_days=10, seed=args.seed, image_size=args.image_size)
        creatives = pd.read_csv(root / "creatives.csv")
        truth_all = json.loads((root / "ground_truth.json").read_text())["creatives"]
        truth = [truth_all[c]["attributes"] for c in creatives["creative_id"]]
        images = [np.asarray(Image.open(root / p).convert("RGB")) for p in creatives["image_path"]]

    results = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        extractor = LayoutExtractor(backend=backend, working_size=args.working_size)
        if extractor.available:
            start = time.perf_counter()
            extractor.transform(images[:1])  # loads the model: timed apart from the per-image cost
            load_s = time.perf_counter() - start
        if not extractor.available:
            results[backend] = {"available": False, "reason": extractor.unavailable_reason}
            print(f"{backend}: unavailable: {extractor.unavailable_reason}")
            continue
        best, rows = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            rows = extractor.transform(images)
            best = min(best, time.perf_counter() - start)
        results[backend] = {"available": True, "model_id": extractor.model_id, "load_s": round(load_s, 2),
                            "s_per_image": round(best / len(images), 3),
                            **{k: round(v, 3) for k, v in score(rows, truth).items()}}
        for workers in worker_counts:
            results[backend].update(_time_workers(extractor, images, rows, workers, args.repeats,
                                                  results[backend]["s_per_image"]))
        print(backend, json.dumps(results[backend]))

    table = pd.DataFrame({b: r for b, r in results.items() if r.get("available")}).T
    if len(table):
        print("\n" + table.drop(columns=["available"]).to_string())
    out = {"n": args.n, "image_size": args.image_size, "working_size": args.working_size, "threads": args.threads,
           "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "results": results}
    path = ROOT / "bench" / "results" / "ocr.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten {path.relative_to(ROOT)}")


def _time_workers(extractor, images: list, rows: pd.DataFrame, workers: int, repeats: int,
                  s_per_image: float) -> dict:
    """Per-image seconds of `workers` worker processes reading the images, and whether their rows match."""
    from creative_dag.encoders.extractor_pool import ExtractorPool

    start = time.perf_counter()
    with ExtractorPool(extractor, workers) as pool:
        pool.transform(images[:workers])  # every worker loaded: timed apart, like the model load above
        start_s = time.perf_counter() - start
        best, pooled = float("inf"), None
        for _ in range(repeats):
            start = time.perf_counter()
            pooled = pool.transform(images)
            best = min(best, time.perf_counter() - start)
    per_image = best / len(images)
    return {f"start_s_workers_{workers}": round(start_s, 2), f"s_per_image_workers_{workers}": round(per_image, 3),
            f"speedup_workers_{workers}": round(s_per_image / per_image, 2),
            f"same_rows_workers_{workers}": bool(pooled.equals(rows))}


if __name__ == "__main__":
    main()
