"""Run one block's encoder over a set of creatives: cache look-up, decode, batched inference,
quarantine of bad images, and assembly of the `embeddings.<block>` rows.

Plain Python (no Dagster): the assets in `creative_dag/assets/encoders.py` call these with
tables read from the warehouse, and tests and the benchmark call them directly.

Image blocks (`encode_images`): creatives are deduplicated by image sha256 (one image used by
several creatives is encoded once), cached entries are reused, and only the rest is decoded
and encoded. Decoding the next batch runs in a background thread while the current batch
is in the model, so the decoder's cost hides behind inference. An image that cannot be read
or decoded becomes a quarantine row and the batch goes on.

The text block (`encode_texts`) is keyed by the sha256 of the text it embeds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from creative_dag.encoders.base import (
    EncodedBatch,
    ProgressLogger,
    l2_normalize,
    settings_hash,
    text_sha256,
)
from creative_dag.encoders.cache import EmbeddingCache
from creative_dag.encoders.compiled import CompiledModels
from creative_dag.encoders.decode import ImageDecodeError, decode_image, fit_decoded

QUARANTINE_SOURCE = "images"
VECTOR_TYPE = pa.list_(pa.float32())
ID_COLUMNS = ("creative_id", "sha256", "launch_date", "model_id", "model_version", "vector")


class BlockEncoder(Protocol):
    """What the pipeline needs from a block: identity, decode size, and `encode`."""

    block: str
    model_id: str
    model_version: str
    dim: int
    device: str

    def encode(self, images: Sequence[np.ndarray]) -> EncodedBatch: ...


@dataclass
class BlockRun:
    """The outcome of one block over a set of creatives.

    frame: one row per encoded creative (ID_COLUMNS + attribute columns), vector FLOAT[] (d,).
    quarantine: rows for raw.quarantine (source, key, reason, detail, raw_value).
    computed / cached: distinct inputs encoded now / taken from the cache; failed: quarantined.
    """

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    computed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Inputs encoded per second (computed ones only)."""
        return self.computed / self.timings["encode_s"] if self.timings.get("encode_s") else float("nan")


