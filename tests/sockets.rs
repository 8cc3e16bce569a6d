//! The listening sockets as the kernel sees them: `listen_backlog` read back from `ss`
//! (iproute2, installed by `tests/install-tools.sh`), and `socket_group` /
//! `control_socket_group` read back from the socket files' owner and mode.
//!
//! For a listening socket, `ss` shows in its Send-Q column the accept queue length the
//! kernel applied (`sk_max_ack_backlog`), for TCP and Unix sockets alike.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Group, Uid, getegid, getgroups};

use crate::common::*;

const SS_HINT: &str = "`ss` (iproute2) is missing: run tests/install-tools.sh";

/// The Send-Q column of the listening socket whose local address is `local` in
/// `ss -H -l {kind}` (`-t -n` for TCP, `-x` for Unix).
fn ss_backlog(kind: &[&str], local: &str) -> u32 {
    let out = Command::new("ss")
        .args(["-H", "-l"])
        .args(kind)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ss ({e}): {SS_HINT}"));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = fields.iter().position(|field| *field == local) {
            // `State Recv-Q Send-Q Local ...`: Send-Q is just before the local address.
            return fields[at - 1].parse().unwrap();
        }
    }
    panic!("no listening socket {local} in `ss -H -l {kind:?}`:\n{text}");
}

/// The accept queue length of one of the server's endpoints (`tcp://...`, `unix://...`).
fn backlog_of(endpoint: &str) -> u32 {
    match endpoint.strip_prefix("tcp://") {
        Some(address) => ss_backlog(&["-t", "-n"], address),
        None => ss_backlog(&["-x"], endpoint.strip_prefix("unix://").unwrap()),
    }
}

fn control_endpoint(server: &Server) -> String {
    match &server.control {
        ControlAddr::Tcp(address) => format!("tcp://{address}"),
        ControlAddr::Unix(path) => format!("unix://{}", path.display()),
        ControlAddr::Tls(address) => format!("tls://{address}"),
    }
}

/// Every `listening` line of the log, as (endpoint, backlog).
fn listening_lines(server: &Server) -> Vec<(String, u32)> {
    server
        .log_text()
        .lines()
        .filter(|line| line.contains(" listening kind="))
        .map(|line| {
            let field = |name: &str| {
                let at = line.find(name).unwrap() + name.len();
                line[at..].split_whitespace().next().unwrap().to_string()
            };
            (field(" endpoint="), field(" backlog=").parse().unwrap())
        })
        .collect()
}

/// Checks every listener of `server` against `expected`, in the log and in the kernel.
fn assert_backlogs(server: &Server, expected: u32) {
    let mut endpoints = server.endpoints.clone();
    endpoints.push(control_endpoint(server));
    let logged = listening_lines(server);
    assert_eq!(logged.len(), endpoints.len(), "{logged:?}");
    for endpoint in &endpoints {
        assert!(
            logged.contains(&(endpoint.clone(), expected)),
            "{endpoint} not logged with backlog={expected}: {logged:?}"
        );
        assert_eq!(backlog_of(endpoint), expected, "accept queue of {endpoint}");
    }
}

