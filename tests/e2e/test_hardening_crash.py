"""Hardening: a crashed wasm VM is recreated (FAIL_RELOAD) and requests caught in it do not
hang.

The crash is provoked with the test-only build (`cargo build --features test-panic`, which
scripts/test builds into target/test-panic/): a SCIM request carrying `x-scim-test-panic`
makes the filter panic in `on_http_request_headers`, killing the VM of that worker. The
Envoys here run `--concurrency 1`, so the next requests land on the crashed worker.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

import harness
import render_envoy_config as rec

PANIC_WASM = harness.REPO_ROOT / "target" / "test-panic" / "wasm32-wasip1" / "release" / "envoy_scim_drupal.wasm"
PANIC = {"x-scim-test-panic": "1"}
# FAIL_RELOAD waits ~1 s before recreating a crashed VM; allow generous slack on a busy CI box.
RECOVERY_DEADLINE_S = 10.0

needs_panic_wasm = pytest.mark.skipif(
    not PANIC_WASM.exists(),
    reason=f"{PANIC_WASM.relative_to(harness.REPO_ROOT)} is missing: build it with "
    "`CARGO_TARGET_DIR=target/test-panic cargo build --release --target wasm32-wasip1 "
    "--features test-panic --lib` (scripts/test does)",
)


def _rewrite(envoy: harness.Envoy, *, wasm: Path | None = None, stream_idle_timeout: str | None = None) -> None:
    """Edits the rendered config of a not-yet-started Envoy."""
    cfg = yaml.safe_load(envoy.config_path.read_text())
    hcm = rec._hcm(cfg["static_resources"]["listeners"][0])
    if wasm is not None:
        rec._wasm_config(hcm)["vm_config"]["code"]["local"]["filename"] = str(wasm)
    if stream_idle_timeout is not None:
        hcm["stream_idle_timeout"] = stream_idle_timeout
    rec.write(cfg, envoy.config_path)


def _stat(envoy: harness.Envoy, pattern: str) -> int:
    """Sum of the counters whose name matches `pattern` (a regex, full match)."""
    total = 0
    for line in envoy.stats().splitlines():
        name, sep, value = line.partition(": ")
        if sep and re.fullmatch(pattern, name.strip()) and value.strip().isdigit():
            total += int(value)
    return total


def _panic_envoy(new_envoy, **kw) -> harness.Envoy:
    e = new_envoy(start=False, concurrency=1, **kw)
    _rewrite(e, wasm=PANIC_WASM)
    return e.start()


@needs_panic_wasm
def test_crashed_vm_is_recreated_and_serves_again(new_envoy, seed_user):
    jane = seed_user("crash-jane@example.com", mail="crash-jane@example.com")
    e = _panic_envoy(new_envoy)
    assert e.scim("GET", "/Users").status_code == 200
    assert _stat(e, r"wasm\.(.+\.)?vm_reload_success") == 0

    t0 = time.monotonic()
    r = e.scim("GET", "/Users", headers=PANIC)
    assert r.status_code == 503, f"the panicking request: {r.status_code} {r.text[:300]}"
    assert "panicked at" in e.log_text(), "the filter did not panic: is this really the test-panic build?"

    # Poll ordinary requests until the recreated VM serves them.
    statuses: list[int] = []
    recovered_after = None
    while time.monotonic() - t0 < RECOVERY_DEADLINE_S:
        r = e.scim("GET", f"/Users/{jane['uuid']}", timeout=5)
        statuses.append(r.status_code)
        if r.status_code == 200:
            recovered_after = time.monotonic() - t0
            break
        # While the VM is being reloaded Envoy answers 503 itself (nothing reaches Drupal).
        assert r.status_code == 503, f"unexpected answer while the VM is down: {r.status_code} {r.text[:300]}"
        time.sleep(0.1)
    assert recovered_after is not None, f"not served again within {RECOVERY_DEADLINE_S}s: {statuses}"
    print(f"\nVM crash recovery: first 200 after {recovered_after:.2f}s ({len(statuses) - 1} requests answered 503 meanwhile)")
    assert r.json()["id"] == jane["uuid"]

    assert _stat(e, r"wasm\.(.+\.)?vm_reload_success") >= 1, "no vm_reload_success counted"
    assert _stat(e, r"wasm\.(.+\.)?vm_reload_failure") == 0

    # The recreated VM is fully configured: auth, lists, writes.
    assert e.scim("GET", "/Users", token=None).status_code == 401
    assert e.scim("GET", "/Users", token="rotated").status_code == 200
    created = e.scim("POST", "/Users", json=harness.jumpcloud_user("after-crash@example.com"))
    assert created.status_code == 201, created.text
    # And keeps serving (no second crash, no reload loop).
    for _ in range(5):
        assert e.scim("GET", "/ServiceProviderConfig").status_code == 200
    assert _stat(e, r"wasm\.(.+\.)?vm_reload_success") == 1


@needs_panic_wasm
def test_repeated_crashes_are_each_recovered(new_envoy):
    e = _panic_envoy(new_envoy)
    for round_ in range(3):
        assert e.scim("GET", "/Users", headers=PANIC).status_code == 503
        deadline = time.monotonic() + RECOVERY_DEADLINE_S
        while True:
            r = e.scim("GET", "/Users", timeout=5)
            if r.status_code == 200:
                break
            assert time.monotonic() < deadline, f"round {round_}: not served again ({r.status_code})"
            time.sleep(0.1)
    assert _stat(e, r"wasm\.(.+\.)?vm_reload_success") >= 3


@needs_panic_wasm
def test_crash_request_never_reaches_drupal_unfiltered(new_envoy, drupal_requests, clear_drupal_requests):
    """FAIL_RELOAD, not FAIL_OPEN: neither the crashing request nor those answered while the
    VM is down are passed to Drupal (the SCIM route is a direct_response anyway)."""
    e = _panic_envoy(new_envoy)
    clear_drupal_requests()
    assert e.scim("POST", "/Users", json=harness.jumpcloud_user("crash-post@example.com"), headers=PANIC).status_code == 503
    for _ in range(3):
        r = e.scim("POST", "/Users", json=harness.jumpcloud_user("during-reload@example.com"))
        if r.status_code != 503:
            break
    sent = drupal_requests()
    assert not any("crash-post" in (req.get("body") or "") for req in sent), sent
    assert all(req["headers"].get("authorization", "").startswith("Basic ") for req in sent), sent


def test_release_wasm_ignores_the_panic_header(scim, gateway, seed_user):
    """The shipped build has no test-panic hook: the header is just a header."""
    jane = seed_user("nopanic@example.com", mail="nopanic@example.com")
    before = _stat(gateway, r"wasm\.(.+\.)?vm_reload_(success|backoff|failure)")
    for _ in range(3):
        r = scim("GET", f"/Users/{jane['uuid']}", headers=PANIC)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == jane["uuid"]
    r = scim("GET", "/Users", headers=PANIC)
    assert r.status_code == 200, r.text
    assert "panicked at" not in gateway.log_text()
    assert _stat(gateway, r"wasm\.(.+\.)?vm_reload_(success|backoff|failure)") == before


def test_release_wasm_has_no_panic_hook():
    """The release artefact does not contain the test hook's header name at all."""
    wasm = harness.WASM_PATH.read_bytes()
    assert b"x-scim-test-panic" not in wasm


