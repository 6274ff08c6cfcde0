"""Adopting existing accounts (`adopt: "mail"`, docs/existing-accounts.md) on a site that
already has people: an emulator started with `--seed-users tests/e2e/data/existing-accounts.json`
(login names unlike their mails, an administrator sharing an address case-insensitively, two
accounts sharing one address, an address that is one account's mail and another's login name).
JumpCloud's flow through Envoy: Test Connection, lookup, create → adopt, PATCH, PUT,
deactivate, group bind; then the refusals, the default (off), the rename opt-in, and
`scripts/adopt-preview` against the same site."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import harness
from groups_support import drupal_group_refs, groups_config
from harness import LIST_RESPONSE, PATCH_OP, Emulator, Envoy, assert_scim_error, concurrently, jumpcloud_user
from idp_requests import DEACTIVATE, lookup
from idp_requests import JUMPCLOUD_UPDATE as UPDATE
from idp_requests import group_body

pytestmark = pytest.mark.no_leak_check

SEED = Path(__file__).parent / "data" / "existing-accounts.json"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("adopt-site"), extra_args=["--seed-users", str(SEED)]).start()
    yield emu
    emu.stop()


def _envoy(site, tmp_path_factory, stack, name, **plugin):
    overrides = {**stack.plugin_overrides(), "groups": groups_config(), **plugin}
    e = Envoy(tmp_path_factory.mktemp(name), site, stack.tokens, plugin_overrides=overrides, name=name)
    return e.start()


@pytest.fixture(scope="module")
def gw(site, tmp_path_factory, stack):
    e = _envoy(site, tmp_path_factory, stack, "adopt", adopt="mail")
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def _fresh_site(site):
    site.reset()  # re-creates the seeded accounts too


def account(site, name: str) -> dict:
    u = site.drupal_user_by_name(name)
    assert u is not None, f"seeded account {name} missing"
    return u


def stat(envoy: Envoy, name: str) -> int:
    for line in envoy.stats().splitlines():
        n, sep, value = line.partition(": ")
        if sep and n.strip() == name and value.strip().isdigit():
            return int(value)
    return 0


def test_jumpcloud_flow_adopts_existing_accounts(gw, site):
    scim = gw.scim
    jsmith, mary = account(site, "jsmith"), account(site, "mary.k")
    adopted_before = stat(gw, "wasmcustom.scim.adoptions.on.create"), stat(gw, "wasmcustom.scim.adoptions.on.lookup")

    # Test Connection: every account's userName is its e-mail address.
    r = scim("GET", "/Users", params={"count": "100"})
    assert r.status_code == 200 and r.json()["schemas"] == [LIST_RESPONSE], r.text
    shown = {u["id"]: u["userName"] for u in r.json()["Resources"]}
    assert shown[jsmith["id"]] == "JSmith@Corp.example"

    # Lookup before create, in another case than Drupal stores it: the existing account.
    body = lookup(scim, "jsmith@corp.example")
    assert [u["id"] for u in body["Resources"]] == [jsmith["id"]], body
    assert body["Resources"][0]["userName"].lower() == "jsmith@corp.example"
    assert lookup(scim, "nobody@corp.example")["totalResults"] == 0
    r = scim("GET", "/Users", params={"filter": 'emails[value eq "JSMITH@corp.example"]'})
    assert [u["id"] for u in r.json()["Resources"]] == [jsmith["id"]], r.text

    # JumpCloud's update PATCH, then a full PUT: managed, login name kept.
    r = scim("PATCH", f"/Users/{jsmith['id']}", json=UPDATE)
    assert r.status_code == 200, r.text
    assert r.json()["userName"].lower() == "jsmith@corp.example"
    d = site.drupal_user(jsmith["id"])
    assert (d["name"], d["field_given_name"], d["status"]) == ("jsmith", "John", False)
    r = scim("PUT", f"/Users/{jsmith['id']}", json=jumpcloud_user("jsmith@corp.example"))
    assert r.status_code == 200, r.text
    assert r.json()["userName"] == "jsmith@corp.example"
    d = site.drupal_user(jsmith["id"])
    assert (d["name"], d["mail"], d["status"], d["field_given_name"]) == ("jsmith", "jsmith@corp.example", True, "Jane")
    r = scim("GET", f"/Users/{jsmith['id']}")
    assert r.status_code == 200 and r.json()["userName"] == "jsmith@corp.example"

    # Deactivate (unbind / suspend).
    r = scim("PATCH", f"/Users/{jsmith['id']}", json=DEACTIVATE)
    assert r.status_code == 200 and site.drupal_user(jsmith["id"])["status"] is False

    # Create of a person who already has an account: adopted, 201 with the account's id.
    r = scim("POST", "/Users", json=jumpcloud_user("Mary.Kaye@corp.example"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == mary["id"]
    assert r.headers["Location"].endswith(f"/Users/{mary['id']}")
    assert r.json()["userName"] == "Mary.Kaye@corp.example"
    d = site.drupal_user(mary["id"])
    assert (d["name"], d["mail"], d["field_given_name"]) == ("mary.k", "Mary.Kaye@corp.example", "Jane")

    # A new person: a new account named with the address.
    r = scim("POST", "/Users", json=jumpcloud_user("new.person@corp.example"))
    assert r.status_code == 201, r.text
    new = site.drupal_user(r.json()["id"])
    assert (new["name"], new["mail"]) == ("new.person@corp.example", "new.person@corp.example")
    assert r.json()["id"] not in (jsmith["id"], mary["id"])

    # An account whose login name already is its address is found, and is no adoption.
    lee = account(site, "lee@corp.example")
    assert [u["id"] for u in lookup(scim, "LEE@corp.example")["Resources"]] == [lee["id"]]

    # Group bind: JumpCloud creates the group with the adopted members.
    r = scim("POST", "/Groups", json=group_body("Engineering", [jsmith["id"], mary["id"]]))
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert gid in drupal_group_refs(site, jsmith["id"]) and gid in drupal_group_refs(site, mary["id"])

    # The adoptions were counted and logged (uid, never the address).
    assert stat(gw, "wasmcustom.scim.adoptions.on.create") == adopted_before[0] + 1
    assert stat(gw, "wasmcustom.scim.adoptions.on.lookup") >= adopted_before[1] + 2
    lines = [l for l in gw.log_text().splitlines() if " adopted=1 " in l]
    assert any(f"uids={mary['drupal_internal__uid']} " in l and "op=create" in l for l in lines), lines[-5:]
    assert not any("@" in l.split("scim request_id", 1)[1] for l in lines)


def test_protected_accounts_and_ambiguities_are_409_naming_the_accounts(gw, site):
    scim = gw.scim
    boss = account(site, "site-boss")
    for send in (
        lambda: scim("GET", "/Users", params={"filter": 'userName eq "boss@corp.example"'}),
        lambda: scim("POST", "/Users", json=jumpcloud_user("boss@corp.example")),
    ):
        e = assert_scim_error(send(), 409)
        assert f"uid {boss['drupal_internal__uid']}" in e["detail"] and "never adopted" in e["detail"], e
        assert "administrator" in e["detail"], e
    d = site.drupal_user(boss["id"])
    assert (d["name"], d["mail"]) == ("site-boss", "Boss@Corp.example")

    a, b = account(site, "twin-a"), account(site, "twin-b")
    for send in (
        lambda: scim("GET", "/Users", params={"filter": 'emails eq "twin@corp.example"'}),
        lambda: scim("POST", "/Users", json=jumpcloud_user("twin@corp.example")),
    ):
        e = assert_scim_error(send(), 409)
        assert f"uid {a['drupal_internal__uid']}" in e["detail"] and f"uid {b['drupal_internal__uid']}" in e["detail"], e

    patty, pat = account(site, "patty"), account(site, "pat@corp.example")
    e = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("pat@corp.example")), 409)
    assert f"uid {patty['drupal_internal__uid']}" in e["detail"] and f"uid {pat['drupal_internal__uid']}" in e["detail"], e
    assert site.drupal_user(patty["id"])["name"] == "patty"

    # Protected accounts stay read-only by id as well.
    r = scim("PATCH", f"/Users/{boss['id']}", json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert_scim_error(r, 403)


def test_concurrent_creates_of_one_address_end_on_one_account(gw, site):
    mary = account(site, "mary.k")
    results = concurrently([lambda: gw.scim("POST", "/Users", json=jumpcloud_user("mary.kaye@corp.example"))] * 4)
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    assert {r.json()["id"] for r in results} == {mary["id"]}
    results = concurrently([lambda: gw.scim("POST", "/Users", json=jumpcloud_user("brand.new@corp.example"))] * 4)
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1, "the later creates adopt the first one's account"
    assert len([u for u in site.drupal_users() if (u.get("mail") or "").lower() == "brand.new@corp.example"]) == 1


def test_scim_config_check_knows_the_settings(tmp_path):
    tool = harness.REPO_ROOT / "target" / "release" / "scim-config"
    cfg = {"tokens": [{"label": "jc", "sha256": "ab" * 32}], "drupal": {"cluster": "d", "authority": "d.example"},
           "adopt": "username", "adopt_rename": True}
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([str(tool), "check", str(path)], capture_output=True, text=True, timeout=60).stdout
    assert "field `adopt`: `username` is not one of `off`, `mail`" in out, out
    cfg["adopt"] = "mail"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([str(tool), "check", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stdout


def test_user_name_must_be_the_address(gw):
    body = jumpcloud_user("bob@corp.example")
    body["userName"] = "bob"
    e = assert_scim_error(gw.scim("POST", "/Users", json=body), 400, "invalidValue")
    assert "userName" in e["detail"]


def test_adopting_is_off_by_default(site, tmp_path_factory, stack):
    e = _envoy(site, tmp_path_factory, stack, "noadopt")
    try:
        jsmith = account(site, "jsmith")
        assert e.scim("GET", "/Users", params={"filter": 'userName eq "jsmith@corp.example"'}).json()["totalResults"] == 0
        # (Same case: a case-only clash is issue 18's uniqueness rule, not adoption's.)
        assert_scim_error(e.scim("POST", "/Users", json=jumpcloud_user("mary.kaye@corp.example")), 409)
        assert e.scim("GET", f"/Users/{jsmith['id']}").json()["userName"] == "jsmith"
    finally:
        e.stop()


def test_renaming_is_a_second_opt_in(site, tmp_path_factory, stack):
    e = _envoy(site, tmp_path_factory, stack, "rename", adopt="mail", adopt_rename=True)
    try:
        mary = account(site, "mary.k")
        r = e.scim("POST", "/Users", json=jumpcloud_user("mary.kaye@corp.example"))
        assert r.status_code == 201 and r.json()["id"] == mary["id"], r.text
        assert site.drupal_user(mary["id"])["name"] == "mary.kaye@corp.example"
    finally:
        e.stop()


def test_adopt_preview_reports_with_the_gateways_rules(site, tmp_path):
    export = tmp_path / "jumpcloud.csv"
    export.write_text(
        "firstname,lastname,username,email\n"
        "John,Smith,jsmith,jsmith@corp.example\n"
        "Mary,Kaye,mkaye,mary.kaye@corp.example\n"
        "Big,Boss,boss,boss@corp.example\n"
        "Twin,Twin,twin,twin@corp.example\n"
        "Pat,Pat,pat,pat@corp.example\n"
        "Lee,Lee,lee,LEE@corp.example\n"
        "New,Person,newp,new.person@corp.example\n"
    )
    env = {**os.environ, "DRUPAL_USERNAME": site.admin_user, "DRUPAL_PASSWORD": site.admin_pass}
    tool = harness.REPO_ROOT / "target" / "release" / "scim-config"
    if tool.exists():
        env["SCIM_CONFIG_BIN"] = str(tool)
    site.clear_requests()
    p = subprocess.run(
        [str(harness.REPO_ROOT / "scripts" / "adopt-preview"), "--site", site.url, "--idp-export", str(export), "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    outcome = {row["identity"].lower(): row for row in report["people"]}
    assert outcome["jsmith@corp.example"]["outcome"] == "adopt" and outcome["jsmith@corp.example"]["drupal_name"] == "jsmith"
    assert outcome["mary.kaye@corp.example"]["outcome"] == "adopt"
    assert outcome["boss@corp.example"]["outcome"] == "protected"
    assert outcome["twin@corp.example"]["outcome"] == "collide"
    assert outcome["pat@corp.example"]["outcome"] == "collide"
    assert outcome["lee@corp.example"]["outcome"] == "linked"
    assert outcome["new.person@corp.example"]["outcome"] == "create"
    assert report["counts"] == {"adopt": 2, "linked": 1, "create": 1, "protected": 1, "collide": 2, "invalid": 0}
    assert report["site_accounts"] >= 9  # the seeded eight and the service account
    # No writes: the preview only read.
    assert {q["method"] for q in site.requests_log()} == {"GET"}
    # The text report ends with the counts.
    p = subprocess.run(
        [str(harness.REPO_ROOT / "scripts" / "adopt-preview"), "--site", site.url, "--idp-export", str(export)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert re.search(r"counts: adopt=2 linked=1 create=1 protected=1 collide=2 invalid=0", p.stdout), p.stdout
