//! Records held aside (`parked`, schema 10) and the fleet table (`fleet`).
//!
//! A parked record is one this release cannot read (a newer record format)
//! or one that follows such a record in its case. It is stored like every
//! record (its bytes, feed position and chain entry, so it counts as held,
//! is chain-checked and travels up the tree), and marked here so the fold
//! leaves it out until a release that reads it is installed
//! ([`crate::ledger::Writer::unpark`]).
//!
//! The fleet table keeps the last `Status` report of every center below
//! this node (protocol 3): what the city's fleet view and its finalization
//! check read. Local to this node, never replicated, never rebuilt.

use serde::{Deserialize, Serialize};
use zongzhi_protocol::RecordId;
use zongzhi_protocol::sync::NodeReport;

use super::keys::*;
use super::{Batch, Result, Store, StoreError};

/// Why one record is parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEntry {
    /// The record's own format.
    pub format: u8,
    pub kind: u8,
    /// Its case, for a case event.
    pub case: Option<RecordId>,
    /// Its position in this node's feed.
    pub feed: u64,
    /// The record format this node must read before it can take the record
    /// in (the record's own, or that of the record it follows).
    pub needs: u8,
    /// In words (zh-CN and English), for the case view and the alarm.
    pub reason: String,
    /// The author (short key) and when it signed the record (its hybrid
    /// clock: derived data is the same however it is rebuilt).
    pub author: String,
    pub at_ms: u64,
}

const RECORD: u8 = b'r';
const CASE: u8 = b'c';

fn record_key(id: &RecordId) -> Vec<u8> {
    [&[RECORD][..], &id.0].concat()
}

fn case_key(case: &RecordId, id: &RecordId) -> Vec<u8> {
    [&[CASE][..], &case.0, &id.0].concat()
}

impl Batch<'_> {
    pub fn put_parked(&mut self, id: &RecordId, entry: &ParkedEntry) {
        match serde_json::to_vec(entry) {
            Ok(v) => self.put(CF_PARKED, &record_key(id), &v),
            Err(e) => tracing::error!("parked entry of {}: {e}", id.fmt_short()),
        }
        if let Some(case) = &entry.case {
            self.put(CF_PARKED, &case_key(case, id), &[]);
        }
    }

    pub fn delete_parked(&mut self, id: &RecordId, case: Option<&RecordId>) {
        self.delete(CF_PARKED, &record_key(id));
        if let Some(case) = case {
            self.delete(CF_PARKED, &case_key(case, id));
        }
    }

    /// Keeps a center's last report (replacing the one before).
    pub fn put_fleet(&mut self, entry: &FleetEntry) {
        match serde_json::to_vec(entry) {
            Ok(v) => self.put(CF_FLEET, &entry.report.key, &v),
            Err(e) => tracing::error!("fleet entry: {e}"),
        }
    }
}

/// A center's last report as this node keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetEntry {
    pub report: NodeReport,
    /// When it reached this node (this node's clock).
    pub received_ms: u64,
    /// The child it came through.
    pub via: String,
}

impl Store {
    /// Why a record is parked here, if it is.
    pub fn parked_entry(&self, id: &RecordId) -> Result<Option<ParkedEntry>> {
        self.get(CF_PARKED, &record_key(id))?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt { cf: CF_PARKED, detail: e.to_string() })).transpose()
    }

    /// The parked records of a case.
    pub fn parked_in_case(&self, case: &RecordId) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_PARKED, &[&[CASE][..], &case.0].concat(), |k, _| {
            if let Some(id) = k.get(33..65).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                out.push(RecordId(id));
            }
            true
        })?;
        Ok(out)
    }

    /// Every parked record, in feed order.
    pub fn parked(&self) -> Result<Vec<(RecordId, ParkedEntry)>> {
        let mut out = Vec::new();
        let mut bad = None;
        self.scan_prefix(CF_PARKED, &[RECORD], |k, v| {
            match (k.get(1..33).and_then(|b| <[u8; 32]>::try_from(b).ok()), serde_json::from_slice::<ParkedEntry>(v)) {
                (Some(id), Ok(e)) => out.push((RecordId(id), e)),
                (_, Err(e)) => bad = Some(e.to_string()),
                _ => bad = Some("short key".into()),
            }
            bad.is_none()
        })?;
        if let Some(detail) = bad {
            return Err(StoreError::Corrupt { cf: CF_PARKED, detail });
        }
        out.sort_by_key(|(_, e)| e.feed);
        Ok(out)
    }

    /// The last report of every center below this node.
    pub fn fleet(&self) -> Result<Vec<FleetEntry>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_FLEET, &[], |_, v| {
            match serde_json::from_slice::<FleetEntry>(v) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!("unreadable fleet entry: {e}"),
            }
            true
        })?;
        Ok(out)
    }
}
