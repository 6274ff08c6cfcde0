"""Upstream session mode (`drupal.auth: "session"`): the gateway logs in to Drupal once with
core's JSON login and sends the session cookie (and X-CSRF-Token on writes) instead of Basic
credentials; the session is shared by Envoy's workers, renewed when Drupal stops honouring
it, never shown to SCIM clients; refused logins back off to respect Drupal's flood control.

These tests carry their own leak check: session mode sends a Cookie to Drupal by design."""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from conftest import gateway_requests
from groups_support import groups_config
import harness
from harness import assert_scim_error, jumpcloud_user, patch_op

pytestmark = pytest.mark.no_leak_check

LOGIN = "/user/login?_format=json"


@pytest.fixture(autouse=True)
def basic_gateway_settled(stack):
    """The session's Basic gateway checks the mapping once after its start; wait for that so
    its Basic call is not taken for one of these gateways'."""
    harness._wait(lambda: "attribute mapping checked" in stack.envoy.log_text(), 15, "the mapping check")
    stack.emulator.clear_requests()


@pytest.fixture
def session_gw(new_envoy):
    return new_envoy(plugin_overrides={"drupal.auth": "session"})


def not_probe(calls: list[dict]) -> list[dict]:
    """Without the new gateway's own mapping check, which runs on a timer after its start."""
    return [c for c in calls if "scim_probe" not in c["path"]]


def logins(stack) -> list[dict]:
    return [r for r in gateway_requests(stack) if r["path"] == LOGIN]


def assert_session_only(stack) -> None:
    """Nothing but the login carries the password; no Basic header, no SCIM token; every
    other call carries the session cookie, and every write the CSRF token."""
    tokens = list(stack.tokens.values())
    for r in gateway_requests(stack):
        blob = json.dumps(r)
        for t in tokens:
            assert t not in blob, f"a SCIM token reached Drupal: {r['method']} {r['path']}"
        assert "authorization" not in r["headers"], f"Basic sent in session mode: {r['method']} {r['path']}"
        if r["path"] == LOGIN:
            assert "cookie" not in r["headers"]
            continue
        assert stack.emulator.admin_pass not in blob, f"the password left the login: {r['path']}"
        if r["path"].startswith("/user/login_status"):
            continue
        assert r["headers"].get("cookie", "").startswith("SESS"), f"no session cookie: {r['method']} {r['path']}"
        if r["method"] not in ("GET", "HEAD"):
            assert r["headers"].get("x-csrf-token"), f"write without CSRF token: {r['method']} {r['path']}"


def assert_hidden_from_client(resp) -> None:
    assert "set-cookie" not in {k.lower() for k in resp.headers}
    assert "SESS" not in resp.text
    assert "csrf" not in resp.text.lower()


def test_user_lifecycle_runs_on_one_login(stack, session_gw):
    r = session_gw.scim("POST", "/Users", json=jumpcloud_user("sess@example.com"))
    assert r.status_code == 201, r.text
    assert_hidden_from_client(r)
    uuid = r.json()["id"]
    r = session_gw.scim("GET", f"/Users/{uuid}")
    assert r.status_code == 200 and r.json()["userName"] == "sess@example.com"
    r = session_gw.scim("GET", "/Users", params={"filter": 'userName eq "sess@example.com"'})
    assert r.json()["totalResults"] == 1
    r = session_gw.scim("PATCH", f"/Users/{uuid}", json=patch_op({"op": "replace", "path": "active", "value": False}))
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert stack.emulator.drupal_user(uuid)["status"] is False
    r = session_gw.scim("DELETE", f"/Users/{uuid}")
    assert r.status_code == 204, r.text
    assert len(logins(stack)) == 1
    assert_session_only(stack)


def test_steady_state_lookup_is_one_drupal_call(stack, session_gw, seed_user):
    seed_user("one@example.com", mail="one@example.com")
    assert session_gw.scim("GET", "/Users?count=1").status_code == 200  # logs in
    stack.emulator.clear_requests()
    r = session_gw.scim("GET", "/Users", params={"filter": 'userName eq "one@example.com"'})
    assert r.json()["totalResults"] == 1
    calls = not_probe(gateway_requests(stack))
    assert [c["method"] for c in calls] == ["GET"], calls
    assert_session_only(stack)


