"""GET /Users?filter=…: the lookups IdPs make before creating a user."""

import json
from urllib.parse import quote

import pytest

from harness import LIST_RESPONSE, assert_scim_error

JANE = "jane@example.com"


@pytest.fixture
def jane(seed_user):
    seed_user("john@example.com", mail="john@example.com")
    seed_user("janet@example.com", mail="janet@example.com")
    seed_user("xjane@example.com", mail="other-jane@example.com")
    return seed_user(JANE, mail=JANE)


def get_filter_raw(gateway, query: str):
    """GET /Users?<query> with the query string sent exactly as given."""
    status, headers, body = gateway.raw(
        "GET", "/scim/v2/Users?" + query, headers={"Authorization": "Bearer " + gateway.tokens["primary"]}
    )
    return status, headers, json.loads(body) if body else None


def only_user(body, user_name):
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == 1, body
    assert len(body["Resources"]) == 1
    assert body["Resources"][0]["userName"].lower() == user_name.lower()
    return body["Resources"][0]


def test_username_eq_percent_encoded(gateway, jane):
    status, headers, body = get_filter_raw(gateway, "filter=" + quote(f'userName eq "{JANE}"', safe=""))
    assert status == 200, body
    assert headers["content-type"].startswith("application/scim+json")
    u = only_user(body, JANE)
    assert u["id"] == jane["uuid"]


def test_username_eq_form_encoded_plus(gateway, jane):
    status, _, body = get_filter_raw(gateway, "filter=userName+eq+%22" + quote(JANE, safe="") + "%22")
    assert status == 200, body
    assert only_user(body, JANE)["id"] == jane["uuid"]


def test_username_eq_with_paging_params(gateway, jane):
    """Okta: filter plus startIndex=1&count=100."""
    q = "filter=" + quote(f'userName eq "{JANE}"', safe="") + "&startIndex=1&count=100"
    status, _, body = get_filter_raw(gateway, q)
    assert status == 200, body
    assert only_user(body, JANE)["id"] == jane["uuid"]


@pytest.mark.parametrize("variant", ["JANE@EXAMPLE.COM", "Jane@Example.com"])
def test_username_eq_is_case_insensitive(scim, jane, variant):
    r = scim("GET", "/Users", params={"filter": f'userName eq "{variant}"'})
    assert r.status_code == 200, r.text
    assert only_user(r.json(), JANE)["id"] == jane["uuid"]


@pytest.mark.parametrize("attr", ["userName", "USERNAME", "username"])
def test_attribute_names_are_case_insensitive(scim, jane, attr):
    r = scim("GET", "/Users", params={"filter": f'{attr} eq "{JANE}"'})
    assert r.status_code == 200, r.text
    assert only_user(r.json(), JANE)["id"] == jane["uuid"]


def test_operator_is_case_insensitive(scim, jane):
    r = scim("GET", "/Users", params={"filter": f'userName EQ "{JANE}"'})
    assert r.status_code == 200, r.text
    assert only_user(r.json(), JANE)["id"] == jane["uuid"]


@pytest.mark.parametrize("value", ["nobody@example.com", "jane", "%", "jane@example.co", "_ane@example.com"])
def test_no_match_is_empty_list_response(scim, jane, value):
    r = scim("GET", "/Users", params={"filter": f'userName eq "{value}"'})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == 0
    assert body["Resources"] == []


@pytest.mark.parametrize("mail_case_insensitive", [False, True])
@pytest.mark.parametrize("attr", ["emails", "emails.value"])
@pytest.mark.parametrize("value", [JANE, "JANE@EXAMPLE.COM", "Jane@example.com"])
def test_email_eq_finds_user_case_insensitively(scim, emulator_settings, jane, mail_case_insensitive, attr, value):
    emulator_settings(mail_case_insensitive=mail_case_insensitive)
    r = scim("GET", "/Users", params={"filter": f'{attr} eq "{value}"'})
    assert r.status_code == 200, r.text
    assert only_user(r.json(), JANE)["id"] == jane["uuid"]


def test_email_no_match_is_empty(scim, jane):
    r = scim("GET", "/Users", params={"filter": 'emails.value eq "nobody@example.com"'})
    assert r.status_code == 200
    assert r.json()["totalResults"] == 0
    assert r.json()["Resources"] == []


def test_filter_finds_blocked_user(scim, seed_user):
    u = seed_user("blocked@example.com", mail="blocked@example.com", status=False)
    r = scim("GET", "/Users", params={"filter": 'userName eq "blocked@example.com"'})
    assert r.status_code == 200
    found = only_user(r.json(), "blocked@example.com")
    assert found["id"] == u["uuid"]
    assert found["active"] is False


@pytest.mark.parametrize(
    "flt",
    [
        'nickName eq "jd"',
        'addresses[type eq "work"].locality eq "Berlin"',
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter eq "4130"',
        'userName gt "a"',
    ],
)
def test_unsupported_filter_is_400_invalid_filter(scim, jane, flt):
    r = scim("GET", "/Users", params={"filter": flt})
    assert_scim_error(r, 400, "invalidFilter")


def test_last_modified_filter_is_supported(scim, jane):
    r = scim("GET", "/Users", params={"filter": 'meta.lastModified gt "2011-05-13T04:42:34Z"'})
    assert r.status_code == 200, r.text
    assert jane["uuid"] in {u["id"] for u in r.json()["Resources"]}


@pytest.mark.parametrize(
    "flt",
    [
        "userName eq",
        'userName eq "jane@example.com',
        'userName "jane@example.com"',
        'eq "jane@example.com"',
        'userName eq "a" and',
        "(((",
        'userName zz "jane@example.com"',
    ],
    ids=["no-value", "unterminated", "no-operator", "no-attribute", "dangling-and", "parens", "bad-operator"],
)
def test_malformed_filter_is_400_invalid_filter(scim, jane, drupal_requests, flt):
    r = scim("GET", "/Users", params={"filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    assert drupal_requests() == []
