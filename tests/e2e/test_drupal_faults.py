"""Drupal misbehaving: refused service account, unreachable, slow, 5xx. The gateway answers
with SCIM errors and never passes a Drupal body through."""

import time

import pytest

from harness import assert_scim_error, jumpcloud_user

MARKER = "DRUPAL-INTERNAL-BODY-7f3a"


def no_drupal_body(resp):
    assert MARKER not in resp.text
    assert "upstream connect error" not in resp.text
    assert "upstream request timeout" not in resp.text
    assert "<html" not in resp.text.lower()
    assert "jsonapi" not in resp.text.lower()


@pytest.fixture
def jane(seed_user):
    return seed_user("jane@example.com", mail="jane@example.com")


@pytest.fixture
def refused(emulator, new_envoy):
    """A gateway whose service password Drupal no longer accepts (its own Envoy: the back-off
    that follows a refusal would otherwise hold up the shared gateway). -> its scim()"""
    return new_envoy(drupal_password="changed-" + emulator.admin_pass).scim


REQUESTS = [
    ("GET", "/Users", None),
    ("GET", "/Users?filter=userName%20eq%20%22jane@example.com%22", None),
    ("GET", "/Users/{jane}", None),
    ("POST", "/Users", jumpcloud_user("new@example.com")),
    ("DELETE", "/Users/{jane}", None),
]
IDS = ["list", "filter", "get", "create", "delete"]


def send(scim, jane, method, path, body):
    return scim(method, path.replace("{jane}", jane["uuid"]), json=body)


# The refused gateway sends its wrong password: the suite's leak check expects only the
# right one.
@pytest.mark.no_leak_check
@pytest.mark.parametrize("method,path,body", REQUESTS, ids=IDS)
def test_refused_service_account_is_502(jane, refused, method, path, body):
    r = send(refused, jane, method, path, body)
    err = assert_scim_error(r, 502)
    assert "service account" in err["detail"].lower(), err["detail"]
    no_drupal_body(r)


@pytest.mark.no_leak_check
def test_refused_service_account_never_lists_anonymous_view(jane, refused):
    """Read as anonymous, Drupal answers 200 with almost nothing: that must not become an
    empty or partial ListResponse."""
    r = refused("GET", "/Users", params={"filter": 'userName eq "jane@example.com"'})
    assert r.status_code == 502, r.text


@pytest.mark.parametrize("method,path,body", REQUESTS, ids=IDS)
def test_drupal_unreachable_is_503(scim, jane, fault, method, path, body):
    fault(drop=True, count=1000)
    r = send(scim, jane, method, path, body)
    assert_scim_error(r, 503)
    no_drupal_body(r)


@pytest.mark.parametrize("method,path,body", REQUESTS, ids=IDS)
def test_drupal_slower_than_timeout_is_504(scim, jane, fault, method, path, body):
    fault(delay_ms=3000, count=1000)
    t = time.monotonic()
    r = send(scim, jane, method, path, body)
    elapsed = time.monotonic() - t
    assert_scim_error(r, 504)
    no_drupal_body(r)
    # A write that timed out is read back once before the answer (one more timeout_ms here).
    most = 2.9 if method == "GET" else 4.4
    assert elapsed < most, f"answered after {elapsed:.2f}s, not at timeout_ms (1.5 s)"


@pytest.mark.parametrize("method,path,body", REQUESTS, ids=IDS)
def test_drupal_500_is_502(scim, jane, fault, method, path, body):
    fault(status=500, body=f'{{"errors":[{{"title":"{MARKER}"}}]}}', count=1000)
    r = send(scim, jane, method, path, body)
    assert_scim_error(r, 502)
    no_drupal_body(r)


def test_drupal_html_error_is_502(scim, jane, fault):
    fault(status=503, body=f"<html><body>{MARKER} maintenance</body></html>", count=1000)
    r = scim("GET", f"/Users/{jane['uuid']}")
    assert r.status_code in (502, 503), r.text
    assert_scim_error(r, r.status_code)
    no_drupal_body(r)


def test_gateway_recovers_after_faults(scim, jane, fault, emulator):
    fault(status=500, body=MARKER, count=1)
    scim("GET", "/Users")
    emulator.clear_faults()
    r = scim("GET", f"/Users/{jane['uuid']}")
    assert r.status_code == 200, r.text


def test_failed_create_creates_nothing_visible(scim, emulator, fault):
    fault(status=500, body=MARKER, count=1000, method="POST")
    r = scim("POST", "/Users", json=jumpcloud_user("halfmade@example.com"))
    assert_scim_error(r, 502)
    emulator.clear_faults()
    assert emulator.drupal_user_by_name("halfmade@example.com") is None
