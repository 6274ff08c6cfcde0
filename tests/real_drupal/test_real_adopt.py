"""Adopting existing accounts (`adopt: "mail"`, docs/existing-accounts.md) on a real Drupal:
accounts made in Drupal beforehand (login names unlike their mails, an administrator whose
address differs from the IdP's only in case, two accounts sharing an address — the second
re-addressed with the site's own PHP, which skips Drupal's validation as an import would),
then JumpCloud's flow through a gateway with `adopt: "mail"`, and `scripts/adopt-preview`
against the same site."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import harness
import realdrupal as rd
from harness import PATCH_OP, assert_scim_error, jumpcloud_user
from idp_requests import DEACTIVATE, group_body, lookup
from idp_requests import JUMPCLOUD_UPDATE as UPDATE


@pytest.fixture(scope="module")
def adopt_gw(new_gateway, site):
    gw = new_gateway("adopt", adopt="mail")
    rd.wait_ready(gw, timeout=180 if site.slow else 60)
    return gw


def set_mail_with_php(site, uid: int, mail: str) -> None:
    """Re-addresses an account with the site's PHP (no validation, as a migration would)."""
    code = f"$u = \\Drupal\\user\\Entity\\User::load({uid}); $u->setEmail({json.dumps(mail)}); $u->save();"
    p = subprocess.run(
        [str(harness.REPO_ROOT / "scripts" / "real-drupal"), "php", "--dir", str(site.dir), "-r", code],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr[-1500:]


@pytest.fixture
def existing(site, uniq, drupal_user):
    """The accounts the site already has, by role in the story."""
    accounts = {
        "jsmith": drupal_user(f"jsmith.{uniq}", f"JSmith.{uniq}@Corp.example"),
        "mary": drupal_user(f"mary.{uniq}", f"mary.kaye.{uniq}@corp.example", password=f"Mary-{uniq}-own!"),
        "boss": drupal_user(f"boss.{uniq}", f"Boss.{uniq}@Corp.example", roles=["administrator"]),
        "twin_a": drupal_user(f"twin-a.{uniq}", f"twin.{uniq}@corp.example"),
        "twin_b": drupal_user(f"twin-b.{uniq}", f"twin-b.{uniq}@corp.example"),
    }
    set_mail_with_php(site, accounts["twin_b"]["drupal_internal__uid"], f"TWIN.{uniq}@corp.example")
    return accounts


def test_jumpcloud_flow_adopts_existing_accounts(adopt_gw, site, uniq, existing, cleanup):
    def scim(method, path, **kw):
        kw.setdefault("timeout", site.timeout)
        return adopt_gw.scim(method, path, **kw)

    jsmith, mary, boss = existing["jsmith"], existing["mary"], existing["boss"]
    assert site.user(existing["twin_b"]["id"])["mail"] == f"TWIN.{uniq}@corp.example"

    # Test Connection, then the lookup in another case than Drupal stores the address.
    assert scim("GET", "/Users", params={"count": "1"}).status_code == 200
    body = lookup(scim, f"jsmith.{uniq}@corp.example")
    assert [u["id"] for u in body["Resources"]] == [jsmith["id"]], body
    assert body["Resources"][0]["userName"].lower() == f"jsmith.{uniq}@corp.example"

    # Update, replace, deactivate: managed, login name kept.
    r = scim("PATCH", f"/Users/{jsmith['id']}", json=UPDATE)
    assert r.status_code == 200, r.text
    d = site.user(jsmith["id"])
    assert (d["name"], d["field_given_name"], d["status"]) == (f"jsmith.{uniq}", "John", False)
    r = scim("PUT", f"/Users/{jsmith['id']}", json=jumpcloud_user(f"jsmith.{uniq}@corp.example"))
    assert r.status_code == 200, r.text
    d = site.user(jsmith["id"])
    assert (d["name"], d["mail"], d["status"]) == (f"jsmith.{uniq}", f"jsmith.{uniq}@corp.example", True)
    assert scim("GET", f"/Users/{jsmith['id']}").json()["userName"] == f"jsmith.{uniq}@corp.example"
    r = scim("PATCH", f"/Users/{jsmith['id']}", json=DEACTIVATE)
    assert r.status_code == 200 and site.user(jsmith["id"])["status"] is False

    # Create → adopt: the existing account, its name and password kept.
    r = scim("POST", "/Users", json=jumpcloud_user(f"Mary.Kaye.{uniq}@corp.example"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == mary["id"]
    d = site.user(mary["id"])
    assert (d["name"], d["field_given_name"]) == (f"mary.{uniq}", "Jane")
    assert site.can_log_in(f"mary.{uniq}", f"Mary-{uniq}-own!")

    # A new person is created.
    r = scim("POST", "/Users", json=jumpcloud_user(f"new.{uniq}@corp.example"))
    assert r.status_code == 201, r.text
    cleanup.user(r.json()["id"])
    assert site.user(r.json()["id"])["name"] == f"new.{uniq}@corp.example"

    # The administrator sharing the address (other case) is never adopted.
    before = site.user(boss["id"])
    for resp in (
        scim("GET", "/Users", params={"filter": f'userName eq "boss.{uniq}@corp.example"'}),
        scim("POST", "/Users", json=jumpcloud_user(f"boss.{uniq}@corp.example")),
    ):
        e = assert_scim_error(resp, 409)
        assert f"uid {boss['drupal_internal__uid']}" in e["detail"] and "never adopted" in e["detail"], e
    after = site.user(boss["id"])
    assert (after["name"], after["mail"], after["changed"]) == (before["name"], before["mail"], before["changed"])
    assert_scim_error(
        scim("PATCH", f"/Users/{boss['id']}", json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}),
        403,
    )

    # Two accounts sharing the address: 409 naming both, nothing written.
    e = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user(f"twin.{uniq}@corp.example")), 409)
    for k in ("twin_a", "twin_b"):
        assert f"uid {existing[k]['drupal_internal__uid']}" in e["detail"], e

    # Group bind with the adopted members.
    r = scim("POST", "/Groups", json=group_body(f"Adopted {uniq}", [jsmith["id"], mary["id"]]))
    assert r.status_code == 201, r.text
    gid = cleanup.term(r.json()["id"])
    assert gid in site.group_refs(jsmith["id"]) and gid in site.group_refs(mary["id"])


