"""PATCH /Users/{id} in every dialect IdPs speak (table-driven), checked against Drupal's
stored fields and Drupal's request log: op in any case, string booleans, path-less objects
with plain, dotted and URN keys, the bare enterprise URN, value paths (creating elements
that do not exist), remove with and without a value; atomicity (one Drupal write or none),
one read (may SCIM write this account?) and one write, no write for a no-op."""

from __future__ import annotations

import pytest

from harness import (
    ENTERPRISE_USER,
    FULL_USER_FIELDS,
    PATCH_OP,
    assert_scim_error,
    basic,
    full_user,
    mapped_fields,
    patch_op,
)

pytestmark = pytest.mark.mapped_fields

EXT = ENTERPRISE_USER
BASE_FIELDS = {**FULL_USER_FIELDS, "field_external_id": "ext-pat"}
UNKNOWN_UUID = "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b"


@pytest.fixture
def pat(scim):
    r = scim("POST", "/Users", json=full_user("pat@example.com"))
    assert r.status_code == 201, r.text
    return r.json()


def requests_made(drupal_requests):
    return [q["method"] for q in drupal_requests()]


_NO_VALUE = object()


def op(o, path=None, value=_NO_VALUE):
    """One PATCH operation; a `value` of None is sent as JSON null."""
    d = {"op": o}
    if path is not None:
        d["path"] = path
    if value is not _NO_VALUE:
        d["value"] = value
    return d


