"""Discovery endpoints: /ServiceProviderConfig, /ResourceTypes, /Schemas (RFC 7644 §4)."""

import pytest

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, assert_scim_error

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def get_ok(scim, path):
    r = scim("GET", path)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/scim+json"
    return r.json()


def test_service_provider_config(scim, drupal_requests):
    spc = get_ok(scim, "/ServiceProviderConfig")
    assert SPC in spc["schemas"]
    assert spc["patch"]["supported"] is True
    assert spc["bulk"]["supported"] is False
    assert spc["filter"]["supported"] is True
    assert spc["filter"]["maxResults"] == 1000
    assert spc["sort"]["supported"] is True
    assert spc["etag"]["supported"] is True
    assert spc["changePassword"]["supported"] is True
    schemes = spc["authenticationSchemes"]
    assert isinstance(schemes, list) and schemes
    assert any(s.get("type") == "oauthbearertoken" for s in schemes), schemes
    for s in schemes:
        assert s.get("name") and s.get("description")
    assert drupal_requests() == [], "discovery must not call Drupal"


def test_resource_types_list(scim):
    body = get_ok(scim, "/ResourceTypes")
    assert body["schemas"] == [LIST_RESPONSE]
    assert isinstance(body["totalResults"], int)
    ids = [rt["id"] for rt in body["Resources"]]
    assert "User" in ids
    assert body["totalResults"] == len(body["Resources"])


def test_resource_type_user(scim):
    rt = get_ok(scim, "/ResourceTypes/User")
    assert RESOURCE_TYPE in rt["schemas"]
    assert rt["id"] == "User"
    assert rt["name"] == "User"
    assert rt["endpoint"] == "/Users"
    assert rt["schema"] == CORE_USER
    assert rt.get("meta", {}).get("resourceType") == "ResourceType"


def test_schemas_list_advertises_the_user_schema(scim):
    body = get_ok(scim, "/Schemas")
    assert body["schemas"] == [LIST_RESPONSE]
    assert isinstance(body["totalResults"], int)
    ids = [s["id"] for s in body["Resources"]]
    assert CORE_USER in ids


def _user_schema(scim):
    return get_ok(scim, f"/Schemas/{CORE_USER}")


def test_user_schema_by_id(scim):
    s = _user_schema(scim)
    assert s["id"] == CORE_USER
    assert SCHEMA in s.get("schemas", [SCHEMA])
    assert s.get("meta", {}).get("resourceType") == "Schema"


@pytest.mark.mapped_fields
def test_user_schema_advertises_exactly_the_mapped_attributes(scim):
    """scripts/emulator-attributes.json: the core four plus what it maps, in mapping order."""
    attrs = {a["name"]: a for a in _user_schema(scim)["attributes"]}
    assert list(attrs) == [
        "userName", "emails", "active", "name", "displayName", "externalId", "title", "phoneNumbers", "password",
    ]

    user_name = attrs["userName"]
    assert user_name["type"] == "string"
    assert user_name["required"] is True
    assert user_name["caseExact"] is False
    assert user_name["uniqueness"] == "server"
    assert user_name["multiValued"] is False

    emails = attrs["emails"]
    assert emails["type"] == "complex"
    assert emails["multiValued"] is True
    subs = {sa["name"]: sa for sa in emails["subAttributes"]}
    assert list(subs) == ["value", "type"]
    assert subs["type"]["canonicalValues"] == ["work"]

    assert attrs["active"]["type"] == "boolean"
    assert attrs["active"]["multiValued"] is False

    name = attrs["name"]
    assert name["type"] == "complex" and name["multiValued"] is False
    assert [sa["name"] for sa in name["subAttributes"]] == ["givenName", "familyName"]

    for simple in ("displayName", "title"):
        assert attrs[simple]["type"] == "string" and attrs[simple]["multiValued"] is False
        assert attrs[simple]["caseExact"] is False
    assert attrs["externalId"]["caseExact"] is True, "externalId is case-exact by default"

    phones = attrs["phoneNumbers"]
    assert phones["multiValued"] is True
    psubs = {sa["name"]: sa for sa in phones["subAttributes"]}
    assert list(psubs) == ["value", "type"]
    assert psubs["type"]["canonicalValues"] == ["work", "mobile"]

    password = attrs["password"]
    assert password["mutability"] == "writeOnly"
    assert password["returned"] == "never"

    for a in attrs.values():
        assert a["mutability"] in ("readWrite", "writeOnly"), a


@pytest.mark.mapped_fields
def test_enterprise_schema_advertises_the_mapped_enterprise_attributes(scim):
    body = get_ok(scim, "/Schemas")
    assert [s["id"] for s in body["Resources"]] == [CORE_USER, ENTERPRISE_USER]
    assert body["totalResults"] == 2
    ext = get_ok(scim, f"/Schemas/{ENTERPRISE_USER}")
    assert ext["id"] == ENTERPRISE_USER
    assert [a["name"] for a in ext["attributes"]] == ["employeeNumber", "department"]
    for a in ext["attributes"]:
        assert a["type"] == "string" and a["multiValued"] is False
    rt = get_ok(scim, "/ResourceTypes/User")
    assert rt["schemaExtensions"] == [{"schema": ENTERPRISE_USER, "required": False}]


def test_core_only_gateway_advertises_the_core_four(new_envoy):
    """A gateway without `attributes` (the shipped envoy.yaml) advertises only what it maps."""
    gw = new_envoy(plugin_overrides={"attributes": None})
    r = gw.scim("GET", f"/Schemas/{CORE_USER}")
    assert r.status_code == 200, r.text
    assert [a["name"] for a in r.json()["attributes"]] == ["userName", "emails", "active", "password"]
    assert [s["id"] for s in gw.scim("GET", "/Schemas").json()["Resources"]] == [CORE_USER]
    assert "schemaExtensions" not in gw.scim("GET", "/ResourceTypes/User").json()
    assert gw.scim("GET", f"/Schemas/{ENTERPRISE_USER}").status_code == 404


def test_schema_list_entries_equal_the_individual_schemas(scim):
    listed = {s["id"]: s for s in get_ok(scim, "/Schemas")["Resources"]}
    for urn, schema in listed.items():
        single = get_ok(scim, f"/Schemas/{urn}")
        assert single["attributes"] == schema["attributes"]


def test_every_resource_type_schema_is_served(scim):
    for rt in get_ok(scim, "/ResourceTypes")["Resources"]:
        get_ok(scim, f"/ResourceTypes/{rt['id']}")
        get_ok(scim, f"/Schemas/{rt['schema']}")


@pytest.mark.parametrize(
    "path",
    [
        "/ResourceTypes/Printer",
        "/ResourceTypes/6f1c9f3e-5d6a-4c55-8b0a-0d3c5f1b2a7e",
        "/Schemas/urn:example:params:scim:schemas:unknown:1.0:Printer",
        "/Schemas/6f1c9f3e-5d6a-4c55-8b0a-0d3c5f1b2a7e",
    ],
)
def test_unknown_resource_type_or_schema_is_404(scim, path):
    assert_scim_error(scim("GET", path), 404)


@pytest.mark.parametrize("endpoint", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_discovery_endpoints_are_read_only(scim, drupal_requests, method, endpoint):
    r = scim(method, endpoint, json={"schemas": [SPC]})
    assert_scim_error(r, 405)
    assert drupal_requests() == []
