"""Microsoft Entra ID, request by request (shared/research/idp-clients.md §2): Test
Connection, matching lookups, create, the default (non-compliant) PATCH dialect with
"Replace", string booleans and multi-operation updates, the `aadOptscim062020` dialect with
path-less objects whose keys are dotted paths and URNs, the SCIM Validator's verbose add /
replace, disable, and delete. Drupal's state is checked after every step."""

from __future__ import annotations

import pytest

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, PATCH_OP, assert_scim_error, mapped_fields
from idp_requests import entra_aadopt_update_ops, entra_create, entra_matching_filters, entra_multi_replace_ops, entra_users
from idp_requests import patch_user as patch

pytestmark = pytest.mark.mapped_fields

EXT = ENTERPRISE_USER
USER_NAME = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
EMAIL = "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
EXTERNAL_ID = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"

# §2.5-A
CREATE = entra_create(USER_NAME, EMAIL, EXTERNAL_ID)


@pytest.fixture
def created(scim, gateway, emulator):
    r = scim("POST", "/Users", json=CREATE)
    assert r.status_code == 201, r.text
    return r.json()


def test_entra_test_connection_and_matching(scim, gateway, emulator):
    # Test Connection: a random GUID as the matching value → 200 and an empty ListResponse.
    body = entra_users(gateway, 'userName eq "5a8a7d29-6a04-4b42-9a73-2f2c0f3c1d11"')
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == 0 and body["Resources"] == []
    # Find user by userName (matching attribute) before creating.
    assert entra_users(gateway, f'userName eq "{USER_NAME}"')["totalResults"] == 0

    r = scim("POST", "/Users", json=CREATE)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    d = emulator.drupal_user(uid)
    assert (d["name"], d["mail"], d["status"]) == (USER_NAME, EMAIL, True)
    assert (d["field_external_id"], d["field_given_name"], d["field_family_name"]) == (EXTERNAL_ID, "givenName", "familyName")

    # The matching attributes an admin may choose, each finds exactly this user.
    for flt in entra_matching_filters(USER_NAME, EXTERNAL_ID, EMAIL):
        assert [u["id"] for u in entra_users(gateway, flt)["Resources"]] == [uid], flt
    # externalId is case-exact: another case is another object.
    assert entra_users(gateway, f'externalId eq "{EXTERNAL_ID.upper()}"')["totalResults"] == 0
    # Get user; a duplicate create is a 409.
    assert scim("GET", f"/Users/{uid}").json()["externalId"] == EXTERNAL_ID
    assert_scim_error(scim("POST", "/Users", json=CREATE), 409, "uniqueness")


def test_entra_create_with_explicit_nulls_and_display_name(scim, emulator):
    """The tutorial's second create example: explicit nulls and `displayName`."""
    body = {
        **CREATE,
        "userName": "Joy.Young@contoso.example",
        "externalId": "joy-young",
        "emails": [{"primary": True, "type": "work", "value": "Joy.Young@contoso.example"}],
        "displayName": "Joy Young",
        "addresses": None,
        "phoneNumbers": None,
        "preferredLanguage": None,
        "title": None,
        "department": None,
        "manager": None,
    }
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    d = emulator.drupal_user(r.json()["id"])
    assert d["field_display_name"] == "Joy Young"
    assert d["field_title"] is None and d["field_phone_work"] is None


