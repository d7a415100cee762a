"""Several companies on one emulator: adding them, the user's pick on the consent page,
each grant confined to its company, and CompanyInfo naming it."""

from __future__ import annotations

import re

import httpx
import pytest

from qbo_pipeline import cli
from qbo_pipeline.commands import emulator as emulator_command
from qbo_pipeline.emulator.config import EmulatorConfig, realm_ids
from qbo_pipeline_tests.emulator.conftest import (
    Connection,
    add_company,
    authorize,
    callback_params,
    connect,
    refresh,
)

ENVELOPE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[78]:00$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[78]:00$")
SMALL = {"customers": 5, "invoices": 5}


@pytest.fixture
def first(connected) -> Connection:
    """A private emulator with its own small company, connected the default way."""
    return connected(**SMALL)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def _customer_names(qbo: Connection) -> set[str]:
    return {row["DisplayName"] for row in qbo.rows("select * from Customer maxresults 100")}


def _company_info(qbo: Connection, realm_id: str, entity_id: str | None = None):
    path = f"/v3/company/{realm_id}/companyinfo/{entity_id or realm_id}"
    return qbo.http.get(path, headers={"Authorization": f"Bearer {qbo.tokens['access_token']}"})


def test_added_company_is_listed_and_named_from_its_seed(first: Connection) -> None:
    http = first.http
    entry = add_company(http, "4620816365213456", seed=11)
    assert entry == {
        "realm_id": "4620816365213456",
        "company_name": entry["company_name"],
        "customers": 5,
        "invoices": 5,
    }
    same_seed = add_company(http, "4620816365213458", seed=11, customers=2, invoices=0)
    named = add_company(http, "123", seed=11, company_name="Müller & Søn Landscaping")
    assert same_seed["company_name"] == entry["company_name"] != first.server.state.company.name
    assert named["company_name"] == "Müller & Søn Landscaping"
    listing = http.get("/_emulator/companies").json()
    assert [item["realm_id"] for item in listing] == [
        first.realm_id,
        "4620816365213456",
        "4620816365213458",
        "123",
    ]
    assert listing[1:] == [entry, same_seed, named]
    _error(http.post("/_emulator/companies", json={"realm_id": "4620816365213456"}), 409)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"realm_id": ""},
        {"realm_id": "has space"},
        {"realm_id": "1" * 33},
        {"realm_id": "realm-b"},
        {"realm_id": 42},
        {"realm_id": "77", "customers": -1},
        {"realm_id": "77", "invoices": 1.5},
        {"realm_id": "77", "seed": "11"},
        {"realm_id": "77", "customers": 0, "invoices": 3},
        {"realm_id": "77", "company_name": ""},
        {"realm_id": "77", "company_name": 7},
    ],
)
def test_bad_company_bodies_are_400(emulator, body: dict) -> None:
    response = httpx.post(f"{emulator.base_url}/_emulator/companies", json=body)
    _error(response, 400)


def test_consent_picks_the_company_each_grant_belongs_to(first: Connection) -> None:
    http = first.http
    add_company(http, "4620816365213456", seed=11)
    assert http.get("/_emulator/consent").json() == {"realm_id": first.realm_id}
    _error(http.post("/_emulator/consent", json={"realm_id": "nowhere"}), 404)
    _error(http.post("/_emulator/consent", json={}), 400)
    assert http.get("/_emulator/consent").json() == {"realm_id": first.realm_id}

    second = connect(first.server, realm_id="4620816365213456")
    assert second.realm_id == "4620816365213456"
    assert http.get("/_emulator/consent").json() == {"realm_id": "4620816365213456"}
    assert callback_params(authorize(http))["realmId"] == "4620816365213456"  # for every one after
    assert _customer_names(second) != _customer_names(first)

    statement = {"query": "select * from Customer"}
    for reader, other in ((first, second), (second, first)):
        bearer = {"Authorization": f"Bearer {reader.tokens['access_token']}"}
        denied = reader.http.get(
            f"/v3/company/{other.realm_id}/query", params=statement, headers=bearer
        )
        assert denied.status_code == 403
        assert denied.json()["fault"]["error"][0]["code"] == "3100"

    renewed = refresh(second.http, second.tokens["refresh_token"])
    assert renewed.status_code == 200
    second.tokens = renewed.json()
    assert second.query("select count(*) from Invoice").status_code == 200
    assert _company_info(second, first.realm_id).status_code == 403
    second.http.close()


