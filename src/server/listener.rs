//! Listening sockets, TCP or Unix, behind one type; what they accept is a `Stream`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};

use crate::config::Endpoint;
use crate::server::stream::Stream;

/// Why a listener could not be bound, naming the endpoint.
#[derive(Debug)]
pub enum BindError {
    Resolve { endpoint: String, error: io::Error },
    Bind { endpoint: String, error: io::Error },
    SocketInUse { path: PathBuf },
    NotASocket { path: PathBuf },
    Mode { path: PathBuf, error: io::Error },
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Resolve { endpoint, error } => {
                write!(f, "{endpoint}: cannot resolve address: {error}")
            }
            BindError::Bind { endpoint, error } => write!(f, "{endpoint}: cannot bind: {error}"),
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

pub enum Listener {
    Tcp(TcpListener),
    /// The path is kept so a clean exit can remove the socket file.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `endpoint`. A Unix socket file left by a dead server is replaced; one that
    /// still accepts connections belongs to a live process and is an error.
    pub fn bind(endpoint: &Endpoint, unix_mode: u32) -> Result<Listener, BindError> {
        match endpoint {
            Endpoint::Tcp(address) => {
                let endpoint_text = endpoint.to_string();
                let addr = std::net::ToSocketAddrs::to_socket_addrs(address.as_str())
                    .map_err(|error| BindError::Resolve {
                        endpoint: endpoint_text.clone(),
                        error,
                    })?
                    .next()
                    .ok_or_else(|| BindError::Resolve {
                        endpoint: endpoint_text.clone(),
                        error: io::Error::new(io::ErrorKind::NotFound, "no address"),
                    })?;
                let listener = TcpListener::bind(addr).map_err(|error| BindError::Bind {
                    endpoint: endpoint_text,
                    error,
                })?;
                Ok(Listener::Tcp(listener))
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path).map_err(|error| BindError::Bind {
                    endpoint: endpoint.to_string(),
                    error,
                })?;
                let listener = Listener::Unix(listener, path.clone());
                fs::set_permissions(path, fs::Permissions::from_mode(unix_mode)).map_err(
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
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("tcp://{addr}"),
                Err(_) => "tcp://?".to_string(),
            },
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                // Pushes are small and latency matters more than packet count.
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept()?;
                Ok(Stream::Unix(stream))
            }
        }
    }

    /// Removes the socket file of a Unix listener (on a clean exit).
    pub fn remove_socket_file(&self) {
        if let Listener::Unix(_, path) = self {
            let _ = fs::remove_file(path);
        }
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => registry.register(listener, token, Interest::READABLE),
            Listener::Unix(listener, _) => registry.register(listener, token, Interest::READABLE),
        }
    }

    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => registry.deregister(listener),
            Listener::Unix(listener, _) => registry.deregister(listener),
        }
    }
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
    fs::remove_file(path).map_err(|error| BindError::Bind {
        endpoint: format!("unix://{}", path.display()),
        error,
    })
}
