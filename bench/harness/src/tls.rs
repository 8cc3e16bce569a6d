//! What TLS costs wson (issue 14): `wsbench tls`. One wson with a `tcp://` and a `tls://`
//! WebSocket listener side by side (the same process, config and certificate), pinned to the
//! server core; the harness on the generator core.
//!
//! - **Handshakes**: `--handshakes K` complete connections per transport, `--concurrency C`
//!   at a time, each a TCP connect, (the TLS handshake,) the HTTP upgrade with valid cookies,
//!   a Close answered by the server's Close, and the server's end of the connection; the
//!   transports alternate for `--rounds R`. *cpu us/conn*: server CPU time over the phase / K.
//! - **Broadcast**: `--clients N` clients of one transport, `--broadcasts M` 100-byte text
//!   broadcasts on the control socket, one at a time (each reaches every client before the
//!   next is sent); *cpu us/deliv*: server CPU time over the M / (N x M). The transports
//!   take turns, each with fresh clients.
//! - **Memory**: *idle B/conn*: how much a fresh wson's RSS grew per client once N clients
//!   of one transport are connected and idle.
//!
//! The certificate is ECDSA P-256 from a CA made here with the openssl CLI (as certbot's
//! default key type); the clients are rustls with the ring provider, so TLS 1.3 with
//! X25519. Every ratio is TLS over plain TCP within one run.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use wson::auth::{self, Digest};

use crate::own_wson::OwnWson;
use crate::servers::cpu_ns;

const SECRET: &str = "wsbench-tls-secret-0123456789";
const MESSAGE_LEN: usize = 100;
/// A 100-byte text frame from the server: 2 header bytes (RFC 6455 §5.2, unmasked).
const FRAME_LEN: usize = MESSAGE_LEN + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

struct Options {
    wson: PathBuf,
    handshakes: usize,
    concurrency: usize,
    clients: usize,
    broadcasts: usize,
    rounds: usize,
    gen_core: usize,
    server_core: usize,
}

/// The wson under test and where it listens.
struct Wson {
    own: OwnWson,
    tcp: String,
    tls: String,
    control: String,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// A CA and a server certificate for localhost it signed: `ca.pem`, `chain.pem`, `key.pem`.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=wsbench CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca)?;
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "key.pem", "-out", "server.csr"]);
    openssl(dir, &csr)?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n")
        .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    )?;
    let mut chain = std::fs::read(dir.join("server.pem")).map_err(|e| e.to_string())?;
    chain.extend(std::fs::read(dir.join("ca.pem")).map_err(|e| e.to_string())?);
    std::fs::write(dir.join("chain.pem"), chain).map_err(|e| e.to_string())
}

fn start_wson(options: &Options) -> Result<Wson, String> {
    let config = format!(
        "servers = [\"tcp://127.0.0.1:0\", \"tls://127.0.0.1:0\"]\n\
         control = \"tcp://127.0.0.1:0\"\n\
         pid = \"wson.pid\"\n\
         secret = \"{SECRET}\"\n\
         origins = [\"*\"]\n\
         log_level = \"info\"\n\
         max_connections = 100000\n\
         ping_interval = 120\n\
         [tls]\n\
         cert = \"chain.pem\"\n\
         key = \"key.pem\"\n"
    );
    let own = OwnWson::start(
        &options.wson,
        options.server_core,
        "wsbench-tls",
        &config,
        make_certificates,
    )?;
    Ok(Wson {
        tcp: own.server("tcp")?,
        tls: own.server("tls")?,
        control: own.control_addr()?,
        own,
    })
}

