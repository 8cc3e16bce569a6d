//! The cluster workloads of issue 13, wson only: what joining nodes through Redis costs a
//! broadcast. One redis-server serves the whole run (`Redis`), pinned to the server core like
//! the nodes. Each round runs three sessions of N clients on fresh processes, each with the
//! fan-out's broadcasts (`b`, 100 bytes, W = 1 and 32, the same caps and warm-up):
//!
//! - `single`: one node alone (no `[cluster]`): the yardstick.
//! - `linked`: one node with `[cluster]`: what the link itself costs (each batch is also
//!   published to Redis, comes back on the node's subscription, and is dropped as its own).
//! - `2nodes`: nodes a and b with `reuse_port` on one port, joined by the Redis. The clients
//!   connect to that port (the kernel spreads them by a hash of their addresses), the
//!   broadcasts go to a's control socket, and b's clients get them through Redis. Every
//!   client checks that it got every broadcast once and in order, as in the fan-out.
//!
//! A phase's CPU is the nodes' together (every thread of each: the loop and the link's
//! two); Redis's is a column of its own. `targets` checks the issue's bounds: connections
//! split within 10% between the two nodes, and their summed CPU per delivery within 1.15x
//! one node's; `information` adds what the link and Redis cost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wson::control::codec;
use wson::decoded::Decoded;

use crate::generator::{Generator, PhaseResult, Proto};
use crate::issue10::{self, write_calls};
use crate::report::{Column, Record, Summary, Target, col, find, fmt, ratio_target, zero_target};
use crate::servers::{self, ClusterNode, Kind, Paths, Router, Running, Setup};
use crate::{CpuMark, Plan, check_alive, phase_record, settle};

/// Message size of the broadcasts, as the issue-10 yardstick's.
pub const SIZE: usize = 100;
/// The issue's bounds: the most connections a node holds over the fewest, and the two nodes'
/// summed CPU per delivery over one node's.
pub const SPLIT_BOUND: f64 = 1.1;
pub const CPU_BOUND: f64 = 1.15;
/// The nodes' `node_id`s, and the metrics of each one's CPU per delivery.
const NODES: [(&str, &str); 2] = [("a", "cpu_a_us"), ("b", "cpu_b_us")];
/// How long a node may take to join (both of its Redis connections up), and Redis to start.
const JOIN_WAIT: Duration = Duration::from_secs(20);
/// How long a status request may take.
const STATUS_WAIT: Duration = Duration::from_secs(10);
/// How long Redis's CPU is read with nothing sent, before the phases: Redis does its
/// housekeeping (`serverCron`, 10 times a second) whether messages flow or not.
const IDLE_SAMPLE: Duration = Duration::from_secs(1);

/// What a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One node, no `[cluster]`.
    Single,
    /// One node with `[cluster]`.
    Linked,
    /// Two nodes on one port, joined by Redis.
    Pair,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Single, Shape::Linked, Shape::Pair];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Single => "single",
            Shape::Linked => "linked",
            Shape::Pair => "2nodes",
        }
    }

    fn nodes(self) -> usize {
        match self {
            Shape::Single | Shape::Linked => 1,
            Shape::Pair => 2,
        }
    }

    fn joined(self) -> bool {
        self != Shape::Single
    }
}

/// The run's redis-server: a free port of 127.0.0.1, no persistence, pinned to the server
/// core; killed on drop.
pub struct Redis {
    pid: i32,
    port: u16,
    /// `redis-server --version`'s `v=` (for the table's notes).
    pub version: String,
    /// Redis's CPU while nothing is sent, in microseconds per second (`measure_idle`).
    idle_us_per_s: f64,
    child: Child,
    dir: PathBuf,
}

