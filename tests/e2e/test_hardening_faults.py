"""Hardening: Drupal faults not covered by test_drupal_faults.py.

- Drupal answers 2xx with a body that is not JSON:API (HTML, empty, other JSON, truncated):
  502, never a SCIM resource or list built from it.
- A fault in the middle of a multi-call operation (DELETE: read, cancel, retire; PATCH:
  read, write): an error answer, Drupal left in a state from which retrying the same SCIM
  request completes it.
- Drupal's flood control locks the service account (5 wrong passwords from the gateway's
  IP): even the right password is then refused; the gateway reports 502 naming the service
  account, on reads and lists too (never an empty list), until the lock is cleared.
"""

from __future__ import annotations

import json

import pytest
import requests

import harness
from harness import SEARCH_REQUEST, assert_scim_error, jumpcloud_user, patch_op

MARKER = "NOT-JSONAPI-BODY-5c1d"
USER_PREFIX = "/jsonapi/user/user"


def no_drupal_body(resp):
    text = resp.text
    assert MARKER not in text
    assert "<html" not in text.lower()
    assert "jsonapi" not in text.lower()


@pytest.fixture
def jane(seed_user):
    return seed_user("jane@example.com", mail="jane@example.com")


# ---- 2xx answers that are not JSON:API ----------------------------------------------------

NOT_JSONAPI = {
    "html": (f"<!DOCTYPE html><html><head><title>Drupal</title></head><body>{MARKER}</body></html>", {"Content-Type": "text/html; charset=UTF-8"}),
    "empty": ("", {"Content-Type": "application/vnd.api+json"}),
    "plain-json": (json.dumps({"message": MARKER}), None),
    "truncated-jsonapi": ('{"jsonapi":{"version":"1.0"},"data":{"type":"user--user","id":"' + MARKER, {"Content-Type": "application/vnd.api+json"}),
    "data-null": (json.dumps({"jsonapi": {"version": "1.0"}, "data": None, "meta": {"m": MARKER}}), None),
    "wrong-type": (json.dumps({"data": {"type": "node--article", "id": "0b7e7c36-6c1e-4c2a-9f0e-6f7d43f1d3a1", "attributes": {"title": MARKER}}}), None),
    "json-array": (json.dumps([MARKER]), None),
}


def _not_jsonapi_fault(fault, kind: str, **match):
    body, headers = NOT_JSONAPI[kind]
    spec = {"status": 200, "body": body, "count": 1000, **match}
    if headers:
        spec["headers"] = headers
    fault(**spec)


@pytest.mark.parametrize("kind", NOT_JSONAPI.keys())
def test_user_get_answered_with_non_jsonapi_200_is_502(scim, jane, fault, kind):
    _not_jsonapi_fault(fault, kind, path_prefix=f"{USER_PREFIX}/{jane['uuid']}", method="GET")
    r = scim("GET", f"/Users/{jane['uuid']}")
    assert_scim_error(r, 502)
    no_drupal_body(r)


@pytest.mark.parametrize("kind", ["html", "empty", "plain-json", "truncated-jsonapi", "data-null", "json-array"])
@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/Users", None),
        ("GET", '/Users?filter=userName%20eq%20%22jane@example.com%22', None),
        ("GET", '/Users?filter=emails%20eq%20%22jane@example.com%22', None),
        ("POST", "/Users/.search", {"schemas": [SEARCH_REQUEST], "filter": 'userName eq "jane@example.com"'}),
    ],
    ids=["list", "filter-userName", "filter-emails", "search"],
)
def test_lists_answered_with_non_jsonapi_200_are_502_not_empty(scim, jane, fault, kind, request_):
    method, path, body = request_
    _not_jsonapi_fault(fault, kind, path_prefix=USER_PREFIX, method="GET")
    r = scim(method, path, json=body)
    assert_scim_error(r, 502)
    no_drupal_body(r)


