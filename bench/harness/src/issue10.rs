//! The issue-10 workloads, wson only (the peers have no topics, users or events): topic
//! fan-out, messages to users and client messages forwarded to a listener. Each runs in a
//! session beside the phase it is compared with, on the same server and clients:
//!
//! - `groups_session`: N clients, one user each. Broadcasts (`b`) at W = 1 and 32; then
//!   100 topics of N/100 (`j` per token) and one topic of N (`J` per user), `x` to random
//!   topics at the same windows; then `d` to random clients and `u` to random users.
//! - `users3_session`: N clients, three per user: `d`, then `u`.
//! - `forward_phase`, run by the echo session after its echo phase: wson reloaded with
//!   `client_messages = "forward"`, the control connection listening (`e`, kinds
//!   `message`), the same clients keep one message each in flight to it.
//!
//! The table gives each workload's CPU per delivery over its comparison's (`cpu/cmp`), and
//! `targets` checks the bounds on those ratios.

use std::time::{Duration, Instant};

use wson::control::fields;

use crate::forward::{self, Forward};
use crate::generator::{Generator, PhaseResult, Proto};
use crate::groups::{GroupSpec, Groups};
use crate::report::Record;
use crate::report::{Column, LATENCY, Summary, Target, col, find, fmt, ratio_target, zero_target};
use crate::servers::{self, Kind, Paths, Running};
use crate::{CpuMark, Plan, check_alive, phase_record, settle};

/// Topics of the spread-out fan-out (issue 10: 10,000 connections over 100 topics).
pub const TOPICS: usize = 100;
/// Message size of every issue-10 workload, as the direct and echo phases'.
pub const SIZE: usize = 100;
/// The bound the issue sets on CPU per delivery (topics vs broadcast) and per forwarded
/// message (vs echo).
pub const BOUND: f64 = 1.2;

/// The sections of the table this module owns (the first word of a workload name).
pub fn owns(kind: &str) -> bool {
    matches!(kind, "subscribe" | "topics" | "users" | "forward")
}

/// The workload a row's CPU per delivery is divided by in the table, when it has one.
pub fn compared_with(workload: &str) -> Option<String> {
    let words: Vec<&str> = workload.split(' ').collect();
    match words.as_slice() {
        // `topics n=N TxM w=W`: W in all; over T > 1 topics that is W/T per topic.
        ["topics", _, "broadcast", _] => Some(workload.to_string()),
        ["topics", n, shape, window] => {
            let topics: u32 = shape.split('x').next()?.parse().ok()?;
            let window: u32 = window.strip_prefix("w=")?.parse().ok()?;
            let per_topic = if window > 1 {
                window / topics.max(1)
            } else {
                1
            };
            Some(format!("topics {n} broadcast w={}", per_topic.max(1)))
        }
        // `users n=N K/user u w=W` against `users n=N K/user d w=W`.
        ["users", n, per_user, "u" | "d", window] => {
            Some(format!("users {n} {per_user} d {window}"))
        }
        ["forward", n, size] => Some(format!("echo {n} {size}")),
        _ => None,
    }
}

/// The columns of a fan-out measured with `Mark`: rate, CPU, latency, how many messages
/// (`triggers`, headed `messages`) and deliveries per `writev`.
pub fn delivery_columns(messages: &'static str) -> Vec<Column> {
    [
        vec![
            col("deliveries/s", "rate", 1.0),
            col("cpu us/deliv", "cpu_us", 1.0),
        ],
        LATENCY.into(),
        vec![
            col(messages, "triggers", 1.0),
            col("deliv/writev", "per_write", 1.0),
        ],
    ]
    .concat()
}

