//! What the running loop reads: the configuration as it applies now, and the secret it
//! resolved to. Swapped whole on SIGHUP: reloadable keys take their new values at once,
//! restart-only keys keep the values the listeners were bound with.

use std::ops::Deref;

use crate::access::Limits;
use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Settings {
    config: Config,
    /// The bytes of `secret` / `secret_file`, which sign the cookies.
    pub signing_secret: Vec<u8>,
}

impl Deref for Settings {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

impl Settings {
    pub fn new(config: Config, signing_secret: Vec<u8>) -> Settings {
        Settings {
            config,
            signing_secret,
        }
    }

    /// The settings after reading `fresh`; logs each restart-only key that changed.
    pub fn reloaded(&self, fresh: Config, signing_secret: Vec<u8>) -> Settings {
        for key in self.config.restart_needed(&fresh) {
            log::warn!(key; "config key changed but needs a restart to apply");
        }
        Settings {
            config: self.config.reloaded(fresh),
            signing_secret,
        }
    }

    /// The per-address limits as `[access]` sets them now.
    pub fn access_limits(&self) -> Limits {
        Limits {
            connections: self.access.max_connections_per_address,
            handshakes_per_second: self.access.handshakes_per_second,
            failed_logins_per_minute: self.access.failed_logins_per_minute,
            max_addresses: self.access.max_tracked_addresses,
        }
    }

    /// A `Retry-After` for a token that is busy: the old connection, if dead, is found
    /// by the keepalive within two ping intervals.
    pub fn busy_retry_after(&self) -> u32 {
        u32::try_from(self.ping_interval.as_secs().saturating_mul(2)).unwrap_or(u32::MAX)
    }
}
