"""The catalog: every warehouse table once, with its asset key and its column descriptions.

A `Table` *is* its qualified name (`"marts.creative_ranking"`, a str), so it goes wherever a table
name goes (warehouse reads and writes, SQL f-strings, dict keys), and it carries the Dagster asset
key (`.key`, for `deps`, `key=`, checks) and the column descriptions the Dagster UI shows
(`.column_schema(frame)`). To add a table: add a constant here, its columns to `columns.py`
(tests/test_catalog.py fails for a materialised column without a description), and build the asset
with `key=TABLE.key`.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Self

from creative_dag.blocks import EMBEDDING_BLOCKS
from creative_dag.catalog.columns import COLUMNS

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd


class Table(str):
    """A warehouse table `schema.table`; equal to (and hashed as) that string."""

    schema: str
    table: str

    def __new__(cls, schema: str, table: str) -> Self:
        self = super().__new__(cls, f"{schema}.{table}")
        self.schema, self.table = schema, table
        return self

    def __reduce__(self):  # pickled (multiprocess executor) as the constructor call, not as a str
        return (Table, (self.schema, self.table))

    @property
    def key(self) -> dg.AssetKey:
        import dagster as dg  # here, not at the top: computing processes (forecast workers) read table names only

        return dg.AssetKey([self.schema, self.table])

    @property
    def columns(self) -> dict[str, str]:
        """column (or `prefix_*` pattern for columns named by data, e.g. tags) -> description."""
        return COLUMNS.get(str(self), {})

    def describe(self, column: str) -> str | None:
        """The description of one column; patterns match columns named by data."""
        columns = self.columns
        if column in columns:
            return columns[column]
        for pattern, text in columns.items():
            if "*" in pattern and fnmatch.fnmatchcase(column, pattern):
                return text
        return None

    def undescribed(self, names: list[str]) -> list[str]:
        """Columns of a materialised frame that the catalog does not describe."""
        return [c for c in names if self.describe(str(c)) is None]

    def column_schema(self, frame: pd.DataFrame) -> dg.TableSchema:
        """The frame's columns with their SQL types in the warehouse and the catalog's descriptions (Dagster's
        column table)."""
        import dagster as dg

        from creative_dag.catalog.types import sql_type

        return dg.TableSchema(columns=[
            dg.TableColumn(name=str(c), type=sql_type(str(c), frame[c]), description=self.describe(str(c)))
            for c in frame.columns])


RAW_CREATIVES = Table("raw", "creatives")
RAW_DAILY_METRICS = Table("raw", "daily_metrics")
RAW_IMAGES = Table("raw", "images")
RAW_QUARANTINE = Table("raw", "quarantine")

FEATURES_REGISTRY = Table("features", "registry")
FEATURES_PRELAUNCH = Table("features", "prelaunch")
FEATURES_EARLY = Table("features", "early")
FEATURES_OUTCOMES = Table("features", "outcomes")

EMBEDDING_TABLES = {block: Table("embeddings", block) for block in EMBEDDING_BLOCKS}
EMBEDDINGS_MODEL_STATUS = Table("embeddings", "model_status")

CBR_CASE_BASE = Table("cbr", "case_base")
CBR_NEIGHBORS = Table("cbr", "neighbors")
CBR_BACKTEST = Table("cbr", "backtest")

MARTS_CREATIVE_RANKING = Table("marts", "creative_ranking")
MARTS_CREATIVE_FATIGUE = Table("marts", "creative_fatigue")
MARTS_CREATIVE_FATIGUE_DAILY = Table("marts", "creative_fatigue_daily")
MARTS_CREATIVE_REPETITION = Table("marts", "creative_repetition")
MARTS_TIRED_OR_REPETITIVE = Table("marts", "tired_or_repetitive")
MARTS_RECOMMENDATIONS = Table("marts", "recommendations")
MARTS_ACCOUNT_HEALTH = Table("marts", "account_health")
MARTS_CREATIVE_LANDSCAPE = Table("marts", "creative_landscape")
MARTS_LANDSCAPE_CLUSTERS = Table("marts", "landscape_clusters")
MARTS_PERFORMANCE_MODEL = Table("marts", "performance_model")
MARTS_PREDICTIONS = Table("marts", "predictions")
MARTS_ELEMENT_ATTRIBUTION = Table("marts", "element_attribution")
MARTS_PAIRWISE_BACKTEST = Table("marts", "pairwise_backtest")
MARTS_CANDIDATE_ASSESSMENT = Table("marts", "candidate_assessment")
MARTS_CANDIDATE_PAIRS = Table("marts", "candidate_pairs")
MARTS_EARLY_DECISIONS = Table("marts", "early_decisions")

TABLES: tuple[Table, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Table)) + tuple(EMBEDDING_TABLES.values())


def embedding_table(block: str) -> Table:
    """`embeddings.<block>`."""
    if block not in EMBEDDING_TABLES:
        raise ValueError(f"{block!r} is not an embedding block ({', '.join(EMBEDDING_BLOCKS)})")
    return EMBEDDING_TABLES[block]


def table_named(name: str) -> Table:
    """The catalog's table for `schema.table`."""
    for table in TABLES:
        if table == name:
            return table
    raise KeyError(f"{name!r} is not a table of the catalog (creative_dag/catalog)")


def __getattr__(name: str) -> list[dg.AssetKey]:
    # EMBEDDING_KEYS needs Dagster: built on first use, so a process that only names tables (a forecast worker)
    # never imports it (~1 s).
    if name == "EMBEDDING_KEYS":
        return [table.key for table in EMBEDDING_TABLES.values()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
