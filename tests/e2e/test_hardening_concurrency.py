"""Concurrent creates against Drupal's races (emulator race switch on: Drupal then lets
concurrent duplicate addresses through, and answers concurrent duplicate names with a 500
carrying SQL): through the gateway, exactly one account results, and every other request is
a clean 409."""

from concurrent.futures import ThreadPoolExecutor

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
N = 50


@pytest.fixture
def racing(emulator):
    emulator.settings(race_window_ms=50)
    yield
    emulator.settings(race_window_ms=0)


def create(gateway, name, mail):
    body = {"schemas": [USER], "userName": name, "emails": [{"value": mail, "type": "work"}], "active": True}
    return gateway.scim("POST", "/Users", json=body, timeout=60)


def burst(gateway, bodies):
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda b: create(gateway, *b), bodies))


def accounts(emulator, **match):
    return [u for u in emulator.drupal_users() if all((u.get(k) or "").lower() == v.lower() for k, v in match.items())]


def test_fifty_concurrent_creates_of_one_username_make_one_account(gateway, emulator, racing):
    results = burst(gateway, [("racer@example.com", f"racer{i}@example.com") for i in range(N)])
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == N - 1, statuses
    for r in results:
        if r.status_code == 409:
            assert r.json()["scimType"] == "uniqueness"
            assert "SQLSTATE" not in r.text and "INSERT" not in r.text
    assert len(accounts(emulator, name="racer@example.com")) == 1


def test_fifty_concurrent_creates_of_one_address_make_one_account(gateway, emulator, racing):
    results = burst(gateway, [(f"mailracer{i}", "same@example.com") for i in range(N)])
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == N - 1, statuses
    assert len(accounts(emulator, mail="same@example.com")) == 1


def test_the_race_is_real_without_the_gateway(emulator, racing):
    """The same burst straight to Drupal (the emulator's JSON:API) makes duplicate addresses."""

    def post(i):
        body = {"data": {"type": "user--user", "attributes": {"name": f"direct{i}", "mail": "direct@example.com", "status": True}}}
        return emulator.jsonapi("POST", "/jsonapi/user/user", json=body, headers={"Content-Type": "application/vnd.api+json"}).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(post, range(10)))
    assert statuses.count(201) >= 1
    made = len(accounts(emulator, mail="direct@example.com"))
    assert made > 1, f"no duplicate address got through ({statuses}); the race switch did not bite"
