"""Okta, request by request (shared/research/idp-clients.md §3): the OIN template app
(profile updates as GET + full PUT; activate/deactivate/password as path-less PATCH) and the
App Integration Wizard app (PUT for everything, deactivation as `"active": false`), plus the
Okta SCIM 2.0 spec test's steps. Drupal's state is checked after every step."""

from __future__ import annotations

import copy
import json

import pytest

from harness import CORE_USER, LIST_RESPONSE, PATCH_OP, assert_scim_error, basic
from idp_requests import okta, okta_create, okta_lookup

pytestmark = pytest.mark.mapped_fields

# §3.4-A
CREATE = okta_create("test.user@okta.local", "00ujl29u0le5T6Aj10h7", "1mz050nq")


def can_log_in(emulator, name, password):
    r = emulator.jsonapi("GET", "/jsonapi", auth=basic(name, password))
    return "me" in r.json().get("meta", {}).get("links", {})


def test_okta_oin_lifecycle(scim, gateway, emulator, drupal_requests, clear_drupal_requests):
    # Test API credentials: GET /Users?startIndex=1&count=2
    r = okta(scim, "GET", "/Users", params={"startIndex": 1, "count": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert all(type(body[k]) is int for k in ("itemsPerPage", "startIndex", "totalResults"))
    assert body["itemsPerPage"] <= 2

    # Assign: lookup (percent-encoded, with paging) → not found.
    status, raw = okta_lookup(gateway, "test.user@okta.local")
    assert status == 200
    assert json.loads(raw)["totalResults"] == 0

    # Create, with Okta's password.
    r = okta(scim, "POST", "/Users", CREATE)
    assert r.status_code == 201, r.text
    user = r.json()
    uid = user["id"]
    assert user["active"] is True and user["name"] == {"givenName": "Test", "familyName": "User"}
    d = emulator.drupal_user(uid)
    assert (d["name"], d["mail"], d["status"], d["field_external_id"], d["field_display_name"]) == (
        "test.user@okta.local", "test.user@okta.local", True, "00ujl29u0le5T6Aj10h7", "Test User")
    assert can_log_in(emulator, "test.user@okta.local", "1mz050nq")
    # Existing user → 409 stops Okta's job.
    assert_scim_error(okta(scim, "POST", "/Users", CREATE), 409, "uniqueness")

    # Check existence.
    current = okta(scim, "GET", f"/Users/{uid}").json()

    # Profile update: GET, then PUT the whole object back (with id, meta, groups).
    put = copy.deepcopy(current)
    put["name"] = {"givenName": "Another", "middleName": "Excited", "familyName": "User"}
    put["emails"] = [{"primary": True, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}]
    put["groups"] = []
    clear_drupal_requests()
    r = okta(scim, "PUT", f"/Users/{uid}", put)
    assert r.status_code == 200, r.text
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]
    d = emulator.drupal_user(uid)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"], d["field_external_id"]) == (
        "Another", "User", "Test User", "00ujl29u0le5T6Aj10h7")
    assert d["status"] is True, "active:true in the PUT keeps the user active"

    # Deactivate: path-less {"active": false}; one read, one write.
    clear_drupal_requests()
    r = okta(scim, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]
    assert emulator.drupal_user(uid)["status"] is False
    # Still there (Okta never deletes users).
    assert okta(scim, "GET", f"/Users/{uid}").json()["active"] is False

    # Reactivate.
    r = okta(scim, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]})
    assert r.status_code == 200 and emulator.drupal_user(uid)["status"] is True

    # Password sync.
    r = okta(scim, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"password": "n3w-0kta-pw"}}]})
    assert r.status_code == 200, r.text
    assert "n3w-0kta-pw" not in r.text
    assert can_log_in(emulator, "test.user@okta.local", "n3w-0kta-pw")
    assert not can_log_in(emulator, "test.user@okta.local", "1mz050nq")
    assert "n3w-0kta-pw" not in gateway.log_text() and "1mz050nq" not in gateway.log_text()


