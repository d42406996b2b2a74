"""Benchmark of the offline heuristic extraction provider on shared real data."""