@pytest.mark.parametrize("kind", ["html", "empty", "plain-json", "data-null"])
def test_writes_answered_with_non_jsonapi_2xx_are_502(scim, jane, emulator, fault, kind):
    """The write happened in Drupal (process: true) but the answer is garbage: an error, not
    a resource built from it."""
    body, headers = NOT_JSONAPI[kind]
    spec = {"status": 201, "body": body, "count": 1, "method": "POST", "path_prefix": USER_PREFIX, "process": True}
    if headers:
        spec["headers"] = headers
    fault(**spec)
    r = scim("POST", "/Users", json=jumpcloud_user("garbled@example.com"))
    assert_scim_error(r, 502)
    no_drupal_body(r)

    spec.update(status=200, method="PATCH", path_prefix=f"{USER_PREFIX}/{jane['uuid']}")
    fault(**spec)
    r = scim("PATCH", f"/Users/{jane['uuid']}", json=patch_op({"op": "replace", "path": "active", "value": False}))
    assert_scim_error(r, 502)
    no_drupal_body(r)


def test_group_read_answered_with_html_is_502(new_envoy, emulator, fault):
    if not emulator.fields:
        pytest.skip("needs the emulator's scim_groups vocabulary")
    e = new_envoy(plugin_overrides={"groups": {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}})
    _not_jsonapi_fault(fault, "html", path_prefix="/jsonapi/taxonomy_term/scim_groups", method="GET")
    for path in ("/Groups", "/Groups/0b7e7c36-6c1e-4c2a-9f0e-6f7d43f1d3a1"):
        r = e.scim("GET", path)
        assert_scim_error(r, 502)
        no_drupal_body(r)


# ---- a fault in the middle of a multi-call operation ------------------------------------------


def _calls(drupal_requests, uuid: str) -> list[str]:
    return [f"{r['method']} {r['path'].split('?')[0]}" for r in drupal_requests() if uuid in r["path"]]


def test_delete_with_failing_retire_reports_an_error_and_a_retry_completes(scim, emulator, fault, drupal_requests, clear_drupal_requests, create_user):
    """DELETE /Users/{id} with `cancel`: GET, JSON:API DELETE (Drupal blocks the account),
    PATCH (retire). The retire PATCH fails: the answer is an error; the same DELETE again
    finishes the job (the id then answers 404 and the userName is free again)."""
    user = create_user("halfdeleted@example.com")
    uid = user["id"]
    clear_drupal_requests()
    fault(status=500, body=json.dumps({"errors": [{"status": "500", "title": MARKER}]}), count=1, method="PATCH", path_prefix=f"{USER_PREFIX}/{uid}")

    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code >= 500, f"the failed retire was reported as {r.status_code} {r.text[:300]}"
    assert_scim_error(r, r.status_code)
    no_drupal_body(r)
    assert _calls(drupal_requests, uid) == [f"GET {USER_PREFIX}/{uid}", f"DELETE {USER_PREFIX}/{uid}", f"PATCH {USER_PREFIX}/{uid}"]
    # Drupal: cancelled (blocked), not yet retired.
    d = emulator.drupal_user(uid)
    assert d is not None and d["status"] is False and d["name"] == "halfdeleted@example.com", d

    # The IdP retries the DELETE.
    emulator.clear_faults()
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert scim("GET", f"/Users/{uid}").status_code == 404
    d = emulator.drupal_user(uid)
    assert d is None or d["name"].startswith("scimretired"), d
    assert scim("GET", "/Users", params={"filter": 'userName eq "halfdeleted@example.com"'}).json()["totalResults"] == 0
    # A third DELETE: 404, and the name and address can be used again.
    assert_scim_error(scim("DELETE", f"/Users/{uid}"), 404)
    again = scim("POST", "/Users", json=jumpcloud_user("halfdeleted@example.com"))
    assert again.status_code == 201, again.text
    assert again.json()["id"] != uid


