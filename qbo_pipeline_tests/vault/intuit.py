"""The emulator standing in for Intuit in the vault's tests.

Grants for any realm through the real code exchange, and what a test needs to see of
Intuit's side: its token endpoint's counters, whether a token still works, a token
endpoint that stalls, a grant the user revokes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.oauth import OAuthClient, TokenSet

CLIENT_ID = "vault-test-app"
CLIENT_SECRET = "vault-test-secret-not-a-real-one"
REDIRECT_URI = "http://127.0.0.1/callback"
_realm_numbers = itertools.count(913035000000001)


def new_realm() -> str:
    """A realm id no other test of the session uses."""
    return str(next(_realm_numbers))


@dataclass
class Intuit:
    server: EmulatorServer
    http: httpx.Client

    @property
    def discovery_url(self) -> str:
        return self.server.discovery_url

    def oauth(self, *, client_secret: str = CLIENT_SECRET) -> OAuthClient:
        return OAuthClient(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            redirect_uri=REDIRECT_URI,
            discovery_url=self.discovery_url,
        )

    def grant(self, realm_id: str, *, access_expires_in: float = 3600) -> TokenSet:
        """A new grant for `realm_id`, as the code exchange returns it, aged so that its
        access token (an hour's worth, as Intuit's) expires `access_expires_in` seconds
        from now, as far as the store can tell."""
        self._company(realm_id)
        self._admin("POST", "consent", {"realm_id": realm_id})
        with self.oauth() as oauth:
            consent = self.http.get(oauth.authorization_url("vault-test"))
            assert consent.status_code == 302, consent.text
            code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
            tokens = oauth.exchange_code(code, realm_id)
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=access_expires_in)
        return replace(
            tokens, access_expires_at=expires_at, issued_at=expires_at - timedelta(hours=1)
        )

    def token_stats(self) -> dict:
        return self._admin("GET", "stats")["token_endpoint"]

    def refresh_calls(self) -> int:
        return self.token_stats()["calls_by_grant_type"].get("refresh_token", 0)

    def invalid_grants(self) -> int:
        return self.token_stats()["invalid_grant"]

    def is_live(self, token: str) -> bool:
        return self._admin("POST", "oauth/introspect", {"token": token})["active"]

    def stall(self, realm_id: str | None = None, seconds: float | None = None) -> None:
        """Hold token requests (of `realm_id`, or all) for `seconds`, or until `release`."""
        self._admin("POST", "oauth/stall", {"realm_id": realm_id, "seconds": seconds})

    def release(self) -> None:
        self._admin("DELETE", "oauth/stall")

    def revoke(self, refresh_token: str) -> None:
        """The user disconnects the app inside QuickBooks: the grant ends."""
        with self.oauth() as oauth:
            oauth.revoke(refresh_token)

    def _company(self, realm_id: str) -> None:
        listing = self._admin("GET", "companies")
        if realm_id not in {company["realm_id"] for company in listing}:
            body = {"realm_id": realm_id, "customers": 2, "invoices": 2}
            self._admin("POST", "companies", body)

    def _admin(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.http.request(method, f"/_emulator/{path}", json=body)
        response.raise_for_status()
        return response.json()
