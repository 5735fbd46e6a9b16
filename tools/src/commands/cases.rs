//! Filing, the work queue, search, one case, attachments.

use super::*;

pub fn file(cx: &Ctx, a: FileArgs) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut body = json!({
        "title": a.title, "content": a.content, "category": a.category,
        "request_type": a.request_type, "channel": a.channel,
        "urgency": if a.urgent { "urgent" } else { "normal" },
        "complexity": if a.complex { "complex" } else { "general" },
        "place": {"address": a.address}, "people_involved": a.people,
    });
    if let Some(t) = a.received_at {
        body["received_at"] = json!(t);
    }
    if let Some(name) = a.contact_name {
        body["contact"] = json!({"name": name, "phone": a.contact_phone, "id_number": a.contact_id, "address": a.contact_address});
    }
    if let Some(d) = a.arose_in {
        body["arose_in"] = json!(d);
    }
    let v = cx.c.post("/api/cases", &body)?;
    if cx.json {
        cx.print(&v)?;
    } else {
        outln!("filed {} ({}) — {}", s(&v["number"]), s(&v["status"]["name"]), s(&v["id"]))?;
        if v["skip_level"] == json!(true) {
            outln!("越级: the matter arose in {} ({})", s(&v["arose_in"]), s(&v["arose_in_name"]))?;
        }
        let r = &v["receipt"];
        if r.is_object() {
            outln!("receipt for the citizen (the query code is shown this once):")?;
            outln!("  查询码 query code: {}", s(&r["query_code"]))?;
            outln!("  核验码 token:      {}", s(&r["token"]))?;
            if let Some(link) = r["link"].as_str() {
                outln!("  查询 link:         {link}")?;
            }
        }
    }
    Ok(())
}

/// 反馈, printing the citizen's rating token (shown this once).
pub fn feedback(cx: &Ctx, case: &str, body: Value) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.post(&format!("/api/cases/{}/actions", urlencode(case)), &body)?;
    if cx.json {
        return cx.print(&v);
    }
    outln!("{} 反馈: {} → {}", s(&v["number"]), s(&v["title"]), s(&v["status"]["name"]))?;
    let inv = &v["rating_invitation"];
    if inv["invited"] == json!(false) {
        outln!("{}", s(&inv["message"]))?;
    } else if inv["sent_by_message"] == json!(true) {
        outln!("the rating token went to the citizen by message (valid until {})", s(&inv["expires_at"]))?;
    } else if inv.is_object() {
        outln!("rating token for the citizen (shown this once, valid until {}): {}", s(&inv["expires_at"]), s(&inv["token"]))?;
        if let Some(link) = inv["link"].as_str() {
            outln!("  评价 link: {link}")?;
        }
    }
    Ok(())
}

/// Checks a receipt with nothing but the root key and a certificate file.
pub fn verify_receipt(cx: &Ctx, token: &str, root: &str, trust: &std::path::Path) -> anyhow::Result<()> {
    use zongzhi_protocol::receipt::{Receipt, trust_from_records};
    let root = zongzhi_protocol::NodeId::from_hex(root.trim()).map_err(|e| anyhow::anyhow!("--root: {e}"))?;
    let text = crate::out::read_input_string(trust)?;
    let bundle: Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not the JSON of /api/public/trust: {e}", trust.display()))?;
    let mut records = Vec::new();
    for h in bundle["records"].as_array().into_iter().flatten() {
        let bytes = hex::decode(h.as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{}: a record is not hex: {e}", trust.display()))?;
        records.push(zongzhi_protocol::Record::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: a record does not check out: {e}", trust.display()))?);
    }
    let trust = trust_from_records(root, &records);
    let receipt = Receipt::parse(token)?;
    let v = receipt.verify(&trust)?;
    if cx.json {
        return cx.print(&json!({"valid": true, "number": receipt.number, "record": receipt.record.to_string(), "center": v.center, "division": v.division.to_string(), "signer": v.signer.to_string(), "signer_revoked": v.signer_revoked}));
    }
    outln!("valid: case {} was registered by {} ({}), filing record {}", receipt.number, v.center, v.division, receipt.record)?;
    if v.signer_revoked {
        outln!("note: that center's key has since been revoked")?;
    }
    Ok(())
}

pub fn queue(cx: &Ctx, filter: ListFilter, limit: u32, after: Option<String>) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut q = vec![("limit", limit.to_string())];
    // With --clock the 时限 column shows this center's clock of that kind.
    let mut sel = None;
    let plain = filter.is_default() && after.is_none();
    let me = if filter.clock.is_some() || (plain && !cx.json) { Some(cx.c.get("/api/me")?) } else { None };
    if let (Some(k), Some(me)) = (&filter.clock, &me) {
        sel = Some((s(&me["unit"]), Some(crate::value_name(k)).filter(|k| k != "any")));
    }
    if let Some(a) = after {
        q.push(("after", a));
    }
    q.extend(filter.query());
    let v = cx.c.get_query("/api/cases", &q)?;
    if cx.json {
        return cx.print(&v);
    }
    let names = unit_names(&cx.c);
    print_cases(&v, &names, sel.as_ref())?;
    // The plain queue also lists the work this center answers for on cases
    // others own (the console's 待反馈 and 待签收 tabs): a village's 反馈
    // after the township resolved its escalated case, say.
    if let (true, Some(me)) = (plain, me) {
        let unit = s(&me["unit"]);
        let mine = cx.c.get_query("/api/cases", &[("limit", limit.to_string()), ("clock", "any".into())])?;
        let elsewhere: Vec<Value> = mine["cases"].as_array().into_iter().flatten().filter(|c| c["owner"].as_str() != Some(unit.as_str())).cloned().collect();
        if !elsewhere.is_empty() {
            outln!()?;
            outln!("本中心的时限（他处承办的案件：待反馈、待签收等；--clock feedback 只看待反馈）")?;
            print_cases(&json!({"cases": elsewhere}), &names, Some(&(unit, None)))?;
        }
    }
    Ok(())
}

pub fn search(cx: &Ctx, text: String, limit: u32, after: Option<String>) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let mut q = vec![("q", text), ("limit", limit.to_string())];
    if let Some(a) = after {
        q.push(("after", a));
    }
    let v = cx.c.get_query("/api/search", &q)?;
    if cx.json {
        return cx.print(&v);
    }
    let kind = match v["kind"].as_str() {
        Some("number") => "按编号",
        Some("phone") => "按电话",
        Some("id_number") => "按身份证号",
        Some("words") => "按关键词",
        _ => "",
    };
    if !kind.is_empty() {
        outln!("{kind}")?;
    }
    print_cases(&v, &unit_names(&cx.c), None)?;
    if let Some(h) = v["hint"].as_str() {
        outln!("{}", h.split(" (").next().unwrap_or(h))?;
    }
    Ok(())
}

