//! Third-party clients run as subprocesses: WebSocket libraries (Python `websockets` and
//! `websocket-client`, Node `ws`) and PHP control clients, each a script in `tests/clients/`
//! that prints one JSON object per line.
//!
//! `tests/install-tools.sh` installs them; a missing tool fails the test, unless
//! `WSON_SKIP_REAL_CLIENTS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::WAIT;

pub const INSTALL_HINT: &str = "run tests/install-tools.sh (the README test command does)";

pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether the real clients may be skipped: `WSON_SKIP_REAL_CLIENTS=1`.
pub fn skipping(missing: &str) -> bool {
    if std::env::var("WSON_SKIP_REAL_CLIENTS").as_deref() == Ok("1") {
        // Straight to stderr, past the test harness's capture, so that it shows.
        let _ = writeln!(
            std::io::stderr(),
            "!!!!! SKIPPED a real-client test: {missing} (WSON_SKIP_REAL_CLIENTS=1) !!!!!"
        );
        return true;
    }
    false
}

/// Fails (or skips) unless `installed` exists and, when given, its `stamp` file holds the
/// SHA-256 of `pins` as `tests/install-tools.sh` writes it.
pub fn require(installed: &Path, pins: Option<(&str, &str)>) -> bool {
    let problem = if !installed.exists() {
        Some(format!("{} is missing", installed.display()))
    } else if let Some((stamp, pins)) = pins {
        let dir = clients_dir();
        let digest = Sha256::digest(std::fs::read(dir.join(pins)).unwrap());
        let want: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        let have = std::fs::read_to_string(dir.join(stamp)).unwrap_or_default();
        (have.trim() != want)
            .then(|| format!("tests/clients/{pins} changed since the last install"))
    } else {
        None
    };
    match problem {
        None => true,
        Some(problem) if skipping(&problem) => false,
        Some(problem) => panic!("{problem}: {INSTALL_HINT}"),
    }
}

pub fn python() -> Option<PathBuf> {
    let python = clients_dir().join(".venv/bin/python");
    require(
        &python,
        Some((".venv/requirements.sha256", "requirements.txt")),
    )
    .then_some(python)
}

pub fn node() -> Option<PathBuf> {
    let ws = clients_dir().join("node_modules/ws");
    let stamp = Some(("node_modules/.package-lock.sha256", "package-lock.json"));
    if !require(&ws, stamp) {
        return None;
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Some(PathBuf::from("node")),
        _ if skipping("node is not on PATH") => None,
        _ => panic!("node is not on PATH: {INSTALL_HINT}"),
    }
}

/// The PHP CLI, for the PHP control clients in `tests/clients/php/`.
pub fn php() -> Option<PathBuf> {
    match Command::new("php").arg("--version").output() {
        Ok(out) if out.status.success() => Some(PathBuf::from("php")),
        _ if skipping("php is not on PATH") => None,
        _ => panic!("php is not on PATH: {INSTALL_HINT}"),
    }
}

/// A client script's process: its JSON lines with a bounded wait, killed on drop; a
/// failing test prints everything it said.
pub struct Script {
    name: String,
    child: Child,
    lines: Receiver<String>,
    said: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    pub fn spawn(program: &Path, script: &str, args: &[&str]) -> Script {
        Script::spawn_with_env(program, script, args, &[])
    }

    /// `spawn` with more environment variables (a test CA for a TLS client).
    pub fn spawn_with_env(
        program: &Path,
        script: &str,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Script {
        let mut child = Command::new(program)
            .arg(clients_dir().join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(clients_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        Script {
            name: format!("{} {script} {}", program.display(), args.join(" ")),
            child,
            lines,
            said: Vec::new(),
            stderr,
        }
    }

    /// The next JSON line; fails after `WAIT` or when the script ends first.
    pub fn next(&mut self) -> Value {
        let line = match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line from the client within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("the client ended early: {status:?}")
            }
        };
        self.said.push(line.clone());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The next JSON line if one is already there, without waiting.
    pub fn next_ready(&mut self) -> Option<Value> {
        let line = self.lines.try_recv().ok()?;
        self.said.push(line.clone());
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// Waits (bounded) for the script to exit by itself, successfully and without more output.
    pub fn finish(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the client exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(line) = self.lines.recv_timeout(WAIT) {
            panic!("the client said more than expected: {line}");
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- client: {}", self.name);
            eprintln!("--- it said:\n{}", self.said.join("\n"));
            eprintln!("--- its stderr:\n{}", self.stderr.lock().unwrap());
        }
    }
}
