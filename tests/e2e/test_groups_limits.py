"""Bounded group work, honest partial failures, and locks given up when a client goes away.

- Member reads are capped (`groups.max_members_read`): a larger group is refused with 400
  `tooMany`, never answered with part of its members; `excludedAttributes=members` reads none.
- Changes derived from the current members (DELETE, remove all, a new member set) count
  against `limits.max_members_per_request`: over it, 400 `tooMany` and nothing changed.
- `If-Match` on a Group change is checked against the group's version (412, nothing changed).
- A `POST /Groups` whose member adds fail is undone (no group left behind a "retry" answer).
- A request whose client disconnects mid-way releases its locks at once (a write still in
  flight keeps its user locked for `drupal.timeout_ms` only), not at the lock time-out.
"""

from __future__ import annotations

import time

import pytest
import requests

from harness import PATCH_OP, assert_scim_error
from groups_support import (  # noqa: F401  (fixtures)
    CORE_GROUP,
    create_group,
    drupal_group_refs,
    drupal_members,
    drupal_term,
    drupal_terms,
    gateway_log,
    get_group,
    group_body,
    groups_config,
    groups_gw,
    is_member_lookup,
    patch_group,
    relationship_writes,
    scim_request,
    seed_group,
    seed_members,
)

# The Envoys below use a drupal.timeout_ms of 5000, so a lock left behind would time out only
# after 4 x 5000 + 1000 ms.
TIMEOUT_MS = 5000
LOCK_TTL_S = (4 * TIMEOUT_MS + 1000) / 1000


def start(stack, **overrides):
    last: Exception | None = None
    for _ in range(3):
        try:
            return stack.new_envoy(plugin_overrides=overrides)
        except RuntimeError as e:  # two free ports collided: try again
            last = e
    raise last  # type: ignore[misc]


@pytest.fixture(scope="module")
def capped_gw(stack):
    """Reads at most 120 members a request, changes at most 100 it does not name."""
    e = start(
        stack,
        groups=groups_config(max_members_read=120),
        **{"limits.max_members_per_request": 100},
    )
    yield e
    e.stop()


@pytest.fixture(scope="module")
def slow_gw(stack):
    """A gateway whose Drupal calls may take 5 s (so its locks outlive a client by 21 s)."""
    e = start(stack, groups=groups_config(), **{"drupal.timeout_ms": TIMEOUT_MS})
    yield e
    e.stop()


def remove_ops(ids) -> dict:
    return {"op": "remove", "path": "members", "value": [{"value": i} for i in ids]}


# ---- member reads ---------------------------------------------------------------------


def test_a_group_beyond_the_read_cap_is_refused_not_cut(capped_gw, emulator):
    big, _ = seed_group(emulator, "Big", 121, "big")
    fits, fit_ids = seed_group(emulator, "Fits", 120, "fit")
    r = capped_gw.scim("GET", f"/Groups/{big}", timeout=30)
    err = assert_scim_error(r, 400, "tooMany")
    assert "excludedAttributes=members" in err["detail"], err
    # Without members it is an ordinary read, and it reads no member.
    emulator.clear_requests()
    r = capped_gw.scim("GET", f"/Groups/{big}", params={"excludedAttributes": "members"}, timeout=30)
    assert r.status_code == 200 and "members" not in r.json(), r.text[:300]
    assert not [q for q in gateway_log(emulator) if is_member_lookup(q)]
    # At the cap: every member.
    body = get_group(capped_gw, fits)
    assert {m["value"] for m in body["members"]} == set(fit_ids)
    # A list whose groups hold more than the cap together is refused the same way.
    r = capped_gw.scim("GET", "/Groups", timeout=30)
    assert_scim_error(r, 400, "tooMany")
    r = capped_gw.scim("GET", "/Groups", params={"excludedAttributes": "members"}, timeout=30)
    assert r.status_code == 200 and r.json()["totalResults"] == 2


def test_a_large_group_is_read_several_pages_at_a_time(groups_gw, emulator):
    g, ids = seed_group(emulator, "Wide", 400, "wide")
    emulator.clear_requests()
    body = get_group(groups_gw, g)
    assert len(body["members"]) == 400 and {m["value"] for m in body["members"]} == set(ids)
    pages = [q for q in gateway_log(emulator) if is_member_lookup(q)]
    # 8 pages of members, read 1, 2, then 4 at a time: 4 rounds, 3 reads past the end.
    assert len(pages) == 11, len(pages)
    offsets = sorted(int(q["path"].split("page[offset]=")[1].split("&")[0]) for q in pages)
    assert offsets == list(range(0, 550, 50)), offsets


# ---- changes derived from the current members -------------------------------------------


