"""What Envoy routes where: SCIM paths stay at the gateway, the rest of the site is proxied
to Drupal; Envoy's own 413 becomes a SCIM error."""

import json

import pytest

from harness import SCIM_ERROR, assert_scim_error, jumpcloud_user

LIMIT = 1048576


@pytest.mark.parametrize("path", ["/Nope", "/Users/x/y/z", "/Devices", "/users/../Nope"])
def test_unknown_scim_path_is_404(scim, drupal_requests, path):
    r = scim("GET", path)
    assert_scim_error(r, 404)
    assert drupal_requests() == []


@pytest.mark.parametrize("method,path", [("GET", "/Me"), ("POST", "/Bulk"), ("GET", "/.search"), ("GET", "/Users/.search")])
def test_unsupported_scim_endpoints_are_scim_errors(scim, drupal_requests, method, path):
    r = scim(method, path, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]} if method == "POST" else None)
    assert r.status_code in (404, 405, 501), r.text
    assert_scim_error(r, r.status_code)
    assert drupal_requests() == []


def test_random_top_level_path_is_404(scim):
    """scim2-tester's `random_url` check."""
    assert_scim_error(scim("GET", "/2f0a9c52-97a4-4d0a-9a4e-6b5a0b0e0d11"), 404)


def test_path_outside_scim_is_proxied_to_drupal(new_envoy, drupal_requests, clear_drupal_requests):
    # /jsonapi is closed on the public side unless opted in (test_edge_hardening.py).
    gateway = new_envoy(public_jsonapi=True)
    clear_drupal_requests()
    status, headers, body = gateway.raw("GET", "/jsonapi", headers={"Accept": "application/vnd.api+json"})
    assert status == 200, body[:300]
    doc = json.loads(body)
    assert "links" in doc or "jsonapi" in doc, doc
    reqs = drupal_requests()
    assert [(r["method"], r["path"].split("?")[0]) for r in reqs] == [("GET", "/jsonapi")]


def test_proxied_site_keeps_its_own_status_and_body(gateway, drupal_requests):
    status, headers, body = gateway.raw("GET", "/user/00000000?_format=json")
    assert status in (401, 403, 404), (status, body[:300])
    assert "scim" not in headers.get("content-type", "")
    assert drupal_requests(), "the request did not reach Drupal"


@pytest.mark.parametrize(
    "target",
    [
        "/scim/v2/../jsonapi",
        "/scim/v2/..%2Fjsonapi",
        "/scim/v2/%2e%2e/jsonapi",
        "/scim/v2/Users/../../../jsonapi/user/user",
    ],
)
def test_dot_segments_under_scim_never_reach_drupal(gateway, drupal_requests, target):
    status, headers, body = gateway.raw(
        "GET", target, headers={"Authorization": "Bearer " + gateway.tokens["primary"]}
    )
    assert status in (400, 404), (status, body[:300])
    assert headers.get("content-type", "").startswith("application/scim+json")
    assert drupal_requests() == []


def test_error_responses_are_scim_json(scim):
    r = scim("GET", "/Nope")
    assert r.headers["Content-Type"].startswith("application/scim+json")
    assert r.json()["schemas"] == [SCIM_ERROR]


def test_body_over_limit_is_413_scim_error(scim, drupal_requests, emulator):
    before = len(emulator.drupal_users())
    padding = "x" * (LIMIT + 1024)
    r = scim("POST", "/Users", json=jumpcloud_user("huge@example.com", nickName=padding))
    body = assert_scim_error(r, 413)
    assert body["detail"] == "Request body exceeds the 1048576-byte limit."
    assert not any(q["method"] == "POST" for q in drupal_requests())
    assert len(emulator.drupal_users()) == before


def test_body_of_one_byte_over_limit_is_413(scim):
    r = scim("POST", "/Users", data=b"{" + b" " * (LIMIT - 1) + b"}x", headers={"Content-Type": "application/scim+json"})
    assert_scim_error(r, 413)


def test_chunked_body_over_limit_is_413(scim):
    def chunks():
        yield b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"chunky@example.com","nickName":"'
        for _ in range(17):
            yield b"y" * 65536
        yield b'"}'

    r = scim("POST", "/Users", data=chunks(), headers={"Content-Type": "application/scim+json"})
    assert_scim_error(r, 413)


def test_body_just_under_limit_is_not_413(scim):
    """Padding inside an ignored (unmapped) attribute keeps a valid create just below 1 MiB."""
    body = jumpcloud_user("biggish@example.com")
    base = len(json.dumps(body).encode())
    body["nickName"] = "Jane Doe" + "z" * (LIMIT - base - 64)
    raw = json.dumps(body).encode()
    assert len(raw) <= LIMIT
    r = scim("POST", "/Users", data=raw, headers={"Content-Type": "application/scim+json"})
    assert r.status_code != 413, r.text[:300]
    assert r.status_code == 201, r.text[:300]


def test_large_upload_outside_scim_is_not_limited(gateway, drupal_requests):
    """The buffer filter is disabled on the site route: uploads stream to Drupal."""
    body = b"u" * (2 * LIMIT)
    status, headers, _ = gateway.raw(
        "POST", "/file/upload/node/article/field_image", headers={"Content-Type": "application/octet-stream"}, body=body
    )
    assert status != 413
    assert "scim" not in headers.get("content-type", "")
    assert any(r["path"].startswith("/file/upload/node/article/field_image") for r in drupal_requests())


def test_smaller_max_body_bytes_moves_envoys_limit_too(new_envoy):
    gw = new_envoy(plugin_overrides={"max_body_bytes": 65536, "drupal.timeout_ms": 1500})
    r = gw.scim("POST", "/Users", json=jumpcloud_user("limit@example.com", nickName="d" * 70000))
    body = assert_scim_error(r, 413)
    assert "65536" in body["detail"]
    r = gw.scim("POST", "/Users", json=jumpcloud_user("limit@example.com", nickName="d" * 60000))
    assert r.status_code == 201, r.text[:300]
