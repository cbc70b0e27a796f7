"""The scale benchmark of issue 6: `python -m bench [--small]` (or `make bench`).

`bench.run.run_bench` measures the pages, the aging and its raw-SQL floor, the exports, the
batch money operations, dunning and Tryton on the database Django is connected to, and writes
JSON and Markdown to bench/results/; `bench.__main__` creates, migrates and seeds that database
first. bench/results/README.md says what each measure is and how to read the table.
"""
