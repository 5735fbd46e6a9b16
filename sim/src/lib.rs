//! A seeded simulation of a governance tree that runs the node's own code.
//!
//! Every simulated center is a real node in this process: its own RocksDB
//! store in a temporary directory, enrolled with real certificates, and its
//! own [`Writer`](zongzhi_node::ledger::Writer) — the same writer, ingest,
//! workflow checks, indexes and statistics the `zongzhi-node` binary runs.
//! Each parent–child connection is two of the node's own link state
//! machines ([`zongzhi_node::replication::link::Link`]) exchanging frames
//! encoded to bytes ([`network`]); each end carries out its link's actions
//! as the QUIC driver does: batches built by [`zongzhi_node::replication`]
//! (every record decided by `protocol::sync::scope`), received batches
//! decoded, batch-verified and handed to its writer as one `Op::Ingest`
//! with the cursor, acknowledged once stored. Only quinn is left out.
//!
//! One seed decides the whole run: the workload (filings, sign-for, routing
//! up and down, resolution, feedback, ratings, supervision), which links are
//! cut and for how long (a village offline for simulated days while both
//! sides keep working), how late each frame arrives, which batches are lost
//! with a cut, records reordered or twice within a batch, several batches
//! landing in one write group, crashes (a node's writer and store are
//! dropped and reopened through the node's start-up passes; half of them
//! between a group's prepare and its write), each node's clock error and
//! the send window. At the end every
//! link is healed and replicated until nothing moves, then [`checks`] compare
//! the nodes: nothing waits for a parent, every node holds exactly the cases
//! its scope gives it with the same state as the city, every step a node
//! acknowledged is still there, and each store passes its integrity check.
//!
//! Every node's writer and supervision worker read one simulated clock
//! ([`zongzhi_node::context::Clock::Manual`], a quarter of an hour per
//! step, from a start the seed picks; below the city each node reads it
//! with an error of up to 20 minutes, [`zongzhi_node::context::Clock::Skewed`]), so deadlines pass and automatic 督办
//! falls due within a run. Keys and feed epochs come from the seed too: a
//! seed replays the same run, record for record.

pub mod checks;
pub mod incidents;
pub mod network;
pub mod rng;
pub mod upgrades;
pub mod workload;
pub mod world;

pub use world::World;

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Simulated steps; each does some work and some replication.
    pub ticks: u32,
    /// Villages under each of the two townships.
    pub villages_per_township: usize,
    /// Back up a township and restore it later in the run (`--no-restore`
    /// leaves it out).
    pub restore: bool,
    /// An upgrade run: every node starts on this older release profile and
    /// is upgraded top-down while the tree works ([`upgrades`]).
    pub upgrade: Option<upgrades::Profile>,
}

impl Options {
    pub fn new(seed: u64) -> Options {
        Options { seed, ticks: 160, villages_per_township: 2, restore: true, upgrade: None }
    }

    /// An upgrade run of `seed`, from the profile the seed draws.
    pub fn upgrading(seed: u64) -> Options {
        let profile = if seed.is_multiple_of(2) { upgrades::Profile::Previous } else { upgrades::Profile::ParkingPrevious };
        Options { upgrade: Some(profile), ..Options::new(seed) }
    }
}

/// What a run did, for the report line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps_ok: u64,
    pub steps_refused: u64,
    pub batches: u64,
    pub batches_lost: u64,
    pub records_moved: u64,
    pub crashes: u64,
    /// Of those, crashes between a group's prepare and its write.
    pub crashes_mid_write: u64,
    pub link_cuts: u64,
    pub wants: u64,
    /// Automatic supervision notices the workers found owed.
    pub auto_notices: u64,
    /// Citizens' ratings the city signed (its public page, played by the
    /// simulator with each case's token).
    pub citizen_ratings: u64,
    /// Steps of record format 4 acknowledged (督办回复 and the decisions:
    /// 不予受理, 撤回, 中止/恢复, 协办 and its reply, 调解), once finalized.
    pub format4_steps: u64,
    pub rounds_to_quiesce: u32,
    /// The incidents that happened (policy push, revocation, equivocation).
    pub incidents: Vec<String>,
    /// A digest of every node's chain head and feed position at the end:
    /// equal for two runs of one seed (the replay check).
    pub digest: String,
}

/// Runs one seeded simulation and its checks. The error names the seed and
/// what diverged.
pub fn run(opts: &Options) -> anyhow::Result<Stats> {
    let mut world = World::build(opts)?;
    let mut rng = rng::Rng::new(opts.seed);
    for tick in 0..opts.ticks {
        world.tick(&mut rng, tick)?;
    }
    world.quiesce()?;
    let mut stats = world.stats.clone();
    stats.digest = world.digest()?;
    stats.incidents = world.happened.describe(&world);
    stats.incidents.extend(upgrades::describe(&world));
    checks::all(&world).map_err(|e| anyhow::anyhow!("seed {}: {e}", opts.seed))?;
    Ok(stats)
}
