"""Where the database's collation meets the gateway's uniqueness and retired-account rules.

MariaDB (Drupal's default utf8mb4_general_ci) compares case- AND accent-insensitively, and
folds ß to s: `jose…` = `José…` for the unique key on users_field_data.name and for every `=`
or LIKE Drupal sends. SQLite (Drupal's driver) folds ASCII case only. These tests pin what the
gateway does on each: SCIM's rule (case-insensitive, never accent-insensitive) on both, and a
409 naming what clashed before Drupal's unique key answers 500 (issue 18 item 6)."""

from __future__ import annotations

import pytest

from harness import CORE_USER, PATCH_OP, assert_scim_error, jumpcloud_user

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PAIRS = [("José", "jose"), ("straße", "strase")]


def lookup(scim, name: str) -> list[str]:
    r = scim("GET", "/Users", params={"filter": f'userName eq "{name}"'})
    assert r.status_code == 200, r.text
    return [u["userName"] for u in r.json()["Resources"]]


def create(scim, cleanup, name: str, mail: str):
    r = scim("POST", "/Users", json=jumpcloud_user(name, mail))
    if r.status_code == 201:
        cleanup.user(r.json()["id"])
    return r


# ---- MariaDB -------------------------------------------------------------------------------


@pytest.mark.db("mariadb")
@pytest.mark.parametrize("first,second", PAIRS)
def test_mariadb_a_name_equal_under_the_collation_is_409_and_drupal_keeps_one_account(scim, site, uniq, cleanup, first, second):
    a = f"{first}.{uniq}"
    b = f"{second}.{uniq}"
    assert create(scim, cleanup, a, f"a.{uniq}@example.com").status_code == 201
    assert_scim_error(create(scim, cleanup, b, f"b.{uniq}@example.com"), 409, "uniqueness")
    # A rename onto it: the same.
    r = create(scim, cleanup, f"c.{uniq}", f"c.{uniq}@example.com")
    assert r.status_code == 201, r.text
    c = r.json()["id"]
    r = scim("PATCH", f"/Users/{c}", json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "userName", "value": b}]})
    assert_scim_error(r, 409, "uniqueness")
    assert [u["name"] for u in site.users_named(a)] == [a]
    assert site.users_named(b) == []
    assert site.user(c)["name"] == f"c.{uniq}"


@pytest.mark.db("mariadb")
def test_mariadb_the_409_names_the_existing_account_not_a_concurrent_create(scim, uniq, cleanup):
    assert create(scim, cleanup, f"José.{uniq}", f"a.{uniq}@example.com").status_code == 201
    err = assert_scim_error(create(scim, cleanup, f"jose.{uniq}", f"b.{uniq}@example.com"), 409, "uniqueness")
    assert "at the same time" not in err["detail"], err["detail"]
    assert "accents" in err["detail"] and "database" in err["detail"], err["detail"]
    # Nothing of the other account but what the IdP sent.
    assert f"José.{uniq}" not in err["detail"], err["detail"]


@pytest.mark.db("mariadb")
@pytest.mark.parametrize("first,second", PAIRS)
def test_mariadb_a_lookup_does_not_return_the_accent_different_account(scim, uniq, cleanup, first, second):
    assert create(scim, cleanup, f"{first}.{uniq}", f"a.{uniq}@example.com").status_code == 201
    assert lookup(scim, f"{second}.{uniq}") == []


@pytest.mark.db("mariadb")
def test_mariadb_a_lookup_in_another_case_finds_the_account(scim, uniq, cleanup):
    assert create(scim, cleanup, f"José.{uniq}", f"a.{uniq}@example.com").status_code == 201
    assert lookup(scim, f"JOSÉ.{uniq}") == [f"José.{uniq}"]
    assert lookup(scim, f"josé.{uniq}") == [f"José.{uniq}"]


@pytest.mark.db("mariadb")
def test_mariadb_a_retired_account_frees_its_name_for_the_accent_variant(scim, site, uniq, cleanup):
    """A SCIM DELETE (cancel) retires the account under `scimretired<uuid>`: the accent variant
    of its old name can be created, and lookups see only the new account."""
    r = create(scim, cleanup, f"José.{uniq}", f"a.{uniq}@example.com")
    old = r.json()["id"]
    assert scim("DELETE", f"/Users/{old}").status_code == 204
    assert site.user(old)["name"].startswith("scimretired")
    r = create(scim, cleanup, f"jose.{uniq}", f"b.{uniq}@example.com")
    assert r.status_code == 201, r.text
    assert lookup(scim, f"jose.{uniq}") == [f"jose.{uniq}"]
    assert lookup(scim, f"José.{uniq}") == [], "SCIM's rule, not the collation's: never the accent variant, never the retired one"


