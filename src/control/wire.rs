//! What the framing and the fields encoding share: the decimal length prefix, and how a
//! byte is shown in an error message. The bottom of `control/`, so that `codec` (framing
//! and its errors) and `fields` can both use it without depending on each other.

use std::fmt;
use std::io::Write as _;

/// Most decimal digits a length field may have, leading zeros included. Twenty digits hold
/// every `u64`, so no accepted length can be cut short by this bound.
pub const MAX_LENGTH_DIGITS: usize = 20;

/// A byte as `'b'` or `'\x00'`, so an error message never carries raw control characters.
pub(crate) fn show_byte(byte: u8) -> impl fmt::Display {
    struct Shown(u8);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "'{}'", std::ascii::escape_default(self.0))
        }
    }
    Shown(byte)
}

/// Appends the header of a frame, `{payload_len}{command}`, to `out`.
pub fn encode_header(command: u8, payload_len: usize, out: &mut Vec<u8>) {
    // Writing into a Vec<u8> cannot fail.
    let _ = write!(out, "{payload_len}");
    out.push(command);
}