impl Redis {
    pub fn start(paths: &Paths, core: usize) -> Result<Redis, String> {
        let program = &paths.redis_server;
        let version = Command::new(program)
            .arg("--version")
            .output()
            .map_err(|e| {
                format!("{program}: {e} (tests/install-tools.sh installs redis-server)")
            })?;
        let version = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .find_map(|word| word.strip_prefix("v="))
            .unwrap_or("?")
            .to_string();
        let port = servers::free_port()?;
        let dir = paths.work.join(format!("redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(program)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{program}: spawn: {e}"))?;
        let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
        let mut redis = Redis {
            pid,
            port,
            version,
            idle_us_per_s: f64::NAN,
            child,
            dir,
        };
        let deadline = Instant::now() + JOIN_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !redis.alive() || Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not listen on port {port}; its log:\n{}",
                    redis.log_text()
                ));
            }
            settle(20);
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn cpu(&self) -> CpuMark {
        CpuMark::of_pid(self.pid)
    }

    /// Reads Redis's CPU over `IDLE_SAMPLE` (the caller sends nothing meanwhile).
    pub(crate) fn measure_idle(&mut self) {
        let before = self.cpu();
        std::thread::sleep(IDLE_SAMPLE);
        let (us, _) = before.per_op(self.cpu(), 1);
        self.idle_us_per_s = us / IDLE_SAMPLE.as_secs_f64();
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        if self.alive() {
            Ok(())
        } else {
            Err(format!(
                "redis-server exited; its log:\n{}",
                self.log_text()
            ))
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// wson's status (`t`, one JSON object) from `node`'s control socket, on a connection of
/// its own.
pub(crate) fn status(node: &Running) -> Result<Value, String> {
    let failed = |e: std::io::Error| format!("status of {}: {e}", node.control);
    let mut stream = TcpStream::connect_timeout(&node.control, STATUS_WAIT).map_err(failed)?;
    stream.set_read_timeout(Some(STATUS_WAIT)).map_err(failed)?;
    stream.write_all(b"0t").map_err(failed)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match codec::decode(&buf, 1 << 20).map_err(|e| format!("status: {e}"))? {
            Decoded::Done { item, .. } if item.command == b'T' => {
                return serde_json::from_slice(item.payload).map_err(|e| format!("status: {e}"));
            }
            // Anything else (a ping) comes before the answer.
            Decoded::Done { len, .. } => {
                buf.drain(..len);
                continue;
            }
            Decoded::Incomplete => {}
        }
        let read = stream.read(&mut chunk).map_err(failed)?;
        if read == 0 {
            return Err(format!("status of {}: closed", node.control));
        }
        buf.extend_from_slice(&chunk[..read]);
    }
}

pub(crate) fn counter(status: &Value, key: &str) -> Result<u64, String> {
    status[key]
        .as_u64()
        .ok_or_else(|| format!("status: no {key} in {status}"))
}

/// Waits until `node` says Redis is up (both of its connections).
pub(crate) fn wait_joined(node: &Running) -> Result<(), String> {
    let deadline = Instant::now() + JOIN_WAIT;
    loop {
        let status = status(node)?;
        if status["cluster_redis"] == "up" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("node did not join within {JOIN_WAIT:?}: {status}"));
        }
        settle(20);
    }
}

/// The link's counters over the nodes: Redis messages node a published, and messages any
/// node dropped (the others never got them).
pub(crate) fn link_counters(nodes: &[Running]) -> Result<(u64, u64), String> {
    let mut sent = None;
    let mut dropped = 0;
    for node in nodes {
        let status = status(node)?;
        sent.get_or_insert(counter(&status, "cluster_sent")?);
        dropped += counter(&status, "cluster_dropped")?;
    }
    Ok((sent.unwrap_or(0), dropped))
}

/// `record` with what the link cost over a phase of `operations`: Redis's CPU per operation
/// between the readings, and the messages the nodes published and dropped (counters as
/// (before, after)).
pub(crate) fn with_link_metrics(
    record: Record,
    before: &Reading,
    after: &Reading,
    operations: u64,
    sent: (u64, u64),
    dropped: (u64, u64),
) -> Record {
    let redis_cpu = match (before.redis, after.redis) {
        (Some(b), Some(a)) => CpuMark::per_op(b, a, operations).0,
        _ => f64::NAN,
    };
    record
        .metric("redis_us", redis_cpu)
        .metric("redis_messages", sent.1.saturating_sub(sent.0) as f64)
        .metric(
            "cluster_dropped",
            dropped.1.saturating_sub(dropped.0) as f64,
        )
}

/// What a phase is measured between: each node's CPU and `write`/`writev` calls, the
/// context switches of all of them, and Redis's CPU when the nodes are joined.
pub(crate) struct Reading {
    pub(crate) nodes: Vec<(CpuMark, Option<u64>)>,
    switches: Option<u64>,
    pub(crate) redis: Option<CpuMark>,
}

