//! Derived indexes kept in the same write batch as the case summaries they
//! follow, so every interactive read and every worker costs what it
//! returns, not what the node holds. Key layouts (all integers big-endian;
//! `cat8` is the category code padded with zero bytes to 8; owner or unit 0
//! stands for "every owner"):
//!
//! | cf | key | value |
//! |---|---|---|
//! | `queue` | owner ‖ status ‖ urgency ‖ due ‖ filed ‖ case | [`Entry`] |
//! | `queue_cat` | owner ‖ cat8 ‖ status ‖ urgency ‖ due ‖ filed ‖ case | [`Entry`] |
//! | `counts` | `q` owner ‖ status ‖ urgency, `c` owner ‖ cat8 ‖ status ‖ urgency, `g` grade (open cases) | cases (merge) |
//! | `clocks` | unit ‖ due ‖ case ‖ kind | [`ClockEntry`] |
//! | `urgent` | case | () — open urgent cases |
//! | `repeats` | contact ‖ cat8 ‖ filed ‖ case | filing unit ‖ channel |
//! | `repeat_marks` | as `repeats` | () — the case repeats an earlier one |
//! | `repeat_dirty` | contact ‖ cat8 | () — marks to recompute |
//! | `contacts` | keyed hash of a phone or ID number (16) ‖ ¬filed ‖ case | () |
//! | `words` | token ‖ 0 ‖ ¬filed ‖ case | () |
//!
//! A case's due is its next running clock's due time (`u64::MAX` when no
//! clock runs), so within one (owner, status, urgency) the keys are in list
//! order and "overdue" is a key range. Repeat marks need the other cases
//! of the same complainant and category: they are settled after each write
//! from the committed state ([`crate::store::Store::commit`]), with the
//! groups to settle recorded in the batch itself, so a crash in between
//! loses nothing (start-up settles what is left).

use zongzhi_protocol::case::{SuperviseGrade, Urgency};
use zongzhi_protocol::workflow::{DeadlineKind, Status};
use zongzhi_protocol::{DivisionCode, RecordId};

use crate::summary::CaseSummary;

/// Owner (or unit) code under which every case is indexed as well.
pub const EVERY: u64 = 0;

pub fn cat8(category: &str) -> [u8; 8] {
    let mut c = [0u8; 8];
    for (d, s) in c.iter_mut().zip(category.bytes()) {
        *d = s;
    }
    c
}

pub fn cat_of(c8: &[u8]) -> String {
    String::from_utf8_lossy(c8).trim_end_matches('\0').to_string()
}

fn urgency_byte(u: Urgency) -> u8 {
    match u {
        Urgency::Normal => 0,
        Urgency::Urgent => 1,
    }
}

pub const URGENCIES: [Urgency; 2] = [Urgency::Normal, Urgency::Urgent];

/// The supervision grade an open case is counted under in the `g` counts
/// (none for a case without one, or closed).
pub fn open_grade(s: &CaseSummary) -> Option<SuperviseGrade> {
    s.supervision.filter(|_| s.status.is_open())
}

/// The `counts` key of the open cases at supervision grade `grade`: `g` ‖
/// the grade's position in [`SuperviseGrade::ALL`].
pub fn grade_count_key(grade: SuperviseGrade) -> Vec<u8> {
    let i = SuperviseGrade::ALL.iter().position(|g| *g == grade).unwrap_or(0);
    vec![b'g', i as u8]
}

/// Meta key set once the `g` counts cover every case of the store: a store
/// written before they existed gets them from one pass at start-up
/// ([`backfill_grade_counts`]); `reindex` rebuilds them with the rest.
pub const GRADE_COUNTS: &str = "grade_counts";

