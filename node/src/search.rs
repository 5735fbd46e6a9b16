//! Search for operators (`GET /api/search`): by case number, by the
//! complainant's phone or ID number (only where this node holds the
//! contact; the index holds keyed hashes, never the numbers), and by words
//! of the title and content (CJK bigrams and ASCII words). Newest filing
//! first, paged like the case list.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use zongzhi_protocol::RecordId;

use crate::accounts::Role;
use crate::api::{ApiError, ApiResult, AppState, authenticate, summary_json};
use crate::index;
use crate::store::{CF_CONTACTS, CF_WORDS, IdPage, Store};
use crate::summary::CaseSummary;

/// What a query was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Phone,
    IdNumber,
    Words,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Phone => "phone",
            Kind::IdNumber => "id_number",
            Kind::Words => "words",
        }
    }
}

#[derive(Debug)]
pub struct Found {
    pub kind: Kind,
    pub cases: Vec<CaseSummary>,
    /// Opaque position after the last case, when more follow.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("type at least two characters, a case number, a phone or an ID number")]
    TooShort,
    #[error("after must be the `next` value of an earlier page of the same search")]
    BadCursor,
    #[error("searching by phone or ID number needs the operator role")]
    Role,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads a query as a case number, an ID number, a phone or words.
pub fn classify(q: &str) -> Option<Kind> {
    let t = q.trim();
    let digits = t.chars().filter(|c| c.is_ascii_digit()).count();
    let phone_like = t.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
    if t.len() >= 12 && t.as_bytes()[..12].iter().all(u8::is_ascii_digit) && (t.len() == 12 || t.as_bytes()[12] == b'-') {
        return Some(Kind::Number);
    }
    if index::normalize_id_number(t).is_some() {
        return Some(Kind::IdNumber);
    }
    if phone_like && digits >= 7 && index::normalize_phone(t).is_some() {
        return Some(Kind::Phone);
    }
    (t.chars().count() >= 2 && !index::tokens(t).is_empty()).then_some(Kind::Words)
}

/// Runs a search. `may_see_contacts`: the caller may search by phone and ID number.
pub fn search(store: &Store, q: &str, may_see_contacts: bool, limit: usize, after: Option<&str>) -> Result<Found, SearchError> {
    let kind = classify(q).ok_or(SearchError::TooShort)?;
    let after = match after {
        Some(a) => Some(hex::decode(a).map_err(|_| SearchError::BadCursor)?),
        None => None,
    };
    let q = q.trim();
    let (ids, next) = match kind {
        Kind::Number => by_number(store, q, limit, after.as_deref())?,
        Kind::Phone | Kind::IdNumber => {
            if !may_see_contacts {
                return Err(SearchError::Role);
            }
            let n = if kind == Kind::Phone { index::normalize_phone(q) } else { index::normalize_id_number(q) };
            let key = store.contact_key(&n.unwrap_or_default());
            postings(store, CF_CONTACTS, &key, limit, after.as_deref(), |_| Ok(true))?
        }
        Kind::Words => by_words(store, q, limit, after.as_deref())?,
    };
    let mut cases = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = store.case_summary(&id)? {
            cases.push(c);
        }
    }
    Ok(Found { kind, cases, next: next.map(hex::encode) })
}

