"""Hardening: hostile input. Every case gets the right SCIM error and writes nothing to
Drupal (no POST/PATCH/DELETE in the emulator's request log); most are refused without any
Drupal call at all.

Covers: malformed JSON, 10,000-deep nesting, huge strings and arrays, bodies over the limit
(Content-Length and chunked), wrong or missing `schemas`, wrong types, invalid UTF-8, NUL
bytes, ids that are not UUIDs or try path tricks, filters that try to add JSON:API query
parameters, over-long filters, bad PATCH operations, methods that are not allowed, and
content types.
"""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from harness import (
    CORE_USER,
    ENTERPRISE_USER,
    PATCH_OP,
    SEARCH_REQUEST,
    assert_scim_error,
    jumpcloud_user,
    patch_op,
)

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIMIT = 1048576  # the session gateway's max_body_bytes (envoy.yaml default)


def post_raw(scim, path: str, body: bytes | str, content_type: str | None = "application/scim+json", method: str = "POST"):
    headers = {"Content-Type": content_type} if content_type else {}
    return scim(method, path, data=body.encode() if isinstance(body, str) else body, headers=headers, timeout=30)


@pytest.fixture
def nothing_written(drupal_writes):
    """Call at the end of a test: Drupal received no write from the gateway."""

    def check():
        writes = drupal_writes()
        assert writes == [], "Drupal received writes: " + ", ".join(f"{w['method']} {w['path'][:120]}" for w in writes)

    return check


@pytest.fixture
def no_drupal_call(drupal_requests):
    def check():
        calls = drupal_requests()
        assert calls == [], "Drupal was called: " + ", ".join(f"{c['method']} {c['path'][:120]}" for c in calls)

    return check


@pytest.fixture
def pat(seed_user):
    return seed_user("pat@example.com", mail="pat@example.com")


# ---- malformed JSON -------------------------------------------------------------------

MALFORMED = {
    "truncated": '{"schemas": ["%s"], "userName": "x"' % CORE_USER,
    "trailing-comma": '{"schemas": ["%s"], "userName": "x",}' % CORE_USER,
    "single-quotes": "{'schemas': ['%s'], 'userName': 'x'}" % CORE_USER,
    "not-json": "userName=x&active=true",
    "bare-word": "undefined",
    "two-documents": '{"schemas": ["%s"], "userName": "x"}{"userName": "y"}' % CORE_USER,
    "unescaped-control": '{"schemas": ["%s"], "userName": "a\tb\nc"}' % CORE_USER,
    "nan": '{"schemas": ["%s"], "userName": "x", "active": NaN}' % CORE_USER,
    "empty": "",
    "whitespace": "   \n  ",
    "bom": "\ufeff" + json.dumps(jumpcloud_user("bom@example.com")),
    "lone-surrogate": '{"schemas": ["%s"], "userName": "\\ud800x"}' % CORE_USER,
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_400_invalid_syntax(scim, body, no_drupal_call):
    r = post_raw(scim, "/Users", body)
    assert_scim_error(r, 400, "invalidSyntax")
    no_drupal_call()


@pytest.mark.parametrize("body", ["[]", '"a string"', "null", "42", "true", "[%s]" % json.dumps(jumpcloud_user("arr@example.com"))])
def test_json_that_is_not_an_object_is_400(scim, body, no_drupal_call):
    r = post_raw(scim, "/Users", body)
    assert_scim_error(r, 400)
    assert r.json().get("scimType") in ("invalidSyntax", "invalidValue"), r.text
    no_drupal_call()


def test_malformed_json_on_every_body_endpoint(scim, pat, nothing_written):
    bad = '{"schemas": ["%s"], ' % PATCH_OP
    for method, path in [
        ("PUT", f"/Users/{pat['uuid']}"),
        ("PATCH", f"/Users/{pat['uuid']}"),
        ("POST", "/Users/.search"),
        ("POST", "/.search"),
    ]:
        r = post_raw(scim, path, bad, method=method)
        assert_scim_error(r, 400, "invalidSyntax")
    nothing_written()


# ---- deep nesting ---------------------------------------------------------------------

DEPTH = 10_000


def _deep(kind: str) -> str:
    if kind == "array":
        inner = "[" * DEPTH + "]" * DEPTH
    else:
        inner = '{"a":' * DEPTH + "1" + "}" * DEPTH
    return inner


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["toplevel", "unknown-attribute", "userName", "extension", "patch-value", "search-filter"])
def test_deep_nesting_is_400_quickly(scim, pat, kind, where, nothing_written):
    deep = _deep(kind)
    method, path = "POST", "/Users"
    if where == "toplevel":
        body = deep
    elif where == "unknown-attribute":
        body = '{"schemas":["%s"],"userName":"deep@example.com","x":%s}' % (CORE_USER, deep)
    elif where == "userName":
        body = '{"schemas":["%s"],"userName":%s}' % (CORE_USER, deep)
    elif where == "extension":
        body = '{"schemas":["%s","%s"],"userName":"deep@example.com","%s":%s}' % (CORE_USER, ENTERPRISE_USER, ENTERPRISE_USER, deep)
    elif where == "patch-value":
        method, path = "PATCH", f"/Users/{pat['uuid']}"
        body = '{"schemas":["%s"],"Operations":[{"op":"replace","value":%s}]}' % (PATCH_OP, deep)
    else:
        path = "/Users/.search"
        body = '{"schemas":["%s"],"filter":%s}' % (SEARCH_REQUEST, deep)
    t = time.monotonic()
    r = post_raw(scim, path, body, method=method)
    elapsed = time.monotonic() - t
    assert_scim_error(r, 400)
    assert r.json().get("scimType") in ("invalidSyntax", "invalidValue"), r.text
    assert elapsed < 5, f"{elapsed:.1f}s"
    nothing_written()


