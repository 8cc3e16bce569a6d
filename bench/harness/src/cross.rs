//! What a message that crosses nodes costs against one that stays on its node (issue 13,
//! `--cluster-cost`), wson only, side by side in one session:
//!
//! - `xdirect single`: one node alone (no `[cluster]`), N/2 plain clients; `d` (100 bytes)
//!   to random ones of them, W in flight: the yardstick without a cluster.
//! - `xdirect local` and `xdirect remote`: nodes a and b on ports of their own, joined by
//!   the run's Redis, N/2 clients on each; `d` to node a's control socket for tokens whose
//!   connections are on a (local), then on b (remote). Every `d` is published to Redis
//!   either way (an unconfirmed direct message reaches the token's connections on every
//!   node): a local one is delivered by a and dropped by b, which holds no such token; a
//!   remote one finds nothing on a and is delivered by b.
//! - `xrpc local` and `xrpc remote`: a WAMP callee session on node a (`bench.echo`), 100
//!   caller sessions on a and 100 on b, each with one CALL in flight (`wamp::Rpc`): callers
//!   on a (local), then callers on b (remote, the CALL and its RESULT cross Redis). Before
//!   the remote phase one CALL from b probes the route: no RESULT within `PROBE_WAIT` (or
//!   an ERROR) fails the session with what came back, so a build without RPC across nodes
//!   says so instead of waiting.
//!
//! CPU per delivered message (or per call) is the nodes' together, each node's beside it;
//! Redis's is a column of its own. `targets` checks the issue's bound: remote at most 2x
//! local.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::cluster::{self, Reading, Redis};
use crate::generator::{Generator, PhaseResult, Proto};
use crate::issue10;
use crate::report::zero_target;
use crate::report::{Column, LATENCY, Record, Summary, Target, col, find, fmt, ratio_target};
use crate::servers::{self, ClusterNode, Kind, Paths, Router, Running, Setup};
use crate::wamp::{self, Callee, Requests, Rpc};
use crate::{Plan, check_alive, phase_record, settle};

/// Message size of the direct messages.
pub const SIZE: usize = 100;
/// The issue's target: a cross-node message's CPU over a local one's, at most.
pub const BOUND: f64 = 2.0;
/// How long the probe CALL from node b may wait for its RESULT.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// How long a node may take to hear the other's heartbeat.
const PEERS_WAIT: Duration = Duration::from_secs(20);
/// The metrics of each node's CPU per delivery.
const NODE_METRICS: [&str; 2] = ["cpu_a_us", "cpu_b_us"];

/// Starts a wson node with a `[wamp]` realm: alone (`link` None), or joined to `link`.
fn start_node(
    plan: &Plan,
    paths: &Paths,
    session: u32,
    link: Option<(&Redis, &str)>,
    max_connections: usize,
) -> Result<Running, String> {
    let setup = Setup {
        echo: false,
        max_connections,
        router: Router::Open,
        cluster: link.map(|(redis, node_id)| ClusterNode {
            redis: redis.url(),
            node_id: node_id.to_string(),
            prefix: format!("wsbench{session}"),
            shared_port: None,
        }),
    };
    servers::start_with(Kind::Wson, paths, plan.server_core, session, &setup)
}

/// Waits until every node counts `count` live nodes (each heard the others' heartbeats).
pub(crate) fn wait_peers(nodes: &[Running], count: u64) -> Result<(), String> {
    let deadline = Instant::now() + PEERS_WAIT;
    for node in nodes {
        cluster::wait_joined(node)?;
        loop {
            let status = cluster::status(node)?;
            if cluster::counter(&status, "cluster_nodes")? >= count {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} did not count {count} nodes within {PEERS_WAIT:?}: {status}",
                    node.control
                ));
            }
            settle(50);
        }
    }
    Ok(())
}

/// Redis messages the nodes published, and messages any node dropped.
fn link_totals(nodes: &[Running]) -> Result<(u64, u64), String> {
    let (mut sent, mut dropped) = (0, 0);
    for node in nodes {
        let status = cluster::status(node)?;
        sent += cluster::counter(&status, "cluster_sent")?;
        dropped += cluster::counter(&status, "cluster_dropped")?;
    }
    Ok((sent, dropped))
}

