"""The emulator's Starlette application: OAuth, accounting and admin routes on one state."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbo_pipeline.emulator import admin, api, oauth
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.store import EmulatorState

_ACCOUNTING_PREFIX = "/v3/company/"


def new_intuit_tid() -> str:
    return f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"


class IntuitTidMiddleware:
    """Stamps every response with an intuit_tid and counts accounting requests by status."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        realm = (
            path[len(_ACCOUNTING_PREFIX) :].split("/", 1)[0]
            if path.startswith(_ACCOUNTING_PREFIX)
            else None
        )
        tid = new_intuit_tid().encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"intuit_tid", tid)]
                if realm:
                    self.state.stats.record_request(realm, message["status"])
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    state = EmulatorState(config or EmulatorConfig())
    app = Starlette(routes=[*oauth.routes, *api.routes, *admin.routes])
    app.state.emulator = state
    app.add_middleware(IntuitTidMiddleware, state=state)
    return app
