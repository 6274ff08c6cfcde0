"""/Groups basics through an Envoy with `groups` enabled: create (201, Location, 409 on a
duplicate name without case), read, list with filters and paging, attributes /
excludedAttributes (no member lookups with excludedAttributes=members), PUT (rename and
member set as per-user deltas; no `members` leaves them alone), DELETE (term and every
reference gone), the users' read-only `groups`, and discovery."""

from __future__ import annotations

import pytest

from harness import CORE_USER, LIST_RESPONSE, SCIM_ERROR, assert_scim_error
from groups_support import (  # noqa: F401  (fixtures)
    CORE_GROUP,
    MEMBERSHIP_FIELD,
    create_group,
    delete_term_directly,
    drupal_group_refs,
    drupal_members,
    drupal_term,
    drupal_terms,
    gateway_log,
    get_group,
    groups_gw,
    gscim,
    group_body,
    is_member_lookup,
    member_ids,
    relationship_writes,
    scim_members,
)


@pytest.fixture
def users(seed_user):
    return {n: seed_user(f"{n}@example.com", mail=f"{n}@example.com")["uuid"] for n in ("ann", "bob", "cat", "dan")}


# ---- create -----------------------------------------------------------------------------


def test_create_group_with_members(groups_gw, gscim, emulator, users):
    r = gscim("POST", "/Groups", json=group_body("Engineering", [users["ann"], users["bob"]]))
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/scim+json"
    g = r.json()
    assert g["schemas"] == [CORE_GROUP]
    assert isinstance(g["id"], str)
    assert g["displayName"] == "Engineering"
    assert r.headers["Location"] == g["meta"]["location"]
    assert g["meta"]["location"].endswith(f"/scim/v2/Groups/{g['id']}")
    assert g["meta"]["resourceType"] == "Group"
    assert r.headers.get("ETag") == g["meta"]["version"]
    assert member_ids(g) == {users["ann"], users["bob"]}
    for m in g["members"]:
        assert m["type"] == "User"
        assert m["$ref"].endswith(f"/scim/v2/Users/{m['value']}")
    # Drupal: one term named Engineering, referenced by exactly ann and bob.
    assert drupal_terms(emulator) == {g["id"]: "Engineering"}
    assert drupal_members(emulator, g["id"]) == {users["ann"], users["bob"]}
    assert drupal_group_refs(emulator, users["cat"]) == []


def test_create_empty_group(groups_gw, gscim, emulator):
    for body in (group_body("Empty"), group_body("Also empty", [])):
        r = gscim("POST", "/Groups", json=body)
        assert r.status_code == 201, r.text
        g = r.json()
        assert g.get("members", []) == []
        assert drupal_term(emulator, g["id"])["name"] == body["displayName"]


def test_duplicate_display_name_is_409_without_case(groups_gw, gscim, emulator):
    g = create_group(groups_gw, "Engineering")
    for name in ("Engineering", "engineering", "ENGINEERING"):
        err = assert_scim_error(gscim("POST", "/Groups", json=group_body(name)), 409, "uniqueness")
        assert err["schemas"] == [SCIM_ERROR]
    assert drupal_terms(emulator) == {g["id"]: "Engineering"}


def test_duplicate_of_a_term_created_in_drupal_is_409(groups_gw, gscim, emulator):
    """Drupal allows duplicate term names; the gateway checks the vocabulary itself."""
    from groups_support import seed_term

    seed_term(emulator, "Sales")
    assert_scim_error(gscim("POST", "/Groups", json=group_body("sales")), 409, "uniqueness")
    assert list(drupal_terms(emulator).values()) == ["Sales"]


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [CORE_GROUP]},
        {"schemas": [CORE_GROUP], "displayName": ""},
        {"schemas": [CORE_GROUP], "displayName": 42},
        {"schemas": [CORE_USER], "displayName": "Wrong schema"},
        {"schemas": [CORE_GROUP], "displayName": "Bad members", "members": "nope"},
    ],
    ids=["no-name", "empty-name", "number-name", "user-schema", "members-not-list"],
)
def test_create_invalid_is_400_and_writes_nothing(groups_gw, gscim, emulator, body):
    r = gscim("POST", "/Groups", json=body)
    assert r.status_code == 400, r.text
    assert_scim_error(r, 400)
    assert drupal_terms(emulator) == {}


