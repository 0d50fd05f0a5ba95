//! Following the database: connect (with backoff after failures), read a snapshot, then read
//! again whenever a trigger's `NOTIFY` arrives or the periodic fingerprint changes. During an
//! outage the last snapshot stays in service and the hub says why.

use super::config::DatabaseConfig;
use super::database;
use super::document::Entities;
use super::hub::{Hub, Published};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The wait before reconnection attempt number `failures` (1-based): doubling from 250 ms,
/// capped, with jitter in [50%, 100%].
pub fn reconnect_backoff(failures: u32, max: Duration, random_unit: f64) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(max)
        .mul_f64(0.5 + 0.5 * random_unit.clamp(0.0, 1.0))
}

/// Runs forever.
pub async fn follow(config: DatabaseConfig, hub: Arc<Hub>) {
    let mut failures = 0u32;
    loop {
        let error = match session(&config, &hub, &mut failures).await {
            Ok(never) => match never {},
            Err(e) => e,
        };
        hub.database_down(&error);
        failures = failures.saturating_add(1);
        let wait = reconnect_backoff(failures, config.max_backoff, fastrand::f64());
        log::warn!(
            "database: {error}; serving the last snapshot; reconnecting in {:.1} s (attempt {failures})",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
}

/// What noticed a change.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Start,
    Notify,
    Fingerprint,
}

/// One connection's life; returns only with the error that ended it.
async fn session(
    config: &DatabaseConfig,
    hub: &Hub,
    failures: &mut u32,
) -> Result<std::convert::Infallible, String> {
    let timeout = config.query_timeout;
    let mut conn = bounded(timeout, database::connect(&config.connect)).await?;
    let triggers = bounded(timeout, database::triggers_installed(&conn.client)).await?;
    let fingerprint_interval = if triggers {
        config.fingerprint_interval_with_triggers
    } else {
        config.fingerprint_interval
    };
    log::info!(
        "database connected; change detection: {}fingerprint every {} ms",
        if triggers {
            "triggers (LISTEN/NOTIFY) and "
        } else {
            ""
        },
        fingerprint_interval.as_millis()
    );
    let mut last_fingerprint = read(&mut conn.client, hub, timeout, Trigger::Start).await?;
    if *failures > 0 {
        log::info!("database reachable again after {failures} failed attempt(s)");
    }
    *failures = 0;
    hub.database_up();
    loop {
        let trigger = tokio::select! {
            note = conn.notifications.recv() => match note {
                Some(_) => Trigger::Notify,
                None => return Err("the connection closed".into()),
            },
            _ = tokio::time::sleep(fingerprint_interval) => Trigger::Fingerprint,
        };
        // Notifications that came meanwhile are answered by this one read.
        while conn.notifications.try_recv().is_ok() {}
        if let Trigger::Fingerprint = trigger {
            let started = Instant::now();
            let now = bounded(timeout, database::fingerprint(&conn.client)).await?;
            hub.metrics
                .fingerprint_seconds
                .observe(started.elapsed().as_secs_f64());
            if now == last_fingerprint {
                continue;
            }
        }
        last_fingerprint = read(&mut conn.client, hub, timeout, trigger).await?;
    }
}

/// Reads and publishes a snapshot; returns the fingerprint of the transaction it read.
async fn read(
    client: &mut tokio_postgres::Client,
    hub: &Hub,
    timeout: Duration,
    trigger: Trigger,
) -> Result<String, String> {
    let started = Instant::now();
    let result = bounded(timeout, database::read_snapshot(client)).await;
    let (entities, fingerprint) = match result {
        Ok(read) => read,
        Err(e) => {
            hub.metrics.reads.with_label_values(&["error"]).inc();
            return Err(e);
        }
    };
    hub.metrics
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
    let by = match trigger {
        Trigger::Start => "start",
        Trigger::Notify => "notify",
        Trigger::Fingerprint => "fingerprint",
    };
    hub.metrics.changes.with_label_values(&[by]).inc();
    let published = tokio::task::spawn_blocking(move || encode(entities))
        .await
        .map_err(|e| format!("encoding the snapshot failed: {e}"))?;
    let version = published.version.clone();
    let bytes = published.body.len();
    let records = published.records;
    if hub.publish(published) {
        hub.metrics.reads.with_label_values(&["changed"]).inc();
        log::info!(
            "snapshot {version} in service: {records} records, {bytes} bytes, read in {} ms (noticed by {by})",
            started.elapsed().as_millis()
        );
    } else {
        hub.metrics.reads.with_label_values(&["unchanged"]).inc();
    }
    Ok(fingerprint)
}

fn encode(entities: Entities) -> Published {
    let records = entities.record_count();
    Published::new(super::document::encode(&entities), records)
}

/// `future` within `limit`, its error as text.
async fn bounded<T>(
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(crate::vocab::error_chain(&e)),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(30);
        assert_eq!(reconnect_backoff(1, cap, 1.0), Duration::from_millis(250));
        assert_eq!(reconnect_backoff(3, cap, 1.0), Duration::from_secs(1));
        assert_eq!(reconnect_backoff(30, cap, 1.0), cap);
        assert_eq!(reconnect_backoff(30, cap, 0.0), Duration::from_secs(15));
    }
}
