//! Incremental statistics: each case's facts (`protocol::kpi::facts`) summed
//! into counters in the `stats` column family, in the same write batch as
//! the case (a merge operator adds the vectors).
//!
//! Key: `month (u32 BE) ‖ tag (u8) ‖ unit (u64 BE) ‖ channel (u8) ‖ category`.
//! Tag 0 holds a unit's own figures; tag 1–4 (city … village) holds the
//! total of the subtree rooted at a unit of that level. A fact is merged
//! into its unit's own key and into the subtree key of the unit and of each
//! ancestor, so a roll-up by county is one short scan per month, not a scan
//! of every village. Value: `COUNTERS` little-endian i64s.

use std::collections::HashMap;

use zongzhi_protocol::case::Channel;
use zongzhi_protocol::kpi::{self, COUNTERS, Counts, Fact};
use zongzhi_protocol::{DivisionCode, Level};

/// Tag of a unit's own figures.
pub const OWN: u8 = 0;

/// Added to a tag: the repeat-complaint counts (one counter, index 0),
/// settled from the repeat index ([`crate::index`]), not from a case's facts.
pub const REPEAT_TAGS: u8 = 0x10;

/// Added to a tag: the same counters summed over every channel and category,
/// one key per (month, tag, unit) with channel 0 and no category, so a
/// table by unit or by subtree reads one key per unit and month rather than
/// one per unit, channel and category.
pub const TOTAL_TAGS: u8 = 0x20;

/// Tag of the subtree totals of units at `level`.
pub fn subtree_tag(level: Level) -> u8 {
    level as u8 + 1
}

pub fn key(month: u32, tag: u8, unit: u64, channel: u8, category: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(14 + category.len());
    k.extend_from_slice(&month.to_be_bytes());
    k.push(tag);
    k.extend_from_slice(&unit.to_be_bytes());
    k.push(channel);
    k.extend_from_slice(category.as_bytes());
    k
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub month: u32,
    pub tag: u8,
    pub unit: u64,
    pub channel: u8,
    pub category: String,
}

pub fn parse_key(k: &[u8]) -> Option<Key> {
    if k.len() < 14 {
        return None;
    }
    Some(Key {
        month: u32::from_be_bytes(k[..4].try_into().ok()?),
        tag: k[4],
        unit: u64::from_be_bytes(k[5..13].try_into().ok()?),
        channel: k[13],
        category: String::from_utf8(k[14..].to_vec()).ok()?,
    })
}

