//! The case list (work queue) as the API, the CLI and the exports see it:
//! a [`Filter`] parsed from query parameters, and [`page`] / [`scan`] that
//! answer it from the store's indexes in due order.

use std::collections::HashMap;

use zongzhi_protocol::case::Urgency;
use zongzhi_protocol::workflow::{DeadlineKind, Status};
use zongzhi_protocol::{DivisionCode, Policy};

use zongzhi_protocol::RecordId;

use crate::index;
use crate::store::{CF_QUEUE, CF_QUEUE_CAT, Result, Store};
use crate::summary::CaseSummary;

/// Open statuses: the default work queue.
pub const OPEN: &[Status] = &[Status::AwaitingReceipt, Status::Accepted, Status::Handling, Status::Returned, Status::Suspended];

/// Which clocks select cases in the "my work" view: cases with a running
/// clock whose responsible unit is this node, whoever owns the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockFilter {
    Any,
    Kind(DeadlineKind),
}

/// What a case list selects. Parsed from the query string of
/// `GET /api/cases` (and the export routes, which take the same filters).
#[derive(Debug, Clone)]
pub struct Filter {
    /// `None`: every owner.
    pub owner: Option<DivisionCode>,
    pub statuses: Vec<Status>,
    pub urgency: Option<Urgency>,
    /// A category code prefix ("" for all).
    pub category: String,
    pub overdue: Option<bool>,
    pub due_soon: bool,
    pub waiting_calendar: bool,
    /// Set: the cases in which a step of this unit was overruled (被覆盖),
    /// whoever owns them and whatever their status (the owner and status
    /// selections do not apply).
    pub overruled: Option<DivisionCode>,
    /// Set: the "my work" view of this unit's running clocks (the owner
    /// and status selections do not apply); with `None` for the unit, the
    /// running clocks of every unit this node holds cases of
    /// (`clock_of=all`: a supervising center's view of the replies owed
    /// to its 督办 across its subtree).
    pub clock: Option<(Option<DivisionCode>, ClockFilter)>,
    /// Set: only the cases of these department windows of this center (at
    /// one of them, or one of them asked to help): `window=` in the query,
    /// and always a window account's own windows.
    pub windows: Option<(DivisionCode, Vec<String>)>,
}

fn flag(q: &HashMap<String, String>, name: &str) -> std::result::Result<Option<bool>, String> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

impl Filter {
    /// Parses the filter parameters of a case list request; `me` is this
    /// node's unit (the default owner). The error is a message for a 400.
    pub fn from_query(q: &HashMap<String, String>, me: DivisionCode) -> std::result::Result<Filter, String> {
        let statuses: Vec<Status> = match q.get("status").map(String::as_str) {
            None | Some("") | Some("open") => OPEN.to_vec(),
            Some("all") => Status::ALL.to_vec(),
            Some(list) => {
                let mut v = Vec::new();
                for x in list.split(',') {
                    let st = Status::parse(x.trim()).ok_or_else(|| format!("unknown status {x:?}"))?;
                    if !v.contains(&st) {
                        v.push(st);
                    }
                }
                v
            }
        };
        let owner = match q.get("owner").map(String::as_str) {
            None | Some("") | Some("me") => Some(me),
            Some("all") => None,
            Some(code) => Some(code.parse().map_err(|e| format!("owner: {e}"))?),
        };
        let urgency = q.get("urgency").filter(|u| !u.is_empty()).map(|u| Urgency::parse(u).ok_or("urgency must be normal or urgent")).transpose()?;
        let category = q.get("category").cloned().unwrap_or_default();
        if category.len() > 16 || !category.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("category must be a category code or its prefix".into());
        }
        let of = match q.get("clock_of").map(String::as_str) {
            None | Some("") | Some("me") => Some(me),
            Some("all") => None,
            Some(x) => return Err(format!("clock_of must be me or all, not {x:?}")),
        };
        let clock = match q.get("clock").map(String::as_str) {
            None | Some("") => None,
            Some("any") => Some((of, ClockFilter::Any)),
            Some(k) => Some((of, ClockFilter::Kind(DeadlineKind::parse(k).ok_or_else(|| format!("unknown clock {k:?} (any, or a clock kind such as feedback or sign_for)"))?))),
        };
        Ok(Filter {
            owner,
            statuses,
            urgency,
            category,
            overdue: flag(q, "overdue")?,
            due_soon: flag(q, "due_soon")?.unwrap_or(false),
            waiting_calendar: flag(q, "waiting_calendar")?.unwrap_or(false),
            overruled: flag(q, "overruled")?.unwrap_or(false).then_some(me),
            clock,
            windows: match q.get("window").map(String::as_str) {
                None | Some("") => None,
                Some(w) if w.len() <= 32 && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') => Some((me, vec![w.to_string()])),
                Some(w) => return Err(format!("window {w:?}: a window code (a-z, 0-9, _)")),
            },
        })
    }

    /// Narrows the filter to a window account's windows: its own (all of
    /// them without `window=`, else the one asked if it is theirs) and this
    /// center's cases. `None`: a window it does not work for.
    pub fn for_windows(mut self, me: DivisionCode, mine: &[String]) -> Option<Filter> {
        let asked = match self.windows.take() {
            None => mine.to_vec(),
            Some((_, w)) if w.iter().all(|x| mine.contains(x)) => w,
            Some(_) => return None,
        };
        self.windows = Some((me, asked));
        if self.owner.is_none() {
            self.owner = Some(me);
        }
        Some(self)
    }

    /// Whether a case passes every selection of this filter.
    pub fn matches(&self, policy: &Policy, c: &CaseSummary, now: u64) -> bool {
        let base = self.urgency.is_none_or(|u| c.urgency == u)
            && self.overdue.is_none_or(|o| c.is_overdue(now) == o)
            && c.category.starts_with(&self.category)
            && (!self.due_soon || c.is_due_soon(now, policy.deadlines.due_soon_percent))
            && (!self.waiting_calendar || !c.waiting.is_empty());
        if !base {
            return false;
        }
        if let Some((me, ws)) = &self.windows
            && !c.in_windows(*me, ws)
        {
            return false;
        }
        if let Some(unit) = self.overruled {
            return c.overruled_units().contains(&unit);
        }
        match self.clock {
            Some((unit, which)) => c.running.iter().any(|r| unit.is_none_or(|u| r.unit == u) && which.admits(r.kind)),
            None => self.statuses.contains(&c.status) && self.owner.is_none_or(|o| c.owner == o),
        }
    }
}

