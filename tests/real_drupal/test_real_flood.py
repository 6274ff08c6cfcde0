"""A wrong service password on a real Drupal (shared/research/real-drupal-faults.md §1, §2):
how many rows it leaves in Drupal's `flood` table, and that the gateway recovers by itself
once the password is fixed in Drupal, without a cache rebuild (Dynamic Page Cache on).

Two more gateways run beside the session's, each with a service account of its own (role
scim_gateway) but the wrong password, and each calling Drupal from a loopback address of its
own, so their failed logins are told apart in the flood table (Drupal counts them per client
IP) and never lock out the tests' own 127.0.0.1:
- `rows`: IdP-like traffic for 60 s with the wrong password;
- `heal`: the same for 15 s, then uid 1 sets the account's password in Drupal to the one the
  gateway has, and SCIM is polled until it answers.
The scenario runs in a background thread from the session's start (conftest.py)."""

from __future__ import annotations

import concurrent.futures
import secrets
import time
from pathlib import Path

import pytest

import realdrupal as rd
from harness import jumpcloud_user

FIGURES: dict[str, str] = {}
WRONG_FOR_S = 60
FIX_AFTER_S = 15
SOURCE_IP = {"basic": ("127.0.0.11", "127.0.0.12"), "session": ("127.0.0.21", "127.0.0.22")}


def is_service_refusal(r) -> bool:
    try:
        return r.status_code == 502 and "service account" in r.json().get("detail", "")
    except ValueError:
        return False


def _traffic(gw, bob: dict, until: float, tag: str) -> list:
    answers = []
    n = 0
    while time.monotonic() < until:
        for path in (f'/Users?filter=userName eq "{bob["name"]}"', "/Users", "/Groups", f"/Users/{bob['id']}"):
            answers.append(gw.scim("GET", path, timeout=60))
        n += 1
        answers.append(gw.scim("POST", "/Users", json=jumpcloud_user(f"flood.{tag}.{n}@example.com"), timeout=60))
        time.sleep(0.5)
    return answers


def _run(site: rd.Site, auth: str, workdir: Path, role: str, ip: str, bob: dict, fix: bool) -> dict:
    password = secrets.token_urlsafe(18)
    wrong = "wrong-" + secrets.token_urlsafe(12)
    name = f"flood-{role}-{auth}-{secrets.token_hex(3)}"
    account = site.create_user(name, f"{name}@example.com", roles=["scim_gateway"], password=password)
    out: dict = {"account": account["id"], "password": wrong}
    t0_epoch = int(time.time()) - 1
    gw = rd.gateway(site, workdir / role, rd.new_tokens(), auth, name=role, username=name, password=wrong,
                    source_ip=ip, concurrency=1)
    try:
        started = time.monotonic()
        out["answers"] = _traffic(gw, bob, started + (FIX_AFTER_S if fix else WRONG_FOR_S), role)
        out["rows"] = [r for r in site.flood(ip) if int(r[2]) >= t0_epoch]
        out["wrong_for_s"] = time.monotonic() - started
        if fix:
            site.set_password(account["id"], wrong)
            fixed = time.monotonic()
            r = None
            while time.monotonic() < fixed + 240:
                r = gw.scim("GET", "/Users", params={"filter": f'userName eq "{bob["name"]}"'}, timeout=60)
                if r.status_code == 200:
                    break
                out.setdefault("while_waiting", []).append(r)
                time.sleep(1)
            out["recovered"] = r
            out["recovered_after_fix_s"] = time.monotonic() - fixed
            out["recovered_after_start_s"] = time.monotonic() - started
            out["groups"] = gw.scim("GET", "/Groups", timeout=60)
            out["by_id"] = gw.scim("GET", f"/Users/{bob['id']}", timeout=60)
            out["rows_total"] = [r for r in site.flood(ip) if int(r[2]) >= t0_epoch]
        out["log"] = gw.log_text()
    finally:
        gw.stop()
    return out


def scenario(site: rd.Site, auth: str, workdir: Path) -> dict:
    """Both runs at once; returns what the test checks. Cleans up its accounts and its IPs'
    flood rows."""
    r = site.jsonapi("GET", "/jsonapi/user/user?page[limit]=1")
    dpc = r.headers.get("X-Drupal-Dynamic-Cache")
    bob_name = f"flood.bob.{auth}.{secrets.token_hex(3)}@example.com"
    bob = site.create_user(bob_name, bob_name)
    ips = SOURCE_IP[auth]
    rows = heal = None
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            rows = pool.submit(_run, site, auth, workdir, "rows", ips[0], bob, False)
            heal = pool.submit(_run, site, auth, workdir, "heal", ips[1], bob, True)
            return {"dpc": dpc, "bob": bob, "rows": rows.result(), "heal": heal.result()}
    finally:
        for f in (rows, heal):
            if f is not None and f.done() and not f.exception():
                site.delete_user(f.result()["account"])
        site.delete_user(bob["id"])
        for ip in ips:
            site.sql(f"DELETE FROM flood WHERE identifier = '{ip}' OR identifier LIKE '%-{ip}'")


@pytest.mark.flood
def test_a_wrong_password_leaves_few_flood_rows_and_heals_without_a_cache_rebuild(flood_result, site, auth):
    res = flood_result
    assert res["dpc"] in ("MISS", "HIT"), f"Dynamic Page Cache is not on: X-Drupal-Dynamic-Cache={res['dpc']!r}"
    for run in ("rows", "heal"):
        r = res[run]
        wrong = [(a.status_code, a.text[:200]) for a in r["answers"] if not is_service_refusal(a)]
        assert not wrong, (run, wrong[:5])
        assert "next attempt in 60 s" in r["log"], run
        assert r["password"] not in r["log"], "the password is never logged"
        assert r["rows"], f"{run}: the wrong password never reached Drupal (no flood row for its IP)"
    rows, heal = res["rows"], res["heal"]
    # At most one failed login per back-off step: the first and the retry at 60 s, each an
    # IP row and a user row (442 rows a minute before the back-off).
    assert len(rows["rows"]) <= 5, rows["rows"]
    # Fixed in Drupal: the gateway recovers when its back-off ends, by itself, and the name it
    # looked up while refused (whose 403 Drupal may have cached) is found.
    assert heal["recovered"].status_code == 200, heal["recovered"].text
    assert [u["id"] for u in heal["recovered"].json()["Resources"]] == [res["bob"]["id"]]
    assert heal["groups"].status_code == 200 and heal["by_id"].status_code == 200
    assert all(is_service_refusal(a) for a in heal.get("while_waiting", [])), "only the refusal while backing off"
    FIGURES[auth] = (
        f"{site.version} {site.db} ({auth}): {len(rows['rows'])} flood rows in {rows['wrong_for_s']:.0f} s of a wrong password "
        f"({len(rows['answers'])} SCIM requests, all 502); fixed after {heal['wrong_for_s']:.0f} s, recovered "
        f"{heal['recovered_after_fix_s']:.0f} s after the fix ({heal['recovered_after_start_s']:.0f} s after start, "
        f"{len(heal['rows_total'])} flood rows), no cache rebuild; Dynamic Page Cache {res['dpc']}"
    )
    print("\n" + FIGURES[auth])
