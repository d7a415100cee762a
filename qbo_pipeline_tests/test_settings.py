"""Configuration errors name the variable and what to put in it."""

import pytest

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.settings import Settings


def test_defaults_are_the_embedded_sandbox():
    settings = Settings.from_env({})
    assert settings.environment == "sandbox"
    assert settings.api_base_url == "https://sandbox-quickbooks.api.intuit.com"
    assert "sandbox" in settings.discovery_url
    assert settings.default_warehouse_path.name == "warehouse.duckdb"


def test_production_switches_both_urls():
    settings = Settings.from_env({"QUICKBOOKS_ENVIRONMENT": "production"})
    assert settings.api_base_url == "https://quickbooks.api.intuit.com"
    assert "sandbox" not in settings.discovery_url


def test_overrides_point_everything_at_the_emulator():
    settings = Settings.from_env(
        {
            "QUICKBOOKS_DISCOVERY_URL": "http://127.0.0.1:8765/.well-known/openid_configuration",
            "QUICKBOOKS_API_BASE_URL": "http://127.0.0.1:8765/",
        }
    )
    assert settings.api_base_url == "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QUICKBOOKS_ENVIRONMENT": "staging"}, "QUICKBOOKS_ENVIRONMENT"),
        ({"QUICKBOOKS_API_BASE_URL": "ftp://x"}, "QUICKBOOKS_API_BASE_URL"),
        ({"QUICKBOOKS_REDIRECT_URI": "localhost/cb"}, "QUICKBOOKS_REDIRECT_URI"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(env)


def test_missing_app_credentials_say_where_to_find_them():
    with pytest.raises(ConfigurationError, match="QUICKBOOKS_CLIENT_ID"):
        Settings.from_env({}).require_app_credentials()


def test_secrets_are_not_in_the_repr():
    settings = Settings.from_env({"QUICKBOOKS_CLIENT_SECRET": "s3cr3t-value-xyz"})
    assert "s3cr3t" not in repr(settings)
