//! Three nodes of 19,000 clients each, 57,000 in all, against one node of 19,000 (issue
//! 13, `--cluster-57k`), wson only. One node holds at most ~19,900 connections here (the
//! open-file limit), and so does one load-generator process: the clients live in `hold`
//! processes of this binary, one per node, each connecting its 19,000 from source addresses
//! of its own (127.0.0.1-3 for the first, .4-6 for the second, ...), so no process nears the
//! limit and no source address runs out of ephemeral ports.
//!
//! - `single`: one node alone (no `[cluster]`), one holder of N clients.
//! - `3nodes`: nodes a, b and c on ports of their own, joined by the run's Redis, a holder
//!   of N clients on each (3N in all).
//!
//! In both, this process holds only the control connection to node a and sends the
//! broadcasts (`b`, 100 bytes, W = 1 and 32, the fan-out's caps and a warm-up of 3); b and
//! c get them through Redis. Each holder checks that every one of its clients got every
//! broadcast once and in order, and says `c SEQ` on its stdout when all of them have one;
//! a broadcast is delivered when every holder said so, which opens the window for the
//! next. After the phase each holder reports what it counted (`result ...`): nothing lost,
//! duplicated, reordered or stray, else the row shows it.
//!
//! What is compared: CPU per delivery (a client getting one broadcast) of the three nodes
//! together (57,000 deliveries per broadcast) against the one node's (19,000), each on the
//! server core, Redis apart; and deliveries per second of each.
//!
//! The protocol on a holder's stdin: `phase ID MAX` (answered `armed ID`), `end SENT` (the
//! phase is over after SENT broadcasts; answered `result key=value ...`), `quit`. A holder
//! that cannot go on says `error ...` and exits.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::cluster::{self, Reading, Redis};
use crate::generator::{
    self, CLIENTS_PER_SOURCE, Generator, Outbox, PhaseResult, Proto, Tally, Workload,
};
use crate::report::{Column, LATENCY, Record, Summary, Target, col, find, fmt, zero_target};
use crate::servers::{self, ClusterNode, Kind, Paths, Router, Running, Setup};
use crate::{Plan, check_alive, phase_record, settle};

/// Message size of the broadcasts.
pub const SIZE: usize = 100;
/// The nodes' `node_id`s and the metrics of each one's CPU per delivery.
const NODES: [(&str, &str); 3] = [("a", "cpu_a_us"), ("b", "cpu_b_us"), ("c", "cpu_c_us")];
/// How long the holders may take to connect their clients.
const CONNECT_LIMIT: Duration = Duration::from_secs(240);
/// The longest a holder's phase may last (its end is the parent's `end`; this only keeps
/// the deadline representable).
const LISTEN_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How long a holder may take to answer `phase` or `quit`.
const ANSWER_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One node, no `[cluster]`.
    Single,
    /// Three nodes joined by Redis.
    Three,
}

impl Shape {
    pub const ALL: [Shape; 2] = [Shape::Single, Shape::Three];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Single => "single",
            Shape::Three => "3nodes",
        }
    }

    fn nodes(self) -> usize {
        match self {
            Shape::Single => 1,
            Shape::Three => 3,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The holder process (`wsbench hold`)

/// `wsbench hold --ws ADDR --clients N --source-base B --session S --gen-core C
/// --concurrency K --stall-ms MS`: connects N clients to ADDR, then follows the protocol
/// above on stdin and stdout.
pub fn hold(args: &[String]) -> Result<(), String> {
    let mut ws: Option<SocketAddr> = None;
    let (mut clients, mut base, mut session, mut core) = (0usize, 1u8, 0u32, None);
    let (mut concurrency, mut stall_ms) = (64usize, 60_000u64);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--ws" => ws = Some(crate::number(crate::value(args, &mut i)?)?),
            "--clients" => clients = crate::number(crate::value(args, &mut i)?)?,
            "--source-base" => base = crate::number(crate::value(args, &mut i)?)?,
            "--session" => session = crate::number(crate::value(args, &mut i)?)?,
            "--gen-core" => core = Some(crate::number(crate::value(args, &mut i)?)?),
            "--concurrency" => concurrency = crate::number(crate::value(args, &mut i)?)?,
            "--stall-ms" => stall_ms = crate::number(crate::value(args, &mut i)?)?,
            other => return Err(format!("hold: unknown argument {other}")),
        }
        i += 1;
    }
    let result = hold_run(ws, clients, base, session, core, concurrency, stall_ms);
    if let Err(e) = &result {
        // The parent reads this line; the exit code is for a person.
        println!("error {e}");
    }
    result
}