# --------------------------------------------------------------------------- adapters
class PooledBlockEncoder:
    """A block whose extractor can compute on worker processes (creative_dag/encoders/extractor_pool.py).

    Subclasses set `block`, `extractor` (with settings / working_copies / transform_working_copies /
    vectorize), `workers` and `min_images_per_worker`. While `parallel` is open and its images are
    enough, `encode` computes on the workers; the rows are the same either way."""

    block: str
    extractor: Any
    workers: int = 1
    # Fewer images than this per worker are computed here: starting a worker costs 1-2 s.
    min_images_per_worker: int = 8
    _pool: Any = None  # an ExtractorPool while `parallel` is open
    _log: Callable[[str], Any] | None = None

    @property
    def reading_workers(self) -> int:
        """Worker processes reading this block's images now (0: the step's own process reads them)."""
        return self._pool.workers if self._pool is not None else 0

    @contextmanager
    def parallel(self, images: int, log: Callable[[str], Any] | None = None) -> Iterator[None]:
        """Within the block, `encode` computes on the worker processes when `images` are enough for them.

        A worker that dies (killed, out of memory) stops the pool: the rest is computed in this process,
        with a line in `log`."""
        from creative_dag.worker_processes import can_start_workers

        workers = min(self.workers, images // self.min_images_per_worker)
        if workers < 2 or self._pool is not None:
            yield
            return
        if not can_start_workers():
            if log:
                log(f"embeddings.{self.block}: this step runs in a daemonic process (a Dask or Celery worker), "
                    f"which cannot start the {workers} worker processes asked for; it reads the {images} "
                    "images itself")
            yield
            return
        from creative_dag.encoders.extractor_pool import ExtractorPool

        with ExtractorPool(self.extractor, workers) as pool:
            self._pool, self._log = pool, log
            try:
                yield
            finally:
                self._pool = self._log = None

    def encode(self, images: Sequence[np.ndarray]) -> EncodedBatch:
        frame = None
        if self._pool is not None:
            try:
                frame = self._pool.transform(images)
            except BrokenExecutor as exc:
                self._pool.close(kill=True)
                self._pool = None
                if self._log:
                    self._log(f"embeddings.{self.block}: a worker process stopped ({type(exc).__name__}: {exc}); "
                              "the rest is read in the step's own process")
        if frame is None:
            frame = self.extractor.transform(images)
        return EncodedBatch(self.extractor.vectorize(frame), frame.reset_index(drop=True))


class VisualBlockEncoder(PooledBlockEncoder):
    """The interpretable `visual` block (creative_dag.encoders.visual) as a BlockEncoder.

    Vector: the extractor's fixed-scale standardised numeric features, L2-normalised;
    attributes: every column of its `transform` frame. With `workers` >= 2 a cold run's images are
    computed on that many processes (the features use ~1.2 of 2 cores in one process).
    """

    block = "visual"
    device = "cpu"
    decode_shorter_side = None  # full resolution: image_width/height must be the file's
    # ~35 ms per image: 64 images (~2 s) per worker pay for starting it
    min_images_per_worker = 64

    def __init__(self, working_size: int = 512, workers: int = 1) -> None:
        from creative_dag.encoders.visual import VISUAL_SCALES, VisualFeatureExtractor

        self.extractor = VisualFeatureExtractor(working_size=working_size)
        self.workers = max(1, int(workers))
        self.model_id = VisualFeatureExtractor.model_id
        # the fixed scales shape every vector, so they are part of the version
        self.model_version = f"{VisualFeatureExtractor.model_version}+p{settings_hash(working_size, VISUAL_SCALES)}"
        self.dim = len(VisualFeatureExtractor.vector_columns)


class LayoutBlockEncoder(PooledBlockEncoder):
    """The `layout` block (creative_dag.encoders.layout: OCR, CTA, faces) as a BlockEncoder.

    `LayoutExtractor` loads its OCR model lazily; `load` forces that on a tiny image so an
    unavailable backend is known before any creative is processed.
    """

    block = "layout"
    decode_shorter_side = None  # full resolution: boxes are reported in the file's pixels

    def __init__(self, extractor: Any, workers: int = 1) -> None:
        from creative_dag.encoders.layout import LAYOUT_SCALES

        self.extractor = extractor
        self.workers = max(1, int(workers))
        self.model_id = extractor.model_id
        self.model_version = (f"{extractor.model_version}"
                              f"+p{settings_hash(LAYOUT_SCALES, extractor.min_confidence)}")
        self.dim = len(extractor.vector_columns)
        self.device = "cuda" if getattr(extractor, "gpu", False) else "cpu"

    @classmethod
    def load(cls, backend: str = "easyocr", working_size: int = 384, model_dir: str | None = None,
             device: str = "cpu", batch_size: int = 16, workers: int = 1,
             compiled: CompiledModels | None = None) -> LayoutBlockEncoder:
        from creative_dag.encoders.base import ModelUnavailable, resolve_device
        from creative_dag.encoders.layout import LayoutExtractor

        gpu = resolve_device(device).startswith("cuda")
        extractor = LayoutExtractor(backend=backend, working_size=working_size, model_dir=model_dir,
                                    gpu=gpu, batch_size=batch_size, compiled=compiled)
        if extractor.available:
            try:  # first transform loads the model; a 64² blank image costs milliseconds
                extractor.transform([np.full((64, 64, 3), 255, dtype=np.uint8)])
            except RuntimeError:
                pass
        if not extractor.available:
            raise ModelUnavailable(extractor.unavailable_reason or "layout extractor unavailable")
        return cls(extractor, workers=1 if gpu else workers)


# --------------------------------------------------------------------------- image blocks
def encode_images(encoder: BlockEncoder, items: pd.DataFrame, read_bytes: Callable[[str], bytes],
                  cache: EmbeddingCache | None = None, batch_size: int = 32,
                  log: Callable[[str], Any] | None = None, verify_sha256: bool = True,
                  prefetch: bool = True, decoded: Mapping[str, np.ndarray] | None = None) -> BlockRun:
    """Encode the images of `items` with `encoder`.

    items: DataFrame with creative_id, sha256, launch_date, image_path (one row per creative).
    read_bytes: image_path -> bytes (raises OSError / ImagePathError for unreadable paths).
    decoded: image_path -> an image already decoded at full size (the attribution's edited copies, held
    in memory): fitted to the block as `decode_image` would, with no bytes read, encoded or decoded.
    An encoder with a `parallel(n_images, log)` context (the layout block) reads them on worker
    processes while it is open.
    Returns a BlockRun whose frame has one row per creative whose image was encoded.
    """
    started = time.perf_counter()
    _require(items, ("creative_id", "sha256", "launch_date", "image_path"), "encode_images items")
    block = encoder.block
    unique = items.drop_duplicates("sha256")
    shas = unique["sha256"].tolist()
    hits = cache.get(block, encoder.model_id, encoder.model_version, shas) if cache is not None else {}
    results: dict[str, tuple[np.ndarray, dict]] = {k: (v.vector, v.attributes) for k, v in hits.items()}
    todo = unique[~unique["sha256"].isin(list(results))]
    failures: dict[str, tuple[str, str]] = {}  # sha256 -> (reason, detail)
    progress = ProgressLogger(f"embeddings.{block}", len(todo), log)
    decode_s = encode_s = 0.0
    rows = list(todo[["sha256", "image_path", "creative_id"]].itertuples(index=False, name=None))
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    # With every image cached nothing below the identity is read (a LazyEncoder then loads no model).
    decode_kwargs = _decode_kwargs(encoder) if rows else {}
    parallel = getattr(encoder, "parallel", None) if rows else None  # work spread over processes
    with parallel(len(rows), log) if parallel is not None else nullcontext():
        pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(batches) > 1 else None
        try:
            pending: Future | None = None
            for index, batch in enumerate(batches):
                t0 = time.perf_counter()
                if pending is not None:
                    images = pending.result()
                else:
                    images = _decode_batch(batch, read_bytes, decode_kwargs, verify_sha256, decoded)
                if pool is not None and index + 1 < len(batches):
                    pending = pool.submit(_decode_batch, batches[index + 1], read_bytes, decode_kwargs, verify_sha256,
                                          decoded)
                else:
                    pending = None
                t1 = time.perf_counter()
                decode_s += t1 - t0
                ok = [(sha, image) for sha, image, _ in images if image is not None]
                for sha, _, failure in images:
                    if failure is not None:
                        failures[sha] = failure
                if ok:
                    encoded = _encode_isolating_failures(encoder, ok, failures)
                    if cache is not None and encoded:
                        cache.put(block, encoder.model_id, encoder.model_version, [s for s, _, _ in encoded],
                                  np.stack([v for _, v, _ in encoded]), [a for _, _, a in encoded])
                    for sha, vector, attrs in encoded:
                        results[sha] = (vector, attrs)
                encode_s += time.perf_counter() - t1
                progress.update(len(batch))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    progress.finish()
    frame = assemble_rows(items, results, encoder)
    quarantine = quarantine_rows(items, failures, block)
    computed = len(todo) - len(failures)
    return BlockRun(frame=frame, quarantine=quarantine, computed=computed, cached=len(hits),
                    failed=int(items["sha256"].isin(list(failures)).sum()),
                    seconds=time.perf_counter() - started,
                    timings={"decode_wait_s": decode_s, "encode_s": encode_s})


def _decode_kwargs(encoder: Any) -> dict[str, Any]:
    return {"shorter_side": getattr(encoder, "decode_shorter_side", None),
            "longer_side": getattr(encoder, "decode_longer_side", None)}


def _decode_batch(batch: Sequence[tuple[str, str, str]], read_bytes: Callable[[str], bytes],
                  decode_kwargs: dict[str, Any], verify_sha256: bool,
                  decoded: Mapping[str, np.ndarray] | None = None
                  ) -> list[tuple[str, np.ndarray | None, tuple[str, str] | None]]:
    """[(sha, path, creative_id)] -> [(sha, RGB array or None, (reason, detail) or None)]."""
    out = []
    for sha, path, creative_id in batch:
        label = f"creative {creative_id} image {path}"
        if decoded is not None and path in decoded:
            out.append((sha, fit_decoded(decoded[path], **decode_kwargs), None))
            continue
        try:
            data = read_bytes(path)
        except Exception as exc:  # noqa: BLE001 - ImagePathError, OSError, fsspec errors: quarantine
            reason = getattr(exc, "reason", "image_unreadable")
            out.append((sha, None, (reason, f"{label}: cannot read ({exc}); fix the file and re-run ingest")))
            continue
        if verify_sha256 and hashlib.sha256(data).hexdigest() != sha:
            out.append((sha, None, ("image_changed_since_ingest",
                                    (f"{label}: content no longer matches raw.images.sha256; "
                                    "re-materialise raw/images"))))
            continue
        try:
            out.append((sha, decode_image(data, name=label, **decode_kwargs), None))
        except ImageDecodeError as exc:
            out.append((sha, None, (exc.reason, exc.detail)))
    return out


def _encode_isolating_failures(encoder: BlockEncoder, ok: list[tuple[str, np.ndarray]],
                               failures: dict[str, tuple[str, str]]) -> list[tuple[str, np.ndarray, dict]]:
    """Encode a batch; if the batch raises, encode image by image so one bad image only loses itself."""
    try:
        return _split(encoder.encode([image for _, image in ok]), [sha for sha, _ in ok])
    except Exception:  # noqa: BLE001
        if len(ok) == 1:
            sha = ok[0][0]
            import traceback

            failures[sha] = ("encoder_error", (f"embeddings.{encoder.block}: "
                             f"{traceback.format_exc(limit=1).strip().splitlines()[-1]}"))
            return []
        out = []
        for pair in ok:
            out += _encode_isolating_failures(encoder, [pair], failures)
        return out


def _split(batch: EncodedBatch, keys: Sequence[str]) -> list[tuple[str, np.ndarray, dict]]:
    vectors = np.asarray(batch.vectors, dtype=np.float32)
    if len(vectors) != len(keys):
        raise ValueError(f"encoder returned {len(vectors)} vectors for {len(keys)} inputs")
    records = batch.attributes.to_dict(orient="records") if len(batch.attributes.columns) else [{} for _ in keys]
    return [(k, vectors[i], {c: _plain(v) for c, v in records[i].items()}) for i, k in enumerate(keys)]


def _plain(value: Any) -> Any:
    """Attribute values as JSON-able Python (numpy scalars/arrays, pd.NA -> None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def assemble_rows(items: pd.DataFrame, results: dict[str, tuple[np.ndarray, dict]],
                  encoder: BlockEncoder, key_column: str = "sha256") -> pd.DataFrame:
    """One row per creative whose key has a result: ID_COLUMNS + attribute columns."""
    have = items[items[key_column].isin(list(results))].reset_index(drop=True)
    n = len(have)
    vectors = [results[k][0] for k in have[key_column]]
    attrs = pd.DataFrame([results[k][1] for k in have[key_column]], index=range(n))
    matrix = l2_normalize(np.stack(vectors)) if n else np.zeros((0, encoder.dim), np.float32)
    frame = pd.DataFrame({
        "creative_id": have["creative_id"].astype("string"),
        "sha256": have["sha256"].astype("string"),
        "launch_date": date_series(have["launch_date"]),
        "model_id": pd.Series([encoder.model_id] * n, dtype="string"),
        "model_version": pd.Series([encoder.model_version] * n, dtype="string"),
        "vector": vector_series(matrix),
    })
    extra = [c for c in attrs.columns if c not in frame.columns]
    return pd.concat([frame, attrs[extra]], axis=1) if extra else frame


def date_series(values: pd.Series) -> pd.Series:
    """Dates as a column DuckDB stores as DATE even when empty (arrow date32)."""
    dates = [None if pd.isna(v) else pd.Timestamp(v).date() for v in values]
    return pd.Series(pa.array(dates, type=pa.date32()), dtype=pd.ArrowDtype(pa.date32()))


def vector_series(matrix: np.ndarray) -> pd.Series:
    """(n, d) matrix -> a pandas column DuckDB stores as FLOAT[] (arrow list<float32>)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    array = pa.array(list(matrix), type=VECTOR_TYPE) if len(matrix) else pa.array([], type=VECTOR_TYPE)
    return pd.Series(array, dtype=pd.ArrowDtype(VECTOR_TYPE))


def quarantine_rows(items: pd.DataFrame, failures: dict[str, tuple[str, str]], block: str) -> pd.DataFrame:
    """raw.quarantine rows (source 'images') for every creative whose image failed in this block.

    key = 'embeddings.<block>:<creative_id>', unique to the block, so re-running the block replaces
    exactly its own rows and never another stage's rows about the same creative.
    """
    bad = items[items["sha256"].isin(list(failures))]
    return pd.DataFrame({
        "source": pd.Series([QUARANTINE_SOURCE] * len(bad), dtype="string"),
        "key": pd.Series([quarantine_key(block, c) for c in bad["creative_id"]], dtype="string"),
        "reason": pd.Series([failures[s][0] for s in bad["sha256"]], dtype="string"),
        "detail": pd.Series([failures[s][1] for s in bad["sha256"]], dtype="string"),
        "raw_value": pd.Series(list(bad["image_path"].astype(str)) if "image_path" in bad else [""] * len(bad),
                               dtype="string"),
    })


def quarantine_key(block: str, creative_id: str) -> str:
    return f"embeddings.{block}:{creative_id}"


# --------------------------------------------------------------------------- text block
def encode_texts(encoder: BlockEncoder, items: pd.DataFrame, cache: EmbeddingCache | None = None,
                 log: Callable[[str], Any] | None = None) -> BlockRun:
    """Encode `items.text` (one row per creative; creative_id, sha256, launch_date, text).

    Creatives with empty text get no row (nothing to compare). The cache key is the text's
    sha256, stored in the `text_sha256` column.
    """
    started = time.perf_counter()
    _require(items, ("creative_id", "sha256", "launch_date", "text"), "encode_texts items")
    items = items.copy()
    items["text"] = items["text"].fillna("").astype(str)
    items = items[items["text"].str.strip() != ""].reset_index(drop=True)
    items["text_sha256"] = [text_sha256(t) for t in items["text"]]
    unique = items.drop_duplicates("text_sha256")
    keys = unique["text_sha256"].tolist()
    hits = cache.get(encoder.block, encoder.model_id, encoder.model_version, keys) if cache is not None else {}
    results = {k: (v.vector, v.attributes) for k, v in hits.items()}
    todo = unique[~unique["text_sha256"].isin(list(results))]
    t0 = time.perf_counter()
    if len(todo):
        progress = ProgressLogger(f"embeddings.{encoder.block}", len(todo), log)
        encoded = _split(encoder.encode(todo["text"].tolist()), todo["text_sha256"].tolist())
        progress.update(len(todo))
        progress.finish()
        if cache is not None:
            cache.put(encoder.block, encoder.model_id, encoder.model_version, [k for k, _, _ in encoded],
                      np.stack([v for _, v, _ in encoded]), [a for _, _, a in encoded])
        results.update({k: (v, a) for k, v, a in encoded})
    encode_s = time.perf_counter() - t0
    frame = assemble_rows(items, results, encoder, key_column="text_sha256")
    lookup = items.set_index("creative_id")
    frame["text"] = pd.Series(lookup.loc[frame["creative_id"].tolist(), "text"].tolist(), dtype="string")
    frame["text_sha256"] = pd.Series(lookup.loc[frame["creative_id"].tolist(), "text_sha256"].tolist(),
                                     dtype="string")
    return BlockRun(frame=frame, quarantine=quarantine_rows(items.iloc[0:0], {}, encoder.block),
                    computed=len(todo), cached=len(hits), failed=0,
                    seconds=time.perf_counter() - started, timings={"encode_s": encode_s})


# --------------------------------------------------------------------------- table typing
_DUCKDB_TO_PANDAS = {
    "DOUBLE": "float64", "FLOAT": "float64", "REAL": "float64", "BIGINT": "Int64", "INTEGER": "Int64",
    "SMALLINT": "Int64", "HUGEINT": "Int64", "BOOLEAN": "boolean", "VARCHAR": "string", "DATE": "object",
}


def stabilise_types(frame: pd.DataFrame, existing: dict[str, str] | None = None,
                    numeric_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Give columns that are entirely missing a concrete type, so DuckDB never creates a NULL-typed column.

    existing: the target table's column -> DuckDB type (takes precedence); numeric_columns are float64
    when all-missing and the table does not exist yet; any other all-missing column is a string.
    """
    out = frame.copy()
    numeric = set(numeric_columns)
    existing = existing or {}
    for column in out.columns:
        if column in ID_COLUMNS or out[column].notna().any():
            continue
        db_type = existing.get(column, "")
        if db_type.endswith("[]"):
            inner = db_type[:-2]
            arrow = {"VARCHAR": pa.string(), "FLOAT": pa.float32()}.get(inner, pa.float64())
            out[column] = pd.Series(pa.array([None] * len(out), type=pa.list_(arrow)),
                                    dtype=pd.ArrowDtype(pa.list_(arrow)))
            continue
        dtype = _DUCKDB_TO_PANDAS.get(db_type) or ("float64" if column in numeric else "string")
        out[column] = pd.Series([None] * len(out), dtype=dtype)
    return out


def empty_block_frame(attribute_types: dict[str, Any] | None = None) -> pd.DataFrame:
    """A typed, empty `embeddings.<block>` frame (so an unavailable block still has a table)."""
    columns: dict[str, pd.Series] = {
        "creative_id": pd.Series([], dtype="string"),
        "sha256": pd.Series([], dtype="string"),
        "launch_date": date_series(pd.Series([], dtype=object)),
        "model_id": pd.Series([], dtype="string"),
        "model_version": pd.Series([], dtype="string"),
        "vector": vector_series(np.zeros((0, 0), np.float32)),
    }
    for name, dtype in (attribute_types or {}).items():
        columns[name] = pd.Series([], dtype=dtype)
    return pd.DataFrame(columns)


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; got {list(frame.columns)}")
