//! Logging in and out, and who and where this session is.

use super::*;

pub fn login(cx: &Ctx, user: String, password: Option<String>, recovery_code: Option<String>) -> anyhow::Result<()> {
    let password = read_password(password)?;
    let mut devices = cx.saved.as_ref().map(|s| s.devices.clone()).unwrap_or_default();
    let key = client::device_key(&cx.node, &user);
    let mut body = json!({"username": user, "password": password});
    if let Some(d) = devices.get(&key) {
        body["device"] = json!(d);
    }
    if let Some(c) = recovery_code {
        body["recovery_code"] = json!(c);
    }
    let v = cx.c.post("/api/login", &body)?;
    let token = v["token"].as_str().context("no token in the answer")?.to_string();
    if let Some(d) = v["device"].as_str() {
        devices.insert(key, d.to_string());
    }
    // The certificate trusted now is remembered for this node, by its
    // absolute path (a later command may run elsewhere).
    let cacert = match &cx.cacert {
        Some(p) => Some(std::fs::canonicalize(p).with_context(|| format!("--cacert {}", p.display()))?),
        None => None,
    };
    client::save_session(&cx.session_file, &SavedSession { node: cx.node.clone(), token: Some(token), username: user.clone(), cacert, devices })?;
    outln!("logged in to {} as {user} ({}) until {}", cx.node, s(&v["role"]), s(&v["expires_at"]))?;
    if let Some(p) = &cx.cacert {
        outln!("the node's certificate {} is remembered for later commands to {}", p.display(), cx.node)?;
    }
    Ok(())
}

pub fn logout(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    cx.c.post("/api/logout", &json!({}))?;
    // The token goes; the node, its certificate and the device tokens stay.
    if let Some(saved) = &cx.saved {
        let kept = SavedSession { token: None, devices: saved.devices.clone(), cacert: saved.cacert.clone(), node: saved.node.clone(), username: saved.username.clone() };
        client::save_session(&cx.session_file, &kept)?;
    }
    outln!("logged out")?;
    Ok(())
}

pub fn whoami(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    let v = cx.c.get("/api/me")?;
    if cx.json {
        cx.print(&v)?;
    } else {
        outln!("{} ({}) {} at {} {}", s(&v["username"]), s(&v["display_name"]), s(&v["role"]), s(&v["unit"]), s(&v["unit_name"]))?;
    }
    Ok(())
}

/// `ready`: the readiness probe, for scripts and container health checks.
pub fn ready(cx: &Ctx) -> anyhow::Result<()> {
    let (status, v) = cx.c.probe("/api/health/ready")?;
    if cx.json {
        cx.print(&v)?;
    } else if status == 200 {
        outln!("ready")?;
    }
    if status == 200 {
        return Ok(());
    }
    let reasons: Vec<String> = v["reasons"].as_array().into_iter().flatten().map(|r| format!("{}: {}", s(&r["code"]), s(&r["message"]))).collect();
    Err(crate::NotReady(format!("not ready ({status}): {}", if reasons.is_empty() { v.to_string() } else { reasons.join("; ") })).into())
}

pub fn health(cx: &Ctx) -> anyhow::Result<()> {
    let v = cx.c.get("/api/health")?;
    if cx.json {
        cx.print(&v)?;
    } else {
        outln!("{} {} ({}) node {} — {} records", s(&v["division"]), s(&v["name"]), s(&v["level_zh"]), s(&v["node_short"]), s(&v["records"]))?;
    }
    Ok(())
}
