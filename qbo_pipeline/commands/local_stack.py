"""`deploy/local/run.sh`: Dagster's production stack on this machine, in the foreground.

Not `dagster dev`: the processes a deployment runs, each on its own, on PostgreSQL:
- the instance: DAGSTER_HOME (by default QBO_STACK_DIR/dagster_home) holding the
  repository's `deploy/dagster.yaml`, run, event-log and schedule storage on the server
  DAGSTER_POSTGRES_URL names, or on a throwaway one (gone on exit) when it is unset;
- the code location as a gRPC server (`dagster api grpc`), named in a workspace file; it
  launches each run in a process of its own (Dagster's DefaultRunLauncher);
- `dagster-webserver` and `dagster-daemon`, which reach the code only through that server;
- `qbo-pipeline serve`, the OAuth and webhook endpoints.

The token store, warehouse and QuickBooks settings come from the environment as for any
other command. A component that exits is started again, as systemd's `Restart=always`
would; Ctrl-C or SIGTERM stops all of them, the last started first, then the throwaway
server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from qbo_pipeline.commands.process_groups import stop_process_group
from qbo_pipeline.errors import ConfigurationError, PipelineError

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_INSTANCE = ROOT / "deploy" / "dagster.yaml"
LOCATION = "qbo_pipeline"
WORKSPACE = """\
# Written by deploy/local/run.sh: the code location is the gRPC server it started.
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: {port}
      location_name: {location}
"""
# A component is ready within this, or the stack stops (2 shared cores load Dagster in
# 10 to 40 s).
READY_SECONDS = 180.0
# How long each component gets to stop on SIGTERM before SIGKILL.
STOP_SECONDS = 30.0
# A component that dies this soon after starting waits before the next start, doubling.
QUICK_DEATH_SECONDS = 10.0
MAX_RESTART_WAIT = 30.0
PREFIX = "qbo-pipeline stack:"


class Stopped(Exception):
    """Ctrl-C or SIGTERM, raised wherever the supervisor is."""


@dataclass(frozen=True)
class Ports:
    webserver_host: str
    webserver: int
    grpc: int
    service_host: str
    service: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ports:
        return cls(
            webserver_host=env.get("DAGSTER_WEBSERVER_HOST") or "127.0.0.1",
            webserver=_port(env, "DAGSTER_WEBSERVER_PORT", 3000),
            grpc=_port(env, "DAGSTER_GRPC_PORT", 4266),
            service_host=env.get("QBO_SERVICE_HOST") or "127.0.0.1",
            service=_port(env, "QBO_SERVICE_PORT", 8000),
        )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"{name}={text!r} is not a port; give a number from 1 to 65535")
    return int(text)


@dataclass
class Component:
    """One long-running process of the stack, started again whenever it exits."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0

    def start(self) -> None:
        # A process group of its own: Ctrl-C reaches the supervisor alone, which stops the
        # components in order, and stopping one ends what it started (a run, a gRPC child).
        self.process = subprocess.Popen(self.command, env=self.env, process_group=0)
        self.started_at = time.monotonic()
        say(f"started {self.name} (pid {self.process.pid})")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not self.ready():
            assert self.process is not None
            if self.process.poll() is not None:
                raise PipelineError(
                    f"{self.name} exited with status {self.process.returncode} while "
                    "starting; its output above says why"
                )
            if time.monotonic() > deadline:
                raise PipelineError(f"{self.name} was not ready within {READY_SECONDS:g} s")
            time.sleep(0.5)

    def restart_if_exited(self) -> None:
        assert self.process is not None
        status = self.process.poll()
        if status is None:
            return
        lived = time.monotonic() - self.started_at
        self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        pause = min(MAX_RESTART_WAIT, 2.0**self.quick_deaths) if self.quick_deaths else 0.0
        say(f"{self.name} exited with status {status}; starting it again in {pause:g} s")
        time.sleep(pause)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, STOP_SECONDS)


def say(line: str) -> None:
    print(f"{PREFIX} {line}", file=sys.stderr, flush=True)


