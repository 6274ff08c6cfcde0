"""What each IdP sends (shared/research/idp-clients.md, § numbers below), and the small
helpers that send or read it. One copy for both suites: the emulator's (tests/e2e/test_idp_*.py,
test_groups_idp.py) and the real-Drupal tier's (tests/real_drupal/), which on a shared site
needs fresh names per test — so the names a test asserts on are parameters here, and each
suite picks its own (fixed on the emulator, `uniq`-suffixed on a real site)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, PATCH_OP, patch_op

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
# Entra adds this to a group create's schemas (§2).
ENTRA_GROUP_URN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def lookup(scim, user_name: str) -> dict:
    """The IdPs' lookup before create: `userName eq` → a ListResponse."""
    r = scim("GET", "/Users", params={"filter": f'userName eq "{user_name}"'})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    return body


# ---- Groups (§1–§4 group flows) -------------------------------------------------------------


def group_body(name: str, members: list[str] | None = None, **extra) -> dict:
    body: dict[str, Any] = {"schemas": [CORE_GROUP], "displayName": name}
    if members is not None:
        body["members"] = [{"value": m} for m in members]
    body.update(extra)
    return body


def patch_group(scim, gid: str, *operations: dict, expect: int | None = 204, **kw):
    """`scim` is a scim(method, path, **kw) callable; `expect` None checks nothing."""
    r = scim("PATCH", f"/Groups/{gid}", json=patch_op(*operations), **kw)
    if expect is not None:
        assert r.status_code == expect, f"PATCH /Groups/{gid} {operations}: {r.status_code} {r.text[:800]}"
    return r


# ---- JumpCloud (§1) ----------------------------------------------------------------------


# §1.4-A is harness.jumpcloud_user(email).

# §1.4-B
JUMPCLOUD_UPDATE = {
    "schemas": [PATCH_OP],
    "Operations": [
        {"op": "replace", "path": "name.givenName", "value": "John"},
        {"op": "replace", "path": "name.familyName", "value": "Doe"},
        {"op": "replace", "path": "active", "value": False},
    ],
}
# §1.4-C
DEACTIVATE = patch_op({"op": "replace", "path": "active", "value": False})


# §1.4-E/F: JumpCloud batches a group's member changes into one operation of minimal member
# objects (just `value`).
def jumpcloud_add_members(ids: list[str]) -> dict:
    return {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}


def jumpcloud_remove_members(ids: list[str]) -> dict:
    return {"op": "remove", "path": "members", "value": [{"value": i} for i in ids]}
ACTIVATE = patch_op({"op": "replace", "path": "active", "value": True})


# ---- Microsoft Entra ID (§2) -----------------------------------------------------------------


def entra_create(user_name: str, email: str, external_id: str) -> dict:
    # §2.5-A
    return {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }


def entra_form(text: str) -> str:
    """Entra form-encodes its query values (`+` for spaces)."""
    return quote(text, safe="").replace("%20", "+")


def entra_get(gw, path_and_query: str, timeout: float = 10) -> dict:
    """GET /scim/v2{path_and_query} sent verbatim (no re-encoding), as Entra does."""
    status, headers, body = gw.raw("GET", "/scim/v2" + path_and_query,
                                   headers={"Authorization": "Bearer " + gw.tokens["primary"]}, timeout=timeout)
    assert status == 200, (path_and_query, status, body[:300])
    assert headers["content-type"].startswith("application/scim+json")
    return json.loads(body)


def entra_matching_filters(user_name: str, external_id: str, email: str) -> tuple[str, ...]:
    """The lookups for each matching attribute an admin may choose (§2), all meant to find
    the one user."""
    return (
        f'userName eq "{user_name}"',
        f'userName eq "{user_name.upper()}"',
        f'externalId eq "{external_id}"',
        f'emails[type eq "work"].value eq "{email}"',
        f'emails[type eq "work"].value eq "{email.lower()}"',
        f'userName eq "{user_name}" and active eq true',
    )


def entra_users(gw, filter_text: str, timeout: float = 10) -> dict:
    return entra_get(gw, "/Users?filter=" + entra_form(filter_text), timeout)


def entra_multi_replace_ops(email: str, external_id: str) -> list[dict]:
    """§2.6: Entra's default dialect, six "Replace" operations in one request."""
    return [
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": email},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": external_id},
        {"op": "Replace", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "Eqpj"},
    ]


def entra_aadopt_update_ops(email: str) -> list[dict]:
    """The `aadOptscim062020` dialect (§2): a path-less object whose keys are dotted paths
    and URNs, after a filtered-path email replace."""
    return [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": email},
        {"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            f"{ENTERPRISE_USER}:employeeNumber": "Aklq",
        }},
    ]


def patch_user(scim, uid: str, *ops: dict, schemas: bool = True) -> dict:
    """A user PATCH that must answer 200; `schemas=False` leaves out `schemas` as some
    Entra requests do."""
    body: dict[str, Any] = {"Operations": list(ops)}
    if schemas:
        body = {"schemas": [PATCH_OP], **body}
    r = scim("PATCH", f"/Users/{uid}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# ---- Okta (§3) -------------------------------------------------------------------------------

OKTA_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "User-Agent": "Okta SCIM Client 1.0.0",
}


def okta_create(email: str, external_id: str, password: str) -> dict:
    # §3.4-A
    return {
        "schemas": [CORE_USER],
        "userName": email,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": password,
        "active": True,
    }


def okta_lookup(gw, user_name: str, timeout: float = 10) -> tuple[int, bytes]:
    """Okta's lookup on assign: percent-encoded (`@` too), with paging; (status, body)."""
    status, _, raw = gw.raw(
        "GET",
        f"/scim/v2/Users?filter=userName%20eq%20%22{quote(user_name, safe='')}%22&startIndex=1&count=100",
        headers={"Authorization": "Bearer " + gw.tokens["primary"], **OKTA_HEADERS},
        timeout=timeout,
    )
    return status, raw


def okta(scim, method: str, path: str, body=None, **kw):
    """Okta's headers; bodies as `application/scim+json; charset=utf-8`."""
    headers = dict(OKTA_HEADERS)
    data = None
    if body is not None:
        headers["Content-Type"] = "application/scim+json; charset=utf-8"
        data = json.dumps(body).encode()
    return scim(method, path, data=data, headers=headers, **kw)


# ---- OneLogin (§4) ---------------------------------------------------------------------------

ONELOGIN_HEADERS = {"User-Agent": "OneLogin SCIM", "Content-Type": "application/scim+json"}


def onelogin_template(user_name, email, first, last, display, **extra) -> dict:
    """The typical SCIM 2.0 template SPs give their customers, filled in by OneLogin."""
    body = {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": first, "familyName": last},
        "emails": [{"value": email, "type": "work", "primary": True}],
        "displayName": display,
    }
    body.update(extra)
    return body


def onelogin(scim, method: str, path: str, body=None, **kw):
    data = json.dumps(body).encode() if body is not None else None
    return scim(method, path, data=data, headers=ONELOGIN_HEADERS, **kw)
