"""The emulator's settings: which company it serves and how its OAuth server behaves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROTATION_POLICIES = ("intuit", "strict")


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
    # "intuit": a superseded refresh token keeps working for 24 h; "strict": dies at once.
    rotation: str = "intuit"

    def __post_init__(self) -> None:
        if self.rotation not in ROTATION_POLICIES:
            raise ValueError(
                f"rotation must be one of {', '.join(ROTATION_POLICIES)}, not {self.rotation!r}"
            )
        if self.customers < 0 or self.invoices < 0:
            raise ValueError("customers and invoices must not be negative")
        if self.invoices and not self.customers and self.data is None:
            raise ValueError("invoices need at least one customer to bill")
        if self.data is not None:
            self.data = Path(self.data)
