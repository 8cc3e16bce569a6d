//! One TOML value to one typed value: the parsers the key declarations in `keys.rs` name, and
//! the types they produce (endpoints, origins, the enums of choice keys).
//!
//! A parser takes the [`Checker`], the key as messages name it (`max_connections`,
//! `topics.max_topics`; a list item adds `[index]`) and the value; it returns the typed value,
//! or `None` after recording every problem it found. Parsers never read a file or the clock.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use toml::Value;

use super::{ConfigError, MAX_SECONDS};
use crate::access::{Cidr, Proxy};
use crate::auth::Digest;

/// Unix socket paths live in `sockaddr_un.sun_path` (108 bytes on Linux, 104 elsewhere),
/// terminated by a NUL byte.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const MAX_UNIX_PATH_LEN: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const MAX_UNIX_PATH_LEN: usize = 103;

/// The longest group name `socket_group` and `control_socket_group` accept (the shadow
/// utilities' default limit).
pub const MAX_GROUP_NAME_LEN: usize = 32;

/// Collects the problems found while a file is read; every parser records into it.
pub(super) struct Checker {
    file: PathBuf,
    /// The config file's folder: relative paths are joined with it.
    folder: PathBuf,
    errors: Vec<ConfigError>,
}

impl Checker {
    pub(super) fn new(file: &Path) -> Checker {
        Checker {
            file: file.to_path_buf(),
            folder: file.parent().unwrap_or(Path::new("")).to_path_buf(),
            errors: Vec::new(),
        }
    }

    pub(super) fn folder(&self) -> &Path {
        &self.folder
    }

    pub(super) fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: Some(key.into()),
            message: message.into(),
        });
    }

    pub(super) fn wrong_type<T>(&mut self, key: &str, expected: &str, found: &Value) -> Option<T> {
        self.error(
            key,
            format!("expected {expected}, found {}", found.type_str()),
        );
        None
    }

    /// How many problems were recorded so far: a parser compares it before and after.
    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

// ---------------------------------------------------------------------------------------------
// Types of values
// ---------------------------------------------------------------------------------------------

/// A socket address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// "HOST:PORT" exactly as written after `tcp://`; HOST is IPv4, `[IPv6]` or a host name.
    Tcp(String),
    /// "HOST:PORT" after `tls://`: TCP with TLS, the certificate from `[tls]`.
    Tls(String),
    /// The socket file's path, joined with the config file's folder when relative.
    Unix(PathBuf),
}

impl Endpoint {
    /// Port 0 asks the kernel for a free port, so two such endpoints are different sockets.
    pub(super) fn is_ephemeral(&self) -> bool {
        match self {
            Endpoint::Tcp(address) | Endpoint::Tls(address) => address
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
            Endpoint::Tls(address) => write!(f, "tls://{address}"),
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

/// A key whose value is one of a few names (`digest = "md5"`).
pub trait Choice: Copy + 'static {
    /// Each name with its value, in the order an error message lists them.
    const CHOICES: &'static [(&'static str, Self)];
}

/// What the server does with a complete message a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessages {
    /// Drop it, as the PHP wson does: clients only listen.
    Ignore,
    /// Send it back to the same client (the conformance tests need a peer that answers).
    Echo,
    /// Hand it to the event listeners as a `message` event.
    Forward,
}

impl Choice for ClientMessages {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("ignore", ClientMessages::Ignore),
        ("echo", ClientMessages::Echo),
        ("forward", ClientMessages::Forward),
    ];
}

/// What happens when a second connection presents a token that is already connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReuse {
    /// The newcomer gets HTTP 429, as in ws(s)on.
    Refuse,
    /// The newcomer takes the token; the old connection is closed.
    Replace,
    /// Both keep it; a message to the token reaches every connection holding it.
    Share,
}

impl Choice for TokenReuse {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("refuse", TokenReuse::Refuse),
        ("replace", TokenReuse::Replace),
        ("share", TokenReuse::Share),
    ];
}

