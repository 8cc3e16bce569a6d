//! Log output: one line per event on stderr (which `start --daemon` points at the log
//! file). The level can change at run time (SIGHUP); the format is chosen at start.
//!
//! Call sites give a fixed message and key-values (`log::warn!(peer, status = 403;
//! "handshake refused")`); this module writes them as
//! - logfmt: `2026-12-03T09:28:27.123Z WARN handshake refused peer=127.0.0.1:5121
//!   status=403 reason="origin not allowed"`, a value quoted and escaped whenever it holds
//!   a space, `=`, `"`, `\` or a control character, so any value parses back;
//! - json: `{"time":"...","level":"WARN","msg":"handshake refused","peer":"...",
//!   "status":403}`, one object per line, numbers and booleans as themselves.

use std::fmt::Write as _;
use std::io::Write;

use log::kv::{self, Key, Value, VisitSource};

use crate::config::LogFormat;

pub fn init(level: log::LevelFilter, format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder
        // Everything passes the backend; `log::set_max_level` is the one live filter,
        // so a reload can raise or lower it.
        .filter_level(log::LevelFilter::Trace)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let time = buf.timestamp_millis().to_string();
            let line = render(format, &time, record);
            buf.write_all(line.as_bytes())
        });
    // A second init (tests) keeps the first logger; the level still applies.
    let _ = builder.try_init();
    log::set_max_level(level);
}

/// One record as one line, newline included.
pub fn render(format: LogFormat, time: &str, record: &log::Record<'_>) -> String {
    let message = record.args().to_string();
    let mut line = String::with_capacity(128);
    match format {
        LogFormat::Logfmt => {
            let _ = write!(line, "{time} {} {message}", record.level());
            let _ = record.key_values().visit(&mut Logfmt(&mut line));
        }
        LogFormat::Json => {
            line.push_str("{\"time\":");
            json_string(&mut line, time);
            line.push_str(",\"level\":");
            json_string(&mut line, record.level().as_str());
            line.push_str(",\"msg\":");
            json_string(&mut line, &message);
            let _ = record.key_values().visit(&mut Json(&mut line));
            line.push('}');
        }
    }
    line.push('\n');
    line
}

struct Logfmt<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Logfmt<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push(' ');
        self.0.push_str(key.as_str());
        self.0.push('=');
        logfmt_value(self.0, &value.to_string());
        Ok(())
    }
}

struct Json<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Json<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push(',');
        json_string(self.0, key.as_str());
        self.0.push(':');
        if let Some(number) = value.to_u64() {
            let _ = write!(self.0, "{number}");
        } else if let Some(number) = value.to_i64() {
            let _ = write!(self.0, "{number}");
        } else if let Some(flag) = value.to_bool() {
            let _ = write!(self.0, "{flag}");
        } else {
            json_string(self.0, &value.to_string());
        }
        Ok(())
    }
}

/// A logfmt value: bare when it is a plain word, else in quotes with `"`, `\` and control
/// characters escaped.
fn logfmt_value(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

fn json_string(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// The escapes JSON defines, which a logfmt reader takes too.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, kvs: &[(&str, Value<'_>)]) -> String {
        let source: Vec<(&str, Value<'_>)> = kvs.to_vec();
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .args(format_args!("handshake refused"))
            .key_values(&source)
            .build();
        render(format, "2026-12-03T09:28:27.123Z", &record)
    }

    #[test]
    fn logfmt_quotes_and_escapes_only_what_needs_it() {
        let text = line(
            LogFormat::Logfmt,
            &[
                ("peer", Value::from("127.0.0.1:5121")),
                ("status", Value::from(403u16)),
                ("reason", Value::from("origin \"evil\" not allowed")),
                ("user", Value::from("a=b\\c\nd")),
                ("origin", Value::from("")),
            ],
        );
        assert_eq!(
            text,
            "2026-12-03T09:28:27.123Z WARN handshake refused peer=127.0.0.1:5121 status=403 \
             reason=\"origin \\\"evil\\\" not allowed\" user=\"a=b\\\\c\\nd\" origin=\"\"\n"
        );
    }

    #[test]
    fn json_lines_parse_with_typed_values() {
        let text = line(
            LogFormat::Json,
            &[
                ("status", Value::from(403u16)),
                ("closed", Value::from(true)),
                ("reason", Value::from("tab\there \u{1b}[31m")),
            ],
        );
        assert!(text.ends_with("}\n"));
        let parsed: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(parsed["time"], "2026-12-03T09:28:27.123Z");
        assert_eq!(parsed["level"], "WARN");
        assert_eq!(parsed["msg"], "handshake refused");
        assert_eq!(parsed["status"], 403);
        assert_eq!(parsed["closed"], true);
        assert_eq!(parsed["reason"], "tab\there \u{1b}[31m");
    }

    #[test]
    fn every_logfmt_value_reads_back() {
        for value in [
            "",
            " ",
            "plain",
            "a b",
            "\"",
            "\\",
            "x=y",
            "\u{7}",
            "é ünïcode",
            "\r\n",
        ] {
            let mut out = String::new();
            logfmt_value(&mut out, value);
            let back: String = if out.starts_with('"') {
                serde_json::from_str(&out).unwrap()
            } else {
                out.clone()
            };
            assert_eq!(back, value, "{out}");
            assert!(!out.contains('\n'));
        }
    }
}