def test_delete_with_failing_cancel_leaves_the_user_and_a_retry_completes(scim, emulator, fault, create_user):
    user = create_user("cancelfail@example.com")
    uid = user["id"]
    fault(status=500, body=MARKER, count=1, method="DELETE", path_prefix=f"{USER_PREFIX}/{uid}")
    r = scim("DELETE", f"/Users/{uid}")
    assert_scim_error(r, 502)
    no_drupal_body(r)
    d = emulator.drupal_user(uid)
    assert d["status"] is True and d["name"] == "cancelfail@example.com", d
    assert scim("GET", f"/Users/{uid}").status_code == 200
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert scim("GET", f"/Users/{uid}").status_code == 404


def test_delete_whose_cancel_answer_is_lost_completes(scim, emulator, fault, create_user):
    """Drupal carried out the cancel but the answer never arrived (connection dropped after
    the write): the retirement follows all the same (test_upstream_resets), so the DELETE
    completes at once."""
    user = create_user("lostanswer@example.com")
    uid = user["id"]
    fault(drop=True, process=True, count=1, method="DELETE", path_prefix=f"{USER_PREFIX}/{uid}")
    r = scim("DELETE", f"/Users/{uid}")
    assert r.status_code == 204, r.text
    assert emulator.drupal_user(uid) is None or emulator.drupal_user(uid)["status"] is False
    assert scim("GET", f"/Users/{uid}").status_code == 404
    assert_scim_error(scim("DELETE", f"/Users/{uid}"), 404)


def test_patch_with_failing_write_changes_nothing_and_a_retry_applies(scim, emulator, fault, create_user, drupal_requests, clear_drupal_requests):
    """A PATCH that needs a read then a write; the write fails: error, user unchanged (all
    operations or none), the retry applies them all."""
    user = create_user("patchfail@example.com")
    uid = user["id"]
    body = patch_op(
        {"op": "add", "path": "emails", "value": [{"value": "patchfail.new@example.com", "type": "work", "primary": True}]},
        {"op": "replace", "path": "active", "value": False},
    )
    before = emulator.drupal_user(uid)
    clear_drupal_requests()
    fault(status=500, body=MARKER, count=1, method="PATCH", path_prefix=f"{USER_PREFIX}/{uid}")
    r = scim("PATCH", f"/Users/{uid}", json=body)
    assert_scim_error(r, 502)
    no_drupal_body(r)
    assert [c.split(" ")[0] for c in _calls(drupal_requests, uid)] == ["GET", "PATCH"]
    after = emulator.drupal_user(uid)
    assert (after["mail"], after["status"], after["changed"]) == (before["mail"], before["status"], before["changed"])

    r = scim("PATCH", f"/Users/{uid}", json=body)
    assert r.status_code in (200, 204), r.text
    after = emulator.drupal_user(uid)
    assert (after["mail"], after["status"]) == ("patchfail.new@example.com", False)


def test_create_whose_answer_is_lost_is_found_by_reading_back(scim, emulator, fault):
    """The create happened but its answer was lost: the gateway reads the name back and
    answers 201 with that account; the IdP's retry gets 409 uniqueness, never a second
    account."""
    fault(drop=True, process=True, count=1, method="POST", path_prefix=USER_PREFIX)
    r = scim("POST", "/Users", json=jumpcloud_user("lostcreate@example.com"))
    assert r.status_code == 201, r.text
    r = scim("POST", "/Users", json=jumpcloud_user("lostcreate@example.com"))
    assert_scim_error(r, 409, "uniqueness")
    found = scim("GET", "/Users", params={"filter": 'userName eq "lostcreate@example.com"'}).json()
    assert found["totalResults"] == 1
    assert sum(1 for u in emulator.drupal_users() if u.get("name") == "lostcreate@example.com") == 1


# ---- flood control locks the service account -------------------------------------------------------


