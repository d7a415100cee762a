"""`make dev`: the whole pipeline running on its own, to watch it react in the Dagster UI.

On loopback: the emulator (with churn, sending signed webhooks for every change), the
auth service receiving them at /quickbooks/webhooks, the emulator's company connected
through the real OAuth flow and synced once, and `dagster dev` (webserver and daemon),
whose qbo_webhook_sensor turns each delivery into a run. Secrets are generated for the
session and handed to Dagster's processes through their environment, never printed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx

from qbo_pipeline.commands.demo_run import authorize_through, ensure_token_key
from qbo_pipeline.commands.execution import dagster_home, sync_realms
from qbo_pipeline.commands.process_groups import stop_process_group
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.errors import PipelineError
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.auth import CALLBACK_PATH
from qbo_pipeline.service.server import ServiceServer
from qbo_pipeline.service.webhooks import WEBHOOKS_PATH
from qbo_pipeline.settings import Settings

WORKSPACE = """\
load_from:
  - python_module:
      module_name: qbo_pipeline.definitions
      location_name: qbo_pipeline
"""
# `dagster dev` shuts its webserver and daemon down within this on SIGTERM.
DAGSTER_SHUTDOWN_SECONDS = 30


@dataclass
class DevStack:
    state_dir: Path = Path(".qbo")
    service_port: int = 0
    dagster_port: int = 3000
    churn: float = 0.2  # changes per second in the emulator's company
    customers: int = 200
    invoices: int = 600
    seed: int = 7
    webhook_batch_seconds: float = 0.5
    extra_environment: dict[str, str] = field(default_factory=dict)
    realm_id: str = ""
    settings: Settings | None = None
    emulator: EmulatorServer | None = None
    _service: ServiceServer | None = None
    _runtime: Runtime | None = None
    _dagster: subprocess.Popen | None = None

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    @property
    def webhook_url(self) -> str:
        assert self._service is not None
        return f"{self._service.base_url}{WEBHOOKS_PATH}"

    def start(self, *, dagster: bool = True) -> DevStack:
        """Everything but Dagster, then (unless told not to) `dagster dev`."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._service = ServiceServer(port=self.service_port)
        verifier, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        client_secret = secrets.token_urlsafe(24)
        self.emulator = EmulatorServer(
            EmulatorConfig(
                seed=self.seed,
                customers=self.customers,
                invoices=self.invoices,
                client_id="dev-app",
                client_secret=client_secret,
                rotation="intuit",
                webhook_url=self.webhook_url,
                webhook_verifier=verifier,
                webhook_batch_seconds=self.webhook_batch_seconds,
            )
        ).start()
        base = Settings.from_env(_without_settings(os.environ) | self.extra_environment)
        self.settings = base.with_overrides(
            state_dir=self.state_dir,
            client_id="dev-app",
            client_secret=client_secret,
            environment="sandbox",
            discovery_url=self.emulator.discovery_url,
            api_base_url=self.emulator.api_base_url,
            redirect_uri=f"{self._service.base_url}{CALLBACK_PATH}",
            admin_token=admin_token,
            webhook_verifier_token=verifier,
        )
        ensure_token_key(self.settings)
        self._runtime = Runtime(self.settings)
        self._service.start(create_app(self._runtime))
        self.realm_id = authorize_through(
            self._service.base_url, admin_token, self._runtime, self.emulator.config.realm_id
        )
        [first] = sync_realms(
            [self.realm_id],
            instance=dg.DagsterInstance.from_config(str(dagster_home(self.state_dir))),
            settings=self.settings,
        )
        if not first.success:
            raise PipelineError(f"the first sync of realm {self.realm_id} failed: {first.error}")
        if self.churn > 0:
            answer = httpx.post(
                f"{self.emulator.base_url}/_emulator/churn", json={"rate": self.churn}, timeout=10
            )
            answer.raise_for_status()
        if dagster:
            self._dagster = self._start_dagster()
        return self

    def _start_dagster(self) -> subprocess.Popen:
        assert self.settings is not None
        home = dagster_home(self.state_dir)
        environment = {**os.environ, **self.settings.as_environment(), "DAGSTER_HOME": str(home)}
        workspace = home / "workspace.yaml"  # the code location under the name dg gives it
        workspace.write_text(WORKSPACE)
        command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace)]
        command += ["-h", "127.0.0.1", "-p", str(self.dagster_port)]
        # A process group of its own, which everything `dagster dev` starts joins (its
        # webserver, daemon, code server and that server's gRPC child, each run and its
        # log tails), so stop() can end all of them and nothing else. Ctrl-C reaches only
        # this process now; `dev` stops the group in its `finally`.
        return subprocess.Popen(command, env=environment, process_group=0)

    def wait(self) -> int:
        """Until Dagster exits (Ctrl-C stops it, and then the rest)."""
        assert self._dagster is not None
        try:
            return self._dagster.wait()
        except KeyboardInterrupt:
            return 0

    def stop(self) -> None:
        if self._dagster is not None:
            stop_process_group(self._dagster, DAGSTER_SHUTDOWN_SECONDS)
        if self._service is not None:
            self._service.stop()
        if self.emulator is not None:
            self.emulator.stop()
        if self._runtime is not None:
            self._runtime.close()

    def banner(self) -> str:
        assert self.emulator is not None and self._service is not None
        return "\n".join(
            [
                f"Dagster UI:        {self.dagster_url}  (assets, runs, sensors, schedules)",
                f"QBO emulator:      {self.emulator.base_url}  (webhook deliveries: "
                f"{self.emulator.base_url}/_emulator/webhooks)",
                f"Auth service:      {self._service.base_url}/quickbooks/auth/  "
                f"(webhooks at {self.webhook_url})",
                f"Connected company: realm {self.realm_id}, synced once; the emulator "
                f"changes it {self.churn:g} times a second and qbo_webhook_sensor syncs "
                "each change",
                "Ctrl-C stops everything.",
            ]
        )


def _without_settings(environ: os._Environ | dict[str, str]) -> dict[str, str]:
    """The operator's environment minus what the dev stack decides (its own app, QBO)."""
    decided = {"QUICKBOOKS_API_BASE_URL", "QUICKBOOKS_DISCOVERY_URL", "QUICKBOOKS_ENVIRONMENT"}
    return {name: value for name, value in environ.items() if name not in decided}