def test_okta_put_of_the_reference_body_clears_what_it_leaves_out(scim, emulator):
    """§3.4-B verbatim: the reference PUT has no displayName/externalId, so a replace clears
    them; what Okta's real PUT contains is the SP's own GET answer (previous test)."""
    r = okta(scim, "POST", "/Users", CREATE)
    uid = r.json()["id"]
    body = {
        "schemas": [CORE_USER],
        "id": uid,
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
        "active": True,
        "groups": [],
        "meta": {"resourceType": "User"},
    }
    r = okta(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(uid)
    assert (d["field_given_name"], d["field_display_name"], d["field_external_id"], d["status"]) == ("Another", None, None, True)


def test_okta_aiw_put_for_everything(scim, emulator, drupal_requests, clear_drupal_requests):
    r = okta(scim, "POST", "/Users", CREATE)
    uid = r.json()["id"]
    user = okta(scim, "GET", f"/Users/{uid}").json()
    # Deactivate: PUT with "active": false.
    body = {**user, "active": False}
    clear_drupal_requests()
    r = okta(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]
    d = emulator.drupal_user(uid)
    assert d["status"] is False
    assert (d["field_given_name"], d["field_display_name"], d["field_external_id"]) == ("Test", "Test User", "00ujl29u0le5T6Aj10h7")
    # Profile update and reactivation in one PUT.
    body = {**user, "active": True, "name": {"givenName": "Test", "familyName": "Renamed"}, "title": "Okta Admin"}
    r = okta(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(uid)
    assert (d["status"], d["field_family_name"], d["field_title"]) == (True, "Renamed", "Okta Admin")


def test_okta_import_pages_by_100(scim, seed_users):
    seed_users([{"name": f"okta-{i:03d}@example.com", "mail": f"okta-{i:03d}@example.com"} for i in range(230)])
    seen = []
    for start in (1, 101, 201):
        body = okta(scim, "GET", "/Users", params={"startIndex": start, "count": 100}).json()
        assert body["startIndex"] == start
        seen += [u["id"] for u in body["Resources"]]
    assert len(seen) == len(set(seen)) == 231
    assert body["totalResults"] == 231


def test_okta_spec_test_steps(scim, gateway, emulator):
    """The Okta SCIM 2.0 SPEC test (Runscope): the steps that are not discovery."""
    # Create without Content-Type (only Authorization and Accept).
    body = {
        "schemas": [CORE_USER],
        "userName": "Runscope.Spec@atko.example",
        "name": {"familyName": "Spec", "givenName": "Runscope"},
        "emails": [{"primary": True, "value": "Runscope.Spec@atko.example", "type": "work"}],
        "displayName": "Runscope Spec",
        "active": True,
    }
    r = scim("POST", "/Users", data=json.dumps(body).encode(), headers={"Accept": "application/scim+json"})
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["active"] is True and u["userName"] == body["userName"] and u["name"] == body["name"]
    assert CORE_USER in u["schemas"]
    # GET /Users?count=1&startIndex=1: the first resource has the required fields.
    first = scim("GET", "/Users", params={"count": 1, "startIndex": 1}).json()["Resources"][0]
    for key in ("id", "userName", "active", "emails"):
        assert key in first
    got = scim("GET", f"/Users/{u['id']}").json()
    assert got["id"] == u["id"] and got["name"] == body["name"] and got["emails"][0]["value"] == body["userName"]
    # Unknown user / unknown filter value.
    assert scim("GET", "/Users", params={"filter": 'userName eq "nobody-62d2@atko.example"'}).json()["totalResults"] == 0
    err = assert_scim_error(scim("GET", "/Users/010101010101010101010101"), 404)
    assert err["detail"]
    # Same POST again → 409.
    assert_scim_error(scim("POST", "/Users", data=json.dumps(body).encode(), headers={"Accept": "application/scim+json"}), 409)
    # Username case sensitivity check.
    r = scim("GET", "/Users", params={"filter": f'userName eq "{body["userName"].upper()}"'})
    assert [x["id"] for x in r.json()["Resources"]] == [u["id"]]
    # The old test's malformed filter (no operator) is a 400.
    assert_scim_error(scim("GET", "/Users", params={"filter": body["userName"].upper()}), 400, "invalidFilter")
    # Bad token → 401 with detail and string status.
    err = assert_scim_error(scim("GET", "/Users", token="not-the-token"), 401)
    assert err["status"] == "401"
