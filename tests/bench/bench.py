#!/usr/bin/env python3
"""The filter's overhead: the same Drupal operations through the SCIM filter and as plain
JSON:API proxied by the same Envoy (not a test; see docs/benchmarks.md).

Starts the Drupal emulator (optional per-call latency) and ONE Envoy rendered from envoy.yaml
(tests/e2e/harness.py), with the SCIM route's local rate limit and the access log removed and an
explicit `/jsonapi` route that proxies to the emulator with the wasm and buffer filters
disabled. Then drives both routes with wrk (same threads, connections, duration) for four pairs
and prints requests/s, the ratio filter ÷ plain, p50/p99 latency and the non-2xx count of each
side, plus the wasm size and Envoy's RSS before and after.

    scripts/bench [-t 2] [-c 8] [-d 10] [--latency-ms 0] [--warmup 1] [--pairs get,lookup,patch,create] [--memory]

`--auth-modes` instead compares the filter's two upstream auth modes (`drupal.auth` = "basic"
and "session") against an emulator that charges Drupal's measured per-request cost
(`--cost-model drupal`: Basic auth pays the 42.6 ms bcrypt check on every call, a session
cookie does not): one Envoy per mode on the same emulator, SCIM side only, and per operation
p50/p99/req/s of each mode and the ratio session ÷ basic of p50.

    scripts/bench --auth-modes [-t 2] [-c 8] [-d 10] [--pairs get,lookup,patch,create]

`--compare-wasm FILE` adds a third side to each pair: the SCIM request through a second Envoy
(same config) running another build of the module, e.g. the one before a change, so that
before and after are measured in one run on the same emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402
import render_envoy_config  # noqa: E402  (harness put scripts/ on sys.path)
import yaml  # noqa: E402

LUA = HERE / "wrk.lua"
POOL = 64  # users per pool (GET and PATCH rotate over them)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_s() -> float:
    """CPU seconds used by this script's finished children (wrk)."""
    ru = os.times()
    return ru.children_user + ru.children_system


def bench_config(envoy: harness.Envoy) -> None:
    """Derive the benchmark config from the rendered one, in place."""
    cfg = yaml.safe_load(envoy.config_path.read_text())
    hcm = render_envoy_config._hcm(cfg["static_resources"]["listeners"][0])
    hcm.pop("access_log", None)  # both sides would pay for it; it is not what we measure
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    scim = next(r for r in routes if r["match"].get("prefix") == "/scim/v2")
    # The shipped 1000-burst/500-per-second limit would answer 429s under load.
    scim.get("typed_per_filter_config", {}).pop("envoy.filters.http.local_ratelimit", None)
    if not scim.get("typed_per_filter_config"):
        scim.pop("typed_per_filter_config", None)
    plain = {
        "match": {"prefix": "/jsonapi"},
        "route": {"cluster": "drupal"},
        "typed_per_filter_config": {
            name: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
            for name in ("envoy.filters.http.wasm", "envoy.filters.http.buffer")
        },
    }
    routes.insert(routes.index(scim) + 1, plain)
    render_envoy_config.write(cfg, envoy.config_path)
    code, out = envoy.validate()
    if code != 0:
        raise RuntimeError(f"envoy --mode validate failed on {envoy.config_path}:\n{out[-3000:]}")


def drupal_calls(envoy: harness.Envoy) -> int:
    """Requests Envoy has sent to the `drupal` cluster so far (both routes use it)."""
    r = envoy.http.get(f"http://127.0.0.1:{envoy.admin_port}/stats?filter=^cluster\\.drupal\\.upstream_rq_total$", timeout=5)
    for line in r.text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "cluster.drupal.upstream_rq_total":
            return int(value)
    raise RuntimeError(f"no cluster.drupal.upstream_rq_total in {r.text[:300]!r}")