fn client_config(dir: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = std::fs::read(dir.join("ca.pem")).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connected client, plain or TLS, blocking until the benchmark hands it to mio.
enum Client {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Client {
    fn connect(transport: Transport, addr: &str, tls: &Arc<ClientConfig>) -> io::Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        match transport {
            Transport::Tcp => Ok(Client::Tcp(tcp)),
            Transport::Tls => {
                let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
                let session =
                    ClientConnection::new(Arc::clone(tls), name).map_err(io::Error::other)?;
                Ok(Client::Tls(Box::new(rustls::StreamOwned::new(
                    session, tcp,
                ))))
            }
        }
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Client::Tcp(tcp) => tcp,
            Client::Tls(tls) => tls.as_mut(),
        }
    }

    /// Upgrades with fresh cookies; reads the 101.
    fn upgrade(&mut self, addr: &str, sequence: u64) -> io::Result<()> {
        // A token per connection (wson refuses a token already connected): the sequence
        // number in 6-bit digits, which `token_from_random` maps one to one.
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate().take(11) {
            *byte = ((sequence >> (6 * i)) & 63) as u8;
        }
        let token = auth::token_from_random(bytes);
        let cookies = auth::cookie_header(
            SECRET.as_bytes(),
            Digest::Md5,
            "bench",
            &token,
            auth::unix_now(),
        );
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: http://localhost\r\nCookie: {cookies}\r\n\r\n"
        );
        let stream = self.stream();
        stream.write_all(request.as_bytes())?;
        stream.flush()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        match head.starts_with(b"HTTP/1.1 101") {
            true => Ok(()),
            false => Err(io::Error::other(
                String::from_utf8_lossy(&head).into_owned(),
            )),
        }
    }

    /// Sends Close 1000, reads the server's Close and its end of the connection.
    fn close(mut self) -> io::Result<()> {
        let mask = [1u8, 2, 3, 4];
        let code = 1000u16.to_be_bytes();
        let frame = [
            0x88,
            0x82,
            mask[0],
            mask[1],
            mask[2],
            mask[3],
            code[0] ^ mask[0],
            code[1] ^ mask[1],
        ];
        let stream = self.stream();
        stream.write_all(&frame)?;
        stream.flush()?;
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// K complete connections over `transport`; the server's CPU nanoseconds they took.
fn handshakes(
    options: &Options,
    wson: &Wson,
    transport: Transport,
    tls: &Arc<ClientConfig>,
    sequence: &Arc<AtomicU64>,
) -> Result<u64, String> {
    let addr = match transport {
        Transport::Tcp => wson.tcp.clone(),
        Transport::Tls => wson.tls.clone(),
    };
    let before = cpu_ns(wson.own.pid).ok_or("no cpu figure")?;
    let per_thread = options.handshakes.div_ceil(options.concurrency);
    let threads: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (addr, tls, sequence) = (addr.clone(), Arc::clone(tls), Arc::clone(sequence));
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..per_thread {
                    let mut client = Client::connect(transport, &addr, &tls)?;
                    client.upgrade(&addr, sequence.fetch_add(1, Ordering::Relaxed))?;
                    client.close()?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a client thread panicked".to_owned())?
            .map_err(|e| format!("{} handshake: {e}", transport.name()))?;
    }
    let after = cpu_ns(wson.own.pid).ok_or("no cpu figure")?;
    Ok(after.saturating_sub(before) / (per_thread * options.concurrency) as u64)
}

/// A client read by mio: its stream and the bytes of frames it got.
struct Reader {
    stream: mio::net::TcpStream,
    tls: Option<ClientConnection>,
    received: usize,
}

impl Reader {
    /// Reads until the socket would block.
    fn drain(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match &mut self.tls {
                None => match self.stream.read(buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => self.received += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                },
                Some(session) => {
                    match session.read_tls(&mut self.stream) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) => return Err(e),
                    }
                    session.process_new_packets().map_err(io::Error::other)?;
                    loop {
                        match session.reader().read(buf) {
                            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                            Ok(n) => self.received += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
    }
}

/// N clients over `transport` get M broadcasts; the server's CPU nanoseconds per delivery.
fn broadcast(
    options: &Options,
    wson: &Wson,
    transport: Transport,
    tls: &Arc<ClientConfig>,
    sequence: &Arc<AtomicU64>,
) -> Result<f64, String> {
    let addr = match transport {
        Transport::Tcp => wson.tcp.clone(),
        Transport::Tls => wson.tls.clone(),
    };
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut readers = Vec::with_capacity(options.clients);
    for i in 0..options.clients {
        let mut client =
            Client::connect(transport, &addr, tls).map_err(|e| format!("connect: {e}"))?;
        client
            .upgrade(&addr, sequence.fetch_add(1, Ordering::Relaxed))
            .map_err(|e| format!("upgrade: {e}"))?;
        let (tcp, session) = match client {
            Client::Tcp(tcp) => (tcp, None),
            Client::Tls(tls) => {
                let rustls::StreamOwned { conn, sock } = *tls;
                (sock, Some(conn))
            }
        };
        tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = mio::net::TcpStream::from_std(tcp);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        readers.push(Reader {
            stream,
            tls: session,
            received: 0,
        });
    }
    let mut control = TcpStream::connect(&wson.control).map_err(|e| e.to_string())?;
    let message = "x".repeat(MESSAGE_LEN);
    let frame = format!("{MESSAGE_LEN}b{message}");
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = cpu_ns(wson.own.pid).ok_or("no cpu figure")?;
    // One broadcast at a time, each to every client before the next: pipelined ones would
    // be coalesced into one write per client, which hides the per-message cost.
    for sent in 1..=options.broadcasts {
        control
            .write_all(frame.as_bytes())
            .map_err(|e| e.to_string())?;
        let expected = FRAME_LEN * sent;
        let mut done = readers.iter().filter(|r| r.received >= expected).count();
        while done < readers.len() {
            if Instant::now() > deadline {
                return Err(format!(
                    "{done} of {} clients got broadcast {sent}",
                    readers.len()
                ));
            }
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .map_err(|e| e.to_string())?;
            for event in &events {
                let Some(reader) = readers.get_mut(event.token().0) else {
                    continue;
                };
                let had = reader.received >= expected;
                reader.drain(&mut buf).map_err(|e| e.to_string())?;
                if !had && reader.received >= expected {
                    done += 1;
                }
            }
        }
    }
    let after = cpu_ns(wson.own.pid).ok_or("no cpu figure")?;
    let deliveries = (options.clients * options.broadcasts) as f64;
    Ok(after.saturating_sub(before) as f64 / deliveries)
}

/// A fresh wson's RSS growth per idle client once N are connected over `transport` (a
/// server that served connections before keeps their freed memory, which would hide it).
fn idle_memory(options: &Options, transport: Transport) -> Result<f64, String> {
    let wson = start_wson(options)?;
    let tls = client_config(wson.own.dir())?;
    let addr = match transport {
        Transport::Tcp => wson.tcp.clone(),
        Transport::Tls => wson.tls.clone(),
    };
    let before = rss_bytes(wson.own.pid).ok_or("no rss figure")?;
    let mut clients = Vec::with_capacity(options.clients);
    for sequence in 0..options.clients as u64 {
        let mut client =
            Client::connect(transport, &addr, &tls).map_err(|e| format!("connect: {e}"))?;
        client
            .upgrade(&addr, sequence)
            .map_err(|e| format!("upgrade: {e}"))?;
        clients.push(client);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_bytes(wson.own.pid).ok_or("no rss figure")?;
    Ok(after.saturating_sub(before) as f64 / options.clients as f64)
}

/// VmRSS of `pid` in bytes.
fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn parse(args: &[String]) -> Result<Options, String> {
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        wson: bench.join("../target/release/wson"),
        handshakes: 2000,
        concurrency: 8,
        clients: 1000,
        broadcasts: 200,
        rounds: 3,
        gen_core: 1,
        server_core: 0,
    };
    crate::flags::each(args, |flag| {
        match flag.name {
            "--wson" => options.wson = flag.path(),
            "--handshakes" => options.handshakes = flag.number()?,
            "--concurrency" => options.concurrency = flag.number()?.max(1),
            "--clients" => options.clients = flag.number()?,
            "--broadcasts" => options.broadcasts = flag.number()?,
            "--rounds" => options.rounds = flag.number()?.max(1),
            "--gen-core" => options.gen_core = flag.number()?,
            "--server-core" => options.server_core = flag.number()?,
            _ => return Err(format!("unknown argument {}\n{}", flag.name, usage())),
        }
        Ok(())
    })?;
    Ok(options)
}

pub fn usage() -> &'static str {
    "wsbench tls [--handshakes K] [--concurrency C] [--clients N] [--broadcasts M]
               [--rounds R] [--wson BIN] [--gen-core C] [--server-core C]"
}

/// `wsbench tls`: prints a table and one JSON line.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    crate::prepare_process(options.gen_core)?;
    let wson = start_wson(&options)?;
    let tls = client_config(wson.own.dir())?;
    let sequence = Arc::new(AtomicU64::new(1));
    let mut handshake_us = [Vec::new(), Vec::new()];
    let mut delivery_us = [Vec::new(), Vec::new()];
    let mut idle_bytes = [Vec::new(), Vec::new()];
    for round in 0..options.rounds {
        // Alternating which goes first, so a drift of the machine favours neither.
        let order = match round % 2 {
            0 => [Transport::Tcp, Transport::Tls],
            _ => [Transport::Tls, Transport::Tcp],
        };
        for transport in order {
            let slot = usize::from(transport == Transport::Tls);
            let ns = handshakes(&options, &wson, transport, &tls, &sequence)?;
            handshake_us[slot].push(ns as f64 / 1000.0);
            let ns = broadcast(&options, &wson, transport, &tls, &sequence)?;
            let idle = idle_memory(&options, transport)?;
            delivery_us[slot].push(ns / 1000.0);
            idle_bytes[slot].push(idle);
            eprintln!(
                "wsbench tls: round {} {}: {:.1} us/conn, {:.3} us/deliv, {:.0} B/conn idle",
                round + 1,
                transport.name(),
                handshake_us[slot].last().copied().unwrap_or(0.0),
                delivery_us[slot].last().copied().unwrap_or(0.0),
                idle,
            );
        }
    }
    let [tcp_hs, tls_hs] = handshake_us.map(|mut v| crate::report::median(&mut v));
    let [tcp_dl, tls_dl] = delivery_us.map(|mut v| crate::report::median(&mut v));
    let [tcp_idle, tls_idle] = idle_bytes.map(|mut v| crate::report::median(&mut v));
    println!(
        "wson tls vs tcp, medians of {} rounds ({} connections at {} in flight; {} clients x {} broadcasts of {MESSAGE_LEN} B)",
        options.rounds,
        options.handshakes,
        options.concurrency,
        options.clients,
        options.broadcasts
    );
    println!("| workload | tcp:// | tls:// | tls/tcp |");
    println!("|---|---:|---:|---:|");
    println!(
        "| connect + upgrade + close, server cpu us/conn | {tcp_hs:.1} | {tls_hs:.1} | {:.2} |",
        tls_hs / tcp_hs
    );
    println!(
        "| broadcast, server cpu us/deliv | {tcp_dl:.3} | {tls_dl:.3} | {:.2} |",
        tls_dl / tcp_dl
    );
    println!(
        "| idle connection, server RSS B/conn | {tcp_idle:.0} | {tls_idle:.0} | {:.2} |",
        tls_idle / tcp_idle
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "tls",
            "rounds": options.rounds,
            "handshakes": options.handshakes,
            "concurrency": options.concurrency,
            "clients": options.clients,
            "broadcasts": options.broadcasts,
            "cpu_us_per_conn": {"tcp": tcp_hs, "tls": tls_hs},
            "cpu_us_per_delivery": {"tcp": tcp_dl, "tls": tls_dl},
            "idle_bytes_per_conn": {"tcp": tcp_idle, "tls": tls_idle},
        })
    );
    Ok(())
}
