//! WAMP test support: wson configured as a WAMP router, Crossbar.io (the reference router of
//! `tests/wamp_parity.rs`) started once per test process, and the scenario scripts of
//! `tests/clients/wamp/` run against either.
//!
//! Crossbar.io runs from `tests/clients/.crossbar-venv` (installed by `tests/install-tools.sh`)
//! on a free port, one realm per scenario so that the tests sharing it stay independent:
//! anonymous auth (authrole "user", allowed everything) for the router scenarios, and for the
//! `auth_*` ones the ticket, WAMP-CRA and WAMP-Cryptosign principals of `AUTH_PRINCIPALS` and
//! the roles of `auth_roles`, given to wson as the same `[wamp.realm.NAME]` tables. It is
//! started by a small shell that holds the read end of a pipe from the test process: when the
//! test process ends, for whatever reason, the pipe closes and the shell stops Crossbar and
//! removes its folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// The users whose cookies the scenarios' sessions A, B, C, D send (wson: their authids).
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// The Cookie headers of sessions A, B, C, D, as the JSON list the scripts take.
pub fn cookie_list() -> String {
    let headers: Vec<String> = USERS
        .iter()
        .map(|user| Cookies::fresh(user).header)
        .collect();
    serde_json::to_string(&headers).unwrap()
}

/// wson with WAMP on `realms` (the first is the backend realm) and `extra` config keys.
pub fn wson_wamp(realms: &[&str], extra: &[(&str, &str)]) -> Server {
    let realms = serde_json::to_string(realms).unwrap();
    let mut setup = Setup::new().set("wamp.realms", &realms);
    for (key, value) in extra {
        setup = setup.set(key, value);
    }
    setup.start()
}

pub fn wson_url(server: &Server) -> String {
    format!("ws://{}/", server.tcp())
}

/// The Python that runs the WAMP scripts (the clients' venv, which has autobahn).
pub fn wamp_python() -> Option<PathBuf> {
    python()
}

/// Runs `script` (in `tests/clients/wamp/`) with `args` and returns the one JSON document it
/// prints. A script that says more or less, or fails, fails the test with its stderr.
pub fn run_script(program: &Path, script: &str, args: &[&str]) -> Value {
    let mut child = Script::spawn(program, &format!("wamp/{script}"), args);
    let document = child.next();
    child.finish();
    document
}

/// Runs one Python scenario against `url` in `realm` and returns what it observed.
pub fn py_scenario(url: &str, realm: &str, scenario: &str) -> Value {
    py_scenario_with(url, url, realm, scenario)
}

/// `py_scenario`, with logins to the realm's dynamic authenticator going to `dynamic_url`.
pub fn py_scenario_with(url: &str, dynamic_url: &str, realm: &str, scenario: &str) -> Value {
    let python = wamp_python().expect("python clients installed");
    let cookies = cookie_list();
    let document = run_script(
        &python,
        "py_scenarios.py",
        &[url, realm, scenario, &cookies, dynamic_url],
    );
    assert_eq!(document["scenario"], scenario, "{document}");
    document["observed"].clone()
}

