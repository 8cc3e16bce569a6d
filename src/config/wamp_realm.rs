//! `[wamp.realm.NAME]`: per-realm authentication methods, static principals and roles with
//! per-URI permissions, read by a custom parser into [`WampRealms`] (the key `wamp.realm`).
//!
//! A realm without a table, or whose table has no `role`, keeps the behaviour of a realm
//! without settings: cookie logins only (unless `auth` adds methods), every session may do
//! everything. Errors name the key path (`wamp.realm.realm2.principal[1].role`). A principal's
//! ticket or secret never shows in `Debug` (nor anywhere in the log): [`Credential`] redacts.
//! WAMP-Cryptosign public keys are no secret; they are checked here to be Ed25519 points, so a
//! login compares bytes and never decodes a configured key.
//!
//! Salted WAMP-CRA keys are derived once here (PBKDF2 over `iterations`), not per login, so a
//! login never costs the single-threaded loop more than one HMAC.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use toml::{Table, Value};

use super::values::Checker;
use crate::router::auth::{self, derive_key};
use crate::router::uri::{self, Match};

/// Most PBKDF2 iterations a salted principal may ask for: each costs the config load once.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Longest derived key in bytes.
pub const MAX_KEYLEN: u32 = 512;

/// Every `[wamp.realm.NAME]` table, by realm name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WampRealms {
    pub by_name: BTreeMap<String, RealmSettings>,
}

impl WampRealms {
    /// No realm has settings: every realm behaves as before this table existed.
    pub const NONE: WampRealms = WampRealms {
        by_name: BTreeMap::new(),
    };

    pub fn get(&self, realm: &str) -> Option<&RealmSettings> {
        self.by_name.get(realm)
    }

    /// True when some realm allows a login without the wson cookies: then an upgrade that
    /// offers a WAMP subprotocol is admitted without cookies.
    pub fn any_cookieless(&self) -> bool {
        self.by_name.values().any(|realm| !realm.auth.is_empty())
    }
}

/// A login method besides `cookie`, which is always allowed when the upgrade had cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Anonymous,
    Ticket,
    Wampcra,
    Cryptosign,
}

impl AuthMethod {
    pub fn parse(name: &str) -> Option<AuthMethod> {
        match name {
            "anonymous" => Some(AuthMethod::Anonymous),
            "ticket" => Some(AuthMethod::Ticket),
            "wampcra" => Some(AuthMethod::Wampcra),
            "cryptosign" => Some(AuthMethod::Cryptosign),
            _ => None,
        }
    }

    /// The name in HELLO `authmethods` and WELCOME `authmethod`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Ticket => "ticket",
            AuthMethod::Wampcra => "wampcra",
            AuthMethod::Cryptosign => "cryptosign",
        }
    }
}

/// One `[wamp.realm.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RealmSettings {
    /// Methods allowed besides `cookie`, in the order written.
    pub auth: Vec<AuthMethod>,
    /// The authrole of anonymous sessions.
    pub anonymous_role: String,
    pub principals: Vec<Principal>,
    /// Empty: no authorization (every session may do everything).
    pub roles: Vec<Role>,
    /// The procedure (registered in this realm) asked about a ticket, WAMP-CRA or
    /// WAMP-Cryptosign login that is no static principal: Crossbar's dynamic authenticator.
    pub authenticator: Option<String>,
}

impl RealmSettings {
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.auth.contains(&method)
    }

    pub fn principal(&self, authid: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|principal| principal.authid == authid)
    }

    /// The principal whose `authorized_keys` hold `key`: whom a WAMP-Cryptosign HELLO without
    /// authid logs in as. `None` when no principal or several do (Crossbar `cryptosign.py`:
    /// "cannot infer client identity from pubkey: multiple authids ... have this pubkey").
    pub fn principal_by_key(&self, key: &[u8; 32]) -> Option<&Principal> {
        let mut holders = self.principals.iter().filter(|principal| {
            matches!(&principal.credential, Credential::Cryptosign(keys)
                if keys.iter().any(|authorized| authorized.as_bytes() == key))
        });
        match (holders.next(), holders.next()) {
            (Some(principal), None) => Some(principal),
            _ => None,
        }
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.name == name)
    }
}

