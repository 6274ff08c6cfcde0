"""End-to-end harness: the Drupal emulator + Envoy running the envoy-scim-drupal filter.

Session: one emulator (service account `scim-service`, random password, the Drupal user
fields of scripts/emulator-attributes.json) and one Envoy (two tokens, labels `primary` and
`rotated`, `drupal.timeout_ms` 1500, that attribute mapping) on free loopback ports. With
an emulator that cannot create user fields (no `--user-field`), the gateway runs the core
mapping only and the tests marked `mapped_fields` fail at once with that reason. Every test starts from `POST /_emulator/reset`, and afterwards the Drupal request
log is checked for leaked credentials (SCIM tokens, foreign Authorization, cookies).

Tests talk HTTP only: to Envoy (the `scim` fixture) and, to inspect or arrange Drupal's
state, to the emulator (control API and Drupal's JSON:API as the service account).

Environment: E2E_NO_BUILD=1 skips `cargo build` (scripts/test builds first);
E2E_KEEP=1 keeps the temp dir with the logs; ENVOY_BIN overrides the Envoy binary;
E2E_DRUPAL_VERSION=10.6 (or 11.4, 10.3) starts every emulator with that --drupal-version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

import harness
from harness import Envoy, Stack, jumpcloud_user


def pytest_configure(config):
    config.addinivalue_line("markers", "no_leak_check: skip the per-test credential-leak check")
    config.addinivalue_line(
        "markers",
        "mapped_fields: needs the mapped Drupal user fields (scripts/emulator-attributes.json) in the emulator",
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    harness.ensure_built()
    workdir = Path(tempfile.mkdtemp(prefix="scim-e2e-"))
    s = Stack(workdir)
    s.start()
    yield s
    s.stop()
    if not s.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"\ne2e logs kept in {workdir}")


@pytest.fixture(scope="session")
def emulator(stack):
    return stack.emulator


@pytest.fixture(scope="session")
def gateway(stack) -> Envoy:
    return stack.envoy


@pytest.fixture(autouse=True)
def _reset_and_check_leaks(request, stack):
    if request.node.get_closest_marker("mapped_fields") and not stack.emulator.fields:
        pytest.fail(
            "this drupal-emulator cannot create the mapped user fields (no --user-field / "
            "--second-run-fields), so the session gateway runs the core mapping only",
            pytrace=False,
        )
    stack.emulator.reset()
    yield
    if request.node.get_closest_marker("no_leak_check"):
        return
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        return  # the test's own failure is the interesting one
    assert_no_credential_leaks(stack)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def gateway_requests(stack) -> list[dict]:
    """Drupal's request log without the tests' own direct requests and control calls."""
    out = []
    for r in stack.emulator.requests_log():
        headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
        if harness.DIRECT_MARKER in headers or r.get("path", "").startswith("/_emulator"):
            continue
        out.append({**r, "headers": headers})
    return out


def assert_no_credential_leaks(stack) -> None:
    service = stack.emulator.service_auth
    tokens = list(stack.tokens.values())
    for r in gateway_requests(stack):
        blob = json.dumps(r)
        for t in tokens:
            assert t not in blob, f"a SCIM token reached Drupal: {r['method']} {r['path']}"
        auth = r["headers"].get("authorization")
        assert auth in (None, service), f"unexpected Authorization sent to Drupal: {auth!r} on {r['method']} {r['path']}"
        assert "cookie" not in r["headers"], f"a Cookie reached Drupal: {r['method']} {r['path']}"


# ---- helpers as fixtures ---------------------------------------------------------------


@pytest.fixture
def scim(gateway):
    """scim(method, path, token="primary"|"rotated"|literal|None, json=…, headers=…, params=…)."""
    return gateway.scim


@pytest.fixture
def drupal_requests(stack):
    """The requests Drupal received from the gateway since the test began (direct test
    calls excluded): [{"method","path","headers":{lower-case},"body"}]."""
    return lambda: gateway_requests(stack)


@pytest.fixture
def clear_drupal_requests(emulator):
    return emulator.clear_requests


@pytest.fixture
def seed_user(emulator):
    """seed_user(name, mail=…, status=True, password=…, roles=…) -> {"uuid","uid"}."""
    return emulator.seed_user


@pytest.fixture
def emulator_settings(emulator):
    """emulator_settings(cancel_method=…, mail_case_insensitive=…, read_only=…, latency_ms=…)."""
    return emulator.settings


@pytest.fixture
def fault(emulator):
    """fault(status=500, body=…, count=N, path_prefix=…, method=…) | fault(drop=True, count=N) |
    fault(delay_ms=M, count=N)."""
    return emulator.fault


@pytest.fixture
def new_envoy(stack):
    """new_envoy(plugin_overrides={dotted key: value}, plugin_replace=dict|str, tokens=…,
    start=True) -> Envoy on the same emulator; stopped at the end of the test."""
    started: list[Envoy] = []

    def make(**kw):
        e = stack.new_envoy(**kw)
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def drupal_writes(stack):
    """The non-GET requests Drupal received from the gateway since the test began."""
    return lambda: [r for r in gateway_requests(stack) if r["method"] not in ("GET", "HEAD")]


@pytest.fixture
def seed_users(emulator):
    """seed_users([{"name", "mail"?, "status"?}, …]) -> [{"uuid","uid"}] in one control call."""
    return emulator.seed_users


@pytest.fixture
def set_fields(emulator):
    """set_fields(uuid, field_given_name=…, …): writes Drupal attributes through JSON:API."""
    return emulator.set_fields


@pytest.fixture
def create_user(scim):
    """create_user(userName, email=None, **extra) -> the 201 response body (asserts 201)."""

    def make(user_name: str, email: str | None = None, **extra) -> dict:
        r = scim("POST", "/Users", json=jumpcloud_user(user_name, email, **extra))
        assert r.status_code == 201, f"create {user_name}: {r.status_code} {r.text[:500]}"
        return r.json()

    return make
