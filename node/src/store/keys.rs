//! Key layouts of the store: the column family names (the table in
//! [`super`]), the well-known keys in `meta`, and the helpers that build
//! and read the fixed parts of keys and values. The derived indexes' key
//! layouts are in [`crate::index`].

use zongzhi_protocol::RecordId;

pub(super) const CF_RECORDS: &str = "records";
pub(super) const CF_FEED: &str = "feed";
pub(super) const CF_CHAIN: &str = "chain";
pub(super) const CF_CASE_INDEX: &str = "case_index";
pub(super) const CF_PENDING: &str = "pending";
pub(super) const CF_CURSORS: &str = "cursors";
pub(super) const CF_CASE_STATE: &str = "case_state";
pub(super) const CF_CASE_NUMBERS: &str = "case_numbers";
pub(crate) const CF_QUEUE: &str = "queue";
pub(super) const CF_STATS: &str = "stats";
pub(super) const CF_META: &str = "meta";
pub(super) const CF_ACCOUNTS: &str = "accounts";
pub(super) const CF_SESSIONS: &str = "sessions";
pub(super) const CF_BLOBS: &str = "blobs";
pub(super) const CF_TRUST: &str = "trust";
pub(super) const CF_ALARMS: &str = "alarms";
/// Signed monthly reports: month (u32 BE) ‖ unit (u64 BE) ‖ author seq (u64 BE) → record id.
pub(super) const CF_REPORTS: &str = "reports";
/// Case id → (): cases to fold again when a policy version arrives
/// (derived: see `CaseSummary::needs_policy`).
pub(super) const CF_WAITING: &str = "waiting";
/// Cases with a step overruled (被覆盖), under the unit that took it: unit (u64 BE) ‖ case id.
pub(super) const CF_OVERRULED: &str = "overruled";
pub(crate) const CF_QUEUE_CAT: &str = "queue_cat";
pub(crate) const CF_COUNTS: &str = "counts";
pub(crate) const CF_CLOCKS: &str = "clocks";
pub(crate) const CF_URGENT: &str = "urgent";
pub(crate) const CF_REPEATS: &str = "repeats";
pub(crate) const CF_REPEAT_MARKS: &str = "repeat_marks";
pub(crate) const CF_REPEAT_DIRTY: &str = "repeat_dirty";
pub(crate) const CF_CONTACTS: &str = "contacts";
pub(crate) const CF_WORDS: &str = "words";
/// Login attempts, newest first: !time (u64 BE) ‖ !seq (u32 BE) → entry
/// (JSON). Local to this node: never replicated, never rebuilt, pruned to
/// a bound ([`crate::login::audit`]).
pub(super) const CF_LOGIN_AUDIT: &str = "login_audit";
/// Refused login attempts, aggregated per client address ([`crate::login::audit`]):
/// the same layout as `login_audit`, bounded on its own so a flood of
/// refusals never evicts a successful login, a lockout or an admin's action.
pub(super) const CF_LOGIN_REFUSALS: &str = "login_refusals";
/// Login throttle and public-page lock state that survives a restart:
/// kind (u8) ‖ key text → failures and lock (JSON). Local, bounded,
/// pruned when a key goes idle ([`crate::login::throttle`], [`crate::citizen`]).
pub(super) const CF_LOCKS: &str = "locks";
/// Citizen notifications ([`crate::notify`]): state ‖ feed position (u64
/// BE; complemented for delivered and failed ones, newest first) → entry
/// (JSON). Local: never replicated, never rebuilt.
pub(super) const CF_NOTIFY_OUTBOX: &str = "notify_outbox";
/// Values a notification needs that no record holds (a query code, a
/// rating token), left by the ledger with the event: event id ‖ name →
/// value. Deleted when the notification worker passes the event.
pub(super) const CF_NOTIFY_SECRETS: &str = "notify_secrets";

/// Records this release cannot read (a newer record format) and the
/// records that follow them in their case (schema 10): `r` ‖ record id →
/// entry (JSON: format, kind, case, feed position, reason); `c` ‖ case id ‖
/// record id → (). The records themselves are held in `records`, `feed`
/// and `chain` like any other; these marks keep them out of the fold until
/// an upgraded release reads them. Derived: rebuilt by `reindex`.
pub(super) const CF_PARKED: &str = "parked";
/// The last report of every center in this node's subtree (schema 10):
/// node key → entry (JSON: the report, when it arrived, through which
/// child). Local: never replicated (reports travel in `Status` frames),
/// never rebuilt.
pub(super) const CF_FLEET: &str = "fleet";

