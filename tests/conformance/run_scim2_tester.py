#!/usr/bin/env python3
"""Run the third-party SCIM compliance suite scim2-tester 0.5.2 against the gateway.

Starts the Drupal emulator and Envoy with the filter (the e2e harness), runs
`check_server` over every tag, prints each non-SUCCESS result with its reason, then a line
`scim2-tester: N passed, N failed, N skipped`. Exits non-zero when fewer than FLOOR checks
passed (fewer checks run when fewer attributes are advertised, so '0 failed' alone proves
nothing) or when the suite could not run.

    .venv/bin/python tests/conformance/run_scim2_tester.py [--url URL --token TOKEN]

With --url/--token it checks an already running gateway instead of starting one.
Environment: E2E_NO_BUILD=1 skips `cargo build`; E2E_KEEP=1 keeps the logs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Minimum number of SUCCESS results. Raise it as the gateway improves; never lower it
# without a reason recorded in the commit. 64 = every discovery check (25) and every User
# check (39) with scripts/emulator-attributes.json, except `remove emails` and `remove active`
# (Drupal cannot clear an account's mail or status). It needs the emulator's user fields:
# without them the gateway runs the core mapping only and passes about 36.
FLOOR = 83

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))


def run_checks(url: str, token: str) -> list:
    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import check_server

    client = SyncSCIMClient(
        Client(base_url=url, headers={"Authorization": "Bearer " + token}, trust_env=False, timeout=30)
    )
    return check_server(client)


def report(results) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for r in results:
        name = r.status.name
        if name == "SUCCESS":
            passed += 1
            continue
        if name == "SKIPPED":
            skipped += 1
        else:
            failed += 1
        where = f" [{r.resource_type}]" if getattr(r, "resource_type", None) else ""
        print(f"{name:8} {r.title}{where}")
        if r.reason:
            for line in str(r.reason).splitlines():
                print(f"         {line}")
    return passed, failed, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="SCIM base URL of a running gateway (default: start one)")
    ap.add_argument("--token", help="bearer token for --url")
    ap.add_argument("--floor", type=int, default=FLOOR)
    args = ap.parse_args(argv)

    stack = None
    if args.url:
        if not args.token:
            ap.error("--token is required with --url")
        url, token = args.url, args.token
    else:
        import harness

        harness.ensure_built()
        stack = harness.Stack(timeout_ms=5000)
        stack.start()
        # Users (with the attribute mapping) and Groups (taxonomy terms), as scripts/run serves them.
        gw = stack.new_envoy(plugin_overrides={"groups": {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}})
        url, token = gw.base_url, stack.tokens["primary"]

    t0 = time.monotonic()
    try:
        print(f"scim2-tester 0.5.2 against {url}")
        try:
            results = run_checks(url, token)
        except Exception as e:  # discovery failures raise inside the client
            print(f"scim2-tester could not run: {type(e).__name__}: {e}")
            results = []
        passed, failed, skipped = report(results)
    finally:
        if stack is not None:
            stack.stop()

    print(f"({len(results)} results in {time.monotonic() - t0:.1f}s; floor {args.floor})")
    print(f"scim2-tester: {passed} passed, {failed} failed, {skipped} skipped")
    if not results:
        return 1
    if passed < args.floor:
        print(f"FAIL: {passed} passed is below the floor of {args.floor}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
