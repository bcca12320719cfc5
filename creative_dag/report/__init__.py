"""Reports made for people (docs/report.md): the self-contained HTML report of the marts.

Pure Python on DataFrames, no Dagster: `creative_dag/assets/html_report.py` reads the warehouse and
writes the file.
"""

from creative_dag.report.html import (
    ReportPage,
    ReportParams,
    ReportTables,
    build_report,
    thumbnail_data_uri,
)

__all__ = ["ReportPage", "ReportParams", "ReportTables", "build_report", "thumbnail_data_uri"]
