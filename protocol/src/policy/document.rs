//! The policy as an editable JSON document: what `GET /api/policy` shows
//! and what a city admin patches (JSON merge patch, RFC 7396), and the
//! readable difference between two versions.
//!
//! Categories, windows and calendars are objects keyed by code or year, so
//! a merge patch adds one by naming it and changes one field of one entry
//! without restating the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CalendarDoc, Category, DeadlineTable, DecisionRules, Policy, PolicyError, Referral, ReplyDeadlines, SubCategory, SupervisionGrades, SuspensionReason, Window};

/// The signed, editable part of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub calendars: BTreeMap<String, CalendarDoc>,
    pub categories: BTreeMap<String, CategoryDoc>,
    pub windows: BTreeMap<String, WindowDoc>,
    pub deadlines: DeadlineTable,
    pub supervision: SupervisionGrades,
    pub repeat_window_days: u32,
    pub report_grace_minutes: u32,
    /// `MM-DD`.
    pub calendar_warning_from: String,
    /// Working days to reply to a 督办 of each grade (record format 4:
    /// changing it needs the city to have finalized format 4).
    #[serde(default)]
    pub supervision_reply: ReplyDeadlines,
    /// The rules of 不予受理, 中止, 协办 and 回访 (record format 4: changing
    /// them needs the city to have finalized format 4).
    #[serde(default)]
    pub decisions: DecisionsDoc,
}

/// The decision rules as edited: referrals and 中止 reasons keyed by code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsDoc {
    pub referrals: BTreeMap<String, ReferralDoc>,
    pub suspension_reasons: BTreeMap<String, ReasonDoc>,
    pub max_suspension_days: u32,
    pub assistance_working_days: u32,
    pub max_assistance_working_days: u32,
    pub return_visit_days: u32,
}