fn hold_run(
    ws: Option<SocketAddr>,
    clients: usize,
    base: u8,
    session: u32,
    core: Option<usize>,
    concurrency: usize,
    stall_ms: u64,
) -> Result<(), String> {
    let ws = ws.ok_or("hold: --ws is required")?;
    if let Some(core) = core {
        crate::prepare_process(core)?;
    }
    let mut generator =
        Generator::with_control(Proto::Ws, ws, None, session).map_err(|e| format!("poll: {e}"))?;
    generator.set_source_base(base);
    generator
        .connect(clients, concurrency, CONNECT_LIMIT)
        .require_all(clients, "clients")?;
    let waker = Arc::new(generator.waker().map_err(|e| format!("waker: {e}"))?);
    let (tx, mut commands) = channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
            let _ = waker.wake();
        }
        // The parent went away: as good as `quit`.
        let _ = tx.send("quit".into());
        let _ = waker.wake();
    });
    say(&format!("ready {clients}"));
    let stall = Duration::from_millis(stall_ms);
    loop {
        let line = commands.recv().map_err(|_| "stdin closed")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["phase", id, max] => {
                let listen =
                    Listen::new(crate::number(id)?, crate::number(max)?, clients, commands);
                say(&format!("armed {id}"));
                // Ended by the parent's `end`; `stall` only bounds a parent gone silent.
                let (result, listen) = generator.run_owned(listen, LISTEN_LIMIT, stall);
                let mut listen = listen.ok_or("the listening phase vanished")?;
                let sent = match listen.ended {
                    Some(sent) => sent,
                    None => listen.wait_end(ANSWER_WAIT)?,
                };
                let a = result.anomalies;
                say(&format!(
                    "result delivered={} lost={} duplicated={} reordered={} stray={} disconnected={}",
                    result.delivered,
                    listen.lost(sent),
                    a.duplicated,
                    a.reordered,
                    a.stray,
                    a.disconnected
                ));
                commands = listen.commands;
            }
            ["quit"] => return Ok(()),
            _ => return Err(format!("unknown command {line:?}")),
        }
    }
}

/// One line to the parent (stdout is line-buffered: each goes at once).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A holder's side of a phase: checks each client's broadcasts as the fan-out does and says
/// `c SEQ` when every client has SEQ.
struct Listen {
    id: u32,
    max: u32,
    /// Per client: which sequence numbers arrived (a bit each), and the highest plus one.
    seen: Vec<Vec<u64>>,
    high: Vec<u32>,
    /// Per sequence number: clients still to get it.
    remaining: Vec<u32>,
    completed: u64,
    /// The parent's `end SENT`.
    ended: Option<u32>,
    commands: Receiver<String>,
}

impl Listen {
    fn new(id: u32, max: u32, clients: usize, commands: Receiver<String>) -> Listen {
        let words = (max as usize).div_ceil(64);
        Listen {
            id,
            max,
            seen: vec![vec![0; words]; clients],
            high: vec![0; clients],
            remaining: vec![u32::try_from(clients).unwrap_or(u32::MAX); max as usize],
            completed: 0,
            ended: None,
            commands,
        }
    }

