//! What the process does on signals: SIGHUP re-reads the config, SIGUSR2 upgrades in place.

pub mod reload;
pub mod upgrade;
