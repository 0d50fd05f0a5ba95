//! The snapshot being served and the database's state: one `watch` channel that requests read
//! and long-polls wait on, swapped whole when a read of the database gives a different body.

use bytes::Bytes;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// One published document: its body plain and gzipped, and their validators.
#[derive(Debug)]
pub struct Published {
    pub body: Bytes,
    pub gzip: Bytes,
    pub version: String,
    /// Hex hash of `body`; the ETags are `"HASH"` (plain) and `"HASH.gz"` (gzip).
    pub hash: String,
    pub records: usize,
    pub built_at: SystemTime,
}

impl Published {
    /// Encodes the gzip variant (call it off the runtime's workers for large documents).
    pub fn new(encoded: super::document::Encoded, records: usize) -> Published {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(encoded.body.len() / 6),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let gzip = gz
            .write_all(&encoded.body)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Published {
            body: Bytes::from(encoded.body),
            gzip: Bytes::from(gzip),
            version: encoded.version,
            hash: encoded.hash,
            records,
            built_at: SystemTime::now(),
        }
    }

    pub fn etag(&self, gzip: bool) -> String {
        if gzip {
            format!("\"{}.gz\"", self.hash)
        } else {
            format!("\"{}\"", self.hash)
        }
    }

    /// Whether an `If-None-Match` value names this document (either encoding; weak
    /// comparison as RFC 9110 asks for `If-None-Match`).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match.split(',').any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag == self.etag(false) || tag == self.etag(true)
        })
    }
}

/// Why the database is not being read right now.
#[derive(Debug, Clone)]
pub struct Outage {
    pub since: SystemTime,
    pub error: String,
}

/// The metrics of `/metrics`, in their own registry (the router's are not served here).
pub struct ApiMetrics {
    pub registry: Registry,
    pub query_seconds: Histogram,
    pub fingerprint_seconds: Histogram,
    pub snapshot_bytes: IntGauge,
    pub snapshot_gzip_bytes: IntGauge,
    pub snapshot_records: IntGauge,
    pub snapshot_built_unix: IntGauge,
    pub clients_waiting: IntGauge,
    pub database_up: IntGauge,
    pub reads: IntCounterVec,
    pub changes: IntCounterVec,
    pub answers: IntCounterVec,
    pub sent_bytes: IntCounterVec,
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    // Names are fixed and distinct, so registering cannot fail.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl ApiMetrics {
    fn new() -> ApiMetrics {
        let r = Registry::new();
        let buckets = vec![
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let histogram = |name: &str, help: &str| {
            registered(
                &r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.clone()))
                    .expect("valid histogram"),
            )
        };
        let gauge = |name: &str, help: &str| {
            registered(&r, IntGauge::new(name, help).expect("valid gauge"))
        };
        let counter = |name: &str, help: &str, label: &str| {
            registered(
                &r,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid counter"),
            )
        };
        ApiMetrics {
            query_seconds: histogram(
                "cti_kaltura_admin_api_query_seconds",
                "Time to read a whole snapshot from the database (one transaction)",
            ),
            fingerprint_seconds: histogram(
                "cti_kaltura_admin_api_fingerprint_seconds",
                "Time of one change-fingerprint query",
            ),
            snapshot_bytes: gauge(
                "cti_kaltura_admin_api_snapshot_bytes",
                "Size of the snapshot served, uncompressed",
            ),
            snapshot_gzip_bytes: gauge(
                "cti_kaltura_admin_api_snapshot_gzip_bytes",
                "Size of the snapshot served, gzipped",
            ),
            snapshot_records: gauge(
                "cti_kaltura_admin_api_snapshot_records",
                "Entities in the snapshot served",
            ),
            snapshot_built_unix: gauge(
                "cti_kaltura_admin_api_snapshot_built_unixtime",
                "When the snapshot served was read from the database",
            ),
            clients_waiting: gauge(
                "cti_kaltura_admin_api_clients_waiting",
                "Long-poll requests being held",
            ),
            database_up: gauge(
                "cti_kaltura_admin_api_database_up",
                "1 while the database is connected and read, 0 during an outage",
            ),
            reads: counter(
                "cti_kaltura_admin_api_reads_total",
                "Snapshot reads of the database by result",
                "result",
            ),
            changes: counter(
                "cti_kaltura_admin_api_changes_total",
                "Change checks that led to a read, by what noticed the change",
                "by",
            ),
            answers: counter(
                "cti_kaltura_admin_api_answers_total",
                "Snapshot endpoint answers by status",
                "status",
            ),
            sent_bytes: counter(
                "cti_kaltura_admin_api_sent_bytes_total",
                "Snapshot body bytes sent, by encoding",
                "encoding",
            ),
            registry: r,
        }
    }
}

/// Shared by the HTTP server and the database loop.
pub struct Hub {
    current: watch::Sender<Option<Arc<Published>>>,
    outage: Mutex<Option<Outage>>,
    pub metrics: ApiMetrics,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let metrics = ApiMetrics::new();
        Arc::new(Hub {
            current: watch::channel(None).0,
            outage: Mutex::new(Some(Outage {
                since: SystemTime::now(),
                error: "not connected yet".into(),
            })),
            metrics,
        })
    }

    pub fn current(&self) -> Option<Arc<Published>> {
        self.current.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.current.subscribe()
    }

    /// Puts `published` in service unless its body equals the one served; true when it did.
    pub fn publish(&self, published: Published) -> bool {
        let m = &self.metrics;
        m.snapshot_built_unix.set(unix(published.built_at));
        let changed = self.current.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.hash == published.hash) {
                return false;
            }
            m.snapshot_bytes.set(published.body.len() as i64);
            m.snapshot_gzip_bytes.set(published.gzip.len() as i64);
            m.snapshot_records.set(published.records as i64);
            *current = Some(Arc::new(published));
            true
        });
        changed
    }

    pub fn outage(&self) -> Option<Outage> {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn database_up(&self) {
        *self.outage.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.metrics.database_up.set(1);
    }

    /// Records an outage; the first error of an outage stays with its time.
    pub fn database_down(&self, error: &str) {
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        if outage.is_none() {
            *outage = Some(Outage {
                since: SystemTime::now(),
                error: error.to_string(),
            });
        }
        self.metrics.database_up.set(0);
    }
}

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_api::document::{encode, Entities};

    #[test]
    fn if_none_match_accepts_either_encoding_lists_and_weak_tags() {
        let p = Published::new(encode(&Entities::default()), 0);
        let plain = p.etag(false);
        let gz = p.etag(true);
        assert!(p.matches(&plain));
        assert!(p.matches(&gz));
        assert!(p.matches(&format!("\"x\", W/{plain}")));
        assert!(p.matches("*"));
        assert!(!p.matches("\"other\""));
        assert!(!p.matches(""));
    }

    #[test]
    fn publishing_the_same_body_again_changes_nothing() {
        let hub = Hub::new();
        let mut rx = hub.subscribe();
        assert!(hub.publish(Published::new(encode(&Entities::default()), 0)));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert!(!hub.publish(Published::new(encode(&Entities::default()), 0)));
        assert!(!rx.has_changed().unwrap());
        let gz = hub.current().unwrap();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.gzip[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, gz.body);
    }
}
