"""POST /Users: the created resource, Drupal's account, and the validation errors."""

import json
import re

import pytest

from harness import CORE_USER, ENTERPRISE_USER, assert_scim_error, basic, jumpcloud_user

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def drupal_posts(drupal_requests):
    return [r for r in drupal_requests() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]


def test_create_jumpcloud_user(scim, gateway, emulator):
    r = scim("POST", "/Users", json=jumpcloud_user("jane.doe@example.com"))
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/scim+json"
    u = r.json()
    assert CORE_USER in u["schemas"]
    assert isinstance(u["id"], str) and UUID_RE.match(u["id"]), u["id"]
    assert u["userName"] == "jane.doe@example.com"
    assert u["emails"] == [{"value": "jane.doe@example.com", "type": "work"}]
    assert u["active"] is True
    assert "password" not in u

    meta = u["meta"]
    assert meta["resourceType"] == "User"
    for key in ("created", "lastModified", "location", "version"):
        assert isinstance(meta.get(key), str) and meta[key], (key, meta)
    assert meta["location"] == f"http://{gateway.hostport}/scim/v2/Users/{u['id']}"
    assert r.headers["Location"] == meta["location"]
    assert meta["version"].startswith('W/"') and meta["version"].endswith('"')
    assert r.headers["ETag"] == meta["version"]

    d = emulator.drupal_user(u["id"])
    assert d is not None, "the id is not the Drupal UUID"
    assert d["name"] == "jane.doe@example.com"
    assert d["mail"] == "jane.doe@example.com"
    assert d["status"] is True


def test_created_user_reads_back_identically(scim, create_user):
    u = create_user("readback@example.com")
    r = scim("GET", f"/Users/{u['id']}")
    assert r.status_code == 200
    got = r.json()
    for key in ("id", "userName", "emails", "active"):
        assert got[key] == u[key]
    assert got["meta"]["location"] == u["meta"]["location"]


def test_create_inactive_user_is_blocked_in_drupal(scim, emulator):
    r = scim("POST", "/Users", json=jumpcloud_user("inactive@example.com", active=False))
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["active"] is False
    assert emulator.drupal_user(u["id"])["status"] is False


def test_create_without_active_is_active(scim, emulator):
    """SCIM has no default for active; IdPs that omit it mean an enabled account."""
    body = jumpcloud_user("noactive@example.com")
    del body["active"]
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["status"] is True


def test_create_with_password_lets_the_user_log_in_to_drupal(scim, emulator):
    pw = "S3cret-Passw0rd!"
    r = scim("POST", "/Users", json=jumpcloud_user("withpw@example.com", password=pw))
    assert r.status_code == 201, r.text
    assert "password" not in r.json()
    assert pw not in r.text
    me = emulator.jsonapi("GET", "/jsonapi", auth=basic("withpw@example.com", pw))
    assert me.status_code == 200
    assert "me" in me.json().get("meta", {}).get("links", {}), me.json()
    wrong = emulator.jsonapi("GET", "/jsonapi", auth=basic("withpw@example.com", pw + "x"))
    assert "me" not in wrong.json().get("meta", {}).get("links", {})


def test_create_ignores_unmapped_attributes(scim, emulator):
    body = jumpcloud_user(
        "unmapped@example.com",
        externalId="ext-123",
        nickName="jd",
        title="Engineer",
        locale="en-US",
        timezone="Europe/Berlin",
        phoneNumbers=[{"value": "555-555-5555", "type": "work"}],
        groups=[],
        roles=[],
        meta={"resourceType": "User"},
        **{ENTERPRISE_USER: {"employeeNumber": "42", "department": "R&D"}},
    )
    body["schemas"] = [CORE_USER, ENTERPRISE_USER]
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["userName"] == "unmapped@example.com"
    assert emulator.drupal_user(u["id"])["name"] == "unmapped@example.com"


def test_create_okta_style_body(scim, emulator):
    """Okta: emails with primary/type, password, locale, groups: [], charset in Content-Type."""
    body = {
        "schemas": [CORE_USER],
        "userName": "okta.user@example.com",
        "name": {"givenName": "Okta", "familyName": "User"},
        "emails": [{"primary": True, "value": "okta.user@example.com", "type": "work"}],
        "displayName": "Okta User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq-Aa!",
        "active": True,
    }
    r = scim("POST", "/Users", data=json.dumps(body), headers={"Content-Type": "application/scim+json; charset=utf-8"})
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["mail"] == "okta.user@example.com"


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/scim+json", "application/scim+json; charset=utf-8", "application/json; charset=UTF-8"],
)
def test_content_type_variants_are_accepted(scim, content_type):
    name = "ctype-" + re.sub(r"[^a-z0-9]+", "-", (content_type or "none").lower()) + "@example.com"
    headers = {"Content-Type": content_type} if content_type else {}
    r = scim("POST", "/Users", data=json.dumps(jumpcloud_user(name)).encode(), headers=headers)
    assert r.status_code == 201, (content_type, r.status_code, r.text)


