//! Positions in a topic's history, the `resume` parameter of a plain client's upgrade, and
//! the two notices a positioned client reads (README, "Missed messages"). Pure: no socket,
//! clock or hub.
//!
//! A position is an epoch (opaque, compared for equality; a new one whenever a topic's
//! history is lost, a restart included) and an offset (1 for the topic's first publication
//! in that epoch, one more for each next; 0 before any).
//!
//! `?resume=TOPIC@EPOCH:OFFSET,TOPIC@EPOCH:OFFSET` in the request-target: items separated
//! by `,`; in each, the topic up to the last `@`, percent-encoded where it holds `%`, `,`,
//! `&`, `#` or a non-ASCII byte (`%2C` for `,`; `+` stays `+`), then the epoch, `:` and the
//! offset in decimal. `?resume=` alone names no topic: the client only asks for positions.

use std::fmt;

use crate::control::topic::Topic;

/// The query parameter's name.
pub const PARAM: &str = "resume";

/// Longest epoch: wson's are 8 hex digits, `-`, and a decimal generation.
pub const MAX_EPOCH_LEN: usize = 32;

/// Where a client is in a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

/// One topic of a `resume` parameter: the client has seen this topic up to `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub topic: String,
    pub position: Position,
}

/// Why a `resume` parameter is refused (a 400 naming it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// `resume` twice in the query.
    Repeated,
    /// More items than `[history] max_resume_topics`.
    TooManyTopics { max: usize },
    /// Item `index` (from 0) breaks a rule.
    Item { index: usize, why: &'static str },
    /// The same topic in two items.
    DuplicateTopic { index: usize },
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::Repeated => f.write_str("resume: given twice"),
            ResumeError::TooManyTopics { max } => write!(f, "resume: more than {max} topics"),
            ResumeError::Item { index, why } => write!(f, "resume: item {index}: {why}"),
            ResumeError::DuplicateTopic { index } => {
                write!(f, "resume: item {index}: topic named twice")
            }
        }
    }
}

impl std::error::Error for ResumeError {}

/// The `resume` parameter of a request-target: `None` without one (the client reads no
/// positions), else the topics it names (perhaps none).
pub fn from_target(target: &str, max_topics: usize) -> Result<Option<Vec<Resume>>, ResumeError> {
    let Some((_, query)) = target.split_once('?') else {
        return Ok(None);
    };
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    let mut found = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != PARAM {
            continue;
        }
        if found.is_some() {
            return Err(ResumeError::Repeated);
        }
        found = Some(value);
    }
    found
        .map(|value| parse_value(value, max_topics))
        .transpose()
}

/// The value of a `resume` parameter, as in the module docs.
pub fn parse_value(value: &str, max_topics: usize) -> Result<Vec<Resume>, ResumeError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    // Counted before anything is decoded: a long list costs no work past its limit.
    if value.split(',').count() > max_topics {
        return Err(ResumeError::TooManyTopics { max: max_topics });
    }
    let mut items: Vec<Resume> = Vec::new();
    for (index, item) in value.split(',').enumerate() {
        let bad = |why| ResumeError::Item { index, why };
        let (topic, position) = item
            .rsplit_once('@')
            .ok_or(bad("no '@' between topic and position"))?;
        let (epoch, offset) = position
            .split_once(':')
            .ok_or(bad("no ':' between epoch and offset"))?;
        if epoch.is_empty() || epoch.len() > MAX_EPOCH_LEN {
            return Err(bad("the epoch is not 1 to 32 bytes long"));
        }
        if !epoch
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'a'..=b'f' | b'-'))
        {
            return Err(bad("the epoch has a byte other than 0-9, a-f and '-'"));
        }
        if offset.is_empty() || offset.len() > 20 || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the offset is not 1 to 20 decimal digits"));
        }
        let offset: u64 = offset
            .parse()
            .map_err(|_| bad("the offset is past 18446744073709551615"))?;
        let topic = percent_decode(topic).ok_or(bad("bad percent-encoding in the topic"))?;
        let topic = String::from_utf8(topic).map_err(|_| bad("the topic is not UTF-8"))?;
        if Topic::parse(topic.as_bytes()).is_err() {
            return Err(bad("not a topic name"));
        }
        if items.iter().any(|seen| seen.topic == topic) {
            return Err(ResumeError::DuplicateTopic { index });
        }
        items.push(Resume {
            topic,
            position: Position {
                epoch: epoch.to_owned(),
                offset,
            },
        });
    }
    Ok(items)
}

/// `%XX` to its byte; `None` for a `%` without two hex digits.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = hex_value(bytes.next()?)?;
            let low = hex_value(bytes.next()?)?;
            out.push(high << 4 | low);
        } else {
            out.push(byte);
        }
    }
    Some(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Why a resume cannot be served from the history: the client reloads its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The topic keeps no history (`[history] prefixes`).
    Off,
    /// Another epoch: the history the client knew is gone (a restart, or a lost history).
    Epoch,
    /// Publications after the client's offset have left the history (size, age, budget).
    Gone,
    /// The offset is past the topic's last publication: not a position wson gave.
    Ahead,
    /// With `[cluster]`: the publication after this notice has no position (Redis, which
    /// positions publications, was out of reach; README, "Missed messages").
    Unpositioned,
}

