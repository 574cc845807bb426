"""The web service of `outbound serve`: one-click unsubscribe links (RFC 8058), health and readiness."""

from app.web.app import create_app

__all__ = ["create_app"]
