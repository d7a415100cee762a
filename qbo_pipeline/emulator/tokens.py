"""Intuit's OAuth bookkeeping: authorization codes, grants, rotating refresh tokens.

A grant is one company's consent to one app; every refresh and access token belongs to
exactly one grant, so revoking any token ends them all. Tokens are kept as SHA-256
digests; the one plaintext kept is a grant's current refresh token under the "intuit"
policy, because Intuit hands that same value out again for 24 hours.

The rotation policy decides when a refresh issues a new refresh token value and how long
the one it replaces keeps working:

- "strict": a new value on every refresh; the previous one is dead at once.
- "intuit" (QBO_API.md §5, Intuit's docs and staff): a refresh within 24 h of the current
  value's issue returns that same value, whose rolling window keeps counting down (so
  `x_refresh_token_expires_in` falls between such calls, as Intuit's responses show); a
  refresh after that issues a new value with a fresh window, and the previous value keeps
  working for 24 h more.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from dataclasses import dataclass, field

CODE_TTL = 600  # seconds; Intuit's is undocumented, RFC 6749 recommends at most 10 minutes
HARD_LIFETIME = 5 * 365 * 86400  # Intuit's 5-year ceiling on a grant's refresh tokens
DAY = 24 * 3600
# How long a refresh token value is handed out again before a refresh replaces it.
ROTATION_PERIOD = {"intuit": DAY, "strict": 0}
# How long a replaced refresh token value keeps working.
ROTATION_GRACE = {"intuit": DAY, "strict": 0}
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class InvalidGrant(Exception):
    """The code or refresh token cannot be used; the message is the error_description."""


@dataclass
class Grant:
    id: int
    client_id: str
    realm_id: str
    scopes: tuple[str, ...]
    created_at: float
    revoked: bool = False
    # The newest refresh token; not in repr or eq, which would loop back to this grant.
    current_refresh: RefreshToken | None = field(default=None, repr=False, compare=False)

    @property
    def hard_expires_at(self) -> float:
        return self.created_at + HARD_LIFETIME


@dataclass
class RefreshToken:
    grant: Grant
    issued_at: float
    expires_at: float
    superseded_at: float | None = None
    # Kept only while this is the grant's current token and the policy re-issues values.
    value: str | None = field(default=None, repr=False)


@dataclass
class AccessToken:
    grant: Grant
    expires_at: float


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    realm_id: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class Introspection:
    """RFC 7662's answer: whether the token works now, what it is and whose it is."""

    active: bool
    token_type: str | None  # "refresh_token", "access_token", or None when unknown
    realm_id: str | None


@dataclass(frozen=True)
class Issued:
    """A token response's values, handed out once."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int
    hard_expires_in: int
    grant: Grant


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Built at import so no token-shaped literal sits in the source.
_JWE_HEADER = _b64(
    json.dumps({"enc": "A128CBC-HS256", "alg": "dir"}, separators=(",", ":")).encode()
)
_REFRESH_PREFIX = "RT" + str(1)


def new_access_token() -> str:
    """Shaped like Intuit's JWE: header, an empty key segment, IV, ciphertext, tag."""
    parts = (
        _b64(secrets.token_bytes(16)),
        _b64(secrets.token_bytes(420)),
        _b64(secrets.token_bytes(16)),
    )
    return f"{_JWE_HEADER}..{'.'.join(parts)}"


def new_refresh_token() -> str:
    return f"{_REFRESH_PREFIX}-{secrets.randbelow(900) + 100}-H0-{secrets.token_hex(20)}"


