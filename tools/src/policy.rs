//! `zongzhi policy …`: the city-signed policy. Show it (any role), compare
//! versions, load a year's working-day calendar and sign other changes as a
//! JSON merge patch (admin at the city node; `--dry-run` only previews).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::{s, table};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Version, calendars, categories, windows, deadlines, supervision (the default).
    Show {
        /// An earlier version (default: the current one).
        #[arg(long)]
        version: Option<u64>,
    },
    /// The changes between two versions.
    Diff {
        /// Default: the version before --to.
        #[arg(long)]
        from: Option<u64>,
        /// Default: the current version.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Load a year's working-day calendar (admin, city node): a file shaped like cn-2026.json.
    Calendar {
        /// The calendar's year (the file's year must match).
        #[arg(long)]
        year: i32,
        /// {"year", "source", "holidays": [{"date", "name"}], "make_up_workdays": [...]}
        #[arg(long)]
        file: PathBuf,
        /// Show what would change; sign nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Finalize a record format (admin, city node): every node signs it from
    /// then on. Refused while a center has not reported reading it (see
    /// `zongzhi fleet`), unless --override names each such laggard.
    Finalize {
        /// The record format to allow (the next one above the gate).
        #[arg(long)]
        format: u8,
        /// Laggards finalized over, by division code (each one named;
        /// only centers on release 0.2.0 or later, which hold aside what
        /// they cannot read).
        #[arg(long = "override", value_delimiter = ',')]
        overrides: Vec<String>,
        /// Why the override was taken (kept in the signed policy).
        #[arg(long, default_value = "")]
        reason: String,
        /// Check and show; sign nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sign changes (admin, city node): KEY=VALUE pairs and/or a merge-patch file.
    ///
    /// KEY is a dotted path into the policy, e.g. deadlines.resolution_working_days=10,
    /// windows.fire.name=消防, windows.market.retired=true,
    /// categories.01.children.0105.name=彩礼纠纷. VALUE is JSON if it parses, else a string.
    Set {
        /// KEY=VALUE pairs, merged into one patch (after --patch).
        pairs: Vec<String>,
        /// A JSON merge patch (RFC 7396) over the editable keys.
        #[arg(long)]
        patch: Option<PathBuf>,
        /// Show what would change; sign nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(c: &Client, cmd: Option<PolicyCommand>, as_json: bool) -> anyhow::Result<()> {
    c.require_login()?;
    match cmd.unwrap_or(PolicyCommand::Show { version: None }) {
        PolicyCommand::Show { version } => {
            let path = match version {
                Some(v) => format!("/api/policy?version={v}"),
                None => "/api/policy".to_string(),
            };
            let v = c.get(&path)?;
            if as_json {
                return print_json(&v);
            }
            show(&v)?;
        }
        PolicyCommand::Diff { from, to } => {
            let from = match from {
                Some(f) => f,
                None => {
                    let to = match to {
                        Some(t) => t,
                        None => c.get("/api/policy")?["version"].as_u64().context("the policy has no version")?,
                    };
                    if to <= 1 {
                        bail!("version {to} is the first; there is nothing before it to compare with");
                    }
                    to - 1
                }
            };
            let mut q = vec![("from", from.to_string())];
            if let Some(t) = to {
                q.push(("to", t.to_string()));
            }
            let v = c.get_query("/api/policy/diff", &q)?;
            if as_json {
                return print_json(&v);
            }
            let n = v["changes"].as_array().map(Vec::len).unwrap_or(0);
            outln!("第 {} 版 → 第 {} 版: {n} 项变更", s(&v["from"]), s(&v["to"]))?;
            print_changes(&v["changes"])?;
        }
        PolicyCommand::Calendar { year, file, dry_run } => {
            let patch = calendar_patch(year, &file)?;
            submit(c, &patch, dry_run, as_json)?;
        }
        PolicyCommand::Set { pairs, patch, dry_run } => {
            let patch = set_patch(&pairs, patch.as_deref())?;
            submit(c, &patch, dry_run, as_json)?;
        }
        PolicyCommand::Finalize { format, overrides, reason, dry_run } => {
            let body = json!({"format": format, "override": overrides, "reason": reason, "dry_run": dry_run});
            let v = c.post("/api/policy/finalize", &body)?;
            if as_json {
                return print_json(&v);
            }
            if dry_run {
                outln!("dry run: finalizing format {} would sign policy version {}; nothing signed", s(&v["format"]), s(&v["version"]))?;
            } else {
                outln!("finalized record format {}: signed policy version {}; every node signs format {} once it holds it", s(&v["format"]), s(&v["version"]), s(&v["format"]))?;
            }
            if let Some(o) = v["overridden"].as_array().filter(|o| !o.is_empty()) {
                outln!("finalized over: {}", o.iter().map(s).collect::<Vec<_>>().join(", "))?;
            }
        }
    }
    Ok(())
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

/// POSTs a merge patch; prints the changes and the (would-be) version.
fn submit(c: &Client, patch: &Value, dry_run: bool, as_json: bool) -> anyhow::Result<()> {
    let path = if dry_run { "/api/policy?dry_run=true" } else { "/api/policy" };
    let v = c.post(path, patch)?;
    if as_json {
        return print_json(&v);
    }
    print_changes(&v["changes"])?;
    if dry_run {
        outln!("dry run: signing would make policy version {}; nothing signed", s(&v["version"]))?;
    } else {
        outln!("signed policy version {}", s(&v["version"]))?;
    }
    Ok(())
}

fn kind_zh(kind: &Value) -> &'static str {
    match kind.as_str() {
        Some("added") => "新增",
        Some("removed") => "删除",
        Some("changed") => "修改",
        _ => "变更",
    }
}

fn print_changes(changes: &Value) -> anyhow::Result<()> {
    let list = changes.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        outln!("  (no changes)")?;
    }
    for ch in list {
        let text = ch["text"].as_str().filter(|t| !t.is_empty()).map(String::from).unwrap_or_else(|| s(&ch["path"]));
        outln!("  [{}] {}  ({})", kind_zh(&ch["kind"]), text, s(&ch["path"]))?;
        if ch["kind"] == "changed" {
            let (old, new) = (compact(&ch["old"]), compact(&ch["new"]));
            if old.chars().count() <= 60 && new.chars().count() <= 60 {
                outln!("      {old} → {new}")?;
            }
        }
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// The patch adding (or replacing) `year`'s calendar from a file shaped like
/// cn-2026.json. The file's own `year` must be `year`: checked before any request.
pub fn calendar_patch(year: i32, file: &Path) -> anyhow::Result<Value> {
    let text = crate::out::read_input_string(file)?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
    let Some(obj) = doc.as_object() else {
        bail!("{} is not a calendar: expected an object {{\"year\", \"source\", \"holidays\", \"make_up_workdays\"}}", file.display());
    };
    let file_year = match obj.get("year") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(x)) => x.trim().parse::<i64>().ok(),
        _ => None,
    };
    match (obj.get("year"), file_year) {
        (None, _) => bail!("{} has no \"year\" field; a calendar file names its year (like cn-2026.json)", file.display()),
        (Some(y), None) => bail!("{}: \"year\" is {y}, not a year", file.display()),
        (Some(_), Some(fy)) if fy != i64::from(year) => {
            bail!("{} is the calendar for {fy}, but --year is {year}: nothing was sent", file.display())
        }
        _ => {}
    }
    if !obj.get("holidays").is_some_and(Value::is_array) {
        bail!("{}: \"holidays\" must be a list of {{\"date\", \"name\"}}", file.display());
    }
    if obj.get("make_up_workdays").is_some_and(|m| !m.is_array()) {
        bail!("{}: \"make_up_workdays\" must be a list of dates", file.display());
    }
    let mut entry = Map::new();
    for k in ["source", "holidays", "make_up_workdays"] {
        if let Some(v) = obj.get(k) {
            entry.insert(k.to_string(), v.clone());
        }
    }
    if !entry.contains_key("make_up_workdays") {
        entry.insert("make_up_workdays".into(), json!([]));
    }
    Ok(json!({ "calendars": { year.to_string(): entry } }))
}

/// One merge patch from a patch file (if any) and KEY=VALUE pairs (dotted
/// paths; VALUE is JSON when it parses, else a string). Later pairs win.
pub fn set_patch(pairs: &[String], patch_file: Option<&Path>) -> anyhow::Result<Value> {
    if pairs.is_empty() && patch_file.is_none() {
        bail!("nothing to set: give KEY=VALUE pairs (e.g. deadlines.resolution_working_days=10) or --patch FILE");
    }
    let mut patch = match patch_file {
        Some(p) => {
            let text = crate::out::read_input_string(p)?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", p.display()))?;
            if !v.is_object() {
                bail!("{} must hold a JSON object (a merge patch)", p.display());
            }
            v
        }
        None => Value::Object(Map::new()),
    };
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            bail!("{pair:?}: expected KEY=VALUE, e.g. windows.fire.name=消防");
        };
        let key = key.trim();
        let path: Vec<&str> = key.split('.').collect();
        if key.is_empty() || path.iter().any(|p| p.is_empty()) {
            bail!("{key:?}: expected a dotted path like deadlines.resolution_working_days");
        }
        let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        insert(&mut patch, &path, value).with_context(|| format!("{pair:?}"))?;
    }
    Ok(patch)
}

