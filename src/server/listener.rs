//! Listening sockets, TCP, TLS over TCP or Unix, behind one type; what they accept is a
//! `Stream` (a `tls://` listener's streams start their handshake with its `TlsAcceptor`).
//!
//! The sockets are made here, with nix, rather than by `mio::net::*Listener::bind`, which
//! picks the accept queue length itself (128 for TCP, too short for a reconnect storm):
//! `listen_backlog` sets it, by default to the kernel's `net.core.somaxconn` as Go does. A
//! Unix socket file gets its group (`socket_group`, `control_socket_group`) and then its
//! mode from the config; a start that fails on the way removes the file it made.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockType, SockaddrLike, SockaddrStorage, UnixAddr, sockopt,
};
use nix::unistd::{Gid, Group};

use crate::config::{Config, ConfigError, Endpoint};
use crate::server::stream::Stream;
use crate::tls::TlsAcceptor;

/// Where the kernel's cap on every accept queue is read.
const SOMAXCONN_FILE: &str = "/proc/sys/net/core/somaxconn";
/// The queue length asked for when neither `listen_backlog` nor somaxconn is known: the
/// kernel's default somaxconn since Linux 5.4.
pub const FALLBACK_BACKLOG: u32 = 4096;

/// The longest queue `listen` can be asked for: nix's `Backlog::new` refuses lengths above
/// libc's `SOMAXCONN` (4096 with glibc), while Linux caps any length at somaxconn and reads
/// -1 (`MAXALLOWABLE`) as "as long as somaxconn allows".
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
const LONGEST: socket::Backlog = socket::Backlog::MAXALLOWABLE;
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
const LONGEST: socket::Backlog = socket::Backlog::MAXCONN;

/// The accept queue length of every listener: `listen_backlog`, else the kernel's
/// `net.core.somaxconn`, else [`FALLBACK_BACKLOG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenBacklog {
    configured: Option<u32>,
    /// Read once at start, as the kernel reads it at each `listen`.
    somaxconn: Option<u32>,
}

impl ListenBacklog {
    pub fn new(configured: Option<u32>, somaxconn: Option<u32>) -> ListenBacklog {
        ListenBacklog {
            configured,
            somaxconn,
        }
    }

    /// `net.core.somaxconn`, or `None` where it cannot be read (no /proc).
    pub fn read_somaxconn() -> Option<u32> {
        fs::read_to_string(SOMAXCONN_FILE).ok()?.trim().parse().ok()
    }

    /// The length wson asks for.
    pub fn requested(self) -> u32 {
        self.configured
            .or(self.somaxconn)
            .unwrap_or(FALLBACK_BACKLOG)
    }

    pub fn somaxconn(self) -> Option<u32> {
        self.somaxconn
    }

    /// What `listen` is given: the requested length, or [`LONGEST`] past what nix takes.
    fn argument(self) -> socket::Backlog {
        i32::try_from(self.requested())
            .ok()
            .and_then(|length| socket::Backlog::new(length).ok())
            .unwrap_or(LONGEST)
    }

    /// The length the kernel applies: what `listen` was given, capped at somaxconn
    /// (somaxconn itself for [`LONGEST`]). Without a readable somaxconn, the length asked
    /// for, which is then the best guess.
    pub fn applied(self) -> u32 {
        // MAXALLOWABLE (-1): as long as the cap allows.
        let given = u32::try_from(i32::from(self.argument())).unwrap_or(u32::MAX);
        match self.somaxconn {
            Some(cap) => given.min(cap),
            None => self.requested(),
        }
    }
}

/// A group a Unix socket file is given, looked up by name at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketGroup {
    pub name: String,
    pub gid: Gid,
}

