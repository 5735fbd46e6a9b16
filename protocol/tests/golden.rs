//! Golden bytes: these snapshots pin the wire format of each record format
//! this build writes (format 3, the baseline's, and format 4). A change
//! here is a format change: a new format module, never an edit (the
//! frozen corpus in `tests/corpus/` guards every format ever shipped).

#![allow(clippy::unwrap_used)]

use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};
use zongzhi_protocol::cert::NodeCert;
use zongzhi_protocol::record::RecordError;
use zongzhi_protocol::{Action, Body, CaseEvent, Contact, Filing, Header, Hlc, NodeKey, Record};

fn filing_record() -> Record {
    filing_by(&NodeKey::from_seed([42; 32]), 1)
}

fn filing_by(key: &NodeKey, seq: u64) -> Record {
    filing_in(key, seq, 3)
}

fn filing_in(key: &NodeKey, seq: u64, format: u8) -> Record {
    let contact = Contact { name: "张三".into(), phone: "13812341234".into(), ..Default::default() };
    let event = CaseEvent {
        case: None,
        parents: vec![],
        unit: "330102001001".parse().unwrap(),
        operator: "wang".into(),
        policy: 1,
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
            intake: Default::default(),
        })),
    };
    let prev = (seq > 1).then_some(zongzhi_protocol::RecordId([seq as u8; 32]));
    let header = Header { seq, prev, hlc: Hlc { wall_ms: 1_790_000_000_000 + seq - 1, counter: 0 } };
    Record::sign_as(key, format, header, Body::CaseEvent(event)).unwrap()
}

/// Format 3: the same bytes the baseline release (0.1.0) signed.
#[test]
fn case_event_bytes_are_pinned() {
    let r = filing_record();
    insta::assert_snapshot!("case_event_filing", hex::encode(r.bytes()));
    insta::assert_snapshot!("case_event_filing_id", r.id.to_string());
    assert_eq!(Record::decode(r.bytes()).unwrap(), r);
}

/// Format 4: the same body, its format byte inside the signed message, so
/// the signature (and the id) differ from format 3's.
#[test]
fn format_4_case_event_bytes_are_pinned() {
    let r = filing_in(&NodeKey::from_seed([42; 32]), 1, 4);
    insta::assert_snapshot!("case_event_filing_v4", hex::encode(r.bytes()));
    assert_eq!(Record::decode(r.bytes()).unwrap(), r);
    let v3 = filing_record();
    assert_eq!(r.payload(), v3.payload(), "a filing's payload did not change in format 4");
    assert_ne!(r.signature(), v3.signature());
    // One signed payload never travels under two formats: the format-3
    // signature does not verify as format 4, nor the other way round.
    let mut swapped = v3.bytes().to_vec();
    swapped[0] = 4;
    assert!(matches!(Record::decode(&swapped), Err(RecordError::Signature(_))));
    let mut swapped = r.bytes().to_vec();
    swapped[0] = 3;
    assert!(matches!(Record::decode(&swapped), Err(RecordError::Signature(_))));
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
    let r = Record::sign_as(&key, 3, header, Body::NodeCert(cert.clone())).unwrap();
    insta::assert_snapshot!("node_cert_root", hex::encode(r.bytes()));
    let r = Record::sign_as(&key, 4, header, Body::NodeCert(cert)).unwrap();
    insta::assert_snapshot!("node_cert_root_v4", hex::encode(r.bytes()));
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
    // A format newer than this build reads decodes as unreadable (its
    // frozen parts read, the body kept as bytes), to be held aside; this
    // one was not signed as format 5, so its signature fails.
    let mut bytes = r.bytes().to_vec();
    bytes[0] = 5;
    let unreadable = Record::decode_unverified(&bytes).unwrap();
    assert!(unreadable.is_unreadable());
    assert_eq!(unreadable.case_prefix().unwrap().unit.to_string(), "330102001001");
    assert!(matches!(Record::decode(&bytes), Err(RecordError::Signature(_))));
    // Versions 1 (case events without the policy version) and 2 (without
    // the citizen's side) are not read.
    for old in [1, 2] {
        bytes[0] = old;
        assert_eq!(Record::decode(&bytes).err(), Some(RecordError::UnsupportedVersion(old)));
    }
    let mut bytes = r.bytes().to_vec();
    bytes.push(0);
    assert!(matches!(Record::decode(&bytes), Err(RecordError::Codec(_))));
    assert!(Record::decode(&[]).is_err());
    assert!(Record::decode(&vec![0xFF; 2 * 1024 * 1024]).is_err());
}