impl Default for DecisionsDoc {
    fn default() -> Self {
        DecisionsDoc::of(&DecisionRules::default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralDoc {
    pub name: String,
    pub guidance: String,
    #[serde(default)]
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonDoc {
    pub name: String,
    #[serde(default)]
    pub retired: bool,
}

impl DecisionsDoc {
    pub fn of(d: &DecisionRules) -> DecisionsDoc {
        DecisionsDoc {
            referrals: d.referrals.iter().map(|r| (r.code.clone(), ReferralDoc { name: r.name.clone(), guidance: r.guidance.clone(), retired: r.retired })).collect(),
            suspension_reasons: d.suspension_reasons.iter().map(|r| (r.code.clone(), ReasonDoc { name: r.name.clone(), retired: r.retired })).collect(),
            max_suspension_days: d.max_suspension_days,
            assistance_working_days: d.assistance_working_days,
            max_assistance_working_days: d.max_assistance_working_days,
            return_visit_days: d.return_visit_days,
        }
    }

    /// The rules, entries in the order of `base` (new ones follow, by code).
    fn to_rules(&self, base: &DecisionRules) -> DecisionRules {
        let order = |code: &str, known: &[&str]| known.iter().position(|k| *k == code).unwrap_or(usize::MAX);
        let known: Vec<&str> = base.referrals.iter().map(|r| r.code.as_str()).collect();
        let mut referrals: Vec<Referral> =
            self.referrals.iter().map(|(code, r)| Referral { code: code.clone(), name: r.name.trim().to_string(), guidance: r.guidance.trim().to_string(), retired: r.retired }).collect();
        referrals.sort_by_key(|r| order(&r.code, &known));
        let known: Vec<&str> = base.suspension_reasons.iter().map(|r| r.code.as_str()).collect();
        let mut suspension_reasons: Vec<SuspensionReason> =
            self.suspension_reasons.iter().map(|(code, r)| SuspensionReason { code: code.clone(), name: r.name.trim().to_string(), retired: r.retired }).collect();
        suspension_reasons.sort_by_key(|r| order(&r.code, &known));
        DecisionRules {
            referrals,
            suspension_reasons,
            max_suspension_days: self.max_suspension_days,
            assistance_working_days: self.assistance_working_days,
            max_assistance_working_days: self.max_assistance_working_days,
            return_visit_days: self.return_visit_days,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDoc {
    pub name: String,
    #[serde(default)]
    pub retired: bool,
    #[serde(default)]
    pub children: BTreeMap<String, SubCategoryDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubCategoryDoc {
    pub name: String,
    pub default_window: String,
    #[serde(default)]
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDoc {
    pub name: String,
    #[serde(default)]
    pub retired: bool,
}

/// Why a patch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PatchError {
    /// The patch names a key the document does not have, or a value of the
    /// wrong type.
    #[error("{0}")]
    Shape(String),
    /// The patched policy breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The patch changes nothing.
    #[error("the patch changes nothing in policy version {0}")]
    NoChange(u32),
}

impl From<PolicyError> for PatchError {
    fn from(e: PolicyError) -> Self {
        PatchError::Invalid(e.to_string())
    }
}

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Slash-separated path in the document, e.g. `calendars/2027`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub kind: &'static str,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// The change in words (zh-CN).
    pub text: String,
}

impl PolicyDoc {
    pub fn of(p: &Policy) -> PolicyDoc {
        PolicyDoc {
            calendars: p.calendars.iter().map(|c| (c.year.to_string(), CalendarDoc::of(c))).collect(),
            categories: p
                .categories
                .iter()
                .map(|c| {
                    let children = c.children.iter().map(|s| (s.code.clone(), SubCategoryDoc { name: s.name.clone(), default_window: s.default_window.clone(), retired: s.retired })).collect();
                    (c.code.clone(), CategoryDoc { name: c.name.clone(), retired: c.retired, children })
                })
                .collect(),
            windows: p.windows.iter().map(|w| (w.code.clone(), WindowDoc { name: w.name.clone(), retired: w.retired })).collect(),
            deadlines: p.deadlines.clone(),
            supervision: p.supervision.clone(),
            repeat_window_days: p.repeat_window_days,
            report_grace_minutes: p.report_grace_minutes,
            calendar_warning_from: format!("{:02}-{:02}", p.calendar_warning_from / 100, p.calendar_warning_from % 100),
            supervision_reply: p.supervision_reply.clone(),
            decisions: DecisionsDoc::of(&p.decisions),
        }
    }

    /// The policy this document describes, as `version`. Entries keep the
    /// order of `base` (new ones follow, by code).
    pub fn to_policy(&self, version: u32, base: &Policy) -> Result<Policy, PatchError> {
        let mut calendars = Vec::new();
        for (year, doc) in &self.calendars {
            // Exactly four digits: "02027" or "+2027" would be stored as
            // "2027", and the same patch sent again would not be a no-change.
            let y: u16 = Some(year)
                .filter(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|y| y.parse().ok())
                .ok_or_else(|| PatchError::Shape(format!("calendars: {year:?} is not a year (YYYY)")))?;
            calendars.push(doc.to_calendar(y)?);
        }
        calendars.sort_by_key(|c| c.year);
        let order = |code: &str, known: &[&str]| known.iter().position(|k| *k == code).unwrap_or(usize::MAX);
        let known_windows: Vec<&str> = base.windows.iter().map(|w| w.code.as_str()).collect();
        let mut windows: Vec<Window> = self.windows.iter().map(|(code, w)| Window { code: code.clone(), name: w.name.trim().to_string(), retired: w.retired }).collect();
        windows.sort_by_key(|w| order(&w.code, &known_windows));
        let categories = self
            .categories
            .iter()
            .map(|(code, c)| Category {
                code: code.clone(),
                name: c.name.trim().to_string(),
                retired: c.retired,
                children: c.children.iter().map(|(sc, s)| SubCategory { code: sc.clone(), name: s.name.trim().to_string(), default_window: s.default_window.clone(), retired: s.retired }).collect(),
            })
            .collect();
        let warn = parse_month_day(&self.calendar_warning_from).ok_or_else(|| PatchError::Invalid(format!("calendar_warning_from {:?}: expected MM-DD", self.calendar_warning_from)))?;
        Ok(Policy {
            version,
            categories,
            windows,
            deadlines: self.deadlines.clone(),
            supervision: self.supervision.clone(),
            repeat_window_days: self.repeat_window_days,
            report_grace_minutes: self.report_grace_minutes,
            calendar_warning_from: warn,
            calendars,
            // The gate is raised by finalizing only, never by an edit.
            gate: base.gate.clone(),
            supervision_reply: self.supervision_reply.clone(),
            decisions: self.decisions.to_rules(&base.decisions),
        })
    }
}

fn parse_month_day(s: &str) -> Option<u16> {
    let (m, d) = s.split_once('-')?;
    if m.len() != 2 || d.len() != 2 || !m.bytes().chain(d.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (m, d): (u16, u16) = (m.parse().ok()?, d.parse().ok()?);
    super::date_of_ymd(20240000 + m as u32 * 100 + d as u32)?;
    Some(m * 100 + d)
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Paths a patch removes (`null` values), e.g. `windows/police`.
fn removals(patch: &Value, path: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = patch {
        for (k, v) in m {
            let p = if path.is_empty() { k.clone() } else { format!("{path}/{k}") };
            if v.is_null() {
                out.push(p);
            } else {
                removals(v, &p, out);
            }
        }
    }
}

/// The next version: `current` with `patch` applied, validated against
/// `current`. Refuses unknown keys, removals of codes and years, and a patch
/// that changes nothing.
pub fn apply_patch(current: &Policy, patch: &Value) -> Result<(Policy, Vec<Change>), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Shape("a policy patch is a JSON object (merge patch over the policy document)".into()));
    }
    let mut gone = Vec::new();
    removals(patch, "", &mut gone);
    if let Some(p) = gone.first() {
        let what = if p.starts_with("calendars/") {
            "a year's calendar cannot be removed (clocks count on it); send the corrected year instead"
        } else if p.starts_with("categories/") || p.starts_with("windows/") || p.starts_with("decisions/referrals/") || p.starts_with("decisions/suspension_reasons/") {
            "codes are never removed (old cases keep their names): set \"retired\": true instead"
        } else {
            "a policy field cannot be removed"
        };
        return Err(PatchError::Invalid(format!("{p}: {what}")));
    }
    let before = PolicyDoc::of(current);
    let mut doc = serde_json::to_value(&before).map_err(|e| PatchError::Shape(e.to_string()))?;
    merge_patch(&mut doc, patch);
    let doc: PolicyDoc = serde_json::from_value(doc).map_err(|e| PatchError::Shape(e.to_string()))?;
    let next = doc.to_policy(current.version + 1, current)?;
    next.validate(Some(current))?;
    let changes = diff(current, &next);
    if changes.is_empty() {
        return Err(PatchError::NoChange(current.version));
    }
    Ok((next, changes))
}

/// What changed from `a` to `b`.
pub fn diff(a: &Policy, b: &Policy) -> Vec<Change> {
    let (Ok(va), Ok(vb)) = (serde_json::to_value(PolicyDoc::of(a)), serde_json::to_value(PolicyDoc::of(b))) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff_values("", &va, &vb, &mut out);
    out
}

fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    if a == b {
        return;
    }
    // A year's calendar is one change, not one per date.
    let leaf = path.starts_with("calendars/");
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) if !leaf => {
            for (k, va) in ma {
                let p = if path.is_empty() { k.clone() } else { format!("{path}/{k}") };
                match mb.get(k) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(change(p, Some(va.clone()), None)),
                }
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}/{k}") };
                    out.push(change(p, None, Some(vb.clone())));
                }
            }
        }
        _ => out.push(change(path.to_string(), Some(a.clone()), Some(b.clone()))),
    }
}

