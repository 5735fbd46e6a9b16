//! Readiness travels up (UPGRADES.md §3.5): every center reports its
//! release, the formats it reads, its schema, what it holds aside and its
//! alarms in `Status` frames (protocol 3); each parent keeps the last
//! report of every center below it (`fleet`) and passes them up with its
//! own. The city's fleet view and its finalization check read the table.

use std::time::Duration;

use zongzhi_protocol::DivisionCode;
use zongzhi_protocol::sync::{Direction, NodeReport};

use crate::context::Context;
use crate::store::{FleetEntry, StoreError};

/// How often a link sends its `Status` again (it also goes at once on
/// every new link).
pub const STATUS_EVERY: Duration = Duration::from_secs(60);

/// This node's own report now.
pub fn own_report(ctx: &Context) -> Result<NodeReport, StoreError> {
    let parked = ctx.store.parked()?;
    let alarms = ctx.store.alarm_count()?;
    let last_alarm = ctx.store.alarms::<crate::ledger::Alarm>()?.last().map(|a| format!("{}: {}", a.kind, a.detail).chars().take(200).collect()).unwrap_or_default();
    let sync = ctx.sync.snapshot();
    let behind_up = sync.peers.values().filter(|p| p.role == "parent").map(|p| p.behind_to_peer).max().unwrap_or(0);
    Ok(NodeReport {
        key: ctx.key.id().0,
        division: ctx.unit,
        release: ctx.caps.release.clone(),
        formats: ctx.caps.formats,
        write_format: ctx.write_format(),
        schema: ctx.caps.schema,
        protocols: ctx.caps.protocols.clone(),
        parked: parked.len() as u64,
        parked_needs: parked.iter().map(|(_, e)| e.needs).max().unwrap_or(0),
        alarms,
        last_alarm,
        feed_head: *ctx.feed.borrow(),
        behind_up,
        at_ms: ctx.clock.now_ms(),
    })
}

/// The reports a `Status` carries: ours, and going up the last report of
/// every center below us.
pub fn status_reports(ctx: &Context, dir_out: Direction) -> Result<Vec<NodeReport>, StoreError> {
    let mut out = vec![own_report(ctx)?];
    if dir_out == Direction::Up {
        out.extend(ctx.store.fleet()?.into_iter().map(|e| e.report));
        out.truncate(zongzhi_protocol::sync::MAX_STATUS_REPORTS);
    }
    Ok(out)
}

/// A peer's `Status`, checked by the link: a child's reports go into the
/// fleet table (a newer report of a center replaces an older one; an
/// older one, relayed late, is dropped); a parent's own report is kept on
/// the sync board.
pub fn keep_status(ctx: &Context, via: DivisionCode, dir_in: Direction, reports: Vec<NodeReport>) {
    let peer = reports.first().map(|r| zongzhi_protocol::NodeId(r.key));
    if let Some(peer) = peer {
        let own = reports[0].clone();
        ctx.sync.update(&peer, |s| s.report = Some(own));
    }
    if dir_in != Direction::Up {
        return;
    }
    let now = ctx.clock.now_ms();
    let known: std::collections::HashMap<[u8; 32], u64> = match ctx.store.fleet() {
        Ok(f) => f.into_iter().map(|e| (e.report.key, e.report.at_ms)).collect(),
        Err(e) => {
            tracing::warn!("reading the fleet table: {e}");
            return;
        }
    };
    let mut batch = ctx.store.batch();
    let mut any = false;
    for report in reports {
        if known.get(&report.key).is_some_and(|at| *at > report.at_ms) {
            continue;
        }
        batch.put_fleet(&FleetEntry { report, received_ms: now, via: via.to_string() });
        any = true;
    }
    if any {
        match ctx.store.commit(batch) {
            Ok(()) => {
                ctx.fleet_changed.send_modify(|n| *n += 1);
            }
            Err(e) => tracing::warn!("keeping the subtree's status: {e}"),
        }
    }
}

/// How long a report may go unrenewed before the center counts as not
/// heard from (three refreshes missed).
pub const STALE_AFTER_MS: u64 = 3 * STATUS_EVERY.as_millis() as u64;

/// One center of this node's subtree as the fleet view shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetRow {
    pub division: DivisionCode,
    pub name: String,
    pub level: &'static str,
    pub key: String,
    /// `self`, `ok`, `stale` (no report for a while), `never` (no report
    /// on protocol 3: a release before 0.2.0, or never connected since),
    /// `revoked` (its key was replaced), `expired` (its certificate).
    pub state: &'static str,
    pub report: Option<NodeReport>,
    /// When its last report reached this node, and through which child.
    pub received_ms: Option<u64>,
    pub via: Option<String>,
    /// Seconds since the report was made (its own clock).
    pub age_secs: Option<u64>,
}

/// Whether the tree is ready for write format `format`, and who is not.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub format: u8,
    pub ready: bool,
    pub laggards: Vec<Laggard>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Laggard {
    pub division: DivisionCode,
    pub name: String,
    /// Why it is not ready, in words.
    pub why: String,
    /// It reported on protocol 3, so it runs a release that holds aside
    /// what it cannot read: an override may name it. A center never heard
    /// from on protocol 3 may run a release that refuses what it cannot
    /// read (0.1.0): it is upgraded (or its key revoked) first.
    pub can_park: bool,
}

