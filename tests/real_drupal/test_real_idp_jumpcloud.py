"""JumpCloud's custom SCIM 2.0 integration on a real Drupal, request by request
(shared/research/idp-clients.md §1; the emulator's version is tests/e2e/test_idp_jumpcloud.py):
Test Connection, lookup before create, create, the attribute PATCH, deactivate, delete and
re-create; Drupal's state read back after every step."""

from __future__ import annotations

import pytest

from harness import LIST_RESPONSE, PATCH_OP, assert_scim_error
from harness import jumpcloud_user as create_body  # §1.4-A
from idp_requests import ACTIVATE, DEACTIVATE, lookup
from idp_requests import JUMPCLOUD_UPDATE as UPDATE


@pytest.mark.smoke
def test_jumpcloud_activation_sequence(scim, site, uniq, cleanup):
    email = f"jane.doe.{uniq}@example.com"
    # 1. Test Connection: GET /Users.
    r = scim("GET", "/Users")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/scim+json"
    assert r.json()["schemas"] == [LIST_RESPONSE]

    # 2. Lookup before create: not there.
    body = lookup(scim, email)
    assert body["totalResults"] == 0 and body["Resources"] == []

    # 3. Create.
    r = scim("POST", "/Users", json=create_body(email))
    assert r.status_code == 201, r.text
    user = r.json()
    uid = cleanup.user(user["id"])
    assert isinstance(uid, str), "JumpCloud fails on a non-string id"
    assert user["name"] == {"givenName": "Jane", "familyName": "Doe"} and user["displayName"] == "Jane Doe"
    assert r.headers["Location"] == user["meta"]["location"]
    d = site.user(uid)
    assert (d["name"], d["mail"], d["status"]) == (email, email, True)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"]) == ("Jane", "Doe", "Jane Doe")

    # 4. Lookup again (found), then the attribute PATCH.
    assert [u["id"] for u in lookup(scim, email)["Resources"]] == [uid]
    r = scim("PATCH", f"/Users/{uid}", json=UPDATE)
    assert r.status_code == 200, r.text
    assert r.json()["name"]["givenName"] == "John" and r.json()["active"] is False
    d = site.user(uid)
    assert (d["field_given_name"], d["field_family_name"], d["status"]) == ("John", "Doe", False)
    assert d["field_display_name"] == "Jane Doe", "untouched attributes stay"

    # 5. Re-activate, then deactivate (unbind / suspend).
    r = scim("PATCH", f"/Users/{uid}", json=ACTIVATE)
    assert r.status_code == 200 and site.user(uid)["status"] is True
    r = scim("PATCH", f"/Users/{uid}", json=DEACTIVATE)
    assert r.status_code == 200 and r.json()["active"] is False
    assert site.user(uid)["status"] is False
    # A deactivated user is still found (JumpCloud looks it up to decide create vs update).
    assert [u["id"] for u in lookup(scim, email)["Resources"]] == [uid]
    assert scim("GET", f"/Users/{uid}").json()["active"] is False

    # 6. Delete: 204, then 404; the name and address are free again in Drupal.
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    assert lookup(scim, email)["totalResults"] == 0
    d = site.user(uid)
    assert d is None or (d["status"] is False and d["name"] != email and d["mail"] != email), d
    assert site.users_named(email) == []

    # JumpCloud re-tests with the same address later: it is new again.
    r = scim("POST", "/Users", json=create_body(email))
    assert r.status_code == 201, r.text
    assert cleanup.user(r.json()["id"]) != uid
    assert site.user(r.json()["id"])["name"] == email


def test_jumpcloud_prebuilt_connector_attributes(scim, site, uniq, cleanup):
    """Prebuilt connectors also send employeeIdentifier → externalId and jobTitle → title."""
    email = f"jc.prebuilt.{uniq}@example.com"
    ext = f"5f3c2a1b9e8d{uniq}"
    r = scim("POST", "/Users", json={**create_body(email), "externalId": ext, "title": "Accountant"})
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    d = site.user(uid)
    assert (d["field_external_id"], d["field_title"]) == (ext, "Accountant")
    r = scim("PATCH", f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "Controller"},
        {"op": "replace", "path": "displayName", "value": "Jane D."},
    ]})
    assert r.status_code == 200, r.text
    d = site.user(uid)
    assert (d["field_title"], d["field_display_name"]) == ("Controller", "Jane D.")
    r = scim("GET", "/Users", params={"filter": f'externalId eq "{ext}"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]
    # externalId is case-exact, whatever the database's collation.
    r = scim("GET", "/Users", params={"filter": f'externalId eq "{ext.upper()}"'})
    assert r.status_code == 200 and r.json()["totalResults"] == 0, r.text


def test_jumpcloud_test_email_must_be_new(scim, create_user, uniq, site):
    """Activation with an address that already exists fails (JumpCloud tells the admin so)."""
    email = f"jc.taken.{uniq}@example.com"
    create_user(email)
    assert_scim_error(scim("POST", "/Users", json=create_body(email)), 409, "uniqueness")
    # Another name with the same address: Drupal keeps one account per address.
    body = {**create_body(email), "userName": f"other.{uniq}"}
    assert_scim_error(scim("POST", "/Users", json=body), 409, "uniqueness")
    assert len(site.users_named(email)) == 1 and site.users_named(f"other.{uniq}") == []