def _flood_lock_from_this_ip(emulator, seed_uuid: str) -> None:
    """Something else on the gateway's IP (a script with an old password, a person at the
    login form) fails Drupal's Basic login for the service account until flood control locks
    it for this IP. The gateway alone never does: it backs off after one refusal
    (test_a_misconfigured_gateway_alone_never_locks_the_account)."""
    wrong = harness.basic(emulator.admin_user, "wrong-" + emulator.admin_pass)
    for _ in range(6):
        emulator.jsonapi("GET", f"{USER_PREFIX}/{seed_uuid}", auth=None, headers={"Authorization": wrong})
    # The wrong credentials are in Drupal's log on purpose: keep them out of the leak check.
    emulator.clear_requests()
    # Drupal now refuses even the right password from this IP.
    r = emulator.jsonapi("GET", f"{USER_PREFIX}/{seed_uuid}")
    body = r.json() if r.headers.get("content-type", "").startswith("application/vnd.api+json") else {}
    attrs = (body.get("data") or {}).get("attributes", {}) if isinstance(body, dict) else {}
    assert r.status_code in (401, 403) or "mail" not in attrs, f"the emulator did not lock the account: {r.status_code} {r.text[:300]}"


def _flood_rows(emulator) -> dict:
    r = requests.get(emulator.url + "/_emulator/flood", headers={"x-e2e-direct": "1"}, timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.mark.no_leak_check
def test_a_misconfigured_gateway_alone_never_locks_the_account(new_envoy, emulator, jane):
    """A wrong service password: after Drupal's first refusal the gateway stops asking (and
    answers 502 at once), so it leaves a handful of flood rows, far from any lock."""
    wrong = new_envoy(drupal_password="wrong-" + emulator.admin_pass)
    emulator.clear_requests()
    for method, path, body in FLOOD_REQUESTS * 3:
        _assert_refused(wrong.scim(method, path.replace("{jane}", jane["uuid"]), json=body), f"{method} {path}")
    rows = _flood_rows(emulator)
    assert rows["rows"] <= 5, rows
    assert len([q for q in emulator.requests_log() if q["path"].startswith("/jsonapi")]) <= 2
    assert "next attempt in 60 s" in wrong.log_text()
    # The right password still works from this IP.
    assert emulator.jsonapi("GET", f"{USER_PREFIX}/{jane['uuid']}").json()["data"]["attributes"]["mail"] == "jane@example.com"


FLOOD_REQUESTS = [
    ("GET", "/Users/{jane}", None),
    ("GET", "/Users", None),
    ("GET", "/Users?filter=userName%20eq%20%22jane@example.com%22", None),
    ("GET", "/Users?filter=emails%20eq%20%22jane@example.com%22", None),
    ("POST", "/Users/.search", {"schemas": [SEARCH_REQUEST], "filter": 'userName sw "j"'}),
    ("POST", "/Users", jumpcloud_user("flooded@example.com")),
    ("PATCH", "/Users/{jane}", patch_op({"op": "replace", "path": "active", "value": False})),
    ("PUT", "/Users/{jane}", jumpcloud_user("jane@example.com")),
    ("DELETE", "/Users/{jane}", None),
]


def test_flood_locked_service_account_is_502_everywhere(scim, new_envoy, emulator, jane):
    # Its own gateway: after the refusal it backs off for a minute.
    locked = new_envoy()
    _flood_lock_from_this_ip(emulator, jane["uuid"])
    try:
        for method, path, body in FLOOD_REQUESTS:
            _assert_refused(locked.scim(method, path.replace("{jane}", jane["uuid"]), json=body), f"{method} {path}")
        # Nothing changed in Drupal meanwhile.
        requests.delete(emulator.url + "/_emulator/flood", headers={"x-e2e-direct": "1"}, timeout=10).raise_for_status()
        d = emulator.drupal_user(jane["uuid"])
        assert d["status"] is True and d["name"] == "jane@example.com"
        assert emulator.drupal_user_by_name("flooded@example.com") is None
        # Lock cleared: a gateway that was not refused meanwhile serves at once (the refused
        # one tries again after its back-off: test_real_drupal_faults).
        r = scim("GET", "/Users", params={"filter": 'userName eq "jane@example.com"'})
        assert r.status_code == 200 and r.json()["totalResults"] == 1, r.text
        assert scim("GET", f"/Users/{jane['uuid']}").status_code == 200
    finally:
        requests.delete(emulator.url + "/_emulator/flood", headers={"x-e2e-direct": "1"}, timeout=10)


GROUPS = {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _groups_envoy(new_envoy, emulator):
    if not emulator.fields:
        pytest.skip("needs the emulator's scim_groups vocabulary")
    return new_envoy(plugin_overrides={"groups": GROUPS})


def _assert_refused(r, what: str) -> None:
    err = assert_scim_error(r, 502)
    assert "service account" in err["detail"].lower(), f"{what}: {err['detail']}"
    assert "Resources" not in r.json(), f"{what}: a list from an anonymous view"


def test_flood_locked_service_account_on_groups_is_502(new_envoy, emulator, jane):
    g = _groups_envoy(new_envoy, emulator)
    grp = g.scim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": "Eng", "members": [{"value": jane["uuid"]}]})
    assert grp.status_code == 201, grp.text
    gid = grp.json()["id"]
    _flood_lock_from_this_ip(emulator, jane["uuid"])
    try:
        for method, path, body in [
            ("GET", "/Groups", None),
            ("GET", '/Groups?filter=displayName%20eq%20%22Eng%22', None),
            ("GET", f"/Groups/{gid}", None),
            ("GET", f"/Users/{jane['uuid']}", None),
            ("POST", "/Groups", {"schemas": [CORE_GROUP], "displayName": "Flooded"}),
            ("PATCH", f"/Groups/{gid}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": "members"}]}),
            ("PUT", f"/Groups/{gid}", {"schemas": [CORE_GROUP], "displayName": "Eng", "members": []}),
            ("DELETE", f"/Groups/{gid}", None),
        ]:
            _assert_refused(g.scim(method, path, json=body), f"{method} {path}")
    finally:
        requests.delete(emulator.url + "/_emulator/flood", headers={"x-e2e-direct": "1"}, timeout=10)
    # Nothing was lost meanwhile (read through a gateway that is not backing off).
    r = _groups_envoy(new_envoy, emulator).scim("GET", f"/Groups/{gid}")
    assert r.status_code == 200 and [m["value"] for m in r.json()["members"]] == [jane["uuid"]], r.text


