//! Cookie authorization: the `Cookie` header of a handshake in, an [`Identity`] or an
//! [`AuthError`] out.
//!
//! A backend signs four cookies, `token`, `user`, `time` and `digest`, with a secret it
//! shares with wson (wson-compatible `md5`, or `hmac-sha256`). Parsing is lenient (RFC 6265
//! §5.2 style), verification strict: lengths and charsets first, then the digest in constant
//! time, then the time window against the `now` the caller passes in. The module is pure: no
//! clock, no I/O. Token, digest, cookie values and secret never appear in any output.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::token::{TOKEN_LEN, Token};

/// How far (in seconds) a cookie's `time` may lie ahead of `now`: the backend's clock and
/// ours are not the same clock.
pub const CLOCK_SKEW_ALLOWANCE: u64 = 300;

/// The longest user name, in bytes after percent-decoding.
pub const MAX_USER_LEN: usize = 255;

/// `u64::MAX` has 20 decimal digits; a longer `time` cannot be valid.
const MAX_TIME_DIGITS: usize = 20;

const MD5_LEN: usize = 16;
const SHA256_LEN: usize = 32;

/// Cookie names, as the backend sets them.
const TOKEN_COOKIE: &str = "token";
const USER_COOKIE: &str = "user";
const TIME_COOKIE: &str = "time";
const DIGEST_COOKIE: &str = "digest";

/// The token charset, 64 symbols, so a random byte maps onto it uniformly by its low 6 bits.
const TOKEN_ALPHABET: [u8; 64] =
    *b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";

/// How the `digest` cookie is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// `md5_hex(secret + user + token + time)`, as the original wson computes it.
    Md5,
    /// `hex(HMAC-SHA256(key = secret, msg = token + ":" + time + ":" + user))`.
    HmacSha256,
}

impl Digest {
    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::HmacSha256 => "hmac-sha256",
        }
    }

    /// Length of the raw digest in bytes (the cookie carries twice as many hex digits).
    fn output_len(self) -> usize {
        match self {
            Digest::Md5 => MD5_LEN,
            Digest::HmacSha256 => SHA256_LEN,
        }
    }
}

/// Seconds since the Unix epoch; cookie times are in these units.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Who an authorized connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub token: Token,
    pub user: String,
    /// The cookie's `time`, unix seconds.
    pub issued_at: u64,
    /// `issued_at + token_lifetime` (saturating), unix seconds.
    pub expires_at: u64,
}

