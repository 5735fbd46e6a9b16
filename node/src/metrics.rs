//! The node's metrics (Prometheus `prometheus-client`): one [`Metrics`] per
//! node, in its [`Context`](crate::context::Context) — never a global, since
//! the simulator runs many nodes in one process. It holds the registry of
//! what is measured as it happens: HTTP requests per route (the middleware
//! in `api/mod.rs`), the writer's group sizes (`ledger/`) and the synced
//! writes' latency (`store/rocks.rs`, through [`crate::store::WriteTimer`]).
//! What is read at scrape time (feed head, storage, peers, RocksDB size)
//! `api/monitor.rs` adds to the same exposition.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text the encoder writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this (`zongzhi_…`).
pub const PREFIX: &str = "zongzhi";

/// The route label of a request no route matched (never the raw path).
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The instruments a node updates as things happen, and their registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    group_operations: Histogram,
    group_records: Histogram,
    synced_write_seconds: Histogram,
    notify: NotifyMetrics,
    supervision_scans: Counter,
}

/// Citizen notifications ([`crate::notify`]).
#[derive(Default)]
struct NotifyMetrics {
    queued: Gauge,
    delivered: Counter,
    failed: Counter,
    retries: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Synced-write buckets in seconds: 0.1 ms to about 3.3 s, doubling.
fn fsync_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Request buckets in seconds: 0.5 ms to about 8 s, doubling.
fn request_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// Size buckets: 1, 2, 4, … 65 536.
fn sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method, route (the route pattern, `unmatched` when none) and status class", requests.clone());
        let request_seconds: HistogramFamily<RouteLabels> = Family::new_with_constructor(request_seconds);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival at the router until its response headers are ready, by method and route",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let group_operations = sizes();
        registry.register("write_group_operations", "Operations (filings, steps, received batches…) per write group: each group is one synced RocksDB write", group_operations.clone());
        let group_records = sizes();
        registry.register("write_group_records", "Records added per write group", group_records.clone());
        let synced_write_seconds = fsync_seconds();
        registry.register_with_unit("fsync_duration", "Duration of each synced RocksDB write (WAL written and fsynced) of a committed batch", Unit::Seconds, synced_write_seconds.clone());
        let notify = NotifyMetrics::default();
        registry.register("notify_queued", "Citizen notifications waiting for delivery (the pending outbox)", notify.queued.clone());
        registry.register("notify_delivered", "Citizen notifications delivered", notify.delivered.clone());
        registry.register("notify_failed", "Citizen notifications given up (kept as failed)", notify.failed.clone());
        registry.register("notify_retries", "Failed delivery attempts of citizen notifications, each retried later", notify.retries.clone());
        let supervision_scans = Counter::default();
        registry.register("supervision_scans", "Supervision scans finished (each looked at every overdue clock and issued what was due): tests and operators wait on it", supervision_scans.clone());
        Metrics { registry, requests, request_seconds, group_operations, group_records, synced_write_seconds, notify, supervision_scans }
    }

    /// One HTTP request answered: `route` is the matched route pattern
    /// (`/api/cases/{case}`), `None` when no route matched.
    pub fn http_request(&self, method: &axum::http::Method, route: Option<&str>, status: u16, took: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED).to_string();
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        self.request_seconds.get_or_create(&RouteLabels { method, route }).observe(took.as_secs_f64());
    }

    /// A write group handed to the commit: its operations and the records it adds.
    pub fn write_group(&self, operations: usize, records: usize) {
        self.group_operations.observe(operations as f64);
        self.group_records.observe(records as f64);
    }

    /// How long one synced write took.
    pub fn synced_write(&self, took: Duration) {
        self.synced_write_seconds.observe(took.as_secs_f64());
    }

    /// Notifications waiting for delivery now.
    pub fn notify_queued(&self, n: u64) {
        self.notify.queued.set(n.min(i64::MAX as u64) as i64);
    }

    pub fn notify_delivered(&self) {
        self.notify.delivered.inc();
    }

    pub fn notify_failed(&self) {
        self.notify.failed.inc();
    }

    /// A failed delivery attempt, to be retried.
    pub fn notify_retry(&self) {
        self.notify.retries.inc();
    }

    /// A supervision scan finished, with the notices it issued.
    pub fn supervision_scan(&self) {
        self.supervision_scans.inc();
    }
}

/// The method as a label: the standard ones by name, anything else as
/// `other` (a client cannot add label values at will).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [Method; 9] = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::HEAD, Method::OPTIONS, Method::PATCH, Method::TRACE, Method::CONNECT];
    const NAMES: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
    KNOWN.iter().position(|m| m == method).map_or("other", |i| NAMES[i])
}