# (id, operations, Drupal changes expected {field: value}, base-attribute changes, direct)
# direct: True = single-valued sets (which once needed no read), False = value-filter or
# multi-valued edits; both are now GET then PATCH (the read tells whether SCIM may write the
# account). None = either.
CASES = [
    ("replace-path", [op("replace", "displayName", "New Name")], {"field_display_name": "New Name"}, {}, True),
    ("Replace-capitalised", [op("Replace", "title", "Lead")], {"field_title": "Lead"}, {}, True),
    ("REPLACE-upper", [op("REPLACE", "title", "Lead")], {"field_title": "Lead"}, {}, True),
    ("add-simple", [op("add", "externalId", "X-9")], {"field_external_id": "X-9"}, {}, True),
    ("Add-capitalised", [op("Add", "displayName", "Added")], {"field_display_name": "Added"}, {}, True),
    ("active-false", [op("replace", "active", False)], {}, {"status": False}, True),
    ("active-string-False", [op("Replace", "active", "False")], {}, {"status": False}, True),
    ("active-string-FALSE", [op("replace", "active", "FALSE")], {}, {"status": False}, True),
    ("active-pathless", [op("replace", value={"active": False})], {}, {"status": False}, True),
    ("active-pathless-string", [op("Replace", value={"active": "false"})], {}, {"status": False}, True),
    ("sub-attribute", [op("replace", "name.familyName", "Smith")], {"field_family_name": "Smith"}, {}, True),
    ("sub-attribute-any-case", [op("replace", "NAME.GIVENNAME", "Pia")], {"field_given_name": "Pia"}, {}, True),
    ("urn-qualified-core", [op("replace", "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "Qualified")], {"field_display_name": "Qualified"}, {}, True),
    ("enterprise-urn-path", [op("replace", f"{EXT}:employeeNumber", "E-7")], {"field_employee_number": "E-7"}, {}, True),
    (
        "pathless-dotted-and-urn-keys",
        [op("replace", value={"displayName": "Bjfe", "name.givenName": "Kkom", "name.familyName": "Unua", f"{EXT}:employeeNumber": "Aklq"})],
        {"field_display_name": "Bjfe", "field_given_name": "Kkom", "field_family_name": "Unua", "field_employee_number": "Aklq"},
        {},
        True,
    ),
    ("pathless-complex-object", [op("replace", value={"name": {"givenName": "Obj"}})], {"field_given_name": "Obj"}, {}, None),
    ("pathless-bare-enterprise-urn", [op("add", value={EXT: {"department": "Ops", "employeeNumber": "E-8"}})], {"field_department": "Ops", "field_employee_number": "E-8"}, {}, None),
    ("bare-enterprise-urn-path", [op("replace", EXT, {"department": "Ops"})], {"field_department": "Ops"}, {}, None),
    (
        "bare-enterprise-urn-with-schemas-key",
        [op("add", EXT, {"schemas": [EXT], "employeeNumber": "E-9"})],
        {"field_employee_number": "E-9"},
        {},
        None,
    ),
    ("complex-path-object", [op("replace", "name", {"givenName": "X", "familyName": "Y"})], {"field_given_name": "X", "field_family_name": "Y"}, {}, None),
    ("complex-path-partial-keeps-the-rest", [op("replace", "name", {"familyName": "Only"})], {"field_family_name": "Only"}, {}, None),
    ("value-path-phone", [op("replace", 'phoneNumbers[type eq "work"].value', "+49 30 1")], {"field_phone_work": "+49 30 1"}, {}, None),
    ("value-path-email", [op("Replace", 'emails[type eq "work"].value', "pat.new@example.com")], {}, {"mail": "pat.new@example.com"}, None),
    ("value-path-filter-any-case", [op("replace", 'PHONENUMBERS[TYPE EQ "MOBILE"].VALUE', "777")], {"field_phone_mobile": "777"}, {}, None),
    ("add-multi-list-upserts-by-type", [op("add", "phoneNumbers", [{"type": "mobile", "value": "444"}])], {"field_phone_mobile": "444"}, {}, False),
    ("replace-multi-list-replaces-all", [op("replace", "phoneNumbers", [{"type": "mobile", "value": "555"}])], {"field_phone_mobile": "555", "field_phone_work": None}, {}, False),
    ("add-emails-work", [op("add", "emails", [{"value": "pat.work@example.com", "type": "work", "primary": True}])], {}, {"mail": "pat.work@example.com"}, None),
    ("replace-emails-list", [op("replace", "emails", [{"value": "pat.only@example.com", "type": "work"}])], {}, {"mail": "pat.only@example.com"}, False),
    ("value-path-element-object", [op("replace", 'phoneNumbers[type eq "work"]', {"value": "121"})], {"field_phone_work": "121"}, {}, None),
    ("remove-simple", [op("remove", "title")], {"field_title": None}, {}, False),
    ("remove-sub-attribute", [op("remove", "name.givenName")], {"field_given_name": None}, {}, False),
    ("remove-complex", [op("remove", "name")], {"field_given_name": None, "field_family_name": None}, {}, False),
    ("remove-enterprise-attribute", [op("remove", f"{EXT}:department")], {"field_department": None}, {}, False),
    ("remove-bare-enterprise-urn", [op("remove", EXT)], {"field_department": None, "field_employee_number": None}, {}, False),
    ("remove-value-path", [op("remove", 'phoneNumbers[type eq "work"]')], {"field_phone_work": None}, {}, False),
    ("remove-value-path-sub", [op("remove", 'phoneNumbers[type eq "mobile"].value')], {"field_phone_mobile": None}, {}, False),
    ("remove-by-value-removes-exactly-that-one", [op("remove", "phoneNumbers", [{"value": "+1 555 0111"}])], {"field_phone_work": None}, {}, False),
    ("remove-by-value-object", [op("Remove", "phoneNumbers", {"value": "+1 555 0122"})], {"field_phone_mobile": None}, {}, False),
    ("remove-whole-multi", [op("remove", "phoneNumbers")], {"field_phone_work": None, "field_phone_mobile": None}, {}, False),
    ("remove-by-filter-on-value", [op("remove", 'phoneNumbers[value eq "+1 555 0122"]')], {"field_phone_mobile": None}, {}, False),
    ("replace-null-clears", [op("replace", "displayName", None)], {"field_display_name": None}, {}, None),
    ("replace-empty-string-clears", [op("replace", "title", "")], {"field_title": None}, {}, None),
    ("userName", [op("replace", "userName", "pat.renamed@example.com")], {}, {"name": "pat.renamed@example.com"}, True),
    ("pathless-userName", [op("replace", value={"userName": "pat.pathless@example.com"})], {}, {"name": "pat.pathless@example.com"}, True),
    (
        "entra-default-multi-op",
        [
            op("Replace", "displayName", "Pvlo"),
            op("Replace", 'emails[type eq "work"].value', "TestBcwqnm@test.microsoft.com"),
            op("Replace", "name.givenName", "Gtfd"),
            op("Replace", "name.familyName", "Pkqf"),
            op("Replace", "externalId", "Eqpj"),
            op("Replace", f"{EXT}:employeeNumber", "Eqpj"),
        ],
        {"field_display_name": "Pvlo", "field_given_name": "Gtfd", "field_family_name": "Pkqf", "field_external_id": "Eqpj", "field_employee_number": "Eqpj"},
        {"mail": "TestBcwqnm@test.microsoft.com"},
        None,
    ),
    (
        "entra-optscim-mixed",
        [
            op("replace", 'emails[type eq "work"].value', "TestMhvaes@test.microsoft.com"),
            op("replace", value={"displayName": "Bjfe", "name.givenName": "Kkom", "name.familyName": "Unua", f"{EXT}:employeeNumber": "Aklq"}),
        ],
        {"field_display_name": "Bjfe", "field_given_name": "Kkom", "field_family_name": "Unua", "field_employee_number": "Aklq"},
        {"mail": "TestMhvaes@test.microsoft.com"},
        None,
    ),
    ("later-op-wins", [op("replace", "title", "First"), op("replace", "title", "Second")], {"field_title": "Second"}, {}, None),
    ("add-then-remove", [op("add", "title", "Temp"), op("remove", "title")], {"field_title": None}, {}, False),
    ("remove-then-add", [op("remove", "phoneNumbers"), op("add", 'phoneNumbers[type eq "mobile"].value', "1")], {"field_phone_work": None, "field_phone_mobile": "1"}, {}, False),
    ("unmapped-ignored-mapped-applied", [op("replace", "nickName", "pp"), op("add", "addresses", [{"type": "work", "locality": "X"}]), op("replace", "title", "Kept")], {"field_title": "Kept"}, {}, None),
    ("read-only-ignored", [op("replace", "id", UNKNOWN_UUID), op("replace", "meta", {"created": "1999"}), op("add", "groups", [{"value": "g"}]), op("replace", "schemas", []), op("replace", "title", "RO")], {"field_title": "RO"}, {}, None),
    ("entra-manager-ignored", [op("Add", f"{EXT}:manager", {"value": UNKNOWN_UUID}), op("Add", "manager", [{"$ref": None, "value": UNKNOWN_UUID}]), op("replace", f"{EXT}:department", "Mgmt")], {"field_department": "Mgmt"}, {}, None),
]


@pytest.mark.parametrize("ops,changes,base,direct", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_patch_dialect(scim, emulator, pat, drupal_requests, clear_drupal_requests, ops, changes, base, direct):
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(*ops))
    assert r.status_code == 200, r.text
    answer = r.json()

    d = emulator.drupal_user(pat["id"])
    assert mapped_fields(d) == {**BASE_FIELDS, **changes}
    expected_base = {"name": "pat@example.com", "mail": "pat@example.com", "status": True, **base}
    assert {k: d[k] for k in ("name", "mail", "status")} == expected_base

    methods = requests_made(drupal_requests)
    assert methods.count("PATCH") == 1 and len([m for m in methods if m not in ("GET", "PATCH")]) == 0, methods
    if direct is not None:
        # A new userName or address is checked for uniqueness first (docs/users.md "Uniqueness").
        claims = d["name"] != "pat@example.com" or d["mail"] != "pat@example.com"
        assert methods == ["GET", "GET", "PATCH"] if claims else ["GET", "PATCH"], f"one read, one write: {methods}"

    # 200 with the full resource, as GET shows it.
    assert r.headers["ETag"] == answer["meta"]["version"]
    got = scim("GET", f"/Users/{pat['id']}").json()
    assert answer == got


def test_add_on_a_value_path_that_matches_nothing_creates_the_element(scim, emulator, pat):
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("remove", 'phoneNumbers[type eq "mobile"]')))
    assert r.status_code == 200
    assert [p["type"] for p in r.json()["phoneNumbers"]] == ["work"]
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("add", 'phoneNumbers[type eq "mobile"].value', "333")))
    assert r.status_code == 200, r.text
    assert {"type": "mobile", "value": "333"} in r.json()["phoneNumbers"]
    assert emulator.drupal_user(pat["id"])["field_phone_mobile"] == "333"
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("remove", "phoneNumbers")))
    assert "phoneNumbers" not in r.json()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("replace", 'phoneNumbers[type eq "work"].value', "444")))
    assert r.status_code == 200, r.text
    assert r.json()["phoneNumbers"] == [{"value": "444", "type": "work"}]
    assert mapped_fields(emulator.drupal_user(pat["id"]))["field_phone_work"] == "444"


