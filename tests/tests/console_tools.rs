//! The console's everyday tools in Chromium against a real node: rows are
//! links (keyboard), 导出台账 with the current filters, the new-work badge
//! and tone (opt-in), image and PDF previews, printed 交办单 and 督办单 (one
//! A4 page each), and a refusal in the server's Chinese words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{OPERATOR_PASSWORD, TestNode, sample_case};

/// An 8×6 red PNG.
fn png() -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc = 0xFFFF_FFFFu32;
        for b in kind.iter().chain(data) {
            crc ^= *b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        c.extend_from_slice(&(!crc).to_be_bytes());
        c
    }
    // Stored (uncompressed) deflate blocks of the scanlines.
    let raw: Vec<u8> = (0..6).flat_map(|_| std::iter::once(0u8).chain([255u8, 0, 0].repeat(8))).collect();
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + *x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&8u32.to_be_bytes());
    ihdr.extend_from_slice(&6u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    [b"\x89PNG\r\n\x1a\n".to_vec(), chunk(b"IHDR", &ihdr), chunk(b"IDAT", &z), chunk(b"IEND", &[])].concat()
}

/// A one-page PDF.
fn pdf() -> Vec<u8> {
    let objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes());
    out
}

/// The pages of the current page printed to PDF (A4, as the browser's print does).
fn printed_pages(b: &mut Browser) -> usize {
    let r = b.call("Page.printToPDF", json!({"paperWidth": 8.27, "paperHeight": 11.69, "preferCSSPageSize": true, "printBackground": true}));
    let bytes = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.matches("/Type /Page").count() - text.matches("/Type /Pages").count()
}

