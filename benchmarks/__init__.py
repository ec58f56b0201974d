"""Benchmark scripts: speed, memory and realism figures (not tests)."""
