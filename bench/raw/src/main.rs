//! The raw baseline of the benchmark: the practical limit of the kernel path.
//!
//! A single-threaded mio loop that accepts plain TCP sockets and writes pre-encoded
//! WebSocket frames to them: no HTTP upgrade, no masking, no auth, no UTF-8 check. A
//! client says hello with its 32-byte token and `\r\n\r\n` and is answered
//! `RAW 101\r\n\r\n`; after that, whatever it sends is echoed back verbatim.
//!
//! The control port speaks wson's framing (`{len}b{msg}`, `{len}d{token}{msg}`), so the
//! harness triggers every server the same way. A broadcast is encoded once and queued as a
//! shared `Rc<[u8]>` for every client; every client touched during a turn is flushed once,
//! with one `writev`, at the end of the turn.
//!
//! Usage: `raw-server [--ws ADDR] [--control ADDR]` (both default to `127.0.0.1:0`); prints
//! `listening ws=ADDR control=ADDR` on stdout once both are bound.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use wson::control::codec;
use wson::decoded::Decoded;
use wson::ws::frame::{self, OpCode};

const WS_LISTENER: Token = Token(0);
const CONTROL_LISTENER: Token = Token(1);
const FIRST_CONN: usize = 2;
const HELLO_LEN: usize = 36;
const HELLO_REPLY: &[u8] = b"RAW 101\r\n\r\n";
const MAX_IOVECS: usize = 64;
const MAX_CONTROL_FRAME: usize = 16 << 20;

/// A client socket and its queue of shared frames.
struct Client {
    stream: TcpStream,
    hello: Option<Vec<u8>>,
    token: Option<[u8; 32]>,
    out: VecDeque<Rc<[u8]>>,
    head_written: usize,
    writable: bool,
    dirty: bool,
}

enum Conn {
    Client(Client),
    Control { stream: TcpStream, buf: Vec<u8> },
}

struct Server {
    poll: Poll,
    ws: TcpListener,
    control: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_token: HashMap<[u8; 32], usize>,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("raw-server: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> io::Result<(SocketAddr, SocketAddr)> {
    let mut ws = "127.0.0.1:0".to_string();
    let mut control = "127.0.0.1:0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--ws" => &mut ws,
            "--control" => &mut control,
            _ => return Err(io::Error::other(format!("unknown argument {arg}"))),
        };
        *slot = args
            .next()
            .ok_or_else(|| io::Error::other(format!("{arg} needs a value")))?;
    }
    let parse = |text: &str| {
        text.parse::<SocketAddr>()
            .map_err(|e| io::Error::other(format!("{text}: {e}")))
    };
    Ok((parse(&ws)?, parse(&control)?))
}

fn run() -> io::Result<()> {
    let (ws_addr, control_addr) = parse_args()?;
    let poll = Poll::new()?;
    let mut ws = TcpListener::bind(ws_addr)?;
    let mut control = TcpListener::bind(control_addr)?;
    poll.registry()
        .register(&mut ws, WS_LISTENER, Interest::READABLE)?;
    poll.registry()
        .register(&mut control, CONTROL_LISTENER, Interest::READABLE)?;
    println!(
        "listening ws={} control={}",
        ws.local_addr()?,
        control.local_addr()?
    );
    io::stdout().flush()?;
    let mut server = Server {
        poll,
        ws,
        control,
        conns: Vec::new(),
        free: Vec::new(),
        by_token: HashMap::new(),
        dirty: Vec::new(),
        scratch: vec![0; 256 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    loop {
        match server.poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                WS_LISTENER => server.accept(false),
                CONTROL_LISTENER => server.accept(true),
                Token(n) => {
                    let index = n - FIRST_CONN;
                    if event.is_writable() {
                        if let Some(Some(Conn::Client(client))) = server.conns.get_mut(index) {
                            client.writable = true;
                        }
                        server.mark_dirty(index);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        server.read(index);
                    }
                }
            }
        }
        server.flush_dirty();
    }
}