def test_workers_share_one_session(stack, session_gw, seed_user):
    seed_user("shared@example.com", mail="shared@example.com")

    def lookup(_):
        return session_gw.scim("GET", "/Users", params={"filter": 'userName eq "shared@example.com"'}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lookup, range(64)))
    assert statuses == [200] * 64
    assert len(logins(stack)) == 1, "one login for the whole Envoy, whatever the worker"
    assert_session_only(stack)


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_a_session_drupal_ended_is_renewed_without_the_client_noticing(stack, session_gw, seed_user, write):
    user = seed_user("ended@example.com", mail="ended@example.com")
    assert session_gw.scim("GET", f"/Users/{user['uuid']}").status_code == 200
    assert len(logins(stack)) == 1
    # Drupal forgets every session (password change, sessions purged, garbage collection).
    stack.emulator.http.delete(stack.emulator.url + "/_emulator/sessions", timeout=5).raise_for_status()
    if write:
        r = session_gw.scim("PATCH", f"/Users/{user['uuid']}", json=patch_op({"op": "replace", "path": "active", "value": False}))
        assert r.status_code == 200 and r.json()["active"] is False, r.text
    else:
        r = session_gw.scim("GET", f"/Users/{user['uuid']}")
        assert r.status_code == 200 and r.json()["userName"] == "ended@example.com", r.text
    assert len(logins(stack)) == 2
    assert_session_only(stack)


def test_a_real_403_is_passed_on_after_checking_the_session(stack, session_gw, seed_user):
    """Drupal refusing the write itself (read-only JSON:API is a 405; a field the account may
    not edit is a 403) is not mistaken for a dead session: one status check, no new login."""
    user = seed_user("field@example.com", mail="field@example.com")
    assert session_gw.scim("GET", f"/Users/{user['uuid']}").status_code == 200
    stack.emulator.fault(status=403, body='{"errors":[{"status":"403","detail":"no"}]}', count=1, method="PATCH")
    r = session_gw.scim("PATCH", f"/Users/{user['uuid']}", json=patch_op({"op": "replace", "path": "active", "value": False}))
    assert_scim_error(r, 502)
    paths = [c["path"] for c in not_probe(gateway_requests(stack))]
    assert paths.count("/user/login_status?_format=json") == 1, paths
    assert len(logins(stack)) == 1


def test_wrong_password_is_tried_once_and_backs_off(stack, new_envoy, seed_user):
    seed_user("x@example.com", mail="x@example.com")
    gw = new_envoy(plugin_overrides={"drupal.auth": "session"}, drupal_password="wrong-password")
    for _ in range(6):
        r = gw.scim("GET", "/Users", params={"filter": 'userName eq "x@example.com"'})
        err = assert_scim_error(r, 502)
        assert "service account" in err["detail"].lower()
        assert_hidden_from_client(r)
    # One refused login, not one per request: Drupal's flood control (5 failures per account
    # and IP in 6 hours) is never reached by the gateway itself.
    assert len(logins(stack)) == 1
    assert all(c["path"] == LOGIN for c in gateway_requests(stack)), "no call without a session"
    log = gw.log_text()
    assert "Drupal refused the gateway's login" in log and "next attempt in 60 s" in log
    assert "wrong-password" not in log


def test_session_mode_serves_groups(stack, new_envoy, seed_user):
    gw = new_envoy(plugin_overrides={"drupal.auth": "session", "groups": groups_config()})
    user = seed_user("member@example.com", mail="member@example.com")
    r = gw.scim("POST", "/Groups", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Session Group",
        "members": [{"value": user["uuid"]}],
    })
    assert r.status_code == 201, r.text
    group = r.json()
    r = gw.scim("GET", f"/Groups/{group['id']}")
    assert [m["value"] for m in r.json()["members"]] == [user["uuid"]]
    assert_session_only(stack)
