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
from qbo_pipeline.service import auth, webhooks
from qbo_pipeline.service.security import AdminBearer, require_admin_token
from qbo_pipeline.settings import Settings

log = logging.getLogger("qbo_pipeline.service.access")

# Every answer: no MIME sniffing, no framing (clickjacking), no scripts or loads of any
# kind on the callback page, and no Referer carrying the callback's code elsewhere.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)


def printable(text: str) -> str:
    """`text` with control characters escaped, so a request cannot write log lines."""
    return "".join(
        char if " " <= char < "\x7f" or char > "\x9f" else f"\\x{ord(char):02x}" for char in text
    )


class HttpMiddleware:
    """An ASGI middleware that sees HTTP requests only (lifespan and the rest pass by)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class AccessLog(HttpMiddleware):
    """One log line per request: method, path and status, never the query string.

    The callback's query carries the authorization code, and uvicorn's own access log
    would write it out; this one leaves queries out altogether. The path is logged as
    the client sent it (still percent-encoded) with control characters escaped: decoded,
    a `%0A` in it would start a forged log line.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            raw = scope.get("raw_path")
            path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
            log.info(
                "%s %s %s %.0f ms",
                printable(scope["method"]),
                printable(path),
                status,
                (time.monotonic() - started) * 1000,
            )


class SecurityHeaders(HttpMiddleware):
    """Adds `SECURITY_HEADERS` to every response."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(runtime: Runtime | Settings | None = None) -> Starlette:
    """The application; refuses (ConfigurationError) when no usable QBO_ADMIN_TOKEN is set."""
    if not isinstance(runtime, Runtime):
        runtime = Runtime(runtime or Settings.from_env())
    admin_token = require_admin_token(runtime.settings.admin_token)
    app = Starlette(
        routes=[*auth.routes, *webhooks.routes],
        middleware=[
            Middleware(AccessLog),
            Middleware(SecurityHeaders),
            Middleware(
                AdminBearer,
                admin_token=admin_token,
                public_paths=frozenset({auth.CALLBACK_PATH, webhooks.WEBHOOKS_PATH}),
            ),
        ],
    )
    app.state.companies = Companies(runtime)
    app.state.runtime = runtime
    app.state.webhook_verifier = runtime.settings.webhook_verifier_token
    return app