/// A static principal (`[[wamp.realm.NAME.principal]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub authid: String,
    pub role: String,
    pub credential: Credential,
}

/// Bytes that must never be shown: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(Vec<u8>);

impl Hidden {
    pub fn new(bytes: Vec<u8>) -> Hidden {
        Hidden(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a principal proves who it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// WAMP-Ticket: the ticket itself.
    Ticket(Hidden),
    /// WAMP-CRA: `key` signs the challenge: the secret, or for a salted principal the
    /// PBKDF2-derived key in base64, as autobahn's `derive_key` returns it.
    Wampcra { key: Hidden, salted: Option<Salted> },
    /// WAMP-Cryptosign: the Ed25519 public keys allowed to sign the challenge (public, shown).
    Cryptosign(Vec<VerifyingKey>),
}

/// The PBKDF2 parameters a salted WAMP-CRA principal's CHALLENGE carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salted {
    pub salt: String,
    pub iterations: u32,
    pub keylen: u32,
}

/// A role (`[[wamp.realm.NAME.role]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub permissions: Vec<Permission>,
    /// The procedure (registered in this realm) asked about each action of a session of this
    /// role, instead of `permissions`: Crossbar's dynamic authorizer.
    pub authorizer: Option<String>,
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub uri: String,
    pub policy: Match,
    pub call: bool,
    pub register: bool,
    pub publish: bool,
    pub subscribe: bool,
    pub disclose_caller: bool,
    pub disclose_publisher: bool,
}

/// Reads the `realm` key of `[wamp]`: a table of realm tables.
pub(super) fn realms(checker: &mut Checker, key: &str, value: Value) -> Option<WampRealms> {
    let Value::Table(table) = value else {
        return checker.wrong_type(key, "a table of realm tables", &value);
    };
    let mut by_name = BTreeMap::new();
    let mut valid = true;
    for (name, value) in table {
        let path = format!("{key}.{}", name.escape_debug());
        match realm(checker, &path, value) {
            Some(settings) => {
                by_name.insert(name, settings);
            }
            None => valid = false,
        }
    }
    valid.then_some(WampRealms { by_name })
}

fn realm(checker: &mut Checker, path: &str, value: Value) -> Option<RealmSettings> {
    let Value::Table(mut table) = value else {
        return checker.wrong_type(path, "a table", &value);
    };
    let before = checker_errors(checker);
    let auth = take(&mut table, "auth").map_or_else(Vec::new, |value| {
        methods(checker, &format!("{path}.auth"), value)
    });
    let anonymous_role = take(&mut table, "anonymous_role").map_or_else(
        || Some("anonymous".to_owned()),
        |value| non_empty(checker, &format!("{path}.anonymous_role"), value),
    );
    let roles = take(&mut table, "role").map_or_else(
        || Some(Vec::new()),
        |value| array_of_tables(checker, &format!("{path}.role"), value, role),
    );
    let principals = take(&mut table, "principal").map_or_else(
        || Some(Vec::new()),
        |value| array_of_tables(checker, &format!("{path}.principal"), value, principal),
    );
    let authenticator = take(&mut table, "authenticator")
        .and_then(|value| procedure(checker, &format!("{path}.authenticator"), value));
    if authenticator.is_some()
        && !auth.contains(&AuthMethod::Ticket)
        && !auth.contains(&AuthMethod::Wampcra)
        && !auth.contains(&AuthMethod::Cryptosign)
    {
        checker.error(
            format!("{path}.authenticator"),
            "asks about ticket, wampcra and cryptosign logins: add one of them to auth",
        );
    }
    if authenticator.is_some() && roles.as_ref().is_some_and(Vec::is_empty) {
        checker.error(
            format!("{path}.authenticator"),
            "needs roles: without them every session of the realm may register the \
             authenticator's procedure and let anyone in",
        );
    }
    for key in table.keys() {
        checker.error(format!("{path}.{}", key.escape_debug()), "unknown key");
    }
    let (anonymous_role, roles, principals) = (anonymous_role?, roles?, principals?);
    for (index, role) in roles.iter().enumerate() {
        if roles
            .iter()
            .take(index)
            .any(|other| other.name == role.name)
        {
            checker.error(format!("{path}.role[{index}].name"), "repeated role");
        }
    }
    for (index, principal) in principals.iter().enumerate() {
        if principals
            .iter()
            .take(index)
            .any(|other| other.authid == principal.authid)
        {
            checker.error(
                format!("{path}.principal[{index}].authid"),
                "repeated authid",
            );
        }
        // Without roles the realm authorizes nothing, and a role is a mere name.
        if !roles.is_empty() && !roles.iter().any(|role| role.name == principal.role) {
            checker.error(format!("{path}.principal[{index}].role"), "no such role");
        }
    }
    if !roles.is_empty()
        && auth.contains(&AuthMethod::Anonymous)
        && !roles.iter().any(|role| role.name == anonymous_role)
    {
        checker.error(format!("{path}.anonymous_role"), "no such role");
    }
    (checker_errors(checker) == before).then_some(RealmSettings {
        auth,
        anonymous_role,
        principals,
        roles,
        authenticator,
    })
}

