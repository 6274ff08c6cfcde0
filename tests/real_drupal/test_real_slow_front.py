"""A slow, small or keep-alive-closing Drupal gives no false failures (issue 18, item 12).

The site is reached through `slow_front.SlowFront`: 5 workers, every write held 0.3 s longer,
idle connections closed after 5 s (Apache's default). The gateway runs with the shipped
`drupal.timeout_ms` (5000) and the default `groups.concurrency`.
- JumpCloud adds 20 members in one PATCH: 204, and every member is in Drupal.
- Requests spread over gaps longer than the front's keep-alive: none is answered
  `503 Drupal is unreachable` (Envoy closes idle upstream connections first, at 3 s)."""

from __future__ import annotations

import time

import pytest

import realdrupal as rd
from harness import jumpcloud_user
from idp_requests import group_body, patch_group
from slow_front import SlowFront

GROUPS = {"vocabulary": rd.VOCABULARY, "membership_field": rd.MEMBERSHIP_FIELD}


@pytest.fixture(scope="module")
def front(site):
    f = SlowFront(site.url, workers=5, write_delay=0.3, keep_alive=5.0).start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def slow_gw(site, auth, workdir, tokens, front):
    class Fronted:
        url = front.url
        service_user, service_pass, slow = site.service_user, site.service_pass, site.slow

    gw = rd.gateway(Fronted, workdir / "slow-front", tokens, auth, name="slow-front",  # type: ignore[arg-type]
                    **{"drupal.timeout_ms": 5000, "groups": GROUPS})
    try:
        rd.wait_ready(gw, timeout=120)
        yield gw
    finally:
        gw.stop()


def test_twenty_member_adds_in_one_patch_on_a_slow_small_pool(slow_gw, site, uniq, cleanup):
    users = [cleanup.user(site.create_user(f"slow{i}.{uniq}@example.com")["id"]) for i in range(20)]
    r = slow_gw.scim("POST", "/Groups", json=group_body(f"Slow pool {uniq}"), timeout=60)
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    # JumpCloud's batch: all the adds in one operation.
    r = patch_group(lambda m, p, **kw: slow_gw.scim(m, p, timeout=120, **kw), gid,
                    {"op": "add", "path": "members", "value": [{"value": u} for u in users]}, expect=None)
    assert r.status_code == 204, f"{r.status_code} {r.text[:500]}"
    assert site.members(gid) == set(users)
    got = slow_gw.scim("GET", f"/Groups/{gid}", timeout=60).json()
    assert {m["value"] for m in got["members"]} == set(users)


@pytest.mark.db("sqlite")  # 24 s of waiting: once per mode is enough
def test_requests_spread_over_the_fronts_keep_alive_are_never_unreachable(slow_gw, front, uniq, cleanup):
    r = slow_gw.scim("POST", "/Users", json=jumpcloud_user(f"keepalive.{uniq}@example.com"), timeout=60)
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    answers = []
    for i, (method, path, body) in enumerate([
        ("GET", f"/Users/{uid}", None),
        ("PATCH", f"/Users/{uid}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                    "Operations": [{"op": "replace", "path": "active", "value": False}]}),
        ("GET", "/Users", None),
        ("PATCH", f"/Users/{uid}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                    "Operations": [{"op": "replace", "path": "active", "value": True}]}),
    ]):
        time.sleep(6)  # longer than the front keeps an idle connection
        r = slow_gw.scim(method, path, json=body, timeout=60)
        answers.append((method, r.status_code, r.text[:200]))
    assert [a[1] for a in answers] == [200, 200, 200, 200], answers
