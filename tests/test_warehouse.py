"""The warehouse resource: replace/partitioned writes, vectors, and the atomic serving copy."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from creative_dag.resources.warehouse import (
    DuckDBWarehouse,
    split_table_name,
)
from creative_dag.vectors import vectors_to_matrix


@pytest.fixture()
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "creative.duckdb")


def test_write_and_read_roundtrip_creates_schema(warehouse):
    frame = pd.DataFrame({"creative_id": ["a", "b"], "ctr": [0.01, 0.02]})
    assert warehouse.write_table("marts.example", frame) == 2
    assert warehouse.exists("marts.example")
    assert warehouse.tables() == ["marts.example"]
    pd.testing.assert_frame_equal(warehouse.read_table("marts.example"), frame)


def test_write_replaces_previous_content(warehouse):
    warehouse.write_table("raw.t", pd.DataFrame({"x": [1, 2, 3]}))
    warehouse.write_table("raw.t", pd.DataFrame({"x": [9]}))
    assert warehouse.read_table("raw.t")["x"].tolist() == [9]


def test_replace_rows_touches_only_its_partition(warehouse):
    day1 = pd.DataFrame({"launch_date": ["2026-03-01"] * 2, "creative_id": ["a", "b"]})
    day2 = pd.DataFrame({"launch_date": ["2026-03-02"], "creative_id": ["c"]})
    warehouse.replace_rows("embeddings.t", day1, "launch_date", ["2026-03-01"])
    warehouse.replace_rows("embeddings.t", day2, "launch_date", ["2026-03-02"])
    rerun = pd.DataFrame({"launch_date": ["2026-03-01"], "creative_id": ["a2"]})
    warehouse.replace_rows("embeddings.t", rerun, "launch_date", ["2026-03-01"])
    got = warehouse.read_table("embeddings.t").sort_values("creative_id")["creative_id"].tolist()
    assert got == ["a2", "c"]


def _types(warehouse: DuckDBWarehouse, table: str) -> dict[str, str]:
    schema, name = split_table_name(table)
    rows = warehouse.query("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = ? AND table_name = ?", [schema, name])
    return dict(zip(rows["column_name"], rows["data_type"]))


def test_a_column_without_any_value_gets_a_real_type(warehouse):
    # e.g. marts.recommendations without a pair (attribute_b), cbr.case_base with CLIP offline: a BI
    # driver cannot map DuckDB's "NULL" type
    frame = pd.DataFrame({"creative_id": ["a", "b"], "attribute_b": [None, None], "clip": [None, None]})
    warehouse.write_table("marts.example", frame, types={"clip": "DOUBLE[]"})
    assert _types(warehouse, "marts.example") == {"creative_id": "VARCHAR", "attribute_b": "VARCHAR",
                                                  "clip": "DOUBLE[]"}
    assert warehouse.read_table("marts.example")["attribute_b"].isna().all()


def test_an_empty_table_keeps_its_day_columns_dates(warehouse):
    # a step skipped for lack of data writes its empty frame: pandas cannot type an empty object column
    empty = pd.DataFrame({"creative_id": pd.Series(dtype=object), "launch_date": pd.Series(dtype=object),
                          "fatigue_onset_date": pd.Series(dtype=object), "note": pd.Series(dtype=object)})
    warehouse.write_table("marts.example", empty)
    assert _types(warehouse, "marts.example") == {"creative_id": "VARCHAR", "launch_date": "DATE",
                                                  "fatigue_onset_date": "DATE", "note": "VARCHAR"}
    warehouse.replace_rows("embeddings.t", empty, "launch_date", [])
    assert _types(warehouse, "embeddings.t")["launch_date"] == "DATE"


def test_the_ui_names_each_column_by_the_type_the_warehouse_gives_it(warehouse):
    """The Dagster UI's column table showed pandas' names (object, date32[day][pyarrow], list<element: float>)."""
    import datetime as dt

    from creative_dag.catalog.types import sql_type

    frame = pd.DataFrame({
        "creative_id": ["a", "b"], "launch_date": [dt.date(2026, 3, 1), dt.date(2026, 3, 2)],
        "n": [1, 2], "n_nullable": pd.array([1, None], dtype="Int64"), "share": [0.5, np.nan],
        "flag": [True, False], "ids": [["x", "y"], None], "vector": list(np.ones((2, 3), np.float32)),
        "seen_at": pd.to_datetime(["2026-03-01 10:00", "2026-03-02 11:00"]), "note": [None, None],
        "fatigue_onset_date": [None, None],
        "day": pd.Series([dt.date(2026, 3, 1), None], dtype="date32[pyarrow]"),
        "name": pd.Series(["a", None], dtype="string[pyarrow]"),
    })
    warehouse.write_table("marts.example", frame)
    stored = _types(warehouse, "marts.example")
    assert {c: sql_type(c, frame[c]) for c in frame.columns} == stored


def test_declared_types_cast_columns_and_must_name_real_ones(warehouse):
    frame = pd.DataFrame({"creative_id": ["a"], "trained_through": ["2026-04-01"]})
    warehouse.write_table("marts.example", frame, types={"trained_through": "DATE"})
    assert _types(warehouse, "marts.example")["trained_through"] == "DATE"
    with pytest.raises(ValueError, match="trained_thru"):
        warehouse.write_table("marts.example", frame, types={"trained_thru": "DATE"})


def test_a_partition_with_values_after_one_without_any(warehouse):
    first = pd.DataFrame({"launch_date": ["2026-03-01"], "headline": [None]})
    later = pd.DataFrame({"launch_date": ["2026-03-02"], "headline": ["Shop now"]})
    warehouse.replace_rows("embeddings.t", first, "launch_date", ["2026-03-01"])
    warehouse.replace_rows("embeddings.t", later, "launch_date", ["2026-03-02"])
    assert warehouse.read_table("embeddings.t").sort_values("launch_date")["headline"].tolist()[1] == "Shop now"


def test_a_table_created_with_a_null_typed_column_takes_the_first_values(warehouse):
    # tables written before the type fix keep their "NULL" column until a partition brings values
    with warehouse.connect(write=True) as con:
        con.execute("CREATE SCHEMA embeddings")
        con.execute("CREATE TABLE embeddings.t AS SELECT '2026-03-01' AS launch_date, NULL AS headline")
    later = pd.DataFrame({"launch_date": ["2026-03-02"], "headline": ["Shop now"]})
    warehouse.replace_rows("embeddings.t", later, "launch_date", ["2026-03-02"])
    assert _types(warehouse, "embeddings.t")["headline"] == "VARCHAR"
    assert sorted(warehouse.read_table("embeddings.t")["headline"].dropna()) == ["Shop now"]


def test_vectors_roundtrip_as_lists(warehouse):
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    frame = pd.DataFrame({"creative_id": ["a", "b", "c"], "vector": list(vectors)})
    warehouse.write_table("embeddings.cnn", frame)
    back = warehouse.read_table("embeddings.cnn")
    np.testing.assert_allclose(vectors_to_matrix(back["vector"]), vectors, rtol=1e-6)


def test_read_missing_table_says_which_asset_to_materialise(warehouse):
    warehouse.write_table("raw.other", pd.DataFrame({"x": [1]}))
    with pytest.raises(LookupError, match="materialise the asset raw/creatives"):
        warehouse.read_table("raw.creatives")


def test_read_optional_reads_or_says_absent_in_one_open(warehouse, monkeypatch):
    """A run reads a few hundred tables, some of which may not exist yet; each read opens the file once."""
    assert warehouse.read_optional("marts.nothing") is None  # no file yet: nothing created either
    assert not warehouse.path.exists()
    warehouse.write_table("marts.example", pd.DataFrame({"creative_id": ["a", "b"], "ctr": [0.01, 0.02]}))
    opens = []
    original = DuckDBWarehouse._open_waiting_for_lock
    monkeypatch.setattr(DuckDBWarehouse, "_open_waiting_for_lock",
                        lambda self, read_only: opens.append(read_only) or original(self, read_only))
    assert warehouse.read_optional("marts.nothing") is None
    frame = warehouse.read_optional("marts.example", columns=["ctr"], where="creative_id = ?", params=["b"])
    assert frame["ctr"].tolist() == [0.02]
    assert opens == [True, True]  # read-only, one open per read
    with pytest.raises(LookupError, match="creative-dag materialize --select marts/nothing"):
        warehouse.read_table("marts.nothing")


def test_a_read_phase_opens_the_file_once_and_refuses_writes(warehouse, monkeypatch):
    """Opening the file costs ~20 ms; a step's read phase (several tables, existence checks) shares one read-only
    connection, and a write through it fails instead of meeting DuckDB's configuration conflict."""
    warehouse.write_table("marts.example", pd.DataFrame({"creative_id": ["a", "b"], "ctr": [0.01, 0.02]}))
    warehouse.write_table("raw.other", pd.DataFrame({"creative_id": ["a"]}))
    opens = []
    original = DuckDBWarehouse._open_waiting_for_lock
    monkeypatch.setattr(DuckDBWarehouse, "_open_waiting_for_lock",
                        lambda self, read_only: opens.append(read_only) or original(self, read_only))
    with warehouse.reading() as db:
        assert db.exists("marts.example") and not db.exists("marts.nothing")
        assert db.read_optional("marts.nothing") is None
        assert db.read_table("marts.example")["ctr"].tolist() == [0.01, 0.02]
        assert db.query("SELECT count(*) AS n FROM raw.other")["n"].tolist() == [1]
        with db.reading() as nested:
            assert nested.tables() == ["marts.example", "raw.other"]
        with pytest.raises(PermissionError, match="write after the read phase"):
            db.write_table("marts.example", pd.DataFrame({"creative_id": ["c"]}))
    assert opens == [True]
    warehouse.write_table("marts.example", pd.DataFrame({"creative_id": ["c"], "ctr": [0.5]}))  # closed after
    assert warehouse.read_table("marts.example")["creative_id"].tolist() == ["c"]
    with DuckDBWarehouse(warehouse.path.parent / "absent.duckdb").reading() as empty:
        assert empty.read_optional("marts.example") is None and empty.tables() == []
    assert not (warehouse.path.parent / "absent.duckdb").exists()


