"""Embedding cache and the block pipeline: re-runs compute only new images, a new model version
recomputes, bad images are quarantined while the batch goes on."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from creative_dag.encoders.base import EncodedBatch, l2_normalize
from creative_dag.encoders.cache import COMPACT_AFTER_SHARDS, EmbeddingCache
from creative_dag.encoders.pipeline import encode_images, encode_texts


class CountingColourEncoder:
    """Test double: vector = mean RGB + channel stds; counts how many images it was asked to encode."""

    block = "cnn"
    model_id = "test/mean-colour"
    dim = 6
    device = "cpu"
    decode_shorter_side = 32

    def __init__(self, model_version: str = "v1") -> None:
        self.model_version = model_version
        self.calls = 0
        self.images_seen = 0

    def encode(self, images):
        self.calls += 1
        self.images_seen += len(images)
        feats = np.stack([np.concatenate([img.reshape(-1, 3).mean(0), img.reshape(-1, 3).std(0) + 1])
                          for img in images])
        top = ["reddish" if f[0] > f[2] else "bluish" for f in feats]
        return EncodedBatch(l2_normalize(feats), pd.DataFrame({"top_tag": top, "tags": [[t] for t in top]}))


def _jpeg(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _items(files: dict[str, bytes], day: str = "2026-03-01") -> pd.DataFrame:
    return pd.DataFrame({
        "creative_id": [f"cr_{name}" for name in files],
        "sha256": [hashlib.sha256(data).hexdigest() for data in files.values()],
        "launch_date": [dt.date.fromisoformat(day)] * len(files),
        "image_path": [f"images/{name}.jpg" for name in files],
    })


def _reader(files: dict[str, bytes]):
    by_path = {f"images/{name}.jpg": data for name, data in files.items()}

    def read(path: str) -> bytes:
        if path not in by_path:
            raise FileNotFoundError(f"no such file {path}")
        return by_path[path]
    return read


def test_cache_round_trip_and_version_isolation(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = l2_normalize(np.arange(12, dtype=np.float32).reshape(3, 4) + 1)
    cache.put("cnn", "org/model", "v1", ["a", "b", "c"], vectors, [{"tag": "x"}, {"tag": "y"}, {"tag": None}])
    got = cache.get("cnn", "org/model", "v1", ["a", "c", "zzz"])
    assert set(got) == {"a", "c"}
    np.testing.assert_allclose(got["c"].vector, vectors[2])
    assert got["a"].attributes == {"tag": "x"} and got["c"].attributes == {"tag": None}
    assert cache.get("cnn", "org/model", "v2", ["a"]) == {}
    assert cache.get("clip", "org/model", "v1", ["a"]) == {}


def test_cache_compacts_many_shards_without_losing_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for i in range(COMPACT_AFTER_SHARDS + 3):
        cache.put("text", "m", "v", [f"k{i}"], np.full((1, 2), i, np.float32))
    folder = cache.folder("text", "m", "v")
    assert len(list(folder.glob("part-*.parquet"))) <= COMPACT_AFTER_SHARDS
    got = cache.get("text", "m", "v", [f"k{i}" for i in range(COMPACT_AFTER_SHARDS + 3)])
    assert len(got) == COMPACT_AFTER_SHARDS + 3
    assert got["k5"].vector.tolist() == [5.0, 5.0]


def test_rematerialisation_computes_only_new_images_and_new_version_recomputes(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    first = {"red": _jpeg((200, 10, 10)), "blue": _jpeg((10, 10, 200)), "green": _jpeg((10, 200, 10))}
    encoder = CountingColourEncoder("v1")
    run = encode_images(encoder, _items(first), _reader(first), cache, batch_size=2)
    assert encoder.images_seen == 3 and run.computed == 3 and run.cached == 0
    assert list(run.frame["creative_id"]) == ["cr_red", "cr_blue", "cr_green"]
    assert run.frame.set_index("creative_id").loc["cr_red", "top_tag"] == "reddish"

    # one new creative: only it is encoded; the cached rows come back identical
    second = dict(first, orange=_jpeg((230, 120, 10)))
    encoder.images_seen = 0
    rerun = encode_images(encoder, _items(second), _reader(second), cache, batch_size=2)
    assert encoder.images_seen == 1 and rerun.computed == 1 and rerun.cached == 3
    before = run.frame.set_index("creative_id")
    after = rerun.frame.set_index("creative_id")
    np.testing.assert_allclose(np.asarray(after.loc["cr_blue", "vector"]), np.asarray(before.loc["cr_blue", "vector"]))
    assert after.loc["cr_blue", "tags"] == ["bluish"]

    # a changed model version recomputes everything, and rows carry the new version
    encoder_v2 = CountingColourEncoder("v2")
    run_v2 = encode_images(encoder_v2, _items(second), _reader(second), cache, batch_size=2)
    assert encoder_v2.images_seen == 4 and run_v2.cached == 0
    assert set(run_v2.frame["model_version"]) == {"v2"}


def test_duplicate_images_are_encoded_once_but_every_creative_gets_a_row(tmp_path):
    same = _jpeg((90, 90, 200))
    files = {"a": same, "b": same}
    encoder = CountingColourEncoder()
    run = encode_images(encoder, _items(files), _reader(files), None)
    assert encoder.images_seen == 1
    assert sorted(run.frame["creative_id"]) == ["cr_a", "cr_b"]


def test_bad_images_are_quarantined_and_the_batch_goes_on(tmp_path):
    good = _jpeg((200, 10, 10))
    big = io.BytesIO()
    Image.new("RGB", (300, 300), (5, 5, 5)).save(big, "JPEG", quality=95)
    files = {"good1": good, "trunc": big.getvalue()[:400], "good2": _jpeg((10, 10, 200))}
    items = _items(files)
    # a file missing on disk, and one whose bytes changed since ingest hashed it
    items = pd.concat([items, pd.DataFrame({
        "creative_id": ["cr_missing", "cr_changed"],
        "sha256": ["0" * 64, "1" * 64],
        "launch_date": [dt.date(2026, 3, 1)] * 2,
        "image_path": ["images/missing.jpg", "images/good1.jpg"],
    })], ignore_index=True)
    encoder = CountingColourEncoder()
    run = encode_images(encoder, items, _reader(files), EmbeddingCache(tmp_path), batch_size=2)
    assert sorted(run.frame["creative_id"]) == ["cr_good1", "cr_good2"]
    reasons = dict(zip(run.quarantine["key"], run.quarantine["reason"]))
    assert reasons == {
        "embeddings.cnn:cr_trunc": "truncated_image",
        "embeddings.cnn:cr_missing": "image_unreadable",
        "embeddings.cnn:cr_changed": "image_changed_since_ingest",
    }
    assert set(run.quarantine["source"]) == {"images"}
    assert run.failed == 3
    assert "cr_trunc" in run.quarantine.set_index("key").loc["embeddings.cnn:cr_trunc", "detail"]


def test_an_image_the_encoder_rejects_only_loses_itself():
    class PickyEncoder(CountingColourEncoder):
        def encode(self, images):
            if any(img[..., 1].mean() > 150 for img in images):
                raise ValueError("cannot encode green")
            return super().encode(images)

    files = {"red": _jpeg((200, 10, 10)), "green": _jpeg((10, 200, 10)), "blue": _jpeg((10, 10, 200))}
    run = encode_images(PickyEncoder(), _items(files), _reader(files), None, batch_size=3)
    assert sorted(run.frame["creative_id"]) == ["cr_blue", "cr_red"]
    assert run.quarantine["reason"].tolist() == ["encoder_error"]
    assert "cannot encode green" in run.quarantine["detail"].iloc[0]


def test_text_block_is_cached_by_text_and_skips_empty_copy(tmp_path):
    class CountingTextEncoder:
        block, model_id, model_version, dim, device = "text", "test/len", "v1", 2, "cpu"
        seen = 0

        def encode(self, texts):
            self.seen += len(texts)
            return EncodedBatch(l2_normalize(np.array([[len(t), 1.0] for t in texts])))

    items = pd.DataFrame({"creative_id": ["a", "b", "c"], "sha256": ["s1", "s2", None],
                          "launch_date": [dt.date(2026, 3, 1)] * 3,
                          "text": ["Fresh coffee", "", "Fresh coffee"]})
    encoder = CountingTextEncoder()
    cache = EmbeddingCache(tmp_path)
    run = encode_texts(encoder, items, cache)
    assert sorted(run.frame["creative_id"]) == ["a", "c"] and encoder.seen == 1
    assert run.frame["text"].tolist() == ["Fresh coffee", "Fresh coffee"]
    encode_texts(encoder, items, cache)
    assert encoder.seen == 1  # all from the cache


def test_missing_item_columns_are_a_clear_error():
    with pytest.raises(ValueError, match="image_path"):
        encode_images(CountingColourEncoder(), pd.DataFrame({"creative_id": ["a"], "sha256": ["x"],
                                                            "launch_date": ["2026-03-01"]}), bytes, None)
