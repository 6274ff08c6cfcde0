"""Microsoft Entra ID on a real Drupal (shared/research/idp-clients.md §2; the emulator's
version is tests/e2e/test_idp_entra.py): Test Connection, form-encoded matching lookups,
create, the default "Replace" dialect with string booleans and multi-operation updates, the
`aadOptscim062020` dialect with dotted keys and URNs, the SCIM Validator's verbose add, disable
and delete."""

from __future__ import annotations

from harness import CORE_USER, ENTERPRISE_USER, LIST_RESPONSE, assert_scim_error
from idp_requests import entra_aadopt_update_ops, entra_create, entra_matching_filters, entra_multi_replace_ops, entra_users
from idp_requests import patch_user as patch

EXT = ENTERPRISE_USER


def create_body(uniq: str) -> dict:
    # §2.5-A
    return entra_create(f"Test_User_00aa00aa-{uniq}", f"Test_User_11bb-{uniq}@testuser.com", f"0a21f0f2-8d2a-{uniq}")


def test_entra_test_connection_matching_and_default_dialect(scim, gateway, site, uniq, cleanup):
    body = create_body(uniq)
    user_name, email, ext = body["userName"], body["emails"][0]["value"], body["externalId"]
    # Test Connection: a random GUID as the matching value → an empty ListResponse.
    got = entra_users(gateway, f'userName eq "5a8a7d29-6a04-4b42-{uniq}"', site.timeout)
    assert got["schemas"] == [LIST_RESPONSE] and got["totalResults"] == 0 and got["Resources"] == []
    assert entra_users(gateway, f'userName eq "{user_name}"', site.timeout)["totalResults"] == 0

    r = scim("POST", "/Users", json=body)
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    d = site.user(uid)
    assert (d["name"], d["mail"], d["status"]) == (user_name, email, True)
    assert (d["field_external_id"], d["field_given_name"], d["field_family_name"]) == (ext, "givenName", "familyName")

    # The matching attributes an admin may choose each find exactly this user.
    for flt in entra_matching_filters(user_name, ext, email):
        assert [u["id"] for u in entra_users(gateway, flt, site.timeout)["Resources"]] == [uid], flt
    assert entra_users(gateway, f'externalId eq "{ext.upper()}"', site.timeout)["totalResults"] == 0
    assert_scim_error(scim("POST", "/Users", json=body), 409, "uniqueness")

    # §2.5-B: a multi-valued and a single-valued attribute in one request, "Replace".
    new_mail = f"updatedEmail.{uniq}@microsoft.com"
    got = patch(scim, uid,
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_mail},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"})
    assert got["emails"] == [{"value": new_mail, "type": "work"}]
    d = site.user(uid)
    assert (d["mail"], d["field_family_name"], d["field_given_name"]) == (new_mail, "updatedFamilyName", "givenName")
    # userName.
    patch(scim, uid, {"op": "Replace", "path": "userName", "value": "renamed_" + user_name})
    assert site.user(uid)["name"] == "renamed_" + user_name
    # §2.6: six operations, one Drupal save.
    other_mail = f"TestBcwqnm.{uniq}@test.microsoft.com"
    got = patch(scim, uid, *entra_multi_replace_ops(other_mail, f"Eqpj-{uniq}"))
    d = site.user(uid)
    assert (d["mail"], d["field_display_name"], d["field_given_name"], d["field_family_name"], d["field_external_id"],
            d["field_employee_number"]) == (other_mail, "Pvlo", "Gtfd", "Pkqf", f"Eqpj-{uniq}", "Eqpj")
    assert got[EXT] == {"employeeNumber": "Eqpj"}
    # Attributes the server does not store: accepted, nothing changes.
    before = site.user(uid)
    patch(scim, uid, {"op": "Add", "path": "nickName", "value": "Babs"})
    patch(scim, uid, {"op": "Add", "path": "manager", "value": [{"$ref": "http://example/scim/Users/00aa", "value": "00aa00aa"}]})
    assert site.user(uid)["changed"] == before["changed"]

    # Disable with the string boolean; enable; disabled users are still found.
    assert patch(scim, uid, {"op": "Replace", "path": "active", "value": "False"})["active"] is False
    assert site.user(uid)["status"] is False
    patch(scim, uid, {"op": "Replace", "path": "active", "value": "True"})
    assert site.user(uid)["status"] is True
    patch(scim, uid, {"op": "Replace", "path": "active", "value": "False"})
    r = scim("GET", "/Users", params={"filter": f'externalId eq "Eqpj-{uniq}"'})
    assert [u["id"] for u in r.json()["Resources"]] == [uid]

    # Hard delete in Entra → DELETE → 204, then 404 (twice).
    assert scim("DELETE", f"/Users/{uid}").status_code == 204
    assert_scim_error(scim("GET", f"/Users/{uid}"), 404)
    assert_scim_error(scim("DELETE", f"/Users/{uid}"), 404)


