"""Rotating the token encryption key on a connection made through OAuth, end to end.

The vault's unit tests cover the cryptography; this checks what an operator sees: after
`rotate_keys()` the old key can go, and a store left with only the old key says which
realm and key id it is missing.
"""

from __future__ import annotations

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline.vault import EventKind, UnknownKeyId, generate_key
from qbo_pipeline_tests.credentials.conftest import emulator_post, token_stats
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals


def sync(runtime: Runtime, realm_id: str) -> None:
    with runtime.client(realm_id) as client, runtime.warehouse() as warehouse:
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, warehouse, entity, SyncOptions(page_size=20))


def with_keys(monkeypatch: pytest.MonkeyPatch, keys: str) -> Runtime:
    monkeypatch.delenv("QBO_TOKEN_KEY", raising=False)
    monkeypatch.setenv("QBO_TOKEN_KEYS", keys)
    return Runtime.from_env()


def test_rotated_key_replaces_the_old_one_on_a_real_connection(connect, monkeypatch) -> None:
    company = connect(customers=30, invoices=40, rotation="strict")
    realm_id = company.realm_id
    old, new = company.env["QBO_TOKEN_KEY"], generate_key()
    assert company.runtime.store.get(realm_id).key_id == "k1"

    rotating = with_keys(monkeypatch, f"k2:{new},k1:{old}")
    assert rotating.store.rotate_keys() == 1
    assert rotating.store.rotate_keys() == 0  # nothing left under k1
    assert rotating.store.get(realm_id).key_id == "k2"
    assert EventKind.KEY_ROTATED in [e.kind for e in rotating.store.events(realm_id=realm_id)]
    rotating.close()

    new_only = with_keys(monkeypatch, f"k2:{new}")
    emulator_post(company, "tokens/expire")  # the sync must also refresh and re-save
    try:
        sync(new_only, realm_id)
        with new_only.warehouse() as warehouse:
            assert_warehouse_equals(warehouse, realm_id, company.entities)
        assert new_only.store.get(realm_id).key_id == "k2"
    finally:
        new_only.close()
    assert token_stats(company)["refresh_successes"] == 1

    old_only = with_keys(monkeypatch, f"k1:{old}")
    try:
        with pytest.raises(UnknownKeyId) as failure:
            sync(old_only, realm_id)
    finally:
        old_only.close()
    message = str(failure.value)
    assert "\n" not in message
    assert f"realm {realm_id}" in message and "'k2'" in message
