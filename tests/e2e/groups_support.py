"""Shared pieces of the /Groups end-to-end tests (tests/e2e/test_groups_*.py).

The session Envoy may run without `groups`, so the group tests start their own Envoys on
the session emulator (module-scoped fixtures below, imported by each test module):

- `groups_gw`: `groups` enabled, no role grants;
- `grants_gw`: `groups` with ROLE_GRANTS.

Drupal's side is read directly from the emulator (JSON:API as the service account): a
user's `field_scim_groups` relationship (dangling references included), their roles, the
terms of the `scim_groups` vocabulary and the users that reference a term.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

import idp_requests
from harness import Envoy, concurrently, jsonapi_pages  # noqa: F401  (concurrently re-exported)
from idp_requests import CORE_GROUP, group_body  # noqa: F401  (re-exported)

VOCABULARY = "scim_groups"
MEMBERSHIP_FIELD = "field_scim_groups"
TERM_TYPE = "taxonomy_term--scim_groups"
ROLE_GRANTS = {"Engineering": ["content_editor"], "Docs": ["content_editor"]}


def groups_config(role_grants: dict | None = None, **more) -> dict:
    cfg: dict[str, Any] = {"vocabulary": VOCABULARY, "membership_field": MEMBERSHIP_FIELD, "concurrency": 8}
    if role_grants is not None:
        cfg["role_grants"] = role_grants
    cfg.update(more)
    return cfg


def start_groups_envoy(stack, role_grants: dict | None = None, **more) -> Envoy:
    """An Envoy on the session emulator with `groups` enabled. Starting one can fail when
    two free ports collide; try again then. A module's gateway starts before its first
    test's reset: reset first, so its start-up checks (which settle) read the recorded site,
    not what the previous test left (e.g. a role given 'administer users')."""
    stack.emulator.reset()
    last: Exception | None = None
    for _ in range(3):
        try:
            return stack.new_envoy(plugin_overrides={"groups": groups_config(role_grants, **more)})
        except RuntimeError as e:  # e.g. "cannot bind … Address already in use"
            last = e
    raise last  # type: ignore[misc]


@pytest.fixture(scope="module")
def groups_gw(stack):
    e = start_groups_envoy(stack)
    yield e
    e.stop()


@pytest.fixture(scope="module")
def grants_gw(stack):
    e = start_groups_envoy(stack, role_grants=ROLE_GRANTS)
    yield e
    e.stop()


@pytest.fixture
def gscim(groups_gw):
    return groups_gw.scim


# ---- SCIM side ------------------------------------------------------------------------


def create_group(gw: Envoy, name: str, members: list[str] | None = None, **extra) -> dict:
    r = gw.scim("POST", "/Groups", json=group_body(name, members, **extra), timeout=60)
    assert r.status_code == 201, f"create group {name}: {r.status_code} {r.text[:500]}"
    return r.json()


def patch_group(gw: Envoy, gid: str, *ops: dict, expect: int | None = 204, timeout: float = 60) -> requests.Response:
    return idp_requests.patch_group(gw.scim, gid, *ops, expect=expect, timeout=timeout)


def get_group(gw: Envoy, gid: str, **params) -> dict:
    r = gw.scim("GET", f"/Groups/{gid}", params=params or None, timeout=60)
    assert r.status_code == 200, r.text[:500]
    return r.json()


def member_ids(group: dict) -> set[str]:
    return {m["value"] for m in group.get("members", [])}


def scim_members(gw: Envoy, gid: str) -> set[str]:
    return member_ids(get_group(gw, gid))


def scim_request(gw: Envoy, method: str, path: str, json: Any = None, timeout: float = 60) -> requests.Response:
    """Like Envoy.scim, but with a session of its own, for use from several threads."""
    with requests.Session() as s:
        headers = {"Authorization": "Bearer " + gw.tokens["primary"]}
        if json is not None:
            headers["Content-Type"] = "application/scim+json"
        return s.request(method, gw.base_url + path, json=json, headers=headers, timeout=timeout)


# ---- Drupal side ----------------------------------------------------------------------


def drupal_group_refs(emulator, user_uuid: str) -> list[str]:
    """Term UUIDs the user's field_scim_groups references, in order, with "missing" for a
    dangling reference (a deleted term)."""
    r = emulator.jsonapi("GET", f"/jsonapi/user/user/{user_uuid}/relationships/{MEMBERSHIP_FIELD}")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return [d["id"] for d in r.json()["data"]]


def drupal_roles(emulator, user_uuid: str) -> set[str]:
    r = emulator.jsonapi("GET", f"/jsonapi/user/user/{user_uuid}/relationships/roles")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return {d["meta"]["drupal_internal__target_id"] for d in r.json()["data"]}


def _all_pages(emulator, url: str) -> list[dict]:
    return jsonapi_pages(emulator.jsonapi, url)


def drupal_terms(emulator) -> dict[str, str]:
    """{term uuid: name} of every term in the scim_groups vocabulary."""
    data = _all_pages(emulator, f"/jsonapi/taxonomy_term/{VOCABULARY}?page[limit]=50&sort=drupal_internal__tid")
    return {d["id"]: d["attributes"]["name"] for d in data}


def drupal_term(emulator, term_uuid: str) -> dict | None:
    r = emulator.jsonapi("GET", f"/jsonapi/taxonomy_term/{VOCABULARY}/{term_uuid}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return {"id": r.json()["data"]["id"], **r.json()["data"]["attributes"]}


def drupal_members(emulator, term_uuid: str) -> set[str]:
    """UUIDs of the users whose field_scim_groups references the term (Drupal's own query)."""
    url = (
        f"/jsonapi/user/user?filter[g][condition][path]={MEMBERSHIP_FIELD}.id"
        f"&filter[g][condition][value]={term_uuid}&page[limit]=50&sort=drupal_internal__uid"
    )
    return {d["id"] for d in _all_pages(emulator, url)}


def delete_term_directly(emulator, term_uuid: str) -> None:
    r = emulator.jsonapi("DELETE", f"/jsonapi/taxonomy_term/{VOCABULARY}/{term_uuid}")
    assert r.status_code == 204, (r.status_code, r.text[:500])


def seed_term(emulator, name: str) -> str:
    r = emulator.http.post(emulator.url + "/_emulator/terms", json={"name": name, "vocabulary": VOCABULARY}, timeout=10)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    return r.json()["uuid"]


def seed_group(emulator, name: str, n: int, prefix: str = "member") -> tuple[str, list[str]]:
    """A group of n members made in Drupal directly (one control call for the users): the
    term's UUID and the members' UUIDs in order."""
    term = seed_term(emulator, name)
    users = [
        {"name": f"{prefix}{i:04d}@example.com", "mail": f"{prefix}{i:04d}@example.com", MEMBERSHIP_FIELD: [term]}
        for i in range(n)
    ]
    return term, [u["uuid"] for u in emulator.seed_users(users)]


def seed_members(emulator, prefix: str, n: int) -> list[str]:
    """n active users {prefix}NNN@example.com in one control call; their UUIDs in order."""
    users = [{"name": f"{prefix}{i:03d}@example.com", "mail": f"{prefix}{i:03d}@example.com"} for i in range(n)]
    return [u["uuid"] for u in emulator.seed_users(users)]


# ---- Drupal request log ---------------------------------------------------------------


def gateway_log(emulator) -> list[dict]:
    """Drupal requests sent by gateways for SCIM requests (the tests' direct calls and each
    Envoy VM's one-off start-up mapping check, 2 s after start, excluded)."""
    from harness import DIRECT_MARKER

    out = []
    for r in emulator.requests_log():
        headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
        if DIRECT_MARKER in headers or r.get("path", "").startswith("/_emulator"):
            continue
        if "filter[scim_probe]" in r.get("path", ""):
            continue
        out.append(r)
    return out


def is_member_lookup(req: dict) -> bool:
    """A user collection query on field_scim_groups (reading a group's members), not the
    shared read that confirms membership changes (which includes the users' groups)."""
    path = req["path"]
    return (
        req["method"] == "GET"
        and path.startswith("/jsonapi/user/user?")
        and MEMBERSHIP_FIELD in path
        and "include=" not in path
    )


def is_member_page(req: dict) -> bool:
    """A page of a group's member walk (users whose field_scim_groups.id is the term), as
    opposed to the post-delete sweep by term id."""
    return is_member_lookup(req) and f"={MEMBERSHIP_FIELD}.id&" in req["path"]


def relationship_writes(log: list[dict], user_uuid: str | None = None) -> list[dict]:
    out = []
    for r in log:
        if r["method"] in ("POST", "DELETE", "PATCH") and r["path"].split("?")[0].endswith(f"/relationships/{MEMBERSHIP_FIELD}"):
            if user_uuid is None or f"/user/user/{user_uuid}/" in r["path"]:
                out.append(r)
    return out
