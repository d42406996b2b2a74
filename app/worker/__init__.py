"""Celery app and thin tasks. Tasks take ids, call one plain function, decide retry or fail."""
