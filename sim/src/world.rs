//! The simulated tree: real nodes (store + writer) in temporary
//! directories, and the links between parents and children.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use zongzhi_node::config::Config;
use zongzhi_node::context::Clock;
use zongzhi_node::context::Context;
use zongzhi_node::ledger::{Op, Outcome, Writer};
use zongzhi_node::node;
use zongzhi_node::store::meta;
use zongzhi_protocol::cert::{EnrollmentRequest, NodeCert};
use zongzhi_protocol::sync::Direction;
use zongzhi_protocol::{Body, DivisionCode, Level, NodeId, NodeKey, RecordId};

use crate::network::{self, Conn};
use crate::rng::Rng;
use crate::{Options, Stats};

/// `ZONGZHI_SIM_DEBUG` is set: print every batch and every refusal.
pub(crate) fn debug() -> bool {
    std::env::var_os("ZONGZHI_SIM_DEBUG").is_some()
}

/// Where a run's clock starts: a Monday 09:00 (+08:00) in 2026 plus a
/// number of days the seed picks, so seeds cover weekends, holidays and
/// the policy's calendar.
pub fn start_ms(seed: u64) -> u64 {
    const MONDAY_2026_01_05_0900_CST: u64 = 1_767_574_800_000;
    MONDAY_2026_01_05_0900_CST + (Rng::new(seed).next_u64() % 330) * 86_400_000
}

/// The most a node's clock is wrong by, either way.
const MAX_SKEW_MS: i64 = 20 * 60_000;

/// Simulated time per step.
pub const TICK_MS: u64 = 15 * 60_000;

/// One simulated center: a real node's store and writer.
pub struct SimNode {
    pub division: DivisionCode,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub id: NodeId,
    cfg: Config,
    key: Arc<NodeKey>,
    /// `None` while crashed (between dropping and reopening).
    inner: Option<(Context, Writer)>,
    /// Records this node acknowledged (its own steps): they must survive
    /// every crash.
    pub acked: Vec<RecordId>,
    /// This node's clock: the simulated time, wrong by a few minutes
    /// either way below the city (a village PC's clock is rarely right).
    pub clock: Clock,
    /// The release this node acts out ([`crate::upgrades`]): this build's,
    /// or an older one's until its upgrade.
    pub caps: zongzhi_node::release::Capabilities,
}

impl SimNode {
    fn open(cfg: &Config, key: &Arc<NodeKey>, clock: &Clock, caps: &zongzhi_node::release::Capabilities) -> anyhow::Result<(Context, Writer)> {
        let store = node::open_store(cfg, key)?;
        let mut shared = node::shared_state(cfg, store, key.clone())?;
        shared.clock = clock.clone();
        shared.caps = Arc::new(caps.clone());
        let writer = node::start_writer(shared.clone())?;
        Ok((shared, writer))
    }

    /// The node's key, to sign what an equivocating author signs.
    pub fn signing_key(&self) -> &NodeKey {
        &self.key
    }

    pub fn shared(&self) -> &Context {
        &self.inner.as_ref().expect("a node is reopened right after its crash").0
    }

    /// Runs operations as one write group (as the node's writer thread
    /// groups what is queued).
    pub fn process(&mut self, ops: Vec<Op>) -> Vec<zongzhi_node::ledger::Result<Outcome>> {
        // `ZONGZHI_SIM_TRACE_REINDEX=1`: rebuild the derived state after
        // every write group, so a divergence stops the run at the group
        // that caused it (slow; for finding, not for the soak).
        let trace = std::env::var_os("ZONGZHI_SIM_TRACE_REINDEX").map(|_| describe_ops(&ops));
        let results = self.inner.as_mut().expect("a node is reopened right after its crash").1.process(ops);
        if let Some(ops) = trace {
            let shared = self.shared();
            match crate::checks::reindex_diff(shared) {
                Ok(None) => {}
                Ok(Some(diff)) => panic!("{}: the write group below left derived state a reindex changes:\n{diff}\nthe group:\n{ops}\nresults: {results:?}", self.division),
                Err(e) => panic!("{}: reindex failed: {e}", self.division),
            }
        }
        results
    }

