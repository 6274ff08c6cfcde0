"""Running the gateway on the web host without a Rust toolchain (docs/deployment.md, "On the web
host: systemd or Compose"):

- scripts/release builds dist/envoy_scim_drupal-<version>.wasm and its .sha256 (sha256sum
  format), the module scripts/test tests.
- scripts/run with SCIM_WASM runs that module with no cargo on the PATH, refuses one whose
  digest differs or is missing, prints SCIM_PUBLIC_URL + /scim/v2 as the IdP's base URL, and
  keeps a generated token across restarts in SCIM_STATE_DIR (mode 600), printed only when it is
  generated and on demand (`scripts/run --token`).
- deploy/envoy-scim-drupal.service: the unit's environment (with its env file) makes
  `scripts/run --validate` render a config that `envoy --mode validate` accepts.
- deploy/compose.yaml: the Envoy image the tests run, host networking, and the config and module
  mounted at the paths the config rendered by `scripts/run --validate` names; that config, as
  Compose's command line gives it to Envoy, passes `envoy --mode validate`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

import harness
from harness import REPO_ROOT, free_port

pytestmark = pytest.mark.no_leak_check

DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "envoy-scim-drupal.service"
ENV_FILE = DEPLOY / "envoy-scim-drupal.env"
COMPOSE = DEPLOY / "compose.yaml"
RUN = REPO_ROOT / "scripts" / "run"
# What scripts/run reads; the tests start from an environment without any of them.
RUN_VARIABLES = (
    "SCIM_TOKEN", "DRUPAL_URL", "DRUPAL_USERNAME", "DRUPAL_PASSWORD", "DRUPAL_AUTH", "DRUPAL_REAL",
    "SCIM_ATTRIBUTES", "SCIM_GROUPS", "SCIM_PUBLIC_URL", "SCIM_PUBLIC_JSONAPI", "SCIM_WASM",
    "SCIM_WASM_SHA256", "SCIM_STATE_DIR", "SCIM_RUN_DIR", "INVOCATION_ID",
)


@pytest.fixture(autouse=True)
def _reset_and_check_leaks():
    """Overrides conftest's per-test fixture: these tests start their own processes."""
    yield


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """scripts/release into a temporary dist/: the released module."""
    dist = tmp_path_factory.mktemp("dist")
    p = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "release")],
        env={**os.environ, "DIST_DIR": str(dist)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    wasm_path, sha_path = (Path(line) for line in p.stdout.decode().split())
    assert wasm_path.parent == dist and sha_path == Path(str(wasm_path) + ".sha256")
    return wasm_path


def no_cargo_path() -> str:
    """PATH without any directory holding cargo or rustup: a host with no Rust toolchain."""
    keep = [d for d in os.environ.get("PATH", "").split(":") if d and not (Path(d) / "cargo").exists() and not (Path(d) / "rustup").exists()]
    return ":".join(keep)


def run_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in RUN_VARIABLES}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_script(*args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUN), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO_ROOT)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_release_is_the_module_and_its_digest(release):
    sha_line = Path(str(release) + ".sha256").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}  " + re.escape(release.name) + r"\n", sha_line), sha_line
    assert re.fullmatch(r"envoy_scim_drupal-\d+\.\d+\.\d+(-dirty)?\.wasm", release.name)
    # sha256sum -c accepts it, and the module is the optimised one scripts/test tests.
    subprocess.run(["sha256sum", "-c", release.name + ".sha256"], cwd=release.parent, check=True, stdout=subprocess.DEVNULL)
    assert release.read_bytes() == harness.WASM_PATH.read_bytes()
    assert release.read_bytes()[:4] == b"\0asm"


def start_run(env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            ["bash", str(RUN)], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )


