"""`attributes` / `excludedAttributes` on every answer that carries Users (by id, list,
`.search`, and the answers to POST/PUT/PATCH), and `POST /Users/.search` / `POST /.search`
with a SearchRequest body."""

from __future__ import annotations

import pytest

from harness import (
    CORE_USER,
    ENTERPRISE_USER,
    LIST_RESPONSE,
    SEARCH_REQUEST,
    assert_scim_error,
    full_user,
    patch_op,
)

pytestmark = pytest.mark.mapped_fields

EXT = ENTERPRISE_USER
ALWAYS = {"schemas", "id"}


@pytest.fixture
def pat(scim):
    r = scim("POST", "/Users", json=full_user("pat@example.com"))
    assert r.status_code == 201, r.text
    return r.json()


PROJECTIONS = [
    ({"attributes": "userName"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "userName": u["userName"]}),
    ({"attributes": "USERNAME,Active"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "userName": u["userName"], "active": u["active"]}),
    ({"attributes": "name.givenName"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "name": {"givenName": "Pat"}}),
    ({"attributes": "name"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "name": u["name"]}),
    ({"attributes": "emails.value"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "emails": [{"value": e["value"]} for e in u["emails"]]}),
    ({"attributes": "phoneNumbers.type"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "phoneNumbers": [{"type": "work"}, {"type": "mobile"}]}),
    ({"attributes": f"{EXT}:department"}, lambda u: {"schemas": u["schemas"], "id": u["id"], EXT: {"department": "QA"}}),
    ({"attributes": EXT}, lambda u: {"schemas": u["schemas"], "id": u["id"], EXT: u[EXT]}),
    ({"attributes": "urn:ietf:params:scim:schemas:core:2.0:User:title"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "title": "Tester"}),
    ({"attributes": "meta.lastModified"}, lambda u: {"schemas": u["schemas"], "id": u["id"], "meta": {"lastModified": u["meta"]["lastModified"]}}),
    ({"attributes": "id"}, lambda u: {"schemas": u["schemas"], "id": u["id"]}),
    ({"attributes": "nickName"}, lambda u: {"schemas": u["schemas"], "id": u["id"]}),
    ({"excludedAttributes": "emails,name"}, lambda u: {k: v for k, v in u.items() if k not in ("emails", "name")}),
    ({"excludedAttributes": "name.familyName"}, lambda u: {**u, "name": {"givenName": "Pat"}}),
    ({"excludedAttributes": f"{EXT}:employeeNumber"}, lambda u: {**u, EXT: {"department": "QA"}}),
    ({"excludedAttributes": EXT}, lambda u: {k: v for k, v in u.items() if k != EXT}),
    ({"excludedAttributes": "id,schemas"}, lambda u: u),
    ({"excludedAttributes": "meta,phoneNumbers"}, lambda u: {k: v for k, v in u.items() if k not in ("meta", "phoneNumbers")}),
    ({"excludedAttributes": "password"}, lambda u: u),
]
PIDS = [next(iter(p.values())) + ("-excl" if "excludedAttributes" in p else "") for p, _ in PROJECTIONS]


def _strip_schemas(doc):
    """`schemas` may drop the extension URN when the extension is projected away."""
    return {k: v for k, v in doc.items() if k != "schemas"}


def check(got: dict, expected: dict):
    assert ALWAYS <= set(got), got
    assert CORE_USER in got["schemas"]
    assert _strip_schemas(got) == _strip_schemas(expected)


@pytest.mark.parametrize("params,expect", PROJECTIONS, ids=PIDS)
def test_projection_on_get_by_id(scim, pat, params, expect):
    full = scim("GET", f"/Users/{pat['id']}").json()
    r = scim("GET", f"/Users/{pat['id']}", params=params)
    assert r.status_code == 200, r.text
    check(r.json(), expect(full))


@pytest.mark.parametrize("params,expect", PROJECTIONS, ids=PIDS)
def test_projection_on_lists(scim, pat, params, expect):
    full = scim("GET", f"/Users/{pat['id']}").json()
    r = scim("GET", "/Users", params={"filter": 'userName eq "pat@example.com"', **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE] and body["totalResults"] == 1
    check(body["Resources"][0], expect(full))


@pytest.mark.parametrize("params,expect", PROJECTIONS, ids=PIDS)
@pytest.mark.parametrize("endpoint", ["/Users/.search", "/.search"])
def test_projection_on_search(scim, pat, params, expect, endpoint):
    full = scim("GET", f"/Users/{pat['id']}").json()
    body = {"schemas": [SEARCH_REQUEST], "filter": 'userName eq "pat@example.com"'}
    for k, v in params.items():
        body[k] = v.split(",")
    r = scim("POST", endpoint, json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["schemas"] == [LIST_RESPONSE] and got["totalResults"] == 1
    check(got["Resources"][0], expect(full))


def test_search_accepts_comma_separated_attribute_strings(scim, pat):
    r = scim("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": 'userName eq "pat@example.com"', "attributes": "userName, active"})
    assert r.status_code == 200, r.text
    assert set(r.json()["Resources"][0]) == ALWAYS | {"userName", "active"}


def test_projection_on_every_listed_user(scim, pat, seed_users):
    seed_users([{"name": f"proj-{i}@example.com", "mail": f"proj-{i}@example.com"} for i in range(60)])
    r = scim("GET", "/Users", params={"attributes": "userName", "count": 1000})
    assert r.status_code == 200
    for u in r.json()["Resources"]:
        assert set(u) == ALWAYS | {"userName"}, u


@pytest.mark.parametrize("params,expect", PROJECTIONS[:8] + PROJECTIONS[12:16], ids=PIDS[:8] + PIDS[12:16])
def test_projection_on_write_answers(scim, emulator, params, expect):
    r = scim("POST", "/Users", json=full_user("proj@example.com"), params=params)
    assert r.status_code == 201, r.text
    created = r.json()
    uid = created["id"]
    assert r.headers["Location"].endswith(f"/Users/{uid}")
    assert emulator.drupal_user(uid)["field_title"] == "Tester", "projection is only about the answer"
    full = scim("GET", f"/Users/{uid}").json()
    check(created, expect(full))

    r = scim("PUT", f"/Users/{uid}", json=full_user("proj@example.com"), params=params)
    assert r.status_code == 200, r.text
    check(r.json(), expect(scim("GET", f"/Users/{uid}").json()))

    r = scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "replace", "path": "active", "value": True}), params=params)
    assert r.status_code == 200, r.text
    check(r.json(), expect(scim("GET", f"/Users/{uid}").json()))

    r = scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "remove", "path": "nickName"}), params=params)
    assert r.status_code == 200, r.text
    check(r.json(), expect(scim("GET", f"/Users/{uid}").json()))


