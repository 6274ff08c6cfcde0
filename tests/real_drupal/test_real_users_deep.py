"""Users on a real Drupal beyond the IdP flows: `hard_delete` through the imported core REST
resource, exact paging while users come and go, and concurrent writes."""

from __future__ import annotations

import requests

from harness import assert_scim_error, concurrently, jumpcloud_user, patch_op

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_hard_delete_removes_the_account_from_drupal(new_gateway, site, uniq, cleanup):
    """drupal.user_delete hard_delete with scripts/drupal/rest.resource.entity.user.yml
    imported (`scripts/real-drupal up --user-delete hard_delete`): SCIM DELETE is 204 and
    the account is gone from Drupal, not retired."""
    gw = new_gateway("hard-delete", **{"drupal.user_delete": "hard_delete"})
    email = f"doomed.{uniq}@example.com"
    r = gw.scim("POST", "/Users", json=jumpcloud_user(email), timeout=site.timeout)
    assert r.status_code == 201, r.text
    uuid = cleanup.user(r.json()["id"])
    uid = int(site.user(uuid)["drupal_internal__uid"])
    r = gw.scim("DELETE", f"/Users/{uuid}", timeout=site.timeout)
    assert r.status_code == 204, r.text
    assert "hard_delete will fail" not in gw.log_text()
    assert site.user(uuid) is None
    assert site.sql_count(f"SELECT COUNT(*) FROM users WHERE uid = {uid}") == 0
    assert site.users_named(email) == []
    assert_scim_error(gw.scim("GET", f"/Users/{uuid}", timeout=site.timeout), 404)
    assert_scim_error(gw.scim("DELETE", f"/Users/{uuid}", timeout=site.timeout), 404)
    # uid 1 stays: hard_delete is no way around account safety.
    admin = site.user_by_name("admin")
    assert_scim_error(gw.scim("DELETE", f"/Users/{admin['id']}", timeout=site.timeout), 403)
    assert site.user(admin["id"]) is not None


def walk(scim, flt: str, count: int, between=None) -> tuple[list[str], list[int]]:
    """Pages through a filtered list; `between(page_no)` runs before each page after the
    first. Returns (userNames in order, totalResults of each page) and checks that each page's
    totalResults is exact at the time (passed in by `between` through `expect`)."""
    seen: list[str] = []
    totals: list[int] = []
    start, page = 1, 0
    while True:
        if page and between:
            between(page)
        body = scim("GET", "/Users", params={"filter": flt, "startIndex": start, "count": count}).json()
        assert body["startIndex"] == start and body["itemsPerPage"] == len(body["Resources"]) <= count, body
        seen += [u["userName"] for u in body["Resources"]]
        totals.append(body["totalResults"])
        start += count
        page += 1
        if start > body["totalResults"]:
            return seen, totals


def test_exact_paging_while_users_are_created_and_deleted(scim, site, uniq, cleanup):
    n = 12 if site.slow else 30
    prefix = f"page.{uniq}."
    flt = f'userName sw "{prefix}"'
    ids: dict[str, str] = {}
    for i in range(n):
        name = f"{prefix}{i:03d}"
        ids[name] = cleanup.user(site.create_user(name, f"{name}@example.com")["id"])
    # A still list: every page says how many there are, and the walk sees each user once.
    seen, totals = walk(scim, flt, 7)
    assert seen == sorted(ids) and totals == [n] * len(totals)

    # While a client pages (count 7), one user is created and one deleted before each page:
    # every page's totalResults is the exact number at that moment; nobody is listed twice;
    # a delete behind the cursor moves the rest one place earlier, which can cost one user.
    live = set(ids)
    expected_totals: list[int] = []
    deleted_behind = 0
    created: list[str] = []
    order = sorted(ids)

    def churn(page: int) -> None:
        nonlocal deleted_behind
        name = f"{prefix}new{page:03d}"
        created.append(name)
        ids[name] = cleanup.user(site.create_user(name, f"{name}@example.com")["id"])
        live.add(name)
        victim = order[(page * 5) % len(order)]
        if victim in live and not victim.startswith(f"{prefix}new"):
            rank = [u for u in order if u in live].index(victim)  # originals sort before new ones
            r = scim("DELETE", f"/Users/{ids[victim]}")
            assert r.status_code == 204, r.text
            live.discard(victim)
            if rank < page * 7:
                deleted_behind += 1
        expected_totals.append(len(live))

    seen, totals = walk(scim, flt, 7, churn)
    assert totals[1:] == expected_totals, (totals, expected_totals)
    assert len(seen) == len(set(seen)), "a user was listed twice"
    missed = live - set(seen)
    assert len(missed) <= deleted_behind, (missed, deleted_behind)
    assert set(seen) - set(ids) == set(), "only this test's users match the filter"
    assert site.sql_count(
        f"SELECT COUNT(*) FROM users_field_data WHERE name LIKE '{prefix}%'") == len(live), "Drupal has exactly the live ones"

    # The unfiltered list's total is Drupal's number of live accounts (anonymous and retired
    # excluded), exact although JSON:API counts nothing.
    for _ in range(3):
        before = site.live_user_count()
        total = scim("GET", "/Users", params={"count": 0}).json()["totalResults"]
        if before == site.live_user_count():  # nothing came or went meanwhile (another thread)
            assert total == before
            break
    else:
        raise AssertionError("the site's user count never held still")


def request(gateway, site, method: str, path: str, body) -> requests.Response:
    """One request on a connection of its own (for threads)."""
    with requests.Session() as s:
        return s.request(method, gateway.base_url + path, json=body, timeout=site.timeout * 3,
                         headers={"Authorization": "Bearer " + gateway.tokens["primary"], "Content-Type": "application/scim+json"})


def test_20_concurrent_creates_of_one_username_make_one_account(gateway, site, uniq, cleanup):
    name = f"racer.{uniq}@example.com"
    answers = concurrently([lambda: request(gateway, site, "POST", "/Users", jumpcloud_user(name))] * 20, join_timeout=300)
    errors = [a for a in answers if isinstance(a, Exception)]
    assert not errors, errors[:3]
    for a in answers:
        if a.status_code == 201:
            cleanup.user(a.json()["id"])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, statuses
    for a in answers:
        if a.status_code == 409:
            assert a.json()["scimType"] == "uniqueness"
    assert len(site.users_named(name)) == 1
    assert site.sql_count(f"SELECT COUNT(*) FROM users_field_data WHERE mail = '{name}'") == 1


def test_20_concurrent_member_adds_to_one_group_all_land(gateway, scim, site, uniq, cleanup):
    members = [cleanup.user(site.create_user(f"m{i:02d}.{uniq}@example.com")["id"]) for i in range(20)]
    r = scim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": f"Crowd {uniq}"})
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    answers = concurrently([
        (lambda m=m: request(gateway, site, "PATCH", f"/Groups/{gid}", patch_op({"op": "add", "path": "members", "value": [{"value": m}]})))
        for m in members
    ], join_timeout=300)
    errors = [a for a in answers if isinstance(a, Exception)]
    assert not errors, errors[:3]
    assert sorted(a.status_code for a in answers) == [204] * 20, [(a.status_code, a.text[:200]) for a in answers if a.status_code != 204]
    assert site.members(gid) == set(members)
    got = scim("GET", f"/Groups/{gid}").json()
    assert {m["value"] for m in got["members"]} == set(members)
