"""IdP group flows, request by request (shared/research/idp-clients.md): JumpCloud's
Activate (test user + test group with the user, update, delete both), Entra's empty create
then PATCH Add (extra schema URN, `$ref: null`, excludedAttributes=members lookups, default
remove-with-value form, Replace displayName), Okta Push Groups (`members: []` create, a
path-less rename sent with every membership change, `members[value eq …]` removals).
Drupal's state is checked after every step."""

from __future__ import annotations

import json

import pytest

from harness import CORE_USER, LIST_RESPONSE, assert_scim_error, jumpcloud_user
from harness import patch_op as ops
from idp_requests import ENTRA_GROUP_URN, entra_get
from idp_requests import entra_form as form
from groups_support import (  # noqa: F401  (fixtures)
    CORE_GROUP,
    create_group,
    drupal_group_refs,
    drupal_members,
    drupal_term,
    drupal_terms,
    gateway_log,
    groups_gw,
    gscim,
    is_member_lookup,
    patch_group,
)

# ---- JumpCloud -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["group-first", "user-first"])
def test_jumpcloud_activate_with_group_management(groups_gw, gscim, emulator, order):
    email = "jc.test@example.com"
    # Test Connection.
    r = gscim("GET", "/Users")
    assert r.status_code == 200 and r.json()["schemas"] == [LIST_RESPONSE]
    # Test user.
    r = gscim("GET", "/Users", params={"filter": f'userName eq "{email}"'})
    assert r.json()["totalResults"] == 0
    r = gscim("POST", "/Users", json=jumpcloud_user(email))
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    # Group lookup by name (take-over), then the test group with the user (§1.4-D).
    r = gscim("GET", "/Groups", params={"filter": 'displayName eq "JumpCloud Test Group"'})
    assert r.status_code == 200 and r.json()["totalResults"] == 0
    r = gscim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": "JumpCloud Test Group", "members": [{"value": uid}]})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert drupal_members(emulator, gid) == {uid}
    assert r.json()["members"][0]["value"] == uid
    # Updates: the user (one replace per attribute), the group (rename, member add again, remove).
    r = gscim("PATCH", f"/Users/{uid}", json=ops({"op": "replace", "path": "active", "value": True}))
    assert r.status_code == 200, r.text
    patch_group(groups_gw, gid, {"op": "replace", "path": "displayName", "value": "JumpCloud Test Group 2"})
    patch_group(groups_gw, gid, {"op": "add", "path": "members", "value": [{"value": uid}]})
    assert drupal_term(emulator, gid)["name"] == "JumpCloud Test Group 2"
    assert drupal_group_refs(emulator, uid) == [gid]
    patch_group(groups_gw, gid, {"op": "remove", "path": "members", "value": [{"value": uid}]})
    assert drupal_group_refs(emulator, uid) == []
    patch_group(groups_gw, gid, {"op": "add", "path": "members", "value": [{"value": uid}]})
    assert drupal_group_refs(emulator, uid) == [gid]

    # Delete both.
    def delete_group():
        r = gscim("DELETE", f"/Groups/{gid}")
        assert r.status_code == 204, r.text

    def delete_user():
        r = gscim("DELETE", f"/Users/{uid}")
        assert r.status_code == 204, r.text

    steps = [delete_group, delete_user] if order == "group-first" else [delete_user, delete_group]
    for step in steps:
        step()
    assert_scim_error(gscim("GET", f"/Groups/{gid}"), 404)
    assert_scim_error(gscim("GET", f"/Users/{uid}"), 404)
    # Everything is gone in Drupal: no term, no account under that name or email, and the
    # (retired) account holds no reference to the deleted term.
    assert drupal_terms(emulator) == {}
    assert emulator.drupal_user_by_name(email) is None
    assert all(u.get("mail") != email for u in emulator.drupal_users())
    acct = emulator.drupal_user(uid)
    if acct is not None:
        assert acct["status"] is False
        assert drupal_group_refs(emulator, uid) == [], "the retired account keeps a reference to the deleted group"


# ---- Entra ID ---------------------------------------------------------------------------------


def test_entra_group_flow(groups_gw, gscim, emulator, seed_user):
    a = seed_user("a@contoso.com", mail="a@contoso.com")["uuid"]
    b = seed_user("b@contoso.com", mail="b@contoso.com")["uuid"]
    # Find group by displayName, members excluded (form-encoded as Entra sends it).
    emulator.clear_requests()
    body = entra_get(groups_gw, "/Groups?excludedAttributes=members&filter=" + form('displayName eq "Sales-EU"'))
    assert body["totalResults"] == 0 and body["Resources"] == []
    # Create with no members, the extra schema URN, externalId and meta (§2.5-E).
    r = gscim(
        "POST",
        "/Groups",
        json={
            "schemas": [CORE_GROUP, ENTRA_GROUP_URN],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Sales-EU",
            "meta": {"resourceType": "Group"},
        },
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert r.json().get("members", []) == []
    assert drupal_term(emulator, gid)["name"] == "Sales-EU"
    # Add members, several per op, `$ref: null` (§2.5-F).
    patch_group(groups_gw, gid, {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}, {"$ref": None, "value": b}]})
    assert drupal_members(emulator, gid) == {a, b}
    # Get group by id excluding members; find it again, different case.
    emulator.clear_requests()
    g = entra_get(groups_gw, f"/Groups/{gid}?excludedAttributes=members")
    assert "members" not in g and g["displayName"] == "Sales-EU"
    found = entra_get(groups_gw, "/Groups?excludedAttributes=members&filter=" + form('displayName eq "sales-eu"'))
    assert [x["id"] for x in found["Resources"]] == [gid] and "members" not in found["Resources"][0]
    assert not any(is_member_lookup(q) for q in gateway_log(emulator)), "excludedAttributes=members read members"
    # Rename (§2.4 #13): 204.
    patch_group(groups_gw, gid, {"op": "Replace", "path": "displayName", "value": "Sales-Europe"})
    assert drupal_term(emulator, gid)["name"] == "Sales-Europe"
    # Remove (default, non-compliant form): value list, no filter. Entra then re-adds the rest.
    patch_group(
        groups_gw,
        gid,
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": a}]},
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": b}]},
    )
    assert drupal_members(emulator, gid) == {b}
    assert drupal_group_refs(emulator, a) == []
    # Duplicate create: 409.
    r = gscim("POST", "/Groups", json={"schemas": [CORE_GROUP, ENTRA_GROUP_URN], "displayName": "SALES-EUROPE"})
    assert_scim_error(r, 409, "uniqueness")
    # aadOptscim062020 removal form.
    patch_group(groups_gw, gid, {"op": "remove", "path": f'members[value eq "{b}"]'})
    assert drupal_members(emulator, gid) == set()
    # Validator: path-less replace of externalId / displayName.
    patch_group(groups_gw, gid, {"op": "replace", "value": {"displayName": "Sales-EMEA"}})
    assert drupal_term(emulator, gid)["name"] == "Sales-EMEA"
    # Delete, then 404, and 404 on a second delete.
    r = gscim("DELETE", f"/Groups/{gid}")
    assert r.status_code == 204, r.text
    assert drupal_term(emulator, gid) is None
    assert_scim_error(gscim("GET", f"/Groups/{gid}"), 404)
    assert_scim_error(gscim("DELETE", f"/Groups/{gid}"), 404)


