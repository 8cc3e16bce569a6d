//! The configuration file: TOML with flat top-level keys, turned into a validated [`Config`].
//!
//! This module owns every key, its default and its limits; `conf/wson.toml` documents the same
//! keys and a test keeps its values equal to [`defaults`]. [`parse`] is pure (text and the file's
//! path in, `Config` or every problem out), so `wson check` can list all mistakes at once; it
//! reads the TOML into a `toml::Table` and checks key by key, because serde stops at the first
//! error. Relative paths resolve against the config file's folder, not the working directory.
//! [`resolve_secret`] is the one function here that touches the file system beyond [`load`]:
//! it reads, or on first start creates, the secret file.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use toml::{Table, Value};

use crate::auth::Digest;
use crate::token::TOKEN_LEN;

/// The built-in value of each optional key; `conf/wson.toml` repeats them (a test checks it).
pub mod defaults {
    use std::time::Duration;

    use log::LevelFilter;

    use super::ClientMessages;
    use crate::auth::Digest;

    pub const PID: &str = "wson.pid";
    pub const TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
    pub const DIGEST: Digest = Digest::Md5;
    pub const PING_INTERVAL: Duration = Duration::from_secs(15);
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_HANDSHAKE_SIZE: usize = 8192;
    pub const MAX_MESSAGE_SIZE: usize = 1_048_576;
    pub const MAX_OUTBOUND_BUFFER: usize = 4_194_304;
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_CONTROL_FRAME: usize = 1_048_576;
    pub const MAX_CONTROL_CONNECTIONS: usize = 128;
    pub const SOCKET_MODE: u32 = 0o666;
    pub const CONTROL_SOCKET_MODE: u32 = 0o600;
    pub const CLIENT_MESSAGES: ClientMessages = ClientMessages::Ignore;
    pub const LOG_FILE: &str = "wson.log";
    pub const LOG_LEVEL: LevelFilter = LevelFilter::Info;
}

/// Every key the file may hold; anything else is reported as unknown.
pub const KEYS: [&str; 24] = [
    "servers",
    "domains",
    "control",
    "pid",
    "secret",
    "secret_file",
    "origins",
    "token_lifetime",
    "digest",
    "ping_interval",
    "handshake_timeout",
    "close_timeout",
    "stop_timeout",
    "max_handshake_size",
    "max_message_size",
    "max_outbound_buffer",
    "max_connections",
    "max_control_frame",
    "max_control_connections",
    "socket_mode",
    "control_socket_mode",
    "client_messages",
    "log_file",
    "log_level",
];

/// A shorter secret is guessable; 16 bytes is the floor, the generated one has 64.
pub const MIN_SECRET_LEN: usize = 16;
/// A secret file longer than this is almost certainly the wrong file; refuse to read it whole.
pub const MAX_SECRET_FILE_LEN: u64 = 4096;
/// Below this a browser's ordinary request headers (cookies, user agent) would not fit.
pub const MIN_HANDSHAKE_SIZE: usize = 1024;
/// One year. Durations are added to `Instant`s, which panics on overflow; this bound keeps
/// every deadline representable.
pub const MAX_SECONDS: u64 = 31_536_000;
/// The longest WebSocket frame header: RFC 6455 §5.2, 2 bytes, 8 bytes of extended payload
/// length and a 4-byte masking key. An empty outbound queue must hold one whole pushed frame.
pub const MAX_FRAME_HEADER_LEN: usize = 14;
/// Unix socket paths live in `sockaddr_un.sun_path` (108 bytes on Linux, 104 elsewhere),
/// terminated by a NUL byte.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_UNIX_PATH_LEN: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_UNIX_PATH_LEN: usize = 103;

/// A socket address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// "HOST:PORT" exactly as written after `tcp://`; HOST is IPv4, `[IPv6]` or a host name.
    Tcp(String),
    /// The socket file's path, joined with the config file's folder when relative.
    Unix(PathBuf),
}

impl Endpoint {
    /// Port 0 asks the kernel for a free port, so two such endpoints are different sockets.
    fn is_ephemeral(&self) -> bool {
        match self {
            Endpoint::Tcp(address) => address
                .rsplit_once(':')
                .is_some_and(|(_, port)| port == "0"),
            Endpoint::Unix(_) => false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "tcp://{address}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Which `Origin` header values may open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `"*"`: any origin, and requests without one (non-browser clients).
    Any,
    /// Exact, case-sensitive `Origin` values.
    List(Vec<String>),
}

impl Origins {
    /// Whether a handshake carrying this `Origin` header (or none) is allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (Origins::Any, _) => true,
            (Origins::List(list), Some(origin)) => list.iter().any(|allowed| allowed == origin),
            // Browsers always send Origin on a WebSocket handshake (RFC 6455 §4.1, item 8);
            // a request without one is not a browser, and only "*" admits it.
            (Origins::List(_), None) => false,
        }
    }
}

/// What the server does with a complete message a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessages {
    /// Drop it, as the PHP wson does: clients only listen.
    Ignore,
    /// Send it back to the same client (the conformance tests need a peer that answers).
    Echo,
}

/// Where the shared secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The `secret` key's bytes.
    Inline(Vec<u8>),
    /// The `secret_file` key's path, resolved; read by [`resolve_secret`].
    File(PathBuf),
}

// Hand-written so that printing a `Config` never prints the secret.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(bytes) => write!(f, "Inline(<{} bytes redacted>)", bytes.len()),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// A validated configuration: every value is in range and every path is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from, as given.
    pub file: PathBuf,
    pub servers: Vec<Endpoint>,
    /// Empty, or one name per server in the same order.
    pub domains: Vec<String>,
    pub control: Endpoint,
    pub pid: PathBuf,
    pub secret: Secret,
    pub origins: Origins,
    pub token_lifetime: Duration,
    pub digest: Digest,
    pub ping_interval: Duration,
    pub handshake_timeout: Duration,
    pub close_timeout: Duration,
    pub stop_timeout: Duration,
    pub max_handshake_size: usize,
    pub max_message_size: usize,
    pub max_outbound_buffer: usize,
    pub max_connections: usize,
    pub max_control_frame: usize,
    pub max_control_connections: usize,
    pub socket_mode: u32,
    pub control_socket_mode: u32,
    pub client_messages: ClientMessages,
    pub log_file: PathBuf,
    pub log_level: LevelFilter,
}

/// One problem, naming the file and key: Display is "conf/wson.toml: secret: shorter than 16
/// bytes" (no key part when the problem is the whole file, e.g. a TOML syntax error, whose
/// message starts with the line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The key, with `[index]` for a list item (`servers[1]`).
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses the config file.
pub fn load(file: &Path) -> Result<Config, Vec<ConfigError>> {
    match fs::read_to_string(file) {
        Ok(text) => parse(&text, file),
        Err(error) => Err(vec![ConfigError {
            file: file.to_path_buf(),
            key: None,
            message: error.to_string(),
        }]),
    }
}

