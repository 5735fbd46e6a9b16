//! The decisions in the web console (Debian's headless Chromium) against a
//! live tree: the 协办 form offers the township's windows and its villages,
//! each with its deadline, and 改派 offers units too; the village answers
//! from its 待协办 tab; a mediator records a session and the agreement with
//! the parties' signed scan, and prints the 人民调解协议书 (screenshot); a
//! window account's console shows its queue only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, sample_case, wait_case, wait_for};

/// Opens an action's form on the case page.
fn open_form(b: &mut Browser, action: &str) {
    b.click(&format!("#case-actions button[data-action={action}]"));
    b.wait("the action form", 10, &format!("document.querySelector('#action-form[data-action={action}]')"));
}

/// Submits the open form and waits for the step in the timeline.
fn submit(b: &mut Browser, action: &str) {
    let before = b.eval("document.querySelectorAll('#timeline li').length").as_u64().unwrap();
    b.click("#action-form button[type=submit]");
    b.wait(
        &format!("{action} in the timeline"),
        20,
        &format!("document.querySelectorAll('#timeline li').length > {before} && [...document.querySelectorAll('#timeline li')].some(l => l.dataset.action === '{action}')"),
    );
}

/// Chooses a file for a file input, as the user's file dialog would.
fn choose_file(b: &mut Browser, selector: &str, path: &std::path::Path) {
    let doc = b.call("DOM.getDocument", json!({"depth": 0}));
    let node = b.call("DOM.querySelector", json!({"nodeId": doc["root"]["nodeId"], "selector": selector}));
    assert!(node["nodeId"].as_u64().is_some_and(|n| n > 0), "no {selector}: {node}");
    b.call("DOM.setFileInputFiles", json!({"files": [path.to_str().unwrap()], "nodeId": node["nodeId"]}));
}

fn finalize(city: &Api, nodes: &[&zongzhi_tests::TestNode]) {
    wait_for("every center reported", 60, || (city.get("/api/fleet").1["finalize"]["ready"] == json!(true)).then_some(()));
    let (status, v) = city.post("/api/policy/finalize", &json!({"format": 4}));
    assert_eq!(status, 201, "{v}");
    for n in nodes {
        let api = n.login("operator", OPERATOR_PASSWORD);
        wait_for("the gate at every center", 30, || (api.get("/api/health").1["upgrade"]["write_format"] == 4).then_some(()));
    }
}

