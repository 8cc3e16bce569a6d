//! WAMP authentication and authorization against a realm's `[wamp.realm.NAME]` settings.
//!
//! Authentication: HELLO's `authmethods` (in the client's order) meet the methods the realm
//! allows; the first both know wins. `cookie` (the wson cookies of the upgrade) and
//! `anonymous` welcome at once; `ticket`, `wampcra` and `cryptosign` send CHALLENGE and the
//! router waits for AUTHENTICATE (`Phase::Authenticating`). A denied login ends with ABORT, as any refused
//! HELLO (WAMP v2, "Session Establishment"); the spec names no reason for a failed login, so
//! the reasons are Crossbar's: `wamp.error.no_auth_method` when no method fits,
//! `wamp.error.not_authorized` (autobahn's `Deny` default) for a failed login.
//! An unknown authid gets a CHALLENGE like a known one and fails at AUTHENTICATE with the
//! same ABORT as a wrong signature, so a client cannot tell which part was wrong (Crossbar
//! ABORTs an unknown authid at HELLO, naming it). One difference remains visible: a salted
//! WAMP-CRA principal's CHALLENGE carries its salt, an unknown authid's carries none.
//!
//! WAMP-Cryptosign (WAMP v2, "Cryptosign-based Authentication"): HELLO names the client's
//! Ed25519 public key in `authextra.pubkey` and, optionally, an authid; without one, the
//! principal is the one whose `authorized_keys` hold the key (Crossbar). CHALLENGE carries 32
//! random bytes in hex; AUTHENTICATE answers the hex of the 64-byte signature followed by the
//! 32 bytes signed, which must be the challenge. An unknown authid or key, or a key the
//! principal does not list, is challenged and fails like a wrong signature (Crossbar ABORTs
//! each at HELLO). wson has no TLS channel to bind to: a HELLO asking for `tls-unique` is
//! refused at HELLO, as Crossbar refuses it on a transport without TLS.
//!
//! Authorization: a realm with roles checks each PUBLISH, SUBSCRIBE, CALL and REGISTER
//! against the session's role; the permission matching the URI most specifically decides
//! (see [`Policies::authorize`]). The backend is trusted and never checked.

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use std::collections::HashMap;
use std::fmt;

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
/// signature is 44 characters, a WAMP-Cryptosign one 192, a ticket is what the operator
/// configured.
pub const MAX_SIGNATURE_LEN: usize = 4096;
/// Random bytes in a WAMP-Cryptosign challenge. WAMP v2, "Computing the Signature": "The
/// challenge sent by the router is a 32 bytes random value, encoded as a Hex string".
pub const CHALLENGE_LEN: usize = 32;
/// Bytes of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;
/// Bytes of a WAMP-Cryptosign AUTHENTICATE signature: "The client MUST return the
/// concatenation of the signature and the message signed (96 bytes)". Crossbar accepts this
/// form only ("signed message has invalid length (was {}, but should have been 96)").
const SIGNED_CHALLENGE_LEN: usize = SIGNATURE_LEN + CHALLENGE_LEN;
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

/// `N` bytes from exactly `2 * N` hex digits of either case; `None` for any other text. The
/// length is checked first: a longer text is refused unread.
pub fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if Some(digits.len()) != N.checked_mul(2) {
        return None;
    }
    let mut bytes = [0_u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else {
            return None;
        };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(bytes)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex, as autobahn and Crossbar write keys and challenges.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        for digit in [byte >> 4, byte & 0x0f] {
            text.push(char::from_digit(u32::from(digit), 16).unwrap_or('0'));
        }
    }
    text
}

/// Why a text is no usable Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not 64 hex digits.
    NotHex,
    /// 32 bytes that encode no point of the curve.
    NotAPoint,
    /// A point of small order: `verify_strict` refuses every signature by it.
    SmallOrder,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::NotHex => "expected 64 hex characters (a 32-byte Ed25519 public key)",
            KeyError::NotAPoint => "not an Ed25519 public key (no point of the curve)",
            KeyError::SmallOrder => "a small-order point, which no signature verifies with",
        })
    }
}

