"""OneLogin's SCIM provisioner (shared/research/idp-clients.md §4): the initial connection
lookup, create from the admin's SCIM JSON template (SCIM 2.0 form), get by id, update,
suspend, delete, list. The legacy SCIM 1.0 template is refused cleanly."""

from __future__ import annotations

import pytest

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, assert_scim_error
from idp_requests import onelogin
from idp_requests import onelogin_template as template

pytestmark = pytest.mark.mapped_fields


def test_onelogin_lifecycle(scim, emulator):
    # Initial connection: a userName known not to exist → 200 and an empty list.
    r = onelogin(scim, "GET", "/Users", params={"filter": 'userName eq "onelogin-connection-test-7f1e"'})
    assert r.status_code == 200, r.text
    assert r.json()["schemas"] == [LIST_RESPONSE] and r.json()["totalResults"] == 0

    # Get User with userName filter, then Create User.
    assert onelogin(scim, "GET", "/Users", params={"filter": 'userName eq "mia.wong@example.com"'}).json()["totalResults"] == 0
    body = template("mia.wong@example.com", "mia.wong@example.com", "Mia", "Wong", "Mia Wong", title="Designer",
                    **{"schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: {"department": "Design"}})
    r = onelogin(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    d = emulator.drupal_user(uid)
    assert (d["name"], d["mail"], d["status"]) == ("mia.wong@example.com", "mia.wong@example.com", True)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"], d["field_title"], d["field_department"]) == (
        "Mia", "Wong", "Mia Wong", "Designer", "Design")

    # Get User by ID.
    got = onelogin(scim, "GET", f"/Users/{uid}").json()
    assert got["userName"] == "mia.wong@example.com" and got["active"] is True

    # Update User: the template again with changed values (a replace).
    body = template("mia.wong@example.com", "mia.wong@example.com", "Mia", "Wong-Lee", "Mia Wong-Lee", title="Lead Designer",
                    **{"schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: {"department": "Design"}})
    r = onelogin(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(uid)
    assert (d["field_family_name"], d["field_display_name"], d["field_title"], d["status"]) == ("Wong-Lee", "Mia Wong-Lee", "Lead Designer", True)

    # Suspend (deprovisioning choice "Suspend"): active false.
    r = onelogin(scim, "PUT", f"/Users/{uid}", {**body, "active": False})
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(uid)["status"] is False
    assert onelogin(scim, "GET", f"/Users/{uid}").json()["active"] is False

    # Get Users.
    listed = onelogin(scim, "GET", "/Users").json()
    assert uid in {u["id"] for u in listed["Resources"]}

    # Delete User (deprovisioning choice "Delete").
    assert onelogin(scim, "DELETE", f"/Users/{uid}").status_code == 204
    assert_scim_error(onelogin(scim, "GET", f"/Users/{uid}"), 404)
    assert onelogin(scim, "GET", "/Users", params={"filter": 'userName eq "mia.wong@example.com"'}).json()["totalResults"] == 0


def test_onelogin_template_quirks(scim, emulator):
    """String `active`, `"id": null`, and no email marked primary (the first one is kept)."""
    body = template("sam@example.com", "sam@example.com", "Sam", "Ray", "Sam Ray", active="true", id=None)
    body["emails"] = [{"value": "sam@example.com", "type": "work"}, {"value": "sam.home@example.com", "type": "home"}]
    r = onelogin(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    d = emulator.drupal_user(r.json()["id"])
    assert (d["mail"], d["status"]) == ("sam@example.com", True)
    body = template("kim@example.com", "kim@example.com", "Kim", "Lo", "Kim Lo", active="false")
    body["emails"] = [{"value": "kim@example.com"}]
    r = onelogin(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    d = emulator.drupal_user(r.json()["id"])
    assert (d["mail"], d["status"]) == ("kim@example.com", False)


def test_onelogin_scimusername_that_is_not_an_email(scim, emulator):
    r = onelogin(scim, "POST", "/Users", template("mwong", "mia.w@example.com", "Mia", "W", "Mia W"))
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["name"] == "mwong"
    r = onelogin(scim, "GET", "/Users", params={"filter": 'userName eq "MWONG"'})
    assert r.json()["totalResults"] == 1


def test_onelogin_legacy_scim_1_template_is_refused_cleanly(scim, emulator, drupal_requests):
    """The documented "Enterprise User Schema" template uses SCIM 1.0 URNs and `emails` as an
    object: a SCIM 1.1 client. A 400 naming `schemas`, and nothing reaches Drupal."""
    body = {
        "schemas": ["urn:scim:schemas:core:1.0", "urn:scim:schemas:extension:enterprise:1.0"],
        "userName": "legacy@example.com",
        "name": {"familyName": "Legacy", "givenName": "Lee", "formatted": "Lee Legacy"},
        "emails": {"value": "legacy@example.com", "type": "work", "primary": True},
        "title": "x",
        "urn:scim:schemas:extension:enterprise:1.0": {"department": "x", "manager": {"managerId": "1", "displayName": "y"}},
    }
    err = assert_scim_error(onelogin(scim, "POST", "/Users", body), 400, "invalidValue")
    assert "schema" in err["detail"].lower()
    assert drupal_requests() == []