/// Parses `text` as the config at `file` (relative paths resolve against `file`'s folder).
/// Reports every problem: unknown keys, wrong types, bad values, missing keys, cross-key rules.
pub fn parse(text: &str, file: &Path) -> Result<Config, Vec<ConfigError>> {
    let table = match text.parse::<Table>() {
        Ok(table) => table,
        Err(error) => {
            // Only the parser's message and position: its Display quotes the offending line,
            // which could be the secret.
            let message = match error.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}: {}", error.message())
                }
                None => error.message().to_owned(),
            };
            return Err(vec![ConfigError {
                file: file.to_path_buf(),
                key: None,
                message,
            }]);
        }
    };
    let folder = file.parent().unwrap_or(Path::new(""));
    let mut checker = Checker {
        file,
        folder,
        table,
        errors: Vec::new(),
    };
    checker.unknown_keys();
    let config = checker.config();
    match config {
        Some(config) if checker.errors.is_empty() => Ok(config),
        _ => Err(checker.errors),
    }
}

/// 1-based line and column (in bytes) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let column = before
        .iter()
        .rev()
        .take_while(|&&byte| byte != b'\n')
        .count()
        + 1;
    (line, column)
}

/// Takes keys out of the table one by one, recording every problem.
struct Checker<'a> {
    file: &'a Path,
    folder: &'a Path,
    table: Table,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            key: Some(key.into()),
            message: message.into(),
        });
    }

    fn wrong_type<T>(&mut self, key: &str, expected: &str, found: &Value) -> Option<T> {
        self.error(
            key,
            format!("expected {expected}, found {}", found.type_str()),
        );
        None
    }

    fn unknown_keys(&mut self) {
        let unknown: Vec<(String, bool)> = self
            .table
            .iter()
            .filter(|(key, _)| !KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.is_table()))
            .collect();
        for (key, is_table) in unknown {
            let normalized = key.to_ascii_lowercase().replace('-', "_");
            let message = if let Some(known) = KEYS.iter().find(|known| **known == normalized) {
                format!("unknown key (did you mean {known}?)")
            } else if is_table {
                "unknown key (the config has only top-level keys, no [sections])".to_owned()
            } else {
                "unknown key".to_owned()
            };
            self.table.remove(&key);
            // A quoted key may hold any character; the error stays one printable line.
            self.error(key.escape_debug().to_string(), message);
        }
    }

    /// The key's value through `convert`, or `default` when absent. `None` when the key is
    /// missing without a default or its value is bad; the problem is then recorded.
    fn field<T>(
        &mut self,
        key: &'static str,
        default: Option<T>,
        convert: impl FnOnce(&mut Self, &'static str, Value) -> Option<T>,
    ) -> Option<T> {
        match self.table.remove(key) {
            Some(value) => convert(self, key, value),
            None => {
                if default.is_none() {
                    self.error(key, "missing: this key is required");
                }
                default
            }
        }
    }

    fn config(&mut self) -> Option<Config> {
        let servers = self.field("servers", None, Self::servers);
        let domains = self.field("domains", Some(Vec::new()), Self::strings);
        let control = self.field("control", None, Self::endpoint);
        let pid = self.field("pid", Some(self.folder.join(defaults::PID)), Self::path);
        let secret = self.secret();
        let origins = self.origins();
        let token_lifetime = self.field(
            "token_lifetime",
            Some(defaults::TOKEN_LIFETIME),
            Self::seconds,
        );
        let digest = self.field("digest", Some(defaults::DIGEST), |checker, key, value| {
            checker.choice(
                key,
                value,
                &[("md5", Digest::Md5), ("hmac-sha256", Digest::HmacSha256)],
            )
        });
        let ping_interval = self.field(
            "ping_interval",
            Some(defaults::PING_INTERVAL),
            Self::seconds,
        );
        let handshake_timeout = self.field(
            "handshake_timeout",
            Some(defaults::HANDSHAKE_TIMEOUT),
            Self::seconds,
        );
        let close_timeout = self.field(
            "close_timeout",
            Some(defaults::CLOSE_TIMEOUT),
            Self::seconds,
        );
        let stop_timeout = self.field("stop_timeout", Some(defaults::STOP_TIMEOUT), Self::seconds);
        let max_handshake_size = self.field(
            "max_handshake_size",
            Some(defaults::MAX_HANDSHAKE_SIZE),
            |checker, key, value| checker.size(key, value, MIN_HANDSHAKE_SIZE),
        );
        let max_message_size = self.field(
            "max_message_size",
            Some(defaults::MAX_MESSAGE_SIZE),
            |checker, key, value| checker.size(key, value, 1),
        );
        let max_outbound_buffer = self.field(
            "max_outbound_buffer",
            Some(defaults::MAX_OUTBOUND_BUFFER),
            |checker, key, value| checker.size(key, value, 1),
        );
        let max_connections = self.field(
            "max_connections",
            Some(defaults::MAX_CONNECTIONS),
            |checker, key, value| checker.size(key, value, 1),
        );
        // A control frame addressed to a client carries its token plus at least one byte.
        let max_control_frame = self.field(
            "max_control_frame",
            Some(defaults::MAX_CONTROL_FRAME),
            |checker, key, value| checker.size(key, value, TOKEN_LEN + 1),
        );
        let max_control_connections = self.field(
            "max_control_connections",
            Some(defaults::MAX_CONTROL_CONNECTIONS),
            |checker, key, value| checker.size(key, value, 1),
        );
        let socket_mode = self.field("socket_mode", Some(defaults::SOCKET_MODE), Self::mode);
        let control_socket_mode = self.field(
            "control_socket_mode",
            Some(defaults::CONTROL_SOCKET_MODE),
            Self::mode,
        );
        let client_messages = self.field(
            "client_messages",
            Some(defaults::CLIENT_MESSAGES),
            |checker, key, value| {
                checker.choice(
                    key,
                    value,
                    &[
                        ("ignore", ClientMessages::Ignore),
                        ("echo", ClientMessages::Echo),
                    ],
                )
            },
        );
        let log_file = self.field(
            "log_file",
            Some(self.folder.join(defaults::LOG_FILE)),
            Self::path,
        );
        let log_level = self.field(
            "log_level",
            Some(defaults::LOG_LEVEL),
            |checker, key, value| {
                checker.choice(
                    key,
                    value,
                    &[
                        ("error", LevelFilter::Error),
                        ("warn", LevelFilter::Warn),
                        ("info", LevelFilter::Info),
                        ("debug", LevelFilter::Debug),
                        ("trace", LevelFilter::Trace),
                        ("off", LevelFilter::Off),
                    ],
                )
            },
        );

        // Rules across keys, checked only when each side is valid on its own.
        if let (Some(servers), Some(domains)) = (&servers, &domains)
            && !domains.is_empty()
            && domains.len() != servers.len()
        {
            self.error(
                "domains",
                format!(
                    "{} entries for {} servers: give one per server, in the same order",
                    domains.len(),
                    servers.len()
                ),
            );
        }
        if let (Some(servers), Some(control)) = (&servers, &control) {
            let same = servers.iter().position(|server| server == control);
            if let (Some(index), false) = (same, control.is_ephemeral()) {
                self.error("control", format!("same address as servers[{index}]"));
            }
        }
        if let (Some(outbound), Some(control_frame)) = (max_outbound_buffer, max_control_frame) {
            let needed = control_frame.checked_add(MAX_FRAME_HEADER_LEN);
            if needed.is_none_or(|needed| outbound < needed) {
                self.error(
                    "max_outbound_buffer",
                    format!(
                        "must be at least max_control_frame + {MAX_FRAME_HEADER_LEN} = {}, \
                         so any pushed message fits in an empty queue",
                        control_frame.saturating_add(MAX_FRAME_HEADER_LEN)
                    ),
                );
            }
        }

        Some(Config {
            file: self.file.to_path_buf(),
            servers: servers?,
            domains: domains?,
            control: control?,
            pid: pid?,
            secret: secret?,
            origins: origins?,
            token_lifetime: token_lifetime?,
            digest: digest?,
            ping_interval: ping_interval?,
            handshake_timeout: handshake_timeout?,
            close_timeout: close_timeout?,
            stop_timeout: stop_timeout?,
            max_handshake_size: max_handshake_size?,
            max_message_size: max_message_size?,
            max_outbound_buffer: max_outbound_buffer?,
            max_connections: max_connections?,
            max_control_frame: max_control_frame?,
            max_control_connections: max_control_connections?,
            socket_mode: socket_mode?,
            control_socket_mode: control_socket_mode?,
            client_messages: client_messages?,
            log_file: log_file?,
            log_level: log_level?,
        })
    }

    fn secret(&mut self) -> Option<Secret> {
        match (
            self.table.remove("secret"),
            self.table.remove("secret_file"),
        ) {
            (Some(_), Some(_)) => {
                self.error("secret", "set either secret or secret_file, not both");
                None
            }
            (None, None) => {
                self.error("secret", "missing: set secret_file (recommended) or secret");
                None
            }
            (Some(value), None) => {
                // The value itself never goes into a message.
                let secret = self.string("secret", value)?;
                if secret.len() < MIN_SECRET_LEN {
                    self.error("secret", format!("shorter than {MIN_SECRET_LEN} bytes"));
                    return None;
                }
                Some(Secret::Inline(secret.into_bytes()))
            }
            (None, Some(value)) => self.path("secret_file", value).map(Secret::File),
        }
    }

    fn origins(&mut self) -> Option<Origins> {
        let Some(value) = self.table.remove("origins") else {
            self.error(
                "origins",
                "missing: list the allowed origins, or \"*\" for any",
            );
            return None;
        };
        let list = self.strings("origins", value)?;
        if list.is_empty() {
            self.error(
                "origins",
                "empty: no browser could connect; list the allowed origins, or \"*\" for any",
            );
            return None;
        }
        if list.iter().any(|origin| origin == "*") {
            if list.len() > 1 {
                self.error(
                    "origins",
                    "\"*\" allows any origin, so it must be the only entry",
                );
                return None;
            }
            return Some(Origins::Any);
        }
        let mut valid = true;
        for (index, origin) in list.iter().enumerate() {
            if let Err(message) = check_origin(origin) {
                self.error(format!("origins[{index}]"), message);
                valid = false;
            }
        }
        valid.then_some(Origins::List(list))
    }

    fn servers(&mut self, key: &'static str, value: Value) -> Option<Vec<Endpoint>> {
        let Value::Array(items) = value else {
            return self.wrong_type(key, "a list of addresses", &value);
        };
        if items.is_empty() {
            self.error(key, "empty: list at least one address to listen on");
            return None;
        }
        // Each valid endpoint with its index, so a duplicate names the right entry even
        // after an invalid one.
        let mut servers: Vec<(usize, Endpoint)> = Vec::with_capacity(items.len());
        let mut valid = true;
        for (index, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let Some(endpoint) = self.endpoint_at(&item_key, item) else {
                valid = false;
                continue;
            };
            let same = servers.iter().find(|(_, server)| *server == endpoint);
            if let (Some((first, _)), false) = (same, endpoint.is_ephemeral()) {
                self.error(item_key, format!("same address as {key}[{first}]"));
                valid = false;
            }
            servers.push((index, endpoint));
        }
        valid.then(|| servers.into_iter().map(|(_, endpoint)| endpoint).collect())
    }

    fn endpoint(&mut self, key: &'static str, value: Value) -> Option<Endpoint> {
        self.endpoint_at(key, value)
    }

    fn endpoint_at(&mut self, key: &str, value: Value) -> Option<Endpoint> {
        let Value::String(text) = value else {
            return self.wrong_type(key, "a string", &value);
        };
        match parse_endpoint(&text, self.folder) {
            Ok(endpoint) => Some(endpoint),
            Err(message) => {
                self.error(key, message);
                None
            }
        }
    }

    fn string(&mut self, key: &str, value: Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            other => self.wrong_type(key, "a string", &other),
        }
    }

    fn strings(&mut self, key: &'static str, value: Value) -> Option<Vec<String>> {
        let Value::Array(items) = value else {
            return self.wrong_type(key, "a list of strings", &value);
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut valid = true;
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text),
                other => {
                    self.wrong_type::<()>(&format!("{key}[{index}]"), "a string", &other);
                    valid = false;
                }
            }
        }
        valid.then_some(strings)
    }

    fn path(&mut self, key: &'static str, value: Value) -> Option<PathBuf> {
        let text = self.string(key, value)?;
        if text.is_empty() {
            self.error(key, "empty path");
            return None;
        }
        Some(self.folder.join(text))
    }

    fn integer(&mut self, key: &str, value: Value) -> Option<i64> {
        match value {
            Value::Integer(number) => Some(number),
            other => self.wrong_type(key, "an integer", &other),
        }
    }

    fn seconds(&mut self, key: &'static str, value: Value) -> Option<Duration> {
        let number = self.integer(key, value)?;
        match u64::try_from(number) {
            Ok(seconds @ 1..=MAX_SECONDS) => Some(Duration::from_secs(seconds)),
            Ok(0) | Err(_) => {
                self.error(key, "must be at least 1 (whole seconds)");
                None
            }
            Ok(_) => {
                self.error(
                    key,
                    format!("must be at most {MAX_SECONDS} seconds (one year)"),
                );
                None
            }
        }
    }

    fn size(&mut self, key: &'static str, value: Value, min: usize) -> Option<usize> {
        let number = self.integer(key, value)?;
        match usize::try_from(number) {
            Ok(size) if size >= min => Some(size),
            Ok(_) => {
                self.error(key, format!("must be at least {min}"));
                None
            }
            Err(_) if number < 0 => {
                self.error(key, format!("must be at least {min}"));
                None
            }
            Err(_) => {
                self.error(key, format!("must be at most {}", usize::MAX));
                None
            }
        }
    }

    fn mode(&mut self, key: &'static str, value: Value) -> Option<u32> {
        let number = self.integer(key, value)?;
        match u32::try_from(number) {
            Ok(mode @ 0..=0o777) => Some(mode),
            _ => {
                // A mode written in decimal (600) lands here: it means 0o1130.
                self.error(
                    key,
                    format!("{number} is not a file mode from 0o000 to 0o777: write it in octal, like 0o600"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        value: Value,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(key, value)?;
        if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*choice);
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        self.error(
            key,
            format!(
                "\"{}\" is not one of {}",
                text.escape_debug(),
                names.join(", ")
            ),
        );
        None
    }
}

/// `tcp://HOST:PORT` or `unix://PATH`, the path joined with `folder` when relative.
fn parse_endpoint(text: &str, folder: &Path) -> Result<Endpoint, String> {
    if let Some(address) = text.strip_prefix("tcp://") {
        check_tcp_address(address)?;
        Ok(Endpoint::Tcp(address.to_owned()))
    } else if let Some(path) = text.strip_prefix("unix://") {
        if path.is_empty() {
            return Err("unix:// needs a socket path".to_owned());
        }
        let resolved = folder.join(path);
        let len = resolved.as_os_str().len();
        if len > MAX_UNIX_PATH_LEN {
            // Escaped: a TOML string may hold "\n", and an error is one line.
            return Err(format!(
                "socket path \"{}\" is {len} bytes, longer than the {MAX_UNIX_PATH_LEN} a Unix socket allows",
                resolved.display().to_string().escape_debug()
            ));
        }
        Ok(Endpoint::Unix(resolved))
    } else {
        Err(format!(
            "\"{}\" does not start with tcp:// or unix://",
            text.escape_debug()
        ))
    }
}

/// HOST:PORT where HOST is an IPv4 address, `[IPv6]` or a host name, and PORT is 0 to 65535.
fn check_tcp_address(address: &str) -> Result<(), String> {
    let port = if let Some(rest) = address.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once("]:") else {
            return Err("an IPv6 address is written tcp://[ADDRESS]:PORT".to_owned());
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("\"{}\" is not an IPv6 address", ip.escape_debug()));
        }
        port
    } else {
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err("missing :PORT after the host".to_owned());
        };
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets: tcp://[ADDRESS]:PORT".to_owned());
        }
        check_host(host)?;
        port
    };
    // Digits only: u16's parser would also take "+80".
    if port.is_empty()
        || !port.bytes().all(|byte| byte.is_ascii_digit())
        || port.parse::<u16>().is_err()
    {
        return Err(format!(
            "port \"{}\" is not a number from 0 to 65535",
            port.escape_debug()
        ));
    }
    Ok(())
}

