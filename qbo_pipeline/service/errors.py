"""Failures turned into answers: a status and one line saying what went wrong and what to do.

Known failures (a bad request, an unknown realm, a grant Intuit refused) get their own
4xx/5xx and their own message, which the layers below keep free of tokens. Anything else
is a 500 with a generic line; its details go to the log only, never to the client.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qbo_pipeline.companies import (
    AlreadyConnected,
    CodeRejected,
    RefreshTokenRejected,
    WrongCompany,
)
from qbo_pipeline.errors import BadRequest, ConfigurationError, PipelineError, is_transient
from qbo_pipeline.quickbooks.faults import QuickBooksError
from qbo_pipeline.quickbooks.identity import AccessTokenRejected, RealmMismatch
from qbo_pipeline.quickbooks.oauth import IdTokenRejected
from qbo_pipeline.vault.errors import ReauthorizationRequired, UnknownRealm
from qbo_pipeline.vault.oauth_states import InvalidState

log = logging.getLogger(__name__)

GENERIC = "internal error; the service log has the details"
NO_STORE = {"Cache-Control": "no-store"}


class BodyTooLarge(BadRequest):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes; send only the documented fields")


class SlowBody(BadRequest):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the body did not arrive within {seconds:g} s; send it at once")


# First match wins, so subclasses come before their bases. Whatever waiting can fix
# (a busy token store, Intuit down) is a 503 before any of these.
_KNOWN: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    (BodyTooLarge, 413),
    (SlowBody, 408),
    (
        (
            InvalidState,
            BadRequest,
            CodeRejected,
            RealmMismatch,
            IdTokenRejected,
            WrongCompany,
            AccessTokenRejected,
        ),
        400,
    ),
    (UnknownRealm, 404),
    ((ReauthorizationRequired, RefreshTokenRejected, AlreadyConnected), 409),
    (ConfigurationError, 503),
    (QuickBooksError, 502),
)

Handler = Callable[[Request], Awaitable[Response]]


def classify(error: Exception) -> tuple[int, str]:
    """The HTTP status and the one-line message a client may see for `error`."""
    if not isinstance(error, PipelineError):
        return 500, GENERIC
    message = " ".join(str(error).split()) or type(error).__name__
    if is_transient(error):
        return 503, message
    for kinds, status in _KNOWN:
        if isinstance(error, kinds):
            return status, message
    return 500, message


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
