"""Okta on a real Drupal (shared/research/idp-clients.md §3; the emulator's version is
tests/e2e/test_idp_okta.py): the OIN template app (profile update as GET + full PUT;
deactivate, reactivate and password sync as path-less PATCH), the App Integration Wizard's
PUT for everything, and the SCIM 2.0 spec test's steps."""

from __future__ import annotations

import copy
import json

from harness import CORE_USER, LIST_RESPONSE, PATCH_OP, assert_scim_error
from idp_requests import okta, okta_create, okta_lookup


def create_body(uniq: str) -> dict:
    # §3.4-A
    return okta_create(f"test.user.{uniq}@okta.local", f"00ujl29u0le5T6Aj10h7{uniq}", f"1mz050nq-{uniq}")


def password_hash(site, uuid: str) -> str:
    uid = int(site.user(uuid)["drupal_internal__uid"])
    return site.sql(f"SELECT COALESCE(pass, '-') FROM users_field_data WHERE uid = {uid}")[0][0]


def test_okta_oin_lifecycle(scim, gateway, site, uniq, cleanup):
    body = create_body(uniq)
    email = body["userName"]
    # Test API credentials: GET /Users?startIndex=1&count=2.
    r = okta(scim, "GET", "/Users", params={"startIndex": 1, "count": 2})
    assert r.status_code == 200, r.text
    listed = r.json()
    assert listed["schemas"] == [LIST_RESPONSE]
    assert all(type(listed[k]) is int for k in ("itemsPerPage", "startIndex", "totalResults"))
    assert listed["itemsPerPage"] <= 2

    # Assign: lookup (percent-encoded, with paging) → not found.
    status, raw = okta_lookup(gateway, email, site.timeout)
    assert status == 200 and json.loads(raw)["totalResults"] == 0

    # Create, with Okta's password: Drupal accepts it for a login.
    r = okta(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    assert r.json()["active"] is True and "password" not in r.json()
    d = site.user(uid)
    assert (d["name"], d["mail"], d["status"], d["field_external_id"], d["field_display_name"]) == (
        email, email, True, body["externalId"], "Test User")
    assert site.can_log_in(email, body["password"])
    assert_scim_error(okta(scim, "POST", "/Users", body), 409, "uniqueness")

    # Profile update: GET, then PUT the whole object back (id, meta, groups included).
    put = copy.deepcopy(okta(scim, "GET", f"/Users/{uid}").json())
    put["name"] = {"givenName": "Another", "middleName": "Excited", "familyName": "User"}
    put["emails"] = [{"primary": True, "value": email, "type": "work", "display": email}]
    put["groups"] = []
    r = okta(scim, "PUT", f"/Users/{uid}", put)
    assert r.status_code == 200, r.text
    d = site.user(uid)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"], d["field_external_id"], d["status"]) == (
        "Another", "User", "Test User", body["externalId"], True)

    # Deactivate and reactivate: path-less {"active": …}.
    deactivate = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    r = okta(scim, "PATCH", f"/Users/{uid}", deactivate)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert site.user(uid)["status"] is False
    assert okta(scim, "GET", f"/Users/{uid}").json()["active"] is False
    r = okta(scim, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]})
    assert r.status_code == 200 and site.user(uid)["status"] is True

    # Password sync: Drupal stores a new hash that the new password opens. (The old one is not
    # tried: every refused password is a row in Drupal's flood table for this IP.)
    before = password_hash(site, uid)
    new_pw = f"n3w-0kta-pw-{uniq}"
    r = okta(scim, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"password": new_pw}}]})
    assert r.status_code == 200, r.text
    assert new_pw not in r.text
    assert password_hash(site, uid) != before
    assert site.can_log_in(email, new_pw)
    log = gateway.log_text()
    assert new_pw not in log and body["password"] not in log


def test_okta_aiw_put_for_everything(scim, site, uniq, cleanup):
    r = okta(scim, "POST", "/Users", create_body(uniq))
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    user = okta(scim, "GET", f"/Users/{uid}").json()
    r = okta(scim, "PUT", f"/Users/{uid}", {**user, "active": False})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    d = site.user(uid)
    assert (d["status"], d["field_given_name"], d["field_display_name"]) == (False, "Test", "Test User")
    body = {**user, "active": True, "name": {"givenName": "Test", "familyName": "Renamed"}, "title": "Okta Admin"}
    r = okta(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    d = site.user(uid)
    assert (d["status"], d["field_family_name"], d["field_title"]) == (True, "Renamed", "Okta Admin")


def test_okta_spec_test_steps(scim, site, uniq, cleanup):
    """The Okta SCIM 2.0 SPEC test (Runscope): the steps that are not discovery."""
    name = f"Runscope.Spec.{uniq}@atko.example"
    body = {
        "schemas": [CORE_USER],
        "userName": name,
        "name": {"familyName": "Spec", "givenName": "Runscope"},
        "emails": [{"primary": True, "value": name, "type": "work"}],
        "displayName": "Runscope Spec",
        "active": True,
    }
    # Create without Content-Type.
    r = scim("POST", "/Users", data=json.dumps(body).encode(), headers={"Accept": "application/scim+json"})
    assert r.status_code == 201, r.text
    u = r.json()
    cleanup.user(u["id"])
    assert u["active"] is True and u["userName"] == name and u["name"] == body["name"]
    first = scim("GET", "/Users", params={"count": 1, "startIndex": 1}).json()["Resources"][0]
    for key in ("id", "userName", "active"):
        assert key in first
    got = scim("GET", f"/Users/{u['id']}").json()
    assert got["id"] == u["id"] and got["name"] == body["name"] and got["emails"][0]["value"] == name
    assert scim("GET", "/Users", params={"filter": f'userName eq "nobody-{uniq}@atko.example"'}).json()["totalResults"] == 0
    assert_scim_error(scim("GET", "/Users/010101010101010101010101"), 404)
    assert_scim_error(scim("POST", "/Users", data=json.dumps(body).encode(), headers={"Accept": "application/scim+json"}), 409)
    # Username case sensitivity check.
    r = scim("GET", "/Users", params={"filter": f'userName eq "{name.upper()}"'})
    assert [x["id"] for x in r.json()["Resources"]] == [u["id"]]
    assert_scim_error(scim("GET", "/Users", params={"filter": name.upper()}), 400, "invalidFilter")
    assert_scim_error(scim("GET", "/Users", token="not-the-token"), 401)
