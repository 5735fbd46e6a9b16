//! The payload of a signed monthly report: a center's own counters for one
//! month. Only the data lives here (a record body must not depend on how
//! the figures are computed); `kpi` builds and reads it.

use crate::codec::{Decode, Encode};
use crate::division::DivisionCode;

/// A center's own figures for one month, signed as a record. The city
/// recomputes them from the events it holds and flags any difference.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct MonthlyReport {
    pub unit: DivisionCode,
    /// `YYYYMM`.
    pub month: u32,
    /// Non-zero own-unit counters: (index in `kpi::Counter::ALL`, value).
    pub counts: Vec<(u8, i64)>,
    /// Which definitions the figures follow (`kpi::DEFINITIONS`).
    pub definitions: String,
    /// The earlier report of the same unit and month this one replaces
    /// (both stay: the earlier is shown as superseded), and why.
    pub supersedes: Option<crate::RecordId>,
    pub reason: String,
}
