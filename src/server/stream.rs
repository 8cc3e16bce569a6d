//! An accepted connection's byte stream, TCP or Unix, behind one type.
//!
//! Everything above this module reads and writes a `Stream` without caring which kind it
//! is. What a short read or a short write means depends on the kind: on a plain socket a
//! read that returns less than asked has drained the kernel buffer, and a write that takes
//! less than offered has filled it, so the extra syscall that would only say `WouldBlock`
//! can be skipped. A TLS stream (a later variant) buffers records and answers no to both.

use std::io::{self, IoSlice, Read, Write};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use crate::access::PeerAddress;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// The peer, for log lines and events: `IP:PORT`, or `unix`.
    pub fn peer(&self) -> String {
        match self {
            Stream::Tcp(stream) => stream
                .peer_addr()
                .map(|addr| addr.to_string())
                .unwrap_or_else(|_| "?".to_string()),
            Stream::Unix(_) => "unix".to_string(),
        }
    }

    /// The peer's address for access checks (an IPv4-mapped IPv6 peer as IPv4); `None` when
    /// the kernel no longer knows it (the peer is already gone).
    pub fn peer_address(&self) -> Option<PeerAddress> {
        match self {
            Stream::Tcp(stream) => stream
                .peer_addr()
                .ok()
                .map(|addr| PeerAddress::Ip(addr.ip().to_canonical())),
            Stream::Unix(_) => Some(PeerAddress::Unix),
        }
    }

    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown(std::net::Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(std::net::Shutdown::Write),
        };
    }

    /// True when a read that returned fewer bytes than the buffer holds means the stream
    /// has nothing more until its next readiness edge.
    pub fn short_read_drains(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
        }
    }

    /// True when a write that took fewer bytes than offered means the stream is full until
    /// its next writable edge.
    pub fn short_write_fills(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write_vectored(bufs),
            Stream::Unix(stream) => stream.write_vectored(bufs),
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
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.deregister(registry),
            Stream::Unix(stream) => stream.deregister(registry),
        }
    }
}