def test_etag_is_sent_with_a_projected_answer(scim, pat):
    r = scim("GET", f"/Users/{pat['id']}", params={"attributes": "userName"})
    assert r.headers["ETag"] == pat["meta"]["version"]


@pytest.mark.parametrize("params", [{"attributes": "emails[type eq"}, {"excludedAttributes": "1abc"}, {"attributes": "name..givenName"}])
def test_bad_attribute_paths_are_400_invalid_value(scim, pat, drupal_requests, clear_drupal_requests, params):
    clear_drupal_requests()
    assert_scim_error(scim("GET", f"/Users/{pat['id']}", params=params), 400, "invalidValue")
    assert_scim_error(scim("GET", "/Users", params=params), 400, "invalidValue")
    assert drupal_requests() == []


# ---- .search ---------------------------------------------------------------------------


@pytest.fixture
def people(seed_users):
    users = [{"name": f"search-{i:02d}@example.com", "mail": f"search-{i:02d}@example.com", "field_title": "Even" if i % 2 == 0 else "Odd"} for i in range(12)]
    seed_users(users)
    return [u["name"] for u in users]


@pytest.mark.parametrize("endpoint", ["/Users/.search", "/.search"])
def test_search_request(scim, people, endpoint):
    body = {
        "schemas": [SEARCH_REQUEST],
        "filter": 'title eq "even" and userName sw "search-"',
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": 2,
        "count": 3,
        "attributes": ["userName", "title"],
    }
    r = scim("POST", endpoint, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/scim+json"
    got = r.json()
    assert got["schemas"] == [LIST_RESPONSE]
    evens = sorted((n for i, n in enumerate(people) if i % 2 == 0), reverse=True)
    assert [u["userName"] for u in got["Resources"]] == evens[1:4]
    assert got["startIndex"] == 2 and got["itemsPerPage"] == 3
    for u in got["Resources"]:
        assert set(u) == ALWAYS | {"userName", "title"}


def test_search_equals_the_get_list(scim, people):
    get = scim("GET", "/Users", params={"filter": 'title eq "Odd"', "startIndex": 2, "count": 4}).json()
    post = scim("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": 'title eq "Odd"', "startIndex": 2, "count": 4}).json()
    assert post == get


def test_search_without_a_filter_lists_everyone(scim, people):
    r = scim("POST", "/.search", json={"schemas": [SEARCH_REQUEST], "count": 1000})
    assert r.status_code == 200, r.text
    assert set(people) <= {u["userName"] for u in r.json()["Resources"]}


def test_search_ignores_query_parameters_in_favour_of_the_body(scim, people):
    r = scim("POST", "/Users/.search", params={"filter": 'title eq "Odd"'}, json={"schemas": [SEARCH_REQUEST], "filter": 'title eq "Even"', "count": 1000})
    assert r.status_code == 200, r.text
    assert {u["userName"] for u in r.json()["Resources"]} == {n for i, n in enumerate(people) if i % 2 == 0}


@pytest.mark.parametrize(
    "body,scim_type",
    [
        ({"filter": 'userName eq "x"'}, "invalidValue"),
        ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "filter": 'userName eq "x"'}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "filter": 'userName eq "x'}, "invalidFilter"),
        ({"schemas": [SEARCH_REQUEST], "filter": 'nickName eq "x"'}, "invalidFilter"),
        ({"schemas": [SEARCH_REQUEST], "filter": 5}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "count": "10"}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "startIndex": 1.5}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "attributes": 5}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "sortBy": "nickName"}, "invalidValue"),
        ({"schemas": [SEARCH_REQUEST], "sortOrder": "up"}, "invalidValue"),
    ],
    ids=["no-schemas", "wrong-schema", "bad-filter", "unmapped-filter", "filter-number", "count-string", "startIndex-float", "attributes-number", "sortBy-unmapped", "sortOrder-bad"],
)
def test_bad_search_request_is_400(scim, people, drupal_requests, body, scim_type):
    assert_scim_error(scim("POST", "/Users/.search", json=body), 400, scim_type)
    assert drupal_requests() == []


@pytest.mark.parametrize("raw", [b"", b"{", b"[]"])
def test_search_body_that_is_not_an_object_is_invalid_syntax(scim, raw):
    assert_scim_error(scim("POST", "/.search", data=raw, headers={"Content-Type": "application/scim+json"}), 400, "invalidSyntax")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_search_is_post_only(scim, method):
    r = scim(method, "/Users/.search", json={"schemas": [SEARCH_REQUEST]} if method != "GET" else None)
    assert_scim_error(r, 405)
