"""Nobody outside can take provisioning down (issue 18, items 1–5), through the shipped config.

1. The public side never shares a flood identity with the gateway: Envoy is the edge
   (use_remote_address, client-supplied X-Forwarded-For not trusted), Drupal trusts only Envoy
   as reverse proxy (the emulator's `reverse_proxy_addresses`, Drupal's settings.php lines in
   docs/security.md), and the gateway's own calls carry no X-Forwarded-For. Basic
   Authorization and JSON logins are refused at the edge by default.
2. The SCIM local rate limit counts per connection: an anonymous flood never spends the IdP's.
3. /jsonapi is closed on the public side unless opted in (render_envoy_config --public-jsonapi).
4. The client's X-Request-Id cannot forge log fields; the access log has no query strings.
5. Framing errors under /scim/v2 are SCIM errors.

Strangers connect from other loopback addresses (127.0.0.2 …), so Drupal (the emulator) sees
their own address, as it would see a visitor's.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import yaml

from harness import SERVICE_USER, basic

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def send(port: int, data: bytes, source: str = "127.0.0.1", timeout: float = 10) -> tuple[int, dict, bytes]:
    """Writes `data` verbatim on a new connection from `source`; returns the first response
    (status, lower-case headers, body read up to Content-Length or the close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = int(headers.get("content-length", "-1"))
        while want < 0 or len(body) < want:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            body += chunk
        return status, headers, body
    finally:
        s.close()


def request(port: int, method: str, target: str, headers: dict | None = None, body: bytes = b"", source: str = "127.0.0.1"):
    h = {"Host": "scim.example", "Connection": "close", **(headers or {})}
    if body or method in ("POST", "PUT", "PATCH"):
        h["Content-Length"] = str(len(body))
    raw = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return send(port, raw.encode() + body, source=source)


def assert_scim_error(status, headers, body, want: int):
    assert status == want, (status, headers, body[:300])
    assert headers.get("content-type", "").startswith("application/scim+json"), headers
    doc = json.loads(body)
    assert doc["schemas"] == [SCIM_ERROR] and doc["status"] == str(want), doc


def scim_ok(envoy) -> None:
    r = envoy.scim("GET", "/Users", params={"count": "1"})
    assert r.status_code == 200, (r.status_code, r.text[:300])


# ---- 1 and 3: the public side --------------------------------------------------------------

CLOSED_JSONAPI = [
    "/jsonapi",
    "/jsonapi/user/user",
    "/JsonAPI/user/user?page[limit]=1",
    "/index.php/jsonapi/user/user",
    "//jsonapi/user/user",
    "/%2Fjsonapi/user/user",
    "/jsonapi?_format=api_json",
    "/%6Asonapi/user/user",
    "/JSON%41PI",
]


@pytest.mark.parametrize("target", CLOSED_JSONAPI)
def test_public_jsonapi_is_closed_by_default(gateway, drupal_requests, target):
    status, headers, body = request(gateway.port, "GET", target, source="127.0.0.2")
    assert status == 403, (status, body[:300])
    assert drupal_requests() == []


@pytest.mark.parametrize(
    "target",
    ["/user/login?_format=json", "/USER/Login?_format=JSON", "/user/login?x=1&_format=json", "/user//login?_format=json", "/index.php/user/login?_format=json", "/user/%6Cogin?_form%61t=json", "/user%2Flogin?%5Fformat=json"],
)
def test_json_login_is_closed_on_the_public_side(gateway, drupal_requests, target):
    body = json.dumps({"name": SERVICE_USER, "pass": "wrong"}).encode()
    status, _, resp = request(gateway.port, "POST", target, {"Content-Type": "application/json"}, body, source="127.0.0.2")
    assert status == 403, (status, resp[:300])
    assert drupal_requests() == []


@pytest.mark.parametrize(
    "auth",
    [basic(SERVICE_USER, "x"), basic(SERVICE_USER.upper(), "x"), basic("visitor", "typo"), "basic " + basic(SERVICE_USER, "x")[6:], "Basic"],
)
def test_basic_authorization_is_refused_on_the_public_side(gateway, drupal_requests, auth):
    status, _, body = request(gateway.port, "GET", "/node/1?_format=json", {"Authorization": auth}, source="127.0.0.2")
    assert status == 403, (status, body[:300])
    assert drupal_requests() == []


def test_the_rest_of_the_site_is_still_proxied(gateway, drupal_requests):
    status, headers, _ = request(gateway.port, "GET", "/user/login", source="127.0.0.2")
    assert status != 403 or "scim" not in headers.get("content-type", "")
    assert [r["path"] for r in drupal_requests()] == ["/user/login"]


def test_the_issues_five_requests_no_longer_lock_the_service_account_out(gateway, drupal_requests):
    """Issue 18 item 1 as reported: 5 × `curl -u scim-service:x LISTEN/jsonapi/user/user`,
    then 50 failed logins for other names; SCIM keeps working."""
    for _ in range(5):
        status, _, _ = request(gateway.port, "GET", "/jsonapi/user/user", {"Authorization": basic(SERVICE_USER, "x")})
        assert status == 403
    for i in range(50):
        status, _, _ = request(gateway.port, "GET", "/", {"Authorization": basic(f"visitor{i}", "typo")})
        assert status == 403
    assert drupal_requests() == []
    scim_ok(gateway)


def test_public_requests_carry_the_callers_address_and_the_gateways_do_not(gateway, drupal_requests, clear_drupal_requests):
    """Envoy appends the caller's address to X-Forwarded-For (after whatever the caller sent,
    which Drupal must not trust); the filter's own calls to Drupal carry none."""
    status, _, _ = request(gateway.port, "GET", "/user/login", {"X-Forwarded-For": "127.0.0.1"}, source="127.0.0.7")
    public = drupal_requests()
    assert [r["headers"].get("x-forwarded-for") for r in public] == ["127.0.0.1,127.0.0.7"], public
    clear_drupal_requests()
    scim_ok(gateway)
    own = [r for r in drupal_requests() if r["path"].startswith("/jsonapi")]
    assert own and all("x-forwarded-for" not in r["headers"] for r in own), own


def _flood(emulator) -> dict:
    r = emulator.http.get(emulator.url + "/_emulator/flood", timeout=10)
    r.raise_for_status()
    return r.json()["identifiers"]


def _stranger_logins(port: int, source: str, xff: str | None = None, basic_tries: int = 7, json_tries: int = 6) -> None:
    h = {"X-Forwarded-For": xff} if xff else {}
    for _ in range(basic_tries):
        request(port, "GET", "/jsonapi/user/user", {**h, "Authorization": basic(SERVICE_USER, "x")}, source=source)
    login = json.dumps({"name": SERVICE_USER, "pass": "wrong"}).encode()
    for _ in range(json_tries):
        request(port, "POST", "/user/login?_format=json", {**h, "Content-Type": "application/json"}, login, source=source)


@pytest.mark.no_leak_check  # the strangers' own Basic credentials reach Drupal, by design here
def test_with_the_site_open_strangers_failed_logins_never_count_against_the_gateway(new_envoy, emulator, drupal_requests):
    """--public-jsonapi on (decoupled sites): Basic and JSON logins reach Drupal. With Drupal
    trusting Envoy as reverse proxy, a stranger's failures are counted against the stranger's
    own address, never against the gateway's (Envoy's, 127.0.0.1), even when the stranger
    claims Envoy's address in X-Forwarded-For."""
    envoy = new_envoy(public_jsonapi=True)
    # Without the reverse-proxy settings (the issue): the stranger's failures land on Envoy's address.
    _stranger_logins(envoy.port, "127.0.0.2", basic_tries=1, json_tries=1)
    before = _flood(emulator)
    assert any(k.endswith("-127.0.0.1") for k in before["basic_auth.failed_login_user"]), before
    emulator.http.delete(emulator.url + "/_emulator/flood", timeout=10).raise_for_status()

    emulator.settings(reverse_proxy_addresses=["127.0.0.1"])
    _stranger_logins(envoy.port, "127.0.0.2")
    _stranger_logins(envoy.port, "127.0.0.3", xff="127.0.0.1")
    # 55 failed logins for other names from one more stranger: past Drupal's per-IP limit (50).
    for i in range(55):
        request(envoy.port, "GET", "/jsonapi/user/user", {"Authorization": basic(f"visitor{i}", "typo")}, source="127.0.0.4")
    flood = _flood(emulator)
    idents = [k for rows in flood.values() for k in rows]
    assert not any(k == "127.0.0.1" or k.endswith("-127.0.0.1") for k in idents), flood
    # Drupal did count them, each against its stranger (5 = its per-account limit).
    user_rows = flood["basic_auth.failed_login_user"]
    assert sorted(k.split("-", 1)[1] for k in user_rows) == ["127.0.0.2", "127.0.0.3"], flood
    assert all(n == 5 for n in user_rows.values()), flood
    assert flood["basic_auth.failed_login_ip"].get("127.0.0.4", 0) >= 50, flood
    assert any(k.endswith("127.0.0.2") for k in flood["user.http_login"]) or any(
        k.endswith("127.0.0.2") for k in flood["user.failed_login_ip"]
    ), flood
    scim_ok(envoy)
    assert envoy.scim("GET", "/Users", params={"filter": f'userName eq "{SERVICE_USER}"'}).status_code == 200


def test_public_jsonapi_opt_in_renders_no_closed_routes(tmp_path):
    import render_envoy_config as r

    def routes(**kw):
        cfg = r.render(**kw)
        hcm = r._hcm(cfg["static_resources"]["listeners"][0])
        return [x.get("name", "") for vh in hcm["route_config"]["virtual_hosts"] for x in vh["routes"]]

    assert [n for n in routes() if n.startswith("closed:")] == ["closed:jsonapi", "closed:json-login", "closed:basic-auth"]
    assert [n for n in routes(public_jsonapi=True) if n.startswith("closed:")] == []


# ---- 2: anonymous floods and the IdP's budget -------------------------------------------------


def test_anonymous_flood_never_spends_the_idps_rate_limit(new_envoy):
    """The SCIM route's local rate limit (made small here: 20 burst, 10/s) runs before the token
    check; counted per connection, a flood on other connections leaves the IdP's alone."""
    envoy = new_envoy(start=False)
    cfg = yaml.safe_load(envoy.config_path.read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    scim_route = next(x for x in hcm["route_config"]["virtual_hosts"][0]["routes"] if x["match"].get("prefix") == "/scim/v2")
    rl = scim_route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    assert rl["local_rate_limit_per_downstream_connection"] is True
    rl["token_bucket"] = {"max_tokens": 20, "tokens_per_fill": 10, "fill_interval": "1s"}
    envoy.config_path.write_text(yaml.safe_dump(cfg))
    envoy.start()

    stop = threading.Event()
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def flood():
        # Bounded: at most 400 requests or 6 s per thread, whichever comes first.
        deadline = time.monotonic() + 6
        s = requests.Session()
        s.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1))
        for _ in range(400):
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                st = s.get(envoy.base_url + "/Users", timeout=5).status_code
            except requests.RequestException:
                st = 0
            with lock:
                counts[st] = counts.get(st, 0) + 1

    threads = [threading.Thread(target=flood) for _ in range(3)]
    for t in threads:
        t.start()
    idp = []
    try:
        time.sleep(0.5)
        for _ in range(10):
            idp.append(envoy.scim("GET", "/Users", params={"count": "1"}).status_code)
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    print(f"anonymous flood: {counts}; IdP: {idp}")
    assert idp == [200] * 10, (idp, counts)
    # The flood met the limit (its own) and the token check: nothing else.
    assert set(counts) <= {401, 429}, counts
    assert counts.get(429, 0) > 0, counts