def test_add_on_an_empty_attribute_and_enterprise_extension(scim, emulator, create_user):
    u = create_user("bare@example.com")
    assert "title" not in u and EXT not in u
    r = scim(
        "PATCH",
        f"/Users/{u['id']}",
        json=patch_op(
            op("add", "title", "New"),
            op("add", f"{EXT}:department", "Dept"),
            op("add", 'phoneNumbers[type eq "mobile"].value', "1"),
            op("add", "name.familyName", "Fam"),
        ),
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["title"] == "New"
    assert got[EXT] == {"department": "Dept"}
    assert EXT in got["schemas"]
    assert got["phoneNumbers"] == [{"value": "1", "type": "mobile"}]
    assert got["name"]["familyName"] == "Fam"
    d = emulator.drupal_user(u["id"])
    assert (d["field_title"], d["field_department"], d["field_phone_mobile"], d["field_family_name"]) == ("New", "Dept", "1", "Fam")


# ---- atomicity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops,status,scim_type",
    [
        ([op("replace", "displayName", "Changed"), op("replace", "userName", "x" * 61)], 400, "invalidValue"),
        ([op("replace", "displayName", "Changed"), op("replace", "userName", "taken@example.com")], 409, "uniqueness"),
        ([op("add", "phoneNumbers", [{"type": "mobile", "value": "9"}]), op("replace", "userName", "TAKEN@example.com")], 409, "uniqueness"),
        ([op("remove", "title"), op("replace", 'emails[type eq "work"].value', "taken@example.com")], 409, "uniqueness"),
        ([op("replace", "title", "Changed"), op("replace", 'emails[type eq "work"].value', "not an address")], 400, "invalidValue"),
        ([op("replace", "title", "Changed"), op("replace", "displayName", "d" * 300)], 400, "invalidValue"),
    ],
    ids=["userName-too-long", "userName-taken", "userName-taken-other-case", "email-taken", "email-invalid", "displayName-too-long"],
)
def test_patch_that_drupal_rejects_changes_nothing(scim, emulator, pat, create_user, drupal_writes, clear_drupal_requests, ops, status, scim_type):
    create_user("taken@example.com")
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(*ops))
    assert_scim_error(r, status, scim_type)
    # All operations go to Drupal in one write, or none when the gateway can tell first (a
    # userName over Drupal's 60 characters, a name or address another account holds).
    told_first = scim_type == "uniqueness" or (len(str(ops[1].get("value", ""))) > 60 and ops[1].get("path") == "userName")
    assert len(drupal_writes()) == (0 if told_first else 1)
    assert emulator.drupal_user(pat["id"]) == before


