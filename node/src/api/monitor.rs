//! What monitoring and operators read about the node itself: health,
//! integrity, replication status, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use super::{AppState, time};
use crate::accounts::Role;
use crate::integrity;
use crate::ledger;
use crate::metrics::Scrape;

pub(super) async fn health(State(s): State<AppState>) -> ApiResult {
    // The writer publishes the feed head after each commit (no store read).
    let records = *s.shared.feed.borrow();
    let storage = s.shared.storage.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut storage_json = serde_json::to_value(&storage).unwrap_or(Value::Null);
    storage_json["fault_since"] = json!(storage.fault_since_ms.map(time));
    storage_json["recovered_at"] = json!(storage.recovered_ms.map(time));
    let recovery = s.shared.recovery.status();
    let mut recovery_json = serde_json::to_value(&recovery).unwrap_or(Value::Null);
    recovery_json["restored_at"] = json!(recovery.restored_ms.map(time));
    recovery_json["confirmed_at"] = json!(recovery.confirmed_ms.map(time));
    recovery_json["waiting_for"] = json!(s.shared.recovery.waiting_for());
    let upgrade = upgrade_block(&s)?;
    let upgrade_alarm = !upgrade["alarms"].as_array().is_none_or(Vec::is_empty);
    // The parent: down once a try to reach it failed and no link is up.
    let sync = s.shared.sync.snapshot();
    let parent = sync.peers.values().find(|p| p.role == "parent").map(|p| {
        json!({
            "division": p.division,
            "name": p.name,
            "connected": p.connected,
            "last_error": p.last_error.as_ref().filter(|_| !p.connected),
            "last_error_at": p.last_error_ms.filter(|_| !p.connected).map(time),
            "next_attempt_at": p.next_attempt_ms.filter(|_| !p.connected).map(time),
        })
    });
    let parent_down = sync.peers.values().any(|p| p.role == "parent" && !p.connected && p.last_error.is_some());
    Ok(Json(json!({
        // `degraded` while an alarm below is raised (the node still answers).
        "status": if storage.alarm() || recovery.restoring || upgrade_alarm || parent_down { "degraded" } else { "ok" },
        "parent": parent,
        "recovery": recovery_json,
        "upgrade": upgrade,
        "storage": storage_json,
        "node_id": s.node.id.to_string(),
        "node_short": s.node.id.fmt_short(),
        "division": s.node.division.to_string(),
        "level": s.node.division.level().as_str(),
        "level_zh": s.node.division.level().zh(),
        "name": s.node.name,
        "records": records,
        "version": env!("CARGO_PKG_VERSION"),
        "calendar": super::policy::health_block(&s)?,
        // This node serves the citizens' public page ([public] enabled).
        "public_page": s.public.config.enabled,
    })))
}

/// This node's release and what stands in the way of its tree's upgrade:
/// records it holds aside (a newer format: the release to install), and
/// peers with which it shares no protocol. Each is an alarm naming the
/// release to install.
pub(super) fn upgrade_block(s: &AppState) -> Result<Value, ApiError> {
    let parked = s.store.parked()?;
    let needs = parked.iter().map(|(_, e)| e.needs).max();
    let mut alarms = Vec::new();
    if let Some(needs) = needs {
        let install = crate::release::reading_format(needs);
        alarms.push(json!({
            "kind": "parked",
            "install": install,
            "message": format!("{} 条记录为本版本无法读取的格式 {needs}，已暂存：请升级到 {install} ({} records of format {needs} held aside: install {install})", parked.len(), parked.len()),
        }));
    }
    let sync = s.shared.sync.snapshot();
    for p in sync.peers.values() {
        if let Some(why) = &p.incompatible {
            alarms.push(json!({"kind": "no_common_protocol", "peer": p.division, "message": why}));
        }
    }
    if let Some(n) = sync.refused.get(crate::net::NO_COMMON_PROTOCOL) {
        let spoken: Vec<String> = s.shared.caps.protocols.iter().map(u32::to_string).collect();
        alarms.push(json!({
            "kind": "no_common_protocol",
            "message": format!("{n} 次下级节点连接因没有共同的同步协议被拒绝（本节点协议 {}）：请升级较旧的一方 ({n} connections from child centers offered no sync protocol in common with this node's {}: upgrade the older side)", spoken.join(", "), spoken.join(", ")),
        }));
    }
    Ok(json!({
        "release": s.shared.caps.release,
        "formats": s.shared.caps.formats,
        "write_format": s.shared.write_format(),
        "gate": s.policy().gate.write_format,
        "schema": crate::store::SCHEMA_VERSION,
        "protocols": s.shared.caps.protocols,
        "parked": parked.len(),
        "parked_needs_format": needs,
        "alarms": alarms,
    }))
}

