"""A sample batch of new candidate creatives with known ground truth (docs/candidates.md).

The candidates are drawn by the same generator as the scenario (same accounts, element effects and
context mix, another seed), rendered, and written as `<landing>/candidates/<batch>/`: the images,
`candidates.csv` (image, account, campaign, context, ad copy) and `ground_truth.json` (each
candidate's expected outcome score, CTR and CVR), so the pairwise verdicts can be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from creative_dag.candidates.batch import CANDIDATES_DIR, CANDIDATES_FILE
from creative_dag.cbr.context import CONTEXT_COLUMNS

CANDIDATE_TRUTH_FILE = "ground_truth.json"


def write_candidate_batch(landing: str | os.PathLike, batch: str = "sample", n: int = 6, seed: int = 1007,
                          image_size: int = 256, scenario: Any = None, start_date: str = "2026-03-01") -> Path:
    """Write a batch of `n` generated candidates under `<landing>/candidates/<batch>/`; returns the folder."""
    from creative_dag.synth import generate_scenario

    folder = Path(landing) / CANDIDATES_DIR / batch
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A media buyer's batch is for one account: draw several accounts' worth, keep the busiest account's.
        generate_scenario(tmp, n_creatives=4 * n, n_days=14, seed=seed, scenario=scenario, image_size=image_size,
                          start_date=start_date)
        creatives = pd.read_csv(Path(tmp) / "creatives.csv", dtype=str, keep_default_na=False)
        busiest = creatives["account_id"].value_counts().index[0]
        creatives = creatives[creatives["account_id"] == busiest].head(n)
        truth = json.loads((Path(tmp) / "ground_truth.json").read_text())["creatives"]
        rows, expected = [], {}
        for i, r in enumerate(creatives.to_dict("records"), start=1):
            name = f"candidate_{i:02d}{Path(r['image_path']).suffix}"
            shutil.copyfile(Path(tmp) / r["image_path"], folder / name)
            rows.append({"image": name, "account_id": r["account_id"], "campaign_id": r["campaign_id"],
                         **{c: r.get(c, "") for c in (*CONTEXT_COLUMNS, "headline", "primary_text", "cta")}})
            t = truth[r["creative_id"]]
            expected[Path(name).stem] = {"expected_outcome": t.get("expected_outcome"),
                                         "observable_ctr": t.get("observable_ctr"),
                                         "observable_cvr": t.get("observable_cvr"),
                                         "attributes": t.get("attributes")}
    pd.DataFrame(rows).to_csv(folder / CANDIDATES_FILE, index=False, lineterminator="\n")
    (folder / CANDIDATE_TRUTH_FILE).write_text(json.dumps({"candidates": expected}, indent=1) + "\n")
    return folder
