//! The 32-byte client token: the key that control commands address a client by.
//!
//! A `Token` is just 32 bytes. The cookie parser in `auth` only admits the charset
//! `[0-9A-Za-z_-]`, but a control frame may name any 32 bytes (the lookup then fails),
//! so the type itself does not promise the charset.

use std::fmt;

/// Length of a token in bytes, fixed by the wson protocol (`AUTH_TOKEN_LEN`).
pub const TOKEN_LEN: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// The token made of exactly these bytes, or `None` when `bytes` is not 32 long.
    pub fn from_slice(bytes: &[u8]) -> Option<Token> {
        <[u8; TOKEN_LEN]>::try_from(bytes).ok().map(Token)
    }

    pub fn from_array(bytes: [u8; TOKEN_LEN]) -> Token {
        Token(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// True when every byte is in the cookie token charset `[0-9A-Za-z_-]`.
    pub fn has_cookie_charset(&self) -> bool {
        self.0
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    }
}

/// Tokens are credentials: never print them, not even in debug output.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_slice_requires_exactly_32_bytes() {
        assert!(Token::from_slice(&[b'a'; 31]).is_none());
        assert!(Token::from_slice(&[b'a'; 33]).is_none());
        assert_eq!(
            Token::from_slice(&[b'a'; 32]).map(|t| *t.as_bytes()),
            Some([b'a'; 32])
        );
    }

    #[test]
    fn charset_is_url_safe_base64_alphabet() {
        assert!(Token::from_array([b'Z'; 32]).has_cookie_charset());
        let mut bytes = [b'-'; 32];
        bytes[5] = b'=';
        assert!(!Token::from_array(bytes).has_cookie_charset());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", Token::from_array([b'q'; 32]));
        assert!(!text.contains('q'));
    }
}
