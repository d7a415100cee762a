"""The emulator's whole in-memory state: companies, consent, tokens, signing key, clock,
counters, faults, stalls and webhook deliveries.

Handlers run on one event loop and never await while changing it, so no locks (the
limits take one anyway, see limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.config import (
    FAULT_KINDS,
    EmulatorConfig,
    check_fault_rates,
    realm_ids,
)
from qbo_pipeline.emulator.limits import Limits
from qbo_pipeline.emulator.signing import SigningKey
from qbo_pipeline.emulator.tokens import TokenAuthority
from qbo_pipeline.emulator.webhooks import WebhookDispatcher, WebhookSettings


class Clock:
    """Wall time plus an offset that tests can advance, so 24-hour rules run in seconds."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        if self._frozen is not None:
            return self._frozen
        return time.time() + self.offset

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """One instant for everything done in the block, as QBO stamps a bulk import."""
        self._frozen = self.now()
        try:
            yield
        finally:
            self._frozen = None

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


class FaultRates:
    """Faults drawn at random per accounting request, reproducibly from a seed."""

    def __init__(self, rates: dict[str, float], seed: int) -> None:
        self.random = random.Random(seed)
        self.rates: dict[str, float] = {}
        self.set(rates)

    def set(self, rates: dict[str, float]) -> None:
        checked = check_fault_rates(rates)
        # A fixed order keeps one seed's sequence of faults stable whatever the dict order.
        self.rates = {kind: checked[kind] for kind in FAULT_KINDS if checked.get(kind)}

    def draw(self) -> str | None:
        """The fault kind for the next request, or None; one draw per request."""
        if not self.rates:
            return None
        point = self.random.random()
        for kind, rate in self.rates.items():
            if point < rate:
                return kind
            point -= rate
        return None


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


