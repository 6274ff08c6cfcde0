"""scripts/run, the user's command: it starts everything, prints the base URL and token,
serves SCIM, and stops all it started on SIGTERM."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import requests

import harness
from harness import ENTERPRISE_USER, REPO_ROOT, free_port

pytestmark = pytest.mark.no_leak_check


RUN_VARIABLES = (
    "SCIM_TOKEN",
    "DRUPAL_URL",
    "DRUPAL_USERNAME",
    "DRUPAL_PASSWORD",
    "DRUPAL_AUTH",
    "SCIM_ATTRIBUTES",
    "SCIM_GROUPS",
    "SCIM_PUBLIC_URL",
    "SCIM_PUBLIC_JSONAPI",
    "SCIM_STATE_DIR",
    "SCIM_RUN_DIR",
    "SCIM_WASM",
    "SCIM_ADOPT",
    "SCIM_ADOPT_RENAME",
    "DRUPAL_EMULATOR_SEED_USERS",
)


def start_run(env_extra: dict, log_path, cwd=None):
    env = {**os.environ, **env_extra}
    for k in RUN_VARIABLES:
        if k not in env_extra:
            env.pop(k, None)
    # A state directory of its own: a first start, which generates and prints the token.
    env.setdefault("SCIM_STATE_DIR", str(log_path.parent / "scim-state"))
    # Its own rendered config and logs too: the repository's shared `.run` let a run read
    # another run's files (a chosen mapping once came up with the default one).
    env.setdefault("SCIM_RUN_DIR", str(log_path.parent / "scim-run"))
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        ["bash", str(REPO_ROOT / "scripts" / "run")],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return proc


def wait_banner(proc, log_path, timeout=180):
    """(the base URL to reach the gateway from here, the printed token or None, the output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        base = re.search(r"^SCIM base URL: (\S+)$", text, re.M)
        # With SCIM_PUBLIC_URL the base URL is the public one, and the local one follows.
        local = re.search(r"^Local URL: (\S+)$", text, re.M)
        token = re.search(r"^Token: (.+)$", text, re.M)
        if base and token:
            printed = re.fullmatch(r"\S+", token.group(1))
            return (local or base).group(1), printed and printed.group(0), text
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
            # Opens /jsonapi on the public side (closed by default: test_edge_hardening.py).
            "SCIM_PUBLIC_JSONAPI": "on",
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
        # The rest of the site is proxied to the emulator, /jsonapi too (SCIM_PUBLIC_JSONAPI=on).
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
        base, printed, text = wait_banner(proc, tmp_path / "run.log")
        # A token the operator chose is not printed.
        assert printed is None and "Token: from SCIM_TOKEN" in text and "my-chosen-token-0123456789" not in text
        token = "my-chosen-token-0123456789"
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


def test_run_adopts_existing_accounts_of_a_seeded_emulator(tmp_path):
    """SCIM_ADOPT=mail with DRUPAL_EMULATOR_SEED_USERS (relative to where scripts/run starts):
    the lookup JumpCloud sends finds `jsmith` by its address (docs/existing-accounts.md)."""
    scim_port, admin_port, emu_port = free_port(), free_port(), free_port()
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{scim_port}",
            "ENVOY_ADMIN": f"127.0.0.1:{admin_port}",
            "DRUPAL_EMULATOR_LISTEN": f"127.0.0.1:{emu_port}",
            "SCIM_ADOPT": "mail",
            "DRUPAL_EMULATOR_SEED_USERS": "tests/e2e/data/existing-accounts.json",
        },
        tmp_path / "run.log",
        cwd=REPO_ROOT,
    )
    try:
        base, token, text = wait_banner(proc, tmp_path / "run.log")
        assert "Existing accounts: adopt = mail" in text
        r = requests.get(
            base + "/Users",
            params={"filter": 'userName eq "jsmith@corp.example"'},
            headers={"Authorization": "Bearer " + token},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert [u["userName"] for u in r.json()["Resources"]] == ["JSmith@Corp.example"]
    finally:
        if proc.poll() is None:
            stop_and_check(proc, [scim_port, admin_port, emu_port])


def test_run_refuses_an_unknown_drupal_auth(tmp_path):
    proc = start_run({"DRUPAL_AUTH": "digest"}, tmp_path / "run.log")
    assert proc.wait(timeout=120) != 0
    assert "DRUPAL_AUTH must be basic or session" in (tmp_path / "run.log").read_text()


def test_run_requires_credentials_with_drupal_url(tmp_path):
    proc = start_run({"DRUPAL_URL": "http://127.0.0.1:9"}, tmp_path / "run.log")
    assert proc.wait(timeout=120) != 0
    assert "DRUPAL_USERNAME" in (tmp_path / "run.log").read_text()


def test_run_serves_a_given_drupal_with_its_own_mapping_and_groups(tmp_path):
    """A real site's one command: DRUPAL_URL with SCIM_ATTRIBUTES (a mapping of the site's own
    fields, given relative to where scripts/run starts), SCIM_GROUPS=on and SCIM_PUBLIC_URL."""
    site = harness.Emulator(
        tmp_path,
        fields=False,
        # The site's own fields, the vocabulary scim_groups and field_scim_groups (docs/groups.md).
        extra_args=["--second-run-fields", "--user-field", "field_job_title", "--user-field", "field_cost_center"],
    ).start()
    (tmp_path / "site-attributes.json").write_text(
        json.dumps(
            [
                {"scim": "title", "drupal": "field_job_title"},
                {"scim": f"{ENTERPRISE_USER}:costCenter", "drupal": "field_cost_center"},
            ]
        )
    )
    scim_port, admin_port = free_port(), free_port()
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{scim_port}",
            "ENVOY_ADMIN": f"127.0.0.1:{admin_port}",
            "DRUPAL_URL": site.url,
            "DRUPAL_USERNAME": site.admin_user,
            "DRUPAL_PASSWORD": site.admin_pass,
            "SCIM_ATTRIBUTES": "site-attributes.json",
            "SCIM_GROUPS": "on",
            "SCIM_PUBLIC_URL": "https://sso.example.org/",
        },
        tmp_path / "run.log",
        cwd=tmp_path,
    )
    try:
        base, token, text = wait_banner(proc, tmp_path / "run.log")
        assert "site-attributes.json" in text and '"vocabulary":"scim_groups"' in text
        # The IdP is given the public base URL.
        assert "SCIM base URL: https://sso.example.org/scim/v2\n" in text
        h = {"Authorization": "Bearer " + token}
        hj = {**h, "Content-Type": "application/scim+json"}
        schema = requests.get(base + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", headers=h, timeout=10).json()
        names = [a["name"] for a in schema["attributes"]]
        assert "title" in names and "groups" in names and "name" not in names, names

        r = requests.post(
            base + "/Users",
            headers=hj,
            json={
                "schemas": [harness.CORE_USER, ENTERPRISE_USER],
                "userName": "site@example.com",
                "emails": [{"value": "site@example.com", "type": "work", "primary": True}],
                "title": "Engineer",
                ENTERPRISE_USER: {"costCenter": "CC-7"},
                "displayName": "not mapped: ignored",
            },
            timeout=10,
        )
        assert r.status_code == 201, r.text
        user = r.json()
        assert user["title"] == "Engineer" and user[ENTERPRISE_USER] == {"costCenter": "CC-7"}
        assert "displayName" not in user
        # SCIM_PUBLIC_URL is the plugin's public_url.
        assert user["meta"]["location"] == f"https://sso.example.org/scim/v2/Users/{user['id']}"
        assert r.headers["Location"] == user["meta"]["location"]
        stored = site.drupal_user(user["id"])
        assert stored["field_job_title"] == "Engineer" and stored["field_cost_center"] == "CC-7"
        again = requests.get(f"{base}/Users/{user['id']}", headers=h, timeout=10).json()
        assert again["title"] == "Engineer" and again[ENTERPRISE_USER] == {"costCenter": "CC-7"}

        # SCIM_GROUPS=on: /Groups as terms of scim_groups, membership in field_scim_groups.
        r = requests.post(
            base + "/Groups",
            headers=hj,
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Run Team",
                "members": [{"value": user["id"]}],
            },
            timeout=30,
        )
        assert r.status_code == 201, r.text
        group = r.json()
        listed = requests.get(base + "/Groups", params={"filter": 'displayName eq "Run Team"'}, headers=h, timeout=30)
        assert listed.status_code == 200, listed.text
        (found,) = listed.json()["Resources"]
        assert found["id"] == group["id"] and [m["value"] for m in found["members"]] == [user["id"]]
        member = requests.get(f"{base}/Users/{user['id']}", headers=h, timeout=10).json()
        assert [g["value"] for g in member["groups"]] == [group["id"]]
    finally:
        try:
            if proc.poll() is None:
                stop_and_check(proc, [scim_port, admin_port])
        finally:
            site.stop()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SCIM_ATTRIBUTES": "no-such-mapping.json"}, "SCIM_ATTRIBUTES: no-such-mapping.json is not a file"),
        ({"SCIM_ATTRIBUTES": "bad.json"}, "SCIM_ATTRIBUTES: "),
        ({"SCIM_ATTRIBUTES": "list-of-strings.json"}, "is not an object with string \"scim\" and \"drupal\""),
        ({"SCIM_GROUPS": "yes please"}, "SCIM_GROUPS: must be on, off or a JSON object"),
        ({"SCIM_GROUPS": '{"vocabulary": '}, "SCIM_GROUPS: not valid JSON"),
        ({"SCIM_GROUPS": '["scim_groups"]'}, "SCIM_GROUPS: must be on, off or a JSON object"),
        ({"SCIM_GROUPS": '{"vocabulary": "teams"}'}, "SCIM_GROUPS: the Drupal emulator has only the vocabulary"),
        ({"SCIM_PUBLIC_URL": "sso.example.org"}, "SCIM_PUBLIC_URL: must be http(s)://host[:port] without a path"),
        ({"SCIM_PUBLIC_URL": "https://sso.example.org/scim"}, "SCIM_PUBLIC_URL: must be http(s)://host[:port] without a path"),
        ({"SCIM_ADOPT": "username"}, "SCIM_ADOPT: must be off or mail"),
        ({"SCIM_ADOPT_RENAME": "on"}, "SCIM_ADOPT_RENAME: on needs SCIM_ADOPT=mail"),
        ({"DRUPAL_EMULATOR_SEED_USERS": "no-such-seed.json"}, "DRUPAL_EMULATOR_SEED_USERS: "),
    ],
)
def test_run_refuses_bad_mapping_groups_or_public_url_before_building(tmp_path, env, message):
    (tmp_path / "bad.json").write_text('[{"scim": "title", "drupal": "field_title"},]')
    (tmp_path / "list-of-strings.json").write_text('["title"]')
    proc = start_run(env, tmp_path / "run.log", cwd=tmp_path)
    assert proc.wait(timeout=120) != 0
    text = (tmp_path / "run.log").read_text()
    (variable,) = env
    error_lines = [line for line in text.splitlines() if line.startswith(f"[run] error: {variable}: ")]
    assert error_lines and message in error_lines[0], text
    assert "building the filter" not in text, text


