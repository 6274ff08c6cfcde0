"""userName and e-mail are unique regardless of case, on every database (issue 18 item 6).

The emulator answers as Drupal 10.3 on SQLite does by default: its own uniqueness check
compares `mail` with `=` (case-sensitive) and names with LIKE (ASCII case only), so without
the gateway's check a managed user could take `ADMIN@EXAMPLE.COM` beside the admin's
`admin@example.com`, or `JOSÉ@…` beside `josé@…`. Accents are not case: `jose` and `josé`
stay two values, as SCIM (and SQLite) has it."""

from __future__ import annotations

import pytest

from groups_support import gscim, groups_gw  # noqa: F401  (fixtures)
from harness import assert_scim_error, jumpcloud_user, patch_op


def lookup(scim, flt: str) -> list[str]:
    r = scim("GET", "/Users", params={"filter": flt})
    assert r.status_code == 200, r.text
    return [u["userName"] for u in r.json()["Resources"]]


def test_a_case_variant_of_the_admins_mail_is_refused_on_create(scim, emulator, drupal_writes):
    r = scim("POST", "/Users", json=jumpcloud_user("mallory@example.com", "ADMIN@EXAMPLE.COM"))
    err = assert_scim_error(r, 409, "uniqueness")
    assert "emails" in err["detail"] and "another case" in err["detail"], err["detail"]
    # Nothing of the other account is given away beyond what was sent.
    assert "admin@example.com" not in err["detail"]
    assert drupal_writes() == []
    assert emulator.drupal_user_by_name("mallory@example.com") is None


@pytest.mark.parametrize(
    "how",
    [
        lambda: ("PATCH", patch_op({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ADMIN@EXAMPLE.COM"})),
        lambda: ("PATCH", patch_op({"op": "replace", "value": {"emails": [{"value": "Admin@Example.com", "primary": True}]}})),
        lambda: ("PUT", jumpcloud_user("pat@example.com", "admin@EXAMPLE.com")),
    ],
    ids=["patch-path", "patch-pathless", "put"],
)
def test_a_case_variant_of_the_admins_mail_is_refused_on_update(scim, emulator, create_user, drupal_writes, how):
    pat = create_user("pat@example.com")
    before = emulator.drupal_user(pat["id"])
    method, body = how()
    err = assert_scim_error(scim(method, f"/Users/{pat['id']}", json=body), 409, "uniqueness")
    assert "emails" in err["detail"], err["detail"]
    assert emulator.drupal_user(pat["id"]) == before
    assert [w for w in drupal_writes() if w["method"] == "PATCH"] == []


def test_non_ascii_case_variants_are_refused(scim, emulator, create_user, drupal_writes):
    create_user("José.Núñez", "josé@example.com")
    err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("JOSÉ.NÚÑEZ", "other@example.com")), 409, "uniqueness")
    assert err["detail"].startswith("userName") and "another case" in err["detail"], err["detail"]
    err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("jn2", "JOSÉ@EXAMPLE.COM")), 409, "uniqueness")
    assert err["detail"].startswith("emails"), err["detail"]
    # The same value exactly: Drupal's own 422 would say it too; the gateway says it first.
    err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("José.Núñez", "x@example.com")), 409, "uniqueness")
    assert "already has it" in err["detail"], err["detail"]
    assert [w for w in drupal_writes() if w["method"] == "POST" and "jn2" in w["body"]] == []


def test_accent_variants_are_other_values(scim, emulator, create_user):
    """SCIM is case-insensitive, never accent-insensitive: on SQLite both accounts exist."""
    create_user("José.Núñez", "josé@example.com")
    other = create_user("Jose.Nunez", "jose@example.com")
    assert lookup(scim, 'userName eq "jose.nunez"') == ["Jose.Nunez"]
    assert lookup(scim, 'userName eq "JOSÉ.NÚÑEZ"') == ["José.Núñez"]
    assert lookup(scim, 'emails eq "JOSÉ@EXAMPLE.COM"') == ["José.Núñez"]
    assert lookup(scim, 'emails eq "jose@example.com"') == ["Jose.Nunez"]
    assert emulator.drupal_user(other["id"])["mail"] == "jose@example.com"
    # Substrings with non-ASCII letters too: Drupal's LIKE compares those exactly on SQLite.
    assert lookup(scim, 'userName co "ÚÑ"') == ["José.Núñez"]
    assert lookup(scim, 'userName sw "JOSÉ"') == ["José.Núñez"]
    assert lookup(scim, 'userName ne "JOSÉ.NÚÑEZ" and userName co "nunez"') == ["Jose.Nunez"]


