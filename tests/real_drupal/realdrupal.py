"""A real Drupal site (brought up by scripts/real-drupal) and gateways in front of it.

Used by tests/real_drupal/conftest.py and tests/conformance/run_scim2_tester.py. Everything
here talks HTTP to Drupal's own APIs (JSON:API and core REST, as uid 1 `admin` with Basic
auth) or reads Drupal's database through `scripts/real-drupal sql`; the gateway is the e2e
harness's Envoy (tests/e2e/harness.py) rendered from the repository's envoy.yaml with the
site's URL.

A site directory is what `scripts/real-drupal up --dir DIR` made: DIR/real-drupal.env holds
DRUPAL_URL, DRUPAL_VERSION, DRUPAL_DB (sqlite|mariadb), DRUPAL_DOCROOT, DRUPAL_RUNTIME and
the database's location. The secrets come from the environment, as `up` took them:
DRUPAL_ADMIN_PASSWORD (uid 1 `admin`), DRUPAL_USERNAME and DRUPAL_PASSWORD (the gateway's
service account).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
import harness  # noqa: E402
from harness import Envoy, basic  # noqa: E402

REAL_DRUPAL = REPO_ROOT / "scripts" / "real-drupal"
ATTRIBUTES = harness.ATTRIBUTES  # scripts/emulator-attributes.json: what `up --attributes` creates
VOCABULARY = "scim_groups"
MEMBERSHIP_FIELD = "field_scim_groups"
ADMIN = "admin"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (shell quoting allowed), comments and blanks ignored."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep:
            continue
        parts = shlex.split(value) if value else [""]
        out[key.strip()] = parts[0] if parts else ""
    return out


class Site:
    """The real Drupal of one `scripts/real-drupal up --dir DIR`."""

    def __init__(self, site_dir: str | Path):
        self.dir = Path(site_dir).resolve()
        env_file = self.dir / "real-drupal.env"
        if not env_file.is_file():
            raise RuntimeError(f"{env_file} not found: bring the site up with scripts/real-drupal up --dir {self.dir}")
        self.env = read_env_file(env_file)
        self.url = self.env["DRUPAL_URL"].rstrip("/")
        self.version = self.env.get("DRUPAL_VERSION", "")
        self.db = self.env.get("DRUPAL_DB", "sqlite")
        self.runtime = self.env.get("DRUPAL_RUNTIME", "native")

        def secret(name: str) -> str:
            value = os.environ.get(name) or self.env.get(name)
            if not value:
                raise RuntimeError(f"{name} is not set: the tests need the secrets `scripts/real-drupal up` was given")
            return value

        self.admin_pass = secret("DRUPAL_ADMIN_PASSWORD")
        self.service_user = secret("DRUPAL_USERNAME")
        self.service_pass = secret("DRUPAL_PASSWORD")
        # One request at a time and ~0.5 s each on PHP-in-WebAssembly (11.4.5 here).
        self.slow = self.runtime == "wasm"
        self.timeout = 120 if self.slow else 30
        self._local = threading.local()
        self._roles: dict[str, str] = {}

    @property
    def http(self) -> requests.Session:
        """A connection pool per thread (tests arrange Drupal from several threads)."""
        s = getattr(self._local, "http", None)
        if s is None:
            s = self._local.http = requests.Session()
        return s

    # -- what harness.Envoy reads from its `emulator` ------------------------------------
    @property
    def admin_user(self) -> str:  # the account harness.Envoy puts in DRUPAL_USERNAME
        return self.service_user

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[1]

    # -- Drupal's APIs as uid 1 ----------------------------------------------------------
    def request(self, method: str, path: str, auth: str | None = "admin", **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if auth == "admin":
            headers["Authorization"] = basic(ADMIN, self.admin_pass)
        elif auth:
            headers["Authorization"] = auth
        kw.setdefault("timeout", self.timeout)
        last: Exception | None = None
        for _ in range(3):
            try:
                return self.http.request(method, self.url + path, headers=headers, **kw)
            except requests.ConnectionError as e:
                # The wasm server closes idle kept-alive connections after 5 s (like Apache):
                # a reused connection it has just closed is reset. Reads and our own writes
                # are retried on a fresh connection.
                last = e
                self._local.http = requests.Session()
        raise last  # type: ignore[misc]

    def jsonapi(self, method: str, path: str, body: Any = None, auth: str | None = "admin", **kw) -> requests.Response:
        headers = {"Accept": "application/vnd.api+json", **(kw.pop("headers", {}) or {})}
        if body is not None:
            headers["Content-Type"] = "application/vnd.api+json"
            kw["data"] = json.dumps(body)
        return self.request(method, path, auth=auth, headers=headers, **kw)

    def all_pages(self, path: str) -> list[dict]:
        return harness.jsonapi_pages(self.jsonapi, path, most=1000)

    def user(self, uuid: str) -> dict | None:
        """The user's JSON:API attributes plus "id" and "roles", or None (404)."""
        r = self.jsonapi("GET", f"/jsonapi/user/user/{uuid}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return _user(r.json()["data"])

    def users_named(self, name: str) -> list[dict]:
        """Accounts whose name is exactly `name` (Drupal's query follows the database's
        collation, so the answer is checked here byte for byte)."""
        data = self.all_pages(f"/jsonapi/user/user?filter[name]={requests.utils.quote(name, safe='')}")
        return [_user(d) for d in data if d["attributes"].get("name") == name]

    def user_by_name(self, name: str) -> dict | None:
        found = self.users_named(name)
        assert len(found) <= 1, found
        return found[0] if found else None

    def create_user(self, name: str, mail: str | None = None, *, status: bool = True, roles: list[str] | None = None,
                    password: str | None = None, **fields) -> dict:
        """An account made by uid 1 through JSON:API (not through SCIM)."""
        attributes: dict[str, Any] = {"name": name, "mail": mail or name, "status": status, **fields}
        if password is not None:
            attributes["pass"] = {"value": password}
        data: dict[str, Any] = {"type": "user--user", "attributes": attributes}
        if roles:
            data["relationships"] = {"roles": {"data": [{"type": "user_role--user_role", "id": self.role_uuid(r)} for r in roles]}}
        r = self.jsonapi("POST", "/jsonapi/user/user", {"data": data})
        assert r.status_code == 201, (name, r.status_code, r.text[:800])
        return _user(r.json()["data"])

    def patch_user(self, uuid: str, **attributes) -> dict:
        body = {"data": {"type": "user--user", "id": uuid, "attributes": attributes}}
        r = self.jsonapi("PATCH", f"/jsonapi/user/user/{uuid}", body)
        assert r.status_code == 200, (r.status_code, r.text[:800])
        return _user(r.json()["data"])

    def set_password(self, uuid: str, password: str) -> None:
        self.patch_user(uuid, **{"pass": {"value": password}})

    def delete_user(self, uuid: str) -> None:
        """Deletes the account for good (core REST as uid 1; `up --user-delete hard_delete`
        imported the resource), content and all. Missing already: fine."""
        u = self.user(uuid)
        if u is None:
            return
        r = self.request("DELETE", f"/user/{u['drupal_internal__uid']}?_format=json")
        assert r.status_code in (204, 404), (r.status_code, r.text[:500])

    def role_uuid(self, role: str) -> str:
        if role not in self._roles:
            r = self.jsonapi("GET", f"/jsonapi/user_role/user_role?filter[drupal_internal__id]={role}")
            assert r.status_code == 200, (r.status_code, r.text[:500])
            data = r.json()["data"]
            assert data, f"no role {role!r} on the site"
            self._roles[role] = data[0]["id"]
        return self._roles[role]

    def can_log_in(self, name: str, password: str) -> bool:
        """Whether Drupal accepts the password (Basic auth on JSON:API's entry point). A
        refusal is a failed login in Drupal's flood table: call it only with the right one."""
        r = self.jsonapi("GET", "/jsonapi", auth=basic(name, password))
        return "me" in r.json().get("meta", {}).get("links", {})

    # -- groups --------------------------------------------------------------------------
    def terms(self, prefix: str = "") -> dict[str, str]:
        """{uuid: name} of the scim_groups terms whose name starts with prefix (exactly)."""
        path = f"/jsonapi/taxonomy_term/{VOCABULARY}?page[limit]=50&sort=drupal_internal__tid"
        return {d["id"]: d["attributes"]["name"] for d in self.all_pages(path) if d["attributes"]["name"].startswith(prefix)}

    def term(self, uuid: str) -> dict | None:
        r = self.jsonapi("GET", f"/jsonapi/taxonomy_term/{VOCABULARY}/{uuid}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return {"id": uuid, **r.json()["data"]["attributes"]}

    def members(self, term_uuid: str) -> set[str]:
        """UUIDs of the accounts whose field_scim_groups references the term (Drupal's query)."""
        path = (
            f"/jsonapi/user/user?filter[g][condition][path]={MEMBERSHIP_FIELD}.id"
            f"&filter[g][condition][value]={term_uuid}&page[limit]=50&sort=drupal_internal__uid"
        )
        return {d["id"] for d in self.all_pages(path)}

    def group_refs(self, user_uuid: str) -> list[str]:
        r = self.jsonapi("GET", f"/jsonapi/user/user/{user_uuid}/relationships/{MEMBERSHIP_FIELD}")
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return [d["id"] for d in r.json()["data"]]

    def delete_term(self, uuid: str) -> None:
        r = self.jsonapi("DELETE", f"/jsonapi/taxonomy_term/{VOCABULARY}/{uuid}")
        assert r.status_code in (204, 404), (r.status_code, r.text[:500])

    # -- the database --------------------------------------------------------------------
    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query on Drupal's database, every value a string. NULL prints as "" with
        SQLite and "NULL" with MariaDB, and an empty line is no row: COALESCE nullable columns."""
        if REAL_DRUPAL.exists():
            p = subprocess.run([str(REAL_DRUPAL), "sql", "--dir", str(self.dir), query], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"real-drupal sql failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
            return [line.split("\t") for line in p.stdout.decode().splitlines() if line != ""]
        # Before scripts/real-drupal existed: SQLite read directly.
        con = sqlite3.connect(self.env["SQLITE_PATH"], timeout=30)
        try:
            return [["" if v is None else str(v) for v in row] for row in con.execute(query).fetchall()]
        finally:
            con.close()

    def php(self, code: str, *args: str) -> str:
        """PHP run in the bootstrapped site (`scripts/real-drupal php -r CODE ARGS…`); its output."""
        p = subprocess.run([str(REAL_DRUPAL), "php", "--dir", str(self.dir), "-r", code, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"real-drupal php failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
        return p.stdout.decode()

    def set_permission(self, role: str, permission: str, granted: bool) -> None:
        """Grants or revokes a permission of a role (Drupal's own API; JSON:API cannot write roles)."""
        self.php(
            '$r = \\Drupal\\user\\Entity\\Role::load($args[0]); '
            '$args[2] === "1" ? $r->grantPermission($args[1]) : $r->revokePermission($args[1]); $r->save();',
            role, permission, "1" if granted else "0",
        )

    def sql_count(self, query: str) -> int:
        rows = self.sql(query)
        return int(rows[0][0])

    def live_user_count(self) -> int:
        """Accounts SCIM lists: all but the anonymous user (uid 0) and retired ones."""
        return self.sql_count("SELECT COUNT(*) FROM users_field_data WHERE uid > 0 AND name NOT LIKE 'scimretired%'")

    def flood(self, ip: str | None = None) -> list[list[str]]:
        """Drupal's flood rows (event, identifier, timestamp), those of one client IP if given."""
        rows = self.sql("SELECT event, identifier, timestamp FROM flood ORDER BY fid")
        return [r for r in rows if ip is None or r[1] == ip or r[1].endswith("-" + ip)]


def _user(data: dict) -> dict:
    roles = [d["meta"]["drupal_internal__target_id"] for d in data.get("relationships", {}).get("roles", {}).get("data", []) or []]
    return {"id": data["id"], **data.get("attributes", {}), "roles": roles}


# ---- gateways --------------------------------------------------------------------------


def plugin_overrides(site: Site, auth: str, **more) -> dict:
    """The plugin settings of a gateway for this site: the upstream mode, the site's fields
    and groups, a Drupal call timeout for its speed."""
    out: dict[str, Any] = {
        "drupal.auth": auth,
        "drupal.timeout_ms": 60000 if site.slow else 10000,
        "attributes": ATTRIBUTES,
        "groups": {"vocabulary": VOCABULARY, "membership_field": MEMBERSHIP_FIELD, "concurrency": 2 if site.slow else 8},
    }
    out.update(more)
    return out


class _DrupalRef:
    """What harness.Envoy reads from its `emulator` argument."""

    def __init__(self, url: str, user: str, password: str):
        self.url, self.admin_user, self.admin_pass = url, user, password


def gateway(site: Site, workdir: Path, tokens: dict[str, str], auth: str, *, name: str = "envoy",
            username: str | None = None, password: str | None = None, source_ip: str | None = None,
            concurrency: int = 2, public_jsonapi: bool = False, **overrides) -> Envoy:
    """A started Envoy with the filter in front of the site. source_ip: the loopback address
    its calls to Drupal come from (Drupal's flood control counts failed logins per IP);
    public_jsonapi: the public side opened (render_envoy_config --public-jsonapi on)."""
    workdir.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(3):
        env = Envoy(
            workdir,
            _DrupalRef(site.url, username or site.service_user, password or site.service_pass),  # type: ignore[arg-type]
            tokens,
            plugin_overrides=plugin_overrides(site, auth, **overrides),
            concurrency=concurrency,
            name=f"{name}-{attempt}" if attempt else name,
            public_jsonapi=public_jsonapi,
        )
        if source_ip:
            bind_source(env.config_path, source_ip)
        try:
            return env.start()
        except RuntimeError as e:  # two free ports that collided: try again
            env.stop()
            last = e
    raise last  # type: ignore[misc]


def bind_source(config_path: Path, ip: str) -> None:
    cfg = yaml.safe_load(config_path.read_text())
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "drupal":
            c["upstream_bind_config"] = {"source_address": {"address": ip, "port_value": 0}}
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def new_tokens() -> dict[str, str]:
    return {"primary": "p-" + secrets.token_urlsafe(24)}


def wait_ready(gw: Envoy, timeout: float = 60) -> None:
    """Until the gateway answers a list with 200 (its start-up checks against Drupal done)."""
    deadline = time.monotonic() + timeout
    r = None
    while time.monotonic() < deadline:
        r = gw.scim("GET", "/Users", params={"count": 1}, timeout=120)
        if r.status_code == 200:
            return
        time.sleep(1)
    raise RuntimeError(f"the gateway did not answer GET /Users with 200: {r.status_code if r else None} {r.text[:500] if r else ''}")
