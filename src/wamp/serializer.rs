//! The three WAMP v2 serializations, chosen by the WebSocket subprotocol: `decode` checks the
//! format (via `wamp::json`, `wamp::msgpack`, `wamp::cbor`), bounds the nesting, then reads the
//! message out of the value (`Message::from_value`); `encode` writes a message's elements
//! straight to bytes.

use std::fmt;

use crate::wamp::message::Message;
use crate::wamp::{cbor, json, msgpack};

/// The deepest nesting `decode` accepts, whatever `max_depth` it is given: each level is a
/// few stack frames in the decoders, and serde_json refuses 128 levels of its own accord.
pub const MAX_DEPTH: usize = 100;

/// A WAMP serialization, as named by its WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Serializer {
    /// `wamp.2.json`: text frames.
    Json,
    /// `wamp.2.msgpack`: binary frames.
    MsgPack,
    /// `wamp.2.cbor`: binary frames.
    Cbor,
}

impl Serializer {
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    pub fn from_subprotocol(name: &str) -> Option<Serializer> {
        match name {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// True when messages go in binary WebSocket frames.
    pub fn is_binary(self) -> bool {
        !matches!(self, Serializer::Json)
    }

    /// The message in `bytes`, or why it is not one. `max_depth` bounds how deeply lists and
    /// dicts may nest (the message itself is depth 1; above `MAX_DEPTH` it is `MAX_DEPTH`).
    /// Deeper input is `TooDeep` as soon as the decoder reaches the level past the bound, so
    /// no input can exhaust the stack. The value must be the whole of `bytes`.
    pub fn decode(self, bytes: &[u8], max_depth: usize) -> Result<Message, DecodeError> {
        let max_depth = max_depth.min(MAX_DEPTH);
        let value = match self {
            Serializer::Json => json::decode(bytes, max_depth)?,
            Serializer::MsgPack => msgpack::decode(bytes, max_depth)?,
            Serializer::Cbor => cbor::decode(bytes, max_depth)?,
        };
        Message::from_value(value)
    }

    /// The bytes of `message`.
    ///
    /// JSON writes a NaN or infinite float as `null` (JSON has neither). MessagePack cannot
    /// hold a string, binary, list or dict of 2^32 entries or bytes or more; a message holding
    /// one (4 GiB, far past any message size limit) encodes to no bytes at all.
    pub fn encode(self, message: &Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(message, &mut out);
        out
    }

    /// Appends the bytes of `message` to `out` (see `encode`), so a caller can reuse a buffer.
    pub fn encode_into(self, message: &Message, out: &mut Vec<u8>) {
        let elements = message.elements();
        match self {
            Serializer::Json => json::encode(elements.as_slice(), out),
            Serializer::MsgPack => {
                let start = out.len();
                if msgpack::encode(elements.as_slice(), out).is_err() {
                    out.truncate(start);
                }
            }
            Serializer::Cbor => cbor::encode(elements.as_slice(), out),
        }
    }
}

/// Why bytes are not a WAMP message. The router answers each with ABORT
/// `wamp.error.protocol_violation` and its `Display` as the message.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// Not valid JSON / MessagePack / CBOR, or trailing bytes after the value, or a value WAMP
    /// does not carry (a MessagePack ext type, a CBOR tag, a non-string dict key, a key that
    /// appears twice in one dict, an integer outside [-2^63, 2^64), a JSON binary string whose
    /// base64 is invalid).
    Syntax { detail: String },
    /// Lists and dicts nest deeper than allowed; `max` is the bound applied.
    TooDeep { max: usize },
    /// The value is not a non-empty list starting with a non-negative integer.
    NotAMessage,
    /// The type code names no message of WAMP v2.
    UnknownType { code: u64 },
    /// A known message with a missing, extra or mistyped element.
    BadField {
        message: &'static str,
        field: &'static str,
    },
    /// An integer id outside [1, 2^53]: 0 is refused everywhere, the revocation form
    /// `[UNSUBSCRIBED, 0, Details]` included, which peers never send to a router. (A negative
    /// or non-integer id is `BadField`.)
    IdOutOfRange { message: &'static str, id: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Syntax { detail } => write!(f, "invalid serialization: {detail}"),
            DecodeError::TooDeep { max } => write!(f, "nested deeper than {max} levels"),
            DecodeError::NotAMessage => f.write_str("not a list starting with a message type"),
            DecodeError::UnknownType { code } => write!(f, "unknown message type {code}"),
            DecodeError::BadField { message, field } => {
                write!(f, "{message}: missing or invalid {field}")
            }
            DecodeError::IdOutOfRange { message, id } => {
                write!(f, "{message}: id {id} is outside [1, 2^53]")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wamp::message::every_message;
    use crate::wamp::{Dict, MessageType, Payload, Value};

    /// Spec example messages: their JSON as autobahn|Python and Crossbar write it, and the
    /// MessagePack and CBOR bytes the Python `msgpack` and `cbor2` packages (which
    /// autobahn uses) make of the same value.
    const VECTORS: [(&str, &str, &str, &str); 24] = [
        (
            "hello",
            r#"[1,"realm1",{"roles":{"subscriber":{},"publisher":{}}}]"#,
            "9301a67265616c6d3181a5726f6c657382aa7375627363726962657280a97075626c697368657280",
            "8301667265616c6d31a165726f6c6573a26a73756273637269626572a0697075626c6973686572a0",
        ),
        (
            "welcome",
            r#"[2,9129137332,{"roles":{"broker":{}}}]"#,
            "9302cf00000002202394b481a5726f6c657381a662726f6b657280",
            "83021b00000002202394b4a165726f6c6573a16662726f6b6572a0",
        ),
        (
            "abort",
            r#"[3,{"message":"The realm does not exist."},"wamp.error.no_such_realm"]"#,
            "930381a76d657373616765b9546865207265616c6d20646f6573206e6f742065786973742eb877616d702e6572726f722e6e6f5f737563685f7265616c6d",
            "8303a1676d6573736167657819546865207265616c6d20646f6573206e6f742065786973742e781877616d702e6572726f722e6e6f5f737563685f7265616c6d",
        ),
        (
            "challenge",
            r#"[4,"wampcra",{"challenge":"{\"nonce\":\"LHRTC9zeOIrt_9U3\"}"}]"#,
            "9304a777616d7063726181a96368616c6c656e6765bc7b226e6f6e6365223a224c48525443397a654f4972745f395533227d",
            "83046777616d70637261a1696368616c6c656e6765781c7b226e6f6e6365223a224c48525443397a654f4972745f395533227d",
        ),
        (
            "authenticate",
            r#"[5,"gir1mSx+deCDUV7wRM5SGIn/+R/ClqLZuH4m7FJeBVI=",{}]"#,
            "9305d92c676972316d53782b6465434455563777524d355347496e2f2b522f436c714c5a7548346d37464a654256493d80",
            "8305782c676972316d53782b6465434455563777524d355347496e2f2b522f436c714c5a7548346d37464a654256493da0",
        ),
        (
            "goodbye",
            r#"[6,{"message":"The host is shutting down now."},"wamp.close.system_shutdown"]"#,
            "930681a76d657373616765be54686520686f7374206973207368757474696e6720646f776e206e6f772eba77616d702e636c6f73652e73797374656d5f73687574646f776e",
            "8306a1676d657373616765781e54686520686f7374206973207368757474696e6720646f776e206e6f772e781a77616d702e636c6f73652e73797374656d5f73687574646f776e",
        ),
        (
            "error",
            r#"[8,48,7814135,{},"com.myapp.error1",[],{"a":1.5,"b":-7,"c":null,"d":true}]"#,
            "970830ce00773bf780b0636f6d2e6d796170702e6572726f72319084a161cb3ff8000000000000a162f9a163c0a164c3",
            "870818301a00773bf7a070636f6d2e6d796170702e6572726f723180a46161fb3ff80000000000006162266163f66164f5",
        ),
        (
            "publish",
            r#"[16,239714735,{},"com.myapp.mytopic1",["Hello, world!"],{"color":"orange","sizes":[23,42,7]}]"#,
            "9610ce0e49c1af80b2636f6d2e6d796170702e6d79746f7069633191ad48656c6c6f2c20776f726c642182a5636f6c6f72a66f72616e6765a573697a657393172a07",
            "86101a0e49c1afa072636f6d2e6d796170702e6d79746f70696331816d48656c6c6f2c20776f726c6421a265636f6c6f72666f72616e67656573697a65738317182a07",
        ),
        (
            "published",
            r#"[17,239714735,4429313566]"#,
            "9311ce0e49c1afcf000000010801f61e",
            "83111a0e49c1af1b000000010801f61e",
        ),
        (
            "subscribe",
            r#"[32,713845233,{},"com.myapp.mytopic1"]"#,
            "9420ce2a8c69f180b2636f6d2e6d796170702e6d79746f70696331",
            "8418201a2a8c69f1a072636f6d2e6d796170702e6d79746f70696331",
        ),
        (
            "subscribed",
            r#"[33,713845233,5512315355]"#,
            "9321ce2a8c69f1cf00000001488f41db",
            "8318211a2a8c69f11b00000001488f41db",
        ),
        (
            "unsubscribe",
            r#"[34,85346237,5512315355]"#,
            "9322ce051647bdcf00000001488f41db",
            "8318221a051647bd1b00000001488f41db",
        ),
        (
            "unsubscribed",
            r#"[35,85346237]"#,
            "9223ce051647bd",
            "8218231a051647bd",
        ),
        (
            "event",
            r#"[36,5512315355,4429313566,{},["Hello"]]"#,
            "9524cf00000001488f41dbcf000000010801f61e8091a548656c6c6f",
            "8518241b00000001488f41db1b000000010801f61ea0816548656c6c6f",
        ),
        (
            "call",
            r#"[48,7814135,{},"com.myapp.ping"]"#,
            "9430ce00773bf780ae636f6d2e6d796170702e70696e67",
            "8418301a00773bf7a06e636f6d2e6d796170702e70696e67",
        ),
        (
            "cancel",
            r#"[49,7814135,{"mode":"kill"}]"#,
            "9331ce00773bf781a46d6f6465a46b696c6c",
            "8318311a00773bf7a1646d6f6465646b696c6c",
        ),
        (
            "result",
            r#"[50,7814135,{},[30],{"userid":123,"karma":10}]"#,
            "9532ce00773bf780911e82a67573657269647ba56b61726d610a",
            "8518321a00773bf7a081181ea266757365726964187b656b61726d610a",
        ),
        (
            "register",
            r#"[64,25349185,{},"com.myapp.myprocedure1"]"#,
            "9440ce0182cc4180b6636f6d2e6d796170702e6d7970726f63656475726531",
            "8418401a0182cc41a076636f6d2e6d796170702e6d7970726f63656475726531",
        ),
        (
            "registered",
            r#"[65,25349185,2103333224]"#,
            "9341ce0182cc41ce7d5e5168",
            "8318411a0182cc411a7d5e5168",
        ),
        (
            "unregister",
            r#"[66,788923562,2103333224]"#,
            "9342ce2f0604aace7d5e5168",
            "8318421a2f0604aa1a7d5e5168",
        ),
        (
            "unregistered",
            r#"[67,788923562]"#,
            "9243ce2f0604aa",
            "8218431a2f0604aa",
        ),
        (
            "invocation",
            r#"[68,6131533,9823527,{},["Johnny"],{"firstname":"John","surname":"Doe"}]"#,
            "9644ce005d8f4dce0095e5278091a64a6f686e6e7982a966697273746e616d65a44a6f686ea77375726e616d65a3446f65",
            "8618441a005d8f4d1a0095e527a081664a6f686e6e79a26966697273746e616d65644a6f686e677375726e616d6563446f65",
        ),
        (
            "interrupt",
            r#"[69,6131533,{"mode":"kill"}]"#,
            "9345ce005d8f4d81a46d6f6465a46b696c6c",
            "8318451a005d8f4da1646d6f6465646b696c6c",
        ),
        (
            "yield",
            r#"[70,6131533,{},["Hello"]]"#,
            "9446ce005d8f4d8091a548656c6c6f",
            "8418461a005d8f4da0816548656c6c6f",
        ),
    ];

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Decodes `bytes` with every test's default bound.
    fn decode(serializer: Serializer, bytes: &[u8]) -> Result<Message, DecodeError> {
        serializer.decode(bytes, 16)
    }

    #[test]
    fn python_vectors_decode_alike_and_encode_byte_for_byte() {
        for (name, json, msgpack, cbor) in VECTORS {
            let from_json = decode(Serializer::Json, json.as_bytes())
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            let forms = [
                (Serializer::Json, json.as_bytes().to_vec()),
                (Serializer::MsgPack, hex(msgpack)),
                (Serializer::Cbor, hex(cbor)),
            ];
            for (serializer, bytes) in forms {
                let message = decode(serializer, &bytes)
                    .unwrap_or_else(|error| panic!("{name} {serializer:?}: {error}"));
                assert_eq!(message, from_json, "{name} {serializer:?}");
                assert_eq!(
                    serializer.encode(&message),
                    bytes,
                    "{name} {serializer:?} encodes as the Python packages do"
                );
            }
        }
    }

    #[test]
    fn autobahn_json_byte_exact() {
        let mut roles = Dict::new();
        roles.insert("subscriber", Value::Dict(Dict::new()));
        let mut details = Dict::new();
        details.insert("roles", Value::Dict(roles));
        let hello = Message::Hello {
            realm: "realm1".to_owned(),
            details,
        };
        assert_eq!(
            Serializer::Json.encode(&hello),
            br#"[1,"realm1",{"roles":{"subscriber":{}}}]"#
        );
        let event = Message::Event {
            subscription: 5512315355,
            publication: 4429313566,
            details: Dict::new(),
            payload: Payload {
                args: vec![Value::from("Hello")],
                kwargs: Dict::new(),
            },
        };
        assert_eq!(
            Serializer::Json.encode(&event),
            br#"[36,5512315355,4429313566,{},["Hello"]]"#
        );
        let error = Message::Error {
            request_type: MessageType::Call,
            request: 7814135,
            details: Dict::new(),
            error: "wamp.error.no_such_procedure".to_owned(),
            payload: Payload::default(),
        };
        assert_eq!(
            Serializer::Json.encode(&error),
            br#"[8,48,7814135,{},"wamp.error.no_such_procedure"]"#
        );
    }

    #[test]
    fn every_message_round_trips_in_every_serializer() {
        for serializer in Serializer::ALL {
            for message in every_message() {
                let bytes = serializer.encode(&message);
                assert_eq!(
                    decode(serializer, &bytes),
                    Ok(message.clone()),
                    "{serializer:?} {}",
                    String::from_utf8_lossy(&bytes)
                );
                // Encoding is canonical: what decodes encodes to the same bytes.
                let mut appended = b"prefix".to_vec();
                serializer.encode_into(&message, &mut appended);
                assert_eq!(appended.strip_prefix(b"prefix"), Some(&bytes[..]));
            }
        }
    }

    #[test]
    fn binary_serializations_carry_the_same_message() {
        for message in every_message() {
            let from_msgpack =
                decode(Serializer::MsgPack, &Serializer::MsgPack.encode(&message)).unwrap();
            let from_cbor = decode(Serializer::Cbor, &Serializer::Cbor.encode(&message)).unwrap();
            assert_eq!(from_msgpack, from_cbor);
            assert_eq!(from_msgpack, message);
        }
    }

    #[test]
    fn json_and_binary_decode_to_the_same_message() {
        let json = br#"[16,1,{"acknowledge":true},"t",[null,-5,18446744073709551615,2.5,"\u0000EOP/kFMHXFJvX8BtT+N82w=="],{"z":{},"a":[]}]"#;
        let message = decode(Serializer::Json, json).unwrap();
        for serializer in [Serializer::MsgPack, Serializer::Cbor] {
            assert_eq!(
                decode(serializer, &serializer.encode(&message)),
                Ok(message.clone())
            );
        }
        let Message::Publish { payload, .. } = message else {
            panic!("not a PUBLISH")
        };
        assert_eq!(payload.args.get(2), Some(&Value::Unsigned(u64::MAX)));
        assert_eq!(
            payload.args.get(4),
            Some(&Value::Bytes(hex("10e3ff9053075c526f5fc06d4fe37cdb")))
        );
    }

    /// A message nesting `levels` lists (the message itself is the first).
    fn nested_json(levels: usize) -> Vec<u8> {
        let inner = levels.saturating_sub(2);
        let mut text = String::from(r#"[36,1,2,{},["#);
        text.push_str(&"[".repeat(inner));
        text.push_str(&"]".repeat(inner));
        text.push_str("]]");
        text.into_bytes()
    }

    #[test]
    fn max_depth_counts_the_message_as_one() {
        for serializer in Serializer::ALL {
            for max_depth in [2, 3, 10, MAX_DEPTH] {
                let message = Serializer::Json
                    .decode(&nested_json(max_depth), max_depth)
                    .unwrap();
                let bytes = serializer.encode(&message);
                assert!(
                    serializer.decode(&bytes, max_depth).is_ok(),
                    "{serializer:?}"
                );
                assert_eq!(
                    serializer.decode(&bytes, max_depth - 1),
                    Err(DecodeError::TooDeep { max: max_depth - 1 }),
                    "{serializer:?} {max_depth}"
                );
            }
            let flat = serializer.encode(&Message::Unsubscribed { request: 1 });
            assert!(serializer.decode(&flat, 1).is_ok());
            assert_eq!(
                serializer.decode(&flat, 0),
                Err(DecodeError::TooDeep { max: 0 })
            );
        }
    }

    #[test]
    fn a_bound_above_max_depth_is_max_depth() {
        let bytes = nested_json(MAX_DEPTH + 1);
        for max_depth in [MAX_DEPTH, MAX_DEPTH + 1, usize::MAX] {
            assert_eq!(
                Serializer::Json.decode(&bytes, max_depth),
                Err(DecodeError::TooDeep { max: MAX_DEPTH })
            );
        }
    }

    #[test]
    fn depth_bombs_fail_without_overflowing_the_stack() {
        const LEVELS: usize = 100_000;
        let bombs = [
            (Serializer::Json, "[".repeat(LEVELS).into_bytes()),
            // fixarray of one element, 100k times
            (Serializer::MsgPack, vec![0x91; LEVELS]),
            // array of one element, 100k times
            (Serializer::Cbor, vec![0x81; LEVELS]),
        ];
        for (serializer, bomb) in bombs {
            for max_depth in [16, usize::MAX] {
                assert_eq!(
                    serializer.decode(&bomb, max_depth),
                    Err(DecodeError::TooDeep {
                        max: max_depth.min(MAX_DEPTH)
                    }),
                    "{serializer:?}"
                );
            }
        }
        // Nested dicts too: {"a":{"a":...
        let dicts = "{\"a\":".repeat(LEVELS);
        assert_eq!(
            Serializer::Json.decode(dicts.as_bytes(), usize::MAX),
            Err(DecodeError::TooDeep { max: MAX_DEPTH })
        );
        let mut msgpack_dicts = Vec::new();
        let mut cbor_dicts = Vec::new();
        for _ in 0..LEVELS {
            msgpack_dicts.extend_from_slice(&[0x81, 0xa1, b'a']);
            cbor_dicts.extend_from_slice(&[0xa1, 0x61, b'a']);
        }
        for (serializer, bomb) in [
            (Serializer::MsgPack, msgpack_dicts),
            (Serializer::Cbor, cbor_dicts),
        ] {
            assert_eq!(
                serializer.decode(&bomb, usize::MAX),
                Err(DecodeError::TooDeep { max: MAX_DEPTH }),
                "{serializer:?}"
            );
        }
    }

    #[test]
    fn each_error_in_each_serializer() {
        // [UNSUBSCRIBED, 1] is [35, 1]; each case changes it.
        /// A case's name, its JSON, MessagePack and CBOR, and the error all three give.
        type Case = (
            &'static str,
            &'static [u8],
            &'static [u8],
            &'static [u8],
            DecodeError,
        );
        let cases: [Case; 5] = [
            (
                "not a list",
                b"35",
                &[0x23],
                &[0x18, 0x23],
                DecodeError::NotAMessage,
            ),
            (
                "unknown type 7",
                b"[7,1]",
                &[0x92, 0x07, 0x01],
                &[0x82, 0x07, 0x01],
                DecodeError::UnknownType { code: 7 },
            ),
            (
                "request id 0",
                b"[35,0]",
                &[0x92, 0x23, 0x00],
                &[0x82, 0x18, 0x23, 0x00],
                DecodeError::IdOutOfRange {
                    message: "UNSUBSCRIBED",
                    id: 0,
                },
            ),
            (
                "string id",
                b"[35,\"1\"]",
                &[0x92, 0x23, 0xa1, b'1'],
                &[0x82, 0x18, 0x23, 0x61, b'1'],
                DecodeError::BadField {
                    message: "UNSUBSCRIBED",
                    field: "UNSUBSCRIBE.Request",
                },
            ),
            (
                "too deep",
                b"[35,1,{\"a\":[]}]",
                &[0x93, 0x23, 0x01, 0x81, 0xa1, b'a', 0x90],
                &[0x83, 0x18, 0x23, 0x01, 0xa1, 0x61, b'a', 0x80],
                DecodeError::TooDeep { max: 2 },
            ),
        ];
        for (name, json, msgpack, cbor, expected) in cases {
            for (serializer, bytes) in [
                (Serializer::Json, json),
                (Serializer::MsgPack, msgpack),
                (Serializer::Cbor, cbor),
            ] {
                assert_eq!(
                    serializer.decode(bytes, 2),
                    Err(expected.clone()),
                    "{name} {serializer:?}"
                );
            }
        }
        // Syntax: truncated, trailing bytes, garbage.
        let syntax: [(Serializer, &[u8]); 9] = [
            (Serializer::Json, b"[35,1"),
            (Serializer::Json, b"[35,1] [35,1]"),
            (Serializer::Json, b"{35,1}"),
            (Serializer::MsgPack, &[0x92, 0x23]),
            (Serializer::MsgPack, &[0x92, 0x23, 0x01, 0x00]),
            (Serializer::MsgPack, &[0xc1]),
            (Serializer::Cbor, &[0x82, 0x18, 0x23]),
            (Serializer::Cbor, &[0x82, 0x18, 0x23, 0x01, 0x00]),
            (Serializer::Cbor, &[0xff]),
        ];
        for (serializer, bytes) in syntax {
            let error = serializer.decode(bytes, 16).unwrap_err();
            assert!(
                matches!(error, DecodeError::Syntax { .. }),
                "{serializer:?} {bytes:?}: {error:?}"
            );
            assert!(error.to_string().starts_with("invalid serialization: "));
        }
        for serializer in Serializer::ALL {
            assert!(matches!(
                serializer.decode(b"", 16),
                Err(DecodeError::Syntax { .. })
            ));
        }
    }

    #[test]
    fn errors_print_what_and_where() {
        let cases = [
            (
                DecodeError::BadField {
                    message: "PUBLISH",
                    field: "Topic",
                },
                "PUBLISH: missing or invalid Topic",
            ),
            (
                DecodeError::IdOutOfRange {
                    message: "CALL",
                    id: 0,
                },
                "CALL: id 0 is outside [1, 2^53]",
            ),
            (
                DecodeError::TooDeep { max: 3 },
                "nested deeper than 3 levels",
            ),
            (
                DecodeError::UnknownType { code: 7 },
                "unknown message type 7",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn subprotocols_name_the_serializers() {
        for serializer in Serializer::ALL {
            assert_eq!(
                Serializer::from_subprotocol(serializer.subprotocol()),
                Some(serializer)
            );
        }
        assert_eq!(Serializer::from_subprotocol("wamp.2.ubjson"), None);
        assert!(!Serializer::Json.is_binary());
        assert!(Serializer::MsgPack.is_binary() && Serializer::Cbor.is_binary());
    }
}
