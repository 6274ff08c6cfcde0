"""Nobody outside can take provisioning down (issue 18 item 1), on a real Drupal, through the
shipped envoy.yaml's public routes.

The site was brought up by `scripts/real-drupal up`, whose `scripts/drupal-setup --reverse-proxy
127.0.0.1` wrote Drupal's reverse-proxy settings (docs/security.md) into settings.php: Drupal
trusts Envoy (127.0.0.1) for X-Forwarded-For. Strangers connect to Envoy from loopback
addresses of their own (127.0.0.31 …), as visitors would from theirs; the gateway's calls come
from 127.0.0.1 and carry no X-Forwarded-For.

- Default config (the public side closed): Basic and JSON logins naming the service account,
  and Basic logins for other names, are refused by Envoy; Drupal's flood table gains nothing.
- Site opened (`--public-jsonapi on`, decoupled sites): the same failures reach Drupal and are
  counted against each stranger's own address, never Envoy's, even when the stranger claims
  Envoy's address in X-Forwarded-For; a named public user is locked out only from the
  stranger's address.
In both, a gateway started afterwards (so it logs in, or verifies its password, afresh) serves
the IdP's next requests, a create included.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import time

import pytest

import realdrupal as rd
from harness import jumpcloud_user

# Not the addresses test_real_flood.py's gateways call Drupal from (127.0.0.11 … 22).
STRANGERS = ("127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34", "127.0.0.35", "127.0.0.36")
FIGURES: list[str] = []


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def public(gw, method: str, target: str, headers: dict | None = None, body: bytes = b"", source: str = STRANGERS[0],
           timeout: float = 120) -> tuple[int, bytes]:
    """A request on the public side of the gateway's listener, from `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout, source_address=(source, 0))
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        h = {"Connection": "close", **(headers or {})}
        if body or method in ("POST", "PUT", "PATCH"):
            h["Content-Length"] = str(len(body))
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def basic_login(gw, name: str, password: str, source: str, xff: str | None = None) -> int:
    """The issue's `curl -u NAME:PASS LISTEN/jsonapi/user/user`."""
    h = {"Authorization": basic(name, password), "Accept": "application/vnd.api+json"}
    if xff:
        h["X-Forwarded-For"] = xff
    return public(gw, "GET", "/jsonapi/user/user?page[limit]=1", h, source=source)[0]


def authenticated(gw, name: str, password: str, source: str) -> bool:
    """Whether Drupal took these Basic credentials (a refused login is served as anonymous:
    JSON:API's entry point then has no `me` link)."""
    status, body = public(gw, "GET", "/jsonapi", {"Authorization": basic(name, password)}, source=source)
    return status == 200 and "me" in json.loads(body).get("meta", {}).get("links", {})


def json_login(gw, name: str, password: str, source: str, xff: str | None = None) -> int:
    h = {"Content-Type": "application/json"}
    if xff:
        h["X-Forwarded-For"] = xff
    return public(gw, "POST", "/user/login?_format=json", h, json.dumps({"name": name, "pass": password}).encode(),
                  source=source)[0]


def rows_since(site: rd.Site, t0: int) -> list[list[str]]:
    return [r for r in site.flood() if int(r[2]) >= t0]


def on_envoys_address(rows: list[list[str]]) -> list[list[str]]:
    return [r for r in rows if r[1] == "127.0.0.1" or r[1].endswith("-127.0.0.1")]


def clear_strangers(site: rd.Site) -> None:
    for ip in STRANGERS:
        site.sql(f"DELETE FROM flood WHERE identifier = '{ip}' OR identifier LIKE '%-{ip}'")


def provisioning_works(new_gateway, name: str, uniq: str, cleanup) -> None:
    """A gateway started now (a fresh login in session mode, a fresh check in basic mode)
    answers the IdP: a lookup, a create, a read."""
    gw = new_gateway(name)
    rd.wait_ready(gw, timeout=180)
    user = f"public.{name}.{uniq}@example.com"
    r = gw.scim("GET", "/Users", params={"filter": f'userName eq "{user}"'}, timeout=120)
    assert r.status_code == 200 and r.json()["totalResults"] == 0, (r.status_code, r.text[:300])
    r = gw.scim("POST", "/Users", json=jumpcloud_user(user), timeout=120)
    assert r.status_code == 201, (r.status_code, r.text[:300])
    cleanup.user(r.json()["id"])
    r = gw.scim("GET", f"/Users/{r.json()['id']}", timeout=120)
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_the_site_trusts_envoy_as_reverse_proxy(site):
    """What scripts/drupal-setup --reverse-proxy wrote is what Drupal runs with."""
    r = site.request("GET", "/jsonapi", headers={"Accept": "application/vnd.api+json"})
    assert r.status_code == 200
    assert site.env.get("DRUPAL_SETUP_REVERSE_PROXY", "") == "127.0.0.1", site.env
    settings = (site.dir / "docroot" / "sites" / "default" / "settings.php")
    if settings.exists():
        text = settings.read_text()
        assert text.count("BEGIN envoy-scim-drupal reverse proxy") == 1
        assert "$settings['reverse_proxy_addresses'] = ['127.0.0.1'];" in text


