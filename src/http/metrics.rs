//! The `/metrics` text: Prometheus text exposition format 0.0.4 from a snapshot of the
//! server's figures. Every name starts `wson_`; counters end `_total`. README.md, "HTTP API",
//! documents each metric.

use std::fmt::Write;

/// The figures `/metrics` shows, gathered by the server.
#[derive(Debug, Default, Clone)]
pub struct Snapshot<'a> {
    /// Each WebSocket listener's endpoint and open connections.
    pub listeners: Vec<(&'a str, usize)>,
    pub connections_accepted: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Refused upgrades by HTTP status.
    pub handshakes_refused: Vec<(u16, u64)>,
    pub slow_consumers_dropped: u64,
    pub protocol_errors: u64,
    pub control_connections: usize,
    pub http_connections: usize,
    pub users_online: usize,
    pub topics: usize,
    pub wamp_sessions: usize,
    pub wamp_pending_calls: usize,
    /// Publications and bytes the topic histories hold (`[history]`).
    pub history_publications: usize,
    pub history_bytes: usize,
    /// Nodes in the cluster (this one included) and whether Redis is up; `None`: no cluster.
    pub cluster: Option<(u64, bool)>,
    /// With a cluster: resumes served from Redis, and publications to topics with history
    /// delivered unpositioned (Redis out of reach).
    pub cluster_history_fetches: u64,
    pub cluster_history_unpositioned: u64,
    pub uptime_secs: u64,
    /// HTTP API responses by status.
    pub http_requests: Vec<(u16, u64)>,
}

/// Appends one metric family: its HELP, TYPE and samples (label set, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP wson_{name} {help}");
    let _ = writeln!(out, "# TYPE wson_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "wson_{name}{labels} {value}");
    }
}

fn one(value: u64) -> [(String, u64); 1] {
    [(String::new(), value)]
}

fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `{name="value"}`, the value escaped as the format says (backslash, quote, newline).
fn label(name: &str, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    format!("{{{name}=\"{escaped}\"}}")
}

pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let listeners: Vec<(String, u64)> = snapshot
        .listeners
        .iter()
        .map(|(endpoint, connections)| (label("listener", endpoint), count(*connections)))
        .collect();
    family(
        &mut out,
        "connections",
        "gauge",
        "Open WebSocket connections, per listener.",
        &listeners,
    );
    let counters: [(&str, &str, u64); 7] = [
        (
            "connections_accepted_total",
            "WebSocket connections accepted.",
            snapshot.connections_accepted,
        ),
        (
            "messages_in_total",
            "Data messages received from WebSocket clients.",
            snapshot.messages_in,
        ),
        (
            "messages_out_total",
            "Data messages queued to WebSocket clients (one per recipient).",
            snapshot.messages_out,
        ),
        (
            "bytes_in_total",
            "Bytes read from WebSocket connections.",
            snapshot.bytes_in,
        ),
        (
            "bytes_out_total",
            "Bytes written to WebSocket connections.",
            snapshot.bytes_out,
        ),
        (
            "slow_consumers_dropped_total",
            "Clients dropped for not reading (max_outbound_buffer).",
            snapshot.slow_consumers_dropped,
        ),
        (
            "protocol_errors_total",
            "WebSocket connections failed with 1002, 1007 or 1009.",
            snapshot.protocol_errors,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help, &one(value));
    }
    let refused: Vec<(String, u64)> = snapshot
        .handshakes_refused
        .iter()
        .map(|(status, value)| (label("status", &status.to_string()), *value))
        .collect();
    family(
        &mut out,
        "handshakes_refused_total",
        "counter",
        "WebSocket upgrades refused, by HTTP status.",
        &refused,
    );
    let gauges: [(&str, &str, usize); 8] = [
        (
            "control_connections",
            "Open control connections.",
            snapshot.control_connections,
        ),
        (
            "http_connections",
            "Open HTTP API connections.",
            snapshot.http_connections,
        ),
        (
            "users_online",
            "Users with at least one open connection.",
            snapshot.users_online,
        ),
        (
            "topics",
            "Topics with at least one subscriber.",
            snapshot.topics,
        ),
        (
            "wamp_sessions",
            "Open WAMP sessions.",
            snapshot.wamp_sessions,
        ),
        (
            "wamp_pending_calls",
            "WAMP calls waiting for their result.",
            snapshot.wamp_pending_calls,
        ),
        (
            "history_publications",
            "Publications the topic histories hold.",
            snapshot.history_publications,
        ),
        (
            "history_bytes",
            "Bytes the topic histories hold, as counted against [history] max_bytes.",
            snapshot.history_bytes,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help, &one(count(value)));
    }
    let (nodes, redis_up) = snapshot.cluster.unwrap_or((1, false));
    family(
        &mut out,
        "cluster_nodes",
        "gauge",
        "Nodes in the cluster, this one included (1 without a cluster).",
        &one(nodes),
    );
    family(
        &mut out,
        "cluster_redis_up",
        "gauge",
        "1 while the cluster's Redis is connected (0 without a cluster).",
        &one(u64::from(redis_up)),
    );
    family(
        &mut out,
        "cluster_history_fetches_total",
        "counter",
        "Resumes served from Redis, this node's copy of the history not covering them.",
        &one(snapshot.cluster_history_fetches),
    );
    family(
        &mut out,
        "cluster_history_unpositioned_total",
        "counter",
        "Publications to topics with history delivered on this node only, without a position.",
        &one(snapshot.cluster_history_unpositioned),
    );
    family(
        &mut out,
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        &one(snapshot.uptime_secs),
    );
    let requests: Vec<(String, u64)> = snapshot
        .http_requests
        .iter()
        .map(|(status, value)| (label("code", &status.to_string()), *value))
        .collect();
    family(
        &mut out,
        "http_requests_total",
        "counter",
        "HTTP API responses, by status.",
        &requests,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let snapshot = Snapshot {
            listeners: vec![("tcp://127.0.0.1:1", 2), ("unix://a\"b", 0)],
            handshakes_refused: vec![(403, 3)],
            http_requests: vec![(200, 5), (401, 1)],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        assert!(text.contains("# TYPE wson_connections gauge\n"));
        assert!(text.contains("wson_connections{listener=\"tcp://127.0.0.1:1\"} 2\n"));
        assert!(text.contains("wson_connections{listener=\"unix://a\\\"b\"} 0\n"));
        assert!(text.contains("wson_handshakes_refused_total{status=\"403\"} 3\n"));
        assert!(text.contains("wson_http_requests_total{code=\"401\"} 1\n"));
        assert!(text.contains("wson_cluster_nodes 1\n"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }
}
