//! The JSON API over the control commands: a route from method and path, a method's JSON
//! params turned into the control frame the same command would arrive as, and a control
//! `Reply` turned into the method's JSON result.
//!
//! Params become the control command's payload (its fields, or a token and a message) and
//! then go through `control::command::parse`, the parser the control socket uses: every
//! field rule (a user's length, a topic's syntax, a close code, a cursor, a limit) is the
//! control socket's, checked in one place, and the HTTP API cannot accept what a backend
//! could not send. A rule broken is a 400 whose message names the param.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::control::codec::{ControlError, RawFrame};
use crate::control::command::{self, Command, Page, Refusal, Reply};
use crate::control::fields;
use crate::http::request::Method;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    /// `GET /`: the admin page (`http::admin`).
    Root,
    Call(ApiMethod),
    Batch,
}

/// Every API method, each one control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    Broadcast,
    Send,
    SendUser,
    Publish,
    Kick,
    Subscribe,
    Unsubscribe,
    Online,
    Tokens,
    Users,
    Topics,
    Presence,
    PresenceCount,
    Position,
    Status,
}

impl ApiMethod {
    pub const ALL: [ApiMethod; 15] = [
        ApiMethod::Broadcast,
        ApiMethod::Send,
        ApiMethod::SendUser,
        ApiMethod::Publish,
        ApiMethod::Kick,
        ApiMethod::Subscribe,
        ApiMethod::Unsubscribe,
        ApiMethod::Online,
        ApiMethod::Tokens,
        ApiMethod::Users,
        ApiMethod::Topics,
        ApiMethod::Presence,
        ApiMethod::PresenceCount,
        ApiMethod::Position,
        ApiMethod::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApiMethod::Broadcast => "broadcast",
            ApiMethod::Send => "send",
            ApiMethod::SendUser => "send_user",
            ApiMethod::Publish => "publish",
            ApiMethod::Kick => "kick",
            ApiMethod::Subscribe => "subscribe",
            ApiMethod::Unsubscribe => "unsubscribe",
            ApiMethod::Online => "online",
            ApiMethod::Tokens => "tokens",
            ApiMethod::Users => "users",
            ApiMethod::Topics => "topics",
            ApiMethod::Presence => "presence",
            ApiMethod::PresenceCount => "presence_count",
            ApiMethod::Position => "position",
            ApiMethod::Status => "status",
        }
    }

    pub fn from_name(name: &str) -> Option<ApiMethod> {
        ApiMethod::ALL
            .into_iter()
            .find(|method| method.name() == name)
    }

    /// The params the method takes (any other is a 400).
    fn params(self) -> &'static [&'static str] {
        match self {
            ApiMethod::Broadcast => &["message", "binary"],
            ApiMethod::Send => &["token", "message", "binary"],
            ApiMethod::SendUser => &["user", "message", "binary"],
            ApiMethod::Publish => &["topic", "message", "binary", "options"],
            ApiMethod::Kick => &["token", "user", "code", "reason"],
            ApiMethod::Subscribe => &["topic", "token", "user", "get_retained"],
            ApiMethod::Unsubscribe => &["topic", "token", "user"],
            ApiMethod::Online => &["user"],
            ApiMethod::Tokens => &["user", "cursor", "limit"],
            ApiMethod::Users | ApiMethod::Topics => &["cursor", "limit"],
            ApiMethod::Presence => &["topic", "cursor", "limit"],
            ApiMethod::PresenceCount | ApiMethod::Position => &["topic"],
            ApiMethod::Status => &[],
        }
    }
}

/// An error response: status, `error.code` and `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_param(param: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::new(400, "bad_param", format!("{param}: {why}"))
    }

    /// `{"error":{"code":..,"message":..}}`
    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

