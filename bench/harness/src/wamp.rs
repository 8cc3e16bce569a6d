//! The WAMP workloads of issue 11, on wson and on Crossbar.io side by side. The harness
//! speaks just enough WAMP v2 (`wamp.2.json`) to load a router: HELLO/WELCOME,
//! SUBSCRIBE/SUBSCRIBED, PUBLISH/EVENT, REGISTER/REGISTERED, CALL/RESULT,
//! INVOCATION/YIELD, written by hand and read with a scan for the few integers and the one
//! string argument the harness puts in every message (serde_json when that scan does not fit).
//!
//! - `events_session`: N client sessions subscribed to 100 topics (N/100 each), then all to
//!   one topic; one more session publishes to random topics, W in flight, and every
//!   subscriber checks its EVENTs (phase, sequence, topic and subscription) as the topic
//!   workloads of issue 10 do (`groups.rs`). On wson the same server process first runs
//!   plain broadcasts (`b`) to N plain clients at the same windows: the yardstick of EVENT's
//!   CPU per delivery.
//! - `rpc_session`: 100 caller sessions each keep one CALL in flight to one callee session
//!   (a WAMP client of the harness); on wson then to a callee on the control socket
//!   (`{len}V{json}` frames), which Crossbar has no counterpart of.
//!
//! Crossbar is one controller and one router worker process, pinned to the server core like
//! every server; its CPU is the sum over both.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use wson::ws::frame::{self, OpCode};

use crate::generator::{Generator, MASK, Outbox, PhaseResult, Proto, Tally, Workload};
use crate::generator::{parse_payload, payload};
use crate::groups::{GroupSpec, Groups};
use crate::issue10::{Mark, topic_window};
use crate::report::{self, Column, LATENCY, Record, Summary, Target, col, find, fmt, ratio_target};
use crate::servers::{self, Kind, Paths, REALM, Router, Running, Setup};
use crate::{CpuMark, Plan, check_alive, settle};

pub const SUBPROTOCOL: &str = "wamp.2.json";
/// Topics of the spread-out EVENT fan-out, as issue 10's.
pub const TOPICS: usize = 100;
/// Payload bytes of every WAMP workload (the string argument).
pub const SIZE: usize = 100;
/// Caller sessions of the RPC workloads.
pub const CALLERS: usize = 100;
/// The issue's bounds: EVENT CPU per delivery over a plain broadcast's (at most), EVENT
/// deliveries/s over Crossbar's (at least), RPC CPU per call over Crossbar's (at most).
pub const EVENT_CPU_BOUND: f64 = 1.3;
pub const EVENT_RATE_BOUND: f64 = 20.0;
pub const RPC_CPU_BOUND: f64 = 0.1;
/// The procedure of the WAMP callee, and of the control-socket callee (wson only).
pub const PROCEDURE: &str = "bench.echo";
const CONTROL_PROCEDURE: &str = "bench.backend.echo";
/// How long a server may take to open, join and subscribe its sessions (Crossbar is Python:
/// generous, but bounded; whatever joined by then is measured, and the table says how many).
const SETUP_LIMIT: Duration = Duration::from_secs(240);

pub const WELCOME: u64 = 2;
pub const SUBSCRIBED: u64 = 33;
pub const EVENT: u64 = 36;
pub const RESULT: u64 = 50;
pub const REGISTERED: u64 = 65;
pub const INVOCATION: u64 = 68;

/// The command byte of a WAMP message on wson's control socket.
const CONTROL_WAMP: u8 = b'V';

// ---------------------------------------------------------------------------------------
// Messages

/// HELLO with the four client roles.
pub fn hello() -> Vec<u8> {
    format!(
        r#"[1,"{REALM}",{{"roles":{{"subscriber":{{}},"publisher":{{}},"caller":{{}},"callee":{{}}}}}}]"#
    )
    .into_bytes()
}

fn text_frame(json: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&frame::encode_masked_frame(true, OpCode::Text, json, MASK));
}

/// A masked text frame holding `json`.
pub fn client_frame(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    text_frame(json, &mut out);
    out
}

/// Appends the frame of PUBLISH `[16, request, {}, topic, [payload]]` to `out`. Payloads
/// are ASCII without quotes or backslashes (`generator::payload`), so they need no escaping.
pub fn publish_frame(request: u64, topic: &str, payload: &[u8], out: &mut Vec<u8>) {
    let mut json = format!("[16,{request},{{}},\"{topic}\",[\"").into_bytes();
    json.extend_from_slice(payload);
    json.extend_from_slice(b"\"]]");
    text_frame(&json, out);
}

fn with_arg(prefix: String, payload: &[u8]) -> Vec<u8> {
    let mut json = prefix.into_bytes();
    json.extend_from_slice(payload);
    json.extend_from_slice(b"\"]]");
    json
}

/// The message type and the (up to three) integers right after it: `[36, 5, 7, {}, ...]`
/// gives `(36, [Some(5), Some(7), None])`.
pub fn head(body: &[u8]) -> Option<(u64, [Option<u64>; 3])> {
    if *body.first()? != b'[' {
        return None;
    }
    let mut at = 1;
    let mut next = |body: &[u8]| -> Option<(u64, bool)> {
        while body.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while body.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let value = std::str::from_utf8(body.get(start..at)?)
            .ok()?
            .parse()
            .ok()?;
        while body.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        let more = *body.get(at)? == b',';
        at += 1;
        Some((value, more))
    };
    let (code, mut more) = next(body)?;
    let mut ints = [None; 3];
    for slot in &mut ints {
        if !more {
            break;
        }
        match next(body) {
            Some((value, m)) => {
                *slot = Some(value);
                more = m;
            }
            None => break,
        }
    }
    Some((code, ints))
}

