//! An accepted connection's byte stream, TCP, Unix or TLS over TCP, behind one type.
//!
//! Everything above this module reads and writes a `Stream` without caring which kind it
//! is. What a short read or a short write means depends on the kind: on a plain socket a
//! read that returns less than asked has drained the kernel buffer, and a write that takes
//! less than offered has filled it, so the extra syscall that would only say `WouldBlock`
//! can be skipped. A TLS stream buffers records and answers no to both.
//!
//! A TLS stream also has bytes of its own to write, whatever the connection queued: the
//! handshake, alerts, and records a full socket left behind. `pending_output` says so and
//! `flush_pending` writes them; the socket loop writes them before the queue and keeps
//! writing them while the queue is empty. Its application data waits for the handshake
//! (`accepts_data`). Reading, it is dry only when the socket says `WouldBlock` and rustls
//! holds no decrypted bytes either.

use std::io::{self, IoSlice, Read, Write};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use rustls::ServerConnection;

use crate::access::PeerAddress;
use crate::server::outbound::Flushed;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: a rustls session is a few hundred bytes, which plain streams should not pay.
    Tls(Box<TlsStream>),
}

/// A TCP stream and the rustls session over it.
pub struct TlsStream {
    tcp: TcpStream,
    session: ServerConnection,
}

impl Stream {
    /// A TLS stream starting its handshake over `tcp`.
    pub fn tls(tcp: TcpStream, session: ServerConnection) -> Stream {
        Stream::Tls(Box::new(TlsStream { tcp, session }))
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(stream) => Some(stream),
            Stream::Tls(tls) => Some(&tls.tcp),
            Stream::Unix(_) => None,
        }
    }

    /// The peer, for log lines and events: `IP:PORT`, or `unix`.
    pub fn peer(&self) -> String {
        match self.tcp() {
            Some(stream) => stream
                .peer_addr()
                .map(|addr| addr.to_string())
                .unwrap_or_else(|_| "?".to_string()),
            None => "unix".to_string(),
        }
    }

    /// The peer's address for access checks (an IPv4-mapped IPv6 peer as IPv4); `None` when
    /// the kernel no longer knows it (the peer is already gone).
    pub fn peer_address(&self) -> Option<PeerAddress> {
        match self.tcp() {
            Some(stream) => stream
                .peer_addr()
                .ok()
                .map(|addr| PeerAddress::Ip(addr.ip().to_canonical())),
            None => Some(PeerAddress::Unix),
        }
    }

    /// Ends our direction: a TLS stream first says `close_notify` (best effort: a full
    /// socket loses it, and the peer sees the TCP end alone).
    pub fn shutdown_write(&mut self) {
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown(std::net::Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(std::net::Shutdown::Write),
            Stream::Tls(tls) => {
                tls.session.send_close_notify();
                let _ = tls.write_records();
                tls.tcp.shutdown(std::net::Shutdown::Write)
            }
        };
    }

    /// True when a read that returned fewer bytes than the buffer holds means the stream
    /// has nothing more until its next readiness edge.
    pub fn short_read_drains(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
            // A record's plaintext is shorter than what the socket held.
            Stream::Tls(_) => false,
        }
    }

    /// True when a write that took fewer bytes than offered means the stream is full until
    /// its next writable edge.
    pub fn short_write_fills(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
            // rustls takes at most its buffer limit, whatever the socket has room for.
            Stream::Tls(_) => false,
        }
    }

    /// True while the stream holds bytes of its own to write (TLS records).
    pub fn pending_output(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => false,
            Stream::Tls(tls) => tls.session.wants_write(),
        }
    }

    /// Writes the stream's own pending bytes; `Blocked` when the socket filled first.
    pub fn flush_pending(&mut self) -> io::Result<Flushed> {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => Ok(Flushed::All),
            Stream::Tls(tls) => tls.write_records(),
        }
    }

    /// True when application data written now is sent: not during a TLS handshake, which
    /// the socket loop lets finish first.
    pub fn accepts_data(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
            Stream::Tls(tls) => !tls.session.is_handshaking(),
        }
    }

    /// True while a TLS handshake is under way.
    pub fn is_handshaking(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => false,
            Stream::Tls(tls) => tls.session.is_handshaking(),
        }
    }
}

