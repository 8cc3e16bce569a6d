//! WAMP authentication and authorization against a realm's `[wamp.realm.NAME]` settings.
//!
//! Authentication: HELLO's `authmethods` (in the client's order) meet the methods the realm
//! allows; the first both know wins. `cookie` (the wson cookies of the upgrade) and
//! `anonymous` welcome at once; `ticket` and `wampcra` send CHALLENGE and the router waits for
//! AUTHENTICATE (`Phase::Authenticating`). A denied login ends with ABORT, as any refused
//! HELLO (WAMP v2, "Session Establishment"); the spec names no reason for a failed login, so
//! the reasons are Crossbar's: `wamp.error.no_auth_method` when no method fits,
//! `wamp.error.not_authorized` (autobahn's `Deny` default) for a failed login.
//! An unknown authid gets a CHALLENGE like a known one and fails at AUTHENTICATE with the
//! same ABORT as a wrong signature, so a client cannot tell which part was wrong (Crossbar
//! ABORTs an unknown authid at HELLO, naming it). One difference remains visible: a salted
//! WAMP-CRA principal's CHALLENGE carries its salt, an unknown authid's carries none.
//!
//! Authorization: a realm with roles checks each PUBLISH, SUBSCRIBE, CALL and REGISTER
//! against the session's role; the permission matching the URI most specifically decides
//! (see [`Policies::authorize`]). The backend is trusted and never checked.

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use std::collections::HashMap;

use crate::config::wamp_realm::{
    AuthMethod, Credential, Hidden, Permission, RealmSettings, Salted, WampRealms,
};
use crate::router::uri::PatternIndex;
use crate::wamp::{Dict, Value};

/// ABORT reason when no offered method is allowed (Crossbar `session.py` `onHello`).
pub const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
/// ABORT reason for a failed login, and ERROR for a denied action (autobahn `Deny` default;
/// Crossbar `broker.py`/`dealer.py` on `authorize` false).
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
/// The ABORT message of every failed login: the same whatever was wrong.
pub const FAILED_LOGIN: &str = "authentication failed";
/// Largest AUTHENTICATE signature read; a longer one fails the login unread. A WAMP-CRA
/// signature is 44 characters, a ticket is what the operator configured.
pub const MAX_SIGNATURE_LEN: usize = 4096;
/// The authprovider of config principals, anonymous and cookie logins (Crossbar names its
/// config-file principals "static").
pub const STATIC_PROVIDER: &str = "static";

/// base64(HMAC-SHA256(key, challenge)), autobahn's `compute_wcs`.
pub fn compute_wcs(key: &[u8], challenge: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(challenge);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// base64(PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen)), autobahn's `derive_key`: the
/// base64 text (not the raw bytes) is the HMAC key of a salted principal.
pub fn derive_key(secret: &[u8], salt: &[u8], iterations: u32, keylen: u32) -> String {
    let mut key = vec![0_u8; usize::try_from(keylen).unwrap_or(32)];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, iterations, &mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Equal bytes, in time that depends on the lengths only.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// autobahn's `generate_serial_number`: six groups of four characters of
/// `345679ACEFGHJKLMNPQRSTUVWXY` joined by `-` (an anonymous session's authid).
pub fn serial_number(random: &[u8; 24]) -> String {
    const CHARS: &[u8] = b"345679ACEFGHJKLMNPQRSTUVWXY";
    let mut out = String::with_capacity(29);
    for (index, byte) in random.iter().enumerate() {
        if index > 0 && index % 4 == 0 {
            out.push('-');
        }
        // 256 % 27 leaves a small bias, far under anything that matters for a name.
        let pick = usize::from(*byte) % CHARS.len();
        out.push(char::from(CHARS.get(pick).copied().unwrap_or(b'3')));
    }
    out
}

/// autobahn's `newid(64)`: a nonce of 64 characters from the base64 URL alphabet.
pub fn nonce(random: &[u8; 48]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// What a CHALLENGE waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub authid: String,
    pub authrole: String,
    pub method: AuthMethod,
    pub expected: Expected,
    /// `static`, or `dynamic` when an authenticator named the secret.
    pub authprovider: &'static str,
    /// The authenticator's `extra`, for WELCOME.
    pub authextra: Dict,
}

/// What logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// This signature: the ticket, or the WAMP-CRA signature of the challenge.
    Signature(Hidden),
    /// Nothing: an unknown authid, every signature fails.
    Nothing,
    /// What the realm's authenticator says of the ticket (dynamic WAMP-Ticket).
    Authenticator,
}

impl Pending {
    /// True when `signature` is the expected one (compared in constant time).
    pub fn accepts(&self, signature: &str) -> bool {
        match &self.expected {
            Expected::Signature(expected) => same_bytes(expected.expose(), signature.as_bytes()),
            Expected::Nothing | Expected::Authenticator => false,
        }
    }
}

/// Who a session is once logged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub authid: String,
    pub authrole: String,
    pub authmethod: &'static str,
    pub authprovider: &'static str,
    pub authextra: Dict,
}

