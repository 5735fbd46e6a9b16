//! [`Batch`]: one atomic change, built with typed puts (records, case
//! summaries with their indexes and statistics, blobs, accounts …) and
//! written by [`Store::commit`](super::Store::commit).

use serde::Serialize;
use zongzhi_protocol::case::Urgency;
use zongzhi_protocol::{DivisionCode, NodeId, RecordId, Status};

use super::keys::*;
use super::rocks::WriteBatch;
use super::{Result, Store};
use crate::summary::CaseSummary;

/// A put (with its value's place in the batch's buffer) or a delete.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) cf: &'static str,
    pub(super) key: (usize, usize),
    pub(super) value: Option<(usize, usize)>,
}

/// A write batch's search postings of one time bucket: token → the
/// suffixes (¬filed ‖ case) of the cases holding it.
pub(super) type WordPostings = std::collections::BTreeMap<Vec<u8>, Vec<[u8; 40]>>;

/// One atomic change. Typed: callers never see keys.
pub struct Batch<'a> {
    pub(super) store: &'a Store,
    pub(super) inner: WriteBatch,
    /// Puts and deletes in the order made, their keys and values in `buf`;
    /// written sorted by column family and key at commit (see
    /// [`Batch::seal`]).
    pub(super) ops: Vec<Op>,
    pub(super) buf: Vec<u8>,
    /// Statistics deltas, summed per key until the batch is written.
    pub(super) stats: std::collections::HashMap<Vec<u8>, zongzhi_protocol::kpi::Counts>,
    /// Case count deltas of the list streams, summed per key.
    pub(super) counts: std::collections::HashMap<Vec<u8>, zongzhi_protocol::kpi::Counts>,
    /// Blobs put in this batch: hash → place of the bytes in `buf`.
    pub(super) blobs: std::collections::HashMap<[u8; 32], (usize, usize)>,
    /// Complainant groups whose repeat marks to settle after the write.
    pub(super) repeat_groups: std::collections::BTreeMap<Vec<u8>, std::collections::BTreeSet<u64>>,
    /// Search postings of cases filed in this batch, per (token, time
    /// bucket): written as one key each when the batch is sealed
    /// ([`crate::index::word_segment_key`]), not one key per token and case.
    pub(super) words: Vec<(u32, WordPostings)>,
    /// Case numbers given to a case in this batch.
    pub(super) numbers: std::collections::HashMap<String, RecordId>,
    /// (number, the case holding it, another case carrying it): two cases
    /// with one number, found in this batch.
    pub number_clashes: Vec<(String, RecordId, RecordId)>,
}

