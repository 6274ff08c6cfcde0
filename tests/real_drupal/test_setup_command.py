"""scripts/drupal-setup, the README's "The Drupal side" in one command, on the real site that
`scripts/real-drupal up --dir $REAL_DRUPAL_DIR` brought up (and set up with that command).

Self-contained: it reads DIR/real-drupal.env itself and talks to Drupal over HTTP (JSON:API) and
through `scripts/real-drupal php` (PHP in the bootstrapped site). Every Drupal change it makes
(one user, one throwaway field) is removed again.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP = REPO_ROOT / "scripts" / "drupal-setup"
REAL_DRUPAL = REPO_ROOT / "scripts" / "real-drupal"
# PHP in WebAssembly (11.4.5) boots Drupal in tens of seconds; a cache rebuild takes longer.
TIMEOUT = 600


def _env_file(site_dir: Path) -> dict[str, str]:
    out = {}
    for line in (site_dir / "real-drupal.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            parts = shlex.split(value)
            out[key.strip()] = parts[0] if parts else ""
    return out


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    site_dir = os.environ.get("REAL_DRUPAL_DIR")
    if not site_dir:
        pytest.fail("REAL_DRUPAL_DIR is not set (the --dir of `scripts/real-drupal up`)", pytrace=False)
    e = _env_file(Path(site_dir))
    e["DIR"] = str(Path(site_dir).resolve())
    # The secrets `up` was given, unless the environment names others.
    for k in ("DRUPAL_USERNAME", "DRUPAL_PASSWORD", "DRUPAL_ADMIN_PASSWORD"):
        e[k] = os.environ.get(k) or e.get(k, "")
        assert e[k], f"{k} is neither in the environment nor in real-drupal.env"
    return e


def setup(env: dict[str, str], *args: str, root: str | None = None, **override) -> subprocess.CompletedProcess:
    """scripts/drupal-setup on the site with the options `up` used, ARGS appended (a later
    option wins), the service account's secrets in the environment only."""
    opts = {
        "--attributes": env["DRUPAL_SETUP_ATTRIBUTES"],
        "--groups": env["DRUPAL_SETUP_GROUPS"],
        "--user-delete": env["DRUPAL_SETUP_USER_DELETE"],
    }
    if env.get("DRUPAL_SETUP_REVERSE_PROXY", "none") != "none":
        opts["--reverse-proxy"] = env["DRUPAL_SETUP_REVERSE_PROXY"]
    opts.update({f"--{k.replace('_', '-')}": v for k, v in override.items()})
    argv = [str(SETUP), "--root", root or env["DRUPAL_DOCROOT"], "--php", env["DRUPAL_PHP"], "--uri", env["DRUPAL_URL"]]
    for k, v in opts.items():
        argv += [k, v]
    argv += list(args)
    child_env = dict(os.environ, DRUPAL_USERNAME=env["DRUPAL_USERNAME"], DRUPAL_PASSWORD=env["DRUPAL_PASSWORD"])
    return subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=TIMEOUT)


