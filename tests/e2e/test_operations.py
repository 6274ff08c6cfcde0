"""Operations: metrics in Envoy's stats (Prometheus), one structured log line per request,
and per-token rate limits — read from a real Envoy after known traffic."""

import re
import time

import pytest

from harness import assert_scim_error


@pytest.fixture(scope="module")
def ops_gw(stack):
    # A budget on the `rotated` token only: 3 requests in a burst, 1 a second after that.
    e = stack.new_envoy(plugin_overrides={"rate_limits": {"rotated": {"requests_per_second": 1, "burst": 3}}})
    yield e
    e.stop()


def prometheus(gw) -> str:
    return gw.http.get(f"http://127.0.0.1:{gw.admin_port}/stats/prometheus", timeout=5).text


def metric(text: str, name: str, **labels) -> float:
    """The value of a Prometheus sample whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        inner, value = line[len(name) + 1 :].rsplit("} ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', inner))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def test_request_counts_by_token_resource_op_and_status(ops_gw):
    before = prometheus(ops_gw)
    for _ in range(3):
        assert ops_gw.scim("GET", "/Users").status_code == 200
    assert ops_gw.scim("GET", "/Users/not-a-uuid").status_code == 404
    assert ops_gw.scim("GET", "/Users", token="wrong").status_code == 401
    r = ops_gw.scim("GET", "/Users", params={"filter": "userName xx 1"})
    assert_scim_error(r, 400, "invalidFilter")
    after = prometheus(ops_gw)

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("scim_requests", token="primary", resource="users", op="list", status="200") == 3
    assert delta("scim_requests", token="primary", resource="users", op="get", status="404") == 1
    assert delta("scim_requests", token="-", resource="users", op="list", status="401") == 1
    assert delta("scim_auth_failures") == 1
    assert delta("scim_validation_failures", scim_type="invalidFilter") == 1
    assert delta("scim_drupal_calls", method="GET", status="200") >= 3
    assert "scim_drupal_latency_ms_bucket" in after or "scim_drupal_latency_ms" in after


def test_one_structured_log_line_per_request_and_no_secrets(ops_gw, stack):
    rid = "req-ops-0001"
    r = ops_gw.scim("GET", "/Users", params={"filter": 'userName eq "x@example.com"'}, headers={"x-request-id": rid})
    assert r.status_code == 200
    deadline = time.time() + 5
    line = None
    while time.time() < deadline and line is None:
        line = next((l for l in ops_gw.log_text().splitlines() if f"request_id={rid}" in l), None)
        time.sleep(0.1)
    assert line, "no log line for the request"
    for field in ("token=primary", "method=GET", "resource=users", "op=list", "status=200", "drupal_calls=1", "duration_ms="):
        assert field in line, (field, line)
    log = ops_gw.log_text()
    for secret in [*stack.tokens.values(), stack.emulator.admin_pass]:
        assert secret not in log
    assert "x@example.com" not in line, "the query string (which can hold addresses) is not logged"


def test_rate_limit_per_token_label(ops_gw):
    statuses = [ops_gw.scim("GET", "/ServiceProviderConfig", token="rotated").status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    r = ops_gw.scim("GET", "/ServiceProviderConfig", token="rotated")
    if r.status_code == 429:
        body = assert_scim_error(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        assert "Too many requests" in body["detail"]
    # Other tokens have no budget.
    assert all(ops_gw.scim("GET", "/ServiceProviderConfig").status_code == 200 for _ in range(5))
    assert metric(prometheus(ops_gw), "scim_rate_limited", token="rotated") >= 1


def test_shipped_envoy_yaml_has_envoys_local_rate_limit_before_the_filter():
    """docs/operations.md's claim (Rate limits): Envoy's own local_ratelimit (all SCIM
    traffic) sits in front of the filter's per-token budgets, and only the SCIM route enables
    it."""
    import yaml

    import harness

    cfg = yaml.safe_load((harness.REPO_ROOT / "envoy.yaml").read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.local_ratelimit") < names.index("envoy.filters.http.wasm")
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    scim = next(r for r in routes if r["match"].get("prefix") == "/scim/v2")
    bucket = scim["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]["token_bucket"]
    assert bucket["max_tokens"] > 0
    site = next(r for r in routes if r["match"].get("prefix") == "/")
    assert "envoy.filters.http.local_ratelimit" not in site.get("typed_per_filter_config", {})
