//! Hostile input and faults against the real server (issue 3, part 4).
//!
//! Each test attacks one way, then checks that the server still serves a healthy client
//! (a fresh handshake and a broadcast pushed through the control socket), that its open
//! file descriptors return to what they were before the attack, and, where memory is at
//! stake, that its RSS stayed within `RSS_MARGIN_KIB` of that baseline. The margin is a
//! memory bound, not a timing one: allocator noise is well under it, while a buffer that
//! follows a hostile length or count is far over it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wson::ws::frame::{self, OpCode};

use crate::common::*;

/// How much the server's RSS may grow over a test.
const RSS_MARGIN_KIB: u64 = 8 * 1024;
/// How much it may grow over 3000 short connections, after a warm-up round.
const CHURN_RSS_MARGIN_KIB: u64 = 2 * 1024;
/// The mask every hand-built client frame uses (any key will do).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What the server held before the attack.
struct Baseline {
    fds: usize,
    rss_kib: u64,
}

impl Baseline {
    fn take(server: &Server) -> Baseline {
        Baseline {
            fds: server.open_fds(),
            rss_kib: server.rss_kib(),
        }
    }

    /// The server serves a healthy client, then (once every test socket is gone) holds
    /// as many descriptors as before and no more than `RSS_MARGIN_KIB` of extra memory.
    fn assert_recovered(&self, server: &Server) {
        assert_serving(server, "after the attack");
        eventually(&format!("open fds back to {}", self.fds), || {
            server.open_fds() == self.fds
        });
        let rss_kib = server.rss_kib();
        assert!(
            rss_kib <= self.rss_kib + RSS_MARGIN_KIB,
            "RSS grew from {} KiB to {rss_kib} KiB",
            self.rss_kib
        );
    }
}

/// A fresh client completes its handshake and receives a broadcast.
fn assert_serving(server: &Server, note: &str) {
    let mut client = server.client();
    let mut control = server.control();
    let message = format!("still serving {note}");
    control.send(b'b', message.as_bytes());
    assert_eq!(client.recv_text(), message);
}

fn status_number(server: &Server, key: &str) -> u64 {
    server.control().status()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("status has no number {key:?}"))
}

/// A client upgraded over TCP, and a second handle on its socket for a writer thread.
fn upgraded_with_writer(server: &Server, user: &str) -> (WsClient, TcpStream) {
    let stream = TcpStream::connect(server.tcp()).unwrap();
    stream.set_nodelay(true).unwrap();
    let writer = stream.try_clone().unwrap();
    let mut client = WsClient::over(Box::new(stream));
    let cookies = Cookies::fresh(user);
    client
        .upgrade(&request(&server.tcp(), &cookies.header, Some(ORIGIN), ""))
        .unwrap();
    (client, writer)
}

/// Writes `chunk` again and again until a write fails (the server closed the socket) or
/// `cap` bytes went out. `Ok(total)` means the server never refused anything.
fn write_until_refused(
    mut stream: TcpStream,
    chunk: Vec<u8>,
    cap: usize,
) -> JoinHandle<io::Result<usize>> {
    stream.set_write_timeout(Some(WAIT)).unwrap();
    std::thread::spawn(move || {
        let mut total = 0;
        while total < cap {
            stream.write_all(&chunk)?;
            total += chunk.len();
        }
        Ok(total)
    })
}

/// The writer stopped because the server closed the connection under it, not because it
/// reached its cap or timed out on a server that stopped reading.
fn assert_refused(writer: JoinHandle<io::Result<usize>>) {
    match writer.join().unwrap() {
        Ok(total) => panic!("the server took all {total} bytes without closing"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "the writer stalled for {WAIT:?} instead of being cut off: {e}"
        ),
    }
}

/// True once the server has closed `stream` (EOF or reset); false while it is open.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn count_in_log(server: &Server, needle: &str) -> usize {
    server.log_text().matches(needle).count()
}

/// A client frame header declaring a 64-bit payload length, mask included.
fn header_with_length(len: u64) -> Vec<u8> {
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&MASK);
    header
}

/// One text message of `count` one-byte frames ("a" each), all masked.
fn one_byte_fragments(count: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(count * 7);
    for index in 0..count {
        let opcode = if index == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        bytes.extend(frame::encode_masked_frame(
            index + 1 == count,
            opcode,
            b"a",
            MASK,
        ));
    }
    bytes
}

