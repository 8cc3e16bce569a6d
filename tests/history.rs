//! Topic history and resume for plain clients (issue 15, first part; README "Missed
//! messages"; COMMANDS.md `Y`, `G`): a client that reconnects with `?resume=` gets what it
//! missed, in order, then live publications, none twice; or a reload notice that says why.

use serde_json::Value;
use wson::control::command::Reply;
use wson::resume::Position;

use crate::common::*;

fn with_history(prefixes: &str) -> Setup {
    Setup::new()
        .set("history.prefixes", prefixes)
        .set("history.size", "1000")
}

/// A client of alice (fresh cookies: a new token each time) whose upgrade carries
/// `?resume=VALUE`.
pub(crate) fn resuming(server: &Server, value: &str) -> Result<WsClient, HttpResponse> {
    resuming_as(server, &Cookies::fresh("alice"), value)
}

pub(crate) fn resuming_as(
    server: &Server,
    cookies: &Cookies,
    value: &str,
) -> Result<WsClient, HttpResponse> {
    let addr = server.tcp();
    let mut client = WsClient::raw_tcp(&addr);
    let request = request(&addr, &cookies.header, Some(ORIGIN), "").replacen(
        "GET /ws ",
        &format!("GET /ws?resume={value} "),
        1,
    );
    client.upgrade(&request)?;
    Ok(client)
}

pub(crate) fn position_of(reply: Reply) -> Position {
    match reply {
        Reply::Position(Some(position)) => position,
        other => panic!("not a position: {other:?}"),
    }
}

fn position(control: &mut Control, topic: &str) -> Position {
    position_of(control.ask(b'G', &[topic.as_bytes()]))
}

/// The next text message as JSON, which must be a wson notice.
pub(crate) fn notice(client: &mut WsClient) -> Value {
    let text = client.recv_text();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("no JSON: {text}"));
    assert!(value["wson"].is_string(), "not a notice: {text}");
    value
}

/// A position notice and the publication after it: (offset, message).
pub(crate) fn positioned(client: &mut WsClient, topic: &str, epoch: &str) -> (u64, String) {
    let value = notice(client);
    assert_eq!(value["wson"], "position");
    assert_eq!(value["topic"], topic);
    assert_eq!(value["epoch"], epoch);
    let offset = value["offset"].as_u64().unwrap();
    (offset, client.recv_text())
}