/// Counts the open cases by supervision grade once, for a store written
/// before the `g` counts existed; a no-op when they do. Runs before the
/// writer starts (start-up), so nothing changes a case meanwhile.
pub fn backfill_grade_counts(store: &crate::store::Store, policy: &zongzhi_protocol::Policy) -> crate::store::Result<()> {
    if store.meta_get(GRADE_COUNTS)?.is_some() {
        return Ok(());
    }
    let filter = crate::queue::Filter {
        owner: None,
        statuses: Status::ALL.iter().copied().filter(|s| s.is_open()).collect(),
        urgency: None,
        category: String::new(),
        overdue: None,
        due_soon: false,
        waiting_calendar: false,
        overruled: None,
        clock: None,
        windows: None,
    };
    let mut counts = vec![0i64; SuperviseGrade::ALL.len()];
    crate::queue::scan(store, &filter, policy, 0, |c| {
        if let Some(n) = open_grade(&c).and_then(|g| SuperviseGrade::ALL.iter().position(|x| *x == g)).and_then(|i| counts.get_mut(i)) {
            *n += 1;
        }
        true
    })?;
    let mut b = store.batch();
    for (g, n) in SuperviseGrade::ALL.iter().zip(counts) {
        if n != 0 {
            b.count_grade(*g, n);
        }
    }
    b.put_meta(GRADE_COUNTS, &[1]);
    store.commit(b)?;
    Ok(())
}

/// The list position of a case: due ‖ filed ‖ case (48 bytes).
pub fn position(s: &CaseSummary) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.extend_from_slice(&s.next_due_ms.unwrap_or(u64::MAX).to_be_bytes());
    k.extend_from_slice(&s.filed_ms.to_be_bytes());
    k.extend_from_slice(&s.id.0);
    k
}

/// The prefix of one queue stream.
pub fn queue_prefix(owner: u64, status: Status, urgency: Urgency) -> Vec<u8> {
    let mut k = owner.to_be_bytes().to_vec();
    k.push(status as u8);
    k.push(urgency_byte(urgency));
    k
}

/// The prefix of one queue stream of a category.
pub fn queue_cat_prefix(owner: u64, c8: &[u8; 8], status: Status, urgency: Urgency) -> Vec<u8> {
    let mut k = owner.to_be_bytes().to_vec();
    k.extend_from_slice(c8);
    k.push(status as u8);
    k.push(urgency_byte(urgency));
    k
}

/// What a queue entry carries, so filters run without reading summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub category: String,
    pub waiting: bool,
    /// Running clocks: (started, due).
    pub clocks: Vec<(u64, u64)>,
    /// The department window the case is at, and the windows (of their
    /// centers) asked to help (format 4): a window account's queue.
    pub window: Option<String>,
    pub helper_windows: Vec<(DivisionCode, String)>,
}

/// Appends a short string (at most 255 bytes) with its length.
fn put_short(v: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    v.push(b.len() as u8);
    v.extend_from_slice(b);
}

fn short_at(v: &[u8], at: usize) -> Option<(String, usize)> {
    let n = *v.get(at)? as usize;
    Some((String::from_utf8(v.get(at + 1..at + 1 + n)?.to_vec()).ok()?, at + 1 + n))
}

impl Entry {
    pub fn of(s: &CaseSummary) -> Entry {
        Entry {
            category: s.category.clone(),
            waiting: !s.waiting.is_empty(),
            clocks: s.running.iter().map(|r| (r.started_ms, r.due_ms)).collect(),
            window: s.window.clone(),
            helper_windows: s.helper_windows.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.waiting as u8, self.category.len().min(255) as u8];
        v.extend_from_slice(&self.category.as_bytes()[..self.category.len().min(255)]);
        v.push(self.clocks.len().min(255) as u8);
        for (s, d) in self.clocks.iter().take(255) {
            v.extend_from_slice(&s.to_be_bytes());
            v.extend_from_slice(&d.to_be_bytes());
        }
        // Appended (an entry written before ends here: no window).
        put_short(&mut v, self.window.as_deref().unwrap_or_default());
        v.push(self.helper_windows.len().min(255) as u8);
        for (unit, w) in self.helper_windows.iter().take(255) {
            v.extend_from_slice(&unit.as_u64().to_be_bytes());
            put_short(&mut v, w);
        }
        v
    }

