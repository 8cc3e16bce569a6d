//! The servers under test: how to start each one pinned to its core, find its addresses,
//! read its CPU time and memory from /proc, and stop it. Crossbar.io (the WAMP peer of
//! issue 11) runs as a controller process and a router worker it spawns: its CPU is the sum
//! over that process tree, and it is stopped with SIGTERM so the controller stops its worker.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::generator::{Proto, SECRET};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Wson,
    Raw,
    Tt,
    NodeWs,
    Uws,
    /// Crossbar.io: a WAMP router only (no control port, no plain WebSocket clients).
    Crossbar,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Wson,
        Kind::Raw,
        Kind::Tt,
        Kind::NodeWs,
        Kind::Uws,
        Kind::Crossbar,
    ];

    /// Serves the plain workloads (a control port, plain WebSocket or raw clients).
    pub fn plain(self) -> bool {
        self != Kind::Crossbar
    }

    /// Serves the WAMP workloads of issue 11.
    pub fn wamp(self) -> bool {
        matches!(self, Kind::Wson | Kind::Crossbar)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Wson => "wson",
            Kind::Raw => "raw",
            Kind::Tt => "tokio-tungstenite",
            Kind::NodeWs => "node-ws",
            Kind::Uws => "uwebsockets",
            Kind::Crossbar => "crossbar",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == text || k.short() == text)
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Wson => "wson",
            Kind::Raw => "raw",
            Kind::Tt => "tt",
            Kind::NodeWs => "ws",
            Kind::Uws => "uws",
            Kind::Crossbar => "xbar",
        }
    }

    pub fn proto(self) -> Proto {
        match self {
            Kind::Raw => Proto::Raw,
            Kind::Wson | Kind::Tt | Kind::NodeWs | Kind::Uws | Kind::Crossbar => Proto::Ws,
        }
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub wson: PathBuf,
    /// Lines appended to wson's config (`--wson-config`), e.g. `listen_backlog = 128`.
    pub wson_config: Vec<String>,
    pub raw: PathBuf,
    pub tt: PathBuf,
    pub peers: PathBuf,
    pub node: String,
    /// The `crossbar` program (in its venv, installed by `lib.sh`).
    pub crossbar: PathBuf,
    /// The `redis-server` program of the cluster workloads (issue 13).
    pub redis_server: String,
    pub work: PathBuf,
}

pub struct Running {
    pub kind: Kind,
    pub pid: i32,
    pub ws: SocketAddr,
    pub control: SocketAddr,
    /// What the ready line said beyond the addresses (uWS: which native module loaded).
    pub note: String,
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
    dir: Option<PathBuf>,
}

const LOG_LINES: usize = 40;
const READY_WAIT: Duration = Duration::from_secs(20);

fn drain<R: Read + Send + 'static>(
    reader: R,
    log: Arc<Mutex<VecDeque<String>>>,
    tx: std::sync::mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut log) = log.lock() {
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line.clone());
            }
            let _ = tx.send(line);
        }
    });
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    line.get(at + marker.len()..)?.split_whitespace().next()
}

/// `ping_interval` as the uWebSockets peer's `idleTimeout` (the other peers never ping):
/// with wson's default of 15 s, 10,000 pings and pongs would land inside a measured phase
/// of wson's session and of no one else's.
fn wson_config(dir: &Path, setup: &Setup, extra: &[String]) -> String {
    let node = setup.cluster.as_ref();
    let port = node.and_then(|node| node.shared_port).unwrap_or(0);
    let mut config = format!(
        "servers = [\"tcp://127.0.0.1:{port}\"]\n\
         control = \"tcp://127.0.0.1:0\"\n\
         pid = \"{}\"\n\
         log_file = \"{}\"\n\
         secret = \"{SECRET}\"\n\
         origins = [\"*\"]\n\
         log_level = \"info\"\n\
         max_connections = {}\n\
         ping_interval = 120\n\
         client_messages = \"{}\"\n",
        dir.join("wson.pid").display(),
        dir.join("wson.log").display(),
        setup.max_connections,
        if setup.echo { "echo" } else { "ignore" },
    );
    if port != 0 {
        // Every node of a shared port sets it (SO_REUSEPORT).
        config.push_str("reuse_port = true\n");
    }
    for line in extra {
        config.push_str(line);
        config.push('\n');
    }
    if let Some(node) = node {
        config.push_str(&format!(
            "[cluster]\nredis = \"{}\"\nnode_id = \"{}\"\nprefix = \"{}\"\n",
            node.redis, node.node_id, node.prefix
        ));
    }
    let router = setup.router;
    if router != Router::Off {
        // Last: every key after `[wamp]` belongs to the table. One session per client, the
        // backend's besides.
        config.push_str(&format!(
            "[wamp]\nrealms = [\"{REALM}\"]\nmax_sessions = {}\n",
            setup.max_connections + 1
        ));
    }
    if router == Router::Wampcra {
        // Only WAMP-CRA (and cookies, which the login clients do not send); the role may do
        // everything, as Crossbar's.
        config.push_str(&format!(
            "\n[wamp.realm.{REALM}]\nauth = [\"wampcra\"]\n\n\
             [[wamp.realm.{REALM}.principal]]\nauthid = \"{LOGIN_AUTHID}\"\n\
             role = \"{LOGIN_ROLE}\"\nsecret = \"{LOGIN_SECRET}\"\n\n\
             [[wamp.realm.{REALM}.role]]\nname = \"{LOGIN_ROLE}\"\n\
             permissions = [{{ uri = \"\", match = \"prefix\", \
             allow = [\"call\", \"register\", \"publish\", \"subscribe\"] }}]\n"
        ));
    }
    config
}

