"""More than one Envoy (docs/deployment.md "More than one Envoy"): two gateway replicas behind one front
Envoy rendered from scripts/recipes/envoy-front.yaml (scripts/render_front_config.py).

The filter's membership locks live in one Envoy's shared data. The front Envoy hashes the
SCIM route on the Authorization header onto a RING_HASH cluster of the replicas, so one
IdP's SCIM traffic reaches one replica and its locks. Here:

- the rendered front config (and the template as shipped) passes `envoy --mode validate`;
- every token sticks to one replica, and different tokens land on different replicas;
- one Drupal emulator with `--race-window-ms` (concurrent writes to one user overwrite each
  other while answering 2xx, as on a real Drupal); through the hashing front, one IdP's
  concurrent membership writes (20 groups adding one user; adds and removes on another user)
  lose nothing;
- the control: the same writes through the same front with the SCIM route round-robin over
  both replicas (no hash_policy) lose memberships that were answered 2xx;
- a replica that dies: a request in flight on it fails (a SCIM 503 from the front), its IdP
  moves to the other replica (a request that cannot connect is retried there at once; the
  health check then takes the dead one out), and membership writes go on there.

These tests start their own emulator, replicas and front Envoys: the module overrides the
suite's autouse per-test fixture (no session emulator or gateway), and checks instead that
no SCIM token reached its own emulator.
"""

from __future__ import annotations

import copy
import os
import random
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import requests

import harness
import render_envoy_config
import render_front_config  # scripts/ is on sys.path (harness)
from groups_support import MEMBERSHIP_FIELD, VOCABULARY, concurrently, drupal_group_refs, groups_config
from harness import PATCH_OP, SCIM_ERROR

RACE_MS = 100
# Configured on both replicas; each is a different IdP as far as the front is concerned.
LABELS = [f"idp{i:02d}" for i in range(16)]
IDP = LABELS[0]
# The control is repeated (fresh users and groups) until a loss shows, at most this often.
CONTROL_ATTEMPTS = 3


@pytest.fixture(autouse=True)
def _reset_and_check_leaks():
    """Overrides conftest's per-test fixture: the session's emulator and gateway are not used."""
    yield


class Front:
    """The front Envoy, rendered from the recipe with the replicas' addresses."""

    def __init__(self, workdir: Path, replicas: list[harness.Envoy], name: str, round_robin: bool = False):
        self.workdir = workdir
        self.name = name
        self.port = harness.free_port()
        self.admin_port = harness.free_port()
        self.config = render_front_config.render(
            listen=f"127.0.0.1:{self.port}",
            admin=f"127.0.0.1:{self.admin_port}",
            replicas=[r.hostport for r in replicas],
        )
        if round_robin:
            # The control: the same front, the SCIM route spread round-robin over the replicas.
            self.config = copy.deepcopy(self.config)
            for vh in self.config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
                "route_config"
            ]["virtual_hosts"]:
                for route in vh["routes"]:
                    route.get("route", {}).pop("hash_policy", None)
            scim = next(c for c in self.config["static_resources"]["clusters"] if c["name"] == "scim_replicas")
            scim["lb_policy"] = "ROUND_ROBIN"
            scim.pop("ring_hash_lb_config", None)
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        render_envoy_config.write(self.config, self.config_path)
        self.proc: subprocess.Popen | None = None

    def cmd(self, *extra: str) -> list[str]:
        return [harness.envoy_bin(), "-c", str(self.config_path), "--base-id", str(next(harness._base_ids)), "--concurrency", "2", *extra]

    def validate(self) -> tuple[int, str]:
        p = subprocess.run(self.cmd("--mode", "validate"), cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return p.returncode, p.stdout.decode(errors="replace")

    def start(self) -> "Front":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=harness._die_with_parent,
            )

        def ready():
            try:
                if requests.get(self.admin + "/ready", timeout=1).status_code != 200:
                    return False
                flags = self.host_flags()
                if not (len(flags) == 4 and all(f == "healthy" for f in flags.values())):
                    return False
                # And a worker routes to a replica (which refuses a request without a token).
                return requests.get(self.base_url + "/ServiceProviderConfig", timeout=5).status_code == 401
            except requests.RequestException:
                return False

        harness._wait(ready, 60, f"front Envoy ({self.name}) with healthy replicas", self.proc, self.log_path)
        return self

    def stop(self) -> None:
        harness._stop(self.proc)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2"

    def host_flags(self) -> dict[tuple[str, str], str]:
        """{(cluster, host:port): health_flags} from the admin /clusters."""
        out = {}
        for line in requests.get(self.admin + "/clusters", timeout=5).text.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[2] == "health_flags":
                out[(parts[0], parts[1])] = parts[3]
        return out