/// The route of `method` and `path`, or 404 / 405 (with the methods allowed there).
pub fn route(method: Method, path: &str) -> Result<Route, (ApiError, &'static str)> {
    let (route, allow) = match path {
        "/health" => (Route::Health, "GET, HEAD"),
        "/metrics" => (Route::Metrics, "GET, HEAD"),
        "/" => (Route::Root, "GET, HEAD"),
        "/api/batch" => (Route::Batch, "POST"),
        "/api/status" => (Route::Call(ApiMethod::Status), "GET, POST"),
        _ => {
            let name = path.strip_prefix("/api/").ok_or_else(|| {
                (
                    ApiError::new(404, "not_found", format!("no route {path}")),
                    "",
                )
            })?;
            let api_method = ApiMethod::from_name(name).ok_or_else(|| {
                (
                    ApiError::new(
                        404,
                        "unknown_method",
                        format!("no API method {}", shown(name)),
                    ),
                    "",
                )
            })?;
            (Route::Call(api_method), "POST")
        }
    };
    let allowed = matches!(
        (route, method),
        (
            Route::Health | Route::Metrics | Route::Root,
            Method::Get | Method::Head
        ) | (Route::Call(ApiMethod::Status), Method::Get | Method::Post)
            | (Route::Call(_) | Route::Batch, Method::Post)
    );
    if !allowed {
        let message = format!("{path} takes {allow}");
        return Err((ApiError::new(405, "method_not_allowed", message), allow));
    }
    Ok(route)
}

/// The body of a call: a JSON object of params (an empty body: no params).
pub fn parse_params(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(params)) => Ok(params),
        Ok(_) => Err(ApiError::new(
            400,
            "bad_json",
            "the body must be a JSON object of params",
        )),
        Err(error) => Err(ApiError::new(400, "bad_json", format!("bad JSON: {error}"))),
    }
}

/// A method's params, as the JSON object of the request.
pub type ParamMap = Map<String, Value>;

/// One entry of a batch: its method and params, or why it cannot run.
pub type BatchEntry = Result<(ApiMethod, ParamMap), ApiError>;

/// The body of `/api/batch`: `{"commands":[{"method":..,"params":{..}}, ...]}`, at most
/// `max_batch` entries. A malformed entry is that entry's error, not the batch's.
pub fn parse_batch(body: &[u8], max_batch: usize) -> Result<Vec<BatchEntry>, ApiError> {
    let mut object = parse_params(body)?;
    let Some(commands) = object.remove("commands") else {
        return Err(ApiError::bad_param("commands", "missing"));
    };
    if let Some(other) = object.keys().next() {
        return Err(ApiError::new(
            400,
            "unknown_param",
            format!("{}: not a param of batch", shown(other)),
        ));
    }
    let Value::Array(commands) = commands else {
        return Err(ApiError::bad_param("commands", "must be a list"));
    };
    if commands.len() > max_batch {
        return Err(ApiError::new(
            413,
            "batch_too_large",
            format!(
                "commands: {} commands, over max_batch ({max_batch})",
                commands.len()
            ),
        ));
    }
    Ok(commands.into_iter().map(batch_entry).collect())
}

fn batch_entry(entry: Value) -> BatchEntry {
    let Value::Object(mut entry) = entry else {
        return Err(ApiError::bad_param(
            "commands[]",
            "each command must be an object",
        ));
    };
    let name = match entry.remove("method") {
        Some(Value::String(name)) => name,
        _ => return Err(ApiError::bad_param("method", "missing or not a string")),
    };
    let method = ApiMethod::from_name(&name).ok_or_else(|| {
        ApiError::new(
            404,
            "unknown_method",
            format!("no API method {}", shown(&name)),
        )
    })?;
    let params = match entry.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(ApiError::bad_param("params", "must be an object")),
    };
    if let Some(other) = entry.keys().next() {
        return Err(ApiError::new(
            400,
            "unknown_param",
            format!("{}: a command has method and params only", shown(other)),
        ));
    }
    Ok((method, params))
}

/// A control frame built from a method's params: a command byte and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    command: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// The command, parsed by the control socket's parser; a broken rule names its param.
    pub fn command(&self) -> Result<Command<'_>, ApiError> {
        command::parse(RawFrame {
            command: self.command,
            payload: &self.payload,
        })
        .map_err(|error| control_error(&error))
    }

    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }
}