/// An IPv4 address in dotted decimal, or a host name (RFC 1123 §2.1 labels).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing host before :PORT".to_owned());
    }
    if host
        .bytes()
        .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("\"{host}\" is not an IPv4 address")),
        };
    }
    // RFC 1035 §2.3.4: labels are 63 octets or less, names 255 octets or less (253 as text).
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(format!(
            "\"{}\" is not a valid host name",
            host.escape_debug()
        ));
    }
    Ok(())
}

/// RFC 6454 §6.1: an origin serializes as scheme "://" host [":" port], in lowercase, with no
/// path; anything else could never equal a browser's `Origin` header.
fn check_origin(origin: &str) -> Result<(), String> {
    // RFC 6454 §6.2: an opaque origin (a sandboxed page, a file:// page) is sent as "null".
    if origin == "null" {
        return Ok(());
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err(format!(
            "\"{}\" is not an origin like http://example.com",
            origin.escape_debug()
        ));
    };
    if scheme.is_empty() || host.is_empty() {
        return Err(format!(
            "\"{}\" is not an origin like http://example.com",
            origin.escape_debug()
        ));
    }
    if host.contains('/') {
        return Err(format!(
            "\"{}\" has a path; an origin is SCHEME://HOST[:PORT] with no trailing slash",
            origin.escape_debug()
        ));
    }
    if origin.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(format!(
            "\"{}\" has uppercase letters; browsers send origins in lowercase and they are compared exactly",
            origin.escape_debug()
        ));
    }
    if origin.chars().any(char::is_whitespace) {
        return Err(format!("\"{}\" contains whitespace", origin.escape_debug()));
    }
    Ok(())
}

