"""The catalog is the one list of tables: every asset the graph builds is in it, nothing else sneaks in,
and a Table behaves as its name where a name goes and as its key where a key goes."""

import pickle

import dagster as dg
import pandas as pd
import pytest

from creative_dag.catalog import (
    MARTS_CREATIVE_RANKING,
    RAW_CREATIVES,
    TABLES,
    Table,
    embedding_table,
    table_named,
)
from creative_dag.definitions import build_definitions


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    return build_definitions(root / "home", root / "landing").get_repository_def().asset_graph


def test_every_table_the_graph_builds_or_reads_is_in_the_catalog(graph):
    # a Table passed where a key belongs (`deps=[RAW_CREATIVES]` instead of `.key`) would be coerced to
    # the one-part key "raw.creatives": an external asset nobody materialises. This catches it.
    catalog_keys = {table.key for table in TABLES}
    for key in graph.get_all_asset_keys():
        assert key in catalog_keys or key.path[0] == "report", \
            f"{key.to_user_string()} is not a table of creative_dag/catalog (a Table used where its .key belongs?)"
    for node in graph.asset_nodes:
        assert node.is_materializable, f"{node.key.to_user_string()} is read but never built"


def test_every_catalog_table_is_built_by_an_asset_with_described_columns(graph):
    built = {node.key for node in graph.asset_nodes if node.is_materializable}
    for table in TABLES:
        assert table.key in built, f"{table} is in the catalog but no asset builds it"
        assert table.columns, f"{table} has no column descriptions in creative_dag/catalog/columns.py"


def test_a_table_is_its_name_and_carries_its_key():
    assert RAW_CREATIVES == "raw.creatives" and {RAW_CREATIVES: 1}["raw.creatives"] == 1
    assert f"SELECT * FROM {MARTS_CREATIVE_RANKING}" == "SELECT * FROM marts.creative_ranking"
    assert MARTS_CREATIVE_RANKING.key == dg.AssetKey(["marts", "creative_ranking"])
    assert pickle.loads(pickle.dumps(MARTS_CREATIVE_RANKING)).key == MARTS_CREATIVE_RANKING.key
    assert table_named("marts.creative_ranking") is MARTS_CREATIVE_RANKING
    assert embedding_table("cnn") == "embeddings.cnn"
    with pytest.raises(KeyError, match="not a table of the catalog"):
        table_named("marts.nope")
    with pytest.raises(ValueError, match="not an embedding block"):
        embedding_table("context")


def test_the_column_schema_carries_types_and_descriptions():
    frame = pd.DataFrame({"creative_id": ["a"], "score": [0.1], "no_such_column": [1]})
    schema = MARTS_CREATIVE_RANKING.column_schema(frame)
    columns = {c.name: c for c in schema.columns}
    assert columns["score"].type == "DOUBLE" and "lift" in columns["score"].description.lower()  # the warehouse's
    assert columns["creative_id"].type == "VARCHAR" and columns["no_such_column"].type == "BIGINT"
    assert columns["creative_id"].description
    assert columns["no_such_column"].description is None
    assert MARTS_CREATIVE_RANKING.undescribed(list(frame.columns)) == ["no_such_column"]


def test_patterns_describe_columns_named_by_data():
    table = Table("raw", "creatives")
    assert table.describe("unnamed_3") and table.describe("any_landed_extra_column")
