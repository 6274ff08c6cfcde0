#!/usr/bin/env python3
"""Measures one large membership change through Envoy (not a pytest module).

Starts the Drupal emulator and Envoy with `groups` enabled (the gateway's default concurrency unless
--concurrency), seeds N users (default 500), creates an empty group, sets the emulator's
latency to --latency-ms per Drupal call (default 20), then sends ONE PATCH adding all N
members and prints the wall time and the Drupal calls it made (from the emulator's request
log, by kind). Also times reading the group back and removing everyone.

    E2E_NO_BUILD=1 .venv/bin/python tests/e2e/groups_bench.py [--users 500] [--latency-ms 20]

With --lifecycle it measures instead a group of N members (default 1000) read, replaced by N
other members (PUT) and deleted, against the emulator's cost model (--cost-model, default
drupal) with the upstream auth of --auth (default session), `drupal.timeout_ms` 5000 and the
stream timeout of the shipped envoy.yaml, and says whether each fits in that timeout:

    E2E_NO_BUILD=1 .venv/bin/python tests/e2e/groups_bench.py --lifecycle [--users 1000] [--auth basic]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from groups_support import (  # noqa: E402
    CORE_GROUP,
    create_group,
    drupal_members,
    drupal_term,
    gateway_log,
    groups_config,
    seed_group,
    seed_members,
)


def kind(req: dict) -> str:
    path = req["path"]
    base = path.split("?")[0]
    if base.endswith("/relationships/field_scim_groups"):
        return f"{req['method']} membership delta"
    if base.endswith("/relationships/roles"):
        return f"{req['method']} roles"
    if req["method"] == "GET" and base.startswith("/jsonapi/user/user/"):
        return "GET user (one user's confirming read, or a wait)"
    if req["method"] == "GET" and base == "/jsonapi/user/user":
        if "include=" in path and "scim_ids" in path:
            return "GET confirming read (memberships of up to 50 users)"
        if "scim_member" in path:
            return "GET member page (users referencing the term)"
        if "scim_ids" in path:
            return "GET user list by ids (existence check)"
        if "scim_probe" in path:
            return "GET mapping check (Envoy start-up)"
        if "include=" in path:
            return "GET user page (SCIM list)"
        return "GET user list (other)"
    if "/taxonomy_term/" in base:
        return f"{req['method']} term"
    return f"{req['method']} {base}"


def measure(label: str, emulator, fn) -> float:
    emulator.clear_requests()
    t0 = time.monotonic()
    status = fn()
    dt = time.monotonic() - t0
    log = gateway_log(emulator)
    counts = collections.Counter(kind(q) for q in log)
    print(f"{label}: HTTP {status}, {dt:.2f} s wall, {len(log)} Drupal calls")
    for k, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"    {n:5d}  {k}")
    return dt


def stream_timeout_s() -> float:
    """The shipped envoy.yaml's stream_idle_timeout (the filter's side calls do not reset it,
    so it bounds a whole SCIM request)."""
    import yaml

    cfg = yaml.safe_load((harness.REPO_ROOT / "envoy.yaml").read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return float(hcm["stream_idle_timeout"].rstrip("s"))


def lifecycle(args) -> int:
    """A group of N members read, replaced by N others, and deleted, in the cost model."""
    harness.ensure_built()
    stack = harness.Stack(timeout_ms=5000)
    stack.start()
    limit = stream_timeout_s()
    try:
        cfg = groups_config()
        cfg.pop("concurrency")
        if args.concurrency:
            cfg["concurrency"] = args.concurrency
        gw = stack.new_envoy(plugin_overrides={"groups": cfg, "drupal.auth": args.auth})
        em = stack.emulator
        n = args.users
        gid, first = seed_group(em, "Lifecycle", n, "first")
        second = seed_members(em, "second", n)
        time.sleep(3)  # the start-up mapping checks (not counted)
        em.settings(cost_model=args.cost_model, latency_ms=args.latency_ms)
        print(
            f"group of {n} members; emulator cost model {args.cost_model}, latency {args.latency_ms} ms, "
            f"upstream auth {args.auth}, drupal.timeout_ms 5000, groups.concurrency "
            f"{cfg.get('concurrency', '4 (default)')}, Envoy --concurrency {gw.concurrency}, "
            f"stream timeout {limit:.0f} s"
        )
        # A first call logs in (session mode): not counted.
        gw.scim("GET", f"/Groups/{gid}", params={"excludedAttributes": "members"}, timeout=60)
        results = []

        def read():
            r = gw.scim("GET", f"/Groups/{gid}", timeout=600)
            return f"{r.status_code} ({len(r.json().get('members', []))} members)"

        results.append(("GET", measure(f"GET /Groups/{{id}} ({n} members)", em, read)))

        def replace():
            body = {"schemas": [CORE_GROUP], "displayName": "Lifecycle", "members": [{"value": i} for i in second]}
            r = gw.scim("PUT", f"/Groups/{gid}", json=body, timeout=600)
            return f"{r.status_code} ({len(r.json().get('members', []))} members){'' if r.ok else ' ' + r.text[:300]}"

        results.append(("PUT", measure(f"PUT /Groups/{{id}} ({n} other members)", em, replace)))
        em.settings(cost_model="none", latency_ms=0)
        assert drupal_members(em, gid) == set(second), "the PUT left other members"
        em.settings(cost_model=args.cost_model, latency_ms=args.latency_ms)

        def delete():
            r = gw.scim("DELETE", f"/Groups/{gid}", timeout=600)
            return f"{r.status_code}{'' if r.ok else ' ' + r.text[:300]}"

        results.append(("DELETE", measure(f"DELETE /Groups/{{id}} ({n} members)", em, delete)))
        em.settings(cost_model="none", latency_ms=0)
        assert drupal_term(em, gid) is None, "the group is still there"
        worst = max(dt for _, dt in results)
        verdict = "fit" if worst < limit else "DO NOT fit"
        print(f"all three {verdict} in the {limit:.0f} s stream timeout (slowest {worst:.2f} s)")
        return 0 if worst < limit else 1
    finally:
        stack.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=None, help="500 (1000 with --lifecycle)")
    ap.add_argument("--latency-ms", type=int, default=None, help="20 (0 with --lifecycle)")
    ap.add_argument("--concurrency", type=int, default=None, help="groups.concurrency (default: the gateway's, 4)")
    ap.add_argument("--lifecycle", action="store_true", help="read, replace and delete a group of --users members")
    ap.add_argument("--cost-model", default="drupal", choices=["drupal", "none"], help="with --lifecycle")
    ap.add_argument("--auth", default="session", choices=["session", "basic"], help="with --lifecycle")
    args = ap.parse_args()
    if args.lifecycle:
        args.users = args.users or 1000
        args.latency_ms = args.latency_ms or 0
        return lifecycle(args)
    args.users = args.users or 500
    args.latency_ms = 20 if args.latency_ms is None else args.latency_ms

    harness.ensure_built()
    stack = harness.Stack(timeout_ms=10000)
    stack.start()
    try:
        cfg = groups_config()
        cfg.pop("concurrency")
        if args.concurrency:
            cfg["concurrency"] = args.concurrency
        gw = stack.new_envoy(plugin_overrides={"groups": cfg})
        em = stack.emulator
        ids = seed_members(em, "bench", args.users)
        gid = create_group(gw, "Bench")["id"]
        # Each Envoy VM checks the attribute mapping once, on its first tick 2 s after start:
        # let that pass so it is not counted.
        time.sleep(3)
        em.settings(latency_ms=args.latency_ms)
        print(
            f"{args.users} users, emulator latency {args.latency_ms} ms per Drupal call, "
            f"groups.concurrency {cfg.get('concurrency', '4 (default)')}, Envoy --concurrency {gw.concurrency}"
        )
        # The unit of the fan-out figures: one SCIM read that makes exactly one Drupal call.
        one = measure("GET /Users/{id} (one Drupal call)", em, lambda: gw.scim("GET", f"/Users/{ids[0]}", timeout=60).status_code)
        window = measure(
            f"GET /Users?count={args.users}",
            em,
            lambda: gw.scim("GET", "/Users", params={"count": args.users}, timeout=600).status_code,
        )
        print(f"    = {window / one:.1f}x one call")
        body = {"schemas": [harness.PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]}
        added = measure(f"PATCH add {args.users} members", em, lambda: gw.scim("PATCH", f"/Groups/{gid}", json=body, timeout=600).status_code)
        print(f"    = {added / one:.1f}x one call")
        em.settings(latency_ms=0)
        got = drupal_members(em, gid)
        print(f"    Drupal now has {len(got)} of {args.users} members")
        em.settings(latency_ms=args.latency_ms)

        def read():
            r = gw.scim("GET", f"/Groups/{gid}", timeout=600)
            return f"{r.status_code} ({len(r.json().get('members', []))} members)"

        measure("GET the group", em, read)
        measure(
            "GET the group, excludedAttributes=members",
            em,
            lambda: gw.scim("GET", f"/Groups/{gid}", params={"excludedAttributes": "members"}, timeout=60).status_code,
        )
        measure(
            f"PATCH remove all {args.users} members",
            em,
            lambda: gw.scim(
                "PATCH",
                f"/Groups/{gid}",
                json={"schemas": [harness.PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]},
                timeout=600,
            ).status_code,
        )
        em.settings(latency_ms=0)
        print(f"    Drupal now has {len(drupal_members(em, gid))} members")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
