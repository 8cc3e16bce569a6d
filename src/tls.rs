//! TLS for listeners: the `[tls]` certificate chain and private key (PEM files) loaded into a
//! rustls server config (the ring provider, no OpenSSL), and the acceptor a `tls://` listener
//! of any kind (WebSocket, control, HTTP) starts each accepted connection's session with.
//!
//! Loading is a pure function of the two files, so `wson check`, the start and every SIGHUP
//! call the same one: a reload that cannot load the files keeps the acceptor it had, and the
//! connections already open keep the session they negotiated either way.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// The one application protocol a WebSocket listener speaks before the upgrade (RFC 6455
/// §4.1: the opening handshake is an HTTP/1.1 request). A client that offers ALPN without it
/// is refused in the handshake (`no_application_protocol`); one that offers none is served.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Largest PEM file read: a chain of a few certificates is a few KiB, so anything near this
/// is the wrong file, and is not read whole into memory.
pub const MAX_PEM_FILE_LEN: u64 = 1 << 20;

/// What rustls may hold per connection in records waiting for the socket (and plaintext
/// written before the handshake ends). The outbound queue (`max_outbound_buffer`) is the
/// configured bound on what a client is owed; the stream only hands rustls more once its
/// earlier records are written, so this adds at most one write's worth to it.
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// The oldest protocol version a handshake may settle on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// Why the certificate chain or key could not be loaded; each names its file.
#[derive(Debug)]
pub enum TlsError {
    Read {
        path: PathBuf,
        error: io::Error,
    },
    TooLarge {
        path: PathBuf,
    },
    Pem {
        path: PathBuf,
        error: String,
    },
    NoCertificate {
        path: PathBuf,
    },
    NoKey {
        path: PathBuf,
    },
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
    },
    /// rustls refused the chain or key (an unsupported key type, a malformed certificate).
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
}

/// The file a config error about this problem is reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    Cert,
    Key,
}

impl TlsError {
    /// Which of the two files to fix (for the `tls.cert` / `tls.key` config error).
    pub fn culprit(&self, cert: &Path) -> Culprit {
        match self {
            TlsError::Read { path, .. }
            | TlsError::TooLarge { path }
            | TlsError::Pem { path, .. } => match path == cert {
                true => Culprit::Cert,
                false => Culprit::Key,
            },
            TlsError::NoCertificate { .. } => Culprit::Cert,
            TlsError::NoKey { .. } | TlsError::KeyMismatch { .. } | TlsError::Rejected { .. } => {
                Culprit::Key
            }
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::TooLarge { path } => write!(
                f,
                "{} is larger than {MAX_PEM_FILE_LEN} bytes: not a PEM certificate or key",
                path.display()
            ),
            TlsError::Pem { path, error } => {
                write!(f, "{} is not valid PEM: {error}", path.display())
            }
            TlsError::NoCertificate { path } => write!(
                f,
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            TlsError::NoKey { path } => write!(
                f,
                "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            ),
            TlsError::KeyMismatch { cert, key } => write!(
                f,
                "the key in {} does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            TlsError::Rejected { cert, key, error } => write!(
                f,
                "the certificate in {} and key in {} were refused: {error}",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// Starts TLS sessions with the current certificate. Cheap to clone: listeners share the
/// config, and a reload swaps in a new one for the handshakes that follow.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// Loads the chain and key and builds the server config, offering `alpn` (empty: no ALPN
    /// answer; a client offering some is still served).
    pub fn load(
        cert: &Path,
        key: &Path,
        min_version: TlsVersion,
        alpn: &[&[u8]],
    ) -> Result<TlsAcceptor, TlsError> {
        let chain = read_chain(cert)?;
        let private_key = read_key(key)?;
        let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let rejected = |error: rustls::Error| match error {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            },
            error => TlsError::Rejected {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                error,
            },
        };
        // The provider named, not the process default: nothing else may pick it for us.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(rejected)?;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    /// The same certificate without an ALPN answer (the control protocol is not HTTP).
    pub fn without_alpn(&self) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols.clear();
        TlsAcceptor {
            config: Arc::new(config),
        }
    }

    /// A fresh server session, its buffers bounded by [`BUFFER_LIMIT`].
    pub fn session(&self) -> io::Result<ServerConnection> {
        let mut session =
            ServerConnection::new(Arc::clone(&self.config)).map_err(io::Error::other)?;
        session.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(session)
    }
}

/// A client config for wson's own tools (`wson status`) on its `tls://` control socket: it
/// trusts exactly the certificate `[tls] cert` starts with, whatever its issuer and names
/// (the control address is usually 127.0.0.1, which a public certificate does not name).
pub fn pinned_client(cert: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let chain = read_chain(cert)?;
    let Some(certificate) = chain.into_iter().next() else {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    };
    let provider = rustls::crypto::ring::default_provider();
    let pinned = Pinned {
        certificate,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rejected {
            cert: cert.to_path_buf(),
            key: cert.to_path_buf(),
            error,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pinned))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts one certificate, and handshake signatures made with its key.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match end_entity.as_ref() == self.certificate.as_ref() {
            true => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            false => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Reads at most [`MAX_PEM_FILE_LEN`] bytes of `path`.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_FILE_LEN {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn pem_error(path: &Path, error: &pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        error: error.to_string(),
    }
}

/// Every certificate of the PEM file, the server's own first (as certbot's fullchain.pem).
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, &error))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The first private key of the PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_bounded(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_path_buf(),
        }),
        Err(error) => Err(pem_error(path, &error)),
    }
}

/// Certificates for unit tests here and beside the code that serves them.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// A self-signed P-256 certificate and its key, made with the openssl CLI (the same tool
    /// the integration tests use), in `dir`.
    pub(crate) fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (cert, key)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::self_signed;
    use super::*;