/// Runs `run` as one measured phase on `nodes`: their CPU summed and each apart, Redis's
/// when they are joined, the link's messages and drops.
fn measure(
    generator: &mut Generator,
    nodes: &mut [Running],
    redis: Option<&mut Redis>,
    run: impl FnOnce(&mut Generator) -> PhaseResult,
    (workload, round): (String, usize),
    warm: &PhaseResult,
) -> Result<Record, String> {
    // Status requests stay outside the measured part.
    let counters = match redis {
        Some(_) => Some(link_totals(nodes)?),
        None => None,
    };
    let before = Reading::take(nodes, redis.as_deref());
    let result = run(generator);
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
    let mut record = phase_record(workload, Kind::Wson, round, &result, cpu)
        .metric("per_write", per_write)
        .metric("warmup_anomalies", warm.anomalies.total() as f64);
    for ((b, _), ((a, _), metric)) in before
        .nodes
        .iter()
        .zip(after.nodes.iter().zip(NODE_METRICS))
    {
        record = record.metric(metric, b.per_op(*a, delivered).0);
    }
    if let (Some(redis), Some((sent, dropped))) = (redis, counters) {
        redis.check_alive()?;
        let (sent_after, dropped_after) = link_totals(nodes)?;
        let (sent, dropped) = ((sent, sent_after), (dropped, dropped_after));
        record = cluster::with_link_metrics(record, &before, &after, delivered, sent, dropped);
    }
    Ok(record)
}

/// A warm-up and a measured phase of `d` to random clients among `targets`.
#[allow(clippy::too_many_arguments)]
fn direct_phase(
    generator: &mut Generator,
    nodes: &mut [Running],
    redis: Option<&mut Redis>,
    targets: Range<usize>,
    plan: &Plan,
    name: &str,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let window = plan.direct_window;
    let warm = generator.direct_among(
        targets.clone(),
        SIZE,
        (window, 2000),
        Duration::from_millis(200),
        plan.stall,
    );
    let record = measure(
        generator,
        nodes,
        redis,
        |generator| {
            generator.direct_among(
                targets,
                SIZE,
                (window, plan.max_direct),
                plan.phase_time,
                plan.stall,
            )
        },
        (format!("xdirect {name}"), round),
        &warm,
    )?;
    records.push(record);
    Ok(())
}

/// One session: the yardstick node alone, then two joined nodes with direct messages local
/// and remote, then WAMP RPC local and remote.
pub fn session(
    redis: &mut Redis,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let per_node = (plan.main_n / 2).max(1);
    let max_connections = per_node + wamp::CALLERS * 2 + 100;
    {
        let node = start_node(plan, paths, session, None, max_connections)?;
        let mut generator = Generator::new(Proto::Ws, node.ws, node.control, session)
            .map_err(|e| format!("control connect: {e}"))?;
        settle(300);
        issue10::connect(&mut generator, per_node, plan)?;
        settle(300);
        let mut nodes = [node];
        direct_phase(
            &mut generator,
            &mut nodes,
            None,
            0..per_node,
            plan,
            "single",
            round,
            records,
        )?;
        drop(generator);
        let [node] = nodes;
        node.stop();
    }
    let mut nodes = Vec::new();
    for node_id in ["a", "b"] {
        nodes.push(start_node(
            plan,
            paths,
            session,
            Some((redis, node_id)),
            max_connections,
        )?);
    }
    wait_peers(&nodes, 2)?;
    // Clients 0 .. per_node on node a, per_node .. 2 per_node on node b; `d` to a.
    let mut generator = Generator::new(Proto::Ws, nodes[0].ws, nodes[0].control, session)
        .map_err(|e| format!("control connect: {e}"))?;
    settle(300);
    issue10::connect(&mut generator, per_node, plan)?;
    generator.set_ws_addr(nodes[1].ws);
    issue10::connect(&mut generator, per_node, plan)?;
    settle(500);
    redis.measure_idle();
    for (name, targets) in [("local", 0..per_node), ("remote", per_node..2 * per_node)] {
        direct_phase(
            &mut generator,
            &mut nodes,
            Some(redis),
            targets,
            plan,
            name,
            round,
            records,
        )?;
    }
    drop(generator);
    let result = rpc(redis, &mut nodes, plan, session, round, records);
    for node in nodes {
        node.stop();
    }
    result
}

