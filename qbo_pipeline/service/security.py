"""The admin bearer check in front of every endpoint except the OAuth callback.

Protecting by default (everything but a short list of public paths) means an endpoint
added later cannot be left open by forgetting a decorator. The token is compared with
`hmac.compare_digest`, so response timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from qbo_pipeline.errors import ConfigurationError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="qbo-pipeline"'}


def bearer_matches(header: str | None, admin_token: str) -> bool:
    """True when an Authorization header carries exactly the admin token as a bearer."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8"), admin_token.encode("utf-8"))


class AdminBearer:
    """ASGI middleware: 401 unless `Authorization: Bearer <QBO_ADMIN_TOKEN>` or a public path."""

    def __init__(self, app: ASGIApp, *, admin_token: str, public_paths: frozenset[str]) -> None:
        if not admin_token:
            raise ValueError("the admin token must not be empty")
        self.app = app
        self._admin_token = admin_token
        self._public_paths = public_paths

    def __repr__(self) -> str:
        return f"AdminBearer(public_paths={sorted(self._public_paths)!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public_paths:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        if not bearer_matches(header, self._admin_token):
            reason = (
                "missing Authorization: Bearer <QBO_ADMIN_TOKEN>"
                if header is None
                else "wrong admin token in Authorization: Bearer"
            )
            await JSONResponse({"error": reason}, status_code=401, headers=CHALLENGE)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


MIN_ADMIN_TOKEN_LENGTH = 16


def require_admin_token(token: str | None) -> str:
    """The admin token, or a one-line ConfigurationError: the service never runs unprotected."""
    hint = "e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    if not token:
        raise ConfigurationError(
            f"QBO_ADMIN_TOKEN is not set; the service refuses to start without it ({hint})"
        )
    if len(token) < MIN_ADMIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"QBO_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; use a long "
            f"random value ({hint})"
        )
    return token