def test_company_info_names_the_company(first: Connection) -> None:
    add_company(first.http, "4620816365213456", seed=11, company_name="Harbor Bakery")
    second = connect(first.server, realm_id="4620816365213456")
    response = _company_info(second, "4620816365213456")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"CompanyInfo", "time"} and ENVELOPE_TIME.match(body["time"])
    info = body["CompanyInfo"]
    assert {key: info[key] for key in ("Id", "SyncToken", "domain", "sparse", "Country")} == {
        "Id": "1",
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "Country": "US",
    }
    assert info["CompanyName"] == info["LegalName"] == "Harbor Bakery"
    assert {"Line1", "City", "CountrySubDivisionCode", "PostalCode"} <= set(info["CompanyAddr"])
    assert all(STAMP.match(stamp) for stamp in info["MetaData"].values())
    assert info["MetaData"]["CreateTime"] <= info["MetaData"]["LastUpdatedTime"]

    own = _company_info(first, first.realm_id).json()["CompanyInfo"]
    assert own["CompanyName"] == first.server.state.company.name != "Harbor Bakery"
    stats = first.http.get("/_emulator/stats").json()["realms"]
    assert stats["4620816365213456"]["by_status"] == {"200": 1}
    second.http.close()


def test_company_info_by_another_id_or_without_a_token(first: Connection) -> None:
    missing = _company_info(first, first.realm_id, "2")
    assert missing.status_code == 400
    error = missing.json()["Fault"]["Error"][0]
    assert (error["code"], error["Message"]) == ("610", "Object Not Found")
    anonymous = first.http.get(f"/v3/company/{first.realm_id}/companyinfo/{first.realm_id}")
    assert anonymous.status_code == 401
    first.http.post("/_emulator/faults", json={"status": 503, "count": 1})
    assert _company_info(first, first.realm_id).status_code == 503
    assert _company_info(first, first.realm_id).status_code == 200


def test_an_emulator_of_many_companies_grants_them_in_turn_or_as_hinted(connected) -> None:
    """`--realms N`: each company its own data and grant; Intuit's company picker is the
    turn, or the authorize link's realm_hint."""
    first = connected(realms=3, **SMALL)
    ids = [first.realm_id, str(int(first.realm_id) + 1), str(int(first.realm_id) + 2)]
    listing = first.http.get("/_emulator/companies").json()
    assert [company["realm_id"] for company in listing] == ids
    assert len({company["company_name"] for company in listing}) == 3
    assert first.http.get("/_emulator/consent").json() == {"realm_id": None}

    second, third, fourth = (connect(first.server, paced=False) for _ in range(3))
    assert [second.realm_id, third.realm_id, fourth.realm_id] == [ids[1], ids[2], ids[0]]
    assert len({frozenset(_customer_names(c)) for c in (first, second, third)}) == 3
    hinted = callback_params(authorize(first.http, realm_hint=ids[1]))
    assert hinted["realmId"] == ids[1]
    unknown = authorize(first.http, realm_hint="5")
    assert unknown.status_code == 400 and "realm_hint names no company" in unknown.text

    # Each company's limits are its own: one company's burst leaves another's untouched.
    first.http.post("/_emulator/stats/reset").raise_for_status()
    for _ in range(12):
        third.query("select count(*) from Customer")
    stats = first.http.get("/_emulator/stats").json()["realms"]
    assert stats[ids[2]]["throttled"] > 0 and ids[0] not in stats
    assert first.query("select count(*) from Customer").status_code == 200
    for connection in (second, third, fourth):
        connection.http.close()


@pytest.mark.parametrize("realms", [0, -1, True, 1.5])
def test_a_bad_number_of_realms_is_refused(realms) -> None:
    with pytest.raises(ValueError, match="realms must be a whole number"):
        EmulatorConfig(realms=realms)


def test_the_cli_serves_many_companies_and_refuses_zero(capsys) -> None:
    config = emulator_command._config(cli._parser().parse_args(["emulator", "--realms", "50"]))
    assert config.realms == 50 and len(realm_ids(config)) == len(set(realm_ids(config))) == 50
    assert cli.main(["emulator", "--realms", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert "realms must be a whole number of at least 1" in error and "\n" not in error
