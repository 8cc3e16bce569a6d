//! The bridge between the control socket's opaque payloads (a plain WebSocket message: text
//! or binary bytes) and WAMP's `args`/`kwargs`, so one topic carries both worlds.
//!
//! Plain -> WAMP (`from_plain`, a control `x`/`X` publication reaching WAMP subscribers):
//!
//! | plain message                                   | WAMP payload              |
//! |-------------------------------------------------|---------------------------|
//! | binary `b`                                      | `args: [b]` (bytes)       |
//! | text that is a JSON array `[..]`                | `args: [..]`              |
//! | text that is a JSON object `{..}`               | `kwargs: {..}`            |
//! | any other text `s` (JSON scalars included)      | `args: ["s"]`             |
//! | text that is not UTF-8                          | `args: [bytes]`           |
//!
//! WAMP -> plain (`to_plain`, a WAMP publication reaching plain subscribers):
//!
//! | WAMP payload                                    | plain message                     |
//! |-------------------------------------------------|-----------------------------------|
//! | nothing                                         | empty text                        |
//! | `args: ["s"]`, no kwargs                        | text `s`                          |
//! | `args: [bytes b]`, no kwargs                    | binary `b`                        |
//! | other `args`, no kwargs                         | text: the JSON array of args      |
//! | `kwargs`, no args                               | text: the JSON object of kwargs   |
//! | both                                            | text `{"args":[..],"kwargs":{..}}`|
//!
//! So a text or binary message makes the round trip plain -> WAMP -> plain unchanged, except
//! a text that is a JSON array or object, which comes back as compact JSON (keys sorted), and
//! a JSON array with one string `["s"]`, which comes back as `s`. JSON is written with
//! binary values as WAMP's JSON does ("Binary conversion of JSON Strings": a string of a NUL
//! then base64) and parsed the same way; numbers that are floats stay floats. A JSON text
//! nesting deeper than `max_depth` is taken as a plain string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::wamp::{Dict, Payload, Value};

/// The WAMP payload of a plain message (module docs).
pub fn from_plain(binary: bool, bytes: &[u8], max_depth: usize) -> Payload {
    let args_only = |value: Value| Payload {
        args: vec![value],
        kwargs: Dict::new(),
    };
    if binary {
        return args_only(Value::Bytes(bytes.to_vec()));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return args_only(Value::Bytes(bytes.to_vec()));
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        // serde_json's own recursion limit (128) bounds the parse; `max_depth` the result.
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
            match from_json(json) {
                Value::List(args) => {
                    let depth = args.iter().map(Value::depth).max().unwrap_or(0) + 1;
                    if depth <= max_depth {
                        return Payload {
                            args,
                            kwargs: Dict::new(),
                        };
                    }
                }
                Value::Dict(kwargs) => {
                    let depth = kwargs.iter().map(|(_, v)| v.depth()).max().unwrap_or(0) + 1;
                    if depth <= max_depth {
                        return Payload {
                            args: Vec::new(),
                            kwargs,
                        };
                    }
                }
                _ => {}
            }
        }
    }
    args_only(Value::String(text.to_owned()))
}

/// The plain message of a WAMP payload: (binary, bytes) (module docs).
pub fn to_plain(payload: &Payload) -> (bool, Vec<u8>) {
    match (payload.args.as_slice(), payload.kwargs.is_empty()) {
        ([], true) => (false, Vec::new()),
        ([Value::String(text)], true) => (false, text.as_bytes().to_vec()),
        ([Value::Bytes(bytes)], true) => (true, bytes.clone()),
        (args, true) => (false, json_text(&Value::List(args.to_vec()))),
        ([], false) => (false, json_text(&Value::Dict(payload.kwargs.clone()))),
        (args, false) => {
            let mut both = Dict::new();
            both.insert("args", Value::List(args.to_vec()));
            both.insert("kwargs", Value::Dict(payload.kwargs.clone()));
            (false, json_text(&Value::Dict(both)))
        }
    }
}

fn json_text(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&to_json(value)).unwrap_or_default()
}

fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                Value::Integer(i)
            } else if let Some(u) = number.as_u64() {
                Value::Unsigned(u)
            } else {
                Value::Float(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(text) => match text.strip_prefix('\0') {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_or_else(|_| Value::String(text.clone()), Value::Bytes),
            None => Value::String(text),
        },
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Dict(Dict(
            map.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
        )),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Unsigned(u) => serde_json::Value::from(*u),
        // serde_json turns a non-finite float into null.
        Value::Float(f) => serde_json::Value::from(*f),
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Bytes(bytes) => serde_json::Value::String(format!("\0{}", STANDARD.encode(bytes))),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Dict(dict) => serde_json::Value::Object(
            dict.iter()
                .map(|(k, v)| (k.to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(values: Vec<Value>) -> Payload {
        Payload {
            args: values,
            kwargs: Dict::new(),
        }
    }

    #[test]
    fn binary_becomes_one_bytes_argument_and_back() {
        let payload = from_plain(true, b"\x00\xff", 8);
        assert_eq!(payload, args(vec![Value::Bytes(vec![0, 255])]));
        assert_eq!(to_plain(&payload), (true, vec![0, 255]));
    }

    #[test]
    fn plain_text_becomes_one_string_argument_and_back() {
        for text in ["hello", "", "42", "\"quoted\"", "[not json", "{\"a\":"] {
            let payload = from_plain(false, text.as_bytes(), 8);
            if text.is_empty() {
                assert_eq!(payload, args(vec![Value::from("")]));
            } else {
                assert_eq!(payload, args(vec![Value::from(text)]), "{text}");
            }
            assert_eq!(to_plain(&payload), (false, text.as_bytes().to_vec()));
        }
    }

    #[test]
    fn non_utf8_text_becomes_bytes() {
        assert_eq!(
            from_plain(false, b"\xff", 8),
            args(vec![Value::Bytes(vec![255])])
        );
    }

    #[test]
    fn json_array_is_args_and_object_is_kwargs() {
        let payload = from_plain(false, br#" [1, "two", 3.5, null, {"b": true}]"#, 8);
        assert_eq!(payload.args.len(), 5);
        assert_eq!(payload.args[2], Value::Float(3.5));
        assert!(payload.kwargs.is_empty());
        assert_eq!(
            to_plain(&payload),
            (false, br#"[1,"two",3.5,null,{"b":true}]"#.to_vec())
        );
        let payload = from_plain(false, br#"{"a":1,"b":[2]}"#, 8);
        assert!(payload.args.is_empty());
        assert_eq!(payload.kwargs.get("a"), Some(&Value::Integer(1)));
        assert_eq!(to_plain(&payload), (false, br#"{"a":1,"b":[2]}"#.to_vec()));
    }

    #[test]
    fn args_and_kwargs_together_are_one_json_object() {
        let mut kwargs = Dict::new();
        kwargs.insert("k", Value::from("v"));
        let payload = Payload {
            args: vec![Value::Integer(1)],
            kwargs,
        };
        assert_eq!(
            to_plain(&payload),
            (false, br#"{"args":[1],"kwargs":{"k":"v"}}"#.to_vec())
        );
        assert_eq!(to_plain(&Payload::default()), (false, Vec::new()));
    }

    #[test]
    fn bytes_inside_json_use_the_wamp_convention() {
        let payload = args(vec![Value::Bytes(vec![1, 2]), Value::Integer(3)]);
        let (binary, text) = to_plain(&payload);
        assert!(!binary);
        assert_eq!(text, b"[\"\\u0000AQI=\",3]".to_vec());
        assert_eq!(from_plain(false, &text, 8), payload);
    }

    #[test]
    fn too_deep_json_is_a_string() {
        let text = b"[[[[1]]]]";
        assert_eq!(from_plain(false, text, 4).args.len(), 1);
        assert_eq!(
            from_plain(false, text, 3),
            args(vec![Value::from("[[[[1]]]]")])
        );
        let deep = "[".repeat(10_000);
        assert_eq!(from_plain(false, deep.as_bytes(), 64).args.len(), 1);
    }
}
