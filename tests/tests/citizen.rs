//! The citizen in the loop, over real nodes: the receipt checked offline,
//! the public progress page (API and Chromium) hiding personal data and
//! locking a number after wrong codes, the citizen's rating travelling from
//! the city's public page to the village and counting as citizen-given, a
//! reused or expired token refused, a staff rating counted apart, an
//! appeal, 越级 counted against the village where the matter arose, a
//! repeat across two villages found at the township without their contact
//! blobs, and every rating counted in its own month.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, bin, sample_case, wait_case, wait_for};

const VILLAGE1: &str = "330106010001";
const VILLAGE2: &str = "330106010002";

/// Restarts `node` with `lines` appended to its config.
fn reconfigure(node: &mut TestNode, lines: &str) {
    node.stop();
    let mut cfg = std::fs::read_to_string(&node.config).unwrap();
    cfg.push_str(lines);
    std::fs::write(&node.config, cfg).unwrap();
    node.start();
}

fn person(title: &str, phone: &str, id_number: &str) -> Value {
    let mut c = sample_case(title);
    c["contact"] = json!({"name": "李四", "phone": phone, "id_number": id_number, "address": "某村5组"});
    c
}

/// The statistics row of `unit` at `api`'s node for `period`.
fn stats_row(api: &Api, period: &str, unit: &str) -> Value {
    let (status, t) = api.get(&format!("/api/stats?period={period}&by=unit"));
    assert_eq!(status, 200, "{t}");
    t["rows"].as_array().unwrap().iter().find(|r| r["group"] == unit).cloned().unwrap_or(Value::Null)
}

fn resolved_and_fed_back(api: &Api, id: &str, invite: bool) -> Value {
    api.act(id, json!({"action": "sign_for"}));
    api.act(id, json!({"action": "progress", "note": "已约双方到村调解室", "public": true}));
    api.act(id, json!({"action": "progress", "note": "内部：当事人情绪激动，注意安全", "public": false}));
    api.act(id, json!({"action": "resolve", "public_reply": "经调解，双方约定每日施工时间为8点至18点", "internal_note": "内部备注：物业配合"}));
    api.act(id, json!({"action": "feedback", "note": "已电话告知", "invite_rating": invite}))
}