/// The groups of the Unix socket files, and the group keys that had nothing to apply to.
#[derive(Debug, Default)]
pub struct SocketGroups {
    pub servers: Option<SocketGroup>,
    pub control: Option<SocketGroup>,
    /// `[http] socket_group`.
    pub http: Option<SocketGroup>,
    /// `(key, why)` for a group key set while its endpoints are all TCP.
    pub ignored: Vec<(&'static str, String)>,
}

/// Looks up `socket_group` and `control_socket_group` before anything is bound, so a group
/// that does not exist fails the start with nothing created, and `wson check` sees it too.
/// A key whose endpoints are all `tcp://` or `tls://` has no file to apply to: it is reported in
/// `ignored` and not looked up.
pub fn socket_groups(config: &Config) -> Result<SocketGroups, Vec<ConfigError>> {
    let any_unix_server = config
        .servers
        .iter()
        .any(|endpoint| matches!(endpoint, Endpoint::Unix(_)));
    let control_is_unix = matches!(config.control, Endpoint::Unix(_));
    let mut groups = SocketGroups::default();
    let mut errors = Vec::new();
    let mut lookup = |key: &'static str, name: &Option<String>, applies: bool, why: String| {
        let name = name.as_deref()?;
        if !applies {
            groups.ignored.push((key, why));
            return None;
        }
        let error = |message| ConfigError {
            file: config.file.clone(),
            key: Some(key.to_owned()),
            message,
        };
        match Group::from_name(name) {
            Ok(Some(group)) => Some(SocketGroup {
                name: name.to_owned(),
                gid: group.gid,
            }),
            Ok(None) => {
                errors.push(error(format!("no group named {name:?}")));
                None
            }
            Err(errno) => {
                let cause = io::Error::from(errno);
                errors.push(error(format!("cannot look up group {name:?}: {cause}")));
                None
            }
        }
    };
    let servers = lookup(
        "socket_group",
        &config.socket_group,
        any_unix_server,
        "every server endpoint is tcp:// or tls://".to_owned(),
    );
    let control = lookup(
        "control_socket_group",
        &config.control_socket_group,
        control_is_unix,
        format!("the control endpoint is {}", config.control),
    );
    let any_unix_http = config
        .http
        .listen
        .iter()
        .any(|endpoint| matches!(endpoint, Endpoint::Unix(_)));
    let http = lookup(
        "http.socket_group",
        &config.http.socket_group,
        any_unix_http,
        "no http.listen endpoint is unix://".to_owned(),
    );
    groups.servers = servers;
    groups.control = control;
    groups.http = http;
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// What a Unix socket file gets once bound; TCP listeners ignore it.
#[derive(Debug, Clone, Copy)]
pub struct SocketFile<'a> {
    pub mode: u32,
    pub group: Option<&'a SocketGroup>,
}

/// The system call of a listening socket's setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    ReuseAddress,
    ReusePort,
    RemoveStale,
    Bind,
    Listen { backlog: u32 },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Create => f.write_str("cannot create a socket"),
            Step::ReuseAddress => f.write_str("cannot set SO_REUSEADDR"),
            Step::ReusePort => f.write_str("cannot set SO_REUSEPORT"),
            Step::RemoveStale => f.write_str("cannot remove the stale socket file"),
            Step::Bind => f.write_str("cannot bind"),
            Step::Listen { backlog } => write!(f, "cannot listen with backlog {backlog}"),
        }
    }
}