    fn command(&mut self, line: &str) {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["end", sent] => self.ended = Some(sent.parse().unwrap_or(self.max)),
            // `quit` mid-phase: the phase ends, the loop then reads nothing more.
            _ => self.ended = Some(0),
        }
    }

    fn wait_end(&mut self, limit: Duration) -> Result<u32, String> {
        let line = self
            .commands
            .recv_timeout(limit)
            .map_err(|_| format!("no `end` within {limit:?}"))?;
        self.command(&line);
        Ok(self.ended.unwrap_or(0))
    }

    /// Deliveries of the first `sent` broadcasts that never came.
    fn lost(&self, sent: u32) -> u64 {
        self.remaining
            .iter()
            .take(sent as usize)
            .map(|&r| u64::from(r))
            .sum()
    }
}

impl Workload for Listen {
    fn trigger(&mut self, _sending: bool, _now: Instant, _out: &mut Outbox) -> u64 {
        while let Ok(line) = self.commands.try_recv() {
            self.command(&line);
        }
        self.completed
    }

    fn done(&self, _sending: bool) -> bool {
        self.ended.is_some()
    }

    fn outstanding(&self) -> u64 {
        // Counted by `lost` once the parent says how many were sent.
        0
    }

    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        let parsed = generator::parse_payload(body);
        let Some((b'F', id, seq, _)) = parsed else {
            tally.anomalies.stray += 1;
            return;
        };
        let (Some(seen), Some(high)) = (self.seen.get_mut(index), self.high.get_mut(index)) else {
            tally.anomalies.stray += 1;
            return;
        };
        if id != self.id || seq >= self.max {
            tally.anomalies.stray += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if seen[word] & bit != 0 {
            tally.anomalies.duplicated += 1;
            return;
        }
        seen[word] |= bit;
        if seq + 1 < *high {
            tally.anomalies.reordered += 1;
        }
        *high = (*high).max(seq + 1);
        tally.delivered += 1;
        tally.last_progress = Some(now);
        let slot = &mut self.remaining[seq as usize];
        *slot -= 1;
        if *slot == 0 {
            self.completed += 1;
            say(&format!("c {seq}"));
        }
    }

    fn on_control_frame(&mut self, _: u8, _: &[u8], tally: &mut Tally, _: Instant) {
        tally.anomalies.stray += 1;
    }
}

// ---------------------------------------------------------------------------------------
// The parent's side

/// The holders of a session: their processes, stdins, and one channel of their lines.
struct Holders {
    children: Vec<(Child, ChildStdin)>,
    lines: Option<Receiver<(usize, String)>>,
    /// Lines read while waiting for others, per holder.
    inbox: Vec<VecDeque<String>>,
    clients: u64,
}

impl Holders {
    /// Starts one holder of `per_node` clients per node, pinned to the generator's core;
    /// each line they print wakes `generator`'s poll.
    fn start(
        nodes: &[Running],
        per_node: usize,
        plan: &Plan,
        session: u32,
        generator: &Generator,
    ) -> Result<Holders, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let waker = Arc::new(generator.waker().map_err(|e| format!("waker: {e}"))?);
        let (tx, rx) = channel();
        let sources = per_node.div_ceil(CLIENTS_PER_SOURCE).max(1);
        let stall = plan.stall * 3 + Duration::from_secs(30);
        let mut children = Vec::new();
        for (k, node) in nodes.iter().enumerate() {
            let base = u8::try_from(1 + k * sources)
                .map_err(|_| format!("{} source addresses are too many", (k + 1) * sources))?;
            let mut child = Command::new(&exe)
                .arg("hold")
                .args(["--ws", &node.ws.to_string()])
                .args(["--clients", &per_node.to_string()])
                .args(["--source-base", &base.to_string()])
                .args([
                    "--session",
                    &session.wrapping_add(k as u32 * 7919).to_string(),
                ])
                .args(["--gen-core", &plan.gen_core.to_string()])
                .args(["--concurrency", &plan.concurrency.to_string()])
                .args(["--stall-ms", &stall.as_millis().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("{}: hold: {e}", exe.display()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err("hold: no pipes".into());
            };
            spawn_reader(k, stdout, tx.clone(), Arc::clone(&waker));
            children.push((child, stdin));
        }
        let mut holders = Holders {
            inbox: vec![VecDeque::new(); children.len()],
            children,
            lines: Some(rx),
            clients: (per_node * nodes.len()) as u64,
        };
        holders.expect("ready", CONNECT_LIMIT + ANSWER_WAIT)?;
        Ok(holders)
    }

    fn tell(&mut self, line: &str) -> Result<(), String> {
        for (k, (_, stdin)) in self.children.iter_mut().enumerate() {
            writeln!(stdin, "{line}")
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("holder {k}: {e}"))?;
        }
        Ok(())
    }

