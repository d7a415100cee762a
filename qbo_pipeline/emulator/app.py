"""The emulator's ASGI application: OAuth, accounting and admin routes behind QBO's gate.

The gate is the outermost layer, outside Starlette's error middleware, because two of
the faults it injects must never reach a response: a reset drops the TCP connection
unanswered and a timeout holds it and then drops it. Every accounting request passes it
in QBO's order: the realm's limits (429), then injected faults, then the routes, which
authenticate. OAuth and /_emulator/ requests pass untouched, stamped with an intuit_tid.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.types import Message, Receive, Scope, Send

from qbo_pipeline.emulator import admin, api, churn, oauth
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.store import EmulatorState

_ACCOUNTING_PREFIX = "/v3/company/"


def new_intuit_tid() -> str:
    return f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"


def accounting_realm(path: str) -> str | None:
    if not path.startswith(_ACCOUNTING_PREFIX):
        return None
    return path[len(_ACCOUNTING_PREFIX) :].split("/", 1)[0] or None


class QuickBooksGate:
    """Stamps intuit_tid on every response; meters, throttles and faults accounting calls."""

    def __init__(self, app: Starlette, state: EmulatorState) -> None:
        self.app = app
        self.emulator = state

    @property
    def state(self) -> State:
        """The Starlette app's state, so `app.state.emulator` reads as it always did."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        realm = accounting_realm(scope["path"])
        stamped = self._stamped(send, realm)
        if realm is None:
            await self.app(scope, receive, stamped)
            return
        state = self.emulator
        state.stats.record_request(realm)
        batch = scope["path"].rstrip("/").endswith("/batch")
        rejection = await state.limits.enter(realm, state.clock.now(), metered=not batch)
        if rejection is not None:
            await api.throttled(state, rejection)(scope, receive, stamped)
            return
        try:
            await self._answer(scope, receive, send, stamped, realm)
        finally:
            state.limits.leave(realm)

    def _stamped(self, send: Send, realm: str | None) -> Send:
        tid = new_intuit_tid().encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"intuit_tid", tid)]
                if realm:
                    self.emulator.stats.record_status(realm, message["status"])
            await send(message)

        return stamped

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, stamped: Send, realm: str
    ) -> None:
        state = self.emulator
        kind = _one_shot_kind(state) or state.fault_rates.draw()
        if kind is None:
            await self.app(scope, receive, stamped)
            return
        state.stats.faults[realm][kind.partition("-")[0]] += 1
        if kind in ("reset", "timeout"):
            if kind == "timeout":
                await asyncio.sleep(state.config.timeout_seconds)
            state.stats.record_status(realm, kind)
            await drop_connection(send)
        elif kind == "truncate":
            await self.app(scope, receive, truncating(stamped))
        else:
            await api.injected_fault(state, kind)(scope, receive, stamped)


def _one_shot_kind(state: EmulatorState) -> str | None:
    """The admin API's `{"status", "count", "shape"}` faults, as fault kinds."""
    injected = state.faults.take()
    if injected is None:
        return None
    status, shape = injected
    return "429" if status == 429 else f"{status}-{shape}"


async def drop_connection(send: Send) -> None:
    """Close the TCP connection without a byte of response.

    Raising inside the app would not do: uvicorn answers an exception raised before the
    headers with a 500. Its `send` is a method of the request cycle that holds the
    transport, so the gate aborts that; under another server it promises a body it never
    sends, which the client sees as a dropped connection too.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let the server notice the disconnect before the app returns
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
    )
    raise ConnectionAbortedError("emulator dropped the connection on purpose")


def truncating(send: Send) -> Send:
    """A send that delivers the first half of the body, with a Content-Length to match."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def cut(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        body = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return cut


def create_app(config: EmulatorConfig | None = None) -> QuickBooksGate:
    state = EmulatorState(config or EmulatorConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.webhooks is not None:
            state.webhooks.start()
        if state.config.churn > 0:
            churn.start(state, state.config.churn)
        try:
            yield
        finally:
            await churn.stop(state)
            if state.webhooks is not None:
                await state.webhooks.stop()

    app = Starlette(routes=[*oauth.routes, *api.routes, *admin.routes], lifespan=lifespan)
    app.state.emulator = state
    return QuickBooksGate(app, state)
