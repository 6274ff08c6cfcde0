"""GET /Users/{id} and DELETE /Users/{id}, in both user_delete modes and both Drupal
cancel methods."""

import pytest

from harness import CORE_USER, assert_scim_error, jumpcloud_user

UNKNOWN_UUID = "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b"


def test_get_user_by_id(scim, gateway, create_user):
    u = create_user("getme@example.com")
    r = scim("GET", f"/Users/{u['id']}")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/scim+json"
    got = r.json()
    assert CORE_USER in got["schemas"]
    assert got["id"] == u["id"]
    assert got["userName"] == "getme@example.com"
    assert got["meta"]["location"] == f"http://{gateway.hostport}/scim/v2/Users/{u['id']}"
    etag = r.headers.get("ETag")
    assert etag and etag.startswith('W/"'), etag
    assert etag == got["meta"]["version"]


def test_get_seeded_drupal_user(scim, seed_user):
    s = seed_user("seeded@example.com", mail="seeded@example.com")
    r = scim("GET", f"/Users/{s['uuid']}")
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["userName"] == "seeded@example.com"
    assert u["emails"] == [{"value": "seeded@example.com", "type": "work"}]
    assert u["active"] is True


def test_get_seeded_user_without_mail(scim, seed_user):
    s = seed_user("nomail-user")
    r = scim("GET", f"/Users/{s['uuid']}")
    assert r.status_code == 200, r.text
    assert r.json().get("emails", []) == []


def test_get_unknown_uuid_is_404(scim):
    assert_scim_error(scim("GET", f"/Users/{UNKNOWN_UUID}"), 404)


@pytest.mark.parametrize("bad_id", ["123", "1", "0", "admin", "scim-service", "not-a-uuid", "3f9c1b7e2a4d4e8f9b6a1c2d3e4f5a6b"])
def test_non_uuid_ids_are_404_without_drupal_call(scim, drupal_requests, bad_id):
    assert_scim_error(scim("GET", f"/Users/{bad_id}"), 404)
    assert_scim_error(scim("DELETE", f"/Users/{bad_id}"), 404)
    assert drupal_requests() == []


@pytest.mark.parametrize(
    "target",
    [
        "/scim/v2/Users/../jsonapi",
        "/scim/v2/Users/..%2Fjsonapi",
        "/scim/v2/Users/..%2F..%2F..%2Fjsonapi%2Fuser%2Fuser",
        "/scim/v2/Users/%2e%2e",
    ],
)
def test_path_traversal_ids_are_404_without_drupal_call(gateway, drupal_requests, target):
    status, headers, body = gateway.raw("GET", target, headers={"Authorization": "Bearer " + gateway.tokens["primary"]})
    assert status == 404, (status, body[:300])
    assert headers["content-type"].startswith("application/scim+json")
    assert drupal_requests() == []


def test_anonymous_user_is_404(scim, emulator):
    assert_scim_error(scim("GET", f"/Users/{emulator.anonymous_uuid()}"), 404)


def test_anonymous_user_cannot_be_deleted(scim, emulator):
    anon = emulator.anonymous_uuid()
    assert_scim_error(scim("DELETE", f"/Users/{anon}"), 404)
    assert emulator.drupal_user(anon) is not None


def test_inactive_user_is_still_visible(scim, create_user):
    u = create_user("sleeping@example.com", active=False)
    r = scim("GET", f"/Users/{u['id']}")
    assert r.status_code == 200
    assert r.json()["active"] is False
    lst = scim("GET", "/Users", params={"count": 1000}).json()
    assert u["id"] in {x["id"] for x in lst["Resources"]}
    flt = scim("GET", "/Users", params={"filter": 'userName eq "sleeping@example.com"'}).json()
    assert [x["id"] for x in flt["Resources"]] == [u["id"]]


# ---- DELETE -----------------------------------------------------------------------------


def delete_and_check_gone(scim, uid):
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    assert_scim_error(scim("DELETE", f"/Users/{uid}"), 404)