pub fn encode(c: &Counts) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 * COUNTERS);
    for x in c {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// Decodes a value; a shorter vector (written before counters were added)
/// reads as zeros for the missing ones.
pub fn decode(v: &[u8]) -> Counts {
    let mut c = [0i64; COUNTERS];
    for (i, chunk) in v.chunks_exact(8).take(COUNTERS).enumerate() {
        c[i] = i64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    c
}

/// The merge: element-wise sum of the existing value and the operands (the
/// store registers it as the column family's merge operator).
pub fn merge<'a>(existing: Option<&[u8]>, operands: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut acc = existing.map(decode).unwrap_or([0; COUNTERS]);
    for op in operands {
        let d = decode(op);
        for (a, b) in acc.iter_mut().zip(d) {
            *a = a.wrapping_add(b);
        }
    }
    Some(encode(&acc))
}

/// The counter changes between a case's old and new facts, per key (zero
/// changes left out).
pub fn deltas(category: &str, channel: Channel, old: &[Fact], new: &[Fact]) -> HashMap<Vec<u8>, Counts> {
    let ch = kpi::channel_index(channel);
    let mut out: HashMap<Vec<u8>, Counts> = HashMap::new();
    let mut add = |f: &Fact, sign: i64| {
        let mut put = |tag: u8, unit: DivisionCode| {
            let e = out.entry(key(f.month, tag, unit.as_u64(), ch, category)).or_insert([0; COUNTERS]);
            e[f.counter as usize] += sign * f.value;
            let e = out.entry(key(f.month, TOTAL_TAGS + tag, unit.as_u64(), 0, "")).or_insert([0; COUNTERS]);
            e[f.counter as usize] += sign * f.value;
        };
        put(OWN, f.unit);
        for a in f.unit.lineage() {
            put(subtree_tag(a.level()), a);
        }
    };
    for f in old {
        add(f, -1);
    }
    for f in new {
        add(f, 1);
    }
    out.retain(|_, c| c.iter().any(|x| *x != 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zongzhi_protocol::kpi::Counter;

    #[test]
    fn keys_round_trip_and_deltas_cancel() {
        let k = key(202610, 2, 330106000000, 1, "0202");
        assert_eq!(parse_key(&k).unwrap(), Key { month: 202610, tag: 2, unit: 330106000000, channel: 1, category: "0202".into() });
        let v: DivisionCode = "330106010001".parse().unwrap();
        let f = Fact { month: 202610, unit: v, counter: Counter::Received, value: 1 };
        let d = deltas("0202", Channel::Phone, &[], std::slice::from_ref(&f));
        // Own key + village, township, county, city subtree keys, and each
        // again as a total over channels and categories.
        assert_eq!(d.len(), 10);
        assert!(d.contains_key(&key(202610, TOTAL_TAGS + OWN, v.as_u64(), 0, "")));
        assert!(deltas("0202", Channel::Phone, std::slice::from_ref(&f), std::slice::from_ref(&f)).is_empty());
        let mut c = [0; COUNTERS];
        c[3] = -7;
        assert_eq!(decode(&encode(&c)), c);
        assert_eq!(decode(&encode(&c)[..16])[3], 0, "short vectors read as zeros");
    }
}

/// How a statistics query groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Each unit's own figures.
    Unit,
    /// Units grouped by level (their own figures).
    Level,
    /// Subtree totals of the counties (townships, villages) in scope.
    Subtree(Level),
    Category,
    Channel,
    /// Department windows by code: a center's own at a center, every
    /// center's window of that code at a county or the city. Counted at
    /// query time from the cases ([`rollup_actors`]), not kept in counters.
    Window,
    /// Persons (a center's accounts, `unit:username`), at query time.
    Person,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "unit" => By::Unit,
            "level" => By::Level,
            "county" => By::Subtree(Level::County),
            "township" => By::Subtree(Level::Township),
            "village" => By::Subtree(Level::Village),
            "category" => By::Category,
            "channel" => By::Channel,
            "window" => By::Window,
            "person" => By::Person,
            _ => return None,
        })
    }
}

/// Counter sums per group over the months given, within `scope`'s subtree.
/// Groups are unit codes, level names, category codes or channel codes.
pub fn rollup(store: &crate::store::Store, scope: DivisionCode, months: &[u32], by: By) -> crate::store::Result<std::collections::BTreeMap<String, Counts>> {
    rollup_tagged(store, scope, months, by, 0)
}

/// As [`rollup`], over the counters stored under tags offset by `base`
/// ([`REPEAT_TAGS`] for the repeat counts).
pub fn rollup_tagged(store: &crate::store::Store, scope: DivisionCode, months: &[u32], by: By, base: u8) -> crate::store::Result<std::collections::BTreeMap<String, Counts>> {
    use std::collections::BTreeMap;
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    let range = scope.subtree_range();
    let add = |out: &mut BTreeMap<String, Counts>, group: String, v: &[u8]| {
        let e = out.entry(group).or_insert([0; COUNTERS]);
        for (a, b) in e.iter_mut().zip(decode(v)) {
            *a += b;
        }
    };
    if matches!(by, By::Window | By::Person) {
        // Not kept in the counters (see `rollup_actors`).
        return Ok(out);
    }
    for &month in months {
        let (tag, lo, hi) = match by {
            By::Window | By::Person => continue,
            // Groups of units: their totals over channels and categories.
            By::Unit | By::Level => (TOTAL_TAGS + OWN, *range.start(), *range.end()),
            By::Subtree(level) => (TOTAL_TAGS + subtree_tag(level), *range.start(), *range.end()),
            // The scope's own subtree total, split by category or channel.
            By::Category | By::Channel => (subtree_tag(scope.level()), scope.as_u64(), scope.as_u64()),
        };
        let tag = tag + base;
        let from = key(month, tag, lo, 0, "");
        let to = key(month, tag, hi.saturating_add(1), 0, "");
        store.scan_stats(&from, &to, |k, v| {
            let Some(k) = parse_key(k) else { return };
            let group = match by {
                By::Unit | By::Subtree(_) => DivisionCode::new(k.unit).map(|d| d.to_string()).unwrap_or_default(),
                By::Level => DivisionCode::new(k.unit).map(|d| d.level().as_str().to_string()).unwrap_or_default(),
                By::Category => k.category,
                By::Channel => Channel::ALL.get(k.channel as usize).map(|c| c.as_str().to_string()).unwrap_or_default(),
                By::Window | By::Person => return,
            };
            add(&mut out, group, v);
        })?;
    }
    Ok(out)
}