/// Connects `count` more WAMP sessions to the generator's current address and has each
/// join (HELLO, WELCOME); returns their indexes.
fn join(generator: &mut Generator, count: usize, plan: &Plan) -> Result<Range<usize>, String> {
    let first = generator.tokens().len();
    let connect = generator.connect(count, plan.concurrency, Duration::from_secs(60));
    connect.require_all(count, "WAMP clients")?;
    let hellos = (first..first + count).map(|i| (i, wamp::hello())).collect();
    let requests = Requests::new(
        hellos,
        wamp::WELCOME,
        0,
        plan.concurrency,
        Duration::from_secs(60),
    );
    let (_, requests) = generator.run_owned(requests, Duration::ZERO, plan.stall);
    let requests = requests.ok_or("the join phase vanished")?;
    if requests.ids.len() < count {
        return Err(format!(
            "only {} of {count} WAMP sessions joined: {}",
            requests.ids.len(),
            requests.first_failure.as_deref().unwrap_or("no WELCOME")
        ));
    }
    Ok(first..first + count)
}

/// WAMP RPC: a callee on node a, callers on a (local) and on b (remote).
fn rpc(
    redis: &mut Redis,
    nodes: &mut [Running],
    plan: &Plan,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let callers = wamp::CALLERS;
    let mut generator = wamp::wamp_generator(&nodes[0], session)?;
    let on_a = join(&mut generator, 1 + callers, plan)?;
    generator.set_ws_addr(nodes[1].ws);
    let remote = join(&mut generator, callers, plan)?;
    let callee = on_a.start;
    let local = callee + 1..on_a.end;
    let register = format!("[64,1,{{}},\"{}\"]", wamp::PROCEDURE).into_bytes();
    let requests = Requests::new(
        vec![(callee, register)],
        wamp::REGISTERED,
        1,
        1,
        Duration::from_secs(10),
    );
    let (_, requests) = generator.run_owned(requests, Duration::ZERO, plan.stall);
    let registration = requests
        .as_ref()
        .and_then(|r| r.ids.get(&callee).copied())
        .ok_or_else(|| {
            format!(
                "REGISTER {}: {}",
                wamp::PROCEDURE,
                requests
                    .and_then(|r| r.first_failure)
                    .unwrap_or_else(|| "no reply".into())
            )
        })?;
    let callee = Callee::Client {
        index: callee,
        registration,
    };
    settle(200);
    for (name, callers) in [("local", local), ("remote", remote)] {
        if name == "remote" {
            probe(&mut generator, callers.start, callee)?;
        }
        let id = generator.new_phase_id();
        let warm = generator.run_custom(
            Box::new(Rpc::among(id, callers.clone(), callee)),
            Duration::from_millis(200),
            plan.stall,
        );
        let id = generator.new_phase_id();
        let record = measure(
            &mut generator,
            nodes,
            Some(redis),
            |generator| {
                generator.run_custom(
                    Box::new(Rpc::among(id, callers, callee)),
                    plan.phase_time,
                    plan.stall,
                )
            },
            (format!("xrpc {name}"), round),
            &warm,
        )?;
        records.push(record);
    }
    Ok(())
}

