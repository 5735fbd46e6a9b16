//! The compatibility corpus (UPGRADES.md §6.1): records of every kind and
//! every workflow step of each record format, signed once by the release
//! that shipped the format, with the projection of every case as that
//! release folded it. Written once and never regenerated: a manifest of
//! hashes guards it. Every release must decode each record, verify it,
//! encode it again to the same bytes and id, and fold each case to its
//! projection (new fields may join it; old values may not change). The
//! "future" set — records of formats, kinds and variants no release reads
//! yet, signed by a certified key — must decode as unreadable (to be held
//! aside), never fail.
//!
//! `format-3/` was written by release 0.1.0's own code (`generate.rs`
//! there, run at commit b92aa6a), `format-4/` by release 0.2.0's (its
//! `generate.rs`, run at commit f12e2c1).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The projection is one `json!` of many fields.
#![recursion_limit = "256"]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use zongzhi_protocol::codec;
use zongzhi_protocol::kpi::Actor;
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::workflow::{CaseState, EventRef, Left, fold};
use zongzhi_protocol::{Body, Record, RecordId};

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(dir)
}

/// Files every corpus directory may hold besides those its manifest lists.
const UNLISTED: &[&str] = &["MANIFEST.json", "generate.rs", "README.md"];

/// The manifest's files, each checked against its hash; no other file.
fn manifest(dir: &Path) -> Vec<String> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json")).expect("MANIFEST.json")).unwrap();
    let mut listed = BTreeSet::new();
    for f in m["files"].as_array().unwrap() {
        let name = f["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), f["blake3"].as_str().unwrap(), "{name} changed: a shipped corpus is never regenerated");
        listed.insert(name.to_string());
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(listed.contains(&name) || UNLISTED.contains(&name.as_str()), "{name} is not in the manifest");
    }
    listed.into_iter().collect()
}

