"""Benchmarks: `make bench` (or `python -m bench`). Figures, not tests."""
