#!/usr/bin/env python3
"""What an exact `totalResults` costs (not a test; see docs/benchmarks.md, "Exact paging").

For each directory size, starts the Drupal emulator charging a real Drupal's measured cost per
request (`--cost-model drupal`), seeds it with N users, starts one Envoy (session auth, as a
site that cares about latency runs it) and measures, through SCIM:

- `count=0`: the count alone, the first time a query is counted (nothing remembered);
- the next page of the same query (`startIndex=101&count=100`): the remembered total is checked
  with one read next to the page;
- JumpCloud's Test Connection (`startIndex=1&count=1`) with its first-ever count;

each as Drupal calls (from the emulator's request log) and wall time (median of `--runs`).

    scripts/bench --paging [--sizes 1000,10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402


def seed(emulator: harness.Emulator, n: int) -> None:
    batch = 5000
    for start in range(0, n, batch):
        users = [{"name": f"u{i:07d}@example.com", "mail": f"u{i:07d}@example.com"} for i in range(start, min(n, start + batch))]
        r = emulator.http.post(emulator.url + "/_emulator/users", json=users, timeout=600)
        r.raise_for_status()


def measure(gw: harness.Envoy, emulator: harness.Emulator, path: str, expect_total: int) -> tuple[float, int]:
    emulator.clear_requests()
    t0 = time.perf_counter()
    r = gw.scim("GET", path, timeout=120)
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, r.text[:300]
    got = r.json()["totalResults"]
    assert got == expect_total, (path, got, expect_total)
    calls = [q for q in emulator.requests_log() if q["path"].startswith("/jsonapi")]
    return ms, len(calls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"scripts/bench --paging  emulator --cost-model drupal, drupal.auth session, median of {args.runs}")
    print(f"{'users':>8}  {'request':<44} {'Drupal calls':>12} {'ms':>8}")
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="scim-paging-"))
        emulator = harness.Emulator(work, fields=False).start()
        gw = None
        try:
            seed(emulator, n)
            total = n + 1  # the seeded users and the service account
            emulator.settings(cost_model="drupal")
            gw = harness.Envoy(work, emulator, {"primary": "bench-token"}, plugin_overrides={"drupal.auth": "session", "drupal.timeout_ms": 60000}).start()
            gw.scim("GET", "/Users/00000000-0000-4000-8000-000000000000")  # the login
            rows = []
            # The first count of a query: a fresh filter each run, so nothing is remembered.
            cold = [measure(gw, emulator, f'/Users?count=0&filter=meta.created gt "20{k:02d}-01-01T00:00:00Z"', total) for k in range(args.runs)]
            rows.append(("GET /Users?count=0 (first count of a query)", cold))
            first_page = [measure(gw, emulator, f'/Users?startIndex=1&count=1&filter=meta.created gt "19{k:02d}-01-01T00:00:00Z"', total) for k in range(args.runs)]
            rows.append(("GET /Users?startIndex=1&count=1 (first count)", first_page))
            measure(gw, emulator, "/Users?startIndex=1&count=100", total)
            warm = [measure(gw, emulator, "/Users?startIndex=101&count=100", total) for _ in range(args.runs)]
            rows.append(("GET /Users?startIndex=101&count=100 (next page)", warm))
            for label, samples in rows:
                ms = statistics.median(s[0] for s in samples)
                calls = statistics.median(s[1] for s in samples)
                print(f"{n:>8}  {label:<44} {calls:>12.0f} {ms:>8.0f}")
        finally:
            if gw:
                gw.stop()
            emulator.stop()


if __name__ == "__main__":
    main()
