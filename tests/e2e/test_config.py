"""Plugin configuration: a bad configuration makes Envoy refuse to start, naming the field."""

import copy
import json

import pytest

from harness import Envoy, render_envoy_config, sha256_hex


@pytest.fixture(scope="module")
def good_plugin_config(stack):
    """The plugin configuration the session's Envoy runs with."""
    import yaml

    cfg = yaml.safe_load(stack.envoy.config_path.read_text())
    return render_envoy_config.plugin_config(cfg)


def validate(new_envoy, plugin_config, **kw):
    e: Envoy = new_envoy(start=False, plugin_replace=plugin_config, **kw)
    return e.validate()


def test_session_config_validates(new_envoy, good_plugin_config):
    rc, out = validate(new_envoy, good_plugin_config)
    assert rc == 0, out[-3000:]


def _with(cfg, path, value=None, delete=False):
    cfg = copy.deepcopy(cfg)
    obj = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        obj = obj[k]
    if delete:
        obj.pop(keys[-1], None)
    else:
        obj[keys[-1]] = value
    return cfg


CASES = {
    "unknown-top-level-field": (lambda c: _with(c, "bogus_field", 1), "bogus_field"),
    "unknown-drupal-field": (lambda c: _with(c, "drupal.bogus_drupal_field", "x"), "bogus_drupal_field"),
    "sha256-short": (lambda c: _with(c, "tokens", [{"label": "a", "sha256": "abc123"}]), "sha256"),
    "sha256-not-hex": (lambda c: _with(c, "tokens", [{"label": "a", "sha256": "z" * 64}]), "sha256"),
    "sha256-65-chars": (lambda c: _with(c, "tokens", [{"label": "a", "sha256": "a" * 65}]), "sha256"),
    "tokens-empty": (lambda c: _with(c, "tokens", []), "tokens"),
    "tokens-missing": (lambda c: _with(c, "tokens", delete=True), "tokens"),
    "base_path-no-leading-slash": (lambda c: _with(c, "base_path", "scim/v2"), "base_path"),
    "user_delete-unknown": (lambda c: _with(c, "drupal.user_delete", "purge"), "user_delete"),
    "timeout_ms-string": (lambda c: _with(c, "drupal.timeout_ms", "fast"), "timeout_ms"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_rejected_naming_the_field(new_envoy, good_plugin_config, case):
    mutate, field = CASES[case]
    rc, out = validate(new_envoy, mutate(good_plugin_config))
    assert rc != 0, f"Envoy accepted the {case} configuration:\n{out[-2000:]}"
    assert field in out, f"the output does not name `{field}`:\n{out[-3000:]}"


def test_not_json_is_rejected(new_envoy):
    rc, out = validate(new_envoy, "{not json")
    assert rc != 0


def test_missing_service_account_env_is_rejected(new_envoy, good_plugin_config):
    rc, out = validate(new_envoy, good_plugin_config, drupal_username="", drupal_password="")
    assert rc != 0
    assert "DRUPAL_USERNAME" in out or "username_env" in out, out[-3000:]


def test_token_digest_is_what_authenticates(new_envoy, good_plugin_config):
    """A token configured by its digest works, and the clear token is nowhere in the config."""
    cfg = _with(good_plugin_config, "tokens", [{"label": "only", "sha256": sha256_hex("a-fresh-token")}])
    e = new_envoy(plugin_replace=cfg, tokens={"only": "a-fresh-token"})
    assert "a-fresh-token" not in e.config_path.read_text()
    assert e.scim("GET", "/ServiceProviderConfig", token="only").status_code == 200
    assert e.scim("GET", "/ServiceProviderConfig", token="not-the-token").status_code == 401


def test_rendered_root_config_plugin_schema():
    """The repository's envoy.yaml carries exactly the documented plugin schema."""
    import yaml

    cfg = yaml.safe_load((render_envoy_config.DEFAULT_TEMPLATE).read_text())
    pc = render_envoy_config.plugin_config(cfg)
    assert set(pc) == {"base_path", "tokens", "drupal", "max_body_bytes", "wait_cluster"}
    assert pc["wait_cluster"] == "scim_wait"
    assert pc["base_path"] == "/scim/v2"
    assert pc["max_body_bytes"] == 1048576
    assert set(pc["drupal"]) == {
        "cluster", "authority", "jsonapi_prefix", "username_env", "password_env", "timeout_ms", "user_delete",
    }
    assert pc["drupal"]["user_delete"] in ("cancel", "hard_delete")
    for t in pc["tokens"]:
        assert len(t["sha256"]) == 64 and all(ch in "0123456789abcdef" for ch in t["sha256"])
    json.dumps(pc)


# ---- the attribute mapping ---------------------------------------------------------------

# Each case is one `envoy --mode validate` (~0.6 s); the unit tests in src/scim/mapping.rs cover
# every rule, these show that Envoy refuses and names the entry.
MAPPING_CASES = {
    "not-a-list": ({"scim": "displayName", "drupal": "field_display_name"}, "attributes"),
    "unknown-scim-attribute": ([{"scim": "favouriteColour", "drupal": "field_colour"}], "attributes[0].scim"),
    "second-entry-bad": (
        [{"scim": "displayName", "drupal": "field_display_name"}, {"scim": "name.nickname", "drupal": "field_nick"}],
        "attributes[1].scim",
    ),
    "bad-field-name": ([{"scim": "displayName", "drupal": "Field Display"}], "attributes[0].drupal"),
    "reserved-field": ([{"scim": "displayName", "drupal": "mail"}], "attributes[0].drupal"),
    "field-twice": (
        [{"scim": "displayName", "drupal": "field_a"}, {"scim": "title", "drupal": "field_a"}],
        "attributes[1].drupal",
    ),
    "bad-type": ([{"scim": "displayName", "drupal": "field_a", "type": "date"}], "attributes[0].type"),
}


@pytest.mark.parametrize("case", list(MAPPING_CASES))
def test_bad_attribute_mapping_is_rejected_naming_the_entry(new_envoy, good_plugin_config, case):
    attributes, field = MAPPING_CASES[case]
    rc, out = validate(new_envoy, _with(good_plugin_config, "attributes", attributes))
    assert rc != 0, f"Envoy accepted the {case} mapping:\n{out[-2000:]}"
    assert f"field `{field}`" in out, f"the output does not name `{field}`:\n{out[-3000:]}"


def test_the_emulator_mapping_validates(new_envoy, good_plugin_config):
    import harness

    rc, out = validate(new_envoy, _with(good_plugin_config, "attributes", harness.ATTRIBUTES))
    assert rc == 0, out[-3000:]
