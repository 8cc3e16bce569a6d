//! Meaning of control frames: a `RawFrame` from `control::codec` becomes a `Command`, and
//! what wson answers is a `Reply` encoded back into the same framing.
//!
//! The command set is the PHP ws(s)on's (`b B c C d D l f F i I s S m p P q Q`) plus `t`
//! (status). Every command byte either maps to a `Command` or is
//! `ControlError::UnknownCommand`; every `ControlError` maps to the reply `0E`
//! (`Reply::from_error`). Executing a command against the hub belongs to the server, not
//! here. COMMANDS.md is the reference for every rule.

use crate::control::codec::{self, ControlError, RawFrame};
use crate::token::{TOKEN_LEN, Token};

/// Where a fragment sits in the message being sent to the locked client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentPosition {
    /// `f`/`F`: opens the message (text or binary, not FIN).
    First,
    /// `i`/`I`: continues it (a continuation frame, not FIN).
    Middle,
    /// `s`/`S`: ends it (a continuation frame with FIN) and unlocks the client.
    Last,
}

/// A command a backend sent on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `b` (text) / `B` (binary): the message to every client.
    Broadcast { binary: bool, message: &'a [u8] },
    /// `c`/`C` (confirmed: reply `A`/`N`) and `d`/`D` (no reply): the message to the client
    /// holding `token`. An empty message sends nothing: with `confirm` it is an online check.
    Direct {
        confirm: bool,
        binary: bool,
        token: Token,
        message: &'a [u8],
    },
    /// `l`: lock the client holding `token` for a fragmented message from this connection.
    Lock { token: Token },
    /// `f F i I s S`: one fragment to the client this connection locked. As in ws(s)on,
    /// `i`/`I` and `s`/`S` go out as continuation frames whatever their case; `binary`
    /// keeps the case anyway.
    Fragment {
        position: FragmentPosition,
        binary: bool,
        message: &'a [u8],
    },
    /// `m`: asks for the domain of the least loaded listener.
    Domain,
    /// `p`: ping; the answer is `0P`.
    Ping,
    /// `P`: pong, the answer to wson's `0p`.
    Pong,
    /// `q`/`Q`: close this control connection.
    Quit,
    /// `t`: asks for the status JSON.
    Status,
}

impl Command<'_> {
    /// The byte that names this command on the wire (`Quit` is sent as `q`).
    pub fn command_byte(&self) -> u8 {
        match *self {
            Command::Broadcast { binary, .. } => pick(binary, b'B', b'b'),
            Command::Direct {
                confirm, binary, ..
            } => match (confirm, binary) {
                (true, false) => b'c',
                (true, true) => b'C',
                (false, false) => b'd',
                (false, true) => b'D',
            },
            Command::Lock { .. } => b'l',
            Command::Fragment {
                position, binary, ..
            } => match position {
                FragmentPosition::First => pick(binary, b'F', b'f'),
                FragmentPosition::Middle => pick(binary, b'I', b'i'),
                FragmentPosition::Last => pick(binary, b'S', b's'),
            },
            Command::Domain => b'm',
            Command::Ping => b'p',
            Command::Pong => b'P',
            Command::Quit => b'q',
            Command::Status => b't',
        }
    }

    /// Appends this command as a frame to `out`, as a backend would send it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let command = self.command_byte();
        match *self {
            Command::Broadcast { message, .. } | Command::Fragment { message, .. } => {
                codec::encode(command, message, out);
            }
            Command::Direct { token, message, .. } => {
                codec::encode_header(command, TOKEN_LEN.saturating_add(message.len()), out);
                out.extend_from_slice(token.as_bytes());
                out.extend_from_slice(message);
            }
            Command::Lock { token } => codec::encode(command, token.as_bytes(), out),
            Command::Domain | Command::Ping | Command::Pong | Command::Quit | Command::Status => {
                codec::encode(command, &[], out);
            }
        }
    }
}

fn pick(binary: bool, binary_byte: u8, text_byte: u8) -> u8 {
    if binary { binary_byte } else { text_byte }
}

