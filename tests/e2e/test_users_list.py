"""GET /Users: ListResponse shape, anonymous user hidden, 1-based paging."""

import pytest

from harness import LIST_RESPONSE


def list_users(scim, **params):
    r = scim("GET", "/Users", params=params or None)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/scim+json"
    return r.json()


@pytest.fixture
def seeded(seed_user):
    """Seven active users (and one blocked) in Drupal."""
    names = [f"list-user-{i}@example.com" for i in range(7)]
    for n in names:
        seed_user(n, mail=n)
    seed_user("blocked-user@example.com", mail="blocked-user@example.com", status=False)
    return names + ["blocked-user@example.com"]


def test_list_response_shape(scim, seeded):
    body = list_users(scim)
    assert body["schemas"] == [LIST_RESPONSE]
    for key in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[key]) is int, (key, body[key])
    assert body["startIndex"] == 1
    assert isinstance(body["Resources"], list)
    assert body["itemsPerPage"] == len(body["Resources"])
    assert body["totalResults"] >= len(seeded)
    for u in body["Resources"]:
        assert isinstance(u["id"], str) and u["id"]
        assert isinstance(u["userName"], str) and u["userName"]
        assert u["meta"]["resourceType"] == "User"
        assert "password" not in u


def test_list_contains_seeded_users_including_blocked(scim, seeded):
    body = list_users(scim, count=1000)
    names = {u["userName"] for u in body["Resources"]}
    assert set(seeded) <= names
    blocked = [u for u in body["Resources"] if u["userName"] == "blocked-user@example.com"]
    assert blocked and blocked[0]["active"] is False


def test_anonymous_user_never_appears(scim, emulator, seeded):
    anon = emulator.anonymous_uuid()
    body = list_users(scim, count=1000)
    assert anon not in {u["id"] for u in body["Resources"]}
    assert all(u.get("userName") for u in body["Resources"])
    drupal_named = [u for u in emulator.drupal_users() if u.get("name")]
    assert body["totalResults"] == len(drupal_named)


def test_total_results_counts_every_user(scim, seed_user):
    before = list_users(scim)["totalResults"]
    for i in range(3):
        seed_user(f"count-{i}@example.com", mail=f"count-{i}@example.com")
    assert list_users(scim)["totalResults"] == before + 3


def test_count_limits_the_page(scim, seeded):
    body = list_users(scim, count=2)
    assert len(body["Resources"]) == 2
    assert body["itemsPerPage"] == 2
    assert body["startIndex"] == 1


def test_start_index_is_one_based(scim, seeded):
    full = list_users(scim, count=1000)["Resources"]
    page = list_users(scim, startIndex=1, count=3)["Resources"]
    assert [u["id"] for u in page] == [u["id"] for u in full[:3]]
    page = list_users(scim, startIndex=3, count=2)
    assert page["startIndex"] == 3
    assert [u["id"] for u in page["Resources"]] == [u["id"] for u in full[2:4]]


def test_count_zero_returns_no_resources(scim, seeded):
    body = list_users(scim, count=0)
    assert body.get("Resources", []) == []
    assert body["itemsPerPage"] == 0


def test_start_index_past_the_end_is_empty(scim, seeded):
    total = list_users(scim)["totalResults"]
    body = list_users(scim, startIndex=total + 5, count=10)
    assert body.get("Resources", []) == []


def test_total_results_is_exact_once_the_window_reaches_the_end(scim, seeded):
    """Drupal's JSON:API has no count: when the requested window reaches the last user,
    the gateway knows the exact total (docs/users.md, "totalResults")."""
    full = list_users(scim, count=1000)
    assert full["totalResults"] == len(full["Resources"])
    tail = list_users(scim, startIndex=full["totalResults"] - 1, count=10)
    assert tail["totalResults"] == full["totalResults"]


def test_total_results_is_exact_on_every_page(scim, seeded):
    """RFC 7644 §3.4.2: totalResults is the number of results of the query, on every page and
    for count=0, although Drupal's JSON:API gives no count (docs/users.md "Lists, lookups and search")."""
    total = list_users(scim, count=1000)["totalResults"]
    assert total > 3
    body = list_users(scim, startIndex=2, count=2)
    assert body["totalResults"] == total
    zero = list_users(scim, count=0)
    assert zero["totalResults"] == total and zero.get("Resources", []) == []


def test_total_results_past_the_end_stops_the_client(scim, seeded):
    total = list_users(scim, count=1000)["totalResults"]
    body = list_users(scim, startIndex=500, count=10)
    assert body.get("Resources", []) == []
    assert body["totalResults"] == total


def test_start_index_below_one_is_treated_as_one(scim, seeded):
    """RFC 7644 §3.4.2.4: a startIndex below 1 is interpreted as 1."""
    first = list_users(scim, count=2)
    body = list_users(scim, startIndex=0, count=2)
    assert body["startIndex"] == 1
    assert [u["id"] for u in body["Resources"]] == [u["id"] for u in first["Resources"]]


def test_paging_with_count_two_visits_every_user_once_in_a_stable_order(scim, seeded):
    def walk():
        seen, start = [], 1
        for _ in range(100):
            body = list_users(scim, startIndex=start, count=2)
            page = body["Resources"]
            assert len(page) <= 2
            if not page:
                break
            seen += [u["id"] for u in page]
            start += len(page)
            if start > body["totalResults"]:
                break
        return seen, body["totalResults"]

    first, total = walk()
    assert len(first) == total
    assert len(set(first)) == len(first), "a user appeared on two pages"
    full = {u["id"] for u in list_users(scim, count=1000)["Resources"]}
    assert set(first) == full
    second, _ = walk()
    assert second == first, "page order is not stable"


def test_paging_past_drupals_page_size(scim, seed_user):
    """Drupal pages JSON:API lists by at most 50 (plus the hidden anonymous user)."""
    names = [f"many-{i:03d}@example.com" for i in range(60)]
    for n in names:
        seed_user(n, mail=n)
    body = list_users(scim, count=1000)
    assert set(names) <= {u["userName"] for u in body["Resources"]}
    assert body["totalResults"] == len(body["Resources"])
    window = list_users(scim, startIndex=45, count=10)["Resources"]
    assert [u["id"] for u in window] == [u["id"] for u in body["Resources"][44:54]]


def test_negative_count_is_treated_as_zero(scim, seeded):
    """RFC 7644 §3.4.2.4: a negative count is interpreted as 0."""
    body = list_users(scim, count=-1)
    assert body.get("Resources", []) == []
