"""A vector cell read back from DuckDB is not the cell that was written: NULL comes back as pd.NA."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative_dag import metrics
from creative_dag.cbr.case_base import case_arrays
from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.vectors import as_vector, is_missing_vector, vector_length


def test_every_form_of_a_missing_vector_is_missing():
    for cell in (None, np.nan, pd.NA, [], np.array([], dtype=np.float32), 0.5):
        assert is_missing_vector(cell), repr(cell)
        assert as_vector(cell) is None and vector_length(cell) == -1
    assert not is_missing_vector([0.6, 0.8]) and as_vector([0.6, 0.8]).dtype == np.float32
    assert as_vector([0.6, np.nan]) is None, "a non-finite vector is no vector"
    assert as_vector([1.0, 0.0, 0.0], dim=2) is None, "a vector of the wrong length is no vector"


def test_null_vectors_read_back_from_duckdb_are_handled(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    frame = pd.DataFrame({"creative_id": ["a", "b", "c"], "vector": [[0.6, 0.8], None, [1.0, 0.0]]})
    warehouse.write_table("embeddings.visual", frame)
    back = warehouse.read_table("embeddings.visual")
    assert back["vector"].iloc[1] is pd.NA  # what every reader must cope with
    vectors = BlockVectors.from_tables(["a", "b", "c"], {"visual": back})
    assert vectors.present["visual"].tolist() == [True, False, True]
    case_base = pd.DataFrame({"creative_id": ["a", "b", "c"], "visual": back["vector"],
                              "available_date": pd.to_datetime(["2026-01-01"] * 3)})
    arrays = case_arrays(case_base)
    assert arrays.presence.sum() == 2


def test_shares_never_leave_zero_to_one_by_round_off():
    # Summing a part and its whole in different orders can put part/whole a few ulps above 1.
    whole = pd.Series([0.1 + 0.2, 3.0])
    part = pd.Series([0.30000000000000004 + 1e-16, 3.0 + 4e-15])
    assert (metrics.share(part, whole) <= 1.0).all() and (metrics.share(part, whole) >= 0.0).all()
    assert np.isnan(metrics.share(1.0, 0.0))