/// A text message must be UTF-8 as a whole (fragments are checked across frames by the
/// server, which knows where a fragmented message starts and ends).
fn text(command: u8, message: &[u8]) -> Result<&[u8], ControlError> {
    match std::str::from_utf8(message) {
        Ok(_) => Ok(message),
        Err(error) => Err(ControlError::InvalidUtf8 {
            command,
            offset: error.valid_up_to(),
        }),
    }
}

/// What a frame means. Payloads of `m p P q Q t` are ignored, as the PHP ws(s)on did.
pub fn parse(frame: RawFrame<'_>) -> Result<Command<'_>, ControlError> {
    let RawFrame { command, payload } = frame;
    let fragment = |position, binary| {
        Ok(Command::Fragment {
            position,
            binary,
            message: payload,
        })
    };
    match command {
        b'b' => Ok(Command::Broadcast {
            binary: false,
            message: text(command, payload)?,
        }),
        b'B' => Ok(Command::Broadcast {
            binary: true,
            message: payload,
        }),
        b'c' | b'C' | b'd' | b'D' => {
            // COMMANDS.md, c/C/d/D: the payload is the 32-byte token, then the message
            // (possibly empty); a shorter payload is 0E.
            let Some((token, message)) = payload.split_first_chunk::<TOKEN_LEN>() else {
                return Err(ControlError::ShortToken {
                    command,
                    len: payload.len(),
                });
            };
            let binary = matches!(command, b'C' | b'D');
            Ok(Command::Direct {
                confirm: matches!(command, b'c' | b'C'),
                binary,
                token: Token::from_array(*token),
                message: if binary {
                    message
                } else {
                    text(command, message)?
                },
            })
        }
        // COMMANDS.md, l: the payload is exactly the 32-byte token; any other length is 0E.
        b'l' => Token::from_slice(payload)
            .map(|token| Command::Lock { token })
            .ok_or(ControlError::LockPayload { len: payload.len() }),
        b'f' => fragment(FragmentPosition::First, false),
        b'F' => fragment(FragmentPosition::First, true),
        b'i' => fragment(FragmentPosition::Middle, false),
        b'I' => fragment(FragmentPosition::Middle, true),
        b's' => fragment(FragmentPosition::Last, false),
        b'S' => fragment(FragmentPosition::Last, true),
        b'm' => Ok(Command::Domain),
        b'p' => Ok(Command::Ping),
        b'P' => Ok(Command::Pong),
        b'q' | b'Q' => Ok(Command::Quit),
        b't' => Ok(Command::Status),
        // COMMANDS.md, Errors: an unknown command byte is 0E (the PHP ws(s)on skipped it).
        byte => Err(ControlError::UnknownCommand { byte }),
    }
}

/// What wson sends back on a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `32A{token}`: `c`/`C` delivered (or the client is online), or `l` locked.
    Ack(Token),
    /// `32N{token}`: for `c`/`C`, no open client holds the token (absent or closing); for
    /// `l`, the client cannot be locked.
    Nack(Token),
    /// `0a`: the fragment was queued for the locked client.
    FragmentAck,
    /// `0n`: this connection holds no lock (or the locked client is gone).
    FragmentNack,
    /// `{len}M{domain}`: the answer to `m`.
    Domain(String),
    /// `0p`: wson pings an idle control connection; the backend answers `0P`.
    Ping,
    /// `0P`: the answer to the backend's `0p`.
    Pong,
    /// `{len}T{json}`: the answer to `t`.
    Status(String),
    /// `0E`: protocol error; wson closes the connection after sending it.
    Error,
}

impl Reply {
    /// Wire bytes of `Reply::Error`.
    pub const ERROR_BYTES: &'static [u8] = b"0E";
    /// Wire bytes of `Reply::Ping`, the idle-connection ping.
    pub const PING_BYTES: &'static [u8] = b"0p";
    /// Wire bytes of `Reply::Pong`.
    pub const PONG_BYTES: &'static [u8] = b"0P";
    /// Wire bytes of `Reply::FragmentAck`.
    pub const FRAGMENT_ACK_BYTES: &'static [u8] = b"0a";
    /// Wire bytes of `Reply::FragmentNack`.
    pub const FRAGMENT_NACK_BYTES: &'static [u8] = b"0n";