def site_php(env: dict[str, str], code: str, *args: str) -> str:
    r = subprocess.run(
        [str(REAL_DRUPAL), "php", "--dir", env["DIR"], "-r", code, *args],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert r.returncode == 0, f"real-drupal php failed ({r.returncode}): {r.stderr[-2000:]}"
    return r.stdout


def jsonapi(env, method, path, auth, body=None):
    headers = {"Accept": "application/vnd.api+json"}
    if body is not None:
        headers["Content-Type"] = "application/vnd.api+json"
    return requests.request(
        method, env["DRUPAL_URL"] + path, auth=auth, headers=headers,
        data=json.dumps(body) if body is not None else None, timeout=120,
    )


# On 11.4.5 too (the smoke set): the README's Drupal side, proven on both releases.
@pytest.mark.smoke
def test_setup_twice_changes_nothing_the_second_time(env):
    first = setup(env)
    assert first.returncode == 0, first.stderr
    second = setup(env)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines[-1] == "drupal-setup: nothing changed", second.stdout
    assert not [ln for ln in lines if ln.startswith("did:")], second.stdout
    # What it found already done, item by item.
    assert "ok: module jsonapi enabled" in lines
    assert "ok: JSON:API accepts writes (jsonapi.settings read_only false)" in lines
    assert any(ln.startswith(f"ok: service account {env['DRUPAL_USERNAME']} ") for ln in lines), second.stdout
    if env.get("DRUPAL_SETUP_REVERSE_PROXY", "none") != "none":
        assert f"ok: settings.php trusts the reverse proxy {env['DRUPAL_SETUP_REVERSE_PROXY']} for X-Forwarded-For and -Proto only" in lines


def test_reverse_proxy_settings_are_written_once_and_replaced(env, tmp_path):
    """--reverse-proxy writes one marked block at the end of settings.php; other addresses
    replace it; an address that is none is refused before anything changes."""
    want = env.get("DRUPAL_SETUP_REVERSE_PROXY", "none")
    assert want != "none", "the site was brought up with --reverse-proxy none"
    settings = Path(env["DRUPAL_DOCROOT"]) / "sites" / "default" / "settings.php"
    # Drupal's installer leaves it read-only (PHP in WebAssembly honours that even for root).
    mode = settings.stat().st_mode
    settings.chmod(mode | 0o200)
    bad = setup(env, reverse_proxy="10.0.0.5,not-an-address")
    assert bad.returncode == 2 and "not-an-address" in bad.stderr, (bad.returncode, bad.stderr)
    try:
        other = setup(env, reverse_proxy=f"{want},10.0.0.0/8")
        assert other.returncode == 0, other.stderr
        assert f"did: settings.php trusts the reverse proxy {want}, 10.0.0.0/8 for X-Forwarded-For and -Proto only" in other.stdout
        text = settings.read_text()
        assert text.count("// BEGIN envoy-scim-drupal reverse proxy") == 1
        assert text.rstrip().endswith("// END envoy-scim-drupal reverse proxy")
        got = site_php(env, 'echo json_encode([\\Drupal\\Core\\Site\\Settings::get("reverse_proxy"), \\Drupal\\Core\\Site\\Settings::get("reverse_proxy_addresses")]);')
        assert json.loads(got) == [True, [want, "10.0.0.0/8"]]
    finally:
        back = setup(env)
        settings.chmod(mode)
        assert back.returncode == 0, back.stderr
    assert settings.read_text().count("// BEGIN envoy-scim-drupal reverse proxy") == 1
    assert f"did: settings.php trusts the reverse proxy {want} for" in back.stdout


def test_allowed_roles_are_checked_and_made_readable(env):
    """--allowed-roles (the plugin's allowed_roles): a role that holds 'administer users' is
    refused before anything changes; a harmless one gets the gateway's role 'administer
    permissions', which it needs to read the role's permissions at start-up."""
    perms = 'echo json_encode(\\Drupal\\user\\Entity\\Role::load($args[0])->getPermissions());'
    toggle = ('$r = \\Drupal\\user\\Entity\\Role::load($args[0]); '
              '$args[2] === "1" ? $r->grantPermission($args[1]) : $r->revokePermission($args[1]); $r->save();')
    assert "administer permissions" not in json.loads(site_php(env, perms, "scim_gateway"))
    site_php(env, toggle, "content_editor", "administer users", "1")
    try:
        r = setup(env, "--allowed-roles", "content_editor")
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        assert "'content_editor' holds 'administer users'" in r.stderr, r.stderr
        assert not [ln for ln in r.stdout.splitlines() if ln.startswith("did:")], r.stdout
    finally:
        site_php(env, toggle, "content_editor", "administer users", "0")
    try:
        r = setup(env, "--allowed-roles", "content_editor")
        assert r.returncode == 0, r.stderr
        assert "did: granted 'administer permissions' to role scim_gateway" in r.stdout, r.stdout
        assert "administer permissions" in json.loads(site_php(env, perms, "scim_gateway"))
    finally:
        site_php(env, toggle, "scim_gateway", "administer permissions", "0")


def test_refuses_a_field_of_the_same_name_with_another_type(env, tmp_path):
    field = f"field_probe_{secrets.token_hex(4)}"
    site_php(env, """
        \\Drupal\\field\\Entity\\FieldStorageConfig::create(["field_name" => $args[0], "entity_type" => "user", "type" => "integer"])->save();
        \\Drupal\\field\\Entity\\FieldConfig::create(["field_name" => $args[0], "entity_type" => "user", "bundle" => "user", "label" => "probe"])->save();
    """, field)
    try:
        mapping = tmp_path / "mapping.json"
        mapping.write_text(json.dumps([{"scim": "title", "drupal": field}]))
        r = setup(env, attributes=str(mapping))
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("drupal-setup: error: "), r.stderr
        assert field in err[0] and "integer" in err[0] and "string" in err[0], err[0]
        assert not [ln for ln in r.stdout.splitlines() if ln.startswith("did:")], r.stdout
        kind = site_php(env, 'echo \\Drupal\\field\\Entity\\FieldStorageConfig::loadByName("user", $args[0])->getType();', field)
        assert kind.strip() == "integer"
    finally:
        site_php(env, '\\Drupal\\field\\Entity\\FieldStorageConfig::loadByName("user", $args[0])?->delete(); field_purge_batch(100);', field)


def test_refuses_a_missing_docroot_and_a_folder_that_is_not_drupal(env, tmp_path):
    r = setup(env, root=str(tmp_path / "no-such-docroot"))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [f"drupal-setup: error: no such docroot: {tmp_path / 'no-such-docroot'}"]
    r = setup(env, root=str(tmp_path))
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "is not a Drupal docroot" in err[0], r.stderr


def test_the_service_account_logs_in_and_creates_a_user_over_jsonapi(env):
    service = (env["DRUPAL_USERNAME"], env["DRUPAL_PASSWORD"])
    r = jsonapi(env, "GET", "/jsonapi", service)
    assert r.status_code == 200
    # Drupal treats a wrong password as anonymous; `me` is there only for an authenticated account.
    assert "me" in r.json()["meta"]["links"], r.text[:500]
    name = f"setup-probe-{secrets.token_hex(4)}"
    body = {"data": {"type": "user--user", "attributes": {"name": name, "mail": f"{name}@example.org", "status": True}}}
    r = jsonapi(env, "POST", "/jsonapi/user/user", service, body)
    try:
        assert r.status_code == 201, r.text[:1000]
        assert r.json()["data"]["attributes"]["name"] == name
    finally:
        site_php(env, """
            foreach (\\Drupal::entityTypeManager()->getStorage("user")->loadByProperties(["name" => $args[0]]) as $u) { $u->delete(); }
        """, name)


# On 11.4.5 too (the smoke set): the README's Drupal side, proven on both releases.
@pytest.mark.smoke
def test_the_role_holds_the_vocabulary_permissions(env):
    assert env["DRUPAL_SETUP_GROUPS"] != "off", "the site was brought up with --groups off; this test needs groups"
    out = site_php(env, """
        $role = \\Drupal\\user\\Entity\\Role::load("scim_gateway");
        $known = \\Drupal::service("user.permissions")->getPermissions();
        $account = current(\\Drupal::entityTypeManager()->getStorage("user")->loadByProperties(["name" => $args[0]]));
        echo json_encode([
          "permissions" => $role->getPermissions(),
          "known" => array_values(array_filter(array_keys($known), fn($p) => str_contains($p, "scim_groups"))),
          "roles" => $account->getRoles(),
        ]);
    """, env["DRUPAL_USERNAME"])
    got = json.loads(out)
    wanted = {"create terms in scim_groups", "edit terms in scim_groups", "delete terms in scim_groups"}
    assert wanted <= set(got["known"]), got["known"]
    assert wanted | {"administer users"} <= set(got["permissions"]), got["permissions"]
    assert "scim_gateway" in got["roles"]