#[test]
fn the_citizen_in_the_loop_across_four_levels() {
    let mut h = Hierarchy::start(2);
    reconfigure(&mut h.city, "[public]\nenabled = true\nurl = \"http://zz.example/public/\"\nrequests_per_minute = 10000\nmax_wrong_codes = 5\n");
    // The villages print the city's public page on their receipts.
    for v in &mut h.villages {
        reconfigure(v, "[public]\nurl = \"http://zz.example/public/\"\n");
    }
    let city = h.city.login("operator", OPERATOR_PASSWORD);
    let county = h.county.login("operator", OPERATOR_PASSWORD);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let town_admin = h.township.login("admin", ADMIN_PASSWORD);
    let v1 = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let v2 = h.villages[1].login("operator", OPERATOR_PASSWORD);
    let public = Api::new(&h.city.url(), None);

    // ---- The receipt, checked offline against the root key.
    let c = v1.file_case(&person("邻里噪音纠纷", "138-0000-1111", ""));
    let (id, number) = (c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string());
    let receipt = c["receipt"].clone();
    assert_eq!(receipt["number"], number.as_str());
    let code = receipt["query_code"].as_str().unwrap().to_string();
    let token = receipt["token"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("{number}.")), "{token}");
    assert!(receipt["qr_svg"].as_str().unwrap().starts_with("<?xml") || receipt["qr_svg"].as_str().unwrap().contains("<svg"), "{receipt}");
    assert!(receipt["link"].as_str().unwrap().starts_with("http://zz.example/public/#n="), "{receipt}");
    // The code is stored only hashed: the case view never shows it again.
    let again = v1.case(&id);
    assert!(again.get("receipt").is_none() && !again.to_string().contains(&code), "the query code is shown once");
    assert_eq!(again["has_query_code"], true);
    let (status, bundle) = public.get("/api/public/trust");
    assert_eq!(status, 200, "{bundle}");
    let trust_file = h.city.dir.path().join("trust.json");
    std::fs::write(&trust_file, bundle.to_string()).unwrap();
    let root = h.city.node_id();
    let verify = |token: &str, root: &str| Command::new(bin("zongzhi")).args(["verify-receipt", token, "--root", root, "--trust"]).arg(&trust_file).output().unwrap();
    let out = verify(&token, &root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("valid") && said.contains(&number) && said.contains("示例社区1工作站"), "{said}");
    // Another number on the same code, a changed character, another root: refused.
    let forged = token.replacen("-000001.", "-000002.", 1);
    assert_ne!(forged, token);
    let mut altered: Vec<char> = token.chars().collect();
    let at = altered.len() - 10;
    altered[at] = if altered[at] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    for (t, r) in [(forged.as_str(), root.as_str()), (altered.as_str(), root.as_str()), (token.as_str(), &h.county.node_id())] {
        let out = verify(t, r);
        assert!(!out.status.success(), "a bad receipt passed: {t} / {r}");
    }
    // The public page checks it too.
    let (status, v) = public.get(&format!("/api/public/receipts/verify?token={token}"));
    assert_eq!((status, v["valid"].as_bool()), (200, Some(true)), "{v}");
    let (status, v) = public.get(&format!("/api/public/receipts/verify?token={forged}"));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("invalid_receipt")), "{v}");

    // ---- Progress at the city's public page: no personal data, no internal notes.
    let fed = resolved_and_fed_back(&v1, &id, true);
    let rating_token = fed["rating_invitation"]["token"].as_str().unwrap().to_string();
    assert!(fed["rating_invitation"]["link"].as_str().unwrap().contains("&r="), "{fed}");
    let path = format!("/api/public/cases/{number}?code={code}");
    // (Polled through the staff API: a citizen asking before the city
    // holds the case gets the wrong-code answer, which counts.)
    wait_case(&h.city, &city, &id, "the feedback at the city", |v| v["status"]["code"] == "fed_back");
    let (status, progress) = public.get(&path);
    assert_eq!(status, 200, "{progress}");
    let text = progress.to_string();
    assert!(text.contains("已约双方到村调解室") && text.contains("8点至18点"), "public notes and the reply are shown: {text}");
    for private in ["内部", "李四", "1111", "某村5组", "楼上住户装修", "operator"] {
        assert!(!text.contains(private), "{private:?} must not be public: {text}");
    }
    assert_eq!(progress["rating_open"], true);
    assert_eq!(progress["handling_unit"], "示例社区1工作站");

    // ---- The page in Chromium, as a phone shows it; the citizen rates there.
    let mut b = Browser::launch();
    b.viewport(390, 844, true);
    b.goto(&format!("{}/public/", h.city.url()));
    b.fill("#number", &number);
    b.fill("#code", &code.to_lowercase());
    b.click("#lookup-submit");
    b.wait("the progress", 15, "!document.querySelector('#case').hidden && document.querySelector('#steps li')");
    let shown = b.text("main");
    assert!(shown.contains("已反馈") && shown.contains("已约双方到村调解室") && shown.contains("示例社区1工作站"), "{shown}");
    assert!(!shown.contains("内部") && !shown.contains("李四") && !shown.contains("138"), "{shown}");
    let width = b.eval("document.documentElement.scrollWidth");
    assert!(width.as_u64().unwrap() <= 390, "the page fits a phone's width: {width}");
    b.screenshot("public-progress-phone");
    b.wait("the rating form", 5, "!document.querySelector('#rate').hidden");
    b.fill("#rate-token", &rating_token);
    b.click("input[name=rating][value=unsatisfied]");
    b.click("input[name=result_rating][value=unsatisfied]");
    b.fill("#rate-comment", "施工时间仍然太早");
    b.click("#rate-submit");
    b.wait("the rating to be taken", 15, "document.querySelector('#rated')");
    // Wrong codes in the browser show the refusal.
    b.fill("#code", "WRONG-CODE1");
    b.click("#lookup-submit");
    b.wait("the refusal", 10, "!document.querySelector('#message').hidden");
    assert!(b.text("#message").contains("查询码不正确"), "{}", b.text("#message"));
    public.get(&path); // a right code clears the count
    drop(b);

    // The city signed it; it travels to the village and counts as citizen-given.
    let at_village = wait_case(&h.villages[0], &v1, &id, "the citizen's rating at the village", |v| v["status"]["code"] == "rated");
    let r = &at_village["ratings"][0];
    assert_eq!((r["by"].as_str(), r["rating"]["code"].as_str(), r["result_rating"]["code"].as_str()), (Some("citizen"), Some("unsatisfied"), Some("unsatisfied")), "{at_village}");
    let last = at_village["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["action"].as_str(), last["unit"].as_str()), (Some("citizen_rate"), Some("330100000000")), "{last}");
    assert!(!last.to_string().contains(&rating_token), "the spent token is never shown");
    // One rating per token: reused, refused.
    let (status, v) = public.post(&format!("/api/public/cases/{number}/rating"), &json!({"token": rating_token, "rating": "satisfied", "result_rating": "satisfied"}));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("already_rated")), "{v}");
    let month = &at_village["timeline"][0]["time"].as_str().unwrap()[..7];
    let row = stats_row(&v1, month, VILLAGE1);
    assert_eq!((row["counts"]["citizen_rated"].as_i64(), row["counts"]["citizen_unsatisfied"].as_i64(), row["counts"]["rated"].as_i64()), (Some(1), Some(1), Some(1)), "{row}");
    assert_eq!(row["kpis"]["satisfaction"]["value"], 0.0, "{row}");
    assert_eq!(row["kpis"]["citizen_rated_share"]["value"], 1.0, "{row}");

    // ---- 差评申诉: the village appeals, the township (the level above) upholds.
    let (status, v) = town_admin.post(&format!("/api/cases/{id}/actions"), &json!({"action": "uphold_appeal", "note": "x"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("no-appeal-pending")), "{v}");
    v1.act(&id, json!({"action": "appeal", "reason": "当事人诉求超出政策范围，已依法答复"}));
    wait_case(&h.township, &town, &id, "the appeal at the township", |v| v["ratings"][0]["appeal"] == "pending");
    town_admin.act(&id, json!({"action": "uphold_appeal", "note": "经核实，答复合法合理"}));
    let after = wait_case(&h.villages[0], &v1, &id, "the decision at the village", |v| v["ratings"][0]["appeal"] == "upheld");
    assert_eq!(after["ratings"].as_array().unwrap().len(), 1, "the rating is kept");
    assert!(after["allowed_actions"].as_array().unwrap().contains(&json!("archive")), "{after}");
    let row = stats_row(&v1, month, VILLAGE1);
    assert_eq!((row["counts"]["appeal_upheld"].as_i64(), row["counts"]["citizen_rated"].as_i64()), (Some(1), Some(0)), "{row}");

    // ---- A staff-entered rating counts apart.
    let s = v2.file_case(&person("道路积水", "13900002222", ""));
    let sid = s["id"].as_str().unwrap().to_string();
    let fed = resolved_and_fed_back(&v2, &sid, false);
    assert!(fed.get("rating_invitation").is_none(), "{fed}");
    v2.act(&sid, json!({"action": "rate", "rating": "satisfied", "result_rating": "basic"}));
    let row = stats_row(&v2, month, VILLAGE2);
    assert_eq!((row["counts"]["rated"].as_i64(), row["counts"]["citizen_rated"].as_i64()), (Some(1), Some(0)), "{row}");
    assert_eq!(row["kpis"]["staff_satisfaction"]["value"], 1.0, "{row}");
    assert_eq!(row["kpis"]["satisfaction"]["value"], Value::Null, "the target's figure has no citizen rating: {row}");
    // While a citizen is invited, staff may not pre-empt them.
    let p = v2.file_case(&person("路灯不亮", "13900003333", ""));
    let pid = p["id"].as_str().unwrap().to_string();
    resolved_and_fed_back(&v2, &pid, true);
    let (status, v) = v2.post(&format!("/api/cases/{pid}/actions"), &json!({"action": "rate", "rating": "satisfied"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("citizen-invited")), "{v}");

    // ---- A repeat across two villages, found at the township without the contact blobs.
    let a = v1.file_case(&person("宅基地边界纠纷", "+86 137 0000 4444", ""));
    let b = v2.file_case(&person("宅基地边界纠纷", "13700004444", ""));
    let (an, bn) = (a["number"].as_str().unwrap().to_string(), b["number"].as_str().unwrap().to_string());
    let groups = wait_for("the repeat at the township", 20, || {
        let (status, v) = town.get(&format!("/api/repeats?period={month}"));
        assert_eq!(status, 200, "{v}");
        let g = v["groups"].as_array().unwrap().iter().find(|g| g["cases"].as_array().unwrap().iter().any(|c| c["number"] == an.as_str())).cloned();
        g.filter(|g| g["cases"].as_array().unwrap().iter().any(|c| c["number"] == bn.as_str()))
    });
    assert_eq!(groups["kind"], "several_centers", "{groups}");
    let at_town = town.case(a["id"].as_str().unwrap());
    assert_ne!(at_town["contact"]["available"], true, "the township does not hold the village's contact: {at_town}");
    // At intake the township sees both as the same person's, by phone alone.
    let (status, v) = town.get("/api/cases/similar?phone=13700004444&category=0202");
    assert_eq!(status, 200, "{v}");
    let found: Vec<&str> = v["cases"].as_array().unwrap().iter().map(|c| c["number"].as_str().unwrap()).collect();
    assert!(found.contains(&an.as_str()) && found.contains(&bn.as_str()), "{v}");

    // ---- 越级: a filing at the county about a matter in village 1, by a
    // complainant with no earlier case there, counts against village 1.
    let mut skip = person("土地承包纠纷", "13600005555", "");
    skip["arose_in"] = json!(VILLAGE1);
    let k = county.file_case(&skip);
    assert_eq!((k["skip_level"].as_bool(), k["arose_in"].as_str()), (Some(true), Some(VILLAGE1)), "{k}");
    // The same person and category that village 1 already had: not 越级.
    let mut known = person("宅基地边界纠纷", "13700004444", "");
    known["arose_in"] = json!(VILLAGE1);
    let k2 = county.file_case(&known);
    assert_eq!(k2["skip_level"], false, "{k2}");
    // The county sees it as 越级重复: filed above while the village's case is open.
    let (status, v) = county.get(&format!("/api/repeats?period={month}"));
    assert_eq!(status, 200, "{v}");
    let k2n = k2["number"].as_str().unwrap();
    let g = v["groups"].as_array().unwrap().iter().find(|g| g["cases"].as_array().unwrap().iter().any(|c| c["number"] == k2n)).cloned().unwrap_or(Value::Null);
    assert_eq!(g["kind"], "over_open_case", "{v}");
    // A 发生地 outside the county is refused.
    let mut outside = person("x", "1", "");
    outside["arose_in"] = json!("330107010001");
    let (status, _) = county.post("/api/cases", &outside);
    assert_eq!(status, 400);
    let row = stats_row(&county, month, VILLAGE1);
    assert_eq!(row["counts"]["skip_level"], 1, "counted against the village: {row}");
    assert_eq!(row["skip_level"]["count"], 1, "{row}");
    let row = stats_row(&county, month, "330106000000");
    assert_eq!(row["counts"]["skip_level_filed"], 1, "{row}");
}

/// A single village with its own public page: an expired token is refused;
/// a 不满意, then 重办 and a 满意 a month later, both count, each in its
/// month; a report of an open month is refused, a closed one signs, and a
/// second one supersedes it with a reason.
#[test]
fn every_rating_counts_in_its_month_and_tokens_expire() {
    let public = "supervision_interval_secs = 1\n[public]\nenabled = true\nrequests_per_minute = 10000\n";
    // (enabled: feedback invites the citizen by default.)
    let mut v = TestNode::init_with(VILLAGE1, "示例社区1工作站", public);
    v.start();
    let op = v.login("operator", OPERATOR_PASSWORD);
    let c = op.file_case(&person("噪音扰民", "13800006666", ""));
    let (id, number) = (c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string());
    let fed = resolved_and_fed_back(&op, &id, true);
    let token = fed["rating_invitation"]["token"].as_str().unwrap().to_string();
    // A wrong token: refused, and counted towards the number's lock.
    let anon = Api::new(&v.url(), None);
    let rate = |token: &str, rating: &str| anon.post(&format!("/api/public/cases/{number}/rating"), &json!({"token": token, "rating": rating, "result_rating": rating}));
    let (status, e) = rate("AAAAAAAAAAAAAAAAAAAAAAAAAA", "satisfied");
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("wrong_code")), "{e}");
    // A week and a day later (the policy's token lifetime is 7 days) the token has expired.
    let lines = std::fs::read_to_string(&v.config).unwrap();
    let month1 = &fed["timeline"][0]["time"].as_str().unwrap()[..7].to_string();
    v.stop();
    std::fs::write(&v.config, lines.replace("[public]", "clock_offset_secs = 691200\n[public]")).unwrap();
    v.start();
    let (status, e) = rate(&token, "satisfied");
    assert_eq!((status, e["error"]["code"].as_str()), (410, Some("token_expired")), "{e}");
    let op = v.login("operator", OPERATOR_PASSWORD);
    // Staff may enter the rating now: 不满意.
    op.act(&id, json!({"action": "rate", "rating": "unsatisfied"}));
    let rated = op.case(&id);
    let month_a = rated["ratings"][0]["at"].as_str().unwrap()[..7].to_string();
    // Forty days on: the next month. Re-handled, and rated 满意.
    v.stop();
    std::fs::write(&v.config, lines.replace("[public]", "clock_offset_secs = 4147200\n[public]")).unwrap();
    v.start();
    let op = v.login("operator", OPERATOR_PASSWORD);
    op.act(&id, json!({"action": "reopen", "reason": "当事人不满意"}));
    op.act(&id, json!({"action": "resolve", "public_reply": "重新协调，已限定施工时间"}));
    op.act(&id, json!({"action": "feedback", "note": "已告知", "invite_rating": false}));
    let done = op.act(&id, json!({"action": "rate", "rating": "satisfied"}));
    let month_b = done["ratings"][1]["at"].as_str().unwrap()[..7].to_string();
    assert_ne!(month_a, month_b);
    assert_eq!(done["ratings"].as_array().unwrap().len(), 2, "both ratings are kept: {done}");
    let a = stats_row(&op, &month_a, VILLAGE1);
    let b = stats_row(&op, &month_b, VILLAGE1);
    assert_eq!((a["counts"]["rated"].as_i64(), a["counts"]["unsatisfied"].as_i64()), (Some(1), Some(1)), "the 不满意 still counts in its month: {a}");
    assert_eq!((b["counts"]["rated"].as_i64(), b["counts"]["satisfied"].as_i64()), (Some(1), Some(1)), "{b}");
    assert_eq!(a["kpis"]["staff_satisfaction"]["value"], 0.0, "{a}");
    let _ = month1;

    // Reports: the open month is refused; the closed one was signed on its
    // own once its grace period passed; signing it again needs a reason.
    let admin = v.login("admin", ADMIN_PASSWORD);
    let (status, e) = admin.post("/api/reports", &json!({"period": month_b}));
    assert_eq!(status, 400, "an open month: {e}");
    assert!(e["error"]["message"].as_str().unwrap().contains(&month_b), "{e}");
    let first = wait_for("the automatic report", 20, || {
        let (_, check) = admin.get(&format!("/api/reports?period={month_a}"));
        check["reports"].as_array().and_then(|r| r.first().cloned())
    });
    assert_eq!(first["period"], month_a.as_str(), "{first}");
    let (status, e) = admin.post("/api/reports", &json!({"period": month_a}));
    assert_eq!(status, 409, "signed already, no reason: {e}");
    let (status, second) = admin.post("/api/reports", &json!({"period": month_a, "supersede_reason": "补录一条评价后重报"}));
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["report"]["supersedes"], first["record"], "{second}");
    let (_, check) = admin.get(&format!("/api/reports?period={month_a}"));
    let r = &check["reports"][0];
    assert_eq!((r["record"].as_str(), r["reason"].as_str(), r["period"].as_str()), (second["record"].as_str(), Some("补录一条评价后重报"), Some(month_a.as_str())), "{check}");
    assert_eq!(r["superseded"][0]["record"], first["record"], "both stay visible: {check}");
    assert_eq!((r["ratings"]["staff"].as_i64(), r["ratings"]["citizen"].as_i64()), (Some(1), Some(0)), "the report states who rated: {check}");
    // The CLI prints the period as typed.
    let session = v.dir.path().join("session");
    let cli = |args: &[&str]| Command::new(bin("zongzhi")).args(args).env("ZONGZHI_NODE", v.url()).env("ZONGZHI_SESSION", &session).output().unwrap();
    let out = cli(&["login", "--user", "admin", "--password", ADMIN_PASSWORD]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["reports", "sign", "--period", &month_a, "--supersede", "第三次"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains(&format!(" {month_a}")) && said.contains("supersedes"), "{said}{}", String::from_utf8_lossy(&out.stderr));
    v.stop();
}

