"""PUT /Users/{id}: a replace. Mapped attributes left out are cleared in Drupal (except
emails and active, which Drupal cannot clear); id, meta, groups and schemas in the body are
ignored; one read (may SCIM write this account?), one Drupal PATCH; 200 with the resource."""

from __future__ import annotations

import copy

import pytest

from harness import (
    CORE_USER,
    ENTERPRISE_USER,
    FULL_USER_FIELDS,
    assert_scim_error,
    full_user,
    mapped_fields,
)

pytestmark = pytest.mark.mapped_fields

OTHER_UUID = "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b"


@pytest.fixture
def pat(scim):
    r = scim("POST", "/Users", json=full_user("pat@example.com"))
    assert r.status_code == 201, r.text
    return r.json()


def only_writes(drupal_requests):
    return [(q["method"], q["path"].split("?")[0]) for q in drupal_requests()]


def test_put_replaces_and_clears_what_it_leaves_out(scim, emulator, pat, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    body = {
        "schemas": [CORE_USER],
        "id": OTHER_UUID,
        "meta": {"resourceType": "Group", "version": 'W/"bogus"', "created": "1999-01-01T00:00:00Z"},
        "groups": [{"value": OTHER_UUID, "display": "Admins"}],
        "userName": "pat@example.com",
        "name": {"givenName": "Patricia"},
    }
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["id"] == pat["id"]
    assert u["meta"]["resourceType"] == "User"
    assert u["meta"]["created"] == pat["meta"]["created"]
    assert u["name"] == {"givenName": "Patricia"}
    for gone in ("displayName", "title", "phoneNumbers", "externalId", ENTERPRISE_USER):
        assert gone not in u, gone
    assert "groups" not in u
    assert u["schemas"] == [CORE_USER]
    # Drupal cannot clear these: left as they were.
    assert u["emails"] == pat["emails"]
    assert u["active"] is True
    assert r.headers["ETag"] == u["meta"]["version"] != pat["meta"]["version"]

    d = emulator.drupal_user(pat["id"])
    assert mapped_fields(d) == {
        "field_given_name": "Patricia",
        "field_family_name": None,
        "field_display_name": None,
        "field_external_id": None,
        "field_title": None,
        "field_phone_work": None,
        "field_phone_mobile": None,
        "field_employee_number": None,
        "field_department": None,
    }
    assert d["name"] == "pat@example.com" and d["mail"] == "pat@example.com" and d["status"] is True
    assert only_writes(drupal_requests) == [("GET", f"/jsonapi/user/user/{pat['id']}"), ("PATCH", f"/jsonapi/user/user/{pat['id']}")], "one read, one write"
    assert scim("GET", f"/Users/{pat['id']}").json() == u


def test_put_of_the_full_resource_round_trips(scim, emulator, pat, drupal_requests, clear_drupal_requests):
    """Okta's way: GET, change one value, PUT the whole document back."""
    current = scim("GET", f"/Users/{pat['id']}").json()
    current["name"]["givenName"] = "Another"
    current["phoneNumbers"] = [p for p in current["phoneNumbers"] if p["type"] == "mobile"]
    r = scim("PUT", f"/Users/{pat['id']}", json=current)
    assert r.status_code == 200, r.text
    d = mapped_fields(emulator.drupal_user(pat["id"]))
    assert d == {**FULL_USER_FIELDS, "field_external_id": "ext-pat", "field_given_name": "Another", "field_phone_work": None}
    got = r.json()
    for key in ("userName", "emails", "active", "displayName", "title", "externalId", ENTERPRISE_USER):
        assert got[key] == current[key], key


def test_put_changes_every_kind_of_attribute(scim, emulator, pat):
    body = full_user(
        "pat.renamed@example.com",
        "pat.new@example.com",
        name={"givenName": "G", "familyName": "F"},
        displayName="D",
        externalId="X-1",
        title="T",
        phoneNumbers=[{"value": "9", "type": "work"}],
        active=False,
        **{ENTERPRISE_USER: {"department": "Ops"}},
    )
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(pat["id"])
    assert d["name"] == "pat.renamed@example.com"
    assert d["mail"] == "pat.new@example.com"
    assert d["status"] is False
    assert mapped_fields(d) == {
        "field_given_name": "G",
        "field_family_name": "F",
        "field_display_name": "D",
        "field_external_id": "X-1",
        "field_title": "T",
        "field_phone_work": "9",
        "field_phone_mobile": None,
        "field_employee_number": None,
        "field_department": "Ops",
    }
    u = r.json()
    assert u["phoneNumbers"] == [{"value": "9", "type": "work"}]
    assert u[ENTERPRISE_USER] == {"department": "Ops"}
    assert ENTERPRISE_USER in u["schemas"]


def test_put_with_nulls_and_empty_strings_clears(scim, emulator, pat):
    body = full_user("pat@example.com", displayName=None, title="", phoneNumbers=None, name={"givenName": None, "familyName": "Only"})
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    d = mapped_fields(emulator.drupal_user(pat["id"]))
    assert d["field_display_name"] is None and d["field_title"] is None
    assert d["field_phone_work"] is None and d["field_phone_mobile"] is None
    assert d["field_given_name"] is None and d["field_family_name"] == "Only"


def test_put_ignores_unmapped_attributes(scim, emulator, pat):
    body = full_user("pat@example.com", nickName="pp", locale="de-DE", addresses=[{"type": "work", "locality": "Berlin"}])
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    for key in ("nickName", "locale", "addresses"):
        assert key not in r.json()


def test_put_active_false_blocks_and_true_unblocks(scim, emulator, pat):
    body = full_user("pat@example.com", active=False)
    assert scim("PUT", f"/Users/{pat['id']}", json=body).json()["active"] is False
    assert emulator.drupal_user(pat["id"])["status"] is False
    body["active"] = "True"
    assert scim("PUT", f"/Users/{pat['id']}", json=body).json()["active"] is True
    assert emulator.drupal_user(pat["id"])["status"] is True


def test_put_to_an_unknown_user_is_404_and_creates_nothing(scim, emulator):
    before = len(emulator.drupal_users())
    r = scim("PUT", f"/Users/{OTHER_UUID}", json=full_user("ghost@example.com"))
    assert_scim_error(r, 404)
    assert len(emulator.drupal_users()) == before
    assert emulator.drupal_user_by_name("ghost@example.com") is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("userName"),
        lambda b: b.update(userName=""),
        lambda b: b.update(schemas=["urn:ietf:params:scim:schemas:core:2.0:Group"]),
        lambda b: b.update(active="maybe"),
        lambda b: b.update(name="Pat"),
        lambda b: b.update(phoneNumbers="555"),
        lambda b: b.update(displayName=5),
        lambda b: b.update(userName="scimretired-pat"),
    ],
    ids=["no-userName", "empty-userName", "group-schema", "active-maybe", "name-string", "phones-string", "displayName-int", "reserved-name"],
)
def test_invalid_put_is_400_and_writes_nothing(scim, emulator, pat, drupal_writes, clear_drupal_requests, mutate):
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    body = full_user("pat@example.com", displayName="Changed")
    mutate(body)
    assert_scim_error(scim("PUT", f"/Users/{pat['id']}", json=body), 400, "invalidValue")
    assert drupal_writes() == []
    assert emulator.drupal_user(pat["id"]) == before