fn insert(target: &mut Value, path: &[&str], value: Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else { bail!("empty key") };
    let mut cur = target;
    for (i, part) in parents.iter().enumerate() {
        let here = cur;
        let Some(obj) = here.as_object_mut() else {
            bail!("{} is already given a value; it cannot also have keys", path[..i].join("."));
        };
        cur = obj.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    let Some(obj) = cur.as_object_mut() else {
        bail!("{} is already given a value; it cannot also have keys", parents.join("."));
    };
    obj.insert(last.to_string(), value);
    Ok(())
}

/// Code-keyed entries of an object (or, from an older node, a list of
/// objects with a `code`).
fn entries(v: &Value) -> Vec<(String, &Value)> {
    let mut out: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, x)| (k.clone(), x)).collect(),
        Value::Array(a) => a.iter().map(|x| (s(&x["code"]), x)).collect(),
        _ => Vec::new(),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn retired(v: &Value) -> String {
    if v["retired"] == json!(true) { "已停用".into() } else { String::new() }
}

fn minutes(v: &Value) -> String {
    let Some(m) = v.as_u64() else { return s(v) };
    if m == 0 {
        "立即".into()
    } else if m >= 1440 && m % 1440 == 0 {
        format!("{} 天", m / 1440)
    } else if m >= 60 && m % 60 == 0 {
        format!("{} 小时", m / 60)
    } else {
        format!("{m} 分钟")
    }
}

