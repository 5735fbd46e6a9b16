//! What a received batch becomes: records decoded and batch-verified, and
//! the parents its ingest lacked.

use zongzhi_protocol::Record;
use zongzhi_protocol::record::verify_batch;
use zongzhi_protocol::sync;

use crate::ledger::IngestReport;

use super::ReplicationError;

/// Decodes a received batch and checks every signature (batch
/// verification); one forged record refuses the whole batch.
pub fn decode_verified(records: Vec<Vec<u8>>) -> Result<Vec<Record>, ReplicationError> {
    let recs: Vec<Record> = records.into_iter().map(Record::decode_unverified_owned).collect::<Result<_, _>>().map_err(ReplicationError::Malformed)?;
    let refs: Vec<&Record> = recs.iter().collect();
    for (r, v) in recs.iter().zip(verify_batch(&refs)) {
        v.map_err(|_| ReplicationError::BadSignature(r.id.fmt_short()))?;
    }
    Ok(recs)
}

/// The parents an ingest lacked, to ask the sender for (`Want`), at most
/// [`sync::MAX_WANT`].
pub fn wants(report: &IngestReport) -> Vec<[u8; 32]> {
    let mut want: Vec<[u8; 32]> = report.missing.iter().map(|m| m.0).collect();
    want.sort_unstable();
    want.dedup();
    want.truncate(sync::MAX_WANT);
    want
}
