"""Runs the DuckDB queries of docs/scale.md on a Parquet export and prints their answers.

Usage: duckdb_queries.py DOCS EXPORT_DIR [--rows]

The SQL is what the documentation shows, between <!-- duckdb:begin --> and <!-- duckdb:end -->,
with DEST replaced by the export's directory. Each statement after a `-- query: NAME` comment is
printed as `### NAME`, then its rows, tab-separated (NULL as an empty field). With --rows, also
`### schema` (each column's name and type) and `### rows` (every row, sorted).
"""

import sys

import duckdb

docs, export = sys.argv[1], sys.argv[2]
with_rows = "--rows" in sys.argv[3:]
text = open(docs, encoding="utf-8").read()
sql = text.split("<!-- duckdb:begin -->")[1].split("<!-- duckdb:end -->")[0]
sql = sql.replace("```sql", "").replace("```", "").replace("'DEST/", "'" + export + "/")


def show(name, rows):
    print("### " + name)
    for row in rows:
        print("\t".join("" if value is None else str(value) for value in row))


connection = duckdb.connect()
for statement in sql.split(";"):
    lines = [line for line in statement.strip().splitlines()]
    if not lines:
        continue
    name = None
    if lines[0].startswith("-- query: "):
        name = lines[0][len("-- query: "):].strip()
    result = connection.execute(statement)
    if name is not None:
        show(name, result.fetchall())
if with_rows:
    show("schema", connection.execute("SELECT column_name, column_type FROM (DESCRIBE requests)").fetchall())
    show("rows", connection.execute("SELECT * REPLACE (strftime(time, '%Y-%m-%dT%H:%M:%S.%gZ') AS time) FROM requests ORDER BY ALL").fetchall())