pub(super) async fn integrity_check(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let store = s.store.clone();
    let id = s.node.id;
    let report = tokio::task::spawn_blocking(move || integrity::check(&store, &id)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({"ok": report.ok(), "report": report})))
}

/// Counting what waits for a peer stops here (the status says "at least").
const WAITING_CAP: u64 = 10_000;

pub(super) async fn sync_status(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let mut status = s.shared.sync.live(&s.shared.trust());
    // What waits for each peer, counted in records as they would be sent.
    let shared = s.shared.clone();
    status = tokio::task::spawn_blocking(move || {
        for p in status.peers.values_mut() {
            let (Some(acked), Ok(division)) = (p.acked_by_peer, p.division.parse()) else { continue };
            let dir = if p.role == "child" { zongzhi_protocol::sync::Direction::Down } else { zongzhi_protocol::sync::Direction::Up };
            if let Ok((n, capped)) = crate::replication::waiting_for(&shared, division, dir, acked, WAITING_CAP) {
                p.waiting_to_peer = Some(n);
                p.waiting_capped = capped;
            }
        }
        status
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut peers: Vec<Value> = status
        .peers
        .values()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            v["last_contact"] = json!(p.last_contact_ms.map(time));
            v["last_error_at"] = json!(p.last_error_ms.map(time));
            v["next_attempt_at"] = json!(p.next_attempt_ms.filter(|_| !p.connected).map(time));
            v
        })
        .collect();
    peers.sort_by(|a, b| a["division"].as_str().cmp(&b["division"].as_str()));
    let alarms: Vec<ledger::Alarm> = s.store.alarms()?;
    Ok(Json(json!({
        "node": s.node.id.to_string(),
        "division": s.node.division.to_string(),
        "feed_head": *s.shared.feed.borrow(),
        "upgrade": upgrade_block(&s)?,
        "peers": peers,
        "refused_handshakes": status.refused,
        "alarms": alarms,
    })))
}