/// The params of one method, read and checked for type.
struct Params<'a> {
    method: ApiMethod,
    params: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    fn new(method: ApiMethod, params: &'a Map<String, Value>) -> Result<Params<'a>, ApiError> {
        if let Some(name) = params
            .keys()
            .find(|name| !method.params().contains(&name.as_str()))
        {
            return Err(ApiError::new(
                400,
                "unknown_param",
                format!("{}: not a param of {}", shown(name), method.name()),
            ));
        }
        Ok(Params { method, params })
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::bad_param(name, "must be a string")),
        }
    }

    fn required(&self, name: &str) -> Result<&'a str, ApiError> {
        self.string(name)?.ok_or_else(|| {
            ApiError::bad_param(
                name,
                format!("missing (required by {})", self.method.name()),
            )
        })
    }

    fn boolean(&self, name: &str) -> Result<bool, ApiError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(ApiError::bad_param(name, "must be true or false")),
        }
    }

    /// A whole number as its decimal digits (the control field), empty when absent.
    fn number(&self, name: &str) -> Result<String, ApiError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::Number(number)) if number.is_u64() => Ok(number.to_string()),
            Some(_) => Err(ApiError::bad_param(name, "must be a whole number")),
        }
    }

    /// `message`, with `binary`: its bytes (base64-decoded when binary) and whether binary.
    fn message(&self) -> Result<(Vec<u8>, bool), ApiError> {
        let binary = self.boolean("binary")?;
        let text = self.required("message")?;
        if !binary {
            return Ok((text.as_bytes().to_vec(), false));
        }
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|bytes| (bytes, true))
            .map_err(|error| ApiError::bad_param("message", format!("not base64: {error}")))
    }

    /// Exactly one of `token` and `user`: its bytes and whether it is a user.
    fn target(&self) -> Result<(&'a [u8], bool), ApiError> {
        match (self.string("token")?, self.string("user")?) {
            (Some(token), None) => Ok((token.as_bytes(), false)),
            (None, Some(user)) => Ok((user.as_bytes(), true)),
            (Some(_), Some(_)) => Err(ApiError::bad_param("token", "give token or user, not both")),
            (None, None) => Err(ApiError::bad_param("token", "missing: give token or user")),
        }
    }
}

