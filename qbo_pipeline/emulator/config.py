"""The emulator's settings: the company it starts with, how its OAuth server behaves, and
where it sends webhook deliveries."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from qbo_pipeline.quickbooks.realms import is_realm_id

ROTATION_POLICIES = ("intuit", "strict")
# Statuses the token endpoint can be told to fail with: the transient ones a client should
# retry. 4xx answers other than 429 mean something else (invalid_grant, invalid_client).
TOKEN_FAILURE_STATUSES = (429, 500, 502, 503, 504)
# What `faults` rates can inject into accounting requests (see emulator/gate.py).
FAULT_KINDS = (
    "429", "500", "502", "503", "504", "timeout", "reset", "truncate", "xml", "fault200",
)  # fmt: skip
# The per-realm limits, each a count of at least 1 (see limits.py).
LIMIT_FIELDS = (
    "requests_per_minute",
    "requests_per_second",
    "max_in_flight",
    "batch_requests_per_minute",
    "realm_batch_requests_per_minute",
)
# Intuit's two webhook body formats: the CloudEvents array, and eventNotifications.
WEBHOOK_FORMATS = ("cloudevents", "legacy")


@dataclass
class EmulatorConfig:
    seed: int = 7
    customers: int = 60
    invoices: int = 150
    # JSON Lines in the format of shared/fixtures/qbo_sandbox_records.jsonl; replaces
    # generated data.
    data: Path | None = None
    realm_id: str = "9341453050298454"
    # Companies served from the start, each with its own generated data (seed + i), limits,
    # tokens and webhooks: realm_id, realm_id + 1, ... With more than one, the consent
    # page picks them in turn, or the one an authorize link's `realm_hint` names.
    realms: int = 1
    # When both are set, any other client credentials get invalid_client.
    client_id: str | None = None
    client_secret: str | None = None
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8726400  # rolling, 101 days
    # "strict": a new refresh token on every refresh, the previous one dead at once.
    # "intuit": the same value for 24 h after it was issued; then a new one, and the
    # previous one keeps working 24 h more. Strict is the default so that tests exercise
    # the harshest reading of Intuit's rules (QBO_API.md §10); the CLI defaults to intuit.
    rotation: str = "strict"
    # Every token endpoint call answers this status (e.g. 503) until the admin API clears it.
    token_endpoint_failure: int | None = None
    # QBO's limits per realm (QBO_API.md §3), enforced unless `limits` is False (the
    # stats still measure them). Each batch item counts as a request; the batch counts
    # are batch requests, per realm and app (client id) and per realm.
    limits: bool = True
    requests_per_minute: int = 500
    requests_per_second: int = 10
    max_in_flight: int = 10
    batch_requests_per_minute: int = 40
    realm_batch_requests_per_minute: int = 120
    # Time QBO takes to answer a page of 1000 rows; smaller answers cost their share,
    # never less than 50 rows' worth; each wait is scaled by uniform [1-j, 1+j].
    latency_ms: float = 0.0
    latency_jitter: float = 0.2
    # Chance per accounting request of each fault kind in FAULT_KINDS, e.g. {"429": 0.02}.
    faults: dict[str, float] = field(default_factory=dict)
    fault_seed: int | None = None  # None: derived from `seed`
    # How long a `timeout` fault holds a request before dropping its connection.
    timeout_seconds: float = 5.0
    # Changes per second made by the background churn task (0: none).
    churn: float = 0.0
    # Where signed webhook deliveries go (None: no webhooks, and no changes gathered).
    webhook_url: str | None = None
    webhook_format: str = "cloudevents"
    # The app's verifier token, the HMAC key of `intuit-signature`; required with a URL.
    webhook_verifier: str | None = None
    # Multiplies Intuit's retry waits (10 s, 20 s, ... 6 h): 0.001 makes the first 10 ms.
    webhook_retry_scale: float = 1.0
    # How long changes are gathered into one delivery after the first of them.
    webhook_batch_seconds: float = 0.5

    def __post_init__(self) -> None:
        check_realm_id(self.realm_id)
        if isinstance(self.realms, bool) or not isinstance(self.realms, int) or self.realms < 1:
            raise ValueError(f"realms must be a whole number of at least 1, not {self.realms!r}")
        if self.realms > 1 and self.data is not None:
            raise ValueError("realms above 1 generate their companies; replayed data is one")
        if self.rotation not in ROTATION_POLICIES:
            raise ValueError(
                f"rotation must be one of {', '.join(ROTATION_POLICIES)}, not {self.rotation!r}"
            )
        if self.customers < 0 or self.invoices < 0:
            raise ValueError("customers and invoices must not be negative")
        if self.invoices and not self.customers and self.data is None:
            raise ValueError("invoices need at least one customer to bill")
        if self.access_token_ttl <= 0 or self.refresh_token_ttl <= 0:
            raise ValueError("access_token_ttl and refresh_token_ttl must be positive seconds")
        failure = self.token_endpoint_failure
        if failure is not None and failure not in TOKEN_FAILURE_STATUSES:
            raise ValueError(
                "token_endpoint_failure must be one of "
                f"{', '.join(map(str, TOKEN_FAILURE_STATUSES))}, not {failure!r}"
            )
        if self.data is not None:
            self.data = Path(self.data)
        self._check_performance()

    def _check_performance(self) -> None:
        for name in LIMIT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if self.latency_ms < 0 or not 0 <= self.latency_jitter <= 1:
            raise ValueError("latency_ms must not be negative and latency_jitter is in [0, 1]")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if self.churn < 0:
            raise ValueError("churn must not be negative changes per second")
        self.faults = check_fault_rates(self.faults)
        check_webhooks(
            self.webhook_url,
            self.webhook_format,
            self.webhook_verifier,
            self.webhook_retry_scale,
            self.webhook_batch_seconds,
        )


def realm_ids(config: EmulatorConfig) -> list[str]:
    """The companies the emulator starts with: `realm_id` and the next `realms - 1` ids."""
    first = int(config.realm_id)
    return [config.realm_id] + [str(first + i) for i in range(1, config.realms)]


def check_realm_id(value: object) -> str:
    """The pipeline's rule (digits only): no company is served that it could not connect."""
    if not is_realm_id(value):
        raise ValueError("realm_id must be 1 to 32 digits, as Intuit's company ids are")
    assert isinstance(value, str)
    return value