impl Login {
    /// A login vouched for by config, cookies or anonymity.
    pub fn fixed(authid: String, authrole: String, authmethod: &'static str) -> Login {
        Login {
            authid,
            authrole,
            authmethod,
            authprovider: STATIC_PROVIDER,
            authextra: Dict::new(),
        }
    }
}

/// What HELLO leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Welcome(Login),
    Challenge {
        pending: Pending,
        extra: Dict,
    },
    /// Ask the realm's authenticator `procedure` about `authid` (dynamic WAMP-CRA), then
    /// challenge with the secret it names.
    Ask {
        procedure: String,
        authid: String,
    },
    /// ABORT with `reason`.
    Deny {
        reason: &'static str,
        message: String,
    },
}

/// What a HELLO asks for, and what the router knows besides.
pub struct Hello<'a> {
    /// `HELLO.Details.authmethods`; `None` when absent.
    pub authmethods: Option<Vec<&'a str>>,
    pub authid: Option<&'a str>,
    /// The wson cookies' user, when the upgrade had verified cookies.
    pub cookie_user: Option<&'a str>,
    /// `[wamp] authrole`: the role of a cookie login.
    pub cookie_role: &'a str,
    pub session: u64,
    /// ISO 8601 now, for the WAMP-CRA challenge's `timestamp`.
    pub timestamp: String,
    pub random_authid: [u8; 24],
    pub random_nonce: [u8; 48],
}

/// Picks the login method and starts it.
pub fn start(realm: Option<&RealmSettings>, hello: Hello<'_>) -> Start {
    // A client that names no method: its cookies when it has them, else anonymous (Crossbar
    // `session.py`: `authmethods = details.authmethods or ["anonymous"]`).
    let offered = hello
        .authmethods
        .clone()
        .unwrap_or_else(|| vec!["cookie", "anonymous"]);
    let allows = |method| realm.is_some_and(|realm| realm.allows(method));
    for name in &offered {
        match *name {
            "cookie" => {
                if let Some(user) = hello.cookie_user {
                    let role = hello.cookie_role.to_owned();
                    return Start::Welcome(Login::fixed(user.to_owned(), role, "cookie"));
                }
            }
            "anonymous" if allows(AuthMethod::Anonymous) => {
                let role = realm.map_or("anonymous", |realm| realm.anonymous_role.as_str());
                // Crossbar ignores a requested authid and draws one.
                let authid = serial_number(&hello.random_authid);
                return Start::Welcome(Login::fixed(authid, role.to_owned(), "anonymous"));
            }
            "ticket" if allows(AuthMethod::Ticket) => {
                return challenge(realm, &hello, AuthMethod::Ticket);
            }
            "wampcra" if allows(AuthMethod::Wampcra) => {
                return challenge(realm, &hello, AuthMethod::Wampcra);
            }
            // Unknown or not allowed here: the next one.
            _ => {}
        }
    }
    Start::Deny {
        reason: NO_AUTH_METHOD,
        message: format!(
            "cannot authenticate using any of the offered authmethods {}",
            offered.join(", ")
        ),
    }
}

