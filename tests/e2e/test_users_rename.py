"""Renames (userName) and email changes through PATCH and PUT: Drupal's account follows,
lookups find the new values only, collisions are 409 uniqueness and change nothing."""

from __future__ import annotations

import pytest

from harness import assert_scim_error, jumpcloud_user, patch_op


@pytest.fixture
def pat(create_user):
    return create_user("pat@example.com")


def lookup(scim, flt):
    r = scim("GET", "/Users", params={"filter": flt})
    assert r.status_code == 200, r.text
    return [u["id"] for u in r.json()["Resources"]]


RENAMES = {
    "patch-path": lambda new: ("PATCH", patch_op({"op": "replace", "path": "userName", "value": new})),
    "patch-pathless": lambda new: ("PATCH", patch_op({"op": "Replace", "value": {"userName": new}})),
    "put": lambda new: ("PUT", jumpcloud_user(new, "pat@example.com")),
}


@pytest.mark.parametrize("how", list(RENAMES))
def test_rename(scim, emulator, pat, how):
    method, body = RENAMES[how]("patricia@example.com")
    r = scim(method, f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["userName"] == "patricia@example.com"
    d = emulator.drupal_user(pat["id"])
    assert d["name"] == "patricia@example.com"
    assert d["mail"] == "pat@example.com"
    assert lookup(scim, 'userName eq "patricia@example.com"') == [pat["id"]]
    assert lookup(scim, 'userName eq "pat@example.com"') == []
    # The old name is free again.
    r = scim("POST", "/Users", json=jumpcloud_user("pat@example.com", "pat2@example.com"))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("how", list(RENAMES))
def test_rename_to_a_case_variant_of_the_own_name(scim, emulator, pat, how):
    method, body = RENAMES[how]("Pat@Example.COM")
    r = scim(method, f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"])["name"] == "Pat@Example.COM"


@pytest.mark.parametrize("how", list(RENAMES))
@pytest.mark.parametrize("taken", ["taken@example.com", "TAKEN@Example.com"])
def test_rename_onto_another_user_is_409_and_changes_nothing(scim, emulator, pat, create_user, how, taken):
    other = create_user("taken@example.com", "taken-mail@example.com")
    before = emulator.drupal_user(pat["id"])
    method, body = RENAMES[how](taken)
    assert_scim_error(scim(method, f"/Users/{pat['id']}", json=body), 409, "uniqueness")
    assert emulator.drupal_user(pat["id"]) == before
    assert emulator.drupal_user(other["id"])["name"] == "taken@example.com"


def test_rename_onto_a_seeded_drupal_account_is_409(scim, emulator, pat, seed_user):
    seed_user("drupal-editor", mail="editor@example.com")
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "Drupal-Editor"}))
    assert_scim_error(r, 409, "uniqueness")
    assert emulator.drupal_user(pat["id"])["name"] == "pat@example.com"


def test_rename_onto_a_deleted_users_name_works(scim, emulator, pat, create_user):
    gone = create_user("gone@example.com")
    assert scim("DELETE", f"/Users/{gone['id']}").status_code == 204
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": "gone@example.com"}))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"])["name"] == "gone@example.com"


@pytest.mark.parametrize(
    "name",
    ["x" * 61, " leading@example.com", "trailing@example.com ", "two  spaces", "bad<char>", "scimretiredabc", "ScimRetired-x", ""],
    ids=["61-chars", "leading-space", "trailing-space", "double-space", "illegal-char", "reserved", "reserved-case", "empty"],
)
def test_invalid_rename_is_400_and_changes_nothing(scim, emulator, pat, name):
    before = emulator.drupal_user(pat["id"])
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": name}))
    assert_scim_error(r, 400, "invalidValue")
    assert emulator.drupal_user(pat["id"]) == before


def test_sixty_characters_is_the_longest_userName(scim, emulator, pat):
    name = "n" * 48 + "@example.com"
    assert len(name) == 60
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "userName", "value": name}))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"])["name"] == name


def test_userName_cannot_be_removed(scim, emulator, pat):
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "remove", "path": "userName"}))
    assert_scim_error(r, 400, "invalidValue")
    assert emulator.drupal_user(pat["id"])["name"] == "pat@example.com"


# ---- email changes ---------------------------------------------------------------------------

EMAIL_CHANGES = {
    "entra-value-path": lambda new: ("PATCH", patch_op({"op": "Replace", "path": 'emails[type eq "work"].value', "value": new})),
    "replace-list": lambda new: ("PATCH", patch_op({"op": "replace", "path": "emails", "value": [{"value": new, "type": "work", "primary": True}]})),
    "add-work": lambda new: ("PATCH", patch_op({"op": "add", "path": "emails", "value": [{"value": new, "type": "work"}]})),
    "pathless": lambda new: ("PATCH", patch_op({"op": "replace", "value": {"emails": [{"value": new, "primary": True}]}})),
    "put": lambda new: ("PUT", jumpcloud_user("pat@example.com", new)),
}