    #[test]
    fn a_matching_chain_and_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        for version in [TlsVersion::V1_2, TlsVersion::V1_3] {
            let acceptor = TlsAcceptor::load(&cert, &key, version, &[ALPN_HTTP_1_1]).unwrap();
            assert_eq!(acceptor.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
            assert!(acceptor.without_alpn().config.alpn_protocols.is_empty());
            assert!(acceptor.session().is_ok());
        }
    }

    /// Runs a handshake between `server` and `client` in memory; the client's error, if any.
    fn handshake(
        mut server: ServerConnection,
        mut client: rustls::ClientConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            let mut reader = bytes.as_slice();
            while !reader.is_empty() {
                server.read_tls(&mut reader).unwrap();
            }
            // The server's error goes back to the client as an alert.
            let _ = server.process_new_packets();
            let mut bytes = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            let mut reader = bytes.as_slice();
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
            }
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("no handshake in 10 flights");
    }

    #[test]
    fn the_pinned_client_trusts_the_configured_certificate_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let (other_cert, _) = self_signed(dir.path(), "b");
        let acceptor = TlsAcceptor::load(&cert, &key, TlsVersion::V1_2, &[]).unwrap();
        // Any name: the control address is an IP the certificate does not name.
        let name = || rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let pinned = pinned_client(&cert).unwrap();
        let client = rustls::ClientConnection::new(pinned, name()).unwrap();
        handshake(acceptor.session().unwrap(), client).unwrap();
        let wrong = pinned_client(&other_cert).unwrap();
        let client = rustls::ClientConnection::new(wrong, name()).unwrap();
        let error = handshake(acceptor.session().unwrap(), client).unwrap_err();
        assert!(
            matches!(error, rustls::Error::InvalidCertificate(_)),
            "{error}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch_on_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = self_signed(dir.path(), "a");
        let (_, other_key) = self_signed(dir.path(), "b");
        let error = TlsAcceptor::load(&cert, &other_key, TlsVersion::V1_2, &[])
            .err()
            .unwrap();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        assert_eq!(error.culprit(&cert), Culprit::Key);
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn missing_files_and_files_without_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let missing = dir.path().join("none.pem");
        let error = TlsAcceptor::load(&missing, &key, TlsVersion::V1_2, &[])
            .err()
            .unwrap();
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        assert_eq!(error.culprit(&missing), Culprit::Cert);
        assert!(error.to_string().contains("none.pem"), "{error}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = TlsAcceptor::load(&empty, &key, TlsVersion::V1_2, &[])
            .err()
            .unwrap();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        // The certificate file given as the key: it holds no key.
        let error = TlsAcceptor::load(&cert, &cert, TlsVersion::V1_2, &[])
            .err()
            .unwrap();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
        assert_eq!(error.culprit(&cert), Culprit::Key);
    }

    #[test]
    fn an_oversized_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = self_signed(dir.path(), "a");
        let huge = dir.path().join("huge.pem");
        let file = std::fs::File::create(&huge).unwrap();
        file.set_len(MAX_PEM_FILE_LEN + 1).unwrap();
        let error = TlsAcceptor::load(&huge, &key, TlsVersion::V1_2, &[])
            .err()
            .unwrap();
        assert!(matches!(error, TlsError::TooLarge { .. }), "{error}");
    }
}