#[test]
fn everyday_tools_in_the_browser() {
    let mut node = TestNode::init("330106010000", "示例街道社会治安综合治理中心");
    node.start();
    let url = node.url();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let case = op.file_case(&sample_case("楼道堆物占用消防通道"));
    let id = case["id"].as_str().unwrap().to_string();
    let number = case["number"].as_str().unwrap().to_string();

    let mut b = Browser::launch_with(&["--autoplay-policy=no-user-gesture-required"]);
    b.login(&url, "operator", OPERATOR_PASSWORD);
    // The alert polls every 300 ms here, with the tone turned on.
    b.eval("localStorage.setItem('zz-alert-interval-ms', '300')");
    // A new document (another query string), which reads the setting.
    b.goto(&format!("{url}/?reloaded#/queue"));
    b.wait("the queue", 15, "document.querySelector('#queue a.case-link')");
    b.click("#alert-sound");
    assert_eq!(b.eval("localStorage.getItem('zz-alert-sound')"), "1");
    b.goto(&format!("{url}/#/queue"));
    b.wait("the queue", 15, "document.querySelector('#queue a.case-link')");

    // Rows are links: a real href, and Enter on the focused link opens the case.
    let href = b.eval("document.querySelector('#queue a.case-link').getAttribute('href')");
    assert_eq!(href, format!("#/case/{id}"));
    b.eval("document.querySelector('#queue a.case-link').focus()");
    for kind in ["keyDown", "keyUp"] {
        b.call("Input.dispatchKeyEvent", json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": if kind == "keyDown" { "\r" } else { "" }}));
    }
    b.wait("the case page", 10, &format!("document.body.dataset.page === 'case' && location.hash === '#/case/{id}'"));

    // New work: two filings elsewhere raise the badge and sound the tone.
    b.goto(&format!("{url}/#/stats"));
    b.wait("the statistics", 20, "document.body.dataset.page === 'stats'");
    b.wait("the first poll", 10, "document.getElementById('new-work')?.dataset.polled === '1'");
    op.file_case(&sample_case("新来件一"));
    op.file_case(&sample_case("新来件二"));
    let count = b.wait("the new-work badge", 15, "!document.getElementById('new-work').hidden && Number(document.getElementById('new-work').dataset.count)");
    assert_eq!(count, 2);
    assert_eq!(b.eval("document.getElementById('new-work').dataset.audio"), "running", "the tone played");
    b.screenshot("tools-new-work-badge");
    // Turned off, the tone stays quiet while the badge still counts.
    let sounded = b.eval("document.getElementById('new-work').dataset.sounded");
    b.eval("localStorage.setItem('zz-alert-sound', '0')");
    op.file_case(&sample_case("新来件三"));
    b.wait("the third new case", 15, "Number(document.getElementById('new-work').dataset.count) === 3");
    assert_eq!(b.eval("document.getElementById('new-work').dataset.sounded"), sounded, "no tone when off");
    // The queue clears it.
    b.goto(&format!("{url}/#/queue"));
    b.wait("the badge cleared", 10, "document.getElementById('new-work').hidden && document.querySelector('#queue-list')");
    assert_eq!(b.eval("getComputedStyle(document.getElementById('new-work')).display"), "none", "a cleared badge is not drawn");

    // 导出台账 with the current tab's filters: what the API gives for them.
    b.click("button[data-filter=urgent]");
    b.wait("the urgent tab", 10, "document.querySelector('#queue-list[data-filter=urgent]')");
    b.click("button[data-export=csv]");
    let exported = b.wait("the CSV download", 15, "document.body.dataset.exported");
    let (_, _, urgent_csv) = op.get_raw("/api/cases/export?format=csv&status=open&urgency=urgent");
    assert_eq!(exported, format!("csv:{}", urgent_csv.len()), "the urgent tab's list, not all");
    b.click("button[data-filter=open]");
    b.wait("the open tab", 10, "document.querySelector('#queue-list[data-filter=open]')");
    b.click("button[data-export=xlsx]");
    let exported = b.wait("the XLSX download", 15, "document.body.dataset.exported?.startsWith('xlsx:') && document.body.dataset.exported");
    assert!(exported.as_str().unwrap()["xlsx:".len()..].parse::<usize>().unwrap() > 1000, "{exported}");
    b.screenshot("tools-queue-export");

    // Previews of an image and a PDF from the case page.
    let (status, _) = op.post_raw(&format!("/api/cases/{id}/attachments?name=现场照片.png"), "image/png", png());
    assert_eq!(status, 201);
    let (status, _) = op.post_raw(&format!("/api/cases/{id}/attachments?name=告知书.pdf"), "application/pdf", pdf());
    assert_eq!(status, 201);
    let (status, _) = op.post_raw(&format!("/api/cases/{id}/attachments?name=data.bin"), "application/octet-stream", vec![1, 2, 3]);
    assert_eq!(status, 201);
    b.goto(&format!("{url}/#/case/{id}"));
    b.wait("the attachments", 10, "document.querySelectorAll('#attachments li').length === 3");
    assert_eq!(b.eval("document.querySelectorAll('#attachments [data-preview]').length"), 2, "no preview for other types");
    assert_eq!(b.text("#attachments li:nth-child(1) [data-preview]"), "预览");
    b.click("#attachments li:nth-child(1) [data-preview]");
    let w = b.wait("the image shown", 10, "document.querySelector('#preview img#preview-content')?.naturalWidth");
    assert_eq!(w, 8);
    b.screenshot("tools-preview-image");
    b.click("#preview-close");
    b.click("#attachments li:nth-child(2) [data-preview]");
    let src = b.wait("the PDF frame", 10, "document.querySelector('#preview[data-mime=\"application/pdf\"] iframe#preview-content')?.src");
    assert!(src.as_str().unwrap().starts_with("blob:"), "{src}");
    b.click("#preview-close");

    // A refusal in the server's words: this page still offers 签收, which
    // another operator has just done.
    b.goto(&format!("{url}/?fresh#/case/{id}"));
    b.wait("the actions", 10, "document.querySelector('#case-actions button[data-action=sign_for]')");
    op.act(&id, json!({"action": "sign_for"}));
    b.click("#case-actions button[data-action=sign_for]");
    b.wait("the form", 5, "document.querySelector('#action-form')");
    b.click("#action-form button[type=submit]");
    let err = b.wait("the refusal", 10, "document.querySelector('[data-test=error]')?.innerText");
    assert!(err.as_str().unwrap().starts_with(zongzhi_protocol::rules::zh("status").unwrap()), "{err}");

    // Printed forms: 交办单 after 分流, 督办单 after a 督办 of the center's own window.
    op.act(&id, json!({"action": "route", "window": "justice", "requirements": "三日内清理楼道堆物并回复"}));
    let admin = node.login("admin", zongzhi_tests::ADMIN_PASSWORD);
    admin.act(&id, json!({"action": "supervise", "grade": "yellow", "note": "请立即清理，消除消防隐患"}));
    b.goto(&format!("{url}/?after-steps#/case/{id}"));
    b.wait("the print links", 10, "document.querySelectorAll('#print-forms a[data-print]').length === 2");
    assert_eq!(b.eval("document.querySelector('#print-forms a[data-print=assign]').target"), "_blank");
    let assign = b.eval("document.querySelector('#print-forms a[data-print=assign]').getAttribute('href')").as_str().unwrap().to_string();
    b.goto(&format!("{url}/{assign}"));
    let sheet = b.wait("the 交办单", 10, "document.querySelector('#sheet[data-kind=assign]')?.innerText");
    let sheet = sheet.as_str().unwrap();
    for part in ["交　办　单", number.as_str(), "三日内清理楼道堆物并回复", "（本中心窗口）", "示例街道社会治安综合治理中心（盖章）", "签收人"] {
        assert!(sheet.contains(part), "{part} missing from {sheet}");
    }
    assert_eq!(b.eval("getComputedStyle(document.querySelector('header')).display"), "flex", "the header shows on screen");
    assert_eq!(b.text("#print-now"), "打印");
    // On paper: the form alone, without the console's header or the button.
    b.call("Emulation.setEmulatedMedia", json!({"media": "print"}));
    assert_eq!(b.eval("getComputedStyle(document.querySelector('header')).display"), "none", "no header on paper");
    assert_eq!(b.eval("getComputedStyle(document.getElementById('print-now').parentElement).display"), "none", "no button on paper");
    b.call("Emulation.setEmulatedMedia", json!({"media": ""}));
    b.screenshot("tools-print-assign");
    assert_eq!(printed_pages(&mut b), 1, "the 交办单 prints on one A4 page");
    let supervise = b.eval("location.hash.replace('/assign/', '/supervise/')").as_str().unwrap().to_string();
    let steps: Value = op.case(&id)["timeline"].clone();
    let sup = steps.as_array().unwrap().iter().find(|e| e["action"] == "supervise").unwrap()["id"].as_str().unwrap().to_string();
    let supervise = format!("{}/{sup}", supervise.rsplit_once('/').unwrap().0);
    b.goto(&format!("{url}/{supervise}"));
    let sheet = b.wait("the 督办单", 10, "document.querySelector('#sheet[data-kind=supervise]')?.innerText");
    let sheet = sheet.as_str().unwrap();
    for part in ["督　办　单", "黄牌", "请立即清理，消除消防隐患", number.as_str(), "整改措施"] {
        assert!(sheet.contains(part), "{part} missing from {sheet}");
    }
    b.screenshot("tools-print-supervise");
    assert_eq!(printed_pages(&mut b), 1, "the 督办单 prints on one A4 page");
}