/// The one string argument of EVENT, RESULT or INVOCATION: the message ends with
/// `["payload"]]` as both routers send it; any other shape (kwargs, spaces) is parsed whole.
pub fn string_arg(body: &[u8]) -> Option<Cow<'_, [u8]>> {
    if let Some(inner) = body.strip_suffix(b"\"]]") {
        let start = inner.iter().rposition(|&b| b == b'"')?;
        if start > 0 && inner[start - 1] == b'[' && !inner[start + 1..].contains(&b'\\') {
            return Some(Cow::Borrowed(&inner[start + 1..]));
        }
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = value.as_array()?;
    let args_at = match list.first()?.as_u64()? {
        EVENT | INVOCATION => 4,
        RESULT => 3,
        _ => return None,
    };
    let arg = list.get(args_at)?.as_array()?.first()?.as_str()?;
    Some(Cow::Owned(arg.as_bytes().to_vec()))
}

// ---------------------------------------------------------------------------------------
// Workloads

/// One request per client (HELLO, SUBSCRIBE, REGISTER), at most `window` unanswered; each
/// reply of type `expect` gives that client the integer at `field` (0: right after the
/// type) as its id. A reply of another type (ABORT, ERROR) is a failure.
pub struct Requests {
    pending: VecDeque<(usize, Vec<u8>)>,
    waiting: HashMap<usize, Instant>,
    expect: u64,
    field: usize,
    window: usize,
    deadline: Instant,
    expired: bool,
    pub ids: HashMap<usize, u64>,
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl Requests {
    pub fn new(
        requests: Vec<(usize, Vec<u8>)>,
        expect: u64,
        field: usize,
        window: usize,
        limit: Duration,
    ) -> Requests {
        Requests {
            pending: requests.into(),
            waiting: HashMap::new(),
            expect,
            field,
            window: window.max(1),
            deadline: Instant::now() + limit,
            expired: false,
            ids: HashMap::new(),
            failed: 0,
            first_failure: None,
        }
    }
}

impl Workload for Requests {
    fn trigger(&mut self, _sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        if now > self.deadline {
            self.expired = true;
            return self.ids.len() as u64;
        }
        while self.waiting.len() < self.window {
            let Some((client, json)) = self.pending.pop_front() else {
                break;
            };
            self.waiting.insert(client, now);
            out.clients.push((client, client_frame(&json)));
        }
        (self.ids.len() + self.waiting.len()) as u64
    }

    fn done(&self, _sending: bool) -> bool {
        self.expired || (self.pending.is_empty() && self.waiting.is_empty())
    }

    fn outstanding(&self) -> u64 {
        (self.pending.len() + self.waiting.len()) as u64
    }

    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        let Some(sent) = self.waiting.remove(&index) else {
            tally.anomalies.stray += 1;
            return;
        };
        match head(body) {
            Some((code, ints)) if code == self.expect => {
                if let Some(id) = ints.get(self.field).copied().flatten() {
                    self.ids.insert(index, id);
                }
                tally.delivered += 1;
                tally.latencies.push(now - sent);
                tally.last_progress = Some(now);
            }
            _ => {
                self.failed += 1;
                self.first_failure
                    .get_or_insert_with(|| String::from_utf8_lossy(body).into_owned());
            }
        }
    }

    fn on_control_frame(&mut self, _: u8, _: &[u8], tally: &mut Tally, _: Instant) {
        tally.anomalies.stray += 1;
    }
}

/// Who answers the calls.
#[derive(Debug, Clone, Copy)]
pub enum Callee {
    /// A WAMP client session of the harness (by client index) with its registration id.
    Client { index: usize, registration: u64 },
    /// The control connection (wson's backend session), with its registration id.
    Control { registration: u64 },
}

/// Each of the first `callers` clients keeps one CALL in flight; the callee answers each
/// INVOCATION with a YIELD of the same argument, and a caller's RESULT must carry its own
/// request id and payload (tag, phase, sequence, caller).
pub struct Rpc {
    id: u32,
    size: usize,
    procedure: &'static str,
    callee: Callee,
    /// The callers are clients `first .. first + callers`.
    first: usize,
    /// The first reply to a CALL that was no RESULT (an ERROR), as text.
    pub first_error: Option<String>,
    outstanding: Vec<Option<(u32, Instant)>>,
    next_seq: Vec<u32>,
    stop_sending: bool,
    /// YIELDs to send with the next trigger (frames for the callee client, or control frames).
    yields: Vec<u8>,
}

const RPC_TAG: u8 = b'R';

impl Rpc {
    pub fn new(id: u32, callers: usize, callee: Callee) -> Rpc {
        Rpc::among(id, 0..callers, callee)
    }

