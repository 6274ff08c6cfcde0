#!/usr/bin/env python3
"""Run the third-party SCIM compliance suite scim2-tester 0.5.2 against the gateway.

Starts the Drupal emulator and Envoy with the filter (the e2e harness), runs
`check_server` over every tag, prints each non-SUCCESS result with its reason, then a line
`scim2-tester: N passed, N failed, N skipped`. Exits non-zero when
- any check failed (every status but SUCCESS and SKIPPED counts as failed: 0 failures are
  required, there is no tolerance),
- a check was skipped that EXPECTED_SKIPS does not list with its reason,
- fewer than MIN_CHECKS checks ran (scim2-tester runs fewer checks when the gateway advertises
  fewer attributes or resource types, so "0 failed" alone could be a shrunken suite), or
- the suite could not run.

    .venv/bin/python tests/conformance/run_scim2_tester.py [--url URL --token TOKEN] [--min-checks N]
    .venv/bin/python tests/conformance/run_scim2_tester.py --real-drupal DIR --auth basic|session
    .venv/bin/python tests/conformance/run_scim2_tester.py --users 150 [--no-paging]

Populated sites. scim2-tester lists a collection with no `startIndex`/`count` (GET /Users,
GET /Users?attributes=…, POST /.search) and expects the resource it has just created on that
one answer. RFC 7644 §3.4.2.4 leaves the page size of such a request to the service provider
(the gateway: 100, capped at 1000), and new accounts land at the end, so on a site with more
than 100 users those checks fail (7 of 83: the Group search too, since /.search lists users
first). Every IdP pages (Okta startIndex=1&count=100, then 101, …; JumpCloud and Entra look
users up by filter), so the runner pages for scim2-tester as they do: an unpaged list is
answered with every page, read with `startIndex` (PagingTransport). On a site that fits one
page this changes nothing. `--users N` adds N accounts first (to the emulator directly; to a
real Drupal through the gateway, as an IdP's first sync would); with
`--no-paging` the runner sends scim2-tester's requests as they are, which reproduces the
failures.

With --url/--token it checks an already running gateway instead of starting one (pass
--min-checks for what that gateway advertises). With --real-drupal it starts the gateway in
front of the real Drupal that `scripts/real-drupal up --dir DIR` brought up (set up with
scripts/emulator-attributes.json and groups, as scripts/test does; the secrets `up` was given in
the environment or DIR/real-drupal.env), in that upstream mode: the same checks, the same
gate (0 failed, no unexpected skip, at least MIN_CHECKS).
Environment: E2E_NO_BUILD=1 skips `cargo build`; E2E_KEEP=1 keeps the logs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Checks scim2-tester may skip, by title, with the reason. Empty: with the gateway this script
# starts (scripts/emulator-attributes.json mapped, Groups on) scim2-tester 0.5.2 skips nothing,
# so any skip is a regression (a check lost its prerequisite: an attribute or operation that is
# no longer advertised) and fails the run. Add an entry only with the reason the check cannot
# apply to this gateway.
EXPECTED_SKIPS: dict[str, str] = {}

# The number of checks scim2-tester 0.5.2 runs against that gateway: every discovery, User and
# Group check. Not a pass floor (every check must pass); it catches a suite that silently ran
# fewer checks. Raise it when the gateway advertises more; lower it only with the reason in
# the commit.
MIN_CHECKS = 83

# Statuses that count as passed (0.5.2 reports SUCCESS only; COMPLIANT and ACCEPTABLE are its
# names for a met SHOULD or MAY). Everything else but SKIPPED fails: DEVIATION, ERROR, CRITICAL.
PASSED = ("SUCCESS", "COMPLIANT", "ACCEPTABLE")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))


PAGED_COLLECTIONS = ("/Users", "/Groups", "/Users/.search", "/Groups/.search", "/.search")


def paging_transport(base_path: str):
    """An httpx2 transport that answers an unpaged list (a GET of a collection, or a .search,
    with neither `startIndex` nor `count`) with all its pages, read one after the other with
    `startIndex` as an IdP reads them. Each page is a real request through the gateway;
    `totalResults` must agree on every page, and the walk stops on an empty page."""
    import json

    import httpx2

    class PagingTransport(httpx2.HTTPTransport):
        pages_walked = 0

        def handle_request(self, request):
            path = request.url.path
            rel = path[len(base_path):] if path.startswith(base_path) else None
            unpaged_get = request.method == "GET" and not {"startIndex", "count"} & set(request.url.params.keys())
            body = None
            if request.method == "POST" and rel is not None and rel.endswith(".search"):
                request.read()
                try:
                    body = json.loads(request.content or b"{}")
                except ValueError:
                    body = None
            unpaged_post = isinstance(body, dict) and not {"startIndex", "count"} & set(body)
            if rel not in PAGED_COLLECTIONS or not (unpaged_get or unpaged_post):
                return super().handle_request(request)
            first = super().handle_request(request)
            first.read()
            if first.status_code != 200:
                return first
            listing = first.json()
            resources = list(listing.get("Resources") or [])
            total = listing.get("totalResults")
            # The next pages' requests: the same headers, but httpx2 sets their own length.
            same = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
            while isinstance(total, int) and len(resources) < total:
                start = len(resources) + 1
                if body is not None:
                    nxt = httpx2.Request("POST", request.url, headers=same,
                                         content=json.dumps({**body, "startIndex": start}).encode())
                else:
                    nxt = httpx2.Request("GET", request.url.copy_merge_params({"startIndex": start}), headers=same)
                page = super().handle_request(nxt)
                page.read()
                if page.status_code != 200:
                    return page
                more = page.json()
                if more.get("totalResults") != total:
                    raise AssertionError(f"totalResults changed while paging {path}: {total} then {more.get('totalResults')}")
                if not more.get("Resources"):
                    break
                resources.extend(more["Resources"])
                PagingTransport.pages_walked += 1
            listing.update(Resources=resources, startIndex=1, itemsPerPage=len(resources))
            headers = [(k, v) for k, v in first.headers.items() if k.lower() not in ("content-length", "content-encoding")]
            return httpx2.Response(200, headers=headers, content=json.dumps(listing).encode(), request=request)

    return PagingTransport()


def seed_through_scim(url: str, token: str, n: int, timeout: float) -> None:
    """N more accounts on a real site, created through the gateway (4 at a time, as an IdP's
    first sync would): a real Drupal has no control API, and its own JSON:API would need the
    service account's password here."""
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    import requests

    run = secrets.token_hex(3)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/scim+json"}
    t0 = time.monotonic()

    def create(i: int) -> int:
        name = f"populated-{run}-{i:04d}@example.org"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                "emails": [{"value": name, "type": "work", "primary": True}], "active": True}
        return requests.post(url + "/Users", json=body, headers=headers, timeout=timeout).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(create, range(n)))
    bad = [c for c in codes if c != 201]
    if bad:
        raise RuntimeError(f"seeding: {len(bad)} of {n} creates were not answered 201 ({sorted(set(bad))})")
    print(f"site seeded with {n} accounts through the gateway in {time.monotonic() - t0:.1f}s")


