//! What the work queue needs to know about a case without folding it.

use serde::{Deserialize, Serialize};
use zongzhi_protocol::case::{Channel, Complexity, RequestType, SuperviseGrade, Urgency};
use zongzhi_protocol::kpi::{self, Counter, Fact};
use zongzhi_protocol::workflow::{DeadlineKind, Status};
use zongzhi_protocol::{CaseState, DivisionCode, RecordId};

/// Largest stored summary accepted when reading one back.
const MAX_SUMMARY_BYTES: usize = 1 << 20;

/// A running clock: what it times, the unit whose work it is, when it
/// started and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct RunningClock {
    pub kind: DeadlineKind,
    pub unit: DivisionCode,
    pub started_ms: u64,
    pub due_ms: u64,
}

impl RunningClock {
    /// Has used at least `percent` of its time (overdue or not).
    pub fn is_due_soon(&self, now_ms: u64, percent: u8) -> bool {
        has_used(self.started_ms, self.due_ms, now_ms, percent)
    }
}

/// A clock from `started_ms` to `due_ms` has used at least `percent` of its time at `now_ms`.
pub fn has_used(started_ms: u64, due_ms: u64, now_ms: u64, percent: u8) -> bool {
    let span = due_ms.saturating_sub(started_ms).max(1);
    now_ms.saturating_sub(started_ms).saturating_mul(100) >= span.saturating_mul(percent as u64)
}

/// A derived, stored digest of a case's state. Stored with the binary
/// codec of signed records (see [`CaseSummary::encode`]); served as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct CaseSummary {
    pub id: RecordId,
    pub number: String,
    pub title: String,
    pub category: String,
    pub request_type: RequestType,
    pub channel: Channel,
    pub urgency: Urgency,
    pub complexity: Complexity,
    #[serde(with = "status_serde")]
    pub status: Status,
    pub owner: DivisionCode,
    pub window: Option<String>,
    pub filed_by: DivisionCode,
    pub filed_ms: u64,
    pub updated_ms: u64,
    pub supervision: Option<SuperviseGrade>,
    pub returns: u32,
    pub escalations: u32,
    /// Running clocks with a due time, in the case's clock order.
    pub running: Vec<RunningClock>,
    pub next_due_ms: Option<u64>,
    pub events: u32,
    /// Units that owned the case or help with it (replication scope).
    #[serde(default)]
    pub units: Vec<DivisionCode>,
    /// Hashes of the case's blobs (contact details, attachments).
    #[serde(default)]
    pub blobs: Vec<zongzhi_protocol::BlobHash>,
    /// The counters this case adds to the statistics: (month, unit,
    /// counter index, value). Kept so the next change subtracts exactly
    /// what was added.
    #[serde(default)]
    pub facts: Vec<(u32, DivisionCode, u8, i64)>,
    /// How many units have owned the case (a problem case at three).
    #[serde(default)]
    pub units_handled: u32,
    /// The complainant's contact blob hash (repeat complaints).
    #[serde(default)]
    pub contact: Option<zongzhi_protocol::BlobHash>,
    /// Running clocks whose due time waits for a year's calendar: (kind, year).
    #[serde(default)]
    pub waiting: Vec<(DeadlineKind, i32)>,
    /// Every year some clock of the case (running or met) waits for.
    #[serde(default)]
    pub waiting_calendar: Vec<i32>,
    /// A policy version an event named that this node did not hold.
    #[serde(default)]
    pub policy_missing: Option<u32>,
    /// The complainant for repeats ([`crate::index::person_key`]).
    #[serde(default)]
    pub person: Option<[u8; 32]>,
    /// The accepted merge: its event's HLC and id, and the target case.
    #[serde(default)]
    pub merged: Option<(zongzhi_protocol::Hlc, RecordId, RecordId)>,
    /// 督办 notices waiting for a reply (format 4): the notice and the
    /// unit that owes it.
    #[serde(default)]
    pub replies_owed: Vec<(RecordId, DivisionCode)>,
    /// 协办 requests waiting for a reply (format 4): the request, the unit
    /// that answers (a window's: its center), the helping window, the due
    /// time (`None` while its calendar is missing).
    #[serde(default)]
    pub assists_owed: Vec<(RecordId, DivisionCode, Option<String>, Option<u64>)>,
    /// Every department window asked to help (format 4), with its center:
    /// their staff see the case.
    #[serde(default)]
    pub helper_windows: Vec<(DivisionCode, String)>,
    /// A mediation agreement's 回访 is due or done (format 4): whether a
    /// return visit is owed.
    #[serde(default)]
    pub visit_owed: bool,
}

