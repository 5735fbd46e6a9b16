//! What the citizen notifications ([`crate::notify`]) keep: the outbox,
//! the worker's cursor in the feed and the secrets the ledger leaves for
//! an event's notification. All local to this node: never replicated,
//! never rebuilt by `reindex`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use zongzhi_protocol::RecordId;

use super::keys::*;
use super::{Batch, Result, Store, StoreError};

/// Where an outbox entry stands; the first byte of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Waiting for (another) delivery attempt; oldest first.
    Pending,
    /// Delivered; newest first.
    Delivered,
    /// Given up; newest first.
    Failed,
}

impl OutboxState {
    pub const ALL: [OutboxState; 3] = [OutboxState::Pending, OutboxState::Failed, OutboxState::Delivered];

    fn tag(self) -> u8 {
        match self {
            OutboxState::Pending => b'p',
            OutboxState::Delivered => b'd',
            OutboxState::Failed => b'f',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// An outbox key: the state, then the feed position of the event (pending:
/// as is, so the oldest is delivered first; delivered and failed:
/// complemented, so a listing reads the newest first).
fn outbox_key(state: OutboxState, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = state.tag();
    let pos = if state == OutboxState::Pending { seq } else { !seq };
    k[1..].copy_from_slice(&pos.to_be_bytes());
    k
}

fn outbox_seq(state: OutboxState, key: &[u8]) -> Option<u64> {
    let pos = u64_be(key.get(1..)?)?;
    Some(if state == OutboxState::Pending { pos } else { !pos })
}

/// A secret's key: the event's id, then the name.
fn secret_key(event: &RecordId, name: &str) -> Vec<u8> {
    [event.0.as_slice(), name.as_bytes()].concat()
}

impl Batch<'_> {
    /// Keeps `value` under `name` for the notification of `event`, in the
    /// batch that stores the event: a value the citizen must be told but
    /// no record holds (records carry only its hash), such as the query
    /// code of a filing (`query_code`) or the rating token of a feedback
    /// (`rating_token`). The notification worker reads it when it passes
    /// the event in the feed and deletes it in the same batch that queues
    /// the message (or skips the event), so it lives only until then.
    pub fn put_notify_secret(&mut self, event: &RecordId, name: &str, value: &str) {
        self.put(CF_NOTIFY_SECRETS, &secret_key(event, name), value.as_bytes());
    }

    pub fn delete_notify_secret(&mut self, event: &RecordId, name: &str) {
        self.delete(CF_NOTIFY_SECRETS, &secret_key(event, name));
    }

    /// The last feed position the notification worker has passed.
    pub fn put_notify_cursor(&mut self, seq: u64) {
        self.put(CF_META, meta::NOTIFY_CURSOR.as_bytes(), &seq.to_be_bytes());
    }

    pub fn put_notify_entry<T: Serialize>(&mut self, state: OutboxState, seq: u64, entry: &T) {
        let json = serde_json::to_vec(entry).unwrap_or_default();
        self.put(CF_NOTIFY_OUTBOX, &outbox_key(state, seq), &json);
    }

    pub fn delete_notify_entry(&mut self, state: OutboxState, seq: u64) {
        self.delete(CF_NOTIFY_OUTBOX, &outbox_key(state, seq));
    }
}

impl Store {
    /// Where the notification worker stands in the feed (none: it never ran,
    /// or notifications were turned off since).
    pub fn notify_cursor(&self) -> Result<Option<u64>> {
        self.meta_u64(meta::NOTIFY_CURSOR)
    }

    /// The secrets left for `event`'s notification, by name.
    pub fn notify_secrets(&self, event: &RecordId) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_NOTIFY_SECRETS, &event.0, |k, v| {
            let name = String::from_utf8_lossy(&k[32..]).into_owned();
            out.push((name, String::from_utf8_lossy(v).into_owned()));
            true
        })?;
        Ok(out)
    }

