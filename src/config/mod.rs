//! The configuration file: TOML turned into a validated [`Config`].
//!
//! Top-level keys (`max_connections = 10000`) come first; newer features have `[tables]`
//! (`[topics] max_topics = 100000`). Each key is declared once in `keys.rs` (name, table,
//! type and bounds, default, doc, and whether a change applies on reload or needs a
//! restart); `declare.rs` derives from that the `Config` fields, the parsing, the defaults,
//! the unknown-key reports and the reload classification. `conf/wson.toml` documents the same
//! keys and a test keeps its values equal to [`defaults`].
//!
//! [`parse`] is pure (text and the file's path in, `Config` or every problem out), so
//! `wson check` can list all mistakes at once; it reads the TOML into a `toml::Table` and
//! checks key by key, because serde stops at the first error. Relative paths resolve against
//! the config file's folder, not the working directory. [`resolve_secret`] is the one function
//! here that touches the file system beyond [`load`]: it reads, or on first start creates, the
//! secret file.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use toml::Table;

#[macro_use]
mod declare;
mod keys;
mod secret;
#[cfg(test)]
mod testing;
mod values;
pub mod wamp_realm;

pub use declare::{ApplyOn, KeySpec, Presence, TableSpec};
pub use keys::{
    Access, Authorizer, Cluster, Compression, Config, Events, History, Http, KEYS,
    MAX_EVENT_FIELDS_LEN, MIN_EVENT_QUEUE, TABLES, Tls, Topics, Users, Wamp, defaults,
};
pub use secret::{
    MAX_SECRET_FILE_LEN, MIN_SECRET_LEN, ResolvedSecret, Secret, resolve_api_key, resolve_secret,
};
pub use values::{
    ApiKey, AuthMode, AuthorizerFallback, Choice, ClientMessages, Endpoint, ForwardedHeader,
    LogFormat, MAX_GROUP_NAME_LEN, Origins, TokenReuse,
};

/// Below this a browser's ordinary request headers (cookies, user agent) would not fit.
pub const MIN_HANDSHAKE_SIZE: usize = 1024;
/// One year. Durations are added to `Instant`s, which panics on overflow; this bound keeps
/// every deadline representable.
pub const MAX_SECONDS: u64 = 31_536_000;
/// The longest WebSocket frame header: RFC 6455 §5.2, 2 bytes, 8 bytes of extended payload
/// length and a 4-byte masking key. An empty outbound queue must hold one whole pushed frame.
pub const MAX_FRAME_HEADER_LEN: usize = 14;

