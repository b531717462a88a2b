"""Benchmarks: `python -m bench` starts its own stack and prints a table."""
