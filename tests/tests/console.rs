//! The web console in a real browser (Debian's headless Chromium) against
//! real nodes: log in at a village, file a case, escalate it; the township
//! sees it after sync, signs for it and resolves it; the village's timeline
//! and statistics change. Screenshots of each page are kept as artifacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use zongzhi_tests::browser::Browser;
use zongzhi_tests::{Hierarchy, OPERATOR_PASSWORD, VIEWER_PASSWORD};

fn login(b: &mut Browser, url: &str, user: &str, password: &str) {
    b.goto(&format!("{url}/#/login"));
    b.wait("the login form", 15, "document.querySelector('#login-form')");
    b.fill("#login-form input[name=username]", user);
    b.fill("#login-form input[name=password]", password);
    b.click("#login-form button[type=submit]");
    b.wait("the work queue", 15, "document.body.dataset.page === 'queue' && document.querySelector('#queue')");
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
    let resolved = b.eval("[...document.querySelectorAll('#stats-table tbody tr')].some(r => r.innerText.startsWith('') && r.cells[1]?.innerText.startsWith('330106010000') && r.cells[3]?.innerText === '1')");
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