def test_changes_derived_from_too_many_members_are_refused_whole(capped_gw, emulator):
    g, ids = seed_group(emulator, "Crowd", 110, "crowd")
    others = seed_members(emulator, "other", 5)
    before = drupal_members(emulator, g)
    emulator.clear_requests()
    attempts = [
        ("DELETE", None),
        ("PATCH", {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}),
        ("PATCH", {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "members", "value": [{"value": i} for i in others]}]}),
        ("PUT", group_body("Crowd", others)),
    ]
    for method, body in attempts:
        r = capped_gw.scim(method, f"/Groups/{g}", json=body, timeout=30)
        err = assert_scim_error(r, 400, "tooMany")
        assert "Nothing was changed" in err["detail"], err
        if method == "DELETE":
            assert "then delete it" in err["detail"], err
    log = gateway_log(emulator)
    assert [q for q in log if q["method"] != "GET"] == [], "nothing was written"
    # The walk stopped at the limit: no more than 3 pages (150 members) per attempt.
    assert len([q for q in log if is_member_lookup(q)]) <= 3 * len(attempts)
    assert drupal_members(emulator, g) == before and drupal_term(emulator, g) is not None
    # Named removals are bounded by the request's size: 100 at a time, then the DELETE fits.
    patch_group(capped_gw, g, remove_ops(ids[:100]), timeout=60)
    assert drupal_members(emulator, g) == set(ids[100:])
    r = capped_gw.scim("DELETE", f"/Groups/{g}", timeout=60)
    assert r.status_code == 204, r.text
    assert drupal_term(emulator, g) is None
    assert all(drupal_group_refs(emulator, u) == [] for u in ids[100:])


# ---- If-Match ---------------------------------------------------------------------------


def test_if_match_is_checked_on_group_changes(groups_gw, emulator):
    ids = seed_members(emulator, "etag", 2)
    g = create_group(groups_gw, "Versioned", ids[:1])
    etag = groups_gw.scim("GET", f"/Groups/{g['id']}").headers["etag"]
    assert etag == g["meta"]["version"]
    stale = 'W/"20000101000000-00000000"'
    emulator.clear_requests()
    r = groups_gw.scim("PUT", f"/Groups/{g['id']}", json=group_body("Renamed", ids), headers={"If-Match": stale})
    assert_scim_error(r, 412)
    r = groups_gw.scim(
        "PATCH",
        f"/Groups/{g['id']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[1]}]}]},
        headers={"If-Match": stale},
    )
    assert_scim_error(r, 412)
    r = groups_gw.scim("DELETE", f"/Groups/{g['id']}", headers={"If-Match": stale})
    assert_scim_error(r, 412)
    assert [q for q in gateway_log(emulator) if q["method"] != "GET"] == [], "nothing was written"
    assert drupal_members(emulator, g["id"]) == {ids[0]}
    # The current version (or *) lets the change through; a rename gives a new version.
    r = groups_gw.scim("PUT", f"/Groups/{g['id']}", json=group_body("Renamed", ids), headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] != etag and r.json()["meta"]["version"] == r.headers["etag"]
    r = groups_gw.scim("DELETE", f"/Groups/{g['id']}", headers={"If-Match": etag})
    assert_scim_error(r, 412)
    r = groups_gw.scim("DELETE", f"/Groups/{g['id']}", headers={"If-Match": "*"})
    assert r.status_code == 204, r.text


# ---- POST /Groups whose member adds fail -------------------------------------------------


def test_a_create_whose_member_adds_fail_is_undone(groups_gw, emulator):
    ids = seed_members(emulator, "undo", 4)
    emulator.fault(status=500, count=1, path_prefix="/jsonapi/user/user/", method="POST", body='{"errors":[{"status":"500","title":"boom"}]}')
    r = groups_gw.scim("POST", "/Groups", json=group_body("Half made", ids), timeout=60)
    err = assert_scim_error(r, 502)
    assert "not created" in err["detail"] and "again is safe" in err["detail"], err
    assert "boom" not in err["detail"]
    assert "Half made" not in drupal_terms(emulator).values(), "no group left behind"
    assert all(drupal_group_refs(emulator, u) == [] for u in ids), "no membership left behind"
    # As the answer says, the same request again is safe (and now succeeds).
    emulator.clear_faults()
    created = create_group(groups_gw, "Half made", ids)
    assert drupal_members(emulator, created["id"]) == set(ids)