/// A number locks after repeated wrong query codes, and a right code is
/// refused while it is locked; an unknown number answers the same as a
/// wrong code.
/// Wrong query codes lock out the guesser, not the case: the address that
/// guessed is locked out of that number (and, guessing across numbers, out
/// of every number); the citizen at another address still gets in with the
/// right code; the locks outlive a restart; staff let an address in again
/// with `zongzhi public-unlock`.
#[test]
fn wrong_query_codes_lock_out_the_guesser_not_the_citizen() {
    let mut v = TestNode::init_with(VILLAGE1, "示例社区1工作站", "[public]\nenabled = true\nmax_wrong_codes = 3\nmax_wrong_per_address = 8\nrequests_per_minute = 10000\nwrong_answer_ms = 0\n");
    v.start();
    let op = v.login("operator", OPERATOR_PASSWORD);
    let c = op.file_case(&person("噪音扰民", "13800007777", ""));
    let (number, code) = (c["number"].as_str().unwrap().to_string(), c["receipt"]["query_code"].as_str().unwrap().to_string());
    let right = format!("/api/public/cases/{number}?code={code}");
    let guesser = Api::new(&v.url(), None);
    let citizen = Api::from_address(&v.url(), std::net::IpAddr::from([127, 0, 0, 2]));
    let (status, ok) = guesser.get(&right);
    assert_eq!((status, ok["status"]["code"].as_str()), (200, Some("awaiting_receipt")), "{ok}");
    let (s1, unknown) = guesser.get("/api/public/cases/330106010001-2026-999999?code=ABCDE-23456");
    let (s2, wrong) = guesser.get(&format!("/api/public/cases/{number}?code=ABCDE-23456"));
    assert_eq!((s1, s2), (403, 403));
    assert_eq!(unknown["error"]["code"], wrong["error"]["code"]);
    guesser.get(&format!("/api/public/cases/{number}?code=ABCDE-23457"));
    let (status, e) = guesser.get(&format!("/api/public/cases/{number}?code=ABCDE-23458"));
    assert_eq!((status, e["error"]["code"].as_str()), (429, Some("locked")), "{e}");
    assert_eq!(guesser.get(&right).0, 429, "the guessing address is locked out, even with the right code");
    // The citizen, elsewhere, is not.
    assert_eq!(citizen.get(&right).0, 200, "the citizen at another address gets in");
    // Kept across a restart.
    v.stop();
    v.start();
    assert_eq!(guesser.get(&right).0, 429, "a restart lifts no lock");
    let op = v.login("operator", OPERATOR_PASSWORD);
    let (_, locks) = op.get(&format!("/api/cases/{number}/public-locks"));
    assert_eq!(locks["locked_addresses"][0]["address"], "127.0.0.1", "{locks}");
    // Staff let the address in again (the citizen called the center): on
    // the case page of the console …
    let mut b = Browser::launch();
    b.login(&v.url(), "operator", OPERATOR_PASSWORD);
    b.goto(&format!("{}/#/case/{}", v.url(), c["id"].as_str().unwrap()));
    let card = b.wait("the public page's lock on the case page", 15, "document.querySelector('#public-locks')?.innerText");
    assert!(card.as_str().unwrap().contains("127.0.0.1"), "{card}");
    b.click("[data-test=public-unlock]");
    b.wait("the lock lifted", 15, "document.body.dataset.page === 'case' && !document.querySelector('#public-locks')");
    assert_eq!(guesser.get(&right).0, 200);
    // … or with the command line.
    for wrong in ["ABCDE-23456", "ABCDE-23457", "ABCDE-23458"] {
        guesser.get(&format!("/api/public/cases/{number}?code={wrong}"));
    }
    assert_eq!(guesser.get(&right).0, 429);
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| Command::new(bin("zongzhi")).args(args).env("ZONGZHI_NODE", v.url()).env("ZONGZHI_SESSION", dir.path().join("s.json")).output().unwrap();
    assert!(cli(&["login", "--user", "operator", "--password", OPERATOR_PASSWORD]).status.success());
    let out = cli(&["public-unlock", &number]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 client addresses"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(guesser.get(&right).0, 200);
    let (_, audit) = v.login("admin", ADMIN_PASSWORD).get("/api/login-audit?log=events");
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["outcome"] == "public_unlock" && e["username"] == number.as_str() && e["by"] == "operator"), "{audit}");
    // Guessing across numbers locks the address out of every number.
    let sprayer = Api::from_address(&v.url(), std::net::IpAddr::from([127, 0, 0, 3]));
    for n in 1..=8 {
        let (status, e) = sprayer.get(&format!("/api/public/cases/330106010001-2026-{:06}?code=ABCDE-23456", 100 + n));
        assert_eq!(status, if n < 8 { 403 } else { 429 }, "{n}: {e}");
    }
    assert_eq!(sprayer.get(&right).0, 429);
    assert_eq!(citizen.get(&right).0, 200);
    // Without [public], nothing is served.
    let mut plain = TestNode::init("330106010002", "示例社区2工作站");
    plain.start();
    let (status, e) = Api::new(&plain.url(), None).get(&right);
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")), "{e}");
    v.stop();
    plain.stop();
}