/// The control frame for `method` with `params`; 413 when its payload would exceed
/// `max_control_frame`, as the control socket refuses it.
pub fn frame(
    method: ApiMethod,
    params: &Map<String, Value>,
    max_control_frame: usize,
) -> Result<Frame, ApiError> {
    let params = Params::new(method, params)?;
    let pick = |binary: bool, binary_byte: u8, text_byte: u8| {
        if binary { binary_byte } else { text_byte }
    };
    let fields_frame = |command: u8, fields: &[&[u8]]| {
        // Trailing empty (optional, default) fields are left out, as a backend writes them.
        let used = fields
            .iter()
            .rposition(|field| !field.is_empty())
            .map_or(0, |last| last + 1);
        let mut payload = Vec::new();
        fields::append_fields(&mut payload, fields.get(..used).unwrap_or(fields));
        Frame { command, payload }
    };
    let frame = match method {
        ApiMethod::Broadcast => {
            let (message, binary) = params.message()?;
            Frame {
                command: pick(binary, b'B', b'b'),
                payload: message,
            }
        }
        ApiMethod::Send => {
            let token = params.required("token")?;
            let (message, binary) = params.message()?;
            // COMMANDS.md, c/C: the 32-byte token, then the message; checked here so the
            // error names the token, not a short payload.
            if token.len() != crate::token::TOKEN_LEN {
                return Err(ApiError::bad_param(
                    "token",
                    format!("must be {} bytes", crate::token::TOKEN_LEN),
                ));
            }
            let mut payload = token.as_bytes().to_vec();
            payload.extend_from_slice(&message);
            Frame {
                command: pick(binary, b'C', b'c'),
                payload,
            }
        }
        ApiMethod::SendUser => {
            let user = params.required("user")?;
            let (message, binary) = params.message()?;
            fields_frame(pick(binary, b'W', b'w'), &[user.as_bytes(), &message])
        }
        ApiMethod::Publish => {
            let topic = params.required("topic")?;
            let (message, binary) = params.message()?;
            let options = publish_options(&params)?;
            // `Y`: `x`/`X` that answers the position when the topic keeps a history.
            let kind: &[u8] = if binary { b"binary" } else { b"" };
            let fields: &[&[u8]] = &[topic.as_bytes(), &message, kind, &options];
            fields_frame(b'Y', &fields[..if options.is_empty() { 3 } else { 4 }])
        }
        ApiMethod::Kick => {
            let (target, user) = params.target()?;
            let code = params.number("code")?;
            let reason = params.string("reason")?.unwrap_or("");
            let command = pick(user, b'K', b'k');
            fields_frame(command, &[target, code.as_bytes(), reason.as_bytes()])
        }
        ApiMethod::Subscribe | ApiMethod::Unsubscribe => {
            let topic = params.required("topic")?;
            let (target, user) = params.target()?;
            let command = match (method, user) {
                (ApiMethod::Subscribe, false) => b'j',
                (ApiMethod::Subscribe, true) => b'J',
                (_, false) => b'r',
                (_, true) => b'R',
            };
            // `j`/`J`'s options field, only when asked for: the command stays as it was.
            let options: &[u8] =
                if method == ApiMethod::Subscribe && params.boolean("get_retained")? {
                    br#"{"get_retained":true}"#
                } else {
                    b""
                };
            fields_frame(command, &[target, topic.as_bytes(), options])
        }
        ApiMethod::Online => fields_frame(b'o', &[params.required("user")?.as_bytes()]),
        ApiMethod::Tokens => {
            let user = params.required("user")?;
            let cursor = params.string("cursor")?.unwrap_or("");
            let limit = params.number("limit")?;
            fields_frame(
                b'g',
                &[user.as_bytes(), cursor.as_bytes(), limit.as_bytes()],
            )
        }
        ApiMethod::Users | ApiMethod::Topics => {
            let cursor = params.string("cursor")?.unwrap_or("");
            let limit = params.number("limit")?;
            let command = if method == ApiMethod::Users {
                b'y'
            } else {
                b'v'
            };
            fields_frame(command, &[cursor.as_bytes(), limit.as_bytes()])
        }
        ApiMethod::Presence => {
            let topic = params.required("topic")?;
            let cursor = params.string("cursor")?.unwrap_or("");
            let limit = params.number("limit")?;
            fields_frame(
                b'h',
                &[topic.as_bytes(), cursor.as_bytes(), limit.as_bytes()],
            )
        }
        ApiMethod::PresenceCount => fields_frame(b'H', &[params.required("topic")?.as_bytes()]),
        ApiMethod::Position => fields_frame(b'G', &[params.required("topic")?.as_bytes()]),
        ApiMethod::Status => Frame {
            command: b't',
            payload: Vec::new(),
        },
    };
    if frame.payload.len() > max_control_frame {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "message: the command takes {} bytes, over max_control_frame ({max_control_frame})",
                frame.payload.len()
            ),
        ));
    }
    Ok(frame)
}

/// `publish`'s `options`: the WAMP PUBLISH options `x` takes as its third field, as JSON
/// text (what they may say is the server's to judge, as for the control socket).
fn publish_options(params: &Params<'_>) -> Result<Vec<u8>, ApiError> {
    match params.params.get("options") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(options)) if options.is_empty() => Ok(Vec::new()),
        Some(options @ Value::Object(_)) => Ok(options.to_string().into_bytes()),
        Some(_) => Err(ApiError::bad_param("options", "must be an object")),
    }
}

