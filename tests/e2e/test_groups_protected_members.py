"""A protected member never blocks a group request (issue 18, item 9; docs/groups.md,
"Protected members"). JumpCloud batches member changes in one PATCH: when an administrator
is in the batch, everyone else is added or removed, the administrator keeps its groups and
roles exactly as they were, and the answer is the usual success with a `Warning` header
naming it (an error would only make the IdP retry forever). Groups holding an administrator
can be replaced and deleted. Drupal failures stay errors. Here `Engineering` grants
`content_editor`, so a change to the administrator would also change its roles."""

from __future__ import annotations

import pytest

from groups_support import (  # noqa: F401  (fixtures)
    create_group,
    drupal_group_refs,
    drupal_members,
    drupal_roles,
    gateway_log,
    grants_gw,
    group_body,
    patch_group,
)
from harness import assert_scim_error
from idp_requests import jumpcloud_add_members, jumpcloud_remove_members

COUNTER = "wasmcustom.scim.groups.protected_member_changes_left_out"


@pytest.fixture
def u(seed_user):
    return {
        "ann": seed_user("ann@example.com", mail="ann@example.com"),
        "boss": seed_user("boss@example.com", mail="boss@example.com", roles=["administrator"]),
        "bob": seed_user("bob@example.com", mail="bob@example.com"),
    }


def counter(gw) -> int:
    for line in gw.stats().splitlines():
        if line.startswith(COUNTER + ":"):
            return int(line.split(":", 1)[1])
    return 0


def boss_record(emulator, uuid):
    return {"roles": drupal_roles(emulator, uuid), "groups": drupal_group_refs(emulator, uuid),
            "user": emulator.drupal_user(uuid)}


def hand_add(emulator, name: str, gid: str):
    """A site admin puts an account into the group in Drupal (the IdP cannot)."""
    r = emulator.http.post(emulator.url + "/_emulator/users", json={"name": name, "field_scim_groups": [gid]}, timeout=10)
    r.raise_for_status()


def warned(r, *ids) -> str:
    w = r.headers.get("Warning", "")
    assert w.startswith("299 "), (r.status_code, dict(r.headers))
    for i in ids:
        assert i in w, w
    return w


def test_a_jumpcloud_batch_with_an_administrator_adds_everyone_else(grants_gw, emulator, u):
    ann, boss, bob = u["ann"]["uuid"], u["boss"]["uuid"], u["bob"]["uuid"]
    eng = create_group(grants_gw, "Engineering")["id"]
    before = boss_record(emulator, boss)
    count = counter(grants_gw)
    r = patch_group(grants_gw, eng, jumpcloud_add_members([ann, boss, bob]))
    w = warned(r, boss)
    assert ann not in w and bob not in w, w
    assert drupal_members(emulator, eng) == {ann, bob}
    assert drupal_roles(emulator, ann) == {"content_editor"} == drupal_roles(emulator, bob)
    assert boss_record(emulator, boss) == before, "the administrator is untouched"
    assert not [q for q in gateway_log(emulator) if q["method"] != "GET" and boss in q["path"]], "no write names it"
    # The site admin's side: one warning line naming the uid, and the counter.
    line = next(line for line in grants_gw.log_text().splitlines()[::-1] if "left out" in line)
    assert f"group={eng}" in line and f"uids={u['boss']['uid']}:add" in line and "administrator" in line, line
    assert counter(grants_gw) == count + 1
    # JumpCloud sends the batch again (it repeats adds): the same success, nothing changes.
    emulator.clear_requests()
    r = patch_group(grants_gw, eng, jumpcloud_add_members([ann, boss, bob]))
    warned(r, boss)
    assert drupal_members(emulator, eng) == {ann, bob}
    assert boss_record(emulator, boss) == before
    # The group as Drupal holds it: the administrator is no member.
    members = {m["value"] for m in grants_gw.scim("GET", f"/Groups/{eng}").json()["members"]}
    assert members == {ann, bob}