    pub fn decode(v: &[u8]) -> Option<Entry> {
        let waiting = *v.first()? != 0;
        let n = *v.get(1)? as usize;
        let category = String::from_utf8(v.get(2..2 + n)?.to_vec()).ok()?;
        let m = *v.get(2 + n)? as usize;
        let mut clocks = Vec::with_capacity(m);
        for i in 0..m {
            let at = 3 + n + 16 * i;
            clocks.push((u64_at(v, at)?, u64_at(v, at + 8)?));
        }
        let mut at = 3 + n + 16 * m;
        let mut window = None;
        let mut helper_windows = Vec::new();
        if at < v.len() {
            let (w, next) = short_at(v, at)?;
            window = (!w.is_empty()).then_some(w);
            let k = *v.get(next)? as usize;
            at = next + 1;
            for _ in 0..k {
                let unit = DivisionCode::new(u64_at(v, at)?).ok()?;
                let (w, next) = short_at(v, at + 8)?;
                helper_windows.push((unit, w));
                at = next;
            }
        }
        Some(Entry { category, waiting, clocks, window, helper_windows })
    }

    /// Whether the case is one of `windows`' of center `me`: at one of
    /// them, or one of them asked to help.
    pub fn in_windows(&self, me: DivisionCode, owner_is_me: bool, windows: &[String]) -> bool {
        (owner_is_me && self.window.as_ref().is_some_and(|w| windows.contains(w))) || self.helper_windows.iter().any(|(u, w)| *u == me && windows.contains(w))
    }

    /// The category of an encoded entry, without decoding the rest.
    pub fn category_of(v: &[u8]) -> Option<&[u8]> {
        let n = *v.get(1)? as usize;
        v.get(2..2 + n)
    }

    pub fn is_overdue(&self, now: u64) -> bool {
        self.clocks.iter().any(|(_, due)| now > *due)
    }

    /// As [`CaseSummary::is_due_soon`].
    pub fn is_due_soon(&self, now: u64, percent: u8) -> bool {
        !self.is_overdue(now) && self.clocks.iter().any(|(start, due)| crate::summary::has_used(*start, *due, now, percent))
    }
}

pub fn u64_at(v: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(v: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

/// A running clock as the `clocks` index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockEntry {
    pub unit: u64,
    pub due_ms: u64,
    pub case: RecordId,
    pub kind: DeadlineKind,
    pub owner: DivisionCode,
    pub returns: u32,
    pub units_handled: u32,
    pub status: u8,
    pub urgency: u8,
    /// The earliest (due, kind) of the case's running clocks under this key's unit.
    pub first: bool,
    pub channel: u8,
    pub started_ms: u64,
    pub category: String,
}

fn kind_byte(k: DeadlineKind) -> u8 {
    DeadlineKind::ALL.iter().position(|x| *x == k).unwrap_or(0) as u8
}

impl ClockEntry {
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(49);
        k.extend_from_slice(&self.unit.to_be_bytes());
        k.extend_from_slice(&self.due_ms.to_be_bytes());
        k.extend_from_slice(&self.case.0);
        k.push(kind_byte(self.kind));
        k
    }

    pub fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.category.len());
        v.extend_from_slice(&self.owner.as_u64().to_be_bytes());
        v.extend_from_slice(&self.returns.to_be_bytes());
        v.extend_from_slice(&self.units_handled.to_be_bytes());
        v.extend_from_slice(&[self.status, self.urgency, self.first as u8, self.channel]);
        v.extend_from_slice(&self.started_ms.to_be_bytes());
        v.extend_from_slice(self.category.as_bytes());
        v
    }

    pub fn decode(k: &[u8], v: &[u8]) -> Option<ClockEntry> {
        Some(ClockEntry {
            unit: u64_at(k, 0)?,
            due_ms: u64_at(k, 8)?,
            case: RecordId(k.get(16..48)?.try_into().ok()?),
            kind: *DeadlineKind::ALL.get(*k.get(48)? as usize)?,
            owner: DivisionCode::new(u64_at(v, 0)?).ok()?,
            returns: u32_at(v, 8)?,
            units_handled: u32_at(v, 12)?,
            status: *v.get(16)?,
            urgency: *v.get(17)?,
            first: *v.get(18)? != 0,
            channel: *v.get(19)?,
            started_ms: u64_at(v, 20)?,
            category: String::from_utf8(v.get(28..)?.to_vec()).ok()?,
        })
    }

    pub fn status(&self) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| *s as u8 == self.status)
    }
}