def test_entra_user_create_with_groups_and_roles_is_ignored(groups_gw, gscim, emulator):
    """Entra/Okta send `roles: []` / `groups: []` on user creates."""
    body = {**jumpcloud_user("g@contoso.com"), "schemas": [CORE_USER], "roles": [], "groups": []}
    r = gscim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    assert r.json().get("groups", []) == []


# ---- Okta -------------------------------------------------------------------------------------


def test_okta_push_groups_flow(groups_gw, gscim, emulator, seed_user):
    u1 = seed_user("test.user@okta.local", mail="test.user@okta.local")["uuid"]
    u2 = seed_user("other.user@okta.local", mail="other.user@okta.local")["uuid"]
    # Okta sends its Content-Type with a charset.
    r = groups_gw.scim(
        "POST",
        "/Groups",
        data=json.dumps({"schemas": [CORE_GROUP], "displayName": "Okta Engineering", "members": []}),
        headers={"Content-Type": "application/scim+json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    # Membership change with the rename (same name) sent along (§3.4-C + S-O1).
    patch_group(
        groups_gw,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "Okta Engineering"}},
        {"op": "add", "path": "members", "value": [{"value": u1, "display": "test.user@okta.local"}, {"value": u2, "display": "other.user@okta.local"}]},
    )
    assert drupal_members(emulator, gid) == {u1, u2}
    # Rename in Okta: the next push carries the new name and a removal by filter.
    patch_group(
        groups_gw,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "Okta Platform"}},
        {"op": "remove", "path": f'members[value eq "{u2}"]'},
    )
    assert drupal_term(emulator, gid)["name"] == "Okta Platform"
    assert drupal_members(emulator, gid) == {u1}
    # Okta also pushes the full list with replace.
    patch_group(
        groups_gw,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "Okta Platform"}},
        {"op": "replace", "path": "members", "value": [{"value": u2, "display": "other.user@okta.local"}]},
    )
    assert drupal_members(emulator, gid) == {u2}
    # Okta's Group lookups before push: GET /Groups?filter=displayName eq.
    r = gscim("GET", "/Groups", params={"filter": 'displayName eq "Okta Platform"', "startIndex": 1, "count": 100})
    assert [g["id"] for g in r.json()["Resources"]] == [gid]
    # The users show the group.
    r = gscim("GET", f"/Users/{u2}")
    assert [(g["value"], g["display"]) for g in r.json()["groups"]] == [(gid, "Okta Platform")]
    # Unlink + delete → 204.
    r = gscim("DELETE", f"/Groups/{gid}")
    assert r.status_code == 204
    assert drupal_terms(emulator) == {}
    assert drupal_group_refs(emulator, u1) == [] and drupal_group_refs(emulator, u2) == []


def test_okta_rename_to_another_groups_name_is_409(groups_gw, gscim, emulator, seed_user):
    u1 = seed_user("x@okta.local", mail="x@okta.local")["uuid"]
    create_group(groups_gw, "Taken")
    gid = create_group(groups_gw, "Mine")["id"]
    r = patch_group(
        groups_gw,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "taken"}},
        {"op": "add", "path": "members", "value": [{"value": u1}]},
        expect=None,
    )
    assert_scim_error(r, 409, "uniqueness")
    assert drupal_term(emulator, gid)["name"] == "Mine"
    assert drupal_members(emulator, gid) == set()


def test_onelogin_get_groups_and_patch(groups_gw, gscim, emulator, seed_user):
    """OneLogin: Get Groups, Create Group, Patch Group (application/json responses are
    accepted by it; the gateway answers scim+json)."""
    u1 = seed_user("ol@example.com", mail="ol@example.com")["uuid"]
    r = gscim("GET", "/Groups")
    assert r.status_code == 200 and r.json()["totalResults"] == 0
    gid = create_group(groups_gw, "OneLogin Role")["id"]
    r = groups_gw.scim(
        "PATCH",
        f"/Groups/{gid}",
        data=json.dumps(ops({"op": "add", "path": "members", "value": [{"value": u1}]})),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    assert drupal_members(emulator, gid) == {u1}
