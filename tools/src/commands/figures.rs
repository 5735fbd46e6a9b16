//! Statistics, monthly reports, replication status and exports.

use super::*;

pub fn stats(cx: &Ctx, by: crate::StatsBy, period: Option<String>, kpi: Option<String>, scope: Option<String>, csv: Option<PathBuf>) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut q: Vec<(&str, String)> = vec![("by", crate::value_name(&by))];
    if let Some(p) = period {
        q.push(("period", p));
    }
    // The table shows the plan's KPIs unless told (`all`: every one);
    // JSON and CSV carry every KPI unless told.
    let chosen: Option<Vec<String>> = kpi.as_ref().map(|k| k.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect());
    if let Some(k) = kpi.filter(|k| k.trim() != "all") {
        q.push(("kpi", k));
    }
    if let Some(sc) = scope {
        q.push(("scope", sc));
    }
    if let Some(path) = csv {
        q.push(("format", "csv".into()));
        let bytes = cx.c.get_query_bytes("/api/stats", &q)?;
        crate::out::write_output(&path, &bytes, "the statistics as CSV")?;
        return Ok(());
    }
    let v = cx.c.get_query("/api/stats", &q)?;
    if cx.json {
        return cx.print(&v);
    }
    print_stats(&v, &unit_names(&cx.c), chosen.as_deref())?;
    Ok(())
}

pub fn report_sign(cx: &Ctx, period: String, supersede: Option<String>) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.post("/api/reports", &json!({"period": period, "supersede_reason": supersede}))?;
    if cx.json {
        return cx.print(&v);
    }
    outln!("signed report {} for {} {}", s(&v["record"]), s(&v["report"]["unit"]), s(&v["period"]))?;
    if let Some(old) = v["report"]["supersedes"].as_str() {
        outln!("it supersedes report {old} ({})", s(&v["report"]["reason"]))?;
    }
    Ok(())
}

pub fn report_check(cx: &Ctx, period: Option<String>, scope: Option<String>) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(p) = period {
        q.push(("period", p));
    }
    if let Some(sc) = scope {
        q.push(("scope", sc));
    }
    let v = cx.c.get_query("/api/reports", &q)?;
    if cx.json {
        return cx.print(&v);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in v["reports"].as_array().into_iter().flatten() {
        if r["ok"] == json!(true) {
            rows.push(vec![s(&r["unit"]), s(&r["name"]), s(&r["month"]), short_time(&r["signed_at"]), "一致".into(), String::new(), String::new(), String::new()]);
        }
        for d in r["discrepancies"].as_array().into_iter().flatten() {
            rows.push(vec![s(&r["unit"]), s(&r["name"]), s(&r["month"]), short_time(&r["signed_at"]), "不一致".into(), s(&d["figure"]), s(&d["reported"]), s(&d["recomputed"])]);
        }
    }
    out!("{}", table::render(&["单位", "名称", "月份", "签署时间", "核对", "指标", "上报值", "重算值"], &rows))?;
    outln!("{} reports, {} discrepancies", v["reports"].as_array().map(Vec::len).unwrap_or(0), s(&v["discrepancies"]))?;
    if v["discrepancies"].as_u64().unwrap_or(0) > 0 {
        std::process::exit(3);
    }
    Ok(())
}