/// The names of the Python scenarios (`py_scenarios.py --list`).
pub fn py_scenario_names() -> Vec<String> {
    let python = wamp_python().expect("python clients installed");
    let out = Command::new(python)
        .arg(clients_dir().join("wamp/py_scenarios.py"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

// --- The auth_* realms: one logical configuration for both routers ------------------------

/// Whether `realm` is one of the parity scenarios' auth realms (logins and roles).
pub fn is_auth_realm(realm: &str) -> bool {
    realm.starts_with("auth_")
}

/// The principals of the auth realms: (authid, role, ticket, WAMP-CRA secret and salting, or
/// WAMP-Cryptosign keys). Ticket principals are named after their roles; boss is the trusted
/// backend.
const AUTH_PRINCIPALS: &[(&str, &str, Login)] = &[
    ("boss", "boss", Login::Ticket("boss-ticket")),
    ("worker", "worker", Login::Ticket("worker-ticket")),
    ("nothing", "nothing", Login::Ticket("nothing-ticket")),
    ("picky", "picky", Login::Ticket("picky-ticket")),
    ("watcher", "watcher", Login::Ticket("watcher-ticket")),
    ("peter", "worker", Login::Cra("peter-secret", None)),
    (
        "salty",
        "worker",
        Login::Cra("salty-secret", Some(("pepper", 100, 16))),
    ),
    ("cora", "worker", Login::Cryptosign(&[CRYPTOSIGN_KEYS[0]])),
    ("cody", "worker", Login::Cryptosign(&[CRYPTOSIGN_KEYS[1]])),
];

/// Ed25519 public keys (hex) of the private keys of the WAMP spec's cryptosign test vectors,
/// which `tests/clients/wamp/py_scenarios.py` signs with (`CRYPTOSIGN_PRIVATE`).
const CRYPTOSIGN_KEYS: [&str; 3] = [
    "1adfc8bfe1d35616e64dffbd900096f23b066f914c8c2ffbb66f6075b96e116d",
    "6ed32739ff04a6074044ff0b0e3bfc7c856bc9d5f1d25efc57363bda0af3a8b0",
    "28e11f427b82b9a625ee7ac89a7d29326b505f2dc11dd88c1245f83b6da79a85",
];

enum Login {
    Ticket(&'static str),
    /// A secret, salted with (salt, iterations, keylen).
    Cra(&'static str, Option<(&'static str, u32, u32)>),
    /// Authorized public keys.
    Cryptosign(&'static [&'static str]),
}

/// A permission: uri, match, allowed actions.
type Permission = (&'static str, &'static str, Vec<&'static str>);

/// The roles of the auth realms: name and permissions.
fn auth_roles() -> Vec<(&'static str, Vec<Permission>)> {
    let all = vec!["call", "register", "publish", "subscribe"];
    vec![
        ("boss", vec![("", "prefix", all.clone())]),
        (
            "worker",
            vec![
                ("com.auth.open.", "prefix", all.clone()),
                ("com.auth.read", "exact", vec!["subscribe", "call"]),
            ],
        ),
        ("nothing", vec![]),
        (
            "picky",
            vec![
                ("com.prec.", "prefix", vec!["subscribe"]),
                ("com.prec.a.", "prefix", vec!["publish"]),
                ("com.prec..x", "wildcard", vec!["register"]),
                ("com.prec.a.x", "exact", vec!["call"]),
                ("com.prec.c", "exact", vec!["call"]),
            ],
        ),
        (
            "watcher",
            vec![
                ("wamp.session.count", "exact", vec!["call"]),
                ("wamp.session.get", "exact", vec!["call"]),
                ("wamp.session.", "prefix", vec!["subscribe"]),
            ],
        ),
    ]
}

/// The role whose actions the boss's procedure decides, and that procedure.
const DYNAMIC_ROLE: (&str, &str) = ("dynamic", "com.dyn.authorize");
/// The dynamic authenticator of realm `auth_dynamic`, a procedure of the boss.
const DYNAMIC_AUTHENTICATOR: &str = "com.dyn.authenticate";

/// Crossbar's roles of an auth realm.
fn crossbar_auth_roles() -> Value {
    let roles: Vec<Value> = auth_roles()
        .into_iter()
        .map(|(name, permissions)| {
            let permissions: Vec<Value> = permissions
                .into_iter()
                .map(|(uri, matching, allow)| {
                    let allowed = |action: &str| allow.contains(&action);
                    json!({
                        "uri": uri, "match": matching,
                        "allow": {"call": allowed("call"), "register": allowed("register"),
                                  "publish": allowed("publish"),
                                  "subscribe": allowed("subscribe")},
                        "disclose": {"caller": false, "publisher": false},
                        "cache": true
                    })
                })
                .collect();
            json!({"name": name, "permissions": permissions})
        })
        .chain([json!({"name": DYNAMIC_ROLE.0, "authorizer": DYNAMIC_ROLE.1})])
        .collect();
    Value::Array(roles)
}

/// Crossbar's auth of the second transport: every method asking the dynamic authenticator
/// (Crossbar configures an authenticator per transport and method; wson per realm).
fn crossbar_dynamic_auth() -> Value {
    let dynamic = json!({"type": "dynamic", "authenticator": DYNAMIC_AUTHENTICATOR});
    json!({"ticket": dynamic, "wampcra": dynamic, "cryptosign": dynamic})
}

/// Crossbar's transport auth: anonymous (role user) for the other realms, and the static
/// ticket, WAMP-CRA and WAMP-Cryptosign principals (any realm; only the auth realms define
/// their roles).
fn crossbar_transport_auth() -> Value {
    let mut tickets = serde_json::Map::new();
    let mut users = serde_json::Map::new();
    let mut keyholders = serde_json::Map::new();
    for (authid, role, login) in AUTH_PRINCIPALS {
        match login {
            Login::Ticket(ticket) => {
                tickets.insert(authid.to_string(), json!({"ticket": ticket, "role": role}));
            }
            Login::Cra(secret, salting) => {
                let mut user = json!({"secret": secret, "role": role});
                if let Some((salt, iterations, keylen)) = salting {
                    user["salt"] = json!(salt);
                    user["iterations"] = json!(iterations);
                    user["keylen"] = json!(keylen);
                }
                users.insert(authid.to_string(), user);
            }
            Login::Cryptosign(keys) => {
                keyholders.insert(
                    authid.to_string(),
                    json!({"authorized_keys": keys, "role": role}),
                );
            }
        }
    }
    json!({
        "anonymous": {"type": "static", "role": "user"},
        "ticket": {"type": "static", "principals": tickets},
        "wampcra": {"type": "static", "users": users},
        "cryptosign": {"type": "static", "principals": keyholders}
    })
}

/// wson's `[wamp.realm.REALM]` keys for an auth realm, the same logical configuration.
pub fn wson_auth_keys(realm: &str) -> Vec<(String, String)> {
    let toml = |value: Value| toml::Value::try_from(value).unwrap().to_string();
    let principals: Vec<Value> = AUTH_PRINCIPALS
        .iter()
        .map(|(authid, role, login)| match login {
            Login::Ticket(ticket) => json!({"authid": authid, "role": role, "ticket": ticket}),
            Login::Cra(secret, salting) => {
                let mut principal = json!({"authid": authid, "role": role, "secret": secret});
                if let Some((salt, iterations, keylen)) = salting {
                    principal["salt"] = json!(salt);
                    principal["iterations"] = json!(iterations);
                    principal["keylen"] = json!(keylen);
                }
                principal
            }
            Login::Cryptosign(keys) => {
                json!({"authid": authid, "role": role, "authorized_keys": keys})
            }
        })
        .collect();
    let roles: Vec<Value> = auth_roles()
        .into_iter()
        .map(|(name, permissions)| {
            let permissions: Vec<Value> = permissions
                .into_iter()
                .map(
                    |(uri, matching, allow)| json!({"uri": uri, "match": matching, "allow": allow}),
                )
                .collect();
            json!({"name": name, "permissions": permissions})
        })
        .chain([json!({"name": DYNAMIC_ROLE.0, "authorizer": DYNAMIC_ROLE.1})])
        .collect();
    let key = |name: &str| format!("wamp.realm.{realm}.{name}");
    let mut keys = vec![
        (
            key("auth"),
            toml(json!(["ticket", "wampcra", "cryptosign"])),
        ),
        (key("principal"), toml(Value::Array(principals))),
        (key("role"), toml(Value::Array(roles))),
    ];
    if realm == "auth_dynamic" {
        keys.push((key("authenticator"), toml(json!(DYNAMIC_AUTHENTICATOR))));
    }
    keys
}

// --- Crossbar.io ---------------------------------------------------------------------------

/// A running Crossbar.io node: its WebSocket URL (realms: `realm1` and one per name given to
/// `crossbar`).
pub struct Crossbar {
    pub url: String,
    /// The transport whose logins ask the dynamic authenticator.
    pub dynamic_url: String,
    pub dir: PathBuf,
    /// Held, never written: the shell stops Crossbar when this closes (at process exit).
    _lifeline: Mutex<ChildStdin>,
    _shell: Mutex<Child>,
}

impl Crossbar {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("crossbar.log")).unwrap_or_default()
    }
}

static CROSSBAR: OnceLock<Result<Crossbar, String>> = OnceLock::new();

pub fn crossbar_bin() -> Option<PathBuf> {
    let bin = clients_dir().join(".crossbar-venv/bin/crossbar");
    require(
        &bin,
        Some((
            ".crossbar-venv/requirements.sha256",
            "requirements-crossbar.txt",
        )),
    )
    .then_some(bin)
}

/// The shared Crossbar.io node, started on first use with one realm per name in `realms`
/// (every caller must pass the same list) plus `realm1`. Realm `disclose_me` discloses
/// callers and publishers: Crossbar ignores the disclose_me option and discloses by role.
pub fn crossbar(realms: &[String]) -> &'static Crossbar {
    let started = CROSSBAR.get_or_init(|| start_crossbar(realms));
    match started {
        Ok(crossbar) => crossbar,
        Err(problem) => panic!("Crossbar.io did not start: {problem}"),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn crossbar_config(port: u16, dynamic_port: u16, realms: &[String]) -> Value {
    let role = |disclose: bool| {
        json!([{
            "name": "user",
            "permissions": [{
                "uri": "", "match": "prefix",
                "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
                "disclose": {"caller": disclose, "publisher": disclose},
                "cache": true
            }]
        }])
    };
    let mut names = vec!["realm1".to_string()];
    names.extend(realms.iter().cloned());
    let realms: Vec<Value> = names
        .iter()
        .map(|name| {
            let roles = if is_auth_realm(name) {
                crossbar_auth_roles()
            } else {
                role(name == "disclose_me")
            };
            json!({"name": name, "roles": roles})
        })
        .collect();
    json!({
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": realms,
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "serializers": ["json", "msgpack", "cbor"],
                "auth": crossbar_transport_auth()
            }, {
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": dynamic_port, "interface": "127.0.0.1"},
                "serializers": ["json"],
                "auth": crossbar_dynamic_auth()
            }]
        }]
    })
}

