//! A tokio-tungstenite broadcast server: the Rust ecosystem's default way to write one,
//! as a benchmark peer of wson.
//!
//! One task per client, a `tokio::sync::broadcast` channel for broadcasts and an unbounded
//! mpsc channel per client for direct messages. A client task feeds every message already
//! waiting before it flushes, so a burst goes out in few writes. The handshake verifies
//! the same md5 cookies wson does (`wson::auth::authorize`), so the connect storm compares
//! like with like. Client messages are echoed back (the echo workload).
//!
//! The control port speaks wson's framing: `{len}b{msg}` broadcasts, `{len}d{token}{msg}`
//! sends to one client. Usage: `tt-server --secret S [--ws ADDR] [--control ADDR]`; prints
//! `listening ws=ADDR control=ADDR` on stdout once both are bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use wson::auth::{self, Digest};
use wson::control::codec;
use wson::decoded::Decoded;
use wson::token::Token;

const BROADCAST_CAPACITY: usize = 4096;
const TOKEN_LIFETIME: u64 = 86_400;
const MAX_CONTROL_FRAME: usize = 16 << 20;

struct Shared {
    broadcast: broadcast::Sender<Message>,
    direct: Mutex<HashMap<Token, mpsc::UnboundedSender<Message>>>,
    secret: Vec<u8>,
}

struct Args {
    ws: SocketAddr,
    control: SocketAddr,
    secret: String,
}

fn parse_args() -> Result<Args, String> {
    let mut ws = "127.0.0.1:0".to_string();
    let mut control = "127.0.0.1:0".to_string();
    let mut secret = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--ws" => ws = value,
            "--control" => control = value,
            "--secret" => secret = Some(value),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    let parse = |text: &str| {
        text.parse::<SocketAddr>()
            .map_err(|e| format!("{text}: {e}"))
    };
    Ok(Args {
        ws: parse(&ws)?,
        control: parse(&control)?,
        secret: secret.ok_or("--secret is required")?,
    })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tt-server: {e}");
            std::process::exit(2);
        }
    };
    let (ws, control) = match (
        TcpListener::bind(args.ws).await,
        TcpListener::bind(args.control).await,
    ) {
        (Ok(ws), Ok(control)) => (ws, control),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("tt-server: bind: {e}");
            std::process::exit(1);
        }
    };
    let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
    let shared = Arc::new(Shared {
        broadcast,
        direct: Mutex::new(HashMap::new()),
        secret: args.secret.into_bytes(),
    });
    match (ws.local_addr(), control.local_addr()) {
        (Ok(w), Ok(c)) => println!("listening ws={w} control={c}"),
        _ => std::process::exit(1),
    }
    let control_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            if let Ok((stream, _)) = control.accept().await {
                tokio::spawn(control_conn(stream, Arc::clone(&control_shared)));
            }
        }
    });
    loop {
        match ws.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, Arc::clone(&shared)));
            }
            Err(e) => eprintln!("tt-server: accept: {e}"),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn forbidden() -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

// The callback type is fixed by tungstenite; its error is an HTTP response by design.
#[allow(clippy::result_large_err)]
async fn client(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut token = None;
    let callback = |request: &Request, response: Response| {
        let cookies: Vec<&[u8]> = request
            .headers()
            .get_all("cookie")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let header = cookies.join(&b"; "[..]);
        match auth::authorize(
            &header,
            &shared.secret,
            Digest::Md5,
            TOKEN_LIFETIME,
            unix_now(),
        ) {
            Ok(identity) => {
                token = Some(identity.token);
                Ok(response)
            }
            Err(_) => Err(forbidden()),
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some(token) = token else { return };
    let (tx, mut direct) = mpsc::unbounded_channel();
    if let Ok(mut map) = shared.direct.lock() {
        map.insert(token, tx);
    }
    let mut broadcasts = shared.broadcast.subscribe();
    loop {
        let result = tokio::select! {
            received = broadcasts.recv() => match received {
                Ok(message) => {
                    let mut result = ws.feed(message).await;
                    while result.is_ok() {
                        match broadcasts.try_recv() {
                            Ok(more) => result = ws.feed(more).await,
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                eprintln!("tt-server: client lagged by {n} broadcasts");
                            }
                            Err(_) => break,
                        }
                    }
                    match result {
                        Ok(()) => ws.flush().await,
                        Err(e) => Err(e),
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("tt-server: client lagged by {n} broadcasts");
                    Ok(())
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            received = direct.recv() => match received {
                Some(message) => {
                    let mut result = ws.feed(message).await;
                    while result.is_ok() {
                        match direct.try_recv() {
                            Ok(more) => result = ws.feed(more).await,
                            Err(_) => break,
                        }
                    }
                    match result {
                        Ok(()) => ws.flush().await,
                        Err(e) => Err(e),
                    }
                }
                None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => ws.send(message).await,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => Ok(()),
            },
        };
        if result.is_err() {
            break;
        }
    }
    if let Ok(mut map) = shared.direct.lock() {
        map.remove(&token);
    }
}

async fn control_conn(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut used = 0;
        loop {
            match codec::decode(&buf[used..], MAX_CONTROL_FRAME) {
                Ok(Decoded::Done { item, len }) => {
                    command(&shared, item.command, item.payload);
                    used += len;
                }
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    eprintln!("tt-server: control: {e}");
                    return;
                }
            }
        }
        buf.drain(..used);
    }
}

fn message(text: bool, payload: &[u8]) -> Option<Message> {
    let bytes = Bytes::copy_from_slice(payload);
    if text {
        Utf8Bytes::try_from(bytes).ok().map(Message::Text)
    } else {
        Some(Message::Binary(bytes))
    }
}

fn command(shared: &Shared, command: u8, payload: &[u8]) {
    match command {
        b'b' | b'B' => {
            if let Some(message) = message(command == b'b', payload) {
                // No receivers is not an error here: nobody is connected yet.
                let _ = shared.broadcast.send(message);
            }
        }
        b'd' | b'D' => {
            let Some((token, rest)) = payload.split_first_chunk::<32>() else {
                return;
            };
            let token = Token::from_array(*token);
            let Some(message) = message(command == b'd', rest) else {
                return;
            };
            if let Ok(map) = shared.direct.lock()
                && let Some(tx) = map.get(&token)
            {
                let _ = tx.send(message);
            }
        }
        _ => {}
    }
}