/// Every center of this node's subtree the trust store knows, with its
/// last report, sorted by division.
pub fn fleet(ctx: &Context) -> Result<Vec<FleetRow>, StoreError> {
    let now = ctx.clock.now_ms();
    let trust = ctx.trust();
    let reports: std::collections::HashMap<[u8; 32], FleetEntry> = ctx.store.fleet()?.into_iter().map(|e| (e.report.key, e)).collect();
    let own = own_report(ctx)?;
    let mut rows: Vec<FleetRow> = trust
        .members()
        .filter(|m| ctx.unit.contains(m.cert.division))
        .map(|m| {
            let me = m.cert.key == ctx.key.id();
            let entry = reports.get(&m.cert.key.0);
            let report = if me { Some(own.clone()) } else { entry.map(|e| e.report.clone()) };
            let age_secs = report.as_ref().map(|r| now.saturating_sub(r.at_ms) / 1000);
            let state = if me {
                "self"
            } else if trust.revocation(&m.cert.key).is_some() {
                "revoked"
            } else if !m.cert.valid_at(now) {
                "expired"
            } else {
                match &report {
                    None => "never",
                    Some(r) if now.saturating_sub(r.at_ms) > STALE_AFTER_MS => "stale",
                    Some(_) => "ok",
                }
            };
            FleetRow {
                division: m.cert.division,
                name: m.cert.name.clone(),
                level: m.cert.division.level().as_str(),
                key: m.cert.key.fmt_short(),
                state,
                report,
                received_ms: entry.map(|e| e.received_ms),
                via: entry.map(|e| e.via.clone()),
                age_secs,
            }
        })
        .collect();
    rows.sort_by_key(|r| (r.division, r.state == "revoked"));
    Ok(rows)
}

/// Whether every enrolled, unrevoked center of the tree has reported
/// reading `format` (the city finalizes only then, or with an override).
pub fn readiness(ctx: &Context, format: u8) -> Result<Readiness, StoreError> {
    let mut laggards = Vec::new();
    for row in fleet(ctx)? {
        if matches!(row.state, "revoked" | "expired") {
            continue;
        }
        let why = match (&row.report, row.state) {
            (Some(r), _) if r.reads(format) => continue,
            (Some(r), _) => format!("runs release {} (reads formats {}–{})", r.release, r.formats.0, r.formats.1),
            (None, _) => "never reported its release (a release before 0.2.0, or not connected since)".to_string(),
        };
        laggards.push(Laggard { division: row.division, name: row.name, why, can_park: row.report.is_some() });
    }
    Ok(Readiness { format, ready: laggards.is_empty(), laggards })
}

/// Why the city may not finalize.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("the gate is at format {0}, the newest this release writes")]
    Nothing(u8),
    #[error("the next format to finalize is {next} (the gate is at {gate})")]
    WrongFormat { next: u8, gate: u8 },
    #[error("the override names centers that are not laggards: {0:?}")]
    NotLaggards(Vec<DivisionCode>),
    #[error("{} centers have not reported reading format {format}: upgrade them, or name each in an override with a reason", laggards.len())]
    Laggards { format: u8, laggards: Vec<Laggard> },
    #[error(
        "an override cannot name a center that never reported on protocol 3: it may run a release (0.1.0) that refuses what it cannot read and would stop syncing; upgrade it or revoke its key first"
    )]
    OverrideRefused(Vec<Laggard>),
    #[error("an override needs a reason")]
    NeedsReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The policy that finalizes record format `format` (the gate raised, the
/// laggards the override names kept in it), if the tree is ready or the
/// override may be taken. Only the city signs it.
pub fn finalizing_policy(ctx: &Context, format: u8, overridden: &[DivisionCode], reason: &str) -> Result<(zongzhi_protocol::Policy, Readiness), FinalizeError> {
    let current = ctx.policy();
    let gate = current.gate.write_format;
    if gate >= ctx.caps.write_max {
        return Err(FinalizeError::Nothing(gate));
    }
    if format != gate + 1 {
        return Err(FinalizeError::WrongFormat { next: gate + 1, gate });
    }
    let readiness = readiness(ctx, format)?;
    let strangers: Vec<DivisionCode> = overridden.iter().copied().filter(|d| !readiness.laggards.iter().any(|l| l.division == *d)).collect();
    if !strangers.is_empty() {
        return Err(FinalizeError::NotLaggards(strangers));
    }
    let unnamed: Vec<Laggard> = readiness.laggards.iter().filter(|l| !overridden.contains(&l.division)).cloned().collect();
    if !unnamed.is_empty() {
        return Err(FinalizeError::Laggards { format, laggards: unnamed });
    }
    let cannot: Vec<Laggard> = readiness.laggards.iter().filter(|l| !l.can_park).cloned().collect();
    if !cannot.is_empty() {
        return Err(FinalizeError::OverrideRefused(cannot));
    }
    if !overridden.is_empty() && reason.trim().is_empty() {
        return Err(FinalizeError::NeedsReason);
    }
    let mut policy = (*current).clone();
    policy.version += 1;
    policy.gate = zongzhi_protocol::policy::UpgradeGate { write_format: format, overridden: overridden.to_vec(), reason: reason.trim().to_string() };
    Ok((policy, readiness))
}
