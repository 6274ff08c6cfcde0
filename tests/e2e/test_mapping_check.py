"""The attribute mapping is checked against Drupal when the gateway starts: a mapped field
that Drupal's user entity lacks makes every SCIM request a 503 naming it (instead of writes
failing one by one), and Envoy's log says so."""


import harness
from harness import assert_scim_error


def wait_for(predicate, timeout=10.0):
    return harness.wait_for(predicate, timeout)


def test_a_mapped_field_drupal_lacks_refuses_scim_requests(stack):
    attributes = list(stack.attributes or []) + [{"scim": "nickName", "drupal": "field_no_such_field"}]
    envoy = stack.new_envoy(plugin_overrides={"attributes": attributes})
    try:
        assert wait_for(lambda: "field_no_such_field" in envoy.log_text()), "the check never ran"
        assert "has no field `field_no_such_field`" in envoy.log_text()
        body = assert_scim_error(envoy.scim("GET", "/Users"), 503)
        assert "field_no_such_field" in body["detail"]
    finally:
        envoy.stop()


def test_a_mapping_drupal_has_is_reported_ready(gateway):
    assert wait_for(lambda: "every mapped user field exists" in gateway.log_text())
    assert gateway.scim("GET", "/Users").status_code == 200