/// Counter sums by window ([`By::Window`]: the window's code) or by person
/// ([`By::Person`]: `unit:username`) over `months` within `scope`'s subtree,
/// from [`kpi::attributed`] of each case filed before the period ended
/// with a step in or after its first month (`updated_ms`): the cases are
/// folded at query time, since the counters are kept by unit, channel and
/// category only. `from_ms..to_ms`: the period's first and last instants
/// (the end exclusive).
pub fn rollup_actors(
    store: &crate::store::Store,
    policies: &zongzhi_protocol::policy::PolicySet,
    trust: &zongzhi_protocol::trust::Trust,
    scope: DivisionCode,
    months: &[u32],
    (from_ms, to_ms): (u64, u64),
    by: By,
) -> crate::store::Result<std::collections::BTreeMap<String, Counts>> {
    use std::collections::BTreeMap;
    let mut cases = Vec::new();
    store.all_summaries(|c| {
        if c.updated_ms >= from_ms && c.filed_ms < to_ms && (scope.contains(c.filed_by) || c.units.iter().any(|u| scope.contains(*u))) {
            cases.push(c.id);
        }
        true
    })?;
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    for id in cases {
        let corrupt = |e: crate::ledger::LedgerError| crate::store::StoreError::Corrupt { cf: "records", detail: format!("case {id}: {e}") };
        let records = crate::ledger::load_case_records(store, &id).map_err(corrupt)?;
        let state = crate::ledger::fold_records(store, policies, trust, &records).map_err(corrupt)?;
        for f in kpi::attributed(&state) {
            let group = match (&f.actor, by) {
                (kpi::Actor::Window { unit, window }, By::Window) if scope.contains(*unit) => window.clone(),
                (kpi::Actor::Person { unit, operator }, By::Person) if scope.contains(*unit) => format!("{unit}:{operator}"),
                _ => continue,
            };
            if months.contains(&f.month) {
                out.entry(group).or_insert([0; COUNTERS])[f.counter as usize] += f.value;
            }
        }
    }
    Ok(out)
}

