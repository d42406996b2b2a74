"""Extraction providers. This layer never imports `app.db` or `app.models`."""
