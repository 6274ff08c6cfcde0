"""The real-Drupal tier: the gateway in front of a real Drupal site (10.6.15 on SQLite or
MariaDB, 11.4.5 on PHP-in-WebAssembly), brought up by `scripts/real-drupal up`.

Environment (scripts/test sets it):
- REAL_DRUPAL_DIR: the DIR given to `scripts/real-drupal up --dir DIR` (its real-drupal.env
  names the site's URL, version and database);
- REAL_DRUPAL_AUTH: `basic` or `session`, the gateway's `drupal.auth`;
- DRUPAL_ADMIN_PASSWORD, DRUPAL_USERNAME, DRUPAL_PASSWORD: the secrets `up` was given.

Session: one Envoy (token label `primary`, the site's field mapping scripts/emulator-attributes.json,
`/Groups` on) in front of the site. The site is not reset between tests: every test makes its
own names (the `uniq` fixture) and removes what it made where that is cheap (the `cleanup`
fixture). Drupal is arranged and inspected as uid 1 through JSON:API and core REST
(`site` fixture) and read in its database (`site.sql`).

Markers: `smoke` is the set for the slow 11.4.5 (`-m smoke`); `db("mariadb")` tests run only
on that database (deselected elsewhere), `runtime("native")` only on that PHP runtime; `flood` tests get their scenario run in a background
thread from the session's start (it needs a minute of wall time, not of the machine).
A site or gateway that cannot be reached fails the session; nothing here skips.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

import realdrupal as rd
from harness import WASM_PATH, jumpcloud_user


def pytest_collection_modifyitems(config, items):
    site_dir = os.environ.get("REAL_DRUPAL_DIR")
    if not site_dir:
        return  # the session fixture fails with the reason
    try:
        env = rd.read_env_file(Path(site_dir) / "real-drupal.env")
    except OSError:
        return
    db, runtime = env.get("DRUPAL_DB", "sqlite"), env.get("DRUPAL_RUNTIME", "native")
    keep, drop = [], []
    for item in items:
        m, r = item.get_closest_marker("db"), item.get_closest_marker("runtime")
        (drop if (m and db not in m.args) or (r and runtime not in r.args) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def site() -> rd.Site:
    site_dir = os.environ.get("REAL_DRUPAL_DIR")
    if not site_dir:
        pytest.fail("REAL_DRUPAL_DIR is not set (the --dir of `scripts/real-drupal up`)", pytrace=False)
    s = rd.Site(site_dir)
    r = s.jsonapi("GET", "/jsonapi")
    assert r.status_code == 200 and "me" in r.json().get("meta", {}).get("links", {}), (
        f"Drupal at {s.url} does not accept uid 1's credentials: {r.status_code} {r.text[:300]}"
    )
    return s


@pytest.fixture(scope="session")
def auth() -> str:
    mode = os.environ.get("REAL_DRUPAL_AUTH", "")
    if mode not in ("basic", "session"):
        pytest.fail(f"REAL_DRUPAL_AUTH must be basic or session, not {mode!r}", pytrace=False)
    return mode


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="scim-real-"))
    yield d
    if os.environ.get("E2E_KEEP"):
        print(f"\nreal-drupal logs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    return rd.new_tokens()


@pytest.fixture(scope="session")
def gateway(site, auth, workdir, tokens):
    if not WASM_PATH.exists():
        pytest.fail(f"{WASM_PATH} not found: build the filter first (scripts/build-wasm)", pytrace=False)
    gw = rd.gateway(site, workdir / "main", tokens, auth)
    try:
        rd.wait_ready(gw, timeout=180 if site.slow else 60)
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def new_gateway(site, auth, workdir, tokens):
    """new_gateway(name=…, **plugin overrides) -> another started Envoy on the site (same
    token and mode unless given); stopped at the end of the session."""
    started = []

    def make(name: str, **kw):
        kw.setdefault("auth", auth)
        gw = rd.gateway(site, workdir / name, kw.pop("tokens", tokens), name=name, **kw)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def scim(gateway, site):
    """scim(method, path, token="primary"|literal|None, json=…, headers=…, params=…): a
    request to the session gateway, with a timeout fit for the site's speed."""

    def call(method, path, **kw):
        kw.setdefault("timeout", site.timeout)
        return gateway.scim(method, path, **kw)

    return call


@pytest.fixture
def uniq(auth) -> str:
    """A suffix no other test, mode or run on this site uses."""
    return f"{auth[0]}{secrets.token_hex(4)}"


class Cleanup:
    def __init__(self, site: rd.Site):
        self.site = site
        self.users: list[str] = []
        self.terms: list[str] = []

    def user(self, uuid: str) -> str:
        self.users.append(uuid)
        return uuid

    def term(self, uuid: str) -> str:
        self.terms.append(uuid)
        return uuid

    def run(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(2 if self.site.slow else 4) as pool:
            list(pool.map(self.site.delete_term, self.terms))
            list(pool.map(self.site.delete_user, self.users))


@pytest.fixture
def cleanup(site):
    """cleanup.user(uuid) / cleanup.term(uuid): deleted in Drupal (for good) after the test."""
    c = Cleanup(site)
    yield c
    c.run()


@pytest.fixture
def create_user(scim, cleanup):
    """create_user(userName, email=None, **extra) -> the 201 body of a SCIM create (asserted),
    deleted from Drupal after the test."""

    def make(user_name: str, email: str | None = None, **extra) -> dict:
        r = scim("POST", "/Users", json=jumpcloud_user(user_name, email, **extra))
        assert r.status_code == 201, f"create {user_name}: {r.status_code} {r.text[:500]}"
        cleanup.user(r.json()["id"])
        return r.json()

    return make


@pytest.fixture
def drupal_user(site, cleanup):
    """drupal_user(name, mail=None, roles=None, …) -> an account made by uid 1 in Drupal
    (not through SCIM), deleted after the test."""

    def make(name: str, mail: str | None = None, **kw) -> dict:
        u = site.create_user(name, mail, **kw)
        cleanup.user(u["id"])
        return u

    return make


# ---- the flood scenario, in the background ---------------------------------------------

_flood_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flood")
_flood: dict = {}


@pytest.fixture(scope="session", autouse=True)
def _flood_background(request, auth, workdir):
    """Starts the wrong-password scenario (test_flood.py) as the session begins when a
    selected test is marked `flood`, so its minutes of waiting overlap the other tests."""
    if any(item.get_closest_marker("flood") for item in request.session.items):
        import test_real_flood

        site = rd.Site(os.environ["REAL_DRUPAL_DIR"])
        _flood["future"] = _flood_pool.submit(test_real_flood.scenario, site, auth, workdir / "flood")
    yield
    _flood_pool.shutdown(wait=True)


@pytest.fixture
def flood_result():
    fut = _flood.get("future")
    assert fut is not None, "the flood scenario was not started"
    return fut.result(timeout=600)


def pytest_terminal_summary(terminalreporter):
    import sys

    flood = sys.modules.get("test_real_flood")
    for line in getattr(flood, "FIGURES", {}).values():
        terminalreporter.write_line("flood: " + line)