impl Reading {
    pub(crate) fn take(nodes: &[Running], redis: Option<&Redis>) -> Reading {
        Reading {
            nodes: nodes
                .iter()
                .map(|node| (CpuMark::read(node), write_calls(node)))
                .collect(),
            switches: nodes
                .iter()
                .map(|node| servers::context_switches(node.pid))
                .sum(),
            redis: redis.map(Redis::cpu),
        }
    }

    pub(crate) fn cpu(&self) -> CpuMark {
        self.nodes
            .iter()
            .map(|(cpu, _)| *cpu)
            .reduce(CpuMark::plus)
            .unwrap_or(CpuMark {
                ns: None,
                ticks: None,
            })
    }

    pub(crate) fn writes(&self) -> Option<u64> {
        self.nodes.iter().map(|(_, writes)| *writes).sum()
    }
}

/// One measured fan-out at `window` on the session's nodes.
fn phase(
    generator: &mut Generator,
    nodes: &mut [Running],
    redis: Option<&mut Redis>,
    window: u32,
    plan: &Plan,
    (workload, round): (String, usize),
    warm: &PhaseResult,
) -> Result<Record, String> {
    let (max, time) = plan.fanout_limits(window);
    // Status requests stay outside the measured part.
    let counters = match redis {
        Some(_) => Some(link_counters(nodes)?),
        None => None,
    };
    let before = Reading::take(nodes, redis.as_deref());
    let result = generator.fanout(SIZE, window, max, time, plan.stall);
    let after = Reading::take(nodes, redis.as_deref());
    for node in nodes.iter_mut() {
        check_alive(node)?;
    }
    let delivered = result.delivered;
    let cpu = before.cpu().per_op(after.cpu(), delivered);
    let per_write = match (before.writes(), after.writes()) {
        (Some(b), Some(a)) if a > b => delivered as f64 / (a - b) as f64,
        _ => f64::NAN,
    };
    let switches = match (before.switches, after.switches) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / result.triggered.max(1) as f64,
        _ => f64::NAN,
    };
    let mut record = phase_record(workload, Kind::Wson, round, &result, cpu)
        .metric("per_write", per_write)
        .metric("switches", switches)
        .metric("warmup_anomalies", warm.anomalies.total() as f64);
    for ((b, _), ((a, _), (_, metric))) in before.nodes.iter().zip(after.nodes.iter().zip(NODES)) {
        record = record.metric(metric, b.per_op(*a, delivered).0);
    }
    if let (Some(redis), Some((sent, dropped))) = (redis, counters) {
        redis.check_alive()?;
        let (sent_after, dropped_after) = link_counters(nodes)?;
        let messages = sent_after.saturating_sub(sent);
        let redis_cpu = match (before.redis, after.redis) {
            (Some(b), Some(a)) => b.per_op(a, delivered).0,
            _ => f64::NAN,
        };
        // What Redis would have spent over the phase with nothing sent.
        let idle = redis.idle_us_per_s * result.elapsed.as_secs_f64() / delivered.max(1) as f64;
        record = record
            .metric("redis_us", redis_cpu)
            .metric("redis_idle_us", idle)
            .metric("redis_idle_us_s", redis.idle_us_per_s)
            .metric("redis_messages", messages as f64)
            // Per message, what Redis spent beyond its housekeeping.
            .metric(
                "redis_us_msg",
                (redis_cpu - idle) * delivered as f64 / messages.max(1) as f64,
            )
            .metric(
                "cluster_dropped",
                dropped_after.saturating_sub(dropped) as f64,
            );
    }
    Ok(record)
}

