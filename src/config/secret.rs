//! The shared secret: the `secret` and `secret_file` keys, read as one [`Secret`], and
//! [`resolve_secret`], the one function of the config that touches the file system beyond
//! `load`: it reads, or on first start creates, the secret file.
//!
//! No message or debug output here ever holds the secret's bytes.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::declare::Section;
use super::values::{self, Checker};
use super::{Config, ConfigError};

/// A shorter secret is guessable; 16 bytes is the floor, the generated one has 64.
pub const MIN_SECRET_LEN: usize = 16;
/// A secret file longer than this is almost certainly the wrong file; refuse to read it whole.
pub const MAX_SECRET_FILE_LEN: u64 = 4096;

/// Where the shared secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The `secret` key's bytes.
    Inline(Vec<u8>),
    /// The `secret_file` key's path, resolved; read by [`resolve_secret`].
    File(PathBuf),
}

// Hand-written so that printing a `Config` never prints the secret.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(bytes) => write!(f, "Inline(<{} bytes redacted>)", bytes.len()),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Reads the exclusive `secret` and `secret_file` keys (the `secret` entry of `keys.rs`).
pub(super) fn read(checker: &mut Checker, section: &mut Section) -> Option<Secret> {
    match (section.take("secret"), section.take("secret_file")) {
        (Some(_), Some(_)) => {
            checker.error("secret", "set either secret or secret_file, not both");
            None
        }
        (None, None) => {
            checker.error("secret", "missing: set secret_file (recommended) or secret");
            None
        }
        (Some(value), None) => {
            // The value itself never goes into a message.
            let secret = values::string(checker, "secret", value)?;
            if secret.len() < MIN_SECRET_LEN {
                checker.error("secret", format!("shorter than {MIN_SECRET_LEN} bytes"));
                return None;
            }
            Some(Secret::Inline(secret.into_bytes()))
        }
        (None, Some(value)) => values::path(checker, "secret_file", value).map(Secret::File),
    }
}

/// The shared secret's bytes, and whether this call created the secret file.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedSecret {
    pub bytes: Vec<u8>,
    pub created: bool,
}

// Hand-written so that the secret never reaches a log line.
impl fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedSecret")
            .field(
                "bytes",
                &format_args!("<{} bytes redacted>", self.bytes.len()),
            )
            .field("created", &self.created)
            .finish()
    }
}

/// The secret's bytes. Inline: as written. File: its content without trailing whitespace, at
/// least 16 bytes. A missing file with `create_missing` is created (mode 0600, never
/// overwriting) holding 64 lowercase hex characters from 32 random bytes; those characters are
/// the secret, so the web backend can read the same file.
pub fn resolve_secret(
    config: &Config,
    create_missing: bool,
) -> Result<ResolvedSecret, ConfigError> {
    match &config.secret {
        Secret::Inline(bytes) => {
            if bytes.len() < MIN_SECRET_LEN {
                return Err(ConfigError {
                    file: config.file.clone(),
                    key: Some("secret".to_owned()),
                    message: format!("shorter than {MIN_SECRET_LEN} bytes"),
                });
            }
            Ok(ResolvedSecret {
                bytes: bytes.clone(),
                created: false,
            })
        }
        Secret::File(path) => {
            read_secret_file(path, create_missing).map_err(|message| ConfigError {
                file: config.file.clone(),
                key: Some("secret_file".to_owned()),
                message: format!("{}: {message}", path.display().to_string().escape_debug()),
            })
        }
    }
}

/// The HTTP API key's bytes: `[http] api_key`, or the content of `api_key_file` (read as the
/// secret file is, never created); `None` when neither is set (the API is off).
pub fn resolve_api_key(config: &Config) -> Result<Option<Vec<u8>>, ConfigError> {
    if let Some(key) = &config.http.api_key {
        return Ok(Some(key.0.clone()));
    }
    let Some(path) = &config.http.api_key_file else {
        return Ok(None);
    };
    match read_secret_file(path, false) {
        Ok(resolved) => Ok(Some(resolved.bytes)),
        Err(message) => Err(ConfigError {
            file: config.file.clone(),
            key: Some("http.api_key_file".to_owned()),
            message: format!("{}: {message}", path.display().to_string().escape_debug()),
        }),
    }
}

fn read_secret_file(path: &Path, create_missing: bool) -> Result<ResolvedSecret, String> {
    match fs::File::open(path) {
        Ok(file) => read_secret(path, file),
        Err(error) if error.kind() == io::ErrorKind::NotFound && create_missing => {
            match create_secret_file(path) {
                Ok(bytes) => Ok(ResolvedSecret {
                    bytes,
                    created: true,
                }),
                // Another process created it between our open and create: use theirs.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let file = fs::File::open(path).map_err(|error| error.to_string())?;
                    read_secret(path, file)
                }
                Err(error) => Err(format!("cannot create: {error}")),
            }
        }
        Err(error) => Err(error.to_string()),
    }
}