fn setting(key: &str, v: &Value) -> String {
    if key.ends_with("_minutes") {
        format!("{} ({})", s(v), minutes(v))
    } else if key.ends_with("_working_days") {
        format!("{} 个工作日", s(v))
    } else if key.ends_with("_percent") {
        format!("{}%", s(v))
    } else if key.ends_with("_days") {
        format!("{} 天", s(v))
    } else {
        s(v)
    }
}

const DEADLINE_ZH: &[(&str, &str)] = &[
    ("registration_minutes", "登记时限"),
    ("routing_minutes", "分流时限"),
    ("routing_urgent_minutes", "紧急案件分流时限"),
    ("on_site_urgent_minutes", "紧急案件到场时限"),
    ("sign_for_minutes", "签收时限"),
    ("sign_for_urgent_minutes", "紧急案件签收时限"),
    ("resolution_working_days", "办理时限（一般）"),
    ("resolution_complex_working_days", "办理时限（复杂）"),
    ("feedback_minutes", "反馈时限"),
    ("rehandle_working_days", "重办时限"),
    ("max_extension_working_days", "最长延期"),
    ("due_soon_percent", "临期提醒"),
    ("max_due_days", "最长办理期限"),
    ("normal_after_minutes", "普通督办（超期后）"),
    ("yellow_after_minutes", "黄牌（超期后）"),
    ("red_after_minutes", "红牌（超期后）"),
    ("interview_after_minutes", "约谈（超期后）"),
];

fn label(key: &str) -> &str {
    DEADLINE_ZH.iter().find(|(k, _)| *k == key).map(|(_, l)| *l).unwrap_or(key)
}

/// A table of settings, in the order of `DEADLINE_ZH` (then any others).
fn settings_table(v: &Value) -> Vec<Vec<String>> {
    let Some(obj) = v.as_object() else { return Vec::new() };
    let rank = |k: &str| DEADLINE_ZH.iter().position(|(key, _)| *key == k).unwrap_or(usize::MAX);
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| (rank(k), k.to_string()));
    keys.into_iter().map(|k| vec![label(k).to_string(), k.clone(), setting(k, &obj[k])]).collect()
}