/// The projection the corpus pins, computed with this build's fold (the
/// same fields the generating release wrote; new ones may join: format 4
/// added the 督办 notices, the decisions — 不予受理, 撤回, 中止, 协办,
/// mediation —, the clocks' window and pause, the timeline's window and
/// the facts by window and person).
fn projection(st: &CaseState) -> Value {
    json!({
        "id": st.id.to_string(),
        "number": st.filing.number,
        "status": st.status.as_str(),
        "owner": st.owner.to_string(),
        "filed_by": st.filed_by.to_string(),
        "filed_ms": st.filed_ms,
        "window": st.window,
        "came_from": st.came_from.map(|c| c.to_string()),
        "helpers": st.helpers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>(),
        "units_handled": st.units_handled.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "highest_level": st.highest_level.as_str(),
        "escalations": st.escalations,
        "returns": st.returns,
        "reopens": st.reopens,
        "extension": st.extension.as_ref().map(|e| json!({"working_days": e.working_days, "unit": e.unit.to_string(), "operator": e.operator})),
        "supervision": st.supervision.map(|g| g.as_str()),
        "supervisions": st.supervisions,
        "notices": st.notices.iter().map(|n| json!({
            "id": n.id.to_string(), "grade": n.grade.as_str(), "by": n.by.to_string(), "to": n.to.to_string(), "at_ms": n.at_ms,
            "reply_due_ms": n.reply_due_ms, "replied_ms": n.replied_ms, "measures": n.measures, "superseded_by": n.superseded_by.map(|x| x.to_string()),
        })).collect::<Vec<_>>(),
        "resolved_ms": st.resolved_ms,
        "resolved_by": st.resolved_by.map(|u| u.to_string()),
        "public_reply": st.public_reply,
        "fed_back_ms": st.fed_back_ms,
        "rating": st.rating.map(|r| r.as_str()),
        "rated_ms": st.rated_ms,
        "ratings": st.ratings.iter().map(|r| json!({
            "event": r.event.to_string(), "at_ms": r.at_ms, "unit": r.unit.to_string(), "by": format!("{:?}", r.by),
            "rating": r.rating.as_str(), "result_rating": r.result_rating.map(|x| x.as_str()), "appeal": format!("{:?}", r.appeal),
            "counts": r.counts(),
        })).collect::<Vec<_>>(),
        "invite_expires_ms": st.invite.map(|i| i.expires_ms),
        "merged_into": st.merged_into.map(|m| m.to_string()),
        "archived_ms": st.archived_ms,
        "attachments": st.attachments.iter().map(|a| json!({"blob": a.blob.to_string(), "name": a.name, "mime": a.mime, "size": a.size, "unit": a.unit.to_string()})).collect::<Vec<_>>(),
        "deadlines": st.deadlines.iter().map(|d| json!({
            "kind": d.kind.as_str(), "unit": d.unit.to_string(), "started_ms": d.started_ms, "due_ms": d.due_ms,
            "waiting_year": d.waiting_year, "met_ms": d.met_ms, "cancelled": d.cancelled, "extended_working_days": d.extended_working_days,
            "notice": d.notice.map(|n| n.to_string()),
            "window": d.window, "error": d.error,
            "paused": d.paused.map(|p| json!({"at_ms": p.at_ms, "left": match p.left {
                None => Value::Null,
                Some(Left::WorkingDays(n)) => json!({"working_days": n}),
                Some(Left::Ms(ms)) => json!({"ms": ms}),
            }})),
        })).collect::<Vec<_>>(),
        "heads": st.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "timeline": st.timeline.iter().map(|t| json!({
            "id": t.id.to_string(), "action": t.action.as_str(), "unit": t.unit.to_string(), "operator": t.operator,
            "outcome": match &t.outcome { Ok(()) => "ok".to_string(), Err(r) => r.rule.to_string() },
            "overruled_by": t.overruled_by.map(|o| o.to_string()),
            "window": t.window,
        })).collect::<Vec<_>>(),
        "facts": zongzhi_protocol::kpi::facts(st).iter().map(|f| json!({"month": f.month, "unit": f.unit.to_string(), "counter": f.counter.as_str(), "value": f.value})).collect::<Vec<_>>(),
        "policy_missing": st.policy_missing,
        "declined": st.declined.as_ref().map(|d| json!({
            "id": d.id.to_string(), "referral": d.referral, "reason": d.reason, "unit": d.unit.to_string(), "at_ms": d.at_ms, "policy": d.policy,
        })),
        "withdrawn": st.withdrawn.as_ref().map(|w| json!({
            "id": w.id.to_string(), "confirmation": w.confirmation.as_str(), "reason": w.reason, "unit": w.unit.to_string(), "at_ms": w.at_ms,
        })),
        "suspensions": st.suspensions.iter().map(|s| json!({
            "id": s.id.to_string(), "reason": s.reason, "note": s.note, "unit": s.unit.to_string(), "at_ms": s.at_ms, "expected_ms": s.expected_ms,
            "policy": s.policy, "before": s.before.as_str(), "resumed_ms": s.resumed_ms, "resumed_by": s.resumed_by.map(|x| x.to_string()),
        })).collect::<Vec<_>>(),
        "assists": st.assists.iter().map(|a| json!({
            "request": a.request.to_string(), "by": a.by.to_string(), "helper": format!("{:?}", a.helper), "requirements": a.requirements,
            "at_ms": a.at_ms, "working_days": a.working_days, "due_ms": a.due_ms, "replied_ms": a.replied_ms, "reply": a.reply,
            "reply_event": a.reply_event.map(|x| x.to_string()), "ended_by": a.ended_by.map(|x| x.to_string()),
            "supervision": a.supervision.map(|g| g.as_str()), "supervisions": a.supervisions,
        })).collect::<Vec<_>>(),
        "mediation": {
            "sessions": st.mediation.sessions.iter().map(|s| json!({
                "id": s.id.to_string(), "unit": s.unit.to_string(), "at_ms": s.at_ms, "held_ms": s.held_ms,
                "mediators": s.mediators.iter().map(|m| json!({"account": m.account, "name": m.name})).collect::<Vec<_>>(),
                "attendees": s.attendees, "notes": s.notes,
            })).collect::<Vec<_>>(),
            "agreements": st.mediation.agreements.iter().map(|a| json!({
                "id": a.id.to_string(), "unit": a.unit.to_string(), "at_ms": a.at_ms, "document": a.document.to_string(),
                "signatures": a.signatures.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                "mediators": a.mediators.iter().map(|m| json!({"account": m.account, "name": m.name})).collect::<Vec<_>>(),
                "signed_ms": a.signed_ms,
                "confirmation": a.confirmation.as_ref().map(|c| json!({
                    "id": c.id.to_string(), "at_ms": c.at_ms, "court": c.court, "note": c.note,
                    "ruling": c.ruling.as_ref().map(|r| json!({"id": r.id.to_string(), "at_ms": r.at_ms, "confirmed": r.confirmed, "ruling": r.ruling, "ruled_ms": r.ruled_ms, "note": r.note})),
                })),
                "visits": a.visits.iter().map(|v| json!({"id": v.id.to_string(), "at_ms": v.at_ms, "fulfilment": v.fulfilment.as_str(), "method": v.method, "note": v.note})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "attributed": zongzhi_protocol::kpi::attributed(st).iter().map(|f| json!({
            "month": f.month,
            "actor": match &f.actor {
                Actor::Window { unit, window } => json!({"unit": unit.to_string(), "window": window}),
                Actor::Person { unit, operator } => json!({"unit": unit.to_string(), "operator": operator}),
            },
            "counter": f.counter.as_str(), "value": f.value,
        })).collect::<Vec<_>>(),
    })
}

/// Every value `old` holds, `new` holds the same (objects may gain keys).
fn holds(old: &Value, new: &Value, path: &str) -> Result<(), String> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let Some(nv) = n.get(k) else { return Err(format!("{path}/{k}: missing")) };
                holds(v, nv, &format!("{path}/{k}"))?;
            }
            Ok(())
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => o.iter().zip(n).enumerate().try_for_each(|(i, (a, b))| holds(a, b, &format!("{path}/{i}"))),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: was {a}, now {b}")),
    }
}

/// Decodes, verifies and re-encodes every record of a corpus directory,
/// and folds each case to its projection. Returns the records.
fn check_format(dir: &Path, format: u8) -> Vec<Record> {
    let files = manifest(dir);
    let mut records = Vec::new();
    for name in files.iter().filter(|f| f.ends_with(".bin")) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let r = Record::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.format, format, "{name}");
        assert_eq!(r.id, RecordId::of(&bytes), "{name}: the id is the hash of the bytes");
        assert_eq!(r.encode_again().unwrap(), r.payload(), "{name}: the payload encodes again to the same bytes");
        let envelope = codec::encode(&(r.format, r.kind_byte(), r.author.0, r.encode_again().unwrap(), *r.signature()));
        assert_eq!(envelope, bytes, "{name}: the record encodes again to the same bytes");
        records.push(r);
    }
    let root = records.iter().find_map(|r| match &r.body {
        Body::NodeCert(c) if c.key == c.issuer => Some(c.key),
        _ => None,
    });
    let mut trust = Trust::new(root.expect("a root certificate"));
    let mut policies: Option<PolicySet> = None;
    for r in &records {
        match &r.body {
            Body::NodeCert(_) => trust.add_cert(r).unwrap(),
            Body::Revocation(_) => trust.add_revocation(r).unwrap(),
            Body::Policy(p) => match &mut policies {
                None => policies = Some(PolicySet::new((**p).clone())),
                Some(set) => {
                    set.insert((**p).clone());
                }
            },
            _ => {}
        }
    }
    let policies = policies.expect("a policy record");
    for name in files.iter().filter(|f| f.starts_with("case") && f.ends_with(".json")) {
        let want: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        let case = records.iter().map(|r| r.id).find(|id| id.to_string() == want["id"].as_str().unwrap()).expect("the case's filing");
        let events: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).filter(|e| e.event.case_id(e.id) == case).collect();
        let st = fold(&policies, &trust, &events).unwrap();
        if let Err(e) = holds(&want, &projection(&st), "") {
            panic!("{name}: the fold of format {format} changed: {e}");
        }
    }
    records
}

