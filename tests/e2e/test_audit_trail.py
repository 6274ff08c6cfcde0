"""The audit trail (issue 19, item 3), read from a real Envoy: one log line per SCIM request
naming the resource id and the Drupal uids it touched (text, or JSON with `log_format`), never
an address or a query string; every Drupal call carries the request id the line shows, a W3C
`traceparent` of the same trace, and a User-Agent naming the gateway, its version and the
token label; the counters and the back-off gauge in Envoy's stats."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from harness import REPO_ROOT, assert_scim_error, jumpcloud_user, patch_op, wait_for

VERSION = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text())["package"]["version"]
UA = f"envoy-scim-drupal/{VERSION} (token=primary)"
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{INCOMING_TRACE}-00f067aa0ba902b7-01"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")


def log_line(gw, rid: str) -> str:
    """The filter's line for request id `rid` (waits for Envoy to write it)."""
    found: list[str] = []

    def seen():
        found[:] = [l for l in gw.log_text().splitlines() if "envoy-scim-drupal: scim" in l or '"msg":"scim request"' in l]
        found[:] = [l for l in found if f"request_id={rid} " in l or f'"request_id":"{rid}"' in l]
        return bool(found)

    assert wait_for(seen, 10), f"no log line for {rid}"
    assert len(found) == 1, found
    return found[0]


def fields(line: str) -> dict:
    """The key=value pairs of a text line, or the object of a JSON line."""
    if '"msg":"scim request"' in line:
        return json.loads(line[line.index("{"):])
    return dict(re.findall(r"(\w+)=(\S+)", line.split("envoy-scim-drupal: ", 1)[1]))


def uid_of(emulator, uuid: str) -> int:
    return emulator.drupal_user(uuid)["drupal_internal__uid"]


def calls_for(drupal_requests, rid: str) -> list[dict]:
    return [r for r in drupal_requests() if r["headers"].get("x-request-id") == rid]


def assert_tagged(calls: list[dict], rid: str, trace_id: str, incoming_span: str | None = None) -> None:
    assert calls, f"no Drupal call carried x-request-id {rid}"
    for c in calls:
        h = c["headers"]
        assert h.get("user-agent") == UA, (c["method"], c["path"], h.get("user-agent"))
        m = TRACEPARENT.match(h.get("traceparent", ""))
        assert m, (c["path"], h.get("traceparent"))
        assert m.group(1) == trace_id
        assert m.group(2) != incoming_span, "the gateway's span is its own"


