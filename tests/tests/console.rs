//! The web console in a real browser (Debian's headless Chromium) against
//! real nodes: log in at a village, file a case, escalate it; the township
//! sees it after sync, signs for it and resolves it; the village's timeline
//! and statistics change. Screenshots of each page are kept as artifacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{ADMIN_PASSWORD, Hierarchy, OPERATOR_PASSWORD, VIEWER_PASSWORD, wait_for};

fn login(b: &mut Browser, url: &str, user: &str, password: &str) {
    b.login(url, user, password);
}

/// Takes a step through the case page's action buttons and waits for the
/// timeline to show it.
fn act(b: &mut Browser, action: &str, fill: &[(&str, &str)]) {
    let before = b.eval("document.querySelectorAll('#timeline li').length").as_u64().unwrap();
    b.click(&format!("#case-actions button[data-action={action}]"));
    b.wait("the action form", 5, &format!("document.querySelector('#action-form[data-action={action}]')"));
    for (sel, value) in fill {
        b.fill(&format!("#action-form {sel}"), value);
    }
    b.click("#action-form button[type=submit]");
    b.wait(
        &format!("{action} in the timeline"),
        10,
        &format!("document.querySelectorAll('#timeline li').length > {before} && document.querySelector('#timeline li:last-child')?.dataset.action === '{action}'"),
    );
}

fn total_received(b: &mut Browser, url: &str) -> i64 {
    b.goto(&format!("{url}/#/stats"));
    let v = b.wait("the statistics", 20, "document.querySelector('[data-test=total-received]')?.innerText");
    v.as_str().unwrap().trim().parse().unwrap()
}

