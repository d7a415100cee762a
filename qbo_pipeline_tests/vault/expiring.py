"""For the end-to-end credential tests (a company connected through the emulator's OAuth
server): the emulator's admin calls, and making the stored access token stale so the
vault has to refresh it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline_tests.company import Company

__all__ = ["emulator_delete", "emulator_post", "expire_access_token", "token_stats"]


def emulator_post(company: Company, path: str, body: dict | None = None) -> dict:
    response = httpx.post(f"{company.emulator.base_url}/_emulator/{path}", json=body)
    response.raise_for_status()
    return response.json()


def emulator_delete(company: Company, path: str) -> None:
    httpx.delete(f"{company.emulator.base_url}/_emulator/{path}").raise_for_status()


def token_stats(company: Company) -> dict:
    return company.admin("stats")["token_endpoint"]  # type: ignore[index]


def expire_access_token(company: Company) -> None:
    """Expire the access token both where it is checked (QBO) and where it is judged (the
    vault), so the next `access_token()` must refresh instead of trusting the stored expiry."""
    store, realm_id = company.runtime.store, company.realm_id
    tokens = store.decrypt(realm_id)
    store.save_tokens(
        realm_id,
        TokenSet(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_expires_at=datetime.now(UTC) - timedelta(minutes=1),
            refresh_expires_at=tokens.refresh_expires_at,
            refresh_hard_expires_at=tokens.refresh_hard_expires_at,
        ),
    )
    emulator_post(company, "tokens/expire")