    /// Waits until each holder has said a line starting with `word`; returns them in
    /// holder order. `error ...` from any holder, or its exit, fails at once.
    fn expect(&mut self, word: &str, limit: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + limit;
        let mut got: Vec<Option<String>> = vec![None; self.children.len()];
        // What came while a phase ran, or before.
        for (k, inbox) in self.inbox.iter_mut().enumerate() {
            while let Some(line) = inbox.pop_front() {
                if line.starts_with(word) && got[k].is_none() {
                    got[k] = Some(line);
                }
            }
        }
        let lines = self
            .lines
            .as_ref()
            .ok_or("the holders' lines are lent out")?;
        while got.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let (k, line) = match lines.recv_timeout(left) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    let missing: Vec<usize> =
                        (0..got.len()).filter(|&k| got[k].is_none()).collect();
                    return Err(format!(
                        "holders {missing:?} did not say `{word}` within {limit:?}"
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("the holders exited before `{word}`"));
                }
            };
            if let Some(error) = line.strip_prefix("error ") {
                return Err(format!("holder {k}: {error}"));
            }
            if line == "exited" {
                return Err(format!("holder {k} exited before `{word}`"));
            }
            if line.starts_with(word)
                && let Some(slot) = got.get_mut(k)
            {
                *slot = Some(line);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// One fan-out: `phase` to the holders, the broadcasts at `window` to node a, `end`,
    /// then the holders' counts.
    fn fanout(
        &mut self,
        generator: &mut Generator,
        window: u32,
        (max, duration, stall): (u32, Duration, Duration),
    ) -> Result<PhaseResult, String> {
        let id = generator.new_phase_id();
        self.tell(&format!("phase {id} {max}"))?;
        self.expect("armed", ANSWER_WAIT)?;
        let lines = self.lines.take().ok_or("the holders' lines are lent out")?;
        let broadcasts = Broadcasts {
            id,
            window,
            max,
            sent: 0,
            completed: 0,
            sent_at: Vec::new(),
            done_by: Vec::new(),
            holders: self.children.len(),
            clients: self.clients,
            lines,
            inbox: vec![VecDeque::new(); self.children.len()],
            error: None,
        };
        let (mut result, broadcasts) = generator.run_owned(broadcasts, duration, stall);
        let broadcasts = broadcasts.ok_or("the broadcast phase vanished")?;
        self.lines = Some(broadcasts.lines);
        for (inbox, lines) in self.inbox.iter_mut().zip(broadcasts.inbox) {
            inbox.extend(lines);
        }
        if let Some(error) = broadcasts.error {
            return Err(error);
        }
        self.tell(&format!("end {}", broadcasts.sent))?;
        let results = self.expect("result", ANSWER_WAIT)?;
        // The holders' counts replace the parent's estimate (clients x broadcasts done).
        result.delivered = 0;
        result.anomalies.lost = 0;
        for line in results {
            for (key, value) in line.split_whitespace().filter_map(|kv| kv.split_once('=')) {
                let value: u64 = value.parse().unwrap_or(0);
                let a = &mut result.anomalies;
                match key {
                    "delivered" => result.delivered += value,
                    "lost" => a.lost += value,
                    "duplicated" => a.duplicated += value,
                    "reordered" => a.reordered += value,
                    "stray" => a.stray += value,
                    "disconnected" => a.disconnected += value,
                    _ => {}
                }
            }
        }
        Ok(result)
    }

    fn stop(mut self) {
        let _ = self.tell("quit");
        let deadline = Instant::now() + ANSWER_WAIT;
        for (child, _) in &mut self.children {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                settle(20);
            }
        }
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads holder `k`'s lines into `tx`, waking the parent's poll for each; `exited` at EOF.
fn spawn_reader(
    k: usize,
    stdout: std::process::ChildStdout,
    tx: Sender<(usize, String)>,
    waker: Arc<mio::Waker>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((k, line)).is_err() {
                return;
            }
            let _ = waker.wake();
        }
        let _ = tx.send((k, "exited".into()));
        let _ = waker.wake();
    });
}

