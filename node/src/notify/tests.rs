#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::config::Config;
use crate::context::{Clock, now_ms};
use crate::ledger::{Ack, Op, Outcome, Writer};
use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};
use zongzhi_protocol::{Body, CaseEvent, Filing, Header, Hlc, NodeKey};

const PUBLIC: &str = "https://city.example/public/";

/// A city node's writer and shared state on a fresh directory.
fn city() -> (tempfile::TempDir, Writer, Context) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: Config = toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市社会治安综合治理中心\"\n", dir.path().join("data"))).unwrap();
    crate::node::init(&cfg).unwrap();
    let key = Arc::new(crate::node::load_key(&cfg).unwrap());
    let store = crate::node::open_store(&cfg, &key).unwrap();
    let shared = crate::node::shared_state(&cfg, store, key).unwrap();
    (dir, Writer::new(shared.clone()).unwrap(), shared)
}

fn notifier(toml_text: &str) -> Notifier {
    let cfg: NotifyConfig = toml::from_str(toml_text).unwrap();
    Notifier::from_config(&cfg, "示例市社会治安综合治理中心", None).unwrap()
}

fn filing(title: &str) -> Filing {
    Filing {
        number: String::new(),
        title: title.into(),
        content: "楼道堆放杂物，影响通行。".into(),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency: Urgency::Normal,
        complexity: Complexity::General,
        place: Place::default(),
        occurred_at_ms: None,
        received_at_ms: now_ms(),
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    }
}

fn acked(o: Outcome) -> Ack {
    match o {
        Outcome::Step(a) => a,
        other => panic!("unexpected {other:?}"),
    }
}

fn file(w: &mut Writer, title: &str, phone: Option<&str>) -> Ack {
    let contact = phone.map(|p| Contact { name: "张三".into(), phone: p.into(), ..Default::default() });
    acked(w.run(Op::File { filing: Box::new(filing(title)), contact, query_code: None, operator: "op".into() }).unwrap())
}

fn act(w: &mut Writer, case: RecordId, action: Action) -> Ack {
    acked(w.run(Op::Act { case, action, operator: "op".into() }).unwrap())
}

/// What the ledger does in the batch that stores `event`.
fn leave_secret(ctx: &Context, event: &RecordId, name: &str, value: &str) {
    let mut b = ctx.store.batch();
    b.put_notify_secret(event, name, value);
    ctx.store.commit(b).unwrap();
}

fn pending(ctx: &Context) -> Vec<(u64, Entry)> {
    ctx.store.notify_entries(OutboxState::Pending, usize::MAX).unwrap()
}

#[test]
fn the_query_code_left_with_the_filing_is_in_the_receipt_and_gone_after_the_enqueue() {
    let (_dir, mut w, ctx) = city();
    let n = notifier(&format!("adapter = \"log\"\npublic_url = \"{PUBLIC}\"\n"));
    prepare(&ctx.store, true).unwrap();
    assert_eq!(ctx.store.notify_cursor().unwrap(), Some(ctx.store.feed_len().unwrap()), "starts at the feed head");
    let ack = file(&mut w, "楼道堆物", Some("138-1234-1234"));
    leave_secret(&ctx, &ack.event, "query_code", "K7Q2-9XPM");
    let number = ctx.store.case_summary(&ack.case).unwrap().unwrap().number;

    assert_eq!(enqueue(&ctx, &n, 1_000).unwrap(), 1);
    let queued = pending(&ctx);
    assert_eq!(queued.len(), 1);
    let (seq, e) = &queued[0];
    assert_eq!(Some(*seq), ctx.store.record_seq(&ack.event).unwrap());
    assert_eq!(e.text, format!("【综治中心】您反映的“楼道堆物”已由示例市社会治安综合治理中心受理，编号{number}，查询码K7Q2-9XPM。查询进度：{PUBLIC}"));
    assert_eq!((e.template, e.to.as_str(), e.to_masked.as_str(), e.id.clone()), (Kind::Receipt, "13812341234", "138****1234", ack.event.to_string()));
    assert_eq!((e.attempts, e.next_attempt_ms, e.created_ms), (0, 1_000, 1_000));
    // The secret is gone with the enqueue, and the cursor is past the filing.
    assert!(ctx.store.notify_secrets(&ack.event).unwrap().is_empty());
    assert_eq!(ctx.store.notify_cursor().unwrap(), Some(ctx.store.feed_len().unwrap()));
    // A second pass queues nothing again.
    assert_eq!(enqueue(&ctx, &n, 2_000).unwrap(), 0);
    assert_eq!(pending(&ctx).len(), 1);
}