fn somaxconn() -> u32 {
    fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn listen_backlog_is_the_accept_queue_of_every_tcp_and_unix_listener() {
    // 77: neither std's 128 nor a kernel default, so only the key can have set it.
    for setup in [Setup::new(), Setup::new().control_tcp()] {
        let server = setup.set("listen_backlog", "77").start();
        assert_backlogs(&server, 77);
    }
}

#[test]
fn listen_backlog_defaults_to_the_kernels_somaxconn() {
    for setup in [Setup::new(), Setup::new().control_tcp()] {
        let server = setup.start();
        assert_backlogs(&server, somaxconn());
    }
}

#[test]
fn listen_backlog_above_somaxconn_is_capped_by_the_kernel_with_a_warning() {
    let cap = somaxconn();
    if cap >= 65_535 {
        return; // Nothing above the cap to ask for.
    }
    let server = Setup::new()
        .set("listen_backlog", &(cap + 1).to_string())
        .start();
    assert_backlogs(&server, cap);
    let log = server.log_text();
    let warning = format!(
        "WARN listen_backlog adjusted by the kernel's cap listen_backlog={} applied={cap} \
         somaxconn={cap}",
        cap + 1
    );
    assert!(log.contains(&warning), "{log}");
}

// --- Socket groups ---------------------------------------------------------------------------

/// Groups this process may give its files to, other than its own: as root Debian's
/// `daemon` and `nogroup`, otherwise its supplementary groups.
fn other_groups() -> Vec<Group> {
    let own = getegid();
    let candidates: Vec<Gid> = if Uid::effective().is_root() {
        ["daemon", "nogroup"]
            .iter()
            .filter_map(|name| Group::from_name(name).unwrap())
            .map(|group| group.gid)
            .collect()
    } else {
        getgroups().unwrap()
    };
    let groups: Vec<Group> = candidates
        .into_iter()
        .filter(|gid| *gid != own)
        .filter_map(|gid| Group::from_gid(gid).unwrap())
        .collect();
    assert!(
        !groups.is_empty(),
        "these tests need root or a supplementary group to give socket files to"
    );
    groups
}

fn owner_and_mode(path: &Path) -> (u32, u32) {
    let metadata = fs::metadata(path).unwrap();
    (metadata.gid(), metadata.permissions().mode() & 0o7777)
}

#[test]
fn socket_groups_are_given_to_the_socket_files_with_their_modes() {
    let groups = other_groups();
    let servers_group = &groups[0];
    let control_group = groups.last().unwrap();
    let server = Setup::new()
        .set("socket_group", &format!("{:?}", servers_group.name))
        .set("socket_mode", "0o660")
        .set("control_socket_group", &format!("{:?}", control_group.name))
        .set("control_socket_mode", "0o660")
        .start();
    assert_eq!(
        owner_and_mode(&server.unix()),
        (servers_group.gid.as_raw(), 0o660)
    );
    let ControlAddr::Unix(control) = &server.control else {
        panic!("a unix control socket");
    };
    assert_eq!(owner_and_mode(control), (control_group.gid.as_raw(), 0o660));
    // And the files still work.
    server.client();
    server.control().sync();
}

#[test]
fn without_socket_groups_the_files_keep_the_servers_group() {
    let server = Setup::new().start();
    assert_eq!(owner_and_mode(&server.unix()), (getegid().as_raw(), 0o666));
    let ControlAddr::Unix(control) = &server.control else {
        panic!("a unix control socket");
    };
    assert_eq!(owner_and_mode(control), (getegid().as_raw(), 0o600));
}

/// `wson ARGS -c CONFIG` to completion (killed after `WAIT`): exit code, stdout, stderr.
fn run(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let folder = config.parent().unwrap();
    let (out, err) = (folder.join("run.out"), folder.join("run.err"));
    let mut child = Command::new(wson_bin())
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
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
    let read = |path| {
        let text = fs::read_to_string(path).unwrap();
        fs::remove_file(path).unwrap();
        text
    };
    (status.code(), read(&out), read(&err))
}

#[test]
fn a_group_that_does_not_exist_fails_start_with_exit_2_naming_key_and_group() {
    let (dir, config) = Setup::new()
        .set("control_socket_group", r#""no-such-group-wson""#)
        .write();
    let expected = format!(
        "wson: {}: control_socket_group: no group named \"no-such-group-wson\"",
        config.display()
    );
    let (code, _, stderr) = run(&config, &["start"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end(), expected);
    // Nothing was bound, so nothing is left: no socket file, no pid file.
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["wson.toml"], "files left behind");
    // `check` sees it too.
    let (code, _, stderr) = run(&config, &["check"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end(), expected);
}

#[test]
fn both_missing_groups_are_reported_at_once() {
    let (_dir, config) = Setup::new()
        .set("socket_group", r#""no-such-group-a""#)
        .set("control_socket_group", r#""no-such-group-b""#)
        .write();
    let (code, _, stderr) = run(&config, &["start"]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].ends_with(r#": socket_group: no group named "no-such-group-a""#));
    assert!(lines[1].ends_with(r#": control_socket_group: no group named "no-such-group-b""#));
}

#[test]
fn a_group_for_tcp_endpoints_only_is_a_warning() {
    // The groups need not exist: with nothing to apply to, they are not looked up.
    let setup = Setup::new()
        .set("servers", r#"["tcp://127.0.0.1:0"]"#)
        .control_tcp()
        .set("socket_group", r#""no-such-group-a""#)
        .set("control_socket_group", r#""no-such-group-b""#);
    let (_dir, config) = setup.write();
    let (code, stdout, stderr) = run(&config, &["check"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("note: socket_group is ignored: every server endpoint is tcp://"),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: control_socket_group is ignored: the control endpoint is tcp://"),
        "{stdout}"
    );
    let server = setup.start();
    let log = server.log_text();
    let warned = |key: &str, reason: &str| {
        log.lines().any(|line| {
            line.contains(" WARN config key ignored: no socket file to apply it to ")
                && logfmt_value(line, "key").as_deref() == Some(key)
                && logfmt_value(line, "reason").is_some_and(|said| said.starts_with(reason))
        })
    };
    assert!(
        warned("socket_group", "every server endpoint is tcp://"),
        "{log}"
    );
    assert!(
        warned("control_socket_group", "the control endpoint is tcp://"),
        "{log}"
    );
    server.client();
}
