"""The `qbo-pipeline` command as a user's shell would run it, for subprocess tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "qbo-pipeline")


def clean_env() -> dict[str, str]:
    """This process's environment without the pipeline's own settings, which a test then
    sets explicitly (the tests' own fixtures set some in this process)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("QBO_", "QUICKBOOKS_"))}
