//! Options and details of the messages the router receives, typed and checked once. An
//! option of the wrong type is a protocol violation, as autobahn's `Message.parse` (which
//! Crossbar runs on every message) raises `ProtocolError` for it; unknown options are ignored
//! (WAMP v2, "Extensibility": "Implementations MUST ignore unknown attributes").

use std::collections::HashSet;

use crate::resume::{MAX_EPOCH_LEN, Position};
use crate::router::error::Violation;
use crate::router::uri::Match;
use crate::wamp::{Dict, Value};

fn bad(message: &'static str, option: &'static str) -> Violation {
    Violation::BadOption { message, option }
}

fn get_bool(
    dict: &Dict,
    message: &'static str,
    option: &'static str,
) -> Result<Option<bool>, Violation> {
    dict.bool(option)
        .transpose()
        .map_err(|()| bad(message, option))
}

fn get_match(dict: &Dict, message: &'static str) -> Result<Match, Violation> {
    match dict.str("match") {
        None => Ok(Match::Exact),
        Some(Ok(name)) => Match::parse(name).ok_or_else(|| bad(message, "match")),
        Some(Err(())) => Err(bad(message, "match")),
    }
}

fn id_list(
    dict: &Dict,
    message: &'static str,
    option: &'static str,
) -> Result<Option<HashSet<u64>>, Violation> {
    match dict.get(option) {
        None => Ok(None),
        Some(Value::List(items)) => items
            .iter()
            .map(|item| item.as_u64().map_err(|()| bad(message, option)))
            .collect::<Result<HashSet<u64>, Violation>>()
            .map(Some),
        Some(_) => Err(bad(message, option)),
    }
}

fn string_list(
    dict: &Dict,
    message: &'static str,
    option: &'static str,
) -> Result<Option<HashSet<String>>, Violation> {
    match dict.get(option) {
        None => Ok(None),
        Some(Value::List(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(message, option))
            })
            .collect::<Result<HashSet<String>, Violation>>()
            .map(Some),
        Some(_) => Err(bad(message, option)),
    }
}

/// Who may receive a publication (WAMP v2 advanced, "Subscriber Black- and Whitelisting"
/// and "Publisher Exclusion"). An empty `eligible*` list restricts nothing, as in Crossbar
/// (`broker.py` `_filter_publish_receivers` tests `if publish.eligible:`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    pub exclude: HashSet<u64>,
    pub eligible: Option<HashSet<u64>>,
    pub exclude_authid: HashSet<String>,
    pub eligible_authid: Option<HashSet<String>>,
    pub exclude_authrole: HashSet<String>,
    pub eligible_authrole: Option<HashSet<String>>,
}

impl Audience {
    /// True when every subscriber receives (the hot path skips all checks).
    pub fn is_everyone(&self) -> bool {
        self.exclude.is_empty()
            && self.eligible.is_none()
            && self.exclude_authid.is_empty()
            && self.eligible_authid.is_none()
            && self.exclude_authrole.is_empty()
            && self.eligible_authrole.is_none()
    }

    pub fn admits(&self, session: u64, authid: &str, authrole: &str) -> bool {
        if self.exclude.contains(&session)
            || self.exclude_authid.contains(authid)
            || self.exclude_authrole.contains(authrole)
        {
            return false;
        }
        self.eligible
            .as_ref()
            .is_none_or(|set| set.contains(&session))
            && self
                .eligible_authid
                .as_ref()
                .is_none_or(|set| set.contains(authid))
            && self
                .eligible_authrole
                .as_ref()
                .is_none_or(|set| set.contains(authrole))
    }

    pub fn parse(options: &Dict, message: &'static str) -> Result<Audience, Violation> {
        let non_empty_ids = |set: Option<HashSet<u64>>| set.filter(|set| !set.is_empty());
        let non_empty = |set: Option<HashSet<String>>| set.filter(|set| !set.is_empty());
        Ok(Audience {
            exclude: id_list(options, message, "exclude")?.unwrap_or_default(),
            eligible: non_empty_ids(id_list(options, message, "eligible")?),
            exclude_authid: string_list(options, message, "exclude_authid")?.unwrap_or_default(),
            eligible_authid: non_empty(string_list(options, message, "eligible_authid")?),
            exclude_authrole: string_list(options, message, "exclude_authrole")?
                .unwrap_or_default(),
            eligible_authrole: non_empty(string_list(options, message, "eligible_authrole")?),
        })
    }