pub fn columns(kind: &str) -> (&'static str, Vec<Column>) {
    let latency = LATENCY;
    // Topics and users show the same figures.
    let deliveries = delivery_columns("messages");
    match kind {
        "subscribe" => (
            "Subscribe (wson): `j` per token or `J` per user, all sent at once; then `H` per topic checks the counts",
            vec![
                col("subs/s", "rate", 1.0),
                col("cpu us/sub", "cpu_us", 1.0),
                col("topics", "topics", 1.0),
                col("failed", "failed", 1.0),
            ],
        ),
        "topics" => (
            "Topics (wson): `x` to random topics (T topics x members), W in flight; latency trigger -> last subscriber; cpu/cmp: over `b` at the same W, same session",
            deliveries,
        ),
        "users" => (
            "Users (wson): `u` to random users (1 or 3 connections each), W in flight; latency trigger -> last connection; cpu/cmp: over `d` in the same session",
            deliveries,
        ),
        _ => (
            "Forward (wson): each client keeps one 100-byte message in flight to a listener (`e`); cpu/cmp: over echo, same session and clients",
            [
                vec![
                    col("forwarded/s", "rate", 1.0),
                    col("cpu us/msg", "cpu_us", 1.0),
                ],
                latency.into(),
            ]
            .concat(),
        ),
    }
}

/// A session of this module: (plan, paths, session, round, records).
pub type Session = fn(&Plan, &Paths, u32, usize, &mut Vec<Record>) -> Result<(), String>;

/// The header of the ratio column in a section this module owns.
pub const RATIO_HEADER: &str = "cpu/cmp";

/// Opens `n` clients (at most `--concurrency` handshakes in flight); all must open.
pub fn connect(generator: &mut Generator, n: usize, plan: &Plan) -> Result<(), String> {
    generator
        .connect(n, plan.concurrency, Duration::from_secs(120))
        .require_all(n, "clients")
}

/// The window of a topic phase compared with a broadcast at `window`. Over several topics,
/// W > 1 means W in flight per topic on average (W x topics in all): each client then has
/// about W messages pending, as in a broadcast at W, so the server can batch as much per
/// write. With W in all, a client of one of 100 topics would have W/100 pending, and its
/// CPU per delivery would be a W = 1 broadcast's.
pub fn topic_window(window: u32, topics: usize) -> u32 {
    match (window, u32::try_from(topics)) {
        (1, _) | (_, Err(_)) => window,
        (_, Ok(topics)) => window.saturating_mul(topics.max(1)),
    }
}

/// The server's CPU time and write calls at the start of a measured phase.
pub struct Mark {
    cpu: CpuMark,
    writes: Option<u64>,
}

/// The server's `write`/`writev` calls so far: `syscw` of /proc/PID/io. wson writes to its
/// clients with `writev`; `send` (std's `write` on a socket, as on control connections) is
/// not counted.
pub fn write_calls(server: &Running) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{}/io", server.worker_pid())).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("syscw:"))?
        .trim()
        .parse()
        .ok()
}

impl Mark {
    pub fn read(server: &Running) -> Mark {
        Mark {
            cpu: CpuMark::read(server),
            writes: write_calls(server),
        }
    }

    /// The phase's record: CPU per delivery, and deliveries per `writev` (how much each
    /// write to a client carried: what CPU per delivery mostly depends on).
    pub fn record(
        self,
        server: &mut Running,
        workload: String,
        round: usize,
        result: &PhaseResult,
        warm: &PhaseResult,
    ) -> Result<Record, String> {
        let cpu = self.cpu.per_op(CpuMark::read(server), result.delivered);
        let per_write = match (self.writes, write_calls(server)) {
            (Some(before), Some(after)) if after > before => {
                result.delivered as f64 / (after - before) as f64
            }
            _ => f64::NAN,
        };
        check_alive(server)?;
        Ok(phase_record(workload, server.kind, round, result, cpu)
            .metric("per_write", per_write)
            .metric("warmup_anomalies", warm.anomalies.total() as f64))
    }
}