def test_where_clause_is_parameterised(warehouse):
    warehouse.write_table("raw.t", pd.DataFrame({"name": ["a", "b'; DROP TABLE raw.t; --"]}))
    got = warehouse.read_table("raw.t", where="name = ?", params=["b'; DROP TABLE raw.t; --"])
    assert len(got) == 1 and warehouse.exists("raw.t")


@pytest.mark.parametrize("bad", ["creatives", "raw.creatives;drop", "a.b.c", "raw.1x"])
def test_table_names_must_be_schema_dot_identifier(bad):
    with pytest.raises(ValueError):
        split_table_name(bad)


def test_publish_writes_parquet_and_duckdb_copy_and_swaps(warehouse, tmp_path):
    warehouse.write_table("marts.ranking", pd.DataFrame({"creative_id": ["a", "b"], "score": [1.0, 2.0]}))
    serving = tmp_path / "serving"
    assert warehouse.publish(serving) == {"marts.ranking": 2}
    assert (serving / "marts" / "ranking.parquet").exists()
    reader = duckdb.connect(str(serving / "creative.duckdb"), read_only=True)
    # A reader holding the serving copy open must not block the next publish (atomic swap).
    warehouse.write_table("marts.ranking", pd.DataFrame({"creative_id": ["c"], "score": [3.0]}))
    assert warehouse.publish(serving) == {"marts.ranking": 1}
    assert reader.execute("SELECT count(*) FROM marts.ranking").fetchone()[0] == 2
    reader.close()
    fresh = duckdb.connect(str(serving / "creative.duckdb"), read_only=True)
    assert fresh.execute("SELECT creative_id FROM marts.ranking").fetchall() == [("c",)]
    fresh.close()
    assert not list(tmp_path.glob(".serving-*")), "staging folders are cleaned up"


def test_reads_open_the_file_read_only_and_never_create_it(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path)
    assert warehouse.tables() == [] and not warehouse.exists("raw.t")
    assert warehouse.query("SELECT 1 AS one")["one"].tolist() == [1]
    assert not path.exists(), "a read created the database file"
    warehouse.write_table("raw.t", pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(duckdb.Error, match="read-only"):
        warehouse.query("DELETE FROM raw.t")
    warehouse.execute("DELETE FROM raw.t WHERE a = ?", [1])
    assert warehouse.read_table("raw.t")["a"].tolist() == [2]
    with pytest.raises(PermissionError, match="read-only"):
        DuckDBWarehouse(path, read_only=True).write_table("raw.t", pd.DataFrame({"a": [3]}))
