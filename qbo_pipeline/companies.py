"""Connecting, refreshing, inspecting and revoking QuickBooks companies: one set of operations.

The HTTP service (`qbo_pipeline.service`) and the `qbo-pipeline auth` commands are two
doors onto the same room, so both call these methods and neither holds logic of its own.
What they return is safe to show anywhere: expiries, statuses and token fingerprints,
never a token. Failures are typed so each door can say what to do (an HTTP status or a
line on stderr).

No grant is stored before Intuit has confirmed which company it opens
(`quickbooks.identity`), and a connect flow that was not started for a company never
replaces that company's active connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from qbo_pipeline.errors import BadRequest, PipelineError
from qbo_pipeline.quickbooks.faults import InvalidGrant, OAuthError, QuickBooksError
from qbo_pipeline.quickbooks.identity import Company, verify_grant
from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.quickbooks.realms import check_realm_id
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.vault.errors import AUTHORIZE_PATH, DecryptionError, UnknownKeyId
from qbo_pipeline.vault.oauth_states import OAuthStates
from qbo_pipeline.vault.store import Connection, ConnectionStatus, fingerprint

log = logging.getLogger(__name__)

# set-tokens takes an access token's remaining life; longer than Intuit ever grants is a typo.
MAX_EXPIRES_IN = 86400


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


class WrongCompany(PipelineError):
    """The company chosen on Intuit's page is not the one the link was issued for."""

    def __init__(self, expected: str, chosen: str) -> None:
        super().__init__(
            f"this link was issued to reconnect QuickBooks company {expected}, but company "
            f"{chosen} was chosen; nothing was saved: start again with `qbo-pipeline auth "
            f"authorize --realm {expected}` and choose company {expected}"
        )


class AlreadyConnected(PipelineError):
    """A plain connect flow reached a company whose connection is active."""

    def __init__(self, realm_id: str) -> None:
        super().__init__(
            f"QuickBooks company {realm_id} is already connected and its connection is "
            "active; nothing was replaced: to replace its grant, start from `qbo-pipeline "
            f"auth authorize --realm {realm_id}` or {AUTHORIZE_PATH}?realmId={realm_id}"
        )