/// Runs `spec` once untimed (warm-up), then measured; returns its record.
fn group_phase(
    generator: &mut Generator,
    server: &mut Running,
    spec: &GroupSpec,
    window: u32,
    plan: &Plan,
    (workload, round): (String, usize),
) -> Result<Record, String> {
    let groups = spec.names.len();
    let warm_max = u32::try_from(groups.clamp(3, 1000)).unwrap_or(1000);
    let id = generator.new_phase_id();
    let warm = generator.run_custom(
        Box::new(Groups::new(spec, id, SIZE, window, warm_max)),
        Duration::from_secs(10),
        plan.stall,
    );
    // One topic of N is a broadcast by another name: the same caps as the broadcasts.
    let (max, time) = match (window, groups) {
        (1, 1) => (plan.max_broadcasts_w1, plan.latency_phase_time),
        (_, 1) => (plan.max_broadcasts_wn, plan.phase_time),
        (1, _) => (plan.max_direct, plan.latency_phase_time),
        _ => (plan.max_direct, plan.phase_time),
    };
    let id = generator.new_phase_id();
    let mut phase = Groups::new(spec, id, SIZE, window, max);
    if groups > 1 && window > plan.direct_window {
        // Thousands in flight over many topics: see `Groups::in_bursts`.
        phase = phase.in_bursts();
    }
    let before = Mark::read(server);
    let result = generator.run_custom(Box::new(phase), time, plan.stall);
    before.record(server, workload, round, &result, &warm)
}

/// Subscribes every member of `spec` (`j` per token, or `J` per user), checks each reply
/// and then each topic's counts with `H`; records the rate and CPU per subscription.
fn subscribe(
    generator: &mut Generator,
    server: &mut Running,
    spec: &GroupSpec,
    by_user: bool,
    n: usize,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let users: Vec<String> = (0..n).map(|i| generator.user_name(i)).collect();
    let (frames, count) = spec.subscribe_frames(generator.tokens(), &users, by_user);
    let before = CpuMark::read(server);
    let started = Instant::now();
    let replies = generator.control_request(&frames, count, Duration::from_secs(120))?;
    let elapsed = started.elapsed();
    let cpu = before.per_op(CpuMark::read(server), count as u64);
    check_alive(server)?;
    // One client per user here, so `j` and `J` each subscribe exactly one connection.
    let mut failed = replies
        .iter()
        .filter(|(command, payload)| *command != b'#' || payload.as_slice() != b"1")
        .count();
    let sizes = spec.sizes();
    let mut check = Vec::new();
    for name in &spec.names {
        fields::encode_fields_frame(b'H', &[name.as_bytes()], &mut check);
    }
    let counts = generator.control_request(&check, spec.names.len(), Duration::from_secs(30))?;
    for ((command, payload), size) in counts.iter().zip(&sizes) {
        // `#users connections`: one user per connection.
        let expected = format!("{size} {size}");
        if *command != b'#' || payload.as_slice() != expected.as_bytes() {
            failed += 1;
        }
    }
    let how = if by_user { "J" } else { "j" };
    records.push(
        Record::new(
            format!(
                "subscribe n={n} {how} {}x{}",
                spec.names.len(),
                n / spec.names.len().max(1)
            ),
            Kind::Wson,
            round,
        )
        .metric("rate", count as f64 / elapsed.as_secs_f64().max(1e-9))
        .metric("cpu_us", cpu.0)
        .metric("cpu_us_stat", cpu.1)
        .metric("topics", spec.names.len() as f64)
        .metric("failed", failed as f64),
    );
    Ok(())
}

fn start(
    plan: &Plan,
    paths: &Paths,
    session: u32,
    n: usize,
    per_user: usize,
) -> Result<(Running, Generator), String> {
    let server = servers::start(Kind::Wson, paths, plan.server_core, false, n + 100, session)?;
    let mut generator = Generator::new(Proto::Ws, server.ws, server.control, session)
        .map_err(|e| format!("control connect: {e}"))?;
    generator.set_clients_per_user(per_user);
    settle(300);
    connect(&mut generator, n, plan)?;
    settle(500);
    Ok((server, generator))
}

