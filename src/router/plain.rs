//! The bridge between the control socket's opaque payloads and WAMP args/kwargs.
//! (Provisional: the router's own version replaces this file.)

use crate::wamp::{Dict, Message, Payload, Serializer, Value};

/// A WAMP payload as a plain WebSocket message: (binary, bytes).
pub fn to_plain(payload: &Payload) -> (bool, Vec<u8>) {
    match (payload.args.as_slice(), payload.kwargs.is_empty()) {
        ([Value::String(text)], true) => (false, text.clone().into_bytes()),
        ([Value::Bytes(bytes)], true) => (true, bytes.clone()),
        ([], true) => (false, Vec::new()),
        _ => {
            // Encoded through a RESULT message so one JSON encoder serves both.
            let value = if payload.kwargs.is_empty() {
                Value::List(payload.args.clone())
            } else if payload.args.is_empty() {
                Value::Dict(payload.kwargs.clone())
            } else {
                let mut both = Dict::new();
                both.insert("args", Value::List(payload.args.clone()));
                both.insert("kwargs", Value::Dict(payload.kwargs.clone()));
                Value::Dict(both)
            };
            let wrapped = Message::Result {
                request: 1,
                details: Dict::new(),
                payload: Payload {
                    args: vec![value],
                    kwargs: Dict::new(),
                },
            };
            let json = Serializer::Json.encode(&wrapped);
            // `[50,1,{},[VALUE]]`: the value sits between the 11th byte and the last two.
            let inner = json
                .get(10..json.len().saturating_sub(2))
                .unwrap_or_default()
                .to_vec();
            (false, inner)
        }
    }
}

/// A plain message as a WAMP payload.
pub fn from_plain(binary: bool, bytes: &[u8], max_depth: usize) -> Payload {
    if binary {
        return Payload {
            args: vec![Value::Bytes(bytes.to_vec())],
            kwargs: Dict::new(),
        };
    }
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let mut wrapped = b"[50,1,{},[".to_vec();
        wrapped.extend_from_slice(bytes);
        wrapped.extend_from_slice(b"]]");
        if let Ok(Message::Result { payload, .. }) =
            Serializer::Json.decode(&wrapped, max_depth.saturating_add(2))
            && let [value] = payload.args.as_slice()
        {
            match value {
                Value::List(args) => {
                    return Payload {
                        args: args.clone(),
                        kwargs: Dict::new(),
                    };
                }
                Value::Dict(kwargs) => {
                    return Payload {
                        args: Vec::new(),
                        kwargs: kwargs.clone(),
                    };
                }
                _ => {}
            }
        }
    }
    Payload {
        args: vec![Value::String(text.into_owned())],
        kwargs: Dict::new(),
    }
}