    /// A crash: the writer and the store are dropped with whatever was not
    /// synced, then the node starts again through its start-up passes.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.inner = None;
        self.inner = Some(Self::open(&self.cfg, &self.key, &self.clock, &self.caps)?);
        Ok(())
    }

    /// A backup of this node's store into `dir`, as `zongzhi-node backup`
    /// takes it while the node runs.
    pub fn backup(&self, dir: &std::path::Path) -> anyhow::Result<u64> {
        let info = zongzhi_node::api::NodeInfo { id: self.id, division: self.division, name: self.cfg.name.clone() };
        let m = zongzhi_node::recovery::backup(&self.shared().store, dir, &info, &Default::default(), self.clock.now_ms()).map_err(anyhow::Error::msg)?;
        Ok(m.own_seq)
    }

    /// The disk is lost: the store is replaced by the backup in `dir` (as
    /// `zongzhi-node restore` does) and the node starts again, signing
    /// nothing until its parent gave its own records back.
    pub fn restore_from(&mut self, dir: &std::path::Path, epoch: [u8; 16]) -> anyhow::Result<()> {
        self.inner = None;
        let db = self.cfg.db_path();
        std::fs::remove_dir_all(&db)?;
        zongzhi_node::recovery::restore(dir, &db, self.clock.now_ms(), epoch).map_err(anyhow::Error::msg)?;
        self.inner = Some(Self::open(&self.cfg, &self.key, &self.clock, &self.caps)?);
        Ok(())
    }

    /// A crash in the middle of a write: `ops` are prepared (checked,
    /// signed, their batch built) and the process dies before the synced
    /// write. Nothing of them may be found after the restart, and nothing
    /// else may be lost.
    pub fn crash_mid_write(&mut self, ops: Vec<Op>) -> anyhow::Result<()> {
        if let Some((ctx, writer)) = self.inner.take() {
            writer.prepare_then_crash(ops);
            drop(ctx);
        }
        self.inner = Some(Self::open(&self.cfg, &self.key, &self.clock, &self.caps)?);
        Ok(())
    }
}

