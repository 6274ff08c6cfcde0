//! The service password given with `--admin-pass-env VAR` or `--admin-pass-file PATH` works and
//! stays out of the process's command line (`/proc/PID/cmdline`, which `ps` shows to every local
//! user), unlike `--admin-pass`. Runs the real `drupal-emulator` binary.

use drupal_emulator::client::send;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_drupal-emulator");

/// A child that is killed when the test ends, pass or fail.
struct Emulator {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Emulator {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--admin-user", "svc"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("drupal-emulator listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Emulator { child, addr }
    }

    /// The process's argv, as `ps` reads it.
    fn cmdline(&self) -> Vec<u8> {
        std::fs::read(format!("/proc/{}/cmdline", self.child.id())).unwrap()
    }

    /// The status of `POST /user/login` as svc with this password (200: logged in).
    fn login_status(&self, pass: &str) -> u16 {
        let body = serde_json::json!({"name": "svc", "pass": pass}).to_string();
        send(
            self.addr,
            "POST",
            "/user/login?_format=json",
            &[("Content-Type".into(), "application/json".into())],
            Some(body.as_bytes()),
        )
        .unwrap()
        .status
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A password no test run shares with another.
fn secret(tag: &str) -> String {
    format!(
        "{tag}-{}-{:x}",
        std::process::id(),
        uuid::Uuid::new_v4().as_u128()
    )
}

#[test]
fn admin_pass_env_is_not_in_argv() {
    let pass = secret("env-secret");
    let var = "DRUPAL_EMULATOR_TEST_ADMIN_PASS";
    let emu = Emulator::start(&["--admin-pass-env", var], &[(var, &pass)]);
    let argv = emu.cmdline();
    assert!(contains(&argv, "--admin-pass-env"), "{argv:?}");
    assert!(!contains(&argv, &pass), "the password is in argv: {argv:?}");
    assert_eq!(emu.login_status(&pass), 200);
    assert_ne!(emu.login_status("wrong"), 200);
}

#[test]
fn admin_pass_file_is_not_in_argv() {
    let pass = secret("file-secret");
    let path = std::env::temp_dir().join(format!("{}.pass", secret("emulator-admin")));
    // One trailing line break is not part of the password (`echo "$PASS" > file`).
    std::fs::write(&path, format!("{pass}\n")).unwrap();
    let emu = Emulator::start(&["--admin-pass-file", path.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&path);
    let argv = emu.cmdline();
    assert!(!contains(&argv, &pass), "the password is in argv: {argv:?}");
    assert_eq!(emu.login_status(&pass), 200);
    assert_ne!(emu.login_status(&format!("{pass}\n")), 200);
}

/// `--admin-pass` still works (manual use), and is visible: the reason for the other two.
#[test]
fn admin_pass_on_the_command_line_shows_in_argv() {
    let pass = secret("argv-secret");
    let emu = Emulator::start(&["--admin-pass", &pass], &[]);
    assert!(contains(&emu.cmdline(), &pass));
    assert_eq!(emu.login_status(&pass), 200);
}

#[test]
fn missing_secret_sources_are_errors() {
    let var = "DRUPAL_EMULATOR_TEST_UNSET_VARIABLE";
    for (args, needle) in [
        (vec!["--admin-pass-env", var], var),
        (
            vec!["--admin-pass-file", "/nonexistent/emulator.pass"],
            "/nonexistent/emulator.pass",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove(var)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