/// The parent's phase: broadcasts to node a's control socket, `window` not yet at every
/// client of every holder.
struct Broadcasts {
    id: u32,
    window: u32,
    max: u32,
    sent: u32,
    completed: u32,
    sent_at: Vec<Instant>,
    /// Per broadcast: holders that said it reached all their clients.
    done_by: Vec<usize>,
    holders: usize,
    clients: u64,
    lines: Receiver<(usize, String)>,
    /// Lines other than `c SEQ`, kept for `Holders::expect`.
    inbox: Vec<VecDeque<String>>,
    /// A holder's `error ...` or exit: the phase ends.
    error: Option<String>,
}

impl Workload for Broadcasts {
    fn on_turn(&mut self, tally: &mut Tally, now: Instant) {
        while let Ok((k, line)) = self.lines.try_recv() {
            let seq = line
                .strip_prefix("c ")
                .and_then(|seq| seq.parse::<usize>().ok());
            match seq {
                Some(seq) if seq < self.done_by.len() => {
                    self.done_by[seq] += 1;
                    if self.done_by[seq] == self.holders {
                        // Every client of every holder has it.
                        self.completed += 1;
                        tally.delivered += self.clients;
                        tally.latencies.push(now - self.sent_at[seq]);
                        tally.last_progress = Some(now);
                    }
                }
                _ if line.starts_with("error ") || line == "exited" => {
                    self.error
                        .get_or_insert_with(|| format!("holder {k}: {line}"));
                }
                _ => {
                    if let Some(inbox) = self.inbox.get_mut(k) {
                        inbox.push_back(line);
                    }
                }
            }
        }
    }

    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        while sending && self.sent < self.max && self.sent - self.completed < self.window {
            let body = generator::payload(b'F', SIZE, self.id, self.sent, 0);
            out.control
                .extend_from_slice(format!("{}b", body.len()).as_bytes());
            out.control.extend_from_slice(&body);
            self.sent_at.push(now);
            self.done_by.push(0);
            self.sent += 1;
        }
        u64::from(self.sent)
    }

    fn done(&self, sending: bool) -> bool {
        self.error.is_some() || (self.completed == self.sent && (self.sent == self.max || !sending))
    }

    fn outstanding(&self) -> u64 {
        u64::from(self.sent - self.completed) * self.clients
    }

    fn on_client_message(&mut self, _: &[u8], _: usize, tally: &mut Tally, _: Instant) {
        tally.anomalies.stray += 1;
    }

    fn on_control_frame(&mut self, _: u8, _: &[u8], tally: &mut Tally, _: Instant) {
        tally.anomalies.stray += 1;
    }
}

// ---------------------------------------------------------------------------------------
// The session