#[test]
fn missed_publications_come_in_order_then_live_ones_none_twice_at_the_seam() {
    let server = with_history(r#"["news."]"#).start();
    let mut control = server.control();
    assert_eq!(control.count(b'J', &[b"alice", b"news.live"]), 0);
    let control_addr = server.control.clone();
    let mut first = resuming(&server, "").unwrap();
    let reply = control.ask(b'Y', &[b"news.live", b"m1"]);
    let start = position_of(reply);
    assert_eq!(start.offset, 1);
    assert_eq!(
        positioned(&mut first, "news.live", &start.epoch),
        (1, "m1".to_owned())
    );
    drop(first);

    // 100 publications while it is away.
    for n in 2..=101 {
        control.send_fields(b'x', &[b"news.live", format!("m{n}").as_bytes()]);
    }
    assert_eq!(position(&mut control, "news.live").offset, 101);
    // 50 more from another backend, racing the reconnect.
    let racing = {
        std::thread::spawn(move || {
            let mut racer = Control::connect(&control_addr);
            for n in 102..=151 {
                racer.send_fields(b'x', &[b"news.live", format!("m{n}").as_bytes()]);
            }
            racer.send(b'p', b"");
            assert_eq!(racer.reply_text(), "0P");
        })
    };
    let resume = format!("news.live@{}:1", start.epoch);
    let mut second = resuming(&server, &resume).unwrap();
    racing.join().unwrap();
    for n in 2..=151 {
        assert_eq!(
            positioned(&mut second, "news.live", &start.epoch),
            (n, format!("m{n}")),
            "each publication once, in order, across the seam"
        );
    }
    let live = position_of(control.ask(b'Y', &[b"news.live", b"live"]));
    assert_eq!(live.offset, 152);
    assert_eq!(
        positioned(&mut second, "news.live", &start.epoch),
        (152, "live".to_owned())
    );
    let status = control.status();
    assert_eq!(status["history_publications"], 152);
    assert!(status["history_bytes"].as_u64().unwrap() > 152);
}

#[test]
fn with_history_off_the_resume_parameter_is_not_read() {
    let server = Setup::new().start();
    let mut client = resuming(&server, "not-a-resume").unwrap();
    let mut control = server.control();
    control.send(b'b', b"as before");
    assert_eq!(client.recv_text(), "as before");
}

#[test]
fn a_client_without_resume_gets_publications_as_before() {
    let server = with_history(r#"[""]"#).start();
    let (mut client, cookies) = server.user_client("alice");
    let mut control = server.control();
    assert_eq!(
        control.count(b'j', &[cookies.token_str().as_bytes(), b"news"]),
        1
    );
    control.send_raw(b"20x10:news.sport5:Goal!");
    control.send_fields(b'x', &[b"news", b"plain"]);
    assert_eq!(client.recv_text(), "plain");
    nothing_more(&mut control, &mut client, &cookies.token);
}

#[test]
fn a_stale_epoch_an_offset_out_of_the_history_or_no_history_get_a_reload_notice() {
    let server = Setup::new()
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", "5")
        .start();
    let mut control = server.control();
    control.count(b'J', &[b"alice", b"news.x"]);
    control.count(b'J', &[b"alice", b"chat"]);
    for n in 1..=10 {
        control.send_fields(b'x', &[b"news.x", format!("m{n}").as_bytes()]);
    }
    let now = position(&mut control, "news.x");
    assert_eq!(now.offset, 10);
    let reload = |value: &str| {
        let mut client = resuming(&server, value).unwrap();
        let answer = notice(&mut client);
        assert_eq!(answer["wson"], "reload");
        answer
    };
    let epoch = &now.epoch;
    let gone = reload(&format!("news.x@{epoch}:4"));
    assert_eq!(gone["reason"], "gone");
    assert_eq!(gone["epoch"], epoch.as_str());
    assert_eq!(gone["offset"], 10);
    assert_eq!(reload(&format!("news.x@{epoch}:11"))["reason"], "ahead");
    assert_eq!(reload("news.x@deadbeef-1:3")["reason"], "epoch");
    let off = reload(&format!("chat@{epoch}:0"));
    assert_eq!(
        (&off["reason"], &off["epoch"]),
        (&"off".into(), &Value::Null)
    );
    // The last 5 are still there: from offset 5 on, a replay.
    let mut client = resuming(&server, &format!("news.x@{epoch}:5")).unwrap();
    for n in 6..=10 {
        assert_eq!(
            positioned(&mut client, "news.x", epoch),
            (n, format!("m{n}"))
        );
    }

    // A restart: another epoch, the old one is stale.
    drop(server);
    let restarted = Setup::new().set("history.prefixes", r#"["news."]"#).start();
    let mut control = restarted.control();
    control.count(b'J', &[b"alice", b"news.x"]);
    assert_ne!(position(&mut control, "news.x").epoch, *epoch);
    let mut client = resuming(&restarted, &format!("news.x@{epoch}:10")).unwrap();
    let answer = notice(&mut client);
    assert_eq!(
        (&answer["wson"], &answer["reason"]),
        (&"reload".into(), &"epoch".into())
    );
}

#[test]
fn a_resume_for_a_topic_joined_later_is_served_when_j_subscribes_it() {
    let server = with_history(r#"["news."]"#).start();
    let mut control = server.control();
    let before = position(&mut control, "news.later");
    assert_eq!(before.offset, 0);
    for n in 1..=3 {
        control.send_fields(b'x', &[b"news.later", format!("m{n}").as_bytes()]);
    }
    let cookies = Cookies::fresh("alice");
    let value = format!("news.later@{}:0", before.epoch);
    let mut client = resuming_as(&server, &cookies, &value).unwrap();
    control.send_fields(b'x', &[b"news.later", b"m4"]);
    assert_eq!(
        control.count(b'j', &[cookies.token_str().as_bytes(), b"news.later"]),
        1
    );
    control.send_fields(b'x', &[b"news.later", b"m5"]);
    for n in 1..=5 {
        assert_eq!(
            positioned(&mut client, "news.later", &before.epoch),
            (n, format!("m{n}"))
        );
    }
}

#[test]
fn the_budget_drops_the_oldest_publications_first() {
    let server = Setup::new()
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", "1000")
        .set("history.max_bytes", "3000")
        .start();
    let mut control = server.control();
    control.count(b'J', &[b"alice", b"news.b"]);
    for n in 1..=50 {
        control.send_fields(b'x', &[b"news.b", format!("m{n}").as_bytes()]);
    }
    let now = position(&mut control, "news.b");
    let status = control.status();
    let held = status["history_publications"].as_u64().unwrap();
    assert!(held > 0 && held < 50, "{status}");
    assert!(
        status["history_bytes"].as_u64().unwrap() <= 3000,
        "{status}"
    );
    let oldest_kept = 50 - held + 1;
    let value = format!("news.b@{}:{}", now.epoch, oldest_kept - 2);
    let mut client = resuming(&server, &value).unwrap();
    assert_eq!(notice(&mut client)["reason"], "gone");
    let value = format!("news.b@{}:{}", now.epoch, oldest_kept - 1);
    let mut client = resuming(&server, &value).unwrap();
    for n in oldest_kept..=50 {
        assert_eq!(
            positioned(&mut client, "news.b", &now.epoch),
            (n, format!("m{n}"))
        );
    }
}

#[test]
fn upper_y_answers_the_position_byte_for_byte_and_g_reads_it() {
    let server = with_history(r#"["news."]"#).start();
    let mut control = server.control();
    control.send_raw(b"20Y10:news.sport5:Goal!");
    let reply = control.reply_text();
    let (len, rest) = reply.split_once('@').unwrap();
    let (epoch, offset) = rest.rsplit_once(':').unwrap();
    assert_eq!(len, rest.len().to_string());
    assert_eq!(offset, "1");
    let (base, generation) = epoch.split_once('-').unwrap();
    assert!(
        base.len() == 8 && base.bytes().all(|b| b.is_ascii_hexdigit()),
        "{reply}"
    );
    assert_eq!(generation, "1");
    control.send_raw(b"25Y10:news.sport2:\x00\xff6:binary");
    assert_eq!(control.reply_text(), format!("{len}@{epoch}:2"));
    control.send_raw(b"13G10:news.sport");
    assert_eq!(control.reply_text(), format!("{len}@{epoch}:2"));
    // No history: published, and no position.
    control.send_raw(b"13Y4:chat5:Hello");
    assert_eq!(control.reply_text(), "0@");
    control.send_raw(b"6G4:chat");
    assert_eq!(control.reply_text(), "0@");
    // A kind that is neither text nor binary, or text that is not UTF-8: 0E.
    control.send_raw(b"22Y10:news.sport1:x4:json");
    assert_eq!(control.reply_text(), "0E");
}

#[test]
fn a_bad_resume_parameter_is_a_400_saying_why() {
    let server = with_history(r#"["news."]"#)
        .set("history.max_resume_topics", "2")
        .start();
    let cookies = Cookies::fresh("alice");
    for (value, why) in [
        ("news", "resume: item 0: no '@' between topic and position"),
        ("a@b:1,b@b:1,c@b:1", "resume: more than 2 topics"),
        (
            "news@XY:1",
            "resume: item 0: the epoch has a byte other than 0-9, a-f and '-'",
        ),
    ] {
        let mut client = WsClient::raw_tcp(&server.tcp());
        let request = request(&server.tcp(), &cookies.header, Some(ORIGIN), "").replacen(
            "GET /ws ",
            &format!("GET /ws?resume={value} "),
            1,
        );
        client.send_raw(request.as_bytes());
        let response = client.read_response();
        assert_eq!(response.status, 400);
        assert!(client.read_body(&response).contains(why), "{value}");
    }
}

#[test]
fn the_http_api_publish_answers_the_position_and_position_reads_it() {
    let server = crate::http_api::setup()
        .set("history.prefixes", r#"["news."]"#)
        .start();
    let ok = |method, params| crate::http_api::ok(&server, method, params);
    let first = ok(
        "publish",
        serde_json::json!({"topic": "news.a", "message": "one"}),
    );
    assert_eq!(first["offset"], 1);
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    let second = ok(
        "publish",
        serde_json::json!({"topic": "news.a", "message": "AP8=", "binary": true}),
    );
    assert_eq!(second, serde_json::json!({"epoch": epoch, "offset": 2}));
    assert_eq!(
        ok("position", serde_json::json!({"topic": "news.a"})),
        serde_json::json!({"epoch": epoch, "offset": 2})
    );
    // Without a history: publish answers as it always did.
    assert_eq!(
        ok(
            "publish",
            serde_json::json!({"topic": "chat", "message": "x"})
        ),
        serde_json::json!({})
    );
    assert_eq!(
        ok("position", serde_json::json!({"topic": "chat"})),
        serde_json::json!({"epoch": null, "offset": null})
    );
}

/// README's PHP block of the page-load pattern, run with php-cli and the PHP kit: the
/// position it reads, then the one its publication answers, reach a resuming client.
#[test]
fn readme_php_page_load_reads_a_position_and_publishes_at_the_next() {
    let Some(php) = php() else { return };
    let server = with_history(r#"["orders."]"#).start();
    let mut control = server.control();
    control.send_fields(b'x', &[b"orders.42", b"before"]);
    let folder = tempfile::tempdir().unwrap();
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/php/Wson.php");
    std::fs::copy(kit, folder.path().join("Wson.php")).unwrap();
    let conf = format!("{}/", server.path("").display());
    let conf = conf.replace("//", "/");
    let block = crate::readme::readme_php("history").replace("/path/to/wson/conf/", &conf);
    let script = format!(
        "<?php\n$user = 'alice';\n\
         function load_order($id) {{ return ['status' => 'new', 'epoch' => '', 'offset' => 0]; }}\n\
         function save_order($id, $order) {{ }}\n\
         {block}\necho json_encode([$position, $at]);\n"
    );
    std::fs::write(folder.path().join("page.php"), script).unwrap();
    let output = std::process::Command::new(php)
        .arg(folder.path().join("page.php"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let [position, at]: [Value; 2] = serde_json::from_str(&stdout).unwrap();
    assert_eq!(position["offset"], 1, "{stdout}");
    assert_eq!(
        (&at["epoch"], &at["offset"]),
        (&position["epoch"], &2.into())
    );
    // The page resumes from the position it was given: the publication after it, once.
    let epoch = position["epoch"].as_str().unwrap();
    let mut page = resuming(&server, &format!("orders.42@{epoch}:1")).unwrap();
    assert_eq!(
        positioned(&mut page, "orders.42", epoch),
        (2, r#"{"status":"shipped"}"#.to_owned())
    );
}

/// With `[cluster]` the history is in Redis, and only publications that went through it
/// have a position (tests/cluster_history.rs): a batch published on a node without history
/// reaches a node with it unpositioned, each publication after a `reload` notice
/// (`unpositioned`); the node without history ignores a resume.
#[test]
fn a_node_without_history_publishes_unpositioned_to_a_node_with_it() {
    use crate::cluster::{Redis, node, wait_nodes, wait_redis};
    let Some(redis) = Redis::start() else {
        return;
    };
    let plain = node(&redis, "a");
    let kept = Setup::new()
        .set("cluster.redis", &format!("{:?}", redis.url()))
        .set("cluster.node_id", "\"b\"")
        .set("history.prefixes", r#"["news."]"#)
        .start();
    for server in [&plain, &kept] {
        wait_redis(server, "up");
        wait_nodes(server, 2);
    }
    let mut on_kept = kept.control();
    on_kept.count(b'J', &[b"alice", b"news.n"]);
    let start = position(&mut on_kept, "news.n");
    let mut client = resuming(&kept, "").unwrap();
    // One write: node a batches the five into one message to node b.
    let mut batch = Vec::new();
    for n in 1..=5 {
        let message = format!("m{n}");
        let fields: [&[u8]; 2] = [b"news.n", message.as_bytes()];
        wson::control::fields::encode_fields_frame(b'x', &fields, &mut batch);
    }
    plain.control().send_raw(&batch);
    let value = notice(&mut client);
    assert_eq!(value["wson"], "reload", "{value}");
    assert_eq!(value["reason"], "unpositioned");
    for n in 1..=5 {
        assert_eq!(client.recv_text(), format!("m{n}"));
    }
    assert_eq!(
        position(&mut on_kept, "news.n"),
        start,
        "not in the history"
    );
    plain.control().count(b'J', &[b"alice", b"news.n"]);
    // Node a keeps no history: it does not read `resume`, and sends no notices.
    let value = format!("news.n@{}:2", start.epoch);
    let mut elsewhere = resuming(&plain, &value).unwrap();
    plain.control().send_fields(b'x', &[b"news.n", b"m6"]);
    assert_eq!(elsewhere.recv_text(), "m6");
}
