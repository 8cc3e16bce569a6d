//! WAMP messages on the control socket: `{len}V{json}` both ways (COMMANDS.md, "V"). The
//! backend's WAMP session speaks wamp.2.json over the control framing, so a PHP script can
//! publish, register, call and yield with `json_encode` and a blocking socket.

use crate::control::wire;
use crate::wamp::{Message, Serializer};

/// The command byte of a WAMP frame, either way.
pub const WAMP_BYTE: u8 = b'V';

/// Appends the frame `{len}V{json}` carrying `message` to `out`.
pub fn encode_frame(message: &Message, out: &mut Vec<u8>) {
    let json = Serializer::Json.encode(message);
    wire::encode_header(WAMP_BYTE, json.len(), out);
    out.extend_from_slice(&json);
}