/// The statistics benchmark: a city's store holding `units` units × `months`
/// months × `categories` categories; roll-ups by county for a quarter and by
/// unit for one county's quarter (p50/p99 over `queries` runs each); and
/// the per-event cost of keeping statistics (deltas and merges added to the
/// event's write batch). Prints JSON.
pub fn bench(dir: &std::path::Path, units: usize, months: u32, categories: usize, queries: usize) -> crate::store::Result<serde_json::Value> {
    use std::time::Instant;
    use zongzhi_protocol::kpi::Counter;
    let store = crate::store::Store::open(dir)?;
    // A city, 12 counties, 10 townships each, the rest villages spread evenly.
    let city: DivisionCode = DivisionCode::new(330_100_000_000).map_err(|e| crate::store::StoreError::Corrupt { cf: "stats", detail: e.to_string() })?;
    let counties: Vec<DivisionCode> = (1..=12).filter_map(|c| DivisionCode::new(330_100_000_000 + c * 1_000_000).ok()).collect();
    let townships: Vec<DivisionCode> = counties.iter().flat_map(|c| (1..=10).filter_map(move |t| DivisionCode::new(c.as_u64() + t * 1_000).ok())).collect();
    let villages_needed = units.saturating_sub(1 + counties.len() + townships.len());
    let per_town = villages_needed.div_ceil(townships.len());
    let villages: Vec<DivisionCode> = townships.iter().flat_map(|t| (1..=per_town as u64).filter_map(move |v| DivisionCode::new(t.as_u64() + v).ok())).take(villages_needed).collect();
    let all: Vec<DivisionCode> = std::iter::once(city).chain(counties.iter().copied()).chain(townships.iter().copied()).chain(villages.iter().copied()).collect();
    let cats: Vec<String> = (0..categories).map(|i| format!("{:02}{:02}", 1 + i / 5, 1 + i % 5)).collect();
    let month_list: Vec<u32> = (0..months).map(|i| 202501 + (i / 12) * 100 + i % 12).collect();
    // Load: one fact set per (unit, month, category), written as the events
    // would write it (own key + subtree keys of the unit and its ancestors).
    let t = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut keys_written = 0usize;
    for &m in &month_list {
        let mut b = store.batch();
        for u in &all {
            for cat in &cats {
                let received = 1 + rnd(20) as i64;
                let resolved = received - rnd(received as u64) as i64;
                let facts = [
                    Fact { month: m, unit: *u, counter: Counter::Received, value: received },
                    Fact { month: m, unit: *u, counter: Counter::Resolved, value: resolved },
                    Fact { month: m, unit: *u, counter: Counter::ResolvedOnTime, value: resolved - rnd(2) as i64 },
                    Fact { month: m, unit: *u, counter: Counter::Rated, value: resolved },
                    Fact { month: m, unit: *u, counter: Counter::Satisfied, value: resolved - rnd(3) as i64 },
                ];
                let channel = Channel::ALL[rnd(Channel::ALL.len() as u64) as usize];
                for (k, d) in deltas(cat, channel, &[], &facts) {
                    b.merge_stats(&k, &d);
                    keys_written += 1;
                }
            }
            if b.len() > 50_000 {
                store.commit(std::mem::replace(&mut b, store.batch()))?;
            }
        }
        store.commit(b)?;
    }
    store.compact_stats()?;
    let load_s = t.elapsed().as_secs_f64();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let quarters: Vec<Vec<u32>> = month_list.chunks(3).map(|c| c.to_vec()).collect();
    let mut by_county = Vec::with_capacity(queries);
    let mut rows = 0;
    for i in 0..queries {
        let q = &quarters[i % quarters.len()];
        let t = Instant::now();
        let r = rollup(&store, city, q, By::Subtree(Level::County))?;
        by_county.push(t.elapsed().as_secs_f64() * 1000.0);
        rows = r.len();
    }
    let mut by_unit = Vec::with_capacity(queries);
    let mut unit_rows = 0;
    for i in 0..queries {
        let q = &quarters[i % quarters.len()];
        let t = Instant::now();
        let r = rollup(&store, counties[i % counties.len()], q, By::Unit)?;
        by_unit.push(t.elapsed().as_secs_f64() * 1000.0);
        unit_rows = r.len();
    }
    // Per-event cost: a case resolved (its facts change), as the writer does it.
    let village = villages.first().copied().unwrap_or(city);
    let old = vec![Fact { month: 202610, unit: village, counter: Counter::Received, value: 1 }];
    let new = vec![
        Fact { month: 202610, unit: village, counter: Counter::Received, value: 1 },
        Fact { month: 202610, unit: village, counter: Counter::Resolved, value: 1 },
        Fact { month: 202610, unit: village, counter: Counter::ResolvedOnTime, value: 1 },
        Fact { month: 202610, unit: village, counter: Counter::ResolvedLocally, value: 1 },
        Fact { month: 202610, unit: village, counter: Counter::Closed, value: 1 },
        Fact { month: 202610, unit: village, counter: Counter::HandlingMinutes, value: 2_880 },
    ];
    let events = 200_000usize;
    let payload = vec![0xA5u8; 500];
    let time_batches = |with_stats: bool| -> crate::store::Result<f64> {
        let t = Instant::now();
        let mut n = 0usize;
        while n < events {
            let mut b = store.batch();
            for _ in 0..256 {
                n += 1;
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(n as u64 + if with_stats { 1 << 40 } else { 0 }).to_be_bytes());
                b.put_meta(&format!("bench/{}", hex::encode(&id[..8])), &payload);
                if with_stats {
                    for (k, d) in deltas("0202", Channel::Phone, &old, &new) {
                        b.merge_stats(&k, &d);
                    }
                }
            }
            store.commit(b)?;
        }
        Ok(t.elapsed().as_secs_f64() / events as f64 * 1e6)
    };
    let without = time_batches(false)?;
    let with = time_batches(true)?;
    Ok(serde_json::json!({
        "units": all.len(), "months": months, "categories": categories, "stat_keys_written": keys_written, "load_s": load_s,
        "by_county_quarter_ms": {"p50": pct(&mut by_county.clone(), 0.5), "p99": pct(&mut by_county, 0.99), "rows": rows},
        "by_unit_county_quarter_ms": {"p50": pct(&mut by_unit.clone(), 0.5), "p99": pct(&mut by_unit, 0.99), "rows": unit_rows},
        "per_event_us": {"without_stats": without, "with_stats": with, "statistics": with - without, "merges_per_event": deltas("0202", Channel::Phone, &old, &new).len()},
    }))
}