@dataclass
class LocalStack:
    """The stack's parts, from the environment; `run()` starts them and supervises."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        self.ports = Ports.from_env(self.env)
        self.state = Path(self.env.get("QBO_STACK_DIR") or ".qbo/stack").resolve()
        self.home = Path(self.env.get("DAGSTER_HOME") or self.state / "dagster_home").resolve()
        self.bin = Path(sys.executable).parent
        self.tls = _tls_flags(self.env)  # before anything starts: a half pair is refused

    def run(self) -> int:
        with ExitStack() as stack:
            postgres_url = self.env.get("DAGSTER_POSTGRES_URL") or stack.enter_context(
                _throwaway_server()
            )
            self._write_home()
            env = {**self.env, "DAGSTER_HOME": str(self.home)}
            env["DAGSTER_POSTGRES_URL"] = postgres_url
            components = self._components(env)
            stack.callback(_stop_all, components)
            for component in components:
                component.start()
                component.wait_ready()
            say(self._banner())
            _supervise(components)
        return 0

    def _write_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        instance = self.home / "dagster.yaml"
        if "DAGSTER_HOME" not in self.env or not instance.exists():
            shutil.copyfile(PRODUCTION_INSTANCE, instance)
        self.workspace.write_text(WORKSPACE.format(port=self.ports.grpc, location=LOCATION))

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def _components(self, env: dict[str, str]) -> list[Component]:
        ports, python = self.ports, sys.executable
        code_server = [python, "-m", "dagster", "api", "grpc", "--module-name"]
        code_server += ["qbo_pipeline.definitions", "--location-name", LOCATION]
        code_server += ["--host", "127.0.0.1", "--port", str(ports.grpc)]
        code_server += ["--working-directory", str(ROOT)]
        webserver = [str(self.bin / "dagster-webserver"), "-w", str(self.workspace)]
        webserver += ["-h", ports.webserver_host, "-p", str(ports.webserver)]
        daemon = [str(self.bin / "dagster-daemon"), "run", "-w", str(self.workspace)]
        service = [str(self.bin / "qbo-pipeline"), "serve", "--host", ports.service_host]
        service += ["--port", str(ports.service), *self.tls]
        return [
            Component("code server", code_server, env, lambda: _grpc_serving(ports.grpc)),
            Component("dagster-webserver", webserver, env, lambda: _answers(self.webserver_url)),
            Component("dagster-daemon", daemon, env, lambda: True),
            Component("qbo-pipeline serve", service, env, lambda: _listens(ports.service)),
        ]

    @property
    def webserver_url(self) -> str:
        return f"http://{self.ports.webserver_host}:{self.ports.webserver}"

    def _banner(self) -> str:
        return (
            f"ready: Dagster UI {self.webserver_url}, code server 127.0.0.1:{self.ports.grpc}, "
            f"auth service port {self.ports.service}, DAGSTER_HOME {self.home}; Ctrl-C stops "
            "everything"
        )


def _tls_flags(env: Mapping[str, str]) -> list[str]:
    """`serve`'s TLS flags: both files or neither, as `serve` itself demands."""
    cert, key = env.get("QBO_TLS_CERT"), env.get("QBO_TLS_KEY")
    if cert and key:
        return ["--tls-cert", cert, "--tls-key", key]
    if cert or key:
        given, missing = (
            ("QBO_TLS_CERT", "QBO_TLS_KEY") if cert else ("QBO_TLS_KEY", "QBO_TLS_CERT")
        )
        raise ConfigurationError(
            f"{given} is set but {missing} is not: set both to serve HTTPS from qbo-pipeline "
            "serve, or neither (a proxy in front terminates TLS)"
        )
    return []


@contextmanager
def _throwaway_server() -> Iterator[str]:
    from qbo_pipeline.throwaway_postgres import postgres_server

    with postgres_server() as url:
        say(f"DAGSTER_POSTGRES_URL is unset: a throwaway PostgreSQL server at {url}")
        try:
            yield url
        finally:
            say("stopping the throwaway PostgreSQL server")


def _grpc_serving(port: int) -> bool:
    check = [sys.executable, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)]
    return subprocess.run(check, capture_output=True, timeout=60).returncode == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _listens(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _supervise(components: list[Component]) -> None:
    while True:
        time.sleep(0.5)
        for component in components:
            component.restart_if_exited()


def _stop_all(components: list[Component]) -> None:
    say("stopping")
    for component in reversed(components):
        component.stop()
    say("stopped")


def _on_signal(signum: int, frame: object) -> None:
    """Stop once: a second Ctrl-C or SIGTERM must not cut the components' shutdown short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return LocalStack().run()
    except Stopped:
        return 0
    except PipelineError as error:
        say(" ".join(str(error).split()))
        return 2


if __name__ == "__main__":
    sys.exit(main())
