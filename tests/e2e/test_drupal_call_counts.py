"""Drupal calls per SCIM operation, pinned: each operation of the IdP fixtures
(shared/research/idp-clients.md) is sent once and the calls Drupal received are counted from
the emulator's request log. Every Drupal call costs a password check on a real Drupal (tens of
milliseconds), so a regression here is a latency regression; docs/users.md's "Drupal calls per
operation" table states the same numbers."""

from __future__ import annotations

import pytest

from harness import CORE_USER, ENTERPRISE_USER, PATCH_OP, jumpcloud_user

pytestmark = pytest.mark.mapped_fields

# (name, method, path with {id}, body, the Drupal calls as "METHOD kind", in order)
OPERATIONS = [
    ("Test Connection (JumpCloud)", "GET", "/Users?startIndex=1&count=1", None, ["GET list"]),
    ("lookup by userName", "GET", '/Users?filter=userName eq "pat@example.com"', None, ["GET list"]),
    ("Entra lookup by externalId", "GET", '/Users?filter=externalId eq "ext-1"', None, ["GET list"]),
    ("read by id", "GET", "/Users/{id}", None, ["GET user"]),
    (
        "create (JumpCloud)",
        "POST",
        "/Users",
        jumpcloud_user("new@example.com", name={"givenName": "New", "familyName": "User"}),
        ["GET list", "POST list"],
    ),
    (
        "create (Entra, enterprise extension)",
        "POST",
        "/Users",
        {
            "schemas": [CORE_USER, ENTERPRISE_USER],
            "externalId": "ext-2",
            "userName": "entra@example.com",
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": "entra@example.com"}],
            "name": {"familyName": "F", "givenName": "G"},
            ENTERPRISE_USER: {"employeeNumber": "E-2", "department": "Eng"},
        },
        ["GET list", "POST list"],
    ),
    # A create reads the accounts whose name or address could clash ignoring case first, as does
    # an update that sets a new name or address (docs/users.md "Uniqueness").
    # Every write reads the account first: SCIM may not write uid 1, the service account or
    # accounts holding roles the gateway does not manage (docs/security.md "Account safety").
    ("PUT (Okta)", "PUT", "/Users/{id}", jumpcloud_user("pat@example.com", displayName="Pat P"), ["GET user", "PATCH user"]),
    (
        "deactivate (every IdP)",
        "PATCH",
        "/Users/{id}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
        ["GET user", "PATCH user"],
    ),
    (
        "attribute update (JumpCloud: one replace per attribute)",
        "PATCH",
        "/Users/{id}",
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": "name.givenName", "value": "John"},
                {"op": "replace", "path": "name.familyName", "value": "Doe"},
                {"op": "replace", "path": "active", "value": True},
            ],
        },
        ["GET user", "PATCH user"],
    ),
    (
        "Entra PATCH of the work email (a value-filter path)",
        "PATCH",
        "/Users/{id}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "pat2@example.com"}]},
        ["GET user", "GET list", "PATCH user"],
    ),
    (
        "remove one phone number by value (read, then write)",
        "PATCH",
        "/Users/{id}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "phoneNumbers", "value": [{"value": "+1 555 0111"}]}]},
        ["GET user", "PATCH user"],
    ),
    ("delete (cancel mode: read, cancel, retire)", "DELETE", "/Users/{id}", None, ["GET user", "DELETE user", "PATCH user"]),
]


def kind(request: dict) -> str:
    path = request["path"].split("?", 1)[0].rstrip("/")
    return f"{request['method']} {'list' if path.endswith('/jsonapi/user/user') else 'user'}"


@pytest.mark.parametrize("name,method,path,body,expected", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_drupal_calls_per_operation(scim, seed_user, set_fields, drupal_requests, clear_drupal_requests, name, method, path, body, expected):
    pat = seed_user("pat@example.com", mail="pat@example.com")
    set_fields(pat["uuid"], field_phone_work="+1 555 0111")
    clear_drupal_requests()
    r = scim(method, path.replace("{id}", pat["uuid"]), json=body)
    assert r.status_code < 300, r.text
    calls = [kind(q) for q in drupal_requests() if "/jsonapi/" in q["path"] or "/user/" in q["path"]]
    assert calls == expected, [f"{q['method']} {q['path'][:120]}" for q in drupal_requests()]
