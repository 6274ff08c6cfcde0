"""Passwords on create, PUT and PATCH: the account can log in to Drupal with Basic
credentials afterwards; the password never appears in a SCIM answer or in Envoy's log."""

from __future__ import annotations

import pytest

from harness import SEARCH_REQUEST, assert_scim_error, basic, jumpcloud_user, patch_op


def can_log_in(emulator, name: str, password: str) -> bool:
    r = emulator.jsonapi("GET", "/jsonapi", auth=basic(name, password))
    assert r.status_code == 200, r.text
    return "me" in r.json().get("meta", {}).get("links", {})


def all_answers(scim, uid, name):
    return [
        scim("GET", f"/Users/{uid}"),
        scim("GET", "/Users", params={"count": 1000}),
        scim("GET", "/Users", params={"filter": f'userName eq "{name}"'}),
        scim("GET", f"/Users/{uid}", params={"attributes": "password"}),
        scim("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": f'userName eq "{name}"', "attributes": ["password", "userName"]}),
    ]


def assert_never_shown(responses, password, gateway):
    for r in responses:
        assert r.status_code in (200, 201), r.text
        assert password not in r.text
        assert '"password"' not in r.text
    assert password not in gateway.log_text()


def test_password_on_create(scim, emulator, gateway):
    pw = "Create-Pw-41x"
    r = scim("POST", "/Users", json=jumpcloud_user("pw-create@example.com", password=pw))
    assert r.status_code == 201, r.text
    assert can_log_in(emulator, "pw-create@example.com", pw)
    assert not can_log_in(emulator, "pw-create@example.com", pw + "x")
    assert_never_shown([r, *all_answers(scim, r.json()["id"], "pw-create@example.com")], pw, gateway)


def test_password_on_put_replaces_the_old_one(scim, emulator, gateway):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-put@example.com", password="Old-Pw-1"))
    uid = r.json()["id"]
    r = scim("PUT", f"/Users/{uid}", json=jumpcloud_user("pw-put@example.com", password="New-Put-Pw-2"))
    assert r.status_code == 200, r.text
    assert can_log_in(emulator, "pw-put@example.com", "New-Put-Pw-2")
    assert not can_log_in(emulator, "pw-put@example.com", "Old-Pw-1")
    assert_never_shown([r, *all_answers(scim, uid, "pw-put@example.com")], "New-Put-Pw-2", gateway)


def test_put_without_password_keeps_it(scim, emulator):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-keep@example.com", password="Keep-Pw-3"))
    uid = r.json()["id"]
    assert scim("PUT", f"/Users/{uid}", json=jumpcloud_user("pw-keep@example.com")).status_code == 200
    assert can_log_in(emulator, "pw-keep@example.com", "Keep-Pw-3")


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "password", "value": "Patch-Pw-4"},
        {"op": "Replace", "path": "PASSWORD", "value": "Patch-Pw-4"},
        {"op": "add", "path": "password", "value": "Patch-Pw-4"},
        {"op": "replace", "value": {"password": "Patch-Pw-4"}},
    ],
    ids=["replace-path", "case", "add", "okta-pathless"],
)
def test_password_on_patch(scim, emulator, gateway, drupal_requests, clear_drupal_requests, operation):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-patch@example.com", password="Before-Pw"))
    uid = r.json()["id"]
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{uid}", json=patch_op(operation))
    assert r.status_code == 200, r.text
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"], "a password change: one read, one write"
    assert can_log_in(emulator, "pw-patch@example.com", "Patch-Pw-4")
    assert not can_log_in(emulator, "pw-patch@example.com", "Before-Pw")
    assert_never_shown([r, *all_answers(scim, uid, "pw-patch@example.com")], "Patch-Pw-4", gateway)


def test_password_together_with_other_changes(scim, emulator, gateway):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-multi@example.com"))
    uid = r.json()["id"]
    r = scim("PATCH", f"/Users/{uid}", json=patch_op(
        {"op": "replace", "path": "password", "value": "Multi-Pw-5"},
        {"op": "replace", "path": "emails", "value": [{"value": "pw-multi-new@example.com", "type": "work"}]},
    ))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(uid)["mail"] == "pw-multi-new@example.com"
    assert can_log_in(emulator, "pw-multi@example.com", "Multi-Pw-5")
    assert_never_shown([r], "Multi-Pw-5", gateway)


def test_unicode_and_long_passwords(scim, emulator):
    for i, pw in enumerate(["pässwörd-ünïcødé-€", "p" * 512]):
        name = f"pw-odd-{i}@example.com"
        r = scim("POST", "/Users", json=jumpcloud_user(name, password=pw))
        assert r.status_code == 201, r.text
        assert can_log_in(emulator, name, pw)


@pytest.mark.parametrize("pw", ["p" * 513, "", "   ", 12345, None], ids=["too-long", "empty", "blank", "number", "null-via-patch"])
def test_bad_password_is_400_and_changes_nothing(scim, emulator, drupal_writes, clear_drupal_requests, pw):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-bad@example.com", password="Good-Pw-6"))
    uid = r.json()["id"]
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "replace", "path": "password", "value": pw}))
    if pw is None:
        # replace with null: either refused (400) or a no-op; never a cleared password.
        assert r.status_code in (200, 400), r.text
    else:
        assert_scim_error(r, 400, "invalidValue")
        assert drupal_writes() == []
    assert can_log_in(emulator, "pw-bad@example.com", "Good-Pw-6")
    if isinstance(pw, str) and pw.strip():
        before = len(emulator.drupal_users())
        assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("pw-bad2@example.com", password=pw)), 400, "invalidValue")
        assert len(emulator.drupal_users()) == before


def test_remove_password_does_not_clear_it(scim, emulator):
    r = scim("POST", "/Users", json=jumpcloud_user("pw-rm@example.com", password="Stay-Pw-7"))
    r = scim("PATCH", f"/Users/{r.json()['id']}", json=patch_op({"op": "remove", "path": "password"}))
    assert r.status_code in (200, 400), r.text
    assert can_log_in(emulator, "pw-rm@example.com", "Stay-Pw-7")


def test_passwords_never_reach_envoys_log_even_at_debug(scim, gateway, emulator):
    """The request body (with the password) must not be logged, even when a request fails."""
    r = scim("POST", "/Users", json=jumpcloud_user("pw-log@example.com", password="Log-Pw-8"))
    uid = r.json()["id"]
    scim("POST", "/Users", json=jumpcloud_user("pw-log@example.com", password="Log-Dup-Pw-9"))  # 409
    scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "replace", "path": "password", "value": "Log-Pw-10"}, {"op": "replace", "path": "userName", "value": "x" * 70}))
    scim("PUT", f"/Users/{uid}", json={"schemas": ["bad"], "password": "Log-Pw-11"})
    log = gateway.log_text()
    for pw in ("Log-Pw-8", "Log-Dup-Pw-9", "Log-Pw-10", "Log-Pw-11"):
        assert pw not in log
