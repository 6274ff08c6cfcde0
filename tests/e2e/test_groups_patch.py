"""PATCH /Groups/{id} in every form the IdPs send (shared/research/idp-clients.md §0.1, §0.2):
add with a value list (idempotent), remove by `members[value eq …]`, remove of `members` with a
value list (exactly those) and without (everyone), replace of `members` (a delta), path-less
replace with {id, displayName} (Okta), `op` in any case, renames; unknown member ids are 400
`invalidValue` with nothing applied. Drupal's state is checked after every step."""

from __future__ import annotations

import json

import pytest

from harness import PATCH_OP, assert_scim_error
from groups_support import (  # noqa: F401  (fixtures)
    MEMBERSHIP_FIELD,
    create_group,
    drupal_group_refs,
    drupal_members,
    drupal_term,
    gateway_log,
    get_group,
    groups_gw,
    gscim,
    member_ids,
    patch_group,
    relationship_writes,
    scim_members,
)

GHOST = "0b6c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d11"


@pytest.fixture
def u(seed_user):
    return {n: seed_user(f"{n}@example.com", mail=f"{n}@example.com")["uuid"] for n in ("ann", "bob", "cat", "dan", "eve")}


@pytest.fixture
def eng(groups_gw, u):
    return create_group(groups_gw, "Engineering", [u["ann"], u["bob"]])["id"]


def members(*ids):
    return [{"value": i} for i in ids]


# ---- add ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["add", "Add", "ADD"])
def test_add_members(groups_gw, gscim, emulator, u, eng, op):
    r = patch_group(groups_gw, eng, {"op": op, "path": "members", "value": members(u["cat"], u["dan"])})
    assert r.content == b""
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["cat"], u["dan"]}
    assert scim_members(groups_gw, eng) == {u["ann"], u["bob"], u["cat"], u["dan"]}


def test_add_existing_member_is_silent_and_makes_no_duplicate(groups_gw, gscim, emulator, u, eng):
    emulator.clear_requests()
    patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(u["ann"])})
    assert drupal_group_refs(emulator, u["ann"]) == [eng]
    # Again in one request with a new one, and the same id twice.
    patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(u["ann"], u["cat"], u["cat"])})
    assert drupal_group_refs(emulator, u["ann"]) == [eng]
    assert drupal_group_refs(emulator, u["cat"]) == [eng]
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["cat"]}


def test_add_with_entra_ref_null_and_okta_display(groups_gw, gscim, emulator, u, eng):
    patch_group(
        groups_gw,
        eng,
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u["cat"]}]},
        {"op": "add", "path": "members", "value": [{"value": u["dan"], "display": "dan@example.com"}]},
    )
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["cat"], u["dan"]}


def test_add_without_path_value_object(groups_gw, gscim, emulator, u, eng):
    """RFC 7644 §3.5.2.1: add without path, the value is an object of attributes."""
    patch_group(groups_gw, eng, {"op": "add", "value": {"members": members(u["eve"])}})
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["eve"]}


# ---- remove ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["remove", "Remove"])
def test_remove_by_value_filter(groups_gw, gscim, emulator, u, eng, op):
    patch_group(groups_gw, eng, {"op": op, "path": f'members[value eq "{u["ann"]}"]'})
    assert drupal_members(emulator, eng) == {u["bob"]}
    assert drupal_group_refs(emulator, u["ann"]) == []


def test_remove_with_value_list_removes_exactly_those(groups_gw, gscim, emulator, u, eng):
    patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(u["cat"], u["dan"])})
    patch_group(groups_gw, eng, {"op": "Remove", "path": "members", "value": members(u["bob"], u["dan"])})
    assert drupal_members(emulator, eng) == {u["ann"], u["cat"]}
    assert scim_members(groups_gw, eng) == {u["ann"], u["cat"]}


def test_remove_with_value_list_of_non_member_is_silent(groups_gw, gscim, emulator, u, eng):
    emulator.clear_requests()
    patch_group(groups_gw, eng, {"op": "remove", "path": "members", "value": members(u["eve"])})
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    patch_group(groups_gw, eng, {"op": "remove", "path": f'members[value eq "{u["eve"]}"]'})
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_remove_members_without_value_removes_everyone(groups_gw, gscim, emulator, u, eng):
    other = create_group(groups_gw, "Other", [u["ann"]])["id"]
    patch_group(groups_gw, eng, {"op": "remove", "path": "members"})
    assert drupal_members(emulator, eng) == set()
    assert scim_members(groups_gw, eng) == set()
    # Only this group's memberships went.
    assert drupal_group_refs(emulator, u["ann"]) == [other]
    assert drupal_term(emulator, eng)["name"] == "Engineering"


