"""The service's Starlette application: the auth routes behind the admin bearer check.

    app = create_app(Runtime.from_env())   # or create_app(settings)

Built from a `Runtime` so tests and `qbo-pipeline serve` wire the same parts. Nothing
connects to a database or to Intuit until a request needs it.
"""

from __future__ import annotations

import logging
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbo_pipeline.companies import Companies
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service import auth
from qbo_pipeline.service.security import AdminBearer, require_admin_token
from qbo_pipeline.settings import Settings

log = logging.getLogger("qbo_pipeline.service.access")


class AccessLog:
    """One log line per request: method, path and status, never the query string.

    The callback's query carries the authorization code, and uvicorn's own access log
    would write it out; this one leaves queries out altogether.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            log.info(
                "%s %s %s %.0f ms",
                scope["method"],
                scope["path"],
                status,
                (time.monotonic() - started) * 1000,
            )


def create_app(runtime: Runtime | Settings | None = None) -> Starlette:
    """The application; refuses (SettingsError) when no usable QBO_ADMIN_TOKEN is set."""
    if not isinstance(runtime, Runtime):
        runtime = Runtime(runtime or Settings.from_env())
    admin_token = require_admin_token(runtime.settings.admin_token)
    app = Starlette(
        routes=auth.routes,
        middleware=[
            Middleware(AccessLog),
            Middleware(
                AdminBearer,
                admin_token=admin_token,
                public_paths=frozenset({auth.CALLBACK_PATH}),
            ),
        ],
    )
    app.state.companies = Companies(runtime)
    return app