/// Who admits a WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The signed token cookies alone.
    Cookie,
    /// The authorizer alone: no wson cookies needed, its answer names the user.
    Authorizer,
    /// Valid cookies first, then the authorizer's answer.
    CookieAndAuthorizer,
}

impl Choice for AuthMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("cookie", AuthMode::Cookie),
        ("authorizer", AuthMode::Authorizer),
        ("cookie+authorizer", AuthMode::CookieAndAuthorizer),
    ];
}

/// What an upgrade gets when the authorizer does not answer in time or none is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerFallback {
    /// Refused with `[authorizer] fallback_status`.
    Deny,
    /// Admitted as the user its cookies name.
    Allow,
}

impl Choice for AuthorizerFallback {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("deny", AuthorizerFallback::Deny),
        ("allow", AuthorizerFallback::Allow),
    ];
}

/// The header a trusted proxy writes the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, most load balancers).
    XForwardedFor,
    /// `Forwarded: for=...` (RFC 7239).
    Forwarded,
}

impl Choice for ForwardedHeader {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("x-forwarded-for", ForwardedHeader::XForwardedFor),
        ("forwarded", ForwardedHeader::Forwarded),
    ];
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time LEVEL message key=value`, values quoted and escaped when needed.
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl Choice for LogFormat {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("logfmt", LogFormat::Logfmt), ("json", LogFormat::Json)];
}

impl Choice for crate::tls::TlsVersion {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("1.2", crate::tls::TlsVersion::V1_2),
        ("1.3", crate::tls::TlsVersion::V1_3),
    ];
}

impl Choice for Digest {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("md5", Digest::Md5), ("hmac-sha256", Digest::HmacSha256)];
}

impl Choice for LevelFilter {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("error", LevelFilter::Error),
        ("warn", LevelFilter::Warn),
        ("info", LevelFilter::Info),
        ("debug", LevelFilter::Debug),
        ("trace", LevelFilter::Trace),
        ("off", LevelFilter::Off),
    ];
}

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

pub(super) fn string(checker: &mut Checker, key: &str, value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        other => checker.wrong_type(key, "a string", &other),
    }
}

pub(super) fn non_empty_string(checker: &mut Checker, key: &str, value: Value) -> Option<String> {
    let text = string(checker, key, value)?;
    if text.is_empty() {
        checker.error(key, "must not be empty");
        return None;
    }
    Some(text)
}

/// A readable file of PEM certificates (a certificate authority's).
pub(super) fn pem_certificates(checker: &mut Checker, key: &str, value: Value) -> Option<PathBuf> {
    let path = path(checker, key, value)?;
    match std::fs::read(&path) {
        Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(path),
        Ok(_) => {
            let shown = path.display();
            checker.error(key, format!("{shown} holds no PEM certificate"));
            None
        }
        Err(error) => {
            checker.error(key, format!("cannot read {}: {error}", path.display()));
            None
        }
    }
}

/// A Redis URL the client library reads: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
/// `rediss://` for TLS, or `redis+unix:///PATH` / `unix:///PATH`.
pub(super) fn redis_url(checker: &mut Checker, key: &str, value: Value) -> Option<String> {
    let text = non_empty_string(checker, key, value)?;
    match redis::Client::open(text.as_str()) {
        Ok(_) => Some(text),
        Err(error) => {
            checker.error(
                key,
                format!(
                    "not a Redis URL (redis://HOST:PORT, rediss://HOST:PORT, redis+unix:///PATH): {error}"
                ),
            );
            None
        }
    }
}

pub(super) fn strings(checker: &mut Checker, key: &str, value: Value) -> Option<Vec<String>> {
    let Value::Array(items) = value else {
        return checker.wrong_type(key, "a list of strings", &value);
    };
    let mut strings = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) => strings.push(text),
            other => {
                checker.wrong_type::<()>(&format!("{key}[{index}]"), "a string", &other);
                valid = false;
            }
        }
    }
    valid.then_some(strings)
}

