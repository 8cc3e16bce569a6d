//! Log output: one line per event, `time LEVEL message key=value ...`, on stderr (which
//! `start --daemon` points at the log file). The level can change at run time (SIGHUP).

use std::io::Write;

pub fn init(level: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder
        // Everything passes the backend; `log::set_max_level` is the one live filter,
        // so a reload can raise or lower it.
        .filter_level(log::LevelFilter::Trace)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {} {}",
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        });
    // A second init (tests) keeps the first logger; the level still applies.
    let _ = builder.try_init();
    log::set_max_level(level);
}