impl ClockFilter {
    pub fn admits(self, kind: DeadlineKind) -> bool {
        match self {
            ClockFilter::Any => true,
            ClockFilter::Kind(k) => k == kind,
        }
    }
}

/// Where a page ended: the list position of its last case (opaque to clients).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// Parses the text form (`to_string`).
    pub fn parse(s: &str) -> Option<Cursor> {
        let bytes = hex::decode(s).ok()?;
        (!bytes.is_empty() && bytes.len() <= 64).then_some(Cursor(bytes))
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// Totals are counted exactly up to this many cases.
pub const TOTAL_CAP: usize = 10_000;

/// One page of a case list.
#[derive(Debug)]
pub struct Page {
    pub cases: Vec<CaseSummary>,
    /// Set when more cases follow.
    pub next: Option<Cursor>,
    /// Cases the filter selects (all pages).
    pub total: usize,
    /// False when `total` is a lower bound (counting stopped at [`TOTAL_CAP`]).
    pub total_exact: bool,
}

/// Upper bound of any position (longer than every one, all 0xFF).
const END: [u8; 64] = [0xFF; 64];

/// Above this many (category, status, urgency) streams, a category filter
/// reads the (status, urgency) streams and checks each entry's category
/// instead: each stream costs a seek, and a broad prefix ("02") names a
/// hundred leaf categories.
const MAX_CATEGORY_STREAMS: usize = 48;

/// How a filter reads the index: the column family, its ranges (one per
/// stream) and whether entries must be checked against the category prefix.
struct Streams {
    cf: &'static str,
    ranges: Vec<crate::store::IndexRange>,
    check_category: bool,
}

/// The streams a filter reads. `exact`: one stream per category (as the
/// stream counts are kept), however many.
fn streams(store: &Store, f: &Filter, now: u64, after: Option<&Cursor>, exact: bool) -> Result<Streams> {
    let owner = f.owner.map(|o| o.as_u64()).unwrap_or(index::EVERY);
    let urgencies: Vec<Urgency> = match f.urgency {
        Some(u) => vec![u],
        None => index::URGENCIES.to_vec(),
    };
    let now_be = now.to_be_bytes().to_vec();
    let mut lo = match f.overdue {
        Some(false) => now_be.clone(),
        _ => Vec::new(),
    };
    if let Some(a) = after
        && a.0 > lo
    {
        lo = a.0.clone();
    }
    let hi = if f.overdue == Some(true) { now_be } else { END.to_vec() };
    let plain = |check_category: bool| {
        let mut ranges = Vec::new();
        for st in &f.statuses {
            for u in &urgencies {
                ranges.push((index::queue_prefix(owner, *st, *u), lo.clone(), hi.clone()));
            }
        }
        Streams { cf: CF_QUEUE, ranges, check_category }
    };
    if f.category.is_empty() {
        return Ok(plain(false));
    }
    let cats = categories(store, owner, &f.category)?;
    if !exact && cats.len() * f.statuses.len() * urgencies.len() > MAX_CATEGORY_STREAMS {
        return Ok(plain(true));
    }
    let mut ranges = Vec::new();
    for c8 in cats {
        for st in &f.statuses {
            for u in &urgencies {
                ranges.push((index::queue_cat_prefix(owner, &c8, *st, *u), lo.clone(), hi.clone()));
            }
        }
    }
    Ok(Streams { cf: CF_QUEUE_CAT, ranges, check_category: false })
}

/// The categories starting with `prefix` that `owner` has cases in: one
/// seek per category.
fn categories(store: &Store, owner: u64, prefix: &str) -> Result<Vec<[u8; 8]>> {
    let base = owner.to_be_bytes();
    let mut out: Vec<[u8; 8]> = Vec::new();
    let mut from = [base.as_slice(), prefix.as_bytes()].concat();
    let to = [base.as_slice(), &[0xFF; 9]].concat();
    loop {
        let mut found = None;
        store.index_scan(CF_QUEUE_CAT, &from, &to, |k, _| {
            found = k.get(8..16).and_then(|c| <[u8; 8]>::try_from(c).ok());
            false
        })?;
        match found {
            Some(c8) if index::cat_of(&c8).starts_with(prefix) => {
                out.push(c8);
                from = [base.as_slice(), &c8, &[0xFF]].concat();
            }
            _ => return Ok(out),
        }
    }
}

/// Calls `f(case, position)` on the cases a filter selects, in list order,
/// after `after`, until it returns false. Reads index entries only.
fn walk(store: &Store, filter: &Filter, policy: &Policy, now: u64, after: Option<&Cursor>, mut f: impl FnMut(RecordId, &[u8]) -> bool) -> Result<()> {
    let percent = policy.deadlines.due_soon_percent;
    if let Some((unit, which)) = filter.clock {
        return walk_clocks(store, filter, unit, which, now, after, f);
    }
    if filter.waiting_calendar || filter.overruled.is_some() {
        let ids = match filter.overruled {
            Some(unit) => store.overruled_cases(unit)?,
            None => store.waiting_cases()?,
        };
        let mut found: Vec<(Vec<u8>, RecordId)> = Vec::new();
        for id in ids {
            if let Some(c) = store.case_summary(&id)?
                && filter.matches(policy, &c, now)
            {
                found.push((index::position(&c), id));
            }
        }
        found.sort();
        for (pos, id) in found {
            if after.is_none_or(|a| pos > a.0) && !f(id, &pos) {
                break;
            }
        }
        return Ok(());
    }
    let Streams { cf, ranges, check_category } = streams(store, filter, now, after, false)?;
    store.index_merge(cf, &ranges, |_, rest, value| {
        if after.is_some_and(|a| rest <= a.0.as_slice()) {
            return true;
        }
        if let Some((me, ws)) = &filter.windows
            && !index::Entry::decode(value).is_some_and(|e| e.in_windows(*me, filter.owner == Some(*me), ws))
        {
            return true;
        }
        if check_category && !index::Entry::category_of(value).is_some_and(|c| c.starts_with(filter.category.as_bytes())) {
            return true;
        }
        if filter.due_soon && !index::Entry::decode(value).is_some_and(|e| e.is_due_soon(now, percent)) {
            return true;
        }
        match rest.get(16..48).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(id) => f(RecordId(id), rest),
            None => true,
        }
    })
}

