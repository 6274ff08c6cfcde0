"""JumpCloud's custom SCIM 2.0 integration, request by request (shared/research/idp-clients.md
§1): Test Connection, lookup before create, create, attribute update PATCH (one `replace` per
attribute), deactivate, delete. Drupal's state is checked after every step."""

from __future__ import annotations

import pytest

from harness import LIST_RESPONSE, PATCH_OP, assert_scim_error, jumpcloud_user
from idp_requests import DEACTIVATE, lookup
from idp_requests import JUMPCLOUD_UPDATE as UPDATE

pytestmark = pytest.mark.mapped_fields

EMAIL = "jane.doe@example.com"

# §1.4-A
CREATE = jumpcloud_user(EMAIL)


def test_jumpcloud_activation_sequence(scim, emulator, drupal_requests, clear_drupal_requests):
    # 1. Test Connection: GET /Users
    r = scim("GET", "/Users")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/scim+json"
    assert r.json()["schemas"] == [LIST_RESPONSE]

    # 2. Lookup before create (user_lookup_provision): not there.
    body = lookup(scim, EMAIL)
    assert body["totalResults"] == 0 and body["Resources"] == []

    # 3. Create (user_create_provision).
    r = scim("POST", "/Users", json=CREATE)
    assert r.status_code == 201, r.text
    user = r.json()
    assert isinstance(user["id"], str), "JumpCloud fails on a non-string id"
    uid = user["id"]
    assert user["name"] == {"givenName": "Jane", "familyName": "Doe"}
    assert user["displayName"] == "Jane Doe"
    d = emulator.drupal_user(uid)
    assert (d["name"], d["mail"], d["status"]) == (EMAIL, EMAIL, True)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"]) == ("Jane", "Doe", "Jane Doe")

    # 4. Lookup again (now found), then the update PATCH (user_update_provision).
    body = lookup(scim, EMAIL)
    assert [u["id"] for u in body["Resources"]] == [uid]
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{uid}", json=UPDATE)
    assert r.status_code == 200, r.text
    assert r.json()["name"]["givenName"] == "John" and r.json()["active"] is False
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"], "single-valued replaces: one read, one Drupal write"
    d = emulator.drupal_user(uid)
    assert (d["field_given_name"], d["field_family_name"], d["status"]) == ("John", "Doe", False)
    assert d["field_display_name"] == "Jane Doe", "untouched attributes stay"

    # 5. Re-activate, then deactivate (user_deprovision: unbind / suspend / password expired).
    r = scim("PATCH", f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert r.status_code == 200 and emulator.drupal_user(uid)["status"] is True
    r = scim("PATCH", f"/Users/{uid}", json=DEACTIVATE)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert emulator.drupal_user(uid)["status"] is False
    # A deactivated user is still found (JumpCloud looks it up to decide create vs update).
    assert [u["id"] for u in lookup(scim, EMAIL)["Resources"]] == [uid]
    assert scim("GET", f"/Users/{uid}").json()["active"] is False

    # 6. Delete (the activation test user).
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    assert lookup(scim, EMAIL)["totalResults"] == 0
    d = emulator.drupal_user(uid)
    assert d is None or (d["status"] is False and d["name"] != EMAIL)

    # JumpCloud re-tests with the same address later: it must be new again.
    r = scim("POST", "/Users", json=CREATE)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != uid


def test_jumpcloud_prebuilt_connector_attributes(scim, emulator):
    """Prebuilt connectors also send employeeIdentifier → externalId and jobTitle → title."""
    body = {**CREATE, "externalId": "5f3c2a1b9e8d7c6b5a4f3e2d", "title": "Accountant"}
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    d = emulator.drupal_user(uid)
    assert (d["field_external_id"], d["field_title"]) == ("5f3c2a1b9e8d7c6b5a4f3e2d", "Accountant")
    r = scim("PATCH", f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "Controller"},
        {"op": "replace", "path": "displayName", "value": "Jane D."},
    ]})
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(uid)
    assert (d["field_title"], d["field_display_name"]) == ("Controller", "Jane D.")
    r = scim("GET", "/Users", params={"filter": 'externalId eq "5f3c2a1b9e8d7c6b5a4f3e2d"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]


def test_jumpcloud_test_email_must_be_new(scim, create_user):
    """Activation with an address that already exists fails (JumpCloud tells the admin so)."""
    create_user(EMAIL)
    assert_scim_error(scim("POST", "/Users", json=CREATE), 409, "uniqueness")


def test_jumpcloud_import_pages_through_everyone(scim, seed_users):
    seed_users([{"name": f"jc-{i:03d}@example.com", "mail": f"jc-{i:03d}@example.com"} for i in range(130)])
    seen, start = [], 1
    while True:
        body = scim("GET", "/Users", params={"startIndex": start}).json()
        seen += [u["userName"] for u in body["Resources"]]
        start += body["itemsPerPage"]
        if not body["Resources"] or start > body["totalResults"]:
            break
    assert len(seen) == len(set(seen)) == 131