def test_changing_the_case_of_ones_own_values_is_no_clash(scim, emulator, create_user, drupal_requests, clear_drupal_requests):
    pat = create_user("pat@example.com")
    clear_drupal_requests()
    r = scim("PUT", f"/Users/{pat['id']}", json=jumpcloud_user("PAT@example.com", "Pat@Example.com"))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"])["mail"] == "Pat@Example.com"
    # The read before the write and the write: no uniqueness read for one's own values.
    assert [q["method"] for q in drupal_requests()] == ["GET", "PATCH"]


def test_a_new_name_or_address_costs_one_read_before_the_write(scim, create_user, drupal_requests, clear_drupal_requests):
    pat = create_user("pat@example.com")
    clear_drupal_requests()
    assert scim("POST", "/Users", json=jumpcloud_user("kim@example.com")).status_code == 201
    assert [q["method"] for q in drupal_requests()] == ["GET", "POST"]
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "patricia@example.com"}))
    assert r.status_code == 200, r.text
    assert [q["method"] for q in drupal_requests()] == ["GET", "GET", "PATCH"]


# ---- MariaDB's collation (emulator `collation: general_ci`) ------------------------------------
# Drupal's default MySQL collation, utf8mb4_general_ci, compares text without case and without
# accents (and ß as s): every `=`, LIKE and IN Drupal sends, and the unique key on the name.
# Drupal's own check then compares with PHP's ASCII strtolower, so `jose` beside `José` passes
# it and meets the unique key (a 500). The gateway must answer as SCIM says on this database too.

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def mariadb(emulator_settings):
    emulator_settings(collation="general_ci")


def test_mariadb_lookups_never_return_the_accent_variant(scim, create_user, mariadb):
    create_user("José.Núñez", "josé@example.com")
    assert lookup(scim, 'userName eq "jose.nunez"') == []
    assert lookup(scim, 'userName eq "JOSÉ.NÚÑEZ"') == ["José.Núñez"]
    assert lookup(scim, 'emails eq "jose@example.com"') == []
    assert lookup(scim, 'emails[type eq "work"].value eq "JOSÉ@example.com"') == ["José.Núñez"]
    r = scim("GET", "/Users", params={"filter": 'userName eq "jose.nunez"', "count": "0"})
    assert r.json()["totalResults"] == 0


def test_mariadb_an_accent_variant_of_a_name_is_409_naming_the_database(scim, emulator, create_user, drupal_writes, mariadb):
    create_user("José.Núñez", "a@example.com")
    err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("jose.nunez", "b@example.com")), 409, "uniqueness")
    assert "accents" in err["detail"] and "database" in err["detail"], err["detail"]
    assert "same time" not in err["detail"] and "José" not in err["detail"], err["detail"]
    assert [w for w in drupal_writes() if "jose.nunez" in w["body"]] == []
    # A rename onto it: the same, and nothing changes.
    pat = create_user("pat@example.com")
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "JOSE.NUNEZ"}))
    assert_scim_error(r, 409, "uniqueness")
    assert emulator.drupal_user(pat["id"])["name"] == "pat@example.com"


def test_mariadb_a_name_the_table_does_not_know_still_gets_a_clear_409(scim, create_user, mariadb, fault):
    """Should the gateway's read miss the clash (here: Drupal answers it with an empty page),
    Drupal's unique key answers 500 and the 409 says that the database refused the name."""
    create_user("José.Núñez", "a@example.com")
    fault(status=200, body='{"data": []}', path_prefix="/jsonapi/user/user", method="GET", count=1)
    err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user("jose.nunez", "b@example.com")), 409, "uniqueness")
    assert "accents" in err["detail"], err["detail"]


def test_mariadb_accent_variants_of_the_retired_prefix_are_refused(scim, mariadb):
    for name in ["scïmretired1", "ſcimretired2", "SCÍMRETIRED3"]:
        err = assert_scim_error(scim("POST", "/Users", json=jumpcloud_user(name, "x@example.com")), 400, "invalidValue")
        assert "scimretired" in err["detail"], err["detail"]


def test_mariadb_a_group_lookup_does_not_return_the_accent_variant(gscim, mariadb):
    for name in ("Équipe", "Equipe"):
        r = gscim("POST", "/Groups", json={"schemas": [CORE_GROUP], "displayName": name})
        assert r.status_code == 201, r.text
    r = gscim("GET", "/Groups", params={"filter": 'displayName eq "equipe"'})
    assert r.status_code == 200, r.text
    assert [g["displayName"] for g in r.json()["Resources"]] == ["Equipe"]
    assert r.json()["totalResults"] == 1
