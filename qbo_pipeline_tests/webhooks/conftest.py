"""A connected company whose service receives webhooks on loopback, as a deployment would."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.server import ServiceServer
from qbo_pipeline.service.webhooks import WEBHOOKS_PATH
from qbo_pipeline.settings import Settings
from qbo_pipeline_tests.company import Company
from qbo_pipeline_tests.webhooks.deliveries import VERIFIER


@dataclass
class Receiving:
    company: Company
    runtime: Runtime  # the service's own, as `qbo-pipeline serve` builds it
    url: str

    @property
    def realm_id(self) -> str:
        return self.company.realm_id

    def counts(self) -> dict[str, int]:
        return self.runtime.inbox.counts()


@pytest.fixture
def receiving_factory(connect, monkeypatch) -> Iterator:
    servers: list[tuple[ServiceServer, Runtime]] = []

    def start(**connect_options) -> Receiving:
        company = connect(**connect_options)
        monkeypatch.setenv("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN", VERIFIER)
        settings = Settings.from_env().with_overrides(admin_token=secrets.token_urlsafe(24))
        runtime = Runtime(settings)
        server = ServiceServer()
        server.start(create_app(runtime))
        servers.append((server, runtime))
        return Receiving(company, runtime, f"{server.base_url}{WEBHOOKS_PATH}")

    yield start
    for server, runtime in servers:
        server.stop()
        runtime.close()


@pytest.fixture
def receiving(receiving_factory) -> Receiving:
    return receiving_factory(customers=20, invoices=30)