def wait_banner(proc: subprocess.Popen, log_path: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if re.search(r"^Press Ctrl-C to stop\.$", text, re.M):
            return text
        if proc.poll() is not None:
            raise AssertionError(f"scripts/run exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("scripts/run printed no banner:\n" + log_path.read_text(errors="replace")[-3000:])


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise AssertionError("scripts/run did not stop on SIGTERM")


def test_prebuilt_module_without_rust_public_url_and_a_token_that_survives_restarts(release, tmp_path):
    # A copy elsewhere, with its digest file beside it, as a site owner downloads them.
    dist = tmp_path / "dl"
    dist.mkdir()
    wasm = dist / release.name
    shutil.copy(release, wasm)
    shutil.copy(Path(str(release) + ".sha256"), dist)
    state = tmp_path / "state"
    scim_port, admin_port, emu_port = free_port(), free_port(), free_port()
    env = run_env(
        PATH=no_cargo_path(),
        SCIM_WASM=wasm,
        SCIM_STATE_DIR=state,
        SCIM_RUN_DIR=tmp_path / "run",
        SCIM_PUBLIC_URL="https://www.example.org",
        SCIM_LISTEN=f"0.0.0.0:{scim_port}",
        ENVOY_ADMIN=f"127.0.0.1:{admin_port}",
        DRUPAL_EMULATOR_LISTEN=f"127.0.0.1:{emu_port}",
        DRUPAL_EMULATOR_BIN=harness.EMULATOR_BIN,
        ENVOY_CONCURRENCY=1,
    )
    assert shutil.which("cargo", path=env["PATH"]) is None
    local = f"http://127.0.0.1:{scim_port}/scim/v2"

    proc = start_run(env, tmp_path / "first.log")
    try:
        text = wait_banner(proc, tmp_path / "first.log")
        # The IdP's base URL is the public one; the local one is the wildcard listener's loopback.
        assert re.search(r"^SCIM base URL: https://www\.example\.org/scim/v2$", text, re.M), text
        assert re.search(rf"^Local URL: {re.escape(local)}$", text, re.M), text
        assert "0.0.0.0" not in text.split("SCIM base URL:")[1]
        assert "using the prebuilt module" in text and "building the filter" not in text
        token = re.search(r"^Token: (\S+)$", text, re.M).group(1)
        token_file = state / "scim-token"
        assert token_file.read_text() == token + "\n"
        assert mode(token_file) == 0o600 and mode(state) == 0o700
        # Envoy runs the given module; its config holds the digest, never the token.
        config = (tmp_path / "run" / "envoy.yaml").read_text()
        assert str(wasm) in config and token not in config and harness.sha256_hex(token) in config
        h = {"Authorization": "Bearer " + token}
        r = requests.post(local + "/Users", headers={**h, "Content-Type": "application/scim+json"},
                          json=harness.jumpcloud_user("kept@example.com"), timeout=10)
        assert r.status_code == 201, r.text
    finally:
        stop(proc)

    # A restart (systemd, a reboot) keeps the token: what JumpCloud was given still works, and
    # it is not printed again (nor under systemd, whose output is the journal).
    proc = start_run({**env, "INVOCATION_ID": "0123456789abcdef"}, tmp_path / "second.log")
    try:
        text = wait_banner(proc, tmp_path / "second.log")
        assert token not in text
        assert re.search(r"^Token: unchanged, kept in " + re.escape(str(state / "scim-token")), text, re.M), text
        r = requests.get(local + "/Users", headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 200, r.text
        assert requests.get(local + "/Users", headers={"Authorization": "Bearer not-" + token}, timeout=10).status_code == 401
    finally:
        stop(proc)
    # On demand, as the operator.
    p = run_script("--token", env=env, timeout=30)
    assert p.returncode == 0 and p.stdout.decode().strip() == token


def test_prebuilt_module_is_checked_against_its_digest(release, tmp_path):
    wasm = tmp_path / release.name
    shutil.copy(release, wasm)
    base = run_env(PATH=no_cargo_path(), SCIM_STATE_DIR=tmp_path / "state", SCIM_RUN_DIR=tmp_path / "run",
                   DRUPAL_URL="http://127.0.0.1:9", DRUPAL_USERNAME="scim-service", DRUPAL_PASSWORD="p" * 20,
                   SCIM_LISTEN=f"127.0.0.1:{free_port()}", ENVOY_ADMIN=f"127.0.0.1:{free_port()}")
    # No digest anywhere: refused.
    p = run_script("--validate", env={**base, "SCIM_WASM": str(wasm)})
    assert p.returncode != 0 and "no " + str(wasm) + ".sha256 beside it and no SCIM_WASM_SHA256" in p.stdout.decode(), p.stdout.decode()[-2000:]
    # A module that is not the published one: refused, naming both digests.
    other = "0" * 64
    p = run_script("--validate", env={**base, "SCIM_WASM": str(wasm), "SCIM_WASM_SHA256": other})
    out = p.stdout.decode()
    assert p.returncode != 0 and f"not the expected {other}" in out, out[-2000:]
    assert not (tmp_path / "run" / "envoy.yaml").exists()
    # The right digest (in the environment, or the file beside it): rendered and validated.
    good = hashlib.sha256(wasm.read_bytes()).hexdigest()
    # --validate binds nothing, so it also works beside a running gateway holding the listener.
    busy = socket.socket()
    busy.bind(("127.0.0.1", int(base["SCIM_LISTEN"].rsplit(":", 1)[1])))
    busy.listen()
    try:
        p = run_script("--validate", env={**base, "SCIM_WASM": str(wasm), "SCIM_WASM_SHA256": good.upper()})
    finally:
        busy.close()
    assert p.returncode == 0, p.stdout.decode()[-3000:]
    assert "(valid; module " + str(wasm) + ")" in p.stdout.decode()


def unit_entries(path: Path) -> dict[str, list[str]]:
    """The [Service] section's Key=value lines (a key may repeat, as Environment= does)."""
    entries: dict[str, list[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def env_file(path: Path) -> dict[str, str]:
    """The example env file's variables, but PYTHON: here .venv is the test run's own."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    assert out.pop("PYTHON").startswith("/usr/")
    return out


def test_systemd_unit_renders_a_valid_config(release, tmp_path):
    u = unit_entries(UNIT)
    assert u["Service.Type"] == ["simple"]
    workdir = Path(u["Service.WorkingDirectory"][0])
    assert u["Service.ExecStart"] == [str(workdir / "scripts" / "run")]
    assert u["Service.User"] and u["Service.User"] != ["root"]
    assert u["Service.StateDirectoryMode"] == ["0700"] and u["Service.RuntimeDirectoryMode"] == ["0700"]
    assert u["Service.Restart"] == ["on-failure"] and u["Install.WantedBy"] == ["multi-user.target"]
    env = dict(e.split("=", 1) for e in u["Service.Environment"])
    # The token lives in the state directory systemd keeps; the rendered config in the runtime one.
    assert env["SCIM_STATE_DIR"] == "%S/" + u["Service.StateDirectory"][0]
    assert env["SCIM_RUN_DIR"] == "%t/" + u["Service.RuntimeDirectory"][0]
    example = env_file(ENV_FILE)
    assert {"DRUPAL_URL", "DRUPAL_USERNAME", "DRUPAL_PASSWORD", "SCIM_WASM", "SCIM_PUBLIC_URL"} <= set(example)
    assert example["SCIM_WASM"].startswith(str(workdir / "dist") + "/envoy_scim_drupal-")
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", str(UNIT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        # A host without the user or the paths complains about those only.
        for line in p.stdout.decode().splitlines():
            assert "Unknown key" not in line and "Invalid" not in line, line

    # The unit's environment, with %S/%t and the install paths under tmp_path, and the module
    # scripts/release built standing in for the one under /opt.
    state, runtime = tmp_path / "var-lib", tmp_path / "run"
    full = run_env(
        PATH=no_cargo_path(),
        **example,
        **{k: v.replace("%S", str(state)).replace("%t", str(runtime)) for k, v in env.items()},
    )
    full["SCIM_WASM"] = str(release)
    full["SCIM_LISTEN"] = f"127.0.0.1:{free_port()}"
    full["ENVOY_ADMIN"] = f"127.0.0.1:{free_port()}"
    p = run_script("--validate", env=full)
    out = p.stdout.decode()
    assert p.returncode == 0, out[-3000:]
    rendered = runtime / "envoy-scim-drupal" / "envoy.yaml"
    assert f"Envoy config: {rendered} (valid;" in out
    assert mode(state / "envoy-scim-drupal" / "scim-token") == 0o600
    cfg = yaml.safe_load(rendered.read_text())
    text = rendered.read_text()
    assert example["SCIM_PUBLIC_URL"] in text and example["DRUPAL_PASSWORD"] not in text
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def interpolate(value: str, env: dict) -> str:
    """Compose's ${VAR}, ${VAR:?message} and ${VAR:-default}."""

    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose would refuse: {name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", one, value)


def test_compose_file_runs_the_config_scripts_run_validates(release, tmp_path):
    compose = yaml.safe_load(COMPOSE.read_text())
    (svc,) = compose["services"].values()
    out = subprocess.run([harness.envoy_bin(), "--version"], stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode()
    version = re.search(r"/(\d+\.\d+\.\d+)/", out).group(1)
    assert svc["image"] == f"envoyproxy/envoy:v{version}"
    assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped"
    assert "ports" not in svc

    # scripts/run --validate renders (and checks) the config Compose mounts.
    run_dir = tmp_path / "rendered"
    example = env_file(ENV_FILE)
    env = run_env(PATH=no_cargo_path(), **{
        **example, "SCIM_WASM": release, "SCIM_STATE_DIR": tmp_path / "state", "SCIM_RUN_DIR": run_dir,
        "SCIM_LISTEN": f"127.0.0.1:{free_port()}", "ENVOY_ADMIN": f"127.0.0.1:{free_port()}",
    })
    p = run_script("--validate", env=env)
    assert p.returncode == 0, p.stdout.decode()[-3000:]

    # Without the variables Compose refuses to start rather than mount nothing.
    with pytest.raises(AssertionError, match="compose would refuse: SCIM_RUN_DIR"):
        interpolate(svc["command"][2], {})
    mounts = {}
    for v in svc["volumes"]:
        src, target, ro = interpolate(v, env).split(":")
        assert ro == "ro" and src == target, v
        mounts[target] = Path(src)
    command = [interpolate(c, env) for c in svc["command"]]
    assert command[:2] == ["envoy", "-c"]
    config = Path(command[2])
    assert config == run_dir / "envoy.yaml" and config.exists() and str(config) in mounts
    assert str(release) in mounts and mounts[str(release)].exists()
    # Everything the config reads from disk is mounted: the module.
    cfg_text = config.read_text()
    assert str(release) in cfg_text
    assert set(svc["environment"]) == {"DRUPAL_USERNAME", "DRUPAL_PASSWORD"}
    assert all(interpolate(v, env) == env[k] for k, v in svc["environment"].items())
    # Envoy, started as Compose starts it (same arguments), accepts the config.
    p = subprocess.run(
        [harness.envoy_bin(), "--mode", "validate", *command[1:]],
        env={**os.environ, "DRUPAL_USERNAME": "scim-service", "DRUPAL_PASSWORD": "validate-only"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
    )
    assert p.returncode == 0, p.stdout.decode(errors="replace")[-3000:]
