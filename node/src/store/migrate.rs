//! Store schemas migrate forward in place (`shared/UPGRADES.md` §2).
//!
//! One step per schema, from 9 on, kept forever and run in order when a
//! store opens: a village that skipped releases opens its directory with
//! any later one. The rules every step follows:
//!
//! - **Derived data** (summaries, indexes, statistics, parked marks) is
//!   dropped and rebuilt from the records: a step says so with `rebuild`,
//!   which the store records in `meta` (`reindex_pending`) in the step's own
//!   batch, so a crash before the rebuild finished rebuilds again.
//! - **Local state** (accounts, sessions, cursors, outbox, alarms, meta) is
//!   transformed in the same `WriteBatch` that writes the step's schema
//!   number: a crash leaves the old schema or the new one, never half.
//! - `records`, `feed` and `chain` are never rewritten: old-format bytes
//!   stay old-format bytes, read by their format's module.
//! - Before the first step a RocksDB checkpoint (hard links) is taken
//!   beside the directory (`<db>.before-schema-<N>`), kept until the city
//!   finalizes the release, for a rollback to the previous binary.
//! - `meta` keeps `schema_version` (the steps applied) and `oldest_reader`
//!   (the oldest schema whose binary may open the directory). A binary
//!   refuses only a directory whose `oldest_reader` is above its own
//!   schema, naming the release to install. Additive changes (a new column
//!   family or index) leave `oldest_reader` alone; the store opens every
//!   column family present, so an older binary still opens a newer
//!   directory (`opened_by` then tells the newer binary to rebuild what the
//!   older one did not maintain).
//! - A column family name, `meta` key or key prefix is never reused with
//!   another meaning.

use super::keys::meta;
use super::{OLDEST_SCHEMA, Result, SCHEMA_VERSION, Store, StoreError};

/// One migration step, from `from` to `from + 1`.
struct Step {
    from: u32,
    what: &'static str,
    /// Derived data must be rebuilt from the records after this step.
    rebuild: bool,
    /// The schema older binaries must have to open the directory after
    /// this step (`None`: unchanged, an additive step).
    oldest_reader: Option<u32>,
    /// Changes to local state, in the step's batch.
    local: fn(&Store, &mut super::Batch<'_>) -> Result<()>,
}

/// Every step ever shipped, in order. Never edit a shipped one.
const STEPS: &[Step] = &[Step {
    from: 9,
    what: "release 0.2.0: parked records (record formats this release cannot read), the fleet table, \
           oldest_reader; case summaries gain 督办 notices, running clocks name the unit that must act, \
           search postings in segments (rebuilt)",
    rebuild: true,
    // Release 0.1.0 opens a fixed list of column families and refuses a
    // directory with more: it cannot open schema 10.
    oldest_reader: Some(10),
    local: |_, _| Ok(()),
}];

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// The schema the directory had (`None`: a new directory).
    pub from: Option<u32>,
    /// Steps applied now, in order.
    pub applied: Vec<u32>,
    /// The checkpoint taken before the first step.
    pub checkpoint: Option<std::path::PathBuf>,
}

/// Reads a `u32` kept big-endian in `meta`.
fn meta_u32(store: &Store, key: &str) -> Result<Option<u32>> {
    Ok(store.meta_get(key)?.and_then(|v| v.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)))
}

/// The schema, `oldest_reader` and `opened_by` of a store, as `meta` says.
pub(super) fn versions(store: &Store) -> Result<(Option<u32>, Option<u32>, Option<u32>)> {
    Ok((meta_u32(store, meta::SCHEMA)?, meta_u32(store, meta::OLDEST_READER)?, meta_u32(store, meta::OPENED_BY)?))
}

/// Where the checkpoint before migrating from `schema` goes.
pub fn checkpoint_path(db: &std::path::Path, schema: u32) -> std::path::PathBuf {
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "db".into());
    db.with_file_name(format!("{name}.before-schema-{schema}"))
}

