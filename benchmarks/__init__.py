"""Timing scripts and the report generator (BENCHMARKS.md). Not part of the funcnn package."""