/// A name the client sent, as an error message quotes it: control characters escaped (the
/// message stays one line) and at most `MAX_SHOWN` characters.
fn shown(name: &str) -> String {
    const MAX_SHOWN: usize = 64;
    let mut text: String = name
        .chars()
        .take(MAX_SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(MAX_SHOWN).is_some() {
        text.push_str("...");
    }
    text
}

/// The status and body for a control error: every rule a param breaks is a 400.
pub fn control_error(error: &ControlError) -> ApiError {
    let param = match error {
        ControlError::MissingField { field, .. }
        | ControlError::BadUser { field, .. }
        | ControlError::BadToken { field, .. }
        | ControlError::BadTopic { field, .. }
        | ControlError::BadCode { field, .. }
        | ControlError::BadReason { field, .. }
        | ControlError::BadNumber { field, .. }
        | ControlError::BadCursor { field, .. }
        | ControlError::BadKind { field, .. }
        | ControlError::BadGroup { field, .. }
        | ControlError::UnknownEventKind { field, .. }
        | ControlError::RepeatedEventKind { field, .. }
        | ControlError::BadDecision { field, .. }
        | ControlError::BadStatus { field, .. } => field.name,
        ControlError::FrameTooLarge { .. } => {
            return ApiError::new(413, "payload_too_large", error.to_string());
        }
        ControlError::ShortToken { .. } | ControlError::LockPayload { .. } => "token",
        ControlError::InvalidUtf8 { .. } => "message",
        ControlError::NotADigit { .. }
        | ControlError::EmptyLength { .. }
        | ControlError::LengthTooLong { .. }
        | ControlError::UnknownCommand { .. }
        | ControlError::FieldSyntax { .. }
        | ControlError::TooManyFields { .. }
        | ControlError::AllowWithoutUser { .. }
        | ControlError::BadWampMessage { .. } => "params",
        ControlError::BadPublishOptions { .. } => "options",
        ControlError::BadSubscribeOptions { .. } => "get_retained",
    };
    ApiError::bad_param(param, error)
}

/// The JSON result of `method` for a command that answered nothing (`b`, `x`).
pub fn done_result() -> Value {
    json!({})
}

/// The JSON result of `method` for the control reply, or the error a refusal is.
pub fn reply_result(method: ApiMethod, reply: &Reply) -> Result<Value, ApiError> {
    let count_name = match method {
        ApiMethod::Kick => "closed",
        _ => "connections",
    };
    match reply {
        Reply::Ack(_) => Ok(json!({"delivered": true})),
        Reply::Nack(_) => Ok(json!({"delivered": false})),
        Reply::Count(count) => Ok(json!({count_name: count})),
        Reply::TopicCount { users, connections } => {
            Ok(json!({"count": users, "connections": connections}))
        }
        Reply::Page(page) => Ok(page_result(page)),
        Reply::Status(text) => serde_json::from_str(text)
            .map_err(|error| ApiError::new(500, "internal", format!("status: {error}"))),
        Reply::Domain(domain) => Ok(json!({"domain": domain})),
        Reply::Refused(refusal) => Err(refusal_error(*refusal)),
        Reply::Position(Some(position)) => {
            Ok(json!({"epoch": position.epoch, "offset": position.offset}))
        }
        // `publish` to a topic without history answers as it did before there were any.
        Reply::Position(None) if method == ApiMethod::Publish => Ok(done_result()),
        Reply::Position(None) => Ok(json!({"epoch": null, "offset": null})),
        Reply::FragmentAck | Reply::FragmentNack | Reply::Ping | Reply::Pong | Reply::Error => {
            Err(ApiError::new(
                500,
                "internal",
                format!("{} got an unexpected reply", method.name()),
            ))
        }
    }
}

/// A command the server would not carry out: 409 for a configured limit, 503 while the
/// cluster cannot be asked.
pub fn refusal_error(refusal: Refusal) -> ApiError {
    let (status, code) = match refusal {
        Refusal::TopicLimitPerConnection => (409, "topic_limit_per_connection"),
        Refusal::TopicLimit => (409, "topic_limit"),
        Refusal::UserSubscriptionLimit => (409, "user_subscription_limit"),
        Refusal::ClusterUnavailable => (503, "cluster_unavailable"),
    };
    ApiError::new(status, code, refusal.reason())
}

fn page_result(page: &Page) -> Value {
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(name, count)| json!({"name": String::from_utf8_lossy(name), "count": count}))
        .collect();
    let next = if page.next_cursor.is_empty() {
        Value::Null
    } else {
        Value::String(String::from_utf8_lossy(&page.next_cursor).into_owned())
    };
    json!({"items": items, "next": next})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::command::Target;

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn command_of(method: ApiMethod, value: Value) -> Result<Frame, ApiError> {
        frame(method, &params(value), 1 << 20)
    }

    #[test]
    fn every_method_is_routed_by_its_name() {
        for method in ApiMethod::ALL {
            let path = format!("/api/{}", method.name());
            assert_eq!(route(Method::Post, &path), Ok(Route::Call(method)));
        }
        assert_eq!(
            route(Method::Get, "/api/status"),
            Ok(Route::Call(ApiMethod::Status))
        );
        assert_eq!(route(Method::Post, "/api/batch"), Ok(Route::Batch));
        assert_eq!(route(Method::Get, "/health"), Ok(Route::Health));
    }

    #[test]
    fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
        let (error, _) = route(Method::Post, "/api/nope").unwrap_err();
        assert_eq!((error.status, error.code), (404, "unknown_method"));
        let (error, _) = route(Method::Get, "/nope").unwrap_err();
        assert_eq!((error.status, error.code), (404, "not_found"));
        let (error, allow) = route(Method::Get, "/api/send").unwrap_err();
        assert_eq!((error.status, allow), (405, "POST"));
        let (error, allow) = route(Method::Post, "/health").unwrap_err();
        assert_eq!((error.status, allow), (405, "GET, HEAD"));
    }

    #[test]
    fn params_become_the_control_command() {
        let frame = command_of(ApiMethod::Kick, json!({"user": "alice", "reason": "bye"})).unwrap();
        assert_eq!(
            frame.command().unwrap(),
            Command::Kick {
                target: Target::User("alice"),
                code: command::DEFAULT_KICK_CODE,
                reason: "bye"
            }
        );
        let frame = command_of(
            ApiMethod::Broadcast,
            json!({"message": "AP8=", "binary": true}),
        )
        .unwrap();
        assert_eq!(
            frame.command().unwrap(),
            Command::Broadcast {
                binary: true,
                message: &[0, 255]
            }
        );
        // get_retained becomes j/J's options field; without it the command is as before.
        let frame = command_of(
            ApiMethod::Subscribe,
            json!({"topic": "news", "user": "alice", "get_retained": true}),
        )
        .unwrap();
        assert_eq!(frame.payload, b"5:alice4:news21:{\"get_retained\":true}");
        let frame = command_of(
            ApiMethod::Subscribe,
            json!({"topic": "news", "user": "alice", "get_retained": false}),
        )
        .unwrap();
        assert_eq!(
            (frame.command, &frame.payload[..]),
            (b'J', &b"5:alice4:news"[..])
        );
        let error = command_of(
            ApiMethod::Unsubscribe,
            json!({"topic": "news", "user": "alice", "get_retained": true}),
        )
        .unwrap_err();
        assert_eq!(error.code, "unknown_param");
        let frame = command_of(ApiMethod::Users, json!({"limit": 5})).unwrap();
        assert!(matches!(
            frame.command().unwrap(),
            Command::OnlineUsers { page } if page.limit.map(|l| l.get()) == Some(5)
        ));
    }

    #[test]
    fn a_broken_field_rule_names_the_param() {
        let error = command_of(ApiMethod::Online, json!({"user": ""}))
            .unwrap()
            .command()
            .unwrap_err();
        assert_eq!((error.status, error.code), (400, "bad_param"));
        assert!(error.message.starts_with("user: "), "{error:?}");
        let error = command_of(
            ApiMethod::Publish,
            json!({"topic": "wamp.x", "message": ""}),
        )
        .unwrap()
        .command()
        .unwrap_err();
        assert!(error.message.starts_with("topic: "), "{error:?}");
        let error = command_of(ApiMethod::Topics, json!({"limit": 0}))
            .unwrap()
            .command()
            .unwrap_err();
        assert!(error.message.starts_with("limit: "), "{error:?}");
        let error = command_of(ApiMethod::Kick, json!({"token": "x", "code": 1010}))
            .unwrap()
            .command()
            .unwrap_err();
        assert!(error.message.starts_with("token: "), "{error:?}");
    }

    #[test]
    fn param_types_and_names_are_checked() {
        let cases = [
            (ApiMethod::Broadcast, json!({}), "message: missing"),
            (
                ApiMethod::Broadcast,
                json!({"message": 1}),
                "message: must be",
            ),
            (
                ApiMethod::Broadcast,
                json!({"message": "", "binary": "yes"}),
                "binary:",
            ),
            (
                ApiMethod::Broadcast,
                json!({"message": "%", "binary": true}),
                "message: not base64",
            ),
            (
                ApiMethod::Send,
                json!({"token": "short", "message": ""}),
                "token:",
            ),
            (ApiMethod::Kick, json!({}), "token: missing"),
            (
                ApiMethod::Kick,
                json!({"token": "a", "user": "b"}),
                "token: give",
            ),
            (ApiMethod::Topics, json!({"limit": -1}), "limit:"),
            (ApiMethod::Status, json!({"x": 1}), "x: not a param"),
            (
                ApiMethod::Publish,
                json!({"topic": "t", "message": "m", "options": [1]}),
                "options: must be an object",
            ),
        ];
        for (method, value, start) in cases {
            let error = command_of(method, value.clone()).unwrap_err();
            assert_eq!(error.status, 400, "{value}");
            assert!(error.message.starts_with(start), "{value}: {error:?}");
        }
    }

    #[test]
    fn a_name_quoted_in_an_error_is_one_short_line() {
        let long = "x".repeat(100);
        let name = format!("a\nb{long}");
        let error = command_of(ApiMethod::Status, json!({ name: 1 })).unwrap_err();
        assert!(!error.message.chars().any(char::is_control), "{error:?}");
        assert!(error.message.starts_with("a\\nb"), "{error:?}");
        assert!(error.message.len() < 120, "{error:?}");
    }

    #[test]
    fn a_message_over_max_control_frame_is_413() {
        let error =
            frame(ApiMethod::Broadcast, &params(json!({"message": "abcd"})), 3).unwrap_err();
        assert_eq!((error.status, error.code), (413, "payload_too_large"));
    }

    #[test]
    fn replies_become_results() {
        let page = Page {
            next_cursor: b"b".to_vec(),
            items: vec![(b"a".to_vec(), 1), (b"b".to_vec(), 2)],
        };
        assert_eq!(
            reply_result(ApiMethod::Users, &Reply::Page(page)).unwrap(),
            json!({"items": [{"name": "a", "count": 1}, {"name": "b", "count": 2}], "next": "b"})
        );
        assert_eq!(
            reply_result(ApiMethod::Kick, &Reply::Count(2)).unwrap(),
            json!({"closed": 2})
        );
        let error =
            reply_result(ApiMethod::Subscribe, &Reply::Refused(Refusal::TopicLimit)).unwrap_err();
        assert_eq!((error.status, error.code), (409, "topic_limit"));
    }

    #[test]
    fn batches_keep_bad_entries_as_their_errors() {
        let body = br#"{"commands":[{"method":"status"},{"method":"nope"},7,{"method":"users","params":{"limit":2}}]}"#;
        let entries = parse_batch(body, 10).unwrap();
        assert_eq!(entries.len(), 4);
        assert!(matches!(entries[0], Ok((ApiMethod::Status, _))));
        assert_eq!(entries[1].as_ref().unwrap_err().status, 404);
        assert_eq!(entries[2].as_ref().unwrap_err().status, 400);
        assert!(matches!(entries[3], Ok((ApiMethod::Users, _))));
        assert_eq!(parse_batch(body, 3).unwrap_err().status, 413);
        assert_eq!(parse_batch(b"[]", 3).unwrap_err().code, "bad_json");
        assert_eq!(parse_batch(b"{", 3).unwrap_err().code, "bad_json");
    }
}
