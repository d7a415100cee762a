"""Configuration errors name the variable and what to put in it."""

import pytest

from qbo_pipeline.defs.resources import QuickBooksResource
from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.limiter import Limits, limiter_for
from qbo_pipeline.runtime import Runtime
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


LIMIT_VARIABLES = {
    "QBO_REQUESTS_PER_MINUTE": "1000",
    "QBO_REQUESTS_PER_SECOND": "20",
    "QBO_MAX_IN_FLIGHT": "15",
    "QBO_BATCH_REQUESTS_PER_MINUTE": "80",
}


def test_limits_default_to_intuits_and_can_be_raised():
    assert Settings.from_env({}).limits == Limits()
    raised = Settings.from_env(LIMIT_VARIABLES)
    assert raised.limits == Limits(
        requests_per_window=1000,
        requests_per_second=20,
        max_in_flight=15,
        batch_requests_per_window=80,
    )
    assert Settings.from_env(raised.as_environment()) == raised


@pytest.mark.parametrize("variable", sorted(LIMIT_VARIABLES))
@pytest.mark.parametrize("value", ["0", "-5", "ten", "1.5", "²"])
def test_a_bad_limit_is_one_line_naming_the_variable(variable, value):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable} must be a positive whole number")
    assert repr(value) in message and "\n" not in message


def test_the_limits_reach_the_runtime_and_the_dagster_resource(tmp_path):
    settings = Settings.from_env({**LIMIT_VARIABLES, "QBO_STATE_DIR": str(tmp_path)})
    runtime = Runtime(settings)
    assert runtime.limits == settings.limits
    assert runtime.limiter("123").limits == settings.limits
    assert runtime.limiter("123") is limiter_for(settings.api_base_url, "123", settings.limits)
    resource = QuickBooksResource.from_settings(settings)
    assert resource.runtime.limits == settings.limits
