//! Who is who: the certificates and revocations a node knows, checked
//! against the city root key. Pure data; the node keeps one in memory and
//! rebuilds it from stored records at start-up.

use std::collections::HashMap;

use crate::cert::{CertError, NodeCert, Revocation};
use crate::division::{DivisionCode, Level};
use crate::identity::NodeId;
use crate::record::{Body, Record, RecordId};

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TrustError {
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
    #[error("issuer {0} is not a known, valid center")]
    UnknownIssuer(String),
    #[error("author {0} has no known certificate")]
    UnknownAuthor(String),
    #[error("key {key} was revoked after its record {cutoff}; this record is {seq}")]
    Revoked { key: String, cutoff: u64, seq: u64 },
    /// A revoked key asking to connect (no record in question).
    #[error("key {key} is revoked (its records after {cutoff} are void): it may not connect")]
    KeyRevoked { key: String, cutoff: u64 },
    #[error("revocation of {0} must be signed by its issuer or an ancestor center")]
    RevokerNotAncestor(String),
    #[error("record is not a certificate or revocation")]
    NotTrustRecord,
}

/// A known center.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub cert: NodeCert,
    pub record: RecordId,
    /// The certificate record's place in its issuer's chain.
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct Trust {
    root: NodeId,
    members: HashMap<NodeId, Member>,
    revoked: HashMap<NodeId, (Revocation, RecordId)>,
    /// Keys whose certificate a revoked issuer signed after its cut-off:
    /// they never were members, and everything they signed is void.
    dropped: HashMap<NodeId, RecordId>,
}

impl Trust {
    pub fn new(root: NodeId) -> Trust {
        Trust { root, members: HashMap::new(), revoked: HashMap::new(), dropped: HashMap::new() }
    }

    pub fn root(&self) -> NodeId {
        self.root
    }