def _seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(value))
    assert m, f"unparseable duration {value!r}"
    return float(m.group(1))


def test_shipped_config_bounds_requests_caught_in_a_crashed_vm():
    """A request paused in a VM that dies is answered only when the HCM stream_idle_timeout
    expires (Envoy's default is 300 s): the shipped envoy.yaml must set it, at most 60 s,
    and keep FAIL_RELOAD."""
    cfg = yaml.safe_load((harness.REPO_ROOT / "envoy.yaml").read_text())
    hcm = rec._hcm(cfg["static_resources"]["listeners"][0])
    assert "stream_idle_timeout" in hcm, "envoy.yaml has no stream_idle_timeout (default 300 s)"
    timeout = _seconds(hcm["stream_idle_timeout"])
    assert 0 < timeout <= 60, f"stream_idle_timeout {hcm['stream_idle_timeout']!r}"
    wasm = rec._wasm_config(hcm)
    assert wasm.get("failure_policy") == "FAIL_RELOAD", wasm.get("failure_policy")
    assert not wasm.get("fail_open"), "fail_open would pass SCIM traffic to Drupal"


@needs_panic_wasm
def test_request_paused_in_a_crashed_vm_does_not_hang(new_envoy, seed_user, fault):
    """A request waiting for Drupal when its VM dies is answered (503) once
    stream_idle_timeout expires; set to 3 s here to keep the test short."""
    jane = seed_user("paused@example.com", mail="paused@example.com")
    e = new_envoy(start=False, concurrency=1, plugin_overrides={"drupal.timeout_ms": 20000})
    _rewrite(e, wasm=PANIC_WASM, stream_idle_timeout="3s")
    e.start()
    fault(delay_ms=8000, count=1, path_prefix="/jsonapi/user/user/", method="GET")

    result: dict = {}

    def slow():
        t = time.monotonic()
        try:
            r = requests.get(
                f"{e.base_url}/Users/{jane['uuid']}",
                headers={"Authorization": "Bearer " + e.tokens["primary"]},
                timeout=30,
            )
            result["status"] = r.status_code
        except requests.RequestException as exc:  # pragma: no cover - reported below
            result["error"] = repr(exc)
        result["elapsed"] = time.monotonic() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.5)  # the slow request is now paused, its Drupal call in flight
    assert e.scim("GET", "/Users", headers=PANIC).status_code == 503
    th.join(40)
    assert not th.is_alive(), "the paused request never finished"
    assert "error" not in result, result
    # Answered by Envoy at the idle timeout (3 s), well before the Drupal answer (8 s) and the
    # 20 s call timeout.
    assert result["status"] in (503, 504), result
    assert result["elapsed"] < 7.5, result
    print(f"\npaused request answered {result['status']} after {result['elapsed']:.2f}s")
