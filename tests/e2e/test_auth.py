"""Bearer-token authentication at the gateway, and what reaches Drupal (credentials)."""

import base64

import pytest

from harness import assert_scim_error, basic, jumpcloud_user

PROTECTED = [
    ("GET", "/Users"),
    ("GET", "/Users/2c1e8a8e-0d4c-4a5e-9a55-6a3f3f0f6c11"),
    ("POST", "/Users"),
    ("DELETE", "/Users/2c1e8a8e-0d4c-4a5e-9a55-6a3f3f0f6c11"),
    ("GET", "/ServiceProviderConfig"),
    ("GET", "/ResourceTypes"),
    ("GET", "/ResourceTypes/User"),
    ("GET", "/Schemas"),
    ("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"),
]


def assert_401(resp):
    assert_scim_error(resp, 401)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), f"WWW-Authenticate: {challenge!r}"


@pytest.mark.parametrize("method,path", PROTECTED)
def test_no_authorization_is_401(scim, drupal_requests, method, path):
    body = jumpcloud_user("nobody@example.com") if method == "POST" else None
    assert_401(scim(method, path, token=None, json=body))
    assert drupal_requests() == [], "an unauthenticated request reached Drupal"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token",
        "Bearer ",
        "Bearer",
        "Basic " + base64.b64encode(b"scim-service:whatever").decode(),
        "Token abc",
        "",
    ],
    ids=["wrong-token", "empty-bearer", "bare-scheme", "basic", "other-scheme", "empty-header"],
)
def test_bad_authorization_is_401(scim, drupal_requests, authorization):
    assert_401(scim("GET", "/Users", token=None, headers={"Authorization": authorization}))
    assert drupal_requests() == []


def test_token_of_other_case_or_with_suffix_is_401(scim, gateway):
    token = gateway.tokens["primary"]
    assert_401(scim("GET", "/Users", token=token.swapcase()))
    assert_401(scim("GET", "/Users", token=token + "x"))
    assert_401(scim("GET", "/Users", token=token[:-1]))


def test_service_account_basic_credentials_are_not_accepted(scim, emulator):
    """Drupal's own credentials are no SCIM credentials."""
    r = scim("GET", "/Users", token=None, headers={"Authorization": emulator.service_auth})
    assert_401(r)


@pytest.mark.parametrize("label", ["primary", "rotated"])
def test_both_configured_tokens_work(scim, label):
    r = scim("GET", "/ServiceProviderConfig", token=label)
    assert r.status_code == 200, r.text
    r = scim("GET", "/Users", token=label)
    assert r.status_code == 200, r.text


def test_scim_token_never_reaches_drupal(scim, gateway, drupal_requests, create_user):
    created = create_user("leakcheck@example.com")
    scim("GET", "/Users", params={"filter": 'userName eq "leakcheck@example.com"'}, token="rotated")
    scim("GET", f"/Users/{created['id']}")
    scim("DELETE", f"/Users/{created['id']}")
    reqs = drupal_requests()
    assert reqs, "the gateway made no Drupal request at all"
    for r in reqs:
        text = repr(r)
        for token in gateway.tokens.values():
            assert token not in text
        assert not r["headers"].get("authorization", "").lower().startswith("bearer")


def test_drupal_sees_only_the_service_account(scim, emulator, drupal_requests, create_user):
    create_user("basiconly@example.com")
    scim("GET", "/Users")
    reqs = drupal_requests()
    assert reqs
    expected = basic(emulator.admin_user, emulator.admin_pass)
    for r in reqs:
        assert r["headers"].get("authorization") == expected, (r["method"], r["path"], r["headers"])


def test_cookie_is_not_forwarded_to_drupal(scim, drupal_requests):
    cookie = {"Cookie": "SESSd41d8cd98f00b204e9800998ecf8427e=stolen-session; other=1"}
    r = scim("GET", "/Users", headers=cookie)
    assert r.status_code == 200, r.text
    r = scim("POST", "/Users", json=jumpcloud_user("cookie@example.com"), headers=cookie)
    assert r.status_code == 201, r.text
    r = scim("GET", f"/Users/{r.json()['id']}", headers=cookie)
    assert r.status_code == 200, r.text
    reqs = drupal_requests()
    assert reqs
    for q in reqs:
        assert "cookie" not in q["headers"], (q["method"], q["path"])
        assert "stolen-session" not in repr(q)


def test_unauthenticated_error_reveals_nothing_about_tokens(scim, gateway):
    r = scim("GET", "/Users", token="wrong")
    assert_401(r)
    for token in gateway.tokens.values():
        assert token not in r.text


def test_envoy_log_holds_no_secrets(scim, gateway, emulator, create_user):
    create_user("logcheck@example.com", password="Log-Secret-Pass1")
    scim("GET", "/Users", token="rotated")
    scim("GET", "/Users", token="wrong-token-for-log-check")
    log = gateway.log_text()
    assert log, "no Envoy log"
    for token in gateway.tokens.values():
        assert token not in log
    assert emulator.admin_pass not in log
    assert "Log-Secret-Pass1" not in log