def test_run_stops_when_the_site_lacks_a_mapped_field(tmp_path, emulator):
    """The filter's start-up check of the mapping against Drupal: scripts/run stops with the
    filter's message instead of serving 503s."""
    (tmp_path / "attributes.json").write_text(json.dumps([{"scim": "title", "drupal": "field_not_on_this_site"}]))
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{free_port()}",
            "ENVOY_ADMIN": f"127.0.0.1:{free_port()}",
            "DRUPAL_URL": emulator.url,
            "DRUPAL_USERNAME": emulator.admin_user,
            "DRUPAL_PASSWORD": emulator.admin_pass,
            "SCIM_ATTRIBUTES": str(tmp_path / "attributes.json"),
        },
        tmp_path / "run.log",
    )
    try:
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = (tmp_path / "run.log").read_text()
    assert "[run] error: the filter refused its configuration" in text, text[-3000:]
    assert "invalid plugin configuration: field `attributes`: Drupal's user entity has no field `field_not_on_this_site`" in text
    assert "SCIM base URL:" not in text


def test_run_gives_the_emulator_the_fields_of_a_chosen_mapping(tmp_path):
    """With the emulator, SCIM_ATTRIBUTES picks the mapping and the emulator gets its fields;
    SCIM_GROUPS=off leaves /Groups out."""
    (tmp_path / "nick.json").write_text(json.dumps([{"scim": "nickName", "drupal": "field_nick"}]))
    scim_port, admin_port, emu_port = free_port(), free_port(), free_port()
    proc = start_run(
        {
            "SCIM_LISTEN": f"127.0.0.1:{scim_port}",
            "ENVOY_ADMIN": f"127.0.0.1:{admin_port}",
            "DRUPAL_EMULATOR_LISTEN": f"127.0.0.1:{emu_port}",
            "SCIM_ATTRIBUTES": str(tmp_path / "nick.json"),
            "SCIM_GROUPS": "off",
        },
        tmp_path / "run.log",
    )
    try:
        base, token, text = wait_banner(proc, tmp_path / "run.log")
        assert "Groups: off" in text
        h = {"Authorization": "Bearer " + token}
        r = requests.post(
            base + "/Users",
            headers={**h, "Content-Type": "application/scim+json"},
            json={"schemas": [harness.CORE_USER], "userName": "nick@example.com", "nickName": "Nick", "title": "unmapped"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        assert r.json()["nickName"] == "Nick" and "title" not in r.json()
        schema = requests.get(base + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", headers=h, timeout=10).json()
        assert [a["name"] for a in schema["attributes"]] == ["userName", "emails", "active", "nickName", "password"]
        assert requests.get(base + "/Groups", headers=h, timeout=10).status_code == 404
    finally:
        if proc.poll() is None:
            stop_and_check(proc, [scim_port, admin_port, emu_port])