    /// The options `parse` reads back as this audience (a publication passed to another
    /// node carries it).
    pub fn write_to(&self, options: &mut Dict) {
        let ids = |set: &HashSet<u64>| Value::List(set.iter().copied().map(Value::from).collect());
        let names = |set: &HashSet<String>| {
            Value::List(set.iter().map(|name| Value::from(name.as_str())).collect())
        };
        let non_empty_ids = [
            ("exclude", Some(&self.exclude)),
            ("eligible", self.eligible.as_ref()),
        ];
        for (key, set) in non_empty_ids {
            if let Some(set) = set.filter(|set| !set.is_empty()) {
                options.insert(key, ids(set));
            }
        }
        let non_empty_names = [
            ("exclude_authid", Some(&self.exclude_authid)),
            ("eligible_authid", self.eligible_authid.as_ref()),
            ("exclude_authrole", Some(&self.exclude_authrole)),
            ("eligible_authrole", self.eligible_authrole.as_ref()),
        ];
        for (key, set) in non_empty_names {
            if let Some(set) = set.filter(|set| !set.is_empty()) {
                options.insert(key, names(set));
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishOptions {
    pub acknowledge: bool,
    /// WAMP v2 advanced, "Publisher Exclusion": "By default, a Publisher of an event will not
    /// itself receive an event published, even when subscribed".
    pub exclude_me: bool,
    pub disclose_me: bool,
    pub retain: bool,
    pub audience: Audience,
}

impl PublishOptions {
    pub fn parse(options: &Dict) -> Result<PublishOptions, Violation> {
        const M: &str = "PUBLISH";
        Ok(PublishOptions {
            acknowledge: get_bool(options, M, "acknowledge")?.unwrap_or(false),
            exclude_me: get_bool(options, M, "exclude_me")?.unwrap_or(true),
            disclose_me: get_bool(options, M, "disclose_me")?.unwrap_or(false),
            retain: get_bool(options, M, "retain")?.unwrap_or(false),
            audience: Audience::parse(options, M)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub policy: Match,
    pub get_retained: bool,
}

impl SubscribeOptions {
    pub fn parse(options: &Dict) -> Result<SubscribeOptions, Violation> {
        Ok(SubscribeOptions {
            policy: get_match(options, "SUBSCRIBE")?,
            get_retained: get_bool(options, "SUBSCRIBE", "get_retained")?.unwrap_or(false),
        })
    }
}

/// The SUBSCRIBE option of a session that resumes a topic with history (a wson extension:
/// WAMP v2 custom attributes match `_[a-z0-9_]{3,}`): `{"epoch": "1a2b3c4d-1", "offset": 7}`,
/// the position of the last publication it saw.
pub const RESUME_OPTION: &str = "_wson_resume";

/// `_wson_resume` of SUBSCRIBE options: `None` without it. A malformed one is refused
/// with `wamp.error.invalid_argument` (the detail says why), not a protocol violation: a
/// router that does not know the extension ignores it, so the session need not end.
pub fn resume_option(options: &Dict, policy: Match) -> Result<Option<Position>, &'static str> {
    let Some(value) = options.get(RESUME_OPTION) else {
        return Ok(None);
    };
    let Value::Dict(resume) = value else {
        return Err("_wson_resume must be a dict with epoch and offset");
    };
    if policy != Match::Exact {
        return Err("_wson_resume needs an exact-match subscription");
    }
    let epoch = match resume.str("epoch") {
        Some(Ok(epoch)) => epoch,
        Some(Err(())) | None => return Err("_wson_resume.epoch must be a string"),
    };
    // The same rule as a plain client's `resume` parameter (`resume::parse_value`).
    if epoch.is_empty()
        || epoch.len() > MAX_EPOCH_LEN
        || !epoch
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'a'..=b'f' | b'-'))
    {
        return Err("_wson_resume.epoch must be 1 to 32 of 0-9, a-f and '-'");
    }
    let offset = match resume.get("offset").map(Value::as_u64) {
        Some(Ok(offset)) => offset,
        Some(Err(())) | None => {
            return Err("_wson_resume.offset must be a non-negative integer");
        }
    };
    Ok(Some(Position {
        epoch: epoch.to_owned(),
        offset,
    }))
}

/// `REGISTER.Options.invoke` (WAMP v2 advanced, "Shared Registration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoke {
    Single,
    RoundRobin,
    Random,
    First,
    Last,
}

impl Invoke {
    pub fn parse(name: &str) -> Option<Invoke> {
        match name {
            "single" => Some(Invoke::Single),
            "roundrobin" => Some(Invoke::RoundRobin),
            "random" => Some(Invoke::Random),
            "first" => Some(Invoke::First),
            "last" => Some(Invoke::Last),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Invoke::Single => "single",
            Invoke::RoundRobin => "roundrobin",
            Invoke::Random => "random",
            Invoke::First => "first",
            Invoke::Last => "last",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterOptions {
    pub policy: Match,
    pub invoke: Invoke,
}

impl RegisterOptions {
    pub fn parse(options: &Dict) -> Result<RegisterOptions, Violation> {
        let invoke = match options.str("invoke") {
            None => Invoke::Single,
            Some(Ok(name)) => Invoke::parse(name).ok_or_else(|| bad("REGISTER", "invoke"))?,
            Some(Err(())) => return Err(bad("REGISTER", "invoke")),
        };
        Ok(RegisterOptions {
            policy: get_match(options, "REGISTER")?,
            invoke,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// Milliseconds; 0 is none (WAMP v2 advanced, "Call Timeouts": "Automatic call timeouts
    /// are deactivated if there is no `timeout` option, or if its value is `0`").
    pub timeout_ms: u64,
    pub receive_progress: bool,
    pub disclose_me: bool,
}

impl CallOptions {
    pub fn parse(options: &Dict) -> Result<CallOptions, Violation> {
        const M: &str = "CALL";
        Ok(CallOptions {
            timeout_ms: match options.uint("timeout") {
                None => 0,
                Some(Ok(ms)) => ms,
                Some(Err(())) => return Err(bad(M, "timeout")),
            },
            receive_progress: get_bool(options, M, "receive_progress")?.unwrap_or(false),
            disclose_me: get_bool(options, M, "disclose_me")?.unwrap_or(false),
        })
    }
}

/// `CANCEL.Options.mode` (WAMP v2 advanced, "Call Canceling").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelMode {
    Skip,
    Kill,
    KillNoWait,
}

impl CancelMode {
    pub fn name(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }

    /// Without `mode`, Crossbar (`dealer.py` `processCancel`) interrupts and answers at once:
    /// killnowait.
    pub fn parse(options: &Dict) -> Result<CancelMode, Violation> {
        match options.str("mode") {
            None => Ok(CancelMode::KillNoWait),
            Some(Ok("skip")) => Ok(CancelMode::Skip),
            Some(Ok("kill")) => Ok(CancelMode::Kill),
            Some(Ok("killnowait")) => Ok(CancelMode::KillNoWait),
            Some(Ok(_) | Err(())) => Err(bad("CANCEL", "mode")),
        }
    }
}

pub fn yield_progress(options: &Dict) -> Result<bool, Violation> {
    Ok(get_bool(options, "YIELD", "progress")?.unwrap_or(false))
}

/// What a client said of itself in `HELLO.Details.roles` that the router acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerFeatures {
    /// `roles.callee.features.call_canceling`: INTERRUPT only goes to callees that announce
    /// it (WAMP v2 advanced, "Call Canceling": "If the callee does not support call
    /// canceling, then behavior is skip").
    pub callee_call_canceling: bool,
}

impl PeerFeatures {
    /// Autobahn's `Hello.parse`: "missing mandatory roles attribute", "empty 'roles'",
    /// "invalid role" are protocol errors.
    pub fn parse_hello(details: &Dict) -> Result<PeerFeatures, Violation> {
        let Some(Value::Dict(roles)) = details.get("roles") else {
            return Err(bad("HELLO", "roles"));
        };
        if roles.is_empty() {
            return Err(bad("HELLO", "roles"));
        }
        let mut features = PeerFeatures::default();
        for (role, value) in roles.iter() {
            if !matches!(role, "publisher" | "subscriber" | "caller" | "callee") {
                return Err(bad("HELLO", "roles"));
            }
            let Value::Dict(role_details) = value else {
                return Err(bad("HELLO", "roles"));
            };
            if role == "callee"
                && let Some(Value::Dict(role_features)) = role_details.get("features")
            {
                features.callee_call_canceling =
                    matches!(role_features.get("call_canceling"), Some(Value::Bool(true)));
            }
        }
        Ok(features)
    }

    /// The backend (control layer) handles INTERRUPT.
    pub fn backend() -> PeerFeatures {
        PeerFeatures {
            callee_call_canceling: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(entries: &[(&str, Value)]) -> Dict {
        Dict(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn publish_defaults_exclude_the_publisher() {
        let options = PublishOptions::parse(&Dict::new()).unwrap();
        assert!(options.exclude_me && !options.acknowledge && !options.retain);
        assert!(options.audience.is_everyone());
    }

    #[test]
    fn publish_option_of_wrong_type_is_a_violation() {
        let options = dict(&[("exclude", Value::List(vec![Value::from("x")]))]);
        assert_eq!(
            PublishOptions::parse(&options),
            Err(Violation::BadOption {
                message: "PUBLISH",
                option: "exclude"
            })
        );
        let options = dict(&[("acknowledge", Value::Integer(1))]);
        assert!(PublishOptions::parse(&options).is_err());
    }

    #[test]
    fn empty_eligible_restricts_nothing() {
        let options = dict(&[("eligible", Value::List(vec![]))]);
        assert!(
            PublishOptions::parse(&options)
                .unwrap()
                .audience
                .is_everyone()
        );
    }

    #[test]
    fn audience_checks_every_list() {
        let options = dict(&[
            (
                "eligible",
                Value::List(vec![Value::Integer(1), Value::Integer(2)]),
            ),
            ("exclude_authid", Value::List(vec![Value::from("bob")])),
            ("eligible_authrole", Value::List(vec![Value::from("user")])),
        ]);
        let audience = Audience::parse(&options, "PUBLISH").unwrap();
        assert!(audience.admits(1, "alice", "user"));
        assert!(!audience.admits(3, "alice", "user"));
        assert!(!audience.admits(2, "bob", "user"));
        assert!(!audience.admits(2, "alice", "trusted"));
    }

    #[test]
    fn unknown_match_or_invoke_is_a_violation() {
        let options = dict(&[("match", Value::from("regex"))]);
        assert!(SubscribeOptions::parse(&options).is_err());
        let options = dict(&[("invoke", Value::from("all"))]);
        assert!(RegisterOptions::parse(&options).is_err());
        let options = dict(&[
            ("match", Value::from("prefix")),
            ("invoke", Value::from("roundrobin")),
        ]);
        assert_eq!(
            RegisterOptions::parse(&options),
            Ok(RegisterOptions {
                policy: Match::Prefix,
                invoke: Invoke::RoundRobin
            })
        );
    }

    #[test]
    fn cancel_mode_defaults_to_killnowait() {
        assert_eq!(CancelMode::parse(&Dict::new()), Ok(CancelMode::KillNoWait));
        let options = dict(&[("mode", Value::from("kill"))]);
        assert_eq!(CancelMode::parse(&options), Ok(CancelMode::Kill));
        let options = dict(&[("mode", Value::from("abort"))]);
        assert!(CancelMode::parse(&options).is_err());
    }

    #[test]
    fn hello_needs_roles() {
        assert!(PeerFeatures::parse_hello(&Dict::new()).is_err());
        let empty = dict(&[("roles", Value::Dict(Dict::new()))]);
        assert!(PeerFeatures::parse_hello(&empty).is_err());
        let features = dict(&[("call_canceling", Value::Bool(true))]);
        let callee = dict(&[("features", Value::Dict(features))]);
        let roles = dict(&[
            ("callee", Value::Dict(callee)),
            ("caller", Value::Dict(Dict::new())),
        ]);
        let details = dict(&[("roles", Value::Dict(roles))]);
        assert_eq!(
            PeerFeatures::parse_hello(&details),
            Ok(PeerFeatures {
                callee_call_canceling: true
            })
        );
        let roles = dict(&[("dealer", Value::Dict(Dict::new()))]);
        assert!(PeerFeatures::parse_hello(&dict(&[("roles", Value::Dict(roles))])).is_err());
    }

    #[test]
    fn resume_option_is_a_position_or_a_reason() {
        let resume = |value: Value| dict(&[(RESUME_OPTION, value)]);
        let position = |epoch: &str, offset: Value| {
            let mut inner = Dict::new();
            inner.insert("epoch", Value::from(epoch));
            inner.insert("offset", offset);
            Value::Dict(inner)
        };
        assert_eq!(resume_option(&Dict::new(), Match::Exact), Ok(None));
        assert_eq!(
            resume_option(
                &resume(position("1a2b3c4d-1", Value::from(7u64))),
                Match::Exact
            ),
            Ok(Some(Position {
                epoch: "1a2b3c4d-1".to_owned(),
                offset: 7
            }))
        );
        let refused = |options: &Dict, policy| resume_option(options, policy).unwrap_err();
        assert!(refused(&resume(Value::from("1a:7")), Match::Exact).contains("must be a dict"));
        assert!(
            refused(&resume(position("ab", Value::from(1u64))), Match::Prefix)
                .contains("exact-match")
        );
        assert!(refused(&resume(position("", Value::from(1u64))), Match::Exact).contains("epoch"));
        assert!(
            refused(
                &resume(position(&"a".repeat(33), Value::from(1u64))),
                Match::Exact
            )
            .contains("epoch")
        );
        assert!(
            refused(&resume(position("AB", Value::from(1u64))), Match::Exact).contains("epoch")
        );
        assert!(
            refused(&resume(position("ab", Value::Integer(-1))), Match::Exact).contains("offset")
        );
        assert!(
            refused(&resume(position("ab", Value::from("1"))), Match::Exact).contains("offset")
        );
        let mut no_epoch = Dict::new();
        no_epoch.insert("offset", Value::from(1u64));
        assert!(refused(&resume(Value::Dict(no_epoch)), Match::Exact).contains("epoch"));
    }
}
