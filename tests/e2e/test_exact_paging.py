"""Exact paging (RFC 7644 §3.4.2): `totalResults` is the number of results of the query on
every page, for count=0 and past the end, for /Users, /Groups and root /.search, although
Drupal's JSON:API gives no count. 130+ users, counts 0, 1, 37 and 50."""

from __future__ import annotations

import pytest

from groups_support import create_group, groups_gw  # noqa: F401  (fixture)
from harness import LIST_RESPONSE, SEARCH_REQUEST

COUNTS = [0, 1, 37, 50]
N_USERS = 130


@pytest.fixture
def directory(seed_users, scim):
    seed_users([{"name": f"exact-{i:03d}@example.com", "mail": f"exact-{i:03d}@example.com"} for i in range(N_USERS)])
    total = scim("GET", "/Users", params={"count": 1000}).json()["totalResults"]
    assert total == N_USERS + 1  # and the service account
    return total


def page(scim, path, **params):
    r = scim("GET", path, params=params)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["itemsPerPage"] == len(body.get("Resources", []))
    return body


@pytest.mark.parametrize("count", COUNTS)
def test_every_page_of_users_carries_the_exact_total(scim, directory, count):
    if count == 0:
        body = page(scim, "/Users", count=0)
        assert (body["totalResults"], body["itemsPerPage"]) == (directory, 0)
        return
    seen, start = [], 1
    while start <= directory:
        body = page(scim, "/Users", startIndex=start, count=count)
        assert body["totalResults"] == directory, (start, count)
        assert body["itemsPerPage"] == min(count, directory - start + 1)
        seen += [u["id"] for u in body["Resources"]]
        start += count
    assert len(seen) == len(set(seen)) == directory
    past = page(scim, "/Users", startIndex=directory + 7, count=count)
    assert (past["totalResults"], past["itemsPerPage"]) == (directory, 0)


@pytest.mark.parametrize("count", COUNTS)
def test_filtered_totals_are_exact(scim, directory, count):
    # 100 of the 130 match; Drupal answers the filter itself.
    body = page(scim, "/Users", filter='userName sw "exact-0"', startIndex=3, count=count)
    assert body["totalResults"] == 100
    body = page(scim, "/Users", filter='userName eq "exact-042@example.com"', count=count)
    assert body["totalResults"] == 1


def test_a_long_list_is_counted_with_reads_of_ids_and_later_pages_cheaply(scim, directory, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    page(scim, "/Users", filter='emails.value ew "example.com"', count=0)  # a query not seen before
    first = drupal_requests()
    clear_drupal_requests()
    page(scim, "/Users", startIndex=1, count=37)
    page(scim, "/Users", startIndex=38, count=37)
    later = drupal_requests()
    clear_drupal_requests()
    # The remembered total is checked with one read next to the second page's window.
    page(scim, "/Users", startIndex=75, count=37)
    assert len(drupal_requests()) <= 2, [q["path"][-60:] for q in drupal_requests()]
    assert first and later


def test_root_search_pages_users_then_groups_with_the_exact_total(groups_gw, seed_users):
    groups_envoy = groups_gw
    seed_users([{"name": f"root-{i:03d}@example.com", "mail": f"root-{i:03d}@example.com"} for i in range(N_USERS)])
    for i in range(7):
        create_group(groups_envoy, f"Root group {i}")
    users = groups_envoy.scim("GET", "/Users", params={"count": 0}).json()["totalResults"]
    total = users + 7
    for count in COUNTS:
        seen, start = [], 1
        while True:
            r = groups_envoy.scim("POST", "/.search", json={"schemas": [SEARCH_REQUEST], "startIndex": start, "count": count})
            body = r.json()
            assert r.status_code == 200 and body["totalResults"] == total, (count, start, body.get("totalResults"))
            if count == 0:
                break
            seen += [x["id"] for x in body["Resources"]]
            start += count
            if start > total:
                break
        if count:
            assert len(seen) == len(set(seen)) == total, count
            # The groups come after every user, from the first group on.
            assert [x for x in seen[users:]] == [x for x in seen if x not in seen[:users]]


@pytest.mark.parametrize("count", COUNTS)
def test_every_page_of_groups_carries_the_exact_total(groups_gw, emulator, count):
    n = 73
    r = emulator.http.post(emulator.url + "/_emulator/terms", json=[{"name": f"Exact group {i:03d}"} for i in range(n)], timeout=30)
    r.raise_for_status()
    scim = groups_gw.scim
    if count == 0:
        body = page(scim, "/Groups", count=0)
        assert (body["totalResults"], body["itemsPerPage"]) == (n, 0)
        return
    seen, start = [], 1
    while start <= n:
        body = page(scim, "/Groups", startIndex=start, count=count, excludedAttributes="members")
        assert body["totalResults"] == n, (start, count)
        seen += [g["id"] for g in body["Resources"]]
        start += count
    assert len(seen) == len(set(seen)) == n
    assert page(scim, "/Groups", startIndex=n + 3, count=count)["totalResults"] == n
