//! TLS for the tests: a throwaway CA and server certificates made with the openssl CLI in a
//! temp folder, a rustls client that trusts that CA, and a `Setup` serving `tls://`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{Control, Duplex, Setup, WAIT, WsClient};

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1.
pub struct Pki {
    dir: tempfile::TempDir,
    /// How many server certificates were issued (file names differ).
    issued: u32,
}

fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (tests/install-tools.sh)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=wson test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&args, dir.path());
        let mut pki = Pki { dir, issued: 0 };
        pki.issue();
        pki
    }

    /// Issues a fresh server key and certificate (chain: the certificate, then the CA) at
    /// `server.pem` / `server.key`, replacing the previous ones as certbot does: written
    /// aside, then renamed over.
    pub fn issue(&mut self) {
        self.issued += 1;
        let n = self.issued.to_string();
        let (key, csr, cert) = (
            format!("s{n}.key"),
            format!("s{n}.csr"),
            format!("s{n}.crt"),
        );
        let mut args = vec!["req"];
        args.extend(EC);
        let subject = format!("/CN=localhost {n}");
        args.extend(["-nodes", "-subj", &subject, "-keyout", &key, "-out", &csr]);
        openssl(&args, self.dir.path());
        std::fs::write(
            self.dir.path().join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
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
                &cert,
            ],
            self.dir.path(),
        );
        let mut chain = std::fs::read(self.dir.path().join(&cert)).unwrap();
        chain.extend(std::fs::read(self.ca()).unwrap());
        let aside = self.dir.path().join("chain.tmp");
        std::fs::write(&aside, chain).unwrap();
        std::fs::rename(&aside, self.cert()).unwrap();
        std::fs::rename(self.dir.path().join(&key), self.key()).unwrap();
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The DER of the server certificate now in `server.pem`.
    pub fn server_der(&self) -> Vec<u8> {
        let pem = std::fs::read(self.cert()).unwrap();
        CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate, as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it.
    pub fn spki_sha256_base64(&self) -> String {
        let script = format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
            self.cert().display()
        );
        let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// `setup` with `[tls]` pointing at this PKI's server certificate and key.
    pub fn serve(&self, setup: Setup) -> Setup {
        setup
            .set(
                "tls.cert",
                &format!("{:?}", self.cert().display().to_string()),
            )
            .set(
                "tls.key",
                &format!("{:?}", self.key().display().to_string()),
            )
    }

    /// A client config trusting this CA, offering `alpn` (none when empty).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let pem = std::fs::read(self.ca()).unwrap();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A TLS connection to `addr` for `localhost`, offering ALPN http/1.1, its handshake
    /// done (or failed).
    pub fn connect(&self, addr: &str) -> io::Result<TlsStream> {
        self.connect_with(addr, &[b"http/1.1"])
    }

    pub fn connect_with(&self, addr: &str, alpn: &[&[u8]]) -> io::Result<TlsStream> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(WAIT))?;
        tcp.set_write_timeout(Some(WAIT))?;
        let name = ServerName::try_from("localhost").unwrap();
        let session =
            ClientConnection::new(self.client_config(alpn), name).map_err(io::Error::other)?;
        let mut stream = TlsStream(StreamOwned::new(session, tcp));
        while stream.0.conn.is_handshaking() {
            stream.0.conn.complete_io(&mut stream.0.sock)?;
        }
        Ok(stream)
    }

    /// A WebSocket client upgraded over TLS with fresh cookies.
    pub fn client(&self, addr: &str) -> WsClient {
        let stream = self.connect(addr).expect("TLS handshake");
        let mut client = WsClient::over(Box::new(stream));
        let cookies = super::Cookies::fresh("alice");
        client
            .upgrade(&super::request(
                addr,
                &cookies.header,
                Some(super::ORIGIN),
                "",
            ))
            .expect("upgrade");
        client
    }

    /// A control client over TLS (no ALPN, as a backend script's TLS client).
    pub fn control(&self, addr: &str) -> Control {
        Control::over(Box::new(
            self.connect_with(addr, &[]).expect("TLS handshake"),
        ))
    }
}

/// A rustls client stream, as the tests' clients use a `TcpStream`.
pub struct TlsStream(pub StreamOwned<ClientConnection, TcpStream>);

impl TlsStream {
    /// The server's certificate (DER) as presented in the handshake.
    pub fn server_der(&self) -> Vec<u8> {
        self.0.conn.peer_certificates().unwrap()[0].to_vec()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.0.conn.alpn_protocol().map(<[u8]>::to_vec)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            // The server's TCP end without close_notify: an end all the same for these tests.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Duplex for TlsStream {
    fn set_timeout(&self, timeout: Option<Duration>) {
        self.0.sock.set_read_timeout(timeout).unwrap();
    }

    fn shutdown_write(&self) {
        let _ = self.0.sock.shutdown(std::net::Shutdown::Write);
    }
}