impl CaseSummary {
    /// The units that took a step on the case that was overruled (被覆盖),
    /// from the statistics it adds (`kpi::Counter::Overruled`).
    pub fn overruled_units(&self) -> std::collections::BTreeSet<DivisionCode> {
        let overruled = kpi::Counter::Overruled as u8;
        self.facts.iter().filter(|f| f.2 == overruled && f.3 > 0).map(|f| f.1).collect()
    }

    pub fn of(state: &CaseState) -> CaseSummary {
        CaseSummary {
            id: state.id,
            number: state.filing.number.clone(),
            title: state.filing.title.clone(),
            category: state.filing.category.clone(),
            request_type: state.filing.request_type,
            channel: state.filing.channel,
            urgency: state.filing.urgency,
            complexity: state.filing.complexity,
            status: state.status,
            owner: state.owner,
            window: state.window.clone(),
            filed_by: state.filed_by,
            filed_ms: state.filed_ms,
            updated_ms: state.last_hlc.wall_ms,
            supervision: state.supervision,
            returns: state.returns,
            escalations: state.escalations,
            running: state
                .deadlines
                .iter()
                .filter(|d| d.is_running())
                .filter_map(|d| Some(RunningClock { kind: d.kind, unit: state.acting_unit(d), started_ms: d.started_ms, due_ms: d.due_ms? }))
                .collect(),
            next_due_ms: state.next_due(),
            events: state.timeline.len() as u32,
            units: {
                let mut u = state.units_handled.clone();
                for h in &state.helpers {
                    if let zongzhi_protocol::case::RouteTarget::Unit(x) = h
                        && !u.contains(x)
                    {
                        u.push(*x);
                    }
                }
                u
            },
            blobs: state.filing.contact.iter().copied().chain(state.attachments.iter().map(|a| a.blob)).chain(state.mediation.agreements.iter().map(|a| a.document)).collect(),
            units_handled: state.units_handled.len() as u32,
            contact: state.filing.contact,
            waiting: state.deadlines.iter().filter(|d| d.is_running()).filter_map(|d| Some((d.kind, d.waiting_year?))).collect(),
            waiting_calendar: state.waiting_years(),
            policy_missing: state.policy_missing,
            person: crate::index::person_key(state.filing.intake.complainant, state.filing.contact),
            merged: state.merge_event.zip(state.merged_into).map(|((h, id), into)| (h, id, into)),
            facts: kpi::facts(state).into_iter().map(|f| (f.month, f.unit, f.counter as u8, f.value)).collect(),
            replies_owed: state.notices.iter().filter(|n| n.is_pending()).map(|n| (n.id, n.to)).collect(),
            assists_owed: state.assists.iter().filter(|a| a.is_pending()).map(|a| (a.request, a.unit(), a.window().map(String::from), a.due_ms)).collect(),
            helper_windows: {
                let mut w: Vec<(DivisionCode, String)> = state.assists.iter().filter_map(|a| Some((a.by, a.window()?.to_string()))).collect();
                w.sort();
                w.dedup();
                w
            },
            visit_owed: state.mediation.agreement().is_some_and(|a| a.visits.is_empty()),
        }
    }

    /// The stored form (binary: a summary is written for every changed
    /// case in every batch, and JSON cost more than the rest of the fold).
    pub fn encode(&self) -> Vec<u8> {
        zongzhi_protocol::codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<CaseSummary, zongzhi_protocol::codec::CodecError> {
        zongzhi_protocol::codec::decode(bytes, MAX_SUMMARY_BYTES)
    }

    pub fn facts(&self) -> Vec<Fact> {
        self.facts.iter().filter_map(|(month, unit, c, value)| Some(Fact { month: *month, unit: *unit, counter: Counter::from_index(*c)?, value: *value })).collect()
    }

    /// Whether a [`crate::accounts::Role::Window`] account of center `me`
    /// with `windows` sees the case: at one of them, or one of them asked to
    /// help.
    pub fn in_windows(&self, me: DivisionCode, windows: &[String]) -> bool {
        (self.owner == me && self.window.as_ref().is_some_and(|w| windows.contains(w))) || self.helper_windows.iter().any(|(u, w)| *u == me && windows.contains(w))
    }

    /// Folded again when a policy version arrives (the waiting index).
    pub fn needs_policy(&self) -> bool {
        !self.waiting_calendar.is_empty() || self.policy_missing.is_some()
    }

    pub fn is_overdue(&self, now_ms: u64) -> bool {
        self.running.iter().any(|r| now_ms > r.due_ms)
    }

    /// A running clock has used at least `percent` of its time but is not overdue.
    pub fn is_due_soon(&self, now_ms: u64, percent: u8) -> bool {
        !self.is_overdue(now_ms) && self.running.iter().any(|r| r.is_due_soon(now_ms, percent))
    }
}

mod status_serde {
    use super::Status;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Status, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let s = String::deserialize(d)?;
        Status::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown status {s}")))
    }
}