@pytest.mark.parametrize(
    "ops,scim_type",
    [
        ([op("replace", "title", "Changed"), op("replace", "active", "maybe")], "invalidValue"),
        ([op("replace", "title", "Changed"), op("replace", "displayName", 42)], "invalidValue"),
        ([op("replace", "title", "Changed"), op("replace", "name", "not an object")], "invalidValue"),
        ([op("replace", "title", "Changed"), op("remove", "userName")], "invalidValue"),
        ([op("replace", "title", "Changed"), op("remove", "active")], "invalidValue"),
        ([op("replace", "title", "Changed"), op("replace", "userName", "scimretiredX")], "invalidValue"),
        ([op("replace", "title", "Changed"), op("replace", "password", "p" * 513)], "invalidValue"),
        ([op("replace", "title", "Changed"), op("remove", 'name[givenName eq "Nobody"].familyName'), op("replace", 'name[givenName eq "Nobody"].familyName', "X")], "noTarget"),
        ([op("replace", "title", "Changed"), op("replace", "phoneNumbers", "555")], "invalidValue"),
    ],
    ids=["active-maybe", "displayName-int", "name-string", "remove-userName", "remove-active", "reserved-userName", "password-too-long", "no-target", "phones-string"],
)
def test_patch_the_gateway_rejects_writes_nothing(scim, emulator, pat, drupal_writes, clear_drupal_requests, ops, scim_type):
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    assert_scim_error(scim("PATCH", f"/Users/{pat['id']}", json=patch_op(*ops)), 400, scim_type)
    assert drupal_writes() == []
    assert emulator.drupal_user(pat["id"]) == before


