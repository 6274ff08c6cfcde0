"""GET /Users?filter=… over the whole RFC 7644 grammar, with the mapped attributes of
scripts/emulator-attributes.json: every operator, and/or/not/parentheses, value paths, URN
prefixes, case rules on both database collations, string escapes, injection attempts, and
the filters that must be 400 invalidFilter (never a silently empty list).

Every expectation is the exact set of matching users, computed by hand from the seeded
Drupal accounts below (the service account `scim-service`, mail admin@example.com, active,
created at emulator start, is a Drupal user too and takes part).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from harness import ENTERPRISE_USER, LIST_RESPONSE, SERVICE_USER, assert_scim_error

pytestmark = pytest.mark.mapped_fields

EXT = ENTERPRISE_USER
ADMIN = SERVICE_USER

PEOPLE = [
    {
        "name": "alice@example.com",
        "mail": "alice@example.com",
        "status": True,
        "created": "2020-01-01T00:00:00Z",
        "field_given_name": "Alice",
        "field_family_name": "Archer",
        "field_display_name": "Alice Archer",
        "field_external_id": "EXT-Alice-001",
        "field_title": "Engineer",
        "field_phone_work": "+1 555 0100",
        "field_phone_mobile": "+1 555 0101",
        "field_employee_number": "1001",
        "field_department": "R&D",
    },
    {
        "name": "bob@example.org",
        "mail": "bob@example.org",
        "status": False,
        "created": "2021-06-15T00:00:00Z",
        "field_given_name": "Bob",
        "field_family_name": "Builder",
        "field_display_name": "Bob Builder",
        "field_external_id": "ext-bob-002",
        "field_title": "Manager",
        "field_phone_work": "+1 555 0200",
        "field_employee_number": "1002",
        "field_department": "Sales",
    },
    {
        "name": "carol@example.com",
        "mail": "Carol.Case@Example.COM",
        "status": True,
        "created": "2022-12-31T23:59:59Z",
        "field_given_name": "Carol",
        "field_family_name": "Case",
        "field_display_name": "Carol Case",
        "field_external_id": "EXT-CAROL-003",
        "field_phone_mobile": "+44 7700 900300",
        "field_employee_number": "2001",
        "field_department": "R&D",
    },
    {
        "name": "dave@example.net",
        "mail": "dave@example.net",
        "status": True,
        "created": "2023-07-01T12:00:00Z",
        "field_given_name": 'Dave "The Rave"',
        "field_family_name": "O'Neil",
        "field_display_name": "Dave Müller",
        "field_external_id": "a&b=c%26d",
    },
]
A, B, C, D = (p["name"] for p in PEOPLE)
EVERYONE = {A, B, C, D, ADMIN}


@pytest.fixture
def people(seed_users):
    return {p["name"]: u["uuid"] for p, u in zip(PEOPLE, seed_users(PEOPLE))}


def names(scim, flt: str, **params) -> set[str]:
    r = scim("GET", "/Users", params={"filter": flt, "count": 1000, **params})
    assert r.status_code == 200, f"{flt!r}: {r.status_code} {r.text[:400]}"
    body = r.json()
    assert body["schemas"] == [LIST_RESPONSE]
    got = [u["userName"] for u in body["Resources"]]
    assert len(got) == len(set(got)), f"{flt!r}: a user was listed twice: {got}"
    assert body["totalResults"] == len(got), body
    return set(got)


def raw_names(gateway, query: str) -> set[str]:
    status, _, body = gateway.raw("GET", "/scim/v2/Users?" + query, headers={"Authorization": "Bearer " + gateway.tokens["primary"]})
    assert status == 200, (query, status, body[:400])
    return {u["userName"] for u in json.loads(body)["Resources"]}


# ---- every operator ----------------------------------------------------------------------

OPERATORS = [
    # eq: case-insensitive unless caseExact (externalId is case-exact by default)
    ('name.givenName eq "alice"', {A}),
    ('displayName eq "Bob Builder"', {B}),
    ('title eq "ENGINEER"', {A}),
    ('externalId eq "EXT-Alice-001"', {A}),
    ('externalId eq "ext-alice-001"', set()),
    ('externalId eq "EXT-Alice"', set()),
    (f'{EXT}:department eq "r&d"', {A, C}),
    ('active eq false', {B}),
    ('active eq true', {A, C, D, ADMIN}),
    # ne: absent values are "not equal" too
    ('title ne "Engineer"', {B, C, D, ADMIN}),
    ('externalId ne "EXT-Alice-001"', {B, C, D, ADMIN}),
    ('externalId ne "ext-alice-001"', EVERYONE),
    ('active ne true', {B}),
    # co / sw / ew
    ('displayName co "BUILD"', {B}),
    ('emails co "example.com"', {A, C, ADMIN}),
    ('userName sw "CAR"', {C}),
    ('name.familyName sw "o\'"', {D}),
    ('emails.value ew ".org"', {B}),
    ('phoneNumbers.value co "555"', {A, B}),
    ('externalId co "Alice"', {A}),
    ('externalId co "alice"', set()),
    ('externalId sw "EXT-"', {A, C}),
    ('externalId ew "-002"', {B}),
    # pr (and eq null, the same in reverse)
    ("title pr", {A, B}),
    ("phoneNumbers pr", {A, B, C}),
    ("name.givenName pr", {A, B, C, D}),
    (f"{EXT}:employeeNumber pr", {A, B, C}),
    ("title eq null", {C, D, ADMIN}),
    ("title ne null", {A, B}),
    ("externalId pr", {A, B, C, D}),
    # gt / ge / lt / le on dates (RFC 3339, any offset)
    ('meta.created gt "2021-06-15T00:00:00Z"', {C, D, ADMIN}),
    ('meta.created ge "2021-06-15T00:00:00Z"', {B, C, D, ADMIN}),
    ('meta.created lt "2021-06-15T00:00:00Z"', {A}),
    ('meta.created le "2021-06-15T02:00:00+02:00"', {A, B}),
    ('meta.created eq "2021-06-15T02:00:00+02:00"', {B}),
    ('meta.created ne "2021-06-15T00:00:00Z"', {A, C, D, ADMIN}),
    ('meta.created gt "2020-01-01T00:00:00Z" and meta.created lt "2023-01-01T00:00:00Z"', {B, C}),
    ('meta.lastModified gt "2000-01-01T00:00:00Z"', EVERYONE),
    ('meta.lastModified lt "2000-01-01T00:00:00.000Z"', set()),
    ("meta.created pr", EVERYONE),
    # id
    ("id pr", EVERYONE),
    ('id eq "not-a-uuid"', set()),
]


@pytest.mark.parametrize("flt,expected", OPERATORS, ids=[f for f, _ in OPERATORS])
def test_operator(scim, people, flt, expected):
    assert names(scim, flt) == expected


def test_exact_filters_are_answered_by_drupal(scim, people, drupal_requests, clear_drupal_requests):
    """A translatable filter is one Drupal query with the condition in it, not a scan."""
    from urllib.parse import unquote

    clear_drupal_requests()
    assert names(scim, 'title eq "Engineer" and active eq true') == {A}
    reqs = [q for q in drupal_requests() if q["method"] == "GET"]
    assert len(reqs) == 1, [q["path"] for q in reqs]
    path = unquote(reqs[0]["path"])
    assert "[path]=field_title" in path and "[value]=Engineer" in path, path
    assert "[path]=status" in path, path


def test_id_eq_and_ne(scim, people):
    assert names(scim, f'id eq "{people[C]}"') == {C}
    assert names(scim, f'id ne "{people[C]}"') == EVERYONE - {C}
    assert names(scim, f'id eq "{people[C]}" or id eq "{people[D]}"') == {C, D}


# ---- logic ---------------------------------------------------------------------------------

LOGIC = [
    ('name.givenName eq "Alice" or name.givenName eq "Bob"', {A, B}),
    (f'active eq true and {EXT}:department eq "R&D"', {A, C}),
    ("not (active eq true)", {B}),
    ('(title eq "Engineer" or title eq "Manager") and active eq true', {A}),
    ('title eq "Engineer" or title eq "Manager" and active eq true', {A}),
    ('title eq "Manager" and active eq true or title eq "Engineer"', {A}),
    ('not (displayName co "Case")', {A, B, D, ADMIN}),
    ('not (emails ew ".com")', {B, D}),
    ('not (externalId sw "EXT")', {B, D, ADMIN}),
    ('not (title pr)', {C, D, ADMIN}),
    ('not (not (active eq false))', {B}),
    ('not (userName eq "alice@example.com" or userName eq "bob@example.org")', {C, D, ADMIN}),
    ('((userName sw "a" or userName sw "b") and (phoneNumbers pr)) and not (active eq false)', {A}),
    ('userName eq "alice@example.com" and userName eq "bob@example.org"', set()),
    ('active eq true and not (title pr) and emails co "example"', {C, D, ADMIN}),
    ('externalId eq "EXT-CAROL-003" or displayName eq "Bob Builder"', {B, C}),
    ('not (externalId eq "EXT-CAROL-003") and active eq true', {A, D, ADMIN}),
]


@pytest.mark.parametrize("flt,expected", LOGIC, ids=[f for f, _ in LOGIC])
def test_logic(scim, people, flt, expected):
    assert names(scim, flt) == expected


# ---- value paths and URN-qualified names ------------------------------------------------

VALUE_PATHS = [
    ('emails[type eq "work" and value co "@example.org"]', {B}),
    ('emails[value ew "example.com"]', {A, C, ADMIN}),
    ('emails[type eq "work"].value eq "bob@example.org"', {B}),
    ('emails[type eq "home"]', set()),
    ('emails[type eq "home"].value eq "bob@example.org"', set()),
    ('phoneNumbers[type eq "mobile"]', {A, C}),
    ('phoneNumbers[type eq "work"]', {A, B}),
    ('phoneNumbers[type eq "mobile" and value sw "+44"]', {C}),
    ('phoneNumbers[type eq "work" or type eq "mobile"]', {A, B, C}),
    ('phoneNumbers[value co "0200"]', {B}),
    ('phoneNumbers[type eq "fax"]', set()),
    ('phoneNumbers[not (type eq "work")]', {A, C}),
    ('name[givenName eq "carol"]', {C}),
    ('name[givenName sw "a" and familyName sw "a"]', {A}),
    ('emails[type eq "work"] and phoneNumbers[type eq "mobile"]', {A, C}),
    ('userName eq "bob@example.org" or phoneNumbers[type eq "mobile" and value co "0101"]', {A, B}),
]


@pytest.mark.parametrize("flt,expected", VALUE_PATHS, ids=[f for f, _ in VALUE_PATHS])
def test_value_path(scim, people, flt, expected):
    assert names(scim, flt) == expected


URN = "urn:ietf:params:scim:schemas:core:2.0:User"
QUALIFIED = [
    (f'{URN}:userName eq "alice@example.com"', {A}),
    (f'{URN}:name.givenName eq "Bob"', {B}),
    (f'{URN}:emails[type eq "work" and value ew ".net"]', {D}),
    (f'{EXT}:department eq "sales"', {B}),
    (f'{EXT.upper()}:DEPARTMENT EQ "SALES"', {B}),
    (f'{EXT}:employeeNumber sw "100"', {A, B}),
    (f'{URN.upper()}:USERNAME eq "ALICE@EXAMPLE.COM"', {A}),
]


@pytest.mark.parametrize("flt,expected", QUALIFIED, ids=[f for f, _ in QUALIFIED])
def test_urn_qualified_names(scim, people, flt, expected):
    assert names(scim, flt) == expected


# ---- case rules ------------------------------------------------------------------------------

CASE_RULES = [
    ('NAME.GIVENNAME EQ "ALICE"', {A}),
    ('DisplayName Co "builder"', {B}),
    ('userName Sw "DAVE" And Active Eq TRUE', {D}),
    ('TITLE PR', {A, B}),
    ('Not (ACTIVE eq True) OR title EQ "engineer"', {A, B}),
    ('emails eq "carol.case@example.com"', {C}),
    ('emails eq "CAROL.CASE@EXAMPLE.COM"', {C}),
    ('emails.value eq "Carol.Case@Example.COM"', {C}),
    ('emails[value eq "carol.CASE@example.com"]', {C}),
    ('emails[type eq "WORK" and value eq "CAROL.case@EXAMPLE.com"]', {C}),
    ('emails co "CASE@"', {C}),
    ('emails sw "CAROL."', {C}),
    ('emails ew "@EXAMPLE.COM"', {A, C, ADMIN}),
    ('emails ne "carol.case@example.com"', {A, B, D, ADMIN}),
    ('not (emails eq "CAROL.CASE@example.com")', {A, B, D, ADMIN}),
    ('userName eq "CAROL@EXAMPLE.COM"', {C}),
    ('externalId eq "ext-carol-003"', set()),
    ('externalId eq "EXT-CAROL-003"', {C}),
    ('externalId ne "ext-carol-003"', EVERYONE),
    ('externalId sw "ext-"', {B}),
    ('not (externalId co "carol")', EVERYONE),
]


@pytest.mark.parametrize("mail_case_insensitive", [False, True], ids=["sqlite-mail", "mysql-mail"])
@pytest.mark.parametrize("flt,expected", CASE_RULES, ids=[f for f, _ in CASE_RULES])
def test_case_rules_on_both_collations(scim, people, emulator_settings, mail_case_insensitive, flt, expected):
    emulator_settings(mail_case_insensitive=mail_case_insensitive)
    assert names(scim, flt) == expected


# ---- escapes and injection attempts ------------------------------------------------------


def test_escaped_quotes_and_apostrophes(scim, people):
    assert names(scim, r'name.givenName eq "Dave \"The Rave\""') == {D}
    assert names(scim, r'name.givenName co "\"The"') == {D}
    assert names(scim, 'name.familyName eq "O\'Neil"') == {D}


def test_unicode_values_and_escapes(scim, gateway, people):
    assert names(scim, 'displayName eq "Dave Müller"') == {D}
    assert names(scim, r'displayName eq "Dave M\u00fcller"') == {D}
    assert names(scim, r'displayName eq "Dave M\u00FCller"') == {D}
    assert names(scim, 'displayName co "ü"') == {D}
    q = "filter=" + quote('displayName eq "Dave Müller"', safe="")
    assert raw_names(gateway, q) == {D}


def test_a_quote_inside_a_value_cannot_end_the_string(scim, people, drupal_requests):
    flt = r'userName eq "x\" or userName pr or userName eq \"y"'
    assert names(scim, flt) == set()


def test_query_syntax_inside_a_value_stays_a_value(scim, gateway, people, drupal_requests, clear_drupal_requests):
    """A value holding `&filter[…]=` or `%26` is one literal value in Drupal's query: it
    neither adds conditions nor decodes into something else."""
    clear_drupal_requests()
    assert names(scim, 'userName eq "alice@example.com&filter[name]=bob@example.org"') == set()
    assert names(scim, 'userName eq "nobody&filter[scim_live][group][conjunction]=AND"') == set()
    assert names(scim, 'displayName eq "x&page[limit]=1"') == set()
    for q in drupal_requests():
        path = q["path"]
        assert "filter[name]=" not in path and "filter%5Bname%5D=bob" not in path, path
        assert "page[limit]=1&" not in path, path
    # externalId "a&b=c%26d" is found by exactly that value, and by nothing decoded from it.
    assert names(scim, 'externalId eq "a&b=c%26d"') == {D}
    assert names(scim, 'externalId eq "a&b=c&d"') == set()
    assert names(scim, 'externalId co "%26"') == {D}
    assert names(scim, 'externalId co "c&d"') == set()
    # The same, sent with the query string encoded by hand (%2526 is a literal "%26").
    assert raw_names(gateway, "filter=" + quote('externalId eq "a&b=c%26d"', safe="")) == {D}
    assert raw_names(gateway, "filter=externalId%20eq%20%22a%26b%3Dc%2526d%22") == {D}
    assert raw_names(gateway, "filter=externalId+eq+%22a%26b%3Dc%26d%22") == set()


@pytest.mark.parametrize("value", ["%", "_", "%%", "a%", "_lice%", "\\%", "*"])
def test_like_wildcards_are_literal(scim, people, value):
    v = value.replace("\\", "\\\\")
    assert names(scim, f'userName co "{v}"') == set()
    assert names(scim, f'userName sw "{v}"') == set()
    assert names(scim, f'userName eq "{v}"') == set()
    assert names(scim, f'displayName ew "{v}"') == set()


def test_a_percent_value_matches_only_itself(scim, seed_users):
    seed_users([
        {"name": "pct1", "mail": "pct1@example.com", "field_display_name": "100% sure"},
        {"name": "pct2", "mail": "pct2@example.com", "field_display_name": "100 percent sure"},
        {"name": "und1", "mail": "und1@example.com", "field_display_name": "snake_case"},
        {"name": "und2", "mail": "und2@example.com", "field_display_name": "snakeXcase"},
    ])
    assert names(scim, 'displayName co "0% s"') == {"pct1"}
    assert names(scim, 'displayName eq "100% sure"') == {"pct1"}
    assert names(scim, 'displayName co "e_c"') == {"und1"}
    assert names(scim, 'displayName eq "snake_case"') == {"und1"}


def test_plus_and_percent_twenty_both_mean_space(gateway, people):
    assert raw_names(gateway, "filter=displayName+eq+%22Bob+Builder%22") == {B}
    assert raw_names(gateway, "filter=displayName%20eq%20%22Bob%20Builder%22") == {B}
    assert raw_names(gateway, "filter=displayName%20eq%20%22Bob%2BBuilder%22") == set()


# ---- integers (a gateway mapping an integer field) ---------------------------------------


@pytest.fixture(scope="module")
def integer_stack(tmp_path_factory, stack):
    """An emulator with an integer user field and a gateway mapping the enterprise
    `costCenter` onto it (the session mapping has only strings)."""
    import harness

    workdir = tmp_path_factory.mktemp("int-stack")
    emu = harness.Emulator(workdir, fields=False, extra_args=["--user-field", "field_cost_center:integer"]).start()
    mapping = [{"scim": f"{EXT}:costCenter", "drupal": "field_cost_center", "type": "integer"}]
    gw = harness.Envoy(workdir, emu, stack.tokens, plugin_overrides={"drupal.timeout_ms": 1500, "attributes": mapping}, name="int-envoy")
    try:
        gw.start()
        emu.seed_users([
            {"name": "n-neg", "mail": "n-neg@example.com", "field_cost_center": -5},
            {"name": "n-0", "mail": "n-0@example.com", "field_cost_center": 0},
            {"name": "n-7", "mail": "n-7@example.com", "field_cost_center": 7},
            {"name": "n-10", "mail": "n-10@example.com", "field_cost_center": 10},
            {"name": "n-100", "mail": "n-100@example.com", "field_cost_center": 100},
            {"name": "n-none", "mail": "n-none@example.com"},
        ])
        yield gw
    finally:
        gw.stop()
        emu.stop()


CC = f"{EXT}:costCenter"
INTEGERS = [
    (f"{CC} eq 7", {"n-7"}),
    (f"{CC} ne 7", {"n-neg", "n-0", "n-10", "n-100", "n-none", ADMIN}),
    (f"{CC} gt 7", {"n-10", "n-100"}),
    (f"{CC} ge 7", {"n-7", "n-10", "n-100"}),
    (f"{CC} lt 7", {"n-neg", "n-0"}),
    (f"{CC} le 0", {"n-neg", "n-0"}),
    (f"{CC} gt -10 and {CC} lt 10", {"n-neg", "n-0", "n-7"}),
    (f"not ({CC} ge 10)", {"n-neg", "n-0", "n-7"}),
    (f"{CC} pr", {"n-neg", "n-0", "n-7", "n-10", "n-100"}),
    (f"{CC} gt 9 and {CC} lt 11 or {CC} eq -5", {"n-10", "n-neg"}),
]


@pytest.mark.parametrize("flt,expected", INTEGERS, ids=[f.replace(CC, "costCenter") for f, _ in INTEGERS])
def test_integer_order_comparisons(integer_stack, flt, expected):
    assert names(integer_stack.scim, flt) == expected


@pytest.mark.parametrize("flt", [f'{CC} gt "7"', f"{CC} co 7", f"{CC} eq 7.5", f"{CC} eq true"])
def test_integer_comparisons_with_other_values_are_invalid_filters(integer_stack, flt):
    body = assert_scim_error(integer_stack.scim("GET", "/Users", params={"filter": flt}), 400, "invalidFilter")
    assert "costCenter" in body["detail"], body


# ---- filters that are errors, never an empty list -----------------------------------------

INVALID = [
    ('nickName eq "jd"', "nickName"),
    ('displayName gt "A"', "displayName"),
    ('name.givenName le "B"', "name.givenName"),
    ('userName ge "m"', "userName"),
    ('emails lt "m"', "emails"),
    ('externalId gt "A"', "externalId"),
    ('meta.created gt "yesterday"', "meta.created"),
    ('meta.lastModified co "2020"', "meta.lastModified"),
    ('meta.resourceType eq "User"', "meta.resourceType"),
    ('id gt "a"', "id"),
    ('id co "a"', "id"),
    ('active eq "yes"', "active"),
    ("active gt false", "active"),
    ("displayName eq 5", "displayName"),
    ('addresses[type eq "work"].locality eq "Berlin"', "addresses"),
    ('addresses[type eq "work"]', "addresses"),
    ('name.middleName eq "x"', "name.middleName"),
    (f'{EXT}:costCenter eq "4130"', "costCenter"),
    (f'{EXT}:manager.value eq "x"', "manager"),
    ('urn:example:params:scim:schemas:thing:1.0:User:userName eq "a"', "urn:example"),
    ('userName eq "alice@example.com" and nickName eq "x"', "nickName"),
    ('userName eq "alice@example.com" or title gt "a"', "title"),
    ('not (userName eq "a") and x509Certificates pr', "x509Certificates"),
    ('groups[value eq "x"]', "groups"),
    ('emails.display eq "y"', "emails.display"),
]


@pytest.mark.parametrize("flt,part", INVALID, ids=[f for f, _ in INVALID])
def test_untranslatable_filter_is_400_naming_the_part(scim, people, drupal_requests, flt, part):
    r = scim("GET", "/Users", params={"filter": flt})
    body = assert_scim_error(r, 400, "invalidFilter")
    assert part in body["detail"], body["detail"]
    assert "Resources" not in body
    assert drupal_requests() == [], "an untranslatable filter reached Drupal"


SYNTAX = [
    'emails[value eq "x"',
    'emails[value eq "x"]]',
    "userName eq \"a\" and (active eq true",
    'userName eq "a") ',
    'userName eq "a" or',
    'and userName eq "a"',
    'userName pr "x"',
    'userName eq "bad \\q escape"',
    'userName eq "\\u00"',
    "userName eq 'single-quoted'",
    'userName eq "a" xor active eq true',
    'emails[type eq "work"][value eq "x"]',
    "userName eq 01",
    "",
]


@pytest.mark.parametrize("flt", SYNTAX, ids=[repr(f) for f in SYNTAX])
def test_malformed_filter_is_400_invalid_filter(scim, people, drupal_requests, flt):
    r = scim("GET", "/Users", params={"filter": flt})
    if flt == "":
        # An empty filter parameter: no filter at all or invalidFilter, never a 5xx.
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert_scim_error(r, 400, "invalidFilter")
        return
    assert_scim_error(r, 400, "invalidFilter")
    assert drupal_requests() == []


def test_filter_results_are_the_same_through_search(scim, people):
    from harness import SEARCH_REQUEST

    for flt, expected in OPERATORS[:11] + LOGIC[:6] + VALUE_PATHS[:5]:
        r = scim("POST", "/Users/.search", json={"schemas": [SEARCH_REQUEST], "filter": flt, "count": 1000})
        assert r.status_code == 200, (flt, r.text)
        assert {u["userName"] for u in r.json()["Resources"]} == expected, flt
