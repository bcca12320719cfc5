"""Reports made for people (docs/report.md): the self-contained HTML report of the marts.

Pure Python on DataFrames, no Dagster: `creative_dag/assets/html_report.py` reads the warehouse and
writes the file.
"""
