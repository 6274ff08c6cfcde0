"""scripts/run, the user's command: it starts everything, prints the base URL and token,
serves SCIM, and stops all it started on SIGTERM."""

import os
import re
import signal
import subprocess
import time

import pytest
import requests

import harness
from harness import REPO_ROOT, free_port

pytestmark = pytest.mark.no_leak_check


def start_run(env_extra: dict, log_path):
    env = {**os.environ, **env_extra}
    for k in ("SCIM_TOKEN", "DRUPAL_URL", "DRUPAL_USERNAME", "DRUPAL_PASSWORD"):
        if k not in env_extra:
            env.pop(k, None)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        ["bash", str(REPO_ROOT / "scripts" / "run")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return proc


def wait_banner(proc, log_path, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        base = re.search(r"^SCIM base URL: (\S+)$", text, re.M)
        token = re.search(r"^Token: (\S+)$", text, re.M)
        if base and token:
            return base.group(1), token.group(1), text
        if proc.poll() is not None:
            raise AssertionError(f"scripts/run exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("scripts/run printed no banner:\n" + log_path.read_text(errors="replace")[-3000:])


def stop_and_check(proc, ports):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("scripts/run did not stop on SIGTERM")
    # Everything it started is gone: nothing in its process group, nothing on its ports.
    time.sleep(0.3)
    try:
        os.killpg(proc.pid, 0)
        leftover = True
    except ProcessLookupError:
        leftover = False
    if leftover:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not leftover, "children of scripts/run survived SIGTERM"
    for port in ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_run_with_the_emulator(tmp_path):
    scim_port, admin_port, emu_port = free_port(), free_port(), free_port()
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{scim_port}",
            "ENVOY_ADMIN": f"127.0.0.1:{admin_port}",
            "DRUPAL_EMULATOR_LISTEN": f"127.0.0.1:{emu_port}",
        },
        tmp_path / "run.log",
    )
    try:
        base, token, text = wait_banner(proc, tmp_path / "run.log")
        assert base == f"http://127.0.0.1:{scim_port}/scim/v2"
        assert len(token) >= 32
        assert "curl" in text
        h = {"Authorization": "Bearer " + token}
        assert requests.get(base + "/ServiceProviderConfig", headers=h, timeout=10).status_code == 200
        r = requests.post(
            base + "/Users",
            headers={**h, "Content-Type": "application/scim+json"},
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "run@example.com"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        assert requests.get(base + "/Users", timeout=10).status_code == 401
        # The rest of the site is proxied to the emulator.
        assert requests.get(f"http://127.0.0.1:{scim_port}/jsonapi", timeout=10).status_code == 200
        # With the emulator, scripts/emulator-attributes.json is the mapping (when this
        # emulator can create the fields), and the emulator has the fields.
        schema = requests.get(base + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", headers=h, timeout=10).json()
        names = [a["name"] for a in schema["attributes"]]
        if harness.emulator_has_fields():
            assert names == ["userName", "emails", "active", "name", "displayName", "externalId", "title", "phoneNumbers", "password", "groups"]
            r = requests.post(
                base + "/Users",
                headers={**h, "Content-Type": "application/scim+json"},
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "mapped@example.com",
                    "name": {"givenName": "Map"},
                    "phoneNumbers": [{"type": "mobile", "value": "1"}],
                },
                timeout=10,
            )
            assert r.status_code == 201, r.text
            assert r.json()["name"] == {"givenName": "Map"}
            assert r.json()["phoneNumbers"] == [{"value": "1", "type": "mobile"}]
        else:
            assert names == ["userName", "emails", "active", "password"]
    finally:
        if proc.poll() is None:
            stop_and_check(proc, [scim_port, admin_port, emu_port])


def test_run_against_a_given_drupal_url_with_a_chosen_token(tmp_path, emulator):
    """Also in session mode (DRUPAL_AUTH=session): the gateway logs in instead of sending Basic."""
    scim_port, admin_port = free_port(), free_port()
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{scim_port}",
            "ENVOY_ADMIN": f"127.0.0.1:{admin_port}",
            "DRUPAL_URL": emulator.url,
            "DRUPAL_USERNAME": emulator.admin_user,
            "DRUPAL_PASSWORD": emulator.admin_pass,
            "DRUPAL_AUTH": "session",
            "SCIM_TOKEN": "my-chosen-token-0123456789",
        },
        tmp_path / "run.log",
    )
    try:
        base, token, _ = wait_banner(proc, tmp_path / "run.log")
        assert token == "my-chosen-token-0123456789"
        emulator.seed_user("given@example.com", mail="given@example.com")
        r = requests.get(
            base + "/Users",
            params={"filter": 'userName eq "given@example.com"'},
            headers={"Authorization": "Bearer " + token},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["totalResults"] == 1
        lookups = [q for q in emulator.requests_log() if "given%40example.com" in q["path"] or "given@example.com" in q["path"]]
        assert lookups and all("Cookie" in q["headers"] or "cookie" in q["headers"] for q in lookups), lookups
        assert any(q["path"] == "/user/login?_format=json" for q in emulator.requests_log())
        # With DRUPAL_URL the shipped envoy.yaml's core-only mapping stays.
        schema = requests.get(
            base + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", headers={"Authorization": "Bearer " + token}, timeout=10
        ).json()
        assert [a["name"] for a in schema["attributes"]] == ["userName", "emails", "active", "password"]
    finally:
        if proc.poll() is None:
            stop_and_check(proc, [scim_port, admin_port])


def test_run_refuses_an_unknown_drupal_auth(tmp_path):
    proc = start_run({"DRUPAL_AUTH": "digest"}, tmp_path / "run.log")
    assert proc.wait(timeout=120) != 0
    assert "DRUPAL_AUTH must be basic or session" in (tmp_path / "run.log").read_text()


def test_run_requires_credentials_with_drupal_url(tmp_path):
    proc = start_run({"DRUPAL_URL": "http://127.0.0.1:9"}, tmp_path / "run.log")
    assert proc.wait(timeout=120) != 0
    assert "DRUPAL_USERNAME" in (tmp_path / "run.log").read_text()