impl Server {
    fn accept(&mut self, control: bool) {
        loop {
            let listener = if control { &self.control } else { &self.ws };
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("raw-server: accept: {e}");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let index = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let interest = if control {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            if self
                .poll
                .registry()
                .register(&mut stream, Token(index + FIRST_CONN), interest)
                .is_err()
            {
                self.free.push(index);
                continue;
            }
            self.conns[index] = Some(if control {
                Conn::Control {
                    stream,
                    buf: Vec::new(),
                }
            } else {
                Conn::Client(Client {
                    stream,
                    hello: Some(Vec::with_capacity(HELLO_LEN)),
                    token: None,
                    out: VecDeque::new(),
                    head_written: 0,
                    writable: true,
                    dirty: false,
                })
            });
        }
    }

    fn read(&mut self, index: usize) {
        let mut closed = false;
        let mut commands = Vec::new();
        match self.conns.get_mut(index) {
            Some(Some(Conn::Client(client))) => loop {
                match client.stream.read(&mut self.scratch) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        let bytes = &self.scratch[..n];
                        if let Some(hello) = &mut client.hello {
                            let take = (HELLO_LEN - hello.len()).min(n);
                            hello.extend_from_slice(&bytes[..take]);
                            if hello.len() == HELLO_LEN {
                                let mut token = [0u8; 32];
                                token.copy_from_slice(&hello[..32]);
                                self.by_token.insert(token, index);
                                client.token = Some(token);
                                client.hello = None;
                                client.out.push_back(Rc::from(HELLO_REPLY));
                            }
                            if take < n {
                                client.out.push_back(Rc::from(&bytes[take..]));
                            }
                        } else {
                            client.out.push_back(Rc::from(bytes));
                        }
                        if !client.dirty {
                            client.dirty = true;
                            self.dirty.push(index);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            },
            Some(Some(Conn::Control { stream, buf })) => {
                loop {
                    match stream.read(&mut self.scratch) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => buf.extend_from_slice(&self.scratch[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let mut used = 0;
                loop {
                    match codec::decode(&buf[used..], MAX_CONTROL_FRAME) {
                        Ok(Decoded::Done { item, len }) => {
                            commands.push((item.command, item.payload.to_vec()));
                            used += len;
                        }
                        Ok(Decoded::Incomplete) => break,
                        Err(e) => {
                            eprintln!("raw-server: control: {e}");
                            closed = true;
                            break;
                        }
                    }
                }
                buf.drain(..used);
            }
            _ => return,
        }
        for (command, payload) in commands {
            self.command(command, &payload);
        }
        if closed {
            self.close(index);
        }
    }

    fn command(&mut self, command: u8, payload: &[u8]) {
        match command {
            b'b' | b'B' => {
                let opcode = if command == b'b' {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                let bytes: Rc<[u8]> = Rc::from(frame::encode_frame(true, opcode, payload));
                for index in 0..self.conns.len() {
                    if let Some(Conn::Client(client)) = &mut self.conns[index]
                        && client.hello.is_none()
                    {
                        client.out.push_back(Rc::clone(&bytes));
                        if !client.dirty {
                            client.dirty = true;
                            self.dirty.push(index);
                        }
                    }
                }
            }
            b'd' | b'D' => {
                let Some((token, message)) = payload.split_first_chunk::<32>() else {
                    return;
                };
                let Some(&index) = self.by_token.get(token) else {
                    return;
                };
                let opcode = if command == b'd' {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                if let Some(Some(Conn::Client(client))) = self.conns.get_mut(index) {
                    client
                        .out
                        .push_back(Rc::from(frame::encode_frame(true, opcode, message)));
                    if !client.dirty {
                        client.dirty = true;
                        self.dirty.push(index);
                    }
                }
            }
            _ => {}
        }
    }

    fn mark_dirty(&mut self, index: usize) {
        if let Some(Some(Conn::Client(client))) = self.conns.get_mut(index)
            && !client.dirty
        {
            client.dirty = true;
            self.dirty.push(index);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            let failed = match self.conns.get_mut(index) {
                Some(Some(Conn::Client(client))) => {
                    client.dirty = false;
                    flush(client).is_err()
                }
                _ => false,
            };
            if failed {
                self.close(index);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn close(&mut self, index: usize) {
        if let Some(slot) = self.conns.get_mut(index)
            && let Some(conn) = slot.take()
        {
            if let Conn::Client(Client {
                token: Some(token), ..
            }) = &conn
                && self.by_token.get(token) == Some(&index)
            {
                self.by_token.remove(token);
            }
            self.free.push(index);
        }
    }
}

/// Writes as much of the queue as the socket takes, one `writev` per call.
fn flush(client: &mut Client) -> io::Result<()> {
    while client.writable && !client.out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, chunk) in client.out.iter().take(MAX_IOVECS).enumerate() {
            slices[count] = IoSlice::new(if i == 0 {
                &chunk[client.head_written..]
            } else {
                chunk
            });
            count += 1;
        }
        match client.stream.write_vectored(&slices[..count]) {
            Ok(mut written) => {
                while written > 0 {
                    let Some(head) = client.out.front() else {
                        break;
                    };
                    let left = head.len() - client.head_written;
                    if written >= left {
                        written -= left;
                        client.out.pop_front();
                        client.head_written = 0;
                    } else {
                        client.head_written += written;
                        written = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => client.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