    /// The byte that names this reply on the wire.
    pub fn command_byte(&self) -> u8 {
        match self {
            Reply::Ack(_) => b'A',
            Reply::Nack(_) => b'N',
            Reply::FragmentAck => b'a',
            Reply::FragmentNack => b'n',
            Reply::Domain(_) => b'M',
            Reply::Ping => b'p',
            Reply::Pong => b'P',
            Reply::Status(_) => b'T',
            Reply::Error => b'E',
        }
    }

    /// Appends `32A{token}`, `32N{token}`, `0a`, `0n`, `{len}M{domain}`, `0p`, `0P`,
    /// `{len}T{json}` or `0E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let command = self.command_byte();
        let payload: &[u8] = match self {
            Reply::Ack(token) | Reply::Nack(token) => token.as_bytes(),
            Reply::Domain(text) | Reply::Status(text) => text.as_bytes(),
            Reply::FragmentAck | Reply::FragmentNack | Reply::Ping | Reply::Pong | Reply::Error => {
                &[]
            }
        };
        codec::encode(command, payload, out);
    }

    /// What the backend sees for a protocol error: always `0E`, then the server closes the
    /// connection. Exhaustive, so a new error variant must be given its answer here.
    pub fn from_error(error: &ControlError) -> Reply {
        match error {
            ControlError::NotADigit { .. }
            | ControlError::EmptyLength { .. }
            | ControlError::LengthTooLong { .. }
            | ControlError::FrameTooLarge { .. }
            | ControlError::UnknownCommand { .. }
            | ControlError::ShortToken { .. }
            | ControlError::LockPayload { .. }
            | ControlError::InvalidUtf8 { .. } => Reply::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_pushes_must_be_utf8_but_binary_ones_need_not() {
        let bad = b"ok\xff";
        assert_eq!(
            parse(RawFrame {
                command: b'b',
                payload: bad
            }),
            Err(ControlError::InvalidUtf8 {
                command: b'b',
                offset: 2
            })
        );
        assert!(
            parse(RawFrame {
                command: b'B',
                payload: bad
            })
            .is_ok()
        );
        let mut direct = [b'a'; 32].to_vec();
        direct.extend_from_slice(bad);
        assert_eq!(
            parse(RawFrame {
                command: b'c',
                payload: &direct
            }),
            Err(ControlError::InvalidUtf8 {
                command: b'c',
                offset: 2
            })
        );
        assert!(
            parse(RawFrame {
                command: b'D',
                payload: &direct
            })
            .is_ok()
        );
        assert_eq!(
            Reply::from_error(&ControlError::InvalidUtf8 {
                command: b'd',
                offset: 0
            }),
            Reply::Error
        );
    }
    use crate::decoded::Decoded;
    use proptest::prelude::*;

    const MAX: usize = 65_536;
    /// The token of wson's README examples (it happens to start with "32").
    const TOKEN: &[u8; 32] = b"32febad1f0cf83f38aceb31ad63866c4";

    fn token() -> Token {
        Token::from_array(*TOKEN)
    }

    /// Decodes and parses exactly one frame that fills `input`.
    fn command(input: &[u8]) -> Result<Command<'_>, ControlError> {
        match codec::decode(input, MAX)? {
            Decoded::Done { item, len } => {
                assert_eq!(len, input.len(), "one frame must fill {input:?}");
                parse(item)
            }
            Decoded::Incomplete => panic!("incomplete: {input:?}"),
        }
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn reply_bytes(reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    }

    /// A command with its token made visible (Token's Debug is redacted on purpose) and its
    /// borrowed bytes copied, so results from different buffers compare.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        command: String,
        token: Option<Vec<u8>>,
    }

    fn seen(command: &Command<'_>) -> Seen {
        let token = match command {
            Command::Direct { token, .. } | Command::Lock { token } => {
                Some(token.as_bytes().to_vec())
            }
            _ => None,
        };
        Seen {
            command: format!("{command:?}"),
            token,
        }
    }

    /// The server's read loop in small: buffer each chunk, decode and parse until
    /// `Incomplete`; stop at the first error.
    fn commands_from_chunks(chunks: &[&[u8]]) -> (Vec<Seen>, Option<ControlError>) {
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            loop {
                let (parsed, len) = match codec::decode(&buffer, MAX) {
                    Ok(Decoded::Done { item, len }) => (parse(item), len),
                    Ok(Decoded::Incomplete) => break,
                    Err(error) => return (out, Some(error)),
                };
                match parsed {
                    Ok(command) => out.push(seen(&command)),
                    Err(error) => return (out, Some(error)),
                }
                buffer.drain(..len);
            }
        }
        (out, None)
    }

    fn assert_same_at_every_split(input: &[u8]) -> (Vec<Seen>, Option<ControlError>) {
        let whole = commands_from_chunks(&[input]);
        for cut in 0..=input.len() {
            let (head, tail) = input.split_at(cut);
            assert_eq!(commands_from_chunks(&[head, tail]), whole, "cut at {cut}");
            for second in cut..=input.len() {
                let (middle, end) = tail.split_at(second - cut);
                assert_eq!(
                    commands_from_chunks(&[head, middle, end]),
                    whole,
                    "cuts at {cut} and {second}"
                );
            }
        }
        whole
    }

    // wson README examples, one per command.

    #[test]
    fn b_is_text_broadcast() {
        assert_eq!(
            command(b"15bHello, World!!!"),
            Ok(Command::Broadcast {
                binary: false,
                message: b"Hello, World!!!"
            })
        );
    }

    #[test]
    fn upper_b_is_binary_broadcast() {
        let input = cat(&[b"10B", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]]);
        assert_eq!(
            command(&input),
            Ok(Command::Broadcast {
                binary: true,
                message: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]
            })
        );
    }

    #[test]
    fn c_is_confirmed_text_direct_with_token_first() {
        let input: &[u8] = b"38c32febad1f0cf83f38aceb31ad63866c4Direct";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: false,
                token: token(),
                message: b"Direct"
            })
        );
    }

    #[test]
    fn upper_c_is_confirmed_binary_direct() {
        let input: &[u8] = b"34C32febad1f0cf83f38aceb31ad63866c4\x00\xFF";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: true,
                token: token(),
                message: b"\x00\xFF"
            })
        );
    }

    #[test]
    fn c_with_only_a_token_is_an_online_check() {
        let input: &[u8] = b"32c32febad1f0cf83f38aceb31ad63866c4";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: false,
                token: token(),
                message: b""
            })
        );
    }

    #[test]
    fn d_is_unconfirmed_text_direct() {
        let input: &[u8] = b"44d32febad1f0cf83f38aceb31ad63866c4New message!";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: false,
                binary: false,
                token: token(),
                message: b"New message!"
            })
        );
    }

    #[test]
    fn upper_d_is_unconfirmed_binary_direct() {
        let input: &[u8] = b"33D32febad1f0cf83f38aceb31ad63866c4\xFF";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: false,
                binary: true,
                token: token(),
                message: b"\xFF"
            })
        );
    }

    #[test]
    fn l_locks_by_token() {
        let input: &[u8] = b"32l32febad1f0cf83f38aceb31ad63866c4";
        assert_eq!(command(input), Ok(Command::Lock { token: token() }));
        assert!(matches!(command(input), Ok(Command::Lock { token }) if token.as_bytes() == TOKEN));
    }

    #[test]
    fn f_and_upper_f_open_a_fragmented_message() {
        assert_eq!(
            command(b"5fHello"),
            Ok(Command::Fragment {
                position: FragmentPosition::First,
                binary: false,
                message: b"Hello"
            })
        );
        assert_eq!(
            command(b"1F\xff"),
            Ok(Command::Fragment {
                position: FragmentPosition::First,
                binary: true,
                message: b"\xff"
            })
        );
    }

    #[test]
    fn i_and_upper_i_continue_it_keeping_the_case() {
        assert_eq!(
            command(b"2i, "),
            Ok(Command::Fragment {
                position: FragmentPosition::Middle,
                binary: false,
                message: b", "
            })
        );
        let input = cat(&[b"10I", &[0; 10]]);
        assert_eq!(
            command(&input),
            Ok(Command::Fragment {
                position: FragmentPosition::Middle,
                binary: true,
                message: &[0; 10]
            })
        );
    }

    #[test]
    fn s_and_upper_s_end_it() {
        assert_eq!(
            command(b"6sWorld!"),
            Ok(Command::Fragment {
                position: FragmentPosition::Last,
                binary: false,
                message: b"World!"
            })
        );
        assert_eq!(
            command(b"5S\x01\x02\x03\x04\x05"),
            Ok(Command::Fragment {
                position: FragmentPosition::Last,
                binary: true,
                message: b"\x01\x02\x03\x04\x05"
            })
        );
    }

    #[test]
    fn payloadless_commands() {
        assert_eq!(command(b"0m"), Ok(Command::Domain));
        assert_eq!(command(b"0p"), Ok(Command::Ping));
        assert_eq!(command(b"0P"), Ok(Command::Pong));
        assert_eq!(command(b"0q"), Ok(Command::Quit));
        assert_eq!(command(b"0Q"), Ok(Command::Quit));
        assert_eq!(command(b"0t"), Ok(Command::Status));
    }

    #[test]
    fn payload_of_a_payloadless_command_is_ignored_as_in_wson() {
        assert_eq!(command(b"3pabc"), Ok(Command::Ping));
        assert_eq!(command(b"1t{"), Ok(Command::Status));
    }

    // One test per error the command layer adds.

    #[test]
    fn unknown_command_byte_is_unknown_command() {
        assert_eq!(
            command(b"0x"),
            Err(ControlError::UnknownCommand { byte: b'x' })
        );
        // Reply-only bytes are not commands either.
        for byte in *b"AaNnMETL" {
            let input = [b'0', byte];
            assert_eq!(command(&input), Err(ControlError::UnknownCommand { byte }));
        }
        assert_eq!(
            command(b"2\x00hi"),
            Err(ControlError::UnknownCommand { byte: 0 })
        );
    }

    #[test]
    fn direct_shorter_than_a_token_is_short_token() {
        for byte in *b"cCdD" {
            let input = cat(&[b"31", &[byte], &TOKEN[..31]]);
            assert_eq!(
                command(&input),
                Err(ControlError::ShortToken {
                    command: byte,
                    len: 31
                })
            );
        }
        assert_eq!(
            command(b"0c"),
            Err(ControlError::ShortToken {
                command: b'c',
                len: 0
            })
        );
    }

    #[test]
    fn lock_payload_other_than_a_token_is_lock_payload() {
        assert_eq!(
            command(&cat(&[b"31l", &TOKEN[..31]])),
            Err(ControlError::LockPayload { len: 31 })
        );
        assert_eq!(
            command(&cat(&[b"33l", TOKEN, b"x"])),
            Err(ControlError::LockPayload { len: 33 })
        );
        assert_eq!(command(b"0l"), Err(ControlError::LockPayload { len: 0 }));
    }

    #[test]
    fn every_error_is_answered_0e() {
        let errors = [
            ControlError::NotADigit { byte: b' ' },
            ControlError::EmptyLength { command: b'b' },
            ControlError::LengthTooLong { digits: 21 },
            ControlError::FrameTooLarge {
                len: 99_999,
                max: MAX,
            },
            ControlError::UnknownCommand { byte: b'x' },
            ControlError::ShortToken {
                command: b'c',
                len: 3,
            },
            ControlError::LockPayload { len: 3 },
        ];
        for error in &errors {
            assert_eq!(Reply::from_error(error), Reply::Error, "{error}");
        }
        assert_eq!(reply_bytes(&Reply::Error), b"0E");
    }

    #[test]
    fn codec_errors_come_through_the_same_path() {
        assert_eq!(
            command(b"bHello"),
            Err(ControlError::EmptyLength { command: b'b' })
        );
    }

    // Replies.

    #[test]
    fn replies_have_wsons_bytes() {
        assert_eq!(
            reply_bytes(&Reply::Ack(token())),
            b"32A32febad1f0cf83f38aceb31ad63866c4"
        );
        assert_eq!(
            reply_bytes(&Reply::Nack(token())),
            b"32N32febad1f0cf83f38aceb31ad63866c4"
        );
        assert_eq!(reply_bytes(&Reply::FragmentAck), b"0a");
        assert_eq!(reply_bytes(&Reply::FragmentNack), b"0n");
        assert_eq!(
            reply_bytes(&Reply::Domain("ws1.example.com".into())),
            b"15Mws1.example.com"
        );
        assert_eq!(reply_bytes(&Reply::Ping), b"0p");
        assert_eq!(reply_bytes(&Reply::Pong), b"0P");
        assert_eq!(
            reply_bytes(&Reply::Status(r#"{"pid":1}"#.into())),
            br#"9T{"pid":1}"#
        );
        assert_eq!(reply_bytes(&Reply::Error), b"0E");
    }

    #[test]
    fn reply_consts_match_their_encoding() {
        assert_eq!(reply_bytes(&Reply::Error), Reply::ERROR_BYTES);
        assert_eq!(reply_bytes(&Reply::Ping), Reply::PING_BYTES);
        assert_eq!(reply_bytes(&Reply::Pong), Reply::PONG_BYTES);
        assert_eq!(reply_bytes(&Reply::FragmentAck), Reply::FRAGMENT_ACK_BYTES);
        assert_eq!(
            reply_bytes(&Reply::FragmentNack),
            Reply::FRAGMENT_NACK_BYTES
        );
    }

    #[test]
    fn multibyte_domain_length_counts_bytes() {
        assert_eq!(
            reply_bytes(&Reply::Domain("é.example".into())),
            "10Mé.example".as_bytes()
        );
    }

    // Streams.

    #[test]
    fn fragmented_send_session_is_the_same_at_every_split() {
        let input = cat(&[
            b"32l",
            TOKEN,
            b"5fHello2i, 6sWorld!",
            b"15bHello, World!!!",
            b"38c",
            TOKEN,
            b"Direct0p0m0t0P0q",
        ]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(error, None);
        let bytes: Vec<&str> = commands
            .iter()
            .map(|seen| seen.command.split([' ', '{']).next().unwrap_or(""))
            .collect();
        assert_eq!(
            bytes,
            [
                "Lock",
                "Fragment",
                "Fragment",
                "Fragment",
                "Broadcast",
                "Direct",
                "Ping",
                "Domain",
                "Status",
                "Pong",
                "Quit"
            ]
        );
        assert_eq!(commands[0].token.as_deref(), Some(&TOKEN[..]));
        assert_eq!(commands[5].token.as_deref(), Some(&TOKEN[..]));
    }

    #[test]
    fn every_wson_example_stream_is_the_same_at_every_split() {
        let input = cat(&[
            b"15bHello, World!!!",
            b"10B\x00\x01\x02\x03\x04\x05\x06\x07\x08\xff",
            b"34C32febad1f0cf83f38aceb31ad63866c4\x00\xFF",
            b"44d32febad1f0cf83f38aceb31ad63866c4New message!",
            b"33D32febad1f0cf83f38aceb31ad63866c4\xFF",
            b"1F\xff10I\x00\x00\x00\x00\x00\x00\x00\x00\x00\x005S\x01\x02\x03\x04\x05",
            b"0Q",
        ]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(error, None);
        assert_eq!(commands.len(), 9);
    }

    #[test]
    fn stream_stops_at_its_first_error_at_every_split() {
        let input = cat(&[b"0p32l", TOKEN, b"31c", &TOKEN[..31], b"0p"]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(commands.len(), 2);
        assert_eq!(
            error,
            Some(ControlError::ShortToken {
                command: b'c',
                len: 31
            })
        );

        let (commands, error) = assert_same_at_every_split(b"0p2xhi0p");
        assert_eq!(commands.len(), 1);
        assert_eq!(error, Some(ControlError::UnknownCommand { byte: b'x' }));
    }

    // Property tests.

    fn build<'a>(
        kind: u8,
        flag_a: bool,
        flag_b: bool,
        token: [u8; TOKEN_LEN],
        message: &'a [u8],
    ) -> Command<'a> {
        let position = match (flag_a, flag_b) {
            (true, _) => FragmentPosition::First,
            (false, true) => FragmentPosition::Middle,
            (false, false) => FragmentPosition::Last,
        };
        match kind {
            0 => Command::Broadcast {
                binary: flag_a,
                message,
            },
            1 => Command::Direct {
                confirm: flag_a,
                binary: flag_b,
                token: Token::from_array(token),
                message,
            },
            2 => Command::Lock {
                token: Token::from_array(token),
            },
            3 => Command::Fragment {
                position,
                binary: flag_b,
                message,
            },
            4 => Command::Domain,
            5 => Command::Ping,
            6 => Command::Pong,
            7 => Command::Quit,
            _ => Command::Status,
        }
    }

    proptest! {
        #[test]
        fn command_encode_then_decode_round_trips(
            kind in 0_u8..9,
            flag_a in any::<bool>(),
            flag_b in any::<bool>(),
            token in any::<[u8; TOKEN_LEN]>(),
            message in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let original = build(kind, flag_a, flag_b, token, &message);
            let mut buf = Vec::new();
            original.encode(&mut buf);
            let Decoded::Done { item, len } = codec::decode(&buf, MAX).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(len, buf.len());
            let whole_text = matches!(
                original,
                Command::Broadcast { binary: false, .. } | Command::Direct { binary: false, .. }
            );
            if whole_text && std::str::from_utf8(&message).is_err() {
                let refused = matches!(parse(item), Err(ControlError::InvalidUtf8 { .. }));
                prop_assert!(refused);
                return Ok(());
            }
            let parsed = parse(item).unwrap();
            prop_assert_eq!(parsed, original);
            prop_assert_eq!(seen(&parsed), seen(&original));
            if let Command::Direct { token: parsed_token, .. } | Command::Lock { token: parsed_token } = parsed {
                prop_assert_eq!(parsed_token.as_bytes(), &token);
            }
        }

        #[test]
        fn reply_encode_then_decode_round_trips(
            kind in 0_u8..9,
            token in any::<[u8; TOKEN_LEN]>(),
            text in ".{0,200}",
        ) {
            let token = Token::from_array(token);
            let reply = match kind {
                0 => Reply::Ack(token),
                1 => Reply::Nack(token),
                2 => Reply::FragmentAck,
                3 => Reply::FragmentNack,
                4 => Reply::Domain(text.clone()),
                5 => Reply::Ping,
                6 => Reply::Pong,
                7 => Reply::Status(text.clone()),
                _ => Reply::Error,
            };
            let bytes = reply_bytes(&reply);
            let Decoded::Done { item, len } = codec::decode(&bytes, MAX).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(len, bytes.len());
            prop_assert_eq!(item.command, reply.command_byte());
            let expected: &[u8] = match &reply {
                Reply::Ack(token) | Reply::Nack(token) => token.as_bytes(),
                Reply::Domain(text) | Reply::Status(text) => text.as_bytes(),
                _ => b"",
            };
            prop_assert_eq!(item.payload, expected);
        }

        #[test]
        fn parse_never_panics(command in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..80)) {
            let result = parse(RawFrame { command, payload: &payload });
            if let Ok(parsed) = result {
                prop_assert_eq!(parsed.command_byte() == command, !matches!(command, b'Q'));
            }
        }

        #[test]
        fn decode_and_parse_never_panic_and_ignore_splits(
            input in proptest::collection::vec(
                prop_oneof![3 => b'0'..=b'9', 3 => proptest::sample::select(b"bBcCdDlfFiIsSmpPqQtx".to_vec()), 1 => any::<u8>()],
                0..80),
            cut in any::<prop::sample::Index>(),
        ) {
            let whole = commands_from_chunks(&[&input]);
            let (head, tail) = input.split_at(cut.index(input.len() + 1));
            prop_assert_eq!(commands_from_chunks(&[head, tail]), whole);
        }
    }
}
