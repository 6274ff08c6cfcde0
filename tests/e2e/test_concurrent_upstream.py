"""Safety rules that must hold with several requests in flight (issue 18, items 10 and 11):

- When Drupal starts refusing the service account, every request in flight meets the refusal
  at once. They make one back-off step (1 min), not one each (the 6 h step at once), and at
  most one check of the credentials, so the account stays within Drupal's flood control.
- An IdP deletes and creates users while it pages: a list page whose list changes between
  the gateway's rounds of reads still answers, with the total the list has by then.

Each test runs its own emulator and Envoy (flood rows and request counts are theirs alone)."""

from __future__ import annotations

import concurrent.futures
import re

import pytest
import requests

import harness
from harness import Emulator, Envoy

pytestmark = pytest.mark.no_leak_check

LOOKUP = '/Users?filter=userName eq "bob@example.com"'
LOGIN = "/user/login?_format=json"


def gateway_calls(emulator: Emulator) -> list[dict]:
    """What the gateway sent to Drupal (not the tests' own direct or control calls)."""
    out = []
    for r in emulator.requests_log():
        headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
        if harness.DIRECT_MARKER in headers or r.get("path", "").startswith("/_emulator"):
            continue
        out.append({**r, "headers": headers})
    return out


def flood(emulator: Emulator) -> dict:
    r = emulator.http.get(emulator.url + "/_emulator/flood", timeout=10)
    r.raise_for_status()
    return r.json()


def in_parallel(gw: Envoy, paths: list[str]) -> list[requests.Response]:
    """All at once, each on its own connection."""
    auth = {"Authorization": "Bearer " + gw.tokens["primary"]}
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda p: requests.get(gw.base_url + p, headers=auth, timeout=20), paths))


def is_service_refusal(r: requests.Response) -> bool:
    return r.status_code == 502 and "service account" in r.json().get("detail", "")


@pytest.fixture
def own(tmp_path):
    """own(mode, **plugin overrides) -> (emulator, envoy), both stopped at the end."""
    started = []

    def make(mode: str, **overrides):
        here = tmp_path / f"{mode}-{len(started)}"
        here.mkdir()
        emulator = Emulator(here, fields=False).start()
        started.append(emulator)
        emulator.seed_user("bob@example.com", mail="bob@example.com")
        gw = Envoy(here, emulator, {"primary": f"p-{mode}-{len(started)}"},
                   plugin_overrides={"drupal.auth": mode, "attributes": [], **overrides},
                   name=f"gw-{mode}", concurrency=2)
        started.append(gw)
        gw.start()
        return emulator, gw

    yield make
    for p in reversed(started):
        p.stop()


@pytest.mark.parametrize("mode", ["basic", "session"])
@pytest.mark.parametrize("in_flight", [2, 4])
def test_requests_in_flight_when_drupal_starts_refusing_make_one_back_off_step(own, mode, in_flight):
    emulator, gw = own(mode)
    bob = emulator.drupal_user_by_name("bob@example.com")
    # Drupal accepts the account: basic mode has checked it once, session mode logged in.
    assert gw.scim("GET", LOOKUP).status_code == 200
    # The password changes in Drupal (sessions end with it); the gateway keeps the old one.
    emulator.seed_user(emulator.admin_user, password="changed-" + emulator.admin_pass)
    emulator.http.delete(emulator.url + "/_emulator/sessions", timeout=10).raise_for_status()
    emulator.http.delete(emulator.url + "/_emulator/flood", timeout=10).raise_for_status()
    emulator.clear_requests()
    # Slow answers: every request is at Drupal before the first refusal comes back. Half
    # are lookups (a refused guard), half reads of one user (an anonymous-looking answer
    # that needs a check).
    emulator.settings(latency_ms=400)
    paths = [LOOKUP if i % 2 == 0 else f"/Users/{bob['id']}" for i in range(in_flight)]
    answers = in_parallel(gw, paths)
    assert all(is_service_refusal(r) for r in answers), [(r.status_code, r.text[:200]) for r in answers]
    # During the back-off nothing reaches Drupal.
    sent = len(gateway_calls(emulator))
    answers = in_parallel(gw, paths)
    assert all(is_service_refusal(r) for r in answers)
    calls = gateway_calls(emulator)
    assert len(calls) == sent, [c["path"][:80] for c in calls[sent:]]
    rows = flood(emulator)
    log = gw.log_text()
    logins = [c for c in calls if c["path"] == LOGIN]
    print(f"\n{mode}, {in_flight} in flight: Drupal calls {len(calls)} (logins {len(logins)}); "
          f"flood {rows['events']}")
    assert log.count("next attempt in 60 s") == 1, log[-3000:]
    assert "refusal 2" not in log and "next attempt in 300 s" not in log
    if mode == "basic":
        # The calls in flight carried the old password (one failed login each, sent before any
        # refusal was known), plus at most one check.
        assert len(calls) <= in_flight + 1, [c["path"][:80] for c in calls]
        assert rows["events"]["basic_auth.failed_login_user"] <= in_flight + 1
    else:
        # The calls in flight carried the dead session (anonymous, no failed login); one login.
        assert len(logins) == 1
        assert rows["events"]["user.failed_login_ip"] <= 1, rows