    /// As `new`, the callers being clients `callers` (a range of indexes).
    pub fn among(id: u32, callers: std::ops::Range<usize>, callee: Callee) -> Rpc {
        let first = callers.start;
        let callers = callers.len();
        Rpc {
            id,
            size: SIZE,
            procedure: match callee {
                Callee::Client { .. } => PROCEDURE,
                Callee::Control { .. } => CONTROL_PROCEDURE,
            },
            callee,
            first,
            first_error: None,
            outstanding: vec![None; callers],
            next_seq: vec![0; callers],
            stop_sending: false,
            yields: Vec::new(),
        }
    }

    /// An INVOCATION `[68, request, registration, details, [payload]]`: queues the YIELD.
    fn invoke(&mut self, body: &[u8], registration: u64, tally: &mut Tally) -> bool {
        let (Some((INVOCATION, [Some(request), Some(reg), _])), Some(arg)) =
            (head(body), string_arg(body))
        else {
            return false;
        };
        if reg != registration {
            return false;
        }
        let json = with_arg(format!("[70,{request},{{}},[\""), &arg);
        match self.callee {
            Callee::Client { .. } => text_frame(&json, &mut self.yields),
            Callee::Control { .. } => {
                self.yields
                    .extend_from_slice(format!("{}", json.len()).as_bytes());
                self.yields.push(CONTROL_WAMP);
                self.yields.extend_from_slice(&json);
            }
        }
        let _ = tally;
        true
    }
}