def test_delete_default_cancel_block_retires_the_account(scim, emulator, create_user):
    u = create_user("leaver@example.com")
    delete_and_check_gone(scim, u["id"])
    d = emulator.drupal_user(u["id"])
    assert d is not None, "user_cancel_block keeps the Drupal account"
    assert d["status"] is False
    assert d["name"] != "leaver@example.com"
    assert (d.get("mail") or "").lower() != "leaver@example.com"


def test_deleted_user_is_hidden_from_lists_and_filters(scim, create_user):
    u = create_user("hidden@example.com")
    assert scim("DELETE", f"/Users/{u['id']}").status_code == 204
    lst = scim("GET", "/Users", params={"count": 1000}).json()
    assert u["id"] not in {x["id"] for x in lst["Resources"]}
    assert lst["totalResults"] == len(lst["Resources"])
    flt = scim("GET", "/Users", params={"filter": 'userName eq "hidden@example.com"'}).json()
    assert flt["totalResults"] == 0 and flt["Resources"] == []
    flt = scim("GET", "/Users", params={"filter": 'emails eq "hidden@example.com"'}).json()
    assert flt["totalResults"] == 0 and flt["Resources"] == []


@pytest.mark.parametrize("cancel_method", ["user_cancel_block", "user_cancel_delete"])
def test_same_username_and_email_can_be_created_again(scim, emulator_settings, create_user, cancel_method):
    emulator_settings(cancel_method=cancel_method)
    u = create_user("comeback@example.com")
    assert scim("DELETE", f"/Users/{u['id']}").status_code == 204
    again = scim("POST", "/Users", json=jumpcloud_user("comeback@example.com"))
    assert again.status_code == 201, again.text
    assert again.json()["id"] != u["id"]
    r = scim("GET", "/Users", params={"filter": 'userName eq "comeback@example.com"'}).json()
    assert [x["id"] for x in r["Resources"]] == [again.json()["id"]]


def test_delete_with_cancel_delete_removes_the_account(scim, emulator, emulator_settings, create_user):
    emulator_settings(cancel_method="user_cancel_delete")
    u = create_user("gone@example.com")
    delete_and_check_gone(scim, u["id"])
    assert emulator.drupal_user(u["id"]) is None
    assert emulator.drupal_user_by_name("gone@example.com") is None


def test_delete_blocked_user(scim, emulator, create_user):
    u = create_user("blocked-leaver@example.com", active=False)
    delete_and_check_gone(scim, u["id"])


def test_delete_unknown_uuid_is_404(scim):
    assert_scim_error(scim("DELETE", f"/Users/{UNKNOWN_UUID}"), 404)


def test_hard_delete_mode_uses_core_rest(new_envoy, emulator, drupal_requests, clear_drupal_requests):
    gw = new_envoy(plugin_overrides={"drupal.user_delete": "hard_delete", "drupal.timeout_ms": 1500})
    r = gw.scim("POST", "/Users", json=jumpcloud_user("hard@example.com"))
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    drupal_uid = emulator.drupal_user(uid)["drupal_internal__uid"]
    clear_drupal_requests()
    r = gw.scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    deletes = [q for q in drupal_requests() if q["method"] == "DELETE"]
    assert any(q["path"] == f"/user/{drupal_uid}?_format=json" for q in deletes), deletes
    assert emulator.drupal_user(uid) is None
    assert_scim_error(gw.scim("GET", f"/Users/{uid}"), 404)
    assert_scim_error(gw.scim("DELETE", f"/Users/{uid}"), 404)
    again = gw.scim("POST", "/Users", json=jumpcloud_user("hard@example.com"))
    assert again.status_code == 201, again.text


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_write_with_the_wrong_body_kind_is_400_and_writes_nothing(scim, create_user, drupal_writes, clear_drupal_requests, method):
    """A PUT with a PatchOp body (no userName) and a PATCH without operations change nothing."""
    u = create_user("nowrite@example.com")
    clear_drupal_requests()
    r = scim(method, f"/Users/{u['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []})
    assert_scim_error(r, 400)
    assert drupal_writes() == []