def start_replica(workdir: Path, emulator: harness.Emulator, tokens: dict, name: str) -> harness.Envoy:
    """A gateway replica with groups on. Starting can fail when two free ports collide: retry."""
    last: Exception | None = None
    for attempt in range(3):
        e = harness.Envoy(
            workdir,
            emulator,
            tokens,
            plugin_overrides={"groups": groups_config(), "drupal.timeout_ms": 5000},
            name=f"{name}-{attempt}",
        )
        try:
            return e.start()
        except RuntimeError as err:
            e.stop()
            last = err
    raise last  # type: ignore[misc]


def start_front(workdir: Path, replicas: list[harness.Envoy], name: str, round_robin: bool = False) -> Front:
    last: Exception | None = None
    for attempt in range(3):
        f = Front(workdir, replicas, f"{name}-{attempt}", round_robin=round_robin)
        try:
            return f.start()
        except RuntimeError as err:
            f.stop()
            last = err
    raise last  # type: ignore[misc]


@pytest.fixture(scope="module")
def site():
    """One emulator with the race switch, two replicas, a hashing front and a round-robin one."""
    harness.ensure_built()
    workdir = Path(tempfile.mkdtemp(prefix="scim-multi-"))
    tokens = {label: f"{label}-{secrets.token_urlsafe(24)}" for label in LABELS}
    started: list = []
    try:
        emulator = harness.Emulator(workdir, extra_args=["--race-window-ms", str(RACE_MS)]).start()
        started.append(emulator)
        replicas = [start_replica(workdir, emulator, tokens, n) for n in ("replica-a", "replica-b")]
        started += replicas
        hashed = start_front(workdir, replicas, "front-hash")
        started.append(hashed)
        rr = start_front(workdir, replicas, "front-rr", round_robin=True)
        started.append(rr)
        yield {"workdir": workdir, "emulator": emulator, "tokens": tokens, "replicas": replicas, "front": hashed, "front_rr": rr}
        assert_no_token_reached_drupal(emulator, tokens)
    finally:
        for p in reversed(started):
            p.stop()
        if os.environ.get("E2E_KEEP"):
            print(f"\nmulti-replica logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# ---- helpers ---------------------------------------------------------------------------


def call(front: Front, token: str, method: str, path: str, json=None, timeout: float = 60) -> requests.Response:
    """One SCIM request through the front, on a session of its own (thread-safe)."""
    headers = {"Authorization": "Bearer " + token}
    if json is not None:
        headers["Content-Type"] = "application/scim+json"
    with requests.Session() as s:
        return s.request(method, front.base_url + path, json=json, headers=headers, timeout=timeout)


COUNTER = re.compile(r"^wasmcustom\.scim\.requests\.token\.([^.]+)\..*: (\d+)$")


def counts_by_label(replica: harness.Envoy) -> dict[str, int]:
    """SCIM requests the replica's filter answered, per token label (its metrics)."""
    text = requests.get(
        f"http://127.0.0.1:{replica.admin_port}/stats", params={"filter": r"^wasmcustom\.scim\.requests\.token\."}, timeout=5
    ).text
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = COUNTER.match(line.strip())
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


class Served:
    """Which replica served the requests made inside the block, per label."""

    def __init__(self, replicas: list[harness.Envoy]):
        self.replicas = replicas

    def __enter__(self):
        self.before = [counts_by_label(r) for r in self.replicas]
        return self

    def __exit__(self, *exc):
        after = [counts_by_label(r) for r in self.replicas]
        self.delta = [
            {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) != b.get(k, 0)} for a, b in zip(after, self.before)
        ]
        return False

    def of(self, label: str) -> list[int]:
        """Requests of the label each replica answered inside the block."""
        return [d.get(label, 0) for d in self.delta]


