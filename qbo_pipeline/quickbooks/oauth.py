"""Intuit's OAuth 2.0 client: authorize URL, code exchange, refresh and revoke.

Endpoints come from the discovery document, as Intuit's platform requirements ask, so
pointing `discovery_url` at the emulator moves the whole flow there. Token values never
appear in an exception or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from qbo_pipeline.quickbooks.faults import (
    ConfigurationError,
    OAuthError,
    QuickBooksError,
    oauth_error_from_response,
)

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
DISCOVERY_URLS = {
    "sandbox": "https://developer.intuit.com/.well-known/openid_sandbox_configuration",
    "production": "https://developer.intuit.com/.well-known/openid_configuration",
}


@dataclass(frozen=True)
class TokenSet:
    """One token endpoint answer, with lifetimes turned into instants at receipt."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_hard_expires_at: datetime | None = None
    realm_id: str | None = None

    @classmethod
    def from_response(cls, body: dict, *, received_at: datetime, realm_id: str | None = None):
        def after(key: str) -> datetime | None:
            seconds = body.get(key)
            return received_at + timedelta(seconds=int(seconds)) if seconds is not None else None

        missing = [key for key in ("access_token", "refresh_token") if not body.get(key)]
        if missing:
            raise QuickBooksError(f"Intuit's token response lacks {', '.join(missing)}")
        return cls(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            access_expires_at=after("expires_in") or received_at + timedelta(hours=1),
            refresh_expires_at=after("x_refresh_token_expires_in"),
            refresh_hard_expires_at=after("x_refresh_token_hard_expires_in"),
            realm_id=realm_id,
        )


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str


def _transient(error: BaseException) -> bool:
    """Token endpoint failures worth another try: 5xx, 429 and network errors, never 4xx."""
    if isinstance(error, OAuthError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, httpx.TransportError)


_retry_transient = retry(
    retry=retry_if_exception(_transient),
    wait=wait_exponential_jitter(multiplier=0.5, max=8),
    stop=stop_after_attempt(5),
    reraise=True,
)


class OAuthClient:
    """Talks to Intuit's OAuth server (or anything that serves its discovery document)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        discovery_url: str,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigurationError(
                "QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET must be set "
                "(the keys of your Intuit app)"
            )
        self._client_id = client_id
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self.redirect_uri = redirect_uri
        self.discovery_url = discovery_url
        self._http = http or httpx.Client(timeout=timeout)
        self._endpoints: Endpoints | None = None

    def __repr__(self) -> str:
        return f"OAuthClient(discovery_url={self.discovery_url!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = self._discover()
        return self._endpoints

    @_retry_transient
    def _discover(self) -> Endpoints:
        try:
            response = self._http.get(self.discovery_url, headers={"Accept": "application/json"})
        except httpx.TransportError as error:
            raise QuickBooksError(
                f"cannot reach the OAuth discovery document at {self.discovery_url}: {error}; "
                "check QUICKBOOKS_DISCOVERY_URL"
            ) from None
        if response.status_code != 200:
            raise QuickBooksError(
                f"OAuth discovery at {self.discovery_url} answered HTTP {response.status_code}; "
                "check QUICKBOOKS_DISCOVERY_URL"
            )
        document = response.json()
        try:
            return Endpoints(
                authorization=document["authorization_endpoint"],
                token=document["token_endpoint"],
                revocation=document["revocation_endpoint"],
            )
        except KeyError as missing:
            raise QuickBooksError(
                f"the discovery document at {self.discovery_url} lacks {missing}"
            ) from None

    def authorization_url(self, state: str, scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)) -> str:
        query = urlencode(
            {
                "client_id": self._client_id,
                "response_type": "code",
                "scope": " ".join(scopes),
                "redirect_uri": self.redirect_uri,
                "state": state,
            }
        )
        return f"{self.endpoints.authorization}?{query}"

    def exchange_code(self, code: str, realm_id: str) -> TokenSet:
        """Trade an authorization code for tokens. Codes are single-use: never retried."""
        return self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri},
            realm_id=realm_id,
        )

    @_retry_transient
    def refresh(self, refresh_token: str, realm_id: str | None = None) -> TokenSet:
        """New tokens from the latest refresh token; the caller must persist the result."""
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, realm_id=realm_id
        )

    def _token_request(self, form: dict[str, str], *, realm_id: str | None) -> TokenSet:
        received_at = datetime.now(UTC)
        response = self._http.post(
            self.endpoints.token,
            data=form,
            auth=self._auth,
            headers={
                "Accept": "application/json",
                "x-include-refresh-token-hard-expires-in": "true",
            },
        )
        if response.status_code != 200:
            raise oauth_error_from_response(response)
        return TokenSet.from_response(response.json(), received_at=received_at, realm_id=realm_id)

    @_retry_transient
    def revoke(self, token: str) -> None:
        """Revoke a refresh or access token, which disconnects the app from the company."""
        response = self._http.post(
            self.endpoints.revocation,
            json={"token": token},
            auth=self._auth,
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            raise oauth_error_from_response(response)