/// The clock entries of a summary: each running clock under its unit and
/// under [`EVERY`], whatever the status (a feedback clock runs after 已办结).
pub fn clock_entries(s: &CaseSummary) -> Vec<ClockEntry> {
    let mut out = Vec::with_capacity(2 * s.running.len());
    let min_of = |unit: Option<DivisionCode>| s.running.iter().filter(|r| unit.is_none_or(|u| r.unit == u)).map(|r| (r.due_ms, kind_byte(r.kind))).min();
    let all_first = min_of(None);
    for r in &s.running {
        for (unit, first) in [(r.unit.as_u64(), min_of(Some(r.unit))), (EVERY, all_first)] {
            out.push(ClockEntry {
                unit,
                due_ms: r.due_ms,
                case: s.id,
                kind: r.kind,
                owner: s.owner,
                returns: s.returns,
                units_handled: s.units_handled,
                status: s.status as u8,
                urgency: urgency_byte(s.urgency),
                first: first == Some((r.due_ms, kind_byte(r.kind))),
                channel: zongzhi_protocol::kpi::channel_index(s.channel),
                started_ms: r.started_ms,
                category: s.category.clone(),
            });
        }
    }
    out
}

/// Calls `f` on every running clock due before `now`,
/// earliest first, until it returns false.
pub fn overdue_clocks(store: &crate::store::Store, now: u64, f: impl FnMut(ClockEntry) -> bool) -> crate::store::Result<()> {
    clocks_due(store, EVERY, 0, now, f)
}

/// Calls `f` on the running clocks under `unit` ([`EVERY`]
/// for all) with a due time in `[from, to)`, in due order.
pub fn clocks_due(store: &crate::store::Store, unit: u64, from: u64, to: u64, mut f: impl FnMut(ClockEntry) -> bool) -> crate::store::Result<()> {
    let lo = [unit.to_be_bytes(), from.to_be_bytes()].concat();
    let hi = [unit.to_be_bytes(), to.to_be_bytes()].concat();
    store.index_scan(crate::store::CF_CLOCKS, &lo, &hi, |k, v| match ClockEntry::decode(k, v) {
        Some(e) => f(e),
        None => true,
    })
}

/// The `repeats` key of a case, if it counts for repeats (it has a
/// complainant and is not void).
pub fn repeat_key(s: &CaseSummary) -> Option<Vec<u8>> {
    let person = s.person?;
    if s.status == Status::Void {
        return None;
    }
    let mut k = Vec::with_capacity(80);
    k.extend_from_slice(&person);
    k.extend_from_slice(&cat8(&s.category));
    k.extend_from_slice(&s.filed_ms.to_be_bytes());
    k.extend_from_slice(&s.id.0);
    Some(k)
}

/// Who a case's complainant is for repeats and duplicates: the bucket of
/// their fingerprint (phone, else ID number), or without one the hash of
/// the whole contact.
pub fn person_key(fingerprint: Option<zongzhi_protocol::case::Fingerprint>, contact: Option<zongzhi_protocol::BlobHash>) -> Option<[u8; 32]> {
    match fingerprint.and_then(|f| f.group()) {
        Some(g) => Some(blake3::derive_key("zongzhi repeat person v1", &g.to_be_bytes())),
        None => contact.map(|h| h.0),
    }
}