def test_create_uses_primary_email_when_several(scim, emulator):
    body = jumpcloud_user("multi@example.com")
    body["emails"] = [
        {"value": "home@example.com", "type": "home"},
        {"value": "multi.work@example.com", "type": "work", "primary": True},
    ]
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["mail"] == "multi.work@example.com"


# ---- errors: nothing may be created in Drupal ----------------------------------------


def assert_nothing_created(emulator, drupal_requests, before: int):
    assert not any(r["method"] == "POST" for r in drupal_requests()), "the gateway POSTed to Drupal"
    assert len(emulator.drupal_users()) == before


@pytest.fixture
def user_count(emulator):
    return len(emulator.drupal_users())


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x",}', b"", b"\xff\xfe"],
    ids=["truncated", "text", "trailing-comma", "empty", "binary"],
)
def test_malformed_json_is_400_invalid_syntax(scim, emulator, drupal_requests, user_count, raw):
    r = scim("POST", "/Users", data=raw, headers={"Content-Type": "application/scim+json"})
    assert_scim_error(r, 400, "invalidSyntax")
    assert_nothing_created(emulator, drupal_requests, user_count)


def test_json_array_body_is_400(scim, emulator, drupal_requests, user_count):
    r = scim("POST", "/Users", json=[jumpcloud_user("array@example.com")])
    assert_scim_error(r, 400)
    assert_nothing_created(emulator, drupal_requests, user_count)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("userName"),
        lambda b: b.update(userName=5),
        lambda b: b.update(userName=""),
        lambda b: b.update(userName=None),
        lambda b: b.update(userName=["a@example.com"]),
        lambda b: b.update(schemas=[]),
        lambda b: b.pop("schemas"),
        lambda b: b.update(schemas=["urn:ietf:params:scim:schemas:core:2.0:Group"]),
        lambda b: b.update(schemas=[CORE_USER, "urn:example:params:scim:schemas:unknown:1.0:Thing"]),
        lambda b: b.update(active="maybe"),
        lambda b: b.update(emails="jane@example.com"),
    ],
    ids=[
        "missing-userName",
        "userName-int",
        "userName-empty",
        "userName-null",
        "userName-list",
        "schemas-empty",
        "schemas-missing",
        "schemas-without-core-user",
        "schemas-unknown-urn",
        "active-not-boolean",
        "emails-not-a-list",
    ],
)
def test_invalid_value_is_400_invalid_value(scim, emulator, drupal_requests, user_count, mutate):
    body = jumpcloud_user("invalid@example.com")
    mutate(body)
    r = scim("POST", "/Users", json=body)
    assert_scim_error(r, 400, "invalidValue")
    assert_nothing_created(emulator, drupal_requests, user_count)


def test_active_as_string_boolean_is_accepted(scim, emulator):
    """Entra sends booleans as "True"/"False" strings without its compatibility flag."""
    r = scim("POST", "/Users", json=jumpcloud_user("strbool@example.com", active="False"))
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["status"] is False


def test_duplicate_username_is_409_uniqueness(scim, emulator, create_user):
    create_user("dup@example.com")
    before = len(emulator.drupal_users())
    r = scim("POST", "/Users", json=jumpcloud_user("dup@example.com", "dup-other@example.com"))
    assert_scim_error(r, 409, "uniqueness")
    assert len(emulator.drupal_users()) == before


def test_duplicate_username_differing_in_case_is_409(scim, emulator, create_user):
    create_user("case.dup@example.com")
    before = len(emulator.drupal_users())
    r = scim("POST", "/Users", json=jumpcloud_user("Case.Dup@Example.COM", "case-other@example.com"))
    assert_scim_error(r, 409, "uniqueness")
    assert len(emulator.drupal_users()) == before


def test_duplicate_of_seeded_drupal_user_is_409(scim, seed_user):
    seed_user("existing@example.com", mail="existing@example.com")
    r = scim("POST", "/Users", json=jumpcloud_user("existing@example.com", "new-mail@example.com"))
    assert_scim_error(r, 409, "uniqueness")


def test_duplicate_email_is_409_uniqueness(scim, emulator, create_user):
    create_user("first@example.com", "shared@example.com")
    before = len(emulator.drupal_users())
    r = scim("POST", "/Users", json=jumpcloud_user("second@example.com", "shared@example.com"))
    assert_scim_error(r, 409, "uniqueness")
    assert len(emulator.drupal_users()) == before


def test_conflict_body_is_scim_not_drupal(scim, create_user):
    create_user("raw@example.com")
    r = scim("POST", "/Users", json=jumpcloud_user("raw@example.com"))
    assert_scim_error(r, 409, "uniqueness")
    assert "jsonapi" not in r.text and "errors" not in r.json()


def test_no_password_in_any_response(scim, create_user):
    u = create_user("nopw@example.com", password="Another-s3cret")
    for resp in (
        scim("GET", f"/Users/{u['id']}"),
        scim("GET", "/Users"),
        scim("GET", "/Users", params={"filter": 'userName eq "nopw@example.com"'}),
    ):
        assert resp.status_code == 200
        assert "Another-s3cret" not in resp.text
        assert '"password"' not in resp.text
