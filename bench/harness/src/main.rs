//! wsbench: the benchmark of issue 4. It pins itself (the load generator) to one core,
//! starts each server under test pinned to the other, runs the workloads against them in
//! turn (A B C D, A B C D, ... within each round) and prints a table of medians over the
//! rounds plus one JSON line. The workloads of issue 10 (topics, users, forwarded client
//! messages; wson only) live in `issue10`; the WAMP workloads of issue 11 (wson and
//! Crossbar.io) in `wamp`; the cluster workloads of issue 13 (wson nodes joined by Redis,
//! `--cluster`) in `cluster`.
//!
//! `wsbench [--quick] [--rounds R] [--servers wson,raw,tt,ws,uws] [--json FILE] ...`
//! `wsbench drive ...` runs one fixed fan-out against a server started elsewhere (the
//! callgrind script uses it). `--help` lists every option.

mod cluster;
mod cross;
mod crowd;
mod deflate;
mod flags;
mod forward;
mod generator;
mod groups;
mod issue10;
mod login;
mod own_wson;
mod report;
mod servers;
mod storm;
mod tls;
mod wamp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use generator::{Generator, PhaseResult, Proto};
use report::Record;
use servers::{Kind, Paths, Running};

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub rounds: usize,
    pub kinds: Vec<Kind>,
    /// Client counts of the fan-out sessions (connect storm and memory come with them).
    pub fanout_ns: Vec<usize>,
    /// The session that also runs direct messages, and the N the targets compare at.
    pub main_n: usize,
    pub echo_clients: usize,
    pub sizes: Vec<usize>,
    pub windows: Vec<u32>,
    /// Triggers are sent for this long (at least one), then the phase waits for the rest.
    pub phase_time: Duration,
    /// The same for W = 1 fan-outs: at 10,000 clients one broadcast takes ~50 ms, and a
    /// p99 needs more than the ~30 broadcasts that `phase_time` would give.
    pub latency_phase_time: Duration,
    pub max_broadcasts_w1: u32,
    pub max_broadcasts_wn: u32,
    pub max_direct: u32,
    pub direct_window: u32,
    pub stall: Duration,
    pub concurrency: usize,
    pub gen_core: usize,
    pub server_core: usize,
    /// The issue-10 workloads (wson only: topics, users, forwarded client messages).
    pub issue10: bool,
    /// Only those, with the phases they compare with (`--issue10-only`).
    pub issue10_only: bool,
    /// The WAMP workloads of issue 11 (wson and Crossbar).
    pub wamp: bool,
    /// Only those (`--wamp-only`).
    pub wamp_only: bool,
    /// WAMP-CRA logins per round on each WAMP server (issue 12), with the WAMP workloads;
    /// 0: none.
    pub logins: usize,
    /// Only the cluster workloads of issue 13 (`--cluster`): one node, one node with
    /// `[cluster]`, two nodes on one port joined by a redis-server of the run's own.
    pub cluster: bool,
    /// Three nodes of `per_node` clients against one (`--cluster-57k`, issue 13).
    pub cluster_57k: bool,
    /// Clients per node of `--cluster-57k` (19,000; `--quick` 1,000).
    pub per_node: usize,
    /// Cross-node direct messages and RPC against local ones (`--cluster-cost`, issue 13).
    pub cluster_cost: bool,
    /// Only the permessage-deflate workloads of issue 14 (`--deflate`): JSON broadcasts to
    /// clients without and with deflate, at `main_n`.
    pub deflate: bool,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            rounds: 3,
            kinds: Kind::ALL.to_vec(),
            fanout_ns: vec![1_000, 10_000, 19_000],
            main_n: 10_000,
            echo_clients: 100,
            sizes: vec![100, 4096],
            windows: vec![1, 32],
            phase_time: Duration::from_millis(1500),
            latency_phase_time: Duration::from_secs(5),
            max_broadcasts_w1: 200,
            max_broadcasts_wn: 4000,
            max_direct: 200_000,
            direct_window: 32,
            stall: Duration::from_secs(10),
            concurrency: 64,
            gen_core: 1,
            server_core: 0,
            issue10: true,
            issue10_only: false,
            wamp: true,
            wamp_only: false,
            logins: 2000,
            cluster: false,
            cluster_57k: false,
            per_node: 19_000,
            cluster_cost: false,
            deflate: false,
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            rounds: 1,
            fanout_ns: vec![200, 1_000],
            main_n: 1_000,
            echo_clients: 20,
            phase_time: Duration::from_millis(300),
            latency_phase_time: Duration::from_millis(300),
            max_broadcasts_w1: 50,
            max_broadcasts_wn: 500,
            max_direct: 20_000,
            stall: Duration::from_secs(5),
            logins: 200,
            per_node: 1_000,
            ..Plan::full()
        }
    }

    /// How many broadcasts a fan-out phase at `window` may send, and for how long.
    pub fn fanout_limits(&self, window: u32) -> (u32, Duration) {
        if window == 1 {
            (self.max_broadcasts_w1, self.latency_phase_time)
        } else {
            (self.max_broadcasts_wn, self.phase_time)
        }
    }

    /// Runs only cluster workloads of issue 13, with a Redis of the run's own.
    pub fn cluster_run(&self) -> bool {
        self.cluster || self.cluster_57k || self.cluster_cost
    }

    pub fn max_n(&self) -> usize {
        self.fanout_ns.iter().copied().max().unwrap_or(0)
    }
}