def test_a_create_that_cannot_be_undone_says_the_group_exists(groups_gw, emulator):
    ids = seed_members(emulator, "stuck", 2)
    # The first add fails, and so does deleting the term again.
    r = emulator.http.put(
        emulator.url + "/_emulator/faults",
        json=[
            {"status": 500, "count": 1, "path_prefix": "/jsonapi/user/user/", "method": "POST"},
            {"status": 500, "count": 5, "path_prefix": "/jsonapi/taxonomy_term/", "method": "DELETE"},
        ],
        timeout=10,
    )
    assert r.status_code in (200, 201, 204), r.text
    r = groups_gw.scim("POST", "/Groups", json=group_body("Stuck", ids), timeout=60)
    err = assert_scim_error(r, 502)
    (term,) = [t for t, name in drupal_terms(emulator).items() if name == "Stuck"]
    assert f"The group exists (id `{term}`) with no members" in err["detail"], err
    assert "again is safe" not in err["detail"], err
    assert drupal_members(emulator, term) == set()


def test_a_create_whose_answer_is_lost_looks_for_the_group(groups_gw, emulator):
    ids = seed_members(emulator, "lost", 2)
    # Drupal creates the term, but its answer is a 500: the gateway finds the group and goes on.
    emulator.fault(status=500, count=1, path_prefix="/jsonapi/taxonomy_term/scim_groups", method="POST", process=True)
    r = groups_gw.scim("POST", "/Groups", json=group_body("Lost answer", ids), timeout=60)
    assert r.status_code == 201, r.text
    assert list(drupal_terms(emulator).values()).count("Lost answer") == 1
    assert drupal_members(emulator, r.json()["id"]) == set(ids)
    # Drupal did not create it: the answer says that sending it again is safe.
    emulator.fault(status=500, count=1, path_prefix="/jsonapi/taxonomy_term/scim_groups", method="POST")
    r = groups_gw.scim("POST", "/Groups", json=group_body("Not made", ids), timeout=60)
    err = assert_scim_error(r, 502)
    assert "No group of this name exists now" in err["detail"], err
    assert "Not made" not in drupal_terms(emulator).values()


# ---- locks given up when the client goes away --------------------------------------------


def abandoned(gw, method: str, path: str, body: dict, wait_s: float = 1.0) -> None:
    """Sends a request and hangs up after wait_s, before the gateway answers."""
    with pytest.raises(requests.exceptions.ReadTimeout):
        scim_request(gw, method, path, json=body, timeout=wait_s)


def add_member(uid: str) -> dict:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def test_a_client_gone_mid_change_frees_the_user_at_once(slow_gw, emulator):
    (uid,) = seed_members(emulator, "gone", 1)
    a = create_group(slow_gw, "First")["id"]
    b = create_group(slow_gw, "Second")["id"]
    # The write lands; the read that confirms it takes 8 s: the client leaves meanwhile.
    emulator.fault(delay_ms=8000, count=1, path_prefix=f"/jsonapi/user/user/{uid}", method="GET")
    abandoned(slow_gw, "PATCH", f"/Groups/{a}", add_member(uid))
    r, took = timed(lambda: scim_request(slow_gw, "PATCH", f"/Groups/{b}", json=add_member(uid), timeout=LOCK_TTL_S + 10))
    assert r.status_code == 204, r.text
    assert took < 3, f"the user's lock was left to time out ({took:.1f} s)"
    assert set(drupal_group_refs(emulator, uid)) == {a, b}
    assert "abandoned" in slow_gw.log_text()


def test_a_client_gone_mid_write_frees_the_user_after_the_call_timeout(slow_gw, emulator):
    (uid,) = seed_members(emulator, "write", 1)
    a = create_group(slow_gw, "Write A")["id"]
    b = create_group(slow_gw, "Write B")["id"]
    # The write's answer takes 8 s: when the client leaves, the write may still land, so
    # the user stays locked for the call time-out (5 s), not the lock time-out (21 s).
    emulator.fault(delay_ms=8000, count=1, path_prefix=f"/jsonapi/user/user/{uid}/relationships", method="POST")
    abandoned(slow_gw, "PATCH", f"/Groups/{a}", add_member(uid))
    r, took = timed(lambda: scim_request(slow_gw, "PATCH", f"/Groups/{b}", json=add_member(uid), timeout=LOCK_TTL_S + 10))
    assert r.status_code == 204, r.text
    assert 2.5 < took < TIMEOUT_MS / 1000 + 3, f"{took:.1f} s"
    assert b in drupal_group_refs(emulator, uid)


def test_a_client_gone_mid_create_frees_the_name_at_once(slow_gw, emulator):
    # The name check takes 8 s: the client leaves while it holds the name's lock.
    emulator.fault(delay_ms=8000, count=1, path_prefix="/jsonapi/taxonomy_term/scim_groups", method="GET")
    abandoned(slow_gw, "POST", "/Groups", group_body("Contested"))
    r, took = timed(lambda: scim_request(slow_gw, "POST", "/Groups", json=group_body("Contested"), timeout=LOCK_TTL_S + 10))
    assert r.status_code == 201, r.text
    assert took < 3, f"the name's lock was left to time out ({took:.1f} s)"
    assert list(drupal_terms(emulator).values()).count("Contested") == 1
