"""Memberships under concurrency, and repairs.

With the emulator's race switch on (`race_window_ms`), Drupal loses concurrent relationship
writes on one user while answering 2xx (recorded on a real Drupal: 2–4 of 5 survive). The
gateway serialises membership writes per user and confirms each by reading the user back,
so concurrent PATCHes through Envoy lose nothing. Also: concurrent creates of one name give
one group; a term deleted behind the gateway's back leaves a dangling reference that the
gateway repairs on the next membership change."""

from __future__ import annotations

import requests

from harness import DIRECT_MARKER, PATCH_OP
from groups_support import (  # noqa: F401  (fixtures)
    TERM_TYPE,
    concurrently,
    create_group,
    delete_term_directly,
    drupal_group_refs,
    drupal_members,
    drupal_terms,
    gateway_log,
    groups_gw,
    gscim,
    patch_group,
    relationship_writes,
    scim_members,
    scim_request,
    seed_term,
)

RACE_MS = 200


def add_op(uid: str) -> dict:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}


def test_race_is_real_direct_concurrent_relationship_posts_lose_memberships(emulator, seed_user):
    """The same five concurrent adds, sent straight to Drupal: some are lost although every
    answer is 2xx (what the gateway has to defend against)."""
    uid = seed_user("racer@example.com", mail="racer@example.com")["uuid"]
    terms = [seed_term(emulator, f"Direct {i}") for i in range(5)]
    emulator.settings(race_window_ms=RACE_MS)

    def post(term):
        def call():
            with requests.Session() as s:
                return s.post(
                    f"{emulator.url}/jsonapi/user/user/{uid}/relationships/field_scim_groups",
                    headers={
                        "Authorization": emulator.service_auth,
                        "Content-Type": "application/vnd.api+json",
                        "Accept": "application/vnd.api+json",
                        DIRECT_MARKER: "1",
                    },
                    json={"data": [{"type": TERM_TYPE, "id": term}]},
                    timeout=30,
                ).status_code

        return call

    statuses = concurrently([post(t) for t in terms])
    assert all(s in (200, 204) for s in statuses), statuses
    kept = drupal_group_refs(emulator, uid)
    assert set(kept) <= set(terms)
    assert len(kept) < 5, f"no membership was lost ({kept}); the race switch did not bite"


def test_concurrent_adds_of_one_user_to_five_groups_lose_nothing(groups_gw, emulator, seed_user):
    uid = seed_user("racer@example.com", mail="racer@example.com")["uuid"]
    groups = [create_group(groups_gw, f"Race {i}")["id"] for i in range(5)]
    emulator.settings(race_window_ms=RACE_MS)
    emulator.clear_requests()

    results = concurrently([lambda g=g: scim_request(groups_gw, "PATCH", f"/Groups/{g}", json=add_op(uid)) for g in groups])
    for res in results:
        assert isinstance(res, requests.Response), res
        assert res.status_code in (200, 204), (res.status_code, res.text[:500])
    assert sorted(drupal_group_refs(emulator, uid)) == sorted(groups)
    for g in groups:
        assert drupal_members(emulator, g) == {uid}
    emulator.settings(race_window_ms=0)
    groups_of_user = {g["value"] for g in groups_gw.scim("GET", f"/Users/{uid}").json()["groups"]}
    assert groups_of_user == set(groups)
    # Every change went through the relationship route.
    assert len([w for w in relationship_writes(gateway_log(emulator), uid) if w["method"] == "POST"]) >= 5


def test_concurrent_mixed_adds_and_removes_on_one_user(groups_gw, emulator, seed_user):
    uid = seed_user("mixer@example.com", mail="mixer@example.com")["uuid"]
    keep = [create_group(groups_gw, f"Keep {i}", [uid])["id"] for i in range(2)]
    leave = [create_group(groups_gw, f"Leave {i}", [uid])["id"] for i in range(2)]
    join = [create_group(groups_gw, f"Join {i}")["id"] for i in range(3)]
    emulator.settings(race_window_ms=RACE_MS)
    remove = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]}
    calls = [lambda g=g: scim_request(groups_gw, "PATCH", f"/Groups/{g}", json=add_op(uid)) for g in join]
    calls += [lambda g=g: scim_request(groups_gw, "PATCH", f"/Groups/{g}", json=remove) for g in leave]
    for res in concurrently(calls):
        assert isinstance(res, requests.Response), res
        assert res.status_code in (200, 204), (res.status_code, res.text[:500])
    assert sorted(drupal_group_refs(emulator, uid)) == sorted(keep + join)


def test_concurrent_group_patches_over_many_users(groups_gw, emulator, seed_users):
    """Four groups each gain the same six users at once: 24 memberships, none lost."""
    uids = [u["uuid"] for u in seed_users([{"name": f"m{i}@example.com", "mail": f"m{i}@example.com"} for i in range(6)])]
    groups = [create_group(groups_gw, f"Multi {i}")["id"] for i in range(4)]
    emulator.settings(race_window_ms=50)
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": u} for u in uids]}]}
    for res in concurrently([lambda g=g: scim_request(groups_gw, "PATCH", f"/Groups/{g}", json=body) for g in groups]):
        assert isinstance(res, requests.Response), res
        assert res.status_code in (200, 204), (res.status_code, res.text[:500])
    for u in uids:
        assert sorted(drupal_group_refs(emulator, u)) == sorted(groups), u


