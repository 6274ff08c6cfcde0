"""A protected member never blocks a group request, on a real Drupal (issue 18, item 9;
docs/groups.md, "Protected members"; the emulator's version is
tests/e2e/test_groups_protected_members.py). JumpCloud's batch with an administrator in it:
the other members are added, and the administrator's record (roles, groups, password hash,
`changed`, …) stays exactly as it was; a group holding an administrator can be replaced
and deleted."""

from __future__ import annotations

from idp_requests import group_body, jumpcloud_add_members, jumpcloud_remove_members, patch_group
from test_real_account_safety import record as _record


def record(site, uuid: str) -> dict:
    """The account as stored: the JSON:API view, the password hash and the group references
    as rows (JSON:API shows a reference to a deleted term as "missing")."""
    r = _record(site, uuid)
    uid = int(site.user(uuid)["drupal_internal__uid"])
    rows = site.sql(f"SELECT field_scim_groups_target_id FROM user__field_scim_groups WHERE entity_id = {uid} ORDER BY delta")
    return {**{k: v for k, v in r.items() if k != "groups"}, "group_rows": [row[0] for row in rows]}


def warned(r, uuid: str) -> None:
    w = r.headers.get("Warning", "")
    assert w.startswith("299 ") and uuid in w, (r.status_code, r.text[:300], dict(r.headers))


def hand_add(site, user_uuid: str, term_uuid: str) -> None:
    """A site admin puts the account into the group in Drupal (uid 1, JSON:API)."""
    body = {"data": [{"type": "taxonomy_term--scim_groups", "id": term_uuid}]}
    r = site.jsonapi("POST", f"/jsonapi/user/user/{user_uuid}/relationships/field_scim_groups", body)
    assert r.status_code in (200, 204), (r.status_code, r.text[:500])


def test_jumpcloud_batch_with_an_administrator(scim, site, uniq, drupal_user, cleanup):
    ann = drupal_user(f"ann.{uniq}@example.com")["id"]
    bob = drupal_user(f"bob.{uniq}@example.com")["id"]
    boss = drupal_user(f"boss.{uniq}@example.com", roles=["administrator"])["id"]
    admin = site.user_by_name("admin")["id"]
    r = scim("POST", "/Groups", json=group_body(f"Eng {uniq}"))
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    before = {u: record(site, u) for u in (boss, admin)}

    # Adds: the batch with the administrator and uid 1 in it adds everyone else.
    r = patch_group(scim, gid, jumpcloud_add_members([ann, boss, admin, bob]))
    warned(r, boss)
    warned(r, admin)
    assert site.members(gid) == {ann, bob}
    # The IdP's retry: the same answer, nothing more changes.
    warned(patch_group(scim, gid, jumpcloud_add_members([ann, boss, admin, bob])), boss)
    assert site.members(gid) == {ann, bob}
    assert {u: record(site, u) for u in (boss, admin)} == before

    # Removals: the administrator, put in the group in Drupal, stays; the others go.
    hand_add(site, boss, gid)
    before[boss] = record(site, boss)
    warned(patch_group(scim, gid, jumpcloud_remove_members([ann, boss])), boss)
    assert site.members(gid) == {bob, boss}

    # PUT with a new member set: applied, the answer shows the group as it now is.
    r = scim("PUT", f"/Groups/{gid}", json=group_body(f"Eng {uniq}", [ann]))
    assert r.status_code == 200, r.text
    warned(r, boss)
    assert {m["value"] for m in r.json()["members"]} == {ann, boss}
    assert site.members(gid) == {ann, boss}
    assert record(site, boss) == before[boss]

    # DELETE: the group goes, the administrator keeps everything, even its reference.
    r = scim("DELETE", f"/Groups/{gid}")
    assert r.status_code == 204, r.text
    warned(r, boss)
    assert site.term(gid) is None
    assert site.group_refs(ann) == []
    assert {u: record(site, u) for u in (boss, admin)} == before


def test_create_with_an_administrator(scim, site, uniq, drupal_user, cleanup):
    ann = drupal_user(f"cann.{uniq}@example.com")["id"]
    boss = drupal_user(f"cboss.{uniq}@example.com", roles=["administrator"])["id"]
    before = record(site, boss)
    r = scim("POST", "/Groups", json=group_body(f"Created {uniq}", [boss, ann]))
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    warned(r, boss)
    assert [m["value"] for m in r.json()["members"]] == [ann]
    assert site.members(gid) == {ann}
    assert record(site, boss) == before