def test_a_removal_batch_leaves_an_administrator_in_the_group(grants_gw, emulator, u):
    ann, boss, bob = u["ann"]["uuid"], u["boss"]["uuid"], u["bob"]["uuid"]
    eng = create_group(grants_gw, "Engineering", [ann, bob])["id"]
    hand_add(emulator, "boss@example.com", eng)
    before = boss_record(emulator, boss)
    r = patch_group(grants_gw, eng, jumpcloud_remove_members([ann, boss]))
    warned(r, boss)
    assert drupal_members(emulator, eng) == {bob, boss}
    assert drupal_roles(emulator, ann) == set()
    assert boss_record(emulator, boss) == before
    # Remove-all (no value) and the filter form: the same.
    r = patch_group(grants_gw, eng, {"op": "remove", "path": "members"})
    warned(r, boss)
    r = patch_group(grants_gw, eng, {"op": "remove", "path": f'members[value eq "{boss}"]'})
    warned(r, boss)
    assert drupal_members(emulator, eng) == {boss}
    assert drupal_roles(emulator, bob) == set()
    assert boss_record(emulator, boss) == before
    # A request that names no protected account carries no warning.
    r = patch_group(grants_gw, eng, jumpcloud_add_members([ann]))
    assert "Warning" not in r.headers


def test_a_group_holding_an_administrator_can_be_replaced_and_deleted(grants_gw, emulator, u):
    ann, boss, bob = u["ann"]["uuid"], u["boss"]["uuid"], u["bob"]["uuid"]
    eng = create_group(grants_gw, "Engineering", [ann])["id"]
    hand_add(emulator, "boss@example.com", eng)
    before = boss_record(emulator, boss)
    # PUT with a new member set (that leaves the administrator out): applied, and the answer
    # shows the group as it now is, administrator included.
    r = grants_gw.scim("PUT", f"/Groups/{eng}", json=group_body("Engineering", [bob]))
    assert r.status_code == 200, r.text
    warned(r, boss)
    assert {m["value"] for m in r.json()["members"]} == {bob, boss}
    assert drupal_members(emulator, eng) == {bob, boss}
    assert drupal_roles(emulator, ann) == set() and drupal_roles(emulator, bob) == {"content_editor"}
    assert boss_record(emulator, boss) == before
    # DELETE: the others leave it, the group goes; the administrator keeps its roles and even
    # its (now dangling) reference, since nothing of it is written.
    r = grants_gw.scim("DELETE", f"/Groups/{eng}")
    assert r.status_code == 204, r.text
    warned(r, boss)
    assert grants_gw.scim("GET", f"/Groups/{eng}").status_code == 404
    assert drupal_roles(emulator, bob) == set()
    assert drupal_roles(emulator, boss) == before["roles"]
    assert drupal_group_refs(emulator, boss) == ["missing"]
    assert emulator.drupal_user(boss) == before["user"]


def test_a_create_with_an_administrator_creates_the_group_without_it(grants_gw, emulator, u):
    ann, boss = u["ann"]["uuid"], u["boss"]["uuid"]
    before = boss_record(emulator, boss)
    r = grants_gw.scim("POST", "/Groups", json=group_body("Engineering", [ann, boss]))
    assert r.status_code == 201, r.text
    warned(r, boss)
    assert [m["value"] for m in r.json()["members"]] == [ann]
    assert drupal_members(emulator, r.json()["id"]) == {ann}
    assert drupal_roles(emulator, ann) == {"content_editor"}
    assert boss_record(emulator, boss) == before
    # Only protected members: the group is created, empty.
    r = grants_gw.scim("POST", "/Groups", json=group_body("Docs", [boss]))
    assert r.status_code == 201, r.text
    warned(r, boss)
    assert r.json().get("members", []) == []
    assert boss_record(emulator, boss) == before


def test_a_drupal_failure_beside_a_protected_member_is_still_an_error(grants_gw, emulator, u):
    """Leaving a protected account out is policy; Drupal failing is not: the answer says
    what failed (and that a retry is safe), and counts the left-out change apart."""
    ann, boss = u["ann"]["uuid"], u["boss"]["uuid"]
    eng = create_group(grants_gw, "Engineering")["id"]
    emulator.fault(status=500, count=4, path_prefix=f"/jsonapi/user/user/{ann}/relationships", method="POST")
    err = assert_scim_error(patch_group(grants_gw, eng, jumpcloud_add_members([ann, boss]), expect=None), 502)
    assert "failed" in err["detail"] and "1 change(s) to accounts SCIM may not change were left out" in err["detail"], err
    assert boss not in drupal_members(emulator, eng)
    emulator.clear_faults()
    r = patch_group(grants_gw, eng, jumpcloud_add_members([ann, boss]))
    warned(r, boss)
    assert drupal_members(emulator, eng) == {ann}