/// Why a cookie header does not authorize. No variant carries a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    MissingCookie {
        name: &'static str,
    },
    /// Not exactly 32 characters of `[0-9A-Za-z_-]`.
    BadToken,
    /// Bad percent-encoding, not UTF-8, empty or longer than 255 bytes.
    BadUser,
    /// Not decimal digits, or more than a u64 holds.
    BadTime,
    /// Not lowercase hex of the digest's length.
    BadDigestFormat,
    DigestMismatch,
    /// `now - issued_at` exceeds the token lifetime.
    Expired {
        issued_at: u64,
        now: u64,
    },
    /// `issued_at` lies more than [`CLOCK_SKEW_ALLOWANCE`] seconds after `now`.
    FromFuture {
        issued_at: u64,
        now: u64,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingCookie { name } => write!(f, "no {name} cookie"),
            AuthError::BadToken => write!(f, "token cookie is not 32 characters of [0-9A-Za-z_-]"),
            AuthError::BadUser => {
                write!(
                    f,
                    "user cookie is not 1 to {MAX_USER_LEN} bytes of percent-encoded UTF-8"
                )
            }
            AuthError::BadTime => write!(f, "time cookie is not decimal unix seconds"),
            AuthError::BadDigestFormat => {
                write!(
                    f,
                    "digest cookie is not lowercase hex of the configured digest's length"
                )
            }
            AuthError::DigestMismatch => write!(f, "digest does not match"),
            AuthError::Expired { issued_at, now } => {
                write!(f, "cookie expired: issued at {issued_at}, now {now}")
            }
            AuthError::FromFuture { issued_at, now } => write!(
                f,
                "cookie issued at {issued_at}, more than {CLOCK_SKEW_ALLOWANCE} s after now {now}"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// The four cookie values as sent (quotes removed, still percent-encoded).
struct Cookies<'a> {
    token: &'a [u8],
    user: &'a [u8],
    time: &'a [u8],
    digest: &'a [u8],
}

/// Verifies the `token`, `user`, `time` and `digest` cookies in `cookie_header` (every Cookie
/// header value joined by "; ") and returns who they identify.
pub fn authorize(
    cookie_header: &[u8],
    secret: &[u8],
    digest: Digest,
    token_lifetime: u64,
    now: u64,
) -> Result<Identity, AuthError> {
    let cookies = find_cookies(cookie_header)?;

    // Lengths and charsets first: nothing reaches the digest that could not be valid.
    let token = parse_token(cookies.token)?;
    let user = percent_decode_user(cookies.user)?;
    let time_text = parse_time_text(cookies.time)?;
    let issued_at = decimal(time_text).ok_or(AuthError::BadTime)?;
    let mut digest_buf = [0u8; SHA256_LEN];
    let sent = digest_buf
        .get_mut(..digest.output_len())
        .ok_or(AuthError::BadDigestFormat)?;
    decode_lower_hex(cookies.digest, sent)?;

    // Then the digest, in constant time. `time` enters it as the digits sent.
    let matches = match digest {
        Digest::Md5 => {
            let expected = md5(secret, user.as_bytes(), token.as_bytes(), time_text);
            constant_time_eq(&expected, sent)
        }
        Digest::HmacSha256 => hmac_sha256(secret, token.as_bytes(), time_text, user.as_bytes())
            .is_some_and(|mac| mac.verify_slice(sent).is_ok()),
    };
    if !matches {
        return Err(AuthError::DigestMismatch);
    }

    // Then the time window.
    if issued_at > now {
        if issued_at - now > CLOCK_SKEW_ALLOWANCE {
            return Err(AuthError::FromFuture { issued_at, now });
        }
    } else if now - issued_at > token_lifetime {
        return Err(AuthError::Expired { issued_at, now });
    }

    Ok(Identity {
        token,
        user,
        issued_at,
        expires_at: issued_at.saturating_add(token_lifetime),
    })
}

/// The lowercase hex digest of these values, as `authorize` expects it.
pub fn sign(secret: &[u8], digest: Digest, user: &str, token: &Token, time: u64) -> String {
    let time_text = time.to_string();
    match digest {
        Digest::Md5 => hex(&md5(
            secret,
            user.as_bytes(),
            token.as_bytes(),
            time_text.as_bytes(),
        )),
        Digest::HmacSha256 => {
            match hmac_sha256(
                secret,
                token.as_bytes(),
                time_text.as_bytes(),
                user.as_bytes(),
            ) {
                Some(mac) => hex(&mac.finalize().into_bytes()),
                // HMAC accepts keys of any length, so this is never reached; an empty digest
                // would never verify.
                None => String::new(),
            }
        }
    }
}

/// A Cookie header value `token=..; user=..; time=..; digest=..` that `authorize` accepts
/// (the user percent-encoded where a cookie value could not hold it).
pub fn cookie_header(
    secret: &[u8],
    digest: Digest,
    user: &str,
    token: &Token,
    time: u64,
) -> String {
    let mut header = String::with_capacity(TOKEN_LEN + user.len() * 3 + 128);
    header.push_str("token=");
    // The token bytes are in the cookie charset when they come from `token_from_random`;
    // anything else is escaped so the header stays well formed.
    percent_encode_into(token.as_bytes(), &mut header);
    header.push_str("; user=");
    percent_encode_into(user.as_bytes(), &mut header);
    header.push_str("; time=");
    header.push_str(&time.to_string());
    header.push_str("; digest=");
    header.push_str(&sign(secret, digest, user, token, time));
    header
}

/// A token from 32 random bytes (the caller reads them from the OS). 256 is a multiple of 64,
/// so taking each byte modulo 64 keeps every symbol equally likely.
pub fn token_from_random(bytes: [u8; TOKEN_LEN]) -> Token {
    Token::from_array(bytes.map(|byte| TOKEN_ALPHABET[usize::from(byte % 64)]))
}

/// The first `token`, `user`, `time` and `digest` cookies.
///
/// RFC 6265 §5.2-style leniency: pairs split on ';', spaces and tabs trimmed around names and
/// values, a pair without '=' skipped, a value in double quotes unwrapped (RFC 6265 §4.1.1:
/// `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`), other cookies ignored,
/// and for a name sent twice the first wins (RFC 6265 §5.4: the more specific cookie comes
/// first).
fn find_cookies(header: &[u8]) -> Result<Cookies<'_>, AuthError> {
    let mut token = None;
    let mut user = None;
    let mut time = None;
    let mut digest = None;
    for pair in header.split(|&byte| byte == b';') {
        let Some(equals) = pair.iter().position(|&byte| byte == b'=') else {
            continue;
        };
        let (Some(name), Some(value)) = (pair.get(..equals), pair.get(equals + 1..)) else {
            continue;
        };
        let slot = match trim(name) {
            b"token" => &mut token,
            b"user" => &mut user,
            b"time" => &mut time,
            b"digest" => &mut digest,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(unquote(trim(value)));
        }
    }
    let missing = |name| AuthError::MissingCookie { name };
    Ok(Cookies {
        token: token.ok_or(missing(TOKEN_COOKIE))?,
        user: user.ok_or(missing(USER_COOKIE))?,
        time: time.ok_or(missing(TIME_COOKIE))?,
        digest: digest.ok_or(missing(DIGEST_COOKIE))?,
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

fn parse_token(value: &[u8]) -> Result<Token, AuthError> {
    Token::from_slice(value)
        .filter(Token::has_cookie_charset)
        .ok_or(AuthError::BadToken)
}

/// Percent-decodes the user (PHP's `setcookie` urlencodes values; '+' is left as '+'), then
/// requires 1..=255 bytes of UTF-8.
fn percent_decode_user(value: &[u8]) -> Result<String, AuthError> {
    // Each decoded byte takes at most 3 encoded ones: refuse a long value before decoding.
    if value.is_empty() || value.len() > MAX_USER_LEN * 3 {
        return Err(AuthError::BadUser);
    }
    let mut decoded = Vec::with_capacity(value.len());
    let mut rest = value;
    while let [first, tail @ ..] = rest {
        if *first == b'%' {
            let [high, low, after @ ..] = tail else {
                return Err(AuthError::BadUser);
            };
            let byte = hex_value(*high)
                .zip(hex_value(*low))
                .map(|(high, low)| high << 4 | low)
                .ok_or(AuthError::BadUser)?;
            decoded.push(byte);
            rest = after;
        } else {
            decoded.push(*first);
            rest = tail;
        }
    }
    if decoded.len() > MAX_USER_LEN {
        return Err(AuthError::BadUser);
    }
    String::from_utf8(decoded).map_err(|_| AuthError::BadUser)
}

/// Either case is accepted inside %XX, as URL encoders differ.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The time digits, checked for charset and length (their value is read by `decimal`).
fn parse_time_text(value: &[u8]) -> Result<&[u8], AuthError> {
    if value.is_empty() || value.len() > MAX_TIME_DIGITS || !value.iter().all(u8::is_ascii_digit) {
        return Err(AuthError::BadTime);
    }
    Ok(value)
}

/// The value of ASCII decimal digits, or `None` on overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, digit| {
        value
            .checked_mul(10)?
            .checked_add(u64::from(digit.checked_sub(b'0')?))
    })
}