impl Workload for Rpc {
    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        if !self.yields.is_empty() {
            let yields = std::mem::take(&mut self.yields);
            match self.callee {
                Callee::Client { index, .. } => out.clients.push((index, yields)),
                Callee::Control { .. } => out.control.extend_from_slice(&yields),
            }
        }
        if !sending {
            self.stop_sending = true;
        }
        if !self.stop_sending {
            for (caller, slot) in self.outstanding.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                let seq = self.next_seq[caller];
                self.next_seq[caller] += 1;
                *slot = Some((seq, now));
                let client = self.first + caller;
                let body = payload(RPC_TAG, self.size, self.id, seq, client as u32);
                let json = with_arg(
                    format!("[48,{},{{}},\"{}\",[\"", u64::from(seq) + 1, self.procedure),
                    &body,
                );
                out.clients.push((client, client_frame(&json)));
            }
        }
        self.next_seq.iter().map(|&s| u64::from(s)).sum()
    }

    fn done(&self, _sending: bool) -> bool {
        self.stop_sending && self.outstanding.iter().all(Option::is_none) && self.yields.is_empty()
    }

    fn outstanding(&self) -> u64 {
        self.outstanding.iter().filter(|o| o.is_some()).count() as u64
    }

    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        if let Callee::Client {
            index: callee,
            registration,
        } = self.callee
            && index == callee
        {
            if !self.invoke(body, registration, tally) {
                tally.anomalies.stray += 1;
            }
            return;
        }
        // RESULT [50, request, details, [payload]]
        let (Some((RESULT, [Some(request), ..])), Some(arg)) = (head(body), string_arg(body))
        else {
            if self.first_error.is_none() {
                self.first_error = Some(String::from_utf8_lossy(body).into_owned());
            }
            tally.anomalies.stray += 1;
            return;
        };
        let caller = index.checked_sub(self.first);
        let Some(slot) = caller.and_then(|caller| self.outstanding.get_mut(caller)) else {
            tally.anomalies.stray += 1;
            return;
        };
        let parsed = parse_payload(&arg);
        match (*slot, parsed) {
            (Some((seq, sent)), Some((RPC_TAG, id, got, caller)))
                if id == self.id
                    && got == seq
                    && caller as usize == index
                    && request == u64::from(seq) + 1 =>
            {
                *slot = None;
                tally.delivered += 1;
                tally.last_progress = Some(now);
                tally.latencies.push(now - sent);
            }
            (_, Some((RPC_TAG, id, got, caller)))
                if id == self.id
                    && caller as usize == index
                    && got < self.next_seq[index - self.first] =>
            {
                tally.anomalies.duplicated += 1;
            }
            _ => tally.anomalies.stray += 1,
        }
    }

    fn on_control_frame(&mut self, command: u8, payload: &[u8], tally: &mut Tally, _: Instant) {
        let ok = match self.callee {
            Callee::Control { registration } if command == CONTROL_WAMP => {
                self.invoke(payload, registration, tally)
            }
            _ => false,
        };
        if !ok {
            tally.anomalies.stray += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

/// A session of this module: (server, plan, paths, session, round, records) -> a note.
pub type Session = fn(Kind, &Plan, &Paths, u32, usize, &mut Vec<Record>) -> Result<String, String>;

/// The sections of the table this module owns (the first word of a workload name).
pub fn owns(kind: &str) -> bool {
    matches!(kind, "sessions" | "event" | "rpc" | "login")
}

/// The header of the ratio column in this module's sections.
pub const RATIO_HEADER: &str = "cpu/cmp";

/// The row a row's CPU per operation is divided by in the table.
pub fn compared_with(workload: &str) -> Option<(String, Kind)> {
    let words: Vec<&str> = workload.split(' ').collect();
    match words.as_slice() {
        ["event", n, "broadcast", window] => {
            Some((format!("event {n} broadcast {window}"), Kind::Wson))
        }
        // `event n=N [x] TxM w=W`: over T > 1 topics, W/T per topic, as issue 10's topics.
        ["event", n, shape, window] | ["event", n, "x", shape, window] => {
            let topics: u32 = shape.split('x').next()?.parse().ok()?;
            let window: u32 = window.strip_prefix("w=")?.parse().ok()?;
            let per_topic = if window > 1 {
                window / topics.max(1)
            } else {
                1
            };
            Some((
                format!("event {n} broadcast w={}", per_topic.max(1)),
                Kind::Wson,
            ))
        }
        ["rpc", n, _] => Some((format!("rpc {n} callee=wamp"), Kind::Crossbar)),
        ["login", ..] => Some((workload.to_string(), Kind::Crossbar)),
        _ => None,
    }
}

pub fn columns(kind: &str) -> (&'static str, Vec<Column>) {
    let latency = LATENCY;
    match kind {
        "login" => crate::login::columns(),
        "sessions" => (
            "WAMP sessions (issue 11): connect (wamp.2.json) and HELLO/WELCOME, at most `--concurrency` in flight; then one SUBSCRIBE each (100 topics, then one)",
            vec![
                col("sessions/s", "rate", 1.0),
                col("cpu us/sess", "cpu_us", 1.0),
                col("subs/s", "sub_rate", 1.0),
                col("cpu us/sub", "sub_cpu_us", 1.0),
                col("sessions", "sessions", 1.0),
                col("failed", "failed", 1.0),
            ],
        ),
        "event" => (
            "WAMP EVENT fan-out (issue 11): PUBLISH from one session to random topics (T topics x subscribers), W in flight; latency PUBLISH -> last EVENT; `broadcast` and `x`: plain `b`, and `x` to plain topics of the same shape, to plain clients of the same wson process; cpu/cmp: over that broadcast at the same W per client",
            [
                vec![
                    col("deliveries/s", "rate", 1.0),
                    col("cpu us/deliv", "cpu_us", 1.0),
                ],
                latency.into(),
                vec![
                    col("messages", "triggers", 1.0),
                    col("subscribers", "subscribers", 1.0),
                    col("deliv/writev", "per_write", 1.0),
                ],
            ]
            .concat(),
        ),
        _ => (
            "WAMP RPC (issue 11): 100 caller sessions, one CALL each in flight, to a WAMP callee session or a control-socket callee (wson); latency CALL -> RESULT; cpu/cmp: over Crossbar's WAMP callee",
            [
                vec![
                    col("calls/s", "rate", 1.0),
                    col("cpu us/call", "cpu_us", 1.0),
                ],
                latency.into(),
            ]
            .concat(),
        ),
    }
}

/// A WAMP session's server: wson with a `[wamp]` table, or Crossbar, for `clients` clients
/// at once; and a generator whose clients offer `wamp.2.json` (with the control connection
/// on wson).
pub fn start(
    kind: Kind,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    (clients, router): (usize, Router),
) -> Result<Running, String> {
    let setup = Setup {
        echo: false,
        max_connections: clients + 100,
        router,
        cluster: None,
    };
    servers::start_with(kind, paths, plan.server_core, session, &setup)
}

pub fn wamp_generator(server: &Running, session: u32) -> Result<Generator, String> {
    let control = (server.kind == Kind::Wson).then_some(server.control);
    // Tokens apart from a plain generator's of the same session.
    let mut generator =
        Generator::with_control(Proto::Ws, server.ws, control, session.wrapping_add(1 << 20))
            .map_err(|e| format!("control connect: {e}"))?;
    generator.set_subprotocol(SUBPROTOCOL);
    Ok(generator)
}

/// Opens `count` WAMP sessions (connect, HELLO, WELCOME) within `SETUP_LIMIT`; returns
/// which clients joined, and records nothing: the caller does, with the subscriptions.
struct Joined {
    indexes: Vec<usize>,
    rate: f64,
    cpu_us: f64,
    failed: u64,
    first_error: Option<String>,
}

impl Joined {
    /// An error naming how many of `count` sessions joined, unless all did.
    fn require_all(&self, count: usize) -> Result<(), String> {
        if self.indexes.len() < count {
            return Err(format!(
                "only {} of {count} sessions joined: {}",
                self.indexes.len(),
                self.first_error.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }
}

fn join(
    generator: &mut Generator,
    server: Option<&Running>,
    count: usize,
    plan: &Plan,
) -> Result<Joined, String> {
    let started = Instant::now();
    let before = server.map(CpuMark::read);
    let connect = generator.connect(count, plan.concurrency, SETUP_LIMIT);
    let left = SETUP_LIMIT.saturating_sub(started.elapsed());
    let opened: Vec<usize> = (0..count).filter(|&i| generator.is_open(i)).collect();
    let hellos = opened.iter().map(|&i| (i, hello())).collect();
    let requests = Requests::new(hellos, WELCOME, 0, plan.concurrency, left);
    let (_, requests) = generator.run_owned(requests, Duration::ZERO, plan.stall * 3);
    let requests = requests.ok_or("the join phase vanished")?;
    let elapsed = started.elapsed();
    let unanswered = requests.outstanding();
    let silence = (unanswered > 0).then(|| {
        format!(
            "{unanswered} of {} HELLOs without a reply after {:.0} s",
            opened.len(),
            elapsed.as_secs_f64()
        )
    });
    let mut indexes: Vec<usize> = requests.ids.keys().copied().collect();
    indexes.sort_unstable();
    let cpu = cpu_per_op(before, server, indexes.len());
    Ok(Joined {
        rate: indexes.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        cpu_us: cpu.0,
        failed: (count - indexes.len()) as u64,
        first_error: connect.first_error.or(requests.first_failure).or(silence),
        indexes,
    })
}

/// Server CPU per operation since `before` (NaN without a server to read).
fn cpu_per_op(before: Option<CpuMark>, server: Option<&Running>, ops: usize) -> (f64, f64) {
    match (before, server) {
        (Some(before), Some(server)) => before.per_op(CpuMark::read(server), ops as u64),
        _ => (f64::NAN, f64::NAN),
    }
}

/// SUBSCRIBE every member of `spec`; returns the subscription id per client (0: none), how
/// many failed, and the rate and CPU per subscription.
fn subscribe(
    generator: &mut Generator,
    server: Option<&Running>,
    spec: &GroupSpec,
    plan: &Plan,
) -> Result<(Vec<u64>, u64, f64, f64), String> {
    let requests: Vec<(usize, Vec<u8>)> = spec
        .member_of
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let topic = spec.names.get((*g)? as usize)?;
            Some((
                i,
                format!("[32,{},{{}},\"{topic}\"]", 2 + i % 1000).into_bytes(),
            ))
        })
        .collect();
    let count = requests.len();
    let before = server.map(CpuMark::read);
    let started = Instant::now();
    // SUBSCRIBEs pipelined like the plain `j` frames, a window at a time.
    let workload = Requests::new(requests, SUBSCRIBED, 1, 1024, SETUP_LIMIT);
    let (_, workload) = generator.run_owned(workload, Duration::ZERO, plan.stall * 3);
    let workload = workload.ok_or("the subscribe phase vanished")?;
    let elapsed = started.elapsed();
    let cpu = cpu_per_op(before, server, workload.ids.len());
    let mut ids = vec![0; spec.member_of.len()];
    for (&client, &id) in &workload.ids {
        if let Some(slot) = ids.get_mut(client) {
            *slot = id;
        }
    }
    let failed = (count - workload.ids.len()) as u64;
    if failed > 0 {
        eprintln!(
            "wsbench: {} of {count} SUBSCRIBEs failed; first reply: {}",
            failed,
            workload.first_failure.unwrap_or_default()
        );
    }
    Ok((
        ids,
        failed,
        workload.ids.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        cpu.0,
    ))
}

/// The clients of `spec` that joined; the others (and the publisher) belong to no topic.
fn members(n: usize, topics: usize, joined: &[bool]) -> GroupSpec {
    let mut spec = GroupSpec::topics(n, topics);
    for (i, group) in spec.member_of.iter_mut().enumerate() {
        if !joined.get(i).copied().unwrap_or(false) {
            *group = None;
        }
    }
    spec
}

/// EVENT fan-out on one server: (wson) plain broadcasts as the yardstick, then N WAMP
/// subscribers over 100 topics and over one, publications from one more session.
pub fn events_session(
    kind: Kind,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<String, String> {
    let n = plan.main_n;
    let mut server = start(kind, plan, paths, session, (n + 1, Router::Open))?;
    settle(300);
    // The session's rows: `sessions` first, so that the table keeps each section in one piece.
    let mut yardstick = Vec::new();
    if kind == Kind::Wson {
        // The yardstick: plain `b` to N plain clients, same process, size and windows. The
        // plain clients close before the WAMP ones open (the generator holds ~19,900 sockets).
        let mut plain = Generator::new(Proto::Ws, server.ws, server.control, session)
            .map_err(|e| format!("control connect: {e}"))?;
        plain
            .connect(n, plan.concurrency, Duration::from_secs(120))
            .require_all(n, "plain clients")?;
        settle(500);
        let warm = plain.fanout(SIZE, 1, 3, Duration::from_secs(10), plan.stall);
        for &window in &plan.windows {
            let (max, time) = plan.fanout_limits(window);
            let before = Mark::read(&server);
            let result = plain.fanout(SIZE, window, max, time, plan.stall);
            let workload = format!("event n={n} broadcast w={window}");
            let record = before.record(&mut server, workload, round, &result, &warm)?;
            yardstick.push(record.metric("subscribers", n as f64));
        }
        // Plain topics of the same shapes (`j` per token, `J` for the one user, then `x`),
        // as issue 10's: what the topic shape costs without WAMP.
        for topics in [TOPICS.min(n), 1] {
            let spec = GroupSpec::topics(n, topics);
            let users = vec!["bench".to_string(); n];
            let (frames, count) = spec.subscribe_frames(plain.tokens(), &users, topics == 1);
            let replies = plain.control_request(&frames, count, Duration::from_secs(120))?;
            if let Some(bad) = replies.iter().find(|(c, p)| *c != b'#' || p.is_empty()) {
                return Err(format!("plain subscribe: unexpected reply {bad:?}"));
            }
            for &window in &plan.windows {
                let window = topic_window(window, topics);
                let workload = format!("event n={n} x {topics}x{} w={window}", n / topics);
                let record = event_phase(
                    &mut plain,
                    &mut server,
                    &spec,
                    None,
                    window,
                    plan,
                    (workload, round),
                )?;
                yardstick.push(record.metric("subscribers", n as f64));
            }
        }
        drop(plain);
        settle(1000);
    }

    let mut generator = wamp_generator(&server, session)?;
    let publisher = n;
    let joined = join(&mut generator, Some(&server), n + 1, plan)?;
    check_alive(&mut server)?;
    let mut is_joined = vec![false; n + 1];
    for &i in &joined.indexes {
        is_joined[i] = true;
    }
    if !is_joined[publisher] {
        return Err(format!(
            "the publisher did not join: {}",
            joined.first_error.unwrap_or_default()
        ));
    }
    let subscribers = joined.indexes.len() - 1;
    if subscribers < TOPICS {
        return Err(format!(
            "only {subscribers} of {n} subscriber sessions joined: {}",
            joined.first_error.unwrap_or_default()
        ));
    }
    let note = if subscribers < n {
        format!(
            "{}: {subscribers} of {n} subscriber sessions joined within {SETUP_LIMIT:?} ({}); its EVENT rows are measured with those",
            kind.name(),
            joined.first_error.clone().unwrap_or_default()
        )
    } else {
        String::new()
    };
    settle(500);

    let mut phases = Vec::new();
    let mut sub_failed = 0;
    let mut sub_rates = Vec::new();
    for topics in [TOPICS.min(n), 1] {
        let spec = members(n, topics, &is_joined[..n]);
        let (ids, failed, rate, cpu) = subscribe(&mut generator, Some(&server), &spec, plan)?;
        check_alive(&mut server)?;
        sub_failed += failed;
        sub_rates.push((rate, cpu));
        let subscribed = ids.iter().filter(|&&id| id != 0).count();
        let mut spec = spec;
        for (group, id) in spec.member_of.iter_mut().zip(&ids) {
            if *id == 0 {
                *group = None;
            }
        }
        for &window in &plan.windows {
            let window = topic_window(window, topics);
            let workload = format!("event n={n} {topics}x{} w={window}", n / topics);
            let record = event_phase(
                &mut generator,
                &mut server,
                &spec,
                Some((publisher, &ids)),
                window,
                plan,
                (workload, round),
            )?;
            phases.push(record.metric("subscribers", subscribed as f64));
        }
    }
    let (sub_rate, sub_cpu) = sub_rates.first().copied().unwrap_or((f64::NAN, f64::NAN));
    records.push(
        Record::new(format!("sessions n={n}"), kind, round)
            .metric("rate", joined.rate)
            .metric("cpu_us", joined.cpu_us)
            .metric("sub_rate", sub_rate)
            .metric("sub_cpu_us", sub_cpu)
            .metric("sessions", joined.indexes.len() as f64)
            .metric("failed", (joined.failed + sub_failed) as f64),
    );
    records.extend(yardstick);
    records.extend(phases);
    server.stop();
    Ok(note)
}

/// One EVENT phase (PUBLISH from `wamp`'s publisher session to subscribers expecting the
/// given subscription ids), or without `wamp` its plain counterpart (`x` on the control
/// connection): untimed warm-up, then measured.
fn event_phase(
    generator: &mut Generator,
    server: &mut Running,
    spec: &GroupSpec,
    wamp: Option<(usize, &[u64])>,
    window: u32,
    plan: &Plan,
    (workload, round): (String, usize),
) -> Result<Record, String> {
    let groups = spec.names.len();
    let make = |generator: &mut Generator, max: u32| {
        let id = generator.new_phase_id();
        let mut phase = Groups::new(spec, id, SIZE, window, max);
        if let Some((publisher, subscriptions)) = wamp {
            phase = phase.via_wamp(publisher, subscriptions.to_vec());
        }
        if groups > 1 && window > plan.direct_window {
            // Thousands in flight over many topics: see `Groups::in_bursts`.
            phase = phase.in_bursts();
        }
        phase
    };
    let warm_max = u32::try_from(groups.clamp(3, 1000)).unwrap_or(1000);
    let warm = make(generator, warm_max);
    let warm = generator.run_custom(Box::new(warm), Duration::from_secs(10), plan.stall);
    // One topic of N is a broadcast by another name: the same caps as the broadcasts.
    let (max, time) = match (window, groups) {
        (_, 1) => plan.fanout_limits(window),
        (1, _) => (plan.max_direct, plan.latency_phase_time),
        _ => (plan.max_direct, plan.phase_time),
    };
    let phase = make(generator, max);
    let before = Mark::read(server);
    let result = generator.run_custom(Box::new(phase), time, plan.stall);
    before.record(server, workload, round, &result, &warm)
}

/// RPC on one server: 100 callers and a WAMP callee; on wson then a control-socket callee.
pub fn rpc_session(
    kind: Kind,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<String, String> {
    let callers = CALLERS;
    let mut server = start(kind, plan, paths, session, (callers + 1, Router::Open))?;
    settle(300);
    let mut generator = wamp_generator(&server, session)?;
    let joined = join(&mut generator, Some(&server), callers + 1, plan)?;
    joined.require_all(callers + 1)?;
    let callee = callers;
    let register = format!("[64,1,{{}},\"{PROCEDURE}\"]").into_bytes();
    let requests = Requests::new(vec![(callee, register)], REGISTERED, 1, 1, SETUP_LIMIT);
    let (_, requests) = generator.run_owned(requests, Duration::ZERO, plan.stall);
    let registration = requests
        .as_ref()
        .and_then(|r| r.ids.get(&callee).copied())
        .ok_or_else(|| {
            format!(
                "REGISTER {PROCEDURE}: {}",
                requests
                    .and_then(|r| r.first_failure)
                    .unwrap_or_else(|| "no reply".into())
            )
        })?;
    let mut callees = vec![(
        "wamp",
        Callee::Client {
            index: callee,
            registration,
        },
    )];
    if kind == Kind::Wson {
        // The backend's session: REGISTER on the control socket, `{len}V[65,1,id]` back.
        let json = format!("[64,1,{{}},\"{CONTROL_PROCEDURE}\"]");
        let frame = format!("{}V{json}", json.len()).into_bytes();
        let replies = generator.control_request(&frame, 1, Duration::from_secs(10))?;
        let registration = match replies.first() {
            Some((CONTROL_WAMP, reply)) => match head(reply) {
                Some((REGISTERED, [Some(1), Some(id), _])) => id,
                _ => {
                    return Err(format!(
                        "control REGISTER: unexpected reply {}",
                        String::from_utf8_lossy(reply)
                    ));
                }
            },
            other => return Err(format!("control REGISTER: unexpected reply {other:?}")),
        };
        callees.push(("control", Callee::Control { registration }));
    }
    settle(200);
    for (name, callee) in callees {
        let id = generator.new_phase_id();
        let warm = generator.run_custom(
            Box::new(Rpc::new(id, callers, callee)),
            Duration::from_millis(200),
            plan.stall,
        );
        let id = generator.new_phase_id();
        let before = Mark::read(&server);
        let result = generator.run_custom(
            Box::new(Rpc::new(id, callers, callee)),
            plan.phase_time,
            plan.stall,
        );
        let workload = format!("rpc n={callers} callee={name}");
        records.push(before.record(&mut server, workload, round, &result, &warm)?);
    }
    server.stop();
    Ok(String::new())
}

/// For `wsbench drive --wamp` (perf.sh): `clients` more WAMP sessions join (the
/// generator's clients must offer `wamp.2.json`) and subscribe to `topics` topics, one more
/// session joins to publish, and `count` publications go to random topics, `window` in
/// flight (in bursts over several topics, as the benchmark's phase).
pub fn drive_events(
    generator: &mut Generator,
    clients: usize,
    topics: usize,
    (count, window, size): (u32, u32, usize),
    limits: (Duration, Duration),
) -> Result<PhaseResult, String> {
    let plan = Plan {
        stall: limits.1,
        ..Plan::full()
    };
    let joined = join(generator, None, clients + 1, &plan)?;
    joined.require_all(clients + 1)?;
    let spec = GroupSpec::topics(clients, topics.max(1));
    let (ids, failed, _, _) = subscribe(generator, None, &spec, &plan)?;
    if failed > 0 {
        return Err(format!("{failed} SUBSCRIBEs failed"));
    }
    let id = generator.new_phase_id();
    let mut phase = Groups::new(&spec, id, size, window, count).via_wamp(clients, ids);
    if topics > 1 && window > 32 {
        phase = phase.in_bursts();
    }
    Ok(generator.run_custom(Box::new(phase), limits.0, limits.1))
}

/// The issue-11 bounds, on the medians of this run (names start with `issue 11:`).
pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let mut out = Vec::new();
    let get = |workload: &str, server: Kind, metric: &str| {
        find(summary, workload, server).map_or(f64::NAN, |s| s.get(metric))
    };
    let n = plan.main_n;
    let mut events = Vec::new();
    for topics in [TOPICS.min(n), 1] {
        for &window in &plan.windows {
            events.push(format!(
                "event n={n} {topics}x{} w={}",
                n / topics,
                topic_window(window, topics)
            ));
        }
    }
    for workload in &events {
        let Some((base, _)) = compared_with(workload) else {
            continue;
        };
        let (ours, theirs) = (
            get(workload, Kind::Wson, "cpu_us"),
            get(&base, Kind::Wson, "cpu_us"),
        );
        let yardstick = base.rsplit(' ').next().unwrap_or_default();
        out.push(ratio_target(
            format!(
                "issue 11: server CPU per delivery, {workload}: wson <= {EVENT_CPU_BOUND}x plain `b` at {yardstick}"
            ),
            ours,
            theirs,
            EVENT_CPU_BOUND,
            true,
            &format!("EVENT {} us vs broadcast {} us", fmt(ours), fmt(theirs)),
        ));
    }
    for workload in &events {
        let (ours, theirs) = (
            get(workload, Kind::Wson, "rate"),
            get(workload, Kind::Crossbar, "rate"),
        );
        out.push(ratio_target(
            format!("issue 11: deliveries/s, {workload}: wson >= {EVENT_RATE_BOUND}x crossbar"),
            ours,
            theirs,
            EVENT_RATE_BOUND,
            false,
            &format!("wson {}/s vs crossbar {}/s", fmt(ours), fmt(theirs)),
        ));
    }
    let crossbar_rpc = format!("rpc n={CALLERS} callee=wamp");
    for callee in ["wamp", "control"] {
        let workload = format!("rpc n={CALLERS} callee={callee}");
        let (ours, theirs) = (
            get(&workload, Kind::Wson, "cpu_us"),
            get(&crossbar_rpc, Kind::Crossbar, "cpu_us"),
        );
        out.push(ratio_target(
            format!(
                "issue 11: server CPU per call, {workload}: wson <= {RPC_CPU_BOUND}x crossbar's WAMP callee"
            ),
            ours,
            theirs,
            RPC_CPU_BOUND,
            true,
            &format!("wson {} us vs crossbar {} us", fmt(ours), fmt(theirs)),
        ));
    }
    for kind in [Kind::Wson, Kind::Crossbar] {
        // WAMP rows only: the plain yardsticks (`b`, `x`) are counted with the table's.
        let mine: Vec<&Summary> = summary
            .iter()
            .filter(|s| {
                s.server == kind
                    && owns(s.workload.split(' ').next().unwrap_or(""))
                    && !s.workload.contains(" broadcast ")
                    && !s.workload.contains(" x ")
            })
            .collect();
        let lost: f64 = mine
            .iter()
            .map(|s| s.get("lost"))
            .filter(|v| !v.is_nan())
            .sum();
        let bad = report::failures(&mine);
        out.push(Target {
            name: format!(
                "issue 11: zero lost (and no duplicated, reordered, stray or failed) in every WAMP run, {}",
                kind.name()
            ),
            met: (!mine.is_empty()).then_some(bad == 0.0),
            detail: if mine.is_empty() {
                "not measured".into()
            } else {
                format!("{lost} lost, {bad} anomalies in all over {} workloads", mine.len())
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_reads_the_type_and_the_integers_after_it() {
        assert_eq!(
            head(b"[36, 5,7,{},[\"x\"]]"),
            Some((36, [Some(5), Some(7), None]))
        );
        assert_eq!(head(b"[2,123,{}]"), Some((2, [Some(123), None, None])));
        assert_eq!(head(b"[33,2,99]"), Some((33, [Some(2), Some(99), None])));
        assert_eq!(
            head(b"[3,{},\"wamp.error\"]"),
            Some((3, [None, None, None]))
        );
        assert_eq!(head(b"{}"), None);
    }

    #[test]
    fn string_arg_takes_the_fast_path_and_falls_back() {
        let body = br#"[36,1,2,{},["Gabc"]]"#;
        assert!(matches!(string_arg(body), Some(Cow::Borrowed(b"Gabc"))));
        let body = br#"[50,7,{},["Rx"],{}]"#;
        assert_eq!(string_arg(body).as_deref(), Some(&b"Rx"[..]));
        let body = br#"[68,1,2,{"x":"y"},["P"]]"#;
        assert_eq!(string_arg(body).as_deref(), Some(&b"P"[..]));
        assert_eq!(string_arg(br#"[2,1,{}]"#), None);
    }

    #[test]
    fn a_yield_answers_each_invocation_and_a_result_completes_its_call() {
        let mut rpc = Rpc::new(9, 2, Callee::Control { registration: 77 });
        let now = Instant::now();
        let mut out = Outbox::default();
        assert_eq!(rpc.trigger(true, now, &mut out), 2);
        assert_eq!(out.clients.len(), 2);
        let mut tally = Tally::default();
        let body = payload(RPC_TAG, SIZE, 9, 0, 1);
        let mut invocation = b"[68,4,77,{},[\"".to_vec();
        invocation.extend_from_slice(&body);
        invocation.extend_from_slice(b"\"]]");
        rpc.on_control_frame(b'V', &invocation, &mut tally, now);
        let mut out = Outbox::default();
        rpc.trigger(false, now, &mut out);
        let expected = with_arg("[70,4,{},[\"".into(), &body);
        assert!(
            out.control
                .starts_with(format!("{}V", expected.len()).as_bytes())
        );
        assert!(out.control.ends_with(&expected));
        // Caller 1's RESULT for its request 1 (sequence 0).
        let result = with_arg("[50,1,{},[\"".into(), &body);
        rpc.on_client_message(&result, 1, &mut tally, now);
        assert_eq!(tally.delivered, 1);
        rpc.on_client_message(&result, 1, &mut tally, now);
        assert_eq!(tally.anomalies.duplicated, 1);
        // Caller 0 getting caller 1's payload: stray.
        rpc.on_client_message(&result, 0, &mut tally, now);
        assert_eq!(tally.anomalies.stray, 1);
        assert_eq!(rpc.outstanding(), 1);
    }

    #[test]
    fn events_check_the_subscription_and_the_payload() {
        let spec = GroupSpec::topics(4, 2);
        let mut groups = Groups::new(&spec, 3, SIZE, 2, 10).via_wamp(4, vec![11, 12, 11, 12]);
        let now = Instant::now();
        let mut out = Outbox::default();
        assert_eq!(groups.trigger(true, now, &mut out), 2);
        assert!(out.control.is_empty());
        // Both publications in one write from the publisher.
        let [(4, frames)] = out.clients.as_slice() else {
            panic!("publications from the publisher: {:?}", out.clients.len());
        };
        assert!(frames.len() > 2 * SIZE);
        let mut tally = Tally::default();
        // A member of topic 0 (client 0, subscription 11) gets publication 0 if it went there.
        let event = |sub: u64, body: &[u8]| with_arg(format!("[36,{sub},5,{{}},[\""), body);
        let wrong = event(12, &[b'G'; 40]);
        groups.on_client_message(&wrong, 0, &mut tally, now);
        assert_eq!(tally.anomalies.stray, 1);
    }
}