def front_stats(front: Front, pattern: str) -> dict[str, int]:
    text = requests.get(front.admin + "/stats", params={"filter": pattern}, timeout=5).text
    return {k.strip(): int(v) for k, _, v in (line.partition(":") for line in text.splitlines() if line.strip())}


def assert_no_token_reached_drupal(emulator: harness.Emulator, tokens: dict) -> None:
    for r in emulator.requests_log():
        blob = repr(r)
        for t in tokens.values():
            assert t not in blob, f"a SCIM token reached Drupal: {r.get('method')} {r.get('path')}"


def seed_terms(emulator: harness.Emulator, names: list[str]) -> list[str]:
    r = emulator.http.post(emulator.url + "/_emulator/terms", json=[{"name": n, "vocabulary": VOCABULARY} for n in names], timeout=30)
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    return [t["uuid"] for t in r.json()]


def seed_user_in(emulator: harness.Emulator, name: str, terms: list[str]) -> str:
    r = emulator.http.post(
        emulator.url + "/_emulator/users", json={"name": name, "mail": name, MEMBERSHIP_FIELD: terms}, timeout=10
    )
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    return r.json()["uuid"]


def membership_burst(emulator: harness.Emulator, prefix: str) -> tuple[list[tuple[str, str, str]], dict[str, set[str]]]:
    """The writes of one burst and the memberships expected afterwards: user U is added to 20
    groups; user V leaves 8 of its 10 groups and joins 10 more. 38 PATCHes, one membership
    change each, all on two users (so Drupal's lost-update race can bite)."""
    terms = seed_terms(emulator, [f"{prefix} {i:02d}" for i in range(40)])
    add_u, keep_v, leave_v, join_v = terms[:20], terms[20:22], terms[22:30], terms[30:40]
    u = seed_user_in(emulator, f"{prefix.lower()}-u@example.com", [])
    v = seed_user_in(emulator, f"{prefix.lower()}-v@example.com", keep_v + leave_v)
    ops = [("add", g, u) for g in add_u] + [("add", g, v) for g in join_v] + [("remove", g, v) for g in leave_v]
    random.shuffle(ops)
    return ops, {u: set(add_u), v: set(keep_v + join_v)}


def patch_body(op: str, user: str) -> dict:
    if op == "add":
        operation = {"op": "add", "path": "members", "value": [{"value": user}]}
    else:
        operation = {"op": "remove", "path": f'members[value eq "{user}"]'}
    return {"schemas": [PATCH_OP], "Operations": [operation]}


def run_burst(front: Front, token: str, ops: list[tuple[str, str, str]]) -> list:
    return concurrently([lambda o=o: call(front, token, "PATCH", f"/Groups/{o[1]}", json=patch_body(o[0], o[2])) for o in ops])


