//! permessage-deflate (issue 14), wson only: the same broadcasts of realistic JSON (a market
//! feed, 512 B and 2 KiB) to N clients that do not offer deflate, then, on a fresh server, to
//! N clients that do. Each client checks every message (inflated first); the table gives
//! server CPU per delivery, the deflate rows over the plain ones at the same size and window
//! (`cpu/plain`, the issue's bound: 1.5), and bytes on the wire per delivery, both measured
//! on the receiving side (every byte the clients read during the phase).

use std::time::Duration;

use crate::generator::Generator;
use crate::issue10::{Mark, delivery_columns};
use crate::report::{Column, Record, Summary, Target, col, find, ratio_target};
use crate::servers::{self, Kind, Paths};
use crate::{Plan, settle};

/// Message sizes: the issue's "realistic JSON (~500 B to 2 KB)".
pub const SIZES: [usize; 2] = [512, 2048];
/// The bound the issue sets on CPU per delivery, deflate over plain.
pub const BOUND: f64 = 1.5;
pub const RATIO_HEADER: &str = "cpu/plain";

pub fn owns(kind: &str) -> bool {
    kind == "deflate"
}

pub fn columns(_kind: &str) -> (&'static str, Vec<Column>) {
    let mut columns = delivery_columns("messages");
    columns.insert(2, col("B/deliv", "bytes_per_deliv", 1.0));
    (
        "permessage-deflate (wson): `b` of JSON to N clients, W in flight, clients without deflate (plain) and, on a fresh server, with it; B/deliv: bytes the clients read per delivery; cpu/plain: CPU per delivery over the plain row's",
        columns,
    )
}

/// `deflate n=N size=S w=W deflate` is compared with the same row `plain`.
pub fn compared_with(workload: &str) -> Option<(String, Kind)> {
    let base = workload.strip_suffix(" deflate")?;
    Some((format!("{base} plain"), Kind::Wson))
}

/// Both sessions of a round: plain clients, then deflate clients, each on a fresh server.
pub fn session(
    plan: &Plan,
    paths: &Paths,
    session: u32,
    round: usize,
    records: &mut Vec<Record>,
) -> Result<(), String> {
    let n = plan.main_n;
    for (offset, deflate) in [(0, false), (1, true)] {
        let mut server = servers::start(
            Kind::Wson,
            paths,
            plan.server_core,
            false,
            n + 100,
            session * 2 + offset,
        )?;
        let mut generator = Generator::new(
            crate::generator::Proto::Ws,
            server.ws,
            server.control,
            session * 2 + offset,
        )
        .map_err(|e| format!("control connect: {e}"))?;
        generator.set_json_payloads(true);
        generator.set_deflate(deflate);
        settle(300);
        crate::issue10::connect(&mut generator, n, plan)?;
        settle(500);
        let mode = if deflate { "deflate" } else { "plain" };
        for size in SIZES {
            let warm = generator.fanout(size, 1, 3, Duration::from_secs(10), plan.stall);
            for &window in &plan.windows {
                let (max, time) = plan.fanout_limits(window);
                let before = Mark::read(&server);
                let result = generator.fanout(size, window, max, time, plan.stall);
                let per_delivery = result.bytes as f64 / result.delivered.max(1) as f64;
                let workload = format!("deflate n={n} size={size} w={window} {mode}");
                let record = before.record(&mut server, workload, round, &result, &warm)?;
                records.push(record.metric("bytes_per_deliv", per_delivery));
            }
        }
        server.stop();
    }
    Ok(())
}

/// Issue 14's bound: deflate CPU per delivery within 1.5x of plain, per size and window.
pub fn targets(summary: &[Summary], plan: &Plan) -> Vec<Target> {
    let n = plan.main_n;
    let mut out = Vec::new();
    for size in SIZES {
        for &window in &plan.windows {
            let name = |mode: &str| format!("deflate n={n} size={size} w={window} {mode}");
            let cpu = |mode: &str| {
                find(summary, &name(mode), Kind::Wson).map_or(f64::NAN, |s| s.get("cpu_us"))
            };
            out.push(ratio_target(
                format!("issue 14: deflate cpu/deliv <= {BOUND}x plain, {size} B, W={window}"),
                cpu("deflate"),
                cpu("plain"),
                BOUND,
                true,
                "deflate over plain",
            ));
        }
    }
    out
}