fn challenge(realm: Option<&RealmSettings>, hello: &Hello<'_>, method: AuthMethod) -> Start {
    let authid = hello.authid.unwrap_or_default().to_owned();
    let principal = realm.and_then(|realm| realm.principal(&authid));
    let authenticator = realm.and_then(|realm| realm.authenticator.clone());
    let authrole = principal.map_or_else(String::new, |principal| principal.role.clone());
    match method {
        AuthMethod::Ticket => {
            let expected = match principal.map(|principal| &principal.credential) {
                Some(Credential::Ticket(ticket)) => Expected::Signature(ticket.clone()),
                Some(Credential::Wampcra { .. }) => Expected::Nothing,
                None if authenticator.is_some() => Expected::Authenticator,
                None => Expected::Nothing,
            };
            Start::Challenge {
                pending: Pending {
                    authid,
                    authrole,
                    method,
                    expected,
                    authprovider: STATIC_PROVIDER,
                    authextra: Dict::new(),
                },
                extra: Dict::new(),
            }
        }
        AuthMethod::Wampcra | AuthMethod::Anonymous => {
            let (key, salted) = match principal.map(|principal| &principal.credential) {
                Some(Credential::Wampcra { key, salted }) => (Some(key), salted.as_ref()),
                Some(Credential::Ticket(_)) => (None, None),
                None => match authenticator {
                    Some(procedure) => return Start::Ask { procedure, authid },
                    None => (None, None),
                },
            };
            let (pending, extra) = wampcra_challenge(
                WampcraPrincipal {
                    authid,
                    authrole,
                    authprovider: STATIC_PROVIDER,
                    key,
                    salted,
                },
                hello.session,
                &nonce(&hello.random_nonce),
                &hello.timestamp,
            );
            Start::Challenge { pending, extra }
        }
    }
}

/// Who a WAMP-CRA challenge is for.
pub struct WampcraPrincipal<'a> {
    pub authid: String,
    pub authrole: String,
    pub authprovider: &'static str,
    /// The key that signs; `None` for an unknown authid (every signature fails).
    pub key: Option<&'a Hidden>,
    pub salted: Option<&'a Salted>,
}

/// The WAMP-CRA CHALLENGE extra for `principal`, and what AUTHENTICATE must answer.
pub fn wampcra_challenge(
    principal: WampcraPrincipal<'_>,
    session: u64,
    nonce: &str,
    timestamp: &str,
) -> (Pending, Dict) {
    // Crossbar `wampcra.py` `_compute_challenge`: these keys, `json.dumps` with its default
    // separators; the client signs the string as it is.
    let challenge = format!(
        "{{\"authid\": {}, \"authrole\": {}, \"authmethod\": \"wampcra\", \
         \"authprovider\": {}, \"session\": {session}, \"nonce\": {}, \"timestamp\": {}}}",
        json_string(&principal.authid),
        json_string(&principal.authrole),
        json_string(principal.authprovider),
        json_string(nonce),
        json_string(timestamp),
    );
    let mut extra = Dict::new();
    extra.insert("challenge", Value::from(challenge.as_str()));
    if let Some(salted) = principal.salted {
        extra.insert("salt", Value::from(salted.salt.as_str()));
        extra.insert("iterations", Value::from(u64::from(salted.iterations)));
        extra.insert("keylen", Value::from(u64::from(salted.keylen)));
    }
    let expected = principal.key.map_or(Expected::Nothing, |key| {
        Expected::Signature(Hidden::new(
            compute_wcs(key.expose(), challenge.as_bytes()).into_bytes(),
        ))
    });
    let pending = Pending {
        authid: principal.authid,
        authrole: principal.authrole,
        method: AuthMethod::Wampcra,
        expected,
        authprovider: principal.authprovider,
        authextra: Dict::new(),
    };
    (pending, extra)
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

/// A permission's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    pub allow: bool,
    /// The caller or publisher is disclosed whatever it asked (`disclose` of the permission).
    pub disclose: bool,
}

/// Every realm's roles with their permissions indexed by URI, built once per config (load
/// and reload), so an action costs the lookups of one `PatternIndex`.
#[derive(Debug, Default)]
pub struct Policies {
    /// Realms with roles only; a realm absent here authorizes everything.
    realms: HashMap<String, HashMap<String, RolePolicy>>,
}

#[derive(Debug)]
struct RolePolicy {
    index: PatternIndex,
    permissions: Vec<Permission>,
    /// The role's authorizer procedure; then `permissions` is empty.
    authorizer: Option<String>,
}

impl Policies {
    pub fn compile(settings: &WampRealms) -> Policies {
        let mut realms = HashMap::new();
        for (name, realm) in &settings.by_name {
            if realm.roles.is_empty() {
                continue;
            }
            let roles = realm
                .roles
                .iter()
                .map(|role| {
                    let mut index = PatternIndex::default();
                    for (position, permission) in role.permissions.iter().enumerate() {
                        // The first of two permissions on the same URI and match wins.
                        if index.get(&permission.uri, permission.policy).is_none() {
                            let id = u64::try_from(position).unwrap_or(u64::MAX);
                            index.insert(&permission.uri, permission.policy, id);
                        }
                    }
                    let policy = RolePolicy {
                        index,
                        permissions: role.permissions.clone(),
                        authorizer: role.authorizer.clone(),
                    };
                    (role.name.clone(), policy)
                })
                .collect();
            realms.insert(name.clone(), roles);
        }
        Policies { realms }
    }