def test_remove_with_malformed_path_is_400(groups_gw, gscim, emulator, u, eng):
    for path in ("members[value eq", 'members[value eq "x"', "members[]"):
        r = patch_group(groups_gw, eng, {"op": "remove", "path": path}, expect=None)
        assert r.status_code == 400, (path, r.text)
        assert_scim_error(r, 400)
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_unstored_attribute_is_ignored(groups_gw, gscim, emulator, u, eng):
    """As for users, operations on attributes the server does not store are ignored."""
    patch_group(groups_gw, eng, {"op": "remove", "path": "nonsense"})
    patch_group(groups_gw, eng, {"op": "replace", "path": "externalId", "value": "x"})
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    assert drupal_term(emulator, eng)["name"] == "Engineering"


def test_remove_display_name_is_rejected(groups_gw, gscim, emulator, u, eng):
    r = patch_group(groups_gw, eng, {"op": "remove", "path": "displayName"}, expect=None)
    assert r.status_code == 400, r.text
    assert_scim_error(r, 400)
    assert drupal_term(emulator, eng)["name"] == "Engineering"


# ---- replace ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["replace", "Replace"])
def test_replace_members_is_a_delta(groups_gw, gscim, emulator, u, eng, op):
    emulator.clear_requests()
    patch_group(groups_gw, eng, {"op": op, "path": "members", "value": members(u["bob"], u["cat"])})
    assert drupal_members(emulator, eng) == {u["bob"], u["cat"]}
    log = gateway_log(emulator)
    assert relationship_writes(log, u["bob"]) == [], "bob stayed: no write"
    assert [q["method"] for q in relationship_writes(log, u["ann"])] == ["DELETE"]
    assert [q["method"] for q in relationship_writes(log, u["cat"])] == ["POST"]


def test_replace_members_with_empty_list_empties(groups_gw, gscim, emulator, u, eng):
    patch_group(groups_gw, eng, {"op": "replace", "path": "members", "value": []})
    assert drupal_members(emulator, eng) == set()


@pytest.mark.parametrize("op", ["replace", "Replace"])
def test_rename_with_path(groups_gw, gscim, emulator, u, eng, op):
    patch_group(groups_gw, eng, {"op": op, "path": "displayName", "value": "Platform"})
    assert drupal_term(emulator, eng)["name"] == "Platform"
    assert get_group(groups_gw, eng)["displayName"] == "Platform"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_okta_pathless_replace_with_id_and_display_name(groups_gw, gscim, emulator, u, eng):
    patch_group(groups_gw, eng, {"op": "replace", "value": {"id": eng, "displayName": "Engineering (Okta)"}})
    assert drupal_term(emulator, eng)["name"] == "Engineering (Okta)"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    # The same name again (Okta sends it with every membership change): no change, no error.
    emulator.clear_requests()
    patch_group(
        groups_gw,
        eng,
        {"op": "replace", "value": {"id": eng, "displayName": "Engineering (Okta)"}},
        {"op": "add", "path": "members", "value": [{"value": u["cat"], "display": "cat@example.com"}]},
    )
    assert drupal_term(emulator, eng)["name"] == "Engineering (Okta)"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["cat"]}
    assert not [q for q in gateway_log(emulator) if q["method"] == "PATCH" and "/taxonomy_term/" in q["path"]], "no-op rename written"


def test_pathless_replace_with_members(groups_gw, gscim, emulator, u, eng):
    patch_group(groups_gw, eng, {"op": "replace", "value": {"displayName": "Eng", "members": members(u["eve"])}})
    assert drupal_term(emulator, eng)["name"] == "Eng"
    assert drupal_members(emulator, eng) == {u["eve"]}