fn start_crossbar(realms: &[String]) -> Result<Crossbar, String> {
    let bin = crossbar_bin().ok_or("crossbar is not installed")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
    let port = free_port();
    let dynamic_port = free_port();
    let config = crossbar_config(port, dynamic_port, realms);
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    // `read` returns when the test process's end of the pipe closes; then Crossbar gets
    // SIGTERM (it stops its router worker itself) and the folder goes.
    let shell = r#"
        "$0" start --cbdir "$1" --loglevel warn >"$1/crossbar.log" 2>&1 &
        pid=$!
        read -r _
        kill -TERM "$pid" 2>/dev/null
        wait "$pid"
        rm -rf "$1"
    "#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(shell)
        .arg(&bin)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let lifeline = child.stdin.take().ok_or("no stdin")?;
    let crossbar = Crossbar {
        url: format!("ws://127.0.0.1:{port}/"),
        dynamic_url: format!("ws://127.0.0.1:{dynamic_port}/"),
        dir,
        _lifeline: Mutex::new(lifeline),
        _shell: Mutex::new(child),
    };
    // Crossbar takes a few seconds to boot. It logs at warn level only (at info it logs
    // every session, which slows it down), so readiness is its transport accepting: the
    // transport starts after the realms.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listening = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if listening(port) && listening(dynamic_port) {
            return Ok(crossbar);
        }
        let log = crossbar.log_text();
        let exited = crossbar._shell.lock().unwrap().try_wait().ok().flatten();
        if exited.is_some() || log.contains("Traceback") || Instant::now() > deadline {
            return Err(format!(
                "its transport did not listen on {port}; its log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Crossbar {
    fn drop(&mut self) {
        if let Ok(mut lifeline) = self._lifeline.lock() {
            let _ = lifeline.write_all(b"\n");
        }
    }
}

/// A WebSocket upgraded to WAMP v1 (the subprotocol `wamp`, among `protocols`) with
/// `cookie_header`; fails unless the 101 chose `wamp`. The server's WELCOME is still unread.
pub fn v1_upgrade(server: &Server, cookie_header: &str, protocols: &str) -> WsClient {
    let ws = WsClient::accepted_offering(server, cookie_header, protocols);
    assert_eq!(ws.chosen_protocol(), Some("wamp"));
    ws
}

// --- Raw WAMP over the test's own WebSocket client -----------------------------------------

/// A WAMP session by hand over `WsClient` (JSON), for input no WAMP library sends.
pub struct RawWamp {
    pub ws: WsClient,
}

impl RawWamp {
    /// Upgrades with `user`'s cookies offering `protocol`; the 101 must choose it.
    pub fn connect(server: &Server, user: &str, protocol: &str) -> RawWamp {
        let ws = WsClient::accepted_offering(server, &Cookies::fresh(user).header, protocol);
        assert_eq!(
            ws.chosen_protocol(),
            Some(protocol),
            "the 101 must choose {protocol}"
        );
        RawWamp { ws }
    }

    /// Connected and joined to `realm` (JSON); returns the WELCOME.
    pub fn join(server: &Server, user: &str, realm: &str) -> (RawWamp, Value) {
        let mut raw = RawWamp::connect(server, user, "wamp.2.json");
        // The features the scenarios use; a callee that does not announce call_canceling
        // gets no INTERRUPT (as in Crossbar).
        raw.send(&json!([1, realm, {"roles": {
            "publisher": {"features": {"publisher_exclusion": true}},
            "subscriber": {"features": {"pattern_based_subscription": true}},
            "caller": {"features": {"call_canceling": true, "call_timeout": true,
                                    "progressive_call_results": true}},
            "callee": {"features": {"call_canceling": true, "call_timeout": true,
                                    "progressive_call_results": true}},
        }}]));
        let welcome = raw.recv();
        assert_eq!(welcome[0], 2, "expected WELCOME, got {welcome}");
        (raw, welcome)
    }

    pub fn send(&mut self, message: &Value) {
        self.ws.send_text(&message.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send_text(text);
    }

    /// The next WAMP message; a Close frame is `["close", code]`, the end of the connection
    /// `["end"]`, a binary message `["binary", length]`.
    pub fn recv(&mut self) -> Value {
        loop {
            let Some(frame) = self.ws.try_recv() else {
                return json!(["end"]);
            };
            match frame.opcode {
                frame::OpCode::Text => {
                    return serde_json::from_slice(&frame.payload)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", frame.text()));
                }
                frame::OpCode::Close => return json!(["close", frame.close_code()]),
                // A binary serializer's message (msgpack, cbor), undecoded here.
                frame::OpCode::Binary => return json!(["binary", frame.payload.len()]),
                _ => {}
            }
        }
    }
}