/// How many errors the checker holds: a parser that records one is invalid.
fn checker_errors(checker: &Checker) -> usize {
    checker.error_count()
}

fn take(table: &mut Table, key: &str) -> Option<Value> {
    table.remove(key)
}

fn non_empty(checker: &mut Checker, path: &str, value: Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text),
        Value::String(_) => {
            checker.error(path, "must not be empty");
            None
        }
        other => checker.wrong_type(path, "a string", &other),
    }
}

fn required(checker: &mut Checker, table: &mut Table, path: &str, key: &str) -> Option<String> {
    match take(table, key) {
        Some(value) => non_empty(checker, &format!("{path}.{key}"), value),
        None => {
            checker.error(format!("{path}.{key}"), "missing: this key is required");
            None
        }
    }
}

fn strings(checker: &mut Checker, path: &str, value: Value) -> Vec<(usize, String)> {
    let Value::Array(items) = value else {
        checker.wrong_type::<()>(path, "a list of strings", &value);
        return Vec::new();
    };
    let mut strings = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) => strings.push((index, text)),
            other => {
                checker.wrong_type::<()>(&format!("{path}[{index}]"), "a string", &other);
            }
        }
    }
    strings
}

fn methods(checker: &mut Checker, path: &str, value: Value) -> Vec<AuthMethod> {
    let mut methods = Vec::new();
    for (index, name) in strings(checker, path, value) {
        match AuthMethod::parse(&name) {
            Some(method) if !methods.contains(&method) => methods.push(method),
            Some(_) => checker.error(format!("{path}[{index}]"), format!("{name:?} is repeated")),
            None => checker.error(
                format!("{path}[{index}]"),
                format!(
                    "{name:?}: expected \"anonymous\", \"ticket\", \"wampcra\" or \
                     \"cryptosign\" (cookie is always allowed)"
                ),
            ),
        }
    }
    methods
}

fn array_of_tables<T>(
    checker: &mut Checker,
    path: &str,
    value: Value,
    item: fn(&mut Checker, &str, Table) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = value else {
        return checker.wrong_type(path, "an array of tables", &value);
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, value) in items.into_iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        match value {
            Value::Table(table) => match item(checker, &item_path, table) {
                Some(one) => parsed.push(one),
                None => valid = false,
            },
            other => {
                checker.wrong_type::<()>(&item_path, "a table", &other);
                valid = false;
            }
        }
    }
    valid.then_some(parsed)
}

fn unknown_keys(checker: &mut Checker, path: &str, table: &Table) {
    for key in table.keys() {
        checker.error(format!("{path}.{}", key.escape_debug()), "unknown key");
    }
}