/// The "my work" view: running clocks of `unit` by due time.
fn walk_clocks(store: &Store, filter: &Filter, unit: Option<DivisionCode>, which: ClockFilter, now: u64, after: Option<&Cursor>, mut f: impl FnMut(RecordId, &[u8]) -> bool) -> Result<()> {
    // Every unit's clocks are filed under [`index::EVERY`] too.
    let prefix = unit.map_or(index::EVERY, DivisionCode::as_u64).to_be_bytes().to_vec();
    let lo = after.map(|a| a.0.clone()).unwrap_or_default();
    let hi = if filter.overdue == Some(true) { now.to_be_bytes().to_vec() } else { END.to_vec() };
    store.index_merge(crate::store::CF_CLOCKS, &[(prefix.clone(), lo, hi)], |_, rest, value| {
        if after.is_some_and(|a| rest <= a.0.as_slice()) {
            return true;
        }
        let key = [prefix.as_slice(), rest].concat();
        let Some(e) = index::ClockEntry::decode(&key, value) else { return true };
        let keep = which.admits(e.kind)
            && (which != ClockFilter::Any || e.first)
            && filter.urgency.is_none_or(|u| index::URGENCIES.get(e.urgency as usize) == Some(&u))
            && e.category.starts_with(&filter.category)
            && filter.overdue.is_none_or(|o| (now > e.due_ms) == o);
        if !keep {
            return true;
        }
        // A window's view of the clocks: only its cases; and a case whose
        // center has several 协办 clocks (its windows) once, at the earliest
        // (read from the summary; the clocks of one center are few).
        let several = e.kind == DeadlineKind::Assistance;
        if filter.windows.is_some() || several {
            let Ok(Some(c)) = store.case_summary(&e.case) else { return true };
            let earliest = match &filter.windows {
                // A window's 协办 clock: its own windows' requests only.
                Some((me, ws)) if several => c.assists_owed.iter().filter(|(_, u, w, _)| u == me && w.as_ref().is_some_and(|w| ws.contains(w))).filter_map(|x| x.3).min(),
                Some((me, ws)) if !c.in_windows(*me, ws) => return true,
                _ => c.running.iter().filter(|r| r.kind == e.kind && (e.unit == index::EVERY || r.unit.as_u64() == e.unit)).map(|r| r.due_ms).min(),
            };
            if several && earliest != Some(e.due_ms) {
                return true;
            }
        }
        f(e.case, rest)
    })
}