/// Broadcasts, topics (100 of N/100, then one of N), direct messages and messages to
/// users, on one server with N clients of one user each.
pub fn groups_session(
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.main_n;
    let (mut server, mut generator) = start(plan, paths, session, n, 1)?;
    let first = records.len();

    // What the topics compare with: plain broadcasts, same clients, size and windows.
    let warm = generator.fanout(SIZE, 1, 3, Duration::from_secs(10), plan.stall);
    for &window in &plan.windows {
        let (max, time) = plan.fanout_limits(window);
        let before = Mark::read(&server);
        let result = generator.fanout(SIZE, window, max, time, plan.stall);
        let workload = format!("topics n={n} broadcast w={window}");
        records.push(before.record(&mut server, workload, round, &result, &warm)?);
    }

    // Subscriptions go before this session's other records: the table keeps each section
    // (first word of the workload) in one piece.
    let mut subscriptions = Vec::new();
    for (spec, by_user) in [
        (GroupSpec::topics(n, TOPICS), false),
        (GroupSpec::topics(n, 1), true),
    ] {
        subscribe(
            &mut generator,
            &mut server,
            &spec,
            by_user,
            n,
            round,
            &mut subscriptions,
        )?;
        let topics = spec.names.len();
        for &window in &plan.windows {
            let window = topic_window(window, topics);
            let workload = format!("topics n={n} {topics}x{} w={window}", n / topics);
            records.push(group_phase(
                &mut generator,
                &mut server,
                &spec,
                window,
                plan,
                (workload, round),
            )?);
        }
    }

    users_phases(&mut generator, &mut server, plan, n, 1, round, records)?;
    records.splice(first..first, subscriptions);
    server.stop();
    Ok(())
}

/// `d` to random clients, then `u` to random users, at the direct phase's window.
fn users_phases(
    generator: &mut Generator,
    server: &mut Running,
    plan: &Plan,
    n: usize,
    per_user: usize,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let window = plan.direct_window;
    let direct_name = format!("users n={n} {per_user}/user d w={window}");
    let warm = generator.direct(SIZE, window, 1000, Duration::from_secs(10), plan.stall);
    let before = Mark::read(server);
    let result = generator.direct(SIZE, window, plan.max_direct, plan.phase_time, plan.stall);
    records.push(before.record(server, direct_name, round, &result, &warm)?);

    let spec = GroupSpec::users(n, per_user);
    let workload = format!("users n={n} {per_user}/user u w={window}");
    records.push(group_phase(
        generator,
        server,
        &spec,
        window,
        plan,
        (workload, round),
    )?);
    Ok(())
}

/// `d`, then `u`, on N clients three per user.
pub fn users3_session(
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.main_n;
    let (mut server, mut generator) = start(plan, paths, session, n, 3)?;
    users_phases(&mut generator, &mut server, plan, n, 3, round, records)?;
    server.stop();
    Ok(())
}

/// After the echo phase of wson's echo session: reload with `client_messages = "forward"`,
/// listen on the control connection, and have the same clients send to it.
pub fn forward_phase(
    server: &mut Running,
    generator: &mut Generator,
    plan: &Plan,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.echo_clients;
    server.reload_wson("client_messages", "\"forward\"")?;
    // `e` has no reply: the `0P` of the ping behind it says it is in effect.
    let mut frames = forward::listen_frame();
    frames.extend_from_slice(b"0p");
    let replies = generator.control_request(&frames, 1, Duration::from_secs(10))?;
    if replies.first().map(|(command, _)| *command) != Some(b'P') {
        return Err(format!("listen: unexpected reply {replies:?}"));
    }
    let users: Vec<String> = (0..n).map(|i| generator.user_name(i)).collect();
    let run = |generator: &mut Generator, time: Duration| {
        let id = generator.new_phase_id();
        let workload = Forward::new(id, SIZE, n, generator.tokens(), users.clone());
        generator.run_custom(Box::new(workload), time, plan.stall)
    };
    let warm = run(generator, Duration::from_millis(200));
    let before = Mark::read(server);
    let result = run(generator, plan.phase_time);
    let workload = format!("forward n={n} size={SIZE}");
    records.push(before.record(server, workload, round, &result, &warm)?);
    Ok(())
}