fn principal(checker: &mut Checker, path: &str, mut table: Table) -> Option<Principal> {
    let before = checker_errors(checker);
    let authid = required(checker, &mut table, path, "authid");
    let role = required(checker, &mut table, path, "role");
    let ticket =
        take(&mut table, "ticket").and_then(|v| non_empty(checker, &format!("{path}.ticket"), v));
    let secret =
        take(&mut table, "secret").and_then(|v| non_empty(checker, &format!("{path}.secret"), v));
    let salt =
        take(&mut table, "salt").and_then(|v| non_empty(checker, &format!("{path}.salt"), v));
    let iterations = take(&mut table, "iterations")
        .and_then(|v| bounded(checker, &format!("{path}.iterations"), v, MAX_ITERATIONS));
    let keylen = take(&mut table, "keylen")
        .and_then(|v| bounded(checker, &format!("{path}.keylen"), v, MAX_KEYLEN));
    let authorized_keys = take(&mut table, "authorized_keys")
        .map(|v| public_keys(checker, &format!("{path}.authorized_keys"), v));
    unknown_keys(checker, path, &table);
    let salting = salt.is_some() || iterations.is_some() || keylen.is_some();
    let unsalted = |checker: &mut Checker, credential: &str| {
        if salting {
            checker.error(
                format!("{path}.salt"),
                format!("salt, iterations and keylen go with a wampcra secret, not {credential}"),
            );
        }
    };
    let credential = match (ticket, secret, authorized_keys) {
        (Some(ticket), None, None) => {
            unsalted(checker, "a ticket");
            Some(Credential::Ticket(Hidden::new(ticket.into_bytes())))
        }
        (None, Some(secret), None) => match salt {
            // autobahn `derive_key(secret, salt, iterations=1000, keylen=32)`.
            Some(salt) => {
                let iterations = iterations.unwrap_or(1000);
                let keylen = keylen.unwrap_or(32);
                let key = derive_key(secret.as_bytes(), salt.as_bytes(), iterations, keylen);
                Some(Credential::Wampcra {
                    key: Hidden::new(key.into_bytes()),
                    salted: Some(Salted {
                        salt,
                        iterations,
                        keylen,
                    }),
                })
            }
            None => {
                if iterations.is_some() || keylen.is_some() {
                    checker.error(
                        format!("{path}.salt"),
                        "missing: iterations and keylen need a salt",
                    );
                }
                Some(Credential::Wampcra {
                    key: Hidden::new(secret.into_bytes()),
                    salted: None,
                })
            }
        },
        (None, None, Some(keys)) => {
            unsalted(checker, "authorized_keys");
            keys.map(Credential::Cryptosign)
        }
        (None, None, None) => {
            if checker_errors(checker) == before {
                checker.error(
                    format!("{path}.ticket"),
                    "missing: give ticket (WAMP-Ticket), secret (WAMP-CRA) or authorized_keys \
                     (WAMP-Cryptosign)",
                );
            }
            None
        }
        (_, _, keys) => {
            let second = if keys.is_some() {
                "authorized_keys"
            } else {
                "secret"
            };
            checker.error(
                format!("{path}.{second}"),
                "give only one of ticket (WAMP-Ticket), secret (WAMP-CRA) or authorized_keys \
                 (WAMP-Cryptosign)",
            );
            None
        }
    };
    if checker_errors(checker) != before {
        return None;
    }
    Some(Principal {
        authid: authid?,
        role: role?,
        credential: credential?,
    })
}

/// `authorized_keys`: a non-empty list of Ed25519 public keys, each 64 hex characters as
/// autobahn's `public_key()` writes them (Crossbar's static cryptosign principals).
fn public_keys(checker: &mut Checker, path: &str, value: Value) -> Option<Vec<VerifyingKey>> {
    let before = checker_errors(checker);
    let mut keys = Vec::new();
    for (index, text) in strings(checker, path, value) {
        match auth::public_key(&text) {
            Ok(key) => keys.push(key),
            Err(error) => checker.error(format!("{path}[{index}]"), error.to_string()),
        }
    }
    if keys.is_empty() && checker_errors(checker) == before {
        checker.error(path, "must list at least one key");
    }
    (checker_errors(checker) == before).then_some(keys)
}

fn bounded(checker: &mut Checker, path: &str, value: Value, max: u32) -> Option<u32> {
    let Value::Integer(number) = value else {
        return checker.wrong_type(path, "an integer", &value);
    };
    match u32::try_from(number) {
        Ok(number @ 1..) if number <= max => Some(number),
        Ok(_) | Err(_) => {
            checker.error(path, format!("must be 1 to {max}"));
            None
        }
    }
}