/// An Ed25519 public key from its hex text (`authorized_keys`, an authenticator's `pubkey`).
pub fn public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = hex_bytes::<32>(text).ok_or(KeyError::NotHex)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)?;
    if key.is_weak() {
        return Err(KeyError::SmallOrder);
    }
    Ok(key)
}

/// True when `signature` (AUTHENTICATE's, hex) is `key`'s Ed25519 signature of `challenge`
/// followed by the challenge itself. WAMP v2: "the Ed25519 signature over the 32 bytes
/// message MUST be computed using the WAMP-Cryptosign private key"; the message signed must be
/// what was sent (Crossbar: "message signed is bogus"). Strict verification: a
/// non-canonical S or a small-order R is refused, as libsodium (Crossbar's PyNaCl) does.
pub fn cryptosign_verifies(
    key: &VerifyingKey,
    challenge: &[u8; CHALLENGE_LEN],
    signature: &str,
) -> bool {
    let Some(signed) = hex_bytes::<SIGNED_CHALLENGE_LEN>(signature) else {
        return false;
    };
    let Some((signature, message)) = signed.split_first_chunk::<SIGNATURE_LEN>() else {
        return false;
    };
    // The challenge is public: an ordinary comparison leaks nothing.
    message == challenge
        && key
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
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
    /// `key`'s Ed25519 signature of `challenge` (WAMP-Cryptosign). The key is boxed: a
    /// decoded point is 192 bytes, which every client's `Phase` would carry otherwise.
    Cryptosign {
        key: Box<VerifyingKey>,
        challenge: [u8; CHALLENGE_LEN],
    },
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
            Expected::Cryptosign { key, challenge } => {
                cryptosign_verifies(key, challenge, signature)
            }
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
    /// Ask the realm's authenticator `procedure` about `authid` (dynamic WAMP-CRA or
    /// WAMP-Cryptosign; empty: none asked for), then challenge with the secret or public key
    /// it names. `authextra` is HELLO's, which the authenticator gets (Crossbar).
    Ask {
        procedure: String,
        method: AuthMethod,
        authid: String,
        authextra: Option<Dict>,
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
    /// `HELLO.Details.authextra`; `None` when absent.
    pub authextra: Option<&'a Dict>,
    /// The wson cookies' user, when the upgrade had verified cookies.
    pub cookie_user: Option<&'a str>,
    /// `[wamp] authrole`: the role of a cookie login.
    pub cookie_role: &'a str,
    pub session: u64,
    /// ISO 8601 now, for the WAMP-CRA challenge's `timestamp`.
    pub timestamp: String,
    pub random_authid: [u8; 24],
    pub random_nonce: [u8; 48],
    pub random_challenge: [u8; CHALLENGE_LEN],
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
            "cryptosign" if allows(AuthMethod::Cryptosign) => {
                return cryptosign(realm, &hello);
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
                Some(Credential::Wampcra { .. } | Credential::Cryptosign(_)) => Expected::Nothing,
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
        AuthMethod::Wampcra | AuthMethod::Anonymous | AuthMethod::Cryptosign => {
            let (key, salted) = match principal.map(|principal| &principal.credential) {
                Some(Credential::Wampcra { key, salted }) => (Some(key), salted.as_ref()),
                Some(Credential::Ticket(_) | Credential::Cryptosign(_)) => (None, None),
                None => match authenticator {
                    Some(procedure) => {
                        return Start::Ask {
                            procedure,
                            method: AuthMethod::Wampcra,
                            authid,
                            authextra: hello.authextra.cloned(),
                        };
                    }
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

/// WAMP-Cryptosign after HELLO: the principal named by authid, else the one holding
/// `authextra.pubkey`; a static one is challenged (failing unless the key is one of its
/// `authorized_keys`), an unknown one goes to the realm's authenticator when there is one.
fn cryptosign(realm: Option<&RealmSettings>, hello: &Hello<'_>) -> Start {
    let authextra = hello.authextra;
    // Crossbar 26.10.1 `cryptosign.py` `hello`: 'invalid channel binding type "{}"
    // requested' for any but "tls-unique", and without a TLS channel id "never authenticate
    // without the channel binding the client requested". wson has no TLS channel.
    match authextra.and_then(|extra| extra.get("channel_binding")) {
        None | Some(Value::Null) => {}
        Some(Value::String(binding)) if binding == "tls-unique" => {
            return Start::Deny {
                reason: NOT_AUTHORIZED,
                message: "channel binding \"tls-unique\" requested, but the transport has no \
                          TLS channel ID"
                    .to_owned(),
            };
        }
        Some(other) => {
            let shown = match other {
                Value::String(text) if text.len() <= 64 => format!("\"{text}\""),
                _ => "other than tls-unique".to_owned(),
            };
            return Start::Deny {
                reason: NOT_AUTHORIZED,
                message: format!("invalid channel binding type {shown} requested"),
            };
        }
    }
    // WAMP v2: `pubkey` is required. Its absence or form says nothing of the principals.
    let pubkey = match authextra.and_then(|extra| extra.str("pubkey")) {
        Some(Ok(text)) => hex_bytes::<32>(text),
        Some(Err(())) | None => None,
    };
    let Some(pubkey) = pubkey else {
        return Start::Deny {
            reason: NOT_AUTHORIZED,
            message: "cryptosign needs authextra.pubkey: the client's Ed25519 public key, \
                      64 hex characters"
                .to_owned(),
        };
    };
    let principal = realm.and_then(|realm| match hello.authid {
        Some(authid) => realm.principal(authid),
        None => realm.principal_by_key(&pubkey),
    });
    let authid = hello.authid.unwrap_or_default().to_owned();
    let key = match principal {
        Some(principal) => match &principal.credential {
            Credential::Cryptosign(keys) => keys
                .iter()
                .find(|authorized| authorized.as_bytes() == &pubkey)
                .copied(),
            Credential::Ticket(_) | Credential::Wampcra { .. } => None,
        },
        None => {
            if let Some(procedure) = realm.and_then(|realm| realm.authenticator.clone()) {
                return Start::Ask {
                    procedure,
                    method: AuthMethod::Cryptosign,
                    authid,
                    authextra: authextra.cloned(),
                };
            }
            None
        }
    };
    let (pending, extra) = cryptosign_challenge(
        CryptosignPrincipal {
            authid: principal.map_or(authid, |principal| principal.authid.clone()),
            authrole: principal.map_or_else(String::new, |principal| principal.role.clone()),
            authprovider: STATIC_PROVIDER,
            key,
        },
        &hello.random_challenge,
    );
    Start::Challenge { pending, extra }
}

/// Who a WAMP-Cryptosign challenge is for.
pub struct CryptosignPrincipal {
    pub authid: String,
    pub authrole: String,
    pub authprovider: &'static str,
    /// The key that must sign; `None` for an unknown principal or key (every signature
    /// fails).
    pub key: Option<VerifyingKey>,
}

/// The WAMP-Cryptosign CHALLENGE extra for `principal`, and what AUTHENTICATE must answer.
pub fn cryptosign_challenge(
    principal: CryptosignPrincipal,
    challenge: &[u8; CHALLENGE_LEN],
) -> (Pending, Dict) {
    // Crossbar `_compute_challenge`: {challenge, channel_binding}; the binding is null, as
    // none was asked for (one asked for is refused at HELLO).
    let mut extra = Dict::new();
    extra.insert("challenge", Value::String(hex(challenge)));
    extra.insert("channel_binding", Value::Null);
    let expected = principal
        .key
        .map_or(Expected::Nothing, |key| Expected::Cryptosign {
            key: Box::new(key),
            challenge: *challenge,
        });
    let pending = Pending {
        authid: principal.authid,
        authrole: principal.authrole,
        method: AuthMethod::Cryptosign,
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
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::config::wamp_realm::{Principal, Role};
    use crate::router::uri::Match;

    /// WAMP v2, "Cryptosign-based Authentication", test vectors without a channel id:
    /// private key, challenge, AUTHENTICATE signature.
    pub const CRYPTOSIGN_VECTORS: [(&str, &str, &str); 3] = [
        (
            "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ),
        (
            "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
            "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
        ),
        (
            "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
            "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            "7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
        ),
    ];

    /// The private key of test vector `index`.
    pub fn signing_key(index: usize) -> SigningKey {
        SigningKey::from_bytes(&hex_bytes(CRYPTOSIGN_VECTORS[index].0).unwrap())
    }

    /// autobahn's `sign_challenge`: hex(signature) + hex(challenge), for a CHALLENGE's extra.
    pub fn sign_challenge(key: &SigningKey, extra: &Dict) -> String {
        let challenge: [u8; CHALLENGE_LEN] =
            hex_bytes(extra.str("challenge").unwrap().unwrap()).unwrap();
        format!(
            "{}{}",
            hex(&key.sign(&challenge).to_bytes()),
            hex(&challenge)
        )
    }

    #[test]
    fn cryptosign_signatures_match_the_spec_test_vectors() {
        for (private, challenge_hex, signature) in CRYPTOSIGN_VECTORS {
            let key = SigningKey::from_bytes(&hex_bytes(private).unwrap());
            let challenge: [u8; CHALLENGE_LEN] = hex_bytes(challenge_hex).unwrap();
            // Ed25519 is deterministic: signing gives the spec's bytes exactly.
            let mut extra = Dict::new();
            extra.insert("challenge", Value::from(challenge_hex));
            assert_eq!(sign_challenge(&key, &extra), signature);
            let public = key.verifying_key();
            assert!(cryptosign_verifies(&public, &challenge, signature));
            assert!(cryptosign_verifies(
                &public,
                &challenge,
                &signature.to_uppercase()
            ));
        }
    }

    #[test]
    fn a_cryptosign_signature_must_be_96_bytes_over_the_challenge() {
        let (_, challenge_hex, signature) = CRYPTOSIGN_VECTORS[1];
        let public = signing_key(1).verifying_key();
        let challenge: [u8; CHALLENGE_LEN] = hex_bytes(challenge_hex).unwrap();
        // The 64-byte signature alone: Crossbar refuses it too ("should have been 96").
        assert!(!cryptosign_verifies(&public, &challenge, &signature[..128]));
        // Another key, another challenge, a flipped bit, a byte too many or too few.
        assert!(!cryptosign_verifies(
            &signing_key(2).verifying_key(),
            &challenge,
            signature
        ));
        assert!(!cryptosign_verifies(&public, &[0xff; 32], signature));
        let mut flipped: [u8; 96] = hex_bytes(signature).unwrap();
        flipped[5] ^= 1;
        assert!(!cryptosign_verifies(&public, &challenge, &hex(&flipped)));
        assert!(!cryptosign_verifies(
            &public,
            &challenge,
            &format!("{signature}00")
        ));
        assert!(!cryptosign_verifies(&public, &challenge, &signature[2..]));
        // A signature over another message, sent with our challenge appended.
        let other = signing_key(1).sign(&[0_u8; 32]).to_bytes();
        let forged = format!("{}{challenge_hex}", hex(&other));
        assert!(!cryptosign_verifies(&public, &challenge, &forged));
        // Non-canonical S (S + the group order): valid for lax verifiers, not here.
        let mut signed: [u8; 96] = hex_bytes(signature).unwrap();
        let order =
            hex_bytes::<32>("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap();
        let mut carry = 0_u16;
        for (s, l) in signed[32..64].iter_mut().zip(order) {
            let [low, high] = (u16::from(*s) + u16::from(l) + carry).to_le_bytes();
            *s = low;
            carry = u16::from(high);
        }
        assert!(!cryptosign_verifies(&public, &challenge, &hex(&signed)));
    }

    #[test]
    fn hex_takes_exactly_its_digits() {
        assert_eq!(hex_bytes::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
        assert_eq!(hex_bytes::<0>(""), Some([]));
        for hostile in [
            "", "0", "0aF", "0aFf0", "0aFf00", "0g00", "+1ff", " 0ff", "0x0a", "ÿÿ", "é0",
            "\u{0}000", "０a",
        ] {
            assert_eq!(hex_bytes::<2>(hostile), None, "{hostile:?}");
        }
        // A length is refused before a byte is read.
        assert_eq!(hex_bytes::<32>(&"0".repeat(1 << 20)), None);
        let key = hex(signing_key(0).verifying_key().as_bytes());
        assert!(public_key(&key).is_ok());
        assert!(public_key(&key.to_uppercase()).is_ok());
        assert_eq!(public_key(&key[2..]), Err(KeyError::NotHex));
        assert_eq!(public_key(&format!("{key}00")), Err(KeyError::NotHex));
        assert_eq!(
            public_key(&format!("02{}", "0".repeat(62))),
            Err(KeyError::NotAPoint)
        );
        // The identity point (y = 1): order 1.
        assert_eq!(
            public_key(&format!("01{}", "0".repeat(62))),
            Err(KeyError::SmallOrder)
        );
    }

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

    /// A realm allowing anonymous, ticket, wampcra and cryptosign, with `alice` (ticket
    /// "sesame"), `bob` (secret "L3L1YUE8Txlw"), `carol` (the same secret salted with
    /// "salt123"), `dave` (the keys of test vectors 0 and 1), `erin` (the key of vector 1, so
    /// that key alone names nobody), and roles.
    pub fn realm_settings() -> RealmSettings {
        let public = |index| signing_key(index).verifying_key();
        RealmSettings {
            auth: vec![
                AuthMethod::Anonymous,
                AuthMethod::Ticket,
                AuthMethod::Wampcra,
                AuthMethod::Cryptosign,
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
                Principal {
                    authid: "dave".to_owned(),
                    role: "guest".to_owned(),
                    credential: Credential::Cryptosign(vec![public(0), public(1)]),
                },
                Principal {
                    authid: "erin".to_owned(),
                    role: "admin".to_owned(),
                    credential: Credential::Cryptosign(vec![public(1)]),
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
            authextra: None,
            cookie_user: None,
            cookie_role: "user",
            session: 42,
            timestamp: "2026-01-01T00:00:00.000Z".to_owned(),
            random_authid: [7; 24],
            random_nonce: [9; 48],
            random_challenge: [5; 32],
        }
    }

    #[test]
    fn the_first_offered_method_the_realm_allows_wins() {
        let realm = realm_settings();
        let Start::Challenge { pending, extra } = start(
            Some(&realm),
            hello(Some(vec!["scram", "ticket", "anonymous"]), Some("alice")),
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

    /// A cryptosign HELLO from the holder of test vector `index`'s key, with `authextra`
    /// entries added.
    fn cryptosign_start(
        realm: &RealmSettings,
        authid: Option<&str>,
        index: usize,
        more: &[(&str, Value)],
    ) -> Start {
        let mut authextra = Dict::new();
        authextra.insert(
            "pubkey",
            Value::String(hex(signing_key(index).verifying_key().as_bytes())),
        );
        for (key, value) in more {
            authextra.insert(*key, value.clone());
        }
        let mut hello = hello(Some(vec!["cryptosign"]), authid);
        hello.authextra = Some(&authextra);
        start(Some(realm), hello)
    }

    #[test]
    fn cryptosign_finds_the_principal_by_authid_or_else_by_key() {
        let realm = realm_settings();
        for (authid, index, who, role) in [
            (Some("dave"), 0, "dave", "guest"),
            (Some("dave"), 1, "dave", "guest"),
            (Some("erin"), 1, "erin", "admin"),
            // No authid: the one principal listing the key.
            (None, 0, "dave", "guest"),
        ] {
            let Start::Challenge { pending, extra } = cryptosign_start(&realm, authid, index, &[])
            else {
                panic!("{authid:?}")
            };
            assert_eq!(
                (pending.authid.as_str(), pending.authrole.as_str()),
                (who, role)
            );
            assert_eq!(pending.method, AuthMethod::Cryptosign);
            assert_eq!(extra.str("challenge"), Some(Ok("05".repeat(32).as_str())));
            assert_eq!(extra.get("channel_binding"), Some(&Value::Null));
            assert!(pending.accepts(&sign_challenge(&signing_key(index), &extra)));
            assert!(!pending.accepts(&sign_challenge(&signing_key(2), &extra)));
        }
    }

    #[test]
    fn an_unknown_or_unlisted_cryptosign_key_is_challenged_and_always_fails() {
        let realm = realm_settings();
        for (authid, index) in [
            // Unknown authid; a key the principal does not list; a key no principal lists;
            // a key two principals list (Crossbar: "multiple authids ... have this pubkey");
            // principals of other methods.
            (Some("mallory"), 0),
            (Some("erin"), 0),
            (None, 2),
            (None, 1),
            (Some("alice"), 0),
            (Some("bob"), 0),
        ] {
            let Start::Challenge { pending, extra } = cryptosign_start(&realm, authid, index, &[])
            else {
                panic!("{authid:?} {index}")
            };
            assert_eq!(pending.expected, Expected::Nothing, "{authid:?} {index}");
            assert!(!pending.accepts(&sign_challenge(&signing_key(index), &extra)));
            assert_eq!(extra.len(), 2);
        }
        // A cryptosign principal has no ticket.
        let Start::Challenge { pending, .. } =
            start(Some(&realm), hello(Some(vec!["ticket"]), Some("dave")))
        else {
            panic!()
        };
        assert_eq!(pending.expected, Expected::Nothing);
    }

    #[test]
    fn cryptosign_needs_a_pubkey_and_binds_no_channel() {
        let realm = realm_settings();
        // An explicit null is no binding asked for.
        let Start::Challenge { pending, extra } =
            cryptosign_start(&realm, Some("dave"), 0, &[("channel_binding", Value::Null)])
        else {
            panic!()
        };
        assert_eq!(extra.get("channel_binding"), Some(&Value::Null));
        assert!(pending.accepts(&sign_challenge(&signing_key(0), &extra)));
        for (name, value) in [
            ("channel_binding", Value::from("tls-unique")),
            ("channel_binding", Value::from("tls-exporter")),
            ("channel_binding", Value::from(1_u64)),
            ("pubkey", Value::from("00ff")),
            ("pubkey", Value::from(7_u64)),
        ] {
            let Start::Deny { reason, message } =
                cryptosign_start(&realm, Some("dave"), 0, &[(name, value)])
            else {
                panic!("{name}")
            };
            assert_eq!(reason, NOT_AUTHORIZED);
            assert!(
                message.contains(name.split('_').next().unwrap()),
                "{message}"
            );
        }
        let Start::Deny { message, .. } =
            start(Some(&realm), hello(Some(vec!["cryptosign"]), Some("dave")))
        else {
            panic!()
        };
        assert!(message.contains("authextra.pubkey"), "{message}");
    }

    #[test]
    fn an_unknown_cryptosign_login_asks_the_authenticator() {
        let mut realm = realm_settings();
        realm.authenticator = Some("com.auth".to_owned());
        let Start::Ask {
            procedure,
            method,
            authid,
            authextra,
        } = cryptosign_start(&realm, None, 2, &[("x", Value::from(1_u64))])
        else {
            panic!()
        };
        assert_eq!(
            (procedure.as_str(), method),
            ("com.auth", AuthMethod::Cryptosign)
        );
        assert_eq!(authid, "");
        let authextra = authextra.unwrap();
        assert_eq!(authextra.get("x"), Some(&Value::from(1_u64)));
        assert!(authextra.get("pubkey").is_some());
        // A static principal is never asked about, even when its key does not fit.
        assert!(matches!(
            cryptosign_start(&realm, Some("erin"), 0, &[]),
            Start::Challenge { .. }
        ));
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