/// One problem, naming the file and key: Display is "conf/wson.toml: secret: shorter than 16
/// bytes" (no key part when the problem is the whole file, e.g. a TOML syntax error, whose
/// message starts with the line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The key, with `[index]` for a list item (`servers[1]`) and `table.` for a key in a
    /// table (`topics.max_topics`).
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
/// Reports every problem: unknown keys and tables, wrong types, bad values, missing keys,
/// cross-key rules.
pub fn parse(text: &str, file: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut table = match text.parse::<Table>() {
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
    let mut checker = values::Checker::new(file);
    declare::report_unknown_keys(&mut checker, &mut table, KEYS, TABLES);
    let parsed = keys::parsed::Config::read(&mut checker, table);
    keys::check_across_keys(&mut checker, &parsed);
    let errors = checker.into_errors();
    match parsed.finish(file) {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use log::LevelFilter;

    use super::*;
    use crate::access::{Cidr, Proxy};
    use crate::auth::Digest;
    use crate::config::testing::*;

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
        assert_eq!(config.log_format, defaults::LOG_FORMAT);
        assert_eq!(config.auth, defaults::AUTH);
        assert_eq!(config.max_lingering, defaults::MAX_LINGERING);
        assert_eq!(config.max_list_page, defaults::MAX_LIST_PAGE);
        assert_eq!(config.listen_backlog, defaults::LISTEN_BACKLOG);
        assert_eq!(config.socket_group, defaults::SOCKET_GROUP);
        assert_eq!(config.control_socket_group, defaults::CONTROL_SOCKET_GROUP);
        assert_eq!(config.users.token_reuse, defaults::users::TOKEN_REUSE);
        assert_eq!(
            config.topics.max_per_connection,
            defaults::topics::MAX_PER_CONNECTION
        );
        assert_eq!(
            config.topics.max_name_length,
            defaults::topics::MAX_NAME_LENGTH
        );
        assert_eq!(config.topics.max_topics, defaults::topics::MAX_TOPICS);
        assert_eq!(
            config.topics.max_user_subscriptions,
            defaults::topics::MAX_USER_SUBSCRIPTIONS
        );
        assert_eq!(config.events.max_queue, defaults::events::MAX_QUEUE);
        assert_eq!(config.authorizer.timeout, defaults::authorizer::TIMEOUT);
        assert_eq!(config.authorizer.fallback, defaults::authorizer::FALLBACK);
        assert_eq!(
            config.authorizer.fallback_status,
            defaults::authorizer::FALLBACK_STATUS
        );
        assert_eq!(
            config.authorizer.max_pending,
            defaults::authorizer::MAX_PENDING
        );
        assert_eq!(config.access.blocked, defaults::access::BLOCKED);
        assert_eq!(
            config.access.handshakes_per_second,
            defaults::access::HANDSHAKES_PER_SECOND
        );
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
            ("log_format", r#""json""#),
            ("auth", r#""cookie+authorizer""#),
            ("max_lingering", "1"),
            ("max_list_page", "1"),
            ("listen_backlog", "65535"),
            ("socket_group", r#""www-data""#),
            ("control_socket_group", r#""machine$""#),
            ("users.token_reuse", r#""share""#),
            ("topics.max_per_connection", "1"),
            ("topics.max_name_length", "1"),
            ("topics.max_topics", "1"),
            ("topics.max_user_subscriptions", "1"),
            ("history.prefixes", r#"["news."]"#),
            ("history.size", "1"),
            ("history.max_age", "1"),
            ("history.max_bytes", "1"),
            ("history.max_resume_topics", "1"),
            ("history.max_held", "1"),
            ("events.max_queue", "65536"),
            ("authorizer.timeout", "31536000"),
            ("authorizer.fallback", r#""allow""#),
            ("authorizer.fallback_status", "599"),
            ("authorizer.max_pending", "1"),
            ("wamp.realms", r#"["com.example", "b"]"#),
            ("wamp.authrole", r#""anonymous""#),
            ("wamp.strict_uris", "true"),
            ("wamp.max_sessions", "1"),
            ("wamp.max_subscriptions_per_session", "1"),
            ("wamp.max_registrations_per_session", "1"),
            ("wamp.max_pending_calls_per_session", "1"),
            ("wamp.max_pending_calls_per_callee", "1"),
            ("wamp.max_depth", "2"),
            ("wamp.max_retained", "0"),
            ("wamp.max_retained_bytes", "0"),
            ("wamp.call_timeout", "0"),
            ("wamp.backend_authrole", r#""backend""#),
            ("wamp.dynamic_auth_timeout", "1"),
            ("wamp.authorization_cache_lifetime", "0"),
            ("wamp.max_cached_authorizations", "1"),
            ("wamp.max_waiting_authorizations", "1"),
            (
                "access.blocked",
                r#"["10.0.0.0/8", "::ffff:192.0.2.1", "2001:db8::/32"]"#,
            ),
            ("access.trusted_proxies", r#"["unix", "127.0.0.1"]"#),
            ("access.forwarded_header", r#""forwarded""#),
            ("access.max_connections_per_address", "1"),
            ("access.handshakes_per_second", "0"),
            ("access.failed_logins_per_minute", "1000000"),
            ("access.max_tracked_addresses", "1"),
            ("reuse_port", "true"),
            ("cluster.redis", r#""redis://:pw@127.0.0.1:7000/2""#),
            ("cluster.node_id", r#""n1""#),
            ("cluster.prefix", r#""app""#),
            ("cluster.max_queue", "1"),
            ("cluster.heartbeat", "3"),
            ("cluster.request_timeout", "4"),
            ("cluster.max_count_users", "0"),
            ("compression.enabled", "false"),
            ("compression.threshold", "0"),
            ("compression.level", "9"),
            ("compression.server_max_window_bits", "9"),
            ("compression.client_no_context_takeover", "true"),
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
                log_format: LogFormat::Json,
                auth: AuthMode::CookieAndAuthorizer,
                max_lingering: 1,
                max_list_page: 1,
                listen_backlog: Some(65_535),
                reuse_port: true,
                socket_group: Some("www-data".to_owned()),
                control_socket_group: Some("machine$".to_owned()),
                users: Users {
                    token_reuse: TokenReuse::Share,
                },
                topics: Topics {
                    max_per_connection: 1,
                    max_name_length: 1,
                    max_topics: 1,
                    max_user_subscriptions: 1,
                },
                history: History {
                    prefixes: vec!["news.".to_owned()],
                    size: 1,
                    max_age: Duration::from_secs(1),
                    max_bytes: 1,
                    max_resume_topics: 1,
                    max_held: 1,
                },
                events: Events { max_queue: 65_536 },
                authorizer: Authorizer {
                    timeout: Duration::from_secs(MAX_SECONDS),
                    fallback: AuthorizerFallback::Allow,
                    fallback_status: 599,
                    max_pending: 1,
                },
                wamp: Wamp {
                    realms: vec!["com.example".to_owned(), "b".to_owned()],
                    authrole: "anonymous".to_owned(),
                    strict_uris: true,
                    max_sessions: 1,
                    max_subscriptions_per_session: 1,
                    max_registrations_per_session: 1,
                    max_pending_calls_per_session: 1,
                    max_pending_calls_per_callee: 1,
                    max_depth: 2,
                    max_retained: 0,
                    max_retained_bytes: 0,
                    call_timeout: None,
                    backend_authrole: "backend".to_owned(),
                    dynamic_auth_timeout: Duration::from_secs(1),
                    authorization_cache_lifetime: None,
                    max_cached_authorizations: 1,
                    max_waiting_authorizations: 1,
                    realm: wamp_realm::WampRealms::NONE,
                },
                access: Access {
                    blocked: ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]
                        .into_iter()
                        .map(|range| Cidr::parse(range).unwrap())
                        .collect(),
                    trusted_proxies: vec![
                        Proxy::Unix,
                        Proxy::Range(Cidr::parse("127.0.0.1/32").unwrap()),
                    ],
                    forwarded_header: ForwardedHeader::Forwarded,
                    max_connections_per_address: 1,
                    handshakes_per_second: 0,
                    failed_logins_per_minute: 1_000_000,
                    max_tracked_addresses: 1,
                },
                cluster: Cluster {
                    redis: Some("redis://:pw@127.0.0.1:7000/2".to_owned()),
                    redis_ca: None,
                    node_id: Some("n1".to_owned()),
                    prefix: "app".to_owned(),
                    max_queue: 1,
                    heartbeat: Duration::from_secs(3),
                    request_timeout: Duration::from_secs(4),
                    max_count_users: 0,
                },
                tls: Tls {
                    cert: None,
                    key: None,
                    min_version: crate::tls::TlsVersion::V1_2,
                },
                compression: Compression {
                    enabled: false,
                    threshold: 0,
                    level: 9,
                    server_max_window_bits: 9,
                    client_no_context_takeover: true,
                },
                http: Http {
                    listen: Vec::new(),
                    api_key: None,
                    api_key_file: None,
                    max_request_size: defaults::http::MAX_REQUEST_SIZE,
                    max_header_size: defaults::http::MAX_HEADER_SIZE,
                    max_connections: defaults::http::MAX_CONNECTIONS,
                    request_timeout: defaults::http::REQUEST_TIMEOUT,
                    max_batch: defaults::http::MAX_BATCH,
                    metrics_public: false,
                    socket_mode: defaults::http::SOCKET_MODE,
                    socket_group: None,
                },
            }
        );
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
                    "unknown table (known: users, topics, history, events, authorizer, wamp, access, compression, cluster, tls, http)"
                        .to_owned()
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
    }
}