impl TlsStream {
    /// Writes rustls's pending records until none is left or the socket is full.
    fn write_records(&mut self) -> io::Result<Flushed> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// Plaintext into `buf`: what rustls already decrypted, then more records from the
    /// socket, until `buf` is full or the socket would block. `Ok(0)` is the peer's end
    /// (`close_notify`, or a TCP EOF, which a WebSocket's own Close makes harmless);
    /// `WouldBlock` only when nothing at all was decrypted.
    fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            let rest = buf.get_mut(filled..).unwrap_or(&mut []);
            if rest.is_empty() {
                return Ok(filled);
            }
            match self.session.reader().read(rest) {
                // `close_notify` received and everything before it read.
                Ok(0) => return Ok(filled),
                Ok(len) => {
                    filled += len;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP end without `close_notify`, once the plaintext is read.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) => return Err(e),
            }
            match self.session.read_tls(&mut self.tcp) {
                Ok(0) => {
                    // The TCP end: a handshake or record cut short reads as the end too.
                    // `process_new_packets` still runs for an alert the peer sent last.
                    let _ = self.session.process_new_packets();
                    return Ok(filled);
                }
                Ok(_) => {
                    if let Err(error) = self.session.process_new_packets() {
                        // rustls queued the alert that tells the peer why; it goes now or
                        // never, as the connection is dropped.
                        let _ = self.write_records();
                        if self.session.is_handshaking() {
                            let peer = self.tcp.peer_addr().map(|addr| addr.to_string());
                            let peer = peer.unwrap_or_else(|_| "?".to_owned());
                            log::warn!(peer, reason:% = error; "TLS handshake refused");
                        }
                        return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match filled {
                        0 => Err(e),
                        _ => Ok(filled),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Plaintext from `bufs` into records, written as far as the socket takes them. Earlier
    /// records go first; while they cannot, nothing more is taken, so rustls holds at most
    /// one write's worth beyond what the socket has.
    fn write_plaintext(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.write_records()? == Flushed::Blocked || self.session.is_handshaking() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.session.writer().write_vectored(bufs)?;
        // Blocked or not, the records are rustls's now; the next write (or the writable
        // edge) sends them.
        self.write_records()?;
        if taken == 0 && bufs.iter().any(|buf| !buf.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }
}

/// A dropped TLS stream says `close_notify`, in one best-effort write: a closing handshake
/// that completed, a timeout, or shutdown alike. After a fatal alert rustls sends nothing.
impl Drop for TlsStream {
    fn drop(&mut self) {
        self.session.send_close_notify();
        if self.session.wants_write() {
            let _ = self.session.write_tls(&mut self.tcp);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
            Stream::Tls(tls) => tls.read_plaintext(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
            Stream::Tls(tls) => tls.write_plaintext(&[IoSlice::new(buf)]),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write_vectored(bufs),
            Stream::Unix(stream) => stream.write_vectored(bufs),
            Stream::Tls(tls) => tls.write_plaintext(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.register(registry, token, interests),
            Stream::Unix(stream) => stream.register(registry, token, interests),
            Stream::Tls(tls) => tls.tcp.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.reregister(registry, token, interests),
            Stream::Unix(stream) => stream.reregister(registry, token, interests),
            Stream::Tls(tls) => tls.tcp.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.deregister(registry),
            Stream::Unix(stream) => stream.deregister(registry),
            Stream::Tls(tls) => tls.tcp.deregister(registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::tls::{ALPN_HTTP_1_1, TlsAcceptor, TlsVersion};

    fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        crate::tls::testing::self_signed(dir, "c")
    }

    /// Reads until the stream would block; what it read, or the error that ended it.
    fn read_until_dry(stream: &mut Stream) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn a_tls_stream_answers_the_handshake_with_an_empty_queue_and_holds_data_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(dir.path());
        let acceptor = TlsAcceptor::load(&cert, &key, TlsVersion::V1_3, &[ALPN_HTTP_1_1]).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut server = Stream::tls(TcpStream::from_std(tcp), acceptor.session().unwrap());
        assert!(server.is_handshaking() && !server.accepts_data());
        assert!(!server.short_read_drains() && !server.short_write_fills());
        // Nothing yet: dry means WouldBlock, nothing to write.
        assert!(read_until_dry(&mut server).unwrap().is_empty());
        assert!(!server.pending_output());
        // Application data offered during the handshake is refused, not buffered.
        let refused = server.write(b"too early").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);

        // Trusting the self-signed certificate as wson's own tools do.
        let config = crate::tls::pinned_client(&cert).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut session = rustls::ClientConnection::new(config, name).unwrap();
        // The ClientHello: the server's answer waits in the stream, not in any queue.
        session.write_tls(&mut client).unwrap();
        let mut answered = false;
        for _ in 0..100 {
            assert!(read_until_dry(&mut server).unwrap().is_empty());
            if server.pending_output() {
                answered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(answered, "no ServerHello pending");
        assert_eq!(server.flush_pending().unwrap(), Flushed::All);
        assert!(!server.pending_output());
        while session.is_handshaking() {
            session.complete_io(&mut client).unwrap();
        }
        // The client's Finished and a request: plaintext comes out, the handshake is over.
        session
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        session.complete_io(&mut client).unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(read_until_dry(&mut server).unwrap());
            if got.len() >= 18 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        assert!(server.accepts_data());
        // Written data reaches the client; the session tickets went before it.
        let _ = server.flush_pending().unwrap();
        assert_eq!(server.write(b"HTTP/1.1 101").unwrap(), 12);
        assert!(!server.pending_output());
        let mut reply = [0u8; 12];
        let mut tls = rustls::Stream::new(&mut session, &mut client);
        tls.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HTTP/1.1 101");
        // Its end: close_notify, then the TCP end, read as the end of the stream.
        session.send_close_notify();
        session.complete_io(&mut client).unwrap();
        drop(client);
        let mut ended = false;
        for _ in 0..100 {
            let mut buf = [0u8; 16];
            match server.read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => panic!("{n} more bytes"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(ended);
    }
}
