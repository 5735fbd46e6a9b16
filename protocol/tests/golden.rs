//! Golden bytes: these snapshots pin the wire format. A change here is a
//! format change and needs a new `FORMAT_VERSION`.

#![allow(clippy::unwrap_used)]

use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};
use zongzhi_protocol::cert::NodeCert;
use zongzhi_protocol::record::RecordError;
use zongzhi_protocol::{Action, Body, CaseEvent, Contact, Filing, Header, Hlc, NodeKey, Record};

fn filing_record() -> Record {
    let key = NodeKey::from_seed([42; 32]);
    let contact = Contact { name: "张三".into(), phone: "13812341234".into(), ..Default::default() };
    let event = CaseEvent {
        case: None,
        parents: vec![],
        unit: "330102001001".parse().unwrap(),
        operator: "wang".into(),
        action: Action::File(Box::new(Filing {
            number: "330102001001-2026-000001".into(),
            title: "噪音扰民".into(),
            content: "夜间施工".into(),
            category: "0202".into(),
            request_type: RequestType::Complaint,
            channel: Channel::Phone,
            urgency: Urgency::Normal,
            complexity: Complexity::General,
            place: Place { address: "某小区".into(), lat_e6: Some(30_250_000), lon_e6: None },
            occurred_at_ms: None,
            received_at_ms: 1_790_000_000_000,
            people_involved: 1,
            amount_fen: Some(12_345),
            contact: Some(contact.hash()),
        })),
    };
    let header = Header { seq: 1, prev: None, hlc: Hlc { wall_ms: 1_790_000_000_000, counter: 0 } };
    Record::sign(&key, header, Body::CaseEvent(event))
}

#[test]
fn case_event_bytes_are_pinned() {
    let r = filing_record();
    insta::assert_snapshot!("case_event_filing", hex::encode(r.bytes()));
    insta::assert_snapshot!("case_event_filing_id", r.id.to_string());
    assert_eq!(Record::decode(r.bytes()).unwrap(), r);
}

#[test]
fn cert_bytes_are_pinned() {
    let key = NodeKey::from_seed([1; 32]);
    let cert = NodeCert {
        key: key.id(),
        division: "330100000000".parse().unwrap(),
        level: zongzhi_protocol::Level::City,
        name: "杭州市社会治安综合治理中心".into(),
        issuer: key.id(),
        not_before_ms: 0,
        not_after_ms: 4_102_444_800_000,
        serial: 1,
    };
    let header = Header { seq: 1, prev: None, hlc: Hlc { wall_ms: 1, counter: 0 } };
    let r = Record::sign(&key, header, Body::NodeCert(cert));
    insta::assert_snapshot!("node_cert_root", hex::encode(r.bytes()));
}

#[test]
fn one_flipped_byte_anywhere_is_detected() {
    let r = filing_record();
    for i in 0..r.bytes().len() {
        let mut bytes = r.bytes().to_vec();
        bytes[i] ^= 0x01;
        assert!(Record::decode(&bytes).is_err(), "flip at byte {i} still verifies");
    }
}

#[test]
fn unknown_kind_version_and_trailing_bytes_are_typed_errors() {
    let r = filing_record();
    let mut bytes = r.bytes().to_vec();
    bytes[1] = 99;
    assert_eq!(Record::decode(&bytes).err(), Some(RecordError::UnknownKind(99)));
    let mut bytes = r.bytes().to_vec();
    bytes[0] = 2;
    assert_eq!(Record::decode(&bytes).err(), Some(RecordError::UnsupportedVersion(2)));
    let mut bytes = r.bytes().to_vec();
    bytes.push(0);
    assert!(matches!(Record::decode(&bytes), Err(RecordError::Codec(_))));
    assert!(Record::decode(&[]).is_err());
    assert!(Record::decode(&vec![0xFF; 2 * 1024 * 1024]).is_err());
}

#[test]
fn batch_verification_agrees_with_strict() {
    let good = filing_record();
    let mut forged_bytes = good.bytes().to_vec();
    let n = forged_bytes.len();
    forged_bytes[n - 1] ^= 0x40; // inside the signature's s
    let forged = Record::decode_unverified(&forged_bytes);
    let mut recs = vec![good.clone(); 5];
    if let Ok(f) = forged {
        recs.push(f);
    }
    let refs: Vec<&Record> = recs.iter().collect();
    let verdicts = zongzhi_protocol::record::verify_batch(&refs);
    for (r, v) in recs.iter().zip(&verdicts) {
        assert_eq!(v.is_ok(), r.verify().is_ok());
    }
    assert!(verdicts[..5].iter().all(|v| v.is_ok()));
}
