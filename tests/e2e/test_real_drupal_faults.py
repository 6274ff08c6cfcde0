"""What broke only on a real Drupal (shared/research/real-drupal-faults.md), reproduced in the
emulator behind its switches and survived through Envoy:

1. Drupal's Dynamic Page Cache keeps the anonymous 403 of a user list that filters on
   `status` and serves it for that URL to everyone afterwards (`dynamic_page_cache`).
2. A wrong service password: Basic auth failures fill Drupal's flood table (`GET
   /_emulator/flood` counts the rows) until Drupal locks Basic auth out for the whole IP.
3. `hard_delete` without core REST's user resource, or with one that does not accept the
   gateway's authentication (`rest_user_resource`).

Plus the account-safety rules: what an IdP token can no longer do to a Drupal site."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time

import pytest
import requests

import harness
from groups_support import groups_config
from harness import Emulator, Envoy, assert_scim_error, jumpcloud_user, patch_op

pytestmark = pytest.mark.no_leak_check

LOOKUP = '/Users?filter=userName eq "bob@example.com"'


def control(emulator: Emulator, method: str, path: str, **kw) -> requests.Response:
    r = emulator.http.request(method, emulator.url + path, timeout=10, **kw)
    r.raise_for_status()
    return r


def flood_rows(emulator: Emulator) -> dict:
    return control(emulator, "GET", "/_emulator/flood").json()


def poisoned(emulator: Emulator) -> list[str]:
    return control(emulator, "GET", "/_emulator/cache").json()["poisoned"]


def is_service_refusal(r: requests.Response) -> bool:
    return r.status_code == 502 and "service account" in r.json().get("detail", "")


# ---- 1. cached 403s ---------------------------------------------------------------------------


def test_a_session_purged_by_drupal_does_not_leave_lookups_on_a_cached_403(new_envoy, emulator, seed_user):
    """Real Drupal, session mode: the read sent with the dead cookie got the anonymous 403,
    Drupal cached it for the URL, the replay after the new login got the cached 403: every
    lookup of that name stayed 502. The replay now goes out under a new URL."""
    emulator.settings(dynamic_page_cache=True)
    bob = seed_user("bob@example.com", mail="bob@example.com")
    gw = new_envoy(plugin_overrides={"drupal.auth": "session", "groups": groups_config()})
    assert gw.scim("GET", f"/Users/{bob['uuid']}").status_code == 200
    for round_ in range(3):
        # A name not looked up before: Drupal caches the 403 only for a URL it has not
        # answered with the right credentials first.
        name = f"new{round_}@example.com"
        seed_user(name, mail=name)
        control(emulator, "DELETE", "/_emulator/sessions")
        r = gw.scim("GET", f'/Users?filter=userName eq "{name}"')
        assert r.status_code == 200 and r.json()["totalResults"] == 1, (round_, r.text)
        assert gw.scim("GET", "/Groups").status_code == 200
        assert gw.scim("GET", f"/Users/{bob['uuid']}").status_code == 200
    # The fault really happened: Drupal holds 403s for the URLs the dead cookie asked for,
    # and still serves them to the right credentials.
    stale = poisoned(emulator)
    assert stale, "the emulator cached no anonymous 403"
    r = emulator.jsonapi("GET", stale[0])
    assert (r.status_code, r.headers.get("x-drupal-dynamic-cache")) == (403, "HIT")


def _wrong_password(workdir, mode: str, name: str, wrong_for_s: float, fix: bool) -> dict:
    """A gateway started with a wrong password and IdP-like traffic for `wrong_for_s`; then,
    with `fix`, the password is fixed in Drupal and SCIM is polled until it recovers."""
    here = workdir / f"{mode}-{name}"
    here.mkdir()
    emulator = Emulator(here).start()
    gw = None
    try:
        emulator.settings(dynamic_page_cache=True)
        bob = emulator.seed_user("bob@example.com", mail="bob@example.com")
        gw = Envoy(
            here,
            emulator,
            {"primary": f"p-{mode}-{name}"},
            plugin_overrides={"drupal.auth": mode, "drupal.timeout_ms": 1500, "groups": groups_config(),
                              "attributes": harness.ATTRIBUTES if emulator.fields else []},
            drupal_password="fixed-later-" + emulator.admin_pass,
            name=f"gw-{mode}-{name}",
            concurrency=1,
        ).start()
        started = time.monotonic()
        answers: list[requests.Response] = []
        while time.monotonic() - started < wrong_for_s:
            for path in (LOOKUP, "/Users", "/Groups", f"/Users/{bob['uuid']}"):
                answers.append(gw.scim("GET", path))
            answers.append(gw.scim("POST", "/Users", json=jumpcloud_user(f"n{len(answers)}@example.com")))
            time.sleep(0.5)
        out = {
            "rows": flood_rows(emulator),
            "calls": [q for q in emulator.requests_log() if not q["path"].startswith("/_emulator")],
            "answers": answers,
        }
        if fix:
            # An admin fixes the password in Drupal (the gateway keeps the one it has).
            emulator.seed_user(emulator.admin_user, password="fixed-later-" + emulator.admin_pass)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = gw.scim("GET", LOOKUP)
                if r.status_code == 200:
                    break
                assert is_service_refusal(r), r.text
                time.sleep(1)
            out.update(recovered=r, recovered_after=time.monotonic() - started, poisoned=poisoned(emulator),
                       groups=gw.scim("GET", "/Groups").status_code)
        out["log"] = gw.log_text()
        return out
    finally:
        if gw:
            gw.stop()
        emulator.stop()


def test_a_wrong_password_leaves_at_most_5_flood_rows_a_minute_and_heals_itself(tmp_path):
    """Real Drupal, basic mode: 442 flood rows in 60 s with a wrong password (Drupal then
    refuses Basic auth from the gateway's IP for every account). Both modes now back off
    after one refusal (1 min, 5 min, 30 min, 6 h) and answer 502 without calling Drupal
    meanwhile. Per mode: one gateway keeps the wrong password for 60 s (flood rows); another
    has it fixed in Drupal after 15 s and recovers by itself when its back-off ends, without
    a cache rebuild, although Drupal cached the 403 of the one read it refused."""
    runs = [(m, n, s, f) for m in ("basic", "session") for (n, s, f) in (("rows", 60, False), ("heal", 15, True))]
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        results = dict(zip([r[:2] for r in runs], pool.map(lambda r: _wrong_password(tmp_path, *r), runs)))
    for (mode, name), res in results.items():
        wrong = [(r.status_code, r.text[:200]) for r in res["answers"] if not is_service_refusal(r)]
        assert not wrong, (mode, name, wrong[:5])
        assert "next attempt in 60 s" in res["log"], (mode, name)
        assert "fixed-later" not in res["log"], "the password is never logged"
    for mode in ("basic", "session"):
        rows, heal = results[(mode, "rows")], results[(mode, "heal")]
        print(f"\n{mode}: flood rows after 60 s of a wrong password: {rows['rows']}; Drupal calls: "
              f"{len(rows['calls'])}; SCIM answers (all 502): {len(rows['answers'])}; fixed after 15 s, "
              f"recovered {heal['recovered_after']:.0f} s after start")
        assert rows["rows"]["rows"] <= 5, (mode, rows["rows"])
        assert len([c for c in rows["calls"] if not c["path"].startswith("/_emulator")]) <= 2, [c["path"][:100] for c in rows["calls"]]
        assert heal["recovered"].status_code == 200 and heal["recovered"].json()["totalResults"] == 1, (mode, heal["recovered"].text)
        assert heal["groups"] == 200
    # Basic mode asked Drupal with the wrong password once (a guarded read) before backing
    # off: Drupal cached that 403 for its URL, which the gateway never asks again.
    assert results[("basic", "heal")]["poisoned"], "the refused guarded read was cached by the emulator"


# ---- 3. hard_delete ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["basic", "session"])
@pytest.mark.parametrize(
    "resource,fix",
    [("off", "enable core RESTful Web Services"), ("basic_auth", "`cookie`"), ("cookie", "`basic_auth`"), ("basic_auth,cookie", None)],
)
def test_hard_delete_names_what_drupal_lacks_at_start_and_per_request(new_envoy, emulator, seed_user, mode, resource, fix):
    if (mode, resource) in (("basic", "basic_auth"), ("session", "cookie")):
        fix = None  # the resource takes what this mode sends
    emulator.settings(rest_user_resource=resource)
    gw = new_envoy(plugin_overrides={"drupal.auth": mode, "drupal.user_delete": "hard_delete"})
    harness._wait(lambda: "hard_delete" in gw.log_text(), 15, "the start-up REST check")
    doomed = seed_user("doomed@example.com", mail="doomed@example.com")
    r = gw.scim("DELETE", f"/Users/{doomed['uuid']}")
    if fix is None:
        assert r.status_code == 204, r.text
        assert "Drupal's REST user resource accepts the gateway's DELETE" in gw.log_text()
        assert emulator.drupal_user(doomed["uuid"]) is None
        return
    err = assert_scim_error(r, 502)
    assert fix in err["detail"] and "rest.resource.entity.user.yml" in err["detail"], err["detail"]
    assert "service account" not in err["detail"]
    assert emulator.drupal_user(doomed["uuid"])["name"] == "doomed@example.com", "the user is kept"
    assert "hard_delete will fail: " in gw.log_text() and fix in gw.log_text()
    # Drupal's anonymous account is never touched by the start-up check.
    assert emulator.drupal_user(emulator.anonymous_uuid()) is not None


# ---- 4. account safety -------------------------------------------------------------------------


def test_an_idp_token_cannot_take_over_the_site(scim, emulator, seed_user, drupal_writes, new_envoy):
    """uid 1 (here also the gateway's service account) and accounts holding roles the
    gateway does not manage are listed but read-only: no block, rename, new address, new
    password, delete or group change, and nothing reaches Drupal."""
    admin = emulator.drupal_user_by_name(emulator.admin_user)
    boss = seed_user("boss@example.com", mail="boss@example.com", roles=["administrator"])
    editor = seed_user("editor@example.com", mail="editor@example.com", roles=["content_editor"])
    targets = {"uid 1": admin["id"], "`administrator`": boss["uuid"], "`content_editor`": editor["uuid"]}
    writes = [
        ("PATCH", patch_op({"op": "replace", "path": "active", "value": False})),
        ("PATCH", patch_op({"op": "replace", "value": {"userName": "pwned", "emails": [{"value": "x@evil.example"}]}})),
        ("PATCH", patch_op({"op": "replace", "path": "password", "value": "Attacker-1!"})),
        ("PUT", jumpcloud_user("pwned@evil.example")),
        ("DELETE", None),
    ]
    for why, uuid in targets.items():
        assert scim("GET", f"/Users/{uuid}").status_code == 200, "still readable"
        for method, body in writes:
            err = assert_scim_error(scim(method, f"/Users/{uuid}", json=body), 403)
            assert why in err["detail"], (method, err["detail"])
    assert drupal_writes() == [], "nothing reached Drupal"
    assert emulator.drupal_user(admin["id"])["status"] is True
    # What the site allows is configurable: content editors may be managed by SCIM.
    gw = new_envoy(plugin_overrides={"allowed_roles": ["content_editor"]})
    r = gw.scim("PATCH", f"/Users/{editor['uuid']}", json=writes[0][1])
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert_scim_error(gw.scim("PATCH", f"/Users/{boss['uuid']}", json=writes[0][1]), 403)


def test_the_published_example_token_is_refused_at_start(new_envoy):
    gw = new_envoy(tokens={"default": "change-me"}, start=False)
    rc, out = gw.validate()
    assert rc != 0
    assert "tokens[0].sha256" in out and "change-me" in out, out[-2000:]
    assert hashlib.sha256(b"change-me").hexdigest() not in out


@pytest.mark.parametrize("host", ["a@evil.example", "evil.example:80@x", "x%2fy"])
def test_without_public_url_an_odd_host_never_reaches_a_location(gateway, host):
    status, _, body = gateway.raw(
        "GET", "/scim/v2/Users?count=1", headers={"Host": host, "Authorization": "Bearer " + gateway.tokens["primary"]}
    )
    assert status == 400, body
    assert b"public_url" in body and host.encode() not in body