class TokenEndpointStall:
    """Token endpoint requests held before they are answered, as a slow Intuit holds them.

    `realm_id` None holds every request; `seconds` None holds until `release`. A held
    request awaits an event, so the loop, and every other request, goes on meanwhile.
    """

    def __init__(self) -> None:
        self.active = False
        self.realm_id: str | None = None
        self.seconds: float | None = None
        self.held = 0
        self._released: asyncio.Event | None = None

    def set(self, realm_id: str | None, seconds: float | None) -> None:
        self.active, self.realm_id, self.seconds = True, realm_id, seconds

    def covers(self, realm_id: str | None) -> bool:
        return self.active and (self.realm_id is None or realm_id == self.realm_id)

    async def hold(self) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        released, seconds = self._released, self.seconds
        self.held += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), seconds)
        finally:
            self.held -= 1

    def release(self) -> int:
        """Let every held request be answered and hold no more; how many were held."""
        held = self.held
        if self._released is not None:
            self._released.set()
            self._released = None
        self.active, self.realm_id, self.seconds = False, None, None
        return held


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
    token_stalled: int = 0  # requests held by a stall
    throttled: Counter[str] = field(default_factory=Counter)  # 429s per realm
    faults: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    cdc_calls: Counter[str] = field(default_factory=Counter)
    count_queries: Counter[str] = field(default_factory=Counter)  # SELECT COUNT(*) answered
    batch_calls: Counter[str] = field(default_factory=Counter)
    batch_items: Counter[str] = field(default_factory=Counter)
    churn_changes: int = 0

    def record_request(self, realm_id: str) -> None:
        self.requests[realm_id] += 1

    def record_status(self, realm_id: str, status: int | str) -> None:
        """A response's status, or "reset"/"timeout" for a connection dropped unanswered."""
        self.statuses[realm_id][str(status)] += 1
        if status == 429:
            self.throttled[realm_id] += 1

    def as_json(self, limits: Limits | None = None) -> dict:
        return {
            "realms": {realm: self._realm_json(realm, limits) for realm in sorted(self.requests)},
            "token_endpoint": {
                "calls": self.token_calls,
                "calls_by_grant_type": dict(self.token_calls_by_grant),
                "grants": dict(self.grants),
                "refresh_successes": self.grants["refresh_token"],
                "invalid_grant": self.token_errors["invalid_grant"],
                "errors": dict(self.token_errors),
                "failures_injected": self.token_failures_injected,
                "stalled": self.token_stalled,
            },
            "churn_changes": self.churn_changes,
        }

    def _realm_json(self, realm: str, limits: Limits | None) -> dict:
        """`throttled` counts every 429, injected ones too; `throttled_by_reason` only the
        limits' own, with the peaks they saw (limits.py)."""
        return {
            "requests": self.requests[realm],
            "by_status": dict(self.statuses[realm]),
            "throttled": self.throttled[realm],
            **(limits.report(realm) if limits else {}),
            "faults": dict(self.faults[realm]),
            "cdc_calls": self.cdc_calls[realm],
            "count_queries": self.count_queries[realm],
            "batch_calls": self.batch_calls[realm],
            "batch_items": self.batch_items[realm],
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
        self.companies: dict[str, Company] = {
            realm_id: _build_company(config, realm_id, offset)
            for offset, realm_id in enumerate(realm_ids(config))
        }
        # The company the emulated user picks on Intuit's consent page: the admin API's
        # choice; None (several companies and no choice) picks them in turn.
        self.consent_realm: str | None = config.realm_id if config.realms == 1 else None
        self.consents = 0
        self.signing_key = SigningKey()
        self.token_stall = TokenEndpointStall()
        self.faults = InjectedFaults()
        fault_seed = config.seed if config.fault_seed is None else config.fault_seed
        self.fault_rates = FaultRates(config.faults, fault_seed)
        self.limits = Limits.from_config(config)
        self.latency_ms = config.latency_ms
        self.latency_jitter = config.latency_jitter
        self.latency_random = random.Random(fault_seed + 1)
        self.token_failures = TokenEndpointFailures(config.token_endpoint_failure)
        self.stats = Stats()
        self.churn_rate = 0.0
        self.mutation_random = random.Random(config.seed + 29)
        self.churn_task: asyncio.Task[None] | None = None
        settings = WebhookSettings.from_config(config)
        self.webhooks = WebhookDispatcher(settings) if settings else None
        for company in self.companies.values():
            self._wire(company)

    def pick_company(self, hint: str | None) -> str:
        """The company one consent grants: the hinted one, the admin API's choice, or the
        next in turn (KeyError for a hint naming no company)."""
        if hint is not None:
            return self.companies[hint].realm_id
        if self.consent_realm is not None:
            return self.consent_realm
        realms = list(self.companies)
        self.consents += 1
        return realms[(self.consents - 1) % len(realms)]

    def add_company(self, company: Company) -> None:
        self.companies[company.realm_id] = company
        self._wire(company)

    def _wire(self, company: Company) -> None:
        """Report the company's changes to the dispatcher; with webhooks off, to nothing."""
        company.on_change = self.webhooks.gather if self.webhooks is not None else None

    async def set_webhooks(self, settings: WebhookSettings | None) -> None:
        """Start, change or (None) stop webhook deliveries while serving.

        Stopping drops what was gathered and the record, as removing an app's webhook
        subscription would; changing keeps both.
        """
        if settings is None:
            if self.webhooks is not None:
                await self.webhooks.stop()
            self.webhooks = None
        elif self.webhooks is not None:
            self.webhooks.reconfigure(settings)
        else:
            self.webhooks = WebhookDispatcher(settings)
            self.webhooks.start()
        for company in self.companies.values():
            self._wire(company)

    def reset_stats(self) -> None:
        self.stats = Stats()
        self.limits.reset_counters()

    def latency(self, rows: int) -> float:
        """Seconds an answer of `rows` rows takes: a share of a 1000-row page, jittered."""
        if self.latency_ms <= 0:
            return 0.0
        jitter = self.latency_jitter
        factor = self.latency_random.uniform(1 - jitter, 1 + jitter)
        return self.latency_ms / 1000 * max(rows, 50) / 1000 * factor

    @property
    def company(self) -> Company:
        """The company the emulator started with, `config.realm_id`."""
        return self.companies[self.config.realm_id]

    def client_allowed(self, client_id: str, client_secret: str) -> bool:
        expected_id, expected_secret = self.config.client_id, self.config.client_secret
        if expected_id is None or expected_secret is None:
            return bool(client_id)
        return hmac.compare_digest(
            client_id.encode(), expected_id.encode()
        ) and hmac.compare_digest(client_secret.encode(), expected_secret.encode())


def _build_company(config: EmulatorConfig, realm_id: str, offset: int) -> Company:
    if config.data is not None:
        return Company.replayed(realm_id, config.data)
    return Company.generated(realm_id, config.seed + offset, config.customers, config.invoices)