#[test]
fn village_files_and_escalates_township_resolves_in_the_browser() {
    let h = Hierarchy::start(1);
    let (village, township) = (h.villages[0].url(), h.township.url());
    let mut b = Browser::launch();

    // Wrong password: the API's refusal, in Chinese.
    b.goto(&format!("{village}/#/login"));
    b.wait("the login form", 15, "document.querySelector('#login-form')");
    b.screenshot("01-login");
    b.fill("#login-form input[name=username]", "operator");
    b.fill("#login-form input[name=password]", "wrong");
    b.click("#login-form button[type=submit]");
    let err = b.wait("the login error", 10, "document.querySelector('[data-test=error]')?.innerText");
    assert!(err.as_str().unwrap().contains("用户名或密码错误"), "{err}");

    login(&mut b, &village, "operator", OPERATOR_PASSWORD);
    b.screenshot("02-village-queue");
    let received_before = total_received(&mut b, &village);

    // Filing: empty required fields are flagged in Chinese, nothing is sent.
    b.goto(&format!("{village}/#/file"));
    b.wait("the filing form", 10, "document.querySelector('#file-form')");
    b.click("#file-form button[type=submit]");
    b.wait("field errors", 5, "[...document.querySelectorAll('.field-error')].some(e => e.innerText === '必填')");
    b.screenshot("03-file-validation");
    b.fill("#file-form input[name=title]", "宅基地边界纠纷");
    b.fill("#file-form textarea[name=content]", "两户村民对宅基地边界有争议，多次协商无果。");
    b.fill("#file-form select[name=big]", "02");
    b.fill("#file-form select[name=category]", "0202");
    b.fill("#file-form select[name=channel]", "on_site");
    b.fill("#file-form input[name=address]", "留下村3组");
    b.fill("#file-form input[name=contact_name]", "张三");
    b.fill("#file-form input[name=contact_phone]", "13812341234");
    b.screenshot("04-file-form");
    b.click("#file-form button[type=submit]");
    let title = b.wait("the new case", 15, "document.body.dataset.page === 'case' && document.querySelector('h1')?.innerText");
    let number = title.as_str().unwrap().split(' ').next().unwrap().to_string();
    assert!(number.starts_with("330106010001-"), "{number}");
    let case_hash = b.eval("location.hash").as_str().unwrap().to_string();
    b.screenshot("05-village-case");
    // Evidence: upload a file from the case page.
    b.eval("(() => { const dt = new DataTransfer(); dt.items.add(new File(['现场照片说明：院墙位置'], '现场说明.txt', {type: 'text/plain'})); document.querySelector('#attachment-file').files = dt.files; return true; })()");
    b.click("#attach-form button[type=submit]");
    b.wait("the attachment listed", 10, "document.querySelector('#attachments li')?.innerText.includes('现场说明.txt')");

    // Only what the rules allow: a fresh case can be signed for, not resolved.
    let actions = b.eval("[...document.querySelectorAll('#case-actions button')].map(b => b.dataset.action)");
    assert!(actions.as_array().unwrap().contains(&"sign_for".into()), "{actions}");
    assert!(!actions.as_array().unwrap().contains(&"resolve".into()), "{actions}");
    act(&mut b, "sign_for", &[]);
    // Escalate with a reason; an empty reason is flagged first.
    b.click("#case-actions button[data-action=escalate]");
    b.wait("the escalation form", 5, "document.querySelector('#action-form[data-action=escalate]')");
    b.click("#action-form button[type=submit]");
    b.wait("the empty reason flagged", 5, "[...document.querySelectorAll('#action-form .field-error')].some(e => e.innerText === '必填')");
    b.fill("#action-form textarea[name=reason]", "涉及两村，村里无法调处");
    b.click("#action-form button[type=submit]");
    b.wait("the escalation", 10, "document.querySelector('#case-owner')?.innerText.startsWith('330106010000')");
    b.screenshot("05b-village-escalated");
    assert_eq!(total_received(&mut b, &village), received_before + 1, "the village's statistics count the new case");

    // The township sees it after sync, signs for it, routes and resolves it.
    login(&mut b, &township, "operator", OPERATOR_PASSWORD);
    let t = std::time::Instant::now();
    loop {
        b.goto(&format!("{township}/#/queue"));
        b.wait("the township queue", 10, "document.querySelector('#queue')");
        if b.eval(&format!("!!document.querySelector('#queue tr[data-case=\"{number}\"]')")) == true {
            break;
        }
        assert!(t.elapsed().as_secs() < 20, "the escalated case never reached the township's queue");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    b.screenshot("06-township-queue");
    b.click(&format!("#queue tr[data-case=\"{number}\"]"));
    b.wait("the case at the township", 10, "document.body.dataset.page === 'case' && document.querySelector('#case-actions')");
    act(&mut b, "sign_for", &[]);
    act(&mut b, "route", &[]);
    act(&mut b, "resolve", &[("textarea[name=public_reply]", "经街道调解，双方按1998年确权图划定边界")]);
    b.wait("the resolved case", 10, "document.querySelector('h1')?.dataset.status === 'resolved'");
    b.screenshot("07-township-case");
    for (page, sel, name) in [("board", "#board", "08-township-board"), ("sync", "#peers", "09-township-sync"), ("tree", ".tree", "10-township-tree"), ("reports", "#reports", "11-township-reports")] {
        b.goto(&format!("{township}/#/{page}"));
        b.wait(page, 15, &format!("document.querySelector('{sel}')"));
        b.screenshot(name);
    }
    b.goto(&format!("{township}/#/stats"));
    b.wait("charts", 20, "document.querySelector('#chart-kpi svg') && document.querySelector('#chart-trend svg')");
    b.screenshot("12-township-stats");
    let resolved =
        b.eval("[...document.querySelectorAll('#stats-table tbody tr')].some(r => r.innerText.startsWith('') && r.cells[1]?.innerText.startsWith('330106010000') && r.cells[3]?.innerText === '1')");
    assert_eq!(resolved, true, "the township's statistics count its resolution");

    // Back at the village: the decision arrives, signatures verified.
    login(&mut b, &village, "operator", OPERATOR_PASSWORD);
    let t = std::time::Instant::now();
    loop {
        b.goto(&format!("{village}/{case_hash}"));
        b.wait("the case at the village", 10, "document.querySelector('#timeline')");
        if b.eval("document.querySelector('h1')?.dataset.status === 'resolved'") == true {
            break;
        }
        assert!(t.elapsed().as_secs() < 20, "the decision never reached the village");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let steps = b.eval("[...document.querySelectorAll('#timeline li')].map(li => li.dataset.action)");
    assert_eq!(steps, serde_json::json!(["file", "attach", "sign_for", "escalate", "sign_for", "route", "resolve"]));
    let verified = b.eval("[...document.querySelectorAll('#timeline li .badge')].every(b => b.innerText.includes('✓'))");
    assert_eq!(verified, true);
    let actions = b.eval("[...document.querySelectorAll('#case-actions button')].map(b => b.dataset.action)");
    assert!(actions.as_array().unwrap().contains(&"feedback".into()), "the village now gives feedback: {actions}");
    b.screenshot("13-village-timeline");

    // Phone width.
    b.viewport(390, 844, true);
    b.goto(&format!("{village}/{case_hash}"));
    b.wait("the case on a phone", 10, "document.querySelector('#timeline')");
    let overflow = b.eval("document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(overflow, true, "no sideways scrolling at phone width");
    b.screenshot("14-village-case-phone");
    b.goto(&format!("{village}/#/queue"));
    b.wait("the queue on a phone", 10, "document.querySelector('#queue')");
    b.screenshot("15-village-queue-phone");
    b.viewport(1366, 768, false);

    // English switch, and back.
    b.click("#lang");
    b.wait("English", 5, "document.querySelector('#nav a[data-nav=queue]')?.innerText === 'Queue'");
    b.click("#lang");
    b.wait("Chinese", 5, "document.querySelector('#nav a[data-nav=queue]')?.innerText === '工作台'");

    // A viewer sees personal data masked and no actions.
    login(&mut b, &village, "viewer", VIEWER_PASSWORD);
    b.goto(&format!("{village}/{case_hash}"));
    let phone = b.wait("the masked phone", 10, "document.querySelector('[data-test=phone]')?.innerText");
    assert_eq!(phone, "138****1234");
    assert_eq!(b.eval("document.querySelectorAll('#case-actions button').length"), 0);
}

/// A working-day calendar for `year` as a file would hold it (shaped like
/// cn-2026.json): 元旦, 劳动节 and 国庆节 holidays and one make-up workday,
/// `make_up` (which must be a Saturday or Sunday for the city to accept it).
fn calendar_file(year: i16, make_up: jiff::civil::Date) -> Value {
    let d = |m: i8, day: i8| jiff::civil::date(year, m, day).to_string();
    json!({
        "year": year,
        "source": format!("测试用{year}年节假日安排"),
        "holidays": [
            {"date": d(1, 1), "name": "元旦"},
            {"date": d(5, 1), "name": "劳动节"}, {"date": d(5, 2), "name": "劳动节"}, {"date": d(5, 3), "name": "劳动节"},
            {"date": d(10, 1), "name": "国庆节"}, {"date": d(10, 2), "name": "国庆节"}, {"date": d(10, 3), "name": "国庆节"},
        ],
        "make_up_workdays": [make_up.to_string()],
    })
}

/// The first day on or after April 20th of `year` that is (or is not) a weekend day.
fn april_day(year: i16, weekend: bool) -> jiff::civil::Date {
    use jiff::civil::Weekday;
    let mut d = jiff::civil::date(year, 4, 20);
    while matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) != weekend {
        d = d.tomorrow().unwrap();
    }
    d
}

fn has_year(cal: &Value, year: i64) -> bool {
    cal["years"].as_array().unwrap().iter().any(|y| y.as_i64() == Some(year))
}

/// The city admin is warned that next year's working-day calendar is
/// missing, loads it on the policy page (an invalid file refused with the
/// API's reason, then a preview, then signing), and the new version reaches
/// a village; a case whose deadline waited for that calendar gets its due time.
#[test]
fn city_admin_loads_next_years_calendar_in_the_browser() {
    let h = Hierarchy::start(1);
    let city = h.city.url();
    let admin = h.city.login("admin", ADMIN_PASSWORD);
    let (status, health) = admin.get("/api/health");
    assert_eq!(status, 200, "{health}");
    let cal = health["calendar"].clone();
    let next = cal["next_year"].as_i64().expect("health.calendar.next_year");
    // The year to load: next year, or (when it already has a calendar) the year after the last one.
    let year = if has_year(&cal, next) { cal["years"].as_array().unwrap().iter().filter_map(Value::as_i64).max().unwrap() + 1 } else { next };
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date();
    let warning_from: jiff::civil::Date = cal["warning_from"].as_str().expect("health.calendar.warning_from").parse().unwrap();
    if !has_year(&cal, next) && today >= warning_from {
        assert!(cal["warning"].is_string(), "next year {next} has no calendar on {today}: the node must warn: {cal}");
    }
    let (_, p0) = admin.get("/api/policy");
    let v0 = p0["version"].as_u64().unwrap();

    // A case whose resolution deadline reaches past the last calendar: complex
    // (15 working days) plus the longest extension.
    let op = h.city.login("operator", OPERATOR_PASSWORD);
    let mut case = zongzhi_tests::sample_case("跨年的复杂纠纷");
    case["complexity"] = json!("complex");
    let id = op.file_case(&case)["id"].as_str().unwrap().to_string();
    op.act(&id, json!({"action": "sign_for"}));
    op.act(&id, json!({"action": "route", "window": "justice", "requirements": "组织调解"}));
    let max_ext = p0["deadlines"]["max_extension_working_days"].as_u64().unwrap_or(15);
    op.act(&id, json!({"action": "request_extension", "working_days": max_ext, "reason": "需要鉴定"}));
    let detail = admin.act(&id, json!({"action": "approve_extension", "note": "同意"}));
    let waiting_year = detail["deadlines"].as_array().unwrap().iter().find(|d| d["clock"] == "waiting_for_calendar").map(|d| d["waiting_year"].as_i64().expect("waiting_year"));
    let (_, health) = admin.get("/api/health");
    let cal = health["calendar"].clone();
    if waiting_year.is_some() {
        assert!(cal["cases_waiting"].as_u64().unwrap() >= 1, "{cal}");
    }

    let mut b = Browser::launch();
    login(&mut b, &city, "admin", ADMIN_PASSWORD);
    if let Some(warning) = cal["warning"].as_str() {
        let shown = b.wait("the calendar banner", 10, "!document.querySelector('#calendar-banner').hidden && document.querySelector('#calendar-banner').innerText");
        assert!(shown.as_str().unwrap().contains(warning), "banner {shown} lacks {warning}");
        assert_eq!(b.eval("!!document.querySelector('#calendar-banner a[href=\"#/policy\"]')"), true, "at the city the banner links to the policy page");
        b.screenshot("16-city-calendar-banner");
    } else {
        assert_eq!(b.eval("document.querySelector('#calendar-banner').hidden"), true);
    }

    // The clock waiting for a calendar: in the queue (filter and badge), on the case page and the board.
    if let Some(wy) = waiting_year {
        b.click("#queue-waiting");
        let number = detail["number"].as_str().unwrap();
        b.wait("the waiting filter", 10, &format!("document.querySelector('#queue-waiting').checked && document.querySelector('#queue tr[data-case=\"{number}\"] [data-test=waiting-calendar]')"));
        assert_eq!(b.eval("[...document.querySelectorAll('#queue tbody tr[data-case]')].every(r => r.querySelector('[data-test=waiting-calendar]'))"), true, "the filter lists only waiting cases");
        b.screenshot("16b-city-queue-waiting");
        b.goto(&format!("{city}/#/case/{id}"));
        let badge = b.wait("the waiting badge", 10, "document.querySelector('tr[data-clock=waiting_for_calendar] [data-test=waiting-calendar]')?.innerText");
        assert_eq!(badge, json!(format!("待定：缺少{wy}年工作日历")));
        b.goto(&format!("{city}/#/board"));
        let n = b.wait("the waiting count", 10, "document.querySelector('[data-test=board-waiting-calendar]')?.innerText");
        assert_eq!(n, json!(format!("等待工作日历的案件: {}", cal["cases_waiting"])));
    }

    // The policy page: version, calendars as month grids, taxonomy, windows, deadlines.
    b.goto(&format!("{city}/#/policy"));
    b.wait("the policy page", 15, "document.querySelector('#policy-page') && document.querySelector('#calendar-form')");
    assert_eq!(b.eval("document.querySelector('[data-test=policy-version]').dataset.version"), json!(v0.to_string()));
    for y in p0["calendars"].as_object().unwrap().keys() {
        let months = b.eval(&format!("document.querySelectorAll('[data-test=calendar-year-{y}] table.month').length"));
        assert_eq!(months, json!(12), "{y} as 12 month grids");
    }
    assert_eq!(b.eval("document.querySelector('#policy-windows').innerText.includes('司法')"), true);
    assert_eq!(b.eval("document.querySelector('#policy-categories').innerText.includes('噪音扰民')"), true);
    assert_eq!(b.eval("document.querySelector('#policy-deadlines').innerText.includes('办理时限')"), true);
    b.screenshot("17-city-policy");

    // A make-up workday on a weekday: refused with the API's reason, nothing signed.
    let y16 = i16::try_from(year).unwrap();
    let bad = calendar_file(y16, april_day(y16, false));
    let bad_patch = json!({"calendars": {year.to_string(): {"source": bad["source"], "holidays": bad["holidays"], "make_up_workdays": bad["make_up_workdays"]}}});
    let (status, refused) = admin.post("/api/policy?dry_run=true", &bad_patch);
    assert_eq!(status, 422, "{refused}");
    let reason = refused["error"]["message"].as_str().unwrap().to_string();
    b.fill("#calendar-year", &year.to_string());
    b.fill("#calendar-json", &serde_json::to_string_pretty(&bad).unwrap());
    b.click("#policy-preview");
    let shown = b.wait("the refusal", 10, "document.querySelector('#calendar-form [data-test=error]')?.innerText");
    assert!(shown.as_str().unwrap().contains(&reason), "the page shows {shown}, the API said {reason}");
    assert_eq!(b.eval("document.querySelector('#policy-sign').disabled"), true, "nothing to sign after a refused preview");
    b.screenshot("18-policy-calendar-refused");
    b.click("#policy-sign");
    assert_eq!(admin.get("/api/policy").1["version"].as_u64(), Some(v0), "a refused calendar signs nothing");

    // A good file: the preview names the year, then signing makes the next version.
    let good = calendar_file(y16, april_day(y16, true));
    b.fill("#calendar-json", &serde_json::to_string_pretty(&good).unwrap());
    b.click("#policy-preview");
    let diff = b.wait("the preview", 10, &format!("document.querySelector('#calendar-form [data-test=diff] li[data-path=\"calendars/{year}\"]')?.innerText"));
    assert!(diff.as_str().unwrap().contains(&year.to_string()), "{diff}");
    assert_eq!(b.eval("document.querySelector('#calendar-form [data-test=diff] li').dataset.kind"), json!("added"));
    assert_eq!(admin.get("/api/policy").1["version"].as_u64(), Some(v0), "a preview signs nothing");
    b.screenshot("19-policy-calendar-preview");
    b.click("#policy-sign");
    b.wait(
        "the new version with the year's grid",
        15,
        &format!("document.querySelector('[data-test=policy-version]')?.dataset.version === '{}' && document.querySelectorAll('[data-test=calendar-year-{year}] table.month').length === 12", v0 + 1),
    );
    let make_up = good["make_up_workdays"][0].as_str().unwrap();
    assert_eq!(b.eval(&format!("!!document.querySelector('[data-test=calendar-year-{year}] td.holiday[data-date=\"{year}-01-01\"]')")), true);
    assert_eq!(b.eval(&format!("!!document.querySelector('[data-test=calendar-year-{year}] td.makeup[data-date=\"{make_up}\"]')")), true);
    b.eval(&format!("document.querySelector('[data-test=calendar-year-{year}]').scrollIntoView()"));
    b.screenshot("20-policy-calendar-signed");

    let (_, p1) = admin.get("/api/policy");
    assert_eq!(p1["version"].as_u64(), Some(v0 + 1));
    assert_eq!(p1["calendars"][year.to_string()]["make_up_workdays"], json!([make_up]));
    let village = h.villages[0].login("viewer", VIEWER_PASSWORD);
    wait_for("the new calendar at the village", 20, || {
        let (_, p) = village.get("/api/policy");
        (p["version"].as_u64() == Some(v0 + 1) && p["calendars"][year.to_string()]["holidays"].is_array()).then_some(())
    });

    // The case's deadline has its due time now.
    if waiting_year == Some(year) {
        wait_for("the waiting deadline computed", 20, || {
            let c = admin.case(&id);
            c["deadlines"].as_array().unwrap().iter().all(|d| d["clock"] != "waiting_for_calendar").then_some(())
        });
        b.goto(&format!("{city}/#/case/{id}"));
        b.wait("the case page", 10, "document.querySelector('#timeline')");
        assert_eq!(b.eval("document.querySelectorAll('[data-test=waiting-calendar]').length"), 0);
    }

    // After a reload the banner is gone (unless another year is still missing).
    let (_, health) = admin.get("/api/health");
    b.goto(&format!("{city}/#/queue"));
    b.wait("the queue", 10, "document.querySelector('#queue')");
    if health["calendar"]["missing"].as_array().unwrap().is_empty() {
        assert!(health["calendar"]["warning"].is_null(), "{health}");
        assert_eq!(b.eval("document.querySelector('#calendar-banner').hidden"), true, "the banner is gone");
    }

    // A department window through the same preview-then-sign flow.
    b.goto(&format!("{city}/#/policy"));
    b.wait("the policy page", 15, "document.querySelector('#window-form')");
    b.fill("#window-code", "fire");
    b.fill("#window-name", "消防");
    b.click("#window-preview");
    b.wait("the window preview", 10, "document.querySelector('#window-form [data-test=diff] li')");
    b.click("#window-sign");
    b.wait(
        "the new window",
        15,
        &format!("document.querySelector('[data-test=policy-version]')?.dataset.version === '{}' && document.querySelector('#policy-windows tr[data-code=fire]')?.innerText.includes('消防')", v0 + 2),
    );
    assert_eq!(admin.get("/api/policy").1["windows"]["fire"]["name"], "消防");

    // English.
    b.click("#lang");
    b.wait("English", 5, "document.querySelector('#nav a[data-nav=policy]')?.innerText === 'Policy' && document.querySelector('#calendar-form h3')?.innerText.startsWith('Load')");
    b.click("#lang");
    b.wait("Chinese", 5, "document.querySelector('#nav a[data-nav=policy]')?.innerText === '策略'");

    // Below the city, and for a viewer: read only, no banner.
    wait_for("the window at the village", 20, || (village.get("/api/policy").1["version"].as_u64() == Some(v0 + 2)).then_some(()));
    login(&mut b, &h.villages[0].url(), "viewer", VIEWER_PASSWORD);
    assert_eq!(b.eval("document.querySelector('#calendar-banner').hidden"), true);
    b.goto(&format!("{}/#/policy", h.villages[0].url()));
    b.wait("the village's policy page", 15, &format!("document.querySelector('[data-test=policy-version]')?.dataset.version === '{}'", v0 + 2));
    assert_eq!(b.eval("!document.querySelector('#calendar-form') && !!document.querySelector('[data-test=policy-readonly]')"), true);
    assert_eq!(b.eval(&format!("document.querySelectorAll('[data-test=calendar-year-{year}] table.month').length")), 12);
    b.screenshot("21-village-policy-readonly");
}

/// Work a center must do shows in its queue even when another center owns
/// the case: the village escalates, the township resolves, and the
/// village's 待反馈 tab lists the case for its 24 h feedback. The search box
/// in the header finds the case by number and by a word of its title; the
/// timeline names units by their short names (the full name on hover) and
/// this node's operators by their display names.
#[test]
fn feedback_tab_search_and_unit_names_in_the_browser() {
    let h = Hierarchy::start(1);
    let (village, township) = (h.villages[0].url(), h.township.url());
    // An operator with a display name at the village.
    let vadmin = h.villages[0].login("admin", ADMIN_PASSWORD);
    let (status, v) = vadmin.post("/api/users", &json!({"username": "wangfang", "password": "wangfang-pass-1", "role": "operator", "display_name": "王芳"}));
    assert_eq!(status, 201, "{v}");
    let vop = h.villages[0].login("wangfang", "wangfang-pass-1");
    let top = h.township.login("operator", OPERATOR_PASSWORD);
    let case = vop.file_case(&zongzhi_tests::sample_case("围墙漏水影响邻居"));
    let (id, number) = (case["id"].as_str().unwrap().to_string(), case["number"].as_str().unwrap().to_string());
    vop.act(&id, json!({"action": "sign_for"}));
    vop.act(&id, json!({"action": "escalate", "reason": "涉及公共管网，村里无法处理"}));
    zongzhi_tests::wait_case(&h.township, &top, &id, "the escalation at the township", |v| v["owner"] == "330106010000");
    top.act(&id, json!({"action": "sign_for"}));
    top.act(&id, json!({"action": "route", "window": "housing"}));
    top.act(&id, json!({"action": "resolve", "public_reply": "街道已协调物业更换破损管道，墙体已修复"}));
    let at_village = zongzhi_tests::wait_case(&h.villages[0], &vop, &id, "the decision at the village", |v| v["status"]["code"] == "resolved");
    assert_eq!(at_village["owner"], "330106010000", "the township still owns the case");
    // The API names units and this node's operators.
    let file = &at_village["timeline"][0];
    assert_eq!((file["unit_name"].as_str(), file["operator_name"].as_str()), (Some("示例社区1工作站"), Some("王芳")), "{file}");
    let resolve = at_village["timeline"].as_array().unwrap().iter().find(|e| e["action"] == "resolve").unwrap().clone();
    assert_eq!(resolve["unit_name"], "示例街道社会治安综合治理中心", "{resolve}");
    assert_eq!(resolve["operator_name"], "operator", "another node's operator: the login name");

    let mut b = Browser::launch();
    login(&mut b, &village, "wangfang", "wangfang-pass-1");
    // Search from the header, on any page: by number …
    b.goto(&format!("{village}/#/stats"));
    b.wait("the statistics", 20, "document.querySelector('#stats-table')");
    assert_eq!(b.eval("document.querySelector('#search-input').placeholder"), json!("搜索编号、电话、身份证号或关键词"));
    b.fill("#search-input", &number);
    b.click("#search-submit");
    b.wait("the search by number", 15, &format!("document.body.dataset.page === 'search' && document.querySelector('#search-results tr[data-case=\"{number}\"]')"));
    assert_eq!(b.eval("document.querySelector('[data-test=search-kind]')?.dataset.kind"), json!("number"));
    b.screenshot("23-search-number");
    // … and by a word of its title.
    b.fill("#search-input", "漏水");
    b.click("#search-submit");
    b.wait("the search by words", 15, &format!("document.querySelector('[data-test=search-kind]')?.dataset.kind === 'words' && document.querySelector('#search-results tr[data-case=\"{number}\"]')"));
    b.screenshot("24-search-words");
    // A click opens the case; the timeline names units and operators.
    b.click(&format!("#search-results tr[data-case=\"{number}\"]"));
    b.wait("the case page", 15, "document.body.dataset.page === 'case' && document.querySelector('#timeline')");
    let units = b.eval("[...document.querySelectorAll('#timeline li')].map(li => [li.dataset.action, li.querySelector('[data-test=timeline-unit]').innerText, li.querySelector('[data-test=timeline-unit]').title, li.querySelector('[data-test=timeline-operator]').innerText])");
    let units = units.as_array().unwrap();
    let first = units[0].as_array().unwrap();
    assert_eq!((first[0].as_str(), first[3].as_str()), (Some("file"), Some("王芳")), "{first:?}");
    let resolved = units.iter().find(|u| u[0] == "resolve").unwrap();
    assert_eq!(resolved[1], "示例街道", "the short name: {resolved}");
    assert!(resolved[2].as_str().unwrap().contains("示例街道社会治安综合治理中心") && resolved[2].as_str().unwrap().contains("330106010000"), "the full name on hover: {resolved}");
    assert!(b.eval("document.querySelector('#case-owner').innerText").as_str().unwrap().starts_with("330106010000 示例街道社会治安综合治理中心"), "the full name in the detail");
    b.screenshot("25-timeline-unit-names");

    // Statistics by village (按村社), and units by their short names in the table and the charts.
    login(&mut b, &township, "operator", OPERATOR_PASSWORD);
    b.goto(&format!("{township}/#/stats"));
    b.wait("the statistics", 20, "document.querySelector('#stats-table tr[data-group=\"330106010000\"]')");
    let name = b.eval("document.querySelector('#stats-table tr[data-group=\"330106010000\"] [data-test=group-name]')?.innerText");
    assert_eq!(name, json!("示例街道"));
    assert_eq!(b.eval("[...document.querySelectorAll('select[name=by] option')].find(o => o.value === 'village')?.innerText"), json!("按村社"));
    b.fill("select[name=by]", "village");
    b.wait("statistics by village", 20, "document.querySelector('#stats-table tr[data-group=\"330106010001\"]')");
    b.screenshot("26-township-stats-by-village");

    // Back at the village: the 待反馈 tab.
    login(&mut b, &village, "wangfang", "wangfang-pass-1");
    // Not in the default queue (the township owns it) …
    assert_eq!(b.eval(&format!("!!document.querySelector('#queue tr[data-case=\"{number}\"]')")), false);
    // … but in 待反馈, with the owner's short name.
    let tab = b.eval("document.querySelector('button[data-filter=feedback]')?.innerText");
    assert_eq!(tab, json!("待反馈"));
    for (k, label) in [("sign_for", "待签收"), ("mine", "我的时限")] {
        assert_eq!(b.eval(&format!("document.querySelector('button[data-filter={k}]')?.innerText")), json!(label));
    }
    b.click("button[data-filter=feedback]");
    let owner = b.wait("the case in 待反馈", 15, &format!("document.querySelector('#queue-list[data-filter=feedback] #queue tr[data-case=\"{number}\"] .unit')?.innerText"));
    assert_eq!(owner, json!("示例街道"));
    let title = b.eval(&format!("document.querySelector('#queue tr[data-case=\"{number}\"] .unit').title"));
    assert!(title.as_str().unwrap().contains("示例街道社会治安综合治理中心"), "{title}");
    assert_eq!(b.eval(&format!("!!document.querySelector('#queue tr[data-case=\"{number}\"] td[data-clock-kind=feedback] [data-due]')")), true, "the feedback clock's due time");
    assert_eq!(b.eval("document.querySelector('button[data-filter=feedback]').className"), json!("primary"));
    b.screenshot("22-village-feedback-tab");
    b.click("button[data-filter=mine]");
    b.wait("the case in 我的时限", 15, &format!("document.querySelector('#queue-list[data-filter=mine] #queue tr[data-case=\"{number}\"]')"));
    b.click("button[data-filter=sign_for]");
    b.wait("the sign-for tab", 15, "document.querySelector('#queue-list[data-filter=sign_for] #queue')");
    assert_eq!(b.eval(&format!("!!document.querySelector('#queue tr[data-case=\"{number}\"]')")), false, "nothing to sign for");
    assert_eq!(b.eval("document.querySelector('[data-test=load-more]').hidden"), true, "one page only");
}

/// An admin on the 账户 page sees a locked account with 解锁, unlocks it,
/// and reads the 登录记录; the locked user is told in Chinese when to
/// retry; the statistics page offers 导出 Excel beside the CSV.
#[test]
fn admin_unlocks_an_account_and_reads_the_login_audit_in_the_browser() {
    let mut node = zongzhi_tests::TestNode::init_with("330102001000", "留下街道社会治安综合治理中心", "[login]\naccount_failures_before_delay = 10\naccount_failures_to_lock = 3\n");
    node.start();
    let url = node.url();
    let anon = zongzhi_tests::Api::new(&url, None);
    for _ in 0..3 {
        anon.post("/api/login", &json!({"username": "operator", "password": "not-the-password"}));
    }
    let mut b = Browser::launch();
    b.goto(&format!("{url}/#/login"));
    b.wait("the login form", 15, "document.querySelector('#login-form')");
    b.fill("#login-form input[name=username]", "operator");
    b.fill("#login-form input[name=password]", OPERATOR_PASSWORD);
    b.click("#login-form button[type=submit]");
    let err = b.wait("the lockout message", 10, "document.querySelector('[data-test=error]')?.innerText");
    assert!(err.as_str().unwrap().contains("已被锁定") && err.as_str().unwrap().contains("秒后重试"), "{err}");

    login(&mut b, &url, "admin", ADMIN_PASSWORD);
    b.goto(&format!("{url}/#/account"));
    let locked = b.wait("the locked account", 15, "document.querySelector('#users tr[data-user=operator] [data-test=locked]')?.innerText");
    assert!(locked.as_str().unwrap().starts_with("已锁定至"), "{locked}");
    assert_eq!(b.eval("document.querySelector('#users tr[data-user=operator] [data-test=unlock]')?.innerText"), json!("解锁"));
    // Refused attempts from one address are one row with their count;
    // the lockout they caused is a row of its own.
    assert_eq!(b.eval("document.querySelectorAll('#login-audit tr[data-outcome=wrong_password]').length"), json!(1));
    assert_eq!(b.eval("document.querySelector('#login-audit tr[data-outcome=wrong_password] td:nth-child(5)')?.innerText"), json!("密码错误 ×3"));
    assert_eq!(b.eval("document.querySelector('#login-audit tr[data-outcome=locked] td:nth-child(5)')?.innerText"), json!("账户已锁定"));
    let lockout = b.eval("document.querySelector('#login-audit tr[data-outcome=lockout] td:nth-child(6)')?.innerText");
    assert!(lockout.as_str().unwrap().contains("operator locked for 127.0.0.1"), "{lockout}");
    assert_eq!(b.eval("[...document.querySelectorAll('h2')].some(h => h.innerText === '登录记录')"), json!(true));
    b.screenshot("30-account-locked");
    b.click("#users tr[data-user=operator] [data-test=unlock]");
    b.wait("the account unlocked", 15, "document.querySelector('#users tr[data-user=operator]') && !document.querySelector('#users tr[data-user=operator] [data-test=locked]')");
    node.login("operator", OPERATOR_PASSWORD);

    b.goto(&format!("{url}/#/stats"));
    let xlsx = b.wait("the Excel export", 20, "document.querySelector('[data-test=download-xlsx]')?.innerText");
    assert_eq!(xlsx, json!("导出 Excel"));
    assert_eq!(b.eval("document.querySelector('[data-test=download-csv]')?.innerText"), json!("导出 CSV"));
}

/// The city's 节点 page lists every center with its release and report;
/// the admin finalizes format 4 there (the button is enabled once every
/// center reported reading it); then a village answers a township's 督办
/// from the case page (督办回复) and the township sees the measures.
#[test]
fn the_fleet_page_finalizes_and_a_village_replies_to_a_supervision_notice() {
    let h = Hierarchy::start(1);
    let (city, township, village) = (h.city.url(), h.township.url(), h.villages[0].url());
    let mut b = Browser::launch();
    login(&mut b, &city, "admin", ADMIN_PASSWORD);
    b.goto(&format!("{city}/#/fleet"));
    b.wait("every center reported, the button enabled", 30, "document.querySelector('#finalize') && !document.querySelector('#finalize').disabled");
    let rows = b.eval("[...document.querySelectorAll('#fleet tbody tr')].map(r => r.dataset.division + ':' + r.querySelector('[data-test=release]').innerText).join(' ')");
    for d in ["330100000000", "330106000000", "330106010000", "330106010001"] {
        assert!(rows.as_str().unwrap().contains(&format!("{d}:0.2.0")), "{rows}");
    }
    b.screenshot("fleet-ready");
    b.eval("window.confirm = () => true");
    b.click("#finalize");
    b.wait("finalized", 15, "document.getElementById('toast')?.innerText.includes('已确认升级')");
    let village_api = h.villages[0].login("operator", OPERATOR_PASSWORD);
    wait_for("the gate at the village", 30, || (village_api.get("/api/health").1["upgrade"]["write_format"] == 4).then_some(()));

    // A 督办 from the township, answered at the village in the browser.
    let case = village_api.file_case(&zongzhi_tests::sample_case("督办回复测试"));
    let id = case["id"].as_str().unwrap().to_string();
    village_api.act(&id, json!({"action": "sign_for"}));
    let town_admin = h.township.login("admin", ADMIN_PASSWORD);
    zongzhi_tests::wait_case(&h.township, &town_admin, &id, "the case at the township", |_| true);
    town_admin.act(&id, json!({"action": "supervise", "grade": "yellow", "note": "请三日内回复整改措施"}));
    zongzhi_tests::wait_case(&h.villages[0], &village_api, &id, "the 督办 at the village", |v| !v["notices"].as_array().unwrap().is_empty());
    // The township's board lists the 督办 waiting for the village's reply
    // (the 督办回复 clocks of every unit: `clock_of=all`).
    let number = case["number"].as_str().unwrap().to_string();
    let (status, owed) = town_admin.get("/api/cases?clock=supervision_reply&clock_of=all");
    assert_eq!(status, 200, "{owed}");
    assert!(owed["cases"].as_array().unwrap().iter().any(|c| c["id"] == id.as_str()), "{owed}");
    let (status, v) = town_admin.get("/api/cases?clock=supervision_reply&clock_of=everyone");
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
    login(&mut b, &township, "admin", ADMIN_PASSWORD);
    b.goto(&format!("{township}/#/board"));
    let row = b.wait("the reply owed on the board", 15, &format!("document.querySelector('#replies-owed tr[data-case=\"{number}\"]')?.innerText"));
    assert!(row.as_str().unwrap().contains("未回复"), "{row}");
    b.screenshot("board-replies-owed");
    login(&mut b, &village, "operator", OPERATOR_PASSWORD);
    b.goto(&format!("{village}/#/case/{id}"));
    b.wait("the notice, not yet answered", 15, "document.querySelector('#notices tr[data-replied=no]')");
    act(&mut b, "reply_supervision", &[("textarea[name=measures]", "已约谈双方，三日内完成整改")]);
    b.wait("the notice answered", 10, "document.querySelector('#notices tr[data-replied=yes]')");
    b.screenshot("case-notice-replied");
    let town_op = h.township.login("operator", OPERATOR_PASSWORD);
    zongzhi_tests::wait_case(&h.township, &town_op, &id, "the reply at the township", |v| v["notices"][0]["measures"] == "已约谈双方，三日内完成整改");
    login(&mut b, &township, "admin", ADMIN_PASSWORD);
    b.goto(&format!("{township}/#/case/{id}"));
    let measures = b.wait("the measures at the township", 15, "document.querySelector('#notices [data-test=measures]')?.innerText");
    assert_eq!(measures.as_str().unwrap(), "已约谈双方，三日内完成整改");
    // Answered, it leaves the board's list of replies owed.
    b.goto(&format!("{township}/#/board"));
    b.wait("the board without the answered notice", 15, &format!("document.querySelector('#replies-owed') && !document.querySelector('#replies-owed tr[data-case=\"{number}\"]')"));
    let _: Value = Value::Null;
}
