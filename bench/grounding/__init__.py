"""Grounding benchmark: `python -m bench.grounding.run`."""