def run_checks(url: str, token: str, timeout: float = 30, paging: bool = True) -> list:
    from urllib.parse import urlsplit

    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import check_server

    transport = paging_transport(urlsplit(url).path.rstrip("/")) if paging else None
    client = SyncSCIMClient(
        Client(base_url=url, headers={"Authorization": "Bearer " + token}, trust_env=False, timeout=timeout, transport=transport)
    )
    results = check_server(client)
    if transport is not None:
        print(f"(unpaged lists answered with every page: {type(transport).pages_walked} further page(s) read)")
    return results, (type(transport).pages_walked if transport is not None else 0)


def report(results) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for r in results:
        name = r.status.name
        if name in PASSED:
            passed += 1
            if name == "SUCCESS":
                continue
        elif name == "SKIPPED":
            skipped += 1
        else:
            failed += 1
        where = f" [{r.resource_type}]" if getattr(r, "resource_type", None) else ""
        print(f"{name:8} {r.title}{where}")
        if r.reason:
            for line in str(r.reason).splitlines():
                print(f"         {line}")
    return passed, failed, skipped


def unexpected_skips(results) -> list:
    """The SKIPPED results EXPECTED_SKIPS does not list."""
    return [r for r in results if r.status.name == "SKIPPED" and r.title not in EXPECTED_SKIPS]