def test_put_that_drupal_rejects_changes_nothing(scim, emulator, pat):
    before = emulator.drupal_user(pat["id"])
    body = full_user("x" * 61 + "@example.com", displayName="Changed")
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert_scim_error(r, 400, "invalidValue")
    assert emulator.drupal_user(pat["id"]) == before


def test_put_renaming_onto_another_user_is_409(scim, emulator, pat, create_user):
    create_user("taken@example.com")
    before = emulator.drupal_user(pat["id"])
    r = scim("PUT", f"/Users/{pat['id']}", json=full_user("TAKEN@example.com", "pat@example.com", displayName="Changed"))
    assert_scim_error(r, 409, "uniqueness")
    assert emulator.drupal_user(pat["id"]) == before


def test_put_password_in_the_body_is_never_echoed(scim, emulator, pat, gateway):
    body = full_user("pat@example.com", password="Put-Secret-9a")
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    assert "Put-Secret-9a" not in r.text and "password" not in r.json()
    assert "Put-Secret-9a" not in gateway.log_text()


def test_put_keeps_the_created_date_and_moves_last_modified(scim, pat):
    import time

    time.sleep(1.05)
    r = scim("PUT", f"/Users/{pat['id']}", json=full_user("pat@example.com", title="Lead"))
    assert r.status_code == 200
    meta = r.json()["meta"]
    assert meta["created"] == pat["meta"]["created"]
    assert meta["lastModified"] > pat["meta"]["lastModified"]


def test_put_with_the_same_values_keeps_the_version(scim, pat):
    body = copy.deepcopy(pat)
    r = scim("PUT", f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["version"] == pat["meta"]["version"]


def test_put_of_a_deleted_user_is_404_and_leaves_the_retired_account_alone(scim, emulator, pat):
    """A SCIM-deleted user (retired in Drupal: renamed, blocked) is gone for SCIM: a PUT must
    neither revive nor rename the retired account."""
    assert scim("DELETE", f"/Users/{pat['id']}").status_code == 204
    retired = emulator.drupal_user(pat["id"])
    r = scim("PUT", f"/Users/{pat['id']}", json=full_user("lazarus@example.com"))
    assert_scim_error(r, 404)
    assert emulator.drupal_user(pat["id"]) == retired
    assert scim("GET", "/Users", params={"filter": 'userName eq "lazarus@example.com"'}).json()["totalResults"] == 0