/// The repeat index's person of a contact, by its fingerprint under the
/// city root `root` (`None` without a phone or ID number).
pub fn person_of_contact(root: &zongzhi_protocol::NodeId, contact: &zongzhi_protocol::case::Contact) -> Option<[u8; 32]> {
    let key = zongzhi_protocol::case::fingerprint_key(root.as_bytes());
    person_key(zongzhi_protocol::case::Fingerprint::of(&key, contact), None)
}

/// The repeat index's prefix of a person and category.
pub fn repeat_group(person: &[u8; 32], category: &str) -> Vec<u8> {
    let mut k = person.to_vec();
    k.extend_from_slice(&cat8(category));
    k
}

/// Length of a repeat group's key (person ‖ cat8).
pub const REPEAT_GROUP: usize = 40;

pub fn repeat_value(s: &CaseSummary) -> Vec<u8> {
    let mut v = s.filed_by.as_u64().to_be_bytes().to_vec();
    v.push(zongzhi_protocol::kpi::channel_index(s.channel));
    v
}

/// Words of a text for the `words` index: every pair of adjacent CJK
/// characters (a lone one on its own) and every run of ASCII letters and
/// digits, lower-cased; each at most once.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for_each_token(text, |t| {
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    });
    out
}

/// The tokens of [`tokens`] in the same order, repeats included, without
/// allocating one string per token (the write path files about sixty per
/// filing).
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut emit = |t: &str| {
        if !t.is_empty() && t.len() <= 48 {
            f(t);
        }
    };
    let mut pair = [0u8; 8];
    let mut prev: Option<char> = None;
    let mut run = 0usize;
    let mut word = String::new();
    let end_run = |prev: &mut Option<char>, run: &mut usize, emit: &mut dyn FnMut(&str)| {
        if *run == 1
            && let Some(p) = *prev
        {
            emit(p.encode_utf8(&mut [0u8; 4]));
        }
        *prev = None;
        *run = 0;
    };
    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            end_run(&mut prev, &mut run, &mut emit);
            word.push(ch.to_ascii_lowercase());
            continue;
        }
        if !word.is_empty() {
            emit(&word);
            word.clear();
        }
        if ch.is_alphanumeric() {
            if let Some(p) = prev {
                let a = p.encode_utf8(&mut pair[..4]).len();
                let b = ch.encode_utf8(&mut pair[a..]).len();
                emit(std::str::from_utf8(&pair[..a + b]).unwrap_or_default());
            }
            prev = Some(ch);
            run += 1;
        } else {
            end_run(&mut prev, &mut run, &mut emit);
        }
    }
    end_run(&mut prev, &mut run, &mut emit);
    if !word.is_empty() {
        emit(&word);
    }
}

/// ¬filed ‖ case: newest first.
pub fn search_suffix(filed_ms: u64, case: &RecordId) -> Vec<u8> {
    let mut k = (u64::MAX - filed_ms).to_be_bytes().to_vec();
    k.extend_from_slice(&case.0);
    k
}

/// The prefix of a token's postings in `words`.
pub fn word_prefix(token: &str) -> Vec<u8> {
    let mut k = token.as_bytes().to_vec();
    k.push(0);
    k
}

/// The time bucket of a filing in the search index (2^31 ms, about 25
/// days), newest first: `u32::MAX - filed_ms / 2^31`. Suffixes ascending
/// (newest filing first) have buckets ascending.
pub fn word_bucket(filed_ms: u64) -> u32 {
    u32::MAX - u32::try_from(filed_ms >> 31).unwrap_or(u32::MAX)
}

/// The bucket of a search suffix (¬filed ‖ case).
pub fn suffix_bucket(suffix: &[u8]) -> Option<u32> {
    let not_filed = u64::from_be_bytes(suffix.get(..8)?.try_into().ok()?);
    Some(word_bucket(u64::MAX - not_filed))
}