impl Reload {
    pub fn reason(self) -> &'static str {
        match self {
            Reload::Off => "off",
            Reload::Epoch => "epoch",
            Reload::Gone => "gone",
            Reload::Ahead => "ahead",
            Reload::Unpositioned => "unpositioned",
        }
    }
}

/// The text message that goes before each publication of a topic with history to a
/// positioned client: `{"wson":"position","topic":"news","epoch":"1a2b3c4d-1","offset":7}`.
pub fn position_notice(topic: &str, position: &Position) -> String {
    format!(
        r#"{{"wson":"position","topic":{},"epoch":"{}","offset":{}}}"#,
        json_string(topic),
        position.epoch,
        position.offset
    )
}

/// The text message a resuming client gets instead of a replay: reload the topic's state
/// from the backend. `position` is the topic's last, when it has a history.
pub fn reload_notice(topic: &str, reload: Reload, position: Option<&Position>) -> String {
    let (epoch, offset) = match position {
        Some(position) => (
            format!("\"{}\"", position.epoch),
            position.offset.to_string(),
        ),
        None => ("null".to_owned(), "null".to_owned()),
    };
    format!(
        r#"{{"wson":"reload","topic":{},"reason":"{}","epoch":{epoch},"offset":{offset}}}"#,
        json_string(topic),
        reload.reason(),
    )
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(topic: &str, epoch: &str, offset: u64) -> Resume {
        Resume {
            topic: topic.to_owned(),
            position: Position {
                epoch: epoch.to_owned(),
                offset,
            },
        }
    }

    #[test]
    fn a_target_without_resume_asks_for_nothing() {
        assert_eq!(from_target("/", 4), Ok(None));
        assert_eq!(from_target("/ws?a=1&resumed=2", 4), Ok(None));
    }

    #[test]
    fn an_empty_resume_asks_for_positions_only() {
        assert_eq!(from_target("/?resume=", 4), Ok(Some(Vec::new())));
        assert_eq!(from_target("/?resume", 4), Ok(Some(Vec::new())));
    }

    #[test]
    fn items_name_topic_epoch_and_offset() {
        assert_eq!(
            from_target("/ws?x=1&resume=news@1a2b3c4d-1:42,a%2Cb%40c@0-2:0&y", 4),
            Ok(Some(vec![
                item("news", "1a2b3c4d-1", 42),
                item("a,b@c", "0-2", 0)
            ]))
        );
    }

    #[test]
    fn each_rule_is_an_error_naming_the_item() {
        let error = |value: &str| parse_value(value, 4).unwrap_err().to_string();
        assert_eq!(
            error("news"),
            "resume: item 0: no '@' between topic and position"
        );
        assert_eq!(
            error("a@1:1,news@12"),
            "resume: item 1: no ':' between epoch and offset"
        );
        assert!(error("news@:1").contains("epoch is not 1 to 32"));
        assert!(error(&format!("news@{}:1", "a".repeat(33))).contains("epoch is not 1 to 32"));
        assert!(error("news@XY:1").contains("other than 0-9"));
        assert!(error("news@ab:").contains("1 to 20 decimal"));
        assert!(error("news@ab:-1").contains("1 to 20 decimal"));
        assert!(error("news@ab:99999999999999999999").contains("past"));
        assert!(error("ne%2ws@ab:1").contains("percent-encoding"));
        assert!(error("ne%ffws@ab:1").contains("not UTF-8"));
        assert!(error("news.@ab:1").contains("not a topic"));
        assert!(error("wamp.x@ab:1").contains("not a topic"));
        assert!(error(",news@ab:1").contains("item 0"));
        assert_eq!(error("a@b:1,a@b:2"), "resume: item 1: topic named twice");
        assert_eq!(
            parse_value("a@1:1,b@1:1,c@1:1,d@1:1,e@1:1", 4),
            Err(ResumeError::TooManyTopics { max: 4 })
        );
        assert_eq!(
            from_target("/?resume=&resume=", 4),
            Err(ResumeError::Repeated)
        );
    }

    #[test]
    fn notices_are_json_with_the_topic_escaped() {
        let position = Position {
            epoch: "1a2b3c4d-1".to_owned(),
            offset: 7,
        };
        assert_eq!(
            position_notice("a\"b", &position),
            r#"{"wson":"position","topic":"a\"b","epoch":"1a2b3c4d-1","offset":7}"#
        );
        assert_eq!(
            reload_notice("news", Reload::Gone, Some(&position)),
            r#"{"wson":"reload","topic":"news","reason":"gone","epoch":"1a2b3c4d-1","offset":7}"#
        );
        assert_eq!(
            reload_notice("news", Reload::Off, None),
            r#"{"wson":"reload","topic":"news","reason":"off","epoch":null,"offset":null}"#
        );
    }
}