impl Batch<'_> {
    pub(super) fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.push(cf, key, Some(value));
    }

    pub(super) fn delete(&mut self, cf: &'static str, key: &[u8]) {
        self.push(cf, key, None);
    }

    fn push(&mut self, cf: &'static str, key: &[u8], value: Option<&[u8]>) {
        let key_at = self.buf.len();
        self.buf.extend_from_slice(key);
        let value = value.map(|v| {
            let at = self.buf.len();
            self.buf.extend_from_slice(v);
            (at, v.len())
        });
        self.ops.push(Op { cf, key: (key_at, key.len()), value });
    }

    pub fn put_meta(&mut self, key: &str, value: &[u8]) {
        self.put(CF_META, key.as_bytes(), value);
    }

    pub fn delete_meta(&mut self, key: &str) {
        self.delete(CF_META, key.as_bytes());
    }

    /// Stores a record: its bytes, its feed position and its chain entry.
    /// The feed head in `meta` is the caller's to write, once per batch.
    pub fn put_record(&mut self, id: &RecordId, bytes: &[u8], feed_seq: u64, author: &NodeId, author_seq: u64) {
        self.put(CF_RECORDS, &id.0, &feed_seq.to_be_bytes());
        self.put(CF_FEED, &feed_seq.to_be_bytes(), &feed_value(id, bytes));
        let mut ck = author.as_bytes().to_vec();
        ck.extend_from_slice(&author_seq.to_be_bytes());
        self.put(CF_CHAIN, &ck, &id.0);
    }

    pub fn index_case_event(&mut self, case: &RecordId, feed_seq: u64, event: &RecordId) {
        let mut k = case.0.to_vec();
        k.extend_from_slice(&feed_seq.to_be_bytes());
        self.put(CF_CASE_INDEX, &k, &event.0);
    }

    /// Replaces a case's summary and moves its queue entry.
    pub fn put_summary(&mut self, old: Option<&CaseSummary>, new: &CaseSummary) {
        self.put_indexes(old, new);
        self.put(CF_CASE_STATE, &new.id.0, &new.encode());
        if new.needs_policy() {
            self.put(CF_WAITING, &new.id.0, &[]);
        } else if old.is_some_and(CaseSummary::needs_policy) {
            self.delete(CF_WAITING, &new.id.0);
        }
        // The statistics change by what the case now contributes minus what
        // it contributed before, in this same batch.
        let old_facts = old.map(|o| o.facts()).unwrap_or_default();
        let new_facts = new.facts();
        if old_facts != new_facts {
            for (k, d) in crate::stats::deltas(&new.category, new.channel, &old_facts, &new_facts) {
                let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
                for (a, b) in acc.iter_mut().zip(d) {
                    *a += b;
                }
            }
            // The units whose steps on the case were overruled (被覆盖),
            // read from those same facts: unchanged when they are.
            let (was, now) = (old.map(CaseSummary::overruled_units).unwrap_or_default(), new.overruled_units());
            for u in was.difference(&now) {
                self.delete(CF_OVERRULED, &[u.as_u64().to_be_bytes().as_slice(), &new.id.0].concat());
            }
            for u in now.difference(&was) {
                self.put(CF_OVERRULED, &[u.as_u64().to_be_bytes().as_slice(), &new.id.0].concat(), &[]);
            }
        }
        // A case's number is fixed at filing, and no number is issued twice
        // in a division (a re-keyed center continues its predecessor's
        // serials). Should two cases still carry one number, the first held
        // keeps it and the second is a clash the writer raises as an alarm.
        if old.is_none_or(|o| o.number != new.number) {
            let holder = match self.numbers.get(&new.number) {
                Some(id) => Some(*id),
                None => self.store.case_by_number(&new.number).ok().flatten(),
            };
            match holder {
                Some(other) if other != new.id => self.number_clashes.push((new.number.clone(), other, new.id)),
                _ => {
                    self.put(CF_CASE_NUMBERS, new.number.as_bytes(), &new.id.0);
                    self.numbers.insert(new.number.clone(), new.id);
                }
            }
        }
        // A filing voided by a revocation learned later leaves the
        // complainant's phone and ID number (void cases are not filed
        // there, as they are not in the repeat index).
        if new.status == Status::Void
            && let Some(o) = old.filter(|o| o.status != Status::Void)
            && let Some(hash) = o.contact
            && let Some(bytes) = self.blob(&hash.0, true)
        {
            for key in self.contact_keys(&bytes) {
                self.delete(CF_CONTACTS, &[key.as_slice(), &crate::index::search_suffix(o.filed_ms, &o.id)].concat());
            }
        }
    }

    /// Moves a case's entries in the list, clock and repeat indexes.
    fn put_indexes(&mut self, old: Option<&CaseSummary>, new: &CaseSummary) {
        use crate::index;
        let queue_keys = |s: &CaseSummary| {
            let pos = index::position(s);
            let c8 = index::cat8(&s.category);
            [index::EVERY, s.owner.as_u64()]
                .map(|o| ([index::queue_prefix(o, s.status, s.urgency), pos.clone()].concat(), [index::queue_cat_prefix(o, &c8, s.status, s.urgency), pos.clone()].concat()))
        };
        let new_keys = queue_keys(new);
        let entry = index::Entry::of(new).encode();
        if let Some(old) = old {
            let old_keys = queue_keys(old);
            for ((q, c), (nq, nc)) in old_keys.iter().zip(&new_keys) {
                if q != nq {
                    self.delete(CF_QUEUE, q);
                }
                if c != nc {
                    self.delete(CF_QUEUE_CAT, c);
                }
            }
            if (old.owner, old.status, old.urgency, &old.category) != (new.owner, new.status, new.urgency, &new.category) {
                self.count(old, -1);
                self.count(new, 1);
            }
            for e in index::clock_entries(old) {
                self.delete(CF_CLOCKS, &e.key());
            }
        } else {
            self.count(new, 1);
        }
        // Open cases by supervision grade (`/metrics`).
        let (old_g, new_g) = (old.and_then(index::open_grade), index::open_grade(new));
        if old_g != new_g {
            old_g.into_iter().for_each(|g| self.count_grade(g, -1));
            new_g.into_iter().for_each(|g| self.count_grade(g, 1));
        }
        for (q, c) in &new_keys {
            self.put(CF_QUEUE, q, &entry);
            self.put(CF_QUEUE_CAT, c, &entry);
        }
        for e in index::clock_entries(new) {
            self.put(CF_CLOCKS, &e.key(), &e.value());
        }
        let urgent_open = |s: &CaseSummary| s.urgency == Urgency::Urgent && s.status.is_open();
        if urgent_open(new) {
            self.put(CF_URGENT, &new.id.0, &[]);
        } else if old.is_some_and(urgent_open) {
            self.delete(CF_URGENT, &new.id.0);
        }
        let (old_r, new_r) = (old.and_then(index::repeat_key), index::repeat_key(new));
        if old_r != new_r {
            if let Some(k) = &old_r {
                self.delete(CF_REPEATS, k);
                self.mark_dirty(k);
            }
            if let Some(k) = &new_r {
                self.put(CF_REPEATS, k, &index::repeat_value(new));
                self.mark_dirty(k);
            }
        }
    }

    /// Marks the group of repeat key `key` for settling around its filing time.
    fn mark_dirty(&mut self, key: &[u8]) {
        let g = &key[..crate::index::REPEAT_GROUP];
        self.put(CF_REPEAT_DIRTY, g, &[]);
        let t = crate::index::u64_at(key, crate::index::REPEAT_GROUP).unwrap_or(0);
        self.repeat_groups.entry(g.to_vec()).or_default().insert(t);
    }

    /// Adds `n` to the case counts of the streams a case is listed in.
    fn count(&mut self, s: &CaseSummary, n: i64) {
        let c8 = crate::index::cat8(&s.category);
        for o in [crate::index::EVERY, s.owner.as_u64()] {
            let mut c = [0i64; zongzhi_protocol::kpi::COUNTERS];
            c[0] = n;
            let q = [b"q".as_slice(), &crate::index::queue_prefix(o, s.status, s.urgency)].concat();
            let k = [b"c".as_slice(), &crate::index::queue_cat_prefix(o, &c8, s.status, s.urgency)].concat();
            for key in [q, k] {
                let acc = self.counts.entry(key).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
                acc[0] += c[0];
            }
        }
    }

    /// Adds `n` to the count of open cases at supervision grade `grade`
    /// ([`crate::index::grade_count_key`]).
    pub(crate) fn count_grade(&mut self, grade: zongzhi_protocol::case::SuperviseGrade, n: i64) {
        let acc = self.counts.entry(crate::index::grade_count_key(grade)).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
        acc[0] += n;
    }

    /// Sets or clears a repeat mark and moves the repeat counters: the
    /// filing month, the filing unit (its own key and its subtrees'), the
    /// channel and the category, as the statistics key them.
    pub(super) fn repeat_mark(&mut self, key: &[u8], value: &[u8], on: bool) {
        if on {
            self.put(CF_REPEAT_MARKS, key, value);
        } else {
            self.delete(CF_REPEAT_MARKS, key);
        }
        let g = crate::index::REPEAT_GROUP;
        let (Some(filed), Some(unit), Some(&channel)) = (crate::index::u64_at(key, g), crate::index::u64_at(value, 0), value.get(8)) else { return };
        let (Some(month), Ok(unit)) = (zongzhi_protocol::kpi::month_of(filed), DivisionCode::new(unit)) else { return };
        let category = crate::index::cat_of(&key[32..40]);
        let mut d = [0i64; zongzhi_protocol::kpi::COUNTERS];
        d[0] = if on { 1 } else { -1 };
        let mut add = |tag: u8, u: DivisionCode| {
            let k = crate::stats::key(month, crate::stats::REPEAT_TAGS + tag, u.as_u64(), channel, &category);
            let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
            acc[0] += d[0];
            let k = crate::stats::key(month, crate::stats::TOTAL_TAGS + crate::stats::REPEAT_TAGS + tag, u.as_u64(), 0, "");
            let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
            acc[0] += d[0];
        };
        add(crate::stats::OWN, unit);
        for a in unit.lineage() {
            add(crate::stats::subtree_tag(a.level()), a);
        }
    }

    pub fn index_report(&mut self, month: u32, unit: u64, author_seq: u64, id: &RecordId) {
        let mut k = month.to_be_bytes().to_vec();
        k.extend_from_slice(&unit.to_be_bytes());
        k.extend_from_slice(&author_seq.to_be_bytes());
        self.put(CF_REPORTS, &k, &id.0);
    }

    pub fn index_trust(&mut self, feed_seq: u64, id: &RecordId) {
        self.put(CF_TRUST, &feed_seq.to_be_bytes(), &id.0);
    }

    pub fn put_pending(&mut self, id: &RecordId, bytes: &[u8]) {
        self.put(CF_PENDING, &id.0, bytes);
    }

    pub fn delete_pending(&mut self, id: &RecordId) {
        self.delete(CF_PENDING, &id.0);
    }

    pub fn put_cursor(&mut self, peer: &NodeId, direction: u8, epoch: &[u8; 16], upto: u64) {
        let mut k = peer.as_bytes().to_vec();
        k.push(direction);
        let mut v = epoch.to_vec();
        v.extend_from_slice(&upto.to_be_bytes());
        self.put(CF_CURSORS, &k, &v);
    }

    pub fn put_alarm<T: Serialize>(&mut self, seq: u64, alarm: &T) {
        let json = serde_json::to_vec(alarm).unwrap_or_default();
        self.put(CF_ALARMS, &seq.to_be_bytes(), &json);
    }

    pub fn put_blob(&mut self, hash: &[u8; 32], bytes: &[u8]) {
        self.put(CF_BLOBS, hash, bytes);
        if let Some(op) = self.ops.last()
            && let Some(v) = op.value
        {
            self.blobs.insert(*hash, v);
        }
    }

    /// Whether a blob is put in this batch or held in the store already.
    pub fn holds_blob(&self, hash: &[u8; 32]) -> Result<bool> {
        Ok(self.blobs.contains_key(hash) || self.store.has_blob(hash)?)
    }

    /// A blob put in this batch or held in the store.
    fn blob(&self, hash: &[u8; 32], stored: bool) -> Option<Vec<u8>> {
        if let Some((at, n)) = self.blobs.get(hash) {
            return Some(self.buf[*at..*at + *n].to_vec());
        }
        if stored { self.store.blob(hash).ok().flatten() } else { None }
    }

    /// Files a new case under the words of its title and content.
    pub fn index_words(&mut self, case: &RecordId, filed_ms: u64, text: &str) {
        let suffix: [u8; 40] = match crate::index::search_suffix(filed_ms, case).try_into() {
            Ok(s) => s,
            Err(_) => return,
        };
        let bucket = crate::index::word_bucket(filed_ms);
        let at = match self.words.iter().position(|(b, _)| *b == bucket) {
            Some(at) => at,
            None => {
                self.words.push((bucket, Default::default()));
                self.words.len() - 1
            }
        };
        let postings = &mut self.words[at].1;
        // Repeats of a token in one text push the case twice; the flush
        // removes them.
        crate::index::for_each_token(text, |t| match postings.get_mut(t.as_bytes()) {
            Some(v) => v.push(suffix),
            None => {
                postings.insert(t.as_bytes().to_vec(), vec![suffix]);
            }
        });
    }

    /// The batch's search postings as one key per (token, bucket): the
    /// cases' suffixes sorted, keyed by the first (a case is filed in the
    /// index once, when it is new, so no two segments share a first
    /// suffix).
    pub(super) fn flush_words(&mut self) {
        let mut value = Vec::new();
        for (bucket, postings) in std::mem::take(&mut self.words) {
            for (token, mut suffixes) in postings {
                suffixes.sort_unstable();
                suffixes.dedup();
                value.clear();
                suffixes.iter().for_each(|s| value.extend_from_slice(s));
                self.put(CF_WORDS, &crate::index::word_segment_key(&token, bucket, &suffixes[0]), &value);
            }
        }
    }

    /// Files a case under the keyed hashes of its complainant's phone and ID
    /// number, when the contact is in this batch or (`stored`) held already.
    pub fn index_contact(&mut self, s: &CaseSummary, stored: bool) {
        if s.status == Status::Void {
            return;
        }
        let Some(hash) = s.contact else { return };
        let Some(bytes) = self.blob(&hash.0, stored) else { return };
        if zongzhi_protocol::BlobHash::of(&bytes) != hash {
            return;
        }
        self.index_contact_of(&bytes, &[(s.filed_ms, s.id)]);
    }

    /// A contact blob that arrives after its cases (a later batch than
    /// their events): files the stored cases naming it under its phone and
    /// ID number. Cases changed in this batch file themselves.
    pub fn index_late_contact(&mut self, person: &[u8; 32], hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
        let cases = self.store.cases_with_contact(person, hash)?;
        if !cases.is_empty() {
            self.index_contact_of(bytes, &cases);
        }
        Ok(())
    }

    /// The keyed hashes a contact is filed under (phone, ID number).
    fn contact_keys(&self, bytes: &[u8]) -> Vec<[u8; 16]> {
        let Ok(c) = zongzhi_protocol::case::Contact::from_bytes(bytes) else { return Vec::new() };
        [crate::index::normalize_phone(&c.phone), crate::index::normalize_id_number(&c.id_number)].into_iter().flatten().map(|n| self.store.contact_key(&n)).collect()
    }

    fn index_contact_of(&mut self, bytes: &[u8], cases: &[(u64, RecordId)]) {
        let keys = self.contact_keys(bytes);
        for (filed, id) in cases {
            let suffix = crate::index::search_suffix(*filed, id);
            for key in &keys {
                self.put(CF_CONTACTS, &[key.as_slice(), &suffix].concat(), &[]);
            }
        }
    }

    pub fn put_account<T: Serialize>(&mut self, name: &str, account: &T) {
        let json = serde_json::to_vec(account).unwrap_or_default();
        self.put(CF_ACCOUNTS, name.as_bytes(), &json);
    }

    pub fn put_session<T: Serialize>(&mut self, token_hash: &[u8; 32], session: &T) {
        let json = serde_json::to_vec(session).unwrap_or_default();
        self.put(CF_SESSIONS, token_hash, &json);
    }

    pub fn delete_session(&mut self, token_hash: &[u8; 32]) {
        self.delete(CF_SESSIONS, token_hash);
    }

    /// A login audit entry at `at_ms` in `log`; `seq` orders entries of one millisecond.
    pub fn put_login_audit<T: Serialize>(&mut self, log: super::AuditKind, at_ms: u64, seq: u32, entry: &T) {
        let json = serde_json::to_vec(entry).unwrap_or_default();
        self.put(log.cf(), &login_audit_key(at_ms, seq), &json);
    }

    /// Removes the entry of `log` at (`at_ms`, `seq`) (an aggregate moving to its latest time).
    pub fn delete_login_audit_at(&mut self, log: super::AuditKind, at_ms: u64, seq: u32) {
        self.delete(log.cf(), &login_audit_key(at_ms, seq));
    }

    pub(super) fn delete_login_audit(&mut self, log: super::AuditKind, key: &[u8]) {
        self.delete(log.cf(), key);
    }

    /// Lock state kept across restarts: `tag` names the kind of key.
    pub fn put_lock<T: Serialize>(&mut self, tag: u8, key: &str, state: &T) {
        let json = serde_json::to_vec(state).unwrap_or_default();
        self.put(CF_LOCKS, &lock_key(tag, key), &json);
    }

    pub fn delete_lock(&mut self, tag: u8, key: &str) {
        self.delete(CF_LOCKS, &lock_key(tag, key));
    }
}