/// A segment of a token's postings: token ‖ 0 ‖ bucket (u32 BE) ‖ the
/// segment's first suffix → the suffixes (40 bytes each, ascending) of
/// the cases one write batch filed in that bucket with that token. One
/// key per token and batch instead of one per token and case: a filing's
/// title and content hold about sixty tokens.
pub fn word_segment_key(token: &[u8], bucket: u32, first: &[u8; 40]) -> Vec<u8> {
    let mut k = Vec::with_capacity(token.len() + 45);
    k.extend_from_slice(token);
    k.push(0);
    k.extend_from_slice(&bucket.to_be_bytes());
    k.extend_from_slice(first);
    k
}

/// Phone and ID numbers as the contact index and search file them: the
/// protocol's one normalisation, which the fingerprint uses too.
pub use zongzhi_protocol::case::{normalize_id_number, normalize_phone};

/// Groups of one complainant and category ([`repeat_key`]) in `scope`
/// with a case filed in `months`, where the cases were filed at several
/// centers (`several_centers`), or one was filed above another's center
/// while that one was open (越级重复, `over_open_case`). Only groups with
/// a repeat within the policy's window (a `repeat_marks` entry) are read,
/// so the cost follows the repeats, not every case. Cases oldest first;
/// at most `limit` groups.
pub fn repeat_groups(store: &crate::store::Store, scope: zongzhi_protocol::DivisionCode, months: &[u32], limit: usize) -> crate::store::Result<Vec<(&'static str, Vec<CaseSummary>)>> {
    let mut groups: Vec<Vec<u8>> = Vec::new();
    store.scan_repeat_groups(|g| {
        groups.push(g.to_vec());
        true
    })?;
    let mut out = Vec::new();
    for g in groups {
        if out.len() >= limit {
            break;
        }
        let inside: Vec<_> = store.cases_of_group(&g)?.into_iter().filter(|m| scope.contains(m.2)).collect();
        if inside.len() < 2 || !inside.iter().any(|m| zongzhi_protocol::kpi::month_of(m.0).is_some_and(|mo| months.contains(&mo))) {
            continue;
        }
        let mut cases = Vec::new();
        for (_, id, _) in &inside {
            if let Some(c) = store.case_summary(id)? {
                cases.push(c);
            }
        }
        // Filed above a center whose case of this person was still open.
        let over_open = cases.iter().any(|hi| cases.iter().any(|lo| hi.filed_by != lo.filed_by && hi.filed_by.is_ancestor_of(lo.filed_by) && lo.filed_ms < hi.filed_ms && lo.status.is_open()));
        let centers: std::collections::BTreeSet<_> = cases.iter().map(|c| c.filed_by).collect();
        if over_open {
            out.push(("over_open_case", cases));
        } else if centers.len() > 1 {
            out.push(("several_centers", cases));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bigrams_and_words() {
        assert_eq!(tokens("噪音 纠纷"), vec!["噪音", "纠纷"]);
        assert_eq!(tokens("楼上噪音"), vec!["楼上", "上噪", "噪音"]);
        assert_eq!(tokens("A栋302室"), vec!["a", "栋", "302", "室"]);
        assert_eq!(tokens("噪音噪音"), vec!["噪音", "音噪"]);
        assert!(tokens("，。 ").is_empty());
    }

    #[test]
    fn phones_and_id_numbers_normalize() {
        assert_eq!(normalize_phone("+86 138-0000-1234").as_deref(), Some("13800001234"));
        assert_eq!(normalize_phone("13800001234").as_deref(), Some("13800001234"));
        assert_eq!(normalize_phone("12"), None);
        assert_eq!(normalize_id_number("33010619900101123x").as_deref(), Some("33010619900101123X"));
        assert_eq!(normalize_id_number("3301061990010112X3"), None);
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry { category: "0202".into(), waiting: true, clocks: vec![(1, 2), (3, 4)], window: None, helper_windows: vec![] };
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        let w = Entry { window: Some("justice".into()), helper_windows: vec![("330106010000".parse().unwrap(), "police".into())], ..e.clone() };
        assert_eq!(Entry::decode(&w.encode()), Some(w));
        // An entry written before the windows were appended reads as none.
        let old = &e.encode()[..3 + 4 + 32];
        assert_eq!(Entry::decode(old), Some(e));
    }
}
