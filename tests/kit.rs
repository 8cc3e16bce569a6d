//! The deployment kit, checked as files: `conf/wson.service` (and `systemd-analyze verify`
//! when the host has it). Each check that needs a tool says so on stderr and passes when
//! the tool is missing, so the rest still runs everywhere.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

fn repository_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// The `Key=value` lines of a unit or an ini-like file, comments left out.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// True when `tool` runs here; otherwise says on stderr which check is skipped.
fn have(tool: &str, check: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: {check}: `{tool}` is not installed");
    }
    found
}

#[test]
fn systemd_unit_is_type_notify_as_its_own_user_with_hardening() {
    let unit = settings(&repository_file("conf/wson.service"));
    for (key, value) in [
        ("Type", "notify"),
        ("User", "wson"),
        ("Group", "wson"),
        (
            "ExecStart",
            "/usr/local/bin/wson start -c /etc/wson/wson.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("RuntimeDirectory", "wson"),
        ("NoNewPrivileges", "true"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "true"),
        ("PrivateTmp", "true"),
    ] {
        assert!(
            unit.iter().any(|(k, v)| k == key && v == value),
            "conf/wson.service lacks {key}={value}"
        );
    }
    for key in ["LimitNOFILE", "ReadWritePaths", "StateDirectory"] {
        assert!(
            unit.iter().any(|(k, _)| k == key),
            "conf/wson.service lacks {key}"
        );
    }
    // The foreground process is the one systemd watches and the one that notifies.
    assert!(!unit.iter().any(|(_, v)| v.contains("--daemon")));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if !have(
        "systemd-analyze",
        "systemd-analyze verify conf/wson.service",
    ) {
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the one cargo built.
    let unit = repository_file("conf/wson.service").replace("/usr/local/bin/wson", wson_bin());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wson.service");
    fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}