# On 11.4.5 too (the smoke set): nothing reaches Drupal, whatever its server tells it.
@pytest.mark.smoke
def test_closed_by_default_strangers_logins_never_reach_drupal(gateway, new_gateway, site, uniq, cleanup):
    """The issue's five requests, five JSON logins for the service account, and 50 Basic logins
    for other names, from three strangers: all 403 at the edge, no flood row at all."""
    svc = site.service_user
    t0 = int(time.time()) - 1
    got = []
    for i in range(5):
        got.append(basic_login(gateway, svc, "x", STRANGERS[0]))
        got.append(basic_login(gateway, svc.upper(), "x", STRANGERS[1], xff="127.0.0.1"))
        got.append(json_login(gateway, svc, "wrong", STRANGERS[0]))
        got.append(json_login(gateway, svc, "wrong", STRANGERS[1], xff="127.0.0.1"))
    for i in range(50):
        got.append(basic_login(gateway, f"visitor{i}", "typo", STRANGERS[2]))
    assert set(got) == {403}, sorted(set(got))
    assert rows_since(site, t0) == [], "nothing reached Drupal's login code"
    # The rest of the site is still proxied.
    assert public(gateway, "GET", "/user/login", source=STRANGERS[2])[0] == 200
    provisioning_works(new_gateway, "closed", uniq, cleanup)
    FIGURES.append(f"{site.version} {site.db} closed (default): {len(got)} strangers' logins -> 403 at Envoy, 0 flood rows")


def test_with_the_site_open_strangers_failures_count_against_themselves(new_gateway, site, uniq, cleanup):
    """--public-jsonapi on: the same failures (and more: 7 Basic + 6 JSON per stranger, 55 for
    other names from one stranger, past Drupal's 50 per address) reach Drupal; every flood
    row names a stranger's address, none Envoy's; the IdP's next requests succeed."""
    svc = site.service_user
    opened = new_gateway("opened", public_jsonapi=True)
    rd.wait_ready(opened, timeout=180)
    victim_pass = secrets.token_urlsafe(12)
    victim = site.create_user(f"victim-{uniq}", f"victim-{uniq}@example.com", password=victim_pass)
    cleanup.user(victim["id"])
    t0 = int(time.time()) - 1
    try:
        got: dict[str, list[int]] = {}
        for src, xff in ((STRANGERS[0], None), (STRANGERS[1], "127.0.0.1")):
            got.setdefault("basic svc", []).extend(basic_login(opened, svc, "x", src, xff) for _ in range(7))
            got.setdefault("json svc", []).extend(json_login(opened, svc, "wrong", src, xff) for _ in range(6))
        got["basic others"] = [basic_login(opened, f"visitor{i}", "typo", STRANGERS[2]) for i in range(55)]
        got["json others"] = [json_login(opened, f"visitor{i}", "typo", STRANGERS[3]) for i in range(10)]
        # A named public user: five wrong passwords from one stranger.
        got["basic victim"] = [basic_login(opened, victim["name"], "wrong", STRANGERS[4]) for _ in range(5)]
        rows = rows_since(site, t0)
        assert rows, "the strangers' logins reached Drupal"
        assert on_envoys_address(rows) == [], on_envoys_address(rows)[:10]
        idents = {r[1].rsplit("-", 1)[-1] for r in rows}
        assert idents <= set(STRANGERS), idents
        # Drupal did count them, each against its stranger.
        by_event: dict[str, dict[str, int]] = {}
        for event, ident, _ in rows:
            by_event.setdefault(event, {}).setdefault(ident, 0)
            by_event[event][ident] += 1
        user_rows = by_event.get("basic_auth.failed_login_user", {})
        assert {k.rsplit("-", 1)[1] for k in user_rows} >= {STRANGERS[0], STRANGERS[1], STRANGERS[4]}, by_event
        assert by_event.get("basic_auth.failed_login_ip", {}).get(STRANGERS[2], 0) >= 50, by_event
        json_idents = {k.rsplit("-", 1)[-1] for e, v in by_event.items() if e.startswith("user.") for k in v}
        assert {STRANGERS[0], STRANGERS[1], STRANGERS[3]} <= json_idents, by_event

        # The victim is locked out from the stranger's address only (Drupal keys a user's
        # failures by uid and client address): from another address the right password works.
        assert not authenticated(opened, victim["name"], victim_pass, STRANGERS[4]), "locked out from there"
        assert authenticated(opened, victim["name"], victim_pass, STRANGERS[5]), "not from elsewhere"
        # The service account, named wrongly 26 times, still logs in from the gateway's address.
        assert site.can_log_in(svc, site.service_pass)
        provisioning_works(new_gateway, "after-open", uniq, cleanup)
        FIGURES.append(
            f"{site.version} {site.db} opened: {sum(len(v) for v in got.values())} strangers' failed logins "
            f"({', '.join(f'{k} {len(v)}' for k, v in got.items())}) -> {len(rows)} flood rows, "
            f"0 on Envoy's address; a named public user locked out from the stranger's address only; "
            f"the IdP's next requests 200/201"
        )
    finally:
        clear_strangers(site)


def teardown_module(module):
    for line in FIGURES:
        print("\npublic side: " + line)