def test_rename_to_taken_name_is_409_and_nothing_applied(groups_gw, gscim, emulator, u, eng):
    create_group(groups_gw, "Sales")
    r = patch_group(
        groups_gw,
        eng,
        {"op": "add", "path": "members", "value": members(u["cat"])},
        {"op": "replace", "path": "displayName", "value": "SALES"},
        expect=None,
    )
    assert_scim_error(r, 409, "uniqueness")
    assert drupal_term(emulator, eng)["name"] == "Engineering"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_rename_changes_case_only(groups_gw, gscim, emulator, u, eng):
    patch_group(groups_gw, eng, {"op": "replace", "path": "displayName", "value": "ENGINEERING"})
    assert drupal_term(emulator, eng)["name"] == "ENGINEERING"


def test_external_id_and_read_only_attributes_are_ignored(groups_gw, gscim, emulator, u, eng):
    """Entra's validator replaces externalId (not stored); id/meta are read-only."""
    patch_group(groups_gw, eng, {"op": "replace", "value": {"externalId": "8aa1a0c0"}})
    assert drupal_term(emulator, eng)["name"] == "Engineering"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


# ---- several operations, mixed forms ------------------------------------------------------


def test_mixed_operations_in_order(groups_gw, gscim, emulator, u, eng):
    patch_group(
        groups_gw,
        eng,
        {"op": "Remove", "path": "members", "value": members(u["ann"])},
        {"op": "Add", "path": "members", "value": members(u["cat"], u["dan"])},
        {"op": "remove", "path": f'members[value eq "{u["dan"]}"]'},
        {"op": "Replace", "path": "displayName", "value": "Eng 2"},
        {"op": "add", "path": "members", "value": members(u["ann"])},
    )
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"], u["cat"]}
    assert drupal_term(emulator, eng)["name"] == "Eng 2"
    assert drupal_group_refs(emulator, u["dan"]) == []


def test_entra_redundant_adds_with_a_removal(groups_gw, gscim, emulator, u, eng):
    """Entra re-sends `add` for every existing member whenever one is removed."""
    patch_group(
        groups_gw,
        eng,
        {"op": "Remove", "path": "members", "value": [{"value": u["bob"]}]},
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u["ann"]}]},
    )
    assert drupal_members(emulator, eng) == {u["ann"]}
    assert drupal_group_refs(emulator, u["ann"]) == [eng]


def test_patch_body_errors(groups_gw, gscim, emulator, u, eng):
    for body in (
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": [{"op": "frobnicate", "path": "members", "value": []}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": "not a list"}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"display": "no value"}]}]},
    ):
        r = gscim("PATCH", f"/Groups/{eng}", json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert_scim_error(r, 400)
    r = gscim("PATCH", f"/Groups/{eng}", data="{not json", headers={"Content-Type": "application/scim+json"})
    assert_scim_error(r, 400, "invalidSyntax")
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_patch_unknown_group_is_404(groups_gw, gscim, u):
    r = patch_group(groups_gw, GHOST, {"op": "add", "path": "members", "value": members(u["ann"])}, expect=None)
    assert_scim_error(r, 404)


# ---- unknown member ids: 400 invalidValue, nothing applied --------------------------------


@pytest.mark.parametrize("bad", [GHOST, "42", "not-a-uuid"], ids=["unknown-uuid", "number", "junk"])
def test_add_unknown_member_is_400_and_nothing_applied(groups_gw, gscim, emulator, u, eng, bad):
    emulator.clear_requests()
    r = patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(u["cat"], bad)}, expect=None)
    err = assert_scim_error(r, 400, "invalidValue")
    assert bad in err["detail"], err
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    assert drupal_group_refs(emulator, u["cat"]) == []
    writes = [q for q in gateway_log(emulator) if q["method"] not in ("GET", "HEAD")]
    assert writes == [], [(q["method"], q["path"]) for q in writes]


def test_a_group_is_not_a_member(groups_gw, gscim, emulator, u, eng):
    """Nested groups are not supported: a group id as a member is not a user."""
    other = create_group(groups_gw, "Nested")["id"]
    r = patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": [{"value": other, "type": "Group"}]}, expect=None)
    err = assert_scim_error(r, 400, "invalidValue")
    assert other in err["detail"] or "Group" in err["detail"], err
    # Without the type hint it is an unknown member id.
    r = patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": [{"value": other}]}, expect=None)
    err = assert_scim_error(r, 400, "invalidValue")
    assert other in err["detail"], err
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    assert drupal_members(emulator, other) == set()


