"""The processing pipeline as plain functions, testable without Celery.

This package never imports `app.worker`, `app.web` or `app.cli`.
"""