#[test]
fn format_3_as_release_0_1_0_signed_and_folded_it() {
    let records = check_format(&corpus("format-3"), 3);
    // Every kind and every format-3 step is in it.
    let kinds: BTreeSet<&str> = records.iter().filter_map(|r| r.kind()).map(|k| k.as_str()).collect();
    assert_eq!(kinds, ["case_event", "node_cert", "policy", "report", "revocation"].into_iter().collect());
    let steps: BTreeSet<&str> = records.iter().filter_map(|r| r.case_event()).map(|e| e.action.as_str()).collect();
    assert_eq!(steps.len(), 22, "{steps:?}");
}

/// The number of workflow steps of record format 4, from its decoder: the
/// variant indexes `format::v4::Action` decodes (an index past the last is
/// an unexpected variant; one before it decodes or runs out of bytes).
fn format_4_steps() -> usize {
    use zongzhi_protocol::codec::CodecError;
    use zongzhi_protocol::format::v4;
    (0u32..1000).find(|i| matches!(codec::decode::<v4::Action>(&codec::encode(i), 64), Err(CodecError::Malformed(m)) if m.contains("UnexpectedVariant"))).expect("an index past the last variant")
        as usize
}

#[test]
fn format_4_as_release_0_2_0_signed_and_folded_it() {
    let dir = corpus("format-4");
    let records = check_format(&dir, 4);
    // Every kind is in it.
    let kinds: BTreeSet<&str> = records.iter().filter_map(|r| r.kind()).map(|k| k.as_str()).collect();
    assert_eq!(kinds, ["case_event", "node_cert", "policy", "report", "revocation"].into_iter().collect());
    // Every step of format 4, and each one stands at least once in the
    // fold of its case (the two refused on purpose, a feedback by the
    // wrong center and an overruled escalation, take steps that stand
    // elsewhere).
    // The count comes from format 4's decoder, so a step appended to
    // `case::Action` while `format::v4` still re-exports it (instead of
    // freezing a copy there first and writing a format-5 corpus for the
    // new step) fails here.
    let steps: BTreeSet<&str> = records.iter().filter_map(|r| r.case_event()).map(|e| e.action.as_str()).collect();
    assert_eq!(steps.len(), format_4_steps(), "a step of format 4 has no record in the corpus: {steps:?}");
    assert_eq!(format_4_steps(), 35, "record format 4 has 22 steps of format 3 and 13 of its own");
    let mut stood = BTreeSet::new();
    for name in manifest(&dir).iter().filter(|f| f.starts_with("case") && f.ends_with(".json")) {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        for t in case["timeline"].as_array().unwrap().iter().filter(|t| t["outcome"] == "ok") {
            stood.insert(t["action"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(stood.len(), format_4_steps(), "{stood:?}");
    // The policy's format-4 fields are set (not what a format-3 policy
    // reads as), and the steps took the rules of the version they named.
    let policy = records.iter().find_map(|r| match &r.body {
        Body::Policy(p) if p.version == 2 => Some(p),
        _ => None,
    });
    let policy = policy.expect("policy version 2");
    assert_eq!(policy.gate.write_format, 4);
    assert!(!policy.gate.overridden.is_empty());
    assert!(zongzhi_protocol::format::v4::policy_to_v3(policy).is_err());
    assert!(policy.decisions.referral("land_arbitration").is_some() && policy.decisions.suspension_reason("party_request").is_some());
}

/// Records of a release that does not exist yet, signed by a certified key
/// of the format-3 corpus (the village's, seed 4): a case event of format 5
/// with a variant no release has, a record of an unknown kind, a policy of
/// format 6. Each decodes as unreadable, with its frozen parts.
pub fn future_records() -> Vec<Record> {
    use zongzhi_protocol::format::CasePrefix;
    use zongzhi_protocol::{Header, Hlc, NodeKey};
    let village = NodeKey::from_seed([4; 32]);
    let header = |seq: u64| Header { seq, prev: Some(RecordId([seq as u8; 32])), hlc: Hlc { wall_ms: 1_800_000_000_000 + seq, counter: 0 } };
    let prefix = CasePrefix { case: Some(RecordId([9; 32])), parents: vec![RecordId([9; 32])], unit: "330106001001".parse().unwrap(), operator: "wang".into() };
    let mut event = codec::encode(&header(100));
    codec::encode_into(&prefix, &mut event);
    codec::encode_into(&99u32, &mut event); // a variant index no release has
    event.extend_from_slice("未来的步骤".as_bytes());
    let mut unknown_kind = codec::encode(&header(101));
    unknown_kind.extend_from_slice(b"a kind of record added later");
    let mut policy = codec::encode(&header(102));
    policy.extend_from_slice(&[7; 40]);
    vec![Record::sign_raw(&village, 5, 1, event).unwrap(), Record::sign_raw(&village, 5, 9, unknown_kind).unwrap(), Record::sign_raw(&village, 6, 4, policy).unwrap()]
}

#[test]
fn the_future_set_decodes_as_unreadable_and_verifies() {
    for r in future_records() {
        let again = Record::decode(r.bytes()).unwrap_or_else(|e| panic!("format {}: {e}", r.format));
        assert!(again.is_unreadable(), "format {} kind {} must be held aside, not read", r.format, r.kind_byte());
        assert!(again.encode_again().is_err(), "an unreadable record is kept as it came");
    }
    let [event, unknown, policy] = <[Record; 3]>::try_from(future_records()).unwrap();
    assert_eq!(event.case_prefix().unwrap().unit.to_string(), "330106001001");
    assert_eq!(event.kind(), Some(zongzhi_protocol::RecordKind::CaseEvent));
    assert_eq!(unknown.kind(), None);
    assert!(unknown.case_prefix().is_none() && policy.case_prefix().is_none());
    // A forged one is refused, not held.
    let mut bytes = event.bytes().to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    assert!(Record::decode(&bytes).is_err());
    // A case event of a future format whose frozen prefix does not decode
    // is malformed.
    let bad = Record::sign_raw(&zongzhi_protocol::NodeKey::from_seed([4; 32]), 5, 1, codec::encode(&zongzhi_protocol::Header { seq: 1, prev: None, hlc: Default::default() }));
    assert!(bad.is_err());
}
