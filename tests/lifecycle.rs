//! The process life cycle and the command line, on the real binary: `check`, `token`, the
//! secret file, the pid file, `start --daemon`, `stop`, `status`, `restart`, `reload`,
//! start errors, signals (SIGTERM, SIGINT, SIGHUP, SIGUSR1) and exit codes.
//!
//! Every CLI run is bounded (`run_wson` kills a run that outlives `WAIT`), and every
//! process a test starts is killed on drop, so a failing test leaves nothing running.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest as _, Md5};
use nix::sys::signal::Signal;
use sha2::Sha256;
use wson::auth::Digest;

use crate::common::*;

// ---------------------------------------------------------------------------------------
// Helpers

/// A finished CLI run.
#[derive(Debug)]
struct Run {
    /// The pid of the `wson` process the test started.
    pid: i32,
    /// Shown (by Debug) when an assertion on the run fails.
    #[allow(dead_code)]
    args: Vec<OsString>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self:#?}");
        self
    }

    #[track_caller]
    fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }

    #[track_caller]
    fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}: {self:#?}"
        );
        self
    }

    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Runs `wson ARGS` to completion, failing the test if it outlives `WAIT` (a `start` that
/// should have been refused would otherwise serve forever).
fn run_wson<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = Command::new(wson_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wson");
    let pid = i32::try_from(child.id()).unwrap();
    let (tx, rx) = channel();
    for (index, mut pipe) in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send((index, String::from_utf8_lossy(&text).into_owned()));
        });
    }
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wson {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut outputs = [String::new(), String::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        let (index, text) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("wson {args:?} exited but its output stayed open"));
        outputs[index] = text;
    }
    let [stdout, stderr] = outputs;
    Run {
        pid,
        args,
        code: status.code(),
        stdout,
        stderr,
    }
}

/// `wson -c CONFIG ARGS`.
fn cli(config: &Path, args: &[&str]) -> Run {
    let mut all = vec![OsString::from("-c"), config.as_os_str().to_owned()];
    all.extend(args.iter().map(OsString::from));
    run_wson(all)
}

/// The pid written in a pid file, if there is one.
fn pid_in(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when `pid` names no running process. A zombie (exited, not reaped: the daemon's
/// parent is not us, and a container's PID 1 may never reap it) counts as gone, as it
/// does for `wson stop`.
fn process_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// The pid of a process that has exited and been reaped: a stale pid.
fn dead_pid() -> i32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = i32::try_from(child.id()).unwrap();
    child.wait().unwrap();
    pid
}

/// Leaves a socket file nobody listens on, as a crashed server does.
fn stale_socket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
    assert!(path.exists());
}

fn write_private(path: &Path, text: &str) {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server that detached (`start --daemon`): SIGKILLed on drop unless already gone.
struct Daemon {
    pid: i32,
    log_file: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let ours = fs::read(format!("/proc/{}/cmdline", self.pid))
            .is_ok_and(|cmdline| find(&cmdline, b"wson").is_some());
        if !process_gone(self.pid) && ours {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log_file).unwrap_or_default();
            eprintln!("--- daemon log ({}):\n{log}", self.log_file.display());
        }
    }
}

/// A `wson` command running in the foreground with its output in a file (for `restart`,
/// whose process becomes the new server); killed and reaped on drop.
struct Foreground {
    child: Child,
    output: PathBuf,
}

impl Foreground {
    fn spawn(config: &Path, args: &[&str], output: PathBuf) -> Foreground {
        let file = fs::File::create(&output).unwrap();
        let child = Command::new(wson_bin())
            .arg("-c")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn wson");
        Foreground { child, output }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn wait_exit(&mut self) -> Option<i32> {
        wait_for_exit(&mut self.child)
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let output = fs::read_to_string(&self.output).unwrap_or_default();
            eprintln!("--- wson output ({}):\n{output}", self.output.display());
        }
    }
}

/// A config whose timeouts keep the life-cycle tests short.
fn quick() -> Setup {
    Setup::new()
        .set("close_timeout", "1")
        .set("stop_timeout", "10")
}