@pytest.mark.parametrize("change", ["delete", "create"])
def test_a_list_that_changes_between_rounds_answers_its_new_total(own, change):
    """101 users, startIndex=51&count=50: the first page says more follow; then one user is
    deleted (or 60 are created) before the gateway's probes count the rest."""
    emulator, gw = own("basic")
    base = gw.scim("GET", "/Users?count=1").json()["totalResults"]
    emulator.seed_users([{"name": f"u{i:04}@example.com", "mail": f"u{i:04}@example.com"} for i in range(101 - base)])
    before = gw.scim("GET", "/Users?count=1").json()["totalResults"]
    assert before == 101
    # A JSON:API DELETE then deletes the account (core's default only blocks it).
    emulator.settings(cancel_method="user_cancel_reassign")
    emulator.clear_requests()
    # The first page of the window is answered late, after Drupal has read it.
    emulator.fault(delay_ms=1500, count=1, path_prefix="/jsonapi/user/user", method="GET")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        page = pool.submit(gw.scim, "GET", "/Users?startIndex=51&count=50")
        harness._wait(lambda: gateway_calls(emulator), 10, "the first page")
        if change == "delete":
            victim = emulator.drupal_user_by_name("u0000@example.com")
            r = emulator.jsonapi("DELETE", f"/jsonapi/user/user/{victim['id']}")
            assert r.status_code == 204, r.text
            after = before - 1
        else:
            emulator.seed_users([{"name": f"new{i}@example.com"} for i in range(60)])
            after = before + 60
        r = page.result(timeout=30)
    calls = gateway_calls(emulator)
    first = calls[0]["path"]
    assert "page%5Boffset%5D=50" in first or "page[offset]=50" in first, first
    print(f"\n{change}: {before} -> {after} users between rounds: {len(calls)} Drupal reads")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalResults"] == after
    assert body["startIndex"] == 51 and len(body["Resources"]) == 50
    assert len(calls) <= 12, [c["path"][:100] for c in calls]
    # Stable again: the same page, exact, and the next one reaches the end.
    assert gw.scim("GET", "/Users?startIndex=51&count=50").json()["totalResults"] == after
    last = gw.scim("GET", f"/Users?startIndex={after - 9}&count=50").json()
    assert (last["totalResults"], len(last["Resources"])) == (after, 10)


def test_the_workers_share_one_cache_epoch(own):
    """Every user list names its auth guard after the cache epoch; one epoch per Envoy (not per
    worker) keeps Drupal's page cache to one entry per list URL."""
    emulator, gw = own("basic")
    emulator.clear_requests()
    for _ in range(3):
        answers = in_parallel(gw, [LOOKUP] * 8)
        assert all(r.status_code == 200 for r in answers)
    epochs = {m for c in gateway_calls(emulator) for m in re.findall(r"scim_auth_(\d+)", c["path"])}
    assert len(epochs) == 1, epochs
