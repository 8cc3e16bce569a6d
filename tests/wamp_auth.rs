//! WAMP logins and roles (`[wamp.realm.NAME]`) against the real daemon: anonymous, ticket,
//! WAMP-CRA (plain and salted) and WAMP-Cryptosign (autobahn-python, PyNaCl) logins without wson
//! cookies, failed logins, and each action checked against the session's role. The WAMP-CRA signatures are computed here with the
//! RustCrypto crates, independently of wson's own code, as autobahn's `compute_wcs` and
//! `derive_key` do.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wson::ws::frame::OpCode;

use crate::common::*;

/// The WAMP spec's first cryptosign test vector: private key, and its public key listed for
/// principal `dev`.
const DEV_PRIVATE_KEY: &str = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";
/// The spec's second test vector's private key: no principal lists its public key.
const OTHER_PRIVATE_KEY: &str = "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd";

/// realm1: cookies only, no roles (as before). realm2: anonymous, ticket, wampcra and
/// cryptosign logins, principals and roles after Crossbar's workshop (`dothings`,
/// `seethings`, `blocked`).
fn setup() -> Setup {
    Setup::new()
        .set("wamp.realms", r#"["realm1", "realm2"]"#)
        .set(
            "wamp.realm.realm2.auth",
            r#"["anonymous", "ticket", "wampcra", "cryptosign"]"#,
        )
        .set("wamp.realm.realm2.anonymous_role", r#""guest""#)
        .set(
            "wamp.realm.realm2.principal",
            r#"[
                {authid = "joe", role = "dothings", ticket = "joe-ticket"},
                {authid = "peter", role = "seethings", secret = "peter-secret"},
                {authid = "salty", role = "seethings", secret = "salty-secret", salt = "pepper", iterations = 100, keylen = 16},
                {authid = "bad", role = "blocked", ticket = "bad-ticket"},
                {authid = "dev", role = "seethings", authorized_keys = ["1adfc8bfe1d35616e64dffbd900096f23b066f914c8c2ffbb66f6075b96e116d"]},
            ]"#,
        )
        .set(
            "wamp.realm.realm2.role",
            r#"[
                {name = "dothings", permissions = [{uri = "", match = "prefix", allow = ["call", "register", "publish", "subscribe"]}]},
                {name = "seethings", permissions = [
                    {uri = "com.example.", match = "prefix", allow = ["subscribe", "call"]},
                    {uri = "com.example.secret", allow = []},
                    {uri = "com.example.chat", allow = ["publish", "subscribe"], disclose = ["publisher"]},
                ]},
                {name = "guest", permissions = [{uri = "com.example.", match = "prefix", allow = ["subscribe"]}]},
                {name = "blocked"},
            ]"#,
        )
}

fn server() -> Server {
    setup().start()
}

const ROLES: &str = r#"{"subscriber":{},"publisher":{},"caller":{},"callee":{}}"#;

/// A WAMP client speaking `wamp.2.json`, with or without wson cookies.
struct Wamp {
    ws: WsClient,
}

impl Wamp {
    fn upgrade(server: &Server, cookie_header: &str) -> Wamp {
        Wamp {
            ws: WsClient::accepted_offering(server, cookie_header, "wamp.2.json"),
        }
    }

    fn send(&mut self, message: Value) {
        self.ws.send_text(&message.to_string());
    }

    fn recv(&mut self) -> Value {
        let frame = self.ws.recv_data();
        assert_eq!(frame.opcode, OpCode::Text, "got {frame:?}");
        serde_json::from_str(&frame.text()).unwrap()
    }

    fn hello(&mut self, realm: &str, details: Value) -> Value {
        let mut details = details;
        details["roles"] = serde_json::from_str(ROLES).unwrap();
        self.send(json!([1, realm, details]));
        self.recv()
    }

    /// Expects WELCOME and returns its details.
    fn welcomed(reply: &Value) -> Value {
        assert_eq!(reply[0], 2, "WELCOME expected, got {reply}");
        reply[2].clone()
    }

