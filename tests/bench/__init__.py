"""Smoke tests of the benchmark harness (never of speed)."""
