"""What can be checked here of the deployments that cannot run here (no Docker daemon, no
Kubernetes cluster, no Helm chart download): the files parse, the Kubernetes objects
match the API's own types (the official client's models), nothing secret is written
down, every variable named is one the code reads, the image runs as a user, and the
systemd units pass `systemd-analyze verify` and run what the tested local stack runs."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from qbo_pipeline.commands.local_stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SOURCE = "\n".join(path.read_text() for path in (ROOT / "qbo_pipeline").rglob("*.py"))
SECRET_VARIABLES = {
    "QBO_TOKEN_KEY",
    "QBO_TOKEN_KEYS",
    "QBO_ADMIN_TOKEN",
    "QUICKBOOKS_CLIENT_SECRET",
    "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN",
    "QBO_DATABASE_URL",
    "QBO_WAREHOUSE_URL",
    "DAGSTER_POSTGRES_URL",
    "QBO_ALERT_WEBHOOK_URL",
}
MODELS = {
    ("apps/v1", "Deployment"): k8s.V1Deployment,
    ("v1", "Service"): k8s.V1Service,
    ("v1", "ConfigMap"): k8s.V1ConfigMap,
    ("networking.k8s.io/v1", "Ingress"): k8s.V1Ingress,
    ("policy/v1", "PodDisruptionBudget"): k8s.V1PodDisruptionBudget,
}
_COLLECTION = re.compile(r"(list|dict)\[(?:str, )?(.+)\]")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kubernetes_objects() -> Iterator[dict[str, Any]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        yield from documents(path)


def unknown_fields(value: Any, kind: str, where: str) -> Iterator[str]:
    """Fields the API does not have (a typo Kubernetes would reject or silently drop)."""
    if match := _COLLECTION.fullmatch(kind):
        items = value.items() if match.group(1) == "dict" else enumerate(value)
        for key, item in items:
            yield from unknown_fields(item, match.group(2), f"{where}[{key}]")
        return
    model = getattr(k8s, kind, None)
    if model is None or not isinstance(value, dict):
        return  # a scalar, or `object` (an int-or-string port, free-form)
    by_json_name = {json: python for python, json in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json_name:
            yield f"{where}.{key}"
        else:
            yield from unknown_fields(
                item, model.openapi_types[by_json_name[key]], f"{where}.{key}"
            )


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {path.relative_to(DEPLOY).as_posix() for path in files} >= {
        "dagster.yaml",
        "helm/values.yaml",
        "k8s/auth-service.yaml",
        "systemd/workspace.yaml",
    }
    for path in files:
        assert documents(path), path


def test_kubernetes_objects_have_only_fields_the_api_knows() -> None:
    seen = set()
    for obj in kubernetes_objects():
        model = MODELS[(obj["apiVersion"], obj["kind"])]
        seen.add(obj["kind"])
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert list(unknown_fields(obj, model.__name__, name)) == []
        # The client's own deserialiser checks required fields and enumerations.
        ApiClient()._ApiClient__deserialize(obj, model.__name__)
    assert seen == {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "ConfigMap"}


def test_the_typo_check_finds_a_typo() -> None:
    [deployment] = [o for o in kubernetes_objects() if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert list(unknown_fields(deployment, "V1Deployment", "d")) == [
        "d.spec.template.spec.containers[0].readinesProbe"
    ]


def test_the_auth_service_runs_as_a_user_behind_a_tls_ingress() -> None:
    objects = {o["kind"]: o for o in kubernetes_objects()}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["command"][:2] == ["qbo-pipeline", "serve"]
    refs = [source.get("secretRef", {}).get("name") for source in container["envFrom"]]
    assert "qbo-pipeline" in refs  # secrets from a Secret made outside git
    ingress = objects["Ingress"]["spec"]
    assert ingress["tls"][0]["secretName"] and ingress["tls"][0]["hosts"]
    paths = [p["path"] for rule in ingress["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/quickbooks/"]
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/ssl-protocols"] == "TLSv1.2 TLSv1.3"
    settings = objects["ConfigMap"]["data"]
    assert not set(settings) & SECRET_VARIABLES


def test_the_helm_values_run_the_code_location_and_runs_in_pods() -> None:
    [values] = documents(DEPLOY / "helm" / "values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    [code] = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["--module-name", "qbo_pipeline.definitions"]
    assert code["includeConfigInLaunchedRuns"]["enabled"] is True
    assert code["podSecurityContext"]["runAsNonRoot"] is True
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["envSecrets"] == code["envSecrets"] == [{"name": "qbo-pipeline"}]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in queue["tagConcurrencyLimits"]
    assert values["postgresql"]["enabled"] is False  # an external server, password in a Secret
    assert "postgresqlPassword" not in values["postgresql"]
    # Kubernetes resource blocks in the values are the API's own type.
    for where, resources in [
        ("code", code["resources"]),
        ("runs", launcher["runK8sConfig"]["containerConfig"]["resources"]),
    ]:
        assert list(unknown_fields(resources, "V1ResourceRequirements", where)) == []


def test_the_deployments_name_only_variables_the_code_reads() -> None:
    named = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            named |= set(re.findall(r"\b(?:QBO|QUICKBOOKS)_[A-Z0-9_]+", path.read_text()))
    assert named, "no settings named under deploy/"
    # run.sh reads one of its own: the Python to run the stack with.
    shell = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "local" / "run.sh").read_text()))
    assert {name for name in named - shell if not re.search(rf"\b{name}\b", SOURCE)} == set()


def test_nothing_secret_is_written_down() -> None:
    example = DEPLOY / "systemd" / "env.example"
    for line in example.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRET_VARIABLES and value:
            assert "CHANGE-ME" in value, line
    texts = {path: path.read_text() for path in DEPLOY.rglob("*") if path.is_file()}
    for path, text in texts.items():
        assert "BEGIN PRIVATE KEY" not in text and "kind: Secret" not in text, path


def test_the_image_runs_as_a_user_with_no_secret_baked_in() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    final = lines[stages[-1] :]
    assert all("-slim" in lines[i] for i in stages)
    [user] = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user.split(":")[0] not in {"0", "root"}
    for line in lines:
        if line.startswith(("ENV ", "ARG ")):
            assert not re.search(r"SECRET|TOKEN|KEY|PASSWORD", line), line
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), line
        if line.startswith("RUN ") and "pip install" in line:
            assert "[dev]" not in line
    [command] = [line for line in final if line.startswith("CMD ")]
    assert '"qbo_pipeline.definitions"' in command
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".qbo"} <= set(ignored)


UNITS = [
    *sorted((DEPLOY / "systemd").glob("*.service")),
    DEPLOY / "systemd" / "qbo-pipeline.target",
]


def test_systemd_accepts_the_units() -> None:
    """`systemd-analyze verify`, with the install's executables the only thing missing."""
    completed = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (completed.stdout + completed.stderr).splitlines()
        if not re.search(r"Command /opt/qbo-pipeline/\.venv/bin/\S+ is not executable", line)
    ]
    assert problems == []


