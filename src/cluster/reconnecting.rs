//! A helper thread's own Redis connection (claims, the history's reads): made when due,
//! dropped when it fails, made again after a backoff, so that a Redis away costs each
//! request one failed attempt at most and a Redis back is used at once.

use std::time::{Duration, Instant};

use super::link::{FIRST_BACKOFF, IO_TIMEOUT, MAX_BACKOFF};

/// True when `error` means the connection is unusable (rather than Redis refusing one
/// command).
pub(super) fn connection_failed(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_connection_refusal()
}

pub(super) struct Reconnecting<'a> {
    client: &'a redis::Client,
    /// What the connection serves, for the log lines.
    serves: &'static str,
    connection: Option<redis::Connection>,
    retry_at: Instant,
    backoff: Duration,
    /// The last failure was a timeout: the command may have run.
    timed_out: bool,
}

impl<'a> Reconnecting<'a> {
    pub(super) fn new(client: &'a redis::Client, serves: &'static str) -> Reconnecting<'a> {
        Reconnecting {
            client,
            serves,
            connection: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            timed_out: false,
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// The last failed command timed out (it may have run in Redis).
    pub(super) fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The next `connect` tries at once (a request is waiting).
    pub(super) fn retry_now(&mut self) {
        self.retry_at = Instant::now();
    }

    /// The next `connect` tries at once, and a failure then waits the first backoff (Redis
    /// is known to be back).
    pub(super) fn reset(&mut self) {
        self.retry_at = Instant::now();
        self.backoff = FIRST_BACKOFF;
    }

    /// Connects when there is no connection and the backoff has passed; true when a new
    /// connection was made.
    pub(super) fn connect(&mut self) -> bool {
        if self.connection.is_some() || Instant::now() < self.retry_at {
            return false;
        }
        let connected = self
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .and_then(|connection| {
                connection.set_write_timeout(Some(IO_TIMEOUT))?;
                connection.set_read_timeout(Some(IO_TIMEOUT))?;
                Ok(connection)
            });
        match connected {
            Ok(connection) => {
                self.connection = Some(connection);
                self.backoff = FIRST_BACKOFF;
                true
            }
            Err(error) => {
                log::debug!(serves = self.serves, reason:% = error; "cluster: cannot reach Redis");
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }

    /// Runs `query` on the connection, if any. A failed connection is dropped (and tried
    /// again at once by the next `connect`); a command Redis refused is logged.
    pub(super) fn query<T>(
        &mut self,
        query: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let connection = self.connection.as_mut()?;
        match query(connection) {
            Ok(value) => Some(value),
            Err(error) => {
                self.timed_out = error.is_timeout();
                if connection_failed(&error) {
                    self.connection = None;
                    self.retry_at = Instant::now();
                } else {
                    log::warn!(serves = self.serves, reason:% = error; "cluster: Redis refused a command");
                }
                None
            }
        }
    }

    pub(super) fn run<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Option<T> {
        self.query(|connection| command.query::<T>(connection))
    }
}
