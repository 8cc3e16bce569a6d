//! The options field of `j`/`J`: a JSON object with WAMP SUBSCRIBE's option names, so one
//! word means one thing on both sides of a topic. `get_retained` is the one a plain
//! subscription acts on.
//!
//! Checked as the router checks a session's SUBSCRIBE options (`SubscribeOptions::parse`:
//! a known option of the wrong type is refused, an unknown one ignored, as Crossbar does),
//! plus one rule of the plain side: its topics match exactly, so a `match` other than
//! `exact` is refused rather than silently taken as exact.

use crate::control::codec::ControlError;
use crate::router::options::SubscribeOptions;
use crate::router::uri::Match;
use crate::wamp::Value;

/// What a plain subscription asks besides joining.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinOptions {
    /// Send the topic's retained event (the backend realm broker's) when joining.
    pub get_retained: bool,
}

impl JoinOptions {
    /// The options field of `j`/`J` (`command`), empty for none. `max_depth` is
    /// `[wamp] max_depth`, which bounds the JSON as it bounds a WAMP message.
    pub fn parse(command: u8, options: &[u8], max_depth: usize) -> Result<Self, ControlError> {
        if options.is_empty() {
            return Ok(JoinOptions::default());
        }
        let refused = |detail: String| ControlError::BadSubscribeOptions { command, detail };
        let value = crate::wamp::json::decode(options, max_depth)
            .map_err(|error| refused(error.to_string()))?;
        let Value::Dict(options) = value else {
            return Err(refused("not a JSON object".to_owned()));
        };
        let parsed = SubscribeOptions::parse(&options)
            .map_err(|violation| refused(violation.to_string()))?;
        if parsed.policy != Match::Exact {
            return Err(refused(
                "match: plain subscriptions match their topic exactly".to_owned(),
            ));
        }
        Ok(JoinOptions {
            get_retained: parsed.get_retained,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<JoinOptions, ControlError> {
        JoinOptions::parse(b'J', options.as_bytes(), 16)
    }

    fn refused(options: &str) -> String {
        match parse(options) {
            Err(ControlError::BadSubscribeOptions { command, detail }) => {
                assert_eq!(command, b'J');
                detail
            }
            other => panic!("{options}: {other:?}"),
        }
    }

    #[test]
    fn empty_is_none_and_get_retained_is_a_boolean() {
        assert_eq!(parse(""), Ok(JoinOptions::default()));
        assert_eq!(parse("{}"), Ok(JoinOptions::default()));
        let retained = JoinOptions { get_retained: true };
        assert_eq!(parse(r#"{"get_retained":true}"#), Ok(retained));
        assert_eq!(
            parse(r#"{"get_retained":false}"#),
            Ok(JoinOptions::default())
        );
        assert!(refused(r#"{"get_retained":1}"#).contains("get_retained"));
        assert!(refused(r#"{"get_retained":"yes"}"#).contains("get_retained"));
    }

    #[test]
    fn unknown_options_are_ignored_as_the_broker_ignores_them() {
        let retained = JoinOptions { get_retained: true };
        assert_eq!(
            parse(r#"{"get_retained":true,"x_custom":[1,2]}"#),
            Ok(retained)
        );
        assert_eq!(parse(r#"{"match":"exact"}"#), Ok(JoinOptions::default()));
    }

    #[test]
    fn no_json_object_or_a_pattern_is_refused() {
        assert!(!refused("{").is_empty());
        assert_eq!(refused("[true]"), "not a JSON object");
        assert_eq!(refused("true"), "not a JSON object");
        assert!(refused(r#"{"match":"prefix"}"#).starts_with("match"));
        assert!(!refused(r#"{"match":"anything"}"#).is_empty());
        // Deeper than max_depth, as a WAMP message would be.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        assert!(!refused(&deep).is_empty());
    }

    #[test]
    fn the_error_names_the_command_and_the_field() {
        let error = parse("[]").unwrap_err();
        assert_eq!(
            error.to_string(),
            "control command 'J' field 3 (options) is no JSON object of subscribe options: \
             not a JSON object"
        );
    }
}