/// The realm of the WAMP workloads, on wson (its default) and Crossbar alike.
pub const REALM: &str = "realm1";
/// The WAMP-CRA principal of the login workload (issue 12), and its role.
pub const LOGIN_AUTHID: &str = "bench";
pub const LOGIN_SECRET: &str = "bench-wampcra-secret-0123456789";
const LOGIN_ROLE: &str = "bench";

/// How a server's WAMP router is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// No WAMP (wson without a `[wamp]` table).
    Off,
    /// `realm1` open to every session: wson's cookie logins, Crossbar's anonymous.
    Open,
    /// `realm1` with WAMP-CRA logins only, one principal (`LOGIN_AUTHID`, `LOGIN_SECRET`).
    Wampcra,
}

/// Crossbar's node config: one router worker with realm1, whose one role may do
/// everything, and one WebSocket transport (json and msgpack) on `port`. The accept queue is
/// as long as wson's (Twisted's default is 50, which a storm of 64 handshakes overflows);
/// no WebSocket pings, as wson's `ping_interval` keeps them out of the measured phases.
/// `Router::Open`: the role is `anonymous`, and the transport has no `auth` (anonymous
/// logins); `Router::Wampcra`: the transport allows WAMP-CRA only, with one static user.
fn crossbar_config(port: u16, router: Router) -> String {
    let role = match router {
        Router::Wampcra => LOGIN_ROLE,
        Router::Off | Router::Open => "anonymous",
    };
    let mut transport = serde_json::json!({
        "type": "websocket",
        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port, "backlog": 4096},
        "serializers": ["json", "msgpack"],
        "options": {"auto_ping_interval": 0, "max_message_size": 1_048_576}
    });
    if router == Router::Wampcra {
        transport["auth"] = serde_json::json!({
            "wampcra": {
                "type": "static",
                "users": {LOGIN_AUTHID: {"secret": LOGIN_SECRET, "role": LOGIN_ROLE}}
            }
        });
    }
    serde_json::json!({
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": REALM,
                "roles": [{
                    "name": role,
                    "permissions": [{
                        "uri": "",
                        "match": "prefix",
                        "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
                        "disclose": {"caller": false, "publisher": false},
                        "cache": true
                    }]
                }]
            }],
            "transports": [transport]
        }]
    })
    .to_string()
}

/// A port free right now on 127.0.0.1 (Crossbar takes its port from the config file, as
/// Redis and the nodes sharing a port do).
pub fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("free port: {e}"))?
        .port())
}

/// How long Crossbar may take to start (Python imports, a controller, then a worker).
const CROSSBAR_READY_WAIT: Duration = Duration::from_secs(90);
/// How long Crossbar may take to stop on SIGTERM before its processes are killed.
const CROSSBAR_STOP_WAIT: Duration = Duration::from_secs(15);

/// How a server is set up beyond its kind.
#[derive(Debug, Clone)]
pub struct Setup {
    /// wson: `client_messages = "echo"` (the echo session); else "ignore".
    pub echo: bool,
    pub max_connections: usize,
    pub router: Router,
    /// wson: a node of a cluster (issue 13).
    pub cluster: Option<ClusterNode>,
}

/// What a wson node of the cluster workloads (issue 13) adds to its config: a `[cluster]`
/// table and, for nodes sharing one port, `reuse_port`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// `[cluster] redis`, a URL.
    pub redis: String,
    /// `[cluster] node_id`; also names the node's directory.
    pub node_id: String,
    /// `[cluster] prefix`: the Redis channel is `PREFIX:all`.
    pub prefix: String,
    /// The WebSocket port the nodes share (`reuse_port = true`); None: a free one of its
    /// own.
    pub shared_port: Option<u16>,
}