@pytest.mark.db("mariadb")
def test_mariadb_an_accent_variant_of_the_retired_prefix_is_refused_or_findable(scim, uniq, cleanup):
    name = f"scïmretired{uniq}"
    r = create(scim, cleanup, name, f"x.{uniq}@example.com")
    if r.status_code != 201:
        assert_scim_error(r, 400, "invalidValue")
        return
    assert lookup(scim, name) == [name]


@pytest.mark.db("mariadb")
def test_mariadb_a_group_lookup_does_not_return_the_accent_different_group(scim, uniq, cleanup):
    for name in (f"Équipe {uniq}", f"Equipe {uniq}"):
        r = scim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": name})
        assert r.status_code == 201, r.text
        cleanup.term(r.json()["id"])
    r = scim("GET", "/Groups", params={"filter": f'displayName eq "equipe {uniq}"'})
    assert [g["displayName"] for g in r.json()["Resources"]] == [f"Equipe {uniq}"]


# ---- SQLite --------------------------------------------------------------------------------


@pytest.mark.db("sqlite")
def test_sqlite_accent_variants_are_two_accounts(scim, site, uniq, cleanup):
    assert create(scim, cleanup, f"José.{uniq}", f"a.{uniq}@example.com").status_code == 201
    assert create(scim, cleanup, f"jose.{uniq}", f"b.{uniq}@example.com").status_code == 201
    assert lookup(scim, f"jose.{uniq}") == [f"jose.{uniq}"]
    assert lookup(scim, f"José.{uniq}") == [f"José.{uniq}"]
    assert lookup(scim, f"JOSE.{uniq}") == [f"jose.{uniq}"]
    assert len(site.users_named(f"José.{uniq}")) == len(site.users_named(f"jose.{uniq}")) == 1


@pytest.mark.db("sqlite")
def test_sqlite_a_lookup_in_another_non_ascii_case_finds_the_account(scim, uniq, cleanup):
    """Drupal's SQLite `=`/LIKE folds ASCII case only; the gateway also asks with `IN`, which
    compares with the column's NOCASE_UTF8 collation."""
    assert create(scim, cleanup, f"José.{uniq}", f"zoë.{uniq}@example.com").status_code == 201
    assert lookup(scim, f"JOSÉ.{uniq}") == [f"José.{uniq}"]
    r = scim("GET", "/Users", params={"filter": f'emails eq "ZOË.{uniq}@EXAMPLE.COM"'})
    assert [u["userName"] for u in r.json()["Resources"]] == [f"José.{uniq}"]


@pytest.mark.db("sqlite")
def test_sqlite_non_ascii_case_variants_are_409_before_drupal_sees_them(scim, site, uniq, cleanup):
    """Drupal's own check lets both through on SQLite (LIKE and PHP's strtolower fold ASCII
    only): the address would be taken twice, and the name would meet the unique key's 500."""
    assert create(scim, cleanup, f"José.{uniq}", f"zoë.{uniq}@example.com").status_code == 201
    err = assert_scim_error(create(scim, cleanup, f"JOSÉ.{uniq}", f"b.{uniq}@example.com"), 409, "uniqueness")
    assert err["detail"].startswith("userName") and "another case" in err["detail"], err["detail"]
    err = assert_scim_error(create(scim, cleanup, f"b.{uniq}", f"ZOË.{uniq}@example.com"), 409, "uniqueness")
    assert err["detail"].startswith("emails") and "another case" in err["detail"], err["detail"]
    r = create(scim, cleanup, f"c.{uniq}", f"c.{uniq}@example.com")
    assert r.status_code == 201, r.text
    r_c = r.json()["id"]
    r = scim("PATCH", f"/Users/{r_c}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": f"Zoë.{uniq}@Example.com"}]})
    assert_scim_error(r, 409, "uniqueness")
    assert site.user(r_c)["mail"] == f"c.{uniq}@example.com"


def test_a_case_variant_of_the_admins_mail_is_409(scim, uniq, cleanup):
    err = assert_scim_error(create(scim, cleanup, f"m.{uniq}", "ADMIN@EXAMPLE.COM"), 409, "uniqueness")
    assert "emails" in err["detail"], err["detail"]


def test_an_accent_variant_of_the_reserved_prefix_in_ascii_case_is_refused(scim, uniq, cleanup):
    err = assert_scim_error(create(scim, cleanup, f"SCIMRetired{uniq}", f"r.{uniq}@example.com"), 400, "invalidValue")
    assert "scimretired" in err["detail"]
    body = {"schemas": [CORE_USER], "userName": f"scimretired-{uniq}"}
    assert_scim_error(scim("POST", "/Users", json=body), 400, "invalidValue")
