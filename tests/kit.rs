//! The deployment kit, checked as files: `conf/wson.service` (and `systemd-analyze verify`
//! when the host has it), the Dockerfile with `.dockerignore` and `conf/docker.toml`. Each
//! check that needs a tool says so on stderr and passes when the tool is missing, so the
//! rest still runs everywhere. The image itself is built by `.ci/run` where Docker runs.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The Dockerfile's instructions: continuation lines joined, comments and blank lines out.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = repository_file("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (word, rest) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((word.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

/// Without a Docker daemon the image is not built here (`.ci/run` builds it where there is
/// one); these are the properties a build would not check anyway.
#[test]
fn dockerfile_is_multi_stage_non_root_with_volumes_and_no_remote_add() {
    let instructions = dockerfile_instructions();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(word, _)| word == "FROM")
        .map(|(_, rest)| rest)
        .collect();
    assert!(froms.len() >= 2, "one build stage and one runtime stage");
    assert!(
        froms.iter().all(|from| from.contains(" AS ")),
        "every stage named: {froms:?}"
    );
    assert!(froms[0].starts_with("rust:"), "{}", froms[0]);
    assert!(froms.last().unwrap().starts_with("debian:"));
    let runtime_stage = instructions
        .iter()
        .rposition(|(word, _)| word == "FROM")
        .unwrap();
    let runtime = &instructions[runtime_stage..];
    let has = |word: &str, value: &str| {
        runtime
            .iter()
            .any(|(w, rest)| w == word && rest.contains(value))
    };
    let user = runtime
        .iter()
        .rev()
        .find(|(word, _)| word == "USER")
        .map(|(_, rest)| rest.clone())
        .expect("the runtime stage sets USER");
    let user_name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&user_name),
        "runs as root: USER {user}"
    );
    assert!(has("VOLUME", "/run/wson"));
    assert!(has("COPY", "--from=builder"));
    assert!(has("COPY", "conf/docker.toml /etc/wson/wson.toml"));
    assert!(has("CMD", "/etc/wson/wson.toml"));
    // The exposed port is the one the image's config listens on.
    let config = repository_file("conf/docker.toml");
    let exposed = runtime
        .iter()
        .find(|(word, _)| word == "EXPOSE")
        .map(|(_, rest)| rest.clone())
        .expect("EXPOSE");
    assert!(
        config.contains(&format!("tcp://0.0.0.0:{exposed}")),
        "{exposed}"
    );
    for (word, rest) in &instructions {
        assert!(
            !(word == "ADD" && (rest.contains("http://") || rest.contains("https://"))),
            "ADD of a remote URL: {rest}"
        );
    }
}

#[test]
fn dockerignore_lets_in_every_file_the_dockerfile_copies() {
    let ignore = repository_file(".dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|line| line.trim().strip_prefix('!'))
        .map(|path| path.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|line| line.trim() == "*"),
        "everything else stays out"
    );
    for (word, rest) in dockerfile_instructions() {
        if word != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let [sources @ .., _destination] = parts.as_slice() else {
            panic!("COPY {rest}");
        };
        for source in sources {
            let source = source.trim_end_matches('/');
            assert!(
                allowed.contains(&source),
                "{source} is left out by .dockerignore"
            );
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(source);
            assert!(path.exists(), "COPY {source}: no such file");
        }
    }
}

#[test]
fn docker_config_passes_wson_check() {
    let output = Command::new(wson_bin())
        .arg("check")
        .arg("-c")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/docker.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process killed and reaped on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A wss:// client in Python's standard library: connects from `source`, sends a WebSocket
/// upgrade, prints the status line, then the body of a refusal on one line ('|' for its
/// line ends) or, on 101, the payload of each short unmasked text frame, one per line.
const WSS_CLIENT: &str = r#"
import socket, ssl, sys
port, source, origin, cookie = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
conn = context.wrap_socket(raw, server_hostname="example.com")
conn.sendall((
    "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n").encode())
data = b""
while b"\r\n\r\n" not in data:
    chunk = conn.recv(4096)
    if not chunk:
        break
    data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode(), flush=True)