    /// The procedure that decides for sessions of `authrole` in `realm`, when the role has
    /// an authorizer instead of permissions.
    pub fn authorizer(&self, realm: &str, authrole: &str) -> Option<&str> {
        self.realms.get(realm)?.get(authrole)?.authorizer.as_deref()
    }

    /// May a session of `authrole` do `action` on `uri` in `realm`? A realm without settings
    /// or without roles: yes, as before roles existed. A role the realm does not define: no.
    /// Otherwise the permission matching `uri` most specifically decides: an exact one, else
    /// the wildcard with the most leading literal components, else the longest prefix. No
    /// matching permission: no (Crossbar's default permissions deny everything).
    ///
    /// As Crossbar's `RouterRoleStaticAuth.authorize`, a matching wildcard beats a prefix.
    /// One Crossbar corner is not copied: there an exact permission on a longer prefix of the
    /// URI (`com.a` for `com.ab`) hides a matching shorter prefix permission (`com.`) and
    /// denies, a trie artefact rather than a rule.
    pub fn authorize(
        &self,
        realm: &str,
        authrole: &str,
        uri: &str,
        action: Action,
    ) -> Authorization {
        let Some(roles) = self.realms.get(realm) else {
            return Authorization {
                allow: true,
                disclose: false,
            };
        };
        roles
            .get(authrole)
            .and_then(|role| {
                let position = usize::try_from(role.index.permission_match(uri)?).ok()?;
                role.permissions.get(position)
            })
            .map_or(
                Authorization {
                    allow: false,
                    disclose: false,
                },
                |permission| answer(permission, action),
            )
    }
}

