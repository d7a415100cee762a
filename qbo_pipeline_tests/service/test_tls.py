"""`qbo-pipeline serve --tls-cert FILE --tls-key FILE` as an operator without a TLS proxy
runs it: HTTPS with TLS 1.2 or later, older protocols refused in the handshake.

The certificate is self-signed for 127.0.0.1 and made by the test; clients trust it alone.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.service.conftest import PREFIX, Stack, served

pytestmark = pytest.mark.slow


def _key_and_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return _key_and_certificate(tmp_path, "service")


@pytest.fixture
def https(stack: Stack, pair: tuple[Path, Path]) -> Iterator[str]:
    """The service's https:// base URL, served by `qbo-pipeline serve` in its own process."""
    key, cert = pair
    with served(stack, "--tls-cert", str(cert), "--tls-key", str(key)) as base_url:
        assert base_url.startswith("https://127.0.0.1:"), base_url
        yield base_url


def _client(cert: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that trusts the test's certificate and speaks exactly `version`."""
    context = ssl.create_default_context(cafile=str(cert))
    with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated names, used on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        # OpenSSL's default security level keeps the client itself from offering TLS 1.0
        # and 1.1; lowered, the ClientHello goes out and the refusal is the server's.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _handshake(base_url: str, context: ssl.SSLContext) -> str:
    host, port = base_url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return str(tls.version())


@pytest.mark.parametrize(
    ("version", "name"), [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]
)
def test_tls_1_2_and_1_3_serve_the_api(
    stack: Stack, pair: tuple[Path, Path], https: str, version: ssl.TLSVersion, name: str
) -> None:
    context = _client(pair[1], version)
    assert _handshake(https, context) == name
    with httpx.Client(verify=context, timeout=10) as client:
        listing = client.get(f"{https}{PREFIX}/connections", headers=stack.admin)
        assert listing.status_code == 200 and listing.json() == {"connections": []}
        assert client.get(f"{https}{PREFIX}/connections").status_code == 401


def _lenient_server(pair: tuple[Path, Path]) -> tuple[str, threading.Thread]:
    """A one-connection TLS server that still allows TLS 1.0: the control showing that the
    test's client really offers the old versions."""
    key, cert = pair
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_one() -> None:
        with listener, listener.accept()[0] as raw, context.wrap_socket(raw, server_side=True):
            pass

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    return f"https://127.0.0.1:{listener.getsockname()[1]}", thread


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1])
def test_tls_older_than_1_2_is_refused_by_the_server(
    pair: tuple[Path, Path], https: str, version: ssl.TLSVersion
) -> None:
    client = _client(pair[1], version)
    lenient, thread = _lenient_server(pair)
    assert _handshake(lenient, client) in ("TLSv1.1", "TLSv1")
    thread.join(timeout=10)
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(https, client)
    # The server ends the handshake (its protocol_version alert, or closing before any
    # ServerHello); the client got as far as sending its hello.
    assert refused.value.reason in (
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNEXPECTED_EOF_WHILE_READING",
    ), refused.value


def test_plain_http_to_the_tls_port_gets_no_answer(https: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(https.replace("https://", "http://") + f"{PREFIX}/connections", timeout=10)


def test_bad_tls_files_stop_serve_with_one_line(
    stack: Stack, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, cert = pair
    other_key, _ = _key_and_certificate(tmp_path, "other")
    cases = [
        (["--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.key")], "does not exist"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "the key is the certificate's"),
        (["--tls-cert", str(key), "--tls-key", str(key)], "not a PEM certificate"),
    ]
    for flags, phrase in cases:
        completed = subprocess.run(
            [CLI, "serve", "--port", "0", *flags],
            env={**clean_env(), **stack.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 2, (flags, completed.stderr)
        [line] = completed.stderr.strip().splitlines()[-1:]
        assert phrase in line, (flags, completed.stderr)
        assert "BEGIN" not in completed.stderr  # no key material echoed
