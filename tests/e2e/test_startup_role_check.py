"""Start-up checks of account protection (issue 18, items 7 and 8): the gateway reads the
permissions of the roles its configuration makes writable (`groups.role_grants`,
`allowed_roles`) and serves nothing (502, saying why) when one is an administrator role or
holds 'administer users' / 'administer permissions', or when it cannot read them; and it
learns the service account's uid, so the account stays read-only to SCIM even when Drupal
knows it by another name."""

import pytest

from harness import assert_scim_error, wait_for

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
REFUSED = "account protection refuses the configuration"


def deactivate():
    return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}


def start_refused(new_envoy, **kw):
    gw = new_envoy(start=False, **kw)
    gw.start(wait_for_checks=False)
    assert wait_for(lambda: REFUSED in gw.log_text()), gw.log_text()[-2000:]
    return gw


def test_an_allowed_role_that_administers_users_stops_the_gateway(new_envoy, emulator, seed_user):
    plain = seed_user("plain@example.com", mail="plain@example.com")["uuid"]
    emulator.settings(grant_permissions={"content_editor": ["administer users"]})
    gw = start_refused(new_envoy, plugin_overrides={"allowed_roles": ["content_editor"]})
    for method, path, body in (
        ("GET", "/Users", None),
        ("PATCH", f"/Users/{plain}", deactivate()),
        ("GET", "/ServiceProviderConfig", None),
    ):
        err = assert_scim_error(gw.scim(method, path, json=body), 502)
        assert "`content_editor` named in `allowed_roles` holds 'administer users'" in err["detail"], err["detail"]
    assert emulator.drupal_user(plain)["status"] is True


def test_a_granted_role_that_administers_permissions_stops_the_gateway(new_envoy, emulator):
    from groups_support import groups_config

    emulator.settings(grant_permissions={"content_editor": ["administer permissions"]})
    gw = start_refused(new_envoy, plugin_overrides={"groups": groups_config(role_grants={"Eng": ["content_editor"]})})
    err = assert_scim_error(gw.scim("GET", "/Groups"), 502)
    assert "`content_editor` named in `groups.role_grants` holds 'administer permissions'" in err["detail"], err["detail"]
    assert "the IdP could grant it" in err["detail"], err["detail"]


@pytest.mark.no_leak_check  # another service account's credentials, by design
def test_roles_the_service_account_cannot_read_stop_the_gateway(new_envoy, emulator, seed_user):
    """A service account with 'administer users' but not 'administer permissions' sees no
    role (Drupal answers 200 with every role under meta.omitted)."""
    emulator.settings(grant_permissions={"content_editor": ["administer users"]})
    seed_user("svc-limited", mail="svc-limited@example.com", password="svc-pass", roles=["content_editor"])
    roles = emulator.jsonapi("GET", "/jsonapi/user_role/user_role", auth=_basic("svc-limited", "svc-pass")).json()
    assert roles["data"] == [] and "omitted" in roles["meta"], roles
    gw = start_refused(
        new_envoy,
        drupal_username="svc-limited",
        drupal_password="svc-pass",
        plugin_overrides={"allowed_roles": ["content_editor"]},
    )
    err = assert_scim_error(gw.scim("GET", "/Users"), 502)
    assert "`content_editor` (allowed_roles)" in err["detail"], err["detail"]
    assert "'administer permissions' is required" in err["detail"], err["detail"]
    # Without roles to check, the same account serves.
    ok = new_envoy(drupal_username="svc-limited", drupal_password="svc-pass")
    assert ok.scim("GET", "/Users").status_code == 200


def test_harmless_roles_serve(new_envoy, emulator):
    from groups_support import groups_config

    gw = new_envoy(plugin_overrides={"allowed_roles": ["content_editor"], "groups": groups_config(role_grants={"Eng": ["developer"]})})
    assert gw.scim("GET", "/Users").status_code == 200
    assert wait_for(lambda: "is uid 1" in gw.log_text()), gw.log_text()[-2000:]


@pytest.mark.no_leak_check  # another service account's credentials, by design
def test_the_service_account_is_read_only_by_uid_after_a_rename(new_envoy, emulator, seed_user):
    """Session mode: the gateway keeps its session when an administrator renames its account
    in Drupal; the account no longer has the configured name, yet stays read-only to SCIM as
    the service account (its foreign role would protect it too, but is checked after)."""
    emulator.settings(grant_permissions={"content_editor": ["administer users"]})
    svc = seed_user("svc-renamed", mail="svc-renamed@example.com", password="svc-pass", roles=["content_editor"])
    gw = new_envoy(
        drupal_username="svc-renamed",
        drupal_password="svc-pass",
        plugin_overrides={"drupal.auth": "session"},
    )
    assert wait_for(lambda: f"is uid {svc['uid']}" in gw.log_text()), gw.log_text()[-2000:]
    assert gw.scim("GET", "/Users").status_code == 200
    emulator.set_fields(svc["uuid"], name="someone-else")
    r = gw.scim("GET", f"/Users/{svc['uuid']}")
    assert r.status_code == 200 and r.json()["userName"] == "someone-else", r.text
    err = assert_scim_error(gw.scim("PATCH", f"/Users/{svc['uuid']}", json=deactivate()), 403)
    assert "service account" in err["detail"], err["detail"]
    assert emulator.drupal_user(svc["uuid"])["status"] is True


def _basic(user, password):
    from harness import basic

    return basic(user, password)