def verdict(results, passed: int, failed: int, min_checks: int) -> list[str]:
    """Why this run fails (empty: it passes)."""
    problems = []
    if not results:
        problems.append("scim2-tester ran no checks")
    if failed:
        problems.append(f"{failed} check(s) failed (0 failures are required)")
    for r in unexpected_skips(results):
        problems.append(f"unexpected skip: {r.title} (not in EXPECTED_SKIPS)")
    if len(results) < min_checks:
        problems.append(f"only {len(results)} checks ran, expected at least {min_checks}: the gateway advertises less than before")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="SCIM base URL of a running gateway (default: start one)")
    ap.add_argument("--token", help="bearer token for --url")
    ap.add_argument("--real-drupal", metavar="DIR", help="check a gateway in front of the real Drupal of `scripts/real-drupal up --dir DIR`")
    ap.add_argument("--auth", choices=("basic", "session"), default="basic", help="with --real-drupal: the gateway's drupal.auth")
    ap.add_argument("--min-checks", type=int, default=MIN_CHECKS, help=f"fewest checks that must run (default {MIN_CHECKS})")
    ap.add_argument("--users", type=int, default=0, metavar="N", help="add N accounts to the site first (a populated site)")
    ap.add_argument("--no-paging", action="store_true", help="send scim2-tester's unpaged lists as they are (no PagingTransport)")
    args = ap.parse_args(argv)

    stack = None
    real_gw = None
    timeout = 30
    if args.url and args.real_drupal:
        ap.error("give --url or --real-drupal, not both")
    if args.users and args.url:
        ap.error("--users seeds the site this script starts a gateway for: not with --url")
    if args.real_drupal:
        import tempfile

        sys.path.insert(0, str(HERE.parent / "real_drupal"))
        import realdrupal

        site = realdrupal.Site(args.real_drupal)
        tokens = realdrupal.new_tokens()
        real_gw = realdrupal.gateway(site, Path(tempfile.mkdtemp(prefix="scim2-tester-real-")), tokens, args.auth)
        realdrupal.wait_ready(real_gw, timeout=180 if site.slow else 60)
        url, token = real_gw.base_url, tokens["primary"]
        timeout = 300 if site.slow else 60
        print(f"real Drupal {site.version} ({site.db}, {site.runtime}) at {site.url}, drupal.auth {args.auth}")
        if args.users:
            try:
                seed_through_scim(url, token, args.users, timeout)
            except BaseException:
                real_gw.stop()
                raise
    elif args.url:
        if not args.token:
            ap.error("--token is required with --url")
        url, token = args.url, args.token
    else:
        import harness

        harness.ensure_built()
        stack = harness.Stack(timeout_ms=5000)
        stack.start()
        if args.users:
            # People who were there before provisioning: usernames unlike their mails, as on a
            # site that had accounts before its IdP.
            stack.emulator.seed_users([{"name": f"member{i:04d}", "mail": f"m{i:04d}@existing.example"} for i in range(args.users)])
            print(f"emulator seeded with {args.users} accounts")
        # Users (with the attribute mapping) and Groups (taxonomy terms), as scripts/run serves them.
        gw = stack.new_envoy(plugin_overrides={"groups": {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}})
        url, token = gw.base_url, stack.tokens["primary"]

    t0 = time.monotonic()
    try:
        print(f"scim2-tester 0.5.2 against {url}")
        try:
            results, pages_walked = run_checks(url, token, timeout, paging=not args.no_paging)
        except Exception as e:  # discovery failures raise inside the client
            print(f"scim2-tester could not run: {type(e).__name__}: {e}")
            results, pages_walked = [], 0
        passed, failed, skipped = report(results)
    finally:
        if stack is not None:
            stack.stop()
        if real_gw is not None:
            real_gw.stop()

    expected = [r for r in results if r.status.name == "SKIPPED" and r.title in EXPECTED_SKIPS]
    for r in expected:
        print(f"expected skip: {r.title}: {EXPECTED_SKIPS[r.title]}")
    print(f"({len(results)} results in {time.monotonic() - t0:.1f}s; at least {args.min_checks} required)")
    print(f"scim2-tester: {passed} passed, {failed} failed, {skipped} skipped")
    problems = verdict(results, passed, failed, args.min_checks)
    if args.users > 100 and not args.no_paging and results and not pages_walked:
        # A populated run that never needed a second page proves nothing about them.
        problems.append(f"with {args.users} seeded accounts no list needed a second page")
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