fn show(v: &Value) -> anyhow::Result<()> {
    outln!("策略 第 {} 版  签发于 {}  签发者 {}", s(&v["version"]), s(&v["signed_at"]), table::truncate(&s(&v["signed_by"]), 18))?;
    let versions: Vec<String> = v["versions"].as_array().into_iter().flatten().map(|x| format!("{} ({})", s(&x["version"]), s(&x["signed_at"]))).collect();
    if !versions.is_empty() {
        outln!("版本: {}", versions.join(", "))?;
    }

    outln!()?;
    outln!("工作日历")?;
    let cal_rows: Vec<Vec<String>> = entries(&v["calendars"])
        .into_iter()
        .map(|(year, cal)| {
            let holidays = cal["holidays"].as_array().map(Vec::len).unwrap_or(0);
            let makeup = cal["make_up_workdays"].as_array().map(Vec::len).unwrap_or(0);
            vec![year, format!("{holidays} 天"), format!("{makeup} 天"), table::truncate(&s(&cal["source"]), 60)]
        })
        .collect();
    out!("{}", table::render(&["年份", "节假日", "调休上班", "来源"], &cal_rows))?;
    if v["calendar_years"].is_array() && cal_rows.is_empty() {
        outln!("calendar years: {}", s(&v["calendar_years"]))?;
    }
    let st = &v["calendar_status"];
    if let Some(missing) = st["missing"].as_array().filter(|m| !m.is_empty()) {
        outln!("缺少工作日历: {}", missing.iter().map(s).collect::<Vec<_>>().join(", "))?;
    }
    if let Some(w) = st["warning"].as_str() {
        outln!("!! {w}")?;
    }

    outln!()?;
    let mut rows = Vec::new();
    for (code, cat) in entries(&v["categories"]) {
        rows.push(vec![code, s(&cat["name"]), String::new(), String::new(), retired(cat)]);
        for (sc, sub) in entries(&cat["children"]) {
            let state = if cat["retired"] == json!(true) { "已停用".to_string() } else { retired(sub) };
            rows.push(vec![sc, s(&cat["name"]), s(&sub["name"]), s(&sub["default_window"]), state]);
        }
    }
    out!("{}", table::render(&["代码", "大类", "小类", "默认窗口", "状态"], &rows))?;

    outln!()?;
    let windows: Vec<Vec<String>> = entries(&v["windows"]).into_iter().map(|(code, w)| vec![code, s(&w["name"]), retired(w)]).collect();
    out!("{}", table::render(&["窗口", "名称", "状态"], &windows))?;

    outln!()?;
    outln!("时限")?;
    out!("{}", table::render(&["项目", "键", "取值"], &settings_table(&v["deadlines"])))?;
    if v["supervision"].is_object() {
        outln!()?;
        outln!("督办升级")?;
        out!("{}", table::render(&["项目", "键", "取值"], &settings_table(&v["supervision"])))?;
    }
    outln!()?;
    let mut other = Vec::new();
    if !v["repeat_window_days"].is_null() {
        other.push(format!("重复诉求判定期 {} 天", s(&v["repeat_window_days"])));
    }
    if !v["report_grace_minutes"].is_null() {
        other.push(format!("月报签署宽限 {}", minutes(&v["report_grace_minutes"])));
    }
    if !v["calendar_warning_from"].is_null() {
        other.push(format!("次年日历缺失提醒自 {} 起", s(&v["calendar_warning_from"])));
    }
    if !other.is_empty() {
        outln!("{}", other.join("  "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_merge_into_one_patch() {
        let pairs: Vec<String> =
            ["deadlines.resolution_working_days=10", "windows.fire.name=消防", "windows.fire.retired=false", "categories.01.children.0105.name=彩礼纠纷", "calendar_warning_from=10-15"]
                .iter()
                .map(|x| x.to_string())
                .collect();
        let p = set_patch(&pairs, None).unwrap();
        assert_eq!(
            p,
            json!({"deadlines": {"resolution_working_days": 10}, "windows": {"fire": {"name": "消防", "retired": false}},
                   "categories": {"01": {"children": {"0105": {"name": "彩礼纠纷"}}}}, "calendar_warning_from": "10-15"})
        );
        assert!(set_patch(&["deadlines=1".into(), "deadlines.x=2".into()], None).is_err());
        assert!(set_patch(&["novalue".into()], None).is_err());
        assert!(set_patch(&["a..b=1".into()], None).is_err());
        assert!(set_patch(&[], None).is_err());
    }

    #[test]
    fn calendar_file_year_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cal.json");
        std::fs::write(&f, r#"{"year": 2027, "source": "s", "rule": "r", "holidays": [{"date": "2027-01-01", "name": "元旦"}], "make_up_workdays": []}"#).unwrap();
        let p = calendar_patch(2027, &f).unwrap();
        assert_eq!(p, json!({"calendars": {"2027": {"source": "s", "holidays": [{"date": "2027-01-01", "name": "元旦"}], "make_up_workdays": []}}}));
        let e = calendar_patch(2028, &f).unwrap_err().to_string();
        assert!(e.contains("2027") && e.contains("--year is 2028"), "{e}");
    }
}