/// The metrics in OpenMetrics text (Prometheus scrapes it): what this
/// node reads at scrape time (records, storage, replication, refusals,
/// alarms, RocksDB size), then its registry of HTTP, writer and fsync
/// measurements ([`crate::metrics`]). No personal data; served on the API
/// address (loopback by default).
pub(super) async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let mut m = Scrape::default();
    state_metrics(&s, &mut m)?;
    peer_metrics(&s, &mut m);
    storage_metrics(&s, &mut m);
    connection_and_login_metrics(&s, &mut m);
    fleet_metrics(&s, &mut m)?;
    crate::probes::scrape(&s.shared, s.ledger.writer_alive(), &mut m);
    let out = s.shared.metrics.exposition(&m).map_err(|e| ApiError::internal(format!("encoding the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], out).into_response())
}

/// Records, alarms, restore and calendar.
fn state_metrics(s: &AppState, m: &mut Scrape) -> ApiResult<()> {
    m.gauge("zongzhi_records", "Records in this node's feed.", *s.shared.feed.borrow());
    m.gauge("zongzhi_pending_records", "Received records waiting for their parents.", s.store.pending_count(usize::MAX)? as u64);
    // A gauge since OpenMetrics names every counter `…_total`: the name
    // dashboards read stays, the value is the number of alarms held.
    m.gauge("zongzhi_integrity_alarms", "Integrity alarms raised (equivocation, chain gaps).", s.store.alarm_count()?);
    m.gauge(
        "zongzhi_restoring",
        "1 while the node runs on a restored backup not yet confirmed: local steps are refused until replication catches up or an admin overrides.",
        s.shared.recovery.restoring() as u64,
    );
    let missing = s.shared.policy().missing_calendars(s.now_ms());
    m.gauge("zongzhi_calendar_warning", "1 while a working-day calendar this node needs by now is missing (this year, or next year from the policy's warning date).", !missing.is_empty() as u64);
    m.gauges("zongzhi_calendar_missing", "1 for each year whose calendar is needed by now and missing.", missing.iter().map(|y| (vec![("year", y.to_string())], 1)));
    let parked = s.store.parked()?;
    m.gauge("zongzhi_parked_records", "Records held aside: a record format this release cannot read, or following one (install the release that reads it).", parked.len() as u64);
    m.gauge("zongzhi_parked_needs_format", "The newest record format among the records held aside (0: none).", parked.iter().map(|(_, e)| e.needs as u64).max().unwrap_or(0));
    let caps = &s.shared.caps;
    m.gauges(
        "zongzhi_release_info",
        "This node's release, the record formats it reads and writes now, its store schema and sync protocols (value 1).",
        [(
            vec![
                ("release", caps.release.clone()),
                ("formats", format!("{}-{}", caps.formats.0, caps.formats.1)),
                ("write_format", s.shared.write_format().to_string()),
                ("schema", crate::store::SCHEMA_VERSION.to_string()),
                ("protocols", caps.protocols.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            ],
            1,
        )],
    );
    m.gauge("zongzhi_write_format_gate", "The record format the city's policy allows nodes to sign.", s.policy().gate.write_format as u64);
    let (waiting, _) = super::policy::waiting_counts(&s.store)?;
    m.gauge("zongzhi_cases_waiting_for_calendar", "Open cases with a clock waiting for a working-day calendar.", waiting);
    Ok(())
}

/// Replication per peer and refused handshakes.
fn peer_metrics(s: &AppState, m: &mut Scrape) {
    let status = s.shared.sync.live(&s.shared.trust());
    m.counters("zongzhi_handshakes_refused_total", "Handshakes refused, by reason.", status.refused.iter().map(|(reason, n)| (vec![("reason", reason.to_string())], *n)));
    type PeerMetric = (&'static str, &'static str, fn(&crate::status::PeerStatus) -> u64);
    let per_peer: [PeerMetric; 8] = [
        ("zongzhi_peer_connected", "1 while a link with the peer is up.", |p| p.connected as u64),
        ("zongzhi_peer_records_sent_total", "Records sent to the peer.", |p| p.records_sent),
        ("zongzhi_peer_records_received_total", "Records received from the peer and stored.", |p| p.records_received),
        ("zongzhi_peer_bytes_sent_total", "Frame bytes sent to the peer.", |p| p.bytes_sent),
        ("zongzhi_peer_bytes_received_total", "Frame bytes received from the peer.", |p| p.bytes_received),
        ("zongzhi_peer_behind_to_peer", "Feed positions the peer has not acknowledged.", |p| p.behind_to_peer),
        ("zongzhi_peer_behind_from_peer", "Peer feed positions not yet received.", |p| p.behind_from_peer),
        ("zongzhi_peer_errors_total", "Link errors and refused records.", |p| p.errors),
    ];
    let mut peers: Vec<&crate::status::PeerStatus> = status.peers.values().collect();
    peers.sort_by(|a, b| a.division.cmp(&b.division));
    for (name, help, f) in per_peer {
        let samples = peers.iter().map(|p| (vec![("peer", p.division.to_string()), ("role", p.role.to_string())], f(p)));
        if name.ends_with("_total") {
            m.counters(name, help, samples);
        } else {
            m.gauges(name, help, samples);
        }
    }
}

/// The storage alarm, free space and RocksDB's size.
fn storage_metrics(s: &AppState, m: &mut Scrape) {
    let storage = s.shared.storage.lock().unwrap_or_else(|p| p.into_inner()).clone();
    m.gauge("zongzhi_storage_unavailable", "1 while writes fail (a full disk, an I/O error); the node reopens its store when space returns.", storage.fault.is_some() as u64);
    m.gauge("zongzhi_storage_low", "1 while the data disk has less free space than the reserve.", (storage.status == "low") as u64);
    m.counter("zongzhi_storage_faults_total", "Write faults since start.", storage.faults);
    m.gauge("zongzhi_disk_free_bytes", "Free bytes on the data directory's file system.", storage.free_bytes.unwrap_or(0));
    m.gauge("zongzhi_storage_reserve_bytes", "Bytes held in the storage reserve file.", storage.reserve_bytes);
    // Left out while the store is being reopened after a fault.
    if let Ok(size) = s.store.engine_size() {
        m.gauge("zongzhi_rocksdb_sst_bytes", "Bytes of RocksDB's SST files, all column families.", size.sst_bytes);
        m.gauge("zongzhi_rocksdb_live_data_bytes", "RocksDB's estimate of its live data, all column families.", size.live_data_bytes);
        m.gauge("zongzhi_rocksdb_memtable_bytes", "Bytes in RocksDB's memtables (active, immutable and pinned), all column families.", size.memtable_bytes);
    }
}

/// This node's subtree as its fleet table holds it (the city's: the whole
/// tree): centers by state, what they hold aside and their alarms, and the
/// laggards for the next record format.
fn fleet_metrics(s: &AppState, m: &mut Scrape) -> ApiResult<()> {
    let rows = crate::replication::fleet::fleet(&s.shared)?;
    let states = ["self", "ok", "stale", "never", "revoked", "expired"];
    m.gauges(
        "zongzhi_fleet_centers",
        "Centers of this node's subtree (itself included) by state: ok, stale (no report for a while), never (no report on protocol 3), revoked, expired.",
        states.iter().map(|st| (vec![("state", st.to_string())], rows.iter().filter(|r| r.state == *st).count() as u64)),
    );
    let reported = rows.iter().filter(|r| r.state != "self").filter_map(|r| r.report.as_ref());
    let (parked, alarms) = reported.fold((0, 0), |(p, a), r| (p + r.parked, a + r.alarms));
    m.gauge("zongzhi_fleet_parked_records", "Records held aside in the subtree below this node, as its centers last reported.", parked);
    m.gauge("zongzhi_fleet_alarms", "Integrity alarms held in the subtree below this node, as its centers last reported.", alarms);
    let gate = s.policy().gate.write_format;
    if gate < s.shared.caps.write_max {
        let r = crate::replication::fleet::readiness(&s.shared, gate + 1)?;
        m.gauges(
            "zongzhi_fleet_laggards",
            "Enrolled centers of the subtree that have not reported reading the next record format (the city finalizes at 0).",
            [(vec![("format", (gate + 1).to_string())], r.laggards.len() as u64)],
        );
    }
    Ok(())
}

/// HTTP connections and the password-hash gate.
fn connection_and_login_metrics(s: &AppState, m: &mut Scrape) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &crate::net::http::COUNTERS;
    m.gauge("zongzhi_http_connections_open", "HTTP(S) connections open now.", c.open.load(Relaxed));
    for (name, help, v) in [
        ("zongzhi_http_connections_total", "HTTP(S) connections accepted.", &c.accepted),
        ("zongzhi_http_connections_refused_total", "Connections turned away at http_max_connections.", &c.refused),
        ("zongzhi_http_connections_address_refused_total", "Connections turned away at http_max_connections_per_address (one client address's share).", &c.refused_address),
        ("zongzhi_http_tls_handshakes_failed_total", "HTTPS handshakes that failed or timed out.", &c.tls_failed),
        ("zongzhi_http_connections_timed_out_total", "Connections closed for slow headers or idling.", &c.timed_out),
    ] {
        m.counter(name, help, v.load(Relaxed));
    }
    let g = s.login.gate.stats();
    let gate: [(&str, &str, u64); 6] = [
        ("zongzhi_password_hash_permits", "Password hashes the node computes at once at most.", g.permits as u64),
        ("zongzhi_password_hashes_active", "Password hashes being computed now.", g.active as u64),
        ("zongzhi_password_hashes_peak", "Most password hashes ever computed at once since the start.", g.peak as u64),
        ("zongzhi_password_hash_waiting", "Password checks waiting for a hash permit.", g.waiting as u64),
        ("zongzhi_password_hashes_total", "Password checks and hashes computed since the start.", g.hashed),
        ("zongzhi_login_busy_total", "Password checks refused (503 busy) because too many were waiting.", g.busy),
    ];
    for (name, help, v) in gate {
        if name.ends_with("_total") {
            m.counter(name, help, v);
        } else {
            m.gauge(name, help, v);
        }
    }
}
