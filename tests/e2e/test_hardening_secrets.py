"""Hardening: secrets never leak.

With the wasm log level at debug (and at trace), traffic over every code path (users: create
with a password, PATCH and PUT of the password, lookups, lists, search, delete; groups:
create with a member, membership PATCH, rename, delete; errors that carry a password) runs
through an Envoy with `groups` enabled. Then none of the secrets may appear in:

- Drupal's request log (what the gateway sent upstream), except the service account's Basic
  credentials in the `Authorization` header and a user's password as the `pass` attribute of
  the JSON:API create/update body (Drupal needs it there);
- any SCIM response (status line aside: headers and bodies);
- Envoy's log file (Envoy's own lines, the access log, the wasm lines at debug/trace);
- the admin interface: `/stats`, `/stats/prometheus`, `/config_dump` (the plugin config holds
  token digests only; the service account's credentials come from the VM environment).

Secrets: both configured bearer tokens, a wrong bearer token an attacker sent, the service
account's password (plain and as the Basic credential), and every user password.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from urllib.parse import unquote

import pytest
import requests

import harness
from harness import PATCH_OP, SEARCH_REQUEST, jumpcloud_user, patch_op

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
GROUPS = {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}
USER_PATH = re.compile(r"^/jsonapi/user/user(/[0-9a-fA-F-]{36})?$")


def _pw(tag: str) -> str:
    # Letters and digits only: no JSON or URL escaping can hide an occurrence.
    return f"Pw{tag}" + secrets.token_hex(12)


class Recorder:
    """Sends SCIM requests through one Envoy and keeps every response."""

    def __init__(self, envoy: harness.Envoy):
        self.envoy = envoy
        self.responses: list[tuple[str, str, requests.Response]] = []

    def __call__(self, method: str, path: str, expect: int | tuple[int, ...] | None = None, **kw) -> requests.Response:
        r = self.envoy.scim(method, path, **kw)
        self.responses.append((method, path, r))
        if expect is not None:
            allowed = expect if isinstance(expect, tuple) else (expect,)
            assert r.status_code in allowed, f"{method} {path}: {r.status_code} {r.text[:400]}"
        return r


def _set_wasm_log_level(envoy: harness.Envoy, level: str) -> None:
    r = requests.post(f"http://127.0.0.1:{envoy.admin_port}/logging?wasm={level}", timeout=5)
    assert r.status_code == 200, r.text[:300]
    active = requests.get(f"http://127.0.0.1:{envoy.admin_port}/logging", timeout=5)
    # `POST /logging` with no arguments lists the loggers; GET is refused on newer Envoys.
    text = active.text if active.status_code == 200 else r.text
    assert re.search(rf"\bwasm: {level}\b", text), f"wasm logger not at {level}"


def _run_traffic(call: Recorder, emulator, pw: dict[str, str], fields: bool) -> dict:
    """Every path that handles credentials or passwords. Returns the ids it created."""
    call("GET", "/ServiceProviderConfig", expect=200)
    call("GET", "/Schemas", expect=200)
    call("GET", "/ResourceTypes", expect=200, token="rotated")
    call("GET", "/Users", expect=401, token="wrong-" + pw["attacker"])
    call("GET", "/Users", expect=401, token=None, headers={"Authorization": "Basic " + base64.b64encode(f"x:{pw['attacker']}".encode()).decode()})

    body = harness.full_user("secret.ann@example.com") if fields else jumpcloud_user("secret.ann@example.com")
    body["password"] = pw["create"]
    ann = call("POST", "/Users", json=body, expect=201).json()
    # The same again: 409 (the password must not be echoed in the error).
    call("POST", "/Users", json=body, expect=409)
    bob = call("POST", "/Users", json={**jumpcloud_user("secret.bob@example.com"), "password": pw["bob"]}, expect=201, token="rotated").json()

    call("GET", f"/Users/{ann['id']}", expect=200)
    call("GET", "/Users", params={"filter": 'userName eq "secret.ann@example.com"'}, expect=200)
    call("GET", "/Users", params={"filter": 'emails[type eq "work" and value co "secret"]'}, expect=200)
    call("GET", "/Users", params={"count": "10", "startIndex": "1"}, expect=200)
    call("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": 'userName sw "secret"'}, expect=200)

    # Password changes: PATCH with a path, path-less PATCH, PUT.
    call("PATCH", f"/Users/{ann['id']}", json=patch_op({"op": "replace", "path": "password", "value": pw["patch"]}), expect=(200, 204))
    call("PATCH", f"/Users/{ann['id']}", json=patch_op({"op": "Replace", "value": {"password": pw["patch2"], "active": True}}), expect=(200, 204))
    put = {**jumpcloud_user("secret.ann@example.com"), "password": pw["put"]}
    call("PUT", f"/Users/{ann['id']}", json=put, expect=200)
    call("PATCH", f"/Users/{bob['id']}", json=patch_op({"op": "replace", "path": "active", "value": False}), expect=(200, 204))

    # Errors carrying a password: over-long password, malformed JSON, invalid value.
    call("PATCH", f"/Users/{ann['id']}", json=patch_op({"op": "replace", "path": "password", "value": pw["long"] * 40}), expect=400)
    call("POST", "/Users", data=f'{{"schemas":["{harness.CORE_USER}"],"userName":"x","password":"{pw["broken"]}"', headers={"Content-Type": "application/scim+json"}, expect=400)
    call("POST", "/Users", json={**jumpcloud_user("secret.bad@example.com"), "active": "maybe", "password": pw["invalid"]}, expect=400)
    # Drupal refuses this one (422, its name rules): the password did reach Drupal's create.
    call("POST", "/Users", json={**jumpcloud_user("bad name <>@example.com"), "password": pw["drupal422"]}, expect=400)

    # Groups: create with a member, add/remove, rename, list, read, delete.
    g = call("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": "Secret Keepers", "members": [{"value": ann["id"]}]}, expect=201).json()
    call("PATCH", f"/Groups/{g['id']}", json={"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": bob["id"]}]}]}, expect=(200, 204))
    call("PATCH", f"/Groups/{g['id']}", json={"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}]}, expect=(200, 204))
    call("PUT", f"/Groups/{g['id']}", json={"schemas": [CORE_GROUP], "displayName": "Secret Keepers 2"}, expect=200)
    call("GET", f"/Groups/{g['id']}", expect=200)
    call("GET", "/Groups", params={"filter": 'displayName eq "Secret Keepers 2"'}, expect=200)
    call("GET", f"/Users/{bob['id']}", expect=200)
    call("DELETE", f"/Groups/{g['id']}", expect=204)

    call("DELETE", f"/Users/{bob['id']}", expect=204)
    call("GET", f"/Users/{bob['id']}", expect=404)
    return {"ann": ann["id"], "bob": bob["id"]}


def _pass_values(body: str) -> tuple[list[str], str]:
    """The `pass` values in a JSON:API user document, and the document without them."""
    doc = json.loads(body)
    attrs = doc.get("data", {}).get("attributes", {}) if isinstance(doc, dict) else {}
    values = []
    if "pass" in attrs:
        p = attrs.pop("pass")
        values.append(p["value"] if isinstance(p, dict) else p)
    return values, json.dumps(doc)


@pytest.fixture
def leak_envoy(stack):
    """A gateway with groups on the session emulator; its log holds only this test."""
    e = stack.new_envoy(plugin_overrides={"groups": GROUPS})
    yield e
    e.stop()


@pytest.mark.parametrize("level", ["debug", "trace"])
def test_no_secret_leaks_anywhere(stack, leak_envoy, emulator, level):
    if not emulator.fields:
        pytest.skip("needs the emulator's --second-run-fields (scim_groups vocabulary)")
    _set_wasm_log_level(leak_envoy, level)
    emulator.clear_requests()
    pw = {k: _pw(k) for k in ("create", "bob", "patch", "patch2", "put", "long", "broken", "invalid", "drupal422", "attacker")}
    call = Recorder(leak_envoy)
    _run_traffic(call, emulator, pw, fields=stack.attributes is not None)
    time.sleep(0.3)  # let Envoy flush the access log

    service_pass = emulator.admin_pass
    basic_cred = emulator.service_auth.split(" ", 1)[1]
    tokens = list(leak_envoy.tokens.values()) + ["wrong-" + pw["attacker"]]
    user_pw = [pw[k] for k in pw if k != "attacker"]
    # Every secret, with how it could show up (plain, Basic-encoded).
    everything = {
        **{f"token#{i}": t for i, t in enumerate(tokens)},
        "attacker password": pw["attacker"],
        "service password": service_pass,
        "service Basic credential": basic_cred,
        **{f"user password {k}": pw[k] for k in pw if k != "attacker"},
    }

    def check(where: str, text: str, secrets_: dict[str, str]) -> None:
        for name, value in secrets_.items():
            assert value not in text, f"{name} found in {where}"

    # 1. SCIM responses: headers and bodies.
    assert len(call.responses) > 25
    for method, path, r in call.responses:
        blob = json.dumps(dict(r.headers)) + "\n" + r.text
        check(f"the SCIM response to {method} {path} ({r.status_code})", blob, everything)

    # 2. Drupal's request log (the gateway's requests only).
    sent = [r for r in emulator.requests_log() if harness.DIRECT_MARKER not in {k.lower() for k in (r.get("headers") or {})}]
    assert sent, "the gateway sent nothing to Drupal"
    saw_pass = set()
    for r in sent:
        headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
        where = f"Drupal request {r['method']} {r['path']}"
        assert headers.get("authorization") == emulator.service_auth, f"{where}: Authorization {headers.get('authorization')!r}"
        others = {k: v for k, v in headers.items() if k != "authorization"}
        check(f"{where} (path)", unquote(r["path"]) + r["path"], everything)
        check(f"{where} (headers)", json.dumps(others), everything)
        body = r.get("body") or ""
        check(f"{where} (body)", body, {k: v for k, v in everything.items() if not k.startswith("user password")})
        if any(p in body for p in user_pw):
            assert r["method"] in ("POST", "PATCH") and USER_PATH.match(r["path"].split("?")[0]), f"a user password in {where}"
            values, rest = _pass_values(body)
            saw_pass.update(values)
            check(f"{where} (body outside `pass`)", rest, everything)
    # Drupal did get the passwords that were valid (create, each change), only those.
    assert {pw["create"], pw["bob"], pw["patch"], pw["patch2"], pw["put"]} <= saw_pass, "a password never reached Drupal"
    assert not saw_pass & {pw["long"] * 40, pw["broken"], pw["invalid"]}

    # 3. Envoy's log: Envoy's own lines, the access log, the wasm lines.
    log = leak_envoy.log_text()
    assert "scim request_id=" in log, "no request log lines: is the wasm log captured?"
    if level == "trace":
        assert "[trace][wasm]" in log, "trace level did not take effect"
    check(f"Envoy's log (wasm at {level})", log, everything)

    # 4. Admin interface.
    admin = f"http://127.0.0.1:{leak_envoy.admin_port}"
    for path in ("/stats", "/stats/prometheus", "/config_dump", "/config_dump?include_eds", "/clusters", "/server_info", "/listeners"):
        text = requests.get(admin + path, timeout=10).text
        check(f"admin {path}", text, everything)
    dump = requests.get(admin + "/config_dump", timeout=10).text
    # The plugin configuration is there, with the digests of the tokens (not the tokens).
    for t in leak_envoy.tokens.values():
        assert harness.sha256_hex(t) in dump
    assert "DRUPAL_PASSWORD" in dump  # the name of the variable, never its value


def test_debug_level_logs_drupal_calls(leak_envoy, emulator, seed_user):
    """docs/operations.md (Logs): at `debug` each Drupal call and its answer are logged (method, path
    without query, status, ms). The leak test above is only meaningful if those lines exist."""
    jane = seed_user("debuglog@example.com", mail="debuglog@example.com")
    _set_wasm_log_level(leak_envoy, "debug")
    r = leak_envoy.scim("GET", f"/Users/{jane['uuid']}")
    assert r.status_code == 200, r.text
    r = leak_envoy.scim("GET", "/Users", params={"filter": 'userName eq "debuglog@example.com"'})
    assert r.status_code == 200, r.text
    time.sleep(0.3)
    lines = [line for line in leak_envoy.log_text().splitlines() if "[debug][wasm]" in line and "wasm log" in line]
    assert any("drupal call" in line and f"/jsonapi/user/user/{jane['uuid']}" in line for line in lines), (
        "no debug line for the Drupal call: the filter caps its log level below debug "
        "(proxy_wasm::set_log_level(LogLevel::Info) in src/host/mod.rs)"
    )
    assert any("drupal answer 200" in line for line in lines)
    # The query string (the filter, an e-mail address) is not logged.
    assert not any("debuglog@example.com" in line for line in lines)
