//! Medians over rounds, the issue-4 targets, the table and the JSON line.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Plan;
use crate::servers::Kind;

/// Metrics that count failures: summed over rounds, never a median, so one bad round shows.
/// `cluster_dropped`: messages a cluster node could not hand to Redis (issue 13).
const COUNTS: [&str; 8] = [
    "lost",
    "duplicated",
    "reordered",
    "stray",
    "disconnected",
    "failed",
    "warmup_anomalies",
    "cluster_dropped",
];

/// Counters summed over rounds like [`COUNTS`] but not failures of the server under test:
/// the kernel's ListenOverflows counts every listener on the machine.
const SUMMED: [&str; 1] = ["listen_overflows"];

/// One workload on one server in one round.
#[derive(Debug, Clone)]
pub struct Record {
    pub workload: String,
    pub server: Kind,
    pub round: usize,
    pub metrics: Vec<(&'static str, f64)>,
}

impl Record {
    pub fn new(workload: String, server: Kind, round: usize) -> Record {
        Record {
            workload,
            server,
            round,
            metrics: Vec::new(),
        }
    }

    pub fn metric(mut self, name: &'static str, value: f64) -> Record {
        self.metrics.push((name, value));
        self
    }
}

/// A workload on a server over all rounds.
#[derive(Debug, Clone)]
pub struct Summary {
    pub workload: String,
    pub server: Kind,
    pub rounds: usize,
    pub values: Vec<(&'static str, f64)>,
    pub per_round: Vec<Vec<(&'static str, f64)>>,
}

impl Summary {
    pub fn get(&self, metric: &str) -> f64 {
        self.values
            .iter()
            .find(|(name, _)| *name == metric)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median: the middle value, or the mean of the two middle ones; NaN for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn summarize(records: &[Record]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for record in records {
        let index = match out
            .iter()
            .position(|s| s.workload == record.workload && s.server == record.server)
        {
            Some(index) => index,
            None => {
                out.push(Summary {
                    workload: record.workload.clone(),
                    server: record.server,
                    rounds: 0,
                    values: Vec::new(),
                    per_round: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[index].rounds = out[index].rounds.max(record.round + 1);
        out[index].per_round.push(record.metrics.clone());
    }
    for summary in &mut out {
        let names: Vec<&'static str> = summary
            .per_round
            .first()
            .map(|m| m.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        for name in names {
            let mut values: Vec<f64> = summary
                .per_round
                .iter()
                .filter_map(|m| m.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
                .filter(|v| !v.is_nan())
                .collect();
            let value = if COUNTS.contains(&name) || SUMMED.contains(&name) {
                values.iter().sum()
            } else {
                median(&mut values)
            };
            summary.values.push((name, value));
        }
    }
    // Workloads in first-seen order, servers in the order they ran.
    let order: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for s in &out {
            if !seen.contains(&s.workload) {
                seen.push(s.workload.clone());
            }
        }
        seen
    };
    out.sort_by_key(|s| {
        (
            order.iter().position(|w| *w == s.workload),
            Kind::ALL.iter().position(|k| *k == s.server),
        )
    });
    out
}

pub fn find<'a>(summary: &'a [Summary], workload: &str, server: Kind) -> Option<&'a Summary> {
    summary
        .iter()
        .find(|s| s.workload == workload && s.server == server)
}

/// One issue-4 target and how wson did.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// None when a figure it needs is missing.
    pub met: Option<bool>,
    pub detail: String,
}

/// The failures (`COUNTS`) of `mine`, summed.
pub fn failures(mine: &[&Summary]) -> f64 {
    mine.iter()
        .flat_map(|s| s.values.iter())
        .filter(|(name, _)| COUNTS.contains(name))
        .map(|(_, v)| *v)
        .sum()
}

/// The target that `mine` counted no failure; not measured when it is empty.
pub fn zero_target(name: String, mine: &[&Summary]) -> Target {
    let bad = failures(mine);
    Target {
        name,
        met: (!mine.is_empty()).then_some(bad == 0.0),
        detail: if mine.is_empty() {
            "not measured".into()
        } else {
            format!("{bad} anomalies over {} workloads", mine.len())
        },
    }
}

pub fn ratio_target(
    name: String,
    ours: f64,
    theirs: f64,
    bound: f64,
    at_most: bool,
    what: &str,
) -> Target {
    if ours.is_nan() || theirs.is_nan() || theirs == 0.0 {
        return Target {
            name,
            met: None,
            detail: format!("not measured ({what})"),
        };
    }
    let ratio = ours / theirs;
    let met = if at_most {
        ratio <= bound
    } else {
        ratio >= bound
    };
    // Within a hundredth of the bound, two decimals would print the bound itself, met or not.
    let digits = if (ratio - bound).abs() < 0.01 { 3 } else { 2 };
    let miss = if met {
        String::new()
    } else if at_most {
        format!(", missed by {:.digits$}x", ratio / bound)
    } else {
        format!(", missed by {:.digits$}x", bound / ratio)
    };
    Target {
        name,
        met: Some(met),
        detail: format!(
            "{what}: ratio {ratio:.digits$} (target {} {bound}){miss}",
            if at_most { "<=" } else { ">=" }
        ),
    }
}

pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let main = plan.main_n;
    let wn = plan.windows.iter().copied().max().unwrap_or(32);
    let get = |workload: &str, server: Kind, metric: &str| {
        find(summary, workload, server).map_or(f64::NAN, |s| s.get(metric))
    };
    let mut out = Vec::new();

    let cpu_w = format!("fanout n={main} size=100 w={wn}");
    let wson_cpu = get(&cpu_w, Kind::Wson, "cpu_us");
    for (peer, bound) in [(Kind::Uws, 1.0_f64 / 3.0), (Kind::Raw, 1.2)] {
        let theirs = get(&cpu_w, peer, "cpu_us");
        out.push(ratio_target(
            format!(
                "server CPU per delivery, {cpu_w}: wson <= {bound:.2}x {}",
                peer.name()
            ),
            wson_cpu,
            theirs,
            (bound * 100.0_f64).round() / 100.0,
            true,
            &format!(
                "wson {} us vs {} {} us",
                fmt(wson_cpu),
                peer.name(),
                fmt(theirs)
            ),
        ));
    }

    let lat_w = format!("fanout n={main} size=100 w=1");
    let wson_rate = get(&lat_w, Kind::Wson, "rate");
    for (peer, bound) in [(Kind::Uws, 1.2), (Kind::Raw, 0.9)] {
        let theirs = get(&lat_w, peer, "rate");
        out.push(ratio_target(
            format!("deliveries/s, {lat_w}: wson >= {bound}x {}", peer.name()),
            wson_rate,
            theirs,
            bound,
            false,
            &format!(
                "wson {}/s vs {} {}/s",
                fmt(wson_rate),
                peer.name(),
                fmt(theirs)
            ),
        ));
    }
    let wson_p99 = get(&lat_w, Kind::Wson, "p99_us");
    let peers: Vec<(Kind, f64)> = plan
        .kinds
        .iter()
        .filter(|k| **k != Kind::Wson)
        .map(|k| (*k, get(&lat_w, *k, "p99_us")))
        .filter(|(_, v)| !v.is_nan())
        .collect();
    let best = peers.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    out.push(match best {
        Some((kind, p99)) if !wson_p99.is_nan() => Target {
            name: format!("p99 fan-out latency, {lat_w}: wson below every peer"),
            met: Some(wson_p99 < p99),
            detail: format!(
                "wson {} ms, best peer {} {} ms{}",
                fmt(wson_p99 / 1e3),
                kind.name(),
                fmt(p99 / 1e3),
                if wson_p99 < p99 {
                    String::new()
                } else {
                    format!(", missed by {:.2}x", wson_p99 / p99)
                }
            ),
        },
        _ => Target {
            name: format!("p99 fan-out latency, {lat_w}: wson below every peer"),
            met: None,
            detail: "not measured".into(),
        },
    });

    let mem_w = format!("memory n={}", plan.max_n());
    let idle = get(&mem_w, Kind::Wson, "idle_bytes");
    out.push(Target {
        name: format!("idle memory, {mem_w}: wson <= 1024 B per connection"),
        met: (!idle.is_nan()).then_some(idle <= 1024.0),
        detail: format!(
            "wson {} B per idle connection ({} B after traffic){}",
            fmt(idle),
            fmt(get(&mem_w, Kind::Wson, "after_bytes")),
            if idle > 1024.0 {
                format!(", missed by {:.2}x", idle / 1024.0)
            } else {
                String::new()
            }
        ),
    });

    let con_w = format!("connect n={main}");
    let ours = get(&con_w, Kind::Wson, "cpu_us");
    let theirs = get(&con_w, Kind::Tt, "cpu_us");
    out.push(ratio_target(
        format!("server CPU per handshake, {con_w}: wson <= 0.5x tokio-tungstenite"),
        ours,
        theirs,
        0.5,
        true,
        &format!(
            "wson {} us vs tokio-tungstenite {} us",
            fmt(ours),
            fmt(theirs)
        ),
    ));

    let wson: Vec<&Summary> = summary.iter().filter(|s| s.server == Kind::Wson).collect();
    let bad = failures(&wson);
    out.push(Target {
        name: "zero lost, duplicated or reordered messages (wson, every run)".into(),
        met: Some(bad == 0.0),
        detail: format!("{bad} anomalies"),
    });
    // Each group of targets only when its workloads ran.
    if plan.wamp_only || plan.cluster_run() {
        out.clear();
    }
    if plan.deflate {
        // The deflate run has only its own workloads: their anomalies and bound.
        out.retain(|t| t.name.starts_with("zero lost"));
        out.extend(crate::deflate::targets(summary, plan));
        return out;
    }
    if plan.issue10 && !plan.wamp_only {
        out.extend(crate::issue10::targets(summary, plan));
    }
    if plan.wamp && !plan.issue10_only {
        out.extend(crate::wamp::targets(summary, plan));
    }
    if plan.cluster {
        out.extend(crate::cluster::targets(summary, plan));
    }
    if plan.cluster_57k {
        out.extend(crate::crowd::targets(summary, plan));
    }
    if plan.cluster_cost {
        out.extend(crate::cross::targets(summary));
    }
    out
}

/// A section of the cluster workloads of issue 13.
fn issue13_owns(kind: &str) -> bool {
    crate::cluster::owns(kind) || crate::crowd::owns(kind) || crate::cross::owns(kind)
}

/// The lines without a bound under the issue-13 targets, of the workloads that ran.
fn issue13_information(summary: &[Summary], plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if plan.cluster {
        out.extend(crate::cluster::information(summary, plan));
    }
    if plan.cluster_57k {
        out.extend(crate::crowd::information(summary, plan));
    }
    if plan.cluster_cost {
        out.extend(crate::cross::information(summary));
    }
    out
}

/// A number in 3-4 significant figures with k/M suffixes.
pub fn fmt(value: f64) -> String {
    let a = value.abs();
    if value.is_nan() {
        "-".into()
    } else if a >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if a >= 100.0 {
        format!("{value:.0}")
    } else if a >= 10.0 {
        format!("{value:.1}")
    } else if a >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

#[derive(Clone)]
pub struct Column {
    header: &'static str,
    metric: &'static str,
    scale: f64,
}

pub const fn col(header: &'static str, metric: &'static str, scale: f64) -> Column {
    Column {
        header,
        metric,
        scale,
    }
}

/// Latency columns: p50, p99 and max, in milliseconds.
pub const LATENCY: [Column; 3] = [
    col("p50 ms", "p50_us", 1e-3),
    col("p99 ms", "p99_us", 1e-3),
    col("max ms", "max_us", 1e-3),
];

fn columns(kind: &str) -> (&'static str, Vec<Column>) {
    let latency = LATENCY;
    match kind {
        _ if crate::issue10::owns(kind) => crate::issue10::columns(kind),
        _ if crate::deflate::owns(kind) => crate::deflate::columns(kind),
        _ if crate::wamp::owns(kind) => crate::wamp::columns(kind),
        _ if crate::cluster::owns(kind) => crate::cluster::columns(kind),
        _ if crate::crowd::owns(kind) => crate::crowd::columns(kind),
        _ if crate::cross::owns(kind) => crate::cross::columns(kind),
        "connect" => (
            "Connect storm: handshakes (cookie auth) until N are open; server CPU per handshake; \
             latency per client from its TCP connect to the 101; the kernel's ListenOverflows \
             during the storm (machine-wide)",
            [
                vec![
                    col("handshakes/s", "rate", 1.0),
                    col("cpu us/hs", "cpu_us", 1.0),
                ],
                latency.into(),
                vec![
                    col("overflows", "listen_overflows", 1.0),
                    col("failed", "failed", 1.0),
                ],
            ]
            .concat(),
        ),
        "memory" => (
            "Memory: server RSS growth per connection, idle after connecting, and after traffic",
            vec![
                col("idle B/conn", "idle_bytes", 1.0),
                col("after B/conn", "after_bytes", 1.0),
                col("base MiB", "base_mib", 1.0),
            ],
        ),
        "fanout" => (
            "Fan-out: broadcasts from the control port, W in flight; latency trigger -> last client",
            [
                vec![
                    col("deliveries/s", "rate", 1.0),
                    col("cpu us/deliv", "cpu_us", 1.0),
                ],
                latency.into(),
                vec![col("broadcasts", "triggers", 1.0)],
            ]
            .concat(),
        ),
        "direct" => (
            "Direct messages: `d` to random clients, W in flight; latency trigger -> receipt",
            [
                vec![col("msgs/s", "rate", 1.0), col("cpu us/msg", "cpu_us", 1.0)],
                latency.into(),
                vec![col("msgs", "triggers", 1.0)],
            ]
            .concat(),
        ),
        _ => (
            "Echo: each client keeps one 100-byte message in flight to the server and back",
            [
                vec![
                    col("round trips/s", "rate", 1.0),
                    col("cpu us/rt", "cpu_us", 1.0),
                ],
                latency.into(),
            ]
            .concat(),
        ),
    }
}

fn anomaly_text(summary: &Summary) -> String {
    let parts: Vec<String> = ["lost", "duplicated", "reordered", "stray", "disconnected"]
        .iter()
        .filter_map(|name| {
            let v = summary.get(name);
            (v > 0.0).then(|| format!("{name}={v}"))
        })
        .collect();
    if parts.is_empty() {
        if summary.get("lost").is_nan() {
            String::new()
        } else {
            "0".into()
        }
    } else {
        parts.join(" ")
    }
}

#[allow(clippy::too_many_arguments)]
pub fn table(
    summary: &[Summary],
    targets: &[Target],
    plan: &Plan,
    date: &str,
    elapsed: Duration,
    notes: &[String],
    errors: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nwson benchmark, {date}, {} mode: median of {} round(s); generator on cpu {}, servers on cpu {}; {:.0} s",
        if plan.quick { "quick" } else { "full" },
        plan.rounds,
        plan.gen_core,
        plan.server_core,
        elapsed.as_secs_f64()
    );
    let mut last_kind = "";
    for (i, s) in summary.iter().enumerate() {
        let kind = s.workload.split(' ').next().unwrap_or("");
        let (title, cols) = columns(kind);
        let has_cpu = cols.iter().any(|c| c.metric == "cpu_us");
        let has_anomalies = !s.get("lost").is_nan();
        if kind != last_kind {
            let _ = writeln!(out, "\n{title}");
            let mut header = format!("{:<30} {:<18}", "workload", "server");
            for c in &cols {
                let _ = write!(header, " {:>13}", c.header);
            }
            if has_cpu {
                let ratio = if crate::issue10::owns(kind) {
                    crate::issue10::RATIO_HEADER
                } else if crate::deflate::owns(kind) {
                    crate::deflate::RATIO_HEADER
                } else if crate::wamp::owns(kind) {
                    crate::wamp::RATIO_HEADER
                } else if crate::cluster::owns(kind) {
                    crate::cluster::RATIO_HEADER
                } else if crate::crowd::owns(kind) {
                    crate::crowd::RATIO_HEADER
                } else if crate::cross::owns(kind) {
                    crate::cross::RATIO_HEADER
                } else {
                    "cpu/wson"
                };
                let _ = write!(header, " {ratio:>9}");
            }
            if has_anomalies {
                header.push_str("  lost/dup/reord");
            }
            let _ = writeln!(out, "{header}");
            last_kind = kind;
        } else if summary
            .get(i.wrapping_sub(1))
            .is_some_and(|p| p.workload != s.workload)
        {
            out.push('\n');
        }
        let mut line = format!("{:<30} {:<18}", s.workload, s.server.name());
        for c in &cols {
            let _ = write!(line, " {:>13}", fmt(s.get(c.metric) * c.scale));
        }
        if has_cpu {
            // The issue-10 rows divide by the phase they compare with, not by wson.
            let base = if crate::issue10::owns(kind) {
                crate::issue10::compared_with(&s.workload).map(|w| (w, Kind::Wson))
            } else if crate::deflate::owns(kind) {
                crate::deflate::compared_with(&s.workload)
            } else if crate::wamp::owns(kind) {
                crate::wamp::compared_with(&s.workload)
            } else if crate::cluster::owns(kind) {
                crate::cluster::compared_with(&s.workload)
            } else if crate::crowd::owns(kind) {
                crate::crowd::compared_with(&s.workload)
            } else if crate::cross::owns(kind) {
                crate::cross::compared_with(&s.workload)
            } else {
                Some((s.workload.clone(), Kind::Wson))
            };
            let wson = base
                .and_then(|(base, server)| find(summary, &base, server))
                .map_or(f64::NAN, |w| w.get("cpu_us"));
            let _ = write!(line, " {:>9}", fmt(s.get("cpu_us") / wson));
        }
        if has_anomalies {
            let _ = write!(line, "  {}", anomaly_text(s));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let (issue14, rest): (Vec<&Target>, Vec<&Target>) = targets
        .iter()
        .partition(|t| t.name.starts_with("issue 14:") || (plan.deflate && t.met.is_some()));
    let (issue13, rest): (Vec<&Target>, Vec<&Target>) = rest
        .into_iter()
        .partition(|t| t.name.starts_with("issue 13:"));
    let (issue11, rest): (Vec<&Target>, Vec<&Target>) = rest
        .into_iter()
        .partition(|t| t.name.starts_with("issue 11:"));
    let (issue10, issue4): (Vec<&Target>, Vec<&Target>) = rest
        .into_iter()
        .partition(|t| t.name.starts_with("issue 10:"));
    // A run of only issue-10 or only WAMP workloads has no issue-4 figures to judge.
    if summary.iter().any(|s| {
        let kind = s.workload.split(' ').next().unwrap_or("");
        !crate::issue10::owns(kind)
            && !crate::wamp::owns(kind)
            && !issue13_owns(kind)
            && !crate::deflate::owns(kind)
    }) {
        let _ = writeln!(out, "\nIssue-4 targets (ratios within this run)");
        write_targets(&mut out, &issue4);
    }
    if !issue10.is_empty() {
        let _ = writeln!(out, "\nIssue-10 targets (wson only; ratios within one run)");
        write_targets(&mut out, &issue10);
    }
    if summary
        .iter()
        .any(|s| crate::wamp::owns(s.workload.split(' ').next().unwrap_or("")))
    {
        let _ = writeln!(
            out,
            "\nIssue-11 targets (WAMP, wson vs Crossbar; ratios within one run)"
        );
        write_targets(&mut out, &issue11);
    }
    if !issue13.is_empty() {
        let _ = writeln!(
            out,
            "\nIssue-13 targets (cluster, wson nodes joined by Redis; ratios within one run)"
        );
        write_targets(&mut out, &issue13);
        for line in issue13_information(summary, plan) {
            let _ = writeln!(out, "  info   {line}");
        }
    }
    if !issue14.is_empty() {
        let _ = writeln!(
            out,
            "\nIssue-14 targets (permessage-deflate, wson only; ratios within one run)"
        );
        write_targets(&mut out, &issue14);
    }
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    for e in errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

fn write_targets(out: &mut String, targets: &[&Target]) {
    for t in targets {
        let mark = match t.met {
            Some(true) => "MET   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(out, "  {mark} {}: {}", t.name, t.detail);
    }
}

fn metrics_json(values: &[(&'static str, f64)]) -> Value {
    let map: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| {
            let value = if v.is_finite() {
                json!((v * 1000.0).round() / 1000.0)
            } else {
                Value::Null
            };
            ((*k).to_string(), value)
        })
        .collect();
    Value::Object(map)
}

pub fn json(
    summary: &[Summary],
    targets: &[Target],
    plan: &Plan,
    date: &str,
    command: &str,
    notes: &[String],
    errors: &[String],
) -> String {
    let results: Vec<Value> = summary
        .iter()
        .map(|s| {
            json!({
                "workload": s.workload,
                "server": s.server.name(),
                "rounds": s.rounds,
                "median": metrics_json(&s.values),
                "per_round": s.per_round.iter().map(|m| metrics_json(m)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let targets: Vec<Value> = targets
        .iter()
        .map(|t| json!({"target": t.name, "met": t.met, "detail": t.detail}))
        .collect();
    json!({
        "bench": "wson issue 4",
        "date": date,
        "mode": if plan.quick { "quick" } else { "full" },
        "command": command,
        "rounds": plan.rounds,
        "gen_core": plan.gen_core,
        "concurrency": plan.concurrency,
        "server_core": plan.server_core,
        "units": {"rate": "per second", "cpu_us": "server CPU microseconds (utime+stime) per operation",
                  "p50_us": "microseconds", "idle_bytes": "bytes of RSS per connection",
                  "listen_overflows": "increase of the kernel's TcpExt ListenOverflows over the connect storm (machine-wide), summed over rounds"},
        "results": results,
        "targets": targets,
        "information": issue13_information(summary, plan),
        "notes": notes,
        "errors": errors,
    })
    .to_string()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