/// Starts `kind` pinned to `core` and waits until it listens.
pub fn start(
    kind: Kind,
    paths: &Paths,
    core: usize,
    echo: bool,
    max_connections: usize,
    session: u32,
) -> Result<Running, String> {
    let setup = Setup {
        echo,
        max_connections,
        router: Router::Off,
        cluster: None,
    };
    start_with(kind, paths, core, session, &setup)
}

/// `start`, set up as `setup` says (wson: a `[wamp]` table for `max_connections` sessions
/// when it has a router, a `[cluster]` table for a node).
pub fn start_with(
    kind: Kind,
    paths: &Paths,
    core: usize,
    session: u32,
    setup: &Setup,
) -> Result<Running, String> {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(core.to_string());
    let mut dir = None;
    let mut ws_port = None;
    match kind {
        Kind::Wson => {
            // Nodes of one session apart: each its own pid file.
            let node = setup
                .cluster
                .as_ref()
                .map(|node| format!("-{}", node.node_id))
                .unwrap_or_default();
            let path = paths
                .work
                .join(format!("wson-{}-{session}{node}", std::process::id()));
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let config = path.join("wson.toml");
            std::fs::write(&config, wson_config(&path, setup, &paths.wson_config))
                .map_err(|e| format!("{}: {e}", config.display()))?;
            command.arg(&paths.wson).arg("start").arg("-c").arg(&config);
            dir = Some(path);
        }
        Kind::Raw => {
            command.arg(&paths.raw);
        }
        Kind::Tt => {
            command.arg(&paths.tt).arg("--secret").arg(SECRET);
        }
        Kind::NodeWs | Kind::Uws => {
            let script = if kind == Kind::NodeWs {
                "ws-server.js"
            } else {
                "uws-server.js"
            };
            command
                .arg(&paths.node)
                .arg(paths.peers.join(script))
                .arg("--secret")
                .arg(SECRET);
        }
        Kind::Crossbar => {
            if !paths.crossbar.exists() {
                return Err(format!(
                    "{}: not installed (bench/run.sh installs it)",
                    paths.crossbar.display()
                ));
            }
            let path = paths
                .work
                .join(format!("crossbar-{}-{session}", std::process::id()));
            let cbdir = path.join(".crossbar");
            std::fs::create_dir_all(&cbdir).map_err(|e| format!("{}: {e}", cbdir.display()))?;
            let port = free_port()?;
            let config = cbdir.join("config.json");
            std::fs::write(&config, crossbar_config(port, setup.router))
                .map_err(|e| format!("{}: {e}", config.display()))?;
            command
                .arg(&paths.crossbar)
                .arg("start")
                .arg("--cbdir")
                .arg(&cbdir)
                .arg("--loglevel")
                .arg("warn")
                .current_dir(&path)
                // Python's output unbuffered, so a failure shows its last lines.
                .env("PYTHONUNBUFFERED", "1");
            dir = Some(path);
            ws_port = Some(port);
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: spawn: {e}", kind.name()))?;
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, rx) = channel();
    if let Some(out) = child.stdout.take() {
        drain(out, Arc::clone(&log), tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        drain(err, Arc::clone(&log), tx);
    }
    let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut running = Running {
        kind,
        pid,
        ws: SocketAddr::from(([0, 0, 0, 0], 0)),
        control: SocketAddr::from(([0, 0, 0, 0], 0)),
        note: String::new(),
        child,
        log,
        dir,
    };
    match ws_port {
        Some(port) => wait_port(&mut running, port)?,
        None => wait_ready(&mut running, &rx)?,
    }
    Ok(running)
}

/// Waits until Crossbar accepts connections on `port` (its log says little at `warn`).
fn wait_port(running: &mut Running, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + CROSSBAR_READY_WAIT;
    while Instant::now() < deadline {
        if !running.alive() {
            return Err(format!(
                "{} exited during startup; its output:\n{}",
                running.kind.name(),
                running.log_text()
            ));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            running.ws = addr;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not listen on {addr} within {CROSSBAR_READY_WAIT:?}; its output:\n{}",
        running.kind.name(),
        running.log_text()
    ))
}

fn wait_ready(running: &mut Running, rx: &Receiver<String>) -> Result<(), String> {
    let deadline = Instant::now() + READY_WAIT;
    let mut ws = None;
    let mut control = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).map_err(|_| {
            format!(
                "{} did not become ready within {READY_WAIT:?}; its output:\n{}",
                running.kind.name(),
                running.log_text()
            )
        })?;
        let addr = |text: Option<&str>| -> Option<SocketAddr> {
            text?.trim_start_matches("tcp://").parse().ok()
        };
        match running.kind {
            Kind::Wson => {
                if line.contains("listening kind=websocket") {
                    ws = addr(after(&line, "endpoint="));
                } else if line.contains("listening kind=control") {
                    control = addr(after(&line, "endpoint="));
                } else if line.contains(" started pid=") {
                    break;
                }
            }
            Kind::Raw | Kind::Tt | Kind::NodeWs | Kind::Uws | Kind::Crossbar => {
                if line.starts_with("listening ") {
                    ws = addr(after(&line, "ws="));
                    control = addr(after(&line, "control="));
                    running.note = after(&line, "native=").unwrap_or_default().to_string();
                    break;
                }
            }
        }
    }
    match (ws, control) {
        (Some(ws), Some(control)) => {
            running.ws = ws;
            running.control = control;
            Ok(())
        }
        _ => Err(format!(
            "{}: no addresses in its output:\n{}",
            running.kind.name(),
            running.log_text()
        )),
    }
}