def test_deep_filter_parentheses_are_400(scim, no_drupal_call):
    flt = "(" * 2000 + 'userName eq "a"' + ")" * 2000
    r = scim("GET", "/Users", params={"filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    flt = "not (" * 800 + 'userName eq "a"' + ")" * 800
    r = scim("GET", "/Users", params={"filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    no_drupal_call()


# ---- huge strings and arrays --------------------------------------------------------


def test_900kb_user_name_is_400(scim, no_drupal_call):
    r = scim("POST", "/Users", json={"schemas": [CORE_USER], "userName": "a" * 900_000}, timeout=30)
    assert_scim_error(r, 400, "invalidValue")
    assert len(r.content) < 4096, "the error echoes the huge value"
    no_drupal_call()


def test_900kb_password_and_email_are_400(scim, pat, no_drupal_call):
    r = scim("POST", "/Users", json={**jumpcloud_user("huge-pw@example.com"), "password": "p" * 900_000}, timeout=30)
    assert_scim_error(r, 400, "invalidValue")
    assert len(r.content) < 4096
    r = scim("POST", "/Users", json={"schemas": [CORE_USER], "userName": "huge-mail", "emails": [{"value": "a" * 900_000 + "@example.com"}]}, timeout=30)
    assert_scim_error(r, 400, "invalidValue")
    assert len(r.content) < 4096
    no_drupal_call()


def test_100k_emails_over_the_limit_is_413(scim, nothing_written):
    body = json.dumps({"schemas": [CORE_USER], "userName": "many@example.com", "emails": [{"value": f"u{i}@example.com"} for i in range(100_000)]})
    assert len(body) > LIMIT
    r = post_raw(scim, "/Users", body)
    assert_scim_error(r, 413)
    nothing_written()


@pytest.mark.parametrize(
    "emails",
    [[1] * 100_000, ["a"] * 100_000, [[]] * 100_000],
    ids=["numbers", "strings", "arrays"],
)
def test_100k_ill_typed_emails_are_400(scim, emails, no_drupal_call):
    t = time.monotonic()
    r = scim("POST", "/Users", json={"schemas": [CORE_USER], "userName": "many@example.com", "emails": emails}, timeout=30)
    assert_scim_error(r, 400, "invalidValue")
    assert time.monotonic() - t < 5
    no_drupal_call()


def test_100k_primary_emails_are_400(new_envoy, emulator, no_drupal_call):
    """100k well-formed entries (in an Envoy whose body limit lets them through): more than one
    `primary` is invalid (RFC 7643 §2.4)."""
    e = new_envoy(plugin_overrides={"max_body_bytes": 8 * 1024 * 1024})
    emulator.clear_requests()  # its start-up check, done before it answers SCIM
    emails = [{"value": f"u{i}@example.com", "type": "work", "primary": True} for i in range(100_000)]
    t = time.monotonic()
    r = e.scim("POST", "/Users", json={"schemas": [CORE_USER], "userName": "many@example.com", "emails": emails}, timeout=30)
    assert_scim_error(r, 400, "invalidValue")
    assert time.monotonic() - t < 5
    no_drupal_call()


def test_100k_patch_operations_write_nothing_when_one_is_bad(new_envoy, pat, nothing_written):
    e = new_envoy(plugin_overrides={"max_body_bytes": 8 * 1024 * 1024})
    ops = [{"op": "replace", "path": "active", "value": True}] * 100_000 + [{"op": "replace", "path": "active", "value": "yes"}]
    r = e.scim("PATCH", f"/Users/{pat['uuid']}", json={"schemas": [PATCH_OP], "Operations": ops}, timeout=30)
    assert_scim_error(r, 400)
    nothing_written()


# ---- bodies over the limit ------------------------------------------------------------


def test_body_over_limit_with_content_length_is_413(scim, nothing_written):
    body = json.dumps({"schemas": [CORE_USER], "userName": "big@example.com", "displayName": "x" * (LIMIT + 10)})
    r = post_raw(scim, "/Users", body)
    assert_scim_error(r, 413)
    nothing_written()


def test_declared_content_length_over_limit_is_413_before_the_body(gateway, nothing_written):
    """Only the headers are sent: the answer comes without waiting for the body."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            (
                "POST /scim/v2/Users HTTP/1.1\r\nHost: scim\r\n"
                f"Authorization: Bearer {gateway.tokens['primary']}\r\n"
                f"Content-Type: application/scim+json\r\nContent-Length: {LIMIT * 8}\r\n\r\n"
            ).encode()
            + b'{"schemas":'
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    nothing_written()


def test_chunked_body_over_limit_is_413(gateway, nothing_written):
    """No Content-Length: Envoy counts the chunks (the buffer filter's limit); its 413 is
    mapped to a SCIM error."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            (
                "POST /scim/v2/Users HTTP/1.1\r\nHost: scim\r\n"
                f"Authorization: Bearer {gateway.tokens['primary']}\r\n"
                "Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"x" * 65536
        try:
            for _ in range(LIMIT // len(chunk) + 4):
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # Envoy answered and closed while we were still sending
        data = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                data += got
                head, _, rest = data.partition(b"\r\n\r\n")
                if rest and b"content-length" in head.lower():
                    n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
                    if len(rest) >= n:
                        break
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:300]
    assert b"content-type: application/scim+json" in head.lower(), head
    err = json.loads(body)
    assert err["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and err["status"] == "413", err
    nothing_written()


def test_chunked_body_under_limit_is_accepted(scim, emulator):
    body = json.dumps(jumpcloud_user("chunked@example.com")).encode()

    def chunks():
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    r = scim("POST", "/Users", data=chunks(), headers={"Content-Type": "application/scim+json"})
    assert r.status_code == 201, r.text
    assert emulator.drupal_user_by_name("chunked@example.com") is not None


# ---- schemas ------------------------------------------------------------------------

SCHEMAS = {
    "missing": None,
    "empty": [],
    "string": CORE_USER,
    "group-urn": [CORE_GROUP],
    "enterprise-only": [ENTERPRISE_USER],
    "unknown-urn": [CORE_USER, "urn:example:params:scim:schemas:extension:evil:2.0:User"],
    "not-strings": [1, 2],
    "null": "null",
    "object": {"urn": CORE_USER},
    "case-mangled": ["urn:ietf:params:scim:schemas:core:2.0:Usr"],
}


@pytest.mark.parametrize("schemas", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_wrong_or_missing_schemas_is_400(scim, schemas, no_drupal_call):
    body = jumpcloud_user("schemas@example.com")
    if schemas is None:
        del body["schemas"]
    elif schemas == "null":
        body["schemas"] = None
    else:
        body["schemas"] = schemas
    r = scim("POST", "/Users", json=body)
    assert_scim_error(r, 400, "invalidValue")
    no_drupal_call()


def test_wrong_schemas_on_put_patch_and_search(scim, pat, nothing_written):
    r = scim("PUT", f"/Users/{pat['uuid']}", json={**jumpcloud_user("pat@example.com"), "schemas": [CORE_GROUP]})
    assert_scim_error(r, 400)
    r = scim("PATCH", f"/Users/{pat['uuid']}", json={"schemas": [CORE_USER], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert_scim_error(r, 400)
    r = scim("PATCH", f"/Users/{pat['uuid']}", json={"Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert_scim_error(r, 400)
    r = scim("POST", "/Users/.search", json={"schemas": [PATCH_OP], "filter": 'userName eq "pat@example.com"'})
    assert_scim_error(r, 400)
    nothing_written()


# ---- wrong types ----------------------------------------------------------------------

WRONG_TYPES = {
    "active-yes": {"active": "yes"},
    "active-number": {"active": 2},
    "active-object": {"active": {}},
    "emails-object": {"emails": {}},
    "emails-string": {"emails": "a@example.com"},
    "email-value-number": {"emails": [{"value": 5}]},
    "email-value-object": {"emails": [{"value": {"x": "a@example.com"}}]},
    "userName-array": {"userName": []},
    "userName-number": {"userName": 12},
    "userName-null": {"userName": None},
    "userName-empty": {"userName": ""},
    "userName-object": {"userName": {"value": "x"}},
    "password-number": {"password": 12345678},
    "name-string": {"name": "Jane Doe"},
    "givenName-array": {"name": {"givenName": ["Jane"]}},
    "displayName-object": {"displayName": {"x": 1}},
    "phoneNumbers-object": {"phoneNumbers": {"value": "1", "type": "work"}},
    "extension-string": {"schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: "E-1"},
    "employeeNumber-array": {"schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: {"employeeNumber": ["E-1"]}},
}


@pytest.mark.parametrize("change", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_types_are_400(scim, stack, change, no_drupal_call):
    mapped_only = {"name-string", "givenName-array", "displayName-object", "phoneNumbers-object", "extension-string", "employeeNumber-array"}
    key = next(k for k, v in WRONG_TYPES.items() if v is change)
    if key in mapped_only and stack.attributes is None:
        pytest.skip("needs the mapped attributes (unmapped attributes are ignored)")
    body = {**jumpcloud_user("types@example.com"), **change}
    r = scim("POST", "/Users", json=body)
    assert_scim_error(r, 400, "invalidValue")
    no_drupal_call()


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "active", "value": "yes"},
        {"op": "replace", "path": "emails", "value": {}},
        {"op": "replace", "path": "userName", "value": []},
        {"op": "replace", "value": {"active": "yes"}},
        {"op": "replace", "value": "active"},
        {"op": "add", "path": "emails", "value": 5},
        {"op": "replace", "path": 5, "value": True},
    ],
    ids=["active-yes", "emails-object", "userName-array", "pathless-active-yes", "pathless-value-string", "add-emails-number", "path-number"],
)
def test_wrong_types_in_patch_are_400(scim, pat, op, nothing_written):
    r = scim("PATCH", f"/Users/{pat['uuid']}", json=patch_op(op))
    assert_scim_error(r, 400)
    nothing_written()


def test_wrong_types_in_put_are_400(scim, pat, nothing_written):
    for change in ({"active": "yes"}, {"emails": {}}, {"userName": []}):
        r = scim("PUT", f"/Users/{pat['uuid']}", json={**jumpcloud_user("pat@example.com"), **change})
        assert_scim_error(r, 400, "invalidValue")
    nothing_written()


# ---- encoding: invalid UTF-8, NUL bytes ----------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"abc\x80"],
    ids=["ff-fe", "bad-continuation", "encoded-surrogate", "5-byte", "lone-continuation"],
)
def test_invalid_utf8_is_400(scim, raw, no_drupal_call):
    body = b'{"schemas":["' + CORE_USER.encode() + b'"],"userName":"' + raw + b'@example.com"}'
    r = post_raw(scim, "/Users", body)
    assert_scim_error(r, 400, "invalidSyntax")
    no_drupal_call()


def test_invalid_utf8_in_patch_and_filter(scim, pat, nothing_written):
    body = b'{"schemas":["' + PATCH_OP.encode() + b'"],"Operations":[{"op":"replace","path":"displayName","value":"\xff"}]}'
    r = post_raw(scim, f"/Users/{pat['uuid']}", body, method="PATCH")
    assert_scim_error(r, 400, "invalidSyntax")
    # In a filter (percent-encoded invalid UTF-8): a 400, not a crash.
    r = scim("GET", "/Users?filter=userName%20eq%20%22%FF%FE%22")
    assert_scim_error(r, 400)
    assert r.json().get("scimType") in ("invalidFilter", "invalidValue"), r.text
    nothing_written()


NUL_BODIES = {
    "userName": {"userName": "user\u0000name"},
    "userName-trailing": {"userName": "username@example.com\u0000"},
    "email": {"emails": [{"value": "nul\u0000@example.com", "type": "work", "primary": True}]},
    "password": {"password": "pass\u0000word"},
}


@pytest.mark.parametrize("change", NUL_BODIES.values(), ids=NUL_BODIES.keys())
def test_nul_bytes_create_nothing_malformed(scim, emulator, change):
    body = {**jumpcloud_user("nulcase@example.com"), **change}
    r = scim("POST", "/Users", json=body)
    assert r.status_code < 500, r.text
    if r.status_code != 201:
        assert_scim_error(r, 400)
    for u in emulator.drupal_users():
        for field in ("name", "mail"):
            assert "\x00" not in (u.get(field) or ""), f"Drupal user with a NUL in {field}: {u.get(field)!r}"
    if "userName" in change or "email" in change:
        assert r.status_code == 400, f"NUL accepted: {r.status_code} {r.text[:300]}"


def test_nul_in_filter_and_id(scim, no_drupal_call):
    r = scim("GET", "/Users/%00")
    assert_scim_error(r, 404)
    no_drupal_call()
    r = scim("GET", "/Users", params={"filter": 'userName eq "a\u0000b"'})
    assert r.status_code in (200, 400), r.text


# ---- ids: not UUIDs, path tricks --------------------------------------------------------

BAD_ID_TARGETS = [
    "not-a-uuid",
    "..",
    "../..",
    "%2e%2e",
    "%2E%2E%2F%2E%2E%2Fjsonapi%2Fuser%2Fuser",
    "..%2F..%2Fjsonapi%2Fuser%2Fuser",
    "%2F",
    "abc?x=",
    "abc;x=1",
    "{UUID}%2F..",
    "{UUID}/..",
    "{UUID}/../{UUID}",
    "{UUID};jsessionid=1",
    "{UUID}%3Bx",
    "{UUID}%00",
    "{UUID}%20",
    "%20{UUID}",
    "{UUID}x",
    "{{UUID}}",
    "{UUID}%2Frelationships%2Froles",
    "{UUID}/relationships/roles",
    "*",
    "%2A",
    "a" * 8000,
]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("target", BAD_ID_TARGETS, ids=[t if len(t) < 50 else "very-long" for t in BAD_ID_TARGETS])
def test_bad_ids_are_404_without_drupal_call(gateway, pat, method, target, no_drupal_call):
    target = target.replace("{UUID}", pat["uuid"])
    body = None
    if method == "PUT":
        body = json.dumps(jumpcloud_user("pat@example.com")).encode()
    elif method == "PATCH":
        body = json.dumps(patch_op({"op": "replace", "path": "active", "value": False})).encode()
    status, headers, data = gateway.raw(
        method,
        "/scim/v2/Users/" + target,
        headers={"Authorization": "Bearer " + gateway.tokens["primary"], "Content-Type": "application/scim+json"},
        body=body,
    )
    assert status == 404, f"{method} {target[:80]}: {status} {data[:300]!r}"
    assert headers.get("content-type", "").startswith("application/scim+json")
    err = json.loads(data)
    assert err["status"] == "404", err
    no_drupal_call()


def test_bad_group_ids_are_404_without_drupal_call(new_envoy, emulator, no_drupal_call):
    if not emulator.fields:
        pytest.skip("needs the emulator's scim_groups vocabulary")
    e = new_envoy(plugin_overrides={"groups": {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}})
    emulator.clear_requests()  # its start-up checks, done before it answers SCIM
    for target in ["..", "%2e%2e", "abc;x", "..%2F..%2Fjsonapi", "a" * 5000]:
        for method in ("GET", "DELETE"):
            status, _, data = e.raw(method, "/scim/v2/Groups/" + target, headers={"Authorization": "Bearer " + e.tokens["primary"]})
            assert status == 404, f"{method} {target[:60]}: {status} {data[:200]!r}"
    no_drupal_call()


def test_unknown_query_parameters_on_an_id_are_not_forwarded(gateway, pat, drupal_requests, nothing_written):
    """`/Users/{id}?filter[name]=x&include=roles`: SCIM ignores unknown parameters; none of
    them reaches Drupal's query string."""
    status, _, data = gateway.raw(
        "GET",
        f"/scim/v2/Users/{pat['uuid']}?filter[name]=x&include=roles&page[limit]=1&fields[user--user]=pass",
        headers={"Authorization": "Bearer " + gateway.tokens["primary"]},
    )
    assert status == 200, data[:300]
    calls = drupal_requests()
    assert len(calls) == 1, calls
    query = urlsplit(calls[0]["path"]).query
    keys = [k for k, _ in parse_qsl(query, keep_blank_values=True)]
    assert not any(k.startswith(("filter", "include", "page")) for k in keys), calls[0]["path"]
    assert "pass" not in [v for k, v in parse_qsl(query) if k.startswith("fields")], calls[0]["path"]
    nothing_written()


def test_path_tricks_never_reach_the_drupal_site(gateway, emulator, drupal_requests):
    """Dot segments under the SCIM prefix are not resolved into the proxied site route: the
    bearer token never reaches Drupal and nothing is served from it."""
    for target in ["/scim/v2/../jsonapi/user/user", "/scim/v2/Users/../../jsonapi/user/user", "/scim/v2/%2e%2e/jsonapi/user/user", "/scim/v2/..%2Fjsonapi%2Fuser%2Fuser"]:
        status, headers, data = gateway.raw("GET", target, headers={"Authorization": "Bearer " + gateway.tokens["primary"]})
        assert status == 404, f"{target}: {status} {data[:200]!r}"
        assert headers.get("content-type", "").startswith("application/scim+json"), target
    assert drupal_requests() == []


# ---- filters that try to inject JSON:API parameters ---------------------------------------

ALLOWED_KEY = r"^(filter|page|sort|fields|include)(\[[A-Za-z0-9_.\-]*\])*$"

INJECTIONS = [
    "a&filter[mail]=x",
    "a&filter%5Bmail%5D=x",
    "a%26filter%5Bmail%5D%3Dx",
    "a]&page[limit]=1&x[",
    "a][condition][path]=pass",
    "x&sort=-uid&fields[user--user]=pass",
    "a=b&c",
    "a#frag",
    "a+b%20c",
    "a\\\"&include=roles",
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("attr", ["userName", "emails.value", "emails", "id"])
def test_filter_values_reach_drupal_only_inside_one_value_parameter(scim, drupal_requests, nothing_written, value, attr):

    scim_value = value.replace('\\"', '"')  # the SCIM string's content
    r = scim("GET", "/Users", params={"filter": f'{attr} eq "{value}"'})
    if attr == "id":
        # Not a UUID: no Drupal user can have it. Either answered locally or asked verbatim.
        assert r.status_code in (200, 400), r.text
    else:
        assert r.status_code == 200, r.text
        assert r.json()["totalResults"] == 0
    for call in drupal_requests():
        split = urlsplit(call["path"])
        assert split.path.startswith("/jsonapi/"), call["path"]
        params = parse_qsl(split.query, keep_blank_values=True)
        for k, _ in params:
            assert re.match(ALLOWED_KEY, k), f"unexpected Drupal query parameter {k!r} in {call['path']}"
        # The value travels exactly once, whole, as one parameter's value.
        carrying = [(k, v) for k, v in params if scim_value in v]
        assert len(carrying) <= 1, call["path"]
        if carrying:
            k, v = carrying[0]
            assert k.endswith("[value]") or k.endswith("[value][]") or re.search(r"\[value\]\[\d+\]$", k), (k, v)
        # Nothing the value contains became a parameter of its own.
        assert not any(k.lower().startswith(("filter[mail]", "page[limit]", "include", "fields[user--user]")) and v in ("x", "1", "roles", "pass") for k, v in params), params
        assert "#" not in call["path"]
    if attr in ("userName", "emails.value", "emails"):
        assert any(scim_value in v for c in drupal_requests() for _, v in parse_qsl(urlsplit(c["path"]).query, keep_blank_values=True)), "the value never reached Drupal"
    nothing_written()


def test_unencoded_ampersand_in_the_scim_query_is_not_forwarded(gateway, no_drupal_call):
    """`&` unencoded in the SCIM URL ends the filter parameter: the filter is then broken
    (400), and the stray `filter[mail]` SCIM parameter is never passed on."""
    status, _, data = gateway.raw(
        "GET",
        '/scim/v2/Users?filter=userName%20eq%20%22a&filter[mail]=x%22',
        headers={"Authorization": "Bearer " + gateway.tokens["primary"]},
    )
    assert status == 400, data[:300]
    assert json.loads(data)["scimType"] == "invalidFilter"
    no_drupal_call()


@pytest.mark.parametrize(
    "flt",
    [
        'filter[mail] eq "x"',
        'userName[x] eq "a"',
        'userName eq "a" &filter[mail]=x',
        "userName eq a&filter[mail]=x",
        'mail eq "x"',
        'pass eq "x"',
        'name eq "x"',
        'roles eq "administrator"',
        'userName eq "a"]',
        'emails[value eq "a"]] eq "b"',
    ],
)
def test_filters_naming_drupal_fields_or_broken_brackets_are_400(scim, flt, no_drupal_call):
    r = scim("GET", "/Users", params={"filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    no_drupal_call()


def test_over_long_filter_is_400_invalid_filter(scim, no_drupal_call):
    flt = 'userName eq "' + "x" * 4100 + '"'
    assert len(flt) > 4096
    assert_scim_error(scim("GET", "/Users", params={"filter": flt}), 400, "invalidFilter")
    r = scim("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    r = scim("POST", "/.search", json={"schemas": [SEARCH_REQUEST], "filter": flt})
    assert_scim_error(r, 400, "invalidFilter")
    many = " or ".join(f'userName eq "u{i}"' for i in range(400))
    assert len(many) > 4096
    assert_scim_error(scim("GET", "/Users", params={"filter": many}), 400, "invalidFilter")
    no_drupal_call()


def test_over_long_patch_path_is_400(scim, pat, nothing_written):
    path = 'emails[value eq "' + "x" * 5000 + '"].value'
    r = scim("PATCH", f"/Users/{pat['uuid']}", json=patch_op({"op": "replace", "path": path, "value": "a@example.com"}))
    assert_scim_error(r, 400)
    nothing_written()


# ---- PATCH operations --------------------------------------------------------------------

BAD_PATCHES = {
    "unknown-op": {"schemas": [PATCH_OP], "Operations": [{"op": "frobnicate", "path": "active", "value": False}]},
    "op-missing": {"schemas": [PATCH_OP], "Operations": [{"path": "active", "value": False}]},
    "op-number": {"schemas": [PATCH_OP], "Operations": [{"op": 1, "path": "active", "value": False}]},
    "op-move": {"schemas": [PATCH_OP], "Operations": [{"op": "move", "from": "userName", "path": "displayName"}]},
    "empty-operations": {"schemas": [PATCH_OP], "Operations": []},
    "no-operations": {"schemas": [PATCH_OP]},
    "operations-object": {"schemas": [PATCH_OP], "Operations": {"op": "replace", "path": "active", "value": False}},
    "operation-not-object": {"schemas": [PATCH_OP], "Operations": ["replace"]},
    "good-then-bad": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}, {"op": "explode"}]},
    "add-without-value": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "displayName"}]},
    "remove-without-path": {"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]},
    "bad-path-syntax": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]},
}


@pytest.mark.parametrize("body", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
def test_bad_patch_is_400_and_writes_nothing(scim, pat, emulator, body, nothing_written):
    before = emulator.drupal_user(pat["uuid"])
    r = scim("PATCH", f"/Users/{pat['uuid']}", json=body)
    err = assert_scim_error(r, 400)
    assert err.get("scimType") in ("invalidSyntax", "invalidPath", "noTarget", "invalidValue"), err
    nothing_written()
    after = emulator.drupal_user(pat["uuid"])
    assert after["status"] == before["status"] and after["changed"] == before["changed"]


# ---- methods --------------------------------------------------------------------------

METHODS = [
    ("TRACE", "/Users"),
    ("OPTIONS", "/Users"),
    ("PUT", "/Users"),
    ("PATCH", "/Users"),
    ("DELETE", "/Users"),
    ("TRACE", "/Users/{UUID}"),
    ("OPTIONS", "/Users/{UUID}"),
    ("POST", "/Users/{UUID}"),
    ("GET", "/Users/.search"),
    ("DELETE", "/Users/.search"),
    ("PUT", "/ServiceProviderConfig"),
    ("DELETE", "/Schemas"),
    ("POST", "/ResourceTypes"),
]


@pytest.mark.parametrize("method,path", METHODS, ids=[f"{m} {p}" for m, p in METHODS])
def test_methods_not_allowed_are_405_with_allow(gateway, pat, method, path, nothing_written):
    path = path.replace("{UUID}", pat["uuid"])
    status, headers, data = gateway.raw(
        method,
        "/scim/v2" + path,
        headers={"Authorization": "Bearer " + gateway.tokens["primary"], "Content-Type": "application/scim+json"},
        body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
    )
    assert status == 405, f"{method} {path}: {status} {data[:300]!r}"
    allow = headers.get("allow")
    assert allow, f"{method} {path}: no Allow header"
    allowed = {m.strip() for m in allow.split(",")}
    assert method not in allowed and "GET" in allowed or (path.endswith(".search") and allowed == {"POST"}), allow
    assert headers.get("content-type", "").startswith("application/scim+json")
    assert json.loads(data)["status"] == "405"
    nothing_written()


# ---- content types ----------------------------------------------------------------------

ACCEPTED = ["application/scim+json", "application/json", "application/scim+json; charset=utf-8", "application/json; charset=UTF-8", None]
REFUSED = ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/html", "application/octet-stream"]


@pytest.mark.parametrize("ctype", ACCEPTED, ids=[c or "none" for c in ACCEPTED])
def test_json_content_types_are_accepted(scim, emulator, ctype):
    name = f"ct-{abs(hash(ctype)) % 100000}@example.com"
    r = post_raw(scim, "/Users", json.dumps(jumpcloud_user(name)), content_type=ctype)
    assert r.status_code == 201, f"{ctype}: {r.status_code} {r.text[:300]}"
    assert emulator.drupal_user_by_name(name) is not None


@pytest.mark.parametrize("ctype", REFUSED)
def test_other_content_types_are_415(scim, emulator, pat, ctype, nothing_written):
    name = f"ct-{abs(hash(ctype)) % 100000}@example.com"
    r = post_raw(scim, "/Users", json.dumps(jumpcloud_user(name)), content_type=ctype)
    err = assert_scim_error(r, 415)
    assert err["detail"], err
    assert emulator.drupal_user_by_name(name) is None
    # The same on the other body endpoints.
    r = post_raw(scim, f"/Users/{pat['uuid']}", json.dumps(patch_op({"op": "replace", "path": "active", "value": False})), content_type=ctype, method="PATCH")
    assert_scim_error(r, 415)
    r = post_raw(scim, f"/Users/{pat['uuid']}", json.dumps(jumpcloud_user("pat@example.com")), content_type=ctype, method="PUT")
    assert_scim_error(r, 415)
    r = post_raw(scim, "/Users/.search", json.dumps({"schemas": [SEARCH_REQUEST]}), content_type=ctype)
    assert_scim_error(r, 415)
    nothing_written()
