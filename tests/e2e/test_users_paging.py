"""Lists beyond Drupal's 50-user pages: windows, default and maximum counts, totalResults,
walks while users come and go, count=0, sortBy/sortOrder, and the post-filter page limit.
Drupal's request log shows which pages the gateway read."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from harness import LIST_RESPONSE, SEARCH_REQUEST, SERVICE_USER, assert_scim_error, jumpcloud_user


def list_users(scim, **params):
    r = scim("GET", "/Users", params=params)
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    for key in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[key]) is int, (key, body)
    assert body["itemsPerPage"] == len(body.get("Resources", []))
    return body


def ids(body) -> list[str]:
    return [u["id"] for u in body.get("Resources", [])]


def drupal_pages(drupal_requests, probes: bool = False) -> list[tuple[int, int]]:
    """(page[offset], page[limit]) of every user-list request the gateway made, in order: the
    pages of the window, or (probes=True) the reads of ids only that count the list."""
    out = []
    for q in drupal_requests():
        if q["method"] != "GET":
            continue
        u = urlsplit(q["path"])
        if u.path != "/jsonapi/user/user":
            continue
        params = dict(parse_qsl(u.query))
        if "page[offset]" not in params:
            continue  # not a list read (the gateway's own check of its credentials)
        if (params.get("fields[user--user]") == "drupal_internal__uid") != probes:
            continue
        out.append((int(params["page[offset]"]), int(params["page[limit]"])))
    return out


@pytest.fixture
def many(seed_users):
    """120 users (plus the service account: 121 listed), seeded in uid order."""
    users = [{"name": f"page-{i:03d}@example.com", "mail": f"page-{i:03d}@example.com"} for i in range(120)]
    seed_users(users)
    return [u["name"] for u in users]


@pytest.fixture
def everyone(scim, many):
    body = list_users(scim, count=1000)
    assert body["totalResults"] == 121 == len(body["Resources"])
    return ids(body)


def test_default_count_is_100(scim, everyone):
    body = list_users(scim)
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 100
    assert ids(body) == everyone[:100]
    assert body["totalResults"] == 121, "exact, although the window ends before the list"


def test_a_window_across_drupal_pages(scim, everyone, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    body = list_users(scim, count=100, startIndex=51)
    assert ids(body) == everyone[50:121]
    assert body["startIndex"] == 51
    assert body["itemsPerPage"] == 71
    assert body["totalResults"] == 121, "the window reached the end: exact"
    pages = drupal_pages(drupal_requests)
    assert pages[0] == (50, 50), "the first Drupal page of the window is read first"
    assert sorted(pages[1:]) == [(100, 50)], pages


def test_a_window_that_fits_in_the_first_drupal_page_is_one_page_read(scim, everyone, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    body = list_users(scim, startIndex=11, count=20)
    assert ids(body) == everyone[10:30]
    assert body["totalResults"] == 121
    assert drupal_pages(drupal_requests) == [(10, 50)]
    # The rest of the list is counted with reads of ids only (docs/users.md "Lists, lookups and search").
    assert drupal_pages(drupal_requests, probes=True), "counted"


def test_window_ending_exactly_at_the_last_user(scim, everyone):
    body = list_users(scim, startIndex=22, count=100)
    assert ids(body) == everyone[21:121]
    assert body["totalResults"] == 121


def test_count_above_the_maximum_is_clamped_to_1000(scim, everyone):
    body = list_users(scim, count=5000)
    assert ids(body) == everyone
    assert body["totalResults"] == 121


@pytest.mark.parametrize("count", [1, 7, 49, 50, 51, 99, 100, 101])
def test_walks_of_every_size_visit_each_user_once(scim, everyone, count):
    seen, start = [], 1
    for _ in range(200):
        body = list_users(scim, startIndex=start, count=count)
        page = ids(body)
        assert len(page) <= count
        assert body["startIndex"] == start
        seen += page
        start += len(page)
        if not page or start > body["totalResults"]:
            break
    assert seen == everyone


def walk(scim, count, between=None, limit=200, advance="itemsPerPage"):
    """Pages like an IdP until startIndex passes totalResults; `between(n)` runs after page n.
    `advance`: the next startIndex is startIndex + itemsPerPage (clients that read RFC 7644
    literally) or startIndex + count (Okta's documented import: 1, 101, 201, …)."""
    seen, start = [], 1
    for n in range(limit):
        body = list_users(scim, startIndex=start, count=count)
        page = [u["userName"] for u in body["Resources"]]
        seen += page
        start += len(page) if advance == "itemsPerPage" else count
        if start > body["totalResults"] or (advance == "itemsPerPage" and not page):
            return seen
        if between:
            between(n)
    raise AssertionError("the walk did not end")


ADVANCE = pytest.mark.parametrize("advance", ["itemsPerPage", "count"], ids=["by-itemsPerPage", "by-count"])


@ADVANCE
def test_walk_while_users_are_added_and_later_ones_deleted(scim, seed_users, create_user, advance):
    """Users created during a walk (they get higher uids: Drupal's order appends them) and
    users deleted before the walk reaches them: nobody who exists throughout is skipped or
    listed twice, the new ones are listed, the deleted ones are not."""
    seed_users([{"name": f"walk-{i:02d}@example.com", "mail": f"walk-{i:02d}@example.com"} for i in range(40)])
    uuid = {u["userName"]: u["id"] for u in list_users(scim, count=1000)["Resources"]}
    added, deleted = [], []

    def between(n):
        name = f"walk-new-{n:02d}@example.com"
        create_user(name)
        added.append(name)
        victim = f"walk-{39 - n:02d}@example.com"  # far ahead of the walk
        if n < 4:
            assert scim("DELETE", f"/Users/{uuid[victim]}").status_code == 204
            deleted.append(victim)

    seen = walk(scim, 7, between, advance=advance)
    # A user deleted ahead of the walk leaves its place empty (docs/users.md: deleted users keep
    # their place): a client advancing by itemsPerPage may then see a user twice, never
    # miss one; one advancing by count sees everyone once.
    if advance == "count":
        assert len(seen) == len(set(seen)), "a user was listed twice"
    stayed = [n for n in uuid if n not in deleted]
    missing = [n for n in stayed if n not in seen]
    assert missing == [], f"skipped: {missing}"
    assert not set(deleted) & set(seen)
    assert [n for n in added if n not in seen] == [], "a user created during the walk was not listed"


@ADVANCE
def test_walk_while_already_listed_users_are_deleted(scim, seed_users, advance):
    """A user deleted while a client pages moves everyone after it one place earlier: totals
    are exact, so positions count live users only (RFC 7644 §3.4.2.4 lets results change
    between requests). The walk never lists anyone twice or a user after its delete, misses
    at most one user per delete, and its last page's totalResults is the exact count left."""
    seed_users([{"name": f"back-{i:02d}@example.com", "mail": f"back-{i:02d}@example.com"} for i in range(30)])
    uuid = {u["userName"]: u["id"] for u in list_users(scim, count=1000)["Resources"]}
    order = [n for n in uuid if n != SERVICE_USER]
    deleted = []

    def between(n):
        victim = order[n]  # listed on the first page already
        assert scim("DELETE", f"/Users/{uuid[victim]}").status_code == 204
        deleted.append(victim)

    seen = walk(scim, 7, between, advance=advance)
    assert len(seen) == len(set(seen)), "a user was listed twice"
    missing = [n for n in uuid if n not in seen and n not in deleted]
    assert len(missing) <= len(deleted), missing
    assert list_users(scim, count=1)["totalResults"] == len(uuid) - len(deleted)


@ADVANCE
def test_a_run_of_deleted_users_never_looks_like_the_end(scim, seed_users, advance):
    """Many consecutive deleted users inside a window: the page must not come back empty
    (clients stop at an empty page) while users remain after it, and a walk still lists
    everyone who is left, once."""
    seed_users([{"name": f"run-{i:02d}@example.com", "mail": f"run-{i:02d}@example.com"} for i in range(30)])
    uuid = {u["userName"]: u["id"] for u in list_users(scim, count=1000)["Resources"]}
    doomed = [f"run-{i:02d}@example.com" for i in range(6, 20)]
    for name in doomed:
        assert scim("DELETE", f"/Users/{uuid[name]}").status_code == 204
    page = list_users(scim, startIndex=8, count=7)
    assert page["Resources"], f"an empty page while users remain: {page}"
    seen = walk(scim, 7, advance=advance)
    # A window made only of deleted places reads on to the next user, so a walk may see
    # that user twice; it never misses one and never stops early.
    assert sorted(set(seen)) == sorted(n for n in uuid if n not in doomed)


def test_count_zero(scim, everyone, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    body = list_users(scim, count=0)
    assert body.get("Resources", []) == []
    assert body["itemsPerPage"] == 0
    assert body["totalResults"] == 121
    assert drupal_pages(drupal_requests) == [], "no page of users is read for count=0"
    body = list_users(scim, count=0, filter='userName eq "nobody@example.com"')
    assert body["totalResults"] == 0 and body.get("Resources", []) == []
    body = list_users(scim, count=0, filter='userName eq "page-007@example.com"')
    assert body["totalResults"] == 1 and body.get("Resources", []) == []


def test_count_and_start_index_must_be_integers(scim, many):
    assert_scim_error(scim("GET", "/Users", params={"count": "ten"}), 400, "invalidValue")
    assert_scim_error(scim("GET", "/Users", params={"startIndex": "1.5"}), 400, "invalidValue")


# ---- sortBy / sortOrder ------------------------------------------------------------------


@pytest.fixture
def sortable(seed_users):
    """Users with distinct and tied family names, titles, creation dates and mails."""
    users = [
        {"name": "sort-e@example.com", "mail": "e@sort.example", "created": "2022-03-01T00:00:00Z", "field_family_name": "Miller", "field_phone_work": "5"},
        {"name": "sort-a@example.com", "mail": "d@sort.example", "created": "2021-01-01T00:00:00Z", "field_family_name": "Baker", "field_phone_work": "4"},
        {"name": "sort-d@example.com", "mail": "c@sort.example", "created": "2023-05-05T00:00:00Z", "field_family_name": "Miller", "field_phone_work": "3"},
        {"name": "sort-c@example.com", "mail": "b@sort.example", "created": "2020-07-07T00:00:00Z", "field_family_name": "Adams", "field_phone_work": "2"},
        {"name": "sort-b@example.com", "mail": "a@sort.example", "created": "2024-02-02T00:00:00Z", "field_family_name": "Miller", "field_phone_work": "1"},
    ]
    seeded = seed_users(users)
    return [{**u, "uuid": s["uuid"], "uid": s["uid"]} for u, s in zip(users, seeded)]


def sorted_names(scim, **params):
    body = list_users(scim, filter='userName sw "sort-"', count=100, **params)
    return [u["userName"] for u in body["Resources"]]


@pytest.mark.mapped_fields
@pytest.mark.parametrize(
    "sort_by,key",
    [
        ("userName", lambda u: (u["name"], u["uid"])),
        ("USERNAME", lambda u: (u["name"], u["uid"])),
        ("name.familyName", lambda u: (u["field_family_name"], u["uid"])),
        ("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", lambda u: (u["field_family_name"], u["uid"])),
        ("meta.created", lambda u: (u["created"], u["uid"])),
        ("emails", lambda u: (u["mail"], u["uid"])),
        ("emails.value", lambda u: (u["mail"], u["uid"])),
        ("phoneNumbers", lambda u: (u["field_phone_work"], u["uid"])),
        ("id", lambda u: (u["uuid"], u["uid"])),
    ],
)
def test_sort_by(scim, sortable, sort_by, key):
    expected = [u["name"] for u in sorted(sortable, key=key)]
    assert sorted_names(scim, sortBy=sort_by) == expected
    assert sorted_names(scim, sortBy=sort_by, sortOrder="ascending") == expected
    desc = sorted_names(scim, sortBy=sort_by, sortOrder="descending")
    # Descending reverses the attribute order; ties keep the stable uid order.
    by_uid = sorted(sortable, key=lambda u: u["uid"])
    expected_desc = [u["name"] for u in sorted(by_uid, key=lambda u: key(u)[0], reverse=True)]
    assert desc == expected_desc


@pytest.mark.mapped_fields
def test_sort_by_last_modified_follows_changes(scim, sortable, set_fields):
    import time

    # Drupal's `changed` has one-second resolution.
    for name in ["sort-c@example.com", "sort-a@example.com"]:
        uuid = next(u["uuid"] for u in sortable if u["name"] == name)
        time.sleep(1.05)
        set_fields(uuid, field_title="touched")
    got = sorted_names(scim, sortBy="meta.lastModified")
    assert got[-2:] == ["sort-c@example.com", "sort-a@example.com"]
    assert sorted_names(scim, sortBy="meta.lastModified", sortOrder="descending")[:2] == ["sort-a@example.com", "sort-c@example.com"]


def test_sort_order_is_case_insensitive_and_sort_order_alone_keeps_uid_order(scim, many, everyone):
    body = list_users(scim, sortBy="userName", sortOrder="DESCENDING", count=1000)
    names = [u["userName"] for u in body["Resources"]]
    assert names == sorted(names, reverse=True)
    body = list_users(scim, sortOrder="descending", count=1000)
    assert ids(body) == everyone


def test_sorted_window_across_drupal_pages(scim, many):
    full = [u["userName"] for u in list_users(scim, sortBy="userName", sortOrder="descending", count=1000)["Resources"]]
    assert full == sorted(full, reverse=True)
    body = list_users(scim, sortBy="userName", sortOrder="descending", startIndex=11, count=100)
    assert [u["userName"] for u in body["Resources"]] == full[10:110]
    seen, start = [], 1
    while True:
        body = list_users(scim, sortBy="userName", sortOrder="descending", startIndex=start, count=7)
        seen += [u["userName"] for u in body["Resources"]]
        start += body["itemsPerPage"]
        if not body["Resources"] or start > body["totalResults"]:
            break
    assert seen == full


@pytest.mark.parametrize("sort_by", ["nickName", "foo", "addresses", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", "meta.resourceType", "emails[type eq \"work\"]"])
def test_sort_by_an_attribute_not_stored_is_400_invalid_value(scim, drupal_requests, sort_by):
    assert_scim_error(scim("GET", "/Users", params={"sortBy": sort_by}), 400, "invalidValue")
    assert drupal_requests() == []


def test_bad_sort_order_is_400_invalid_value(scim, drupal_requests):
    assert_scim_error(scim("GET", "/Users", params={"sortBy": "userName", "sortOrder": "sideways"}), 400, "invalidValue")
    assert drupal_requests() == []


def test_sort_through_search(scim, many):
    r = scim(
        "POST",
        "/Users/.search",
        json={"schemas": [SEARCH_REQUEST], "filter": 'userName sw "page-1"', "sortBy": "userName", "sortOrder": "descending", "startIndex": 3, "count": 5},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    expected = sorted((f"page-{i:03d}@example.com" for i in range(100, 120)), reverse=True)[2:7]
    assert [u["userName"] for u in body["Resources"]] == expected
    assert body["startIndex"] == 3 and body["itemsPerPage"] == 5


# ---- post-filtered queries: paging and the page limit ------------------------------------


def test_post_filtered_query_pages_exactly(scim, emulator_settings, many):
    """`emails eq` is checked by the gateway (the collation may differ): paging and totals
    still come out exact."""
    for insensitive in (False, True):
        emulator_settings(mail_case_insensitive=insensitive)
        body = list_users(scim, filter='emails sw "PAGE-0"', count=1000)
        expected = [f"page-{i:03d}@example.com" for i in range(100)]
        assert [u["userName"] for u in body["Resources"]] == expected
        body = list_users(scim, filter='not (emails sw "page-0")', startIndex=2, count=10)
        rest = [SERVICE_USER] + [f"page-{i:03d}@example.com" for i in range(100, 120)]
        assert [u["userName"] for u in body["Resources"]] == rest[1:11]
        assert body["totalResults"] == len(rest)


def test_post_filter_over_too_many_users_is_400_too_many(scim, seed_users, drupal_requests, clear_drupal_requests):
    seed_users([{"name": f"bulk-{i:04d}", "mail": f"bulk-{i:04d}@example.com"} for i in range(1010)])
    clear_drupal_requests()
    r = scim("GET", "/Users", params={"filter": 'not (userName co "zzz")'})
    assert_scim_error(r, 400, "tooMany")
    assert len(drupal_pages(drupal_requests)) <= 21
    # A translatable filter over the same users is fine.
    body = list_users(scim, filter='userName sw "bulk-"', startIndex=1001, count=100)
    assert [u["userName"] for u in body["Resources"]] == [f"bulk-{i:04d}" for i in range(1000, 1010)]


def test_created_users_show_up_in_the_window_they_belong_to(scim, many, everyone):
    r = scim("POST", "/Users", json=jumpcloud_user("page-late@example.com"))
    assert r.status_code == 201
    body = list_users(scim, startIndex=121, count=10)
    assert [u["userName"] for u in body["Resources"]] == ["page-119@example.com", "page-late@example.com"]
    assert body["totalResults"] == 122