fn change(path: String, old: Option<Value>, new: Option<Value>) -> Change {
    let kind = match (&old, &new) {
        (None, _) => "added",
        (_, None) => "removed",
        _ => "changed",
    };
    let text = describe(&path, old.as_ref(), new.as_ref());
    Change { path, kind, old, new, text }
}

fn count(v: Option<&Value>, key: &str) -> usize {
    v.and_then(|v| v.get(key)).and_then(Value::as_array).map_or(0, Vec::len)
}

fn name_of(v: Option<&Value>) -> String {
    v.and_then(|v| v.get("name")).and_then(Value::as_str).unwrap_or("").to_string()
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn describe(path: &str, old: Option<&Value>, new: Option<&Value>) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["calendars", year] => match (old, new) {
            (None, Some(_)) => format!("新增{year}年工作日历（节假日{}天，调休上班{}天）", count(new, "holidays"), count(new, "make_up_workdays")),
            _ => format!("修改{year}年工作日历（节假日{}→{}天，调休上班{}→{}天）", count(old, "holidays"), count(new, "holidays"), count(old, "make_up_workdays"), count(new, "make_up_workdays")),
        },
        ["categories", code] if old.is_none() => format!("新增大类 {code} {}", name_of(new)),
        ["categories", code, "children", sub] if old.is_none() => format!("大类 {code} 下新增小类 {sub} {}", name_of(new)),
        ["windows", code] if old.is_none() => format!("新增窗口 {code}（{}）", name_of(new)),
        ["categories", code, "name"] => format!("大类 {code} 更名：{} → {}", short(old), short(new)),
        ["categories", _, "children", sub, "name"] => format!("小类 {sub} 更名：{} → {}", short(old), short(new)),
        ["windows", code, "name"] => format!("窗口 {code} 更名：{} → {}", short(old), short(new)),
        ["categories", code, "retired"] => format!("大类 {code} {}", if new == Some(&Value::Bool(true)) { "停用" } else { "恢复启用" }),
        ["categories", _, "children", sub, "retired"] => format!("小类 {sub} {}", if new == Some(&Value::Bool(true)) { "停用" } else { "恢复启用" }),
        ["windows", code, "retired"] => format!("窗口 {code} {}", if new == Some(&Value::Bool(true)) { "停用" } else { "恢复启用" }),
        ["categories", _, "children", sub, "default_window"] => format!("小类 {sub} 默认窗口：{} → {}", short(old), short(new)),
        ["decisions", "referrals", code] if old.is_none() => format!("新增不予受理引导去向 {code}（{}）", name_of(new)),
        ["decisions", "referrals", code, "retired"] => format!("不予受理引导去向 {code} {}", if new == Some(&Value::Bool(true)) { "停用" } else { "恢复启用" }),
        ["decisions", "referrals", code, field] => format!("不予受理引导去向 {code} 的 {field}：{} → {}", short(old), short(new)),
        ["decisions", "suspension_reasons", code] if old.is_none() => format!("新增中止事由 {code}（{}）", name_of(new)),
        ["decisions", "suspension_reasons", code, "retired"] => format!("中止事由 {code} {}", if new == Some(&Value::Bool(true)) { "停用" } else { "恢复启用" }),
        ["decisions", "suspension_reasons", code, field] => format!("中止事由 {code} 的 {field}：{} → {}", short(old), short(new)),
        ["decisions", field] => format!("{field}：{} → {}", short(old), short(new)),
        ["deadlines", field] => format!("时限 {field}：{} → {}", short(old), short(new)),
        ["supervision", field] => format!("督办阈值 {field}：{} → {}", short(old), short(new)),
        ["repeat_window_days"] => format!("重复投诉统计窗口：{} → {} 天", short(old), short(new)),
        ["report_grace_minutes"] => format!("月报签发宽限：{} → {} 分钟", short(old), short(new)),
        ["calendar_warning_from"] => format!("工作日历预警起始日：{} → {}", short(old), short(new)),
        _ => format!("{path}：{} → {}", short(old), short(new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cal(year: u16, holidays: &[(&str, &str)], makeup: &[&str]) -> Value {
        let _ = year;
        json!({
            "source": "测试",
            "holidays": holidays.iter().map(|(d, n)| json!({"date": d, "name": n})).collect::<Vec<_>>(),
            "make_up_workdays": makeup,
        })
    }

    #[test]
    fn the_document_round_trips() {
        let p = Policy::default_policy();
        let doc = PolicyDoc::of(&p);
        let back = doc.to_policy(p.version, &p).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_calendar_is_added_and_described() {
        let p = Policy::default_policy();
        // 2027-02-06 is a Saturday.
        let patch = json!({"calendars": {"2027": cal(2027, &[("2027-01-01", "元旦"), ("2027-02-08", "春节")], &["2027-02-06"])}});
        let (next, changes) = apply_patch(&p, &patch).unwrap();
        assert_eq!(next.version, 2);
        assert_eq!(next.calendar_years(), vec![2025, 2026, 2027]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "calendars/2027");
        assert_eq!(changes[0].kind, "added");
        assert!(changes[0].text.contains("新增2027年工作日历（节假日2天，调休上班1天）"), "{}", changes[0].text);
    }

    /// Found by the `policy_json` fuzz target: a signed year (`-002027-10-01`)
    /// overflowed in `ymd`, and a year key `"02027"` was stored as `"2027"`,
    /// so the same patch sent twice was refused as "listed twice".
    #[test]
    fn dates_and_years_are_read_in_one_spelling_only() {
        let p = Policy::default_policy();
        for (year, date) in [("2027", "-002027-10-01"), ("2027", "+002027-10-01"), ("02027", "2027-01-01"), ("+2027", "2027-01-01"), ("2027", "2027-1-01")] {
            let patch = json!({"calendars": {year: cal(2027, &[(date, "元旦")], &[])}});
            assert!(apply_patch(&p, &patch).is_err(), "{year} {date}");
        }
        assert!(matches!(apply_patch(&p, &json!({"calendar_warning_from": "+1-01"})), Err(PatchError::Invalid(_))));
        let patch = json!({"calendars": {"2027": cal(2027, &[("2027-01-01", "元旦")], &[])}});
        let (next, _) = apply_patch(&p, &patch).unwrap();
        assert_eq!(apply_patch(&next, &patch).unwrap_err(), PatchError::NoChange(next.version));
    }

    #[test]
    fn bad_patches_are_refused() {
        let p = Policy::default_policy();
        let refused = |patch: Value| apply_patch(&p, &patch).unwrap_err();
        assert!(matches!(refused(json!({"version": 9})), PatchError::Shape(_)));
        assert!(matches!(refused(json!({"deadlines": {"nonsense": 1}})), PatchError::Shape(_)));
        assert!(matches!(refused(json!({"deadlines": {"resolution_working_days": "seven"}})), PatchError::Shape(_)));
        assert_eq!(refused(json!({"deadlines": {"resolution_working_days": 7}})), PatchError::NoChange(1));
        assert_eq!(refused(json!({})), PatchError::NoChange(1));
        // Dates outside the year, make-up day on a weekday (2027-02-08 is a Monday),
        // a holiday that is also a make-up day, a date twice.
        for bad in [
            cal(2027, &[("2026-12-31", "元旦")], &[]),
            cal(2027, &[], &["2027-02-08"]),
            cal(2027, &[("2027-02-06", "春节")], &["2027-02-06"]),
            cal(2027, &[("2027-01-01", "元旦"), ("2027-01-01", "元旦")], &[]),
            cal(2027, &[("2027-13-01", "元旦")], &[]),
            cal(2027, &[("2027-01-01", "")], &[]),
        ] {
            let e = refused(json!({"calendars": {"2027": bad}}));
            assert!(matches!(e, PatchError::Invalid(_)), "{e:?}");
        }
        // Codes are never removed; names are bounded; a category code fits its parent.
        assert!(matches!(refused(json!({"windows": {"police": null}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"calendars": {"2025": null}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"windows": {"fire": {"name": ""}}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"windows": {"fire": {"name": "消".repeat(41)}}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"windows": {"Fire!": {"name": "消防"}}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"categories": {"01": {"children": {"0299": {"name": "x", "default_window": "police"}}}}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"categories": {"01": {"children": {"0199": {"name": "x", "default_window": "nowhere"}}}}})), PatchError::Invalid(_)));
        // A window still used by an active sub-category cannot retire.
        assert!(matches!(refused(json!({"windows": {"police": {"retired": true}}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"supervision": {"yellow_after_minutes": 99999}})), PatchError::Invalid(_)));
        assert!(matches!(refused(json!({"calendar_warning_from": "13-01"})), PatchError::Invalid(_)));
    }

    #[test]
    fn taxonomy_and_windows_are_added_renamed_and_retired() {
        let p = Policy::default_policy();
        let patch = json!({
            "windows": {"fire": {"name": "消防"}, "court": {"name": "诉调对接（法院）"}},
            "categories": {"01": {"name": "婚姻家庭矛盾", "children": {"0105": {"name": "家暴求助", "default_window": "police"}}},
                           "10": {"name": "城市管理", "children": {"1001": {"name": "占道经营", "default_window": "fire"}}}},
        });
        let (v2, changes) = apply_patch(&p, &patch).unwrap();
        let texts: Vec<&str> = changes.iter().map(|c| c.text.as_str()).collect();
        assert!(texts.contains(&"新增窗口 fire（消防）"), "{texts:?}");
        assert!(texts.contains(&"大类 01 更名：婚姻家庭纠纷 → 婚姻家庭矛盾"), "{texts:?}");
        assert!(texts.contains(&"大类 01 下新增小类 0105 家暴求助"), "{texts:?}");
        assert_eq!(v2.window("fire").unwrap().name, "消防");
        let retire = json!({"categories": {"10": {"retired": true}}, "windows": {"court": {"retired": true}}});
        let (v3, _) = apply_patch(&v2, &retire).unwrap();
        assert!(v3.subcategory("1001").unwrap().0.retired);
        assert!(v3.window("court").unwrap().retired);
        // The diff between versions is the same as the one signed.
        assert_eq!(diff(&p, &v2), changes);
    }
}