@pytest.fixture(scope="module")
def json_gw(stack):
    e = stack.new_envoy(plugin_overrides={"log_format": "json"})
    yield e
    e.stop()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_create_patch_delete_are_logged_with_id_and_uid(fmt, gateway, json_gw, emulator, drupal_requests):
    gw = gateway if fmt == "text" else json_gw
    mail = f"audit.{fmt}@example.com"
    # Create, continuing the IdP's trace.
    rid = f"audit-{fmt}-create"
    r = gw.scim("POST", "/Users", json=jumpcloud_user(mail), headers={"x-request-id": rid, "traceparent": INCOMING})
    assert r.status_code == 201, r.text
    uuid = r.json()["id"]
    uid = uid_of(emulator, uuid)
    line = log_line(gw, rid)
    f = fields(line)
    assert mail not in line and "audit." not in line
    if fmt == "text":
        expect = {"id": uuid, "uids": str(uid), "op": "create", "status": "201", "trace_id": INCOMING_TRACE, "token": "primary", "adopted": "0"}
    else:
        expect = {"id": uuid, "uids": [uid], "op": "create", "status": 201, "trace_id": INCOMING_TRACE, "token": "primary", "adopted": False}
    assert {k: f.get(k) for k in expect} == expect, line
    assert_tagged(calls_for(drupal_requests, rid), rid, INCOMING_TRACE, "00f067aa0ba902b7")

    # PATCH: a new trace, started by the gateway, on the line and on the Drupal calls alike.
    rid = f"audit-{fmt}-patch"
    r = gw.scim("PATCH", f"/Users/{uuid}", json=patch_op({"op": "replace", "path": "active", "value": False}), headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    f = fields(log_line(gw, rid))
    assert (f["id"], f["uids"], f["op"], str(f["status"])) == (uuid, str(uid) if fmt == "text" else [uid], "patch", "200")
    assert re.fullmatch(r"[0-9a-f]{32}", f["trace_id"]) and f["trace_id"] != INCOMING_TRACE
    calls = calls_for(drupal_requests, rid)
    assert {c["method"] for c in calls} >= {"GET", "PATCH"}
    assert_tagged(calls, rid, f["trace_id"])

    # DELETE (the cancel and the retirement are both tagged).
    rid = f"audit-{fmt}-delete"
    assert gw.scim("DELETE", f"/Users/{uuid}", headers={"x-request-id": rid}).status_code == 204
    f = fields(log_line(gw, rid))
    assert (f["id"], f["op"], str(f["status"])) == (uuid, "delete", "204")
    assert f["uids"] == (str(uid) if fmt == "text" else [uid])
    calls = calls_for(drupal_requests, rid)
    assert {c["method"] for c in calls} >= {"GET", "DELETE"}
    assert_tagged(calls, rid, f["trace_id"])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_refused_protected_write_names_the_account_and_is_counted(fmt, gateway, json_gw, seed_user, drupal_writes):
    gw = gateway if fmt == "text" else json_gw
    boss = seed_user(f"boss.{fmt}@example.com", mail=f"boss.{fmt}@example.com", roles=["administrator"])
    before = gw.stats()
    rid = f"audit-{fmt}-protected"
    r = gw.scim("PATCH", f"/Users/{boss['uuid']}", json=patch_op({"op": "replace", "path": "active", "value": False}), headers={"x-request-id": rid})
    assert_scim_error(r, 403)
    line = log_line(gw, rid)
    f = fields(line)
    assert (f["id"], str(f["status"])) == (boss["uuid"], "403")
    assert f["uids"] == (str(boss["uid"]) if fmt == "text" else [boss["uid"]])
    assert "boss." not in line
    assert not drupal_writes()
    assert stat(gw.stats(), "scim.protected_refusals") == stat(before, "scim.protected_refusals") + 1


def test_lists_name_no_account_and_no_query(gateway, seed_user):
    seed_user("lister@example.com", mail="lister@example.com")
    rid = "audit-list"
    r = gateway.scim("GET", "/Users", params={"filter": 'userName eq "lister@example.com"'}, headers={"x-request-id": rid})
    assert r.status_code == 200 and r.json()["totalResults"] == 1
    line = log_line(gateway, rid)
    f = fields(line)
    assert (f["id"], f["uids"], f["op"]) == ("-", "-", "list")
    assert "lister" not in line and "filter" not in line


def test_the_clients_own_headers_are_not_passed_on(gateway, drupal_requests):
    """Only checked values go out: a request id that could forge log fields is dropped, an
    invalid traceparent starts a new trace, and the IdP's User-Agent stays at the gateway."""
    r = gateway.scim(
        "GET",
        "/Users",
        params={"count": "1"},
        headers={"x-request-id": "abc token=evil", "traceparent": "00-zz-00-01", "User-Agent": "Okta SCIM Client 1.0.0", "X-Idp-Secret": "s3"},
    )
    assert r.status_code == 200
    calls = [c for c in drupal_requests() if c["path"].startswith("/jsonapi")]
    assert calls
    for c in calls:
        h = c["headers"]
        assert "x-request-id" not in h, h
        assert h["user-agent"] == UA
        assert TRACEPARENT.match(h["traceparent"]) and "zz" not in h["traceparent"]
        assert "x-idp-secret" not in h and "Okta" not in json.dumps(h)


def stat(text: str, name: str) -> int:
    """A counter or gauge of admin /stats (`wasmcustom.` is Envoy's prefix for the filter's)."""
    m = re.search(rf"^wasmcustom\.{re.escape(name)}: (\d+)$", text, re.M)
    return int(m.group(1)) if m else -1


def test_counters_are_in_envoys_stats(gateway, seed_user):
    before = gateway.stats()
    for name in ("scim.upstream_refusals", "scim.lock_waits", "scim.pager_rounds", "scim.pager_give_ups",
                 "scim.cas_give_ups", "scim.unlock_failures", "scim.protected_refusals", "scim.adoptions.on.create", "scim.upstream_backoff_active"):
        assert stat(before, name) >= 0, f"{name} is not defined in /stats"
    seed_user("paged@example.com", mail="paged@example.com")
    assert gateway.scim("GET", "/Users", params={"startIndex": "1", "count": "5"}).status_code == 200
    after = gateway.stats()
    assert stat(after, "scim.pager_rounds") > stat(before, "scim.pager_rounds")
    assert stat(after, "scim.upstream_backoff_active") == 0
    prom = gateway.http.get(f"http://127.0.0.1:{gateway.admin_port}/stats/prometheus", timeout=5).text
    assert re.search(r"^scim_pager_rounds\{?\}? \d+", prom, re.M) or "scim_pager_rounds " in prom, "not in /stats/prometheus"


@pytest.mark.no_leak_check  # this gateway sends its wrong password
def test_a_refused_service_account_shows_as_back_off_and_refusal(emulator, new_envoy, seed_user):
    seed_user("jane@example.com", mail="jane@example.com")
    gw = new_envoy(drupal_password="changed-" + emulator.admin_pass)
    r = gw.scim("GET", "/Users")
    assert r.status_code == 502, r.text
    stats = gw.stats()
    assert stat(stats, "scim.upstream_refusals") >= 1
    assert stat(stats, "scim.upstream_backoff_active") == 1


def test_a_write_waiting_for_another_is_a_lock_wait(gateway, emulator, seed_user):
    """Two PATCHes of one user at once: one holds the user's lock through its read and write
    (each slowed to 300 ms by the emulator), the other pauses until it is free."""
    from harness import concurrently

    jo = seed_user("jo@example.com", mail="jo@example.com")
    before = stat(gateway.stats(), "scim.lock_waits")
    emulator.settings(latency_ms=300)
    try:
        body = patch_op({"op": "replace", "path": "displayName", "value": "Jo"})
        results = concurrently([lambda: gateway.scim("PATCH", f"/Users/{jo['uuid']}", json=body)] * 2)
    finally:
        emulator.settings(latency_ms=0)
    assert [r.status_code for r in results] == [200, 200], results
    assert stat(gateway.stats(), "scim.lock_waits") > before


def test_scim_config_check_knows_log_format():
    from test_config_tool import GOOD, run

    for fmt in ("text", "json"):
        r = run("check", "-", stdin=json.dumps({**GOOD, "log_format": fmt}))
        assert r.returncode == 0, r.stdout + r.stderr
    r = run("check", "-", stdin=json.dumps({**GOOD, "log_format": "xml"}))
    assert r.returncode != 0
    assert "field `log_format`: `xml` is not one of `text`, `json`" in r.stdout, r.stdout