def run_wrk(url: str, args, env: dict, duration: int) -> dict:
    cmd = [
        args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{duration}s",
        "--timeout", "10s", "--latency", "-s", str(LUA), url,
    ]
    p = subprocess.run(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=duration + 60)
    text = p.stdout.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({p.returncode}):\n{text}")
    r = json.loads(line[6:])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def memory_growth(envoy: harness.Envoy, base: str, args, envs: list[dict]) -> int:
    """Envoy's RSS after 10k and after 100k SCIM requests: a filter that keeps state per
    request (or leaks in its VM) grows between the two marks."""
    marks = {10_000: None, 100_000: None}
    done = 0
    errors = 0
    rss_start = rss_kb(envoy.proc.pid)
    i = 0
    while any(v is None for v in marks.values()):
        r = run_wrk(base, args, envs[i % len(envs)], 2)
        i += 1
        done += r["requests"]
        errors += r["non2xx"] + r["socket_errors"]
        for mark, v in marks.items():
            if v is None and done >= mark:
                marks[mark] = (done, rss_kb(envoy.proc.pid))
                print(f"after {done:,} SCIM requests: Envoy RSS {marks[mark][1] / 1024:.1f} MiB", flush=True)
    (_, at10k), (_, at100k) = marks[10_000], marks[100_000]
    print(f"Envoy RSS at start {rss_start / 1024:.1f} MiB; 100k vs 10k: {(at100k - at10k) / at10k * 100:+.1f} %")
    if errors:
        print(f"WARNING: {errors} non-2xx answers or socket errors", file=sys.stderr)
        return 1
    return 0


AUTH_MODES = ("basic", "session")