/// A non-empty path, joined with the config file's folder when relative.
pub(super) fn path(checker: &mut Checker, key: &str, value: Value) -> Option<PathBuf> {
    let text = string(checker, key, value)?;
    if text.is_empty() {
        checker.error(key, "empty path");
        return None;
    }
    Some(checker.folder().join(text))
}

fn integer(checker: &mut Checker, key: &str, value: Value) -> Option<i64> {
    match value {
        Value::Integer(number) => Some(number),
        other => checker.wrong_type(key, "an integer", &other),
    }
}

/// Whole seconds from 1 to [`MAX_SECONDS`].
pub(super) fn seconds(checker: &mut Checker, key: &str, value: Value) -> Option<Duration> {
    let number = integer(checker, key, value)?;
    match u64::try_from(number) {
        Ok(seconds @ 1..=MAX_SECONDS) => Some(Duration::from_secs(seconds)),
        Ok(0) | Err(_) => {
            checker.error(key, "must be at least 1 (whole seconds)");
            None
        }
        Ok(_) => {
            checker.error(
                key,
                format!("must be at most {MAX_SECONDS} seconds (one year)"),
            );
            None
        }
    }
}

/// Whole seconds up to [`MAX_SECONDS`]; 0 means none.
pub(super) fn seconds_or_none(
    checker: &mut Checker,
    key: &str,
    value: Value,
) -> Option<Option<Duration>> {
    match value {
        Value::Integer(0) => Some(None),
        other => seconds(checker, key, other).map(Some),
    }
}

pub(super) fn boolean(checker: &mut Checker, key: &str, value: Value) -> Option<bool> {
    match value {
        Value::Boolean(flag) => Some(flag),
        other => checker.wrong_type(key, "true or false", &other),
    }
}

/// WAMP realm names: URIs by the loose rule, without the reserved `wamp.` prefix, no repeats.
pub(super) fn realms(checker: &mut Checker, key: &str, value: Value) -> Option<Vec<String>> {
    let realms = strings(checker, key, value)?;
    let mut valid = true;
    for (index, realm) in realms.iter().enumerate() {
        let problem = match crate::control::topic::check_uri(realm) {
            Err(error) => Some(format!("{:?} {error}", realm)),
            Ok(()) if crate::control::topic::is_reserved(realm) => {
                Some(format!("{realm:?} starts with the reserved \"wamp.\""))
            }
            Ok(()) if realms[..index].contains(realm) => Some(format!("{realm:?} is repeated")),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            checker.error(format!("{key}[{index}]"), problem);
            valid = false;
        }
    }
    valid.then_some(realms)
}

/// A list of CIDR ranges (`"10.0.0.0/8"`, `"2001:db8::/32"`, a bare address for one host).
/// A range with host bits set is refused, naming the range probably meant.
pub(super) fn cidrs(checker: &mut Checker, key: &str, value: Value) -> Option<Vec<Cidr>> {
    let items = strings(checker, key, value)?;
    let mut ranges = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, item) in items.iter().enumerate() {
        match Cidr::parse(item) {
            Ok(range) => ranges.push(range),
            Err(error) => {
                checker.error(format!("{key}[{index}]"), format!("{:?}: {error}", item));
                valid = false;
            }
        }
    }
    valid.then_some(ranges)
}

/// `[access] trusted_proxies`: CIDR ranges, and `"unix"` for the Unix-socket listeners.
pub(super) fn proxies(checker: &mut Checker, key: &str, value: Value) -> Option<Vec<Proxy>> {
    let items = strings(checker, key, value)?;
    let mut proxies = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, item) in items.iter().enumerate() {
        if item == "unix" {
            proxies.push(Proxy::Unix);
            continue;
        }
        match Cidr::parse(item) {
            Ok(range) => proxies.push(Proxy::Range(range)),
            Err(error) => {
                checker.error(
                    format!("{key}[{index}]"),
                    format!(
                        "{:?}: {error} (or \"unix\" for the unix:// listeners)",
                        item
                    ),
                );
                valid = false;
            }
        }
    }
    valid.then_some(proxies)
}