/// One CALL from the session `caller` (on node b) to the callee on node a: an error naming
/// what came back unless its RESULT did within `PROBE_WAIT`.
fn probe(generator: &mut Generator, caller: usize, callee: Callee) -> Result<(), String> {
    let id = generator.new_phase_id();
    let started = Instant::now();
    let (result, rpc) = generator.run_owned(
        Rpc::among(id, caller..caller + 1, callee),
        Duration::from_millis(1),
        PROBE_WAIT,
    );
    if result.delivered > 0 && result.anomalies.total() == 0 {
        return Ok(());
    }
    let answer = match rpc.and_then(|rpc| rpc.first_error) {
        Some(reply) => format!("was answered {reply}"),
        None => format!(
            "got no RESULT within {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    };
    Err(format!(
        "WAMP RPC across nodes: a CALL from a session on node b to {}, registered by a session on node a of the same realm, {answer} (RPC across nodes is not in this wson build?)",
        wamp::PROCEDURE
    ))
}

/// The sections of the table this module owns (the first word of a workload name).
pub fn owns(kind: &str) -> bool {
    matches!(kind, "xdirect" | "xrpc")
}

/// The header of the ratio column in this module's sections.
pub const RATIO_HEADER: &str = "cpu/local";

/// The row a row's CPU per delivery is divided by: the local one of its section.
pub fn compared_with(workload: &str) -> Option<(String, Kind)> {
    let kind = workload.split(' ').next()?;
    owns(kind).then(|| (format!("{kind} local"), Kind::Wson))
}

pub fn columns(kind: &str) -> (&'static str, Vec<Column>) {
    let nodes = [
        col("node a us", "cpu_a_us", 1.0),
        col("node b us", "cpu_b_us", 1.0),
    ];
    let redis = [
        col("redis us/dl", "redis_us", 1.0),
        col("redis msgs", "redis_messages", 1.0),
    ];
    match kind {
        "xrpc" => (
            "Cross-node RPC (issue 13): a WAMP callee session on node a, 100 caller sessions on a (local) or on b (remote), one CALL each in flight; cpu: both nodes' per call (a, b: each node's); redis: Redis's CPU per call and messages the nodes published; latency CALL -> RESULT",
            [
                vec![
                    col("calls/s", "rate", 1.0),
                    col("cpu us/call", "cpu_us", 1.0),
                ],
                nodes.to_vec(),
                LATENCY[..2].to_vec(),
                vec![col("calls", "triggers", 1.0)],
                redis.to_vec(),
            ]
            .concat(),
        ),
        _ => (
            "Cross-node direct (issue 13): `d` (100 bytes) to node a's control socket, 32 in flight; single: one node alone with N/2 clients; local: to clients on a, remote: to clients on b (a and b joined by Redis, N/2 clients each); cpu: both nodes' per delivery (a, b: each node's); redis: Redis's CPU per delivery and messages the nodes published; latency send -> receipt",
            [
                vec![
                    col("deliveries/s", "rate", 1.0),
                    col("cpu us/deliv", "cpu_us", 1.0),
                ],
                nodes.to_vec(),
                LATENCY[..2].to_vec(),
                vec![col("messages", "triggers", 1.0)],
                redis.to_vec(),
            ]
            .concat(),
        ),
    }
}

/// The issue-13 bound on this run: remote at most `BOUND` x local, for `d` and for RPC.
pub fn targets(summary: &[Summary]) -> Vec<Target> {
    let get = |workload: &str, metric: &str| {
        find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get(metric))
    };
    let mut out = Vec::new();
    for (kind, what) in [
        ("xdirect", "direct message (`d`) to a token on another node"),
        ("xrpc", "WAMP call to a callee on another node"),
    ] {
        let (remote, local) = (format!("{kind} remote"), format!("{kind} local"));
        out.push(ratio_target(
            format!(
                "issue 13: summed server CPU per {what}, {remote}: <= {BOUND}x a local one ({local})"
            ),
            get(&remote, "cpu_us"),
            get(&local, "cpu_us"),
            BOUND,
            true,
            &format!(
                "remote {} us (a {} + b {}) vs local {} us (a {} + b {}); Redis {} vs {} us",
                fmt(get(&remote, "cpu_us")),
                fmt(get(&remote, "cpu_a_us")),
                fmt(get(&remote, "cpu_b_us")),
                fmt(get(&local, "cpu_us")),
                fmt(get(&local, "cpu_a_us")),
                fmt(get(&local, "cpu_b_us")),
                fmt(get(&remote, "redis_us")),
                fmt(get(&local, "redis_us")),
            ),
        ));
    }
    let mine: Vec<&Summary> = summary
        .iter()
        .filter(|s| owns(s.workload.split(' ').next().unwrap_or("")))
        .collect();
    out.push(zero_target(
        "issue 13: every direct message and every call delivered once, local and remote; nothing dropped by the link".into(),
        &mine,
    ));
    out
}

/// Lines without a bound: what joining costs a local `d`.
pub fn information(summary: &[Summary]) -> Vec<String> {
    let get = |workload: &str, metric: &str| {
        find(summary, workload, Kind::Wson).map_or(f64::NAN, |s| s.get(metric))
    };
    let (single, local, remote) = (
        get("xdirect single", "cpu_us"),
        get("xdirect local", "cpu_us"),
        get("xdirect remote", "cpu_us"),
    );
    if single.is_nan() {
        return Vec::new();
    }
    vec![format!(
        "direct messages: one node alone {} us per delivery; in the 2-node cluster local {} us ({:.2}x alone; each `d` is also published, and node b reads and drops it), remote {} us ({:.2}x alone)",
        fmt(single),
        fmt(local),
        local / single,
        fmt(remote),
        remote / single
    )]
}
