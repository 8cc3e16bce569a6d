//! The WAMP-CRA login workload of issue 12, on wson and on Crossbar.io side by side. Each of
//! `--concurrency` client slots runs one login after another until N have started:
//!
//! ```text
//! Idle -> Connecting        the generator opens a socket: upgrade offering wamp.2.json,
//!                           no wson cookies (a WAMP-CRA client has none)
//!      -> AwaitChallenge    101 read; HELLO [1, realm, {authmethods: ["wampcra"], authid}]
//!      -> AwaitWelcome      CHALLENGE [4, "wampcra", {challenge}] read; AUTHENTICATE
//!                           [5, base64(HMAC-SHA256(secret, challenge)), {}]
//!      -> Closing           WELCOME read (the login counts here); WebSocket Close 1000
//!      -> Idle              the server's Close, then its EOF
//! ```
//!
//! Anything else (a refused upgrade, ABORT, a server that closes mid-login) fails that login
//! and frees its slot. The server's CPU over the phase, per login, covers the whole cycle:
//! TCP accept, upgrade, the WAMP-CRA exchange, the session's end and the close.

use std::time::{Duration, Instant};

use wson::router::auth::compute_wcs;

use crate::generator::{Change, Outbox, Tally, Workload};
use crate::issue10::Mark;
use crate::report::{Column, LATENCY, Record, col};
use crate::servers::{Kind, LOGIN_AUTHID, LOGIN_SECRET, Paths, REALM, Router};
use crate::wamp::{WELCOME, client_frame, head, start, wamp_generator};
use crate::{Plan, settle};

/// The WAMP message type of CHALLENGE.
const CHALLENGE: u64 = 4;
/// Untimed logins before the measured ones (at most N).
const WARMUP: usize = 200;
/// How long a measured phase may start logins; those under way then still finish.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// The workload's name in the table: `login n=N wampcra`.
pub fn workload(logins: usize) -> String {
    format!("login n={logins} wampcra")
}

/// Where a slot's login is. `since`: when its connect started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Idle,
    Connecting { since: Instant },
    AwaitChallenge { since: Instant },
    AwaitWelcome { since: Instant },
    Closing,
}

/// N WAMP-CRA logins, one per slot at a time (see the module's docs).
pub struct Logins {
    total: usize,
    started: usize,
    stop_starting: bool,
    slots: Vec<Slot>,
    /// HELLOs, AUTHENTICATEs and closes for the next trigger.
    pending: Outbox,
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl Logins {
    pub fn new(total: usize, window: usize) -> Logins {
        Logins {
            total,
            started: 0,
            stop_starting: false,
            slots: vec![Slot::Idle; window.max(1)],
            pending: Outbox::default(),
            failed: 0,
            first_failure: None,
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }

    fn close(&mut self, index: usize) -> Slot {
        self.pending.close.push(index);
        Slot::Closing
    }

    /// The next slot of `index` after `body` (a complete message) came in `slot` at `now`.
    fn on_message(
        &mut self,
        body: &[u8],
        (index, slot): (usize, Slot),
        tally: &mut Tally,
        now: Instant,
    ) -> Slot {
        match slot {
            Slot::AwaitChallenge { since } => match challenge(body) {
                Some(challenge) => {
                    let signature = compute_wcs(LOGIN_SECRET.as_bytes(), challenge.as_bytes());
                    let json = format!("[5,\"{signature}\",{{}}]");
                    self.pending
                        .clients
                        .push((index, client_frame(json.as_bytes())));
                    Slot::AwaitWelcome { since }
                }
                None => {
                    self.fail(format!(
                        "not a CHALLENGE: {}",
                        String::from_utf8_lossy(body)
                    ));
                    self.close(index)
                }
            },
            Slot::AwaitWelcome { since } => {
                if let Some((WELCOME, _)) = head(body) {
                    tally.delivered += 1;
                    tally.latencies.push(now - since);
                } else {
                    self.fail(format!("not a WELCOME: {}", String::from_utf8_lossy(body)));
                }
                self.close(index)
            }
            Slot::Idle | Slot::Connecting { .. } | Slot::Closing => {
                tally.anomalies.stray += 1;
                slot
            }
        }
    }
}

/// HELLO asking for a WAMP-CRA login as the bench principal.
fn hello() -> Vec<u8> {
    let json = format!(
        r#"[1,"{REALM}",{{"authmethods":["wampcra"],"authid":"{LOGIN_AUTHID}","roles":{{"caller":{{}},"callee":{{}},"publisher":{{}},"subscriber":{{}}}}}}]"#
    );
    client_frame(json.as_bytes())
}

/// The challenge string of CHALLENGE `[4, "wampcra", {"challenge": "..."}]`, unescaped: the
/// bytes the signature is computed over.
fn challenge(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.as_array()?.as_slice() {
        [code, method, extra] if code.as_u64() == Some(CHALLENGE) && method == "wampcra" => {
            Some(extra.get("challenge")?.as_str()?.to_owned())
        }
        _ => None,
    }
}

impl Workload for Logins {
    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        // Frames and closes queued by the replies first: a slot is reconnected only once its
        // close has ended, so no close queued here can reach the slot's next connection.
        out.clients.append(&mut self.pending.clients);
        out.close.append(&mut self.pending.close);
        self.stop_starting |= !sending;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if self.stop_starting || self.started == self.total {
                break;
            }
            if *slot == Slot::Idle {
                *slot = Slot::Connecting { since: now };
                out.connect.push(index);
                self.started += 1;
            }
        }
        self.started as u64
    }

