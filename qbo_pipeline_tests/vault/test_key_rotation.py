"""Rotating the token encryption key on a connection made through OAuth, end to end.

The vault's unit tests cover the cryptography; this checks what an operator sees: after
`rotate_keys()` the old key can go, and a store left with only the old key says which
realm and key id it is missing.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline.vault import ConnectionStore, EventKind, KeyRing, UnknownKeyId, generate_key
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.vault.expiring import emulator_post, token_stats


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
    assert rotating.store.rotate_keys().reencrypted == [realm_id]
    assert rotating.store.rotate_keys().current == [realm_id]  # nothing left under k1
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


def test_keys_rotate_goes_past_a_company_no_key_opens_and_says_so(connect, tmp_path) -> None:
    """`keys rotate` stopped at the first realm it could not decrypt, leaving every realm
    after it on the old key; now it rotates the rest, names that one and exits 1."""
    company = connect(customers=5, invoices=5)
    lost = "1000000000000007"  # a company whose tokens were written under a lost key
    other = ConnectionStore(company.runtime.store.db, KeyRing({"k0": os.urandom(32)}))
    tokens = company.runtime.store.decrypt(company.realm_id)
    other.save_tokens(
        lost,
        TokenSet(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_expires_at=tokens.access_expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
        ),
    )
    env = {**clean_env(), **company.env}
    env["QBO_TOKEN_KEYS"] = f"k2:{generate_key()},k1:{env.pop('QBO_TOKEN_KEY')}"

    rotated = subprocess.run(
        [CLI, "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60
    )

    assert rotated.returncode == 1
    assert rotated.stdout.strip() == "re-encrypted 1 of 2 connections under key id k2"
    first, *rest = rotated.stderr.strip().splitlines()
    assert first.startswith(f"realm {lost}: not re-encrypted:") and "'k0'" in first
    assert "add the key" in rest[-1] and "keys rotate" in rest[-1]
    assert "Traceback" not in rotated.stderr
    assert company.runtime.store.get(company.realm_id).key_id == "k2"
