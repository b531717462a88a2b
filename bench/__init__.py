"""Benchmarks: `python -m bench` starts its own stack and prints a table.

The stack and its measuring tools are here (stack, stats, cpu, query_data, ingest_cpu); the
sections of `python -m bench` are in bench/sections/ (ingest and budgets still here, the modules
others import); `python -m bench.stress` and its scenarios are in bench/stress/."""
