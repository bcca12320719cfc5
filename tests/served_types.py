"""What a BI driver needs of the serving copy's column types (used by the whole-graph tests)."""

from __future__ import annotations

from pathlib import Path

import duckdb

# a day, by name: `date`, `*_date`, `*_through`, `decided_at`, `week_start`
_DAY_COLUMNS = ("column_name = 'date' OR column_name LIKE '%\\_date' ESCAPE '\\' OR column_name LIKE '%\\_through' "
                "ESCAPE '\\' OR column_name IN ('decided_at', 'week_start')")


def badly_typed_columns(database: Path) -> list[str]:
    """`schema.table.column type` of every served column typed "NULL" (a BI driver cannot map it) or named as a
    day but not a DATE (a filter on dates must not meet a TIMESTAMP or text in one table)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute("SELECT table_schema || '.' || table_name || '.' || column_name, data_type "
                           "FROM information_schema.columns WHERE data_type = '\"NULL\"' OR "
                           f"(({_DAY_COLUMNS}) AND data_type <> 'DATE')").fetchall()
    finally:
        con.close()
    return [f"{column} {kind}" for column, kind in rows]


def day_columns(database: Path) -> int:
    """How many served columns are named as a day (so a test can see that its check looked at some)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM information_schema.columns WHERE {_DAY_COLUMNS}").fetchone()[0]
    finally:
        con.close()