def silently_lost(emulator: harness.Emulator, ops, results, expected: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """The writes answered 2xx whose effect is not in Drupal afterwards."""
    refs = {user: set(drupal_group_refs(emulator, user)) for user in expected}
    lost = []
    for (op, group, user), res in zip(ops, results):
        ok = isinstance(res, requests.Response) and res.status_code in (200, 204)
        present = group in refs[user]
        if ok and present != (op == "add"):
            lost.append((op, group, user))
    return lost


# ---- tests -----------------------------------------------------------------------------


def test_front_config_validates(site):
    """The rendered front config and the recipe as shipped pass `envoy --mode validate`; the
    SCIM route hashes the Authorization header onto a RING_HASH cluster of the replicas."""
    front = site["front"]
    rc, out = front.validate()
    assert rc == 0 and "OK" in out, out[-3000:]
    shipped = subprocess.run(
        [harness.envoy_bin(), "--mode", "validate", "-c", str(render_front_config.DEFAULT_TEMPLATE), "--disable-hot-restart"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    assert shipped.returncode == 0, shipped.stdout.decode(errors="replace")[-3000:]

    routes = front.config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    scim = next(r for r in routes if r["match"].get("prefix") == "/scim/v2")
    assert scim["route"]["hash_policy"] == [{"header": {"header_name": "authorization"}}]
    assert scim["route"]["retry_policy"]["retry_on"] == "connect-failure"
    clusters = {c["name"]: c for c in front.config["static_resources"]["clusters"]}
    assert clusters[scim["route"]["cluster"]]["lb_policy"] == "RING_HASH"
    for c in clusters.values():
        hosts = [e["endpoint"]["address"]["socket_address"] for e in c["load_assignment"]["endpoints"][0]["lb_endpoints"]]
        assert [f"{h['address']}:{h['port_value']}" for h in hosts] == [r.hostport for r in site["replicas"]]
        assert c["health_checks"]


def test_each_token_sticks_to_one_replica_and_tokens_spread(site):
    front, replicas, tokens = site["front"], site["replicas"], site["tokens"]
    with Served(replicas) as served:
        for _ in range(3):
            for label in LABELS:
                r = call(front, tokens[label], "GET", "/ServiceProviderConfig")
                assert r.status_code == 200, (label, r.status_code, r.text[:300])
    owners = {}
    for label in LABELS:
        per_replica = served.of(label)
        assert sorted(per_replica) == [0, 3], f"{label}'s requests were spread: {per_replica}"
        owners[label] = per_replica.index(3)
    # Two different tokens may land on different replicas: with 16 tokens and 2 replicas,
    # both are used (all on one would happen by chance once in 2**15 runs).
    assert set(owners.values()) == {0, 1}, owners
    # The site's other paths are not hashed: they go round-robin (and reach Drupal; not
    # /jsonapi, which the replicas close on the public side by default).
    for _ in range(4):
        assert requests.get(f"http://127.0.0.1:{front.port}/session/token", timeout=10).status_code == 200
    site_hosts = requests.get(front.admin + "/clusters", timeout=5).text
    per_host = re.findall(r"^site_replicas::(\S+)::rq_total::(\d+)$", site_hosts, re.M)
    assert len(per_host) == 2 and all(int(n) >= 1 for _, n in per_host), per_host


def test_concurrent_membership_writes_of_one_idp_lose_nothing(site):
    """38 concurrent membership changes of one IdP through the hashing front, on two users
    whose concurrent writes race in Drupal: all land on one replica, whose per-user locks
    serialise them; every change is in Drupal afterwards."""
    emulator, front, replicas, tokens = site["emulator"], site["front"], site["replicas"], site["tokens"]
    ops, expected = membership_burst(emulator, "Hashed")
    with Served(replicas) as served:
        results = run_burst(front, tokens[IDP], ops)
    for o, res in zip(ops, results):
        assert isinstance(res, requests.Response), (o, res)
        assert res.status_code == 204, (o, res.status_code, res.text[:500])
    assert sorted(served.of(IDP)) == [0, len(ops)], served.of(IDP)
    for user, groups in expected.items():
        refs = drupal_group_refs(emulator, user)
        assert len(refs) == len(set(refs)), refs
        assert set(refs) == groups, (user, sorted(groups - set(refs)), sorted(set(refs) - groups))
    assert silently_lost(emulator, ops, results, expected) == []


def test_control_round_robin_over_both_replicas_loses_memberships(site):
    """The same writes through the same front with the SCIM route round-robin (no hash) reach
    both replicas, whose locks do not see each other: Drupal's race loses changes that were
    answered 2xx. Repeated with fresh users and groups up to CONTROL_ATTEMPTS times until a
    loss shows (it showed on the first attempt in every run seen here)."""
    emulator, rr, replicas, tokens = site["emulator"], site["front_rr"], site["replicas"], site["tokens"]
    attempts = []
    for attempt in range(CONTROL_ATTEMPTS):
        ops, expected = membership_burst(emulator, f"Spread{attempt}")
        with Served(replicas) as served:
            results = run_burst(rr, tokens[IDP], ops)
        per_replica = served.of(IDP)
        assert all(n > 0 for n in per_replica) and sum(per_replica) == len(ops), per_replica
        lost = silently_lost(emulator, ops, results, expected)
        failed = [(o, getattr(r, "status_code", r)) for o, r in zip(ops, results) if getattr(r, "status_code", None) != 204]
        attempts.append({"served": per_replica, "lost_with_2xx": len(lost), "not_2xx": len(failed)})
        if lost:
            break
    print(f"\ncontrol (round-robin, {len(ops)} writes per attempt): {attempts}")
    assert attempts[-1]["lost_with_2xx"] > 0, f"round-robin lost nothing in {len(attempts)} attempts: {attempts}"


def test_a_dead_replica_moves_its_idps_to_the_other(site):
    """Its own pair of replicas and front. The replica an IdP hashes to is killed while a
    request is in flight on it: that request fails (a SCIM 503 from the front); the next ones
    go to the other replica at once (connect failure, retried on the next replica of the
    ring), the health check marks the dead one, and membership writes go on there, with fresh
    locks."""
    workdir, emulator, tokens = site["workdir"], site["emulator"], site["tokens"]
    replicas = [start_replica(workdir, emulator, tokens, n) for n in ("replica-c", "replica-d")]
    front = None
    try:
        front = start_front(workdir, replicas, "front-failover")
        user = seed_user_in(emulator, "failover@example.com", [])
        g1, g2 = seed_terms(emulator, ["Before failover", "After failover"])
        with Served(replicas) as served:
            r = call(front, tokens[IDP], "PATCH", f"/Groups/{g1}", json=patch_body("add", user))
            assert r.status_code == 204, r.text[:500]
        owner = served.of(IDP).index(1)
        dead, survivor = replicas[owner], replicas[1 - owner]

        # A request in flight on the owner when it dies: Drupal is slow to answer its read.
        emulator.fault(delay_ms=5000, path_prefix=f"/jsonapi/user/user/{user}", method="GET", count=1)
        box: dict = {}
        t = threading.Thread(target=lambda: box.setdefault("r", call(front, tokens[IDP], "GET", f"/Users/{user}")))
        t.start()

        def in_flight():
            stats = requests.get(f"http://127.0.0.1:{dead.admin_port}/stats", params={"filter": r"^http\.scim\.downstream_rq_active$"}, timeout=5).text
            return stats.strip().endswith(": 1")

        harness._wait(in_flight, 20, "the request in flight on the owner")
        dead.proc.kill()
        dead.proc.wait(timeout=10)
        t.join(30)
        emulator.clear_faults()
        lost = box.get("r")
        assert lost is not None and lost.status_code == 503, getattr(lost, "text", lost)
        assert lost.headers["content-type"].startswith("application/scim+json")
        assert lost.json()["schemas"] == [SCIM_ERROR]

        # The next requests of the IdP: answered by the survivor, the first one already.
        with Served([survivor]) as served:
            r = call(front, tokens[IDP], "GET", f"/Users/{user}")
            assert r.status_code == 200, (r.status_code, r.text[:300])
        assert served.of(IDP) == [1]
        # That was the route's retry (connect failure, next replica on the ring); the two
        # local-origin failures (the reset, the refused connection) ejected the dead one.
        stats = front_stats(front, r"^cluster\.scim_replicas\.(upstream_rq_retry_success|outlier_detection\.ejections_enforced_total)$")
        assert stats["cluster.scim_replicas.upstream_rq_retry_success"] >= 1, stats
        assert stats["cluster.scim_replicas.outlier_detection.ejections_enforced_total"] >= 1, stats
        # The health check marks it too (it keeps it out after the ejection time).
        harness._wait(
            lambda: "failed_active_hc" in front.host_flags().get(("scim_replicas", dead.hostport), ""),
            30,
            "the front's health check to mark the dead replica",
        )
        with Served([survivor]) as served:
            for _ in range(5):
                assert call(front, tokens[IDP], "GET", "/ServiceProviderConfig").status_code == 200
            r = call(front, tokens[IDP], "PATCH", f"/Groups/{g2}", json=patch_body("add", user))
            assert r.status_code == 204, r.text[:500]
        assert served.of(IDP) == [6]
        assert sorted(drupal_group_refs(emulator, user)) == sorted([g1, g2])

        # Back on its address (a new process: empty shared data, no locks), the replica gets
        # its IdPs back once healthy and no longer ejected.
        # (The admin's health flags turn healthy a moment before the workers' rings have it.)
        dead.start()

        def back_on_owner() -> bool:
            with Served(replicas) as served:
                r = call(front, tokens[IDP], "GET", "/ServiceProviderConfig")
                assert r.status_code == 200, (r.status_code, r.text[:300])
            return served.of(IDP)[owner] == 1

        harness._wait(back_on_owner, 60, "the IdP back on the restarted replica")
    finally:
        if front is not None:
            front.stop()
        for r in replicas:
            r.stop()
