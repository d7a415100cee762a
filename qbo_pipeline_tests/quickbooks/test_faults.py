"""Every fault shape QBO_API.md §4 documents becomes the right typed error."""

import json

import httpx
import pytest

from qbo_pipeline.quickbooks.faults import (
    AuthenticationFailed,
    AuthorizationFailed,
    InvalidClient,
    InvalidGrant,
    ObjectNotFound,
    ServiceUnavailable,
    ThrottleExceeded,
    ValidationFault,
    fault_from_response,
    oauth_error_from_response,
)

TID = "1-5ebb4fc0-a1d1103a01a5ef86671f0dbe"


def response(status: int, body: str | dict, content_type="application/json") -> httpx.Response:
    text = json.dumps(body) if isinstance(body, dict) else body
    return httpx.Response(
        status, content=text.encode(), headers={"intuit_tid": TID, "Content-Type": content_type}
    )


def test_service_fault_json_is_a_validation_fault_with_code_and_tid():
    body = {
        "Fault": {
            "Error": [
                {
                    "Message": "Invalid query",
                    "Detail": "QueryValidationError: value 1500 is too large. "
                    "Max allowed value is 1000",
                    "code": "4001",
                    "element": "",
                }
            ],
            "type": "ValidationFault",
        },
        "time": "2017-09-29T09:17:31.892-07:00",
    }
    fault = fault_from_response(response(400, body), context="SELECT * FROM Customer")
    assert isinstance(fault, ValidationFault)
    assert fault.codes == ("4001",)
    assert fault.intuit_tid == TID
    assert "Max allowed value is 1000" in str(fault)
    assert "SELECT * FROM Customer" in str(fault)


def test_gateway_fault_lower_case_is_authentication_failed():
    body = {
        "warnings": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": "Token expired: xyz",
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "time": 1633520295688,
    }
    fault = fault_from_response(response(401, body))
    assert isinstance(fault, AuthenticationFailed)
    assert fault.codes == ("3200",)


def test_gateway_403_3100_is_authorization_failed():
    body = {
        "fault": {
            "error": [
                {
                    "message": "message=ApplicationAuthorizationFailed; errorCode=003100; "
                    "statusCode=403",
                    "detail": "",
                    "code": "3100",
                }
            ],
            "type": "SERVICE",
        }
    }
    assert isinstance(fault_from_response(response(403, body)), AuthorizationFailed)


def test_xml_throttle_body_under_json_accept_is_throttle_with_retry_after():
    xml = (
        '<IntuitResponse time="2024-01-01T00:00:00.000-08:00"><Fault type="SERVICE">'
        '<Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
        "statusCode=429</Message><Detail>The request limit was reached.  Try again later"
        "</Detail></Error></Fault></IntuitResponse>"
    )
    raw = httpx.Response(429, content=xml.encode(), headers={"Retry-After": "7"})
    fault = fault_from_response(raw)
    assert isinstance(fault, ThrottleExceeded)
    assert fault.retry_after == 7.0
    assert fault.codes == ("3001",)


def test_namespaced_xml_validation_fault():
    xml = (
        '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="x">'
        '<Fault type="ValidationFault"><Error code="610" element="">'
        "<Message>Object Not Found</Message><Detail>Something</Detail></Error></Fault>"
        "</IntuitResponse>"
    )
    fault = fault_from_response(response(400, xml, "application/xml"))
    assert isinstance(fault, ObjectNotFound)


def test_fault_inside_a_200_is_still_a_fault():
    body = {"Fault": {"Error": [{"Message": "m", "Detail": "d", "code": "500"}], "type": "x"}}
    assert isinstance(fault_from_response(response(200, body)), ValidationFault)


def test_plain_5xx_without_body_is_service_unavailable():
    assert isinstance(fault_from_response(response(503, "")), ServiceUnavailable)
    assert isinstance(fault_from_response(response(502, "<html>bad gateway")), ServiceUnavailable)


def test_success_is_not_a_fault():
    assert fault_from_response(response(200, {"QueryResponse": {}, "time": "t"})) is None


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, {"error": "invalid_grant", "error_description": "Token invalid"}, InvalidGrant),
        (401, {"error": "invalid_client"}, InvalidClient),
    ],
)
def test_oauth_errors(status, body, cls):
    error = oauth_error_from_response(response(status, body))
    assert isinstance(error, cls)
    assert error.status == status
    assert error.intuit_tid == TID
