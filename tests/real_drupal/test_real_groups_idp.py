"""IdP group flows on a real Drupal (the emulator's version is tests/e2e/test_groups_idp.py):
JumpCloud's Activate (test user + test group with the user, bind/unbind, delete both),
Entra's empty create then PATCH Add (`$ref: null`, excludedAttributes=members lookups, the
default remove-with-value form, Replace displayName), Okta Push Groups (`members: []`, a
path-less rename sent with every membership change, `members[value eq …]` removals) and
OneLogin. Drupal's terms and field_scim_groups references are read back after every step."""

from __future__ import annotations

import json

import pytest

from harness import LIST_RESPONSE, assert_scim_error, jumpcloud_user
from harness import patch_op as ops
from idp_requests import CORE_GROUP, ENTRA_GROUP_URN, entra_get, group_body, patch_group
from idp_requests import entra_form as form


def create_group(scim, cleanup, name, members=None, **extra):
    body = group_body(name, members, **extra)
    r = scim("POST", "/Groups", json=body)
    assert r.status_code == 201, f"create group {name}: {r.status_code} {r.text[:500]}"
    cleanup.term(r.json()["id"])
    return r.json()


@pytest.mark.smoke
@pytest.mark.parametrize("order", ["group-first", "user-first"])
def test_jumpcloud_activate_with_group_management(scim, site, uniq, cleanup, order):
    email = f"jc.test.{uniq}@example.com"
    group = f"JumpCloud Test Group {uniq}"
    r = scim("GET", "/Users")
    assert r.status_code == 200 and r.json()["schemas"] == [LIST_RESPONSE], r.text
    assert scim("GET", "/Users", params={"filter": f'userName eq "{email}"'}).json()["totalResults"] == 0
    r = scim("POST", "/Users", json=jumpcloud_user(email))
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    # Group lookup by name, then the test group with the user (§1.4-D).
    r = scim("GET", "/Groups", params={"filter": f'displayName eq "{group}"'})
    assert r.status_code == 200 and r.json()["totalResults"] == 0, r.text
    gid = create_group(scim, cleanup, group, [uid])["id"]
    assert site.term(gid)["name"] == group
    assert site.members(gid) == {uid}
    # Updates: the user, the group (rename), unbind and bind again.
    assert scim("PATCH", f"/Users/{uid}", json=ops({"op": "replace", "path": "active", "value": True})).status_code == 200
    patch_group(scim, gid, {"op": "replace", "path": "displayName", "value": group + " 2"})
    patch_group(scim, gid, {"op": "add", "path": "members", "value": [{"value": uid}]})
    assert site.term(gid)["name"] == group + " 2"
    assert site.group_refs(uid) == [gid], "adding a member twice keeps one reference"
    patch_group(scim, gid, {"op": "remove", "path": "members", "value": [{"value": uid}]})
    assert site.group_refs(uid) == [] and site.members(gid) == set()
    patch_group(scim, gid, {"op": "add", "path": "members", "value": [{"value": uid}]})
    assert site.group_refs(uid) == [gid]
    got = scim("GET", f"/Groups/{gid}").json()
    assert [m["value"] for m in got["members"]] == [uid]
    assert [g["value"] for g in scim("GET", f"/Users/{uid}").json()["groups"]] == [gid]

    def delete_group():
        assert scim("DELETE", f"/Groups/{gid}").status_code == 204

    def delete_user():
        assert scim("DELETE", f"/Users/{uid}").status_code == 204

    for step in ([delete_group, delete_user] if order == "group-first" else [delete_user, delete_group]):
        step()
    assert_scim_error(scim("GET", f"/Groups/{gid}"), 404)
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    # Gone in Drupal: no term, no account under that name or address; the retired account
    # (cancel) references no deleted term.
    assert site.term(gid) is None
    assert site.users_named(email) == []
    acct = site.user(uid)
    if acct is not None:
        assert acct["status"] is False and acct["mail"] != email
        assert site.group_refs(uid) == [], "the retired account keeps a reference to the deleted group"


