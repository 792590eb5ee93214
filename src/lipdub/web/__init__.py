"""lipdub.web: the FastAPI app (REST API + page) and its SQLite-backed job queue; `create_app` builds it."""

from lipdub.web.app import create_app
from lipdub.web.config import WebSettings

__all__ = ["WebSettings", "create_app"]
