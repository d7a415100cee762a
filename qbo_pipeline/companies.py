"""Connecting, refreshing, inspecting and revoking QuickBooks companies: one set of operations.

The HTTP service (`qbo_pipeline.service`) and the `qbo-pipeline auth` commands are two
doors onto the same room, so both call these methods and neither holds logic of its own.
What they return is safe to show anywhere: expiries, statuses and token fingerprints,
never a token. Failures are typed so each door can say what to do (an HTTP status or a
line on stderr).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from qbo_pipeline.quickbooks.faults import InvalidGrant, OAuthError, QuickBooksError
from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.vault.errors import DecryptionError, UnknownKeyId
from qbo_pipeline.vault.oauth_states import OAuthStates
from qbo_pipeline.vault.store import Connection, ConnectionStatus, fingerprint

log = logging.getLogger(__name__)

_REALM_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class RequestError(ValueError):
    """The request lacks something or garbles it; the message names the field."""


class CodeRejected(QuickBooksError):
    """Intuit refused an authorization code: used, expired, or for another redirect URI."""

    def __init__(self, realm_id: str) -> None:
        super().__init__(
            f"Intuit refused the authorization code for realm {realm_id} (invalid_grant): "
            "codes work once, for a few minutes, with the redirect URI they were issued for; "
            "authorize again"
        )


class RefreshTokenRejected(QuickBooksError):
    """Intuit refused the refresh token a caller sent; the stored connection is unchanged."""

    def __init__(self, realm_id: str) -> None:
        super().__init__(
            f"Intuit refused the refresh token sent for realm {realm_id} (invalid_grant); the "
            "stored connection is unchanged: refresh without a token to use the stored one"
        )


@dataclass(frozen=True)
class Authorization:
    """Where to send the user's browser, and until when the link is good."""

    url: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Authorization(expires_at={self.expires_at.isoformat()})"


def check_realm_id(value: str | None) -> str:
    """The realm id, if it looks like one: it ends up in SQL parameters, logs and messages."""
    if not value:
        raise RequestError("missing field realmId")
    if not _REALM_ID.match(value):
        raise RequestError("realmId must be the company id Intuit sent with the callback")
    return value


