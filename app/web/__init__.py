"""The review web app and JSON API (FastAPI + Jinja2, no build step, no CDN)."""

from app.web.app import create_app

__all__ = ["create_app"]
