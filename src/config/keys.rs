//! Every key of the configuration file, each declared once, and the rules across keys.
//!
//! An entry gives the key's doc, name, type, parser with its bounds, default (or that it is
//! required) and whether a change applies on reload or needs a restart; `declare.rs` derives
//! the rest. Top-level keys are fields of [`Config`]; a `[table]`'s keys are fields of its
//! struct (`config.topics.max_topics`). To add a key: one entry here (a parser from
//! `values.rs`, or a new one there), its documentation in `conf/wson.toml`, and a rule below
//! if it constrains another key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use toml::Table;

use super::declare::{ApplyOn, FromDefault, KeySpec, Presence, Section, TableSpec};
use super::secret::{self, Secret};
use super::values::{
    self, ApiKey, AuthMode, AuthorizerFallback, Checker, ClientMessages, Endpoint, ForwardedHeader,
    LogFormat, Origins, TokenReuse,
};
use super::wamp_realm::{self, WampRealms};
use super::{MAX_FRAME_HEADER_LEN, MIN_HANDSHAKE_SIZE};
use crate::access::{Cidr, Proxy};
use crate::auth::Digest;
use crate::tls::{Culprit, TlsAcceptor, TlsVersion};
use crate::token::TOKEN_LEN;

/// The smallest `[events] max_queue`: below it a listener would be dropped for a few events.
pub const MIN_EVENT_QUEUE: usize = 65_536;
/// Room for a `message` event's fields besides the client's message (token, user, lengths):
/// `[events] max_queue` is at least `max_message_size` plus this.
pub const MAX_EVENT_FIELDS_LEN: usize = 1024;

