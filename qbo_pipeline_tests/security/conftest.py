"""The service stack of qbo_pipeline_tests/service, for the attacks on it."""

from qbo_pipeline_tests.service.conftest import client, emulator, service, stack  # noqa: F401
