//! Accounts, the integrity check and certificates (admin).

use super::*;

pub fn user(cx: &Ctx, command: UserCommand) -> anyhow::Result<()> {
    cx.c.require_login()?;
    match command {
        UserCommand::Add { username, role, display_name, password, windows, mediator } => {
            let password = read_password(password)?;
            let body = json!({"username": username, "password": password, "role": role, "display_name": display_name, "windows": windows, "mediator": mediator});
            let v = cx.c.post("/api/users", &body)?;
            outln!("created {} ({})", s(&v["username"]), s(&v["role"]))?;
        }
        UserCommand::List => {
            let v = cx.c.get("/api/users")?;
            if cx.json {
                return cx.print(&v);
            }
            let rows: Vec<Vec<String>> = v["users"].as_array().into_iter().flatten().map(|u| vec![s(&u["username"]), s(&u["display_name"]), s(&u["role"]), s(&u["created_at"])]).collect();
            out!("{}", table::render(&["用户名", "姓名", "角色", "创建时间"], &rows))?;
        }
    }
    Ok(())
}

pub fn integrity(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get("/api/integrity")?;
    if cx.json {
        cx.print(&v)?;
    } else {
        let r = &v["report"];
        outln!("records checked: {}, own chain length: {}", s(&r["records_checked"]), s(&r["own_chain_length"]))?;
        for p in r["problems"].as_array().into_iter().flatten() {
            outln!("PROBLEM {}: {}", s(&p["record"]), s(&p["detail"]))?;
        }
        if v["ok"] != json!(true) {
            bail!("integrity problems found");
        }
        outln!("ok")?;
    }
    Ok(())
}

pub fn cert_issue(cx: &Ctx, request: PathBuf, out: PathBuf, valid_days: u32, yes: bool) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let text = crate::out::read_input_string(&request)?;
    // What would be signed, checked by the node, before anything is.
    let p = cx.c.post("/api/certs/issue", &json!({"request": text, "valid_days": valid_days, "dry_run": true}))?;
    outln!("enrollment request from {}:", request.display())?;
    outln!("  区划代码  {} ({})", s(&p["division"]), s(&p["level_zh"]))?;
    outln!("  名称      {}", s(&p["name"]))?;
    outln!("  公钥      {}", s(&p["key"]))?;
    outln!("  请求时间  {}; valid for {} days", s(&p["requested_at"]), valid_days)?;
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!("not signed: check the request above with the center by phone (compare the key), then run again with --yes");
        }
        eprint!("sign this certificate? compare the key with the center by phone first [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "是") {
            bail!("not signed");
        }
    }
    let v = cx.c.post("/api/certs/issue", &json!({"request": text, "valid_days": valid_days}))?;
    if crate::out::is_dash(&out) {
        crate::out::write_bytes(s(&v["chain"]).as_bytes())?;
        eprintln!("issued a certificate for {} {}; give the chain above to that center (zongzhi-node import-cert)", s(&v["division"]), s(&v["name"]));
    } else {
        std::fs::write(&out, s(&v["chain"])).with_context(|| format!("writing {}", out.display()))?;
        outln!("issued a certificate for {} {}; give {} to that center (zongzhi-node import-cert)", s(&v["division"]), s(&v["name"]), out.display())?;
    }
    Ok(())
}

pub fn cert_list(cx: &Ctx, all: bool) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get(if all { "/api/certs?revoked=include" } else { "/api/certs" })?;
    if cx.json {
        return cx.print(&v);
    }
    let rows: Vec<Vec<String>> = v["certs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let revoked = if m["revoked"].is_null() { String::new() } else { format!("已吊销(>{})", s(&m["revoked"]["cutoff_seq"])) };
            vec![s(&m["division"]), s(&m["name"]), s(&m["key_short"]), s(&m["issuer"]), s(&m["not_after"]), revoked]
        })
        .collect();
    out!("{}", table::render(&["区划代码", "名称", "密钥", "签发者", "有效期至", ""], &rows))?;
    if let Some(n) = v["revoked_hidden"].as_u64().filter(|n| *n > 0) {
        outln!("({n} revoked certificates not shown: --all)")?;
    }
    Ok(())
}