# ---- 4: logs ---------------------------------------------------------------------------------


def _scim_log_lines(envoy) -> list[str]:
    return [l for l in envoy.log_text().splitlines() if "scim request_id=" in l]


def test_request_id_cannot_forge_log_fields(gateway):
    before = len(_scim_log_lines(gateway))
    forged = "abc token=forged method=DELETE resource=users status=204"
    for token in (None, "primary"):
        gateway.scim("GET", "/Users", token=token, params={"count": "1"}, headers={"X-Request-Id": forged})
    deadline = time.monotonic() + 10
    while len(_scim_log_lines(gateway)) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = _scim_log_lines(gateway)[before:]
    assert len(lines) >= 2, lines
    assert not any("forged" in l for l in lines), lines
    assert all(" request_id=- " in l for l in lines[-2:]), lines


def test_a_plain_request_id_is_logged_as_sent(gateway):
    """Envoy keeps the caller's x-request-id (preserve_external_request_id), for correlation."""
    gateway.scim("GET", "/Users", params={"count": "1"}, headers={"X-Request-Id": "idp-req-42.a:b_c"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("request_id=idp-req-42.a:b_c " in l for l in _scim_log_lines(gateway)):
        time.sleep(0.1)
    assert any("request_id=idp-req-42.a:b_c token=primary" in l for l in _scim_log_lines(gateway))


def test_access_log_has_no_query_strings(gateway):
    gateway.scim("GET", "/Users", params={"filter": 'userName eq "leak-probe@example.com"'})
    gateway.raw("GET", "/scim/v2/Users?access_token=secret-probe-123")
    gateway.raw("GET", "/user/login?destination=query-probe-456")
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = gateway.log_text()
        if text.count("GET /scim/v2/Users ") >= 2 and "GET /user/login " in text:
            break
        time.sleep(0.2)
    assert text.count("GET /scim/v2/Users ") >= 2 and "GET /user/login " in text, text[-2000:]
    for probe in ("leak-probe", "secret-probe-123", "query-probe-456"):
        assert probe not in text


# ---- 5: framing errors -----------------------------------------------------------------------

FRAMING = {
    "bad-chunk-size": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "cl-and-te": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two-content-lengths": b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
    "negative-length": b"Content-Length: -1\r\n\r\n{}",
}


@pytest.mark.parametrize("kind", sorted(FRAMING))
def test_framing_errors_under_scim_are_scim_errors(gateway, drupal_requests, kind):
    head = (
        "POST /scim/v2/Users HTTP/1.1\r\nHost: scim.example\r\nContent-Type: application/scim+json\r\n"
        f"Authorization: Bearer {gateway.tokens['primary']}\r\n"
    ).encode()
    status, headers, body = send(gateway.port, head + FRAMING[kind], source="127.0.0.2")
    assert_scim_error(status, headers, body, 400)
    assert drupal_requests() == []


def test_the_filters_own_400s_keep_their_detail(scim):
    r = scim("GET", "/Users", params={"filter": 'userName eq "unterminated'})
    assert r.status_code == 400
    assert r.json().get("scimType") == "invalidFilter", r.text
