"""Pydantic types shared across layers: transcripts, the extraction contract, grounding results."""