/// The median of the times `f` takes, over `n` calls interleaved with
/// those of `g` (so both see the same load): (f's, g's).
fn medians(n: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = std::time::Instant::now();
        f();
        a.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        g();
        b.push(t.elapsed().as_secs_f64());
    }
    for v in [&mut a, &mut b] {
        v.sort_by(f64::total_cmp);
    }
    (a[n / 2], b[n / 2])
}

/// A wrong code (or rating token) for a case with a long history is
/// answered as late as one for an unknown number: neither the content nor
/// the time of the answer tells whether the number exists.
#[test]
fn a_wrong_code_takes_as_long_as_an_unknown_number() {
    let mut v = TestNode::init_with(VILLAGE1, "示例社区1工作站", "[public]\nenabled = true\nmax_wrong_codes = 100000\nmax_wrong_per_address = 100000\nrequests_per_minute = 100000\n");
    v.start();
    let op = v.login("operator", OPERATOR_PASSWORD);
    let c = op.file_case(&person("历时很长的案件", "13800006666", ""));
    let (id, number) = (c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string());
    op.act(&id, json!({"action": "sign_for"}));
    for i in 0..300 {
        op.act(&id, json!({"action": "progress", "note": format!("第{i}次走访"), "public": i % 2 == 0}));
    }
    op.act(&id, json!({"action": "resolve", "public_reply": "已调解", "internal_note": ""}));
    op.act(&id, json!({"action": "feedback", "note": "已告知", "invite_rating": true}));
    let anon = Api::new(&v.url(), None);
    let unknown = "330106010001-2026-999999";
    let get = |n: &str| {
        let (status, _) = anon.get(&format!("/api/public/cases/{n}?code=ABCDE-23456"));
        assert_eq!(status, 403);
    };
    let rate = |n: &str| {
        let (status, _) = anon.post(&format!("/api/public/cases/{n}/rating"), &json!({"token": "AAAAAAAAAAAAAAAAAAAAAAAAAA", "rating": "satisfied", "result_rating": "satisfied"}));
        assert_eq!(status, 403);
    };
    for (what, (held, none)) in [("query code", medians(25, || get(&number), || get(unknown))), ("rating token", medians(25, || rate(&number), || rate(unknown)))] {
        eprintln!("{what}: wrong for a long case {:.1} ms, unknown number {:.1} ms", held * 1e3, none * 1e3);
        assert!((held - none).abs() <= 0.25 * held.max(none), "{what}: {held:.4} s for the case, {none:.4} s for no case");
    }
}

