"""Benchmarks against baselines; ``python -m bench.run_all`` writes docs/BENCHMARKS.md."""