    fn done(&self, _sending: bool) -> bool {
        (self.stop_starting || self.started == self.total) && self.outstanding() == 0
    }

    fn outstanding(&self) -> u64 {
        self.slots.iter().filter(|s| **s != Slot::Idle).count() as u64
    }

    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        let Some(&slot) = self.slots.get(index) else {
            tally.anomalies.stray += 1;
            return;
        };
        let next = self.on_message(body, (index, slot), tally, now);
        if next != slot {
            tally.last_progress = Some(now);
        }
        if let Some(at) = self.slots.get_mut(index) {
            *at = next;
        }
    }

    fn on_control_frame(&mut self, _: u8, _: &[u8], tally: &mut Tally, _: Instant) {
        tally.anomalies.stray += 1;
    }

    fn on_client_change(&mut self, index: usize, change: Change, tally: &mut Tally, now: Instant) {
        let Some(&slot) = self.slots.get(index) else {
            tally.anomalies.stray += 1;
            return;
        };
        let next = match (change, slot) {
            (Change::Opened, Slot::Connecting { since }) => {
                self.pending.clients.push((index, hello()));
                Slot::AwaitChallenge { since }
            }
            (Change::Failed(why), Slot::Connecting { .. }) => {
                self.fail(why);
                Slot::Idle
            }
            (Change::Closed, Slot::Closing) => Slot::Idle,
            // The server closed mid-login (also counted as `disconnected`).
            (Change::Closed, Slot::AwaitChallenge { .. } | Slot::AwaitWelcome { .. }) => {
                self.fail("the server closed the connection during the login".into());
                Slot::Idle
            }
            (change, slot) => {
                self.fail(format!("{change:?} in {slot:?}"));
                slot
            }
        };
        tally.last_progress = Some(now);
        if let Some(at) = self.slots.get_mut(index) {
            *at = next;
        }
    }
}

/// The table section of this workload.
pub fn columns() -> (&'static str, Vec<Column>) {
    (
        "WAMP-CRA login (issue 12): connect (wamp.2.json, no cookies), HELLO wampcra, CHALLENGE, AUTHENTICATE, WELCOME, WebSocket close; one after another in each of `--concurrency` slots; latency connect -> WELCOME; cpu/cmp: over Crossbar's",
        [
            vec![
                col("logins/s", "rate", 1.0),
                col("cpu us/login", "cpu_us", 1.0),
            ],
            LATENCY.into(),
            vec![
                col("logins", "delivered", 1.0),
                col("failed", "failed", 1.0),
            ],
        ]
        .concat(),
    )
}