class TokenAuthority:
    """Issues and checks codes and tokens against one clock (seconds since the epoch)."""

    def __init__(self, *, access_ttl: int, refresh_ttl: int, rotation: str = "intuit") -> None:
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.period = ROTATION_PERIOD[rotation]
        self.grace = ROTATION_GRACE[rotation]
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._access: dict[str, AccessToken] = {}
        self._grant_ids = itertools.count(1)

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        realm_id: str,
        scopes: tuple[str, ...],
        now: float,
    ) -> str:
        code = f"AB11{secrets.randbelow(10**12):012d}{secrets.token_urlsafe(24)}"
        self._codes[_digest(code)] = AuthorizationCode(
            client_id, redirect_uri, realm_id, scopes, now + CODE_TTL
        )
        return code

    def exchange_code(self, code: str, *, client_id: str, redirect_uri: str, now: float) -> Issued:
        record = self._codes.get(_digest(code))
        if record is None or record.client_id != client_id:
            raise InvalidGrant("Invalid authorization code")
        if record.used:
            raise InvalidGrant("Authorization code has already been used")
        record.used = True
        if now > record.expires_at:
            raise InvalidGrant("Authorization code expired")
        if record.redirect_uri != redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")
        grant = Grant(next(self._grant_ids), client_id, record.realm_id, record.scopes, now)
        return self._issue(grant, now)

    def refresh(self, token: str, *, client_id: str, now: float) -> Issued:
        record = self._refresh.get(_digest(token))
        if record is None or record.grant.client_id != client_id:
            raise InvalidGrant("Incorrect or invalid refresh token")
        refusal = self._refusal(record, now)
        if refusal is not None:
            raise InvalidGrant(refusal)
        return self._issue(record.grant, now)

    def _refusal(self, record: RefreshToken, now: float) -> str | None:
        """Why a known refresh token cannot be used now, as invalid_grant describes it."""
        if record.grant.revoked:
            return "Incorrect or invalid refresh token"
        if now >= record.expires_at or now >= record.grant.hard_expires_at:
            return "Refresh token expired"
        if record.superseded_at is not None and now >= record.superseded_at + self.grace:
            return "Incorrect or invalid refresh token"
        return None

    def _issue(self, grant: Grant, now: float) -> Issued:
        """A new access token, with the grant's current refresh token or its replacement.

        Any live refresh token of the grant (the current one, or a replaced one within its
        grace) gets the same answer: the current value while the policy still re-issues it.
        """
        current = grant.current_refresh
        if current is not None and current.value is not None and self._reusable(current, now):
            refresh_token, record = current.value, current
        else:
            refresh_token, record = self._replace_refresh(grant, current, now)
        access_token = new_access_token()
        self._access[_digest(access_token)] = AccessToken(grant, now + self.access_ttl)
        return Issued(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=self.access_ttl,
            refresh_expires_in=int(record.expires_at - now),
            hard_expires_in=int(grant.hard_expires_at - now),
            grant=grant,
        )

    def _reusable(self, record: RefreshToken, now: float) -> bool:
        return now - record.issued_at < self.period and now < record.expires_at

    def _replace_refresh(
        self, grant: Grant, previous: RefreshToken | None, now: float
    ) -> tuple[str, RefreshToken]:
        if previous is not None:
            previous.superseded_at = now
            previous.value = None
        value = new_refresh_token()
        record = RefreshToken(
            grant,
            issued_at=now,
            expires_at=min(now + self.refresh_ttl, grant.hard_expires_at),
            value=value if self.period else None,
        )
        self._refresh[_digest(value)] = record
        grant.current_refresh = record
        return value, record

    def revoke(self, token: str, *, client_id: str) -> bool:
        """End the grant the token belongs to; False when the token is unknown."""
        digest = _digest(token)
        record = self._refresh.get(digest) or self._access.get(digest)
        if record is None or record.grant.client_id != client_id:
            return False
        record.grant.revoked = True
        return True

    def access(self, token: str, now: float) -> tuple[AccessToken | None, str]:
        """The live access token, or None and the reason QBO's gateway would give."""
        record = self._access.get(_digest(token))
        if record is None or record.grant.revoked:
            return None, "Token invalid"
        if now >= record.expires_at:
            return None, "Token expired"
        return record, ""

    def code_realm(self, code: str) -> str | None:
        record = self._codes.get(_digest(code))
        return record.realm_id if record is not None else None

    def refresh_realm(self, token: str) -> str | None:
        """The realm of the grant the refresh token belongs to, live or not."""
        record = self._refresh.get(_digest(token))
        return record.grant.realm_id if record is not None else None

    def introspect(self, token: str, now: float) -> Introspection:
        """Whether a refresh with it, or an API call with it, would succeed at `now`."""
        refresh = self._refresh.get(_digest(token))
        if refresh is not None:
            active = self._refusal(refresh, now) is None
            return Introspection(active, "refresh_token", refresh.grant.realm_id)
        access = self._access.get(_digest(token))
        if access is not None:
            active = self.access(token, now)[0] is not None
            return Introspection(active, "access_token", access.grant.realm_id)
        return Introspection(False, None, None)

    def expire_access_tokens(self, now: float) -> int:
        for record in self._access.values():
            record.expires_at = min(record.expires_at, now)
        return len(self._access)