/// Labels of a metric read at scrape time, in the order they are shown.
pub type Labels = Vec<(&'static str, String)>;

/// What `/metrics` reads at scrape time (feed head, storage, peers,
/// RocksDB size…): a registry of its own, built for one scrape and
/// encoded after the node's. Names are given in full as they appear: a
/// counter's ends in `_total` (OpenMetrics names the family without it), a
/// gauge ending in `_bytes` is declared with the unit `bytes`.
#[derive(Default)]
pub struct Scrape {
    registry: Registry,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// The help text as given; the encoder ends it with a full stop.
fn help(text: &str) -> &str {
    text.trim_end_matches('.')
}

impl Scrape {
    pub fn gauge(&mut self, name: &str, text: &str, value: u64) {
        let metric = ConstGauge::new(value);
        match name.strip_suffix("_bytes") {
            Some(base) => self.registry.register_with_unit(base, help(text), Unit::Bytes, metric),
            None => self.registry.register(name, help(text), metric),
        }
    }

    pub fn counter(&mut self, name: &str, text: &str, value: u64) {
        self.registry.register(counter_family(name), help(text), ConstCounter::new(value));
    }

    /// A gauge with a fractional value (seconds, a timestamp).
    pub fn gauge_f64(&mut self, name: &str, text: &str, value: f64) {
        self.registry.register(name, help(text), ConstGauge::new(value));
    }

    /// A counter with a fractional value (CPU seconds).
    pub fn counter_f64(&mut self, name: &str, text: &str, value: f64) {
        self.registry.register(counter_family(name), help(text), ConstCounter::new(value));
    }

    /// One gauge per label set (a family without any is left out).
    pub fn gauges(&mut self, name: &str, text: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Gauge<u64, AtomicU64>>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help(text), family);
    }

    /// One counter per label set (a family without any is left out).
    pub fn counters(&mut self, name: &str, text: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).inc_by(value);
        }
        self.registry.register(counter_family(name), help(text), family);
    }
}

/// A counter's family name: its sample name without `_total`.
fn counter_family(name: &str) -> &str {
    debug_assert!(name.ends_with("_total"), "counter {name} is named …_total");
    name.strip_suffix("_total").unwrap_or(name)
}

impl Metrics {
    /// The whole exposition: what the scrape read, then the node's
    /// registry, then `# EOF`.
    pub fn exposition(&self, scrape: &Scrape) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::with_capacity(16 * 1024);
        encode_registry(&mut out, &scrape.registry)?;
        encode_registry(&mut out, &self.registry)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_methods_and_classes_are_labels() {
        let m = Metrics::new();
        m.http_request(&axum::http::Method::GET, Some("/api/cases/{case}"), 200, Duration::from_millis(3));
        m.http_request(&axum::http::Method::GET, Some("/api/cases/{case}"), 404, Duration::from_millis(1));
        m.http_request(&axum::http::Method::from_bytes(b"BREW").unwrap(), None, 405, Duration::from_millis(1));
        m.write_group(3, 5);
        m.synced_write(Duration::from_millis(2));
        let mut scrape = Scrape::default();
        scrape.gauge("zongzhi_records", "Records.", 7);
        scrape.gauge("zongzhi_disk_free_bytes", "Free bytes.", 9);
        scrape.counter("zongzhi_storage_faults_total", "Faults.", 2);
        scrape.gauges("zongzhi_peer_connected", "Up.", [(vec![("peer", "a\"b".to_string()), ("role", "parent".to_string())], 1)]);
        scrape.counters("zongzhi_handshakes_refused_total", "Refused.", []);
        let out = m.exposition(&scrape).unwrap();
        assert!(out.starts_with("# HELP zongzhi_records Records.\n# TYPE zongzhi_records gauge\nzongzhi_records 7\n"), "{out}");
        assert!(out.contains("# TYPE zongzhi_disk_free_bytes gauge\n# UNIT zongzhi_disk_free_bytes bytes\nzongzhi_disk_free_bytes 9\n"), "{out}");
        assert!(out.contains("# TYPE zongzhi_storage_faults counter\nzongzhi_storage_faults_total 2\n"), "{out}");
        assert!(out.contains("zongzhi_peer_connected{peer=\"a\\\"b\",role=\"parent\"} 1\n"), "{out}");
        // A family without samples is left out.
        assert!(!out.contains("zongzhi_handshakes_refused"), "{out}");
        assert!(out.contains("zongzhi_http_requests_total{method=\"GET\",route=\"/api/cases/{case}\",status=\"2xx\"} 1\n"), "{out}");
        assert!(out.contains("zongzhi_http_requests_total{method=\"GET\",route=\"/api/cases/{case}\",status=\"4xx\"} 1\n"), "{out}");
        assert!(out.contains("zongzhi_http_requests_total{method=\"other\",route=\"unmatched\",status=\"4xx\"} 1\n"), "{out}");
        assert!(out.contains("zongzhi_http_request_duration_seconds_count{method=\"GET\",route=\"/api/cases/{case}\"} 2\n"), "{out}");
        assert!(out.contains("zongzhi_write_group_records_bucket{le=\"4.0\"} 0\n"), "{out}");
        assert!(out.contains("zongzhi_write_group_records_bucket{le=\"8.0\"} 1\n"), "{out}");
        assert!(out.contains("zongzhi_fsync_duration_seconds_count 1\n"), "{out}");
        m.notify_queued(3);
        m.notify_retry();
        let out = m.exposition(&Scrape::default()).unwrap();
        assert!(out.contains("# TYPE zongzhi_notify_queued gauge\nzongzhi_notify_queued 3\n"), "{out}");
        assert!(out.contains("# TYPE zongzhi_notify_retries counter\nzongzhi_notify_retries_total 1\n"), "{out}");
        assert!(out.contains("zongzhi_notify_delivered_total 0\n"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