/// One line per operation (records as id, author, seq, action, parents).
fn describe_ops(ops: &[Op]) -> String {
    let record = |r: &zongzhi_protocol::Record| match &r.body {
        Body::CaseEvent(ev) => format!("{} by {} seq {}: {} of case {:?}, parents {:?}", r.id, r.author, r.header.seq, ev.action.as_str(), ev.case, ev.parents),
        other => format!("{} by {} seq {}: {:?}", r.id, r.author, r.header.seq, std::mem::discriminant(other)),
    };
    ops.iter()
        .map(|op| match op {
            Op::Ingest { records, blobs, .. } => format!("ingest, {} blobs:\n  {}", blobs.len(), records.iter().map(record).collect::<Vec<_>>().join("\n  ")),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A parent–child edge of the tree: its live connection, if any, and when
/// it comes back after a cut.
pub struct Edge {
    pub parent: usize,
    pub child: usize,
    pub down_until: u32,
    pub conn: Option<Conn>,
}

pub struct World {
    _dir: tempfile::TempDir,
    /// The one simulated clock every node's writer reads.
    pub clock: Clock,
    pub nodes: Vec<SimNode>,
    pub edges: Vec<Edge>,
    /// The send window of this run's connections (see [`network::window`]).
    window: u64,
    pub stats: Stats,
    pub tick: u32,
    /// When the run's incidents happen, and what they did.
    pub plan: crate::incidents::Plan,
    pub happened: crate::incidents::Happened,
    /// An upgrade run: when each node is upgraded ([`crate::upgrades`]).
    pub upgrade: Option<crate::upgrades::UpgradePlan>,
    pub upgraded: crate::upgrades::Upgraded,
}

/// The tree: a city, one county, two townships, villages under each.
fn divisions(villages: usize) -> Vec<(DivisionCode, Option<usize>)> {
    let code = |s: String| -> DivisionCode { s.parse().unwrap_or_else(|_| unreachable!("fixed codes")) };
    let mut out = vec![(code("330100000000".into()), None), (code("330106000000".into()), Some(0))];
    for t in 1..=2 {
        let town = out.len();
        out.push((code(format!("330106{t:03}000")), Some(1)));
        for v in 1..=villages {
            out.push((code(format!("330106{t:03}{v:03}")), Some(town)));
        }
    }
    out
}

impl World {
    /// Initializes and enrolls every node the way an operator does
    /// (`init`, the parent signs the enrollment request, `import-cert`).
    pub fn build(opts: &Options) -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        let clock = Clock::manual(start_ms(opts.seed));
        // Keys and feed epochs from their own stream of the seed, so that
        // the workload's draws do not shift when a node is added.
        let mut keys = Rng::new(opts.seed.rotate_left(32) ^ 0x6b65_7973);
        let mut nodes: Vec<SimNode> = Vec::new();
        let mut root: Option<NodeId> = None;
        let mut skews = Rng::new(opts.seed ^ 0x736b_6577);
        for (i, (division, parent)) in divisions(opts.villages_per_township).into_iter().enumerate() {
            let ndir = dir.path().join(division.to_string());
            std::fs::create_dir_all(&ndir)?;
            let mut toml = format!("data_dir = \"data\"\ndivision = \"{division}\"\nname = \"模拟{}中心{i}\"\n", division.level().zh());
            if let Some(r) = root {
                toml.push_str(&format!("root_key = \"{r}\"\n"));
            }
            std::fs::write(ndir.join("node.toml"), toml)?;
            let cfg = Config::load(&ndir.join("node.toml"))?;
            let init = node::init_with(&cfg, &mut keys, &clock)?;
            if let Some(p) = parent {
                let path = init.enrollment_request.context("a child writes an enrollment request")?;
                let req = EnrollmentRequest::from_armored(&std::fs::read_to_string(path)?)?;
                let chain = enroll(&mut nodes[p], &req, clock.now_ms())?;
                node::import_chain(&cfg, &chain)?;
            } else {
                root = Some(init.key);
            }
            let key = Arc::new(node::load_key(&cfg)?);
            // Up to 20 minutes either way (the certificates' one hour of
            // slack before their start covers it).
            let node_clock = if parent.is_some() { clock.skewed(skews.below(2 * MAX_SKEW_MS as usize + 1) as i64 - MAX_SKEW_MS) } else { clock.clone() };
            let caps = opts.upgrade.map(crate::upgrades::Profile::caps).unwrap_or_default();
            let inner = SimNode::open(&cfg, &key, &node_clock, &caps)?;
            nodes.push(SimNode { division, parent, children: Vec::new(), id: key.id(), cfg, key, inner: Some(inner), acked: Vec::new(), clock: node_clock, caps });
            if let Some(p) = parent {
                nodes[p].children.push(i);
            }
        }
        let edges = nodes.iter().enumerate().filter_map(|(i, n)| n.parent.map(|p| Edge { parent: p, child: i, down_until: 0, conn: None })).collect();
        let window = network::window(&mut Rng::new(opts.seed ^ 0x77696e64));
        let mut world =
            World { _dir: dir, clock, nodes, edges, window, stats: Stats::default(), tick: 0, plan: Default::default(), happened: Default::default(), upgrade: None, upgraded: Default::default() };
        world.plan = crate::incidents::Plan::draw(&world, opts.ticks, opts.seed);
        if let Some(profile) = opts.upgrade {
            let plan = crate::upgrades::UpgradePlan::draw(&world, opts.ticks, opts.seed, profile);
            world.upgraded.at_ms = vec![None; world.nodes.len()];
            world.upgrade = Some(plan);
        }
        if !opts.restore {
            world.plan.restore = None;
        }
        Ok(world)
    }

    /// Every node's own chain head and feed position, hashed (see
    /// [`Stats::digest`]).
    pub fn digest(&self) -> anyhow::Result<String> {
        let mut h = blake3::Hasher::new();
        for n in &self.nodes {
            let store = &n.shared().store;
            for key in [meta::OWN_HEAD, meta::FEED_SEQ] {
                h.update(&store.meta_get(key)?.unwrap_or_default());
            }
        }
        Ok(h.finalize().to_hex()[..16].to_string())
    }

    /// Where the run's backup goes.
    pub fn backup_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("backup")
    }

    pub fn city(&self) -> &SimNode {
        &self.nodes[0]
    }

    /// The node whose key was revoked: off the tree (no link carries
    /// anything to or from it, its operators stop).
    pub fn is_revoked(&self, n: usize) -> bool {
        self.happened.revoked.is_some_and(|(r, _, _)| r == n)
    }

    fn edge_carries(&self, e: usize) -> bool {
        !self.is_revoked(self.edges[e].child) && !self.is_revoked(self.edges[e].parent)
    }

    /// One step (a quarter of an hour of simulated time): some work, the
    /// supervision workers every hour, some faults, some replication.
    pub fn tick(&mut self, rng: &mut Rng, tick: u32) -> anyhow::Result<()> {
        self.tick = tick;
        self.clock.advance(TICK_MS);
        crate::incidents::at_tick(self, rng, tick)?;
        crate::upgrades::at_tick(self, tick)?;
        for _ in 0..2 {
            crate::workload::step(self, rng)?;
        }
        if tick.is_multiple_of(4) {
            for n in 0..self.nodes.len() {
                if !self.is_revoked(n) {
                    crate::workload::auto_supervise(self, n)?;
                }
            }
        }
        self.faults(rng)?;
        for e in 0..self.edges.len() {
            if self.edges[e].down_until <= tick && self.edge_carries(e) {
                let rounds = 1 + rng.below(4);
                self.sync_edge(e, rounds, rng, true)?;
            } else {
                self.drop_conn(e);
            }
        }
        Ok(())
    }

    fn faults(&mut self, rng: &mut Rng) -> anyhow::Result<()> {
        if rng.chance(6) {
            // A cut: mostly short; a village is sometimes offline for a long
            // stretch (simulated days) while both sides keep working.
            let e = rng.below(self.edges.len());
            let long = self.nodes[self.edges[e].child].division.level() == Level::Village && rng.chance(30);
            self.edges[e].down_until = self.tick + if long { 40 + rng.below(40) as u32 } else { 1 + rng.below(6) as u32 };
            self.drop_conn(e);
            self.stats.link_cuts += 1;
        }
        if rng.chance(3) {
            // A crash: the process is gone, and its connections with it.
            let n = rng.below(self.nodes.len());
            for e in 0..self.edges.len() {
                if self.edges[e].parent == n || self.edges[e].child == n {
                    self.drop_conn(e);
                }
            }
            if rng.chance(50) && !self.is_revoked(n) {
                // Between prepare and commit: an operator's filing was
                // checked and signed, and never written.
                let filing = crate::workload::filing(rng, self.nodes[n].clock.now_ms());
                self.nodes[n].crash_mid_write(vec![filing])?;
                self.stats.crashes_mid_write += 1;
            } else {
                self.nodes[n].crash_and_restart()?;
            }
            self.stats.crashes += 1;
        }
        Ok(())
    }

    /// The connection of edge `e` is gone, with what was on its wires.
    pub(crate) fn drop_conn(&mut self, e: usize) {
        if let Some(conn) = self.edges[e].conn.take() {
            self.stats.batches_lost += conn.batches_in_flight();
        }
    }

    /// Runs edge `e`'s connection (opening it if needed) for up to `rounds`
    /// rounds. Returns how much happened (0: idle).
    pub fn sync_edge(&mut self, e: usize, rounds: usize, rng: &mut Rng, faulty: bool) -> anyhow::Result<u64> {
        let mut conn = match self.edges[e].conn.take() {
            Some(c) => c,
            None => self.connect(e, self.window)?,
        };
        // Once a tick, the child's Status again (as the QUIC driver sends
        // it when news of its subtree arrives and every minute): its report
        // and its subtree's reach the parent.
        if faulty {
            conn.refresh_child_status();
        }
        let moved = self.pump(&mut conn, rounds, rng, faulty);
        self.edges[e].conn = Some(conn);
        moved
    }

    /// Each record once: a case event authored in a node's own subtree (by a
    /// key not revoked) never comes back down to it. Checked on what the
    /// sender built, against the receiver's trust store, not against the
    /// scope rule that built it.
    pub(crate) fn check_no_echo(&self, from: usize, to: usize, dir: Direction, records: &[Vec<u8>], own: Option<NodeId>) -> anyhow::Result<()> {
        if dir != Direction::Down {
            return Ok(());
        }
        let receiver = self.nodes[to].division;
        let trust = self.nodes[to].shared().trust();
        for bytes in records {
            if own.is_some() {
                // A restored receiver asked for its subtree's records back.
                return Ok(());
            }
            let r = zongzhi_protocol::Record::decode_unverified(bytes)?;
            let Some(m) = trust.member(&r.author) else { continue };
            if matches!(r.body, zongzhi_protocol::Body::CaseEvent(_)) && receiver.contains(m.cert.division) && trust.revocation(&r.author).is_none() {
                bail!("{} sent {receiver} its own subtree's record {} back down", self.nodes[from].division, r.id.fmt_short());
            }
        }
        Ok(())
    }

    /// Heals every edge and replicates, without faults, until a whole pass
    /// over the tree moves nothing.
    pub fn quiesce(&mut self) -> anyhow::Result<()> {
        for e in &mut self.edges {
            e.down_until = 0;
        }
        // Faults off: a fixed generator for the grouping choices only.
        let mut rng = Rng::new(0);
        for round in 1..=200 {
            let mut moved = 0;
            for e in 0..self.edges.len() {
                if self.edge_carries(e) {
                    moved += self.sync_edge(e, 64, &mut rng, false)?;
                } else {
                    self.drop_conn(e);
                }
            }
            if moved == 0 {
                self.stats.rounds_to_quiesce = round;
                return Ok(());
            }
        }
        bail!("replication did not settle after 200 rounds")
    }
}

/// The parent signs a child's certificate; returns the chain text the
/// child imports (as `POST /api/certs/issue` and `import-cert` do).
fn enroll(parent: &mut SimNode, req: &EnrollmentRequest, now: u64) -> anyhow::Result<String> {
    let cert = NodeCert {
        key: req.key,
        division: req.division,
        level: req.division.level(),
        name: req.name.clone(),
        issuer: parent.id,
        not_before_ms: now.saturating_sub(3_600_000),
        not_after_ms: now + 365 * 86_400_000,
        serial: parent.children.len() as u64 + 2,
    };
    for r in parent.process(vec![Op::AppendOwn { body: Body::NodeCert(cert) }]) {
        r.with_context(|| format!("{} certifying {}", parent.division, req.division))?;
    }
    let shared = parent.shared();
    let ids = shared.trust().chain(&req.key).context("chain to the new certificate")?;
    let mut text = String::new();
    for id in ids {
        let bytes = shared.store.record_bytes(&id)?.context("certificate record")?;
        text.push_str(&zongzhi_protocol::cert::armor(zongzhi_protocol::cert::RECORDS_ARMOR, &bytes));
    }
    Ok(text)
}