/// One session of `shape`: its nodes, N clients, a warm-up, then `b` at each window; for two
/// nodes, how the clients split between them.
pub fn session(
    shape: Shape,
    redis: &mut Redis,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.main_n;
    let shared_port = match shape {
        Shape::Pair => Some(servers::free_port()?),
        Shape::Single | Shape::Linked => None,
    };
    let mut link = shape.joined().then_some(redis);
    let mut nodes = Vec::new();
    for (node_id, _) in &NODES[..shape.nodes()] {
        let cluster = link.as_deref().map(|redis| ClusterNode {
            redis: redis.url(),
            node_id: (*node_id).to_string(),
            prefix: format!("wsbench{session}"),
            shared_port,
        });
        let setup = Setup {
            echo: false,
            max_connections: n + 100,
            router: Router::Off,
            cluster,
        };
        nodes.push(servers::start_with(
            Kind::Wson,
            paths,
            plan.server_core,
            session,
            &setup,
        )?);
    }
    if link.is_some() {
        for node in &nodes {
            wait_joined(node)?;
        }
    }
    // Clients to node a's port, which is the shared one for two nodes.
    let mut generator = Generator::new(Proto::Ws, nodes[0].ws, nodes[0].control, session)
        .map_err(|e| format!("control connect: {e}"))?;
    settle(300);
    issue10::connect(&mut generator, n, plan)?;
    settle(500);
    if let Some(redis) = link.as_deref_mut() {
        redis.measure_idle();
    }
    let split = match shape {
        Shape::Pair => Some(split_record(&nodes, n, round)?),
        Shape::Single | Shape::Linked => None,
    };
    let warm = generator.fanout(SIZE, 1, 3, Duration::from_secs(10), plan.stall);
    for &window in &plan.windows {
        records.push(phase(
            &mut generator,
            &mut nodes,
            link.as_deref_mut(),
            window,
            plan,
            (workload(n, shape, window), round),
            &warm,
        )?);
    }
    // After the fan-out rows: the table keeps each section (first word) in one piece.
    records.extend(split);
    drop(generator);
    for node in nodes {
        node.stop();
    }
    Ok(())
}

/// How many of the `n` clients each node holds (its status's `connections`).
fn split_record(nodes: &[Running], n: usize, round: usize) -> Result<Record, String> {
    let mut counts = Vec::new();
    for node in nodes {
        counts.push(counter(&status(node)?, "connections")?);
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    let fewest = counts.iter().copied().min().unwrap_or(0);
    let total: u64 = counts.iter().sum();
    let mut record = Record::new(format!("split n={n} 2nodes"), Kind::Wson, round)
        .metric("max_min", most as f64 / fewest as f64)
        // Connections the nodes do not account for (or count twice).
        .metric("failed", total.abs_diff(n as u64) as f64);
    for (count, metric) in counts.iter().zip(["node_a", "node_b"]) {
        record = record.metric(metric, *count as f64);
    }
    Ok(record)
}

/// The sections of the table this module owns (the first word of a workload name).
pub fn owns(kind: &str) -> bool {
    matches!(kind, "cluster" | "split")
}

/// The header of the ratio column in this module's sections.
pub const RATIO_HEADER: &str = "cpu/single";

/// The row a row's CPU per delivery is divided by: one node alone at the same window.
pub fn compared_with(workload: &str) -> Option<(String, Kind)> {
    match workload.split(' ').collect::<Vec<_>>().as_slice() {
        ["cluster", n, _, window] => Some((
            format!("cluster {n} {} {window}", Shape::Single.name()),
            Kind::Wson,
        )),
        _ => None,
    }
}

pub fn columns(kind: &str) -> (&'static str, Vec<Column>) {
    match kind {
        "split" => (
            "Nodes (issue 13): connections each node holds after the connect storm to their shared port (reuse_port); failed: connections the nodes do not account for",
            vec![
                col("node a", "node_a", 1.0),
                col("node b", "node_b", 1.0),
                col("max/min", "max_min", 1.0),
                col("failed", "failed", 1.0),
            ],
        ),
        _ => (
            "Cluster (issue 13): `b` (100 bytes) to node a's control socket, W in flight; single: one node alone; linked: one node with [cluster]; 2nodes: a and b on one port joined by Redis, CPU summed over both; redis: Redis's CPU per delivery and messages published; latency trigger -> last client",
            [
                issue10::delivery_columns("broadcasts"),
                vec![
                    col("redis us/dl", "redis_us", 1.0),
                    col("redis msgs", "redis_messages", 1.0),
                ],
            ]
            .concat(),
        ),
    }
}

fn workload(n: usize, shape: Shape, window: u32) -> String {
    format!("cluster n={n} {} w={window}", shape.name())
}

/// The issue-13 bounds, on this run (names start with `issue 13:`).
pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let n = plan.main_n;
    let get = |workload: &str, metric: &str| {
        find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get(metric))
    };
    let mut out = Vec::new();
    let split = format!("split n={n} 2nodes");
    // The worst round decides: one lopsided storm is a miss, whatever the median says.
    let worst = find(summary, &split, Kind::Wson)
        .map(|s| {
            s.per_round
                .iter()
                .filter_map(|m| m.iter().find(|(name, _)| *name == "max_min"))
                .map(|(_, v)| *v)
                .fold(f64::NAN, f64::max)
        })
        .unwrap_or(f64::NAN);
    out.push(Target {
        name: format!(
            "issue 13: connections split between 2 nodes on one port, {split}: max/min <= {SPLIT_BOUND} in every round"
        ),
        met: (!worst.is_nan()).then_some(worst <= SPLIT_BOUND),
        detail: format!(
            "node a {} and node b {} of {n} (medians), max/min {} (median), worst round {}{}",
            fmt(get(&split, "node_a")),
            fmt(get(&split, "node_b")),
            fmt(get(&split, "max_min")),
            fmt(worst),
            if worst > SPLIT_BOUND {
                format!(", missed by {:.2}x", worst / SPLIT_BOUND)
            } else {
                String::new()
            }
        ),
    });
    for &window in &plan.windows {
        let pair = workload(n, Shape::Pair, window);
        let single = workload(n, Shape::Single, window);
        let (ours, theirs) = (get(&pair, "cpu_us"), get(&single, "cpu_us"));
        out.push(ratio_target(
            format!(
                "issue 13: summed server CPU per delivery of 2 nodes, {pair}: <= {CPU_BOUND}x one node alone"
            ),
            ours,
            theirs,
            CPU_BOUND,
            true,
            &format!(
                "2 nodes {} us (a {} + b {}) vs one node {} us",
                fmt(ours),
                fmt(get(&pair, "cpu_a_us")),
                fmt(get(&pair, "cpu_b_us")),
                fmt(theirs)
            ),
        ));
    }
    let mine: Vec<&Summary> = summary
        .iter()
        .filter(|s| owns(s.workload.split(' ').next().unwrap_or("")))
        .collect();
    out.push(zero_target(
        "issue 13: every client got every broadcast once and in order, on either node; nothing dropped by the link".into(),
        &mine,
    ));
    out
}

