"""The emulator's whole in-memory state: companies, tokens, clock, counters, faults.

Handlers run on one event loop and never await while changing it, so no locks.
"""

from __future__ import annotations

import hmac
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.tokens import TokenAuthority


class Clock:
    """Wall time plus an offset that tests can advance, so 24-hour rules run in seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class InjectedFaults:
    """The next `remaining` accounting requests fail with `status`."""

    status: int = 0
    remaining: int = 0
    shape: str = "json"

    def take(self) -> tuple[int, str] | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return self.status, self.shape

    def clear(self) -> None:
        self.remaining = 0


@dataclass
class TokenEndpointFailures:
    """Token endpoint calls that fail on purpose with `status`.

    `remaining` counts the calls left to fail; None means every call until cleared (the
    `token_endpoint_failure` setting, or the admin API without a count).
    """

    status: int | None = None
    remaining: int | None = None

    def take(self) -> int | None:
        if self.status is None:
            return None
        if self.remaining is not None:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
        return self.status

    def set(self, status: int, count: int | None) -> None:
        self.status, self.remaining = status, count

    def clear(self) -> None:
        self.status, self.remaining = None, None


@dataclass
class Stats:
    """Counters tests read through /_emulator/stats to see exactly what reached QBO."""

    requests: Counter[str] = field(default_factory=Counter)  # per realm
    statuses: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    token_calls: int = 0
    token_calls_by_grant: Counter[str] = field(default_factory=Counter)  # every call
    grants: Counter[str] = field(default_factory=Counter)  # successful calls
    token_errors: Counter[str] = field(default_factory=Counter)  # refusals, not injected
    token_failures_injected: int = 0

    def record_request(self, realm_id: str, status: int) -> None:
        self.requests[realm_id] += 1
        self.statuses[realm_id][str(status)] += 1

    def as_json(self) -> dict:
        return {
            "realms": {
                realm: {"requests": count, "by_status": dict(self.statuses[realm])}
                for realm, count in self.requests.items()
            },
            "token_endpoint": {
                "calls": self.token_calls,
                "calls_by_grant_type": dict(self.token_calls_by_grant),
                "grants": dict(self.grants),
                "refresh_successes": self.grants["refresh_token"],
                "invalid_grant": self.token_errors["invalid_grant"],
                "errors": dict(self.token_errors),
                "failures_injected": self.token_failures_injected,
            },
        }


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.tokens = TokenAuthority(
            access_ttl=config.access_token_ttl,
            refresh_ttl=config.refresh_token_ttl,
            rotation=config.rotation,
        )
        self.companies: dict[str, Company] = {config.realm_id: _build_company(config)}
        self.faults = InjectedFaults()
        self.token_failures = TokenEndpointFailures(config.token_endpoint_failure)
        self.stats = Stats()

    @property
    def company(self) -> Company:
        """The company the authorization endpoint connects."""
        return self.companies[self.config.realm_id]

    def client_allowed(self, client_id: str, client_secret: str) -> bool:
        expected_id, expected_secret = self.config.client_id, self.config.client_secret
        if expected_id is None or expected_secret is None:
            return bool(client_id)
        return hmac.compare_digest(
            client_id.encode(), expected_id.encode()
        ) and hmac.compare_digest(client_secret.encode(), expected_secret.encode())


def _build_company(config: EmulatorConfig) -> Company:
    if config.data is not None:
        return Company.replayed(config.realm_id, config.data)
    return Company.generated(config.realm_id, config.seed, config.customers, config.invoices)