/// One session of `shape`: its nodes, a holder of `plan.per_node` clients on each, a
/// warm-up, then `b` at each window.
pub fn session(
    shape: Shape,
    redis: &mut Redis,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let per_node = plan.per_node;
    let joined = shape == Shape::Three;
    let mut nodes = Vec::new();
    for (node_id, _) in &NODES[..shape.nodes()] {
        let setup = Setup {
            echo: false,
            max_connections: per_node + 100,
            router: Router::Off,
            cluster: joined.then(|| ClusterNode {
                redis: redis.url(),
                node_id: (*node_id).to_string(),
                prefix: format!("wsbench{session}"),
                shared_port: None,
            }),
        };
        nodes.push(servers::start_with(
            Kind::Wson,
            paths,
            plan.server_core,
            session,
            &setup,
        )?);
    }
    if joined {
        crate::cross::wait_peers(&nodes, nodes.len() as u64)?;
    }
    let mut generator =
        Generator::with_control(Proto::Ws, nodes[0].ws, Some(nodes[0].control), session)
            .map_err(|e| format!("control connect: {e}"))?;
    let started = Instant::now();
    let mut holders = Holders::start(&nodes, per_node, plan, session, &generator)?;
    eprintln!(
        "wsbench: {} clients connected to {} node(s) in {:.1} s",
        holders.clients,
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    // Each node holds its holder's clients, and no more.
    for (node, (node_id, _)) in nodes.iter().zip(NODES) {
        let connections = cluster::counter(&cluster::status(node)?, "connections")?;
        if connections != per_node as u64 {
            return Err(format!(
                "node {node_id} holds {connections} connections, not {per_node}"
            ));
        }
    }
    settle(500);
    let mut link = joined.then_some(redis);
    if let Some(redis) = link.as_deref_mut() {
        redis.measure_idle();
    }
    let warm = holders.fanout(&mut generator, 1, (3, Duration::from_secs(30), plan.stall))?;
    for &window in &plan.windows {
        let (max, time) = plan.fanout_limits(window);
        let counters = match link {
            Some(_) => Some(cluster::link_counters(&nodes)?),
            None => None,
        };
        let before = Reading::take(&nodes, link.as_deref());
        let result = holders.fanout(&mut generator, window, (max, time, plan.stall))?;
        let after = Reading::take(&nodes, link.as_deref());
        for node in nodes.iter_mut() {
            check_alive(node)?;
        }
        let delivered = result.delivered;
        let cpu = before.cpu().per_op(after.cpu(), delivered);
        let per_write = match (before.writes(), after.writes()) {
            (Some(b), Some(a)) if a > b => delivered as f64 / (a - b) as f64,
            _ => f64::NAN,
        };
        let mut record = phase_record(
            workload(shape, holders.clients, window),
            Kind::Wson,
            round,
            &result,
            cpu,
        )
        .metric("per_write", per_write)
        .metric("warmup_anomalies", warm.anomalies.total() as f64);
        for ((b, _), ((a, _), (_, metric))) in
            before.nodes.iter().zip(after.nodes.iter().zip(NODES))
        {
            record = record.metric(metric, b.per_op(*a, delivered).0);
        }
        if let (Some(redis), Some((sent, dropped))) = (link.as_deref_mut(), counters) {
            redis.check_alive()?;
            let (sent_after, dropped_after) = cluster::link_counters(&nodes)?;
            let (sent, dropped) = ((sent, sent_after), (dropped, dropped_after));
            record = cluster::with_link_metrics(record, &before, &after, delivered, sent, dropped);
        }
        records.push(record);
    }
    holders.stop();
    drop(generator);
    for node in nodes {
        node.stop();
    }
    Ok(())
}

fn workload(shape: Shape, clients: u64, window: u32) -> String {
    format!("crowd {} n={clients} w={window}", shape.name())
}

/// The sections of the table this module owns (the first word of a workload name).
pub fn owns(kind: &str) -> bool {
    kind == "crowd"
}

/// The header of the ratio column in this module's sections.
pub const RATIO_HEADER: &str = "cpu/single";

/// The row a row's CPU per delivery is divided by: one node alone at the same window.
pub fn compared_with(workload: &str) -> Option<(String, Kind)> {
    match workload.split(' ').collect::<Vec<_>>().as_slice() {
        ["crowd", shape, n, window] => {
            let nodes: u64 = if *shape == Shape::Three.name() { 3 } else { 1 };
            let clients: u64 = n.strip_prefix("n=")?.parse().ok()?;
            Some((
                format!(
                    "crowd {} n={} {window}",
                    Shape::Single.name(),
                    clients / nodes
                ),
                Kind::Wson,
            ))
        }
        _ => None,
    }
}

pub fn columns(_kind: &str) -> (&'static str, Vec<Column>) {
    (
        "Crowd (issue 13): `b` (100 bytes) to node a's control socket, W in flight; single: one node alone, N clients; 3nodes: a, b and c joined by Redis, N clients each (3N in all), CPU summed over the three (a, b, c: each node's, per delivery of all 3N); clients in one holder process per node; redis: Redis's CPU per delivery and messages published; latency trigger -> last client of every holder",
        [
            vec![
                col("deliveries/s", "rate", 1.0),
                col("cpu us/deliv", "cpu_us", 1.0),
                col("node a us", "cpu_a_us", 1.0),
                col("node b us", "cpu_b_us", 1.0),
                col("node c us", "cpu_c_us", 1.0),
            ],
            LATENCY[..2].to_vec(),
            vec![
                col("broadcasts", "triggers", 1.0),
                col("deliv/writev", "per_write", 1.0),
                col("redis us/dl", "redis_us", 1.0),
                col("redis msgs", "redis_messages", 1.0),
            ],
        ]
        .concat(),
    )
}

/// What the issue asks of this workload: 3N clients served, each getting every broadcast.
pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let mine: Vec<&Summary> = summary
        .iter()
        .filter(|s| owns(s.workload.split(' ').next().unwrap_or("")))
        .collect();
    let three = 3 * plan.per_node;
    let served = mine
        .iter()
        .any(|s| s.workload.starts_with(&format!("crowd 3nodes n={three} ")));
    vec![
        Target {
            name: format!(
                "issue 13: 3 nodes x {} connections = {three} clients on this machine, broadcasts measured",
                plan.per_node
            ),
            met: Some(served),
            detail: if served {
                "every node held its clients, every phase completed".into()
            } else {
                "no 3-node phase completed (see the errors)".into()
            },
        },
        zero_target(
            "issue 13: every client of every node got every broadcast once and in order; nothing dropped by the link".into(),
            &mine,
        ),
    ]
}