pub fn cert_revoke(cx: &Ctx, key: String, cutoff_seq: Option<u64>, reason: String, dry_run: bool) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let key = node_key(cx, "--key", &key, false)?;
    let v = cx.c.post("/api/certs/revoke", &json!({"key": key.to_string(), "cutoff_seq": cutoff_seq, "reason": reason, "dry_run": dry_run}))?;
    if cx.json {
        return cx.print(&v);
    }
    outln!("{} {}: this center holds the key's records up to seq {}; cut-off {}", s(&v["division"]), s(&v["name"]), s(&v["held_seq"]), s(&v["cutoff_seq"]))?;
    let voided = v["voided"].as_array().map(Vec::as_slice).unwrap_or_default();
    if voided.is_empty() {
        outln!("voids nothing this center holds")?;
    } else {
        outln!("voids {} records this center holds:", voided.len())?;
        for r in voided {
            outln!("  seq {}  {} {}  {}", s(&r["seq"]), s(&r["action_zh"]), s(&r["number"]), s(&r["signed_at"]))?;
        }
    }
    if dry_run {
        outln!("dry run: nothing signed")?;
    } else {
        outln!("revoked {} ({})", s(&v["revoked"]), s(&v["division"]))?;
    }
    Ok(())
}

pub fn cert_verify(cx: &Ctx, path: PathBuf, root: String) -> anyhow::Result<()> {
    let root = node_key(cx, "--root", &root, true)?;
    verify_chain_file(&path, &root)
}

/// The fewest hex digits of a key taken as its prefix (`cert list` shows 10).
const MIN_KEY_PREFIX: usize = 8;

/// A node key given on the command line: all 64 hex digits, or a unique
/// prefix of at least [`MIN_KEY_PREFIX`] of a key the node holds a
/// certificate for (as `cert list` shows it), looked up in `GET /api/certs`;
/// with `or_root`, the city root key is looked up too. `option` names the
/// option in messages.
pub fn node_key(cx: &Ctx, option: &str, given: &str, or_root: bool) -> anyhow::Result<zongzhi_protocol::NodeId> {
    let prefix = given.trim().to_ascii_lowercase();
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{option} {given:?} is not a key: give the key's hex digits as `zongzhi cert list` shows them (at least {MIN_KEY_PREFIX}) or all 64");
    }
    if prefix.len() == 64 {
        return Ok(zongzhi_protocol::NodeId::from_hex(&prefix)?);
    }
    if prefix.len() < MIN_KEY_PREFIX {
        bail!("{option} {prefix} is too short: give at least {MIN_KEY_PREFIX} hex digits of the key (as `zongzhi cert list` shows it)");
    }
    cx.c.require_login().with_context(|| format!("{option} {prefix} is looked up on the node"))?;
    let v = cx.c.get("/api/certs?revoked=include")?;
    let mut keys: Vec<(String, String)> = v["certs"].as_array().into_iter().flatten().map(|c| (s(&c["key"]), format!("{} {}", s(&c["division"]), s(&c["name"])))).collect();
    if or_root && let Some(root) = v["root"].as_str() {
        keys.push((root.to_string(), "city root key".into()));
    }
    let full = match_key(&prefix, &keys).map_err(|e| anyhow::anyhow!("{option}: {e}"))?;
    Ok(zongzhi_protocol::NodeId::from_hex(&full)?)
}

/// The one key of `keys` (key, what it is) that starts with `prefix`.
fn match_key(prefix: &str, keys: &[(String, String)]) -> Result<String, String> {
    let mut found: Vec<&(String, String)> = keys.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    match found.as_slice() {
        [] => Err(format!("no certificate whose key starts with {prefix} (see `zongzhi cert list`)")),
        [(key, _)] => Ok(key.clone()),
        many => {
            let list: Vec<String> = many.iter().map(|(k, what)| format!("{} {what}", &k[..k.len().min(16)])).collect();
            Err(format!("{prefix} is ambiguous: {} keys start with it ({}); give more digits", many.len(), list.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::match_key;

    #[test]
    fn key_prefixes() {
        let keys: Vec<(String, String)> = [("ab12cd34ef", "330106000000 示例区"), ("ab12cd3400", "330107000000 另一区"), ("9f00112233", "330100000000 示例市")]
            .iter()
            .map(|(k, w)| (k.repeat(7)[..64].to_string(), w.to_string()))
            .collect();
        assert_eq!(match_key("9f001122", &keys), Ok(keys[2].0.clone()));
        assert_eq!(match_key("ab12cd34e", &keys), Ok(keys[0].0.clone()));
        let err = match_key("ab12cd34", &keys).unwrap_err();
        assert!(err.contains("ambiguous") && err.contains("330106000000") && err.contains("330107000000"), "{err}");
        let err = match_key("00000000", &keys).unwrap_err();
        assert!(err.contains("no certificate whose key starts with 00000000"), "{err}");
        // The root key listed as a certificate too counts once.
        let mut twice = keys.clone();
        twice.push((keys[2].0.clone(), "city root key".into()));
        assert_eq!(match_key("9f001122", &twice), Ok(keys[2].0.clone()));
    }
}