/// The console: a filing prints a receipt with the query code and a QR
/// code; a second filing by the same phone shows the first as a likely
/// duplicate; the operator merges it (并单) from the case page; feedback
/// shows the citizen's rating token once.
#[test]
fn the_console_prints_receipts_finds_duplicates_and_merges() {
    let mut v = TestNode::init_with(VILLAGE1, "示例社区1工作站", "[public]\nurl = \"http://zz.example/public/\"\n");
    v.start();
    let mut b = Browser::launch();
    b.login(&v.url(), "operator", OPERATOR_PASSWORD);
    let file = |b: &mut Browser, title: &str| {
        b.goto(&format!("{}/#/file", v.url()));
        b.wait("the filing form", 15, "document.querySelector('#file-form')");
        b.fill("#file-form input[name=title]", title);
        b.fill("#file-form textarea[name=content]", "邻居装修噪音，晚上十点后仍在施工");
        b.fill("#file-form input[name=contact_name]", "王五");
        b.fill("#file-form input[name=contact_phone]", "13912345678");
    };
    file(&mut b, "装修噪音");
    b.click("#file-form button[type=submit]");
    b.wait("the receipt", 15, "document.querySelector('#receipt-code')");
    let number = b.text("#receipt-number");
    let code = b.text("#receipt-code");
    assert_eq!(code.len(), 11, "{code}");
    assert!(b.text("#receipt-token").starts_with(&format!("{number}.")));
    assert!(b.eval("!!document.querySelector('#receipt-qr svg')").as_bool().unwrap(), "the QR code is drawn");
    b.screenshot("receipt");
    assert_eq!(b.eval("document.body.dataset.page"), "case", "the receipt tops the new case's page");
    // The code was shown once: the case page read again does not have it.
    b.click("#receipt-done");
    b.eval("location.reload()");
    b.wait("the case page", 15, "document.body.dataset.page === 'case' && document.querySelector('#timeline')");
    assert!(!b.text("main").contains(&code));

    // The same phone again: the first case shows as a likely duplicate.
    file(&mut b, "装修噪音（再次反映）");
    b.wait("the similar cases", 15, &format!("document.querySelector('#similar li[data-number=\"{number}\"]')"));
    assert!(b.text("#similar").contains("可能重复"), "{}", b.text("#similar"));
    b.click("#file-form button[type=submit]");
    b.wait("the second receipt", 15, &format!("document.querySelector('#receipt-code') && document.querySelector('#receipt-number').innerText !== '{number}'"));
    b.wait("the second case", 15, "document.body.dataset.page === 'case' && document.querySelector('button[data-action=merge]')");
    b.click("button[data-action=merge]");
    b.wait("the merge form", 10, "document.querySelector('#action-form input[name=into]')");
    b.fill("#action-form input[name=into]", &number);
    b.click("#action-form button[type=submit]");
    b.wait("the merge", 15, "document.querySelector('h1[data-status=merged]')");

    // Feedback on the first case shows the rating token once.
    let op = v.login("operator", OPERATOR_PASSWORD);
    let (_, found) = op.get(&format!("/api/search?q={number}"));
    let id = found["cases"][0]["id"].as_str().unwrap().to_string();
    op.act(&id, json!({"action": "sign_for"}));
    op.act(&id, json!({"action": "resolve", "public_reply": "已协调"}));
    b.goto(&format!("{}/#/case/{id}", v.url()));
    b.wait("the feedback button", 15, "document.querySelector('button[data-action=feedback]')");
    b.click("button[data-action=feedback]");
    b.wait("the feedback form", 10, "document.querySelector('#action-form textarea[name=note]')");
    b.fill("#action-form textarea[name=note]", "已电话告知");
    b.click("#action-form button[type=submit]");
    b.wait("the rating token", 15, "document.querySelector('#rating-token .code')");
    let token = b.text("#rating-token .code");
    assert_eq!(token.len(), 26, "{token}");
    v.stop();
}