fn role(checker: &mut Checker, path: &str, mut table: Table) -> Option<Role> {
    let before = checker_errors(checker);
    let name = required(checker, &mut table, path, "name");
    let authorizer = take(&mut table, "authorizer")
        .and_then(|value| procedure(checker, &format!("{path}.authorizer"), value));
    // A role without permissions may do nothing (Crossbar's default permissions deny all).
    let permissions = match take(&mut table, "permissions") {
        None => Some(Vec::new()),
        Some(_) if authorizer.is_some() => {
            checker.error(
                format!("{path}.permissions"),
                "a role with an authorizer has no permissions: the authorizer decides",
            );
            None
        }
        Some(value) => array_of_tables(checker, &format!("{path}.permissions"), value, permission),
    };
    unknown_keys(checker, path, &table);
    if checker_errors(checker) != before {
        return None;
    }
    Some(Role {
        name: name?,
        permissions: permissions?,
        authorizer,
    })
}

/// A procedure URI (exact, loose rule) the router calls: an authenticator or an authorizer.
fn procedure(checker: &mut Checker, path: &str, value: Value) -> Option<String> {
    let uri = non_empty(checker, path, value)?;
    if let Err(error) = uri::check(&uri, Match::Exact, false) {
        checker.error(path, format!("{uri:?} {error}"));
        return None;
    }
    Some(uri)
}

