"""Intuit's OAuth 2.0 client: authorize URL, code exchange, refresh, revoke, and id_tokens.

Endpoints come from the discovery document, as Intuit's platform requirements ask, so
pointing `discovery_url` at the emulator moves the whole flow there. Token values never
appear in an exception or a repr.

A refresh, retries included, ends within `REFRESH_DEADLINE`: the vault holds a realm's
lease while it runs, and the lease must outlast it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from qbo_pipeline.errors import ConfigurationError, is_transient
from qbo_pipeline.quickbooks.faults import (
    QuickBooksError,
    QuickBooksUnreachable,
    oauth_error_from_response,
)

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# openid makes Intuit add an id_token naming the company (realmid) the user chose.
SCOPES = (ACCOUNTING_SCOPE, "openid")
DISCOVERY_URLS = {
    "sandbox": "https://developer.intuit.com/.well-known/openid_sandbox_configuration",
    "production": "https://developer.intuit.com/.well-known/openid_configuration",
}
REQUEST_TIMEOUT = 10.0  # seconds for each call to Intuit's OAuth server
REFRESH_DEADLINE = 45.0  # seconds a refresh may take, retries included
# Lifetimes Intuit reports are at most 5 years (the hard expiry); far more is garbage.
_LONGEST_LIFETIME = 10 * 366 * 86400
_CLOCK_SKEW = 300  # seconds of leeway on an id_token's iat and exp


class IdTokenRejected(QuickBooksError):
    """The id_token that came with a grant does not verify: not signed by Intuit for us."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the id_token Intuit sent with the grant does not verify ({reason}); nothing was "
            "saved: authorize again, and check QUICKBOOKS_DISCOVERY_URL and QUICKBOOKS_CLIENT_ID"
        )


