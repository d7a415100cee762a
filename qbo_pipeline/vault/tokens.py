"""Single-flight token refresh: one refresh per realm at a time, across threads and processes.

Intuit rotates refresh tokens and rejects a superseded one with ``invalid_grant``, so two
workers refreshing the same grant at once is the classic way to lose a connection. Here a
refresh happens only under the realm's database lock, the stored tokens are re-read after
taking it (another worker may have refreshed meanwhile, in which case we use its result),
and the new tokens are committed before the lock is released. A per-process lock in
front of it keeps threads of one process from queueing on the database.

``invalid_grant`` is final: the connection becomes ``needs_reauth`` and every later call
raises `ReauthorizationRequired` without contacting Intuit, until someone reconnects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import httpx

from qbo_pipeline.quickbooks.faults import InvalidGrant, QuickBooksError
from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline.vault.errors import ReauthorizationRequired
from qbo_pipeline.vault.store import (
    ConnectionStatus,
    ConnectionStore,
    DecryptedTokens,
    LockedConnection,
    fingerprint,
)

log = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)


class TokenProvider:
    """Hands out a valid access token for a realm, refreshing it only when it must."""

    def __init__(
        self,
        store: ConnectionStore,
        oauth: OAuthClient,
        *,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self.store = store
        self.oauth = oauth
        self.refresh_margin = refresh_margin
        self._realm_locks: dict[str, threading.Lock] = {}
        self._realm_locks_guard = threading.Lock()
        # The last tokens read per realm: every API request asks for a token, and reading
        # the store each time would cost a database round trip and a decryption.
        self._cache: dict[str, DecryptedTokens] = {}

    def __repr__(self) -> str:
        return (
            f"TokenProvider(store={self.store!r}, oauth={self.oauth!r}, "
            f"refresh_margin={self.refresh_margin})"
        )

    def access_token(self, realm_id: str) -> str:
        """An access token valid for at least `refresh_margin`; refreshes if needed."""
        cached = self._cache.get(realm_id)
        if cached is not None and self._fresh(cached):
            return cached.access_token
        tokens = self.store.decrypt(realm_id)
        _raise_unless_active(tokens)
        if self._fresh(tokens):
            self._cache[realm_id] = tokens
            return tokens.access_token
        return self._refresh(realm_id, done=self._fresh)

    def force_refresh(self, realm_id: str, stale_access_token: str) -> str:
        """A new access token after QBO answered 401 to `stale_access_token`.

        If another worker already replaced that token, its replacement is returned and
        Intuit is not called.
        """

        def replaced(tokens: DecryptedTokens) -> bool:
            return tokens.access_token != stale_access_token and self._fresh(tokens)

        return self._refresh(realm_id, done=replaced)

    def refresh_now(self, realm_id: str, refresh_token: str | None = None) -> str:
        """Refresh whatever the access token's age, because an operator asked to.

        `refresh_token` is a caller's own copy, used instead of the stored one (e.g. the
        stored one was lost to a race); it may revive a `needs_reauth` connection. Intuit
        refusing the caller's copy proves nothing about the stored grant, so then the
        connection keeps its status and the `InvalidGrant` is raised as is.
        """
        return self._refresh(realm_id, done=lambda _tokens: False, refresh_token=refresh_token)

    def _fresh(self, tokens: DecryptedTokens) -> bool:
        return tokens.access_valid(margin=self.refresh_margin)

    def _refresh(
        self,
        realm_id: str,
        *,
        done: Callable[[DecryptedTokens], bool],
        refresh_token: str | None = None,
    ) -> str:
        self._cache.pop(realm_id, None)
        with self._realm_lock(realm_id):
            failure: Exception | None = None
            with self.store.locked(realm_id) as locked:
                current = locked.tokens()
                callers_own = refresh_token is not None and refresh_token != current.refresh_token
                if not callers_own:
                    _raise_unless_active(current)
                if done(current):
                    return current.access_token
                try:
                    return self._refresh_locked(locked, current, refresh_token)
                except InvalidGrant as error:
                    if callers_own:  # the stored grant is untouched: only note the failure
                        locked.record_refresh_failure(f"the caller's refresh token: {error}")
                        failure = error
                    else:
                        locked.mark_needs_reauth(str(error))
                        failure = ReauthorizationRequired(realm_id, "invalid_grant")
                        failure.__cause__ = error  # keeps Intuit's intuit_tid for support
                        log.error(
                            "token refresh for realm %s: invalid_grant, needs reauth", realm_id
                        )
                except (QuickBooksError, httpx.HTTPError) as error:
                    message = _describe(error)
                    locked.record_refresh_failure(message)
                    failure = error
                    log.error("token refresh for realm %s failed: %s", realm_id, message)
            # The block above has committed the failure's status and event; now report it.
            assert failure is not None
            raise failure

    def _refresh_locked(
        self, locked: LockedConnection, current: DecryptedTokens, refresh_token: str | None
    ) -> str:
        realm_id = locked.connection.realm_id
        used = refresh_token or current.refresh_token
        tokens = self.oauth.refresh(used, realm_id)
        try:
            locked.save_refreshed(tokens, previous_refresh_token=used)
        except Exception:
            # Intuit has rotated the refresh token but we could not store the new one: the
            # old one still works only within Intuit's grace period, if any.
            log.error(
                "refreshed realm %s at Intuit but could not save the new tokens; if later "
                "refreshes fail with invalid_grant, reconnect the company",
                realm_id,
            )
            raise
        log.info(
            "refreshed the QuickBooks tokens of realm %s (refresh token %s -> %s)",
            realm_id,
            fingerprint(used),
            fingerprint(tokens.refresh_token),
        )
        return tokens.access_token

    def _realm_lock(self, realm_id: str) -> threading.Lock:
        with self._realm_locks_guard:
            return self._realm_locks.setdefault(realm_id, threading.Lock())


def _raise_unless_active(tokens: DecryptedTokens) -> None:
    if tokens.status is ConnectionStatus.REVOKED:
        raise ReauthorizationRequired(tokens.realm_id, "revoked")
    if tokens.status is ConnectionStatus.NEEDS_REAUTH:
        raise ReauthorizationRequired(tokens.realm_id, "invalid_grant")


def _describe(error: Exception) -> str:
    """A one-line, token-free description: OAuth errors never echo the request body."""
    if isinstance(error, QuickBooksError):
        return str(error)
    return f"{type(error).__name__} talking to Intuit's token endpoint: {error}"
