"""Single-flight token refresh: one refresh per realm at a time, across threads and processes.

Intuit rotates refresh tokens and rejects a superseded one with ``invalid_grant``, so two
workers refreshing the same grant at once is the classic way to lose a connection. Here a
refresh happens only under the realm's lease (see store.py), the stored tokens are
re-read after taking it (another worker may have refreshed meanwhile, in which case we
use its result), and the new tokens are saved before the lease is given back. A
per-process lock in front of it keeps threads of one process from polling the lease.

No database lock is held while Intuit answers, so a hung token endpoint delays only its
own realm, and only for the refresh's deadline (`oauth.REFRESH_DEADLINE`).

A refresh counts against the realm's request limits like the run's API calls, so it
takes a slot of the realm's limiter when one is given. It takes it before the lease, so
waiting for the slot never eats into the lease a refresh must finish within, and after
the per-process lock, so at most one thread of a process holds a slot while it waits.

Once Intuit has rotated the refresh token the old one may be dead, so saving the new one
is retried in fresh transactions; if that still fails, the failure is logged with
fingerprints and recorded as an event (which alerts), never lost silently.

``invalid_grant`` is final: the connection becomes ``needs_reauth`` and every later call
raises `ReauthorizationRequired` without contacting Intuit, until someone reconnects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

from tenacity import Retrying, stop_after_attempt, wait_exponential

from qbo_pipeline.quickbooks.faults import InvalidGrant, QuickBooksError
from qbo_pipeline.quickbooks.limiter import RealmLimiter
from qbo_pipeline.quickbooks.oauth import OAuthClient, TokenSet
from qbo_pipeline.vault.errors import ReauthorizationRequired, RotatedTokenNotSaved
from qbo_pipeline.vault.store import (
    ConnectionStatus,
    ConnectionStore,
    DecryptedTokens,
    fingerprint,
)

log = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)
SAVE_ATTEMPTS = 4  # tries to store rotated tokens, in fresh transactions, about 3 s in all


class TokenProvider:
    """Hands out a valid access token for a realm, refreshing it only when it must."""

    def __init__(
        self,
        store: ConnectionStore,
        oauth: OAuthClient,
        *,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
        limiter: Callable[[str], RealmLimiter] | None = None,
    ) -> None:
        """`limiter`: the realm's request limiter by realm id (`Runtime.limiter`)."""
        self.store = store
        self.oauth = oauth
        self.refresh_margin = refresh_margin
        self._limiter = limiter
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
        """An access token valid for at least the refresh margin; refreshes if needed."""
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
        connection is left exactly as it was (no event, no alert) and the `InvalidGrant`
        is raised as is.
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
        self._discover(realm_id)
        with self._realm_lock(realm_id), self._slot(realm_id):
            held = self.store.lease(realm_id, satisfied=done)
            if isinstance(held, DecryptedTokens):  # another worker's refresh did it
                return held.access_token
            try:
                current = self.store.decrypt(realm_id)
                callers_own = refresh_token is not None and refresh_token != current.refresh_token
                if not callers_own:
                    _raise_unless_active(current)
                if done(current):
                    return current.access_token
                return self._refresh_leased(current, refresh_token if callers_own else None)
            finally:
                self.store.release(held)

    def _slot(self, realm_id: str) -> AbstractContextManager[None]:
        return self._limiter(realm_id).slot() if self._limiter is not None else nullcontext()

    def _discover(self, realm_id: str) -> None:
        """Read Intuit's discovery document before taking the lease, which then covers only
        the token call; its failure is a refresh failure like any other."""
        try:
            self.oauth.endpoints  # noqa: B018 - fetched once, then cached
        except QuickBooksError as error:
            self.store.record_refresh_failure(realm_id, str(error))
            raise

    def _refresh_leased(self, current: DecryptedTokens, callers_own: str | None) -> str:
        realm_id = current.realm_id
        used = callers_own or current.refresh_token
        try:
            tokens = self.oauth.refresh(used, realm_id)
        except InvalidGrant as error:
            if callers_own is not None:
                raise
            self.store.mark_needs_reauth(realm_id, str(error), read=current)
            log.error("token refresh for realm %s: invalid_grant, needs reauth", realm_id)
            raise ReauthorizationRequired(realm_id, "invalid_grant") from error
        except QuickBooksError as error:
            self.store.record_refresh_failure(realm_id, str(error))
            log.error("token refresh for realm %s failed: %s", realm_id, error)
            raise
        self._save_rotated(current, tokens, used)
        return tokens.access_token

    def _save_rotated(self, current: DecryptedTokens, tokens: TokenSet, used: str) -> None:
        """Store what Intuit returned, trying again in fresh transactions; only then log
        success. A store that keeps failing is logged, recorded and raised."""
        realm_id = current.realm_id
        change = f"{fingerprint(used)} -> {fingerprint(tokens.refresh_token)}"
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(SAVE_ATTEMPTS),
                wait=wait_exponential(multiplier=0.25, max=2),
                reraise=True,
            ):
                with attempt:
                    saved = self.store.save_refreshed(current, tokens, used_refresh_token=used)
        except Exception as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            log.error(
                "refreshed realm %s at Intuit (refresh token %s) but could not save the new "
                "tokens after %d attempts: %s",
                realm_id,
                change,
                SAVE_ATTEMPTS,
                reason,
            )
            lost = RotatedTokenNotSaved(realm_id, change, reason)
            self._record_lost(realm_id, str(lost))
            raise lost from error
        if not saved:
            log.warning(
                "refreshed realm %s (refresh token %s), but the connection was replaced "
                "meanwhile (reconnected); kept the new connection, not this refresh's tokens",
                realm_id,
                change,
            )
            return
        log.info("refreshed the QuickBooks tokens of realm %s (refresh token %s)", realm_id, change)

    def _record_lost(self, realm_id: str, detail: str) -> None:
        try:
            self.store.record_refresh_failure(realm_id, detail)
        except Exception:
            log.critical(
                "could not record the failure either; realm %s may need reconnecting", realm_id
            )

    def _realm_lock(self, realm_id: str) -> threading.Lock:
        with self._realm_locks_guard:
            return self._realm_locks.setdefault(realm_id, threading.Lock())


def _raise_unless_active(tokens: DecryptedTokens) -> None:
    if tokens.status is ConnectionStatus.REVOKED:
        raise ReauthorizationRequired(tokens.realm_id, "revoked")
    if tokens.status is ConnectionStatus.NEEDS_REAUTH:
        raise ReauthorizationRequired(tokens.realm_id, "invalid_grant")
