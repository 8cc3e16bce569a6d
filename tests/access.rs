//! `[access]`: blocked ranges, trusted proxies and per-address limits against the real
//! daemon. Clients bind loopback source addresses (127.0.0.2, 127.0.0.3) before connecting,
//! so one machine plays several peers.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;

use nix::sys::signal::Signal;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, socket,
};

use wson::auth::Digest;

use crate::common::*;

/// A TCP connection to `server` (`IP:PORT`) from `source` (an address of this host).
fn tcp_from(source: &str, server: &str) -> TcpStream {
    let server: SocketAddr = server.parse().unwrap();
    let source: SocketAddr = format!("{source}:0")
        .replace("::1:0", "[::1]:0")
        .parse()
        .unwrap();
    let family = match server {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    match (source, server) {
        (SocketAddr::V4(source), SocketAddr::V4(server)) => {
            bind(fd.as_raw_fd(), &SockaddrIn::from(source)).unwrap();
            connect(fd.as_raw_fd(), &SockaddrIn::from(server)).unwrap();
        }
        (SocketAddr::V6(source), SocketAddr::V6(server)) => {
            bind(fd.as_raw_fd(), &SockaddrIn6::from(source)).unwrap();
            connect(fd.as_raw_fd(), &SockaddrIn6::from(server)).unwrap();
        }
        _ => panic!("mixed address families"),
    }
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true).unwrap();
    stream
}

/// Upgrades from `source` with `cookies`; `Err` carries the refusal.
fn upgrade_from(source: &str, server: &str, cookies: &Cookies) -> Result<WsClient, HttpResponse> {
    let mut client = WsClient::over(Box::new(tcp_from(source, server)));
    client.upgrade(&request(server, &cookies.header, Some(ORIGIN), ""))?;
    Ok(client)
}

/// True when the server closes the connection from `source` without sending a byte,
/// whatever the client sends.
fn closed_without_a_word(source: &str, server: &str) -> bool {
    let mut stream = tcp_from(source, server);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // The request may meet a closed socket; only what comes back matters.
    let _ = std::io::Write::write_all(
        &mut stream,
        request(server, &Cookies::fresh("x").header, Some(ORIGIN), "").as_bytes(),
    );
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => received.is_empty(),
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// The refusal an upgrade got; fails the test on a 101.
fn refusal(result: Result<WsClient, HttpResponse>) -> HttpResponse {
    match result {
        Ok(_) => panic!("upgraded, expected a refusal"),
        Err(response) => response,
    }
}

fn retry_after(response: &HttpResponse) -> u32 {
    response
        .header("Retry-After")
        .expect("a Retry-After header")
        .parse()
        .unwrap()
}

#[test]
fn a_blocked_range_is_closed_at_once_while_another_address_is_served() {
    let mut server = Setup::new()
        .set(
            "access.blocked",
            r#"["127.0.0.2/32", "::ffff:10.0.0.0/104"]"#,
        )
        .start();
    let tcp = server.tcp();
    assert!(closed_without_a_word("127.0.0.2", &tcp));
    upgrade_from("127.0.0.3", &tcp, &Cookies::fresh("carol")).unwrap();
    server.wait_for_log("reason=\"blocked address\"");
    let status = server.control().status();
    assert_eq!(status["refused_blocked"], 1);
}

#[test]
fn sighup_reload_changes_the_blocked_list() {
    let setup = Setup::new();
    let (dir, path) = setup.write();
    let mut server = Server::start_in(dir, path.clone(), setup.toml(), &[]);
    let tcp = server.tcp();
    let mut before = upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("before")).unwrap();

    fs::write(
        &path,
        setup.set("access.blocked", r#"["127.0.0.2"]"#).toml(),
    )
    .unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_for_log("configuration reloaded");
    assert!(closed_without_a_word("127.0.0.2", &tcp));
    upgrade_from("127.0.0.3", &tcp, &Cookies::fresh("other")).unwrap();
    // The block applies to new connections; the one already open stays.
    server.control().send(b'b', b"still here");
    assert_eq!(before.recv_text(), "still here");

    fs::write(&path, Setup::new().toml()).unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_for_log("configuration reloaded");
    upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("again")).unwrap();
}

#[test]
fn the_connection_over_the_per_address_limit_gets_429_with_retry_after() {
    let server = Setup::new()
        .set("access.max_connections_per_address", "2")
        .set("ping_interval", "7")
        .start();
    let tcp = server.tcp();
    let _first = upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("a1")).unwrap();
    let second = upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("a2")).unwrap();
    let refused = refusal(upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("a3")));
    assert_eq!(refused.status, 429);
    // Until a dead connection is found: two ping intervals.
    assert_eq!(retry_after(&refused), 14);
    let _other = upgrade_from("127.0.0.3", &tcp, &Cookies::fresh("b1")).unwrap();

    // A closed connection gives its place back; the server's close is what says so.
    let mut second = second;
    second.send_close(1000, "");
    second.expect_end();
    let mut control = server.control();
    upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("a4")).unwrap();
    let status = control.status();
    assert_eq!(status["refused_rate_limited"], 1);
    assert_eq!(status["tracked_addresses"], 2);
}