/// Lines without a bound, printed under the issue-13 targets: what the link costs one node,
/// and what Redis costs.
pub fn information(summary: &[Summary], plan: &Plan) -> Vec<String> {
    let n = plan.main_n;
    let get = |workload: &str, metric: &str| {
        find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get(metric))
    };
    let mut out = Vec::new();
    for &window in &plan.windows {
        let switches = Shape::ALL.map(|shape| fmt(get(&workload(n, shape, window), "switches")));
        let [alone, linked, pair] = &switches;
        out.push(format!(
            "context switches of the nodes' threads per broadcast, w={window}: one node alone {alone}, with [cluster] {linked}, 2 nodes {pair}"
        ));
        let single = get(&workload(n, Shape::Single, window), "cpu_us");
        let linked = workload(n, Shape::Linked, window);
        let pair = workload(n, Shape::Pair, window);
        if get(&linked, "cpu_us").is_nan() && get(&pair, "cpu_us").is_nan() {
            continue;
        }
        out.push(format!(
            "the link's own cost, w={window}: one node with [cluster] {} us per delivery vs alone {} us: {:.2}x",
            fmt(get(&linked, "cpu_us")),
            fmt(single),
            get(&linked, "cpu_us") / single
        ));
        out.push(format!(
            "Redis's CPU, w={window}: {} us per delivery with 2 nodes ({:.1}% of the nodes'; linked: {} us), of which {} us its housekeeping ({} us/s with nothing sent); {} messages for {} broadcasts, {} us per message beyond housekeeping",
            fmt(get(&pair, "redis_us")),
            get(&pair, "redis_us") / get(&pair, "cpu_us") * 100.0,
            fmt(get(&linked, "redis_us")),
            fmt(get(&pair, "redis_idle_us")),
            fmt(get(&pair, "redis_idle_us_s")),
            fmt(get(&pair, "redis_messages")),
            fmt(get(&pair, "triggers")),
            fmt(get(&pair, "redis_us_msg")),
        ));
    }
    out
}
