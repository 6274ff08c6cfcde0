"""Account protection fails closed (issue 18, items 7 and 8): an account whose roles Drupal's
answer does not name (older cores without `meta.drupal_internal__target_id`, JSON:API Extras
renaming or hiding `roles`) is read-only to SCIM; a gateway started against such a Drupal
serves nothing and says why; Drupal's anonymous user is no SCIM user whatever the site named
it; and `administrator` cannot be granted through `role_grants`."""

import json

from harness import assert_scim_error, wait_for
from test_config_tool import GOOD, run

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROLES_UNREADABLE = "does not show which roles the account holds"


def deactivate():
    return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}




def drupal_user(emulator, uuid):
    r = emulator.jsonapi("GET", f"/jsonapi/user/user/{uuid}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_accounts_whose_roles_drupal_hides_are_read_only(scim, emulator, seed_user):
    boss = seed_user("boss@example.com", mail="boss@example.com", roles=["administrator"])["uuid"]
    plain = seed_user("plain@example.com", mail="plain@example.com")["uuid"]
    # The site as it is: the administrator is protected, the plain account writable.
    err = assert_scim_error(scim("PATCH", f"/Users/{boss}", json=deactivate()), 403)
    assert "`administrator`" in err["detail"], err["detail"]
    # Drupal stops naming the roles (the gateway started while it still did).
    emulator.settings(hide_role_ids=True)
    roles = drupal_user(emulator, boss)["relationships"]["roles"]["data"]
    assert roles and all("meta" not in r for r in roles), roles
    for method, body in (("PATCH", deactivate()), ("DELETE", None)):
        err = assert_scim_error(scim(method, f"/Users/{boss}", json=body), 403)
        assert ROLES_UNREADABLE in err["detail"], err["detail"]
    # Still readable, and unchanged.
    r = scim("GET", f"/Users/{boss}")
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    assert drupal_user(emulator, boss)["attributes"]["status"] is True
    # An empty `roles` list is an answer: an account without roles stays writable.
    assert drupal_user(emulator, plain)["relationships"]["roles"]["data"] == []
    assert scim("PATCH", f"/Users/{plain}", json=deactivate()).status_code == 200
    # Names again: the administrator is protected for its role.
    emulator.settings(hide_role_ids=False)
    err = assert_scim_error(scim("PATCH", f"/Users/{boss}", json=deactivate()), 403)
    assert "`administrator`" in err["detail"], err["detail"]


def test_a_gateway_started_against_hidden_role_ids_serves_nothing(new_envoy, emulator, seed_user):
    seed_user("boss@example.com", mail="boss@example.com", roles=["administrator"])
    plain = seed_user("plain@example.com", mail="plain@example.com")["uuid"]
    emulator.settings(hide_role_ids=True)
    gw = new_envoy(start=False)
    gw.start(wait_for_checks=False)
    assert wait_for(lambda: "account protection cannot work" in gw.log_text()), gw.log_text()[-2000:]
    for method, path, body in (
        ("GET", "/Users", None),
        ("PATCH", f"/Users/{plain}", deactivate()),
        ("GET", "/ServiceProviderConfig", None),
    ):
        err = assert_scim_error(gw.scim(method, path, json=body), 502)
        assert "meta.drupal_internal__target_id" in err["detail"], err["detail"]
        assert "administrators" in err["detail"], err["detail"]
    assert drupal_user(emulator, plain)["attributes"]["status"] is True


def test_the_anonymous_user_is_no_scim_user_whatever_its_label(scim, emulator):
    emulator.settings(anonymous_label="Gast")
    listed = emulator.jsonapi("GET", "/jsonapi/user/user").json()["data"]
    anonymous = [u for u in listed if "name" not in u["attributes"]]
    assert [u["attributes"]["display_name"] for u in anonymous] == ["Gast"], anonymous
    uuid = anonymous[0]["id"]
    assert_scim_error(scim("GET", f"/Users/{uuid}"), 404)
    assert_scim_error(scim("PATCH", f"/Users/{uuid}", json=deactivate()), 404)
    # The service account was not taken for refused: SCIM serves on.
    assert scim("GET", "/Users").status_code == 200


def test_role_grants_cannot_grant_administrator():
    cfg = {**GOOD, "groups": {"role_grants": {"Admins": ["administrator"]}}}
    r = run("check", "-", stdin=json.dumps(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "`groups.role_grants.Admins`" in r.stdout and "`administrator` can never be granted" in r.stdout, r.stdout
    ok = {**GOOD, "groups": {"role_grants": {"Devs": ["developer"]}}}
    assert run("check", "-", stdin=json.dumps(ok)).returncode == 0


def test_a_granted_role_that_administers_users_is_never_granted(new_envoy, emulator, seed_user):
    from groups_support import drupal_roles, group_body, groups_config

    ann = seed_user("ann@example.com", mail="ann@example.com")["uuid"]
    # The gateway started while the role was harmless (its start-up check read the role);
    # then the site gave the granted role a take-over permission.
    gw = new_envoy(plugin_overrides={"groups": groups_config(role_grants={"Engineering": ["content_editor"]})})
    emulator.settings(grant_permissions={"content_editor": ["administer users"]})
    listed = emulator.jsonapi("GET", "/jsonapi/user_role/user_role").json()["data"]
    editor = next(r for r in listed if r["attributes"]["drupal_internal__id"] == "content_editor")
    assert "administer users" in editor["attributes"]["permissions"]
    err = assert_scim_error(gw.scim("POST", "/Groups", json=group_body("Engineering", [ann])), 403)
    assert "`content_editor`" in err["detail"] and "holds 'administer users'" in err["detail"], err["detail"]
    assert gw.scim("GET", "/Groups").json()["totalResults"] == 0
    # A group without members grants nothing; adding a member later is refused the same way.
    r = gw.scim("POST", "/Groups", json=group_body("Engineering"))
    assert r.status_code == 201, r.text
    add = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": ann}]}]}
    err = assert_scim_error(gw.scim("PATCH", f"/Groups/{r.json()['id']}", json=add), 403)
    assert "holds 'administer users'" in err["detail"], err["detail"]
    assert drupal_roles(emulator, ann) == set()
    assert gw.scim("GET", f"/Groups/{r.json()['id']}").json().get("members", []) == []