fn permission(checker: &mut Checker, path: &str, mut table: Table) -> Option<Permission> {
    let before = checker_errors(checker);
    let uri = match take(&mut table, "uri") {
        Some(Value::String(text)) => Some(text),
        Some(other) => checker.wrong_type(&format!("{path}.uri"), "a string", &other),
        None => {
            checker.error(format!("{path}.uri"), "missing: this key is required");
            None
        }
    };
    let policy = match take(&mut table, "match") {
        None => Some(Match::Exact),
        Some(Value::String(name)) => Match::parse(&name).or_else(|| {
            checker.error(
                format!("{path}.match"),
                "expected \"exact\", \"prefix\" or \"wildcard\"",
            );
            None
        }),
        Some(other) => checker.wrong_type(&format!("{path}.match"), "a string", &other),
    };
    if let (Some(uri), Some(policy)) = (&uri, policy)
        && let Err(error) = uri::check(uri, policy, false)
    {
        checker.error(format!("{path}.uri"), format!("{uri:?} {error}"));
    }
    let mut permission = Permission {
        uri: uri.unwrap_or_default(),
        policy: policy.unwrap_or(Match::Exact),
        call: false,
        register: false,
        publish: false,
        subscribe: false,
        disclose_caller: false,
        disclose_publisher: false,
    };
    if let Some(value) = take(&mut table, "allow") {
        let allow_path = format!("{path}.allow");
        for (index, action) in strings(checker, &allow_path, value) {
            match action.as_str() {
                "call" => permission.call = true,
                "register" => permission.register = true,
                "publish" => permission.publish = true,
                "subscribe" => permission.subscribe = true,
                _ => checker.error(
                    format!("{allow_path}[{index}]"),
                    "expected \"call\", \"register\", \"publish\" or \"subscribe\"",
                ),
            }
        }
    }
    if let Some(value) = take(&mut table, "disclose") {
        let disclose_path = format!("{path}.disclose");
        for (index, who) in strings(checker, &disclose_path, value) {
            match who.as_str() {
                "caller" => permission.disclose_caller = true,
                "publisher" => permission.disclose_publisher = true,
                _ => checker.error(
                    format!("{disclose_path}[{index}]"),
                    "expected \"caller\" or \"publisher\"",
                ),
            }
        }
    }
    unknown_keys(checker, path, &table);
    (checker_errors(checker) == before).then_some(permission)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;
    use crate::config::testing::*;

    /// The commented example at the end of the shipped file, uncommented, under the base file
    /// with realm2 configured.
    fn shipped_example() -> String {
        let example: String = SHIPPED
            .split_once("# Example (with realms = [\"realm1\", \"realm2\"]):\n")
            .unwrap()
            .1
            .lines()
            // The example is the comment block; the next table's text follows a blank line.
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or("")))
            .collect();
        format!(
            "{}[wamp]\nrealms = [\"realm1\", \"realm2\"]\n{example}",
            text(&[], &[])
        )
    }

    #[test]
    fn the_shipped_example_parses() {
        let config = parse(&shipped_example(), Path::new(FILE)).unwrap();
        let realm = config.wamp.realm.get("realm2").unwrap();
        assert_eq!(
            realm.auth,
            [
                AuthMethod::Anonymous,
                AuthMethod::Ticket,
                AuthMethod::Wampcra,
                AuthMethod::Cryptosign
            ]
        );
        let Credential::Cryptosign(keys) =
            &realm.principal("client01@example.com").unwrap().credential
        else {
            panic!()
        };
        assert_eq!(keys.len(), 1);
        assert_eq!(
            realm.principal_by_key(keys[0].as_bytes()).unwrap().authid,
            "client01@example.com"
        );
        assert_eq!(realm.anonymous_role, "guest");
        assert_eq!(realm.roles.len(), 5);
        assert!(realm.role("blocked").unwrap().permissions.is_empty());
        assert_eq!(
            realm.role("app-user").unwrap().authorizer.as_deref(),
            Some("com.example.authorize")
        );
        assert_eq!(
            realm.authenticator.as_deref(),
            Some("com.example.authenticate")
        );
        let chat = &realm.role("seethings").unwrap().permissions[1];
        assert!(chat.publish && chat.disclose_publisher && !chat.subscribe);
        assert_eq!(chat.policy, Match::Exact);
        let Credential::Wampcra {
            key,
            salted: Some(salted),
        } = &realm.principal("peter").unwrap().credential
        else {
            panic!()
        };
        assert_eq!(salted.iterations, 100);
        assert_eq!(
            key.expose(),
            derive_key(b"prq7+YkJ1/KlW1X0YczMHw==", b"salt123", 100, 16).as_bytes()
        );
        assert!(config.wamp.realm.any_cookieless());
        assert!(!WampRealms::NONE.any_cookieless());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let config = parse(&shipped_example(), Path::new(FILE)).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret!!!"), "{shown}");
        assert!(!shown.contains("prq7"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn errors_name_the_key_path() {
        let realms = ("wamp.realms", r#"["realm1", "realm2"]"#);
        assert_error(
            &[
                realms,
                ("wamp.realm.realm2.role", r#"[{name = "a"}]"#),
                (
                    "wamp.realm.realm2.principal",
                    r#"[{authid = "x", role = "a", ticket = "t"}, {authid = "y", role = "b", ticket = "t"}]"#,
                ),
            ],
            "wamp.realm.realm2.principal[1].role",
            "no such role",
        );
        assert_error(
            &[("wamp.realm.realm9.auth", r#"["ticket"]"#)],
            "wamp.realm.realm9",
            "not one of wamp.realms",
        );
        assert_error(
            &[
                ("wamp.realm.realm1.role", r#"[{name = "a"}]"#),
                ("wamp.backend_authrole", r#""b""#),
            ],
            "wamp.backend_authrole",
            "no role of the backend realm",
        );
        assert_error(
            &[
                realms,
                ("wamp.realm.realm2.auth", r#"["anonymous"]"#),
                ("wamp.realm.realm2.role", r#"[{name = "anonymous"}]"#),
                ("wamp.realm.realm2.authenticator", r#""app.auth""#),
            ],
            "wamp.realm.realm2.authenticator",
            "add one of them to auth",
        );
        assert_error(
            &[
                realms,
                ("wamp.realm.realm2.auth", r#"["ticket"]"#),
                ("wamp.realm.realm2.authenticator", r#""app.auth""#),
            ],
            "wamp.realm.realm2.authenticator",
            "needs roles",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.role",
                    r#"[{name = "a", authorizer = "app.authorize", permissions = []}]"#,
                ),
            ],
            "wamp.realm.realm2.role[0].permissions",
            "the authorizer decides",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.role",
                    r#"[{name = "a", authorizer = "bad uri"}]"#,
                ),
            ],
            "wamp.realm.realm2.role[0].authorizer",
            "",
        );
        assert_error(
            &[realms, ("wamp.realm.realm2.auth", r#"["cookie"]"#)],
            "wamp.realm.realm2.auth[0]",
            "cookie is always allowed",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.principal",
                    r#"[{authid = "x", role = "a", ticket = "t", secret = "s"}]"#,
                ),
            ],
            "wamp.realm.realm2.principal[0].secret",
            "only one of",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.principal",
                    r#"[{authid = "x", role = "a"}]"#,
                ),
            ],
            "wamp.realm.realm2.principal[0].ticket",
            "missing",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.principal",
                    r#"[{authid = "x", role = "a", secret = "s", salt = "n", iterations = 0}]"#,
                ),
            ],
            "wamp.realm.realm2.principal[0].iterations",
            "must be 1 to 1000000",
        );
        assert_error(
            &[
                realms,
                (
                    "wamp.realm.realm2.role",
                    r#"[{name = "a", permissions = [{uri = "a..b", allow = ["call"]}]}]"#,
                ),
            ],
            "wamp.realm.realm2.role[0].permissions[0].uri",
            "empty component",
        );
        assert_error(
            &[realms, ("wamp.realm.realm2.rolez", "[]")],
            "wamp.realm.realm2.rolez",
            "unknown key",
        );
        assert_error(
            &[
                realms,
                ("wamp.realm.realm2.auth", r#"["anonymous"]"#),
                ("wamp.realm.realm2.role", r#"[{name = "a"}]"#),
            ],
            "wamp.realm.realm2.anonymous_role",
            "no such role",
        );
    }

    #[test]
    fn authorized_keys_are_ed25519_public_keys() {
        let realms = ("wamp.realms", r#"["realm1", "realm2"]"#);
        let key = "545efb0a2192db8d43f118e9bf9aee081466e1ef36c708b96ee6f62dddad9122";
        let principal = |keys: &str| {
            (
                "wamp.realm.realm2.principal",
                format!(r#"[{{authid = "x", role = "a", authorized_keys = {keys}}}]"#),
            )
        };
        let path = "wamp.realm.realm2.principal[0].authorized_keys";
        for (keys, error_path, message) in [
            ("[]".to_owned(), path.to_owned(), "at least one key"),
            (format!(r#""{key}""#), path.to_owned(), "a list of strings"),
            (format!(r#"["{key}", 1]"#), format!("{path}[1]"), "a string"),
            (
                r#"["00ff"]"#.to_owned(),
                format!("{path}[0]"),
                "64 hex characters",
            ),
            (
                format!(r#"["{key} "]"#),
                format!("{path}[0]"),
                "64 hex characters",
            ),
            (
                format!(r#"["02{}"]"#, "0".repeat(62)),
                format!("{path}[0]"),
                "no point of the curve",
            ),
            (
                format!(r#"["{key}", "01{}"]"#, "0".repeat(62)),
                format!("{path}[1]"),
                "small-order",
            ),
        ] {
            let (key_path, value) = principal(&keys);
            assert_error(&[realms, (key_path, &value)], &error_path, message);
        }
        for (extra, error_path, message) in [
            (r#", ticket = "t""#, "authorized_keys", "only one of"),
            (r#", salt = "s""#, "salt", "not authorized_keys"),
        ] {
            let value =
                format!(r#"[{{authid = "x", role = "a", authorized_keys = ["{key}"]{extra}}}]"#);
            assert_error(
                &[realms, ("wamp.realm.realm2.principal", &value)],
                &format!("wamp.realm.realm2.principal[0].{error_path}"),
                message,
            );
        }
    }

    #[test]
    fn a_bad_permission_names_its_action() {
        let (key, message) = only_error(
            &[
                ("wamp.realms", r#"["realm1", "realm2"]"#),
                (
                    "wamp.realm.realm2.role",
                    r#"[{name = "a", permissions = [{uri = "a", match = "prefix", allow = ["eat"]}]}]"#,
                ),
            ],
            &[],
        );
        assert_eq!(key, "wamp.realm.realm2.role[0].permissions[0].allow[0]");
        assert!(message.contains("\"subscribe\""), "{message}");
    }
}

#[cfg(test)]
mod readme_tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::config::testing::*;

    /// README's "Authentication and roles" example, under the base file.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../README.md");
        let (_, rest) = readme
            .split_once("Crossbar's workshop realm, translated:\n\n```toml\n")
            .unwrap();
        let (example, _) = rest.split_once("```").unwrap();
        let config = parse(&format!("{}{example}", text(&[], &[])), Path::new(FILE)).unwrap();
        let realm = config.wamp.realm.get("realm2").unwrap();
        assert_eq!(realm.principals.len(), 2);
        assert_eq!(realm.roles.len(), 2);
    }
}
