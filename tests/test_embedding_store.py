"""The embedding store (encoder output outside the warehouse): per-launch-date Parquet on any fsspec
filesystem, read back with the types DuckDB needs, published into embeddings.<block>."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

from creative_dag.assets import encoders as encoder_assets
from creative_dag.encoders.pipeline import date_series, stabilise_types, vector_series
from creative_dag.encoders.store import EmbeddingStore, StoreError
from creative_dag.resources.warehouse import WarehouseResource

DAY1, DAY2, DAY3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _rows() -> pd.DataFrame:
    frame = pd.DataFrame({
        "creative_id": pd.Series(["a", "b", "c"], dtype="string"),
        "sha256": pd.Series(["s1", "s2", "s3"], dtype="string"),
        "launch_date": date_series(pd.Series([DAY1, DAY1, DAY2])),
        "model_id": pd.Series(["m"] * 3, dtype="string"),
        "model_version": pd.Series(["v"] * 3, dtype="string"),
        "vector": vector_series(np.eye(3, 4, dtype=np.float32)),
        "tags": [["cup", "espresso"], [], None],
        "face_count": [None, None, None],
    })
    return stabilise_types(frame, {}, ["face_count"])


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> EmbeddingStore:
    if request.param == "local":
        return EmbeddingStore(str(tmp_path / "store"))
    return EmbeddingStore(f"memory://store-{uuid.uuid4().hex}")


def test_rows_round_trip_per_launch_date_with_empty_dates(store):
    counts = store.write_rows("cnn", _rows(), [DAY1, DAY2, DAY3])
    assert counts == {DAY1: 2, DAY2: 1, DAY3: 0}
    back = store.read_rows("cnn", [DAY2, DAY1])
    assert back["creative_id"].tolist() == ["a", "b", "c"]
    assert list(back.loc[0, "tags"]) == ["cup", "espresso"]
    np.testing.assert_allclose(np.stack(back["vector"].to_numpy()), np.eye(3, 4))
    assert len(store.read_rows("cnn", [DAY3])) == 0  # computed, nothing there: a 0-row file
    # rewriting a date replaces only that date's file
    store.write_rows("cnn", _rows().iloc[:1], [DAY1])
    assert store.read_rows("cnn", [DAY1, DAY2])["creative_id"].tolist() == ["a", "c"]


def test_a_date_never_computed_is_an_error_naming_the_file(store):
    store.write_rows("cnn", _rows(), [DAY1])
    with pytest.raises(StoreError, match=r"launch_date=2026-03-02\.parquet is missing"):
        store.read_rows("cnn", [DAY1, DAY2])


def test_run_records_and_status(store):
    store.write_run("cnn", "run-1", {"available": True, "creative_ids": ["a"]})
    assert store.read_run("cnn", "run-1")["creative_ids"] == ["a"]
    with pytest.raises(StoreError, match="run-2"):
        store.read_run("cnn", "run-2")
    assert store.read_status("cnn") is None
    store.write_status("cnn", {"available": False, "reason": "offline"})
    assert store.read_status("cnn")["reason"] == "offline"


def test_published_rows_keep_duckdb_types(store, tmp_path):
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    from creative_dag.encoders.pipeline import quarantine_rows

    store.write_rows("cnn", _rows(), [DAY1, DAY2])
    store.write_quarantine("cnn", quarantine_rows(pd.DataFrame(columns=["creative_id", "sha256"]), {}, "cnn"),
                           pd.Series([], dtype=object), [DAY1, DAY2])
    frame, per_date = encoder_assets.publish_launch_dates(
        "cnn", [DAY1, DAY2], warehouse, store, {"numeric_columns": ["face_count"], "creative_ids": ["a", "b", "c"]})
    assert per_date == {DAY1: 2, DAY2: 1} and len(frame) == 3
    types = encoder_assets.existing_types(warehouse, "embeddings.cnn")
    assert types["vector"] == "FLOAT[]" and types["launch_date"] == "DATE"
    assert types["tags"] == "VARCHAR[]" and types["face_count"] == "DOUBLE"