/// Why a listener could not be bound, naming the endpoint.
#[derive(Debug)]
pub enum BindError {
    Resolve {
        endpoint: String,
        error: io::Error,
    },
    Socket {
        endpoint: String,
        step: Step,
        error: io::Error,
    },
    SocketInUse {
        path: PathBuf,
    },
    NotASocket {
        path: PathBuf,
    },
    Group {
        path: PathBuf,
        group: SocketGroup,
        error: io::Error,
    },
    Mode {
        path: PathBuf,
        error: io::Error,
    },
    /// A `tls://` endpoint with no certificate to serve (config checks make this rare).
    NoCertificate {
        endpoint: String,
    },
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Resolve { endpoint, error } => {
                write!(f, "{endpoint}: cannot resolve address: {error}")
            }
            BindError::Socket {
                endpoint,
                step,
                error,
            } => write!(f, "{endpoint}: {step}: {error}"),
            BindError::SocketInUse { path } => write!(
                f,
                "unix://{}: another process is listening on this socket",
                path.display()
            ),
            BindError::NotASocket { path } => write!(
                f,
                "unix://{}: a file that is not a socket is in the way (not replaced)",
                path.display()
            ),
            BindError::Group { path, group, error } => write!(
                f,
                "unix://{}: cannot give the socket file to group {:?} (gid {}): {error}",
                path.display(),
                group.name,
                group.gid
            ),
            BindError::NoCertificate { endpoint } => {
                write!(f, "{endpoint}: no [tls] cert and key to serve")
            }
            BindError::Mode { path, error } => {
                write!(
                    f,
                    "unix://{}: cannot set socket mode: {error}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for BindError {}

enum Socket {
    Tcp(TcpListener),
    Tls(TcpListener, TlsAcceptor),
    /// The path is kept so a clean exit can remove the socket file.
    Unix(UnixListener, PathBuf),
}

pub struct Listener {
    socket: Socket,
    backlog: ListenBacklog,
}

impl Listener {
    /// Binds `endpoint` with an accept queue of `backlog`. A Unix socket file left by a dead
    /// server is replaced; one that still accepts connections belongs to a live process and
    /// is an error. A new socket file gets `file`'s group, then its mode. `reuse_port`: a
    /// TCP listener shares its port with the other nodes on the machine (SO_REUSEPORT). A
    /// `tls://` endpoint serves `tls`, which the others ignore.
    pub fn bind(
        endpoint: &Endpoint,
        backlog: ListenBacklog,
        file: SocketFile<'_>,
        reuse_port: bool,
        tls: Option<&TlsAcceptor>,
    ) -> Result<Listener, BindError> {
        let failed = |(step, errno): (Step, Errno)| BindError::Socket {
            endpoint: endpoint.to_string(),
            step,
            error: io::Error::from(errno),
        };
        match endpoint {
            Endpoint::Tcp(address) | Endpoint::Tls(address) => {
                let acceptor = match (endpoint, tls) {
                    (Endpoint::Tls(_), Some(acceptor)) => Some(acceptor.clone()),
                    (Endpoint::Tls(_), None) => {
                        return Err(BindError::NoCertificate {
                            endpoint: endpoint.to_string(),
                        });
                    }
                    _ => None,
                };
                let addr = resolve(endpoint, address)?;
                let family = match addr {
                    SocketAddr::V4(_) => AddressFamily::Inet,
                    SocketAddr::V6(_) => AddressFamily::Inet6,
                };
                let address = SockaddrStorage::from(addr);
                let fd = listening_socket(family, &address, backlog, reuse_port).map_err(failed)?;
                let listener = TcpListener::from_std(std::net::TcpListener::from(fd));
                let socket = match acceptor {
                    Some(acceptor) => Socket::Tls(listener, acceptor),
                    None => Socket::Tcp(listener),
                };
                Ok(Listener { socket, backlog })
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path)?;
                let address = UnixAddr::new(path.as_path()).map_err(|errno| (Step::Bind, errno));
                let fd = address
                    .and_then(|address| {
                        listening_socket(AddressFamily::Unix, &address, backlog, false)
                    })
                    .map_err(|(step, errno)| {
                        // A failed `listen` leaves the file `bind` made.
                        if matches!(step, Step::Listen { .. }) {
                            let _ = fs::remove_file(path);
                        }
                        failed((step, errno))
                    })?;
                let listener = Listener {
                    socket: Socket::Unix(
                        UnixListener::from_std(std::os::unix::net::UnixListener::from(fd)),
                        path.clone(),
                    ),
                    backlog,
                };
                // The group first: a group-accessible mode never applies to the server's own
                // group when another was asked for.
                if let Some(group) = file.group {
                    nix::unistd::chown(path.as_path(), None, Some(group.gid)).map_err(|errno| {
                        listener.remove_socket_file();
                        BindError::Group {
                            path: path.clone(),
                            group: group.clone(),
                            error: io::Error::from(errno),
                        }
                    })?;
                }
                fs::set_permissions(path, fs::Permissions::from_mode(file.mode)).map_err(
                    |error| {
                        listener.remove_socket_file();
                        BindError::Mode {
                            path: path.clone(),
                            error,
                        }
                    },
                )?;
                Ok(listener)
            }
        }
    }

    /// The address actually bound, as an endpoint string (`tcp://127.0.0.1:41234` for port 0).
    pub fn local_endpoint(&self) -> String {
        match &self.socket {
            Socket::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("tcp://{addr}"),
                Err(_) => "tcp://?".to_string(),
            },
            Socket::Tls(listener, _) => match listener.local_addr() {
                Ok(addr) => format!("tls://{addr}"),
                Err(_) => "tls://?".to_string(),
            },
            Socket::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }

    /// The accept queue length the kernel applies to this listener.
    pub fn backlog(&self) -> u32 {
        self.backlog.applied()
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match &self.socket {
            Socket::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                // Pushes are small and latency matters more than packet count.
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Socket::Tls(listener, acceptor) => {
                let (stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                Ok(Stream::tls(stream, acceptor.session()?))
            }
            Socket::Unix(listener, _) => {
                let (stream, _) = listener.accept()?;
                Ok(Stream::Unix(stream))
            }
        }
    }

    /// True for a `tls://` listener.
    pub fn is_tls(&self) -> bool {
        matches!(self.socket, Socket::Tls(..))
    }

    /// The certificate new handshakes get from now on (a reload); connections already
    /// accepted keep theirs. A listener without TLS ignores it.
    pub fn set_tls(&mut self, fresh: &TlsAcceptor) {
        if let Socket::Tls(_, acceptor) = &mut self.socket {
            *acceptor = fresh.clone();
        }
    }

    /// Removes the socket file of a Unix listener (on a clean exit).
    pub fn remove_socket_file(&self) {
        if let Socket::Unix(_, path) = &self.socket {
            let _ = fs::remove_file(path);
        }
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &mut self.socket {
            Socket::Tcp(listener) | Socket::Tls(listener, _) => {
                registry.register(listener, token, Interest::READABLE)
            }
            Socket::Unix(listener, _) => registry.register(listener, token, Interest::READABLE),
        }
    }

    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.socket {
            Socket::Tcp(listener) | Socket::Tls(listener, _) => registry.deregister(listener),
            Socket::Unix(listener, _) => registry.deregister(listener),
        }
    }
}

fn resolve(endpoint: &Endpoint, address: &str) -> Result<SocketAddr, BindError> {
    let resolve_error = |error| BindError::Resolve {
        endpoint: endpoint.to_string(),
        error,
    };
    std::net::ToSocketAddrs::to_socket_addrs(address)
        .map_err(resolve_error)?
        .next()
        .ok_or_else(|| resolve_error(io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// A listening socket made as std and mio make theirs (non-blocking and close-on-exec from
/// the start; SO_REUSEADDR for TCP, so a restart rebinds while the old connections sit in
/// TIME_WAIT), but with `backlog`.
fn listening_socket(
    family: AddressFamily,
    address: &dyn SockaddrLike,
    backlog: ListenBacklog,
    reuse_port: bool,
) -> Result<OwnedFd, (Step, Errno)> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, SockType::Stream, flags, None)
        .map_err(|errno| (Step::Create, errno))?;
    if family != AddressFamily::Unix {
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)
            .map_err(|errno| (Step::ReuseAddress, errno))?;
        if reuse_port {
            socket::setsockopt(&fd, sockopt::ReusePort, &true)
                .map_err(|errno| (Step::ReusePort, errno))?;
        }
    }
    socket::bind(fd.as_raw_fd(), address).map_err(|errno| (Step::Bind, errno))?;
    socket::listen(&fd, backlog.argument()).map_err(|errno| {
        let backlog = backlog.requested();
        (Step::Listen { backlog }, errno)
    })?;
    Ok(fd)
}

fn remove_stale_socket(path: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    // Only a socket file can be a dead server's leftover; anything else (a config file
    // named by mistake) is the operator's and is never deleted.
    if !metadata.file_type().is_socket() {
        return Err(BindError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(BindError::SocketInUse {
            path: path.to_path_buf(),
        });
    }
    log::info!(path:% = path.display(); "removing stale socket file");
    fs::remove_file(path).map_err(|error| BindError::Socket {
        endpoint: format!("unix://{}", path.display()),
        step: Step::RemoveStale,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_defaults_to_somaxconn_then_to_4096() {
        let from_kernel = ListenBacklog::new(None, Some(1024));
        assert_eq!(from_kernel.requested(), 1024);
        assert_eq!(from_kernel.applied(), 1024);
        let unknown = ListenBacklog::new(None, None);
        assert_eq!(unknown.requested(), FALLBACK_BACKLOG);
        assert_eq!(unknown.applied(), FALLBACK_BACKLOG);
    }

    #[test]
    fn configured_backlog_is_capped_at_somaxconn() {
        assert_eq!(ListenBacklog::new(Some(128), Some(4096)).applied(), 128);
        assert_eq!(ListenBacklog::new(Some(8192), Some(4096)).applied(), 4096);
        assert_eq!(ListenBacklog::new(Some(1), Some(4096)).applied(), 1);
        // Unknown cap: the length asked for is the best guess.
        assert_eq!(ListenBacklog::new(Some(128), None).applied(), 128);
    }

    #[test]
    fn lengths_nix_refuses_are_asked_as_the_longest_queue() {
        // Above libc's SOMAXCONN nix's Backlog::new says EINVAL: -1 is passed instead, and
        // the kernel applies somaxconn, which is what a longer queue would get anyway when
        // somaxconn is at most the length asked for.
        let over = ListenBacklog::new(Some(65_535), Some(65_535));
        assert_eq!(over.argument(), LONGEST);
        assert_eq!(over.applied(), 65_535);
        let default_high = ListenBacklog::new(None, Some(16_384));
        assert_eq!(default_high.argument(), LONGEST);
        assert_eq!(default_high.applied(), 16_384);
        // The one case -1 cannot say exactly: a raised somaxconn above the length asked.
        let between = ListenBacklog::new(Some(10_000), Some(20_000));
        assert_eq!(between.applied(), 20_000);
    }

    #[test]
    fn lengths_nix_takes_are_passed_as_they_are() {
        let backlog = ListenBacklog::new(Some(77), Some(4096));
        assert_eq!(i32::from(backlog.argument()), 77);
    }

    #[test]
    fn step_errors_name_the_endpoint_and_the_call() {
        let error = BindError::Socket {
            endpoint: "tcp://127.0.0.1:80".into(),
            step: Step::Listen { backlog: 77 },
            error: io::Error::from(Errno::EINVAL),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("tcp://127.0.0.1:80: cannot listen with backlog 77: "),
            "{text}"
        );
    }
}