/// The shared secret's bytes, and whether this call created the secret file.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedSecret {
    pub bytes: Vec<u8>,
    pub created: bool,
}

// Hand-written so that the secret never reaches a log line.
impl fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedSecret")
            .field(
                "bytes",
                &format_args!("<{} bytes redacted>", self.bytes.len()),
            )
            .field("created", &self.created)
            .finish()
    }
}

/// The secret's bytes. Inline: as written. File: its content without trailing whitespace, at
/// least 16 bytes. A missing file with `create_missing` is created (mode 0600, never
/// overwriting) holding 64 lowercase hex characters from 32 random bytes; those characters are
/// the secret, so the web backend can read the same file.
pub fn resolve_secret(
    config: &Config,
    create_missing: bool,
) -> Result<ResolvedSecret, ConfigError> {
    match &config.secret {
        Secret::Inline(bytes) => {
            if bytes.len() < MIN_SECRET_LEN {
                return Err(ConfigError {
                    file: config.file.clone(),
                    key: Some("secret".to_owned()),
                    message: format!("shorter than {MIN_SECRET_LEN} bytes"),
                });
            }
            Ok(ResolvedSecret {
                bytes: bytes.clone(),
                created: false,
            })
        }
        Secret::File(path) => {
            read_secret_file(path, create_missing).map_err(|message| ConfigError {
                file: config.file.clone(),
                key: Some("secret_file".to_owned()),
                message: format!("{}: {message}", path.display().to_string().escape_debug()),
            })
        }
    }
}

fn read_secret_file(path: &Path, create_missing: bool) -> Result<ResolvedSecret, String> {
    match fs::File::open(path) {
        Ok(file) => read_secret(path, file),
        Err(error) if error.kind() == io::ErrorKind::NotFound && create_missing => {
            match create_secret_file(path) {
                Ok(bytes) => Ok(ResolvedSecret {
                    bytes,
                    created: true,
                }),
                // Another process created it between our open and create: use theirs.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let file = fs::File::open(path).map_err(|error| error.to_string())?;
                    read_secret(path, file)
                }
                Err(error) => Err(format!("cannot create: {error}")),
            }
        }
        Err(error) => Err(error.to_string()),
    }
}

fn read_secret(path: &Path, file: fs::File) -> Result<ResolvedSecret, String> {
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if metadata.len() > MAX_SECRET_FILE_LEN {
        return Err(format!(
            "{} bytes, longer than {MAX_SECRET_FILE_LEN}: is this the secret file?",
            metadata.len()
        ));
    }
    // Allowed (the web backend's user may need to read it), but worth a word.
    if metadata.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "secret file is readable by other users path={}",
            path.display()
        );
    }
    let mut content = Vec::new();
    // The bound holds even if the file grew after the metadata call.
    file.take(MAX_SECRET_FILE_LEN)
        .read_to_end(&mut content)
        .map_err(|error| error.to_string())?;
    let secret = content.trim_ascii_end();
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!("shorter than {MIN_SECRET_LEN} bytes"));
    }
    Ok(ResolvedSecret {
        bytes: secret.to_vec(),
        created: false,
    })
}