def test_several_unknown_members_are_all_named(groups_gw, gscim, emulator, u, eng):
    ghost2 = "7d1c9b2e-6a7d-4d7e-9a55-2f7b1e0c9d22"
    r = patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(GHOST, u["cat"], "42", ghost2)}, expect=None)
    err = assert_scim_error(r, 400, "invalidValue")
    for bad in (GHOST, "42", ghost2):
        assert bad in err["detail"], err
    assert u["cat"] not in err["detail"]
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_rename_plus_unknown_member_leaves_the_name(groups_gw, gscim, emulator, u, eng):
    emulator.clear_requests()
    r = patch_group(
        groups_gw,
        eng,
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {"op": "add", "path": "members", "value": members(u["cat"], GHOST)},
        expect=None,
    )
    err = assert_scim_error(r, 400, "invalidValue")
    assert GHOST in err["detail"]
    assert drupal_term(emulator, eng)["name"] == "Engineering"
    assert get_group(groups_gw, eng)["displayName"] == "Engineering"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}
    writes = [q for q in gateway_log(emulator) if q["method"] not in ("GET", "HEAD")]
    assert writes == [], [(q["method"], q["path"]) for q in writes]


def test_okta_rename_plus_unknown_member_leaves_the_name(groups_gw, gscim, emulator, u, eng):
    r = patch_group(
        groups_gw,
        eng,
        {"op": "replace", "value": {"id": eng, "displayName": "Okta name"}},
        {"op": "add", "path": "members", "value": [{"value": "42", "display": "x"}]},
        expect=None,
    )
    assert_scim_error(r, 400, "invalidValue")
    assert drupal_term(emulator, eng)["name"] == "Engineering"


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "members", "value": [{"value": GHOST}]},
        {"op": "remove", "path": "members", "value": [{"value": GHOST}]},
        {"op": "remove", "path": f'members[value eq "{GHOST}"]'},
    ],
    ids=["replace", "remove-list", "remove-filter"],
)
def test_unknown_member_in_replace_or_remove(groups_gw, gscim, emulator, u, eng, op):
    """Replace names the whole set: an unknown id there is an error. Removing someone who
    is not a member is a silent success (idempotent) whether or not the id is a user."""
    r = patch_group(groups_gw, eng, op, expect=None)
    if op["op"] == "replace":
        err = assert_scim_error(r, 400, "invalidValue")
        assert GHOST in err["detail"]
    else:
        assert r.status_code in (204, 400), r.text
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_put_with_unknown_member_applies_nothing(groups_gw, gscim, emulator, u, eng):
    from groups_support import group_body

    r = gscim("PUT", f"/Groups/{eng}", json=group_body("Put rename", [u["cat"], "42"]))
    err = assert_scim_error(r, 400, "invalidValue")
    assert "42" in err["detail"]
    assert drupal_term(emulator, eng)["name"] == "Engineering"
    assert drupal_members(emulator, eng) == {u["ann"], u["bob"]}


def test_retired_user_is_an_unknown_member(groups_gw, gscim, emulator, u, eng):
    """A user deleted through SCIM (retired in Drupal) cannot be added back to a group."""
    r = gscim("DELETE", f"/Users/{u['eve']}")
    assert r.status_code == 204, r.text
    r = patch_group(groups_gw, eng, {"op": "add", "path": "members", "value": members(u["eve"])}, expect=None)
    err = assert_scim_error(r, 400, "invalidValue")
    assert u["eve"] in err["detail"]
    assert drupal_group_refs(emulator, u["eve"]) == []


def test_deleted_user_leaves_no_membership_visible(groups_gw, gscim, emulator, u, eng):
    """DELETE /Users of a member: the group no longer lists them."""
    r = gscim("DELETE", f"/Users/{u['ann']}")
    assert r.status_code == 204, r.text
    assert scim_members(groups_gw, eng) == {u["bob"]}


def test_patch_request_body_to_drupal_is_a_single_identifier(groups_gw, gscim, emulator, u, eng):
    emulator.clear_requests()
    patch_group(groups_gw, eng, {"op": "Remove", "path": "members", "value": members(u["bob"])})
    (w,) = relationship_writes(gateway_log(emulator))
    assert w["method"] == "DELETE"
    assert json.loads(w["body"])["data"] == [{"type": "taxonomy_term--scim_groups", "id": eng}]
