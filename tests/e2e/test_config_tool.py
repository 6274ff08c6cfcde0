"""The config validator (`scim-config check`, `scripts/check-config`) and the token tool
(`scim-config token`), run as an admin would run them."""

import hashlib
import json
import subprocess
from pathlib import Path

import harness

REPO = harness.REPO_ROOT
TOOL = REPO / "target" / "release" / "scim-config"
GOOD = {"tokens": [{"label": "jc", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
        "drupal": {"cluster": "drupal", "authority": "drupal.example"}}


def run(*args, stdin=None):
    return subprocess.run([str(TOOL), *args], input=stdin, capture_output=True, text=True, timeout=30)


def test_a_good_configuration_passes_and_names_the_environment_it_needs():
    r = run("check", "-", stdin=json.dumps(GOOD))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DRUPAL_USERNAME, DRUPAL_PASSWORD" in r.stdout


def test_every_problem_is_listed_with_its_field():
    bad = {
        "tokens": [{"label": "has space", "sha256": "abc"}],
        "drupal": {"cluster": "drupal", "authority": "http://x/", "timeout_ms": 0, "bogus": 1},
        "max_body_bytes": 5,
        "attributes": [{"scim": "nope", "drupal": "field_x"}],
        "rate_limits": {"nobody": {"requests_per_second": 1}},
        "unknown_top": True,
    }
    r = run("check", "-", stdin=json.dumps(bad))
    assert r.returncode == 1
    fields = [line.split("`")[1] for line in r.stdout.splitlines() if line.startswith("invalid plugin configuration")]
    for field in ["tokens[0].label", "drupal.bogus", "drupal.authority", "drupal.timeout_ms", "max_body_bytes", "attributes[0].scim", "unknown_top"]:
        assert field in fields, (field, r.stdout)


def test_not_json_is_one_clear_problem():
    r = run("check", "-", stdin="{nope")
    assert r.returncode == 1 and "not valid JSON" in r.stdout


EXAMPLE_DIGEST = hashlib.sha256(b"change-me").hexdigest()


def test_check_config_script_checks_envoy_yaml_and_the_plugin_inside(tmp_path):
    # As shipped, envoy.yaml names the published example token: refused until replaced.
    r = subprocess.run([str(REPO / "scripts" / "check-config")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode != 0
    assert "tokens[0].sha256" in r.stdout and "change-me" in r.stdout, r.stdout + r.stderr
    shipped = (REPO / "envoy.yaml").read_text().replace("filename: target/", f"filename: {REPO}/target/")
    own = shipped.replace(EXAMPLE_DIGEST, hashlib.sha256(b"a token of our own").hexdigest())
    path = tmp_path / "envoy.yaml"
    path.write_text(own)
    r = subprocess.run([str(REPO / "scripts" / "check-config"), str(path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout and "envoy.yaml' OK" in r.stdout
    broken = own.replace('"timeout_ms": 5000', '"timeout_ms": -5')
    path.write_text(broken)
    r = subprocess.run([str(REPO / "scripts" / "check-config"), str(path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode != 0
    assert "drupal.timeout_ms" in r.stdout


def test_token_tool_prints_a_token_and_its_digest():
    r = run("token", "okta")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    token = lines[0].removeprefix("token: ")
    entry = json.loads(lines[1])
    assert len(token) >= 40
    assert entry == {"label": "okta", "sha256": hashlib.sha256(token.encode()).hexdigest()}
    assert run("token").stdout != r.stdout, "tokens are random"
