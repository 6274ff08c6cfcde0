"""Hardening: bearer-token rotation without restarting Envoy.

The SCIM listener is served from a filesystem LDS file (`dynamic_resources.lds_config` with
`path_config_source` + `watched_directory`), the rest of the bootstrap is the repository's
envoy.yaml as rendered by scripts/render_envoy_config.py. Updates are written to a temp
file in the watched directory and moved over the LDS file (Envoy watches for moves):

1. token A only            → A works, B is 401;
2. tokens A and B          → both work, same Envoy process;
3. token B only            → A is 401, B works;
4. an invalid plugin config (bad sha256) → Envoy rejects the update
   (`listener_manager.lds.update_rejected` +1) and keeps serving step 3's config.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

import harness
import render_envoy_config as rec

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


class LdsEnvoy:
    """Envoy whose SCIM listener comes from a watched LDS file."""

    def __init__(self, workdir: Path, stack: harness.Stack):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stack = stack
        self.emulator = stack.emulator
        self.port = harness.free_port()
        self.admin_port = harness.free_port()
        self.lds_path = self.dir / "lds.yaml"
        self.bootstrap_path = self.dir / "bootstrap.yaml"
        self.log_path = self.dir / "envoy.log"
        self.version = 0
        self.proc: subprocess.Popen | None = None

    # -- configuration ---------------------------------------------------------------
    def _render(self, tokens: list[dict]) -> dict:
        return rec.render(
            listen=f"127.0.0.1:{self.port}",
            admin=f"127.0.0.1:{self.admin_port}",
            drupal_url=self.emulator.url,
            tokens=tokens,
            wasm=str(harness.WASM_PATH),
            plugin_overrides=self.stack.plugin_overrides(),
        )

    @staticmethod
    def _split(cfg: dict) -> tuple[dict, dict]:
        """(bootstrap without the SCIM listener, the SCIM listener)."""
        cfg = copy.deepcopy(cfg)
        listeners = cfg["static_resources"]["listeners"]
        scim = next(lst for lst in listeners if lst["name"] == "scim")
        listeners.remove(scim)
        return cfg, scim

    def write_listener(self, tokens: list[dict]) -> None:
        """Atomically replaces the LDS file (temp file in the same dir, then rename)."""
        _, listener = self._split(self._render(tokens))
        self.version += 1
        doc = {"version_info": str(self.version), "resources": [{"@type": LISTENER_TYPE, **listener}]}
        tmp = self.dir / f".lds.{self.version}.tmp"
        rec.write(doc, tmp)
        os.rename(tmp, self.lds_path)

    def start(self, tokens: list[dict]) -> "LdsEnvoy":
        bootstrap, _ = self._split(self._render(tokens))
        # A filesystem LDS subscription needs a node identity.
        bootstrap["node"] = {"id": "scim-rotation-test", "cluster": "scim"}
        bootstrap["dynamic_resources"] = {
            "lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": str(self.lds_path), "watched_directory": {"path": str(self.dir)}},
            }
        }
        self.write_listener(tokens)
        rec.write(bootstrap, self.bootstrap_path)
        env = {**os.environ, "DRUPAL_USERNAME": self.emulator.admin_user, "DRUPAL_PASSWORD": self.emulator.admin_pass}
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [harness.envoy_bin(), "-c", str(self.bootstrap_path), "--base-id", str(next(harness._base_ids)), "--concurrency", "2"],
            env=env,
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=harness._die_with_parent,
        )
        log.close()

        def ready():
            try:
                if requests.get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1).status_code != 200:
                    return False
                self.get("/ServiceProviderConfig", None)
                # SCIM is answered only once the start-up check has passed (this test's
                # tokens are digests only, so the log says when).
                return "every mapped user field exists" in self.log_path.read_text(errors="replace")
            except requests.RequestException:
                return False

        harness._wait(ready, 60, "Envoy with an LDS listener", self.proc, self.log_path)
        return self

    def stop(self) -> None:
        harness._stop(self.proc)

    # -- probes ----------------------------------------------------------------------
    def get(self, path: str, token: str | None) -> requests.Response:
        """A GET on a fresh connection (a kept-alive one may still run the old filter chain
        while it drains)."""
        headers = {"Connection": "close"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return requests.get(f"http://127.0.0.1:{self.port}/scim/v2{path}", headers=headers, timeout=10)

    def counter(self, name: str) -> int:
        for line in requests.get(f"http://127.0.0.1:{self.admin_port}/stats", params={"filter": "^" + name.replace(".", r"\.") + "$"}, timeout=5).text.splitlines():
            k, _, v = line.partition(": ")
            if k == name:
                return int(v)
        return 0

    def wait_for(self, predicate, what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.proc is not None and self.proc.poll() is None, f"Envoy exited:\n{self.log_path.read_text()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_path.read_text(errors='replace')[-3000:]}")


def _entry(label: str, token: str) -> dict:
    return {"label": label, "sha256": harness.sha256_hex(token)}


def _status(envoy: LdsEnvoy, token: str) -> int:
    return envoy.get("/Users", token).status_code


@pytest.fixture
def lds_envoy(stack, tmp_path):
    e = LdsEnvoy(tmp_path / "lds-envoy", stack)
    yield e
    e.stop()


def test_token_rotation_without_restart(lds_envoy, seed_user):
    seed_user("rotation@example.com", mail="rotation@example.com")
    token_a = "A-" + secrets.token_urlsafe(24)
    token_b = "B-" + secrets.token_urlsafe(24)
    e = lds_envoy.start([_entry("idp_a", token_a)])
    pid = e.proc.pid

    # 1. A only.
    assert _status(e, token_a) == 200
    assert _status(e, token_b) == 401

    # 2. A and B: B starts working, A keeps working, no restart.
    ok_before = e.counter("listener_manager.lds.update_success")
    e.write_listener([_entry("idp_a", token_a), _entry("idp_b", token_b)])
    e.wait_for(lambda: e.counter("listener_manager.lds.update_success") > ok_before, "the LDS update (A+B)")
    e.wait_for(lambda: _status(e, token_b) == 200, "token B to be accepted")
    for _ in range(6):  # several fresh connections, both workers
        assert _status(e, token_a) == 200
        assert _status(e, token_b) == 200
    r = e.get("/Users?filter=userName%20eq%20%22rotation@example.com%22", token_b)
    assert r.status_code == 200 and r.json()["totalResults"] == 1, r.text
    assert e.proc.poll() is None and e.proc.pid == pid

    # 3. B only: A is refused.
    ok_before = e.counter("listener_manager.lds.update_success")
    e.write_listener([_entry("idp_b", token_b)])
    e.wait_for(lambda: e.counter("listener_manager.lds.update_success") > ok_before, "the LDS update (B only)")
    e.wait_for(lambda: _status(e, token_a) == 401, "token A to be refused")
    for _ in range(6):
        assert _status(e, token_a) == 401
        assert _status(e, token_b) == 200
    assert e.proc.poll() is None and e.proc.pid == pid
    assert e.counter("listener_manager.lds.update_rejected") == 0


@pytest.mark.parametrize(
    "bad_tokens",
    [
        [{"label": "idp_b", "sha256": "not-a-sha256"}],
        [{"label": "idp_b", "sha256": "G" * 64}],
        [],
        [{"label": "bad label!", "sha256": "0" * 64}],
    ],
    ids=["bad-sha256", "non-hex-sha256", "no-tokens", "bad-label"],
)
def test_invalid_update_is_rejected_and_old_config_keeps_serving(lds_envoy, bad_tokens):
    token_a = "A-" + secrets.token_urlsafe(24)
    token_b = "B-" + secrets.token_urlsafe(24)
    e = lds_envoy.start([_entry("idp_b", token_b)])
    pid = e.proc.pid
    assert _status(e, token_b) == 200
    assert _status(e, token_a) == 401

    rejected = e.counter("listener_manager.lds.update_rejected")
    ok_before = e.counter("listener_manager.lds.update_success")
    # The bad update would also have added A: it must not take effect.
    e.write_listener([_entry("idp_a", token_a), *bad_tokens] if bad_tokens else [])
    e.wait_for(lambda: e.counter("listener_manager.lds.update_rejected") > rejected, "the LDS update to be rejected")
    assert e.counter("listener_manager.lds.update_success") == ok_before
    assert "invalid plugin configuration" in e.log_path.read_text(errors="replace")
    for _ in range(6):
        assert _status(e, token_b) == 200
        assert _status(e, token_a) == 401
    assert e.proc.poll() is None and e.proc.pid == pid

    # A good update afterwards still applies.
    e.write_listener([_entry("idp_a", token_a), _entry("idp_b", token_b)])
    e.wait_for(lambda: _status(e, token_a) == 200, "token A after a good update")
    assert _status(e, token_b) == 200