def test_adopt_preview_against_the_site(site, uniq, existing, tmp_path):
    export = tmp_path / "jumpcloud.csv"
    export.write_text(
        "firstname,lastname,username,email\n"
        f"John,Smith,js,jsmith.{uniq}@corp.example\n"
        f"Mary,Kaye,mk,mary.kaye.{uniq}@corp.example\n"
        f"Big,Boss,bb,boss.{uniq}@corp.example\n"
        f"Twin,Twin,tw,twin.{uniq}@corp.example\n"
        f"New,Person,np,new.{uniq}@corp.example\n"
    )
    env = {**os.environ, "DRUPAL_USERNAME": site.service_user, "DRUPAL_PASSWORD": site.service_pass}
    tool = harness.REPO_ROOT / "target" / "release" / "scim-config"
    if tool.exists():
        env["SCIM_CONFIG_BIN"] = str(tool)
    p = subprocess.run(
        [str(harness.REPO_ROOT / "scripts" / "adopt-preview"), "--site", site.url, "--idp-export", str(export), "--json"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    words = {row["identity"].lower(): row["outcome"] for row in report["people"]}
    assert words == {
        f"jsmith.{uniq}@corp.example": "adopt",
        f"mary.kaye.{uniq}@corp.example": "adopt",
        f"boss.{uniq}@corp.example": "protected",
        f"twin.{uniq}@corp.example": "collide",
        f"new.{uniq}@corp.example": "create",
    }, report
    assert report["counts"]["adopt"] == 2 and report["counts"]["create"] == 1


@pytest.mark.db("mariadb")
def test_accents_are_not_case_on_mariadb(adopt_gw, site, uniq, drupal_user):
    """MariaDB's utf8mb4_general_ci finds `josé…` for `jose…`: adoption compares without case
    only, so the account named `josé…@…` is no candidate for the IdP's `jose…@…`."""
    jose = drupal_user(f"josé.{uniq}@corp.example", f"other.{uniq}@corp.example")
    r = adopt_gw.scim("GET", "/Users", params={"filter": f'userName eq "jose.{uniq}@corp.example"'}, timeout=site.timeout)
    assert r.status_code == 200 and r.json()["totalResults"] == 0, r.text
    r = adopt_gw.scim("GET", "/Users", params={"filter": f'userName eq "other.{uniq}@corp.example"'}, timeout=site.timeout)
    assert [u["id"] for u in r.json()["Resources"]] == [jose["id"]], r.text
    assert site.user(jose["id"])["name"] == f"josé.{uniq}@corp.example"