/// Decodes exactly `out.len() * 2` lowercase hex digits into `out`.
fn decode_lower_hex(text: &[u8], out: &mut [u8]) -> Result<(), AuthError> {
    if text.len() != out.len() * 2 {
        return Err(AuthError::BadDigestFormat);
    }
    let lower = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [high, low] = pair else {
            return Err(AuthError::BadDigestFormat);
        };
        *byte = lower(*high)
            .zip(lower(*low))
            .map(|(high, low)| high << 4 | low)
            .ok_or(AuthError::BadDigestFormat)?;
    }
    Ok(())
}

fn md5(secret: &[u8], user: &[u8], token: &[u8], time: &[u8]) -> [u8; MD5_LEN] {
    let mut hasher = Md5::new();
    hasher.update(secret);
    hasher.update(user);
    hasher.update(token);
    hasher.update(time);
    hasher.finalize().into()
}

/// The MAC over `token:time:user`, ready to finalize or verify. `None` only if the key were
/// refused, which HMAC never does.
fn hmac_sha256(secret: &[u8], token: &[u8], time: &[u8], user: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(token);
    mac.update(b":");
    mac.update(time);
    mac.update(b":");
    mac.update(user);
    Some(mac)
}

/// Equal lengths and equal bytes, without an early exit that would time the first mismatch.
fn constant_time_eq(expected: &[u8], sent: &[u8]) -> bool {
    expected.len() == sent.len()
        && expected
            .iter()
            .zip(sent)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Appends `bytes`, escaping as %XX every byte that is not a cookie-octet (RFC 6265 §4.1.1:
/// `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`) and '%' itself.
fn percent_encode_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        let plain = matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
            && byte != b'%';
        if plain {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef-secret";
    const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz012345";
    const TIME: u64 = 1_700_000_000;
    const LIFETIME: u64 = 3600;
    /// Computed independently: python3 hashlib.md5(secret + user + token + time).hexdigest()
    const MD5_ALICE: &str = "c1bc041b314a4951f2fb4303e0baf935";
    /// python3 hmac.new(secret, token + b":" + time + b":" + user, hashlib.sha256).hexdigest()
    const HMAC_ALICE: &str = "215c94425626dcb92ebba86c91e88954ae0e60cfbf9d684e6e7c25f462960236";
    /// The same two for the user "José Ñ+1" (UTF-8).
    const MD5_JOSE: &str = "94f5f55e9c2f34966aedab3686a9f49e";
    const HMAC_JOSE: &str = "27b9b934d8f4e4b2ef819a27759e71a99fc7d11fd65651b4a7a2f3416a4854dc";

    fn token() -> Token {
        Token::from_slice(TOKEN.as_bytes()).unwrap()
    }

    fn header(user: &str, time: &str, digest: &str) -> String {
        format!("token={TOKEN}; user={user}; time={time}; digest={digest}")
    }

    fn alice(digest: Digest) -> String {
        let value = match digest {
            Digest::Md5 => MD5_ALICE,
            Digest::HmacSha256 => HMAC_ALICE,
        };
        header("alice", "1700000000", value)
    }

    fn check(header: &str, digest: Digest) -> Result<Identity, AuthError> {
        authorize(header.as_bytes(), SECRET, digest, LIFETIME, TIME)
    }

    fn identity(user: &str, issued_at: u64) -> Identity {
        Identity {
            token: token(),
            user: user.to_owned(),
            issued_at,
            expires_at: issued_at + LIFETIME,
        }
    }

    #[test]
    fn md5_matches_independent_vector() {
        assert_eq!(
            sign(SECRET, Digest::Md5, "alice", &token(), TIME),
            MD5_ALICE
        );
        assert_eq!(
            sign(SECRET, Digest::Md5, "José Ñ+1", &token(), TIME),
            MD5_JOSE
        );
        assert_eq!(
            check(&alice(Digest::Md5), Digest::Md5),
            Ok(identity("alice", TIME))
        );
    }

    #[test]
    fn hmac_sha256_matches_independent_vector() {
        assert_eq!(
            sign(SECRET, Digest::HmacSha256, "alice", &token(), TIME),
            HMAC_ALICE
        );
        assert_eq!(
            sign(SECRET, Digest::HmacSha256, "José Ñ+1", &token(), TIME),
            HMAC_JOSE
        );
        assert_eq!(
            check(&alice(Digest::HmacSha256), Digest::HmacSha256),
            Ok(identity("alice", TIME))
        );
    }

    #[test]
    fn user_is_percent_decoded_and_plus_stays_plus() {
        // PHP: urlencode("José Ñ+1") would give "Jos%C3%A9+%C3%91%2B1"; here the space is %20
        // and '+' is literal, which must stay '+'.
        let cookie = header("Jos%C3%A9%20%c3%91+1", "1700000000", MD5_JOSE);
        assert_eq!(check(&cookie, Digest::Md5), Ok(identity("José Ñ+1", TIME)));
        let cookie = header("Jos%C3%A9%20%C3%91+1", "1700000000", HMAC_JOSE);
        assert_eq!(
            check(&cookie, Digest::HmacSha256),
            Ok(identity("José Ñ+1", TIME))
        );
    }

    #[test]
    fn digest_names() {
        assert_eq!(Digest::Md5.name(), "md5");
        assert_eq!(Digest::HmacSha256.name(), "hmac-sha256");
    }

    #[test]
    fn each_missing_cookie_is_named() {
        let full = alice(Digest::Md5);
        for name in ["token", "user", "time", "digest"] {
            let without: Vec<&str> = full
                .split("; ")
                .filter(|pair| !pair.starts_with(&format!("{name}=")))
                .collect();
            assert_eq!(
                check(&without.join("; "), Digest::Md5),
                Err(AuthError::MissingCookie { name })
            );
        }
        assert_eq!(
            check("", Digest::Md5),
            Err(AuthError::MissingCookie { name: "token" })
        );
    }

    #[test]
    fn token_must_be_32_cookie_charset_characters() {
        for bad in [
            "abcdefghijklmnopqrstuvwxyz01234",   // 31
            "abcdefghijklmnopqrstuvwxyz0123456", // 33
            "abcdefghijklmnopqrstuvwxyz01234=",  // '='
            "abcdefghijklmnopqrstuvwxyz01234.",  // '.'
            "",
        ] {
            let cookie = format!("token={bad}; user=alice; time=1700000000; digest={MD5_ALICE}");
            assert_eq!(
                check(&cookie, Digest::Md5),
                Err(AuthError::BadToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_user_values_are_refused() {
        let long = "a".repeat(MAX_USER_LEN + 1);
        let long_encoded = "%61".repeat(MAX_USER_LEN + 1);
        for bad in [
            "",
            "%",
            "%4",
            "%zz",
            "a%g1",
            "%FF%FE",
            "%C3",
            &long,
            &long_encoded,
        ] {
            assert_eq!(
                check(&header(bad, "1700000000", MD5_ALICE), Digest::Md5),
                Err(AuthError::BadUser),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn user_of_255_bytes_is_accepted() {
        let user = "é".repeat(127) + "a"; // 255 bytes
        let cookie = cookie_header(SECRET, Digest::Md5, &user, &token(), TIME);
        assert_eq!(check(&cookie, Digest::Md5), Ok(identity(&user, TIME)));
    }

    #[test]
    fn bad_time_values_are_refused() {
        for bad in [
            "",
            "-1",
            "+1",
            "17e8",
            "1 2",
            "0x10",
            "18446744073709551616",
            "000000000000000000001",
        ] {
            assert_eq!(
                check(&header("alice", bad, MD5_ALICE), Digest::Md5),
                Err(AuthError::BadTime),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn time_is_signed_as_the_digits_sent() {
        // "01700000000" has the value of TIME but is not the string that was signed.
        assert_eq!(
            check(&header("alice", "01700000000", MD5_ALICE), Digest::Md5),
            Err(AuthError::DigestMismatch)
        );
    }

    #[test]
    fn digest_must_be_lowercase_hex_of_the_right_length() {
        let upper = MD5_ALICE.to_uppercase();
        let short = &MD5_ALICE[..31];
        let long = format!("{MD5_ALICE}0");
        for bad in [upper.as_str(), short, long.as_str(), "", HMAC_ALICE] {
            assert_eq!(
                check(&header("alice", "1700000000", bad), Digest::Md5),
                Err(AuthError::BadDigestFormat),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(
                &header("alice", "1700000000", MD5_ALICE),
                Digest::HmacSha256
            ),
            Err(AuthError::BadDigestFormat)
        );
        let upper = HMAC_ALICE.to_uppercase();
        assert_eq!(
            check(&header("alice", "1700000000", &upper), Digest::HmacSha256),
            Err(AuthError::BadDigestFormat)
        );
        let not_hex = format!("{}g", &MD5_ALICE[..31]);
        assert_eq!(
            check(&header("alice", "1700000000", &not_hex), Digest::Md5),
            Err(AuthError::BadDigestFormat)
        );
    }

    #[test]
    fn digest_mismatch_for_other_user_secret_or_digest() {
        assert_eq!(
            check(&header("bob", "1700000000", MD5_ALICE), Digest::Md5),
            Err(AuthError::DigestMismatch)
        );
        assert_eq!(
            authorize(
                alice(Digest::Md5).as_bytes(),
                b"other secret",
                Digest::Md5,
                LIFETIME,
                TIME
            ),
            Err(AuthError::DigestMismatch)
        );
        assert_eq!(
            check(
                &header("alice", "1700000001", HMAC_ALICE),
                Digest::HmacSha256
            ),
            Err(AuthError::DigestMismatch)
        );
        let mut flipped = MD5_ALICE.to_owned();
        flipped.replace_range(31.., "4");
        assert_eq!(
            check(&header("alice", "1700000000", &flipped), Digest::Md5),
            Err(AuthError::DigestMismatch)
        );
    }

    fn at(issued_at: u64, now: u64) -> Result<Identity, AuthError> {
        let cookie = cookie_header(SECRET, Digest::HmacSha256, "alice", &token(), issued_at);
        authorize(cookie.as_bytes(), SECRET, Digest::HmacSha256, LIFETIME, now)
    }

    #[test]
    fn expiry_boundary_is_inclusive() {
        assert_eq!(at(TIME, TIME + LIFETIME), Ok(identity("alice", TIME)));
        assert_eq!(
            at(TIME, TIME + LIFETIME + 1),
            Err(AuthError::Expired {
                issued_at: TIME,
                now: TIME + LIFETIME + 1
            })
        );
    }

    #[test]
    fn clock_skew_boundary_is_inclusive() {
        let future = TIME + CLOCK_SKEW_ALLOWANCE;
        assert_eq!(at(future, TIME), Ok(identity("alice", future)));
        assert_eq!(
            at(future + 1, TIME),
            Err(AuthError::FromFuture {
                issued_at: future + 1,
                now: TIME
            })
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        assert_eq!(
            at(u64::MAX, 0),
            Err(AuthError::FromFuture {
                issued_at: u64::MAX,
                now: 0
            })
        );
        assert!(matches!(at(0, u64::MAX), Err(AuthError::Expired { .. })));
        let identity = at(u64::MAX, u64::MAX).unwrap();
        assert_eq!(identity.expires_at, u64::MAX);
        assert!(at(0, 0).is_ok());
    }

    #[test]
    fn cookie_parsing_is_lenient() {
        let quoted = format!(
            "\t token = \"{TOKEN}\" ;user=\"alice\";  time=1700000000\t;digest=\"{MD5_ALICE}\""
        );
        let others = format!(
            "_ga=GA1.2.3; novalue; =x; {}; theme=dark; tokens=x",
            alice(Digest::Md5)
        );
        let duplicates = format!(
            "{}; user=mallory; digest={}",
            alice(Digest::Md5),
            "0".repeat(32)
        );
        let joined =
            format!("a=1; token={TOKEN}; user=alice; b=2; time=1700000000; digest={MD5_ALICE}");
        for cookie in [quoted, others, duplicates, joined] {
            assert_eq!(
                check(&cookie, Digest::Md5),
                Ok(identity("alice", TIME)),
                "{cookie:?}"
            );
        }
    }

    #[test]
    fn cookie_names_are_case_sensitive() {
        let cookie = alice(Digest::Md5).replace("token=", "Token=");
        assert_eq!(
            check(&cookie, Digest::Md5),
            Err(AuthError::MissingCookie { name: "token" })
        );
    }

    #[test]
    fn cookie_header_escapes_what_a_cookie_cannot_hold() {
        let user = "a b;c\"d%e,f\\g+h=i";
        let cookie = cookie_header(SECRET, Digest::Md5, user, &token(), TIME);
        let digest = sign(SECRET, Digest::Md5, user, &token(), TIME);
        assert_eq!(
            cookie,
            format!(
                "token={TOKEN}; user=a%20b%3Bc%22d%25e%2Cf%5Cg+h=i; time=1700000000; digest={digest}"
            )
        );
        assert_eq!(check(&cookie, Digest::Md5), Ok(identity(user, TIME)));
    }

    #[test]
    fn token_from_random_is_uniform_over_the_cookie_charset() {
        let all: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 8 + 3).unwrap());
        let token = token_from_random(all);
        assert!(token.has_cookie_charset());
        // Each of 256 byte values maps to one of 64 symbols, each symbol hit exactly 4 times.
        let mut counts = [0u32; 256];
        for byte in 0..=255u8 {
            let symbol = token_from_random([byte; 32]).as_bytes()[0];
            counts[usize::from(symbol)] += 1;
        }
        assert_eq!(counts.iter().filter(|&&c| c == 4).count(), 64);
        assert_eq!(counts.iter().filter(|&&c| c != 0 && c != 4).count(), 0);
    }

    #[test]
    fn errors_never_show_credentials() {
        let errors = [
            AuthError::MissingCookie { name: "digest" },
            AuthError::BadToken,
            AuthError::BadUser,
            AuthError::BadTime,
            AuthError::BadDigestFormat,
            AuthError::DigestMismatch,
            AuthError::Expired {
                issued_at: 1,
                now: 2,
            },
            AuthError::FromFuture {
                issued_at: 2,
                now: 1,
            },
        ];
        for error in errors {
            let text = format!("{error} {error:?}");
            assert!(!text.contains(TOKEN) && !text.contains(MD5_ALICE), "{text}");
        }
        let debug = format!("{:?}", identity("alice", TIME));
        assert!(!debug.contains(TOKEN));
    }

    proptest! {
        #[test]
        fn cookie_header_always_authorizes_within_the_window(
            user in "(?s).{1,60}",
            bytes in any::<[u8; 32]>(),
            now in 0u64..=u64::MAX / 2,
            age in 0u64..=LIFETIME,
            ahead in 0u64..=CLOCK_SKEW_ALLOWANCE,
            future in any::<bool>(),
            hmac in any::<bool>(),
        ) {
            prop_assume!(user.len() <= MAX_USER_LEN);
            let digest = if hmac { Digest::HmacSha256 } else { Digest::Md5 };
            let token = token_from_random(bytes);
            let time = if future { now + ahead } else { now.saturating_sub(age) };
            let cookie = cookie_header(SECRET, digest, &user, &token, time);
            let identity = authorize(cookie.as_bytes(), SECRET, digest, LIFETIME, now);
            prop_assert_eq!(
                identity,
                Ok(Identity { token, user, issued_at: time, expires_at: time + LIFETIME })
            );
        }

        #[test]
        fn arbitrary_cookie_headers_never_panic(
            header in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let _ = authorize(&header, SECRET, Digest::Md5, LIFETIME, TIME);
            let _ = authorize(&header, SECRET, Digest::HmacSha256, LIFETIME, TIME);
        }
    }
}