#[test]
fn assistance_and_a_printed_mediation_agreement_in_the_browser() {
    let h = Hierarchy::start(1);
    finalize(&h.city.login("admin", ADMIN_PASSWORD), &h.all());
    let (township, village) = (h.township.url(), h.villages[0].url());
    let admin = h.township.login("admin", ADMIN_PASSWORD);
    for body in [
        json!({"username": "wang", "password": "mediator-pass-1", "role": "operator", "display_name": "王建国", "mediator": true}),
        json!({"username": "sfs", "password": "window-pass-1", "role": "window", "windows": ["justice"], "display_name": "司法所窗口"}),
    ] {
        let (status, v) = admin.post("/api/users", &body);
        assert_eq!(status, 201, "{v}");
    }
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let id = town.file_case(&sample_case("相邻通行纠纷"))["id"].as_str().unwrap().to_string();
    town.act(&id, json!({"action": "sign_for"}));
    let routed = town.file_case(&sample_case("噪音扰民"))["id"].as_str().unwrap().to_string();
    town.act(&routed, json!({"action": "sign_for"}));
    town.act(&routed, json!({"action": "route", "window": "police"}));

    let mut b = Browser::launch();
    b.login(&township, "operator", OPERATOR_PASSWORD);
    // 改派 offers the village as well as the windows.
    b.goto(&format!("{township}/#/case/{routed}"));
    b.wait("the case page", 15, "document.querySelector('#case-actions')");
    open_form(&mut b, "reroute");
    let options = b.eval("[...document.querySelectorAll('#action-form select[name=target] option')].map(o => o.value)");
    let options: Vec<&str> = options.as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert!(options.contains(&"u:330106010001") && options.contains(&"w:justice"), "{options:?}");

    // 协办: the village and the 司法所 window, each with its deadline.
    b.goto(&format!("{township}/#/case/{id}"));
    b.wait("the case page", 15, "document.querySelector('h1')?.innerText.includes('相邻通行纠纷') && document.querySelector('#case-actions button[data-action=request_assistance]')");
    open_form(&mut b, "request_assistance");
    let rows = b.eval("[...document.querySelectorAll('#action-form [data-test=helpers] input[name=helper]')].map(i => i.dataset.kind + ':' + i.value)");
    let rows: Vec<&str> = rows.as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert!(rows.contains(&"unit:330106010001") && rows.contains(&"window:justice"), "{rows:?}");
    b.click("#action-form input[name=helper][value='330106010001']");
    b.click("#action-form input[name=helper][value=justice]");
    b.fill("#action-form input[data-for='unit:330106010001']", "3");
    b.fill("#action-form textarea[name=requirements]", "请村委会核实通行道路的历史使用情况");
    b.screenshot("decisions-01-assist-form");
    submit(&mut b, "request_assistance");
    b.wait("the 协办 table", 10, "document.querySelectorAll('#assists tbody tr').length === 2");
    b.screenshot("decisions-02-assists");
    let assists = town.case(&id)["decisions"]["assists"].clone();
    let days: Vec<(String, u64)> = assists
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let who = a["helper"]["unit"].as_str().or(a["helper"]["window"].as_str()).unwrap().to_string();
            (who, a["working_days"].as_u64().unwrap())
        })
        .collect();
    let default = town.get("/api/policy").1["decisions"]["assistance_working_days"].as_u64().unwrap();
    assert_ne!(default, 3, "the typed deadline must differ from the default");
    assert!(days.contains(&("330106010001".into(), 3)) && days.contains(&("justice".into(), default)), "each helper with its own deadline: {days:?}");

    // The village answers from its 待协办 tab.
    let v_api = h.villages[0].login("operator", OPERATOR_PASSWORD);
    wait_case(&h.villages[0], &v_api, &id, "the request at the village", |_| true);
    let mut vb = Browser::launch();
    vb.login(&village, "operator", OPERATOR_PASSWORD);
    vb.click("button[data-filter=assist]");
    vb.wait("the 待协办 tab", 15, &format!("document.querySelector('#queue-list[data-filter=assist] tr[data-id=\"{id}\"]')"));
    vb.click(&format!("#queue tr[data-id=\"{id}\"]"));
    vb.wait("the case page", 15, "document.querySelector('#case-actions button[data-action=reply_assistance]')");
    open_form(&mut vb, "reply_assistance");
    vb.fill("#action-form textarea[name=reply]", "该道路自1990年起由两户共同通行");
    submit(&mut vb, "reply_assistance");
    wait_case(&h.township, &town, &id, "the village's reply", |v| v["decisions"]["assists"].as_array().unwrap().iter().any(|a| a["replied_at"].is_string()));

    // The mediator records a session and the agreement, and prints it.
    b.login(&township, "wang", "mediator-pass-1");
    b.goto(&format!("{township}/#/case/{id}"));
    b.wait("the case page", 15, "document.querySelector('h1')?.innerText.includes('相邻通行纠纷') && document.querySelector('#case-actions button[data-action=mediation_session]')");
    b.wait("the reply shown", 10, "[...document.querySelectorAll('#assists [data-test=assist-reply]')].some(td => td.innerText.includes('共同通行'))");
    let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().to_string();
    open_form(&mut b, "mediation_session");
    assert_eq!(b.eval("document.querySelector('#action-form input[name=mediators]').value"), json!("wang"), "the mediator's own account");
    b.fill("#action-form input[name=held_on]", &today);
    b.fill("#action-form input[name=attendees]", "申请人张三、被申请人李四");
    b.fill("#action-form textarea[name=notes]", "双方陈述通行需求，同意保留1.5米通道");
    submit(&mut b, "mediation_session");
    open_form(&mut b, "mediation_agreement");
    let party = |b: &mut Browser, i: usize, field: &str, value: &str| b.fill(&format!("#parties [data-test=party]:nth-child({i}) input[name=party_{field}]"), value);
    for (i, (name, gender, age, address)) in [(1, ("张三", "男", "52", "留下街道某村3组12号")), (2, ("李四", "男", "47", "留下街道某村3组14号"))] {
        party(&mut b, i, "name", name);
        party(&mut b, i, "gender", gender);
        party(&mut b, i, "ethnicity", "汉");
        party(&mut b, i, "age", age);
        party(&mut b, i, "address", address);
    }
    b.fill("#action-form textarea[name=matter]", "李四在两户之间砌墙，阻断张三通往承包地的道路，双方发生争执。");
    b.fill("#action-form textarea[name=terms]", "一、李四于2026年12月20日前拆除围墙东段三米，保留宽1.5米的通道供双方通行；\n二、张三不得在通道上堆放杂物。");
    b.fill("#action-form textarea[name=performance]", "李四于约定日期前自行拆除，村委会监督。");
    b.fill("#action-form input[name=signed_on]", &today);
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("签字确认页.pdf");
    std::fs::write(&scan, b"%PDF-1.4 signed by both parties").unwrap();
    choose_file(&mut b, "#action-form input[name=scans]", &scan);
    b.screenshot("decisions-03-agreement-form");
    submit(&mut b, "mediation_agreement");
    b.wait("the agreement on the case page", 10, "document.querySelector('#agreement-summary')?.innerText.includes('拆除围墙')");
    b.click("#print-agreement");
    b.wait("the printable agreement", 15, "document.querySelector('#agreement h1')?.innerText === '人民调解协议书'");
    let text = b.text("#agreement");
    for want in [
        "编号",
        "当事人1：张三",
        "当事人2：李四",
        "纠纷主要事实、争议事项",
        "经调解，自愿达成如下协议",
        "保留宽1.5米的通道",
        "履行方式、时限",
        "人民调解员（签名）",
        "王建国",
        "示例街道社会治安综合治理中心",
    ] {
        assert!(text.contains(want), "the agreement lacks {want:?}:\n{text}");
    }
    let (y, m, d) = (&today[..4], today[5..7].trim_start_matches('0'), today[8..].trim_start_matches('0'));
    assert!(text.contains(&format!("{y}年{m}月{d}日")), "{text}");
    b.call("Emulation.setEmulatedMedia", json!({"media": "print"}));
    let hidden = b.eval("getComputedStyle(document.querySelector('header')).display === 'none' && getComputedStyle(document.querySelector('#agreement-print').parentElement).display === 'none'");
    assert_eq!(hidden, json!(true), "the print view shows the agreement alone");
    let shown = b.eval("['#agreement h1', '#ag-terms', '#ag-date'].every(s => { const r = document.querySelector(s).getBoundingClientRect(); return r.width > 0 && r.height > 0; })");
    assert_eq!(shown, json!(true), "the print view shows the agreement itself");
    b.screenshot("decisions-04-mediation-agreement-print");
    b.call("Emulation.setEmulatedMedia", json!({"media": ""}));
    let v = town.case(&id);
    let ag = &v["decisions"]["mediation"]["agreements"][0];
    assert_eq!((ag["signatures"][0]["name"].as_str(), ag["mediators"][0]["name"].as_str()), (Some("签字确认页.pdf"), Some("王建国")), "{ag}");

    // The 司法所 window's console: its queue only.
    b.login(&township, "sfs", "window-pass-1");
    let nav: Value = b.eval("[...document.querySelectorAll('#nav a')].map(a => a.dataset.nav)");
    assert_eq!(nav, json!(["queue", "account"]));
    b.wait("its note", 10, "document.querySelector('[data-test=window-note]')");
    let listed: Value = b.eval("[...document.querySelectorAll('#queue tr[data-id]')].map(r => r.dataset.id)");
    assert_eq!(listed, json!([id]), "only the case its window helps with");
    b.screenshot("decisions-05-window-queue");
    b.goto(&format!("{township}/#/case/{routed}"));
    let err = b.wait("the refusal", 10, "document.querySelector('[data-test=error]')?.innerText");
    assert!(err.as_str().unwrap().contains("派驻窗口"), "{err}");
}
