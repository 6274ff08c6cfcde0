"""The Drupal service password never appears in a process's command line.

/proc/PID/cmdline (what `ps` shows) is readable by every local user; the environment
(/proc/PID/environ) only by the process's own user. So the harness and scripts/run hand the
emulator its password with `--admin-pass-env`, and Envoy reads DRUPAL_PASSWORD from its
environment. These tests look at every process on the machine.
"""

import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import REPO_ROOT, free_port

pytestmark = pytest.mark.no_leak_check


def cmdlines() -> dict[int, bytes]:
    """The argv of every process we can see, NUL-separated as the kernel keeps it."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            out[int(d.name)] = (d / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return out


def holders(secret: str) -> dict[int, str]:
    needle = secret.encode()
    return {pid: argv.replace(b"\0", b" ").decode(errors="replace") for pid, argv in cmdlines().items() if needle in argv}


def test_the_harness_emulator_gets_its_password_outside_argv(emulator):
    argv = Path(f"/proc/{emulator.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--admin-pass-env" in argv and b"--admin-pass" not in argv, argv
    assert holders(emulator.admin_pass) == {}


def test_run_keeps_the_password_out_of_argv(tmp_path):
    password = "run-argv-" + secrets.token_urlsafe(24)
    scim_port, admin_port, emu_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_", "DRUPAL_"))}
    env.update(
        SCIM_LISTEN=f"127.0.0.1:{scim_port}",
        ENVOY_ADMIN=f"127.0.0.1:{admin_port}",
        DRUPAL_EMULATOR_LISTEN=f"127.0.0.1:{emu_port}",
        DRUPAL_PASSWORD=password,
        ENVOY_CONCURRENCY="1",
    )
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "run")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not re.search(r"^SCIM base URL: ", log_path.read_text(errors="replace"), re.M):
            assert proc.poll() is None, f"scripts/run exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "scripts/run printed no banner:\n" + log_path.read_text()[-3000:]
            time.sleep(0.2)
        # Its emulator is up (the banner comes after Envoy answered through it) ...
        mine = {}
        for pid, argv in cmdlines().items():
            try:
                if os.getsid(pid) == proc.pid:
                    mine[pid] = argv.split(b"\0")
            except OSError:
                continue
        emulators = [argv for argv in mine.values() if argv[0].endswith(b"drupal-emulator")]
        assert len(emulators) == 1, mine
        assert b"--admin-pass-env" in emulators[0], emulators[0]
        # ... and no process shows the password: not the emulator, Envoy or any helper.
        assert holders(password) == {}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