#[test]
fn failed_logins_over_the_limit_refuse_good_cookies_too() {
    let server = Setup::new()
        .set("access.failed_logins_per_minute", "2")
        .start();
    let tcp = server.tcp();
    let forged = Cookies::signed("mallory", now(), b"not-the-secret-0123456789", Digest::Md5);
    for _ in 0..2 {
        let refused = refusal(upgrade_from("127.0.0.2", &tcp, &forged));
        assert_eq!(refused.status, 403);
    }
    let refused = refusal(upgrade_from("127.0.0.2", &tcp, &Cookies::fresh("alice")));
    assert_eq!(refused.status, 429);
    let seconds = retry_after(&refused);
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    upgrade_from("127.0.0.3", &tcp, &Cookies::fresh("bob")).unwrap();
}

#[test]
fn handshakes_over_the_rate_get_429_and_other_addresses_do_not() {
    let server = Setup::new()
        .set("access.handshakes_per_second", "3")
        .start();
    let tcp = server.tcp();
    // More than three attempts fall in one second unless each takes a third of a second;
    // the bound only keeps a broken server from looping forever.
    let mut refused = None;
    for attempt in 0..200 {
        match upgrade_from("127.0.0.2", &tcp, &Cookies::fresh(&format!("u{attempt}"))) {
            Ok(_) => {}
            Err(response) => {
                refused = Some(response);
                break;
            }
        }
    }
    let refused = refused.expect("a 429 within 200 attempts");
    assert_eq!(refused.status, 429);
    assert_eq!(retry_after(&refused), 1);
    upgrade_from("127.0.0.3", &tcp, &Cookies::fresh("other")).unwrap();
}

fn upgrade_unix(server: &Server, extra: &str) -> Result<WsClient, HttpResponse> {
    let mut client = WsClient::raw_unix(&server.unix());
    let cookies = Cookies::fresh("proxied");
    client.upgrade(&request("localhost", &cookies.header, Some(ORIGIN), extra))?;
    Ok(client)
}

#[test]
fn a_trusted_unix_proxy_forwarding_a_blocked_address_gets_403() {
    let server = Setup::new()
        .set("access.trusted_proxies", r#"["unix", "10.0.0.0/8"]"#)
        .set("access.blocked", r#"["203.0.113.0/24"]"#)
        .start();
    let refused = refusal(upgrade_unix(&server, "X-Forwarded-For: 203.0.113.9\r\n"));
    assert_eq!(refused.status, 403);
    // The right-most address that is not a trusted proxy is the client.
    let refused = refusal(upgrade_unix(
        &server,
        "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 203.0.113.9, 10.1.2.3\r\n",
    ));
    assert_eq!(refused.status, 403);
    // What the client wrote left of it changes nothing.
    upgrade_unix(&server, "X-Forwarded-For: 203.0.113.9, 198.51.100.1\r\n").unwrap();
    // Only the configured header is read.
    upgrade_unix(&server, "Forwarded: for=203.0.113.9\r\n").unwrap();
    // No header: the proxy's own connection, which a unix peer is never blocked for.
    upgrade_unix(&server, "").unwrap();
    assert_eq!(server.control().status()["refused_blocked"], 2);
}

#[test]
fn forwarded_for_a_quoted_ipv6_address_is_checked_and_limited() {
    let server = Setup::new()
        .set("access.trusted_proxies", r#"["unix"]"#)
        .set("access.forwarded_header", r#""forwarded""#)
        .set("access.blocked", r#"["2001:db8:bad::/48"]"#)
        .set("access.max_connections_per_address", "1")
        .start();
    let refused = refusal(upgrade_unix(
        &server,
        "Forwarded: for=\"[2001:db8:bad::1]:4711\";proto=https\r\n",
    ));
    assert_eq!(refused.status, 403);
    let _held = upgrade_unix(&server, "Forwarded: for=\"[2001:db8:1:2::1]\"\r\n").unwrap();
    // Another address of the same /64 is the same peer.
    let refused = refusal(upgrade_unix(
        &server,
        "Forwarded: for=\"[2001:db8:1:2::99]\"\r\n",
    ));
    assert_eq!(refused.status, 429);
    assert!(refused.header("Retry-After").is_some());
    upgrade_unix(&server, "Forwarded: for=\"[2001:db8:1:3::1]\"\r\n").unwrap();
}

#[test]
fn an_untrusted_unix_peer_is_never_blocked() {
    let server = Setup::new()
        .set("access.blocked", r#"["0.0.0.0/0", "::/0"]"#)
        .start();
    upgrade_unix(&server, "X-Forwarded-For: 203.0.113.9\r\n").unwrap();
    assert!(closed_without_a_word("127.0.0.3", &server.tcp()));
}

#[test]
fn ipv6_loopback_peers_are_blocked_by_an_ipv6_range() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let server = Setup::new()
        .set("servers", r#"["tcp://127.0.0.1:0", "tcp://[::1]:0"]"#)
        .set("access.blocked", r#"["::1/128"]"#)
        .start();
    let v6 = server
        .endpoints
        .iter()
        .find_map(|endpoint| endpoint.strip_prefix("tcp://["))
        .map(|rest| format!("[{rest}"))
        .expect("the [::1] listener");
    assert!(closed_without_a_word("::1", &v6));
    upgrade_from("127.0.0.1", &server.tcp(), &Cookies::fresh("v4")).unwrap();
}
