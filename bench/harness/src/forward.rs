//! Client messages forwarded to a listener (issue 10): wson with `client_messages =
//! "forward"` turns each message a client sends into a `message` event on the control
//! connections listening with `e`. Here the generator's control connection listens (kinds
//! `message`), and each client keeps one message in flight: it sends, the listener gets the
//! event, and only then does the client send its next one. So the round trip is client ->
//! wson -> listener, and the listener must get every message exactly once, each client's in
//! order.

use std::collections::HashMap;
use std::time::Instant;

use wson::control::event::{EVENT_BYTE, Event};
use wson::ws::frame::{self, OpCode};

use crate::generator::{MASK, Outbox, Tally, Workload, parse_payload, payload};

const TAG: u8 = b'V';

/// The `e` frame that makes a control connection hear client messages only (no group).
pub fn listen_frame() -> Vec<u8> {
    let mut out = Vec::new();
    wson::control::fields::encode_fields_frame(EVENT_BYTE, &[b"", b"message"], &mut out);
    out
}

pub struct Forward {
    id: u32,
    size: usize,
    /// Client index by token.
    by_token: HashMap<[u8; 32], usize>,
    /// Per client: its user, as the event must name it.
    users: Vec<String>,
    /// Per client: the message in flight and when it was sent.
    outstanding: Vec<Option<(u32, Instant)>>,
    next_seq: Vec<u32>,
    stop_sending: bool,
}

impl Forward {
    /// The first `clients` of `tokens` (by client index) each keep one message of `size`
    /// bytes in flight; `users` names each one's user.
    pub fn new(
        id: u32,
        size: usize,
        clients: usize,
        tokens: &[[u8; 32]],
        users: Vec<String>,
    ) -> Forward {
        let clients = clients.min(tokens.len());
        Forward {
            id,
            size,
            by_token: tokens
                .iter()
                .take(clients)
                .enumerate()
                .map(|(i, t)| (*t, i))
                .collect(),
            users,
            outstanding: vec![None; clients],
            next_seq: vec![0; clients],
            stop_sending: false,
        }
    }
}

impl Workload for Forward {
    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        if !sending {
            self.stop_sending = true;
        }
        if !self.stop_sending {
            for (client, slot) in self.outstanding.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                let seq = self.next_seq[client];
                self.next_seq[client] += 1;
                *slot = Some((seq, now));
                let body = payload(TAG, self.size, self.id, seq, client as u32);
                out.clients.push((
                    client,
                    frame::encode_masked_frame(true, OpCode::Text, &body, MASK),
                ));
            }
        }
        self.next_seq.iter().map(|&s| u64::from(s)).sum()
    }

    fn done(&self, _sending: bool) -> bool {
        self.stop_sending && self.outstanding.iter().all(Option::is_none)
    }

    fn outstanding(&self) -> u64 {
        self.outstanding.iter().filter(|o| o.is_some()).count() as u64
    }

    fn on_client_message(&mut self, _body: &[u8], _index: usize, tally: &mut Tally, _: Instant) {
        // With "forward" nothing goes back to the client.
        tally.anomalies.stray += 1;
    }

    fn on_control_frame(&mut self, command: u8, payload: &[u8], tally: &mut Tally, now: Instant) {
        let event = (command == EVENT_BYTE)
            .then(|| Event::parse(payload))
            .flatten();
        let Some(Event::Message {
            token,
            user,
            binary: false,
            payload: body,
        }) = event
        else {
            tally.anomalies.stray += 1;
            return;
        };
        let index = self.by_token.get(token.as_bytes()).copied();
        let parsed = parse_payload(body);
        let (Some(index), Some((TAG, id, seq, client))) = (index, parsed) else {
            tally.anomalies.stray += 1;
            return;
        };
        if id != self.id
            || client as usize != index
            || self.users.get(index).map(String::as_str) != Some(user)
        {
            tally.anomalies.stray += 1;
            return;
        }
        match self.outstanding[index] {
            Some((expected, sent_at)) if expected == seq => {
                self.outstanding[index] = None;
                tally.delivered += 1;
                tally.last_progress = Some(now);
                tally.latencies.push(now - sent_at);
            }
            Some((expected, _)) if seq < expected => tally.anomalies.duplicated += 1,
            None if seq < self.next_seq[index] => tally.anomalies.duplicated += 1,
            _ => tally.anomalies.stray += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wson::token::Token;

    fn event(token: [u8; 32], user: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        Event::Message {
            token: Token::from_array(token),
            user,
            binary: false,
            payload: body,
        }
        .encode(&mut frame);
        // Strip `{len}e`: the generator hands over the payload.
        let start = frame.iter().position(|&b| b == EVENT_BYTE).unwrap() + 1;
        frame[start..].to_vec()
    }

    #[test]
    fn each_message_counts_once() {
        let tokens = [[b'a'; 32], [b'b'; 32]];
        let users = vec!["bench".to_string(), "bench".to_string()];
        let mut forward = Forward::new(3, 100, 2, &tokens, users);
        let now = Instant::now();
        let mut out = Outbox::default();
        assert_eq!(forward.trigger(true, now, &mut out), 2);
        assert_eq!(out.clients.len(), 2);
        let mut tally = Tally::default();
        let body = payload(TAG, 100, 3, 0, 1);
        forward.on_control_frame(b'e', &event(tokens[1], "bench", &body), &mut tally, now);
        assert_eq!(tally.delivered, 1);
        forward.on_control_frame(b'e', &event(tokens[1], "bench", &body), &mut tally, now);
        assert_eq!(tally.anomalies.duplicated, 1);
        // Client 0's message named as client 1's: stray.
        forward.on_control_frame(b'e', &event(tokens[0], "bench", &body), &mut tally, now);
        assert_eq!(tally.anomalies.stray, 1);
        assert_eq!(forward.outstanding(), 1);
        assert!(!forward.done(false));
        assert_eq!(listen_frame(), b"11e0:7:message".to_vec());
    }
}