/// Cases under `prefix` in an index whose keys end in ¬filed ‖ case, after
/// `after` (a suffix), passing `keep`, at most `limit`; with the suffix of
/// the last one when more follow.
fn postings(store: &Store, cf: &'static str, prefix: &[u8], limit: usize, after: Option<&[u8]>, mut keep: impl FnMut(&[u8]) -> crate::store::Result<bool>) -> crate::store::Result<IdPage> {
    let from = [prefix, after.unwrap_or_default()].concat();
    let to = [prefix, &[0xFF; 41]].concat();
    let mut out: Vec<(RecordId, Vec<u8>)> = Vec::new();
    let mut more = false;
    let mut err = None;
    store.index_scan(cf, &from, &to, |k, _| {
        let suffix = &k[prefix.len()..];
        if after.is_some_and(|a| suffix <= a) || suffix.len() != 40 {
            return true;
        }
        match keep(suffix) {
            Ok(true) => {}
            Ok(false) => return true,
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        if out.len() == limit {
            more = true;
            return false;
        }
        let id: [u8; 32] = suffix[8..].try_into().unwrap_or([0; 32]);
        out.push((RecordId(id), suffix.to_vec()));
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let next = if more { out.last().map(|(_, s)| s.clone()) } else { None };
    Ok((out.into_iter().map(|(id, _)| id).collect(), next))
}

/// Every token must match. The postings are segments of one write batch
/// each, grouped by time bucket (`index::word_segment_key`): walk the
/// rarest token's buckets newest first; in each, the cases of its segments
/// after `after` that every other token's segments of the same bucket
/// hold, newest first, until a page is full.
fn by_words(store: &Store, q: &str, limit: usize, after: Option<&[u8]>) -> crate::store::Result<IdPage> {
    let tokens = index::tokens(q);
    let mut sized: Vec<(usize, String)> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let prefix = index::word_prefix(&t);
        let mut n = 0usize;
        store.index_scan(CF_WORDS, &prefix, &[prefix.as_slice(), &[0xFF; 45]].concat(), |_, v| {
            n += v.len() / 40;
            n < 2_000
        })?;
        sized.push((n, t));
    }
    sized.sort();
    let Some((_, first)) = sized.first().cloned() else { return Ok((Vec::new(), None)) };
    let others: Vec<String> = sized.into_iter().skip(1).map(|(_, t)| t).collect();
    let mut bucket = after.and_then(index::suffix_bucket).unwrap_or(0);
    let mut out: Vec<[u8; 40]> = Vec::new();
    while let Some((b, mut found)) = bucket_postings(store, &first, bucket)? {
        found.retain(|s| after.is_none_or(|a| s.as_slice() > a));
        found.sort_unstable();
        found.dedup();
        for t in &others {
            if found.is_empty() {
                break;
            }
            let theirs: std::collections::HashSet<[u8; 40]> = bucket_postings(store, t, b)?.filter(|(tb, _)| *tb == b).map(|(_, v)| v.into_iter().collect()).unwrap_or_default();
            found.retain(|s| theirs.contains(s));
        }
        out.extend(found);
        if out.len() > limit || b == u32::MAX {
            break;
        }
        bucket = b + 1;
    }
    let more = out.len() > limit;
    out.truncate(limit);
    let next = if more { out.last().map(|s| s.to_vec()) } else { None };
    let ids = out.iter().map(|s| RecordId(s[8..].try_into().unwrap_or([0; 32]))).collect();
    Ok((ids, next))
}

/// The postings of `token` in the first bucket at or after `from` that has
/// any: the bucket and its cases' suffixes (unsorted, across segments).
fn bucket_postings(store: &Store, token: &str, from: u32) -> crate::store::Result<Option<(u32, Vec<[u8; 40]>)>> {
    let prefix = index::word_prefix(token);
    let start = [prefix.as_slice(), &from.to_be_bytes()].concat();
    let end = [prefix.as_slice(), &[0xFF; 45]].concat();
    let mut at: Option<u32> = None;
    let mut found = Vec::new();
    store.index_scan(CF_WORDS, &start, &end, |k, v| {
        let rest = &k[prefix.len()..];
        let Some(b) = rest.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) else { return true };
        if rest.len() != 44 {
            return true;
        }
        if at.is_some_and(|a| a != b) {
            return false;
        }
        at = Some(b);
        found.extend(v.chunks_exact(40).filter_map(|c| <[u8; 40]>::try_from(c).ok()));
        true
    })?;
    Ok(at.map(|b| (b, found)))
}

/// The case with this number, or the cases whose number starts with it.
fn by_number(store: &Store, q: &str, limit: usize, after: Option<&[u8]>) -> crate::store::Result<IdPage> {
    if after.is_none()
        && let Some(id) = store.case_by_number(q)?
    {
        return Ok((vec![id], None));
    }
    store.numbers_after(q, after, limit)
}

/// Why a search by phone or ID number may find nothing here.
pub const CONTACT_HINT: &str = "按电话或身份证号只能查到本中心保存了诉求人联系方式的案件：本中心受理的，以及上报或下派到本中心的。其余案件的联系方式只留在受理中心，不会上传：请到受理中心查找，或按编号、关键词查找。(A phone or ID number finds only the cases whose complainant's contact this center holds: those filed here, and those escalated or dispatched to it. Search at the filing center, or by number or words.)";

pub async fn route(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Viewer).await?;
    let text = q.get("q").cloned().unwrap_or_default();
    if text.chars().count() > 100 {
        return Err(ApiError::bad_request("a search is at most 100 characters"));
    }
    let limit: usize = match q.get("limit") {
        None => 50,
        Some(l) => l.parse().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| ApiError::bad_request("limit must be 1 to 200"))?,
    };
    let after = q.get("after").filter(|a| !a.is_empty()).cloned();
    let store = s.store.clone();
    let may = session.role >= Role::Operator;
    let found = tokio::task::spawn_blocking(move || search(&store, &text, may, limit, after.as_deref())).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let found = match found {
        Ok(f) => f,
        Err(e @ SearchError::TooShort) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "query_too_short", e.to_string())),
        Err(e @ SearchError::BadCursor) => return Err(ApiError::bad_request(e.to_string())),
        Err(e @ SearchError::Role) => return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())),
        Err(SearchError::Store(e)) => return Err(e.into()),
    };
    let policy = s.policy();
    let now = s.now_ms();
    let cases: Vec<Value> = found.cases.iter().map(|c| summary_json(&policy, c, now)).collect();
    // A phone or ID number found nothing: say where the contact is kept,
    // rather than a bare "0 cases".
    let hint = (cases.is_empty() && matches!(found.kind, Kind::Phone | Kind::IdNumber)).then_some(CONTACT_HINT);
    Ok(Json(json!({"kind": found.kind.as_str(), "cases": cases, "next": found.next, "hint": hint})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_classified() {
        assert_eq!(classify("330106010001-2026-000123"), Some(Kind::Number));
        assert_eq!(classify("330106010001"), Some(Kind::Number));
        assert_eq!(classify("138 0000 1234"), Some(Kind::Phone));
        assert_eq!(classify("33010619900101123X"), Some(Kind::IdNumber));
        assert_eq!(classify("噪音"), Some(Kind::Words));
        assert_eq!(classify("噪"), None);
        assert_eq!(classify("  "), None);
    }

    /// Postings written in many batches over two years of filings: every
    /// query's pages, followed by `next`, give exactly the cases holding
    /// all its tokens, newest filing first, each once.
    #[test]
    fn word_pages_across_batches_and_buckets_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // xorshift64*: reproducible without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        };
        let words = ["噪音", "扰民", "工资", "拖欠", "物业", "收费", "漏水", "邻里"];
        let start = 1_735_660_800_000u64; // 2025-01-01
        let mut cases: Vec<(u64, RecordId, String)> = Vec::new();
        for batch_no in 0..40 {
            let mut b = store.batch();
            for _ in 0..1 + next(29) {
                let filed = start + next(730) * 86_400_000 + next(86_400_000);
                let mut id = [0u8; 32];
                id.iter_mut().for_each(|b| *b = next(256) as u8);
                let id = RecordId(id);
                let text: String = (0..1 + next(3)).map(|_| words[next(words.len() as u64) as usize]).collect::<Vec<_>>().join("，");
                b.index_words(&id, filed, &format!("第{batch_no}批 {text}"));
                cases.push((filed, id, text));
            }
            store.commit(b).unwrap();
        }
        for q in ["噪音", "工资 拖欠", "物业收费", "漏水 邻里 噪音", "没有"] {
            let tokens = index::tokens(q);
            let mut want: Vec<(Vec<u8>, RecordId)> =
                cases.iter().filter(|(_, _, text)| tokens.iter().all(|t| index::tokens(text).contains(t))).map(|(filed, id, _)| (index::search_suffix(*filed, id), *id)).collect();
            want.sort();
            let want: Vec<RecordId> = want.into_iter().map(|(_, id)| id).collect();
            for limit in [1, 7, 500] {
                let (mut got, mut after) = (Vec::new(), None::<Vec<u8>>);
                loop {
                    let (ids, next) = by_words(&store, q, limit, after.as_deref()).unwrap();
                    assert!(ids.len() <= limit);
                    got.extend(ids);
                    match next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                    assert!(got.len() <= want.len(), "{q}: pages do not end");
                }
                assert_eq!(got, want, "{q} by pages of {limit}");
            }
        }
    }
}