fn handshake_with_origin(server: &Server, origin: &str) -> Result<WsClient, HttpResponse> {
    let cookies = Cookies::fresh("alice");
    let mut client = WsClient::raw_tcp(&server.tcp());
    client.upgrade(&request(&server.tcp(), &cookies.header, Some(origin), ""))?;
    Ok(client)
}

#[track_caller]
fn assert_files_gone(dir: &Path, names: &[&str]) {
    for name in names {
        assert!(
            !dir.join(name).exists(),
            "{name} should not exist in {}",
            dir.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// check

#[test]
fn check_accepts_the_shipped_config_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wson.toml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/wson.toml"),
        &config,
    )
    .unwrap();
    cli(&config, &["check"]).expect_code(0).stdout_has(": ok");
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![OsString::from("wson.toml")],
        "check created files"
    );
}

#[test]
fn check_accepts_a_valid_config() {
    let (_dir, config) = Setup::new().write();
    cli(&config, &["check"]).expect_code(0).stdout_has(": ok");
}

#[test]
fn check_reports_every_problem_naming_file_and_key_with_exit_2() {
    let (_dir, config) = Setup::new()
        .set("secret", r#""tiny-sec""#)
        .set("ping_interval", r#""soon""#)
        .set("max_connections", "-5")
        .set("digest", r#""sha1""#)
        .set("colour", r#""blue""#)
        .write();
    let run = cli(&config, &["check"]);
    run.expect_code(2);
    let file = config.display().to_string();
    for key in [
        "secret",
        "ping_interval",
        "max_connections",
        "digest",
        "colour",
    ] {
        assert!(
            run.stderr_lines()
                .iter()
                .any(|line| line.contains(&file) && line.contains(&format!(": {key}: "))),
            "no line names {file} and {key}: {run:#?}"
        );
    }
    run.stderr_has("unknown key").stderr_has("16 bytes");
    assert!(!run.stderr.contains("tiny-sec"), "the secret was printed");
}

#[test]
fn check_of_a_missing_config_names_the_file_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    cli(&config, &["check"])
        .expect_code(2)
        .stderr_has(&config.display().to_string());
}

// ---------------------------------------------------------------------------------------
// token

/// The four cookies of a `wson token` line, in order.
fn cookie_fields(line: &str) -> Vec<(String, String)> {
    line.split("; ")
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("name=value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn token_prints_one_cookie_line_the_running_server_accepts() {
    let server = Setup::new().start();
    let before = now();
    let run = cli(&server.config_path, &["token", "--user", "alice"]);
    let after = now();
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{run:#?}");
    let line = lines[0];
    let fields = cookie_fields(line);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["token", "user", "time", "digest"]);
    let token = &fields[0].1;
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_eq!(fields[1].1, "alice");
    let time: u64 = fields[2].1.parse().unwrap();
    assert!((before..=after).contains(&time), "time {time} is not now");
    assert!(fields[3].1.bytes().all(|b| b.is_ascii_hexdigit()));

    let mut client = WsClient::raw_tcp(&server.tcp());
    client
        .upgrade(&request(&server.tcp(), line, Some(ORIGIN), ""))
        .expect("the printed cookies are accepted");
    let mut control = server.control();
    control.send(b'b', b"for the token holder");
    assert_eq!(client.recv_text(), "for the token holder");
}

#[test]
fn token_digest_is_md5_of_secret_user_token_time() {
    let (_dir, config) = Setup::new().write();
    let token = "abcdefghijklmnopqrstuvwxyz-_0123";
    assert_eq!(token.len(), 32);
    let run = cli(
        &config,
        &[
            "token",
            "--user",
            "alice",
            "--token",
            token,
            "--time",
            "1700000000",
        ],
    );
    run.expect_code(0);
    let mut md5 = Md5::new();
    md5.update(format!("{SECRET}alice{token}1700000000").as_bytes());
    let digest = hex(&md5.finalize());
    assert_eq!(
        run.stdout,
        format!("token={token}; user=alice; time=1700000000; digest={digest}\n")
    );
}

#[test]
fn token_digest_is_hmac_sha256_of_token_time_user_when_configured() {
    let (_dir, config) = Setup::new().set("digest", r#""hmac-sha256""#).write();
    let token = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let run = cli(
        &config,
        &["token", "--user", "bob", "--token", token, "--time", "42"],
    );
    run.expect_code(0);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{token}:42:bob").as_bytes());
    let digest = hex(&mac.finalize().into_bytes());
    assert_eq!(
        run.stdout,
        format!("token={token}; user=bob; time=42; digest={digest}\n")
    );
}

#[test]
fn token_with_a_bad_token_is_a_usage_error() {
    let (_dir, config) = Setup::new().write();
    for bad in ["short", "abcdefghijklmnopqrstuvwxyz!01234"] {
        let run = cli(&config, &["token", "--user", "alice", "--token", bad]);
        run.expect_code(2).stderr_has("--token");
        assert_eq!(run.stdout, "", "{run:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// The secret

#[test]
fn missing_secret_file_is_created_at_start_with_64_hex_characters_mode_0600() {
    let setup = Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret.txt""#);
    let (dir, path) = setup.write();
    let server = Server::start_in(dir, path, setup.toml(), &[]);
    let file = server.path("secret.txt");
    let secret = fs::read_to_string(&file).unwrap();
    assert_eq!(secret.len(), 64, "{secret:?}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let mode = fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("created secret file") && l.contains("secret.txt")),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret was logged");
    // The server signs with what it wrote.
    let cookies = Cookies::signed("alice", now(), secret.as_bytes(), Digest::Md5);
    WsClient::connect_tcp(&server.tcp(), &cookies).expect("cookies signed with the new secret");
}

#[test]
fn existing_secret_file_is_used_as_is() {
    let setup = Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret.txt""#);
    let (dir, path) = setup.write();
    let file = dir.path().join("secret.txt");
    let text = "an-existing-secret-0123456789\n";
    write_private(&file, text);
    let server = Server::start_in(dir, path, setup.toml(), &[]);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    assert!(!server.log_text().contains("created secret file"));
    // Trailing whitespace is not part of the secret.
    let cookies = Cookies::signed("alice", now(), text.trim_end().as_bytes(), Digest::Md5);
    WsClient::connect_tcp(&server.tcp(), &cookies).expect("cookies signed with the file");
    let refused = WsClient::connect_tcp(&server.tcp(), &Cookies::fresh("alice"))
        .err()
        .expect("another secret is refused");
    assert_eq!(refused.status, 403);
}

#[test]
fn short_inline_secret_refuses_to_start_with_one_line_exit_2() {
    let (dir, config) = Setup::new().set("secret", r#""tiny-sec""#).write();
    let run = cli(&config, &["start"]);
    run.expect_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{run:#?}");
    run.stderr_has(&config.display().to_string())
        .stderr_has("secret: ")
        .stderr_has("16 bytes");
    assert!(!run.stderr.contains("tiny-sec"), "the secret was printed");
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn short_secret_file_refuses_to_start_with_one_line_exit_2() {
    let (dir, config) = Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret.txt""#)
        .write();
    let file = dir.path().join("secret.txt");
    write_private(&file, "tiny-sec\n");
    let run = cli(&config, &["start"]);
    run.expect_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{run:#?}");
    run.stderr_has("secret_file: ")
        .stderr_has(&file.display().to_string())
        .stderr_has("16 bytes");
    assert!(!run.stderr.contains("tiny-sec"), "the secret was printed");
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

// ---------------------------------------------------------------------------------------
// The pid file, stop, status, restart

#[test]
fn start_writes_the_pid_file_naming_the_server() {
    let server = quick().start();
    assert_eq!(pid_in(&server.path("wson.pid")), Some(server.pid()));
}

#[test]
fn second_start_refuses_naming_the_pid_file_and_leaves_the_first_alone() {
    let mut server = quick().start();
    let mut client = server.client();
    let pid_file = server.path("wson.pid");
    let run = cli(&server.config_path, &["start"]);
    run.expect_code(1)
        .stderr_has(&pid_file.display().to_string())
        .stderr_has(&server.pid().to_string());
    assert_eq!(pid_in(&pid_file), Some(server.pid()));
    assert!(server.path("ws.sock").exists());
    assert!(server.path("control.sock").exists());
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    let mut control = server.control();
    control.send(b'b', b"still here");
    assert_eq!(client.recv_text(), "still here");
    assert_eq!(unix.recv_text(), "still here");
    assert!(server.child.try_wait().unwrap().is_none());
}

#[test]
fn start_refuses_a_socket_file_another_server_listens_on() {
    let server = quick().start();
    // Without the pid file, the live socket is what stops a second server.
    fs::remove_file(server.path("wson.pid")).unwrap();
    let run = cli(&server.config_path, &["start"]);
    run.expect_code(1)
        .stderr_has(&server.path("ws.sock").display().to_string());
    assert!(
        server.path("ws.sock").exists(),
        "the live socket was removed"
    );
    assert!(server.path("control.sock").exists());
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    server.control().send(b'b', b"undisturbed");
    assert_eq!(unix.recv_text(), "undisturbed");
}

#[test]
fn stale_pid_file_and_stale_socket_files_are_replaced() {
    let setup = quick();
    let (dir, path) = setup.write();
    let stale = dead_pid();
    fs::write(dir.path().join("wson.pid"), format!("{stale}\n")).unwrap();
    stale_socket(&dir.path().join("ws.sock"));
    stale_socket(&dir.path().join("control.sock"));
    let server = Server::start_in(dir, path, setup.toml(), &[]);
    assert_eq!(pid_in(&server.path("wson.pid")), Some(server.pid()));
    let log = server.log_text();
    assert!(log.contains("removing stale pid file"), "{log}");
    assert_eq!(
        log.matches("removing stale socket file").count(),
        2,
        "{log}"
    );
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    let mut control = server.control();
    control.send(b'b', b"over the replaced sockets");
    assert_eq!(unix.recv_text(), "over the replaced sockets");
}

#[test]
fn stop_terminates_the_server_which_exits_0_and_removes_its_files() {
    let mut server = quick().start();
    let pid = server.pid();
    let run = cli(&server.config_path, &["stop"]);
    run.expect_code(0).stdout_has(&pid.to_string());
    assert_eq!(server.wait_exit(), Some(0));
    server.wait_for_log("stopped");
    assert_files_gone(server.dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn stop_when_not_running_exits_0_with_a_message() {
    let (_dir, config) = quick().write();
    cli(&config, &["stop"])
        .expect_code(0)
        .stdout_has("not running");
}

#[test]
fn stop_with_a_stale_pid_file_exits_0_and_removes_it() {
    let (dir, config) = quick().write();
    let pid_file = dir.path().join("wson.pid");
    fs::write(&pid_file, format!("{}\n", dead_pid())).unwrap();
    cli(&config, &["stop"])
        .expect_code(0)
        .stdout_has("not running");
    assert!(!pid_file.exists());
}

#[test]
fn status_prints_running_pid_and_connections() {
    let server = quick().start();
    let _client = server.client();
    let mut control = server.control();
    eventually("the client is counted", || {
        control.status()["connections"] == 1
    });
    let run = cli(&server.config_path, &["status"]);
    run.expect_code(0)
        .stdout_has("running")
        .stdout_has(&format!("pid: {}", server.pid()))
        .stdout_has("connections: 1");
}

#[test]
fn status_when_not_running_exits_1() {
    let (_dir, config) = quick().write();
    let run = cli(&config, &["status"]);
    run.expect_code(1).stderr_has("not running");
}

#[test]
fn restart_stops_the_server_and_starts_a_new_one() {
    let mut old = quick().start();
    let old_pid = old.pid();
    let pid_file = old.path("wson.pid");
    let mut new = Foreground::spawn(&old.config_path, &["restart"], old.path("restart.out"));
    assert_eq!(old.wait_exit(), Some(0), "the old server stops cleanly");
    eventually("the pid file names the restarted server", || {
        pid_in(&pid_file) == Some(new.pid())
    });
    assert_ne!(new.pid(), old_pid);
    let mut unix = WsClient::connect_unix(&old.path("ws.sock"), &Cookies::fresh("bob")).unwrap();
    let mut control = Control::connect(&ControlAddr::Unix(old.path("control.sock")));
    assert_eq!(control.status()["pid"], new.pid());
    control.send(b'b', b"after restart");
    assert_eq!(unix.recv_text(), "after restart");
    drop(unix);
    drop(control);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(new.pid()), Signal::SIGTERM).unwrap();
    assert_eq!(new.wait_exit(), Some(0));
    assert!(!pid_file.exists());
}

// ---------------------------------------------------------------------------------------
// start --daemon

#[test]
fn daemon_starts_detached_serves_logs_to_its_file_and_stops() {
    let (dir, config) = quick().set("log_file", r#""daemon.log""#).write();
    let log_file = dir.path().join("daemon.log");
    let run = cli(&config, &["start", "--daemon"]);
    run.expect_code(0);
    let pid = pid_in(&dir.path().join("wson.pid")).expect("a pid file once start returned");
    let _guard = Daemon {
        pid,
        log_file: log_file.clone(),
    };
    assert_ne!(pid, run.pid, "the daemon is not the process we started");
    assert!(!process_gone(pid), "the daemon runs");

    let mut client = WsClient::connect_unix(&dir.path().join("ws.sock"), &Cookies::fresh("alice"))
        .expect("the daemon accepts a handshake");
    let mut control = Control::connect(&ControlAddr::Unix(dir.path().join("control.sock")));
    control.send(b'p', b"");
    assert_eq!(control.reply_text(), "0P");
    control.send(b'b', b"from the daemon");
    assert_eq!(client.recv_text(), "from the daemon");
    assert_eq!(control.status()["pid"], pid);

    let log = fs::read_to_string(&log_file).unwrap();
    assert!(log.contains(&format!("started pid={pid}")), "{log}");
    assert!(log.contains("listening kind=websocket"), "{log}");

    // Answer the server's Close so that `stop` does not wait out close_timeout.
    let closer = std::thread::spawn(move || {
        let frame = client.expect_close(1001);
        client.send_close(1001, "");
        client.expect_end();
        frame
    });
    drop(control);
    let stopped = cli(&config, &["stop"]);
    stopped.expect_code(0).stdout_has(&pid.to_string());
    assert!(process_gone(pid), "stop returned while the daemon runs");
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
    assert_eq!(closer.join().unwrap().close_reason(), "going away");
}

/// The text of `path` once it holds `needle`, or a failure after `WAIT`.
fn wait_for_file_text(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} lacks {needle:?} after {WAIT:?}: {text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigusr1_reopens_the_daemon_log_file_after_logrotate_renamed_it_keeping_clients() {
    let (dir, config) = quick().set("log_file", r#""daemon.log""#).write();
    let log_file = dir.path().join("daemon.log");
    let rotated = dir.path().join("daemon.log.1");
    cli(&config, &["start", "--daemon"]).expect_code(0);
    let pid = pid_in(&dir.path().join("wson.pid")).expect("a pid file once start returned");
    let _guard = Daemon {
        pid,
        log_file: log_file.clone(),
    };
    let mut client = WsClient::connect_unix(&dir.path().join("ws.sock"), &Cookies::fresh("alice"))
        .expect("the daemon accepts a handshake");

    // What logrotate does without copytruncate: rename, then signal (postrotate).
    fs::rename(&log_file, &rotated).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
    let fresh = wait_for_file_text(&log_file, "log file reopened");
    assert!(!fresh.contains("started pid="), "{fresh}");
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(old.contains(&format!("started pid={pid}")), "{old}");
    assert!(!old.contains("log file reopened"), "{old}");

    // The client connected before the rotation still gets pushes; new lines (a reload)
    // go to the new file only.
    let mut control = Control::connect(&ControlAddr::Unix(dir.path().join("control.sock")));
    control.send(b'b', b"after rotation");
    assert_eq!(client.recv_text(), "after rotation");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    wait_for_file_text(&log_file, "configuration reloaded");
    assert_eq!(fs::read_to_string(&rotated).unwrap(), old);
}

#[test]
fn notify_socket_gets_ready_once_listening_and_stopping_on_sigterm() {
    let (dir, config) = quick().write();
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let output = dir.path().join("output.log");
    let child = Command::new(wson_bin())
        .arg("-c")
        .arg(&config)
        .arg("start")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&output).unwrap())
        .stderr(fs::File::create(&output).unwrap())
        .spawn()
        .expect("spawn wson");
    let mut server = Foreground { child, output };
    let mut buf = [0; 256];

    let len = notify.recv(&mut buf).expect("READY=1 within WAIT");
    assert_eq!(String::from_utf8_lossy(&buf[..len]), "READY=1");
    // Ready means serving: a client is accepted at once.
    WsClient::connect_unix(&dir.path().join("ws.sock"), &Cookies::fresh("alice"))
        .expect("a handshake right after READY=1");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), Signal::SIGTERM).unwrap();
    let len = notify.recv(&mut buf).expect("STOPPING=1 within WAIT");
    assert_eq!(String::from_utf8_lossy(&buf[..len]), "STOPPING=1");
    assert_eq!(server.wait_exit(), Some(0));
}

// ---------------------------------------------------------------------------------------
// Errors at start

#[test]
fn address_in_use_fails_with_exit_1_naming_the_endpoint_and_leaves_no_files() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap();
    let (dir, config) = quick()
        .set(
            "servers",
            &format!(r#"["unix://ws.sock", "tcp://{address}"]"#),
        )
        .write();
    let run = cli(&config, &["start"]);
    run.expect_code(1).stderr_has(&format!("tcp://{address}"));
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn unix_socket_in_a_missing_folder_fails_naming_the_socket() {
    let (dir, config) = quick()
        .set(
            "servers",
            r#"["tcp://127.0.0.1:0", "unix://missing/ws.sock"]"#,
        )
        .write();
    let run = cli(&config, &["start"]);
    run.expect_code(1)
        .stderr_has(&dir.path().join("missing/ws.sock").display().to_string());
    assert_files_gone(dir.path(), &["wson.pid", "control.sock"]);
}

// ---------------------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_sends_going_away_and_exits_0_once_clients_close() {
    // A close_timeout far above WAIT: exiting within WAIT shows the server left because
    // its clients closed, not because the timeout ran out.
    let mut server = Setup::new().set("close_timeout", "600").start();
    let mut tcp = server.client();
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    server.control().sync();
    server.signal(Signal::SIGTERM);
    for client in [&mut tcp, &mut unix] {
        let frame = client.expect_close(1001);
        assert_eq!(frame.close_reason(), "going away");
    }
    // Stopped accepting: the socket files went before the Close frames.
    assert!(!server.path("ws.sock").exists());
    assert!(!server.path("control.sock").exists());
    for client in [&mut tcp, &mut unix] {
        client.send_close(1001, "");
    }
    assert_eq!(server.wait_exit(), Some(0));
    tcp.expect_end();
    unix.expect_end();
    assert!(server.log_text().contains("clients_left=0"));
    assert_files_gone(server.dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn sigint_sends_going_away_and_exits_0_after_close_timeout_when_clients_stay_silent() {
    let mut server = quick().start();
    let mut client = server.client();
    server.control().sync();
    server.signal(Signal::SIGINT);
    let frame = client.expect_close(1001);
    assert_eq!(frame.close_reason(), "going away");
    // The client never answers; close_timeout (1 s) ends the wait.
    assert_eq!(server.wait_exit(), Some(0));
    client.expect_end();
    assert_files_gone(server.dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn sighup_applies_new_origins_and_log_level_without_dropping_clients() {
    let setup = quick().set("log_level", r#""info""#);
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let before = Cookies::fresh("before");
    let mut old_client = WsClient::connect_tcp(&server.tcp(), &before).unwrap();
    let changed = setup
        .set("origins", r#"["http://example.test"]"#)
        .set("log_level", r#""debug""#);
    fs::write(&path, changed.toml()).unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_for_log("configuration reloaded");

    let mut control = server.control();
    control.send(b'b', b"after reload");
    assert_eq!(old_client.recv_text(), "after reload");

    let after = Cookies::fresh("after");
    let mut new_client = WsClient::raw_tcp(&server.tcp());
    new_client
        .upgrade(&request(
            &server.tcp(),
            &after.header,
            Some("http://example.test"),
            "",
        ))
        .expect("the newly allowed origin is accepted");
    let refused = handshake_with_origin(&server, ORIGIN)
        .err()
        .expect("the old origin is refused");
    assert_eq!(refused.status, 403);

    // debug now applies: the new client's open is logged, the old one's (at info) was not.
    let line = server.wait_for_log("client open");
    assert!(line.contains("user=after"), "{line}");
    assert!(
        !server
            .log_text()
            .lines()
            .any(|l| l.contains("client open") && l.contains("user=before")),
        "debug lines were logged at info level"
    );
    control.send(b'b', b"both");
    assert_eq!(old_client.recv_text(), "both");
    assert_eq!(new_client.recv_text(), "both");
}

#[test]
fn sighup_with_a_broken_config_keeps_serving_the_old_one_and_logs_why() {
    let setup = quick();
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let mut client = server.client();
    let broken = setup
        .set("origins", r#"["http://example.test"]"#)
        .set("ping_interval", r#""soon""#)
        .set("colour", r#""blue""#);
    fs::write(&path, broken.toml()).unwrap();
    server.signal(Signal::SIGHUP);
    let line = server.wait_for_log("reload failed");
    assert!(line.contains(" ERROR "), "{line}");
    for part in [&path.display().to_string(), "ping_interval", "colour"] {
        assert!(line.contains(part), "{line} lacks {part}");
    }

    let mut control = server.control();
    control.send(b'b', b"still serving");
    assert_eq!(client.recv_text(), "still serving");
    // The old origins still hold.
    handshake_with_origin(&server, ORIGIN).expect("the old origin is still allowed");
    let refused = handshake_with_origin(&server, "http://example.test")
        .err()
        .expect("the broken config's origin is not applied");
    assert_eq!(refused.status, 403);
}

#[test]
fn reload_command_applies_a_changed_config_like_sighup() {
    let setup = quick();
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let mut client = server.client();
    let changed = setup.set("origins", r#"["http://example.test"]"#);
    fs::write(&path, changed.toml()).unwrap();
    cli(&path, &["reload"])
        .expect_code(0)
        .stdout_has(&server.pid().to_string());
    server.wait_for_log("configuration reloaded");
    handshake_with_origin(&server, "http://example.test").expect("new origin accepted");
    assert_eq!(
        handshake_with_origin(&server, ORIGIN).err().unwrap().status,
        403
    );
    server.control().send(b'b', b"kept");
    assert_eq!(client.recv_text(), "kept");
}

#[test]
fn reload_command_with_a_short_secret_file_keeps_the_old_secret_and_logs_why() {
    let setup = quick()
        .unset("secret")
        .set("secret_file", r#""secret.txt""#);
    let (dir, path) = setup.write();
    let file = dir.path().join("secret.txt");
    write_private(&file, "the-first-secret-0123456789\n");
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let first = b"the-first-secret-0123456789";
    let mut client = WsClient::connect_tcp(
        &server.tcp(),
        &Cookies::signed("a", now(), first, Digest::Md5),
    )
    .unwrap();
    fs::write(&file, "tiny-sec\n").unwrap();
    // The config itself parses, so the command signals; the server finds the problem.
    cli(&path, &["reload"]).expect_code(0);
    let line = server.wait_for_log("reload failed");
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.contains("secret_file"), "{line}");
    assert!(!line.contains("tiny-sec"), "the secret was logged: {line}");
    WsClient::connect_tcp(
        &server.tcp(),
        &Cookies::signed("b", now(), first, Digest::Md5),
    )
    .expect("the old secret still signs");
    server.control().send(b'b', b"kept");
    assert_eq!(client.recv_text(), "kept");
}

#[test]
fn reload_command_with_a_broken_config_reports_it_and_leaves_the_server_alone() {
    let setup = quick();
    let (dir, path) = setup.write();
    let server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let mut client = server.client();
    fs::write(&path, setup.set("colour", r#""blue""#).toml()).unwrap();
    cli(&path, &["reload"])
        .expect_code(2)
        .stderr_has(&path.display().to_string())
        .stderr_has("colour");
    server.control().send(b'b', b"untouched");
    assert_eq!(client.recv_text(), "untouched");
    handshake_with_origin(&server, ORIGIN).expect("the running config is unchanged");
}

// ---------------------------------------------------------------------------------------
// Exit codes

#[test]
fn usage_errors_exit_2() {
    let run = run_wson(["frobnicate"]);
    run.expect_code(2);
    assert!(!run.stderr.is_empty());
    let (_dir, config) = Setup::new().write();
    let run = cli(&config, &["token"]);
    run.expect_code(2).stderr_has("--user");
    let run = cli(&config, &["start", "--no-such-flag"]);
    run.expect_code(2);
}

#[test]
fn help_exits_0() {
    run_wson(["--help"]).expect_code(0).stdout_has("start");
}

// ---------------------------------------------------------------------------------------
// More start errors, reload corners

#[test]
fn a_regular_file_at_a_socket_path_is_refused_not_deleted() {
    let (dir, config) = quick()
        .set("servers", r#"["tcp://127.0.0.1:0", "unix://notes.txt"]"#)
        .write();
    let file = dir.path().join("notes.txt");
    fs::write(&file, "not a socket").unwrap();
    let run = cli(&config, &["start"]);
    run.expect_code(1).stderr_has(&file.display().to_string());
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a socket");
    assert_files_gone(dir.path(), &["wson.pid", "control.sock"]);
}

#[test]
fn pid_file_in_a_missing_folder_fails_naming_it_and_leaves_no_socket_files() {
    let (dir, config) = quick().set("pid", r#""missing/wson.pid""#).write();
    let run = cli(&config, &["start"]);
    run.expect_code(1)
        .stderr_has(&dir.path().join("missing/wson.pid").display().to_string());
    assert_files_gone(dir.path(), &["ws.sock", "control.sock"]);
}

#[test]
fn daemon_start_error_reaches_the_terminal() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap();
    let (dir, config) = quick()
        .set(
            "servers",
            &format!(r#"["unix://ws.sock", "tcp://{address}"]"#),
        )
        .set("log_file", r#""daemon.log""#)
        .write();
    cli(&config, &["start", "--daemon"])
        .expect_code(1)
        .stderr_has(&format!("tcp://{address}"));
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn daemon_with_an_unopenable_log_file_fails_naming_it_and_leaves_no_files() {
    let (dir, config) = quick().set("log_file", r#""missing/daemon.log""#).write();
    cli(&config, &["start", "--daemon"])
        .expect_code(1)
        .stderr_has(&dir.path().join("missing/daemon.log").display().to_string());
    assert_files_gone(dir.path(), &["wson.pid", "ws.sock", "control.sock"]);
}

#[test]
fn daemon_runs_in_another_session_with_another_parent() {
    let (dir, config) = quick().set("log_file", r#""daemon.log""#).write();
    let run = cli(&config, &["start", "--daemon"]);
    run.expect_code(0);
    let pid = pid_in(&dir.path().join("wson.pid")).expect("a pid file");
    let _guard = Daemon {
        pid,
        log_file: dir.path().join("daemon.log"),
    };
    let stat_fields = |pid: u32| -> Vec<String> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        rest.split_whitespace().map(str::to_string).collect()
    };
    // After the command name: state, ppid, pgrp, session.
    let daemon = stat_fields(u32::try_from(pid).unwrap());
    let ours = stat_fields(std::process::id());
    assert_ne!(daemon[1], run.pid.to_string(), "parent is the CLI");
    assert_ne!(daemon[3], ours[3], "same session as the test");
    cli(&config, &["stop"]).expect_code(0);
    assert!(process_gone(pid));
}

#[test]
fn reload_when_not_running_exits_1() {
    let (_dir, config) = quick().write();
    cli(&config, &["reload"])
        .expect_code(1)
        .stderr_has("not running");
}

#[test]
fn sighup_with_changed_listeners_says_they_need_a_restart() {
    let setup = quick();
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let mut client = server.client();
    let changed = setup.set("servers", r#"["tcp://127.0.0.1:0", "unix://other.sock"]"#);
    fs::write(&path, changed.toml()).unwrap();
    server.signal(Signal::SIGHUP);
    let line = server.wait_for_log("needs a restart");
    assert!(line.contains("servers"), "{line}");
    server.wait_for_log("configuration reloaded");
    assert!(!server.path("other.sock").exists());
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    server.control().send(b'b', b"same listeners");
    assert_eq!(client.recv_text(), "same listeners");
    assert_eq!(unix.recv_text(), "same listeners");
}