fn usage() -> &'static str {
    "usage: wsbench [--quick] [--rounds R] [--servers wson,raw,tt,ws,uws] [--n 1000,10000,19000]
               [--concurrency HANDSHAKES] [--wson-config 'KEY = VALUE']...
               [--gen-core C] [--server-core C] [--json FILE] [--work DIR]
               [--issue10-only | --no-issue10] [--wamp-only | --no-wamp] [--logins N]
               [--cluster] [--cluster-57k [--per-node N]] [--cluster-cost]
               [--redis-server BIN]
               [--wson BIN] [--raw BIN] [--tt BIN] [--peers DIR] [--node NODE]
               [--crossbar BIN]
       servers: wson raw tt ws uws crossbar (crossbar: the WAMP workloads only)
       wsbench hold ...              (one process of --cluster-57k's clients; the run
                                              starts it)
       wsbench drive --proto ws|raw --ws ADDR --control ADDR --clients N
               (--broadcasts M | --direct M) [--window W] [--size BYTES] [--gen-core C]
               [--topics T | --users-of K]   (wson: M publications to T topics, or M
                                              `u` to users of K connections each)
               [--wamp]                      (with --topics T: the clients are WAMP
                                              sessions, one more publishes)
       wsbench tls [--handshakes K] [--concurrency C] [--clients N] [--broadcasts M]
               [--rounds R] [--wson BIN]     (issue 14: server CPU of tls:// over tcp://)
       wsbench storm [--clients N] [--topics T] [--missed M] [--live K] [--concurrency C]
               [--rounds R] [--wson BIN]     (issue 15: CPU per replayed message of a
                                              reconnect storm with resume, over a live
                                              delivery)"
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("drive") {
        drive(&args[1..])
    } else if args.first().map(String::as_str) == Some("hold") {
        crowd::hold(&args[1..])
    } else if args.first().map(String::as_str) == Some("tls") {
        tls::run(&args[1..])
    } else if args.first().map(String::as_str) == Some("storm") {
        storm::run(&args[1..])
    } else {
        bench(&args)
    };
    if let Err(e) = result {
        eprintln!("wsbench: {e}");
        std::process::exit(2);
    }
}

fn value<'a>(args: &'a [String], i: &mut usize) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| format!("{} needs a value\n{}", args[*i - 1], usage()))
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn default_paths() -> Paths {
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Paths {
        wson: bench.join("../target/release/wson"),
        wson_config: Vec::new(),
        raw: bench.join("target/release/raw-server"),
        tt: bench.join("target/release/tt-server"),
        peers: bench.join("peers"),
        crossbar: bench.join("peers/.crossbar-venv/bin/crossbar"),
        redis_server: "redis-server".into(),
        node: "node".into(),
        work: std::env::temp_dir(),
    }
}