/// Counts the cases a filter selects: from the stream counts when no
/// clock-dependent selection applies, else by walking (up to [`TOTAL_CAP`]).
fn count(store: &Store, filter: &Filter, policy: &Policy, now: u64) -> Result<(usize, bool)> {
    let from_counts = filter.clock.is_none() && !filter.waiting_calendar && filter.overruled.is_none() && !filter.due_soon && filter.overdue.is_none() && filter.windows.is_none();
    if from_counts {
        let Streams { cf, ranges, .. } = streams(store, filter, now, None, true)?;
        let tag: &[u8] = if cf == CF_QUEUE { b"q" } else { b"c" };
        let keys: Vec<Vec<u8>> = ranges.iter().map(|(prefix, _, _)| [tag, prefix.as_slice()].concat()).collect();
        let n: i64 = store.index_counts(&keys)?.into_iter().sum();
        return Ok((n.max(0) as usize, true));
    }
    let mut n = 0;
    walk(store, filter, policy, now, None, |_, _| {
        n += 1;
        n < TOTAL_CAP
    })?;
    Ok((n, n < TOTAL_CAP))
}

/// The page of at most `limit` cases after `after`.
pub fn page(store: &Store, filter: &Filter, policy: &Policy, now: u64, after: Option<&Cursor>, limit: usize) -> Result<Page> {
    let mut picked: Vec<(RecordId, Vec<u8>)> = Vec::with_capacity(limit.min(1000) + 1);
    walk(store, filter, policy, now, after, |id, pos| {
        picked.push((id, pos.to_vec()));
        picked.len() <= limit
    })?;
    let more = picked.len() > limit;
    picked.truncate(limit);
    let next = if more { picked.last().map(|(_, pos)| Cursor(pos.clone())) } else { None };
    let mut cases = Vec::with_capacity(picked.len());
    for (id, _) in &picked {
        if let Some(c) = store.case_summary(id)? {
            cases.push(c);
        }
    }
    let (total, total_exact) = count(store, filter, policy, now)?;
    Ok(Page { cases, next, total, total_exact })
}

/// Calls `f` on every case the filter selects, in list order, until `f`
/// returns false (exports).
pub fn scan(store: &Store, filter: &Filter, policy: &Policy, now: u64, mut f: impl FnMut(CaseSummary) -> bool) -> Result<()> {
    let mut err = None;
    walk(store, filter, policy, now, None, |id, _| match store.case_summary(&id) {
        Ok(Some(c)) => f(c),
        Ok(None) => true,
        Err(e) => {
            err = Some(e);
            false
        }
    })?;
    err.map_or(Ok(()), Err)
}