def test_entra_aadoptscim062020_dialect(scim, site, uniq, cleanup):
    r = scim("POST", "/Users", json=create_body(uniq))
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    got = patch(scim, uid, {"op": "replace", "path": "active", "value": False})
    assert got["active"] is False and site.user(uid)["status"] is False
    mail = f"TestMhvaes.{uniq}@test.microsoft.com"
    got = patch(scim, uid, *entra_aadopt_update_ops(mail))
    d = site.user(uid)
    assert (d["mail"], d["field_display_name"], d["field_given_name"], d["field_family_name"], d["field_employee_number"]) == (
        mail, "Bjfe", "Kkom", "Unua", "Aklq")
    assert got["name"] == {"givenName": "Kkom", "familyName": "Unua"}
    # The validator's "Update User userName": a path-less object.
    patch(scim, uid, {"op": "replace", "value": {"userName": f"ryleigh.{uniq}@kuhlman.example"}})
    assert site.user(uid)["name"] == f"ryleigh.{uniq}@kuhlman.example"
    patch(scim, uid, {"op": "replace", "path": "active", "value": True})
    assert site.user(uid)["status"] is True


def test_entra_validator_verbose_add(scim, site, uniq, cleanup):
    """The SCIM Validator: minimal create, then one PATCH of many `add`s (mapped ones stored,
    the rest ignored); it reads the values back."""
    r = scim("POST", "/Users", json={"schemas": [CORE_USER, EXT], "userName": f"shaniya.{uniq}@bauch.example", "active": True})
    assert r.status_code == 201, r.text
    uid = cleanup.user(r.json()["id"])
    got = patch(scim, uid,
                {"op": "add", "path": 'roles[primary eq "True"].display', "value": "RAJBJMKHJSNI"},
                {"op": "add", "path": "name.givenName", "value": "Sadye"},
                {"op": "add", "path": "name.familyName", "value": "Keaton"},
                {"op": "add", "path": "name.middleName", "value": "Marcelo"},
                {"op": "add", "path": 'addresses[type eq "work"].streetAddress', "value": "845 Anastacio Radial"},
                {"op": "add", "path": 'phoneNumbers[type eq "work"].value', "value": "56-357-7743"},
                {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "56-357-7744"},
                {"op": "add", "path": 'emails[type eq "work"].value', "value": f"camille.{uniq}@hermannokuneva.example"},
                {"op": "add", "path": f"{EXT}:employeeNumber", "value": "JPOIXPDDDMKH"},
                {"op": "add", "path": f"{EXT}:department", "value": "KDELNISIUEDX"},
                {"op": "add", "path": f"{EXT}:manager", "value": {"value": "GZFDHGRKQLCG"}},
                {"op": "add", "path": "title", "value": "HZEYUQROKTXF"},
                {"op": "add", "path": "displayName", "value": "BDFAIMDWZXYA"},
                {"op": "add", "path": "timezone", "value": "America/Indiana/Knox"},
                {"op": "add", "path": "externalId", "value": f"ext-shaniya-{uniq}"})
    d = site.user(uid)
    assert {k: d[k] for k in ("field_given_name", "field_family_name", "field_display_name", "field_external_id", "field_title",
                              "field_phone_work", "field_phone_mobile", "field_employee_number", "field_department")} == {
        "field_given_name": "Sadye",
        "field_family_name": "Keaton",
        "field_display_name": "BDFAIMDWZXYA",
        "field_external_id": f"ext-shaniya-{uniq}",
        "field_title": "HZEYUQROKTXF",
        "field_phone_work": "56-357-7743",
        "field_phone_mobile": "56-357-7744",
        "field_employee_number": "JPOIXPDDDMKH",
        "field_department": "KDELNISIUEDX",
    }
    assert d["mail"] == f"camille.{uniq}@hermannokuneva.example"
    again = scim("GET", f"/Users/{uid}").json()
    assert again == got
    assert again[EXT] == {"employeeNumber": "JPOIXPDDDMKH", "department": "KDELNISIUEDX"}