def test_concurrent_creates_of_one_name_yield_one_group(groups_gw, emulator):
    emulator.settings(latency_ms=30)
    body = lambda name: {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}  # noqa: E731
    names = ["Launch", "launch", "LAUNCH", "Launch", "lAunch", "Launch"]
    results = concurrently([lambda n=n: scim_request(groups_gw, "POST", "/Groups", json=body(n)) for n in names])
    statuses = []
    for res in results:
        assert isinstance(res, requests.Response), res
        statuses.append(res.status_code)
    assert sorted(statuses) == [201] + [409] * 5, [(r.status_code, r.text[:200]) for r in results]
    for res in results:
        if res.status_code == 409:
            assert res.json()["scimType"] == "uniqueness"
    terms = drupal_terms(emulator)
    assert len(terms) == 1, terms
    winner = next(r for r in results if r.status_code == 201).json()
    assert list(terms) == [winner["id"]]


def test_dangling_reference_is_repaired_on_the_next_change(groups_gw, gscim, emulator, seed_user):
    uid = seed_user("dangle@example.com", mail="dangle@example.com")["uuid"]
    gone = create_group(groups_gw, "Gone", [uid])["id"]
    stays = create_group(groups_gw, "Stays", [uid])["id"]
    target = create_group(groups_gw, "Target")["id"]
    delete_term_directly(emulator, gone)
    assert sorted(drupal_group_refs(emulator, uid), key=lambda x: x != "missing") == ["missing", stays]
    # Drupal itself now refuses relationship writes on this user.
    r = emulator.jsonapi(
        "POST",
        f"/jsonapi/user/user/{uid}/relationships/field_scim_groups",
        headers={"Content-Type": "application/vnd.api+json"},
        json={"data": [{"type": TERM_TYPE, "id": target}]},
    )
    assert r.status_code == 422, (r.status_code, r.text[:300])

    patch_group(groups_gw, target, {"op": "add", "path": "members", "value": [{"value": uid}]})
    refs = drupal_group_refs(emulator, uid)
    assert "missing" not in refs, refs
    assert sorted(refs) == sorted([stays, target])
    assert scim_members(groups_gw, target) == {uid}
    assert scim_members(groups_gw, stays) == {uid}


def test_dangling_reference_is_repaired_on_a_removal_too(groups_gw, gscim, emulator, seed_user):
    uid = seed_user("dangle2@example.com", mail="dangle2@example.com")["uuid"]
    gone = create_group(groups_gw, "Gone", [uid])["id"]
    leave = create_group(groups_gw, "Leave", [uid])["id"]
    delete_term_directly(emulator, gone)
    patch_group(groups_gw, leave, {"op": "remove", "path": f'members[value eq "{uid}"]'})
    assert drupal_group_refs(emulator, uid) == []


def test_dangling_reference_seeded_in_drupal(groups_gw, gscim, emulator, seed_user):
    """A reference to a term id that never existed (the entity API allows it)."""
    target = create_group(groups_gw, "Target")["id"]
    r = emulator.http.post(
        emulator.url + "/_emulator/users",
        json={"name": "odd@example.com", "mail": "odd@example.com", "field_scim_groups": [9999]},
        timeout=10,
    )
    uid = r.json()["uuid"]
    assert drupal_group_refs(emulator, uid) == ["missing"]
    patch_group(groups_gw, target, {"op": "add", "path": "members", "value": [{"value": uid}]})
    assert drupal_group_refs(emulator, uid) == [target]


def test_delete_group_while_members_change_concurrently(groups_gw, emulator, seed_users):
    """Deleting a group races with additions to it: afterwards no user holds a reference to
    the deleted term, dangling or not."""
    uids = [u["uuid"] for u in seed_users([{"name": f"d{i}@example.com", "mail": f"d{i}@example.com"} for i in range(4)])]
    g = create_group(groups_gw, "Short-lived", uids[:2])["id"]
    emulator.settings(race_window_ms=50)
    results = concurrently(
        [
            lambda: scim_request(groups_gw, "DELETE", f"/Groups/{g}"),
            lambda: scim_request(
                groups_gw,
                "PATCH",
                f"/Groups/{g}",
                json={"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": u} for u in uids[2:]]}]},
            ),
        ]
    )
    assert results[0].status_code == 204, results[0].text
    assert results[1].status_code in (204, 404, 409, 500, 503), results[1].text
    emulator.settings(race_window_ms=0)
    for u in uids:
        refs = drupal_group_refs(emulator, u)
        assert g not in refs, (u, refs)
        # A membership added after the delete walked the members would dangle: report it.
        assert "missing" not in refs, (u, refs, results[1].status_code, results[1].text[:300])
