"""Benchmarks: they print figures and are not tests (make bench)."""