config_keys! {
    /// A validated configuration: every value is in range and every path is resolved.
    top {
        /// Where WebSocket clients connect, `tcp://HOST:PORT`, `tls://HOST:PORT` or
        /// `unix://PATH`.
        servers: Vec<Endpoint> = values::servers, required(), restart;
        /// The public name of each server, in the same order: empty, or one per server.
        domains: Vec<String> = values::strings, default(DOMAINS = Vec::new()), reload;
        /// Where backend scripts connect (the control protocol).
        control: Endpoint = values::endpoint, required(), restart;
        /// The pid file, written at start and removed at exit.
        pid: PathBuf = values::path, default(PID: &str = "wson.pid"), restart;
        /// The secret that signs the token cookies: `secret` inline, or `secret_file`.
        secret | secret_file: Secret = secret::read, custom(), reload;
        /// The `Origin` values allowed to open a WebSocket.
        origins: Origins = values::origins,
            required("missing: list the allowed origins, or \"*\" for any"), reload;
        /// How long a token cookie stays valid after its `time`.
        token_lifetime: Duration = values::seconds,
            default(TOKEN_LIFETIME = Duration::from_secs(86_400)), reload;
        /// How the backend computes the `digest` cookie.
        digest: Digest = values::choice, default(DIGEST = Digest::Md5), reload;
        /// Who admits an upgrade: the cookies, the authorizer, or both.
        auth: AuthMode = values::choice, default(AUTH = AuthMode::Cookie), reload;
        /// Time between pings to each client.
        ping_interval: Duration = values::seconds,
            default(PING_INTERVAL = Duration::from_secs(15)), reload;
        /// Time a client has to complete the HTTP upgrade.
        handshake_timeout: Duration = values::seconds,
            default(HANDSHAKE_TIMEOUT = Duration::from_secs(10)), reload;
        /// Time to wait for a client's Close reply.
        close_timeout: Duration = values::seconds,
            default(CLOSE_TIMEOUT = Duration::from_secs(5)), reload;
        /// Time `wson stop` waits for the server to exit.
        stop_timeout: Duration = values::seconds,
            default(STOP_TIMEOUT = Duration::from_secs(10)), reload;
        /// Largest HTTP upgrade request in bytes; at least 1024, so a browser's headers fit.
        max_handshake_size: usize = values::size(MIN_HANDSHAKE_SIZE),
            default(MAX_HANDSHAKE_SIZE = 8192), reload;
        /// Largest message a client may send, in bytes.
        max_message_size: usize = values::size(1),
            default(MAX_MESSAGE_SIZE = 1_048_576), reload;
        /// Bytes queued for one client before it is dropped as a slow consumer.
        max_outbound_buffer: usize = values::size(1),
            default(MAX_OUTBOUND_BUFFER = 4_194_304), reload;
        /// Most clients connected at once.
        max_connections: usize = values::size(1),
            default(MAX_CONNECTIONS = 10_000), reload;
        /// Most refused or failed sockets kept while their peer closes; they do not count
        /// toward `max_connections`.
        max_lingering: usize = values::size(1), default(MAX_LINGERING = 256), reload;
        /// Largest control frame payload in bytes: a token plus at least one byte.
        max_control_frame: usize = values::size(TOKEN_LEN + 1),
            default(MAX_CONTROL_FRAME = 1_048_576), reload;
        /// Most backend connections to the control socket at once.
        max_control_connections: usize = values::size(1),
            default(MAX_CONTROL_CONNECTIONS = 128), reload;
        /// Most items in one page of a control list reply.
        max_list_page: usize = values::size(1), default(MAX_LIST_PAGE = 1000), reload;
        /// Mode of each unix:// server socket file.
        socket_mode: u32 = values::mode, default(SOCKET_MODE = 0o666), restart;
        /// Mode of a unix:// control socket file.
        control_socket_mode: u32 = values::mode, default(CONTROL_SOCKET_MODE = 0o600), restart;
        /// Group owning the unix:// server socket files; `None`: the server's group.
        socket_group: Option<String> = values::some(values::group_name),
            default(SOCKET_GROUP = None), restart;
        /// Group owning a unix:// control socket file; `None`: the server's group.
        control_socket_group: Option<String> = values::some(values::group_name),
            default(CONTROL_SOCKET_GROUP = None), restart;
        /// Accept queue length of every listener; `None`: the kernel's `somaxconn`.
        listen_backlog: Option<u32> = values::some(values::range(1, 65_535)),
            default(LISTEN_BACKLOG = None), restart;
        /// SO_REUSEPORT on the tcp:// and tls:// WebSocket listeners: several nodes share one
        /// port.
        reuse_port: bool = values::boolean, default(REUSE_PORT = false), restart;
        /// What the server does with a complete message a client sends.
        client_messages: ClientMessages = values::choice,
            default(CLIENT_MESSAGES = ClientMessages::Ignore), reload;
        /// Where `wson start --daemon` writes its log.
        log_file: PathBuf = values::path, default(LOG_FILE: &str = "wson.log"), restart;
        /// How much to log.
        log_level: LevelFilter = values::choice, default(LOG_LEVEL = LevelFilter::Info), reload;
        /// How log lines are written.
        log_format: LogFormat = values::choice, default(LOG_FORMAT = LogFormat::Logfmt), restart;
    }

    /// Users: the `user` cookie, or the name the authorizer gives.
    [users] Users {
        /// What a connection presenting an already connected token gets.
        token_reuse: TokenReuse = values::choice,
            default(TOKEN_REUSE = TokenReuse::Refuse), reload;
    }

    /// Topics the backend subscribes tokens and users to.
    [topics] Topics {
        /// Most topics one connection is subscribed to.
        max_per_connection: usize = values::size(1), default(MAX_PER_CONNECTION = 64), reload;
        /// Longest topic name in bytes.
        max_name_length: usize = values::range(1, 255), default(MAX_NAME_LENGTH = 255), reload;
        /// Most topics at once.
        max_topics: usize = values::size(1), default(MAX_TOPICS = 100_000), reload;
        /// Most user-level subscriptions, all users together.
        max_user_subscriptions: usize = values::size(1),
            default(MAX_USER_SUBSCRIPTIONS = 100_000), reload;
    }

    /// History of topics (plain and WAMP alike), for clients that resume after a reconnect.
    [history] History {
        /// Topic prefixes that keep a history (`""`: every topic). Empty: history off.
        prefixes: Vec<String> = values::strings, default(PREFIXES = Vec::new()), reload;
        /// Most publications kept per topic.
        size: usize = values::size(1), default(SIZE = 100), reload;
        /// Seconds a publication is kept.
        max_age: Duration = values::seconds,
            default(MAX_AGE = Duration::from_secs(300)), reload;
        /// Bytes all histories may hold together; the oldest publications go first.
        max_bytes: usize = values::size(1), default(MAX_BYTES = 67_108_864), reload;
        /// Most topics one upgrade's `resume` names.
        max_resume_topics: usize = values::size(1), default(MAX_RESUME_TOPICS = 16), reload;
        /// With `[cluster]`: most live publications held for one client whose resume is
        /// fetched from Redis.
        max_held: usize = values::size(1), default(MAX_HELD = 1000), reload;
    }

    /// Events: what control connections listening to events hear.
    [events] Events {
        /// Bytes queued to one event listener before it is dropped.
        max_queue: usize = values::size(MIN_EVENT_QUEUE),
            default(MAX_QUEUE = 16_777_216), reload;
    }

    /// The connect authorizer: a control connection deciding on each upgrade.
    [authorizer] Authorizer {
        /// How long an upgrade waits for the authorizer's answer.
        timeout: Duration = values::seconds, default(TIMEOUT = Duration::from_secs(5)), reload;
        /// What an upgrade gets on timeout or with no authorizer connected.
        fallback: AuthorizerFallback = values::choice,
            default(FALLBACK = AuthorizerFallback::Deny), reload;
        /// HTTP status of a fallback deny.
        fallback_status: u16 = values::range(400, 599), default(FALLBACK_STATUS = 503), reload;
        /// Most upgrades waiting for an answer at once.
        max_pending: usize = values::size(1), default(MAX_PENDING = 1000), reload;
    }

    /// The WAMP v2 router: its realms and the bounds of its sessions.
    [wamp] Wamp {
        /// Realms WAMP clients may join; the first is the backend realm. Empty: WAMP off.
        realms: Vec<String> = values::realms, default(REALMS: &[&str] = &["realm1"]), reload;
        /// The authrole of a session authenticated by the wson cookies.
        authrole: String = values::string, default(AUTHROLE: &str = "user"), reload;
        /// URIs by the strict rule (lower-case letters, digits and `_`) instead of the loose.
        strict_uris: bool = values::boolean, default(STRICT_URIS = false), reload;
        /// Most WAMP sessions at once (the backend's included).
        max_sessions: usize = values::size(1), default(MAX_SESSIONS = 10_000), reload;
        /// Most subscriptions one session holds.
        max_subscriptions_per_session: usize = values::size(1),
            default(MAX_SUBSCRIPTIONS_PER_SESSION = 1000), reload;
        /// Most registrations one session holds.
        max_registrations_per_session: usize = values::size(1),
            default(MAX_REGISTRATIONS_PER_SESSION = 1000), reload;
        /// Most calls one session waits on as a caller.
        max_pending_calls_per_session: usize = values::size(1),
            default(MAX_PENDING_CALLS_PER_SESSION = 1000), reload;
        /// Most invocations one callee has unanswered.
        max_pending_calls_per_callee: usize = values::size(1),
            default(MAX_PENDING_CALLS_PER_CALLEE = 10_000), reload;
        /// Deepest nesting of lists and dicts in a message (the message itself is 1).
        max_depth: usize = values::range(2, 100), default(MAX_DEPTH = 32), reload;
        /// Most topics with a retained event, per realm.
        max_retained: usize = values::size(0), default(MAX_RETAINED = 10_000), reload;
        /// Bytes the retained events of a realm may hold in all.
        max_retained_bytes: usize = values::size(0),
            default(MAX_RETAINED_BYTES = 67_108_864), reload;
        /// Seconds a call waits for its result when CALL sets no `timeout`; 0: no limit.
        call_timeout: Option<Duration> = values::seconds_or_none,
            default(CALL_TIMEOUT = None), reload;
        /// The authrole of the control socket's WAMP session; `trusted`: never checked.
        backend_authrole: String = values::string,
            default(BACKEND_AUTHROLE: &str = "trusted"), reload;
        /// Seconds a login or an action waits for a realm's authenticator or authorizer.
        dynamic_auth_timeout: Duration = values::seconds,
            default(DYNAMIC_AUTH_TIMEOUT = Duration::from_secs(5)), reload;
        /// Seconds a session keeps an authorizer's answer that said `cache`; 0: never kept.
        authorization_cache_lifetime: Option<Duration> = values::seconds_or_none,
            default(AUTHORIZATION_CACHE_LIFETIME = Some(Duration::from_secs(300))), reload;
        /// Most authorizer answers one session keeps cached.
        max_cached_authorizations: usize = values::size(1),
            default(MAX_CACHED_AUTHORIZATIONS = 1000), reload;
        /// Most actions of one session held while an authorizer decides.
        max_waiting_authorizations: usize = values::size(1),
            default(MAX_WAITING_AUTHORIZATIONS = 100), reload;
        /// Per-realm logins, principals and roles: the `[wamp.realm.NAME]` tables.
        realm: WampRealms = wamp_realm::realms, default(REALM = WampRealms::NONE), reload;
    }

    /// Address-based protection, before any auth work: blocked ranges, trusted proxies,
    /// per-address limits.
    [access] Access {
        /// CIDR ranges whose connections are closed at once, before the request is read.
        blocked: Vec<Cidr> = values::cidrs, default(BLOCKED = Vec::new()), reload;
        /// Peers whose forwarded client address is the one checked; `"unix"`: the unix://
        /// listeners.
        trusted_proxies: Vec<Proxy> = values::proxies,
            default(TRUSTED_PROXIES = Vec::new()), reload;
        /// The header trusted proxies write the client's address into.
        forwarded_header: ForwardedHeader = values::choice,
            default(FORWARDED_HEADER = ForwardedHeader::XForwardedFor), reload;
        /// Most connections one address (an IPv6 /64) holds at once; 0: no limit.
        max_connections_per_address: usize = values::size(0),
            default(MAX_CONNECTIONS_PER_ADDRESS = 0), reload;
        /// Most upgrade attempts one address makes per second; 0: no limit.
        handshakes_per_second: u32 = values::range(0, 1_000_000),
            default(HANDSHAKES_PER_SECOND = 0), reload;
        /// Most refused cookie checks one address has per minute before it is refused
        /// outright; 0: no limit.
        failed_logins_per_minute: u32 = values::range(0, 1_000_000),
            default(FAILED_LOGINS_PER_MINUTE = 0), reload;
        /// Most addresses the per-address counters track at once.
        max_tracked_addresses: usize = values::size(1),
            default(MAX_TRACKED_ADDRESSES = 100_000), reload;
    }

    /// permessage-deflate (RFC 7692): negotiated with clients that offer it.
    [compression] Compression {
        /// Negotiate permessage-deflate with clients that offer it; false: never.
        enabled: bool = values::boolean, default(ENABLED = true), reload;
        /// Messages shorter than this many bytes are sent uncompressed.
        threshold: usize = values::size(0), default(THRESHOLD = 256), reload;
        /// DEFLATE level of what wson sends, 1 (fastest) to 9 (smallest).
        level: u32 = values::range(1, 9), default(LEVEL = 6), reload;
        /// Largest LZ77 window wson compresses with, as a power of two (9 to 15).
        server_max_window_bits: u8 = values::range(9, 15),
            default(SERVER_MAX_WINDOW_BITS = 15), reload;
        /// Ask every client to compress each message on its own, so no connection keeps an
        /// inflate state between messages.
        client_no_context_takeover: bool = values::boolean,
            default(CLIENT_NO_CONTEXT_TAKEOVER = false), reload;
    }

    /// Several wson nodes joined by Redis.
    [cluster] Cluster {
        /// The Redis that joins the nodes, as a URL; `None`: this node is alone.
        redis: Option<String> = values::some(values::redis_url),
            default(REDIS = None), restart;
        /// PEM certificates of the authority that signed a `rediss://` Redis's certificate;
        /// `None`: the system's trusted authorities.
        redis_ca: Option<PathBuf> = values::some(values::pem_certificates),
            default(REDIS_CA = None), restart;
        /// This node's name among the nodes; `None`: HOST:PID.
        node_id: Option<String> = values::some(values::non_empty_string),
            default(NODE_ID = None), restart;
        /// What the nodes' Redis channels start with: clusters sharing a Redis differ here.
        prefix: String = values::non_empty_string, default(PREFIX: &str = "wson"), restart;
        /// Most messages waiting for the Redis connection before new ones are dropped.
        max_queue: usize = values::size(1), default(MAX_QUEUE = 10_000), restart;
        /// Seconds between a node's heartbeats; a node silent for three is gone.
        heartbeat: Duration = values::seconds,
            default(HEARTBEAT = Duration::from_secs(1)), restart;
        /// Seconds a cluster-wide question waits for the other nodes' answers.
        request_timeout: Duration = values::seconds,
            default(REQUEST_TIMEOUT = Duration::from_secs(2)), restart;
        /// Most user names of one topic a node sends for a cluster-wide `H`; past it, that
        /// node's users are added as a count.
        max_count_users: usize = values::size(0),
            default(MAX_COUNT_USERS = 100_000), reload;
    }

    /// The certificate `tls://` listeners serve, read again on every reload.
    [tls] Tls {
        /// PEM certificate chain, the server's own certificate first; `None`: no TLS.
        cert: Option<PathBuf> = values::some(values::path), default(CERT = None), reload;
        /// PEM private key of that certificate; `None`: no TLS.
        key: Option<PathBuf> = values::some(values::path), default(KEY = None), reload;
        /// The oldest TLS version a client may use.
        min_version: TlsVersion = values::choice,
            default(MIN_VERSION = TlsVersion::V1_2), reload;
    }

    /// The HTTP API (JSON over the control commands), `/metrics` and `/health`.
    [http] Http {
        /// Where the HTTP API listens, `tcp://`, `tls://` or `unix://`; empty: off.
        listen: Vec<Endpoint> = values::listen_or_none, default(LISTEN = Vec::new()), restart;
        /// The key every API request carries, inline (at least 16 bytes).
        api_key: Option<ApiKey> = values::some(values::api_key),
            default(API_KEY = None), restart;
        /// A file holding the key (its content without trailing whitespace).
        api_key_file: Option<PathBuf> = values::some(values::path),
            default(API_KEY_FILE = None), restart;
        /// Largest request body in bytes.
        max_request_size: usize = values::size(1),
            default(MAX_REQUEST_SIZE = 1_048_576), reload;
        /// Largest request line plus headers in bytes.
        max_header_size: usize = values::size(1024), default(MAX_HEADER_SIZE = 8192), reload;
        /// Most HTTP connections at once.
        max_connections: usize = values::size(1), default(MAX_CONNECTIONS = 1024), reload;
        /// Time a client has to send a whole request (and an idle connection stays open).
        request_timeout: Duration = values::seconds,
            default(REQUEST_TIMEOUT = Duration::from_secs(10)), reload;
        /// Most commands in one `/api/batch` request.
        max_batch: usize = values::size(1), default(MAX_BATCH = 1000), reload;
        /// `/metrics` without the API key.
        metrics_public: bool = values::boolean, default(METRICS_PUBLIC = false), reload;
        /// Mode of each unix:// HTTP socket file.
        socket_mode: u32 = values::mode, default(SOCKET_MODE = 0o600), restart;
        /// Group owning the unix:// HTTP socket files; `None`: the server's group.
        socket_group: Option<String> = values::some(values::group_name),
            default(SOCKET_GROUP = None), restart;
    }
}