/// The comparison the issue asks for, without a bound: 3 nodes against one, per window.
pub fn information(summary: &[Summary], plan: &Plan) -> Vec<String> {
    let get = |workload: &str, metric: &str| {
        find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get(metric))
    };
    let n = plan.per_node as u64;
    let mut out = Vec::new();
    for &window in &plan.windows {
        let single = workload(Shape::Single, n, window);
        let three = workload(Shape::Three, 3 * n, window);
        out.push(format!(
            "w={window}: 3 nodes x {n} clients {} deliveries/s at {} us CPU per delivery (a {} + b {} + c {}; Redis {}) vs one node of {n} {} deliveries/s at {} us: CPU per delivery {:.2}x, deliveries/s {:.2}x, all on one server core",
            fmt(get(&three, "rate")),
            fmt(get(&three, "cpu_us")),
            fmt(get(&three, "cpu_a_us")),
            fmt(get(&three, "cpu_b_us")),
            fmt(get(&three, "cpu_c_us")),
            fmt(get(&three, "redis_us")),
            fmt(get(&single, "rate")),
            fmt(get(&single, "cpu_us")),
            get(&three, "cpu_us") / get(&single, "cpu_us"),
            get(&three, "rate") / get(&single, "rate"),
        ));
    }
    out
}
