"""The ASGI app of `outbound serve`: one database connection for its lifetime, the routes, the headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from pymongo.errors import PyMongoError

from app.config import SECRET_KEY_MIN_LENGTH, ConfigError, Settings
from app.logging import get_logger
from app.store.client import connect
from app.store.embedded import EmbeddedError
from app.store.schema import ensure_schema
from app.web.admin_routes import admin_router
from app.web.api import OPENAPI_URL, api_router, install_openapi
from app.web.dashboard.routes import dashboard_router
from app.web.health_routes import health_router
from app.web.login_routes import login_router
from app.web.metrics_routes import metrics_router
from app.web.security_headers import SecurityHeaders
from app.web.templating import static_files
from app.web.unsubscribe_routes import unsubscribe_router

SECRET_KEY_NEEDED = (
    f"a random secret of at least {SECRET_KEY_MIN_LENGTH} characters; `outbound serve` needs it, since without it "
    "no unsubscribe link can be verified (use the key the dispatcher signs its links with; make one with: "
    'python3 -c "import secrets; print(secrets.token_urlsafe(32))")'
)


def create_app(settings: Settings, *, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The web service: `/u/{token}` one-click unsubscribe, `/health`, `/ready`; ConfigError without a secret key.

    The app connects to the database when it starts (uvicorn's lifespan), calls `on_ready` once the schema is
    ensured, and closes the connection when it stops; creating it touches nothing.
    """
    secret_key = settings.secret_key
    if not secret_key:
        raise ConfigError("OUTBOUND_SECRET_KEY", "", SECRET_KEY_NEEDED)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                db = await stack.enter_async_context(connect(settings))
                await ensure_schema(db)
            except (PyMongoError, EmbeddedError) as exc:
                get_logger().error("web.start_failed", error=f"{type(exc).__name__}: {exc}")
                raise
            app.state.db = db
            if on_ready is not None:
                on_ready()
            yield

    # No interactive API docs: they would need scripts from elsewhere and this service has nothing to browse.
    app = FastAPI(title="Outbound", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=OPENAPI_URL)
    app.state.settings = settings
    app.add_middleware(SecurityHeaders)
    app.mount("/static", static_files(), name="static")
    app.include_router(unsubscribe_router(secret_key))
    app.include_router(health_router())
    app.include_router(metrics_router())
    app.include_router(admin_router())
    app.include_router(api_router())
    install_openapi(app)
    app.include_router(dashboard_router())
    app.include_router(login_router())
    return app