@dataclass(frozen=True)
class TokenSet:
    """One token endpoint answer, with lifetimes turned into instants at receipt.

    Instants are whole seconds: they are shown, stored and compared, and a fraction of a
    second of network time should not make two answers about one expiry differ.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_hard_expires_at: datetime | None = None
    realm_id: str | None = None
    issued_at: datetime | None = None
    id_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_response(
        cls, body: dict, *, received_at: datetime, realm_id: str | None = None
    ) -> TokenSet:
        received_at = received_at.replace(microsecond=0)

        def after(key: str) -> datetime | None:
            seconds = body.get(key)
            if seconds is None:
                return None
            if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
                raise QuickBooksError(f"Intuit's token response holds a non-number {key}")
            try:
                whole = int(seconds)
            except ValueError:
                raise QuickBooksError(f"Intuit's token response holds a non-number {key}") from None
            if not 0 <= whole <= _LONGEST_LIFETIME:
                raise QuickBooksError(f"Intuit's token response holds an impossible {key}")
            return received_at + timedelta(seconds=whole)

        missing = [key for key in ("access_token", "refresh_token") if not body.get(key)]
        if missing:
            raise QuickBooksError(f"Intuit's token response lacks {', '.join(missing)}")
        id_token = body.get("id_token")
        return cls(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            access_expires_at=after("expires_in") or received_at + timedelta(hours=1),
            refresh_expires_at=after("x_refresh_token_expires_in"),
            refresh_hard_expires_at=after("x_refresh_token_hard_expires_in"),
            realm_id=realm_id,
            issued_at=received_at,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
        )


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str
    issuer: str | None = None
    jwks_uri: str | None = None


_retry_transient = retry(
    retry=retry_if_exception(is_transient),
    wait=wait_exponential_jitter(multiplier=0.5, max=8),
    stop=stop_after_attempt(5) | stop_before_delay(REFRESH_DEADLINE - REQUEST_TIMEOUT),
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
        timeout: float = REQUEST_TIMEOUT,
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
        self._signing_keys: jwt.PyJWKSet | None = None
        self._keys_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuthClient(discovery_url={self.discovery_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OAuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = self._discover()
        return self._endpoints

    @_retry_transient
    def _discover(self) -> Endpoints:
        document = self._get_json(
            self.discovery_url, "the OAuth discovery document (QUICKBOOKS_DISCOVERY_URL)"
        )
        try:
            return Endpoints(
                authorization=document["authorization_endpoint"],
                token=document["token_endpoint"],
                revocation=document["revocation_endpoint"],
                issuer=document.get("issuer"),
                jwks_uri=document.get("jwks_uri"),
            )
        except KeyError as missing:
            raise QuickBooksError(
                f"the discovery document at {self.discovery_url} lacks {missing}; check "
                "QUICKBOOKS_DISCOVERY_URL"
            ) from None

    def authorization_url(self, state: str, scopes: tuple[str, ...] = SCOPES) -> str:
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

    @_retry_transient
    def revoke(self, token: str) -> None:
        """Revoke a refresh or access token, which disconnects the app from the company."""
        response = self._post(
            self.endpoints.revocation,
            "Intuit's revocation endpoint",
            json={"token": token},
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            raise oauth_error_from_response(response)

    def id_token_realm(self, id_token: str) -> str:
        """The company (realmid) an id_token names, once it verifies: signed with a key of
        the discovery document's JWKS (RS256), issued by its issuer, for this app, live."""
        endpoints = self.endpoints
        if not endpoints.jwks_uri or not endpoints.issuer:
            raise IdTokenRejected("the discovery document names no jwks_uri or issuer")
        try:
            key = self._signing_key(jwt.get_unverified_header(id_token).get("kid"))
            claims = jwt.decode(
                id_token,
                key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=endpoints.issuer,
                leeway=_CLOCK_SKEW,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            raise IdTokenRejected(" ".join(str(error).split()) or type(error).__name__) from None
        realm = claims.get("realmid")
        if not isinstance(realm, str) or not realm:
            raise IdTokenRejected("it names no realmid")
        return realm

    def _signing_key(self, kid: object) -> Any:
        """The JWKS key with this kid; the set is fetched again once for an unknown kid,
        as Intuit rotates its signing keys."""
        with self._keys_lock:
            for attempt in range(2):
                if self._signing_keys is None or attempt:
                    self._signing_keys = self._fetch_keys()
                for key in self._signing_keys.keys:
                    if key.key_id == kid:
                        return key.key
        raise jwt.InvalidTokenError(f"no key {kid!r} in the issuer's JWKS")

    @_retry_transient
    def _fetch_keys(self) -> jwt.PyJWKSet:
        uri = self.endpoints.jwks_uri
        assert uri is not None
        document = self._get_json(uri, "Intuit's signing keys (jwks_uri)")
        try:
            return jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWKSetError as error:
            raise QuickBooksError(f"the JWKS at {uri} holds no usable key: {error}") from None

    def _token_request(self, form: dict[str, str], *, realm_id: str | None) -> TokenSet:
        received_at = datetime.now(UTC)
        response = self._post(
            self.endpoints.token,
            "Intuit's token endpoint",
            data=form,
            headers={
                "Accept": "application/json",
                "x-include-refresh-token-hard-expires-in": "true",
            },
        )
        if response.status_code != 200:
            raise oauth_error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise QuickBooksError(
                "Intuit's token endpoint answered 200 without a JSON object",
                intuit_tid=response.headers.get("intuit_tid"),
                transient=True,
            )
        return TokenSet.from_response(body, received_at=received_at, realm_id=realm_id)

    def _post(self, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.post(url, auth=self._auth, **kwargs)
        except httpx.TransportError as error:
            raise QuickBooksUnreachable(what, error) from error

    def _get_json(self, url: str, what: str) -> dict:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.TransportError as error:
            raise QuickBooksUnreachable(f"{what} at {url}", error) from error
        if response.status_code != 200:
            raise QuickBooksError(
                f"{what} at {url} answered HTTP {response.status_code}",
                transient=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise QuickBooksError(f"{what} at {url} is not a JSON object")
        return document