pub(super) const ALL_CFS: &[&str] = &[
    CF_RECORDS,
    CF_FEED,
    CF_CHAIN,
    CF_CASE_INDEX,
    CF_PENDING,
    CF_CURSORS,
    CF_CASE_STATE,
    CF_CASE_NUMBERS,
    CF_QUEUE,
    CF_STATS,
    CF_META,
    CF_ACCOUNTS,
    CF_SESSIONS,
    CF_BLOBS,
    CF_TRUST,
    CF_ALARMS,
    CF_REPORTS,
    CF_WAITING,
    CF_QUEUE_CAT,
    CF_COUNTS,
    CF_CLOCKS,
    CF_URGENT,
    CF_REPEATS,
    CF_REPEAT_MARKS,
    CF_REPEAT_DIRTY,
    CF_CONTACTS,
    CF_WORDS,
    CF_OVERRULED,
    CF_LOGIN_AUDIT,
    CF_NOTIFY_OUTBOX,
    CF_NOTIFY_SECRETS,
    CF_PARKED,
    CF_FLEET,
    CF_LOGIN_REFUSALS,
    CF_LOCKS,
];

/// Column families rebuilt by `reindex`.
pub(super) const DERIVED_CFS: &[&str] = &[
    CF_CASE_INDEX,
    CF_CASE_STATE,
    CF_CASE_NUMBERS,
    CF_QUEUE,
    CF_STATS,
    CF_TRUST,
    CF_REPORTS,
    CF_WAITING,
    CF_QUEUE_CAT,
    CF_COUNTS,
    CF_CLOCKS,
    CF_URGENT,
    CF_REPEATS,
    CF_REPEAT_MARKS,
    CF_REPEAT_DIRTY,
    CF_CONTACTS,
    CF_WORDS,
    CF_OVERRULED,
    CF_PARKED,
];

/// Well-known keys in `meta`.
pub mod meta {
    /// This node's public key (32 bytes).
    pub const NODE_ID: &str = "node_id";
    /// The schema the directory was migrated to (u32 BE).
    pub const SCHEMA: &str = "schema_version";
    /// The oldest schema whose binary may open the directory (u32 BE).
    pub const OLDEST_READER: &str = "oldest_reader";
    /// The schema of the last binary that opened the directory (u32 BE):
    /// an older one (allowed by `oldest_reader`) did not maintain what
    /// newer schemas derive, so the newer binary rebuilds it.
    pub const OPENED_BY: &str = "opened_by";
    /// Present while derived data must be rebuilt (a migration step asked
    /// for it; a crash during the rebuild leaves it, so it runs again).
    pub const REINDEX_PENDING: &str = "reindex_pending";
    /// Random id of this store's feed; changes if the feed is ever reset.
    pub const FEED_EPOCH: &str = "feed_epoch";
    /// Last local feed sequence number (u64 BE).
    pub const FEED_SEQ: &str = "feed_seq";
    /// This node's own author chain head: seq (u64 BE) ‖ record id.
    pub const OWN_HEAD: &str = "own_head";
    /// Last hybrid-clock timestamp issued: wall (u64 BE) ‖ counter (u32 BE).
    pub const HLC: &str = "hlc";
    /// Case number serial per year: prefix + year.
    pub const SERIAL_PREFIX: &str = "case_serial/";
    /// Automatic supervision issued: prefix + case/clock/started/grade → notice id.
    pub const SUPERVISED_PREFIX: &str = "supervised/";
    /// This node's secret for the keyed hashes of the contact index (32 bytes).
    pub const SEARCH_KEY: &str = "search_key";
    /// Set by `zongzhi-node restore` (JSON: the backup's manifest and when
    /// it was restored), removed once a peer gave the node's own chain
    /// back: while present the node signs nothing.
    pub const RESTORED: &str = "restored";
    /// Set by `import-cert` on a center re-enrolled with a new key while
    /// its division's old key is revoked (JSON: the predecessors and their
    /// cut-offs); removed with `RESTORED`'s logic once the parent gave the
    /// division's history back: while present the node signs nothing.
    pub const SUCCESSION: &str = "succession";
    /// The repeat window (days, u32 BE) the repeat marks were settled with.
    pub const REPEAT_WINDOW: &str = "repeat_window_days";
    /// The last feed position the notification worker has passed (u64 BE).
    pub const NOTIFY_CURSOR: &str = "notify_cursor";
}

/// A `login_audit` key: the complement of the time and of a sequence
/// number, so a forward scan reads the newest entry first.
pub(super) fn login_audit_key(at_ms: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&(!at_ms).to_be_bytes());
    k[8..].copy_from_slice(&(!seq).to_be_bytes());
    k
}

/// A `locks` key: the kind's tag, then the key's text.
pub(super) fn lock_key(tag: u8, key: &str) -> Vec<u8> {
    [&[tag][..], key.as_bytes()].concat()
}

/// The time of a `login_audit` key.
pub(super) fn login_audit_time(key: &[u8]) -> Option<u64> {
    u64_be(key).map(|t| !t)
}

pub(super) fn u64_be(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

pub(super) fn id_from(bytes: &[u8]) -> Option<RecordId> {
    Some(RecordId(bytes.get(..32)?.try_into().ok()?))
}

/// A `feed` entry's value: the record's id, then its bytes.
pub(super) fn feed_value(id: &RecordId, bytes: &[u8]) -> Vec<u8> {
    [id.0.as_slice(), bytes].concat()
}

pub(super) fn split_feed_value(v: &[u8]) -> Option<(RecordId, &[u8])> {
    Some((id_from(v)?, v.get(32..)?))
}
