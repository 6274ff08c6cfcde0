"""OneLogin's SCIM provisioner on a real Drupal (shared/research/idp-clients.md §4; the
emulator's version is tests/e2e/test_idp_onelogin.py): connection lookup, create from the
admin's SCIM 2.0 template, get, update, suspend, list, delete; the template's quirks."""

from __future__ import annotations

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, assert_scim_error
from idp_requests import onelogin
from idp_requests import onelogin_template as template


def test_onelogin_lifecycle(scim, site, uniq, cleanup):
    email = f"mia.wong.{uniq}@example.com"
    r = onelogin(scim, "GET", "/Users", params={"filter": f'userName eq "onelogin-connection-test-{uniq}"'})
    assert r.status_code == 200 and r.json()["schemas"] == [LIST_RESPONSE] and r.json()["totalResults"] == 0, r.text
    assert onelogin(scim, "GET", "/Users", params={"filter": f'userName eq "{email}"'}).json()["totalResults"] == 0
    extra = {"schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: {"department": "Design"}}
    r = onelogin(scim, "POST", "/Users", template(email, email, "Mia", "Wong", "Mia Wong", title="Designer", **extra))
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    d = site.user(uid)
    assert (d["name"], d["mail"], d["status"]) == (email, email, True)
    assert (d["field_given_name"], d["field_family_name"], d["field_display_name"], d["field_title"], d["field_department"]) == (
        "Mia", "Wong", "Mia Wong", "Designer", "Design")
    got = onelogin(scim, "GET", f"/Users/{uid}").json()
    assert got["userName"] == email and got["active"] is True

    body = template(email, email, "Mia", "Wong-Lee", "Mia Wong-Lee", title="Lead Designer", **extra)
    r = onelogin(scim, "PUT", f"/Users/{uid}", body)
    assert r.status_code == 200, r.text
    d = site.user(uid)
    assert (d["field_family_name"], d["field_display_name"], d["field_title"], d["status"]) == (
        "Wong-Lee", "Mia Wong-Lee", "Lead Designer", True)

    # Suspend.
    r = onelogin(scim, "PUT", f"/Users/{uid}", {**body, "active": False})
    assert r.status_code == 200, r.text
    assert site.user(uid)["status"] is False
    assert onelogin(scim, "GET", f"/Users/{uid}").json()["active"] is False

    # Get Users: the list has it (filtered to this user's name, wherever it sits on the site).
    listed = onelogin(scim, "GET", "/Users", params={"filter": f'userName sw "mia.wong.{uniq}"'}).json()
    assert [u["id"] for u in listed["Resources"]] == [uid]

    # Delete.
    assert onelogin(scim, "DELETE", f"/Users/{uid}").status_code == 204
    assert_scim_error(onelogin(scim, "GET", f"/Users/{uid}"), 404)
    assert onelogin(scim, "GET", "/Users", params={"filter": f'userName eq "{email}"'}).json()["totalResults"] == 0


def test_onelogin_template_quirks(scim, site, uniq, cleanup):
    """String `active`, `"id": null`, no email marked primary (the first is kept), a
    scimusername that is not an address."""
    body = template(f"sam.{uniq}@example.com", f"sam.{uniq}@example.com", "Sam", "Ray", "Sam Ray", active="true", id=None)
    body["emails"] = [{"value": f"sam.{uniq}@example.com", "type": "work"}, {"value": f"sam.home.{uniq}@example.com", "type": "home"}]
    r = onelogin(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    d = site.user(cleanup.user(r.json()["id"]))
    assert (d["mail"], d["status"]) == (f"sam.{uniq}@example.com", True)

    body = template(f"kim.{uniq}@example.com", f"kim.{uniq}@example.com", "Kim", "Lo", "Kim Lo", active="false")
    body["emails"] = [{"value": f"kim.{uniq}@example.com"}]
    r = onelogin(scim, "POST", "/Users", body)
    assert r.status_code == 201, r.text
    d = site.user(cleanup.user(r.json()["id"]))
    assert (d["mail"], d["status"]) == (f"kim.{uniq}@example.com", False)

    r = onelogin(scim, "POST", "/Users", template(f"mwong{uniq}", f"mia.w.{uniq}@example.com", "Mia", "W", "Mia W"))
    assert r.status_code == 201, r.text
    assert site.user(cleanup.user(r.json()["id"]))["name"] == f"mwong{uniq}"
    r = onelogin(scim, "GET", "/Users", params={"filter": f'userName eq "MWONG{uniq.upper()}"'})
    assert r.json()["totalResults"] == 1