    /// Expects ABORT `reason` then the server's Close 1000.
    fn expect_abort(&mut self, reply: &Value, reason: &str) {
        assert_eq!(reply[0], 3, "ABORT expected, got {reply}");
        assert_eq!(reply[2], reason, "{reply}");
        self.ws.expect_close(1000);
    }

    /// Sends `request` and returns the reply.
    fn ask(&mut self, request: Value) -> Value {
        self.send(request);
        self.recv()
    }
}

/// A cookie-less client logged in to realm2 by ticket.
fn ticket_login(server: &Server, authid: &str, ticket: &str) -> (Wamp, Value) {
    let mut wamp = Wamp::upgrade(server, "");
    let challenge = wamp.hello(
        "realm2",
        json!({"authmethods": ["ticket"], "authid": authid}),
    );
    assert_eq!(challenge, json!([4, "ticket", {}]));
    let reply = wamp.ask(json!([5, ticket, {}]));
    (wamp, reply)
}

/// base64(HMAC-SHA256(key, challenge)), autobahn's `compute_wcs`.
fn compute_wcs(key: &[u8], challenge: &str) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(challenge.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A cookie-less client's WAMP-CRA login to realm2 with `secret`: the CHALLENGE extra and
/// the reply to the AUTHENTICATE.
fn wampcra_login(server: &Server, authid: &str, secret: &str) -> (Wamp, Value, Value) {
    let mut wamp = Wamp::upgrade(server, "");
    let challenge = wamp.hello(
        "realm2",
        json!({"authmethods": ["wampcra"], "authid": authid}),
    );
    assert_eq!(challenge[0], 4, "CHALLENGE expected, got {challenge}");
    assert_eq!(challenge[1], "wampcra");
    let extra = challenge[2].clone();
    let text = extra["challenge"].as_str().unwrap().to_owned();
    // autobahn `auth_wampcra`: a salted principal signs with the derived key, base64 text.
    let key = match extra.get("salt") {
        Some(salt) => {
            let mut derived =
                vec![0_u8; usize::try_from(extra["keylen"].as_u64().unwrap()).unwrap()];
            pbkdf2::pbkdf2_hmac::<Sha256>(
                secret.as_bytes(),
                salt.as_str().unwrap().as_bytes(),
                u32::try_from(extra["iterations"].as_u64().unwrap()).unwrap(),
                &mut derived,
            );
            base64::engine::general_purpose::STANDARD.encode(derived)
        }
        None => secret.to_owned(),
    };
    let reply = wamp.ask(json!([5, compute_wcs(key.as_bytes(), &text), {}]));
    (wamp, extra, reply)
}

#[test]
fn an_anonymous_client_joins_without_cookies() {
    let server = server();
    let mut wamp = Wamp::upgrade(&server, "");
    let details = Wamp::welcomed(&wamp.hello("realm2", json!({"authmethods": ["anonymous"]})));
    assert_eq!(details["authmethod"], "anonymous");
    assert_eq!(details["authrole"], "guest");
    assert_eq!(details["authprovider"], "static");
    // autobahn's generate_serial_number: six groups of four.
    let authid = details["authid"].as_str().unwrap();
    assert_eq!(authid.split('-').count(), 6, "{authid}");
    // A cookie-less client offering nothing in particular gets anonymous too.
    let mut other = Wamp::upgrade(&server, "");
    let details = Wamp::welcomed(&other.hello("realm2", json!({})));
    assert_eq!(details["authmethod"], "anonymous");
    assert_ne!(details["authid"], authid);
}

#[test]
fn without_cookies_a_plain_client_is_still_403_and_cookie_realms_refuse_the_login() {
    let server = server();
    let Err(refused) = WsClient::connect_tcp(
        &server.tcp(),
        &Cookies {
            header: String::new(),
            ..Cookies::fresh("x")
        },
    ) else {
        panic!("a plain client without cookies is admitted");
    };
    assert_eq!(refused.status, 403);
    // Admitted for WAMP, but realm1 allows cookies only.
    let mut wamp = Wamp::upgrade(&server, "");
    let reply = wamp.hello("realm1", json!({}));
    wamp.expect_abort(&reply, "wamp.error.no_auth_method");
    // With cookies, realm1 is as before.
    let mut wamp = Wamp::upgrade(&server, &Cookies::fresh("alice").header);
    let details = Wamp::welcomed(&wamp.hello("realm1", json!({})));
    assert_eq!(details["authid"], "alice");
    assert_eq!(details["authmethod"], "cookie");
}

#[test]
fn without_a_cookieless_realm_a_wamp_client_needs_cookies() {
    let server = Setup::new().start();
    let Err(refusal) = WsClient::offering(&server, "", "wamp.2.json") else {
        panic!("refused expected");
    };
    assert_eq!(refusal.status, 403);
}

#[test]
fn a_ticket_logs_in_and_a_wrong_one_is_aborted_without_a_hint() {
    let server = server();
    let (_joe, reply) = ticket_login(&server, "joe", "joe-ticket");
    let details = Wamp::welcomed(&reply);
    assert_eq!(details["authid"], "joe");
    assert_eq!(details["authrole"], "dothings");
    assert_eq!(details["authmethod"], "ticket");
    assert_eq!(details["authprovider"], "static");
    let mut aborts = Vec::new();
    for (authid, ticket) in [
        ("joe", "wrong"),
        ("nobody", "joe-ticket"),
        ("peter", "peter-secret"),
    ] {
        let (mut wamp, reply) = ticket_login(&server, authid, ticket);
        wamp.expect_abort(&reply, "wamp.error.not_authorized");
        aborts.push(reply);
    }
    // The same ABORT whatever was wrong.
    assert!(aborts.iter().all(|abort| *abort == aborts[0]), "{aborts:?}");
    assert_eq!(aborts[0][1]["message"], "authentication failed");
}

#[test]
fn wampcra_logs_in_plain_and_salted_and_a_wrong_secret_is_aborted() {
    let server = server();
    let (_peter, extra, reply) = wampcra_login(&server, "peter", "peter-secret");
    assert!(extra.get("salt").is_none(), "{extra}");
    let details = Wamp::welcomed(&reply);
    assert_eq!(details["authid"], "peter");
    assert_eq!(details["authrole"], "seethings");
    assert_eq!(details["authmethod"], "wampcra");
    // The challenge as Crossbar builds it.
    let challenge: Value = serde_json::from_str(extra["challenge"].as_str().unwrap()).unwrap();
    assert_eq!(challenge["authid"], "peter");
    assert_eq!(challenge["authrole"], "seethings");
    assert_eq!(challenge["authmethod"], "wampcra");
    assert_eq!(challenge["authprovider"], "static");
    assert_eq!(challenge["session"], reply[1]);
    assert!(challenge["nonce"].is_string() && challenge["timestamp"].is_string());

    let (_salty, extra, reply) = wampcra_login(&server, "salty", "salty-secret");
    assert_eq!(extra["salt"], "pepper");
    assert_eq!(extra["iterations"], 100);
    assert_eq!(extra["keylen"], 16);
    assert_eq!(Wamp::welcomed(&reply)["authid"], "salty");

    for (authid, secret) in [
        ("peter", "wrong"),
        ("salty", "peter-secret"),
        ("nobody", "x"),
    ] {
        let (mut wamp, _, reply) = wampcra_login(&server, authid, secret);
        wamp.expect_abort(&reply, "wamp.error.not_authorized");
    }
}

#[test]
fn a_huge_authenticate_is_refused() {
    let server = server();
    let (mut wamp, reply) = ticket_login(&server, "joe", &"x".repeat(5000));
    wamp.expect_abort(&reply, "wamp.error.not_authorized");
}

#[test]
fn each_action_is_checked_against_the_role_and_the_most_specific_permission_wins() {
    let server = server();
    let (mut peter, _, reply) = wampcra_login(&server, "peter", "peter-secret");
    Wamp::welcomed(&reply);
    let (mut joe, reply) = ticket_login(&server, "joe", "joe-ticket");
    Wamp::welcomed(&reply);

    // joe (everything) registers; peter (seethings) may call under com.example.
    assert_eq!(joe.ask(json!([64, 1, {}, "com.example.add"]))[0], 65);
    peter.send(json!([48, 1, {}, "com.example.add", [1, 2]]));
    let invocation = joe.recv();
    assert_eq!(invocation[0], 68, "{invocation}");
    joe.send(json!([70, invocation[1], {}, [3]]));
    assert_eq!(peter.recv(), json!([50, 1, {}, [3]]));

    let denied = |request_type: u64, request: u64, action: &str, uri: &str| {
        json!([
            8,
            request_type,
            request,
            {},
            "wamp.error.not_authorized",
            [format!("session is not authorized to {action} '{uri}'")]
        ])
    };
    // The prefix allows subscribe; the exact com.example.secret (no actions) beats it.
    assert_eq!(peter.ask(json!([32, 2, {}, "com.example.news"]))[0], 33);
    assert_eq!(
        peter.ask(json!([32, 3, {}, "com.example.secret"])),
        denied(32, 3, "subscribe to", "com.example.secret")
    );
    assert_eq!(
        peter.ask(json!([16, 4, {"acknowledge": true}, "com.example.news"])),
        denied(16, 4, "publish to", "com.example.news")
    );
    assert_eq!(
        peter.ask(json!([64, 5, {}, "com.example.mine"])),
        denied(64, 5, "register", "com.example.mine")
    );
    // Meta API URIs need permissions too; outside every permission nothing is allowed.
    assert_eq!(
        peter.ask(json!([48, 6, {}, "wamp.session.count"])),
        denied(48, 6, "call", "wamp.session.count")
    );
    assert_eq!(
        peter.ask(json!([32, 7, {}, "org.other"])),
        denied(32, 7, "subscribe to", "org.other")
    );
    assert_eq!(joe.ask(json!([48, 2, {}, "wamp.session.count"]))[0], 50);

    // com.example.chat: peter may publish, and is disclosed whatever he asked.
    let subscription = joe.ask(json!([32, 3, {}, "com.example.chat"]));
    assert_eq!(subscription[0], 33);
    assert_eq!(
        peter.ask(json!([16, 8, {"acknowledge": true}, "com.example.chat", ["hi"]]))[0],
        17
    );
    let event = joe.recv();
    assert_eq!(event[0], 36, "{event}");
    assert_eq!(event[3]["publisher_authid"], "peter", "{event}");
    assert_eq!(event[4], json!(["hi"]));
}

#[test]
fn a_role_without_permissions_may_do_nothing() {
    let server = server();
    let (mut bad, reply) = ticket_login(&server, "bad", "bad-ticket");
    assert_eq!(Wamp::welcomed(&reply)["authrole"], "blocked");
    for (request, type_) in [
        (json!([32, 1, {}, "com.example.news"]), 32),
        (
            json!([16, 2, {"acknowledge": true}, "com.example.news"]),
            16,
        ),
        (json!([48, 3, {}, "com.example.add"]), 48),
        (json!([64, 4, {}, "com.example.add"]), 64),
    ] {
        let reply = bad.ask(request);
        assert_eq!(reply[0], 8, "{reply}");
        assert_eq!(reply[1], type_);
        assert_eq!(reply[4], "wamp.error.not_authorized");
    }
}

#[test]
fn an_anonymous_guest_gets_its_roles_permissions_and_a_cookie_client_in_realm2_has_no_role() {
    let server = server();
    let mut guest = Wamp::upgrade(&server, "");
    Wamp::welcomed(&guest.hello("realm2", json!({"authmethods": ["anonymous"]})));
    assert_eq!(guest.ask(json!([32, 1, {}, "com.example.news"]))[0], 33);
    assert_eq!(guest.ask(json!([64, 2, {}, "com.example.x"]))[0], 8);
    // A cookie login gets `wamp.authrole` ("user"), which realm2 does not define.
    let mut user = Wamp::upgrade(&server, &Cookies::fresh("alice").header);
    let details = Wamp::welcomed(&user.hello("realm2", json!({"authmethods": ["cookie"]})));
    assert_eq!(details["authrole"], "user");
    assert_eq!(user.ask(json!([32, 1, {}, "com.example.news"]))[0], 8);
}

/// autobahn-python logs in with `method` as `authid` (its own `compute_wcs` and `derive_key`
/// answer a WAMP-CRA challenge) and reports what it saw.
fn autobahn_python(server: &Server, method: &str, authid: &str, secret: &str) -> Option<Value> {
    let python = crate::common::wamp::wamp_python()?;
    let url = crate::common::wamp::wson_url(server);
    Some(crate::common::wamp::run_script(
        &python,
        "py_auth.py",
        &[&url, "realm2", method, authid, secret],
    ))
}

#[test]
fn autobahn_python_logs_in_with_ticket_and_wampcra() {
    let server = server();
    for (method, authid, secret, role) in [
        ("ticket", "joe", "joe-ticket", "dothings"),
        ("wampcra", "peter", "peter-secret", "seethings"),
        ("wampcra", "salty", "salty-secret", "seethings"),
    ] {
        let Some(out) = autobahn_python(&server, method, authid, secret) else {
            return;
        };
        assert_eq!(
            out["welcome"],
            json!({"authid": authid, "authrole": role, "authmethod": method, "authprovider": "static"}),
            "{out}"
        );
        assert_eq!(out["subscribed"], true, "{out}");
        // dothings may subscribe anywhere; seethings only under com.example.
        let denied = if role == "dothings" {
            Value::Null
        } else {
            json!("wamp.error.not_authorized")
        };
        assert_eq!(out["denied"], denied, "{out}");
    }
    let out = autobahn_python(&server, "wampcra", "salty", "wrong").unwrap();
    assert_eq!(out, json!({"abort": "wamp.error.not_authorized"}));
    let out = autobahn_python(&server, "ticket", "joe", "wrong").unwrap();
    assert_eq!(out, json!({"abort": "wamp.error.not_authorized"}));
}

#[test]
fn autobahn_python_logs_in_with_cryptosign() {
    let server = server();
    // By authid, and by its key alone.
    for authid in ["dev", ""] {
        let Some(out) = autobahn_python(&server, "cryptosign", authid, DEV_PRIVATE_KEY) else {
            return;
        };
        assert_eq!(
            out["welcome"],
            json!({"authid": "dev", "authrole": "seethings", "authmethod": "cryptosign", "authprovider": "static"}),
            "{out}"
        );
        assert_eq!(out["denied"], "wamp.error.not_authorized", "{out}");
    }
    for authid in ["dev", "", "nobody"] {
        let out = autobahn_python(&server, "cryptosign", authid, OTHER_PRIVATE_KEY).unwrap();
        assert_eq!(
            out,
            json!({"abort": "wamp.error.not_authorized"}),
            "{authid}"
        );
    }
}

#[test]
fn a_reload_applies_changed_permissions_to_joined_sessions() {
    let setup = setup();
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let (mut peter, _, reply) = wampcra_login(&server, "peter", "peter-secret");
    Wamp::welcomed(&reply);
    assert_eq!(peter.ask(json!([32, 1, {}, "org.other"]))[0], 8);
    let changed = setup.set(
        "wamp.realm.realm2.role",
        r#"[{name = "seethings", permissions = [{uri = "org.", match = "prefix", allow = ["subscribe"]}]}]"#,
    )
    .set(
        "wamp.realm.realm2.principal",
        r#"[{authid = "peter", role = "seethings", secret = "peter-secret"}]"#,
    )
    .set("wamp.realm.realm2.auth", r#"["wampcra"]"#);
    std::fs::write(&path, changed.toml()).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server.wait_for_log("configuration reloaded");
    assert_eq!(peter.ask(json!([32, 2, {}, "org.other"]))[0], 33);
    assert_eq!(peter.ask(json!([32, 3, {}, "com.example.news"]))[0], 8);
}

#[test]
fn tickets_secrets_and_signatures_are_never_logged() {
    let server = server();
    let (_joe, reply) = ticket_login(&server, "joe", "joe-ticket");
    Wamp::welcomed(&reply);
    let (mut wrong, reply) = ticket_login(&server, "joe", "guessed-ticket");
    wrong.expect_abort(&reply, "wamp.error.not_authorized");
    let (_peter, extra, reply) = wampcra_login(&server, "peter", "peter-secret");
    Wamp::welcomed(&reply);
    let signature = compute_wcs(b"peter-secret", extra["challenge"].as_str().unwrap());
    // The log is read from the daemon's stderr by another thread: wait for the line.
    let mut server = server;
    server.wait_for_log("WAMP login failed");
    let log = server.log_text();
    for secret in [
        "joe-ticket",
        "guessed-ticket",
        "peter-secret",
        signature.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}

#[test]
fn failed_wamp_logins_count_toward_the_per_address_limit() {
    let server = setup().set("access.failed_logins_per_minute", "2").start();
    for _ in 0..2 {
        let (mut wamp, reply) = ticket_login(&server, "joe", "wrong");
        wamp.expect_abort(&reply, "wamp.error.not_authorized");
    }
    // The third upgrade from this address is refused before any login work.
    let Err(refusal) = WsClient::offering(&server, "", "wamp.2.json") else {
        panic!("refused expected");
    };
    assert_eq!(refusal.status, 429);
    assert!(refusal.header("Retry-After").is_some());
}

/// The backend as the realm's dynamic authenticator, over the control socket: it registers
/// the procedure with `V`, each login unknown to the config reaches it as an INVOCATION, and
/// the secret and role it answers decide the WAMP-CRA login (WELCOME says authprovider
/// "dynamic"); its error aborts the login with its URI.
#[test]
fn the_backend_authenticates_over_the_control_socket() {
    let server = setup()
        .set("wamp.realms", r#"["realm2"]"#)
        .set("wamp.realm.realm2.authenticator", r#""app.authenticate""#)
        .start();
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "app.authenticate"]));
    assert_eq!(control.next_v()[0], 65);

    let mut wamp = Wamp::upgrade(&server, "");
    wamp.send(json!([1, "realm2", {"roles": {"caller": {}}, "authmethods": ["wampcra"], "authid": "newbie"}]));
    let invocation = control.next_v();
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[4][0], "realm2");
    assert_eq!(invocation[4][1], "newbie");
    assert_eq!(invocation[4][2]["authmethod"], "wampcra");
    control.send_v(
        &json!([70, invocation[1], {}, [{"secret": "newbie-secret", "role": "seethings"}]]),
    );
    let challenge = wamp.recv();
    assert_eq!(challenge[1], "wampcra", "{challenge}");
    let text = challenge[2]["challenge"].as_str().unwrap().to_owned();
    let welcome = wamp.ask(json!([5, compute_wcs(b"newbie-secret", &text), {}]));
    let details = Wamp::welcomed(&welcome);
    assert_eq!(details["authid"], "newbie");
    assert_eq!(details["authrole"], "seethings");
    assert_eq!(details["authprovider"], "dynamic");
    // seethings may subscribe under com.example., not publish.
    let reply = wamp.ask(json!([16, 1, {"acknowledge": true}, "com.example.news", []]));
    assert_eq!(reply[4], "wamp.error.not_authorized", "{reply}");

    let mut refused = Wamp::upgrade(&server, "");
    refused.send(json!([1, "realm2", {"roles": {"caller": {}}, "authmethods": ["wampcra"], "authid": "mallory"}]));
    let invocation = control.next_v();
    control.send_v(&json!([
        8,
        68,
        invocation[1],
        {},
        "com.example.unknown_user",
        ["unknown user"]
    ]));
    let abort = refused.recv();
    refused.expect_abort(&abort, "com.example.unknown_user");
    assert_eq!(abort[1]["message"], "unknown user");
}