impl Config {
    /// The restart-only keys whose value differs in `fresh`: a reload leaves them as they
    /// were, and says so.
    pub fn restart_needed(&self, fresh: &Config) -> Vec<&'static str> {
        self.changed_keys(fresh)
            .into_iter()
            .filter(|spec| spec.apply_on == ApplyOn::Restart)
            .map(|spec| spec.path)
            .collect()
    }
}

/// Rules across keys, each checked only when every key it reads is valid on its own, and
/// reported on the key to change.
pub(super) fn check_across_keys(checker: &mut Checker, config: &parsed::Config) {
    if let (Some(servers), Some(domains)) = (&config.servers, &config.domains)
        && !domains.is_empty()
        && domains.len() != servers.len()
    {
        checker.error(
            "domains",
            format!(
                "{} entries for {} servers: give one per server, in the same order",
                domains.len(),
                servers.len()
            ),
        );
    }
    if let (Some(Some(_)), Some(redis)) = (&config.cluster.redis_ca, &config.cluster.redis)
        && !redis
            .as_deref()
            .is_some_and(|url| url.starts_with("rediss://"))
    {
        checker.error(
            "cluster.redis_ca",
            "an authority for a Redis over TLS: give cluster.redis as rediss://HOST:PORT, or drop redis_ca",
        );
    }
    check_tls(checker, config);
    if let (Some(servers), Some(control)) = (&config.servers, &config.control) {
        let same = servers.iter().position(|server| server == control);
        if let (Some(index), false) = (same, control.is_ephemeral()) {
            checker.error("control", format!("same address as servers[{index}]"));
        }
    }
    if let (Some(outbound), Some(control_frame)) =
        (config.max_outbound_buffer, config.max_control_frame)
    {
        let needed = control_frame.checked_add(MAX_FRAME_HEADER_LEN);
        if needed.is_none_or(|needed| outbound < needed) {
            checker.error(
                "max_outbound_buffer",
                format!(
                    "must be at least max_control_frame + {MAX_FRAME_HEADER_LEN} = {}, \
                     so any pushed message fits in an empty queue",
                    control_frame.saturating_add(MAX_FRAME_HEADER_LEN)
                ),
            );
        }
    }
    if let (Some(max_queue), Some(message_size)) =
        (config.events.max_queue, config.max_message_size)
    {
        let needed = message_size.checked_add(MAX_EVENT_FIELDS_LEN);
        if needed.is_none_or(|needed| max_queue < needed) {
            checker.error(
                "events.max_queue",
                format!(
                    "must be at least max_message_size + {MAX_EVENT_FIELDS_LEN} = {}, \
                     so an event carrying one client message fits",
                    message_size.saturating_add(MAX_EVENT_FIELDS_LEN)
                ),
            );
        }
    }
    if let (Some(realms), Some(settings)) = (&config.wamp.realms, &config.wamp.realm) {
        for name in settings.by_name.keys() {
            if !realms.contains(name) {
                checker.error(
                    format!("wamp.realm.{}", name.escape_debug()),
                    "not one of wamp.realms",
                );
            }
        }
    }
    if let (Some(realms), Some(settings), Some(role)) = (
        &config.wamp.realms,
        &config.wamp.realm,
        &config.wamp.backend_authrole,
    ) && role != crate::router::session::BACKEND_AUTHROLE
        && let Some(backend_realm) = realms.first().and_then(|name| settings.get(name))
        && !backend_realm.roles.is_empty()
        && backend_realm.role(role).is_none()
    {
        checker.error(
            "wamp.backend_authrole",
            format!(
                "{role:?} is no role of the backend realm {:?} (the first of wamp.realms)",
                realms.first().map_or("", String::as_str)
            ),
        );
    }
    if let (Some(listen), Some(key), Some(key_file)) = (
        &config.http.listen,
        &config.http.api_key,
        &config.http.api_key_file,
    ) {
        match (key, key_file) {
            (Some(_), Some(_)) => {
                checker.error(
                    "http.api_key",
                    "set either api_key or api_key_file, not both",
                );
            }
            (None, None) if !listen.is_empty() => checker.error(
                "http.api_key",
                "missing: the HTTP API needs a key (api_key_file, recommended, or api_key)",
            ),
            _ => {}
        }
    }
    if let (Some(listen), Some(servers), Some(control)) =
        (&config.http.listen, &config.servers, &config.control)
    {
        for (index, endpoint) in listen.iter().enumerate() {
            let taken = servers.contains(endpoint) || endpoint == control;
            if taken && !endpoint.is_ephemeral() {
                checker.error(
                    format!("http.listen[{index}]"),
                    "same address as a server or the control socket",
                );
            }
        }
    }
    if let (Some(AuthorizerFallback::Allow), Some(AuthMode::Authorizer)) =
        (config.authorizer.fallback, config.auth)
    {
        checker.error(
            "authorizer.fallback",
            "\"allow\" needs a user: with auth = \"authorizer\" only the authorizer names \
             one; use auth = \"cookie+authorizer\" or fallback = \"deny\"",
        );
    }
}