/// `plan.logins` WAMP-CRA logins on one fresh server (after an untimed warm-up).
pub fn login_session(
    kind: Kind,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<String, String> {
    let n = plan.logins;
    let window = plan.concurrency;
    let mut server = start(kind, plan, paths, session, (window, Router::Wampcra))?;
    settle(300);
    let mut generator = wamp_generator(&server, session)?;
    generator.without_cookies();
    let (warm, warm_logins) = generator.run_owned(
        Logins::new(WARMUP.min(n), window),
        Duration::from_secs(30),
        plan.stall,
    );
    if let Some(failure) = warm_logins.and_then(|l| l.first_failure) {
        return Err(format!("warm-up login failed: {failure}"));
    }
    let before = Mark::read(&server);
    let (result, logins) = generator.run_owned(Logins::new(n, window), TIME_LIMIT, plan.stall);
    let logins = logins.ok_or("the login phase vanished")?;
    let record = before.record(&mut server, workload(n), round, &result, &warm)?;
    records.push(record.metric("failed", logins.failed as f64));
    server.stop();
    let mut notes = Vec::new();
    if logins.started < n {
        notes.push(format!(
            "{}: {} of {n} logins started within {TIME_LIMIT:?}; measured over those",
            kind.name(),
            logins.started
        ));
    }
    if let Some(failure) = logins.first_failure {
        notes.push(format!("{}: first failed login: {failure}", kind.name()));
    }
    Ok(notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_answers_the_challenge_and_closes_after_welcome() {
        let mut logins = Logins::new(3, 2);
        let mut tally = Tally::default();
        let now = Instant::now();
        let mut out = Outbox::default();
        assert_eq!(logins.trigger(true, now, &mut out), 2);
        assert_eq!(out.connect, [0, 1]);
        logins.on_client_change(0, Change::Opened, &mut tally, now);
        logins.on_client_change(1, Change::Failed("refused".into()), &mut tally, now);
        assert_eq!(logins.failed, 1);
        let mut out = Outbox::default();
        // Slot 1 is free again: the third login starts there.
        assert_eq!(logins.trigger(true, now, &mut out), 3);
        assert_eq!(out.connect, [1]);
        assert_eq!(out.clients.len(), 1);
        // The challenge is a JSON string inside the JSON message; the signature is over its
        // unescaped text.
        let text = r#"{"authid":"bench","nonce":"x"}"#;
        let body = serde_json::json!([4, "wampcra", {"challenge": text}]).to_string();
        logins.on_client_message(body.as_bytes(), 0, &mut tally, now);
        let mut out = Outbox::default();
        logins.trigger(true, now, &mut out);
        let signature = compute_wcs(LOGIN_SECRET.as_bytes(), text.as_bytes());
        let expected = client_frame(format!("[5,\"{signature}\",{{}}]").as_bytes());
        assert_eq!(out.clients, [(0, expected)]);
        logins.on_client_message(br#"[2,77,{"authrole":"bench"}]"#, 0, &mut tally, now);
        assert_eq!(tally.delivered, 1);
        let mut out = Outbox::default();
        logins.trigger(true, now, &mut out);
        assert_eq!(out.close, [0]);
        assert!(!logins.done(true));
        logins.on_client_change(0, Change::Closed, &mut tally, now);
        // Slot 1's login is still connecting.
        assert_eq!(logins.outstanding(), 1);
        assert_eq!(tally.anomalies.total(), 0);
    }

    #[test]
    fn an_abort_fails_the_login_and_closes() {
        let mut logins = Logins::new(1, 1);
        let mut tally = Tally::default();
        let now = Instant::now();
        logins.trigger(true, now, &mut Outbox::default());
        logins.on_client_change(0, Change::Opened, &mut tally, now);
        let abort = br#"[3,{},"wamp.error.not_authorized"]"#;
        logins.on_client_message(abort, 0, &mut tally, now);
        assert_eq!(logins.failed, 1);
        let mut out = Outbox::default();
        logins.trigger(true, now, &mut out);
        assert_eq!(out.close, [0]);
        logins.on_client_change(0, Change::Closed, &mut tally, now);
        assert!(logins.done(true));
        assert_eq!(tally.delivered, 0);
    }
}