# ---- what reaches Drupal ----------------------------------------------------------------


def test_replace_active_is_one_read_and_one_drupal_patch(scim, emulator, pat, drupal_requests, clear_drupal_requests):
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("replace", "active", False)))
    assert r.status_code == 200, r.text
    reqs = drupal_requests()
    assert [(q["method"], q["path"].split("?")[0]) for q in reqs] == [("GET", f"/jsonapi/user/user/{pat['id']}"), ("PATCH", f"/jsonapi/user/user/{pat['id']}")]
    import json

    sent = json.loads(reqs[1]["body"])["data"]
    assert sent["id"] == pat["id"]
    assert sent["attributes"] == {"status": False}, "only the changed field is written"
    assert r.json()["active"] is False
    assert emulator.drupal_user(pat["id"])["status"] is False


def test_the_write_carries_only_the_changed_fields(scim, pat, drupal_requests, clear_drupal_requests):
    import json

    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("remove", "title"), op("add", "phoneNumbers", [{"type": "work", "value": "+1 555 0111"}])))
    assert r.status_code == 200, r.text
    patches = [q for q in drupal_requests() if q["method"] == "PATCH"]
    assert len(patches) == 1
    assert json.loads(patches[0]["body"])["data"]["attributes"] == {"field_title": None}


@pytest.mark.parametrize(
    "ops",
    [
        [op("remove", "nickName")],
        [op("replace", "nickName", "x")],
        [op("remove", 'phoneNumbers[type eq "fax"]')],
        [op("add", "phoneNumbers", [{"type": "work", "value": "+1 555 0111"}])],
        [op("replace", "name", {"givenName": "Pat"})],
        [op("remove", "phoneNumbers", [{"value": "not there"}])],
        [op("remove", 'name[givenName eq "Nobody"]')],
        [op("replace", "groups", [{"value": "x"}])],
        [op("add", "title", "Tester"), op("remove", "addresses")],
    ],
    ids=["remove-unmapped", "replace-unmapped", "remove-no-such-type", "add-same-phone", "same-name", "remove-absent-value", "remove-filter-no-match", "read-only", "same-title"],
)
def test_patch_that_changes_nothing_makes_no_drupal_write(scim, emulator, pat, drupal_writes, clear_drupal_requests, ops):
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(*ops))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"]) == before
    assert drupal_writes() == [], "a no-op PATCH wrote to Drupal"
    assert r.json()["meta"]["version"] == pat["meta"]["version"]


