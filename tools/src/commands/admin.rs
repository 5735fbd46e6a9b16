//! Accounts, the integrity check and certificates (admin).

use super::*;

pub fn user(cx: &Ctx, command: UserCommand) -> anyhow::Result<()> {
    cx.c.require_login()?;
    match command {
        UserCommand::Add { username, role, display_name, password } => {
            let password = read_password(password)?;
            let v = cx.c.post("/api/users", &json!({"username": username, "password": password, "role": role, "display_name": display_name}))?;
            println!("created {} ({})", s(&v["username"]), s(&v["role"]));
        }
        UserCommand::List => {
            let v = cx.c.get("/api/users")?;
            if cx.json {
                return cx.print(&v);
            }
            let rows: Vec<Vec<String>> = v["users"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| vec![s(&u["username"]), s(&u["display_name"]), s(&u["role"]), s(&u["created_at"])])
                .collect();
            print!("{}", table::render(&["用户名", "姓名", "角色", "创建时间"], &rows));
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
        println!("records checked: {}, own chain length: {}", s(&r["records_checked"]), s(&r["own_chain_length"]));
        for p in r["problems"].as_array().into_iter().flatten() {
            println!("PROBLEM {}: {}", s(&p["record"]), s(&p["detail"]));
        }
        if v["ok"] != json!(true) {
            bail!("integrity problems found");
        }
        println!("ok");
    }
    Ok(())
}

pub fn cert_issue(cx: &Ctx, request: PathBuf, out: PathBuf, valid_days: u32) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let text = std::fs::read_to_string(&request).with_context(|| format!("reading {}", request.display()))?;
    let v = cx.c.post("/api/certs/issue", &json!({"request": text, "valid_days": valid_days}))?;
    std::fs::write(&out, s(&v["chain"]))?;
    println!("issued a certificate for {} {}; give {} to that center (zongzhi-node import-cert)", s(&v["division"]), s(&v["name"]), out.display());
    Ok(())
}

pub fn cert_list(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get("/api/certs")?;
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
    print!("{}", table::render(&["区划代码", "名称", "密钥", "签发者", "有效期至", ""], &rows));
    Ok(())
}

pub fn cert_revoke(cx: &Ctx, key: String, cutoff_seq: u64, reason: String) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.post("/api/certs/revoke", &json!({"key": key, "cutoff_seq": cutoff_seq, "reason": reason}))?;
    println!("revoked {} ({})", s(&v["revoked"]), s(&v["division"]));
    Ok(())
}