def check_webhooks(
    url: str | None, form: str, verifier: str | None, retry_scale: float, batch_seconds: float
) -> None:
    """Webhook settings as the config and the admin API take them; raises naming the bad one."""
    if form not in WEBHOOK_FORMATS:
        raise ValueError(
            f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}, not {form!r}"
        )
    if not _finite(retry_scale) or retry_scale <= 0:
        raise ValueError("webhook_retry_scale must be a positive factor, e.g. 0.001 for tests")
    if not _finite(batch_seconds) or not 0 <= batch_seconds <= 3600:
        raise ValueError("webhook_batch_seconds must be between 0 and 3600 seconds")
    if url is None:
        return
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", url):
        raise ValueError(f"webhook_url must be an http:// or https:// URL, not {url!r}")
    if not isinstance(verifier, str) or not verifier:
        raise ValueError(
            "webhook_url needs webhook_verifier, the token each delivery is signed with"
        )


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_fault_rates(rates: dict[str, float]) -> dict[str, float]:
    """Rates by kind, validated: known kinds, each in [0, 1], together at most 1."""
    if not isinstance(rates, dict):
        raise ValueError("fault rates must be a mapping of kind to probability")
    checked: dict[str, float] = {}
    for kind, rate in rates.items():
        if str(kind) not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"fault rate for {kind} must be a number between 0 and 1")
        checked[str(kind)] = float(rate)
    if sum(checked.values()) > 1:
        raise ValueError("fault rates add up to more than 1")
    return checked


def parse_fault_rates(text: str) -> dict[str, float]:
    """`429=0.02,500=0.01,timeout=0.005` as the CLI takes it."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, value = item.partition("=")
        try:
            rates[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"fault rate {item!r} is not KIND=PROBABILITY") from None
        if not sep:
            raise ValueError(f"fault rate {item!r} is not KIND=PROBABILITY")
    return check_fault_rates(rates)
