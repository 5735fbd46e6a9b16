//! Logging in and out, and who and where this session is.

use super::*;

pub fn login(cx: &Ctx, user: String, password: Option<String>) -> anyhow::Result<()> {
    let password = read_password(password)?;
    let v = cx.c.post("/api/login", &json!({"username": user, "password": password}))?;
    let token = v["token"].as_str().context("no token in the answer")?.to_string();
    client::save_session(&cx.session_file, &SavedSession { node: cx.node.clone(), token, username: user.clone() })?;
    outln!("logged in to {} as {user} ({}) until {}", cx.node, s(&v["role"]), s(&v["expires_at"]))?;
    Ok(())
}

pub fn logout(cx: &Ctx) -> anyhow::Result<()> {
    cx.c.require_login()?;
    cx.c.post("/api/logout", &json!({}))?;
    let _ = std::fs::remove_file(&cx.session_file);
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