/// A count or a size in bytes, at least `min`.
pub(super) fn size(min: usize) -> impl Fn(&mut Checker, &str, Value) -> Option<usize> {
    move |checker: &mut Checker, key: &str, value: Value| {
        let number = integer(checker, key, value)?;
        match usize::try_from(number) {
            Ok(size) if size >= min => Some(size),
            Ok(_) => {
                checker.error(key, format!("must be at least {min}"));
                None
            }
            Err(_) if number < 0 => {
                checker.error(key, format!("must be at least {min}"));
                None
            }
            Err(_) => {
                checker.error(key, format!("must be at most {}", usize::MAX));
                None
            }
        }
    }
}

/// An integer from `min` to `max`, both included.
pub(super) fn range<T>(min: T, max: T) -> impl Fn(&mut Checker, &str, Value) -> Option<T>
where
    T: TryFrom<i64> + PartialOrd + fmt::Display + Copy,
{
    move |checker: &mut Checker, key: &str, value: Value| {
        let number = integer(checker, key, value)?;
        match T::try_from(number) {
            Ok(found) if found < min => checker.error(key, format!("must be at least {min}")),
            Ok(found) if found > max => checker.error(key, format!("must be at most {max}")),
            Ok(found) => return Some(found),
            Err(_) if number < 0 => checker.error(key, format!("must be at least {min}")),
            Err(_) => checker.error(key, format!("must be at most {max}")),
        }
        None
    }
}

/// A key without a default: `Some` of what `parse` gives when the key is set.
pub(super) fn some<T>(
    parse: impl Fn(&mut Checker, &str, Value) -> Option<T>,
) -> impl Fn(&mut Checker, &str, Value) -> Option<Option<T>> {
    move |checker: &mut Checker, key: &str, value: Value| parse(checker, key, value).map(Some)
}

/// A Unix file mode from 0o000 to 0o777.
pub(super) fn mode(checker: &mut Checker, key: &str, value: Value) -> Option<u32> {
    let number = integer(checker, key, value)?;
    match u32::try_from(number) {
        Ok(mode @ 0..=0o777) => Some(mode),
        _ => {
            // A mode written in decimal (600) lands here: it means 0o1130.
            checker.error(
                key,
                format!(
                    "{number} is not a file mode from 0o000 to 0o777: write it in octal, like 0o600"
                ),
            );
            None
        }
    }
}

/// One of `T`'s names.
pub(super) fn choice<T: Choice>(checker: &mut Checker, key: &str, value: Value) -> Option<T> {
    let text = string(checker, key, value)?;
    if let Some((_, choice)) = T::CHOICES.iter().find(|(name, _)| *name == text) {
        return Some(*choice);
    }
    let names: Vec<String> = T::CHOICES
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    checker.error(
        key,
        format!(
            "\"{}\" is not one of {}",
            text.escape_debug(),
            names.join(", ")
        ),
    );
    None
}

/// A group's name, checked as a name only: whether the group exists is for the start to say
/// (it sets the socket file's group), so `wson check` stays independent of the machine.
pub(super) fn group_name(checker: &mut Checker, key: &str, value: Value) -> Option<String> {
    let name = string(checker, key, value)?;
    // The shadow utilities' rule: [A-Za-z0-9_.-], a trailing $ allowed (Samba machine
    // accounts), at most 32 bytes.
    let body = name.strip_suffix('$').unwrap_or(&name);
    let valid = !body.is_empty()
        && name.len() <= MAX_GROUP_NAME_LEN
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if !valid {
        checker.error(
            key,
            format!(
                "\"{}\" is not a group name: 1 to {MAX_GROUP_NAME_LEN} bytes of A-Z, a-z, 0-9, \
                 '_', '.' and '-', optionally ending in '$'",
                name.escape_debug()
            ),
        );
        return None;
    }
    Some(name)
}