def test_entra_create_with_the_enterprise_urn_typo(scim, emulator):
    """The tutorial's schemas entry `…enterprise:2.0User` (missing colon) is tolerated."""
    body = {**CREATE, "schemas": [CORE_USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"], "userName": "typo@contoso.example",
            "emails": [{"primary": True, "type": "work", "value": "typo@contoso.example"}], "externalId": "typo"}
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["name"] == "typo@contoso.example"


def test_entra_default_dialect(scim, emulator, created, drupal_requests, clear_drupal_requests):
    uid = created["id"]
    # §2.5-B: multi-valued + single-valued in one request, "Replace".
    got = patch(scim, uid,
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"})
    assert got["emails"] == [{"value": "updatedEmail@microsoft.com", "type": "work"}]
    d = emulator.drupal_user(uid)
    assert (d["mail"], d["field_family_name"], d["field_given_name"]) == ("updatedEmail@microsoft.com", "updatedFamilyName", "givenName")

    # Update single-valued: userName.
    got = patch(scim, uid, {"op": "Replace", "path": "userName", "value": "renamed_" + USER_NAME})
    assert emulator.drupal_user(uid)["name"] == "renamed_" + USER_NAME

    # §2.6 non-compliant multi-op update.
    clear_drupal_requests()
    got = patch(scim, uid, *entra_multi_replace_ops("TestBcwqnm@test.microsoft.com", "Eqpj"))
    writes = [q for q in drupal_requests() if q["method"] != "GET"]
    assert len(writes) == 1, "six operations, one Drupal write"
    d = emulator.drupal_user(uid)
    assert d["mail"] == "TestBcwqnm@test.microsoft.com"
    assert {k: v for k, v in mapped_fields(d).items() if v is not None} == {
        "field_display_name": "Pvlo",
        "field_given_name": "Gtfd",
        "field_family_name": "Pkqf",
        "field_external_id": "Eqpj",
        "field_employee_number": "Eqpj",
    }
    assert got[EXT] == {"employeeNumber": "Eqpj"}

    # "Add" of an attribute the server does not store is accepted and ignored.
    patch(scim, uid, {"op": "Add", "path": "nickName", "value": "Babs"})

    # Manager (tutorial example 5) is not stored: accepted, nothing changes.
    before = emulator.drupal_user(uid)
    patch(scim, uid, {"op": "Add", "path": "manager", "value": [{"$ref": "http://example/scim/Users/00aa00aa", "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]})
    assert emulator.drupal_user(uid) == before

    # Disable: string boolean "False" (the account is read first: may SCIM write it?).
    clear_drupal_requests()
    got = patch(scim, uid, {"op": "Replace", "path": "active", "value": "False"})
    assert got["active"] is False
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]
    assert emulator.drupal_user(uid)["status"] is False
    # The tutorial's form: boolean, schemas after Operations.
    r = scim("PATCH", f"/Users/{uid}", json={"Operations": [{"op": "Replace", "path": "active", "value": True}], "schemas": [PATCH_OP]})
    assert r.status_code == 200 and emulator.drupal_user(uid)["status"] is True
    # "True" re-enables after an Entra soft delete is restored.
    patch(scim, uid, {"op": "Replace", "path": "active", "value": "False"})
    patch(scim, uid, {"op": "Replace", "path": "active", "value": "True"})
    assert emulator.drupal_user(uid)["status"] is True

    # Disabled users are still found by the matching attribute.
    patch(scim, uid, {"op": "Replace", "path": "active", "value": "False"})
    r = scim("GET", "/Users", params={"filter": 'externalId eq "Eqpj"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]

    # Hard delete in Entra → DELETE → 204, then 404.
    assert scim("DELETE", f"/Users/{uid}").status_code == 204
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    assert_scim_error(scim("DELETE", f"/Users/{uid}"), 404)


def test_entra_aadoptscim062020_dialect(scim, emulator, created, drupal_requests, clear_drupal_requests):
    uid = created["id"]
    clear_drupal_requests()
    got = patch(scim, uid, {"op": "replace", "path": "active", "value": False})
    assert got["active"] is False and emulator.drupal_user(uid)["status"] is False
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]

    got = patch(scim, uid, *entra_aadopt_update_ops("TestMhvaes@test.microsoft.com"))
    d = emulator.drupal_user(uid)
    assert d["mail"] == "TestMhvaes@test.microsoft.com"
    assert (d["field_display_name"], d["field_given_name"], d["field_family_name"], d["field_employee_number"]) == ("Bjfe", "Kkom", "Unua", "Aklq")
    assert d["field_external_id"] == EXTERNAL_ID
    assert got["name"] == {"givenName": "Kkom", "familyName": "Unua"}

    # The validator's "Update User userName": path-less object.
    patch(scim, uid, {"op": "replace", "value": {"userName": "ryleigh@kuhlman.example"}})
    assert emulator.drupal_user(uid)["name"] == "ryleigh@kuhlman.example"
    patch(scim, uid, {"op": "replace", "path": "active", "value": True})
    assert emulator.drupal_user(uid)["status"] is True


def test_entra_validator_verbose_replace_and_add(scim, emulator):
    """The SCIM Validator: minimal create, then one PATCH with many `add` operations
    (mapped ones applied, the rest ignored), then many `replace` operations."""
    r = scim("POST", "/Users", json={"schemas": [CORE_USER, EXT], "userName": "shaniya@bauch.example", "active": True})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    got = patch(scim, uid,
                {"op": "add", "path": 'roles[primary eq "True"].display', "value": "RAJBJMKHJSNI"},
                {"op": "add", "path": 'roles[primary eq "True"].value', "value": "OGCIACGFVVRR"},
                {"op": "add", "path": "name.givenName", "value": "Sadye"},
                {"op": "add", "path": "name.familyName", "value": "Keaton"},
                {"op": "add", "path": "name.middleName", "value": "Marcelo"},
                {"op": "add", "path": 'addresses[type eq "work"].streetAddress', "value": "845 Anastacio Radial"},
                {"op": "add", "path": 'phoneNumbers[type eq "work"].value', "value": "56-357-7743"},
                {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "56-357-7744"},
                {"op": "add", "path": 'phoneNumbers[type eq "fax"].value', "value": "56-357-7745"},
                {"op": "add", "path": 'emails[type eq "work"].value', "value": "camille@hermannokuneva.example"},
                {"op": "add", "path": f"{EXT}:employeeNumber", "value": "JPOIXPDDDMKH"},
                {"op": "add", "path": f"{EXT}:department", "value": "KDELNISIUEDX"},
                {"op": "add", "path": f"{EXT}:costCenter", "value": "PCTBWQQHYLIH"},
                {"op": "add", "path": f"{EXT}:manager", "value": {"value": "GZFDHGRKQLCG"}},
                {"op": "add", "path": "title", "value": "HZEYUQROKTXF"},
                {"op": "add", "path": "displayName", "value": "BDFAIMDWZXYA"},
                {"op": "add", "path": "userType", "value": "ITYVRPWVQBNN"},
                {"op": "add", "path": "nickName", "value": "ALLEWIPTSPGW"},
                {"op": "add", "path": "timezone", "value": "America/Indiana/Knox"},
                {"op": "add", "path": "externalId", "value": "ext-shaniya"})
    d = emulator.drupal_user(uid)
    assert mapped_fields(d) == {
        "field_given_name": "Sadye",
        "field_family_name": "Keaton",
        "field_display_name": "BDFAIMDWZXYA",
        "field_external_id": "ext-shaniya",
        "field_title": "HZEYUQROKTXF",
        "field_phone_work": "56-357-7743",
        "field_phone_mobile": "56-357-7744",
        "field_employee_number": "JPOIXPDDDMKH",
        "field_department": "KDELNISIUEDX",
    }
    assert d["mail"] == "camille@hermannokuneva.example"
    # The validator reads the values back: exactly what was sent.
    again = scim("GET", f"/Users/{uid}").json()
    assert again == got
    assert {"value": "56-357-7743", "type": "work"} in again["phoneNumbers"]
    assert again[EXT] == {"employeeNumber": "JPOIXPDDDMKH", "department": "KDELNISIUEDX"}

    patch(scim, uid,
          {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "11-111-1111"},
          {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@hermannokuneva.example"},
          {"op": "replace", "path": "name.givenName", "value": "Ford"},
          {"op": "replace", "path": f"{EXT}:department", "value": "Sales"},
          {"op": "replace", "path": 'addresses[type eq "work"].locality', "value": "Town"},
          {"op": "replace", "path": "preferredLanguage", "value": "cy-GB"})
    d = emulator.drupal_user(uid)
    assert (d["field_phone_work"], d["mail"], d["field_given_name"], d["field_department"]) == ("11-111-1111", "new@hermannokuneva.example", "Ford", "Sales")
    # Remove manager with an empty value: accepted, nothing stored changes.
    patch(scim, uid, {"op": "remove", "path": f"{EXT}:manager", "value": ""})


def test_entra_validator_full_create_payload(scim, emulator):
    """The validator's full create (string "True" in roles, every attribute)."""
    body = {
        "userName": "ford.purdy@bauch.example", "active": True, "displayName": "BDFAIMDWZXYA", "title": "HZEYUQROKTXF",
        "emails": [{"type": "work", "value": "ford.purdy@bauch.example", "primary": True}],
        "preferredLanguage": "cy-GB",
        "name": {"givenName": "Sadye", "familyName": "Keaton", "formatted": "Matt", "middleName": "Marcelo",
                 "honorificPrefix": "Caleigh", "honorificSuffix": "Catalina"},
        "addresses": [{"type": "work", "formatted": "x", "streetAddress": "845 Anastacio Radial", "locality": "x",
                       "region": "x", "postalCode": "zl48 3xh", "primary": True, "country": "Belize"}],
        "phoneNumbers": [{"type": "work", "value": "56-357-7743", "primary": True},
                         {"type": "mobile", "value": "56-357-7744"}, {"type": "fax", "value": "56-357-7745"}],
        EXT: {"employeeNumber": "JPOIXPDDDMKH", "department": "KDELNISIUEDX", "costCenter": "PCTBWQQHYLIH",
              "organization": "CJVPTEPRUCKO", "division": "JBYUDRIYLEDA", "manager": {"value": "GZFDHGRKQLCG"}},
        "roles": [{"primary": "True", "display": "RAJBJMKHJSNI", "value": "OGCIACGFVVRR", "type": "IJAQSLXCMJPC"}],
        "userType": "ITYVRPWVQBNN", "nickName": "ALLEWIPTSPGW", "locale": "PUWGYNUKSGVE",
        "timezone": "America/Indiana/Knox", "profileUrl": "RVSZJGLGMDLF",
        "schemas": [CORE_USER, EXT],
    }
    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    d = emulator.drupal_user(r.json()["id"])
    assert (d["field_phone_work"], d["field_phone_mobile"], d["field_employee_number"]) == ("56-357-7743", "56-357-7744", "JPOIXPDDDMKH")
    # "Filter for an existing user with a different case".
    r = scim("GET", "/Users", params={"filter": 'userName eq "FORD.PURDY@BAUCH.EXAMPLE"'})
    assert r.json()["totalResults"] == 1
