"""A slow or keep-alive-closing Drupal gives no false failures (issue 18, item 12).

- A Drupal front that closes idle keep-alive connections after 5 s (Apache's default), taken
  at its worst (the emulator's `idle_close_ms`: the close crosses the next request): requests
  spread over longer gaps never meet a closed connection, since Envoy closes idle upstream
  connections first (`idle_timeout: 3s` on the Drupal cluster).
- A call reset before any answer: a read is sent once more; a write Drupal may have made is
  read back, and the IdP gets the truth: success when Drupal made it, the write's error (with
  "does not show the change") when it did not.
- A write that outlasts `drupal.timeout_ms` but lands (the emulator's `delay_ms` fault): the
  read-back finds it made; the IdP gets the success, not "did not answer in time".
A refused connection (what Drupal provably never saw) is sent once more whatever the method:
Envoy cannot refuse one connection out of several on demand, so the unit tests of
`drupal::delivery` and the gate cover it."""

from __future__ import annotations

import time

import pytest

from harness import assert_scim_error, jumpcloud_user, patch_op
from groups_support import (  # noqa: F401  (fixtures)
    create_group,
    drupal_members,
    groups_gw,
    patch_group,
    seed_members,
)

USERS = "/jsonapi/user/user"
DEACTIVATE = patch_op({"op": "replace", "path": "active", "value": False})


def calls_to(drupal_requests, uuid: str) -> list[str]:
    return [r["method"] for r in drupal_requests() if uuid in r["path"]]


def test_requests_spread_over_a_closing_keep_alive_never_meet_a_closed_connection(scim, emulator_settings, create_user, drupal_requests):
    uid = create_user("keepalive@example.com")["id"]
    emulator_settings(idle_close_ms=5000)
    statuses = []
    for method, path, body in [
        ("GET", f"/Users/{uid}", None),
        ("PATCH", f"/Users/{uid}", DEACTIVATE),
        ("GET", "/Users", None),
    ]:
        time.sleep(5.5)
        statuses.append(scim(method, path, json=body).status_code)
    assert statuses == [200, 200, 200]


def test_a_read_reset_before_its_answer_is_sent_once_more(scim, seed_user, fault, drupal_requests, clear_drupal_requests):
    jane = seed_user("jane@example.com", mail="jane@example.com")
    clear_drupal_requests()
    fault(drop=True, count=1, method="GET", path_prefix=f"{USERS}/{jane['uuid']}")
    r = scim("GET", f"/Users/{jane['uuid']}")
    assert r.status_code == 200, r.text
    assert calls_to(drupal_requests, jane["uuid"]) == ["GET", "GET"]


def test_writes_reset_after_drupal_made_them_are_read_back_as_done(scim, emulator, fault, create_user):
    uid = create_user("resetpatch@example.com")["id"]
    fault(drop=True, process=True, count=1, method="PATCH", path_prefix=f"{USERS}/{uid}")
    r = scim("PATCH", f"/Users/{uid}", json=DEACTIVATE)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert emulator.drupal_user(uid)["status"] is False

    fault(drop=True, process=True, count=1, method="POST", path_prefix=USERS)
    r = scim("POST", "/Users", json=jumpcloud_user("resetcreate@example.com"))
    assert r.status_code == 201, r.text
    assert r.json()["userName"] == "resetcreate@example.com"
    assert sum(1 for u in emulator.drupal_users() if u.get("name") == "resetcreate@example.com") == 1

    # DELETE: the cancel's answer lost, then the retirement's.
    fault(drop=True, process=True, count=1, method="DELETE", path_prefix=f"{USERS}/{uid}")
    assert scim("DELETE", f"/Users/{uid}").status_code == 204
    assert scim("GET", f"/Users/{uid}").status_code == 404
    other = create_user("resetdelete@example.com")["id"]
    fault(drop=True, process=True, count=1, method="PATCH", path_prefix=f"{USERS}/{other}")
    assert scim("DELETE", f"/Users/{other}").status_code == 204
    assert scim("GET", f"/Users/{other}").status_code == 404


def test_a_write_drupal_never_saw_is_reported_as_not_made(scim, emulator, fault, create_user, drupal_requests):
    uid = create_user("notmade@example.com")["id"]
    fault(drop=True, count=1, method="PATCH", path_prefix=f"{USERS}/{uid}")
    r = scim("PATCH", f"/Users/{uid}", json=DEACTIVATE)
    body = assert_scim_error(r, 503)
    assert "does not show the change" in body["detail"], body
    assert emulator.drupal_user(uid)["status"] is True
    # Sending it again, as the answer says, is safe.
    assert scim("PATCH", f"/Users/{uid}", json=DEACTIVATE).status_code == 200
    assert emulator.drupal_user(uid)["status"] is False


def test_a_write_that_outlasts_the_timeout_but_lands_is_answered_as_done(scim, emulator, fault, create_user):
    uid = create_user("slowpatch@example.com")["id"]
    # The answer comes after drupal.timeout_ms (1.5 s here); the write has happened.
    fault(delay_ms=2500, count=1, method="PATCH", path_prefix=f"{USERS}/{uid}")
    r = scim("PATCH", f"/Users/{uid}", json=DEACTIVATE)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    fault(delay_ms=2500, count=1, method="POST", path_prefix=USERS)
    r = scim("POST", "/Users", json=jumpcloud_user("slowcreate@example.com"))
    assert r.status_code == 201, r.text


def test_member_adds_that_time_out_or_reset_but_land_are_no_failure(groups_gw, emulator):
    users = seed_members(emulator, "slowadd", 10)
    g = create_group(groups_gw, "Slow adds")["id"]
    rel = "/jsonapi/user/user/"
    emulator.fault(delay_ms=2500, count=3, path_prefix=rel, method="POST")
    r = patch_group(groups_gw, g, {"op": "add", "path": "members", "value": [{"value": u} for u in users[:5]]}, expect=None)
    assert r.status_code == 204, r.text
    emulator.clear_faults()
    # Reset after Drupal made it, and reset before Drupal saw it: both end with the member in.
    emulator.fault(drop=True, process=True, count=2, path_prefix=rel, method="POST")
    r = patch_group(groups_gw, g, {"op": "add", "path": "members", "value": [{"value": u} for u in users[5:8]]}, expect=None)
    assert r.status_code == 204, r.text
    emulator.fault(drop=True, count=2, path_prefix=rel, method="POST")
    r = patch_group(groups_gw, g, {"op": "add", "path": "members", "value": [{"value": u} for u in users[8:]]}, expect=None)
    assert r.status_code == 204, r.text
    assert drupal_members(emulator, g) == set(users)