# ---- request errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,scim_type",
    [
        ({"Operations": [op("replace", "title", "x")]}, "invalidValue"),
        ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "Operations": [op("replace", "title", "x")]}, "invalidValue"),
        ({"schemas": [PATCH_OP]}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": []}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": {"op": "replace"}}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": ["replace"]}, "invalidSyntax"),
        (patch_op(op("move", "title", "x")), "invalidSyntax"),
        (patch_op({"path": "title", "value": "x"}), "invalidSyntax"),
        (patch_op(op("remove")), "noTarget"),
        (patch_op(op("replace", value="x")), "invalidValue"),
        (patch_op(op("replace", "title")), "invalidValue"),
        (patch_op(op("replace", 'emails[type eq "work"', "x")), "invalidPath"),
        (patch_op(op("replace", "title.sub", "x")), "invalidPath"),
        (patch_op(op("replace", "urn:example:unknown:1.0:User:title", "x")), "invalidPath"),
        (patch_op({"op": "replace", "path": 5, "value": "x"}), "invalidPath"),
    ],
    ids=["no-schemas", "wrong-schema", "no-operations", "empty-operations", "operations-object", "operation-string", "op-move", "no-op", "remove-no-path", "pathless-scalar", "replace-no-value", "bad-filter", "sub-of-simple", "unknown-urn", "path-number"],
)
def test_bad_patch_request_is_400(scim, emulator, pat, drupal_writes, clear_drupal_requests, body, scim_type):
    before = emulator.drupal_user(pat["id"])
    clear_drupal_requests()
    assert_scim_error(scim("PATCH", f"/Users/{pat['id']}", json=body), 400, scim_type)
    assert drupal_writes() == []
    assert emulator.drupal_user(pat["id"]) == before


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null"])
def test_patch_body_that_is_not_an_object_is_invalid_syntax(scim, pat, raw):
    r = scim("PATCH", f"/Users/{pat['id']}", data=raw, headers={"Content-Type": "application/scim+json"})
    assert_scim_error(r, 400, "invalidSyntax")


@pytest.mark.parametrize("ops", [[op("replace", "active", False)], [op("remove", "title")]], ids=["direct", "read-first"])
def test_patch_of_an_unknown_user_is_404(scim, emulator, ops):
    before = len(emulator.drupal_users())
    assert_scim_error(scim("PATCH", f"/Users/{UNKNOWN_UUID}", json=patch_op(*ops)), 404)
    assert_scim_error(scim("PATCH", "/Users/not-a-uuid", json=patch_op(*ops)), 404)
    assert len(emulator.drupal_users()) == before


@pytest.mark.parametrize(
    "ops",
    [[op("remove", "title")], [op("replace", "active", True)], [op("replace", value={"userName": "lazarus@example.com", "active": True})]],
    ids=["read-first", "direct-active", "direct-rename"],
)
def test_patch_of_a_deleted_user_is_404_and_leaves_the_retired_account_alone(scim, emulator, pat, ops):
    """A SCIM-deleted user is retired in Drupal (renamed, blocked): a PATCH must neither
    reactivate nor rename it, even where no read precedes the write."""
    assert scim("DELETE", f"/Users/{pat['id']}").status_code == 204
    retired = emulator.drupal_user(pat["id"])
    assert_scim_error(scim("PATCH", f"/Users/{pat['id']}", json=patch_op(*ops)), 404)
    assert emulator.drupal_user(pat["id"]) == retired


def test_patch_password_lets_the_user_log_in(scim, emulator, pat, drupal_requests, clear_drupal_requests, gateway):
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(op("replace", "password", "Patched-Pw-1")))
    assert r.status_code == 200, r.text
    assert "Patched-Pw-1" not in r.text and "password" not in r.json()
    assert requests_made(drupal_requests) == ["GET", "PATCH"]
    me = emulator.jsonapi("GET", "/jsonapi", auth=basic("pat@example.com", "Patched-Pw-1"))
    assert "me" in me.json().get("meta", {}).get("links", {})
    assert "Patched-Pw-1" not in gateway.log_text()
