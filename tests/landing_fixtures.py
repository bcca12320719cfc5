"""Tiny hand-made landing folders for tests and examples (known content, no generator needed).

`small_landing_tables()` gives 3 valid creatives x 3 days; `write_landing(folder, creatives,
metrics, fmt)` writes them (CSV or Parquet) and renders each referenced JPEG that does not
exist yet, so a test adds exactly one bad thing and knows every other row is good.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def small_landing_tables(n_creatives: int = 3, n_days: int = 3,
                         start: str = "2026-03-01") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(creatives, daily_metrics) as text cells, all valid: creative i launches on start + i days."""
    first = pd.Timestamp(start)
    creatives = pd.DataFrame({
        "creative_id": [f"cr_{i:03d}" for i in range(1, n_creatives + 1)],
        "account_id": ["acc_01"] * n_creatives,
        "campaign_id": [f"cmp_{i % 2:02d}" for i in range(n_creatives)],
        "launch_date": [(first + pd.Timedelta(days=i)).date().isoformat() for i in range(n_creatives)],
        "image_path": [f"images/cr_{i:03d}.jpg" for i in range(1, n_creatives + 1)],
        "platform": ["meta"] * n_creatives,
        "headline": [f"Headline {i}" for i in range(n_creatives)],
        "last_7d_ctr": [f"{0.01 * (i + 1):.3f}" for i in range(n_creatives)],
    })
    rows = []
    for i, cid in enumerate(creatives["creative_id"]):
        for d in range(n_days):
            rows.append({
                "creative_id": cid,
                "date": (first + pd.Timedelta(days=i + d)).date().isoformat(),
                "impressions": str(1000 + 10 * d), "clicks": str(20 + d), "spend": "12.50",
                "conversions": str(2), "revenue": "40.0", "reach": str(800 + d), "frequency": "1.25",
                "video_3s_views": "", "likes": str(d),
            })
    return creatives, pd.DataFrame(rows)


def write_landing(folder: str | os.PathLike, creatives: pd.DataFrame, metrics: pd.DataFrame,
                  fmt: str = "csv", render_images: bool = True, image_size: int = 64) -> Path:
    """Write creatives + daily_metrics as `fmt` ('csv' or 'parquet') and render missing local JPEGs.

    Images are rendered only for plain relative image_path values under the folder that do not
    exist yet, each with a distinct colour so their sha256 differ.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for stem, frame in (("creatives", creatives), ("daily_metrics", metrics)):
        if fmt == "csv":
            frame.to_csv(root / f"{stem}.csv", index=False)
        elif fmt == "parquet":
            frame.to_parquet(root / f"{stem}.parquet", index=False)
        else:
            raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    if render_images:
        for n, path in enumerate(creatives.get("image_path", pd.Series([], dtype="str"))):
            text = "" if path is None or (isinstance(path, float) and np.isnan(path)) else str(path)
            if not text or "://" in text or text.startswith("/") or ".." in text:
                continue
            target = root / text
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                colour = ((37 * n) % 256, (91 * n + 40) % 256, (53 * n + 90) % 256)
                Image.new("RGB", (image_size, image_size), colour).save(target, "JPEG", quality=90)
    return root
