//! Log lines stay parseable whatever the values in them (issue 10, section 6): logfmt quotes
//! and escapes a value that needs it, and `log_format = "json"` writes one object per line.

use serde_json::Value;

use crate::common::*;

/// An origin a browser would never send, with everything logfmt must escape.
const ODD_ORIGIN: &str = r#"http://x "quoted" = \back\slash"#;

/// Sends a handshake with `ODD_ORIGIN` (not allowed) and returns the refusal's log line.
fn refusal_line(server: &mut Server) -> String {
    let cookies = Cookies::fresh("alice");
    let mut client = WsClient::raw_tcp(&server.tcp());
    let Err(refused) = client.upgrade(&request(
        &server.tcp(),
        &cookies.header,
        Some(ODD_ORIGIN),
        "",
    )) else {
        panic!("an origin not allowed is refused");
    };
    assert_eq!(refused.status, 403);
    server.wait_for_log("handshake refused")
}

#[test]
fn logfmt_values_with_quotes_spaces_and_backslashes_read_back() {
    let mut server = Setup::new().start();
    let line = refusal_line(&mut server);
    assert_eq!(
        logfmt_value(&line, "origin").as_deref(),
        Some(ODD_ORIGIN),
        "{line}"
    );
    assert_eq!(
        logfmt_value(&line, "status").as_deref(),
        Some("403"),
        "{line}"
    );
    assert_eq!(
        logfmt_value(&line, "reason").as_deref(),
        Some("origin not allowed"),
        "{line}"
    );
}

#[test]
fn json_format_writes_one_object_per_line_with_typed_values() {
    let mut server = Setup::new().set("log_format", r#""json""#).start();
    let line = refusal_line(&mut server);
    let refusal: Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(refusal["level"], "WARN");
    assert_eq!(refusal["msg"], "handshake refused");
    assert_eq!(refusal["status"], 403);
    assert_eq!(refusal["origin"], ODD_ORIGIN);
    for line in server.log_text().lines() {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            parsed["time"].is_string() && parsed["msg"].is_string(),
            "{line}"
        );
    }
}