def auth_modes(args, ops: list[str], emulator: harness.Emulator, workdir: Path, token: str, overrides: dict, envoys: list) -> int:
    """SCIM latency with the filter's two upstream auth modes against Drupal's measured cost
    per call (`--cost-model drupal` on the emulator): one Envoy per `drupal.auth` value, both on
    the same emulator, each op measured on basic then session with the same wrk settings."""
    by_mode: dict[str, harness.Envoy] = {}
    for mode in AUTH_MODES:
        e = harness.Envoy(
            workdir,
            emulator,
            {"primary": token},
            plugin_overrides={**overrides, "drupal.auth": mode},
            concurrency=args.concurrency,
            name=f"envoy-{mode}",
        )
        envoys.append(e)
        bench_config(e)
        e.start()
        by_mode[mode] = e
    scim_auth = "Bearer " + token

    # Data: a shared GET pool, a PATCH pool per mode, one user to look up. Creates are not
    # reset between modes (a reset would also drop the session mode's Drupal session); at
    # Drupal's pace a run adds a few thousand users, which costs the emulator microseconds.
    get_pool = emulator.seed_users([{"name": f"bench-get-{i}", "mail": f"bench-get-{i}@example.com"} for i in range(POOL)])
    patch_pools = {
        mode: emulator.seed_users([{"name": f"bench-p{mode[0]}-{i}", "mail": f"bench-p{mode[0]}-{i}@example.com"} for i in range(POOL)])
        for mode in AUTH_MODES
    }
    emulator.seed_user("bench-lookup", mail="bench-lookup@example.com")
    # Sanity: each mode answers 2xx once (the session mode logs in here) before we measure.
    for mode, e in by_mode.items():
        r = e.scim("GET", f"/Users/{get_pool[0]['uuid']}", token=token)
        assert r.status_code == 200, (mode, r.status_code, r.text[:300])
    if args.latency_ms:
        emulator.settings(latency_ms=args.latency_ms)

    lookup = "/scim/v2/Users?filter=" + urllib.parse.quote('userName eq "bench-lookup"', safe="")

    def case(op: str, mode: str) -> tuple[str, dict]:
        if op == "get":
            return "GET /Users/{id}", dict(BENCH_METHOD="GET", BENCH_PATHS=" ".join(f"/scim/v2/Users/{u['uuid']}" for u in get_pool))
        if op == "lookup":
            return 'GET /Users?filter=userName eq "…"', dict(BENCH_METHOD="GET", BENCH_PATHS=lookup)
        if op == "patch":
            paths = " ".join(f"/scim/v2/Users/{u['uuid']}" for u in patch_pools[mode])
            return "PATCH /Users/{id} active=false", dict(BENCH_METHOD="PATCH", BENCH_BODY="scim_patch", BENCH_PATHS=paths)
        return "POST /Users", dict(BENCH_METHOD="POST", BENCH_BODY="scim_post", BENCH_PATHS="/scim/v2/Users")

    print(f"scripts/bench --auth-modes  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} CPUs")
    print(
        f"wrk -t {args.threads} -c {args.connections}, {args.duration:g} s per mode (+{args.warmup:g} s warm-up); "
        f"Envoy --concurrency {args.concurrency}, one Envoy per drupal.auth mode; emulator --cost-model drupal"
        + (f" + latency {args.latency_ms} ms" if args.latency_ms else "")
    )
    print()
    hdr = f"{'op':<8} {'mode':<8} {'request':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} {'Drupal calls/req':>16}"
    print(hdr)
    print("-" * len(hdr))
    failures = 0
    summary = []
    for op in ops:
        res = {}
        for mode in AUTH_MODES:
            e = by_mode[mode]
            label, env = case(op, mode)
            env = {**env, "BENCH_AUTH": scim_auth}
            base = f"http://{e.hostport}"
            if args.warmup > 0:
                run_wrk(base, args, env, args.warmup)
            calls0 = drupal_calls(e)
            r = run_wrk(base, args, env, args.duration)
            r["calls_per_request"] = (drupal_calls(e) - calls0) / max(r["requests"], 1)
            res[mode] = r
            bad = r["non2xx"]
            failures += bad + r["socket_errors"]
            note = f"  (last bad status {r['last_bad_status']})" if bad else ""
            print(
                f"{op:<8} {mode:<8} {label:<34} {r['rps']:>8.0f} {r['p50_us'] / 1000:>8.2f} {r['p99_us'] / 1000:>8.2f} "
                f"{bad:>8} {r['socket_errors']:>8} {r['calls_per_request']:>16.2f}{note}",
                flush=True,
            )
        b, s_ = res["basic"], res["session"]
        p50 = s_["p50_us"] / b["p50_us"] if b["p50_us"] else float("nan")
        rps = s_["rps"] / b["rps"] if b["rps"] else float("nan")
        summary.append((op, p50, rps))
        print(f"{op:<8} ratio    session ÷ basic: p50 {p50:.2f}, req/s {rps:.2f}", flush=True)
    print()
    print("p50 session ÷ basic: " + ", ".join(f"{op} {p:.2f}" for op, p, _ in summary))
    print("req/s session ÷ basic: " + ", ".join(f"{op} {r:.2f}" for op, _, r in summary))
    if failures:
        print(f"WARNING: {failures} non-2xx answers or socket errors: those numbers measure errors", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("-c", "--connections", type=int, default=8, help="wrk connections (default 8)")
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per side (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each side (default 1; 0 = none)")
    ap.add_argument("--latency-ms", type=int, default=0, help="emulator latency per Drupal call (default 0)")
    ap.add_argument("--concurrency", type=int, default=2, help="Envoy worker threads (default 2)")
    ap.add_argument("--pairs", default="get,lookup,patch,create", help="comma list of get,lookup,patch,create (create always runs last)")
    ap.add_argument("--plain-first", action="store_true", help="run the plain side of each pair first")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument(
        "--compare-wasm",
        type=Path,
        help="another build of the module (e.g. before a change): each pair also runs its SCIM side through a second Envoy with it ('before')",
    )
    ap.add_argument(
        "--memory",
        action="store_true",
        help="instead of the pairs: SCIM traffic only (get, lookup, patch in turn) and Envoy's RSS after 10k and 100k requests",
    )
    ap.add_argument(
        "--auth-modes",
        action="store_true",
        help="instead of the pairs: SCIM only, filter with drupal.auth=basic vs drupal.auth=session, "
        "emulator with --cost-model drupal (Drupal's measured per-call cost by auth mode)",
    )
    args = ap.parse_args()
    if args.auth_modes and args.memory:
        ap.error("--auth-modes and --memory are separate runs")
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = set(pairs) - {"get", "lookup", "create", "patch"}
    if unknown:
        ap.error(f"unknown pairs {sorted(unknown)}")
    # create runs last: it resets the emulator (dropping the GET/PATCH pools) before each side,
    # since the emulator slows down as its user table grows and the second side would pay for it.
    pairs.sort(key=lambda p: p == "create")

    for p in (harness.WASM_PATH, harness.EMULATOR_BIN):
        if not p.exists():
            raise SystemExit(f"{p} is missing: build first (scripts/test or cargo build --release ...)")

    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    extra = ["--request-log-limit", "100"]
    if args.auth_modes:
        extra += ["--cost-model", "drupal"]  # as a flag, so a reset keeps it
    emulator = harness.Emulator(workdir, extra_args=extra)
    envoy = None
    before = None
    mode_envoys: list[harness.Envoy] = []

    def stop(*_):
        for e in mode_envoys:
            e.stop()
        if envoy:
            envoy.stop()
        if before:
            before.stop()
        emulator.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def on_signal(signum, _frame):
        stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator.start()
        token = "bench-" + os.urandom(12).hex()
        overrides = {"drupal.timeout_ms": 10000}
        if emulator.fields:
            overrides["attributes"] = harness.ATTRIBUTES
        if args.auth_modes:
            return auth_modes(args, pairs, emulator, workdir, token, overrides, mode_envoys)
        envoy = harness.Envoy(workdir, emulator, {"primary": token}, plugin_overrides=overrides, concurrency=args.concurrency)
        bench_config(envoy)
        envoy.start()
        if args.compare_wasm:
            if not args.compare_wasm.exists():
                raise SystemExit(f"{args.compare_wasm} is missing")
            before = harness.Envoy(
                workdir, emulator, {"primary": token}, plugin_overrides=overrides, concurrency=args.concurrency,
                name="envoy-before", wasm=args.compare_wasm.resolve(),
            )
            bench_config(before)
            before.start()
        base = f"http://{envoy.hostport}"
        scim_auth = "Bearer " + token
        plain_auth = emulator.service_auth

        # Data: a GET pool, a PATCH pool per side, one user to look up.
        get_pool = emulator.seed_users([{"name": f"bench-get-{i}", "mail": f"bench-get-{i}@example.com"} for i in range(POOL)])
        patch_scim = emulator.seed_users([{"name": f"bench-ps-{i}", "mail": f"bench-ps-{i}@example.com"} for i in range(POOL)])
        patch_plain = emulator.seed_users([{"name": f"bench-pj-{i}", "mail": f"bench-pj-{i}@example.com"} for i in range(POOL)])
        emulator.seed_user("bench-lookup", mail="bench-lookup@example.com")
        # Sanity: each side answers 2xx once before we measure.
        for e in (envoy, before) if before else (envoy,):
            r = e.scim("GET", f"/Users/{get_pool[0]['uuid']}", token=token)
            assert r.status_code == 200, (r.status_code, r.text[:300])
        r = emulator.http.get(f"{base}/jsonapi/user/user/{get_pool[0]['uuid']}", headers={"Authorization": plain_auth})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        if args.latency_ms:
            emulator.settings(latency_ms=args.latency_ms)

        lookup_scim = "/scim/v2/Users?filter=" + urllib.parse.quote('userName eq "bench-lookup"', safe="")
        lookup_plain = "/jsonapi/user/user?" + urllib.parse.quote("filter[name]", safe="") + "=bench-lookup"
        cases = {
            "get": (
                "GET /Users/{id}",
                dict(BENCH_METHOD="GET", BENCH_PATHS=" ".join(f"/scim/v2/Users/{u['uuid']}" for u in get_pool)),
                "GET /jsonapi/user/user/{uuid}",
                dict(BENCH_METHOD="GET", BENCH_PATHS=" ".join(f"/jsonapi/user/user/{u['uuid']}" for u in get_pool)),
            ),
            "lookup": (
                'GET /Users?filter=userName eq "…"',
                dict(BENCH_METHOD="GET", BENCH_PATHS=lookup_scim),
                "GET /jsonapi/user/user?filter[name]=…",
                dict(BENCH_METHOD="GET", BENCH_PATHS=lookup_plain),
            ),
            "create": (
                "POST /Users",
                dict(BENCH_METHOD="POST", BENCH_BODY="scim_post", BENCH_PATHS="/scim/v2/Users"),
                "POST /jsonapi/user/user",
                dict(BENCH_METHOD="POST", BENCH_BODY="jsonapi_post", BENCH_PATHS="/jsonapi/user/user"),
            ),
            "patch": (
                "PATCH /Users/{id} active=false",
                dict(BENCH_METHOD="PATCH", BENCH_BODY="scim_patch", BENCH_PATHS=" ".join(f"/scim/v2/Users/{u['uuid']}" for u in patch_scim)),
                "PATCH /jsonapi/user/user/{uuid} status",
                dict(
                    BENCH_METHOD="PATCH",
                    BENCH_BODY="jsonapi_patch",
                    BENCH_PATHS=" ".join(f"/jsonapi/user/user/{u['uuid']}" for u in patch_plain),
                    BENCH_UUIDS=" ".join(u["uuid"] for u in patch_plain),
                ),
            ),
        }

        if args.memory:
            return memory_growth(envoy, base, args, [{**cases[p][1], "BENCH_AUTH": scim_auth} for p in ("get", "lookup", "patch")])

        wasm_size = harness.WASM_PATH.stat().st_size
        rss_before = rss_kb(envoy.proc.pid)
        print(f"scripts/bench  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} CPUs")
        print(
            f"wrk -t {args.threads} -c {args.connections}, {args.duration:g} s per side (+{args.warmup:g} s warm-up); "
            f"Envoy --concurrency {args.concurrency}; emulator latency {args.latency_ms} ms per Drupal call"
        )
        print(f"wasm module: {wasm_size:,} bytes ({wasm_size / 1048576:.2f} MiB)")
        if before:
            print(f"'before' side: second Envoy with {args.compare_wasm} ({args.compare_wasm.stat().st_size:,} bytes)")
        print(f"Envoy RSS before: {rss_before / 1024:.1f} MiB")
        print()
        hdr = (
            f"{'pair':<8} {'side':<6} {'request':<38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} "
            f"{'Drupal calls/req':>16} {'CPU µs/req: Envoy':>18} {'emulator':>9} {'wrk':>6}"
        )
        print(hdr)
        print("-" * len(hdr))
        failures = 0
        summary = []
        for pair in pairs:
            f_label, f_env, p_label, p_env = cases[pair]
            results = []
            sides = [("filter", f_label, {**f_env, "BENCH_AUTH": scim_auth}), ("plain", p_label, {**p_env, "BENCH_AUTH": plain_auth})]
            if before:
                sides.insert(1, ("before", f_label, {**f_env, "BENCH_AUTH": scim_auth}))
            for side, label, env in sides[::-1] if args.plain_first else sides:
                on = before if side == "before" else envoy
                side_base = f"http://{on.hostport}"
                if pair == "create":
                    emulator.reset()
                    if args.latency_ms:
                        emulator.settings(latency_ms=args.latency_ms)
                if args.warmup > 0:
                    run_wrk(side_base, args, env, args.warmup)
                calls0 = drupal_calls(on)
                cpu0 = (cpu_s(on.proc.pid), cpu_s(emulator.proc.pid), children_cpu_s())
                r = run_wrk(side_base, args, env, args.duration)
                cpu1 = (cpu_s(on.proc.pid), cpu_s(emulator.proc.pid), children_cpu_s())
                n = max(r["requests"], 1)
                r["calls_per_request"] = (drupal_calls(on) - calls0) / n
                # Where each request's CPU goes: on a machine where wrk, Envoy and the emulator
                # share the cores, req/s is bounded by the sum.
                r["cpu_us"] = [(b - a) * 1e6 / n for a, b in zip(cpu0, cpu1)]
                r["side"] = side
                results.append(r)
                bad = r["non2xx"]
                failures += bad + r["socket_errors"]
                extra = f"  (last bad status {r['last_bad_status']})" if bad else ""
                envoy_us, emulator_us, wrk_us = r["cpu_us"]
                print(
                    f"{pair:<8} {side:<6} {label:<38} {r['rps']:>9.0f} {r['p50_us'] / 1000:>8.2f} {r['p99_us'] / 1000:>8.2f} "
                    f"{bad:>8} {r['socket_errors']:>8} {r['calls_per_request']:>16.2f} {envoy_us:>18.0f} {emulator_us:>9.0f} {wrk_us:>6.0f}{extra}",
                    flush=True,
                )
            by_side = {r["side"]: r for r in results}
            filt, plain_r = by_side["filter"], by_side["plain"]
            ratio = filt["rps"] / plain_r["rps"] if plain_r["rps"] else float("nan")
            summary.append((pair, ratio))
            extra_us = filt["cpu_us"][0] - plain_r["cpu_us"][0]
            was = ""
            if before:
                b = by_side["before"]
                was = f" (before: {b['rps'] / plain_r['rps'] if plain_r['rps'] else float('nan'):.2f}, adds {b['cpu_us'][0] - plain_r['cpu_us'][0]:.0f} µs)"
            print(f"{pair:<8} ratio  filter ÷ plain req/s = {ratio:.2f}; the filter adds {extra_us:.0f} µs of Envoy CPU per request{was}", flush=True)
        rss_after = rss_kb(envoy.proc.pid)
        print()
        print(f"Envoy RSS after: {rss_after / 1024:.1f} MiB (before {rss_before / 1024:.1f} MiB)")
        print("ratios (filter ÷ plain req/s): " + ", ".join(f"{p} {r:.2f}" for p, r in summary))
        if failures:
            print(f"WARNING: {failures} non-2xx answers or socket errors: those numbers measure errors", file=sys.stderr)
            return 1
        return 0
    finally:
        stop()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