#[test]
fn four_steps_of_cases_filed_here_with_a_phone_are_told_and_nothing_else() {
    let (_dir, mut w, ctx) = city();
    let n = notifier(&format!("adapter = \"log\"\npublic_url = \"{PUBLIC}\"\n[templates]\nresolution = \"{{number}}办结：{{reply}}\"\n"));
    prepare(&ctx.store, true).unwrap();
    let a = file(&mut w, "楼道堆物", Some("13812341234"));
    let number = ctx.store.case_summary(&a.case).unwrap().unwrap().number;
    let no_contact = file(&mut w, "路灯不亮", None);
    let no_phone = file(&mut w, "噪音扰民", Some(""));
    for c in [a.case, no_contact.case, no_phone.case] {
        act(&mut w, c, Action::SignFor);
        act(&mut w, c, Action::Progress { note: "内部记录".into(), public: false });
        act(&mut w, c, Action::Progress { note: "已约谈物业，三日内清理。".into(), public: true });
        act(&mut w, c, Action::Resolve { public_reply: "杂物已清理完毕。".into(), internal_note: "现场核实".into() });
    }
    let feedback = act(&mut w, a.case, Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: None });
    leave_secret(&ctx, &feedback.event, "rating_token", "tok123");
    // A case another center filed, with a phone: that center tells its complainant.
    let county = NodeKey::from_seed([9; 32]);
    let now = now_ms();
    let cert = zongzhi_protocol::cert::NodeCert {
        key: county.id(),
        division: "330106000000".parse().unwrap(),
        level: zongzhi_protocol::Level::County,
        name: "示例区社会治安综合治理中心".into(),
        issuer: ctx.key.id(),
        not_before_ms: now - 3_600_000,
        not_after_ms: now + 86_400_000,
        serial: 2,
    };
    w.run(Op::AppendOwn { body: Body::NodeCert(cert) }).unwrap();
    let contact = Contact { name: "李四".into(), phone: "13900001111".into(), ..Default::default() };
    let mut f = filing("外地受理");
    f.number = "330106000000-2026-000001".into();
    f.contact = Some(contact.hash());
    let body = Body::CaseEvent(CaseEvent { case: None, parents: vec![], unit: "330106000000".parse().unwrap(), operator: "op".into(), action: Action::File(Box::new(f)), policy: 1 });
    let record = Record::sign(&county, Header { seq: 1, prev: None, hlc: Hlc { wall_ms: now, counter: 0 } }, body);
    let elsewhere = record.id;
    match w.run(Op::Ingest { records: vec![record], blobs: vec![(contact.hash(), contact.to_bytes())], cursor: None }).unwrap() {
        Outcome::Ingested(r) => assert_eq!((r.applied, r.rejected.len()), (1, 0), "{r:?}"),
        other => panic!("{other:?}"),
    }
    assert!(ctx.store.case_summary(&elsewhere).unwrap().is_some_and(|s| s.contact.is_some()));

    assert_eq!(enqueue(&ctx, &n, 5).unwrap(), 4);
    let got: Vec<(Kind, String)> = pending(&ctx).into_iter().map(|(_, e)| (e.template, e.text)).collect();
    assert_eq!(
        got,
        vec![
            (Kind::Receipt, format!("【综治中心】您反映的“楼道堆物”已由示例市社会治安综合治理中心受理，编号{number}。查询进度：{PUBLIC}")),
            (Kind::Progress, format!("【综治中心】您反映的事项（编号{number}）有新进展：已约谈物业，三日内清理。 查询进度：{PUBLIC}")),
            (Kind::Resolution, format!("{number}办结：杂物已清理完毕。")),
            (Kind::RatingInvitation, format!("【综治中心】您反映的事项（编号{number}）已办结，请对办理结果作出评价：https://city.example/public/#n={number}&r=tok123。感谢您的支持！")),
        ]
    );
    assert!(ctx.store.notify_secrets(&feedback.event).unwrap().is_empty());
}

#[test]
fn turned_on_later_it_starts_at_the_head_and_off_forgets_where_it_was() {
    let (_dir, mut w, ctx) = city();
    let n = notifier("adapter = \"log\"\n");
    file(&mut w, "开通前受理", Some("13812341234"));
    prepare(&ctx.store, true).unwrap();
    assert_eq!(enqueue(&ctx, &n, 1).unwrap(), 0, "a step taken before notifications were on is not told");
    file(&mut w, "开通后受理", Some("13812341234"));
    assert_eq!(enqueue(&ctx, &n, 2).unwrap(), 1);
    prepare(&ctx.store, false).unwrap();
    assert_eq!(ctx.store.notify_cursor().unwrap(), None);
    file(&mut w, "关闭期间受理", Some("13812341234"));
    prepare(&ctx.store, true).unwrap();
    assert_eq!(enqueue(&ctx, &n, 3).unwrap(), 0);
    assert_eq!(pending(&ctx).len(), 1);
}

