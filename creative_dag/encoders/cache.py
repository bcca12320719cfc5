"""Embedding cache keyed by (input sha256, model id, model version).

Layout: `<root>/<block>/<model-id-slug>/<model_version>/part-*.parquet`, each shard holding
columns `key` (the image sha256, or the text sha256 for the text block), `vector`
(list<float32>) and `attributes` (JSON text of the interpretable columns). A changed
model version is a different folder, so it recomputes; a re-materialisation reads the
folder and computes only keys it does not hold.

Shards are written to a temporary name and renamed, so a reader never sees a partial file
and two writers never collide (the encoder assets also share the warehouse pool). When a
folder holds many shards they are merged into one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from creative_dag.atomic_files import atomic_path, write_text_atomically

COMPACT_AFTER_SHARDS = 16


@dataclass(frozen=True)
class CachedEmbedding:
    vector: np.ndarray  # (d,) float32
    attributes: dict[str, Any]


class EmbeddingCache:
    """Read / write cached encoder outputs under `root` (plain Python; no Dagster)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def folder(self, block: str, model_id: str, model_version: str) -> Path:
        """The folder of one (block, model id, model version)."""
        if not model_version:
            raise ValueError(f"cannot cache block {block!r} without a model version")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:].strip("_") or "model"
        # the id hash keeps two ids with the same slug (e.g. two local paths) apart
        slug = f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"
        return self.root / block / slug / re.sub(r"[^A-Za-z0-9._+-]+", "_", model_version)

    def get(self, block: str, model_id: str, model_version: str,
            keys: Sequence[str]) -> dict[str, CachedEmbedding]:
        """Cached entries for `keys` (missing keys are simply absent from the result)."""
        folder = self.folder(block, model_id, model_version)
        wanted = set(keys)
        if not wanted or not folder.is_dir():
            return {}
        found: dict[str, CachedEmbedding] = {}
        for shard in sorted(folder.glob("part-*.parquet")):
            try:
                table = pq.read_table(shard)
            except (FileNotFoundError, OSError, pa.ArrowInvalid):
                # merged away by a concurrent compaction, or unreadable: recompute those keys
                continue
            shard_keys = table.column("key").to_pylist()
            hits = [i for i, k in enumerate(shard_keys) if k in wanted]
            if not hits:
                continue
            vectors = table.column("vector").take(pa.array(hits)).to_pylist()
            attributes = table.column("attributes").take(pa.array(hits)).to_pylist()
            for i, vector, attrs in zip(hits, vectors, attributes):
                found[shard_keys[i]] = CachedEmbedding(
                    vector=np.asarray(vector, dtype=np.float32),
                    attributes=json.loads(attrs) if attrs else {},
                )
        return found

    def put(self, block: str, model_id: str, model_version: str, keys: Sequence[str],
            vectors: np.ndarray, attributes: Sequence[dict[str, Any]] | None = None) -> int:
        """Store n entries: keys (n,), vectors (n, d) float32, attributes n JSON-able dicts."""
        if len(keys) == 0:
            return 0
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"cache put: {len(keys)} keys but vectors of shape {vectors.shape}")
        attributes = list(attributes) if attributes is not None else [{} for _ in keys]
        if len(attributes) != len(keys):
            raise ValueError(f"cache put: {len(keys)} keys but {len(attributes)} attribute dicts")
        folder = self.folder(block, model_id, model_version)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "model.json"
        if not meta.exists():
            write_text_atomically(meta, json.dumps({"block": block, "model_id": model_id,
                                                    "model_version": model_version}, indent=1))
        table = pa.table({
            "key": pa.array(list(keys), type=pa.string()),
            "vector": pa.array(list(vectors), type=pa.list_(pa.float32())),
            "attributes": pa.array([json.dumps(a, default=_json_default) for a in attributes],
                                   type=pa.string()),
        })
        _atomic_write_parquet(table, folder / f"part-{uuid.uuid4().hex}.parquet")
        shards = list(folder.glob("part-*.parquet"))
        if len(shards) > COMPACT_AFTER_SHARDS:
            self._compact(folder, shards)
        return len(keys)

    def _compact(self, folder: Path, shards: list[Path]) -> None:
        """Merge shards into one (last write of a key wins), then delete the merged ones."""
        tables = []
        for shard in shards:
            try:
                tables.append(pq.read_table(shard))
            except (FileNotFoundError, OSError, pa.ArrowInvalid):
                continue
        if not tables:
            return
        merged = pa.concat_tables(tables)
        keys = merged.column("key").to_pylist()
        last: dict[str, int] = {k: i for i, k in enumerate(keys)}
        merged = merged.take(pa.array(sorted(last.values())))
        _atomic_write_parquet(merged, folder / f"part-{uuid.uuid4().hex}.parquet")
        for shard in shards:
            try:
                shard.unlink()
            except FileNotFoundError:
                pass


def _atomic_write_parquet(table: pa.Table, target: Path) -> None:
    with atomic_path(target) as partial:
        pq.write_table(table, partial)


def _json_default(value: Any) -> Any:
    """numpy scalars / arrays in attribute dicts -> plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"attribute value of type {type(value).__name__} is not JSON-serialisable")