/// `tcp://HOST:PORT`, `tls://HOST:PORT` or `unix://PATH`.
pub(super) fn endpoint(checker: &mut Checker, key: &str, value: Value) -> Option<Endpoint> {
    let Value::String(text) = value else {
        return checker.wrong_type(key, "a string", &value);
    };
    match parse_endpoint(&text, checker.folder()) {
        Ok(endpoint) => Some(endpoint),
        Err(message) => {
            checker.error(key, message);
            None
        }
    }
}

/// A non-empty list of endpoints, none repeated (except port 0, a fresh port each time).
pub(super) fn servers(checker: &mut Checker, key: &str, value: Value) -> Option<Vec<Endpoint>> {
    let Value::Array(items) = value else {
        return checker.wrong_type(key, "a list of addresses", &value);
    };
    if items.is_empty() {
        checker.error(key, "empty: list at least one address to listen on");
        return None;
    }
    // Each valid endpoint with its index, so a duplicate names the right entry even
    // after an invalid one.
    let mut servers: Vec<(usize, Endpoint)> = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, item) in items.into_iter().enumerate() {
        let item_key = format!("{key}[{index}]");
        let Some(endpoint) = endpoint(checker, &item_key, item) else {
            valid = false;
            continue;
        };
        let same = servers.iter().find(|(_, server)| *server == endpoint);
        if let (Some((first, _)), false) = (same, endpoint.is_ephemeral()) {
            checker.error(item_key, format!("same address as {key}[{first}]"));
            valid = false;
        }
        servers.push((index, endpoint));
    }
    valid.then(|| servers.into_iter().map(|(_, endpoint)| endpoint).collect())
}

/// `[http] listen`: like `servers`, but empty (the default) turns the HTTP API off.
pub(super) fn listen_or_none(
    checker: &mut Checker,
    key: &str,
    value: Value,
) -> Option<Vec<Endpoint>> {
    match value {
        Value::Array(items) if items.is_empty() => Some(Vec::new()),
        value => servers(checker, key, value),
    }
}

/// The HTTP API key, which no `Debug` output shows.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub Vec<u8>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(<{} bytes redacted>)", self.0.len())
    }
}

/// An inline `[http] api_key`: at least `MIN_SECRET_LEN` bytes, as the cookie secret.
pub(super) fn api_key(checker: &mut Checker, key: &str, value: Value) -> Option<ApiKey> {
    // The value itself never goes into a message.
    let text = string(checker, key, value)?;
    if text.len() < super::MIN_SECRET_LEN {
        checker.error(key, format!("shorter than {} bytes", super::MIN_SECRET_LEN));
        return None;
    }
    Some(ApiKey(text.into_bytes()))
}

/// A non-empty list of exact origins, or `["*"]`.
pub(super) fn origins(checker: &mut Checker, key: &str, value: Value) -> Option<Origins> {
    let list = strings(checker, key, value)?;
    if list.is_empty() {
        checker.error(
            key,
            "empty: no browser could connect; list the allowed origins, or \"*\" for any",
        );
        return None;
    }
    if list.iter().any(|origin| origin == "*") {
        if list.len() > 1 {
            checker.error(key, "\"*\" allows any origin, so it must be the only entry");
            return None;
        }
        return Some(Origins::Any);
    }
    let mut valid = true;
    for (index, origin) in list.iter().enumerate() {
        if let Err(message) = check_origin(origin) {
            checker.error(format!("{key}[{index}]"), message);
            valid = false;
        }
    }
    valid.then_some(Origins::List(list))
}

