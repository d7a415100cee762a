"""Failures turned into answers: a status and one line saying what went wrong and what to do.

Known failures (a bad request, an unknown realm, a grant Intuit refused) get their own
4xx/5xx and their own message, which the layers below keep free of tokens. Anything else
is a 500 with a generic line; its details go to the log only, never to the client.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qbo_pipeline.companies import CodeRejected, RefreshTokenRejected, RequestError
from qbo_pipeline.quickbooks.faults import ConfigurationError, QuickBooksError
from qbo_pipeline.settings import SettingsError
from qbo_pipeline.vault.errors import (
    ReauthorizationRequired,
    RefreshLockTimeout,
    UnknownRealm,
    VaultError,
)
from qbo_pipeline.vault.oauth_states import InvalidState

log = logging.getLogger(__name__)

GENERIC = "internal error; the service log has the details"
NO_STORE = {"Cache-Control": "no-store"}

# First match wins, so subclasses come before their bases.
_KNOWN: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    ((InvalidState, RequestError, CodeRejected), 400),
    (UnknownRealm, 404),
    ((ReauthorizationRequired, RefreshTokenRejected), 409),
    ((RefreshLockTimeout, SettingsError, ConfigurationError), 503),
    (QuickBooksError, 502),
    (VaultError, 500),
)

Handler = Callable[[Request], Awaitable[Response]]


def classify(error: Exception) -> tuple[int, str]:
    """The HTTP status and the one-line message a client may see for `error`."""
    for kinds, status in _KNOWN:
        if isinstance(error, kinds):
            return status, " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, httpx.HTTPError):
        return 502, (
            f"cannot reach Intuit's OAuth server ({type(error).__name__}); check "
            "QUICKBOOKS_DISCOVERY_URL and the network, then retry"
        )
    return 500, GENERIC


def json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


def answers_errors(
    render: Callable[[int, str], Response] = json_error,
) -> Callable[[Handler], Handler]:
    """Wrap an endpoint so every exception becomes `render(status, message)`, never a trace."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                status, message = classify(error)
                if status == 500 and message == GENERIC:
                    # The traceback names code and lines; exception messages in this code
                    # base never carry tokens.
                    log.error(
                        "%s %s failed with %s",
                        request.method,
                        request.url.path,
                        type(error).__name__,
                        exc_info=error,
                    )
                else:
                    log.info("%s %s: %s %s", request.method, request.url.path, status, message)
                return render(status, message)

        return endpoint

    return wrap