pub fn sync_status(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get("/api/sync")?;
    if cx.json {
        return cx.print(&v);
    }
    outln!("{} feed head {}", s(&v["division"]), s(&v["feed_head"]))?;
    let rows: Vec<Vec<String>> = v["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                s(&p["division"]),
                s(&p["name"]),
                if p["role"] == "parent" { "上级".into() } else { "下级".into() },
                if p["connected"] == json!(true) { "在线".into() } else { "离线".into() },
                short_time(&p["last_contact"]),
                s(&p["behind_to_peer"]),
                s(&p["behind_from_peer"]),
                format!("{}/{}", s(&p["records_sent"]), s(&p["records_received"])),
                format!("{}/{}", s(&p["bytes_sent"]), s(&p["bytes_received"])),
                s(&p["errors"]),
            ]
        })
        .collect();
    out!("{}", table::render(&["区划代码", "名称", "关系", "连接", "最后联系", "对方待收", "本方待收", "记录 发/收", "字节 发/收", "错误"], &rows))?;
    if let Some(r) = v["refused_handshakes"].as_object().filter(|r| !r.is_empty()) {
        outln!("refused handshakes: {}", r.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "))?;
    }
    for a in v["alarms"].as_array().into_iter().flatten() {
        outln!("!! {} author {} seq {}: {}", s(&a["kind"]), s(&a["author"]), s(&a["seq"]), s(&a["detail"]))?;
    }
    let up = &v["upgrade"];
    outln!("release {}  formats {}  write format {}  held aside {}", s(&up["release"]), formats(&up["formats"]), s(&up["write_format"]), s(&up["parked"]))?;
    for a in up["alarms"].as_array().into_iter().flatten() {
        outln!("!! {}", s(&a["message"]))?;
    }
    Ok(())
}

/// `[3, 4]` as `3–4`.
fn formats(v: &Value) -> String {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => format!("{}–{}", s(a), s(b)),
        _ => "-".into(),
    }
}

/// `zongzhi fleet`: the subtree's centers with their releases and reports.
pub fn fleet(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get("/api/fleet")?;
    if cx.json {
        return cx.print(&v);
    }
    outln!("release {}  gate: write format {} (policy version {})", s(&v["release"]), s(&v["gate"]["write_format"]), s(&v["policy_version"]))?;
    let rows: Vec<Vec<String>> = v["centers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let r = &c["report"];
            let age = c["age_secs"].as_u64().map(|a| match a {
                0..=119 => format!("{a} 秒"),
                120..=7199 => format!("{} 分", a / 60),
                7200..=172_799 => format!("{} 小时", a / 3600),
                _ => format!("{} 天", a / 86_400),
            });
            vec![
                s(&c["division"]),
                s(&c["name"]),
                s(&c["state_zh"]),
                if r.is_null() { "-".into() } else { s(&r["release"]) },
                if r.is_null() { "-".into() } else { formats(&r["formats"]) },
                if r.is_null() { "-".into() } else { s(&r["write_format"]) },
                if r.is_null() { "-".into() } else { s(&r["schema"]) },
                age.unwrap_or_else(|| "-".into()),
                if r.is_null() { "-".into() } else { s(&r["behind_up"]) },
                if r.is_null() { "-".into() } else { s(&r["parked"]) },
                if r.is_null() { "-".into() } else { s(&r["alarms"]) },
            ]
        })
        .collect();
    out!("{}", table::render(&["区划代码", "名称", "状态", "版本", "可读格式", "写入格式", "存储", "报告于", "待上报", "暂存", "告警"], &rows))?;
    match v["finalize"].as_object() {
        None => outln!("the gate is at the newest format this release writes: nothing to finalize")?,
        Some(f) if f["ready"] == json!(true) => outln!("ready to finalize format {}: `zongzhi policy finalize --format {}`", s(&f["format"]), s(&f["format"]))?,
        Some(f) => {
            let laggards = f["laggards"].as_array().map(Vec::as_slice).unwrap_or_default();
            outln!("not ready for format {}: {} centers have not reported reading it", s(&f["format"]), laggards.len())?;
            for l in laggards {
                outln!("  {} {}: {}", s(&l["division"]), s(&l["name"]), s(&l["why"]))?;
            }
        }
    }
    Ok(())
}

pub fn export_cases(cx: &Ctx, a: ExportCasesArgs) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut q: Vec<(&str, String)> = vec![("format", crate::value_name(&a.format))];
    q.extend(a.filter.query());
    let bytes = cx.c.download("/api/cases/export", &q, &a.out)?;
    // To standard output (`--out -`): the data alone there.
    if !crate::out::is_dash(&a.out) {
        outln!("wrote {bytes} bytes to {}", a.out.display())?;
    }
    Ok(())
}
