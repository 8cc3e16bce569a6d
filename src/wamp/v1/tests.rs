#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::wamp::value::Dict;

fn dict(entries: &[(&str, Value)]) -> Value {
    let mut dict = Dict::new();
    for (key, value) in entries {
        dict.insert(*key, value.clone());
    }
    Value::Dict(dict)
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn decode_str(text: &str) -> Result<V1Message, V1DecodeError> {
    decode(text.as_bytes(), MAX_DEPTH)
}

/// Every example message of the v1 spec, as the spec prints it (spaces, line breaks) and
/// compact, as `encode` writes it.
const SPEC_EXAMPLES: [(&str, &str); 26] = [
    (
        r#"[0, "v59mbCGDXZ7WTyxB", 1, "Autobahn/0.5.1"]"#,
        r#"[0,"v59mbCGDXZ7WTyxB",1,"Autobahn/0.5.1"]"#,
    ),
    (
        r#"[1, "calc", "http://example.com/simple/calc#"]"#,
        r#"[1,"calc","http://example.com/simple/calc#"]"#,
    ),
    (
        r#"[1, "keyvalue", "http://example.com/simple/keyvalue#"]"#,
        r#"[1,"keyvalue","http://example.com/simple/keyvalue#"]"#,
    ),
    (
        r#"[2, "7DK6TdN4wLiUJgNM", "http://example.com/api#howdy"]"#,
        r#"[2,"7DK6TdN4wLiUJgNM","http://example.com/api#howdy"]"#,
    ),
    (
        r#"[2, "Yp9EFZt9DFkuKndg", "api:add2", 23, 99]"#,
        r#"[2,"Yp9EFZt9DFkuKndg","api:add2",23,99]"#,
    ),
    (
        "[2, \"J5DkZJgByutvaDWc\", \"http://example.com/api#storeMeal\",\n   {\n      \"category\": \"dinner\",\n      \"calories\": 2309\n   }]",
        r#"[2,"J5DkZJgByutvaDWc","http://example.com/api#storeMeal",{"category":"dinner","calories":2309}]"#,
    ),
    (
        r#"[2, "Dns3wuQo0ipOX1Xc", "http://example.com/api#woooat", null]"#,
        r#"[2,"Dns3wuQo0ipOX1Xc","http://example.com/api#woooat",null]"#,
    ),
    (
        r#"[2, "M0nncaH0ywCSYzRv", "api:sum", [9, 1, 3, 4]]"#,
        r#"[2,"M0nncaH0ywCSYzRv","api:sum",[9,1,3,4]]"#,
    ),
    (
        "[2, \"ujL7WKGXCn8bkvFV\", \"keyvalue:set\",\n   \"foobar\",\n   {\n      \"value1\": \"23\",\n      \"value2\": \"singsing\",\n      \"value3\": true,\n      \"modified\": \"2012-03-29T10:29:16.625Z\"\n   }]",
        r#"[2,"ujL7WKGXCn8bkvFV","keyvalue:set","foobar",{"value1":"23","value2":"singsing","value3":true,"modified":"2012-03-29T10:29:16.625Z"}]"#,
    ),
    (
        r#"[3, "CcDnuI2bl2oLGBzO", null]"#,
        r#"[3,"CcDnuI2bl2oLGBzO",null]"#,
    ),
    (
        r#"[3, "otZom9UsJhrnzvLa", "Awesome result .."]"#,
        r#"[3,"otZom9UsJhrnzvLa","Awesome result .."]"#,
    ),
    (
        "[3, \"CcDnuI2bl2oLGBzO\",\n   {\n      \"value3\": true,\n      \"value2\": \"singsing\",\n      \"value1\": \"23\",\n      \"modified\": \"2012-03-29T10:29:16.625Z\"\n   }]",
        r#"[3,"CcDnuI2bl2oLGBzO",{"value3":true,"value2":"singsing","value1":"23","modified":"2012-03-29T10:29:16.625Z"}]"#,
    ),
    (
        "[4, \"gwbN3EDtFv6JvNV5\",\n   \"http://autobahn.tavendo.de/error#generic\",\n   \"math domain error\"]",
        r#"[4,"gwbN3EDtFv6JvNV5","http://autobahn.tavendo.de/error#generic","math domain error"]"#,
    ),
    (
        "[4, \"7bVW5pv8r60ZeL6u\",\n   \"http://example.com/error#number_too_big\",\n   \"1001 too big for me, max is 1000\",\n   1000]",
        r#"[4,"7bVW5pv8r60ZeL6u","http://example.com/error#number_too_big","1001 too big for me, max is 1000",1000]"#,
    ),
    (
        "[4, \"AStPd8RS60pfYP8c\",\n   \"http://example.com/error#invalid_numbers\",\n   \"one or more numbers are multiples of 3\",\n   [0, 3]]",
        r#"[4,"AStPd8RS60pfYP8c","http://example.com/error#invalid_numbers","one or more numbers are multiples of 3",[0,3]]"#,
    ),
    (
        r#"[5, "http://example.com/simple"]"#,
        r#"[5,"http://example.com/simple"]"#,
    ),
    (r#"[5, "event:myevent1"]"#, r#"[5,"event:myevent1"]"#),
    (
        r#"[6, "http://example.com/simple"]"#,
        r#"[6,"http://example.com/simple"]"#,
    ),
    (r#"[6, "event:myevent1"]"#, r#"[6,"event:myevent1"]"#),
    (
        r#"[7, "http://example.com/simple", "Hello, world!"]"#,
        r#"[7,"http://example.com/simple","Hello, world!"]"#,
    ),
    (
        r#"[7, "http://example.com/simple", null]"#,
        r#"[7,"http://example.com/simple",null]"#,
    ),
    (
        "[7, \"http://example.com/event#myevent2\",\n   {\n      \"rand\": 0.09187032734575862,\n      \"flag\": false,\n      \"num\": 23,\n      \"name\":\n      \"Kross\",\n      \"created\": \"2012-03-29T10:41:09.864Z\"\n   }]",
        r#"[7,"http://example.com/event#myevent2",{"rand":0.09187032734575862,"flag":false,"num":23,"name":"Kross","created":"2012-03-29T10:41:09.864Z"}]"#,
    ),
    (
        "[7, \"event:myevent1\",\n   \"hello\",\n   [\"NwtXQ8rdfPsy-ewS\", \"dYqgDl0FthI6_hjb\"]]",
        r#"[7,"event:myevent1","hello",["NwtXQ8rdfPsy-ewS","dYqgDl0FthI6_hjb"]]"#,
    ),
    (
        "[7, \"event:myevent1\",\n   \"hello\",\n   [],\n   [\"NwtXQ8rdfPsy-ewS\"]]",
        r#"[7,"event:myevent1","hello",[],["NwtXQ8rdfPsy-ewS"]]"#,
    ),
    (
        r#"[8, "http://example.com/simple", "Hello, I am a simple event."]"#,
        r#"[8,"http://example.com/simple","Hello, I am a simple event."]"#,
    ),
    (
        r#"[8, "http://example.com/simple", null]"#,
        r#"[8,"http://example.com/simple",null]"#,
    ),
];

#[test]
fn spec_examples_decode_and_encode_compact() {
    for (spaced, compact) in SPEC_EXAMPLES {
        let message = decode_str(spaced).unwrap_or_else(|e| panic!("{spaced}: {e}"));
        assert_eq!(decode_str(compact), Ok(message.clone()), "{compact}");
        assert_eq!(String::from_utf8(encode(&message)).unwrap(), compact);
        // The encoder writes what serde_json writes for the same value.
        let value: Value = serde_json::from_str(spaced).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), compact);
    }
    // The spec's last example, EVENT with a complex object, shares PUBLISH's object.
    let event = decode_str(
        r#"[8,"http://example.com/event#myevent2",{"rand":0.09187032734575862,"flag":false,"num":23,"name":"Kross","created":"2012-03-29T10:41:09.864Z"}]"#,
    )
    .unwrap();
    assert_eq!(event.code(), 8);
}

#[test]
fn spec_examples_decode_to_their_fields() {
    assert_eq!(
        decode_str(r#"[0, "v59mbCGDXZ7WTyxB", 1, "Autobahn/0.5.1"]"#),
        Ok(V1Message::Welcome {
            session: s("v59mbCGDXZ7WTyxB"),
            protocol_version: PROTOCOL_VERSION,
            server_ident: s("Autobahn/0.5.1"),
        })
    );
    assert_eq!(
        decode_str(r#"[1, "calc", "http://example.com/simple/calc#"]"#),
        Ok(V1Message::Prefix {
            prefix: s("calc"),
            uri: s("http://example.com/simple/calc#"),
        })
    );
    assert_eq!(
        decode_str(r#"[2,"7DK6TdN4wLiUJgNM","http://example.com/api#howdy"]"#),
        Ok(V1Message::Call {
            call_id: s("7DK6TdN4wLiUJgNM"),
            procedure: s("http://example.com/api#howdy"),
            args: vec![],
        })
    );
    assert_eq!(
        decode_str(r#"[2, "Yp9EFZt9DFkuKndg", "api:add2", 23, 99]"#),
        Ok(V1Message::Call {
            call_id: s("Yp9EFZt9DFkuKndg"),
            procedure: s("api:add2"),
            args: vec![Value::Integer(23), Value::Integer(99)],
        })
    );
    assert_eq!(
        decode_str(r#"[2, "Dns3wuQo0ipOX1Xc", "http://example.com/api#woooat", null]"#),
        Ok(V1Message::Call {
            call_id: s("Dns3wuQo0ipOX1Xc"),
            procedure: s("http://example.com/api#woooat"),
            args: vec![Value::Null],
        })
    );
    assert_eq!(
        decode_str(r#"[3, "CcDnuI2bl2oLGBzO", null]"#),
        Ok(V1Message::CallResult {
            call_id: s("CcDnuI2bl2oLGBzO"),
            result: Value::Null,
        })
    );
    assert_eq!(
        decode_str(
            r#"[4, "7bVW5pv8r60ZeL6u", "http://example.com/error#number_too_big", "1001 too big for me, max is 1000", 1000]"#
        ),
        Ok(V1Message::CallError {
            call_id: s("7bVW5pv8r60ZeL6u"),
            error_uri: s("http://example.com/error#number_too_big"),
            description: s("1001 too big for me, max is 1000"),
            details: Some(Value::Integer(1000)),
        })
    );
    assert_eq!(
        decode_str(r#"[5, "event:myevent1"]"#),
        Ok(V1Message::Subscribe {
            topic: s("event:myevent1")
        })
    );
    assert_eq!(
        decode_str(r#"[6, "http://example.com/simple"]"#),
        Ok(V1Message::Unsubscribe {
            topic: s("http://example.com/simple")
        })
    );
    assert_eq!(
        decode_str(r#"[8,"http://example.com/simple","Hello, I am a simple event."]"#),
        Ok(V1Message::Event {
            topic: s("http://example.com/simple"),
            event: Value::from("Hello, I am a simple event."),
        })
    );
}

#[test]
fn publish_has_its_four_forms() {
    let publish = |recipients| V1Message::Publish {
        topic: s("event:myevent1"),
        event: Value::from("hello"),
        recipients,
    };
    let forms = [
        (r#"[7,"event:myevent1","hello"]"#, Recipients::Default),
        (
            r#"[7,"event:myevent1","hello",true]"#,
            Recipients::ExcludeMe(true),
        ),
        (
            r#"[7,"event:myevent1","hello",false]"#,
            Recipients::ExcludeMe(false),
        ),
        (
            r#"[7,"event:myevent1","hello",["NwtXQ8rdfPsy-ewS","dYqgDl0FthI6_hjb"]]"#,
            Recipients::Lists {
                exclude: vec![s("NwtXQ8rdfPsy-ewS"), s("dYqgDl0FthI6_hjb")],
                eligible: None,
            },
        ),
        (
            r#"[7,"event:myevent1","hello",[],["NwtXQ8rdfPsy-ewS"]]"#,
            Recipients::Lists {
                exclude: vec![],
                eligible: Some(vec![s("NwtXQ8rdfPsy-ewS")]),
            },
        ),
        (
            r#"[7,"event:myevent1","hello",[],[]]"#,
            Recipients::Lists {
                exclude: vec![],
                eligible: Some(vec![]),
            },
        ),
    ];
    for (text, recipients) in forms {
        let message = publish(recipients);
        assert_eq!(decode_str(text), Ok(message.clone()), "{text}");
        assert_eq!(encode(&message), text.as_bytes());
    }
    // autobahn 0.8's plain `publish(topic, event)`: a null 4th element is absent.
    assert_eq!(
        decode_str(r#"[7,"event:myevent1","hello",null]"#),
        Ok(publish(Recipients::Default))
    );
}

#[test]
fn publish_recipients_must_be_a_bool_or_lists_of_session_ids() {
    let bad = |field| {
        Err(V1DecodeError::BadField {
            message: "PUBLISH",
            field,
        })
    };
    for (text, field) in [
        // excludeMe comes alone: a bool then eligible is neither form.
        (r#"[7,"t","e",true,[]]"#, "exclude"),
        (r#"[7,"t","e","me"]"#, "exclude"),
        (r#"[7,"t","e",null,[]]"#, "exclude"),
        (r#"[7,"t","e",1]"#, "exclude"),
        (r#"[7,"t","e",{}]"#, "exclude"),
        (r#"[7,"t","e",[1]]"#, "exclude"),
        (r#"[7,"t","e",["a",null]]"#, "exclude"),
        (r#"[7,"t","e",[],true]"#, "eligible"),
        (r#"[7,"t","e",[],"a"]"#, "eligible"),
        (r#"[7,"t","e",[],[["a"]]]"#, "eligible"),
        (r#"[7,1,"e"]"#, "topicURI"),
    ] {
        assert_eq!(decode_str(text), bad(field), "{text}");
    }
}

/// Messages of every type with values of every kind, for the round-trip tests.
fn every_v1_message() -> Vec<V1Message> {
    let nested = Value::List(vec![
        Value::Null,
        Value::Bool(true),
        Value::Integer(-7),
        Value::Unsigned(u64::MAX),
        Value::Float(1.5),
        Value::from("ünïcödé \"quoted\" \\ \n\u{1}"),
        Value::Bytes(vec![0, 1, 254, 255]),
        dict(&[
            ("zebra", Value::Integer(1)),
            ("apple", Value::List(vec![dict(&[])])),
        ]),
    ]);
    vec![
        V1Message::Welcome {
            session: s("v59mbCGDXZ7WTyxB"),
            protocol_version: 1,
            server_ident: s("wson/0.1"),
        },
        V1Message::Welcome {
            session: s(""),
            protocol_version: u64::MAX,
            server_ident: s(""),
        },
        V1Message::Prefix {
            prefix: s("calc"),
            uri: s("http://example.com/simple/calc#"),
        },
        V1Message::Call {
            call_id: s("7DK6TdN4wLiUJgNM"),
            procedure: s("api:add2"),
            args: vec![],
        },
        V1Message::Call {
            call_id: s("x"),
            procedure: s("http://example.com/api#howdy"),
            args: vec![Value::Null, nested.clone(), Value::Integer(0)],
        },
        V1Message::CallResult {
            call_id: s("CcDnuI2bl2oLGBzO"),
            result: Value::Null,
        },
        V1Message::CallResult {
            call_id: s("c"),
            result: nested.clone(),
        },
        V1Message::CallError {
            call_id: s("gwbN3EDtFv6JvNV5"),
            error_uri: s("http://autobahn.tavendo.de/error#generic"),
            description: s(""),
            details: None,
        },
        V1Message::CallError {
            call_id: s("c"),
            error_uri: s("error:x"),
            description: s("one or more numbers are multiples of 3"),
            details: Some(nested.clone()),
        },
        V1Message::CallError {
            call_id: s("c"),
            error_uri: s("error:x"),
            description: s("d"),
            details: Some(Value::Bool(false)),
        },
        V1Message::Subscribe {
            topic: s("http://example.com/simple"),
        },
        V1Message::Unsubscribe {
            topic: s("event:myevent1"),
        },
        V1Message::Publish {
            topic: s("t"),
            event: Value::Null,
            recipients: Recipients::Default,
        },
        V1Message::Publish {
            topic: s("t"),
            event: nested.clone(),
            recipients: Recipients::ExcludeMe(false),
        },
        V1Message::Publish {
            topic: s("t"),
            event: Value::Integer(1),
            recipients: Recipients::Lists {
                exclude: vec![s("a"), s("")],
                eligible: None,
            },
        },
        V1Message::Publish {
            topic: s("t"),
            event: dict(&[]),
            recipients: Recipients::Lists {
                exclude: vec![],
                eligible: Some(vec![s("b")]),
            },
        },
        V1Message::Event {
            topic: s("http://example.com/simple"),
            event: Value::from("Hello, I am a simple event."),
        },
        V1Message::Event {
            topic: s("t"),
            event: nested,
        },
    ]
}

#[test]
fn every_message_type_round_trips_at_its_exact_depth() {
    let messages = every_v1_message();
    let mut codes: Vec<u64> = messages.iter().map(V1Message::code).collect();
    codes.dedup();
    assert_eq!(codes, (0..=8).collect::<Vec<u64>>());
    for message in messages {
        let bytes = encode(&message);
        let depth = message.depth();
        assert_eq!(decode(&bytes, depth), Ok(message.clone()), "{message:?}");
        assert_eq!(
            decode(&bytes, depth - 1),
            Err(V1DecodeError::TooDeep { max: depth - 1 }),
            "{message:?}"
        );
        // Compact JSON, as serde_json writes the same list.
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&value).unwrap(), bytes);
        let mut appended = b"prefix".to_vec();
        encode_into(&message, &mut appended);
        assert_eq!(appended.get(6..), Some(&bytes[..]));
    }
}

#[test]
fn null_error_details_are_refused_and_never_written() {
    // "If errorDetails is present, it MUST be not null".
    assert_eq!(
        decode_str(r#"[4,"c","error:x","d",null]"#),
        Err(V1DecodeError::BadField {
            message: "CALLERROR",
            field: "errorDetails"
        })
    );
    let message = V1Message::CallError {
        call_id: s("c"),
        error_uri: s("error:x"),
        description: s("d"),
        details: Some(Value::Null),
    };
    assert_eq!(encode(&message), br#"[4,"c","error:x","d"]"#);
    assert_eq!(message.depth(), 1);
}

#[test]
fn syntax_errors_are_syntax() {
    for text in [
        &b"not json"[..],
        b"",
        b"[2,\"a\"",
        b"[5,\"x\"] x",
        b"[5,\"x\"][5,\"y\"]",
        b"[5,\"\xff\"]",
        b"[5,'x']",
        b"[8,\"t\",{\"a\":1,\"a\":2}]",
        // NUL then invalid base64: v2's binary convention (see the module docs).
        b"[8,\"t\",\"\\u0000!!\"]",
    ] {
        let error = decode(text, MAX_DEPTH).unwrap_err();
        assert!(
            matches!(error, V1DecodeError::Syntax { .. }),
            "{:?}: {error:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn nul_led_base64_strings_come_back_byte_for_byte() {
    let text = r#"[8,"t","\u0000AQID"]"#;
    let message = decode_str(text).unwrap();
    assert_eq!(
        message,
        V1Message::Event {
            topic: s("t"),
            event: Value::Bytes(vec![1, 2, 3]),
        }
    );
    assert_eq!(encode(&message), text.as_bytes());
}

#[test]
fn depth_is_bounded_and_clamped_to_max_depth() {
    let text = r#"[2,"id","p",[[1]]]"#;
    assert!(decode_str(text).is_ok());
    assert!(decode(text.as_bytes(), 3).is_ok());
    assert_eq!(
        decode(text.as_bytes(), 2),
        Err(V1DecodeError::TooDeep { max: 2 })
    );
    assert_eq!(
        decode(b"[5,\"t\"]", 0),
        Err(V1DecodeError::TooDeep { max: 0 })
    );
    let nested = |levels: usize| {
        format!(
            "[8,\"t\",{}{}]",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    assert!(decode(nested(MAX_DEPTH).as_bytes(), usize::MAX).is_ok());
    assert_eq!(
        decode(nested(MAX_DEPTH + 1).as_bytes(), usize::MAX),
        Err(V1DecodeError::TooDeep { max: MAX_DEPTH })
    );
    // Far deeper than any stack allows recursing is still only an error.
    let deep = "[".repeat(100_000);
    assert!(decode(deep.as_bytes(), usize::MAX).is_err());
}

#[test]
fn non_messages_are_not_a_message() {
    for text in [
        "{}",
        r#"{"0":1}"#,
        r#""WELCOME""#,
        "null",
        "2",
        "[]",
        r#"["2","c","p"]"#,
        "[-1]",
        "[2.0,\"c\",\"p\"]",
        "[null]",
        "[true]",
    ] {
        assert_eq!(decode_str(text), Err(V1DecodeError::NotAMessage), "{text}");
    }
}

#[test]
fn unknown_type_ids_name_the_id() {
    for (text, code) in [
        ("[9]", 9),
        (r#"[16,1,{},"com.myapp.topic1"]"#, 16),
        ("[18446744073709551615]", u64::MAX),
    ] {
        assert_eq!(
            decode_str(text),
            Err(V1DecodeError::UnknownType { code }),
            "{text}"
        );
    }
}

#[test]
fn each_message_refuses_a_wrong_element_count() {
    for (text, message, len, expected) in [
        (r#"[0,"s",1]"#, "WELCOME", 3, "4"),
        (r#"[0,"s",1,"i","x"]"#, "WELCOME", 5, "4"),
        (r#"[1,"p"]"#, "PREFIX", 2, "3"),
        (r#"[1,"p","u","x"]"#, "PREFIX", 4, "3"),
        (r#"[2,"c"]"#, "CALL", 2, "3 or more"),
        ("[2]", "CALL", 1, "3 or more"),
        (r#"[3,"c"]"#, "CALLRESULT", 2, "3"),
        (r#"[3,"c",1,2]"#, "CALLRESULT", 4, "3"),
        (r#"[4,"c","e"]"#, "CALLERROR", 3, "4 or 5"),
        (r#"[4,"c","e","d",1,2]"#, "CALLERROR", 6, "4 or 5"),
        ("[5]", "SUBSCRIBE", 1, "2"),
        (r#"[5,"t","u"]"#, "SUBSCRIBE", 3, "2"),
        ("[6]", "UNSUBSCRIBE", 1, "2"),
        (r#"[6,"t",null]"#, "UNSUBSCRIBE", 3, "2"),
        // "The event payload MUST always be present".
        (r#"[7,"t"]"#, "PUBLISH", 2, "3 to 5"),
        (r#"[7,"t","e",[],[],[]]"#, "PUBLISH", 6, "3 to 5"),
        (r#"[8,"t"]"#, "EVENT", 2, "3"),
        (r#"[8,"t","e",true]"#, "EVENT", 4, "3"),
    ] {
        assert_eq!(
            decode_str(text),
            Err(V1DecodeError::WrongArity {
                message,
                len,
                expected
            }),
            "{text}"
        );
    }
}

#[test]
fn each_field_refuses_a_wrong_type() {
    for (text, message, field) in [
        (r#"[0,1,1,"i"]"#, "WELCOME", "sessionId"),
        (r#"[0,"s","1","i"]"#, "WELCOME", "protocolVersion"),
        (r#"[0,"s",-1,"i"]"#, "WELCOME", "protocolVersion"),
        (r#"[0,"s",1.0,"i"]"#, "WELCOME", "protocolVersion"),
        (r#"[0,"s",1,null]"#, "WELCOME", "serverIdent"),
        (r#"[1,["p"],"u"]"#, "PREFIX", "prefix"),
        (r#"[1,"p",{}]"#, "PREFIX", "URI"),
        // v1 call ids are strings: v2's integer request ids are refused.
        (r#"[2,7814135,"p"]"#, "CALL", "callID"),
        (r#"[2,"c",null]"#, "CALL", "procURI"),
        (r#"[3,null,1]"#, "CALLRESULT", "callID"),
        (r#"[4,1,"e","d"]"#, "CALLERROR", "callID"),
        (r#"[4,"c",false,"d"]"#, "CALLERROR", "errorURI"),
        (r#"[4,"c","e",null]"#, "CALLERROR", "errorDesc"),
        (r#"[5,{"uri":"t"}]"#, "SUBSCRIBE", "topicURI"),
        (r#"[6,5]"#, "UNSUBSCRIBE", "topicURI"),
        (r#"[8,["t"],"e"]"#, "EVENT", "topicURI"),
        // A binary string is not a URI.
        (r#"[8,"\u0000AQID","e"]"#, "EVENT", "topicURI"),
    ] {
        assert_eq!(
            decode_str(text),
            Err(V1DecodeError::BadField { message, field }),
            "{text}"
        );
    }
}

#[test]
fn errors_print_as_one_line() {
    let errors = [
        decode_str("[1").unwrap_err(),
        decode(b"[[]]", 1).unwrap_err(),
        decode_str("{}").unwrap_err(),
        decode_str("[9]").unwrap_err(),
        decode_str("[8]").unwrap_err(),
        decode_str("[8,1,2]").unwrap_err(),
    ];
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        &texts[1..],
        [
            "nested deeper than 1 levels",
            "not a list starting with a message type",
            "unknown WAMP v1 message type 9",
            "EVENT: 1 elements, expected 3",
            "EVENT: invalid topicURI",
        ]
    );
    for text in texts {
        assert!(
            !text.is_empty() && !text.chars().any(char::is_control),
            "{text}"
        );
    }
}

#[test]
fn names_and_codes_follow_the_spec_table() {
    let names: Vec<(u64, &str)> = every_v1_message()
        .iter()
        .map(|message| (message.code(), message.name()))
        .collect();
    for (code, name) in [
        (0, "WELCOME"),
        (1, "PREFIX"),
        (2, "CALL"),
        (3, "CALLRESULT"),
        (4, "CALLERROR"),
        (5, "SUBSCRIBE"),
        (6, "UNSUBSCRIBE"),
        (7, "PUBLISH"),
        (8, "EVENT"),
    ] {
        assert!(names.contains(&(code, name)), "{code} {name}");
    }
    assert_eq!(SUBPROTOCOL, "wamp");
}

#[test]
fn decoded_curies_resolve_through_the_session_table() {
    // The flow the router will run: PREFIX fills the table, CALL's procURI resolves.
    let mut prefixes = Prefixes::new(16, 256);
    let V1Message::Prefix { prefix, uri } =
        decode_str(r#"[1,"api","http://example.com/api#"]"#).unwrap()
    else {
        panic!("not a PREFIX")
    };
    prefixes.define(&prefix, &uri).unwrap();
    let V1Message::Call { procedure, .. } =
        decode_str(r#"[2,"Yp9EFZt9DFkuKndg","api:add2",23,99]"#).unwrap()
    else {
        panic!("not a CALL")
    };
    assert_eq!(
        prefixes.resolve(&procedure).unwrap(),
        "http://example.com/api#add2"
    );
}

#[test]
fn message_types_map_to_their_codes_and_back() {
    for (index, message_type) in V1MessageType::ALL.into_iter().enumerate() {
        assert_eq!(message_type.code(), index as u64);
        assert_eq!(V1MessageType::from_code(index as u64), Some(message_type));
    }
    assert_eq!(V1MessageType::from_code(9), None);
    assert_eq!(V1MessageType::from_code(u64::MAX), None);
}