#[test]
fn slowloris_and_idle_handshakes_are_dropped_at_handshake_timeout() {
    let server = Setup::new().set("handshake_timeout", "1").start();
    let baseline = Baseline::take(&server);
    let request = request(
        &server.tcp(),
        &Cookies::fresh("slow").header,
        Some(ORIGIN),
        "",
    );
    let request = request.as_bytes();
    let mut slow: Vec<(TcpStream, usize, bool)> = (0..20)
        .map(|_| {
            let stream = TcpStream::connect(server.tcp()).unwrap();
            stream.set_nodelay(true).unwrap();
            stream.set_nonblocking(true).unwrap();
            (stream, 0, false)
        })
        .collect();
    let mut idle: Vec<WsClient> = (0..20).map(|_| WsClient::raw_tcp(&server.tcp())).collect();

    // One byte per socket every 200 ms, for as long as the server keeps the socket: the
    // deadline counts from the connection, so activity must not extend it. Bounded by
    // WAIT, i.e. at most 75 bytes of a request several times longer: it never completes.
    let deadline = Instant::now() + WAIT;
    let mut served_meanwhile = false;
    while slow.iter().any(|(_, _, closed)| !closed) {
        assert!(
            Instant::now() < deadline,
            "slowloris sockets still open after {WAIT:?}"
        );
        for (stream, sent, closed) in &mut slow {
            if *closed || closed_by_server(stream) {
                *closed = true;
                continue;
            }
            match stream.write(&request[*sent..*sent + 1]) {
                Ok(_) => *sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => *closed = true,
            }
        }
        if !served_meanwhile {
            assert_serving(&server, "during the slowloris");
            served_meanwhile = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for client in &mut idle {
        assert_eq!(client.end_within(WAIT), End::Closed);
    }
    eventually("40 handshake timeouts logged", || {
        count_in_log(&server, "reason=\"handshake timeout\"") == 40
    });
    drop(idle);
    baseline.assert_recovered(&server);
}

#[test]
fn endless_handshake_headers_get_431_and_close() {
    let server = Setup::new().set("max_handshake_size", "1024").start();
    let baseline = Baseline::take(&server);
    let stream = TcpStream::connect(server.tcp()).unwrap();
    stream
        .try_clone()
        .unwrap()
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    // Header lines keep coming until the server cuts the connection (64 MiB at most,
    // far more than socket buffers hold).
    let line = format!("X-Padding: {}\r\n", "a".repeat(100)).into_bytes();
    let writer = write_until_refused(stream.try_clone().unwrap(), line, 64 << 20);
    let mut client = WsClient::over(Box::new(stream));
    assert_eq!(client.read_response().status, 431);
    assert_eq!(client.end_within(WAIT), End::Closed);
    assert_refused(writer);
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn frame_length_2_pow_62_is_1009_without_allocating() {
    let server = Setup::new().start();
    let baseline = Baseline::take(&server);
    let mut client = server.client();
    // RFC 6455 §5.2 allows 2^62 (its top bit is clear); it is refused as over
    // max_message_size from the header, whatever payload starts to follow.
    client.send_raw(&header_with_length(1 << 62));
    client.send_raw(&[0u8; 4096]);
    client.expect_close(1009);
    client.expect_end();
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn frame_length_2_pow_63_is_1002() {
    let server = Setup::new().start();
    let baseline = Baseline::take(&server);
    let mut client = server.client();
    // RFC 6455 §5.2: "the most significant bit MUST be 0".
    client.send_raw(&header_with_length(1 << 63));
    client.expect_close(1002);
    client.expect_end();
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn frame_header_cut_mid_way_is_dropped_by_keepalive() {
    let server = Setup::new().set("ping_interval", "1").start();
    let baseline = Baseline::take(&server);
    let mut client = server.client();
    // Five bytes of a fourteen-byte header, then silence.
    client.send_raw(&header_with_length(1 << 20)[..5]);
    assert_serving(&server, "while a header hangs");
    // The server pings after a silent ping_interval; no pong comes, so it drops the client.
    let mut pinged = false;
    while let Some(frame) = client.try_recv() {
        pinged |= frame.opcode == OpCode::Ping;
    }
    assert!(pinged, "dropped without a keepalive ping");
    eventually("keepalive timeout logged", || {
        count_in_log(&server, "reason=\"keepalive timeout\"") == 1
    });
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn ten_thousand_one_byte_fragments_echo_as_one_message() {
    let server = Setup::new().echo().start();
    let baseline = Baseline::take(&server);
    let mut client = server.client();
    client.send_raw(&one_byte_fragments(10_000));
    let echo = client.recv_data();
    assert!(echo.fin);
    assert_eq!(echo.opcode, OpCode::Text);
    assert_eq!(echo.payload, vec![b'a'; 10_000]);
    // One message, not ten thousand: the next thing back is the answer to this ping.
    client.send(true, OpCode::Ping, b"after");
    let pong = client.recv();
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (OpCode::Pong, &b"after"[..])
    );
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn ten_thousand_one_byte_fragments_over_max_message_size_is_1009() {
    let server = Setup::new().echo().set("max_message_size", "4096").start();
    let baseline = Baseline::take(&server);
    let mut client = server.client();
    client.send_raw(&one_byte_fragments(10_000));
    client.expect_close(1009);
    client.expect_end();
    drop(client);
    baseline.assert_recovered(&server);
}

#[test]
fn ping_flood_from_a_client_that_never_reads_is_dropped_as_slow_consumer() {
    let server = Setup::new()
        .set("max_control_frame", "1024")
        .set("max_outbound_buffer", "65536")
        .start();
    let baseline = Baseline::take(&server);
    let mut healthy = server.client();
    let (flooder, writer) = upgraded_with_writer(&server, "flooder");
    let ping = frame::encode_masked_frame(true, OpCode::Ping, &[b'p'; 125], MASK);
    let flood: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let writer = write_until_refused(writer, flood, 256 << 20);
    assert_serving(&server, "during the ping flood");
    eventually("the flooder dropped as a slow consumer", || {
        status_number(&server, "slow_consumers_dropped") == 1
    });
    assert_refused(writer);
    let mut control = server.control();
    control.send(b'b', b"after the flood");
    assert_eq!(healthy.recv_text(), "still serving during the ping flood");
    assert_eq!(healthy.recv_text(), "after the flood");
    drop((healthy, flooder, control));
    baseline.assert_recovered(&server);
}

#[test]
fn client_that_never_reads_megabytes_of_broadcasts_is_dropped_and_a_reader_gets_all_in_order() {
    const MESSAGE_SIZE: usize = 32 * 1024;
    // Well under max_outbound_buffer: the reader catches up after each batch, so only a
    // client that does not read can fall a whole buffer behind.
    const BATCH: u64 = 8;
    let server = Setup::new()
        .set("max_control_frame", "65536")
        .set("max_outbound_buffer", "1048576")
        .start();
    let baseline = Baseline::take(&server);
    let (never_reads, _) = upgraded_with_writer(&server, "sleeper");
    let mut reader = server.client();
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&received);
    // Checks every message in order, until the text message "end".
    let reader = std::thread::spawn(move || {
        loop {
            let frame = reader.recv_data();
            if frame.opcode == OpCode::Text && frame.payload == b"end" {
                return;
            }
            let seq = progress.load(Ordering::SeqCst);
            assert_eq!(frame.opcode, OpCode::Binary);
            assert_eq!(frame.payload.len(), MESSAGE_SIZE);
            let (number, filler) = frame.payload.split_at(8);
            let number = u64::from_be_bytes(number.try_into().unwrap());
            assert_eq!(number, seq, "messages out of order");
            assert!(
                filler.iter().all(|&b| b == seq.to_be_bytes()[7]),
                "message {seq} corrupted"
            );
            progress.store(seq + 1, Ordering::SeqCst);
        }
    });
    let message = |seq: u64| {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.resize(MESSAGE_SIZE, seq.to_be_bytes()[7]);
        payload
    };
    let mut control = server.control();
    let mut sent = 0;
    let mut batches_after_drop = None;
    while batches_after_drop != Some(0) {
        // At most 96 MiB, far more than the sleeper's socket buffers and queue hold.
        assert!(sent < 3072, "the sleeper was never dropped");
        for _ in 0..BATCH {
            control.send(b'B', &message(sent));
            sent += 1;
        }
        eventually("the reader caught up", || {
            received.load(Ordering::SeqCst) == sent || reader.is_finished()
        });
        assert!(!reader.is_finished(), "the reader stopped");
        batches_after_drop = match batches_after_drop {
            Some(left) => Some(left - 1),
            None if control.status()["slow_consumers_dropped"] == 1 => Some(4),
            None => None,
        };
    }
    control.send(b'b', b"end");
    reader
        .join()
        .expect("the reader got every message in order");
    let status = control.status();
    assert_eq!(
        status["slow_consumers_dropped"], 1,
        "only the sleeper is dropped"
    );
    eventually("one slow consumer logged", || {
        count_in_log(&server, "reason=\"slow consumer") == 1
    });
    drop((control, never_reads));
    baseline.assert_recovered(&server);
}

#[test]
fn garbage_and_huge_lengths_on_the_control_socket_get_0e_and_close() {
    let server = Setup::new().set("max_control_frame", "65536").start();
    let baseline = Baseline::take(&server);
    let mut random = Vec::with_capacity(4096);
    let mut state: u32 = 0x9e37_79b9;
    for _ in 0..4096 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        random.push(state.to_be_bytes()[0]);
    }
    // A digit first could start a valid frame; anything else is refused at byte 0.
    random[0] = b'\xfe';
    let attacks: [(&str, &[u8]); 5] = [
        ("20 nines", b"99999999999999999999b"),
        ("24 digits", b"123456789012345678901234b"),
        ("max_control_frame + 1", b"65537bHello"),
        ("64-bit overflow", b"18446744073709551616b"),
        ("random bytes", &random),
    ];
    for (what, bytes) in attacks {
        let mut control = server.control();
        control.send_raw(bytes);
        assert_eq!(control.reply_text(), "0E", "{what}");
        assert!(
            control.try_reply().is_none(),
            "{what}: connection left open"
        );
        assert_serving(&server, what);
    }
    // A length, then EOF: nothing to answer, the connection just goes.
    let mut control = server.control();
    control.send_raw(b"100bcut short");
    control.stream.shutdown_write();
    assert!(control.try_reply().is_none(), "truncated frame got a reply");
    drop(control);
    eventually("only the asking control connection left", || {
        status_number(&server, "control_connections") == 1
    });
    baseline.assert_recovered(&server);
}

#[test]
fn half_a_request_then_eof_in_one_burst_is_closed_at_once() {
    // The handshake timeout is far away: only the EOF can end these connections.
    let server = Setup::new().set("handshake_timeout", "60").start();
    let baseline = Baseline::take(&server);
    let request = request(
        &server.tcp(),
        &Cookies::fresh("gone").header,
        Some(ORIGIN),
        "",
    );
    let half = &request.as_bytes()[..request.len() / 2];
    for _ in 0..10 {
        let mut client = WsClient::raw_tcp(&server.tcp());
        client.send_raw(half);
        client.stream.shutdown_write();
        assert_eq!(client.end_within(WAIT), End::Closed);
        let mut client = WsClient::raw_unix(&server.unix());
        client.send_raw(half);
        client.stream.shutdown_write();
        assert_eq!(client.end_within(WAIT), End::Closed);
    }
    baseline.assert_recovered(&server);
}

#[test]
fn control_client_gone_mid_fragmented_send_closes_the_locked_client_with_1011() {
    let server = Setup::new().start();
    let baseline = Baseline::take(&server);
    // One backend leaves between fragments, in the middle of a frame; another right
    // after its lock.
    let mid_cookies = Cookies::fresh("mid");
    let mut mid = WsClient::connect_tcp(&server.tcp(), &mid_cookies).unwrap();
    let locked_cookies = Cookies::fresh("locked");
    let mut locked = WsClient::connect_tcp(&server.tcp(), &locked_cookies).unwrap();

    let mut source = server.control();
    source.send(b'l', mid_cookies.token.as_bytes());
    assert_eq!(
        source.reply_text(),
        format!("32A{}", mid_cookies.token_str())
    );
    source.send(b'f', b"Hello");
    assert_eq!(source.reply_text(), "0a");
    source.send(b'i', b", ");
    assert_eq!(source.reply_text(), "0a");
    source.send_raw(b"6sWor");
    let mut lock_only = server.control();
    lock_only.send(b'l', locked_cookies.token.as_bytes());
    assert_eq!(
        lock_only.reply_text(),
        format!("32A{}", locked_cookies.token_str())
    );
    drop(source);
    drop(lock_only);

    let first = mid.recv();
    assert_eq!((first.fin, first.opcode), (false, OpCode::Text));
    assert_eq!(first.payload, b"Hello");
    let middle = mid.recv();
    assert_eq!((middle.fin, middle.opcode), (false, OpCode::Continuation));
    assert_eq!(middle.payload, b", ");
    for client in [&mut mid, &mut locked] {
        let close = client.expect_close(1011);
        assert_eq!(close.close_reason(), "framesource lost");
        client.send_close(1011, "");
        client.expect_end();
    }
    drop((mid, locked));
    baseline.assert_recovered(&server);
}

#[test]
fn thousands_of_connects_and_disconnects_leak_no_fds_or_memory() {
    let server = Setup::new().start();
    let fds = server.open_fds();
    let tcp = server.tcp();
    let unix = server.unix();
    let run = |range: std::ops::Range<usize>| {
        for i in range {
            let cookies = Cookies::fresh("churn");
            let on_tcp = (i / 3) % 2 == 0;
            let request = request(&tcp, &cookies.header, Some(ORIGIN), "");
            match (i % 3, on_tcp) {
                // A completed handshake, then the client vanishes without a Close.
                (0, true) => drop(WsClient::connect_tcp(&tcp, &cookies).unwrap()),
                (0, false) => drop(WsClient::connect_unix(&unix, &cookies).unwrap()),
                // Half a request, then gone.
                (1, true) => {
                    let mut stream = TcpStream::connect(&tcp).unwrap();
                    stream
                        .write_all(&request.as_bytes()[..request.len() / 2])
                        .unwrap();
                }
                (1, false) => {
                    let mut stream = UnixStream::connect(&unix).unwrap();
                    stream
                        .write_all(&request.as_bytes()[..request.len() / 2])
                        .unwrap();
                }
                // Connected and closed at once.
                (_, true) => drop(TcpStream::connect(&tcp).unwrap()),
                (_, false) => drop(UnixStream::connect(&unix).unwrap()),
            }
        }
    };
    // A first round warms the allocator up; the next 3000 must not grow memory.
    run(0..300);
    eventually("warm-up connections gone", || server.open_fds() == fds);
    let baseline = Baseline::take(&server);
    run(300..3300);
    eventually(
        &format!("open fds back to {fds} after 3000 connections"),
        || server.open_fds() == fds,
    );
    assert_eq!(status_number(&server, "connections"), 0);
    // Tighter than RSS_MARGIN_KIB: the connections came and went one at a time, so
    // nothing but a leak can hold memory after them.
    let rss_kib = server.rss_kib();
    assert!(
        rss_kib <= baseline.rss_kib + CHURN_RSS_MARGIN_KIB,
        "RSS grew from {} KiB to {rss_kib} KiB over 3000 connections",
        baseline.rss_kib
    );
    baseline.assert_recovered(&server);
}

/// utime + stime of `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn out_of_file_descriptors_the_server_keeps_running_without_spinning_and_recovers() {
    let mut server = Setup::new().set("handshake_timeout", "60").start();
    let baseline = Baseline::take(&server);
    // Lower RLIMIT_NOFILE of the running server (util-linux `prlimit`, part of every
    // Debian install).
    let limited = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", server.pid()))
        .arg("--nofile=64:64")
        .status()
        .expect("run prlimit (util-linux)");
    assert!(limited.success(), "prlimit failed: {limited}");

    // More connections than descriptors: the rest wait in the listen backlog.
    let mut hogs: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.tcp()).unwrap())
        .collect();
    server.wait_for_log("accept failed");

    // Saturated, it must wait for descriptors, not spin on the failing accept: over two
    // seconds (time is allowed to pass here) it uses far less than a quarter of a CPU.
    let ticks_per_second = clock_ticks_per_second();
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used * 2 < ticks_per_second,
        "the server burned {used} ticks (of {ticks_per_second}/s) in 2 s while out of fds"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );

    // A client arriving now waits in the backlog; freeing descriptors lets it in.
    let mut waiting = WsClient::raw_tcp(&server.tcp());
    waiting.send_raw(
        request(
            &server.tcp(),
            &Cookies::fresh("late").header,
            Some(ORIGIN),
            "",
        )
        .as_bytes(),
    );
    hogs.truncate(30);
    let response = waiting.read_response();
    assert_eq!(response.status, 101, "{}", response.raw);
    assert_serving(&server, "once descriptors are free");
    drop(hogs);
    drop(waiting);
    baseline.assert_recovered(&server);
}
