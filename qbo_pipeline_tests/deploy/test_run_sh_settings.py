"""`deploy/local/run.sh` refuses settings it cannot honour before it starts anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qbo_pipeline_tests.command import clean_env

RUN_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "run.sh"


def _run_sh(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = clean_env() | {"QBO_STACK_DIR": str(tmp_path / "stack"), **settings}
    return subprocess.run([str(RUN_SH)], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("given", "missing"), [("QBO_TLS_CERT", "QBO_TLS_KEY"), ("QBO_TLS_KEY", "QBO_TLS_CERT")]
)
def test_half_a_tls_pair_is_refused_in_one_line(tmp_path: Path, given: str, missing: str) -> None:
    """`serve` would refuse it; the stack used to drop it and serve plain HTTP instead."""
    result = _run_sh(tmp_path, **{given: str(tmp_path / "tls.pem")})

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"{given} is set but {missing} is not" in line
    assert "set both" in line
    assert "throwaway PostgreSQL" not in result.stderr  # nothing was started
    assert not (tmp_path / "stack").exists()


def test_a_port_that_is_not_one_is_refused(tmp_path: Path) -> None:
    result = _run_sh(tmp_path, QBO_SERVICE_PORT="80a")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "qbo-pipeline stack: QBO_SERVICE_PORT='80a' is not a port; give a number from 1 to 65535"
    ]
