"""Account safety on a real Drupal (docs/security.md#account-safety): uid 1, the gateway's
own service account and accounts holding roles the gateway does not manage are listed and
readable through SCIM, but every write is 403 and Drupal's record (name, address, status,
password hash, roles, groups, `changed`) stays exactly as it was."""

from __future__ import annotations

import pytest

from harness import assert_scim_error, basic, jumpcloud_user, patch_op

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

WRITES = [
    ("PATCH", patch_op({"op": "replace", "path": "active", "value": False})),
    ("PATCH", patch_op({"op": "replace", "value": {"userName": "pwned", "emails": [{"value": "x@evil.example"}]}})),
    ("PATCH", patch_op({"op": "replace", "path": "password", "value": "Attacker-1!"})),
    ("PUT", jumpcloud_user("pwned@evil.example")),
    ("DELETE", None),
]


def record(site, uuid: str) -> dict:
    """What a write would change: the JSON:API view and the stored password hash."""
    u = site.user(uuid)
    assert u is not None
    keys = ("name", "mail", "status", "changed", "roles", "field_given_name", "field_display_name")
    uid = int(u["drupal_internal__uid"])
    pw = site.sql(f"SELECT COALESCE(pass, '-') FROM users_field_data WHERE uid = {uid}")[0][0]
    return {**{k: u.get(k) for k in keys}, "pass": pw, "groups": site.group_refs(uuid)}


@pytest.mark.smoke
def test_an_idp_token_cannot_take_over_the_site(scim, gateway, site, uniq, drupal_user, cleanup):
    admin = site.user_by_name("admin")
    service = site.user_by_name(site.service_user)
    assert admin["drupal_internal__uid"] == 1
    # The gateway learnt its account's uid at start-up (it protects it by uid, not only by name).
    assert f"the service account {site.service_user} is uid {service['drupal_internal__uid']}" in gateway.log_text()
    boss = drupal_user(f"boss.{uniq}@example.com", roles=["administrator"])
    editor = drupal_user(f"editor.{uniq}@example.com", roles=["content_editor"])
    targets = {
        "uid 1": admin["id"],
        "service account": service["id"],
        "`administrator`": boss["id"],
        "`content_editor`": editor["id"],
    }
    before = {uuid: record(site, uuid) for uuid in targets.values()}
    for why, uuid in targets.items():
        r = scim("GET", f"/Users/{uuid}")
        assert r.status_code == 200, (why, r.text)
        name = r.json()["userName"]
        found = scim("GET", "/Users", params={"filter": f'userName eq "{name}"'}).json()
        assert [u["id"] for u in found["Resources"]] == [uuid], why
        for method, body in WRITES:
            err = assert_scim_error(scim(method, f"/Users/{uuid}", json=body), 403)
            assert why.split()[0] in err["detail"] or why in err["detail"], (why, method, err["detail"])
    # Groups: adding such an account to a group, or creating a group with it, leaves it out
    # (the answer's `Warning` names it; test_real_groups_protected.py has the rest).
    r = scim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": f"Takeover {uniq}", "members": [{"value": admin["id"]}]})
    assert r.status_code == 201 and admin["id"] in r.headers.get("Warning", ""), (r.status_code, r.text, dict(r.headers))
    gid = cleanup.term(r.json()["id"])
    assert r.json().get("members", []) == []
    for uuid in targets.values():
        r = scim("PATCH", f"/Groups/{gid}", json=patch_op({"op": "add", "path": "members", "value": [{"value": uuid}]}))
        assert r.status_code == 204 and uuid in r.headers.get("Warning", ""), (r.status_code, r.text)
    assert site.members(gid) == set()
    # Drupal unchanged, byte for byte.
    assert {uuid: record(site, uuid) for uuid in targets.values()} == before
    # And the site still works for uid 1 and the gateway.
    assert site.can_log_in("admin", site.admin_pass)
    assert scim("GET", "/Users", params={"count": 1}).status_code == 200


def test_allowed_roles_make_content_editors_writable(new_gateway, site, uniq, drupal_user):
    """What the site allows is configurable: content editors may be managed by SCIM, never
    administrators. The gateway first checks the allowed role: it must be able to read its
    permissions ('administer permissions'; Drupal withholds roles from the service account
    without it) and they must not let its holders take over the site."""
    editor = drupal_user(f"ed.{uniq}@example.com", roles=["content_editor"])
    boss = drupal_user(f"bo.{uniq}@example.com", roles=["administrator"])
    plain = site.request("GET", "/jsonapi/user_role/user_role", auth=basic(site.service_user, site.service_pass),
                         headers={"Accept": "application/vnd.api+json"}).json()
    assert plain["data"] == [] and "omitted" in plain["meta"], "the service account reads no role by default"
    gw = new_gateway(f"allowed-roles-unread-{uniq}", allowed_roles=["content_editor"])
    err = assert_scim_error(gw.scim("GET", "/Users", timeout=site.timeout), 502)
    assert "`content_editor` (allowed_roles)" in err["detail"] and "'administer permissions' is required" in err["detail"], err["detail"]
    site.set_permission("scim_gateway", "administer permissions", True)
    try:
        gw = new_gateway(f"allowed-roles-{uniq}", allowed_roles=["content_editor"])
        r = gw.scim("PATCH", f"/Users/{editor['id']}", json=WRITES[0][1], timeout=site.timeout)
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        assert site.user(editor["id"])["status"] is False
        before = record(site, boss["id"])
        assert_scim_error(gw.scim("PATCH", f"/Users/{boss['id']}", json=WRITES[0][1], timeout=site.timeout), 403)
        assert record(site, boss["id"]) == before
        # A site that lets content editors administer users: the gateway refuses to serve.
        site.set_permission("content_editor", "administer users", True)
        try:
            gw = new_gateway(f"allowed-roles-unsafe-{uniq}", allowed_roles=["content_editor"])
            err = assert_scim_error(gw.scim("GET", "/Users", timeout=site.timeout), 502)
            assert "`content_editor` named in `allowed_roles` holds 'administer users'" in err["detail"], err["detail"]
        finally:
            site.set_permission("content_editor", "administer users", False)
    finally:
        site.set_permission("scim_gateway", "administer permissions", False)