pub fn show(cx: &Ctx, case: String) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get(&format!("/api/cases/{}", urlencode(&case)))?;
    if cx.json {
        return cx.print(&v);
    }
    show_case(&v, &unit_names(&cx.c))?;
    Ok(())
}

pub fn attach(cx: &Ctx, case: String, file: PathBuf, name: Option<String>, mime: String) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let bytes = crate::out::read_input(&file)?;
    let name = match name {
        Some(n) => n,
        None if crate::out::is_dash(&file) => anyhow::bail!("--file - (standard input) has no file name: give --name"),
        None => file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let v = cx.c.post_bytes(&format!("/api/cases/{}/attachments", urlencode(&case)), &[("name", name.clone())], &mime, bytes)?;
    if cx.json {
        cx.print(&v)?;
    } else {
        outln!("attached {name} to {}", s(&v["number"]))?;
    }
    Ok(())
}

pub fn download(cx: &Ctx, case: String, blob: String, out: PathBuf) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let bytes = cx.c.get_bytes(&format!("/api/cases/{}/attachments/{}", urlencode(&case), urlencode(&blob)))?;
    crate::out::write_output(&out, &bytes, "the attachment")?;
    Ok(())
}

/// Lifts the public page's locks on a case number (operators, at the node
/// that serves the page).
pub fn public_unlock(cx: &Ctx, case: &str) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.post(&format!("/api/cases/{}/public-unlock", urlencode(case)), &json!({}))?;
    if cx.json {
        return cx.print(&v);
    }
    if v["public_page"] != json!(true) {
        outln!("note: this node does not serve the public page ([public] enabled); lift the lock at the node that does")?;
    }
    outln!("{}: {} client addresses locked out of it on the public page are let in again", s(&v["number"]), s(&v["lifted"]))?;
    Ok(())
}

/// `CODE` or `CODE:WORKING_DAYS`.
fn helper(kind: &str, text: &str) -> anyhow::Result<Value> {
    let (code, days) = match text.split_once(':') {
        Some((c, d)) => (c, Some(d.parse::<u32>().with_context(|| format!("--{kind} {text}: the working days after ':' are a number"))?)),
        None => (text, None),
    };
    Ok(json!({kind: code, "working_days": days}))
}

/// 协办: each helper with its deadline (the policy's default unless given).
pub fn assist(cx: &Ctx, case: &str, windows: &[String], units: &[String], requirements: String) -> anyhow::Result<()> {
    if windows.is_empty() && units.is_empty() {
        bail!("name at least one --window or --unit");
    }
    let helpers = windows.iter().map(|w| helper("window", w)).chain(units.iter().map(|u| helper("unit", u))).collect::<anyhow::Result<Vec<_>>>()?;
    cx.act(case, json!({"action": "request_assistance", "helpers": helpers, "requirements": requirements}))
}

/// 调解协议书: the scans uploaded to the case, then the agreement naming
/// them, its text read from a JSON file.
pub fn agreement(cx: &Ctx, case: &str, file: &std::path::Path, scans: &[PathBuf], mediators: Vec<String>, signed_on: String) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let document: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let mut signatures = Vec::new();
    for scan in scans {
        let bytes = std::fs::read(scan).with_context(|| format!("reading {}", scan.display()))?;
        let name = scan.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "scan".into());
        let mime = match scan.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("pdf") => "application/pdf",
            Some("png") => "image/png",
            Some("jpg") | Some("jpeg") => "image/jpeg",
            _ => "application/octet-stream",
        };
        let v = cx.c.post_bytes(&format!("/api/cases/{}/attachments", urlencode(case)), &[("name", name.clone())], mime, bytes.clone())?;
        let hash = zongzhi_protocol::BlobHash::of(&bytes).to_string();
        if !v["attachments"].as_array().is_some_and(|a| a.iter().any(|x| x["blob"] == json!(hash))) {
            bail!("{name} was not attached to the case");
        }
        signatures.push(hash);
    }
    cx.act(case, json!({"action": "mediation_agreement", "document": document, "signatures": signatures, "mediators": mediators, "signed_on": signed_on}))
}