#[test]
fn delays_double_from_the_initial_up_to_the_cap_with_jitter() {
    let n = notifier("adapter = \"log\"\nretry_initial_secs = 5\nretry_max_secs = 600\n");
    assert_eq!([1, 2, 3, 8, 9, 40, u32::MAX].map(|a| n.delay_ms(a, 0.5)), [5_000, 10_000, 20_000, 600_000, 600_000, 600_000, 600_000]);
    assert_eq!((n.delay_ms(1, 0.0), n.delay_ms(1, 0.999_999)), (3_750, 6_249));
    let spread: std::collections::BTreeSet<u64> = (0..50).map(|_| n.delay_ms(1, jitter())).collect();
    assert!(spread.len() > 10 && spread.iter().all(|d| (3_750..6_250).contains(d)), "{spread:?}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_failing_webhook_is_retried_with_backoff_and_given_up_as_failed() {
    let (_dir, mut w, mut ctx) = city();
    let t0 = now_ms();
    ctx.clock = Clock::manual(t0);
    let n = Arc::new(notifier(&format!("adapter = \"webhook\"\nurl = \"http://127.0.0.1:{}/sms\"\nretry_initial_secs = 5\nretry_max_secs = 40\ngive_up_after_hours = 1\n", closed_port())));
    prepare(&ctx.store, true).unwrap();
    file(&mut w, "第一件", Some("13812341234"));
    file(&mut w, "第二件", Some("13900001111"));
    assert_eq!(enqueue(&ctx, &n, t0).unwrap(), 2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut gate = Gate::default();
    let pass = |gate: &mut Gate| rt.block_on(deliver_due(&ctx, &n, give_up_old(&ctx, &n, ctx.clock.now_ms()).unwrap(), gate));

    // The first fails; the second waits with it (the gateway is down).
    let wake = pass(&mut gate).unwrap();
    let p = pending(&ctx);
    assert_eq!(p.iter().map(|(_, e)| e.attempts).collect::<Vec<_>>(), vec![1, 0]);
    let first = &p[0].1;
    assert!(first.last_error.as_deref().unwrap().starts_with("connecting to 127.0.0.1:"), "{first:?}");
    assert!((t0 + 3_750..t0 + 6_250).contains(&first.next_attempt_ms), "{first:?}");
    assert!(wake >= first.next_attempt_ms.min(gate.closed_until_ms) && wake > t0, "{wake}");
    // Nothing is due yet: nothing is tried.
    pass(&mut gate);
    assert_eq!(pending(&ctx).iter().map(|(_, e)| e.attempts).collect::<Vec<_>>(), vec![1, 0]);
    // Each later attempt waits twice as long, up to the cap.
    let mut last_delay = 0;
    for attempt in 2..=6u32 {
        ctx.clock.advance(60_000);
        pass(&mut gate);
        let now = ctx.clock.now_ms();
        let e = pending(&ctx)[0].1.clone();
        assert_eq!(e.attempts, attempt);
        let base = (5_000u64 << (attempt - 1)).min(40_000);
        let delay = e.next_attempt_ms - now;
        assert!((base * 3 / 4..=base * 5 / 4).contains(&delay), "attempt {attempt}: {delay} ms");
        last_delay = delay;
    }
    assert!(last_delay >= 30_000);
    // An hour after its step, a message is given up and keeps no phone or text.
    ctx.clock.advance(3_600_000);
    assert!(pass(&mut gate).is_none(), "nothing pending");
    let failed: Vec<(u64, Entry)> = ctx.store.notify_entries(OutboxState::Failed, 10).unwrap();
    assert_eq!(failed.len(), 2);
    let e = &failed[1].1;
    assert_eq!((e.to.as_str(), e.text.as_str(), e.to_masked.as_str(), e.attempts), ("", "", "138****1234", 6));
    assert!(e.last_error.as_deref().unwrap().starts_with("gave up after 6 attempts in 1 hours; last: connecting to"), "{e:?}");
    assert_eq!(failed[0].1.last_error.as_deref(), Some("gave up after 0 attempts in 1 hours; last: not attempted"));
    // Pruned after 30 days.
    assert_eq!(prune(&ctx.store, ctx.clock.now_ms() + 29 * 86_400_000).unwrap(), 0);
    assert_eq!(prune(&ctx.store, ctx.clock.now_ms() + 31 * 86_400_000).unwrap(), 2);
}

#[test]
fn a_delivered_message_keeps_only_what_happened() {
    let (_dir, mut w, ctx) = city();
    let n = Arc::new(notifier("adapter = \"log\"\n"));
    prepare(&ctx.store, true).unwrap();
    file(&mut w, "楼道堆物", Some("13812341234"));
    let now = ctx.clock.now_ms();
    enqueue(&ctx, &n, now).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let wake = rt.block_on(deliver_due(&ctx, &n, give_up_old(&ctx, &n, now).unwrap(), &mut Gate::default()));
    assert_eq!(wake, None);
    assert!(pending(&ctx).is_empty());
    let done: Vec<(u64, Entry)> = ctx.store.notify_entries(OutboxState::Delivered, 10).unwrap();
    let e = &done[0].1;
    assert_eq!((e.to.as_str(), e.text.as_str(), e.to_masked.as_str(), e.attempts, e.last_error.clone()), ("", "", "138****1234", 1, None));
    assert!(e.done_ms.is_some());
    assert_eq!(prune(&ctx.store, now + 6 * 86_400_000).unwrap(), 0);
    assert_eq!(prune(&ctx.store, now + 8 * 86_400_000).unwrap(), 1);
}
