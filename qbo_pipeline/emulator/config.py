"""The emulator's settings: which company it serves and how its OAuth server behaves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROTATION_POLICIES = ("intuit", "strict")
# Statuses the token endpoint can be told to fail with: the transient ones a client should
# retry. 4xx answers other than 429 mean something else (invalid_grant, invalid_client).
TOKEN_FAILURE_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class EmulatorConfig:
    seed: int = 7
    customers: int = 60
    invoices: int = 150
    # JSON Lines in the format of shared/fixtures/qbo_sandbox_records.jsonl; replaces
    # generated data.
    data: Path | None = None
    realm_id: str = "9341453050298454"
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

    def __post_init__(self) -> None:
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