def test_flood_locked_group_reads_without_member_lookups_are_502(new_envoy, emulator, jane):
    """Drupal shows taxonomy terms to anonymous callers, so a group read that reads no users
    (an empty vocabulary, `excludedAttributes=members` as Entra sends it) cannot notice the
    refusal from the data; it must still not answer from Drupal's anonymous view."""
    g = _groups_envoy(new_envoy, emulator)
    empty = g.scim("GET", "/Groups")
    assert empty.status_code == 200 and empty.json()["totalResults"] == 0, empty.text
    grp = g.scim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": "Eng", "members": [{"value": jane["uuid"]}]})
    assert grp.status_code == 201, grp.text
    gid = grp.json()["id"]
    _flood_lock_from_this_ip(emulator, jane["uuid"])
    try:
        wrong = []
        for what, params, path in [
            ("Entra's lookup by displayName", {"filter": 'displayName eq "Eng"', "excludedAttributes": "members"}, "/Groups"),
            ("a list without members", {"excludedAttributes": "members"}, "/Groups"),
            ("a group without members", {"excludedAttributes": "members"}, f"/Groups/{gid}"),
            ("a list that finds nothing", {"filter": 'displayName eq "Nobody"'}, "/Groups"),
        ]:
            r = g.scim("GET", path, params=params)
            try:
                _assert_refused(r, what)
            except AssertionError:
                wrong.append(f"{what} (GET {path}?{params}): {r.status_code} {r.text[:160]}")
        assert not wrong, "answered from Drupal's anonymous view:\n" + "\n".join(wrong)
    finally:
        requests.delete(emulator.url + "/_emulator/flood", headers={"x-e2e-direct": "1"}, timeout=10)