def test_create_with_unknown_member_is_400_and_creates_nothing(groups_gw, gscim, emulator, users):
    ghost = "0b6c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d11"
    r = gscim("POST", "/Groups", json=group_body("Ghosts", [users["ann"], ghost]))
    err = assert_scim_error(r, 400, "invalidValue")
    assert ghost in err["detail"]
    assert drupal_terms(emulator) == {}
    assert drupal_group_refs(emulator, users["ann"]) == []


# ---- read --------------------------------------------------------------------------------


def test_get_group_and_404s(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Readers", [users["cat"]])
    r = gscim("GET", f"/Groups/{g['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == g["id"] and body["displayName"] == "Readers"
    assert member_ids(body) == {users["cat"]}
    assert r.headers.get("ETag") == body["meta"]["version"]
    for missing in ("0b6c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d11", "42", users["ann"]):
        assert_scim_error(gscim("GET", f"/Groups/{missing}"), 404)


def test_term_of_another_vocabulary_is_not_a_group(groups_gw, gscim, emulator):
    r = emulator.http.post(emulator.url + "/_emulator/terms", json={"name": "a tag", "vocabulary": "tags"}, timeout=10)
    tag = r.json()["uuid"]
    assert_scim_error(gscim("GET", f"/Groups/{tag}"), 404)
    assert gscim("GET", "/Groups").json()["totalResults"] == 0


# ---- list, filter, paging ------------------------------------------------------------


@pytest.fixture
def five_groups(groups_gw, users):
    names = ["Engineering", "Engineering Managers", "Sales", "Support", "Docs"]
    return {n: create_group(groups_gw, n, [users["ann"]] if n.startswith("Eng") else None)["id"] for n in names}


def names_for(gscim, flt: str) -> set[str]:
    r = gscim("GET", "/Groups", params={"filter": flt})
    assert r.status_code == 200, (flt, r.text)
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    return {g["displayName"] for g in body["Resources"]}


def test_list_all_groups(groups_gw, gscim, five_groups, users):
    r = gscim("GET", "/Groups")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == 5 and body["startIndex"] == 1 and body["itemsPerPage"] == 5
    by_name = {g["displayName"]: g for g in body["Resources"]}
    assert set(by_name) == set(five_groups)
    assert member_ids(by_name["Engineering"]) == {users["ann"]}
    assert member_ids(by_name["Sales"]) == set()


@pytest.mark.parametrize(
    "flt,expected",
    [
        ('displayName eq "Engineering"', {"Engineering"}),
        ('displayName eq "engineering"', {"Engineering"}),
        ('DISPLAYNAME EQ "SALES"', {"Sales"}),
        ('displayName eq "Nobody"', set()),
        ('displayName co "eer"', {"Engineering", "Engineering Managers"}),
        ('displayName sw "s"', {"Sales", "Support"}),
        ('displayName ew "s"', {"Engineering Managers", "Sales", "Docs"}),
        ('displayName ne "Sales"', {"Engineering", "Engineering Managers", "Support", "Docs"}),
        ('displayName pr', {"Engineering", "Engineering Managers", "Sales", "Support", "Docs"}),
        ('displayName sw "S" and displayName co "port"', {"Support"}),
        ('displayName eq "Docs" or displayName eq "Sales"', {"Docs", "Sales"}),
        ('not (displayName sw "E")', {"Sales", "Support", "Docs"}),
        ('urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Docs"', {"Docs"}),
    ],
)
def test_filters(groups_gw, gscim, five_groups, flt, expected):
    assert names_for(gscim, flt) == expected


def test_filter_by_id(groups_gw, gscim, five_groups):
    assert names_for(gscim, f'id eq "{five_groups["Docs"]}"') == {"Docs"}


def test_filter_with_quote_in_value(groups_gw, gscim):
    create_group(groups_gw, 'R&D "core"')
    assert names_for(gscim, r'displayName eq "R&D \"core\""') == {'R&D "core"'}


@pytest.mark.parametrize("flt", ['displayName eq', 'displayName xx "a"', 'members.value eq', 'displayName gt "m"'])
def test_bad_filters_are_400(groups_gw, gscim, five_groups, flt):
    r = gscim("GET", "/Groups", params={"filter": flt})
    assert r.status_code == 400, (flt, r.text)
    assert_scim_error(r, 400)


def test_search_endpoint(groups_gw, gscim, five_groups):
    r = gscim(
        "POST",
        "/Groups/.search",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'displayName eq "Sales"'},
    )
    assert r.status_code == 200, r.text
    assert [g["displayName"] for g in r.json()["Resources"]] == ["Sales"]


def test_paging_sees_every_group_once(groups_gw, gscim):
    names = [f"Team {i:02d}" for i in range(23)]
    for n in names:
        create_group(groups_gw, n)
    seen: list[str] = []
    start = 1
    for _ in range(30):
        r = gscim("GET", "/Groups", params={"startIndex": start, "count": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["startIndex"] == start
        assert body["itemsPerPage"] == len(body["Resources"]) <= 5
        seen += [g["displayName"] for g in body["Resources"]]
        if start + body["itemsPerPage"] > body["totalResults"]:
            break
        start += 5
    assert sorted(seen) == names, seen
    # count=0 returns no resources; past the end returns an empty page.
    r = gscim("GET", "/Groups", params={"count": 0})
    assert r.status_code == 200 and r.json()["Resources"] == []
    r = gscim("GET", "/Groups", params={"startIndex": 100})
    assert r.status_code == 200 and r.json()["Resources"] == []


# ---- attributes / excludedAttributes ---------------------------------------------------


def test_excluded_members_makes_no_member_lookups(groups_gw, gscim, emulator, five_groups, users):
    gid = five_groups["Engineering"]
    emulator.clear_requests()
    r = gscim("GET", f"/Groups/{gid}", params={"excludedAttributes": "members"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "members" not in body and body["displayName"] == "Engineering"
    r = gscim("GET", "/Groups", params={"excludedAttributes": "members", "filter": 'displayName eq "Engineering"'})
    assert r.status_code == 200, r.text
    assert [g["id"] for g in r.json()["Resources"]] == [gid]
    assert "members" not in r.json()["Resources"][0]
    r = gscim("GET", "/Groups", params={"excludedAttributes": "members"})
    assert all("members" not in g for g in r.json()["Resources"])
    log = gateway_log(emulator)
    assert log, "the gateway made no Drupal call at all"
    lookups = [q["path"] for q in log if is_member_lookup(q)]
    assert lookups == [], lookups
    assert all(MEMBERSHIP_FIELD not in q["path"] for q in log), [q["path"] for q in log]


def test_attributes_display_name_only(groups_gw, gscim, emulator, five_groups):
    gid = five_groups["Engineering"]
    emulator.clear_requests()
    r = gscim("GET", f"/Groups/{gid}", params={"attributes": "displayName"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) <= {"schemas", "id", "displayName"}, body
    assert body["displayName"] == "Engineering"
    assert not any(is_member_lookup(q) for q in gateway_log(emulator))


def test_attributes_members(groups_gw, gscim, five_groups, users):
    r = gscim("GET", f"/Groups/{five_groups['Engineering']}", params={"attributes": "members"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "displayName" not in body and member_ids(body) == {users["ann"]}
    r = gscim("GET", f"/Groups/{five_groups['Engineering']}", params={"attributes": "members.value"})
    assert r.status_code == 200, r.text
    assert r.json()["members"] == [{"value": users["ann"]}]


def test_excluded_display_name(groups_gw, gscim, five_groups):
    r = gscim("GET", "/Groups", params={"excludedAttributes": "displayName", "filter": 'displayName eq "Sales"'})
    assert r.status_code == 200, r.text
    (g,) = r.json()["Resources"]
    assert "displayName" not in g and g["id"] == five_groups["Sales"]


# ---- PUT ---------------------------------------------------------------------------------


def test_put_renames_and_sets_members_as_deltas(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Before", [users["ann"], users["bob"]])
    emulator.clear_requests()
    body = group_body("After", [users["bob"], users["cat"]], id=g["id"], meta={"resourceType": "Group"})
    r = gscim("PUT", f"/Groups/{g['id']}", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["displayName"] == "After" and member_ids(out) == {users["bob"], users["cat"]}
    assert drupal_term(emulator, g["id"])["name"] == "After"
    assert drupal_members(emulator, g["id"]) == {users["bob"], users["cat"]}
    log = gateway_log(emulator)
    # bob was already in: no write on bob; one delta on ann (remove) and on cat (add).
    assert relationship_writes(log, users["bob"]) == []
    assert [q["method"] for q in relationship_writes(log, users["ann"])] == ["DELETE"]
    assert [q["method"] for q in relationship_writes(log, users["cat"])] == ["POST"]
    assert not [q for q in log if q["method"] == "PATCH" and MEMBERSHIP_FIELD in q["path"]], "a whole-list write"
    assert scim_members(groups_gw, g["id"]) == {users["bob"], users["cat"]}


def test_put_without_members_leaves_members(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Keep", [users["ann"], users["bob"]])
    r = gscim("PUT", f"/Groups/{g['id']}", json=group_body("Kept"))
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Kept"
    assert drupal_members(emulator, g["id"]) == {users["ann"], users["bob"]}
    assert member_ids(r.json()) == {users["ann"], users["bob"]}


def test_put_with_empty_members_empties(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Emptied", [users["ann"], users["bob"]])
    r = gscim("PUT", f"/Groups/{g['id']}", json=group_body("Emptied", []))
    assert r.status_code == 200, r.text
    assert drupal_members(emulator, g["id"]) == set()
    assert drupal_group_refs(emulator, users["ann"]) == []


def test_put_rename_to_taken_name_is_409(groups_gw, gscim, emulator, users):
    create_group(groups_gw, "Taken")
    g = create_group(groups_gw, "Mine", [users["ann"]])
    assert_scim_error(gscim("PUT", f"/Groups/{g['id']}", json=group_body("TAKEN", [users["bob"]])), 409, "uniqueness")
    assert drupal_term(emulator, g["id"])["name"] == "Mine"
    assert drupal_members(emulator, g["id"]) == {users["ann"]}
    # Same name in another case is a rename of itself, not a conflict.
    r = gscim("PUT", f"/Groups/{g['id']}", json=group_body("MINE"))
    assert r.status_code == 200, r.text
    assert drupal_term(emulator, g["id"])["name"] == "MINE"


def test_put_unknown_group_is_404(groups_gw, gscim):
    assert_scim_error(gscim("PUT", "/Groups/0b6c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d11", json=group_body("X")), 404)


# ---- DELETE -------------------------------------------------------------------------------


def test_delete_group(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Doomed", [users["ann"], users["bob"]])
    other = create_group(groups_gw, "Stays", [users["ann"]])
    r = gscim("DELETE", f"/Groups/{g['id']}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert drupal_term(emulator, g["id"]) is None
    assert drupal_terms(emulator) == {other["id"]: "Stays"}
    # Nobody keeps a reference (dangling or not) to the deleted term.
    assert drupal_group_refs(emulator, users["ann"]) == [other["id"]]
    assert drupal_group_refs(emulator, users["bob"]) == []
    assert_scim_error(gscim("GET", f"/Groups/{g['id']}"), 404)
    assert_scim_error(gscim("DELETE", f"/Groups/{g['id']}"), 404)
    assert scim_members(groups_gw, other["id"]) == {users["ann"]}


def test_group_name_is_free_after_delete(groups_gw, gscim, emulator):
    g = create_group(groups_gw, "Phoenix")
    assert gscim("DELETE", f"/Groups/{g['id']}").status_code == 204
    g2 = create_group(groups_gw, "phoenix")
    assert drupal_terms(emulator) == {g2["id"]: "phoenix"}


# ---- the users' groups ----------------------------------------------------------------


def test_users_carry_read_only_groups(groups_gw, gscim, emulator, users):
    eng = create_group(groups_gw, "Engineering", [users["ann"], users["bob"]])
    ops = create_group(groups_gw, "Ops", [users["ann"]])
    r = gscim("GET", f"/Users/{users['ann']}")
    assert r.status_code == 200, r.text
    groups = r.json()["groups"]
    assert {(g["value"], g["display"]) for g in groups} == {(eng["id"], "Engineering"), (ops["id"], "Ops")}
    for g in groups:
        assert g["$ref"].endswith(f"/scim/v2/Groups/{g['value']}")
    # In lists too.
    r = gscim("GET", "/Users", params={"filter": 'userName eq "bob@example.com"'})
    assert r.status_code == 200, r.text
    (bob,) = r.json()["Resources"]
    assert [(g["value"], g["display"]) for g in bob["groups"]] == [(eng["id"], "Engineering")]
    r = gscim("GET", "/Users")
    by_name = {u["userName"]: u for u in r.json()["Resources"]}
    assert len(by_name["ann@example.com"]["groups"]) == 2
    assert by_name["cat@example.com"].get("groups", []) == []
    # A rename shows in the users' groups.display.
    r = gscim("PUT", f"/Groups/{eng['id']}", json=group_body("Eng"))
    assert r.status_code == 200, r.text
    r = gscim("GET", f"/Users/{users['bob']}")
    assert [g["display"] for g in r.json()["groups"]] == ["Eng"]
    # excludedAttributes=groups drops them.
    r = gscim("GET", f"/Users/{users['ann']}", params={"excludedAttributes": "groups"})
    assert "groups" not in r.json()


def test_user_groups_cannot_be_written_through_users(groups_gw, gscim, emulator, users):
    eng = create_group(groups_gw, "Engineering")
    u = gscim("GET", f"/Users/{users['cat']}").json()
    u["groups"] = [{"value": eng["id"]}]
    r = gscim("PUT", f"/Users/{users['cat']}", json={**u, "schemas": [CORE_USER]})
    assert r.status_code == 200, r.text
    r = gscim(
        "PATCH",
        f"/Users/{users['cat']}",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "groups", "value": [{"value": eng["id"]}]}]},
    )
    assert r.status_code == 200, r.text
    assert drupal_group_refs(emulator, users["cat"]) == []


def test_user_with_dangling_reference_shows_no_such_group(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Gone soon", [users["dan"]])
    delete_term_directly(emulator, g["id"])
    assert drupal_group_refs(emulator, users["dan"]) == ["missing"]
    r = gscim("GET", f"/Users/{users['dan']}")
    assert r.status_code == 200, r.text
    assert r.json().get("groups", []) == []


# ---- membership writes: deltas, each confirmed by a read --------------------------------


def test_membership_writes_are_relationship_deltas_confirmed_by_a_read(groups_gw, gscim, emulator, users):
    g = create_group(groups_gw, "Deltas")
    emulator.clear_requests()
    from groups_support import patch_group

    patch_group(groups_gw, g["id"], {"op": "add", "path": "members", "value": [{"value": users["ann"]}]})
    log = gateway_log(emulator)
    writes = relationship_writes(log)
    assert [(q["method"], q["path"].split("?")[0]) for q in writes] == [
        ("POST", f"/jsonapi/user/user/{users['ann']}/relationships/{MEMBERSHIP_FIELD}")
    ]
    i = log.index(writes[0])
    assert any(q["method"] == "GET" and q["path"].startswith(f"/jsonapi/user/user/{users['ann']}") for q in log[i + 1 :]), [
        (q["method"], q["path"][:100]) for q in log
    ]
    import json as _json

    assert _json.loads(writes[0]["body"])["data"] == [{"type": "taxonomy_term--scim_groups", "id": g["id"]}]

    emulator.clear_requests()
    patch_group(groups_gw, g["id"], {"op": "remove", "path": f'members[value eq "{users["ann"]}"]'})
    log = gateway_log(emulator)
    writes = relationship_writes(log)
    assert [(q["method"], q["path"].split("?")[0]) for q in writes] == [
        ("DELETE", f"/jsonapi/user/user/{users['ann']}/relationships/{MEMBERSHIP_FIELD}")
    ]
    i = log.index(writes[0])
    assert any(q["method"] == "GET" and q["path"].startswith(f"/jsonapi/user/user/{users['ann']}") for q in log[i + 1 :])
    assert drupal_group_refs(emulator, users["ann"]) == []


# ---- discovery -----------------------------------------------------------------------------


def test_resource_types_list_group(groups_gw, gscim):
    r = gscim("GET", "/ResourceTypes")
    assert r.status_code == 200, r.text
    body = r.json()
    types = {t["id"]: t for t in body["Resources"]}
    assert set(types) >= {"User", "Group"}
    assert types["Group"]["endpoint"] == "/Groups"
    assert types["Group"]["schema"] == CORE_GROUP
    r = gscim("GET", "/ResourceTypes/Group")
    assert r.status_code == 200, r.text
    assert r.json()["endpoint"] == "/Groups"


def test_schemas_describe_group_and_user_groups(groups_gw, gscim):
    r = gscim("GET", f"/Schemas/{CORE_GROUP}")
    assert r.status_code == 200, r.text
    attrs = {a["name"]: a for a in r.json()["attributes"]}
    assert {"displayName", "members"} <= set(attrs)
    assert attrs["displayName"]["type"] == "string" and attrs["displayName"]["required"] is True
    assert attrs["displayName"]["uniqueness"] in ("server", "global")
    members = attrs["members"]
    assert members["multiValued"] is True and members["type"] == "complex"
    subs = {s["name"]: s for s in members["subAttributes"]}
    assert {"value", "$ref", "type"} <= set(subs)
    assert subs["$ref"]["type"] == "reference"
    assert subs["value"]["mutability"] == "immutable"
    r = gscim("GET", "/Schemas")
    ids = [s["id"] for s in r.json()["Resources"]]
    assert CORE_GROUP in ids and CORE_USER in ids
    user_schema = next(s for s in r.json()["Resources"] if s["id"] == CORE_USER)
    groups = next(a for a in user_schema["attributes"] if a["name"] == "groups")
    assert groups["mutability"] == "readOnly" and groups["multiValued"] is True
    assert {"value", "$ref", "display"} <= {s["name"] for s in groups["subAttributes"]}
    assert all(s["mutability"] == "readOnly" for s in groups["subAttributes"])


# ---- without `groups` in the configuration -------------------------------------------------


@pytest.fixture(scope="module")
def no_groups_gw(stack):
    e = None
    for _ in range(3):
        try:
            e = stack.new_envoy(plugin_overrides={"groups": None})
            break
        except RuntimeError:
            continue
    assert e is not None
    yield e
    e.stop()


def test_without_groups_config_there_are_no_groups(no_groups_gw, emulator, seed_user):
    uid = seed_user("plain@example.com", mail="plain@example.com")["uuid"]
    scim = no_groups_gw.scim
    for method, path in (("GET", "/Groups"), ("POST", "/Groups"), ("GET", "/Groups/0b6c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d11")):
        r = scim(method, path, json=group_body("X") if method == "POST" else None)
        assert_scim_error(r, 404)
    types = [t["id"] for t in scim("GET", "/ResourceTypes").json()["Resources"]]
    assert "Group" not in types
    schemas = scim("GET", "/Schemas").json()["Resources"]
    assert CORE_GROUP not in [s["id"] for s in schemas]
    user_schema = next(s for s in schemas if s["id"] == CORE_USER)
    assert "groups" not in [a["name"] for a in user_schema["attributes"]]
    r = scim("GET", f"/Users/{uid}")
    assert r.status_code == 200 and "groups" not in r.json()
    assert drupal_terms(emulator) == {}