if b" 101 " not in head.split(b"\r\n")[0]:
    # nginx keeps the connection for another request: read by Content-Length, not to EOF.
    fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
    length = int(next(v for n, v in fields if n.strip().lower() == b"content-length"))
    while len(rest) < length:
        rest += conn.recv(4096)
    print(rest.decode().strip().replace("\n", "|"), flush=True)
    sys.exit(0)
while True:
    while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
        chunk = conn.recv(4096)
        if not chunk:
            sys.exit(0)
        rest += chunk
    length = rest[1] & 0x7F
    if rest[0] & 0x0F == 1:
        print(rest[2:2 + length].decode(), flush=True)
    rest = rest[2 + length:]
"#;

/// wss:// through nginx with `examples/nginx/wson.conf` as written (only the socket, port
/// and certificate paths changed) to wson's Unix listener, which reads the browser's
/// address from X-Forwarded-For as a trusted proxy's.
#[test]
fn nginx_example_proxies_wss_to_the_unix_listener_with_the_client_address() {
    if !have("nginx", "the nginx example")
        || !have("openssl", "the nginx example")
        || !have("python3", "the nginx example")
    {
        return;
    }
    let server = Setup::new()
        .set("origins", r#"["https://example.com"]"#)
        .set("access.trusted_proxies", r#"["unix"]"#)
        .set("access.blocked", r#"["127.0.0.2"]"#)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    let generated = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=example.com", "-keyout"])
        .arg(folder.join("key.pem"))
        .arg("-out")
        .arg(folder.join("cert.pem"))
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let mut site = repository_file("examples/nginx/wson.conf");
    for (from, to) in [
        (
            "unix:/run/wson/wson.sock".to_string(),
            format!("unix:{}", server.unix().display()),
        ),
        (
            "listen 443 ssl;".to_string(),
            format!("listen 127.0.0.1:{port} ssl;"),
        ),
        ("listen [::]:443 ssl;".to_string(), String::new()),
        (
            "/etc/letsencrypt/live/example.com/fullchain.pem".to_string(),
            folder.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/example.com/privkey.pem".to_string(),
            folder.join("key.pem").display().to_string(),
        ),
    ] {
        assert!(
            site.contains(&from),
            "examples/nginx/wson.conf lacks {from}"
        );
        site = site.replace(&from, &to);
    }
    fs::write(folder.join("wson.conf"), site).unwrap();
    let path = |name: &str| folder.join(name).display().to_string();
    // One process (no workers switching user), everything in the temp folder.
    let main = format!(
        "daemon off;\nmaster_process off;\npid {};\nerror_log {} info;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {};\n  proxy_temp_path {};\n  \
         fastcgi_temp_path {};\n  uwsgi_temp_path {};\n  scgi_temp_path {};\n  include {};\n}}\n",
        path("nginx.pid"),
        path("error.log"),
        path("body"),
        path("proxy"),
        path("fastcgi"),
        path("uwsgi"),
        path("scgi"),
        path("wson.conf"),
    );
    fs::write(folder.join("nginx.conf"), main).unwrap();
    let nginx = |extra: &[&str]| {
        let mut command = Command::new("nginx");
        command
            .args(["-p", &path(""), "-c", &path("nginx.conf")])
            .args(["-e", &path("error.log")])
            .args(extra);
        command
    };
    let tested = nginx(&["-t"]).output().unwrap();
    assert!(
        tested.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let _nginx = Reaped(
        nginx(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen: {}",
            fs::read_to_string(folder.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let client = |source: &str, user: &str| {
        let mut child = Command::new("python3")
            .args(["-c", WSS_CLIENT, &port.to_string(), source])
            .args(["https://example.com", &Cookies::fresh(user).header])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (Reaped(child), lines)
    };
    let (_alice, mut alice) = client("127.0.0.1", "alice");
    let status = alice.next().unwrap().unwrap();
    assert!(status.contains(" 101 "), "{status}");
    server.control().send(b'b', b"through nginx");
    assert_eq!(alice.next().unwrap().unwrap(), "through nginx");

    // nginx appends the client's address; wson trusts the Unix peer and judges that one.
    let (_blocked, mut blocked) = client("127.0.0.2", "mallory");
    let status = blocked.next().unwrap().unwrap();
    assert!(status.contains(" 403 "), "{status}");
    assert_eq!(
        blocked.next().unwrap().unwrap(),
        "403 Forbidden|blocked address"
    );
}