def _exec_start(unit: str) -> list[str]:
    text = (DEPLOY / "systemd" / unit).read_text()
    [line] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    program, *args = shlex.split(line.removeprefix("ExecStart="))
    return [Path(program).name, *args]


def test_the_units_run_what_the_tested_local_stack_runs() -> None:
    stack = LocalStack(
        env={
            "DAGSTER_HOME": "/var/lib/qbo-pipeline/dagster_home",
            "DAGSTER_GRPC_PORT": "4266",
            "DAGSTER_WEBSERVER_PORT": "3000",
            "QBO_SERVICE_PORT": "8443",
            "QBO_SERVICE_HOST": "0.0.0.0",
            "QBO_TLS_CERT": "%d/tls.pem",
            "QBO_TLS_KEY": "%d/tls.key",
        }
    )
    components = {c.name: c.command for c in stack._components({})}

    def as_installed(command: list[str]) -> list[str]:
        program, *args = command
        if program.endswith("python") or "python3" in Path(program).name:
            program, args = args[1], args[2:]  # `python -m dagster` is the dagster script
        args = [arg.replace(str(ROOT), "/opt/qbo-pipeline") for arg in args]
        return [Path(program).name, *args]

    assert _exec_start("qbo-code-server.service") == as_installed(components["code server"])
    assert _exec_start("qbo-dagster-webserver.service") == as_installed(
        components["dagster-webserver"]
    )
    assert _exec_start("qbo-dagster-daemon.service") == as_installed(components["dagster-daemon"])
    assert _exec_start("qbo-auth.service") == as_installed(components["qbo-pipeline serve"])


def test_the_vm_workspace_names_the_code_server_of_the_units() -> None:
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    [origin] = location_origins_from_yaml_paths([str(DEPLOY / "systemd" / "workspace.yaml")])
    assert (origin.host, origin.port, origin.location_name) == ("127.0.0.1", 4266, "qbo_pipeline")


@pytest.mark.parametrize("unit", [u.name for u in UNITS if u.suffix == ".service"])
def test_each_service_restarts_and_reads_the_environment_file(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "Restart=always" in text and "EnvironmentFile=/etc/qbo-pipeline/env" in text
    assert "User=qbo" in text and "NoNewPrivileges=yes" in text
