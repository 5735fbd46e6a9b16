//! Search for operators (`GET /api/search`): by case number, by the
//! complainant's phone or ID number (only where this node holds the
//! contact; the index holds keyed hashes, never the numbers), and by words
//! of the title and content (CJK bigrams and ASCII words). Newest filing
//! first, paged like the case list.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use zongzhi_protocol::RecordId;

use crate::accounts::Role;
use crate::api::{authenticate, summary_json, ApiError, ApiResult, AppState};
use crate::index;
use crate::store::{IdPage, Store, CF_CONTACTS, CF_WORDS};
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
fn postings(
    store: &Store,
    cf: &'static str,
    prefix: &[u8],
    limit: usize,
    after: Option<&[u8]>,
    mut keep: impl FnMut(&[u8]) -> crate::store::Result<bool>,
) -> crate::store::Result<IdPage> {
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

/// Every token must match: walk the postings of the rarest (counted up to
/// a bound) and look the others up by key.
fn by_words(store: &Store, q: &str, limit: usize, after: Option<&[u8]>) -> crate::store::Result<IdPage> {
    let tokens = index::tokens(q);
    let mut sized: Vec<(usize, String)> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let prefix = index::word_key(&t, &[]);
        let mut n = 0usize;
        store.index_scan(CF_WORDS, &prefix, &[prefix.as_slice(), &[0xFF; 41]].concat(), |_, _| {
            n += 1;
            n < 2_000
        })?;
        sized.push((n, t));
    }
    sized.sort();
    let Some((_, first)) = sized.first().cloned() else { return Ok((Vec::new(), None)) };
    let others: Vec<String> = sized.into_iter().skip(1).map(|(_, t)| t).collect();
    postings(store, CF_WORDS, &index::word_key(&first, &[]), limit, after, |suffix| {
        for t in &others {
            if store.index_get(CF_WORDS, &index::word_key(t, suffix))?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    })
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
    let found = tokio::task::spawn_blocking(move || search(&store, &text, may, limit, after.as_deref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
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
}