/// Pins this process to `core` and raises the open-file limit to the hard limit.
fn prepare_process(core: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(core).map_err(|e| format!("cpu {core}: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("pin to cpu {core}: {e}"))?;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|e| e.to_string())?;
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    let mut paths = default_paths();
    let mut json_file = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => {}
            "--rounds" => plan.rounds = number(value(args, &mut i)?)?,
            "--servers" => {
                plan.kinds = value(args, &mut i)?
                    .split(',')
                    .map(|name| Kind::parse(name).ok_or(format!("unknown server {name}")))
                    .collect::<Result<_, _>>()?;
            }
            "--n" => {
                plan.fanout_ns = value(args, &mut i)?
                    .split(',')
                    .map(number)
                    .collect::<Result<_, _>>()?;
            }
            "--concurrency" => plan.concurrency = number(value(args, &mut i)?)?,
            "--wson-config" => paths.wson_config.push(value(args, &mut i)?.to_string()),
            "--issue10-only" => plan.issue10_only = true,
            "--no-issue10" => plan.issue10 = false,
            "--wamp-only" => plan.wamp_only = true,
            "--no-wamp" => plan.wamp = false,
            "--logins" => plan.logins = number(value(args, &mut i)?)?,
            "--cluster" => plan.cluster = true,
            "--cluster-57k" => plan.cluster_57k = true,
            "--per-node" => plan.per_node = number(value(args, &mut i)?)?,
            "--cluster-cost" => plan.cluster_cost = true,
            "--deflate" => plan.deflate = true,
            "--redis-server" => paths.redis_server = value(args, &mut i)?.to_string(),
            "--crossbar" => paths.crossbar = PathBuf::from(value(args, &mut i)?),
            "--gen-core" => plan.gen_core = number(value(args, &mut i)?)?,
            "--server-core" => plan.server_core = number(value(args, &mut i)?)?,
            "--json" => json_file = Some(PathBuf::from(value(args, &mut i)?)),
            "--work" => paths.work = PathBuf::from(value(args, &mut i)?),
            "--wson" => paths.wson = PathBuf::from(value(args, &mut i)?),
            "--raw" => paths.raw = PathBuf::from(value(args, &mut i)?),
            "--tt" => paths.tt = PathBuf::from(value(args, &mut i)?),
            "--peers" => paths.peers = PathBuf::from(value(args, &mut i)?),
            "--node" => paths.node = value(args, &mut i)?.to_string(),
            "--help" | "-h" => {
                println!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
        i += 1;
    }
    if plan.issue10_only && !plan.issue10 {
        return Err("--issue10-only and --no-issue10 exclude each other".into());
    }
    if plan.wamp_only && (!plan.wamp || plan.issue10_only) {
        return Err("--wamp-only excludes --no-wamp and --issue10-only".into());
    }
    if plan.cluster_run() && (plan.issue10_only || plan.wamp_only) {
        return Err("--cluster (-57k, -cost) excludes --issue10-only and --wamp-only".into());
    }
    // Each `-only` runs its own workloads alone.
    if plan.issue10_only {
        plan.wamp = false;
    }
    if plan.wamp_only {
        plan.issue10 = false;
    }
    if plan.cluster_run() {
        plan.issue10 = false;
        plan.wamp = false;
    }
    let plain_run = !plan.wamp_only && !plan.cluster_run();
    if !plan.fanout_ns.contains(&plan.main_n) {
        plan.main_n = plan.fanout_ns.iter().copied().max().unwrap_or(0);
    }
    prepare_process(plan.gen_core)?;
    let started = Instant::now();
    let date = report::utc_now();
    eprintln!(
        "wsbench: {} mode, {} round(s), servers {}, generator on cpu {}, servers on cpu {}",
        if plan.quick { "quick" } else { "full" },
        plan.rounds,
        plan.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" "),
        plan.gen_core,
        plan.server_core
    );
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut session = 0u32;
    // One redis-server for every cluster session of the run, stopped when it ends.
    let mut redis = match plan.cluster_run() {
        true => {
            let redis = cluster::Redis::start(&paths, plan.server_core)?;
            notes.push(format!(
                "redis-server {} on cpu {}, beside the nodes",
                redis.version, plan.server_core
            ));
            Some(redis)
        }
        false => None,
    };
    for round in 0..plan.rounds {
        if plan.deflate {
            session += 1;
            let label = format!("round {} n={} wson deflate", round + 1, plan.main_n);
            eprintln!(
                "wsbench: {label} ({:.0} s elapsed)",
                started.elapsed().as_secs_f64()
            );
            if let Err(e) = deflate::session(&plan, &paths, session, round, &mut records) {
                eprintln!("wsbench: {label}: {e}");
                errors.push(format!("{label}: {e}"));
            }
            continue;
        }
        for &n in plan
            .fanout_ns
            .iter()
            .filter(|_| plain_run && !plan.issue10_only)
        {
            for &kind in plan.kinds.iter().filter(|k| k.plain()) {
                session += 1;
                let label = format!("round {} n={n} {}", round + 1, kind.name());
                eprintln!(
                    "wsbench: {label} ({:.0} s elapsed)",
                    started.elapsed().as_secs_f64()
                );
                match fanout_session(kind, n, &plan, &paths, session, round, &mut records) {
                    Ok(note) => {
                        if !note.is_empty() && !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                    Err(e) => {
                        eprintln!("wsbench: {label}: {e}");
                        errors.push(format!("{label}: {e}"));
                    }
                }
            }
        }
        if plan.issue10 && plain_run && plan.kinds.contains(&Kind::Wson) {
            let sessions: [(&str, issue10::Session); 2] = [
                ("topics and users", issue10::groups_session),
                ("3 connections per user", issue10::users3_session),
            ];
            for (what, run) in sessions {
                session += 1;
                let label = format!("round {} n={} wson {what}", round + 1, plan.main_n);
                eprintln!(
                    "wsbench: {label} ({:.0} s elapsed)",
                    started.elapsed().as_secs_f64()
                );
                if let Err(e) = run(&plan, &paths, session, round, &mut records) {
                    eprintln!("wsbench: {label}: {e}");
                    errors.push(format!("{label}: {e}"));
                }
            }
        }
        if plan.wamp {
            let mut sessions: Vec<(&str, wamp::Session)> = vec![
                ("wamp events", wamp::events_session),
                ("wamp rpc", wamp::rpc_session),
            ];
            if plan.logins > 0 {
                sessions.push(("wamp login", login::login_session));
            }
            for (what, run) in sessions {
                for &kind in plan.kinds.iter().filter(|k| k.wamp()) {
                    session += 1;
                    let label = format!("round {} {what} {}", round + 1, kind.name());
                    eprintln!(
                        "wsbench: {label} ({:.0} s elapsed)",
                        started.elapsed().as_secs_f64()
                    );
                    match run(kind, &plan, &paths, session, round, &mut records) {
                        Ok(note) => {
                            if !note.is_empty() && !notes.contains(&note) {
                                notes.push(note);
                            }
                        }
                        Err(e) => {
                            eprintln!("wsbench: {label}: {e}");
                            errors.push(format!("{label}: {e}"));
                        }
                    }
                }
            }
        }
        if let Some(redis) = redis.as_mut().filter(|_| plan.cluster) {
            for shape in cluster::Shape::ALL {
                session += 1;
                let label = format!(
                    "round {} n={} wson cluster {}",
                    round + 1,
                    plan.main_n,
                    shape.name()
                );
                eprintln!(
                    "wsbench: {label} ({:.0} s elapsed)",
                    started.elapsed().as_secs_f64()
                );
                if let Err(e) =
                    cluster::session(shape, redis, &plan, &paths, session, round, &mut records)
                {
                    eprintln!("wsbench: {label}: {e}");
                    errors.push(format!("{label}: {e}"));
                }
            }
        }
        if let Some(redis) = redis.as_mut().filter(|_| plan.cluster_57k) {
            for shape in crowd::Shape::ALL {
                session += 1;
                let label = format!("round {} wson crowd {}", round + 1, shape.name());
                eprintln!(
                    "wsbench: {label} ({:.0} s elapsed)",
                    started.elapsed().as_secs_f64()
                );
                if let Err(e) =
                    crowd::session(shape, redis, &plan, &paths, session, round, &mut records)
                {
                    eprintln!("wsbench: {label}: {e}");
                    errors.push(format!("{label}: {e}"));
                }
            }
        }
        if let Some(redis) = redis.as_mut().filter(|_| plan.cluster_cost) {
            session += 1;
            let label = format!("round {} n={} wson cross-node cost", round + 1, plan.main_n);
            eprintln!(
                "wsbench: {label} ({:.0} s elapsed)",
                started.elapsed().as_secs_f64()
            );
            if let Err(e) = cross::session(redis, &plan, &paths, session, round, &mut records) {
                eprintln!("wsbench: {label}: {e}");
                errors.push(format!("{label}: {e}"));
            }
        }
        for &kind in plan.kinds.iter().filter(|k| k.plain() && plain_run) {
            if plan.issue10_only && kind != Kind::Wson {
                continue;
            }
            session += 1;
            let label = format!("round {} echo {}", round + 1, kind.name());
            eprintln!(
                "wsbench: {label} ({:.0} s elapsed)",
                started.elapsed().as_secs_f64()
            );
            if let Err(e) = echo_session(kind, &plan, &paths, session, round, &mut records) {
                eprintln!("wsbench: {label}: {e}");
                errors.push(format!("{label}: {e}"));
            }
        }
    }
    drop(redis);
    let summary = report::summarize(&records);
    let targets = report::targets(&summary, &plan);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!(
        "{}",
        report::table(
            &summary,
            &targets,
            &plan,
            &date,
            started.elapsed(),
            &notes,
            &errors
        )
    );
    let json = report::json(&summary, &targets, &plan, &date, &command, &notes, &errors);
    println!("{json}");
    if let Some(file) = json_file {
        use std::io::Write;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        writeln!(out, "{json}").map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// A reading of the server's CPU time: exact (schedstat) and as /proc/PID/stat ticks.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    ns: Option<u64>,
    ticks: Option<u64>,
}

impl CpuMark {
    fn read(server: &Running) -> CpuMark {
        CpuMark {
            ticks: server.cpu_ticks(),
            ns: server.cpu_ns(),
        }
    }

    /// The same for a process that is no `Running` (redis-server).
    fn of_pid(pid: i32) -> CpuMark {
        CpuMark {
            ticks: servers::cpu_ticks(pid),
            ns: servers::cpu_ns(pid),
        }
    }

    /// Both readings together (several processes measured as one).
    fn plus(self, other: CpuMark) -> CpuMark {
        let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
        CpuMark {
            ns: add(self.ns, other.ns),
            ticks: add(self.ticks, other.ticks),
        }
    }

    /// Server CPU microseconds per operation since `self`: (exact, from ticks).
    fn per_op(self, after: CpuMark, ops: u64) -> (f64, f64) {
        if ops == 0 {
            return (f64::NAN, f64::NAN);
        }
        let exact = match (self.ns, after.ns) {
            (Some(b), Some(a)) => a.saturating_sub(b) as f64 / 1e3 / ops as f64,
            _ => f64::NAN,
        };
        let ticks = match (self.ticks, after.ticks) {
            (Some(b), Some(a)) => {
                a.saturating_sub(b) as f64 / servers::ticks_per_second() * 1e6 / ops as f64
            }
            _ => f64::NAN,
        };
        (exact, ticks)
    }
}

fn phase_record(
    workload: String,
    kind: Kind,
    round: usize,
    result: &PhaseResult,
    cpu: (f64, f64),
) -> Record {
    let mut latencies: Vec<f64> = result
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let rate = result.delivered as f64 / result.elapsed.as_secs_f64().max(1e-9);
    let a = result.anomalies;
    Record::new(workload, kind, round)
        .metric("rate", rate)
        .metric("cpu_us", cpu.0)
        .metric("cpu_us_stat", cpu.1)
        .metric("p50_us", report::percentile(&latencies, 0.50))
        .metric("p99_us", report::percentile(&latencies, 0.99))
        .metric("max_us", latencies.last().copied().unwrap_or(f64::NAN))
        .metric("triggers", result.triggered as f64)
        .metric("delivered", result.delivered as f64)
        .metric("lost", a.lost as f64)
        .metric("duplicated", a.duplicated as f64)
        .metric("reordered", a.reordered as f64)
        .metric("stray", a.stray as f64)
        .metric("disconnected", a.disconnected as f64)
}

fn settle(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn check_alive(server: &mut Running) -> Result<(), String> {
    if server.alive() {
        Ok(())
    } else {
        Err(format!("server exited; its output:\n{}", server.log_text()))
    }
}

/// Connect storm, idle memory, fan-out at every size and window, and (at `main_n`)
/// direct messages, on one fresh server.
fn fanout_session(
    kind: Kind,
    n: usize,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<String, String> {
    let mut server = servers::start(kind, paths, plan.server_core, false, n + 100, session)?;
    let note = if server.note.is_empty() {
        String::new()
    } else {
        format!("{}: {}", kind.name(), server.note)
    };
    let mut generator = Generator::new(kind.proto(), server.ws, server.control, session)
        .map_err(|e| format!("control connect: {e}"))?;
    settle(300);
    let base_rss = server.rss_bytes();

    let cpu0 = CpuMark::read(&server);
    let overflows0 = servers::listen_overflows();
    let connect = generator.connect(n, plan.concurrency, Duration::from_secs(120));
    let overflows = match (overflows0, servers::listen_overflows()) {
        (Some(before), Some(after)) => after.saturating_sub(before) as f64,
        _ => f64::NAN,
    };
    let cpu = cpu0.per_op(CpuMark::read(&server), connect.opened as u64);
    check_alive(&mut server)?;
    let mut latencies: Vec<f64> = connect
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    records.push(
        Record::new(format!("connect n={n}"), kind, round)
            .metric(
                "rate",
                connect.opened as f64 / connect.elapsed.as_secs_f64().max(1e-9),
            )
            .metric("cpu_us", cpu.0)
            .metric("cpu_us_stat", cpu.1)
            .metric("p50_us", report::percentile(&latencies, 0.50))
            .metric("p99_us", report::percentile(&latencies, 0.99))
            .metric("max_us", latencies.last().copied().unwrap_or(f64::NAN))
            .metric("listen_overflows", overflows)
            .metric("opened", connect.opened as f64)
            .metric("failed", connect.failed as f64),
    );
    connect.require_all(n, "clients")?;

    settle(500);
    let idle_rss = server.rss_bytes();
    let per_conn = |rss: Option<u64>| match (rss, base_rss) {
        (Some(r), Some(b)) => (r as f64 - b as f64) / n as f64,
        _ => f64::NAN,
    };
    let idle = per_conn(idle_rss);

    let mut warmup_anomalies = 0;
    for &size in &plan.sizes {
        // Untimed: lets every server allocate what its first messages need.
        let warm = generator.fanout(size, 1, 3, Duration::from_secs(10), plan.stall);
        warmup_anomalies += warm.anomalies.total();
        for &window in &plan.windows {
            let (max, time) = plan.fanout_limits(window);
            let before = CpuMark::read(&server);
            let result = generator.fanout(size, window, max, time, plan.stall);
            let cpu = before.per_op(CpuMark::read(&server), result.delivered);
            check_alive(&mut server)?;
            records.push(phase_record(
                format!("fanout n={n} size={size} w={window}"),
                kind,
                round,
                &result,
                cpu,
            ));
        }
    }

    if n == plan.main_n {
        let before = CpuMark::read(&server);
        let result = generator.direct(
            100,
            plan.direct_window,
            plan.max_direct,
            plan.phase_time,
            plan.stall,
        );
        let cpu = before.per_op(CpuMark::read(&server), result.delivered);
        check_alive(&mut server)?;
        records.push(phase_record(
            format!("direct n={n} size=100 w={}", plan.direct_window),
            kind,
            round,
            &result,
            cpu,
        ));
    }

    settle(500);
    let after_rss = server.rss_bytes();
    records.push(
        Record::new(format!("memory n={n}"), kind, round)
            .metric("idle_bytes", idle)
            .metric("after_bytes", per_conn(after_rss))
            .metric(
                "base_mib",
                base_rss.map_or(f64::NAN, |b| b as f64 / 1048576.0),
            )
            .metric("warmup_anomalies", warmup_anomalies as f64),
    );
    server.stop();
    drop(generator);
    Ok(note)
}

fn echo_session(
    kind: Kind,
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.echo_clients;
    let mut server = servers::start(kind, paths, plan.server_core, true, n + 100, session)?;
    let mut generator = Generator::new(kind.proto(), server.ws, server.control, session)
        .map_err(|e| format!("control connect: {e}"))?;
    generator
        .connect(n, plan.concurrency, Duration::from_secs(60))
        .require_all(n, "clients")?;
    settle(200);
    // Warm-up, then the measured part.
    generator.echo(n, 100, Duration::from_millis(200), plan.stall);
    let before = CpuMark::read(&server);
    let result = generator.echo(n, 100, plan.phase_time, plan.stall);
    let cpu = before.per_op(CpuMark::read(&server), result.delivered);
    check_alive(&mut server)?;
    records.push(phase_record(
        format!("echo n={n} size=100"),
        kind,
        round,
        &result,
        cpu,
    ));
    if kind == Kind::Wson && plan.issue10 {
        issue10::forward_phase(&mut server, &mut generator, plan, round, records)?;
    }
    server.stop();
    Ok(())
}

/// One fixed fan-out against a server started elsewhere; prints what it measured.
fn drive(args: &[String]) -> Result<(), String> {
    let mut proto = Proto::Ws;
    let mut ws: Option<SocketAddr> = None;
    let mut control: Option<SocketAddr> = None;
    let mut clients = 1000usize;
    let mut broadcasts = 100u32;
    let mut direct = 0u32;
    let mut window = 1u32;
    let mut size = 100usize;
    let mut core = None;
    let (mut topics, mut per_user) = (0usize, 0usize);
    let mut wamp = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--proto" => {
                proto = match value(args, &mut i)? {
                    "ws" => Proto::Ws,
                    "raw" => Proto::Raw,
                    other => return Err(format!("unknown protocol {other}")),
                }
            }
            "--ws" => ws = Some(number(value(args, &mut i)?)?),
            "--control" => control = Some(number(value(args, &mut i)?)?),
            "--clients" => clients = number(value(args, &mut i)?)?,
            "--broadcasts" => broadcasts = number(value(args, &mut i)?)?,
            "--direct" => direct = number(value(args, &mut i)?)?,
            "--window" => window = number(value(args, &mut i)?)?,
            "--size" => size = number(value(args, &mut i)?)?,
            "--gen-core" => core = Some(number(value(args, &mut i)?)?),
            "--topics" => topics = number(value(args, &mut i)?)?,
            "--users-of" => per_user = number(value(args, &mut i)?)?,
            "--wamp" => wamp = true,
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
        i += 1;
    }
    let (Some(ws), Some(control)) = (ws, control) else {
        return Err(format!("--ws and --control are required\n{}", usage()));
    };
    if let Some(core) = core {
        prepare_process(core)?;
    }
    let mut generator =
        Generator::new(proto, ws, control, std::process::id()).map_err(|e| e.to_string())?;
    generator.set_clients_per_user(per_user);
    // A profiling run is bounded by its message count, not by time: the duration is only a
    // backstop, and a stall of two minutes means the server is stuck.
    let (duration, stall) = (Duration::from_secs(3600), Duration::from_secs(120));
    if wamp {
        // The sessions connect and join (and one more to publish) in `drive_events`.
        generator.set_subprotocol(wamp::SUBPROTOCOL);
        let result = wamp::drive_events(
            &mut generator,
            clients,
            topics,
            (broadcasts, window, size),
            (duration, stall),
        )?;
        return drive_report(clients, &result);
    }
    generator
        .connect(clients, 64, Duration::from_secs(600))
        .require_all(clients, "clients")?;
    let groups = topics > 0 || per_user > 0;
    let result = if groups && broadcasts > 0 {
        issue10::drive_groups(
            &mut generator,
            topics,
            per_user,
            broadcasts,
            window,
            size,
            (duration, stall),
        )?
    } else if direct > 0 {
        generator.direct(size, window, direct, duration, stall)
    } else if broadcasts > 0 {
        generator.fanout(size, window, broadcasts, duration, stall)
    } else {
        PhaseResult::default()
    };
    drive_report(clients, &result)
}

/// What `drive` prints (perf.sh reads `delivered=`); anomalies fail the run.
fn drive_report(clients: usize, result: &PhaseResult) -> Result<(), String> {
    println!(
        "clients={clients} triggers={} delivered={} anomalies={} elapsed_ms={:.0}",
        result.triggered,
        result.delivered,
        result.anomalies.total(),
        result.elapsed.as_secs_f64() * 1e3
    );
    if result.anomalies.total() > 0 {
        return Err(format!("anomalies: {:?}", result.anomalies));
    }
    Ok(())
}