/// `tcp://HOST:PORT`, `tls://HOST:PORT` or `unix://PATH`, the path joined with `folder` when
/// relative.
fn parse_endpoint(text: &str, folder: &Path) -> Result<Endpoint, String> {
    if let Some(address) = text.strip_prefix("tcp://") {
        check_tcp_address(address)?;
        Ok(Endpoint::Tcp(address.to_owned()))
    } else if let Some(address) = text.strip_prefix("tls://") {
        check_tcp_address(address)?;
        Ok(Endpoint::Tls(address.to_owned()))
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
            "\"{}\" does not start with tcp://, tls:// or unix://",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;

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
    fn endpoint_without_tcp_or_unix_scheme_is_refused() {
        assert_error(
            &[("control", r#""http://127.0.0.1:80""#)],
            "control",
            "does not start with tcp://, tls:// or unix://",
        );
        assert_error(
            &[("servers", r#"["127.0.0.1:80"]"#)],
            "servers[0]",
            "does not start with tcp://, tls:// or unix://",
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
                    "\"ftp://x\" does not start with tcp://, tls:// or unix://".to_owned()
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

    proptest::proptest! {
        #[test]
        fn tcp_port_is_accepted_exactly_up_to_65535(port in 0u32..100_000) {
            let server = format!("[\"tcp://127.0.0.1:{port}\"]");
            let result = parse_with(&[("servers", &server)], &[]);
            proptest::prop_assert_eq!(result.is_ok(), port <= 65_535);
        }
    }

    #[test]
    fn group_names_follow_the_shadow_utilities_rule() {
        for good in [
            "www-data",
            "wson",
            "_www",
            "a.b",
            "MACHINE$",
            "g1",
            &"g".repeat(32),
        ] {
            let value = format!("\"{good}\"");
            let config = config_with(&[("socket_group", &value), ("control_socket_group", &value)]);
            assert_eq!(config.socket_group.as_deref(), Some(good));
            assert_eq!(config.control_socket_group.as_deref(), Some(good));
        }
        for bad in [
            "",
            "$",
            "a b",
            "a$b",
            "a:b",
            "wöson",
            "a\\u0000b",
            &"g".repeat(33),
        ] {
            let value = format!("\"{bad}\"");
            let (key, message) = only_error(&[("socket_group", &value)], &[]);
            assert_eq!(key, "socket_group");
            assert!(message.contains("is not a group name"), "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }

    #[test]
    fn optional_keys_without_a_default_are_none_when_absent() {
        let config = config_with(&[]);
        assert_eq!(config.listen_backlog, None);
        assert_eq!(config.socket_group, None);
        assert_eq!(config.control_socket_group, None);
    }

    #[test]
    fn every_choice_name_maps_to_its_value() {
        fn round_trip<T: Choice + PartialEq + fmt::Debug>(key: &'static str, names: &[&str]) {
            let listed: Vec<&str> = T::CHOICES.iter().map(|(name, _)| *name).collect();
            assert_eq!(listed, names);
            for (name, expected) in T::CHOICES {
                let mut checker = Checker::new(Path::new(FILE));
                let found = choice::<T>(&mut checker, key, Value::String((*name).to_owned()));
                assert_eq!(found, Some(*expected));
                assert!(checker.into_errors().is_empty());
            }
        }
        round_trip::<ClientMessages>("client_messages", &["ignore", "echo", "forward"]);
        round_trip::<TokenReuse>("users.token_reuse", &["refuse", "replace", "share"]);
        round_trip::<AuthMode>("auth", &["cookie", "authorizer", "cookie+authorizer"]);
        round_trip::<AuthorizerFallback>("authorizer.fallback", &["deny", "allow"]);
        round_trip::<LogFormat>("log_format", &["logfmt", "json"]);
        round_trip::<Digest>("digest", &["md5", "hmac-sha256"]);
        // The config's names are the ones auth.rs prints.
        for (name, digest) in Digest::CHOICES {
            assert_eq!(digest.name(), *name);
        }
    }

    #[test]
    fn client_messages_forward_is_accepted() {
        let config = config_with(&[("client_messages", r#""forward""#)]);
        assert_eq!(config.client_messages, ClientMessages::Forward);
    }
}