fn answer(permission: &Permission, action: Action) -> Authorization {
    let (allow, disclose) = match action {
        Action::Call => (permission.call, permission.disclose_caller),
        Action::Register => (permission.register, false),
        Action::Publish => (permission.publish, permission.disclose_publisher),
        Action::Subscribe => (permission.subscribe, false),
    };
    Authorization { allow, disclose }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::wamp_realm::{Principal, Role};
    use crate::router::uri::Match;

    /// autobahn `test_wamp_auth.py` `test_compute_wcs`: the secret "L3L1YUE8Txlw" over
    /// `json.dumps([1, 2, 3])`.
    #[test]
    fn compute_wcs_matches_autobahn() {
        assert_eq!(
            compute_wcs(b"L3L1YUE8Txlw", b"[1, 2, 3]"),
            "1njQtmmeYO41N5EWEzD2kAjjEKRZ5kPZt/TzpYXOzR0="
        );
    }

    /// autobahn `test_derive_key`: `derive_key("L3L1YUE8Txlw", "salt123")` with its defaults,
    /// 1000 iterations and 32 bytes.
    #[test]
    fn derive_key_matches_autobahn() {
        assert_eq!(
            derive_key(b"L3L1YUE8Txlw", b"salt123", 1000, 32),
            "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y="
        );
    }

    #[test]
    fn same_bytes_needs_equal_lengths_and_bytes() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(same_bytes(b"", b""));
    }

    #[test]
    fn serial_number_has_autobahns_shape() {
        let serial = serial_number(&[0xff; 24]);
        assert_eq!(serial.len(), 29);
        assert_eq!(serial.split('-').count(), 6);
        assert!(
            serial
                .chars()
                .all(|c| c == '-' || "345679ACEFGHJKLMNPQRSTUVWXY".contains(c))
        );
        assert_eq!(nonce(&[0; 48]).len(), 64);
    }

    pub fn permission(uri: &str, policy: Match, allow: &[&str]) -> Permission {
        Permission {
            uri: uri.to_owned(),
            policy,
            call: allow.contains(&"call"),
            register: allow.contains(&"register"),
            publish: allow.contains(&"publish"),
            subscribe: allow.contains(&"subscribe"),
            disclose_caller: false,
            disclose_publisher: false,
        }
    }

    /// A realm allowing anonymous, ticket and wampcra, with `alice` (ticket "sesame"), `bob`
    /// (secret "L3L1YUE8Txlw"), `carol` (the same secret salted with "salt123"), and roles.
    pub fn realm_settings() -> RealmSettings {
        RealmSettings {
            auth: vec![
                AuthMethod::Anonymous,
                AuthMethod::Ticket,
                AuthMethod::Wampcra,
            ],
            anonymous_role: "guest".to_owned(),
            principals: vec![
                Principal {
                    authid: "alice".to_owned(),
                    role: "admin".to_owned(),
                    credential: Credential::Ticket(Hidden::new(b"sesame".to_vec())),
                },
                Principal {
                    authid: "bob".to_owned(),
                    role: "guest".to_owned(),
                    credential: Credential::Wampcra {
                        key: Hidden::new(b"L3L1YUE8Txlw".to_vec()),
                        salted: None,
                    },
                },
                Principal {
                    authid: "carol".to_owned(),
                    role: "guest".to_owned(),
                    credential: Credential::Wampcra {
                        key: Hidden::new(
                            derive_key(b"L3L1YUE8Txlw", b"salt123", 1000, 32).into_bytes(),
                        ),
                        salted: Some(Salted {
                            salt: "salt123".to_owned(),
                            iterations: 1000,
                            keylen: 32,
                        }),
                    },
                },
            ],
            roles: vec![
                Role {
                    name: "admin".to_owned(),
                    permissions: vec![permission(
                        "",
                        Match::Prefix,
                        &["call", "register", "publish", "subscribe"],
                    )],
                    authorizer: None,
                },
                Role {
                    name: "guest".to_owned(),
                    permissions: vec![
                        permission("com.app.", Match::Prefix, &["subscribe", "call"]),
                        permission("com.app.secret.", Match::Prefix, &[]),
                        permission("com.app.secret.open", Match::Exact, &["subscribe"]),
                        permission("com..chat", Match::Wildcard, &["publish", "subscribe"]),
                    ],
                    authorizer: None,
                },
                Role {
                    name: "blocked".to_owned(),
                    permissions: Vec::new(),
                    authorizer: None,
                },
            ],
            authenticator: None,
        }
    }

    fn hello<'a>(authmethods: Option<Vec<&'a str>>, authid: Option<&'a str>) -> Hello<'a> {
        Hello {
            authmethods,
            authid,
            cookie_user: None,
            cookie_role: "user",
            session: 42,
            timestamp: "2026-01-01T00:00:00.000Z".to_owned(),
            random_authid: [7; 24],
            random_nonce: [9; 48],
        }
    }

    #[test]
    fn the_first_offered_method_the_realm_allows_wins() {
        let realm = realm_settings();
        let Start::Challenge { pending, extra } = start(
            Some(&realm),
            hello(
                Some(vec!["cryptosign", "ticket", "anonymous"]),
                Some("alice"),
            ),
        ) else {
            panic!()
        };
        assert_eq!(pending.method, AuthMethod::Ticket);
        assert!(extra.is_empty());
        assert!(pending.accepts("sesame"));
        assert!(!pending.accepts("sesam"));
        let Start::Welcome(login) = start(Some(&realm), hello(Some(vec!["anonymous"]), None))
        else {
            panic!()
        };
        assert_eq!(login.authrole, "guest");
        assert_eq!(login.authmethod, "anonymous");
    }

    #[test]
    fn cookie_needs_a_cookie_user_and_no_method_is_no_auth_method() {
        let mut cookieless = hello(Some(vec!["cookie"]), None);
        let Start::Deny { reason, .. } = start(None, cookieless) else {
            panic!()
        };
        assert_eq!(reason, NO_AUTH_METHOD);
        cookieless = hello(None, None);
        cookieless.cookie_user = Some("u1");
        assert_eq!(
            start(None, cookieless),
            Start::Welcome(Login::fixed("u1".to_owned(), "user".to_owned(), "cookie"))
        );
        // Ticket is not allowed in a realm without settings.
        let Start::Deny { reason, .. } = start(None, hello(Some(vec!["ticket"]), Some("alice")))
        else {
            panic!()
        };
        assert_eq!(reason, NO_AUTH_METHOD);
    }

    #[test]
    fn an_unknown_authid_is_challenged_and_always_fails() {
        let realm = realm_settings();
        for method in ["ticket", "wampcra"] {
            let Start::Challenge { pending, .. } =
                start(Some(&realm), hello(Some(vec![method]), Some("mallory")))
            else {
                panic!()
            };
            assert!(!pending.accepts(""));
            assert!(!pending.accepts("sesame"));
        }
        // A ticket principal cannot log in with wampcra, nor the reverse.
        let Start::Challenge { pending, .. } =
            start(Some(&realm), hello(Some(vec!["ticket"]), Some("bob")))
        else {
            panic!()
        };
        assert!(!pending.accepts("L3L1YUE8Txlw"));
    }

    #[test]
    fn wampcra_challenge_is_signed_with_the_secret_or_the_derived_key() {
        let realm = realm_settings();
        for (authid, key) in [
            ("bob", "L3L1YUE8Txlw".to_owned()),
            ("carol", derive_key(b"L3L1YUE8Txlw", b"salt123", 1000, 32)),
        ] {
            let Start::Challenge { pending, extra } =
                start(Some(&realm), hello(Some(vec!["wampcra"]), Some(authid)))
            else {
                panic!()
            };
            let Some(Ok(challenge)) = extra.str("challenge") else {
                panic!("{extra:?}")
            };
            let parsed: serde_json::Value = serde_json::from_str(challenge).unwrap();
            assert_eq!(parsed["authid"], authid);
            assert_eq!(parsed["authrole"], "guest");
            assert_eq!(parsed["authmethod"], "wampcra");
            assert_eq!(parsed["authprovider"], "static");
            assert_eq!(parsed["session"], 42);
            assert_eq!(parsed["nonce"].as_str().unwrap().len(), 64);
            assert_eq!(parsed["timestamp"], "2026-01-01T00:00:00.000Z");
            assert_eq!(
                extra.str("salt").and_then(Result::ok).is_some(),
                authid == "carol"
            );
            assert!(pending.accepts(&compute_wcs(key.as_bytes(), challenge.as_bytes())));
            assert!(!pending.accepts(&compute_wcs(b"wrong", challenge.as_bytes())));
        }
    }

    /// `Policies::authorize` for one realm's settings.
    fn authorize(
        realm: Option<&RealmSettings>,
        authrole: &str,
        uri: &str,
        action: Action,
    ) -> Authorization {
        let mut settings = WampRealms::NONE;
        if let Some(realm) = realm {
            settings.by_name.insert(String::new(), realm.clone());
        }
        Policies::compile(&settings).authorize("", authrole, uri, action)
    }

    #[test]
    fn the_most_specific_permission_decides() {
        let realm = realm_settings();
        let may = |role: &str, uri: &str, action| authorize(Some(&realm), role, uri, action).allow;
        assert!(may("guest", "com.app.news", Action::Subscribe));
        assert!(may("guest", "com.app.news", Action::Call));
        assert!(!may("guest", "com.app.news", Action::Publish));
        assert!(!may("guest", "com.app.news", Action::Register));
        // The longer prefix beats the shorter one, the exact beats both.
        assert!(!may("guest", "com.app.secret.plans", Action::Subscribe));
        assert!(may("guest", "com.app.secret.open", Action::Subscribe));
        // A wildcard beats a prefix, as in Crossbar: "com.app.chat" matches both.
        assert!(may("guest", "com.app.chat", Action::Publish));
        assert!(may("guest", "com.room.chat", Action::Publish));
        assert!(!may("guest", "org.app", Action::Subscribe));
        // Meta API URIs are URIs like any other.
        assert!(!may("guest", "wamp.subscription.list", Action::Call));
        assert!(may("admin", "wamp.subscription.list", Action::Call));
        assert!(!may("blocked", "com.app.news", Action::Subscribe));
        assert!(!may("nobody", "com.app.news", Action::Subscribe));
        // No settings, or no roles: everything, as before roles.
        assert!(authorize(None, "nobody", "x", Action::Register).allow);
        let open = RealmSettings {
            roles: Vec::new(),
            ..realm_settings()
        };
        assert!(authorize(Some(&open), "nobody", "x", Action::Register).allow);
    }

    #[test]
    fn disclose_follows_the_action() {
        let mut permission = permission("a", Match::Exact, &["call", "publish"]);
        permission.disclose_caller = true;
        assert_eq!(
            answer(&permission, Action::Call),
            Authorization {
                allow: true,
                disclose: true
            }
        );
        assert!(!answer(&permission, Action::Publish).disclose);
    }
}