/// Brings an opened store to [`SCHEMA_VERSION`], or says why this binary
/// cannot open it. Called by `Store::open_with` before anything else reads
/// it.
pub(super) fn run(store: &Store) -> Result<Migration> {
    let (schema, oldest_reader, opened_by) = versions(store)?;
    let Some(found) = schema else {
        // A new directory.
        let mut b = store.batch();
        b.put_meta(meta::SCHEMA, &SCHEMA_VERSION.to_be_bytes());
        b.put_meta(meta::OLDEST_READER, &SCHEMA_VERSION.to_be_bytes());
        b.put_meta(meta::OPENED_BY, &SCHEMA_VERSION.to_be_bytes());
        store.commit(b)?;
        return Ok(Migration::default());
    };
    if let Some(oldest) = oldest_reader
        && oldest > SCHEMA_VERSION
    {
        return Err(StoreError::TooNew { found, oldest_reader: oldest });
    }
    if found < OLDEST_SCHEMA {
        return Err(StoreError::Schema { found });
    }
    let mut out = Migration { from: Some(found), ..Migration::default() };
    if found > SCHEMA_VERSION {
        // A newer binary wrote it and allows us to open it (additive
        // changes): say so, so that it rebuilds what we do not maintain.
        if opened_by != Some(SCHEMA_VERSION) {
            let mut b = store.batch();
            b.put_meta(meta::OPENED_BY, &SCHEMA_VERSION.to_be_bytes());
            store.commit(b)?;
        }
        tracing::warn!(schema = found, "this data directory was written by a newer release (schema {found}); opening it as schema {SCHEMA_VERSION}");
        return Ok(out);
    }
    if found == SCHEMA_VERSION {
        if let Some(older) = opened_by.filter(|o| *o < SCHEMA_VERSION) {
            // An older binary opened it since: derived data it did not
            // maintain is rebuilt.
            tracing::warn!("release with schema {older} opened this directory since it was migrated: rebuilding derived data");
            let mut b = store.batch();
            b.put_meta(meta::REINDEX_PENDING, &[1]);
            b.put_meta(meta::OPENED_BY, &SCHEMA_VERSION.to_be_bytes());
            store.commit(b)?;
        }
        return Ok(out);
    }
    let checkpoint = checkpoint_path(&store.path, found);
    if !checkpoint.exists() {
        // RocksDB builds a checkpoint under a temporary name and renames
        // it: if the directory exists it is whole.
        store.checkpoint(&checkpoint).map_err(|e| StoreError::Engine(format!("checkpoint before migrating schema {found}: {e}")))?;
        tracing::info!(path = %checkpoint.display(), "took a checkpoint before migrating schema {found}; it is kept until the city finalizes this release");
    }
    crate::failpoint::hit("migrate:checkpoint");
    out.checkpoint = Some(checkpoint);
    for step in STEPS.iter().filter(|s| s.from >= found && s.from < SCHEMA_VERSION) {
        tracing::info!(from = step.from, to = step.from + 1, "migrating the store: {}", step.what);
        let mut b = store.batch();
        (step.local)(store, &mut b)?;
        let to = step.from + 1;
        b.put_meta(meta::SCHEMA, &to.to_be_bytes());
        b.put_meta(meta::OPENED_BY, &SCHEMA_VERSION.to_be_bytes());
        if let Some(oldest) = step.oldest_reader {
            b.put_meta(meta::OLDEST_READER, &oldest.to_be_bytes());
        }
        if step.rebuild {
            b.put_meta(meta::REINDEX_PENDING, &[1]);
        }
        crate::failpoint::hit(&format!("migrate:step:{}", step.from));
        store.commit(b)?;
        out.applied.push(step.from);
    }
    Ok(out)
}

/// Every step is present, once, from [`OLDEST_SCHEMA`] to the current
/// schema (a test keeps it so).
pub fn steps_cover_every_schema() -> bool {
    let froms: Vec<u32> = STEPS.iter().map(|s| s.from).collect();
    froms == (OLDEST_SCHEMA..SCHEMA_VERSION).collect::<Vec<u32>>()
}

/// The city finalized a format this release writes: the checkpoints
/// taken before migrating are no longer a way back (no node goes back
/// below the finalized format), and binaries older than this schema may
/// not open the directory any more.
pub fn finalized(store: &Store) -> Result<Vec<std::path::PathBuf>> {
    let mut removed = Vec::new();
    for schema in OLDEST_SCHEMA..SCHEMA_VERSION {
        let cp = checkpoint_path(&store.path, schema);
        if cp.exists() {
            std::fs::remove_dir_all(&cp).map_err(|e| StoreError::Engine(format!("removing {}: {e}", cp.display())))?;
            removed.push(cp);
        }
    }
    if meta_u32(store, meta::OLDEST_READER)?.is_none_or(|o| o < SCHEMA_VERSION) {
        let mut b = store.batch();
        b.put_meta(meta::OLDEST_READER, &SCHEMA_VERSION.to_be_bytes());
        store.commit(b)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_step_per_schema() {
        assert!(super::steps_cover_every_schema());
    }
}