def instant(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the form every response and line of output uses."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Companies:
    """The operations on connected companies, over one process's `Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @cached_property
    def states(self) -> OAuthStates:
        return OAuthStates(self.runtime.store.db)

    def begin_authorization(self) -> Authorization:
        """An authorize URL carrying a fresh single-use state (stored, hashed, for 10 minutes)."""
        oauth = self.runtime.oauth  # fails on missing app keys before a state is stored
        issued = self.states.issue()
        return Authorization(
            url=oauth.authorization_url(issued.value), expires_at=issued.expires_at
        )

    def complete_authorization(
        self, code: str | None, state: str | None, realm_id: str | None
    ) -> dict[str, Any]:
        """The callback: the state is checked and burnt first, so a replay never reaches Intuit."""
        self.states.consume(state)
        if not code or not realm_id:
            raise RequestError(
                "the callback lacks code or realmId (Intuit sends realmId only with the "
                "accounting scope); start again from the authorize link"
            )
        return self.exchange_code(code, realm_id)

    def exchange_code(self, code: str, realm_id: str) -> dict[str, Any]:
        """Trade an authorization code for tokens and store them: the company is connected."""
        check_realm_id(realm_id)
        try:
            tokens = self.runtime.oauth.exchange_code(code, realm_id)
        except InvalidGrant:
            raise CodeRejected(realm_id) from None
        self.runtime.store.save_tokens(realm_id, tokens)
        log.info("connected QuickBooks realm %s", realm_id)
        return self.status(realm_id)

    def set_tokens(
        self, realm_id: str, access_token: str, refresh_token: str, *, expires_in: int = 0
    ) -> dict[str, Any]:
        """Store tokens obtained elsewhere (e.g. Intuit's OAuth playground).

        Their lifetimes are unknown, so the access token counts as valid for `expires_in`
        seconds (0: refreshed on first use) and the refresh token's expiry stays unknown
        until the first refresh reports it.
        """
        check_realm_id(realm_id)
        tokens = TokenSet(
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            refresh_expires_at=None,
            realm_id=realm_id,
        )
        self.runtime.store.save_tokens(realm_id, tokens)
        return self.status(realm_id)

    def refresh(self, realm_id: str, refresh_token: str | None = None) -> dict[str, Any]:
        """Refresh now under the realm's lock, with the caller's refresh token if given.

        The stored grant failing with invalid_grant marks the connection `needs_reauth`
        (raised as `ReauthorizationRequired`); the caller's own token failing does not.
        """
        self.runtime.store.get(realm_id)  # UnknownRealm before any call to Intuit
        try:
            self.runtime.tokens.refresh_now(realm_id, refresh_token)
        except InvalidGrant:
            raise RefreshTokenRejected(realm_id) from None
        return self.status(realm_id)

    def revoke(self, realm_id: str) -> dict[str, Any]:
        """Revoke the grant at Intuit, then mark the connection revoked (with an event).

        Under the realm's lock, so no refresh swaps the refresh token in between. A grant
        Intuit no longer knows (400) is as good as revoked; anything else leaves the
        connection as it was, to be tried again.
        """
        with self.runtime.store.locked(realm_id) as locked:
            if locked.connection.status is not ConnectionStatus.REVOKED:
                locked.mark_revoked(self._revoke_at_intuit(locked.tokens().refresh_token))
                log.info("revoked QuickBooks realm %s", realm_id)
        return self.status(realm_id)

    def _revoke_at_intuit(self, refresh_token: str) -> str:
        """Revoke at Intuit; returns the reason to record."""
        try:
            self.runtime.oauth.revoke(refresh_token)
        except OAuthError as error:
            if error.status != 400:
                raise
            return f"revoked by an operator; Intuit no longer knew the grant ({error.error})"
        return "revoked at Intuit by an operator"

    def status(self, realm_id: str) -> dict[str, Any]:
        """The connection's health with token fingerprints; unreadable tokens are reported."""
        connection = self.runtime.store.get(realm_id)
        try:
            tokens = self.runtime.store.decrypt(realm_id)
        except (DecryptionError, UnknownKeyId):
            return self._describe(connection, tokens_readable=False)
        return {
            **self._describe(connection, tokens_readable=True),
            "accessTokenFingerprint": fingerprint(tokens.access_token),
            "refreshTokenFingerprint": fingerprint(tokens.refresh_token),
        }

    def list(self) -> list[dict[str, Any]]:
        """Every connection's metadata (no decryption, so no fingerprints)."""
        return [self._describe(connection) for connection in self.runtime.store.list()]

    def rotate_keys(self) -> int:
        return self.runtime.store.rotate_keys()

    @staticmethod
    def _describe(connection: Connection, *, tokens_readable: bool | None = None) -> dict:
        now = datetime.now(UTC)
        hard = connection.refresh_hard_expires_at
        refresh_dead = any(
            expiry is not None and expiry <= now for expiry in (connection.refresh_expires_at, hard)
        )
        described: dict[str, Any] = {
            "realmId": connection.realm_id,
            "status": connection.status.value,
            "isExpired": connection.expires_at <= now,
            "accessTokenExpiresAt": instant(connection.expires_at),
            "refreshTokenExpiresAt": instant(connection.refresh_expires_at),
            "refreshTokenHardExpiresAt": instant(hard),
            "needsReauth": connection.status is not ConnectionStatus.ACTIVE or refresh_dead,
            "lastRefreshAt": instant(connection.last_refresh_at),
            "lastError": connection.last_error,
            "keyId": connection.key_id,
            "connectedAt": instant(connection.created_at),
            "updatedAt": instant(connection.updated_at),
        }
        if tokens_readable is not None:
            described["tokensReadable"] = tokens_readable
        return described