@dataclass(frozen=True)
class Authorization:
    """Where to send the user's browser, and until when the link is good."""

    url: str
    expires_at: datetime
    realm_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"Authorization(expires_at={self.expires_at.isoformat()}, realm_id={self.realm_id!r})"
        )


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

    # --- connecting ----------------------------------------------------------------------

    def begin_authorization(self, realm_id: str | None = None) -> Authorization:
        """An authorize URL carrying a fresh single-use state (stored, hashed, for 10 minutes).

        With `realm_id`, the link reconnects that company and completes for it alone.
        """
        if realm_id is not None:
            check_realm_id(realm_id)
        oauth = self.runtime.oauth  # fails on missing app keys before a state is stored
        issued = self.states.issue(realm_id=realm_id)
        return Authorization(
            url=oauth.authorization_url(issued.value),
            expires_at=issued.expires_at,
            realm_id=realm_id,
        )

    def complete_authorization(
        self, code: str | None, state: str | None, realm_id: str | None
    ) -> dict[str, Any]:
        """The callback: the state is checked and burnt first, so a replay never reaches Intuit.

        The realm in the callback's query is only a claim: the grant is stored once Intuit
        confirms it opens that company, and only for the company a reconnect link named,
        or for a company with no active connection.
        """
        issued = self.states.consume(state)
        if not code or not realm_id:
            raise BadRequest(
                "the callback lacks code or realmId (Intuit sends realmId only with the "
                "accounting scope); start again from the authorize link"
            )
        check_realm_id(realm_id)
        if issued.realm_id is not None and issued.realm_id != realm_id:
            raise WrongCompany(issued.realm_id, realm_id)
        if issued.realm_id is None:
            self._refuse_to_replace(realm_id)
        return self.exchange_code(code, realm_id)

    def exchange_code(self, code: str, realm_id: str) -> dict[str, Any]:
        """Trade an authorization code for tokens, check whose they are, store them."""
        check_realm_id(realm_id)
        try:
            tokens = self.runtime.oauth.exchange_code(code, realm_id)
        except InvalidGrant:
            raise CodeRejected(realm_id) from None
        company = self._verified(tokens, realm_id)
        self.runtime.store.save_tokens(realm_id, tokens)
        log.info("connected QuickBooks realm %s", realm_id)
        return self.status(realm_id) | {"companyName": company.name}

    def set_tokens(
        self, realm_id: str, access_token: str, refresh_token: str, *, expires_in: int = 0
    ) -> dict[str, Any]:
        """Store tokens obtained elsewhere (e.g. Intuit's OAuth playground), once QBO confirms
        they open `realm_id`.

        The access token counts as valid for `expires_in` seconds, and must still work:
        it is the one QBO checks. An expired one is refused rather than refreshed, since
        a refresh would use up the refresh token (Intuit rotates it) before anything is
        known about the company it belongs to.
        """
        check_realm_id(realm_id)
        _check_expires_in(expires_in)
        now = datetime.now(UTC).replace(microsecond=0)
        tokens = TokenSet(
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=None,
            realm_id=realm_id,
            issued_at=now,
        )
        self._verified(tokens, realm_id)
        self.runtime.store.save_tokens(realm_id, tokens)
        return self.status(realm_id)

    def _verified(self, tokens: TokenSet, realm_id: str) -> Company:
        return verify_grant(
            self.runtime.oauth,
            tokens,
            realm_id,
            self.runtime.settings.api_base_url,
            limits=self.runtime.limits,
        )

    def _refuse_to_replace(self, realm_id: str) -> None:
        connection = self.runtime.store.find(realm_id)
        if connection is not None and connection.status is ConnectionStatus.ACTIVE:
            raise AlreadyConnected(realm_id)

    # --- the stored grant ----------------------------------------------------------------

    def refresh(self, realm_id: str, refresh_token: str | None = None) -> dict[str, Any]:
        """Refresh now under the realm's lease, with the caller's refresh token if given.

        The stored grant failing with invalid_grant marks the connection `needs_reauth`
        (raised as `ReauthorizationRequired`); the caller's own token failing does not.
        """
        check_realm_id(realm_id)
        self.runtime.store.get(realm_id)  # UnknownRealm before any call to Intuit
        try:
            self.runtime.tokens.refresh_now(realm_id, refresh_token)
        except InvalidGrant:
            raise RefreshTokenRejected(realm_id) from None
        return self.status(realm_id)

    def revoke(self, realm_id: str) -> dict[str, Any]:
        """Revoke the grant at Intuit, then mark the connection revoked (with an event).

        Under the realm's lease, so no refresh swaps the refresh token in between. A grant
        Intuit no longer knows (400) is as good as revoked; anything else leaves the
        connection as it was, to be tried again.
        """
        check_realm_id(realm_id)
        store = self.runtime.store
        with store.leased(realm_id):
            tokens = store.decrypt(realm_id)
            if tokens.status is not ConnectionStatus.REVOKED:
                store.mark_revoked(realm_id, self._revoke_at_intuit(tokens.refresh_token))
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

    # --- reading ---------------------------------------------------------------------------

    def status(self, realm_id: str) -> dict[str, Any]:
        """The connection's health with token fingerprints; unreadable tokens are reported."""
        check_realm_id(realm_id)
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


def _check_expires_in(expires_in: object) -> None:
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not 0 <= expires_in <= MAX_EXPIRES_IN
    ):
        raise BadRequest(
            f"expires_in must be a whole number of seconds from 0 to {MAX_EXPIRES_IN} (Intuit's "
            "access tokens live 3600)"
        )
