"""Which QuickBooks company a grant belongs to, proven before its tokens are stored.

A callback's `realmId` is a query parameter anyone can edit, and tokens pasted into
`set-tokens` come with a realm someone typed. Stored under the wrong realm, a grant
would replace that company's refresh token, which Intuit hands out only once. So the
realm is checked against Intuit itself, both ways where both are available:

- the id_token's `realmid` claim (with the `openid` scope), verified against the keys
  of the discovery document's JWKS;
- a `companyinfo/{realmId}` call with the new access token: QBO answers it only for the
  company the token was issued for (403 otherwise). It costs one API call per connect,
  and it names the company for the page the user sees. It is an accounting request like
  any other, so it takes a slot of the realm's limiter under the process's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from qbo_pipeline.quickbooks.client import FixedToken, QuickBooksClient
from qbo_pipeline.quickbooks.faults import (
    AuthenticationFailed,
    AuthorizationFailed,
    QuickBooksError,
)
from qbo_pipeline.quickbooks.limiter import DEFAULT_LIMITS, Limits
from qbo_pipeline.quickbooks.oauth import OAuthClient, TokenSet


class AccessTokenRejected(QuickBooksError):
    """QBO answered 401 to the access token being checked: expired, revoked or not one."""

    def __init__(self, realm_id: str, intuit_tid: str | None) -> None:
        super().__init__(
            f"QuickBooks rejected the access token for company {realm_id} (401: expired, "
            "revoked or malformed); nothing was saved: send a live access token with its "
            "refresh token, or connect through `qbo-pipeline auth authorize`",
            intuit_tid=intuit_tid,
        )


class RealmMismatch(QuickBooksError):
    """The grant belongs to another company than the one it was to be stored under."""

    def __init__(self, claimed: str, evidence: str) -> None:
        self.realm_id = claimed
        super().__init__(
            f"the tokens are not for QuickBooks company {claimed}: {evidence}; nothing was "
            "saved: connect again and choose that company"
        )


@dataclass(frozen=True)
class Company:
    """A company a grant was proven to open."""

    realm_id: str
    name: str | None


def verify_grant(
    oauth: OAuthClient,
    tokens: TokenSet,
    realm_id: str,
    api_base_url: str,
    limits: Limits = DEFAULT_LIMITS,
) -> Company:
    """The company the grant opens, if it is `realm_id`; RealmMismatch otherwise.

    `limits` are the process's (`Runtime.limits`), so the check shares the realm's limiter
    with every other request to that realm.
    """
    if tokens.id_token is not None:
        named = oauth.id_token_realm(tokens.id_token)
        if named != realm_id:
            raise RealmMismatch(realm_id, f"Intuit's signed id_token names company {named}")
    return Company(realm_id, company_name(tokens.access_token, realm_id, api_base_url, limits))


def company_name(
    access_token: str, realm_id: str, api_base_url: str, limits: Limits = DEFAULT_LIMITS
) -> str | None:
    """The CompanyName QBO answers for `realm_id` with this access token."""
    with QuickBooksClient(
        base_url=api_base_url, realm_id=realm_id, tokens=FixedToken(access_token), limits=limits
    ) as client:
        try:
            info = client.company_info()
        except AuthorizationFailed:
            raise RealmMismatch(
                realm_id, f"QuickBooks refuses them access to company {realm_id} (403)"
            ) from None
        except AuthenticationFailed as error:
            raise AccessTokenRejected(realm_id, error.intuit_tid) from None
    name = info.get("CompanyName")
    return name if isinstance(name, str) and name else None