fn read_secret(path: &Path, file: fs::File) -> Result<ResolvedSecret, String> {
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if metadata.len() > MAX_SECRET_FILE_LEN {
        return Err(format!(
            "{} bytes, longer than {MAX_SECRET_FILE_LEN}: is this the secret file?",
            metadata.len()
        ));
    }
    // Allowed (the web backend's user may need to read it), but worth a word.
    if metadata.permissions().mode() & 0o077 != 0 {
        log::warn!(path:% = path.display(); "secret file is readable by other users");
    }
    let mut content = Vec::new();
    // The bound holds even if the file grew after the metadata call.
    file.take(MAX_SECRET_FILE_LEN)
        .read_to_end(&mut content)
        .map_err(|error| error.to_string())?;
    let secret = content.trim_ascii_end();
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!("shorter than {MIN_SECRET_LEN} bytes"));
    }
    Ok(ResolvedSecret {
        bytes: secret.to_vec(),
        created: false,
    })
}

/// Creates the file with O_EXCL and mode 0600 and writes a new secret to it.
fn create_secret_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(io::Error::other)?;
    let secret = hex(&random);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = file.write_all(&secret).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // A half-written file would be read as a short secret on the next start.
        let _ = fs::remove_file(path);
        return Err(error);
    }
    Ok(secret)
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::testing::*;

    #[test]
    fn short_secret_is_refused_without_quoting_it() {
        let errors = parse_with(&[("secret", r#""fifteen-bytes!!""#)], &[]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "conf/wson.toml: secret: shorter than 16 bytes"
        );
        config_with(&[("secret", r#""sixteen-bytes!!!""#)]);
    }

    #[test]
    fn secret_and_secret_file_together_are_refused() {
        assert_error(
            &[("secret_file", r#""secret""#)],
            "secret",
            "either secret or secret_file",
        );
    }

    #[test]
    fn secret_file_alone_is_accepted() {
        let config = parse_with(&[("secret_file", r#""/etc/wson/secret""#)], &["secret"]).unwrap();
        assert_eq!(
            config.secret,
            Secret::File(PathBuf::from("/etc/wson/secret"))
        );
        let (key, message) = only_error(&[("secret_file", r#""""#)], &["secret"]);
        assert_eq!(
            (key.as_str(), message.as_str()),
            ("secret_file", "empty path")
        );
    }

    fn file_config(dir: &Path) -> Config {
        let file = dir.join("wson.toml");
        parse(&text(&[("secret_file", r#""secret""#)], &["secret"]), &file).unwrap()
    }

    #[test]
    fn inline_secret_resolves_to_its_bytes() {
        let resolved = resolve_secret(&config_with(&[]), false).unwrap();
        assert_eq!(resolved.bytes, SECRET.as_bytes());
        assert!(!resolved.created);
        assert!(!format!("{resolved:?}").contains(SECRET));
    }

    #[test]
    fn missing_secret_file_is_created_0600_with_64_hex_characters() {
        let dir = tempfile::tempdir().unwrap();
        let config = file_config(dir.path());
        let path = dir.path().join("secret");

        let resolved = resolve_secret(&config, true).unwrap();
        assert!(resolved.created);
        assert_eq!(resolved.bytes.len(), 64);
        assert!(
            resolved
                .bytes
                .iter()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_eq!(fs::read(&path).unwrap(), resolved.bytes);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // The next start reads the same secret and creates nothing.
        let again = resolve_secret(&config, true).unwrap();
        assert_eq!(again.bytes, resolved.bytes);
        assert!(!again.created);
    }

    #[test]
    fn missing_secret_file_without_create_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve_secret(&file_config(dir.path()), false).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("secret_file"));
        assert!(
            error
                .message
                .contains(&dir.path().join("secret").display().to_string()),
            "{error}"
        );
        assert!(!dir.path().join("secret").exists());
    }

    #[test]
    fn secret_file_in_a_missing_folder_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let config = file_config(&dir.path().join("nowhere"));
        let error = resolve_secret(&config, true).unwrap_err();
        assert!(error.message.contains("cannot create"), "{error}");
    }

    #[test]
    fn secret_file_trailing_newline_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "  0123456789abcdef \r\n\n").unwrap();
        let resolved = resolve_secret(&file_config(dir.path()), true).unwrap();
        // Only trailing whitespace goes: leading bytes are part of the secret.
        assert_eq!(resolved.bytes, b"  0123456789abcdef");
        assert!(!resolved.created);
    }

    #[test]
    fn short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "0123456789abcde\n").unwrap();
        let error = resolve_secret(&file_config(dir.path()), true).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("secret_file"));
        assert!(
            error.message.ends_with("secret: shorter than 16 bytes"),
            "{error}"
        );
        assert!(!error.message.contains("0123456789abcde"), "{error}");
    }

    #[test]
    fn oversized_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let len = usize::try_from(MAX_SECRET_FILE_LEN).unwrap() + 1;
        fs::write(dir.path().join("secret"), "a".repeat(len)).unwrap();
        let error = resolve_secret(&file_config(dir.path()), false).unwrap_err();
        assert!(error.message.contains("longer than 4096"), "{error}");
    }

    #[test]
    fn secret_file_readable_by_others_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "0123456789abcdef").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let resolved = resolve_secret(&file_config(dir.path()), false).unwrap();
        assert_eq!(resolved.bytes, b"0123456789abcdef");
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), b"000fa5ff");
    }
}