/// The payload length sits outside the signature. bincode reads a varint
/// written in more bytes than needed; such a copy of a signed record must be
/// refused, or one record could travel under several ids (and an honest
/// author would look like an equivocator). Found by the `record` fuzz target.
#[test]
fn a_non_minimal_payload_length_is_refused() {
    let r = filing_record();
    let len = r.payload().len();
    let canonical = zongzhi_protocol::codec::encode(&(len as u64));
    let at = r.bytes().len() - 64 - len - canonical.len();
    assert_eq!(&r.bytes()[at..at + canonical.len()], &canonical[..], "length prefix located");
    let wider: Vec<Vec<u8>> = [
        (canonical.len() < 3).then(|| [&[0xFB][..], &(len as u16).to_le_bytes()].concat()),
        Some([&[0xFC][..], &(len as u32).to_le_bytes()].concat()),
        Some([&[0xFD][..], &(len as u64).to_le_bytes()].concat()),
    ]
    .into_iter()
    .flatten()
    .collect();
    for prefix in wider {
        let bytes = [&r.bytes()[..at], &prefix[..], &r.bytes()[at + canonical.len()..]].concat();
        assert_eq!(Record::decode(&bytes).err(), Some(RecordError::Codec(zongzhi_protocol::codec::CodecError::NotCanonical)), "prefix {prefix:02x?}");
        assert!(Record::decode_unverified(&bytes).is_err());
    }
    assert_eq!(Record::decode(r.bytes()).unwrap(), r);
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

/// Ways to spoil a record's signature or message (the last 64 bytes are the
/// signature: R then s).
fn spoil(r: &Record, how: u8) -> Option<Record> {
    let mut b = r.bytes().to_vec();
    let n = b.len();
    match how {
        0 => b[n - 70] ^= 0x01, // the signed payload
        1 => b[n - 64] ^= 0x01, // R
        2 => b[n - 5] ^= 0x20,  // s
        3 => {
            // R = the identity point (small order).
            b[n - 64..n - 32].copy_from_slice(&[0; 32]);
            b[n - 64] = 1;
        }
        5 => {
            // R encoded with y + p (not canonical) for a valid point of
            // large order with y < 19.
            b[n - 64..n - 32].copy_from_slice(&non_canonical_r());
        }
        _ => {
            // s + l: the same value mod l, not canonical.
            const L: [u8; 32] = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
            let mut carry = 0u16;
            for i in 0..32 {
                let v = b[n - 32 + i] as u16 + L[i] as u16 + carry;
                b[n - 32 + i] = v as u8;
                carry = v >> 8;
            }
        }
    }
    Record::decode_unverified(&b).ok()
}

/// The encoding y + p of the first point with a small y (2 ≤ y < 19) that
/// is on the curve and not of small order.
fn non_canonical_r() -> [u8; 32] {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    (2u8..19)
        .map(|y| {
            let mut b = [0xFF; 32];
            b[0] = 0xED + y;
            b[31] = 0x7F;
            b
        })
        .find(|b| {
            let mut canonical = [0u8; 32];
            canonical[0] = b[0] - 0xED;
            CompressedEdwardsY(canonical).decompress().is_some_and(|p| !p.is_small_order()) && CompressedEdwardsY(*b).decompress().is_some()
        })
        .expect("some small y is on the curve")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever mix of authors and spoiled records a batch holds, each
    /// verdict is exactly that of `verify_strict` on the record alone.
    #[test]
    fn batch_verdicts_equal_strict(
        plan in proptest::collection::vec((0u8..3, proptest::option::weighted(0.15, 0u8..6)), 1..40),
    ) {
        let keys: Vec<NodeKey> = (0..3u8).map(|i| NodeKey::from_seed([i + 1; 32])).collect();
        let recs: Vec<Record> = plan
            .iter()
            .enumerate()
            .map(|(i, (author, spoilt))| {
                let r = filing_by(&keys[*author as usize], i as u64 + 1);
                spoilt.and_then(|how| spoil(&r, how)).unwrap_or(r)
            })
            .collect();
        let refs: Vec<&Record> = recs.iter().collect();
        let verdicts = zongzhi_protocol::record::verify_batch(&refs);
        for (r, v) in recs.iter().zip(&verdicts) {
            proptest::prop_assert_eq!(v.is_ok(), r.verify().is_ok());
        }
    }
}

#[test]
fn every_spoiled_signature_is_refused_in_a_batch() {
    let key = NodeKey::from_seed([9; 32]);
    for how in 0..6 {
        let good: Vec<Record> = (1..=8).map(|i| filing_by(&key, i)).collect();
        let bad = spoil(&filing_by(&key, 9), how).expect("still decodes");
        assert!(bad.verify().is_err(), "spoil {how} must break the strict check");
        let mut recs = good.clone();
        recs.insert(3, bad);
        let refs: Vec<&Record> = recs.iter().collect();
        let verdicts = zongzhi_protocol::record::verify_batch(&refs);
        let failed: Vec<usize> = verdicts.iter().enumerate().filter(|(_, v)| v.is_err()).map(|(i, _)| i).collect();
        assert_eq!(failed, vec![3], "spoil {how}");
    }
}