/// Creates the file with O_EXCL and mode 0600 and writes a new secret to it.
fn create_secret_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(io::Error::other)?;
    let secret = hex(&random);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = file.write_all(&secret).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // A half-written file would be read as a short secret on the next start.
        let _ = fs::remove_file(path);
        return Err(error);
    }
    Ok(secret)
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../conf/wson.toml");
    const FILE: &str = "conf/wson.toml";
    const SECRET: &str = "0123456789abcdef-not-so-secret";

    /// The smallest valid file: the required keys only.
    fn base() -> Vec<(&'static str, String)> {
        vec![
            ("servers", r#"["tcp://127.0.0.1:8099"]"#.to_owned()),
            ("control", r#""unix://control.sock""#.to_owned()),
            ("secret", format!("\"{SECRET}\"")),
            ("origins", r#"["http://localhost"]"#.to_owned()),
        ]
    }

    /// The base file with `set` keys added or replaced and `remove` keys left out.
    fn text(set: &[(&'static str, &str)], remove: &[&str]) -> String {
        let mut lines = base();
        lines.retain(|(key, _)| {
            !remove.contains(key) && !set.iter().any(|(set_key, _)| set_key == key)
        });
        lines.extend(set.iter().map(|(key, value)| (*key, (*value).to_owned())));
        lines
            .iter()
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect()
    }

    fn parse_with(
        set: &[(&'static str, &str)],
        remove: &[&str],
    ) -> Result<Config, Vec<ConfigError>> {
        parse(&text(set, remove), Path::new(FILE))
    }

    fn config_with(set: &[(&'static str, &str)]) -> Config {
        parse_with(set, &[]).unwrap()
    }

    /// Every error as (key, message).
    fn errors(set: &[(&'static str, &str)], remove: &[&str]) -> Vec<(Option<String>, String)> {
        let errors = parse_with(set, remove).unwrap_err();
        for error in &errors {
            assert_eq!(error.file, Path::new(FILE));
        }
        errors
            .into_iter()
            .map(|error| (error.key, error.message))
            .collect()
    }

    /// The one error, as (key, message).
    fn only_error(set: &[(&'static str, &str)], remove: &[&str]) -> (String, String) {
        let mut errors = errors(set, remove);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (key, message) = errors.remove(0);
        (key.unwrap(), message)
    }

    fn assert_error(set: &[(&'static str, &str)], key: &str, message_part: &str) {
        let (found_key, message) = only_error(set, &[]);
        assert_eq!(found_key, key, "{message}");
        assert!(
            message.contains(message_part),
            "{message:?} lacks {message_part:?}"
        );
    }

    #[test]
    fn shipped_file_defaults_equal_built_in_defaults() {
        let config = parse(SHIPPED, Path::new(FILE)).unwrap();
        let conf = Path::new("conf");
        assert_eq!(
            config.servers,
            [
                Endpoint::Tcp("127.0.0.1:8099".to_owned()),
                Endpoint::Unix(conf.join("wson.sock"))
            ]
        );
        assert_eq!(config.domains, Vec::<String>::new());
        assert_eq!(config.control, Endpoint::Unix(conf.join("control.sock")));
        assert_eq!(config.secret, Secret::File(conf.join("secret")));
        assert!(config.origins.allows(Some("http://localhost:8080")));
        assert!(!config.origins.allows(None));
        assert_eq!(config.pid, conf.join(defaults::PID));
        assert_eq!(config.token_lifetime, defaults::TOKEN_LIFETIME);
        assert_eq!(config.digest, defaults::DIGEST);
        assert_eq!(config.ping_interval, defaults::PING_INTERVAL);
        assert_eq!(config.handshake_timeout, defaults::HANDSHAKE_TIMEOUT);
        assert_eq!(config.close_timeout, defaults::CLOSE_TIMEOUT);
        assert_eq!(config.stop_timeout, defaults::STOP_TIMEOUT);
        assert_eq!(config.max_handshake_size, defaults::MAX_HANDSHAKE_SIZE);
        assert_eq!(config.max_message_size, defaults::MAX_MESSAGE_SIZE);
        assert_eq!(config.max_outbound_buffer, defaults::MAX_OUTBOUND_BUFFER);
        assert_eq!(config.max_connections, defaults::MAX_CONNECTIONS);
        assert_eq!(config.max_control_frame, defaults::MAX_CONTROL_FRAME);
        assert_eq!(
            config.max_control_connections,
            defaults::MAX_CONTROL_CONNECTIONS
        );
        assert_eq!(config.socket_mode, defaults::SOCKET_MODE);
        assert_eq!(config.control_socket_mode, defaults::CONTROL_SOCKET_MODE);
        assert_eq!(config.client_messages, defaults::CLIENT_MESSAGES);
        assert_eq!(config.log_file, conf.join(defaults::LOG_FILE));
        assert_eq!(config.log_level, defaults::LOG_LEVEL);
    }

    #[test]
    fn shipped_file_sets_or_shows_every_key() {
        for key in KEYS {
            let set = format!("\n{key} = ");
            let shown = format!("\n# {key} = ");
            // `secret` is described in the comment above secret_file.
            let described = format!("#   {key} = ");
            assert!(
                SHIPPED.contains(&set) || SHIPPED.contains(&shown) || SHIPPED.contains(&described),
                "conf/wson.toml does not mention {key}"
            );
        }
    }

    #[test]
    fn missing_optional_keys_take_the_defaults() {
        let config = config_with(&[]);
        let shipped = parse(SHIPPED, Path::new(FILE)).unwrap();
        // The shipped file sets every optional key to its default.
        assert_eq!(
            Config {
                servers: shipped.servers.clone(),
                control: shipped.control.clone(),
                secret: shipped.secret.clone(),
                origins: shipped.origins.clone(),
                ..config
            },
            shipped
        );
    }

    #[test]
    fn every_value_can_be_set() {
        let config = config_with(&[
            (
                "servers",
                r#"["tcp://[::1]:1", "tcp://example.com:0", "unix:///run/wson.sock"]"#,
            ),
            ("domains", r#"["a", "b", "c"]"#),
            ("control", r#""tcp://127.0.0.1:8098""#),
            ("pid", r#""/run/wson.pid""#),
            ("origins", r#"["*"]"#),
            ("token_lifetime", "60"),
            ("digest", r#""hmac-sha256""#),
            ("ping_interval", "1"),
            ("handshake_timeout", "2"),
            ("close_timeout", "3"),
            ("stop_timeout", "31536000"),
            ("max_handshake_size", "1024"),
            ("max_message_size", "1"),
            ("max_outbound_buffer", "47"),
            ("max_connections", "1"),
            ("max_control_frame", "33"),
            ("max_control_connections", "1"),
            ("socket_mode", "0o777"),
            ("control_socket_mode", "0o000"),
            ("client_messages", r#""echo""#),
            ("log_file", r#""/var/log/wson.log""#),
            ("log_level", r#""off""#),
        ]);
        assert_eq!(
            config,
            Config {
                file: PathBuf::from(FILE),
                servers: vec![
                    Endpoint::Tcp("[::1]:1".to_owned()),
                    Endpoint::Tcp("example.com:0".to_owned()),
                    Endpoint::Unix(PathBuf::from("/run/wson.sock")),
                ],
                domains: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
                control: Endpoint::Tcp("127.0.0.1:8098".to_owned()),
                pid: PathBuf::from("/run/wson.pid"),
                secret: Secret::Inline(SECRET.as_bytes().to_vec()),
                origins: Origins::Any,
                token_lifetime: Duration::from_secs(60),
                digest: Digest::HmacSha256,
                ping_interval: Duration::from_secs(1),
                handshake_timeout: Duration::from_secs(2),
                close_timeout: Duration::from_secs(3),
                stop_timeout: Duration::from_secs(MAX_SECONDS),
                max_handshake_size: 1024,
                max_message_size: 1,
                max_outbound_buffer: 47,
                max_connections: 1,
                max_control_frame: 33,
                max_control_connections: 1,
                socket_mode: 0o777,
                control_socket_mode: 0,
                client_messages: ClientMessages::Echo,
                log_file: PathBuf::from("/var/log/wson.log"),
                log_level: LevelFilter::Off,
            }
        );
    }

    #[test]
    fn each_level_name_maps_to_its_filter() {
        for (name, level) in [
            ("error", LevelFilter::Error),
            ("warn", LevelFilter::Warn),
            ("info", LevelFilter::Info),
            ("debug", LevelFilter::Debug),
            ("trace", LevelFilter::Trace),
            ("off", LevelFilter::Off),
        ] {
            let config = config_with(&[("log_level", &format!("\"{name}\""))]);
            assert_eq!(config.log_level, level);
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let text = text(
            &[
                (
                    "servers",
                    r#"["unix://ws.sock", "unix://../run/ws.sock", "unix:///abs/ws.sock"]"#,
                ),
                ("control", r#""unix://sub/control.sock""#),
                ("pid", r#""wson.pid""#),
                ("log_file", r#""/var/log/wson.log""#),
                ("secret_file", r#""secret""#),
            ],
            &["secret"],
        );
        let config = parse(&text, Path::new("/etc/wson/wson.toml")).unwrap();
        assert_eq!(
            config.servers,
            [
                Endpoint::Unix(PathBuf::from("/etc/wson/ws.sock")),
                // Joined, not canonicalized.
                Endpoint::Unix(PathBuf::from("/etc/wson/../run/ws.sock")),
                Endpoint::Unix(PathBuf::from("/abs/ws.sock")),
            ]
        );
        assert_eq!(
            config.control,
            Endpoint::Unix(PathBuf::from("/etc/wson/sub/control.sock"))
        );
        assert_eq!(config.pid, PathBuf::from("/etc/wson/wson.pid"));
        assert_eq!(config.log_file, PathBuf::from("/var/log/wson.log"));
        assert_eq!(
            config.secret,
            Secret::File(PathBuf::from("/etc/wson/secret"))
        );

        // A file named without a folder: paths stay relative to the working directory.
        let config = parse(&text, Path::new("wson.toml")).unwrap();
        assert_eq!(config.pid, PathBuf::from("wson.pid"));
        assert_eq!(
            config.control,
            Endpoint::Unix(PathBuf::from("sub/control.sock"))
        );
    }

    #[test]
    fn endpoint_display_gives_back_the_scheme() {
        assert_eq!(
            Endpoint::Tcp("127.0.0.1:8099".to_owned()).to_string(),
            "tcp://127.0.0.1:8099"
        );
        assert_eq!(
            Endpoint::Tcp("[::1]:80".to_owned()).to_string(),
            "tcp://[::1]:80"
        );
        assert_eq!(
            Endpoint::Unix(PathBuf::from("/run/w.sock")).to_string(),
            "unix:///run/w.sock"
        );
        assert_eq!(
            Endpoint::Unix(PathBuf::from("conf/w.sock")).to_string(),
            "unix://conf/w.sock"
        );
    }

    #[test]
    fn error_display_names_file_and_key() {
        let error = ConfigError {
            file: PathBuf::from(FILE),
            key: Some("secret".to_owned()),
            message: "shorter than 16 bytes".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "conf/wson.toml: secret: shorter than 16 bytes"
        );
        let error = ConfigError { key: None, ..error };
        assert_eq!(error.to_string(), "conf/wson.toml: shorter than 16 bytes");
    }

    #[test]
    fn toml_syntax_error_names_line_and_column_without_key() {
        let text = format!(
            "{}secret_file = \"x\nlog_level = 3\n",
            text(&[], &["secret"])
        );
        let errors = parse(&text, Path::new(FILE)).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, None);
        let shown = errors[0].to_string();
        assert!(
            shown.starts_with("conf/wson.toml: line 4, column "),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "{shown}");
    }

    #[test]
    fn toml_syntax_error_does_not_quote_the_secret() {
        let text = text(&[("secret", "\"0123456789abcdef-very-secret")], &[]);
        let errors = parse(&text, Path::new(FILE)).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            !errors[0].to_string().contains("very-secret"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn unknown_keys_are_each_reported() {
        let errors = errors(
            &[
                ("colour", "1"),
                ("max-connections", "5"),
                ("server", "{ a = 1 }"),
                (r#""a\nb""#, "1"),
            ],
            &[],
        );
        // The table is sorted by key; a newline in a key is escaped to keep one line.
        assert_eq!(
            errors,
            [
                (Some("a\\nb".to_owned()), "unknown key".to_owned()),
                (Some("colour".to_owned()), "unknown key".to_owned()),
                (
                    Some("max-connections".to_owned()),
                    "unknown key (did you mean max_connections?)".to_owned()
                ),
                (
                    Some("server".to_owned()),
                    "unknown key (the config has only top-level keys, no [sections])".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn wrong_type_names_expected_and_found() {
        assert_error(
            &[("max_connections", r#""100""#)],
            "max_connections",
            "expected an integer, found string",
        );
        assert_error(
            &[("ping_interval", "1.5")],
            "ping_interval",
            "expected an integer, found float",
        );
        assert_error(
            &[("servers", r#""tcp://127.0.0.1:1""#)],
            "servers",
            "expected a list of addresses, found string",
        );
        assert_error(
            &[("servers", "[8099]")],
            "servers[0]",
            "expected a string, found integer",
        );
        assert_error(
            &[("origins", r#"["http://a", true]"#)],
            "origins[1]",
            "expected a string, found boolean",
        );
        assert_error(
            &[("domains", r#""localhost""#)],
            "domains",
            "expected a list of strings, found string",
        );
        assert_error(
            &[("pid", "false")],
            "pid",
            "expected a string, found boolean",
        );
        assert_error(
            &[("digest", "5")],
            "digest",
            "expected a string, found integer",
        );
    }

    #[test]
    fn missing_required_keys_are_each_reported() {
        let errors = errors(&[], &["servers", "control", "secret", "origins"]);
        let keys: Vec<_> = errors
            .iter()
            .map(|(key, _)| key.as_deref().unwrap())
            .collect();
        assert_eq!(keys, ["servers", "control", "secret", "origins"]);
        for (_, message) in &errors {
            assert!(message.starts_with("missing"), "{message}");
        }
    }

    #[test]
    fn endpoint_without_tcp_or_unix_scheme_is_refused() {
        assert_error(
            &[("control", r#""http://127.0.0.1:80""#)],
            "control",
            "does not start with tcp:// or unix://",
        );
        assert_error(
            &[("servers", r#"["127.0.0.1:80"]"#)],
            "servers[0]",
            "does not start with tcp:// or unix://",
        );
        assert_error(
            &[("control", r#""unix://""#)],
            "control",
            "needs a socket path",
        );
    }

    #[test]
    fn port_must_be_a_number_from_0_to_65535() {
        for bad in ["65536", "", "+80", "http", "-1"] {
            let server = format!("[\"tcp://127.0.0.1:{bad}\"]");
            assert_error(
                &[("servers", &server)],
                "servers[0]",
                "is not a number from 0 to 65535",
            );
        }
        assert_error(
            &[("servers", r#"["tcp://127.0.0.1"]"#)],
            "servers[0]",
            "missing :PORT",
        );
        config_with(&[(
            "servers",
            r#"["tcp://127.0.0.1:0", "tcp://127.0.0.1:65535"]"#,
        )]);
    }

    #[test]
    fn host_must_be_ipv4_bracketed_ipv6_or_a_host_name() {
        config_with(&[(
            "servers",
            r#"["tcp://0.0.0.0:1", "tcp://[::]:1", "tcp://[fe80::1]:1", "tcp://localhost:1", "tcp://ws-1.example.com:1"]"#,
        )]);
        for (bad, message) in [
            ("tcp://::1:80", "in brackets"),
            ("tcp://[::1]80", "[ADDRESS]:PORT"),
            ("tcp://[1.2.3.4]:80", "not an IPv6 address"),
            ("tcp://256.1.1.1:80", "not an IPv4 address"),
            ("tcp://1.2.3:80", "not an IPv4 address"),
            ("tcp://:80", "missing host"),
            ("tcp://-bad.example:80", "not a valid host name"),
            ("tcp://a..b:80", "not a valid host name"),
            ("tcp://a_b:80", "not a valid host name"),
        ] {
            let server = format!("[\"{bad}\"]");
            assert_error(&[("servers", &server)], "servers[0]", message);
        }
    }

    #[test]
    fn unix_socket_path_longer_than_sun_path_is_refused() {
        let long = format!("[\"unix:///{}\"]", "s".repeat(MAX_UNIX_PATH_LEN));
        assert_error(&[("servers", &long)], "servers[0]", "longer than the");
        let fits = format!("[\"unix:///{}\"]", "s".repeat(MAX_UNIX_PATH_LEN - 1));
        config_with(&[("servers", &fits)]);
    }

    /// Found by the `config` fuzz target (fuzz/corpus/config/
    /// crash-unix-path-newline-in-error-regression): the path was printed raw.
    #[test]
    fn socket_path_error_escapes_the_path_and_stays_one_line() {
        let long = format!("\"unix://a\\nb\\u0007{}\"", "s".repeat(MAX_UNIX_PATH_LEN));
        let (key, message) = only_error(&[("control", &long)], &[]);
        assert_eq!(key, "control");
        assert!(
            message.contains(r#"socket path "conf/a\nb\u{7}sss"#),
            "{message}"
        );
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }

    #[test]
    fn servers_must_not_be_empty_or_repeat() {
        assert_error(&[("servers", "[]")], "servers", "empty");
        assert_error(
            &[(
                "servers",
                r#"["tcp://127.0.0.1:1", "unix://a", "unix://a"]"#,
            )],
            "servers[2]",
            "same address as servers[1]",
        );
        // The index names the entry as written, even after an invalid one.
        assert_eq!(
            errors(
                &[("servers", r#"["ftp://x", "unix://a", "unix://a"]"#)],
                &[]
            ),
            [
                (
                    Some("servers[0]".to_owned()),
                    "\"ftp://x\" does not start with tcp:// or unix://".to_owned()
                ),
                (
                    Some("servers[2]".to_owned()),
                    "same address as servers[1]".to_owned()
                ),
            ]
        );
        // Port 0 asks for a fresh port each time, so repeating it is two listeners.
        let config = config_with(&[("servers", r#"["tcp://127.0.0.1:0", "tcp://127.0.0.1:0"]"#)]);
        assert_eq!(config.servers.len(), 2);
    }

    #[test]
    fn control_must_differ_from_every_server() {
        assert_error(
            &[("servers", r#"["unix://a", "unix://control.sock"]"#)],
            "control",
            "same address as servers[1]",
        );
        config_with(&[
            ("servers", r#"["tcp://127.0.0.1:0"]"#),
            ("control", r#""tcp://127.0.0.1:0""#),
        ]);
    }

    #[test]
    fn short_secret_is_refused_without_quoting_it() {
        let errors = parse_with(&[("secret", r#""fifteen-bytes!!""#)], &[]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "conf/wson.toml: secret: shorter than 16 bytes"
        );
        config_with(&[("secret", r#""sixteen-bytes!!!""#)]);
    }

    #[test]
    fn secret_and_secret_file_together_are_refused() {
        assert_error(
            &[("secret_file", r#""secret""#)],
            "secret",
            "either secret or secret_file",
        );
    }

    #[test]
    fn secret_file_alone_is_accepted() {
        let config = parse_with(&[("secret_file", r#""/etc/wson/secret""#)], &["secret"]).unwrap();
        assert_eq!(
            config.secret,
            Secret::File(PathBuf::from("/etc/wson/secret"))
        );
        let (key, message) = only_error(&[("secret_file", r#""""#)], &["secret"]);
        assert_eq!(
            (key.as_str(), message.as_str()),
            ("secret_file", "empty path")
        );
    }

    #[test]
    fn domains_must_match_servers_in_number() {
        assert_error(
            &[
                ("servers", r#"["tcp://127.0.0.1:1", "unix://a"]"#),
                ("domains", r#"["localhost:1"]"#),
            ],
            "domains",
            "1 entries for 2 servers",
        );
        let config = config_with(&[("domains", r#"["localhost:8099"]"#)]);
        assert_eq!(config.domains, ["localhost:8099"]);
    }

    #[test]
    fn mode_above_0o777_is_refused() {
        // 600 in decimal is 0o1130: the likely mistake.
        assert_error(
            &[("control_socket_mode", "600")],
            "control_socket_mode",
            "write it in octal",
        );
        assert_error(
            &[("socket_mode", "0o1777")],
            "socket_mode",
            "from 0o000 to 0o777",
        );
        assert_error(
            &[("socket_mode", "-1")],
            "socket_mode",
            "from 0o000 to 0o777",
        );
        assert_eq!(config_with(&[("socket_mode", "0o660")]).socket_mode, 0o660);
    }

    #[test]
    fn outbound_buffer_must_hold_the_largest_control_frame() {
        assert_error(
            &[
                ("max_control_frame", "1000"),
                ("max_outbound_buffer", "1013"),
            ],
            "max_outbound_buffer",
            "must be at least max_control_frame + 14 = 1014",
        );
        config_with(&[
            ("max_control_frame", "1000"),
            ("max_outbound_buffer", "1014"),
        ]);
        // The default buffer is smaller than a raised control frame limit.
        assert_error(
            &[("max_control_frame", "4194304")],
            "max_outbound_buffer",
            "4194318",
        );
    }

    #[test]
    fn durations_are_whole_seconds_from_1_to_a_year() {
        for key in [
            "token_lifetime",
            "ping_interval",
            "handshake_timeout",
            "close_timeout",
            "stop_timeout",
        ] {
            assert_error(&[(key, "0")], key, "must be at least 1");
            assert_error(&[(key, "-5")], key, "must be at least 1");
            assert_error(&[(key, "31536001")], key, "at most 31536000");
            assert_error(&[(key, "9223372036854775807")], key, "at most 31536000");
        }
    }

    #[test]
    fn sizes_have_lower_bounds() {
        assert_error(
            &[("max_handshake_size", "1023")],
            "max_handshake_size",
            "at least 1024",
        );
        assert_error(
            &[("max_control_frame", "32")],
            "max_control_frame",
            "at least 33",
        );
        assert_error(
            &[("max_connections", "-1")],
            "max_connections",
            "at least 1",
        );
        for key in [
            "max_message_size",
            "max_outbound_buffer",
            "max_connections",
            "max_control_connections",
        ] {
            assert_error(&[(key, "0")], key, "at least 1");
        }
    }

    #[test]
    fn unknown_choice_names_the_allowed_values() {
        assert_error(
            &[("digest", r#""sha1""#)],
            "digest",
            r#""sha1" is not one of "md5", "hmac-sha256""#,
        );
        assert_error(
            &[("log_level", r#""INFO""#)],
            "log_level",
            r#"is not one of "error", "warn""#,
        );
        assert_error(
            &[("client_messages", r#""broadcast""#)],
            "client_messages",
            r#"one of "ignore", "echo""#,
        );
    }

    #[test]
    fn origins_must_be_present_and_not_empty() {
        assert_error(&[("origins", "[]")], "origins", "empty");
        let (key, message) = only_error(&[], &["origins"]);
        assert_eq!(key, "origins");
        assert!(message.starts_with("missing"), "{message}");
    }

    #[test]
    fn origins_must_be_exact_lowercase_serializations() {
        assert_error(
            &[("origins", r#"["http://localhost/"]"#)],
            "origins[0]",
            "no trailing slash",
        );
        assert_error(
            &[("origins", r#"["http://Example.com"]"#)],
            "origins[0]",
            "uppercase",
        );
        assert_error(
            &[("origins", r#"["localhost"]"#)],
            "origins[0]",
            "not an origin",
        );
        assert_error(
            &[("origins", r#"["http://a", "http:// a"]"#)],
            "origins[1]",
            "whitespace",
        );
        assert_error(
            &[("origins", r#"["*", "http://a"]"#)],
            "origins",
            "must be the only entry",
        );
        config_with(&[(
            "origins",
            r#"["null", "https://example.com:8443", "http://[::1]:80"]"#,
        )]);
    }

    #[test]
    fn origins_allow_exact_matches_only() {
        let list =
            config_with(&[("origins", r#"["http://localhost", "https://example.com"]"#)]).origins;
        assert!(list.allows(Some("http://localhost")));
        assert!(list.allows(Some("https://example.com")));
        assert!(!list.allows(Some("http://localhost:8080")));
        assert!(!list.allows(Some("https://EXAMPLE.com")));
        assert!(!list.allows(Some("http://localhost.evil.com")));
        assert!(!list.allows(Some("")));
        assert!(!list.allows(None));

        let any = config_with(&[("origins", r#"["*"]"#)]).origins;
        assert_eq!(any, Origins::Any);
        assert!(any.allows(Some("http://anything.example")));
        assert!(any.allows(None));
    }

    #[test]
    fn several_errors_are_reported_at_once() {
        let errors = errors(
            &[
                ("typo", "1"),
                ("servers", r#"["ftp://x", "tcp://127.0.0.1:99999"]"#),
                ("secret", r#""short""#),
                ("ping_interval", "0"),
                ("digest", r#""sha1""#),
                ("socket_mode", "777"),
            ],
            &["control"],
        );
        let keys: Vec<_> = errors
            .iter()
            .map(|(key, _)| key.as_deref().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "typo",
                "servers[0]",
                "servers[1]",
                "control",
                "secret",
                "digest",
                "ping_interval",
                "socket_mode"
            ]
        );
    }

    #[test]
    fn no_error_message_contains_an_inline_secret() {
        let secret = "\"0123456789abcdef-topsecret\"";
        for set in [
            vec![("secret", secret), ("secret_file", r#""x""#)],
            vec![("secret", secret), ("servers", "[]"), ("origins", "5")],
        ] {
            for (_, message) in errors(&set, &[]) {
                assert!(!message.contains("topsecret"), "{message}");
            }
        }
        let config = config_with(&[("secret", secret)]);
        assert!(!format!("{config:?}").contains("topsecret"));
    }

    #[test]
    fn load_reads_the_file_and_names_it_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wson.toml");
        fs::write(&file, text(&[("pid", r#""run/wson.pid""#)], &[])).unwrap();
        let config = load(&file).unwrap();
        assert_eq!(config.file, file);
        assert_eq!(config.pid, dir.path().join("run/wson.pid"));

        let missing = dir.path().join("missing.toml");
        let errors = load(&missing).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, missing);
        assert_eq!(errors[0].key, None);
        assert!(
            errors[0].to_string().contains("No such file"),
            "{}",
            errors[0]
        );
    }

    fn file_config(dir: &Path) -> Config {
        let file = dir.join("wson.toml");
        parse(&text(&[("secret_file", r#""secret""#)], &["secret"]), &file).unwrap()
    }

    #[test]
    fn inline_secret_resolves_to_its_bytes() {
        let resolved = resolve_secret(&config_with(&[]), false).unwrap();
        assert_eq!(resolved.bytes, SECRET.as_bytes());
        assert!(!resolved.created);
        assert!(!format!("{resolved:?}").contains(SECRET));
    }

    #[test]
    fn missing_secret_file_is_created_0600_with_64_hex_characters() {
        let dir = tempfile::tempdir().unwrap();
        let config = file_config(dir.path());
        let path = dir.path().join("secret");

        let resolved = resolve_secret(&config, true).unwrap();
        assert!(resolved.created);
        assert_eq!(resolved.bytes.len(), 64);
        assert!(
            resolved
                .bytes
                .iter()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_eq!(fs::read(&path).unwrap(), resolved.bytes);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // The next start reads the same secret and creates nothing.
        let again = resolve_secret(&config, true).unwrap();
        assert_eq!(again.bytes, resolved.bytes);
        assert!(!again.created);
    }

    #[test]
    fn missing_secret_file_without_create_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve_secret(&file_config(dir.path()), false).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("secret_file"));
        assert!(
            error
                .message
                .contains(&dir.path().join("secret").display().to_string()),
            "{error}"
        );
        assert!(!dir.path().join("secret").exists());
    }

    #[test]
    fn secret_file_in_a_missing_folder_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let config = file_config(&dir.path().join("nowhere"));
        let error = resolve_secret(&config, true).unwrap_err();
        assert!(error.message.contains("cannot create"), "{error}");
    }

    #[test]
    fn secret_file_trailing_newline_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "  0123456789abcdef \r\n\n").unwrap();
        let resolved = resolve_secret(&file_config(dir.path()), true).unwrap();
        // Only trailing whitespace goes: leading bytes are part of the secret.
        assert_eq!(resolved.bytes, b"  0123456789abcdef");
        assert!(!resolved.created);
    }

    #[test]
    fn short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "0123456789abcde\n").unwrap();
        let error = resolve_secret(&file_config(dir.path()), true).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("secret_file"));
        assert!(
            error.message.ends_with("secret: shorter than 16 bytes"),
            "{error}"
        );
        assert!(!error.message.contains("0123456789abcde"), "{error}");
    }

    #[test]
    fn oversized_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let len = usize::try_from(MAX_SECRET_FILE_LEN).unwrap() + 1;
        fs::write(dir.path().join("secret"), "a".repeat(len)).unwrap();
        let error = resolve_secret(&file_config(dir.path()), false).unwrap_err();
        assert!(error.message.contains("longer than 4096"), "{error}");
    }

    #[test]
    fn secret_file_readable_by_others_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "0123456789abcdef").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let resolved = resolve_secret(&file_config(dir.path()), false).unwrap();
        assert_eq!(resolved.bytes, b"0123456789abcdef");
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_names_the_file(text in "(?s).{0,200}") {
            if let Err(errors) = parse(&text, Path::new(FILE)) {
                proptest::prop_assert!(!errors.is_empty());
                for error in errors {
                    proptest::prop_assert_eq!(&error.file, Path::new(FILE));
                    proptest::prop_assert!(!error.to_string().contains('\n'));
                }
            }
        }

        #[test]
        fn tcp_port_is_accepted_exactly_up_to_65535(port in 0u32..100_000) {
            let server = format!("[\"tcp://127.0.0.1:{port}\"]");
            let result = parse_with(&[("servers", &server)], &[]);
            proptest::prop_assert_eq!(result.is_ok(), port <= 65_535);
        }
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), b"000fa5ff");
    }
}