/// The issue-10 bounds, on the medians of this run (names start with `issue 10:`).
pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let mut out = Vec::new();
    let cpu =
        |workload: &str| find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get("cpu_us"));
    let n = plan.main_n;
    let spread = TOPICS.clamp(1, n.max(1));
    for &window in &plan.windows {
        for topics in [spread, 1] {
            let workload = format!(
                "topics n={n} {topics}x{} w={}",
                n / topics,
                topic_window(window, topics)
            );
            let Some(base) = compared_with(&workload) else {
                continue;
            };
            let (ours, theirs) = (cpu(&workload), cpu(&base));
            let per_topic = match (window, topics) {
                (1, _) | (_, 1) => String::new(),
                _ => format!(", {window} per topic"),
            };
            out.push(ratio_target(
                format!(
                    "issue 10: server CPU per delivery, {workload}{per_topic}: <= {BOUND}x `b` at w={window}"
                ),
                ours,
                theirs,
                BOUND,
                true,
                &format!("topic {} us vs broadcast {} us", fmt(ours), fmt(theirs)),
            ));
        }
    }
    let w = plan.direct_window;
    for per_user in [1, 3] {
        let workload = format!("users n={n} {per_user}/user u w={w}");
        let Some(base) = compared_with(&workload) else {
            continue;
        };
        let (ours, theirs) = (cpu(&workload), cpu(&base));
        out.push(ratio_target(
            format!(
                "issue 10: server CPU per delivery, {workload}: <= {BOUND}x `d` (the bench's yardstick; the issue sets none)"
            ),
            ours,
            theirs,
            BOUND,
            true,
            &format!("user {} us vs direct {} us", fmt(ours), fmt(theirs)),
        ));
    }
    let workload = format!("forward n={} size={SIZE}", plan.echo_clients);
    if let Some(base) = compared_with(&workload) {
        let (ours, theirs) = (cpu(&workload), cpu(&base));
        out.push(ratio_target(
            format!("issue 10: server CPU per message, {workload}: <= {BOUND}x echo"),
            ours,
            theirs,
            BOUND,
            true,
            &format!("forward {} us vs echo {} us", fmt(ours), fmt(theirs)),
        ));
    }
    let mine: Vec<&Summary> = summary
        .iter()
        .filter(|s| s.server == Kind::Wson && owns(s.workload.split(' ').next().unwrap_or("")))
        .collect();
    out.push(zero_target(
        "issue 10: zero lost, duplicated, reordered or stray messages, zero failed subscriptions"
            .into(),
        &mine,
    ));
    out
}

/// For `wsbench drive` (perf.sh, callgrind.sh): subscribes the connected clients to
/// `topics` topics (`j` per token) and publishes `count` messages to random ones, or, with
/// `topics` = 0 and `per_user` > 0, sends `count` `u` to random users.
pub fn drive_groups(
    generator: &mut Generator,
    topics: usize,
    per_user: usize,
    count: u32,
    window: u32,
    size: usize,
    limits: (Duration, Duration),
) -> Result<PhaseResult, String> {
    let clients = generator.tokens().len();
    let spec = if topics > 0 {
        let spec = GroupSpec::topics(clients, topics);
        let (frames, expected) = spec.subscribe_frames(generator.tokens(), &[], false);
        let replies = generator.control_request(&frames, expected, Duration::from_secs(120))?;
        if let Some(bad) = replies
            .iter()
            .find(|(c, p)| *c != b'#' || p.as_slice() != b"1")
        {
            return Err(format!("subscribe: unexpected reply {bad:?}"));
        }
        spec
    } else {
        GroupSpec::users(clients, per_user)
    };
    let id = generator.new_phase_id();
    let mut phase = Groups::new(&spec, id, size, window, count);
    if topics > 1 && window > 32 {
        // As the benchmark's 100-topic phase: see `Groups::in_bursts`.
        phase = phase.in_bursts();
    }
    Ok(generator.run_custom(Box::new(phase), limits.0, limits.1))
}
