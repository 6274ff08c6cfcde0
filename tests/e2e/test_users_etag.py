"""Versioning: `ETag` == `meta.version`; `If-Match` on PUT/PATCH/DELETE (412 on mismatch,
`*` matches); `If-None-Match` on GET (304 when unchanged). Drupal's state and request log
show that a failed precondition writes nothing."""

from __future__ import annotations

import time

import pytest

from harness import assert_scim_error, jumpcloud_user, patch_op


@pytest.fixture
def pat(create_user):
    return create_user("etag@example.com")


def current(scim, uid):
    r = scim("GET", f"/Users/{uid}")
    assert r.status_code == 200
    return r


def test_etag_header_equals_meta_version_everywhere(scim, pat):
    r = current(scim, pat["id"])
    tag = r.headers["ETag"]
    assert tag.startswith('W/"') and tag.endswith('"')
    assert tag == r.json()["meta"]["version"] == pat["meta"]["version"]
    listed = scim("GET", "/Users", params={"filter": 'userName eq "etag@example.com"'}).json()["Resources"][0]
    assert listed["meta"]["version"] == tag
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "active", "value": False}))
    assert r.headers["ETag"] == r.json()["meta"]["version"] != tag
    r2 = scim("PUT", f"/Users/{pat['id']}", json=jumpcloud_user("etag@example.com", active=True))
    assert r2.headers["ETag"] == r2.json()["meta"]["version"]


def test_version_changes_with_every_change_even_within_a_second(scim, pat):
    seen = {pat["meta"]["version"]}
    for value in ("A", "B", "C"):
        r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": f"etag-{value}@example.com"}))
        assert r.status_code == 200
        seen.add(r.headers["ETag"])
    assert len(seen) == 4


# ---- If-None-Match on GET ------------------------------------------------------------------


def test_if_none_match_current_is_304(scim, pat):
    tag = current(scim, pat["id"]).headers["ETag"]
    for header in (tag, tag.replace('W/"', '"'), f'"other", {tag}', "*"):
        r = scim("GET", f"/Users/{pat['id']}", headers={"If-None-Match": header})
        assert r.status_code == 304, (header, r.status_code, r.text)
        assert r.content == b""
        assert r.headers.get("ETag") == tag


def test_if_none_match_stale_is_200_with_the_new_version(scim, pat):
    old = current(scim, pat["id"]).headers["ETag"]
    scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "active", "value": False}))
    r = scim("GET", f"/Users/{pat['id']}", headers={"If-None-Match": old})
    assert r.status_code == 200
    assert r.headers["ETag"] != old
    assert r.json()["active"] is False


def test_if_none_match_on_an_unknown_user_is_404(scim):
    r = scim("GET", "/Users/3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b", headers={"If-None-Match": "*"})
    assert_scim_error(r, 404)


# ---- If-Match on writes ----------------------------------------------------------------------

STALE = 'W/"19990101000000-deadbeef"'

WRITES = {
    "put": lambda scim, uid, h: scim("PUT", f"/Users/{uid}", json=jumpcloud_user("etag@example.com", active=False), headers=h),
    "patch-direct": lambda scim, uid, h: scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "replace", "path": "active", "value": False}), headers=h),
    "patch-read-first": lambda scim, uid, h: scim("PATCH", f"/Users/{uid}", json=patch_op({"op": "replace", "path": "emails", "value": [{"value": "etag-new@example.com"}]}), headers=h),
    "delete": lambda scim, uid, h: scim("DELETE", f"/Users/{uid}", headers=h),
}


@pytest.mark.parametrize("how", list(WRITES))
@pytest.mark.parametrize("tag", [STALE, '"19990101000000-deadbeef"', "W/\"\""], ids=["stale-weak", "stale-strong", "empty"])
def test_if_match_mismatch_is_412_and_writes_nothing(scim, emulator, pat, drupal_writes, clear_drupal_requests, how, tag):
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    r = WRITES[how](scim, pat["id"], {"If-Match": tag})
    assert_scim_error(r, 412)
    assert drupal_writes() == []
    assert emulator.drupal_user(pat["id"]) == before


def test_if_match_with_a_version_from_before_a_change_is_412(scim, emulator, pat):
    old = pat["meta"]["version"]
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "etag2@example.com"}))
    assert r.status_code == 200
    for how in WRITES:
        assert_scim_error(WRITES[how](scim, pat["id"], {"If-Match": old}), 412)
    d = emulator.drupal_user(pat["id"])
    assert (d["name"], d["status"], d["mail"]) == ("etag2@example.com", True, "etag@example.com")


@pytest.mark.parametrize("how", list(WRITES))
@pytest.mark.parametrize("which", ["current", "current-strong", "star", "list-with-current"])
def test_if_match_that_matches_writes(scim, emulator, pat, how, which):
    tag = current(scim, pat["id"]).headers["ETag"]
    header = {"current": tag, "current-strong": tag.replace('W/"', '"'), "star": "*", "list-with-current": f'{STALE}, {tag}'}[which]
    r = WRITES[how](scim, pat["id"], {"If-Match": header})
    if how == "delete":
        assert r.status_code == 204, r.text
        assert_scim_error(scim("GET", f"/Users/{pat['id']}"), 404)
        return
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] != tag
    d = emulator.drupal_user(pat["id"])
    assert d["status"] is False or d["mail"] == "etag-new@example.com"


def test_if_match_on_patch_reads_first(scim, pat, drupal_requests, clear_drupal_requests):
    tag = current(scim, pat["id"]).headers["ETag"]
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "active", "value": False}), headers={"If-Match": tag})
    assert r.status_code == 200
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]


def test_if_match_on_an_unknown_user_is_404(scim):
    for how in WRITES:
        assert_scim_error(WRITES[how](scim, "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b", {"If-Match": "*"}), 404)


def test_optimistic_concurrency_between_two_clients(scim, emulator, pat):
    """Two IdP workers read the same version; the second write is refused."""
    tag = current(scim, pat["id"]).headers["ETag"]
    time.sleep(0.01)
    first = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "first@example.com"}), headers={"If-Match": tag})
    assert first.status_code == 200
    second = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "second@example.com"}), headers={"If-Match": tag})
    assert_scim_error(second, 412)
    assert emulator.drupal_user(pat["id"])["name"] == "first@example.com"