    pub fn member(&self, key: &NodeId) -> Option<&Member> {
        self.members.get(key)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn revocation(&self, key: &NodeId) -> Option<&Revocation> {
        self.revoked.get(key).map(|(r, _)| r)
    }

    /// The record of a key's revocation.
    pub fn revocation_record(&self, key: &NodeId) -> Option<RecordId> {
        self.revoked.get(key).map(|(_, id)| *id)
    }

    /// Adds a certificate record (signature checked here). Its issuer must be
    /// known (or it is the self-signed root).
    pub fn add_cert(&mut self, record: &Record) -> Result<(), TrustError> {
        let cert = NodeCert::from_record(record)?;
        if cert.issuer == cert.key {
            if cert.key != self.root || cert.level != Level::City {
                return Err(CertError::BadRoot.into());
            }
        } else {
            let issuer = self.members.get(&cert.issuer).ok_or_else(|| TrustError::UnknownIssuer(cert.issuer.fmt_short()))?;
            if let Some((rev, _)) = self.revoked.get(&cert.issuer)
                && record.header.seq > rev.cutoff_seq
            {
                return Err(TrustError::Revoked { key: cert.issuer.fmt_short(), cutoff: rev.cutoff_seq, seq: record.header.seq });
            }
            if cert.division.parent() != Some(issuer.cert.division) {
                return Err(CertError::NotParent { issuer_division: issuer.cert.division, division: cert.division }.into());
            }
        }
        // A division is held by one key at a time: a new key for a division
        // (a center that lost its machine and key, re-enrolled) follows the
        // revocation of the old one at its issuer, who refuses a second
        // valid certificate for a division (`api::certs`). Here the order in
        // which certificates and revocations arrive must not matter (a
        // re-keyed node imports its own certificate before it learns its
        // predecessor's): both are members, the old one void above its
        // cut-off once its revocation arrives, and [`Trust::key_of`] names
        // the one in force.
        self.members.insert(cert.key, Member { cert: cert.clone(), record: record.id, seq: record.header.seq });
        Ok(())
    }

    /// Adds a revocation record: signed by the revoked key's issuer or an
    /// ancestor center.
    pub fn add_revocation(&mut self, record: &Record) -> Result<(), TrustError> {
        let Body::Revocation(rev) = &record.body else {
            return Err(TrustError::NotTrustRecord);
        };
        record.verify().map_err(CertError::from)?;
        let revoker = self.members.get(&record.author).ok_or_else(|| TrustError::UnknownAuthor(record.author.fmt_short()))?;
        if !revoker.cert.division.is_ancestor_of(rev.division) {
            return Err(TrustError::RevokerNotAncestor(rev.key.fmt_short()));
        }
        // Keep the strictest cut-off if revoked twice.
        let keep = match self.revoked.get(&rev.key) {
            Some((old, _)) => rev.cutoff_seq < old.cutoff_seq,
            None => true,
        };
        if keep {
            self.revoked.insert(rev.key, (rev.clone(), record.id));
            self.drop_invalid_certs();
        }
        Ok(())
    }

    /// Removes the certificates a revoked key signed after its cut-off, and
    /// then those whose issuer is gone, until none is left to remove.
    fn drop_invalid_certs(&mut self) {
        loop {
            let invalid: Vec<NodeId> = self
                .members
                .values()
                .filter(|m| m.cert.issuer != m.cert.key)
                .filter(|m| match self.revoked.get(&m.cert.issuer) {
                    Some((rev, _)) => m.seq > rev.cutoff_seq,
                    None => !self.members.contains_key(&m.cert.issuer),
                })
                .map(|m| m.cert.key)
                .collect();
            if invalid.is_empty() {
                return;
            }
            for key in invalid {
                if let Some(m) = self.members.remove(&key) {
                    self.dropped.insert(key, m.record);
                }
            }
        }
    }

    /// Keys that once looked certified but whose certificate turned out
    /// void (signed by a revoked issuer after its cut-off).
    pub fn dropped(&self) -> impl Iterator<Item = &NodeId> {
        self.dropped.keys()
    }

    /// The division of a record's author, if the author may have written it:
    /// known, and not revoked at or before the record's sequence number.
    pub fn check_author(&self, author: &NodeId, seq: u64) -> Result<DivisionCode, TrustError> {
        let m = self.members.get(author).ok_or_else(|| TrustError::UnknownAuthor(author.fmt_short()))?;
        if let Some((rev, _)) = self.revoked.get(author)
            && seq > rev.cutoff_seq
        {
            return Err(TrustError::Revoked { key: author.fmt_short(), cutoff: rev.cutoff_seq, seq });
        }
        Ok(m.cert.division)
    }

    /// Whether a key may connect now: known, valid, not revoked.
    pub fn may_connect(&self, key: &NodeId, now_ms: u64) -> Result<&NodeCert, TrustError> {
        let m = self.members.get(key).ok_or_else(|| TrustError::UnknownAuthor(key.fmt_short()))?;
        if let Some((rev, _)) = self.revoked.get(key) {
            return Err(TrustError::KeyRevoked { key: key.fmt_short(), cutoff: rev.cutoff_seq });
        }
        if !m.cert.valid_at(now_ms) {
            return Err(CertError::Expired.into());
        }
        Ok(&m.cert)
    }

    /// Record ids of the certificates from the root down to `key`.
    pub fn chain(&self, key: &NodeId) -> Option<Vec<RecordId>> {
        let mut out = Vec::new();
        let mut cur = self.members.get(key)?;
        loop {
            out.push(cur.record);
            if cur.cert.issuer == cur.cert.key {
                break;
            }
            cur = self.members.get(&cur.cert.issuer)?;
            if out.len() > 8 {
                return None;
            }
        }
        out.reverse();
        Some(out)
    }

    /// The current key of a division: not revoked, the latest its issuer
    /// certified if (wrongly) more than one is valid.
    pub fn key_of(&self, division: DivisionCode) -> Option<NodeId> {
        self.members.values().filter(|m| m.cert.division == division && !self.revoked.contains_key(&m.cert.key)).max_by_key(|m| (m.cert.not_before_ms, m.seq)).map(|m| m.cert.key)
    }

    /// The keys that held a division before its current one (revoked),
    /// with their cut-offs: a re-keyed center's predecessors.
    pub fn predecessors(&self, division: DivisionCode) -> Vec<(NodeId, u64)> {
        let mut out: Vec<(NodeId, u64)> =
            self.members.values().filter(|m| m.cert.division == division).filter_map(|m| self.revoked.get(&m.cert.key).map(|(r, _)| (m.cert.key, r.cutoff_seq))).collect();
        out.sort();
        out
    }
}

impl crate::workflow::FoldContext for Trust {
    fn cutoff(&self, author: &NodeId) -> Option<u64> {
        match self.revoked.get(author) {
            Some((rev, _)) => Some(rev.cutoff_seq),
            None => self.dropped.contains_key(author).then_some(0),
        }
    }
}

/// Checks a chain of cert records, root first, each issued by the one
/// before, the first self-signed by `root`. Returns the last cert.
pub fn verify_chain<'a>(chain: &'a [Record], root: &NodeId, now_ms: u64) -> Result<&'a NodeCert, CertError> {
    let first = chain.first().ok_or(CertError::EmptyChain)?;
    let root_cert = NodeCert::from_record(first)?;
    if root_cert.key != *root || root_cert.issuer != *root || root_cert.level != Level::City {
        return Err(CertError::BadRoot);
    }
    if !root_cert.valid_at(now_ms) {
        return Err(CertError::Expired);
    }
    let mut parent = root_cert;
    for record in &chain[1..] {
        let cert = NodeCert::from_record(record)?;
        if cert.issuer != parent.key || cert.division.parent() != Some(parent.division) {
            return Err(CertError::NotParent { issuer_division: parent.division, division: cert.division });
        }
        if !cert.valid_at(now_ms) {
            return Err(CertError::Expired);
        }
        parent = cert;
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::NodeCert;
    use crate::hlc::Hlc;
    use crate::identity::NodeKey;
    use crate::record::Header;

    fn cert(issuer: &NodeKey, seq: u64, key: NodeId, division: &str) -> Record {
        let division: DivisionCode = division.parse().unwrap();
        let body = Body::NodeCert(NodeCert { key, division, level: division.level(), name: "中心".into(), issuer: issuer.id(), not_before_ms: 0, not_after_ms: 1_000, serial: seq });
        let prev = if seq == 1 { None } else { Some(RecordId([seq as u8; 32])) };
        Record::sign(issuer, Header { seq, prev, hlc: Hlc::default() }, body)
    }

    #[test]
    fn chain_revocation_and_connect() {
        let city = NodeKey::from_seed([1; 32]);
        let county = NodeKey::from_seed([2; 32]);
        let town = NodeKey::from_seed([3; 32]);
        let stranger = NodeKey::from_seed([4; 32]);
        let mut t = Trust::new(city.id());
        // The county's cert before the root's: issuer unknown.
        let county_cert = cert(&city, 2, county.id(), "330102000000");
        assert!(matches!(t.add_cert(&county_cert), Err(TrustError::UnknownIssuer(_))));
        t.add_cert(&cert(&city, 1, city.id(), "330100000000")).unwrap();
        t.add_cert(&county_cert).unwrap();
        t.add_cert(&cert(&county, 1, town.id(), "330102001000")).unwrap();
        // A self-signed cert that is not the configured root.
        assert!(t.add_cert(&cert(&stranger, 1, stranger.id(), "330100000000")).is_err());
        // Wrong parent: the city cannot certify a township directly.
        assert!(matches!(t.add_cert(&cert(&city, 3, stranger.id(), "330102002000")), Err(TrustError::Cert(CertError::NotParent { .. }))));
        assert_eq!(t.chain(&town.id()).unwrap().len(), 3);
        assert_eq!(t.check_author(&town.id(), 10).unwrap().to_string(), "330102001000");
        assert!(t.may_connect(&town.id(), 5).is_ok());
        assert!(t.may_connect(&town.id(), 5_000).is_err(), "expired");

        // The county revokes the township after its 4th record.
        let rev = Record::sign(
            &county,
            Header { seq: 2, prev: Some(RecordId([0; 32])), hlc: Hlc::default() },
            Body::Revocation(Revocation { key: town.id(), division: "330102001000".parse().unwrap(), cutoff_seq: 4, reason: "设备丢失".into() }),
        );
        t.add_revocation(&rev).unwrap();
        assert!(t.check_author(&town.id(), 4).is_ok());
        assert!(matches!(t.check_author(&town.id(), 5), Err(TrustError::Revoked { .. })));
        assert!(t.may_connect(&town.id(), 5).is_err());
        assert_eq!(t.key_of("330102001000".parse().unwrap()), None);
        // A township cannot revoke its county.
        let bad = Record::sign(
            &town,
            Header { seq: 1, prev: None, hlc: Hlc::default() },
            Body::Revocation(Revocation { key: county.id(), division: "330102000000".parse().unwrap(), cutoff_seq: 0, reason: "x".into() }),
        );
        assert!(t.add_revocation(&bad).is_err());
    }

    #[test]
    fn revocation_voids_certs_signed_after_the_cutoff() {
        use crate::workflow::FoldContext;
        let city = NodeKey::from_seed([1; 32]);
        let county = NodeKey::from_seed([2; 32]);
        let good_town = NodeKey::from_seed([3; 32]);
        let rogue_town = NodeKey::from_seed([4; 32]);
        let rogue_village = NodeKey::from_seed([5; 32]);
        let mut t = Trust::new(city.id());
        t.add_cert(&cert(&city, 1, city.id(), "330100000000")).unwrap();
        t.add_cert(&cert(&city, 2, county.id(), "330102000000")).unwrap();
        t.add_cert(&cert(&county, 1, good_town.id(), "330102001000")).unwrap();
        // Signed with the county key after it was stolen (seq 3 > cut-off 2),
        // then the rogue township certifies a village of its own.
        t.add_cert(&cert(&county, 3, rogue_town.id(), "330102002000")).unwrap();
        t.add_cert(&cert(&rogue_town, 1, rogue_village.id(), "330102002001")).unwrap();
        let rev = Record::sign(
            &city,
            Header { seq: 3, prev: Some(RecordId([2; 32])), hlc: Hlc::default() },
            Body::Revocation(Revocation { key: county.id(), division: "330102000000".parse().unwrap(), cutoff_seq: 2, reason: "密钥泄露".into() }),
        );
        t.add_revocation(&rev).unwrap();
        assert!(t.member(&good_town.id()).is_some(), "certified before the cut-off: still valid");
        assert!(t.member(&rogue_town.id()).is_none());
        assert!(t.member(&rogue_village.id()).is_none(), "its issuer is gone");
        assert_eq!(t.cutoff(&rogue_village.id()), Some(0), "everything it signed is void");
        assert_eq!(t.cutoff(&county.id()), Some(2));
        assert_eq!(t.cutoff(&good_town.id()), None);
        // The same certificate arriving after the revocation is refused.
        let mut late = Trust::new(city.id());
        late.add_cert(&cert(&city, 1, city.id(), "330100000000")).unwrap();
        late.add_cert(&cert(&city, 2, county.id(), "330102000000")).unwrap();
        late.add_revocation(&rev).unwrap();
        assert!(matches!(late.add_cert(&cert(&county, 3, rogue_town.id(), "330102002000")), Err(TrustError::Revoked { .. })));
    }

    /// A division re-keyed: the new key's certificate, the old one's and its
    /// revocation, in whatever order they arrive, give the same trust: both
    /// members, the old one cut off, the new one the division's key.
    #[test]
    fn a_re_keyed_division_is_the_same_whatever_the_order() {
        let city = NodeKey::from_seed([1; 32]);
        let county = NodeKey::from_seed([2; 32]);
        let (old, new) = (NodeKey::from_seed([3; 32]), NodeKey::from_seed([4; 32]));
        let root = cert(&city, 1, city.id(), "330100000000");
        let county_cert = cert(&city, 2, county.id(), "330102000000");
        let old_cert = cert(&county, 1, old.id(), "330102001000");
        let rev = Record::sign(
            &county,
            Header { seq: 2, prev: Some(RecordId([1; 32])), hlc: Hlc::default() },
            Body::Revocation(Revocation { key: old.id(), division: "330102001000".parse().unwrap(), cutoff_seq: 9, reason: "设备被盗".into() }),
        );
        let new_cert = cert(&county, 3, new.id(), "330102001000");
        for order in [[&old_cert, &rev, &new_cert], [&new_cert, &old_cert, &rev], [&new_cert, &rev, &old_cert]] {
            let mut t = Trust::new(city.id());
            t.add_cert(&root).unwrap();
            t.add_cert(&county_cert).unwrap();
            for r in order {
                match &r.body {
                    Body::Revocation(_) => t.add_revocation(r).unwrap(),
                    _ => t.add_cert(r).unwrap(),
                }
            }
            assert_eq!(t.key_of("330102001000".parse().unwrap()), Some(new.id()));
            assert_eq!(t.predecessors("330102001000".parse().unwrap()), vec![(old.id(), 9)]);
            assert!(t.check_author(&old.id(), 9).is_ok() && t.check_author(&old.id(), 10).is_err());
        }
    }

    fn cert_record(issuer: &NodeKey, seq: u64, prev: Option<crate::record::RecordId>, key: NodeId, division: &str) -> Record {
        let division: DivisionCode = division.parse().unwrap();
        let cert = NodeCert { key, division, level: division.level(), name: "测试中心".into(), issuer: issuer.id(), not_before_ms: 0, not_after_ms: 10_000, serial: seq };
        Record::sign(issuer, Header { seq, prev, hlc: Hlc { wall_ms: 1, counter: 0 } }, Body::NodeCert(cert))
    }

    #[test]
    fn chain_to_root() {
        let city = NodeKey::from_seed([1; 32]);
        let county = NodeKey::from_seed([2; 32]);
        let root = cert_record(&city, 1, None, city.id(), "330100000000");
        let c = cert_record(&city, 2, Some(root.id), county.id(), "330102000000");
        let chain = vec![root.clone(), c.clone()];
        assert_eq!(verify_chain(&chain, &city.id(), 5).unwrap().key, county.id());
        assert_eq!(verify_chain(&chain, &county.id(), 5).err(), Some(CertError::BadRoot));
        assert_eq!(verify_chain(&chain, &city.id(), 10_000).err(), Some(CertError::Expired));
        // A county cert for a division that is not a child of the city.
        let wrong = cert_record(&city, 2, Some(root.id), county.id(), "330200000000");
        let wrong = cert_record(&city, 3, Some(wrong.id), county.id(), "330202000000");
        assert!(matches!(verify_chain(&[root, wrong], &city.id(), 5), Err(CertError::NotParent { .. })));
    }
}