@pytest.mark.parametrize("mail_case_insensitive", [False, True], ids=["sqlite-mail", "mysql-mail"])
@pytest.mark.parametrize("how", list(EMAIL_CHANGES))
def test_email_change(scim, emulator, emulator_settings, pat, how, mail_case_insensitive):
    emulator_settings(mail_case_insensitive=mail_case_insensitive)
    method, body = EMAIL_CHANGES[how]("Pat.New@Example.org")
    r = scim(method, f"/Users/{pat['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["emails"] == [{"value": "Pat.New@Example.org", "type": "work"}]
    assert emulator.drupal_user(pat["id"])["mail"] == "Pat.New@Example.org"
    assert lookup(scim, 'emails eq "pat.new@example.org"') == [pat["id"]]
    assert lookup(scim, 'emails[type eq "work"].value eq "PAT.NEW@EXAMPLE.ORG"') == [pat["id"]]
    assert lookup(scim, 'emails eq "pat@example.com"') == []
    # The old address is free again.
    r = scim("POST", "/Users", json=jumpcloud_user("other@example.com", "pat@example.com"))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "emails,stored",
    [
        ([{"value": "home@example.org", "type": "home", "primary": True}, {"value": "work@example.org", "type": "work"}], "home@example.org"),
        ([{"value": "home@example.org", "type": "home"}, {"value": "work@example.org", "type": "work"}], "work@example.org"),
        ([{"value": "first@example.org", "type": "home"}, {"value": "second@example.org", "type": "other"}], "first@example.org"),
        ([{"value": "untyped@example.org"}, {"value": "p@example.org", "primary": "True"}], "p@example.org"),
    ],
    ids=["primary-wins", "else-work", "else-first", "primary-as-string"],
)
def test_several_emails_store_one(scim, emulator, pat, emails, stored):
    """Drupal keeps one address: the primary entry, else the work one, else the first."""
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": "emails", "value": emails}))
    assert r.status_code == 200, r.text
    assert emulator.drupal_user(pat["id"])["mail"] == stored
    assert r.json()["emails"] == [{"value": stored, "type": "work"}]
    r = scim("POST", "/Users", json=jumpcloud_user("several@example.com", emails=[{**e, "value": "n-" + e["value"]} for e in emails]))
    assert r.status_code == 201, r.text
    assert emulator.drupal_user(r.json()["id"])["mail"] == "n-" + stored


@pytest.mark.parametrize("mail_case_insensitive", [False, True], ids=["sqlite-mail", "mysql-mail"])
@pytest.mark.parametrize("how", list(EMAIL_CHANGES))
def test_email_change_onto_another_users_address_is_409(scim, emulator, emulator_settings, pat, create_user, how, mail_case_insensitive):
    emulator_settings(mail_case_insensitive=mail_case_insensitive)
    create_user("holder@example.com", "held@example.com")
    before = emulator.drupal_user(pat["id"])
    method, body = EMAIL_CHANGES[how]("held@example.com")
    assert_scim_error(scim(method, f"/Users/{pat['id']}", json=body), 409, "uniqueness")
    assert emulator.drupal_user(pat["id"]) == before


def test_email_change_onto_a_differently_cased_address_on_a_case_insensitive_site_is_409(scim, emulator, emulator_settings, pat, create_user):
    emulator_settings(mail_case_insensitive=True)
    create_user("holder@example.com", "held@example.com")
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": 'emails[type eq "work"].value', "value": "HELD@example.com"}))
    assert_scim_error(r, 409, "uniqueness")
    assert emulator.drupal_user(pat["id"])["mail"] == "pat@example.com"


def test_invalid_email_is_400_and_changes_nothing(scim, emulator, pat):
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op({"op": "replace", "path": 'emails[type eq "work"].value', "value": "not-an-address"}))
    assert_scim_error(r, 400, "invalidValue")
    assert emulator.drupal_user(pat["id"])["mail"] == "pat@example.com"


def test_rename_and_email_change_in_one_patch(scim, emulator, pat, drupal_writes, clear_drupal_requests):
    clear_drupal_requests()
    r = scim("PATCH", f"/Users/{pat['id']}", json=patch_op(
        {"op": "replace", "path": "userName", "value": "renamed@example.org"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "renamed@example.org"},
    ))
    assert r.status_code == 200, r.text
    d = emulator.drupal_user(pat["id"])
    assert (d["name"], d["mail"]) == ("renamed@example.org", "renamed@example.org")
    assert len(drupal_writes()) == 1
