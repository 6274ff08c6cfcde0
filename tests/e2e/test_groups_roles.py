"""Role grants (`groups.role_grants`): members of a group hold its Drupal roles. Here
Engineering and Docs both grant `content_editor`; `administrator` is granted by no group, so
its holders are read-only to SCIM."""

from __future__ import annotations

import pytest

from groups_support import (  # noqa: F401  (fixtures)
    ROLE_GRANTS,
    create_group,
    delete_term_directly,
    drupal_group_refs,
    drupal_roles,
    gateway_log,
    grants_gw,
    group_body,
    patch_group,
)

assert ROLE_GRANTS == {"Engineering": ["content_editor"], "Docs": ["content_editor"]}


@pytest.fixture
def u(seed_user):
    return {
        "ann": seed_user("ann@example.com", mail="ann@example.com")["uuid"],
        "boss": seed_user("boss@example.com", mail="boss@example.com", roles=["administrator"])["uuid"],
        "bob": seed_user("bob@example.com", mail="bob@example.com")["uuid"],
    }


def add(uid):
    return {"op": "add", "path": "members", "value": [{"value": uid}]}


def remove(uid):
    return {"op": "remove", "path": f'members[value eq "{uid}"]'}


def test_join_grants_and_leave_revokes(grants_gw, emulator, u):
    eng = create_group(grants_gw, "Engineering")["id"]
    assert drupal_roles(emulator, u["ann"]) == set()
    patch_group(grants_gw, eng, add(u["ann"]))
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}
    patch_group(grants_gw, eng, remove(u["ann"]))
    assert drupal_roles(emulator, u["ann"]) == set()
    assert drupal_group_refs(emulator, u["ann"]) == []


def test_create_with_members_grants(grants_gw, emulator, u):
    create_group(grants_gw, "Engineering", [u["ann"], u["bob"]])
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}
    assert drupal_roles(emulator, u["bob"]) == {"content_editor"}


def test_group_name_compared_without_case(grants_gw, emulator, u):
    eng = create_group(grants_gw, "engineering", [u["ann"]])["id"]
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}
    patch_group(grants_gw, eng, {"op": "remove", "path": "members", "value": [{"value": u["ann"]}]})
    assert drupal_roles(emulator, u["ann"]) == set()


def test_an_account_holding_a_role_no_group_grants_is_read_only(grants_gw, emulator, u):
    """`administrator` is granted by no group: its holder is no account SCIM may change, so
    adding it to a group, or removing it, is left out (the answer's `Warning` says so) and
    changes nothing of it; a group holding it can still be deleted (more in
    test_groups_protected_members.py)."""
    assert drupal_roles(emulator, u["boss"]) == {"administrator"}
    eng = create_group(grants_gw, "Engineering")["id"]
    emulator.clear_requests()
    for op in (add(u["boss"]), remove(u["boss"])):
        r = patch_group(grants_gw, eng, op)
        assert u["boss"] in r.headers.get("Warning", ""), dict(r.headers)
    assert not [q for q in gateway_log(emulator) if q["method"] != "GET"], "no write reached Drupal"
    assert drupal_roles(emulator, u["boss"]) == {"administrator"}
    assert drupal_group_refs(emulator, u["boss"]) == []
    r = grants_gw.scim("POST", "/Groups", json=group_body("Plain", [u["ann"]]))
    plain = r.json()["id"]
    r = emulator.http.post(emulator.url + "/_emulator/users", json={"name": "boss@example.com", "field_scim_groups": [plain]}, timeout=10)
    r.raise_for_status()
    r = grants_gw.scim("DELETE", f"/Groups/{plain}")
    assert r.status_code == 204, r.text
    assert grants_gw.scim("GET", f"/Groups/{plain}").status_code == 404
    assert drupal_roles(emulator, u["boss"]) == {"administrator"}


def test_two_groups_granting_one_role(grants_gw, emulator, u):
    eng = create_group(grants_gw, "Engineering", [u["ann"]])["id"]
    docs = create_group(grants_gw, "Docs", [u["ann"]])["id"]
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}
    patch_group(grants_gw, eng, remove(u["ann"]))
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}, "still in Docs"
    patch_group(grants_gw, docs, remove(u["ann"]))
    assert drupal_roles(emulator, u["ann"]) == set()


def test_rename_into_and_out_of_a_granting_name(grants_gw, gscim_roles, emulator, u):
    """Grants follow the displayName: renaming a group changes what its members hold."""
    g = create_group(grants_gw, "Staging", [u["ann"]])["id"]
    assert drupal_roles(emulator, u["ann"]) == set()
    r = gscim_roles("PUT", f"/Groups/{g}", json=group_body("Engineering"))
    assert r.status_code == 200, r.text
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}
    patch_group(grants_gw, g, {"op": "replace", "path": "displayName", "value": "Former Engineering"})
    assert drupal_roles(emulator, u["ann"]) == set()


def test_delete_group_revokes(grants_gw, gscim_roles, emulator, u):
    eng = create_group(grants_gw, "Engineering", [u["ann"], u["bob"]])["id"]
    r = gscim_roles("DELETE", f"/Groups/{eng}")
    assert r.status_code == 204, r.text
    assert drupal_roles(emulator, u["ann"]) == set()
    assert drupal_roles(emulator, u["bob"]) == set()


def test_replace_members_grants_and_revokes(grants_gw, emulator, u):
    eng = create_group(grants_gw, "Engineering", [u["ann"]])["id"]
    patch_group(grants_gw, eng, {"op": "replace", "path": "members", "value": [{"value": u["bob"]}]})
    assert drupal_roles(emulator, u["ann"]) == set()
    assert drupal_roles(emulator, u["bob"]) == {"content_editor"}


def test_hand_granted_managed_role_belongs_to_the_gateway(grants_gw, emulator, seed_user):
    """docs/groups.md (Role grants): a managed role granted by hand goes when the user leaves
    the last group that grants it."""
    uid = seed_user("hand@example.com", mail="hand@example.com", roles=["content_editor"])["uuid"]
    eng = create_group(grants_gw, "Engineering", [uid])["id"]
    assert drupal_roles(emulator, uid) == {"content_editor"}
    patch_group(grants_gw, eng, remove(uid))
    assert drupal_roles(emulator, uid) == set()


def test_grant_survives_a_dangling_reference(grants_gw, emulator, u):
    gone = create_group(grants_gw, "Gone", [u["ann"]])["id"]
    delete_term_directly(emulator, gone)
    eng = create_group(grants_gw, "Engineering")["id"]
    patch_group(grants_gw, eng, add(u["ann"]))
    assert drupal_group_refs(emulator, u["ann"]) == [eng]
    assert drupal_roles(emulator, u["ann"]) == {"content_editor"}


def test_users_do_not_show_granted_roles_as_groups(grants_gw, emulator, u):
    eng = create_group(grants_gw, "Engineering", [u["ann"]])["id"]
    body = grants_gw.scim("GET", f"/Users/{u['ann']}").json()
    assert [g["value"] for g in body["groups"]] == [eng]


@pytest.fixture
def gscim_roles(grants_gw):
    return grants_gw.scim
