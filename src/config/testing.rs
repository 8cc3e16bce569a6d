//! Helpers the config's unit tests share: a minimal valid file, variations of it, and the
//! errors they give.

use std::path::Path;

use super::{Config, ConfigError, parse};

pub const SHIPPED: &str = include_str!("../../conf/wson.toml");
pub const FILE: &str = "conf/wson.toml";
pub const SECRET: &str = "0123456789abcdef-not-so-secret";

/// The smallest valid file: the required keys only.
fn base() -> Vec<(&'static str, String)> {
    vec![
        ("servers", r#"["tcp://127.0.0.1:8099"]"#.to_owned()),
        ("control", r#""unix://control.sock""#.to_owned()),
        ("secret", format!("\"{SECRET}\"")),
        ("origins", r#"["http://localhost"]"#.to_owned()),
    ]
}

/// The base file with `set` keys added or replaced and `remove` keys left out. A key in a
/// table is set as a dotted key (`topics.max_topics`), which TOML reads into the table.
pub fn text(set: &[(&'static str, &str)], remove: &[&str]) -> String {
    let mut lines = base();
    lines
        .retain(|(key, _)| !remove.contains(key) && !set.iter().any(|(set_key, _)| set_key == key));
    lines.extend(set.iter().map(|(key, value)| (*key, (*value).to_owned())));
    lines
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect()
}

pub fn parse_with(
    set: &[(&'static str, &str)],
    remove: &[&str],
) -> Result<Config, Vec<ConfigError>> {
    parse(&text(set, remove), Path::new(FILE))
}

pub fn config_with(set: &[(&'static str, &str)]) -> Config {
    parse_with(set, &[]).unwrap()
}

/// Every error as (key, message).
pub fn errors(set: &[(&'static str, &str)], remove: &[&str]) -> Vec<(Option<String>, String)> {
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
pub fn only_error(set: &[(&'static str, &str)], remove: &[&str]) -> (String, String) {
    let mut errors = errors(set, remove);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (key, message) = errors.remove(0);
    (key.unwrap(), message)
}

pub fn assert_error(set: &[(&'static str, &str)], key: &str, message_part: &str) {
    let (found_key, message) = only_error(set, &[]);
    assert_eq!(found_key, key, "{message}");
    assert!(
        message.contains(message_part),
        "{message:?} lacks {message_part:?}"
    );
}
