"""Benchmarks: one file per measured path; run_all writes BENCHMARKS.md."""