/// `tls://` endpoints need `[tls]` cert and key; given, the two must load and match (the
/// same loading a start and a reload do, so `wson check` sees what they would).
fn check_tls(checker: &mut Checker, config: &parsed::Config) {
    let (Some(cert), Some(key), Some(min_version)) =
        (&config.tls.cert, &config.tls.key, config.tls.min_version)
    else {
        return;
    };
    let servers = config.servers.iter().flatten();
    let tls_endpoint = servers
        .chain(config.control.iter())
        .chain(config.http.listen.iter().flatten())
        .find(|endpoint| matches!(endpoint, Endpoint::Tls(_)));
    match (cert, key) {
        (Some(cert), Some(key)) => {
            if let Err(error) = TlsAcceptor::load(cert, key, min_version, &[]) {
                let at = match error.culprit(cert) {
                    Culprit::Cert => "tls.cert",
                    Culprit::Key => "tls.key",
                };
                checker.error(at, error.to_string());
            }
        }
        (Some(_), None) => checker.error("tls.key", "missing: the private key of tls.cert"),
        (None, Some(_)) => checker.error("tls.cert", "missing: the certificate chain of tls.key"),
        (None, None) => {
            if let Some(endpoint) = tls_endpoint {
                checker.error(
                    "tls.cert",
                    format!("missing: {endpoint} needs tls.cert and tls.key (PEM files)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;
    use crate::config::{KEYS, Presence, TABLES, parse};

    /// The shipped file cut at its table headers: the top level, then each `[table]`.
    fn shipped_sections() -> Vec<(Option<&'static str>, &'static str)> {
        let mut sections = Vec::new();
        let mut table = None;
        let mut start = 0;
        for (offset, _) in SHIPPED.match_indices("\n[") {
            sections.push((table, &SHIPPED[start..offset + 1]));
            let header = &SHIPPED[offset + 1..];
            let name = header.get(1..header.find(']').unwrap()).unwrap().to_owned();
            table = Some(TABLES.iter().find(|spec| spec.name == name).unwrap().name);
            start = offset + 1;
        }
        sections.push((table, &SHIPPED[start..]));
        sections
    }

    #[test]
    fn shipped_file_sets_or_shows_every_key_in_its_table() {
        let sections = shipped_sections();
        for table in TABLES {
            let headers = sections
                .iter()
                .filter(|(name, _)| *name == Some(table.name));
            assert_eq!(
                headers.count(),
                1,
                "conf/wson.toml lacks one [{}]",
                table.name
            );
        }
        for spec in KEYS {
            let (_, text) = sections
                .iter()
                .find(|(table, _)| *table == spec.table)
                .unwrap();
            for name in spec.names {
                let set = format!("\n{name} = ");
                let shown = format!("\n# {name} = ");
                // `secret` is described in the comment above secret_file.
                let described = format!("#   {name} = ");
                assert!(
                    text.contains(&set) || text.contains(&shown) || text.contains(&described),
                    "conf/wson.toml does not mention {} in its place",
                    spec.path
                );
            }
        }
    }

    #[test]
    fn shipped_file_marks_exactly_the_restart_only_keys() {
        for (table, text) in shipped_sections() {
            let lines: Vec<&str> = text.lines().collect();
            for spec in KEYS.iter().filter(|spec| spec.table == table) {
                // The comment block above the line that sets or shows the key (`secret` is
                // described inside secret_file's).
                let Some(at) = lines.iter().position(|line| {
                    line.starts_with(&format!("{} = ", spec.names[0]))
                        || line.starts_with(&format!("# {} = ", spec.names[0]))
                }) else {
                    continue;
                };
                let comment: Vec<&str> = lines[..at]
                    .iter()
                    .rev()
                    .take_while(|line| line.starts_with('#'))
                    .copied()
                    .collect();
                assert_eq!(
                    comment.iter().any(|line| line.contains("Restart.")),
                    spec.apply_on == ApplyOn::Restart,
                    "the comment on {} in conf/wson.toml: {comment:?}",
                    spec.path
                );
            }
        }
    }

    #[test]
    fn shipped_file_sets_every_optional_key_it_sets_to_its_default() {
        let shipped = parse(SHIPPED, Path::new(FILE)).unwrap();
        // The shipped file without any key that has a default: what remains is required.
        let mut table: Table = SHIPPED.parse().unwrap();
        for spec in KEYS
            .iter()
            .filter(|spec| spec.presence == Presence::Default)
        {
            let section = match spec.table {
                None => &mut table,
                Some(name) => table.get_mut(name).unwrap().as_table_mut().unwrap(),
            };
            for name in spec.names {
                section.remove(*name);
            }
        }
        let required_only = toml::to_string(&table).unwrap();
        let defaults = parse(&required_only, Path::new(FILE)).unwrap();
        let differ: Vec<&str> = shipped
            .changed_keys(&defaults)
            .iter()
            .map(|spec| spec.path)
            .collect();
        assert_eq!(
            differ,
            Vec::<&str>::new(),
            "shipped values that are not the defaults"
        );
    }

    #[test]
    fn every_key_is_documented_and_named_once() {
        let mut paths = Vec::new();
        for spec in KEYS {
            assert!(!spec.doc.trim().is_empty(), "{} has no doc", spec.path);
            for name in spec.names {
                let path = match spec.table {
                    Some(table) => format!("{table}.{name}"),
                    None => (*name).to_owned(),
                };
                assert!(!paths.contains(&path), "{path} declared twice");
                paths.push(path);
            }
        }
        for table in TABLES {
            assert!(!table.doc.trim().is_empty(), "[{}] has no doc", table.name);
            assert!(
                !KEYS
                    .iter()
                    .any(|spec| spec.table.is_none() && spec.names.contains(&table.name)),
                "{} is both a key and a table",
                table.name
            );
        }
    }

    #[test]
    fn restart_only_keys_are_the_listeners_files_log_format_and_cluster() {
        let restart: Vec<&str> = KEYS
            .iter()
            .filter(|spec| spec.apply_on == ApplyOn::Restart)
            .map(|spec| spec.path)
            .collect();
        assert_eq!(
            restart,
            [
                "servers",
                "control",
                "pid",
                "socket_mode",
                "control_socket_mode",
                "socket_group",
                "control_socket_group",
                "listen_backlog",
                "reuse_port",
                "log_file",
                "log_format",
                "cluster.redis",
                "cluster.redis_ca",
                "cluster.node_id",
                "cluster.prefix",
                "cluster.max_queue",
                "cluster.heartbeat",
                "cluster.request_timeout",
                "http.listen",
                "http.api_key",
                "http.api_key_file",
                "http.socket_mode",
                "http.socket_group",
            ]
        );
    }

    #[test]
    fn reloaded_takes_reloadable_keys_and_keeps_restart_only_ones() {
        let running = config_with(&[]);
        let fresh = config_with(&[
            ("servers", r#"["tcp://127.0.0.1:1"]"#),
            ("max_connections", "7"),
            ("log_file", r#""other.log""#),
        ]);
        let reloaded = running.reloaded(fresh);
        assert_eq!(reloaded.servers, running.servers);
        assert_eq!(reloaded.log_file, running.log_file);
        assert_eq!(reloaded.max_connections, 7);
        assert_eq!(running.restart_needed(&reloaded), Vec::<&str>::new());
    }

    #[test]
    fn restart_needed_lists_changed_restart_only_keys() {
        let running = config_with(&[]);
        assert_eq!(running.restart_needed(&running), Vec::<&str>::new());
        let fresh = config_with(&[
            (
                "servers",
                r#"["tcp://127.0.0.1:8099", "unix://other.sock"]"#,
            ),
            ("socket_group", r#""www-data""#),
            ("log_format", r#""json""#),
            // Reloadable: not listed.
            ("max_connections", "5"),
            ("topics.max_topics", "5"),
        ]);
        assert_eq!(
            running.restart_needed(&fresh),
            ["servers", "socket_group", "log_format"]
        );
        let changed: Vec<&str> = running
            .changed_keys(&fresh)
            .iter()
            .map(|spec| spec.path)
            .collect();
        assert_eq!(
            changed,
            [
                "servers",
                "max_connections",
                "socket_group",
                "log_format",
                "topics.max_topics"
            ]
        );
    }

    #[test]
    fn a_redis_authority_is_a_readable_pem_file_for_a_tls_redis() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let quoted = |path: &std::path::Path| format!("{:?}", path.display().to_string());
        let tls = ("cluster.redis", r#""rediss://localhost:6380""#);
        let config = config_with(&[tls, ("cluster.redis_ca", &quoted(&pem))]);
        assert_eq!(config.cluster.redis_ca, Some(pem.clone()));
        assert_error(
            &[tls, ("cluster.redis_ca", &quoted(&not_pem))],
            "cluster.redis_ca",
            "holds no PEM certificate",
        );
        assert_error(
            &[
                tls,
                ("cluster.redis_ca", &quoted(&dir.path().join("none.pem"))),
            ],
            "cluster.redis_ca",
            "cannot read",
        );
        assert_error(
            &[
                ("cluster.redis", r#""redis://localhost:6379""#),
                ("cluster.redis_ca", &quoted(&pem)),
            ],
            "cluster.redis_ca",
            "rediss://",
        );
    }

    #[test]
    fn tls_endpoints_need_a_certificate_and_key_that_load_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| crate::tls::testing::self_signed(dir.path(), name);
        let quoted = |path: &std::path::Path| format!("{:?}", path.display().to_string());
        let (cert, key) = make("a");
        let (_, other_key) = make("b");
        let (cert, key, other_key) = (quoted(&cert), quoted(&key), quoted(&other_key));
        let tls_server = ("servers", r#"["tls://127.0.0.1:8443"]"#);
        let config = config_with(&[tls_server, ("tls.cert", &cert), ("tls.key", &key)]);
        assert_eq!(config.servers, vec![Endpoint::Tls("127.0.0.1:8443".into())]);
        assert_eq!(config.tls.min_version, TlsVersion::V1_2);
        config_with(&[
            ("control", r#""tls://127.0.0.1:0""#),
            ("tls.cert", &cert),
            ("tls.key", &key),
            ("tls.min_version", r#""1.3""#),
        ]);
        assert_error(
            &[tls_server],
            "tls.cert",
            "tls://127.0.0.1:8443 needs tls.cert",
        );
        assert_error(&[tls_server, ("tls.cert", &cert)], "tls.key", "missing");
        assert_error(
            &[tls_server, ("tls.cert", &cert), ("tls.key", &other_key)],
            "tls.key",
            "does not match the certificate",
        );
        assert_error(
            &[tls_server, ("tls.cert", &key), ("tls.key", &key)],
            "tls.cert",
            "holds no PEM certificate",
        );
        assert_error(
            &[tls_server, ("tls.cert", r#""none.pem""#), ("tls.key", &key)],
            "tls.cert",
            "cannot read",
        );
        assert_error(&[("tls.min_version", r#""1.1""#)], "tls.min_version", "1.2");
    }

    #[test]
    fn events_queue_must_hold_one_client_message() {
        assert_error(
            &[
                ("max_message_size", "100000"),
                ("events.max_queue", "101023"),
            ],
            "events.max_queue",
            "must be at least max_message_size + 1024 = 101024",
        );
        config_with(&[
            ("max_message_size", "100000"),
            ("events.max_queue", "101024"),
        ]);
        // The default queue is smaller than a raised message size limit.
        assert_error(
            &[("max_message_size", "16777216")],
            "events.max_queue",
            "16778240",
        );
        assert_error(
            &[("events.max_queue", "65535")],
            "events.max_queue",
            "at least 65536",
        );
    }

    #[test]
    fn fallback_allow_needs_cookies_to_name_the_user() {
        assert_error(
            &[
                ("auth", r#""authorizer""#),
                ("authorizer.fallback", r#""allow""#),
            ],
            "authorizer.fallback",
            "with auth = \"authorizer\" only the authorizer names one",
        );
        for auth in [r#""cookie""#, r#""cookie+authorizer""#] {
            config_with(&[("auth", auth), ("authorizer.fallback", r#""allow""#)]);
        }
        config_with(&[
            ("auth", r#""authorizer""#),
            ("authorizer.fallback", r#""deny""#),
        ]);
    }

    #[test]
    fn new_keys_have_their_bounds() {
        for (key, value, message) in [
            ("listen_backlog", "0", "must be at least 1"),
            ("listen_backlog", "65536", "must be at most 65535"),
            ("listen_backlog", "-1", "must be at least 1"),
            ("max_lingering", "0", "must be at least 1"),
            ("max_list_page", "0", "must be at least 1"),
            ("topics.max_per_connection", "0", "must be at least 1"),
            ("topics.max_name_length", "0", "must be at least 1"),
            ("topics.max_name_length", "256", "must be at most 255"),
            ("topics.max_topics", "0", "must be at least 1"),
            ("topics.max_user_subscriptions", "0", "must be at least 1"),
            ("authorizer.timeout", "0", "must be at least 1"),
            ("authorizer.timeout", "31536001", "at most 31536000"),
            ("authorizer.fallback_status", "399", "must be at least 400"),
            ("authorizer.fallback_status", "600", "must be at most 599"),
            (
                "authorizer.fallback_status",
                "99999999999",
                "must be at most 599",
            ),
            ("authorizer.max_pending", "0", "must be at least 1"),
            ("socket_group", r#""""#, "is not a group name"),
            (
                "control_socket_group",
                "5",
                "expected a string, found integer",
            ),
            (
                "log_format",
                r#""text""#,
                r#""text" is not one of "logfmt", "json""#,
            ),
            (
                "auth",
                r#""cookies""#,
                r#"is not one of "cookie", "authorizer", "cookie+authorizer""#,
            ),
            (
                "users.token_reuse",
                r#""steal""#,
                r#"is not one of "refuse", "replace", "share""#,
            ),
            (
                "authorizer.fallback",
                r#""maybe""#,
                r#"is not one of "deny", "allow""#,
            ),
        ] {
            assert_error(&[(key, value)], key, message);
        }
        let config = config_with(&[
            ("listen_backlog", "1"),
            ("topics.max_name_length", "255"),
            ("authorizer.timeout", "1"),
            ("authorizer.fallback_status", "400"),
        ]);
        assert_eq!(config.listen_backlog, Some(1));
        assert_eq!(config.topics.max_name_length, 255);
        assert_eq!(config.authorizer.timeout, Duration::from_secs(1));
        assert_eq!(config.authorizer.fallback_status, 400);
    }

    #[test]
    fn access_ranges_name_the_bad_entry() {
        assert_error(
            &[("access.blocked", r#"["10.0.0.0/8", "10.0.0.1/8"]"#)],
            "access.blocked[1]",
            r#""10.0.0.1/8": bits set after the prefix (did you mean 10.0.0.0/8?)"#,
        );
        assert_error(
            &[("access.blocked", r#"["192.0.2.0/33"]"#)],
            "access.blocked[0]",
            "prefix length 33 is longer than 32",
        );
        assert_error(
            &[("access.trusted_proxies", r#"["nginx"]"#)],
            "access.trusted_proxies[0]",
            r#"not an IPv4 or IPv6 address (or "unix" for the unix:// listeners)"#,
        );
        assert_error(
            &[("access.forwarded_header", r#""x-real-ip""#)],
            "access.forwarded_header",
            r#"is not one of "x-forwarded-for", "forwarded""#,
        );
        assert_error(
            &[("access.max_tracked_addresses", "0")],
            "access.max_tracked_addresses",
            "must be at least 1",
        );
        assert_error(
            &[("access.handshakes_per_second", "-1")],
            "access.handshakes_per_second",
            "must be at least 0",
        );
    }

    #[test]
    fn tables_take_their_keys_under_a_header() {
        let text = format!(
            "{}\n[users]\ntoken_reuse = \"replace\"\n\n[topics]\nmax_topics = 7\n",
            text(&[("client_messages", r#""forward""#)], &[])
        );
        let config = parse(&text, Path::new(FILE)).unwrap();
        assert_eq!(config.users.token_reuse, TokenReuse::Replace);
        assert_eq!(config.topics.max_topics, 7);
        assert_eq!(config.client_messages, ClientMessages::Forward);
        // Untouched tables keep their defaults.
        assert_eq!(config.events.max_queue, defaults::events::MAX_QUEUE);
        assert_eq!(config.authorizer.fallback, defaults::authorizer::FALLBACK);
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
    fn http_listen_needs_exactly_one_key_of_16_bytes_or_more() {
        let listen = ("http.listen", r#"["tcp://127.0.0.1:8098"]"#);
        assert_error(&[listen], "http.api_key", "missing");
        assert_error(
            &[
                listen,
                ("http.api_key", r#""0123456789abcdef""#),
                ("http.api_key_file", r#""key""#),
            ],
            "http.api_key",
            "either",
        );
        assert_error(
            &[listen, ("http.api_key", r#""short""#)],
            "http.api_key",
            "shorter than 16",
        );
        let config = config_with(&[listen, ("http.api_key", r#""0123456789abcdef""#)]);
        assert_eq!(config.http.listen.len(), 1);
        // Off by default, and then no key is needed.
        assert!(config_with(&[]).http.listen.is_empty());
    }

    #[test]
    fn http_listen_may_not_take_a_server_or_control_address() {
        assert_error(
            &[
                ("http.listen", r#"["tcp://127.0.0.1:8099"]"#),
                ("http.api_key", r#""0123456789abcdef""#),
            ],
            "http.listen[0]",
            "same address",
        );
    }

    #[test]
    fn an_api_key_never_shows_in_debug_output() {
        let config = config_with(&[
            ("http.listen", r#"["unix://http.sock"]"#),
            ("http.api_key", r#""0123456789abcdef-hidden""#),
        ]);
        assert!(!format!("{config:?}").contains("hidden"));
    }
}
