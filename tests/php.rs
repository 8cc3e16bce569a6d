//! PHP for the tests that run README's PHP and the demo's backend: the `php` binary
//! (php-cli, installed by `tests/install-tools.sh`), PHP's built-in web server on a free
//! port, and a one-request HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};

use crate::common::WAIT;

/// `php SCRIPT ARGS` to completion, in the script's folder, with extra environment.
pub fn run_script(script: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new("php")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(script.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn php");
    // Bounded: read the output on a thread, kill the script if it outlives WAIT.
    let pid = child.id();
    let (tx, rx) = channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let _ = { stdout }.read_to_end(&mut out);
        let _ = { stderr }.read_to_end(&mut err);
        let _ = tx.send((out, err));
    });
    let (stdout, stderr) = match rx.recv_timeout(WAIT) {
        Ok(output) => output,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "php {} (pid {pid}) did not finish within {WAIT:?}",
                script.display()
            );
        }
    };
    let status = child.wait().unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// `php -S 127.0.0.1:0 ROUTER`: PHP's built-in web server on a port the kernel picks (read
/// from its "started" line), killed on drop; its log is printed when a test fails.
pub struct PhpServer {
    child: Child,
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl PhpServer {
    pub fn start(router: &Path, env: &[(&str, &str)]) -> PhpServer {
        let mut child = Command::new("php")
            .args(["-S", "127.0.0.1:0"])
            .arg(router)
            .envs(env.iter().copied())
            .current_dir(router.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn php -S");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let marker = "Development Server (http://127.0.0.1:";
        let port = loop {
            match lines.recv_timeout(WAIT) {
                Ok(line) => {
                    if let Some(at) = line.find(marker) {
                        let rest = &line[at + marker.len()..];
                        break rest[..rest.find(')').unwrap()].parse().unwrap();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("php -S did not start within {WAIT:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("php -S exited: {:?}", log.lock().unwrap())
                }
            }
        };
        PhpServer { child, port, log }
    }
}

impl Drop for PhpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- php -S log:\n{}", self.log.lock().unwrap().join("\n"));
        }
    }
}

/// An HTTP response: status, headers in order, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The `name=value` of every `Set-Cookie`, as a browser would send them back.
    pub fn cookie_header(&self) -> String {
        self.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, value)| value.split(';').next().unwrap().trim().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The value of the `name` cookie set by this response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_header().split("; ").find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    }
}

/// `GET path` on 127.0.0.1:port, one request per connection. The body ends at its
/// Content-Length when there is one (DevTools keeps the connection open), else at EOF.
pub fn get(port: u16, path: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body_start) = loop {
        if let Some(end) = crate::common::find(&raw, b"\r\n\r\n") {
            break (String::from_utf8_lossy(&raw[..end]).into_owned(), end + 4);
        }
        match stream.read(&mut chunk).unwrap() {
            0 => panic!("no HTTP response head from port {port}: {raw:?}"),
            n => raw.extend_from_slice(&chunk[..n]),
        }
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let length: Option<usize> = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok());
    loop {
        if length.is_some_and(|length| raw.len() >= body_start + length) {
            break;
        }
        match stream.read(&mut chunk).unwrap() {
            0 => break,
            n => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let end = length.map_or(raw.len(), |length| body_start + length);
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw[body_start..end.min(raw.len())]).into_owned(),
    }
}
