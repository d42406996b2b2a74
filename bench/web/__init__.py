"""Benchmark of the review UI: server-side render time of a long call page."""