    /// Outbox entries in `state` (feed position, entry), pending ones oldest
    /// first, the others newest first, at most `limit`.
    pub fn notify_entries<T: DeserializeOwned>(&self, state: OutboxState, limit: usize) -> Result<Vec<(u64, T)>> {
        let mut out = Vec::new();
        let mut err = None;
        if limit == 0 {
            return Ok(out);
        }
        self.scan_prefix(CF_NOTIFY_OUTBOX, &[state.tag()], |k, v| {
            match (outbox_seq(state, k), serde_json::from_slice(v)) {
                (Some(seq), Ok(e)) => out.push((seq, e)),
                (_, Err(e)) => err = Some(e.to_string()),
                (None, _) => err = Some("short outbox key".into()),
            }
            err.is_none() && out.len() < limit
        })?;
        match err {
            Some(detail) => Err(StoreError::Corrupt { cf: CF_NOTIFY_OUTBOX, detail }),
            None => Ok(out),
        }
    }

    /// How many outbox entries are in `state`.
    pub fn notify_count(&self, state: OutboxState) -> Result<u64> {
        let mut n = 0;
        self.scan_prefix(CF_NOTIFY_OUTBOX, &[state.tag()], |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Notifications are off: forgets the worker's cursor (turned on again,
    /// it starts at the feed head rather than telling citizens about old
    /// steps) and the secrets left for it. The outbox stays, for the record.
    pub fn notify_off(&self) -> Result<()> {
        let mut keys = Vec::new();
        self.scan_prefix(CF_NOTIFY_SECRETS, &[], |k, _| {
            keys.push(k.to_vec());
            true
        })?;
        if keys.is_empty() && self.notify_cursor()?.is_none() {
            return Ok(());
        }
        let mut b = self.batch();
        for k in &keys {
            b.delete(CF_NOTIFY_SECRETS, k);
        }
        b.delete_meta(meta::NOTIFY_CURSOR);
        self.commit(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keys_order_pending_oldest_and_the_rest_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = store.batch();
        for seq in [5u64, 1, 9] {
            for state in OutboxState::ALL {
                b.put_notify_entry(state, seq, &serde_json::json!({ "seq": seq, "state": state.as_str() }));
            }
        }
        store.commit(b).unwrap();
        let seqs = |state| store.notify_entries::<serde_json::Value>(state, 10).unwrap().into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(seqs(OutboxState::Pending), vec![1, 5, 9]);
        assert_eq!(seqs(OutboxState::Delivered), vec![9, 5, 1]);
        assert_eq!(seqs(OutboxState::Failed), vec![9, 5, 1]);
        assert_eq!(store.notify_entries::<serde_json::Value>(OutboxState::Failed, 1).unwrap()[0].1["state"], "failed");
        assert_eq!(store.notify_count(OutboxState::Delivered).unwrap(), 3);
        let mut b = store.batch();
        b.delete_notify_entry(OutboxState::Delivered, 5);
        store.commit(b).unwrap();
        assert_eq!(seqs(OutboxState::Delivered), vec![9, 1]);
    }

    #[test]
    fn secrets_are_per_event_and_turning_off_forgets_them_and_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b_id) = (RecordId([1; 32]), RecordId([2; 32]));
        let mut b = store.batch();
        b.put_notify_secret(&a, "query_code", "K7Q2-9XPM");
        b.put_notify_secret(&a, "rating_token", "t0k3n");
        b.put_notify_secret(&b_id, "query_code", "other");
        b.put_notify_cursor(42);
        store.commit(b).unwrap();
        assert_eq!(store.notify_secrets(&a).unwrap(), vec![("query_code".to_string(), "K7Q2-9XPM".to_string()), ("rating_token".to_string(), "t0k3n".to_string())]);
        assert_eq!(store.notify_cursor().unwrap(), Some(42));
        let mut b = store.batch();
        b.delete_notify_secret(&a, "query_code");
        store.commit(b).unwrap();
        assert_eq!(store.notify_secrets(&a).unwrap().len(), 1);
        store.notify_off().unwrap();
        assert!(store.notify_secrets(&a).unwrap().is_empty() && store.notify_secrets(&b_id).unwrap().is_empty());
        assert_eq!(store.notify_cursor().unwrap(), None);
    }
}