def test_entra_group_flow(scim, gateway, site, uniq, drupal_user, cleanup):
    a = drupal_user(f"a.{uniq}@contoso.com")["id"]
    b = drupal_user(f"b.{uniq}@contoso.com")["id"]
    name = f"Sales-EU-{uniq}"
    body = entra_get(gateway, "/Groups?excludedAttributes=members&filter=" + form(f'displayName eq "{name}"'), site.timeout)
    assert body["totalResults"] == 0 and body["Resources"] == []
    r = scim("POST", "/Groups", json={"schemas": [CORE_GROUP, ENTRA_GROUP_URN], "externalId": f"8aa1a0c0-{uniq}",
                                      "displayName": name, "meta": {"resourceType": "Group"}})
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    assert r.json().get("members", []) == []
    assert site.term(gid)["name"] == name
    # Add members, several per op, `$ref: null` (§2.5-F).
    patch_group(scim, gid, {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}, {"$ref": None, "value": b}]})
    assert site.members(gid) == {a, b}
    g = entra_get(gateway, f"/Groups/{gid}?excludedAttributes=members", site.timeout)
    assert "members" not in g and g["displayName"] == name
    found = entra_get(gateway, "/Groups?excludedAttributes=members&filter=" + form(f'displayName eq "{name.lower()}"'), site.timeout)
    assert [x["id"] for x in found["Resources"]] == [gid] and "members" not in found["Resources"][0]
    # Rename.
    patch_group(scim, gid, {"op": "Replace", "path": "displayName", "value": f"Sales-Europe-{uniq}"})
    assert site.term(gid)["name"] == f"Sales-Europe-{uniq}"
    # Remove (default, non-compliant form), then re-add the rest.
    patch_group(scim, gid, {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": a}]},
                {"op": "Add", "path": "members", "value": [{"$ref": None, "value": b}]})
    assert site.members(gid) == {b} and site.group_refs(a) == []
    # Duplicate create (another case): 409.
    r = scim("POST", "/Groups", json={"schemas": [CORE_GROUP, ENTRA_GROUP_URN], "displayName": f"SALES-EUROPE-{uniq.upper()}"})
    assert_scim_error(r, 409, "uniqueness")
    # aadOptscim062020 removal form, then a path-less replace.
    patch_group(scim, gid, {"op": "remove", "path": f'members[value eq "{b}"]'})
    assert site.members(gid) == set()
    patch_group(scim, gid, {"op": "replace", "value": {"displayName": f"Sales-EMEA-{uniq}"}})
    assert site.term(gid)["name"] == f"Sales-EMEA-{uniq}"
    assert scim("DELETE", f"/Groups/{gid}").status_code == 204
    assert site.term(gid) is None
    assert_scim_error(scim("GET", f"/Groups/{gid}"), 404)
    assert_scim_error(scim("DELETE", f"/Groups/{gid}"), 404)


def test_okta_push_groups_flow(scim, gateway, site, uniq, drupal_user, cleanup):
    u1 = drupal_user(f"test.user.{uniq}@okta.local")["id"]
    u2 = drupal_user(f"other.user.{uniq}@okta.local")["id"]
    name = f"Okta Engineering {uniq}"
    r = gateway.scim("POST", "/Groups", data=json.dumps({"schemas": [CORE_GROUP], "displayName": name, "members": []}),
                     headers={"Content-Type": "application/scim+json; charset=utf-8"}, timeout=site.timeout)
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    patch_group(scim, gid, {"op": "replace", "value": {"id": gid, "displayName": name}},
                {"op": "add", "path": "members", "value": [{"value": u1, "display": "u1"}, {"value": u2, "display": "u2"}]})
    assert site.members(gid) == {u1, u2}
    renamed = f"Okta Platform {uniq}"
    patch_group(scim, gid, {"op": "replace", "value": {"id": gid, "displayName": renamed}},
                {"op": "remove", "path": f'members[value eq "{u2}"]'})
    assert site.term(gid)["name"] == renamed and site.members(gid) == {u1}
    patch_group(scim, gid, {"op": "replace", "value": {"id": gid, "displayName": renamed}},
                {"op": "replace", "path": "members", "value": [{"value": u2, "display": "u2"}]})
    assert site.members(gid) == {u2}
    r = scim("GET", "/Groups", params={"filter": f'displayName eq "{renamed}"', "startIndex": 1, "count": 100})
    assert [g["id"] for g in r.json()["Resources"]] == [gid]
    r = scim("GET", f"/Users/{u2}")
    assert [(g["value"], g["display"]) for g in r.json()["groups"]] == [(gid, renamed)]
    assert scim("DELETE", f"/Groups/{gid}").status_code == 204
    assert site.term(gid) is None
    assert site.group_refs(u1) == [] and site.group_refs(u2) == []


def test_okta_rename_to_another_groups_name_is_409(scim, site, uniq, drupal_user, cleanup):
    u1 = drupal_user(f"x.{uniq}@okta.local")["id"]
    create_group(scim, cleanup, f"Taken {uniq}")
    gid = create_group(scim, cleanup, f"Mine {uniq}")["id"]
    r = patch_group(scim, gid, {"op": "replace", "value": {"id": gid, "displayName": f"taken {uniq}"}},
                    {"op": "add", "path": "members", "value": [{"value": u1}]}, expect=None)
    assert_scim_error(r, 409, "uniqueness")
    assert site.term(gid)["name"] == f"Mine {uniq}"
    assert site.members(gid) == set()


def test_onelogin_groups(scim, gateway, site, uniq, drupal_user, cleanup):
    u1 = drupal_user(f"ol.{uniq}@example.com")["id"]
    r = scim("GET", "/Groups")
    assert r.status_code == 200 and r.json()["schemas"] == [LIST_RESPONSE], r.text
    gid = create_group(scim, cleanup, f"OneLogin Role {uniq}")["id"]
    r = gateway.scim("PATCH", f"/Groups/{gid}", data=json.dumps(ops({"op": "add", "path": "members", "value": [{"value": u1}]})),
                     headers={"Content-Type": "application/json"}, timeout=site.timeout)
    assert r.status_code == 204, r.text
    assert site.members(gid) == {u1}