impl Running {
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// The server's processes: itself and, for Crossbar, every process below it (the
    /// router worker the controller spawned).
    fn processes(&self) -> Vec<i32> {
        match self.kind {
            Kind::Crossbar => process_tree(self.pid),
            _ => vec![self.pid],
        }
    }

    /// utime + stime of every thread of every process, in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        self.processes().into_iter().map(cpu_ticks).sum()
    }

    /// Nanoseconds on CPU of every thread of every process (the scheduler's exact
    /// utime + stime).
    pub fn cpu_ns(&self) -> Option<u64> {
        self.processes().into_iter().map(cpu_ns).sum()
    }

    /// The pid whose `/proc/PID/io` and status tell about the server's work: for Crossbar,
    /// the router worker (the controller only supervises).
    pub fn worker_pid(&self) -> i32 {
        match self.kind {
            Kind::Crossbar => process_tree(self.pid).last().copied().unwrap_or(self.pid),
            _ => self.pid,
        }
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Sets one top-level key of wson's config file to `value` (TOML) and has wson reload
    /// it (SIGHUP); returns once wson logs the reload.
    pub fn reload_wson(&mut self, key: &str, value: &str) -> Result<(), String> {
        const DONE: &str = "configuration reloaded";
        let Some(dir) = &self.dir else {
            return Err(format!("{}: no config file to reload", self.kind.name()));
        };
        let path = dir.join("wson.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let prefix = format!("{key} = ");
        let text: String = text
            .lines()
            .map(|line| match line.starts_with(&prefix) {
                true => format!("{prefix}{value}\n"),
                false => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        let reloads = |log: &str| log.matches(DONE).count();
        let before = reloads(&self.log_text());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .map_err(|e| format!("SIGHUP: {e}"))?;
        let deadline = Instant::now() + READY_WAIT;
        while Instant::now() < deadline {
            let log = self.log_text();
            if log.contains("reload failed") {
                return Err(format!("wson did not reload:\n{log}"));
            }
            if reloads(&log) > before {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "wson did not log a reload within {READY_WAIT:?}:\n{}",
            self.log_text()
        ))
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if self.kind == Kind::Crossbar {
            self.stop_tree();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Running {
    /// SIGTERM to Crossbar's controller, which stops its worker and exits; whatever of the
    /// tree is still there after `CROSSBAR_STOP_WAIT` gets SIGKILL, by pid.
    fn stop_tree(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let tree = process_tree(self.pid);
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let deadline = Instant::now() + CROSSBAR_STOP_WAIT;
        let gone = |pid: &i32| kill(Pid::from_raw(*pid), None).is_err() || zombie(*pid);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait()
                && tree.iter().all(gone)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in tree.iter().rev() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

/// True when `pid` has exited and waits to be reaped.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.get(stat.rfind(')')? + 1..)?;
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// `pid` and every process below it, parents before children: from the parent field of
/// each `/proc/PID/stat`.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let parent = stat
                .rfind(')')
                .and_then(|at| stat.get(at + 1..))
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(parent) = parent {
                parents.push((child, parent));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let at = tree[i];
        tree.extend(parents.iter().filter(|(_, p)| *p == at).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Context switches of every thread of the process, voluntary (it waited) and not (it was
/// preempted): from `/proc/PID/task/TID/status`.
pub fn context_switches(pid: i32) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(entry.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            let count = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
            if let Some(count) = count {
                total += count.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// Sum over the process's threads of the first field of `/proc/PID/task/TID/schedstat`:
/// time on CPU in nanoseconds, the same quantity as utime + stime without the tick rounding.
pub fn cpu_ns(pid: i32) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// The kernel's `TcpExt: ListenOverflows` counter from `/proc/net/netstat`: SYNs or
/// handshake completions dropped because a listener's accept queue was full. It counts
/// for every listener in the network namespace (the whole machine here), not one server.
pub fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    // Two lines per group: "TcpExt: Name1 Name2 ..." then "TcpExt: value1 value2 ...".
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "ListenOverflows")?
        .1
        .parse()
        .ok()
}

/// Clock ticks per second (USER_HZ).
pub fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}
